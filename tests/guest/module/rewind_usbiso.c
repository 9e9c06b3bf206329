// SPDX-License-Identifier: GPL-2.0
/*
 * rewind_usbiso.c - guest half of the USB isochronous test
 * (tests/guest/usb-iso.sh; the device is tests/usbdev/iso_source.cc).
 *
 * Binds interface 0 of the iso test device (1209:0004, class 0xff),
 * selects its alternate setting 1, which has the isochronous IN endpoint
 * (alt 0 has none, as on real devices), and keeps ISO_URBS URBs of
 * ISO_PACKETS packets each in flight on it.  The bytes of every packet
 * (its actual_length of them, in order) are appended to a buffer until it
 * holds `bytes` bytes (module parameter); then no URB is resubmitted.
 *
 * /proc/rewind_usbiso_status: blocks until the buffer is full (or 60 s),
 *     then reads "done packets=P empty=E errors=X bytes=B\n" (or "timeout
 *     ..." with the counts so far): P packets carried data, E completed
 *     empty, X completed with an error status, B bytes were kept (= the
 *     parameter once done; the last packet may be cut).
 * /proc/rewind_usbiso_data: the bytes collected so far, binary.
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/slab.h>
#include <linux/usb.h>
#include <linux/vmalloc.h>
#include <linux/wait.h>

#define ISO_URBS	3
#define ISO_PACKETS	8
#define ISO_MAX_BYTES	(4 << 20)

static unsigned int bytes = 16384;
module_param(bytes, uint, 0444);
MODULE_PARM_DESC(bytes, "how many bytes to collect (at most 4 MiB)");

struct usbiso {
	struct usb_device *udev;
	struct urb *urbs[ISO_URBS];
	spinlock_t lock;		/* the fields below */
	u8 *data;
	unsigned int len;
	unsigned int packets, empty, errors;
	bool done;
};

static struct usbiso *usbiso_dev;	/* one device at a time */
static DEFINE_MUTEX(usbiso_mutex);	/* guards usbiso_dev */
static DECLARE_WAIT_QUEUE_HEAD(usbiso_wait);
static bool usbiso_finished;		/* usbiso_dev's buffer is full */

/* Appends one URB's packets; true when the buffer is full. */
static bool usbiso_collect(struct usbiso *d, struct urb *urb)
{
	int i;

	for (i = 0; i < urb->number_of_packets && !d->done; i++) {
		struct usb_iso_packet_descriptor *p = &urb->iso_frame_desc[i];
		unsigned int n = min(p->actual_length, bytes - d->len);

		if (p->status) {
			d->errors++;
			continue;
		}
		if (!p->actual_length) {
			d->empty++;
			continue;
		}
		memcpy(d->data + d->len, urb->transfer_buffer + p->offset, n);
		d->len += n;
		d->packets++;
		d->done = d->len == bytes;
	}
	return d->done;
}

static void usbiso_complete(struct urb *urb)
{
	struct usbiso *d = urb->context;
	unsigned long flags;
	bool done;
	int err;

	switch (urb->status) {
	case -ENOENT:
	case -ECONNRESET:
	case -ESHUTDOWN:
	case -ENODEV:
		return;		/* killed or unplugged */
	}
	spin_lock_irqsave(&d->lock, flags);
	done = d->done || usbiso_collect(d, urb);
	spin_unlock_irqrestore(&d->lock, flags);
	if (done) {
		WRITE_ONCE(usbiso_finished, true);
		wake_up_all(&usbiso_wait);
		return;
	}
	err = usb_submit_urb(urb, GFP_ATOMIC);
	if (err)
		dev_err(&d->udev->dev, "resubmitting an iso URB: %d\n", err);
}

static struct urb *usbiso_alloc_urb(struct usbiso *d,
				    const struct usb_endpoint_descriptor *ep)
{
	unsigned int psize = usb_endpoint_maxp(ep) * usb_endpoint_maxp_mult(ep);
	struct urb *urb = usb_alloc_urb(ISO_PACKETS, GFP_KERNEL);
	int i;

	if (!urb)
		return NULL;
	urb->transfer_buffer = kzalloc(psize * ISO_PACKETS, GFP_KERNEL);
	if (!urb->transfer_buffer) {
		usb_free_urb(urb);
		return NULL;
	}
	urb->dev = d->udev;
	urb->pipe = usb_rcvisocpipe(d->udev, usb_endpoint_num(ep));
	urb->transfer_flags = URB_ISO_ASAP;
	urb->transfer_buffer_length = psize * ISO_PACKETS;
	urb->number_of_packets = ISO_PACKETS;
	/* in (micro)frames, for full and high speed alike */
	urb->interval = 1 << (clamp_val(ep->bInterval, 1, 16) - 1);
	urb->complete = usbiso_complete;
	urb->context = d;
	for (i = 0; i < ISO_PACKETS; i++) {
		urb->iso_frame_desc[i].offset = i * psize;
		urb->iso_frame_desc[i].length = psize;
	}
	return urb;
}

static void usbiso_free(struct usbiso *d)
{
	int i;

	for (i = 0; i < ISO_URBS; i++) {
		if (d->urbs[i]) {
			usb_kill_urb(d->urbs[i]);
			kfree(d->urbs[i]->transfer_buffer);
			usb_free_urb(d->urbs[i]);
		}
	}
	usb_put_dev(d->udev);
	vfree(d->data);
	kfree(d);
}

