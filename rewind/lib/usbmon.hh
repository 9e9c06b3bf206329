// usbmon records (Linux's binary USB monitor format, Documentation/usb/
// usbmon.rst; pcap LINKTYPE_USB_LINUX_MMAPPED) made from the usb-host
// passthrough records of a replay log, so that Wireshark can show a
// recording's USB traffic.
//
// Per transfer, one 'S' (submission) record from EVENT_USB SUBMIT and one
// 'C' (completion) record from EVENT_USB_ASYNC COMPLETE. What the log does
// not hold, the records cannot show:
//  - OUT data and control setup packets: the guest produced them and a
//    replay computes them again, so QEMU does not log them. 'S' records of
//    OUT transfers have no data (flag_data '>'). A control transfer gets no
//    'S' record at all: without its setup packet Wireshark would decode the
//    response as one to GET_STATUS. Its 'C' record is IN (endpoint 0x80)
//    when it returned data, else OUT.
//  - isochronous IN data is logged packed (each packet's actual bytes one
//    after the other); the iso descriptors' offsets point into that packing.
//  - interval and start frame (not logged) are 0; an isochronous 'S' record
//    has no descriptors (the packet layout is not logged, only the results).
// Bus number and device address are the host's, from the device's OPEN record.
// A record longer than the pcap snap length (256 KiB) is cut to it, as a
// capture tool would.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "replay_log.hh"

namespace qemu_rewind {

inline constexpr std::size_t kUsbmonHeaderSize = 64;
inline constexpr std::size_t kUsbmonIsoDescriptorSize = 16;

// One usbmon record: the 64-byte header, iso descriptors, captured data,
// little-endian; `length` is the transfer length the header states.
struct UsbmonRecord {
    std::vector<std::uint8_t> bytes;
    std::uint32_t original_length = 0;  // header + descriptors + full data
};

class UsbmonConverter {
public:
    // Second pass: the records for one event (none for most events).
    // `timestamp_ns` goes into the header's ts_sec/ts_usec.
    std::vector<UsbmonRecord> convert(const ReplayEvent& event, std::uint64_t timestamp_ns);

    // Transfers whose completion had no matching submission (e.g. the log
    // starts after them); their type is guessed from the endpoint.
    [[nodiscard]] std::uint64_t unmatched_completions() const noexcept { return unmatched_; }

private:
    struct DeviceAddress {
        std::uint8_t bus = 0;
        std::uint8_t address = 0;
    };
    struct Pending {
        std::uint8_t transfer_type = 0;  // libusb's
    };
    using TransferKey = std::tuple<std::uint8_t, std::uint8_t, std::uint32_t>;  // device, endpoint, seq

    std::map<std::uint8_t, DeviceAddress> devices_;
    std::map<TransferKey, Pending> pending_;
    std::uint64_t unmatched_ = 0;
};

// libusb_transfer_status -> the URB status usbmon reports (0 or -errno).
std::int32_t usbmon_status(std::int32_t libusb_status);

}  // namespace qemu_rewind
