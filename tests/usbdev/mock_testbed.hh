// The umockdev testbed: a fake /sys and /dev in which each served device
// appears as a USB device libusb enumerates (sysfs attributes, udev
// properties, a `descriptors` blob and the /dev/bus/usb node), and from
// which it can be unplugged (remove uevent).
#pragma once

#include "usb_device_model.hh"

#include <string>

typedef struct _UMockdevTestbed UMockdevTestbed;

namespace qemu_rewind::usbdev {

struct UsbAddress {
    unsigned bus = 1;
    unsigned address = 2;
    unsigned port = 1;       // on the root hub: sysfs name "BUS-PORT"
};

class MockTestbed {
public:
    // Creates the testbed and points UMOCKDEV_DIR (in our environment, so
    // children inherit it) at it.
    MockTestbed();
    ~MockTestbed();
    MockTestbed(const MockTestbed &) = delete;
    MockTestbed &operator=(const MockTestbed &) = delete;

    UMockdevTestbed *get() { return testbed_; }
    std::string root_dir() const;

    // Adds the device; returns its sysfs path (/sys/devices/...).
    std::string add_usb_device(const DeviceDescription &device, const UsbAddress &where);
    // The testbed's file behind a /dev path.
    std::string node_file(const std::string &devnode) const;
    void set_attribute(const std::string &syspath, const std::string &name,
                       const std::string &value);
    // Sends a "remove" uevent and deletes the device from sysfs and /dev.
    void remove_device(const std::string &syspath);

private:
    UMockdevTestbed *testbed_ = nullptr;
};

}  // namespace qemu_rewind::usbdev
