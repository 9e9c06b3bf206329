#include "usbmon.hh"

#include <algorithm>
#include <cerrno>

namespace qemu_rewind {

namespace {

// enum libusb_transfer_type
constexpr std::uint8_t kLibusbControl = 0;
constexpr std::uint8_t kLibusbIsochronous = 1;
constexpr std::uint8_t kLibusbBulk = 2;
constexpr std::uint8_t kLibusbInterrupt = 3;

// usbmon's xfer_type numbering
constexpr std::uint8_t kUsbmonIso = 0;
constexpr std::uint8_t kUsbmonInterrupt = 1;
constexpr std::uint8_t kUsbmonControl = 2;
constexpr std::uint8_t kUsbmonBulk = 3;

constexpr std::uint32_t kControlSetupSize = 8;

std::uint8_t usbmon_type(std::uint8_t libusb_type) {
    switch (libusb_type) {
    case kLibusbControl: return kUsbmonControl;
    case kLibusbIsochronous: return kUsbmonIso;
    case kLibusbInterrupt: return kUsbmonInterrupt;
    default: return kUsbmonBulk;  // bulk and bulk streams
    }
}

struct Header {
    std::uint64_t id = 0;
    char type = 'S';
    std::uint8_t xfer_type = 0;
    std::uint8_t epnum = 0;
    std::uint8_t devnum = 0;
    std::uint16_t busnum = 0;
    char flag_setup = '-';
    char flag_data = 0;
    std::uint64_t timestamp_ns = 0;
    std::int32_t status = 0;
    std::uint32_t length = 0;
    std::uint32_t len_cap = 0;
    std::int32_t iso_error_count = 0;
    std::int32_t iso_numdesc = 0;
    std::uint32_t ndesc = 0;
};

void put_le(std::vector<std::uint8_t>& out, std::size_t at, std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i) {
        out[at + i] = static_cast<std::uint8_t>(value >> (8 * i));
    }
}

// The 64-byte struct usbmon_packet of Documentation/usb/usbmon.rst.
std::vector<std::uint8_t> encode(const Header& h) {
    std::vector<std::uint8_t> out(kUsbmonHeaderSize, 0);
    put_le(out, 0, h.id, 8);
    out[8] = static_cast<std::uint8_t>(h.type);
    out[9] = h.xfer_type;
    out[10] = h.epnum;
    out[11] = h.devnum;
    put_le(out, 12, h.busnum, 2);
    out[14] = static_cast<std::uint8_t>(h.flag_setup);
    out[15] = static_cast<std::uint8_t>(h.flag_data);
    put_le(out, 16, h.timestamp_ns / 1'000'000'000, 8);
    put_le(out, 24, h.timestamp_ns % 1'000'000'000 / 1000, 4);
    put_le(out, 28, static_cast<std::uint32_t>(h.status), 4);
    put_le(out, 32, h.length, 4);
    put_le(out, 36, h.len_cap, 4);
    // 40: setup packet (none) or iso error count and descriptor count.
    put_le(out, 40, static_cast<std::uint32_t>(h.iso_error_count), 4);
    put_le(out, 44, static_cast<std::uint32_t>(h.iso_numdesc), 4);
    // 48: interval and 52: start frame are not logged; 56: transfer flags.
    put_le(out, 60, h.ndesc, 4);
    return out;
}

// URB id: unique per transfer, the same in its 'S' and 'C' records; never 0.
std::uint64_t urb_id(std::uint8_t device, std::uint8_t endpoint, std::uint32_t seq) {
    return (std::uint64_t{device} + 1) << 48 | std::uint64_t{endpoint} << 32 | seq;
}

}  // namespace

std::int32_t usbmon_status(std::int32_t libusb_status) {
    switch (libusb_status) {
    case 0: return 0;                // COMPLETED
    case 1: return -EPROTO;          // ERROR
    case 2: return -ETIMEDOUT;       // TIMED_OUT
    case 3: return -ENOENT;          // CANCELLED: unlinked
    case 4: return -EPIPE;           // STALL
    case 5: return -ENODEV;          // NO_DEVICE
    case 6: return -EOVERFLOW;       // OVERFLOW
    default: return -EPROTO;
    }
}

std::vector<UsbmonRecord> UsbmonConverter::convert(const ReplayEvent& event, std::uint64_t timestamp_ns) {
    std::vector<UsbmonRecord> records;
    if (const auto* open = std::get_if<UsbOpenPayload>(&event.payload)) {
        devices_[open->device] = {open->bus, open->address};
        return records;
    }
    const auto address_of = [this](std::uint8_t device) {
        const auto it = devices_.find(device);
        return it == devices_.end() ? DeviceAddress{} : it->second;
    };

    if (const auto* call = std::get_if<UsbCallPayload>(&event.payload)) {
        // A submission libusb refused never reaches the device.
        if (call->call != UsbCall::Submit || call->rc != 0) {
            return records;
        }
        const std::uint8_t endpoint = call->submit_endpoint();
        const std::uint8_t type = call->submit_transfer_type();
        std::uint32_t length = call->arg2;
        if (type == kLibusbControl) {
            length = length >= kControlSetupSize ? length - kControlSetupSize : 0;
        }
        pending_[{call->device, endpoint, call->out}] = {type};

        // A control submission without its setup packet would be misread:
        // Wireshark takes the missing request for GET_STATUS and decodes the
        // response as one. Control transfers show as their completion only.
        if (type == kLibusbControl) {
            return records;
        }
        Header h;
        h.id = urb_id(call->device, endpoint, call->out);
        h.type = 'S';
        h.xfer_type = usbmon_type(type);
        h.epnum = endpoint;
        const auto address = address_of(call->device);
        h.devnum = address.address;
        h.busnum = address.bus;
        h.flag_setup = '-';
        h.flag_data = (endpoint & 0x80) ? '<' : '>';  // IN: no data yet; OUT: not logged
        h.timestamp_ns = timestamp_ns;
        h.status = -EINPROGRESS;
        h.length = length;
        UsbmonRecord record;
        record.bytes = encode(h);
        record.original_length = static_cast<std::uint32_t>(record.bytes.size());
        records.push_back(std::move(record));
        return records;
    }

    if (const auto* complete = std::get_if<UsbCompletePayload>(&event.payload)) {
        Pending pending;
        const auto key = TransferKey{complete->device, complete->endpoint, complete->seq};
        if (const auto it = pending_.find(key); it != pending_.end()) {
            pending = it->second;
            pending_.erase(it);
        } else {
            ++unmatched_;
            pending.transfer_type = complete->endpoint == 0 ? kLibusbControl
                                    : complete->packets.empty() ? kLibusbBulk
                                                                : kLibusbIsochronous;
        }
        Header h;
        h.id = urb_id(complete->device, complete->endpoint, complete->seq);
        h.type = 'C';
        h.xfer_type = usbmon_type(pending.transfer_type);
        h.epnum = complete->endpoint;
        if (pending.transfer_type == kLibusbControl && !complete->data.empty()) {
            h.epnum |= 0x80;
        }
        const auto address = address_of(complete->device);
        h.devnum = address.address;
        h.busnum = address.bus;
        h.flag_setup = '-';
        h.timestamp_ns = timestamp_ns;
        h.status = usbmon_status(complete->status);
        h.length = complete->actual_length;
        h.len_cap = static_cast<std::uint32_t>(complete->data.size());
        h.flag_data = complete->data.empty() ? ((h.epnum & 0x80) ? '<' : '>') : 0;

        std::vector<std::uint8_t> descriptors;
        if (!complete->packets.empty()) {
            h.ndesc = static_cast<std::uint32_t>(complete->packets.size());
            h.iso_numdesc = static_cast<std::int32_t>(h.ndesc);
            descriptors.resize(complete->packets.size() * kUsbmonIsoDescriptorSize);
            std::uint32_t offset = 0;
            for (std::size_t i = 0; i < complete->packets.size(); ++i) {
                const auto& packet = complete->packets[i];
                if (packet.status != 0) {
                    ++h.iso_error_count;
                }
                // IN data holds each packet's actual bytes one after the other.
                const std::uint32_t in_bytes = (h.epnum & 0x80) ? packet.actual_length : 0;
                put_le(descriptors, i * kUsbmonIsoDescriptorSize, static_cast<std::uint32_t>(usbmon_status(packet.status)), 4);
                put_le(descriptors, i * kUsbmonIsoDescriptorSize + 4, offset, 4);
                put_le(descriptors, i * kUsbmonIsoDescriptorSize + 8, packet.actual_length, 4);
                offset += in_bytes;
            }
        }
        UsbmonRecord record;
        record.bytes = encode(h);
        record.bytes.insert(record.bytes.end(), descriptors.begin(), descriptors.end());
        record.bytes.insert(record.bytes.end(), complete->data.begin(), complete->data.end());
        record.original_length = static_cast<std::uint32_t>(record.bytes.size());
        records.push_back(std::move(record));
    }
    return records;
}

}  // namespace qemu_rewind