static int usbiso_probe(struct usb_interface *intf,
			const struct usb_device_id *id)
{
	struct usb_device *udev = interface_to_usbdev(intf);
	const struct usb_endpoint_descriptor *ep = NULL;
	struct usb_host_interface *alt;
	struct usbiso *d;
	int i, err;

	err = usb_set_interface(udev, intf->altsetting[0].desc.bInterfaceNumber, 1);
	if (err) {
		dev_err(&intf->dev, "selecting alternate setting 1: %d\n", err);
		return err;
	}
	alt = intf->cur_altsetting;
	for (i = 0; i < alt->desc.bNumEndpoints && !ep; i++) {
		if (usb_endpoint_is_isoc_in(&alt->endpoint[i].desc))
			ep = &alt->endpoint[i].desc;
	}
	if (!ep) {
		dev_err(&intf->dev, "no isochronous IN endpoint in alt 1\n");
		return -ENODEV;
	}

	d = kzalloc(sizeof(*d), GFP_KERNEL);
	if (!d)
		return -ENOMEM;
	spin_lock_init(&d->lock);
	d->udev = usb_get_dev(udev);
	d->data = vzalloc(bytes);
	err = -ENOMEM;
	if (!d->data)
		goto fail;
	for (i = 0; i < ISO_URBS; i++) {
		d->urbs[i] = usbiso_alloc_urb(d, ep);
		if (!d->urbs[i])
			goto fail;
	}

	mutex_lock(&usbiso_mutex);
	err = usbiso_dev ? -EBUSY : 0;
	if (!err) {
		usbiso_dev = d;
		WRITE_ONCE(usbiso_finished, false);
	}
	mutex_unlock(&usbiso_mutex);
	if (err)
		goto fail;
	usb_set_intfdata(intf, d);

	for (i = 0; i < ISO_URBS; i++) {
		err = usb_submit_urb(d->urbs[i], GFP_KERNEL);
		if (err) {
			dev_err(&intf->dev, "submitting an iso URB: %d\n", err);
			break;
		}
	}
	return 0;	/* a failed submission shows as a timeout */

fail:
	usbiso_free(d);
	return err;
}

static void usbiso_disconnect(struct usb_interface *intf)
{
	struct usbiso *d = usb_get_intfdata(intf);

	mutex_lock(&usbiso_mutex);
	usbiso_dev = NULL;
	mutex_unlock(&usbiso_mutex);
	usbiso_free(d);
}

static const struct usb_device_id usbiso_ids[] = {
	{ USB_DEVICE_AND_INTERFACE_INFO(0x1209, 0x0004, 0xff, 0x00, 0x00) },
	{ }
};
MODULE_DEVICE_TABLE(usb, usbiso_ids);

static struct usb_driver usbiso_driver = {
	.name = "rewind_usbiso",
	.id_table = usbiso_ids,
	.probe = usbiso_probe,
	.disconnect = usbiso_disconnect,
};

static ssize_t usbiso_status_read(struct file *file, char __user *buf,
				  size_t count, loff_t *ppos)
{
	char text[96];
	int n = 0;

	if (*ppos == 0)
		wait_event_interruptible_timeout(usbiso_wait,
						 READ_ONCE(usbiso_finished),
						 60 * HZ);
	mutex_lock(&usbiso_mutex);
	if (!usbiso_dev) {
		n = scnprintf(text, sizeof(text), "timeout no device\n");
	} else {
		struct usbiso *d = usbiso_dev;

		spin_lock_irq(&d->lock);
		n = scnprintf(text, sizeof(text),
			      "%s packets=%u empty=%u errors=%u bytes=%u\n",
			      d->done ? "done" : "timeout", d->packets,
			      d->empty, d->errors, d->len);
		spin_unlock_irq(&d->lock);
	}
	mutex_unlock(&usbiso_mutex);
	return simple_read_from_buffer(buf, count, ppos, text, n);
}

static ssize_t usbiso_data_read(struct file *file, char __user *buf,
				size_t count, loff_t *ppos)
{
	unsigned int len;
	ssize_t n = 0;

	mutex_lock(&usbiso_mutex);
	if (usbiso_dev) {
		/* append-only: the bytes before len do not change */
		spin_lock_irq(&usbiso_dev->lock);
		len = usbiso_dev->len;
		spin_unlock_irq(&usbiso_dev->lock);
		n = simple_read_from_buffer(buf, count, ppos, usbiso_dev->data,
					    len);
	}
	mutex_unlock(&usbiso_mutex);
	return n;
}

static const struct proc_ops usbiso_status_ops = {
	.proc_read = usbiso_status_read,
	.proc_lseek = default_llseek,
};

static const struct proc_ops usbiso_data_ops = {
	.proc_read = usbiso_data_read,
	.proc_lseek = default_llseek,
};

static int __init usbiso_init(void)
{
	int err;

	if (bytes == 0 || bytes > ISO_MAX_BYTES)
		return -EINVAL;
	if (!proc_create("rewind_usbiso_status", 0400, NULL, &usbiso_status_ops) ||
	    !proc_create("rewind_usbiso_data", 0400, NULL, &usbiso_data_ops)) {
		err = -ENOMEM;
		goto fail;
	}
	err = usb_register(&usbiso_driver);
	if (!err)
		return 0;
fail:
	remove_proc_entry("rewind_usbiso_data", NULL);
	remove_proc_entry("rewind_usbiso_status", NULL);
	return err;
}

static void __exit usbiso_exit(void)
{
	usb_deregister(&usbiso_driver);
	remove_proc_entry("rewind_usbiso_data", NULL);
	remove_proc_entry("rewind_usbiso_status", NULL);
}

module_init(usbiso_init);
module_exit(usbiso_exit);
MODULE_DESCRIPTION("QEMU Rewind: read an isochronous IN stream of a USB test device");
MODULE_LICENSE("GPL");
