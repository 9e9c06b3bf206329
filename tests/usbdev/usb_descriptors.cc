#include "usb_descriptors.hh"

#include <algorithm>
#include <set>
#include <stdexcept>

namespace qemu_rewind::usbdev {

namespace {

void put16(std::vector<std::uint8_t> &out, std::uint16_t v)
{
    out.push_back(static_cast<std::uint8_t>(v & 0xff));
    out.push_back(static_cast<std::uint8_t>(v >> 8));
}

}  // namespace

StringTable::StringTable(const DeviceDescription &device)
{
    strings_.push_back("");
    auto add = [this](const std::string &s) {
        if (!s.empty() && index_of(s) == 0) {
            strings_.push_back(s);
        }
    };
    add(device.manufacturer);
    add(device.product);
    add(device.serial);
    for (const auto &c : device.configurations) {
        for (const auto &i : c.interfaces) {
            add(i.name);
        }
    }
}

std::uint8_t StringTable::index_of(const std::string &s) const
{
    if (s.empty()) {
        return 0;
    }
    auto it = std::find(strings_.begin() + 1, strings_.end(), s);
    return it == strings_.end() ? 0 : static_cast<std::uint8_t>(it - strings_.begin());
}

std::vector<std::uint8_t> StringTable::descriptor(std::uint8_t index) const
{
    if (index == 0) {
        return {4, descriptor_type::string, 0x09, 0x04};   // en-US
    }
    if (index >= strings_.size()) {
        return {};
    }
    // Our strings are ASCII; UTF-16LE is then a zero high byte each.
    const std::string &s = strings_[index];
    std::size_t n = std::min<std::size_t>(s.size(), 126);
    std::vector<std::uint8_t> out = {static_cast<std::uint8_t>(2 + 2 * n),
                                     descriptor_type::string};
    for (std::size_t i = 0; i < n; ++i) {
        put16(out, static_cast<unsigned char>(s[i]));
    }
    return out;
}

std::vector<std::uint8_t> device_descriptor(const DeviceDescription &d)
{
    StringTable strings(d);
    std::vector<std::uint8_t> out = {18, descriptor_type::device};
    put16(out, d.usb_version);
    out.insert(out.end(), {d.device_class, d.device_subclass, d.device_protocol,
                           d.max_packet_size0});
    put16(out, d.vendor_id);
    put16(out, d.product_id);
    put16(out, d.device_version);
    out.push_back(strings.index_of(d.manufacturer));
    out.push_back(strings.index_of(d.product));
    out.push_back(strings.index_of(d.serial));
    out.push_back(static_cast<std::uint8_t>(d.configurations.size()));
    return out;
}

std::vector<std::uint8_t> device_qualifier_descriptor(const DeviceDescription &d)
{
    std::vector<std::uint8_t> out = {10, descriptor_type::device_qualifier};
    put16(out, d.usb_version);
    out.insert(out.end(), {d.device_class, d.device_subclass, d.device_protocol,
                           d.max_packet_size0,
                           static_cast<std::uint8_t>(d.configurations.size()), 0});
    return out;
}

std::vector<std::uint8_t> configuration_descriptor(const DeviceDescription &d,
                                                   std::size_t config_index)
{
    if (config_index >= d.configurations.size()) {
        throw std::out_of_range("no configuration " + std::to_string(config_index));
    }
    StringTable strings(d);
    const auto &c = d.configurations[config_index];
    std::set<std::uint8_t> numbers;
    for (const auto &i : c.interfaces) {
        numbers.insert(i.number);
    }
    std::vector<std::uint8_t> out = {9, descriptor_type::configuration, 0, 0,
                                     static_cast<std::uint8_t>(numbers.size()),
                                     c.value, 0, c.attributes, c.max_power};
    for (const auto &i : c.interfaces) {
        out.insert(out.end(), {9, descriptor_type::interface, i.number, i.alternate,
                               static_cast<std::uint8_t>(i.endpoints.size()),
                               i.interface_class, i.interface_subclass,
                               i.interface_protocol, strings.index_of(i.name)});
        out.insert(out.end(), i.extra.begin(), i.extra.end());
        for (const auto &e : i.endpoints) {
            out.insert(out.end(), {7, descriptor_type::endpoint, e.address, e.attributes});
            put16(out, e.max_packet_size);
            out.push_back(e.interval);
            out.insert(out.end(), e.extra.begin(), e.extra.end());
        }
    }
    out[2] = static_cast<std::uint8_t>(out.size() & 0xff);
    out[3] = static_cast<std::uint8_t>(out.size() >> 8);
    return out;
}

std::vector<std::uint8_t> sysfs_descriptors(const DeviceDescription &d)
{
    auto out = device_descriptor(d);
    for (std::size_t i = 0; i < d.configurations.size(); ++i) {
        auto c = configuration_descriptor(d, i);
        out.insert(out.end(), c.begin(), c.end());
    }
    return out;
}

const EndpointDescription *find_endpoint(const DeviceDescription &d,
                                         std::uint8_t configuration,
                                         std::uint8_t address)
{
    for (const auto &c : d.configurations) {
        if (c.value != configuration) {
            continue;
        }
        for (const auto &i : c.interfaces) {
            for (const auto &e : i.endpoints) {
                if (e.address == address) {
                    return &e;
                }
            }
        }
    }
    return nullptr;
}

}  // namespace qemu_rewind::usbdev
