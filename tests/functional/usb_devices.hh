// The software USB devices of tests/usbdev (rewind-usbdev) as the
// functional tests use them: drive images, the usb-host command lines of
// the usb-storage, usb-hid, usb-iso and usb-demo scenarios, and the
// rewind-usbdev wrapper QEMU runs under.
#pragma once

#include "scenarios.hh"

#include <cstddef>
#include <string>
#include <vector>

namespace qemu_rewind::test {

// A USB drive's image: an ext2 file system holding /rewind-data.
struct UsbDrive {
    std::string content;   // of /rewind-data
    std::string image;
    std::string serial;
};

// dir/SERIAL.img with `bytes` random bytes in /rewind-data (mke2fs -d).
UsbDrive make_usb_drive(const std::string &dir, const std::string &serial,
                        std::size_t bytes = 256 * 1024);

// usb-storage scenario devices: an xHCI controller and one usb-host per
// drive, found by bus and address (drive i: bus 1, address 2+i).
Scenario usb_storage_scenario(std::size_t drives, const std::string &append = "");

// The usb-hid and usb-iso scenarios: an xHCI controller and the one
// device rewind-usbdev serves (bus 1, address 2).
Scenario usb_device_scenario(const std::string &name, const std::string &append = "");

// rewind-usbdev serving the drives, logging every ioctl to `log`.
std::vector<std::string> usbdev_wrapper(const std::vector<UsbDrive> &drives,
                                        const std::string &log);
// rewind-usbdev serving one device ("keyboard:text=...", "iso:seed=...").
std::vector<std::string> single_device_wrapper(const std::string &device,
                                               const std::string &log);

// The usb-demo scenario's QEMU command line as a user types it (no
// record/replay options: `rewind record` adds them), serial output to
// serial_path; the demo device is bus 1, address 2.
std::vector<std::string> usb_demo_command(const std::string &serial_path);

// Text for the keyboard model: random letters, digits and a few
// characters that need Shift.
std::string random_keyboard_text(std::size_t n);

}  // namespace qemu_rewind::test
