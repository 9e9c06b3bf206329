// Writer for the classic pcap capture format that Wireshark, tshark and
// tcpdump read: a 24-byte file header, then per packet a 16-byte record
// header and the captured bytes. Written little-endian with the
// nanosecond-resolution magic (0xa1b23c4d).
#pragma once

#include <cstdint>
#include <ostream>
#include <span>

namespace qemu_rewind {

// Link-layer header types (tcpdump.org/linktypes.html).
inline constexpr std::uint32_t kLinktypeEthernet = 1;
inline constexpr std::uint32_t kLinktypeUsbLinuxMmapped = 220;

class PcapWriter {
public:
    // Packets longer than `snaplen` are cut to it (their record keeps the
    // original length, as a capture tool would).
    PcapWriter(std::ostream& out, std::uint32_t linktype, std::uint32_t snaplen = 262144);

    // `timestamp_ns` counts from the Unix epoch. `original_length` is the
    // packet's length on the wire (>= bytes.size()).
    void write(std::uint64_t timestamp_ns, std::span<const std::uint8_t> bytes, std::uint32_t original_length);
    void write(std::uint64_t timestamp_ns, std::span<const std::uint8_t> bytes) {
        write(timestamp_ns, bytes, static_cast<std::uint32_t>(bytes.size()));
    }

    [[nodiscard]] std::uint32_t snaplen() const noexcept { return snaplen_; }
    [[nodiscard]] std::uint64_t packets() const noexcept { return packets_; }

private:
    std::ostream& out_;
    std::uint32_t snaplen_;
    std::uint64_t packets_ = 0;
};

}  // namespace qemu_rewind
