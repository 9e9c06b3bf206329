// Small builder of QEMU replay logs (format 1, big-endian fields as
// replay_put_* writes them) for the inspection tests: only the events
// those tests need. tests/unit/test_replay_log.cc has the complete one.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "replay_log.hh"

namespace qemu_rewind::testing {

class SyntheticLog {
public:
    using Bytes = std::vector<std::uint8_t>;

    SyntheticLog() {
        u32(kReplayVersion);
        u64(0);
    }

    SyntheticLog& instructions(std::uint32_t n) {
        u8(code::kInstruction);
        u32(n);
        return *this;
    }
    SyntheticLog& clock(ClockKind kind, std::int64_t value) {
        u8(static_cast<std::uint8_t>(code::kClock + static_cast<int>(kind)));
        u64(static_cast<std::uint64_t>(value));
        return *this;
    }
    SyntheticLog& char_read(std::uint8_t chardev, std::span<const std::uint8_t> data) {
        u8(code::kAsync + static_cast<int>(AsyncKind::CharRead));
        u8(chardev);
        array(data);
        return *this;
    }
    // EVENT_CHAR_OUTPUT: u8 chardev, array of what the guest wrote.
    SyntheticLog& char_output(std::uint8_t chardev, std::span<const std::uint8_t> data) {
        u8(code::kCharOutput);
        u8(chardev);
        array(data);
        return *this;
    }
    SyntheticLog& net(std::uint8_t filter, std::span<const std::uint8_t> packet) {
        u8(code::kAsync + static_cast<int>(AsyncKind::Net));
        u8(filter);
        u32(0);
        array(packet);
        return *this;
    }
    SyntheticLog& block(std::uint64_t id) {
        u8(code::kAsync + static_cast<int>(AsyncKind::Block));
        u64(id);
        return *this;
    }
    SyntheticLog& usb_open(std::uint8_t device, std::uint8_t bus, std::uint8_t address, std::uint16_t vendor,
                           std::uint16_t product) {
        usb_async(UsbAsyncKind::Open, device);
        u8(bus);
        u8(address);
        u8(3);  // high speed
        array(Bytes{1});
        Bytes descriptor(18, 0);
        descriptor[0] = 18;
        descriptor[1] = 1;
        descriptor[8] = static_cast<std::uint8_t>(vendor);
        descriptor[9] = static_cast<std::uint8_t>(vendor >> 8);
        descriptor[10] = static_cast<std::uint8_t>(product);
        descriptor[11] = static_cast<std::uint8_t>(product >> 8);
        array(descriptor);
        u8(0);  // no configuration descriptors
        return *this;
    }
    // EVENT_USB SUBMIT: arg = endpoint | libusb transfer type << 8.
    SyntheticLog& usb_submit(std::uint8_t device, std::uint8_t endpoint, std::uint8_t type, std::uint32_t length,
                             std::uint32_t seq) {
        u8(code::kUsb);
        u8(static_cast<std::uint8_t>(UsbCall::Submit));
        u8(device);
        u32(endpoint | std::uint32_t{type} << 8);
        u32(length);
        u32(0);  // rc
        u32(seq);
        return *this;
    }
    SyntheticLog& usb_complete(std::uint8_t device, std::uint8_t endpoint, std::uint32_t seq, std::int32_t status,
                               std::uint32_t actual, std::span<const std::uint8_t> data,
                               std::span<const UsbIsoPacket> packets = {}) {
        usb_async(UsbAsyncKind::Complete, device);
        u8(endpoint);
        u32(seq);
        u32(static_cast<std::uint32_t>(status));
        u32(actual);
        array(data);
        u32(static_cast<std::uint32_t>(packets.size()));
        for (const auto& p : packets) {
            u32(static_cast<std::uint32_t>(p.status));
            u32(p.actual_length);
        }
        return *this;
    }
    SyntheticLog& end() {
        u8(code::kEnd);
        return *this;
    }

    [[nodiscard]] const Bytes& bytes() const { return bytes_; }

private:
    void usb_async(UsbAsyncKind kind, std::uint8_t device) {
        u8(code::kUsbAsync);
        u8(static_cast<std::uint8_t>(kind));
        u8(device);
    }
    void u8(std::uint8_t v) { bytes_.push_back(v); }
    void u32(std::uint32_t v) {
        for (int s = 24; s >= 0; s -= 8) u8(static_cast<std::uint8_t>(v >> s));
    }
    void u64(std::uint64_t v) {
        u32(static_cast<std::uint32_t>(v >> 32));
        u32(static_cast<std::uint32_t>(v));
    }
    void array(std::span<const std::uint8_t> data) {
        u32(static_cast<std::uint32_t>(data.size()));
        bytes_.insert(bytes_.end(), data.begin(), data.end());
    }

    Bytes bytes_;
};

}  // namespace qemu_rewind::testing
