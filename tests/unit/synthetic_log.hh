// Chainable shorthands over log_writer.hh's LogWriter for the inspection
// tests: only the events those tests need, with the details they do not
// care about (flags, return codes, descriptors) filled in.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "log_writer.hh"

namespace qemu_rewind::testing {

class SyntheticLog {
public:
    using Bytes = std::vector<std::uint8_t>;

    SyntheticLog& instructions(std::uint32_t n) {
        log_.instructions(n);
        return *this;
    }
    SyntheticLog& clock(ClockKind kind, std::int64_t value) {
        log_.save_clock(kind, value);
        return *this;
    }
    SyntheticLog& char_read(std::uint8_t chardev, std::span<const std::uint8_t> data) {
        log_.char_read(chardev, data);
        return *this;
    }
    SyntheticLog& char_output(std::uint8_t chardev, std::span<const std::uint8_t> data) {
        log_.char_output(chardev, data);
        return *this;
    }
    SyntheticLog& net(std::uint8_t filter, std::span<const std::uint8_t> packet) {
        log_.net_packet(filter, 0, packet);
        return *this;
    }
    SyntheticLog& block(std::uint64_t id) {
        log_.async_with_id(AsyncKind::Block, id);
        return *this;
    }
    // A high-speed device on port 1 whose descriptor says vendor:product.
    SyntheticLog& usb_open(std::uint8_t device, std::uint8_t bus, std::uint8_t address, std::uint16_t vendor,
                           std::uint16_t product) {
        Bytes descriptor(18, 0);
        descriptor[0] = 18;
        descriptor[1] = 1;
        descriptor[8] = static_cast<std::uint8_t>(vendor);
        descriptor[9] = static_cast<std::uint8_t>(vendor >> 8);
        descriptor[10] = static_cast<std::uint8_t>(product);
        descriptor[11] = static_cast<std::uint8_t>(product >> 8);
        log_.usb_open(device, bus, address, 3, Bytes{1}, descriptor, {});
        return *this;
    }
    // A submission that succeeded (rc 0).
    SyntheticLog& usb_submit(std::uint8_t device, std::uint8_t endpoint, std::uint8_t type, std::uint32_t length,
                             std::uint32_t seq) {
        log_.usb_submit(device, endpoint, type, length, 0, seq);
        return *this;
    }
    SyntheticLog& usb_complete(std::uint8_t device, std::uint8_t endpoint, std::uint32_t seq, std::int32_t status,
                               std::uint32_t actual, std::span<const std::uint8_t> data,
                               std::span<const UsbIsoPacket> packets = {}) {
        log_.usb_complete(device, endpoint, seq, status, actual, data, packets);
        return *this;
    }
    SyntheticLog& end() {
        log_.end();
        return *this;
    }

    [[nodiscard]] const Bytes& bytes() const { return log_.bytes(); }

private:
    LogWriter log_;
};

}  // namespace qemu_rewind::testing
