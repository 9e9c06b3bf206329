#include "usb_device_model.hh"

#include "usb_descriptors.hh"

#include <algorithm>
#include <cstring>

namespace qemu_rewind::usbdev {

Urb::Urb(TransferType type, std::uint8_t endpoint, std::vector<std::uint8_t> buffer,
         std::vector<IsoPacket> iso_packets)
    : type_(type), endpoint_(endpoint), buffer_(std::move(buffer)),
      iso_packets_(std::move(iso_packets))
{
}

void Urb::complete(int status, std::size_t actual_length)
{
    if (done_) {
        return;
    }
    done_ = true;
    status_ = status;
    if (type_ == TransferType::Iso) {
        actual_length_ = 0;
        error_count_ = 0;
        for (const auto &p : iso_packets_) {
            actual_length_ += p.actual_length;
            error_count_ += p.status != urb_status::ok;
        }
    } else {
        actual_length_ = std::min(actual_length, buffer_.size());
    }
    if (on_complete_) {
        // The handler may drop the last other reference to us.
        auto handler = std::move(on_complete_);
        handler(*this);
    }
}

namespace {

namespace request {
constexpr std::uint8_t get_status = 0;
constexpr std::uint8_t clear_feature = 1;
constexpr std::uint8_t set_feature = 3;
constexpr std::uint8_t set_address = 5;
constexpr std::uint8_t get_descriptor = 6;
constexpr std::uint8_t get_configuration = 8;
constexpr std::uint8_t set_configuration = 9;
constexpr std::uint8_t get_interface = 10;
constexpr std::uint8_t set_interface = 11;
}  // namespace request

constexpr std::uint16_t endpoint_halt = 0;

ControlResult reply(std::span<std::uint8_t> data, const std::vector<std::uint8_t> &bytes)
{
    std::size_t n = std::min(data.size(), bytes.size());
    std::memcpy(data.data(), bytes.data(), n);
    return ControlResult::ok(n);
}

}  // namespace

const ConfigurationDescription *find_configuration(const DeviceDescription &d,
                                                   std::uint8_t value)
{
    for (const auto &c : d.configurations) {
        if (c.value == value) {
            return &c;
        }
    }
    return nullptr;
}

ControlResult UsbDeviceModel::control(const SetupPacket &setup, std::span<std::uint8_t> data)
{
    if (setup.type() != 0) {
        return ControlResult::stall();
    }
    const DeviceDescription &d = description();
    switch (setup.request) {
    case request::get_status:
        if (setup.recipient() == 0 && !d.configurations.empty()) {
            // Bit 0: self-powered, from the configuration's attributes.
            bool self_powered = d.configurations.front().attributes & 0x40;
            return reply(data, {static_cast<std::uint8_t>(self_powered), 0});
        }
        return reply(data, {0, 0});
    case request::clear_feature:
        if (setup.recipient() == 2 && setup.value == endpoint_halt) {
            clear_halt(static_cast<std::uint8_t>(setup.index));
        }
        return ControlResult::ok();
    case request::set_feature:
    case request::set_address:
        return ControlResult::ok();
    case request::get_descriptor: {
        std::uint8_t type = setup.value >> 8;
        std::uint8_t index = setup.value & 0xff;
        if (setup.recipient() != 0) {
            return ControlResult::stall();
        }
        switch (type) {
        case descriptor_type::device:
            return reply(data, device_descriptor(d));
        case descriptor_type::configuration:
            if (index >= d.configurations.size()) {
                return ControlResult::stall();
            }
            return reply(data, configuration_descriptor(d, index));
        case descriptor_type::string: {
            auto s = StringTable(d).descriptor(index);
            return s.empty() ? ControlResult::stall() : reply(data, s);
        }
        case descriptor_type::device_qualifier:
            if (d.speed != Speed::High) {
                return ControlResult::stall();
            }
            return reply(data, device_qualifier_descriptor(d));
        default:
            return ControlResult::stall();
        }
    }
    case request::get_configuration:
        return reply(data, {configuration_});
    case request::set_configuration: {
        auto value = static_cast<std::uint8_t>(setup.value);
        if (value != 0 && !find_configuration(d, value)) {
            return ControlResult::stall();
        }
        set_configuration(value);
        return ControlResult::ok();
    }
    case request::get_interface:
        return reply(data, {alternate(static_cast<std::uint8_t>(setup.index))});
    case request::set_interface: {
        const auto *c = find_configuration(d, configuration_);
        if (!c) {
            return ControlResult::stall();
        }
        for (const auto &i : c->interfaces) {
            if (i.number == setup.index && i.alternate == setup.value) {
                set_interface(i.number, i.alternate);
                return ControlResult::ok();
            }
        }
        return ControlResult::stall();
    }
    default:
        return ControlResult::stall();
    }
}

void UsbDeviceModel::submit(const UrbPtr &urb)
{
    urb->complete(urb_status::stall);
}

void UsbDeviceModel::set_configuration(std::uint8_t value)
{
    configuration_ = value;
    alternates_.clear();
}

void UsbDeviceModel::set_interface(std::uint8_t interface, std::uint8_t alternate)
{
    alternates_[interface] = alternate;
}

void UsbDeviceModel::reset()
{
    // A reset keeps the configuration as usbfs re-applies it.
    alternates_.clear();
}

std::uint8_t UsbDeviceModel::alternate(std::uint8_t interface) const
{
    auto it = alternates_.find(interface);
    return it == alternates_.end() ? 0 : it->second;
}

}  // namespace qemu_rewind::usbdev
