// SPDX-License-Identifier: GPL-2.0
/*
 * rewind_demo.c - driver of the "Rewind Demo Sensor" (USB 1209:000d, the
 * demo device of tests/usbdev), for the driver-debugging demo
 * (tests/guest/usb-demo.sh): this driver has a bug that crashes the
 * kernel only once the device sends a certain kind of data, and the demo
 * finds it by recording the crash and going back in time from it.
 *
 * The sensor answers every bulk IN transfer with one report: a length
 * byte, then that many payload bytes.  /dev/rewind_demo's ioctl
 * REWIND_DEMO_READ reads one report and returns its length and checksum.
 */
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <linux/usb.h>

#include "rewind_demo.h"

#define DEMO_EP_IN		0x81
#define DEMO_RX_SIZE		256
#define DEMO_TIMEOUT_MS		2000

static struct usb_device *demo_udev;	/* the bound sensor, or NULL */
static DEFINE_MUTEX(demo_mutex);	/* guards demo_udev and transfers */

/* Reads one report from the sensor; returns its length and checksum. */
static long rewind_demo_ioctl(struct file *file, unsigned int cmd,
			      unsigned long arg)
{
	struct rewind_demo_report report;
	int actual = 0, ret, len, i, sum = 0;
	u8 msg[16];
	u8 *rx;

	if (cmd != REWIND_DEMO_READ)
		return -ENOTTY;
	rx = kmalloc(DEMO_RX_SIZE, GFP_KERNEL);
	if (!rx)
		return -ENOMEM;
	mutex_lock(&demo_mutex);
	if (!demo_udev) {
		ret = -ENODEV;
		goto out;
	}
	ret = usb_bulk_msg(demo_udev, usb_rcvbulkpipe(demo_udev, DEMO_EP_IN),
			   rx, DEMO_RX_SIZE, &actual, DEMO_TIMEOUT_MS);
	if (ret)
		goto out;
	if (actual < 1) {
		ret = -EIO;
		goto out;
	}
	len = rx[0];
	memcpy(msg, rx + 1, len);
	for (i = 0; i < len; i++)
		sum += msg[i];
	report.length = len;
	report.checksum = sum;
	ret = copy_to_user((void __user *)arg, &report, sizeof(report)) ?
		-EFAULT : 0;
out:
	mutex_unlock(&demo_mutex);
	kfree(rx);
	return ret;
}

static const struct file_operations rewind_demo_fops = {
	.owner = THIS_MODULE,
	.unlocked_ioctl = rewind_demo_ioctl,
};

static struct miscdevice rewind_demo_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "rewind_demo",
	.fops = &rewind_demo_fops,
};

static int rewind_demo_probe(struct usb_interface *intf,
			     const struct usb_device_id *id)
{
	int ret;

	mutex_lock(&demo_mutex);
	if (demo_udev) {
		mutex_unlock(&demo_mutex);
		return -EBUSY;		/* one sensor at a time */
	}
	demo_udev = usb_get_dev(interface_to_usbdev(intf));
	mutex_unlock(&demo_mutex);
	/* /dev/rewind_demo exists while a sensor is bound */
	ret = misc_register(&rewind_demo_misc);
	if (ret) {
		mutex_lock(&demo_mutex);
		usb_put_dev(demo_udev);
		demo_udev = NULL;
		mutex_unlock(&demo_mutex);
		return ret;
	}
	dev_info(&intf->dev, "rewind_demo: sensor bound, /dev/rewind_demo\n");
	return 0;
}

static void rewind_demo_disconnect(struct usb_interface *intf)
{
	misc_deregister(&rewind_demo_misc);
	mutex_lock(&demo_mutex);
	usb_put_dev(demo_udev);
	demo_udev = NULL;
	mutex_unlock(&demo_mutex);
}

static const struct usb_device_id rewind_demo_ids[] = {
	{ USB_DEVICE_AND_INTERFACE_INFO(0x1209, 0x000d, 0xff, 0x00, 0x00) },
	{ }
};
MODULE_DEVICE_TABLE(usb, rewind_demo_ids);

static struct usb_driver rewind_demo_driver = {
	.name = "rewind_demo",
	.probe = rewind_demo_probe,
	.disconnect = rewind_demo_disconnect,
	.id_table = rewind_demo_ids,
};
module_usb_driver(rewind_demo_driver);

MODULE_DESCRIPTION("QEMU Rewind demo: driver of the Rewind Demo Sensor");
MODULE_LICENSE("GPL");
