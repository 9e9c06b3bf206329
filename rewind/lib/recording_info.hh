// What a recording's log holds, gathered in one pass for `rewind info`:
// counts and bytes per event code, the devices whose input was logged, and
// the clock reads that tell how long the recording ran.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "replay_log.hh"

namespace qemu_rewind {

// A chardev backend (serial port, console, ...), by QEMU's registration index.
struct ChardevUse {
    std::uint64_t reads = 0;         // ASYNC_EVENT_CHAR_READ events
    std::uint64_t read_bytes = 0;    // bytes fed to the guest
    std::uint64_t output_bytes = 0;  // EVENT_CHAR_OUTPUT: bytes the guest wrote
};

// A filter-replay net filter, by registration index: the packets its netdev
// delivered to the guest (the guest's own packets are not logged).
struct NetFilterUse {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

// A usb-host device, by creation index.
struct UsbDeviceUse {
    bool opened = false;  // an OPEN record was seen; the fields below are from it
    std::uint8_t bus = 0;
    std::uint8_t address = 0;
    std::uint8_t speed = 0;  // enum libusb_speed
    std::uint16_t vendor = 0;
    std::uint16_t product = 0;
    std::uint64_t opens = 0;
    std::uint64_t closes = 0;
    std::uint64_t submissions = 0;
    std::uint64_t completions = 0;
    std::uint64_t in_bytes = 0;  // IN data of completions
    std::uint64_t log_bytes = 0;  // bytes of all its records
};

struct RecordingInfo {
    LogHeader header;          // header.format: 1 raw, 2 zstd chunks
    std::uint64_t bytes = 0;       // the event stream, uncompressed, header included
    std::uint64_t file_bytes = 0;  // the file (format 2: compressed chunks and index)
    std::uint64_t chunks = 0;      // format 2
    std::uint64_t events = 0;
    std::uint64_t instructions = 0;
    bool has_end_event = false;
    std::optional<Truncation> truncation;
    std::array<std::uint64_t, 256> code_counts{};
    std::array<std::uint64_t, 256> code_bytes{};  // code byte + payload, per code

    // Clocks (EVENT_CLOCK). CLOCK_HOST is the host's wall clock (ns since the
    // epoch); CLOCK_VIRTUAL_RT the time the VM has been running (ns), which
    // -icount shift=auto steers the guest's clock toward.
    std::optional<std::int64_t> first_host_ns;
    std::optional<std::int64_t> last_host_ns;
    std::optional<std::int64_t> last_virtual_rt_ns;

    std::map<std::uint8_t, ChardevUse> chardevs;
    std::uint64_t char_read_all_bytes = 0;  // EVENT_CHAR_READ_ALL: chardev not logged
    std::map<std::uint8_t, NetFilterUse> net_filters;
    std::map<std::uint8_t, UsbDeviceUse> usb_devices;
    std::uint64_t block_requests = 0;  // ASYNC_EVENT_BLOCK (blkreplay completions)
    std::uint64_t input_events = 0;    // ASYNC_EVENT_INPUT
    std::uint64_t audio_out_events = 0;
    std::uint64_t audio_in_events = 0;
    std::uint64_t audio_in_samples = 0;
    std::uint64_t random_bytes = 0;
    std::uint64_t digests = 0;  // EVENT_DIGEST: points where a replay checks the machine

    [[nodiscard]] std::uint64_t kind_count(EventKind kind) const;
    [[nodiscard]] std::uint64_t kind_bytes(EventKind kind) const;
};

// Reads the remaining events of `reader`.
RecordingInfo gather_recording_info(ReplayLogReader& reader);

}  // namespace qemu_rewind
