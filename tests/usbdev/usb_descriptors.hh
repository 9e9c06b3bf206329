// Descriptor bytes from a DeviceDescription: what the device answers to
// GET_DESCRIPTOR and what sysfs' `descriptors` file holds.
#pragma once

#include "usb_device_model.hh"

#include <cstdint>
#include <string>
#include <vector>

namespace qemu_rewind::usbdev {

namespace descriptor_type {
constexpr std::uint8_t device = 1;
constexpr std::uint8_t configuration = 2;
constexpr std::uint8_t string = 3;
constexpr std::uint8_t interface = 4;
constexpr std::uint8_t endpoint = 5;
constexpr std::uint8_t device_qualifier = 6;
}  // namespace descriptor_type

// String descriptor indices: 1 manufacturer, 2 product, 3 serial, then the
// interface names in the order they appear (only non-empty strings get one).
class StringTable {
public:
    explicit StringTable(const DeviceDescription &device);
    std::uint8_t index_of(const std::string &s) const;   // 0 for ""
    // Index 0 is the language list (US English); nullptr-like empty for an
    // unknown index.
    std::vector<std::uint8_t> descriptor(std::uint8_t index) const;

private:
    std::vector<std::string> strings_;   // [0] unused
};

std::vector<std::uint8_t> device_descriptor(const DeviceDescription &device);
std::vector<std::uint8_t> device_qualifier_descriptor(const DeviceDescription &device);
// The full configuration (with interfaces, endpoints and class
// descriptors); wTotalLength is computed.
std::vector<std::uint8_t> configuration_descriptor(const DeviceDescription &device,
                                                   std::size_t config_index);
// Device descriptor followed by every full configuration descriptor: the
// layout of sysfs' `descriptors` file, which libusb parses.
std::vector<std::uint8_t> sysfs_descriptors(const DeviceDescription &device);

// The endpoint's description in the device's current configuration, or
// nullptr.
const EndpointDescription *find_endpoint(const DeviceDescription &device,
                                         std::uint8_t configuration,
                                         std::uint8_t address);

}  // namespace qemu_rewind::usbdev
