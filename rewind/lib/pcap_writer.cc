#include "pcap_writer.hh"

#include <algorithm>
#include <array>

namespace qemu_rewind {

namespace {

constexpr std::uint32_t kMagicNanoseconds = 0xa1b23c4d;

template <std::size_t N>
void put_le(std::array<std::uint8_t, N>& buf, std::size_t at, std::uint64_t value, std::size_t width) {
    for (std::size_t i = 0; i < width; ++i) {
        buf[at + i] = static_cast<std::uint8_t>(value >> (8 * i));
    }
}

template <std::size_t N>
void emit(std::ostream& out, const std::array<std::uint8_t, N>& buf) {
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(N));
}

}  // namespace

PcapWriter::PcapWriter(std::ostream& out, std::uint32_t linktype, std::uint32_t snaplen)
    : out_(out), snaplen_(snaplen) {
    std::array<std::uint8_t, 24> header{};
    put_le(header, 0, kMagicNanoseconds, 4);
    put_le(header, 4, 2, 2);  // version 2.4
    put_le(header, 6, 4, 2);
    // 8: time zone offset and 12: timestamp accuracy, both 0 by convention.
    put_le(header, 16, snaplen, 4);
    put_le(header, 20, linktype, 4);
    emit(out_, header);
}

void PcapWriter::write(std::uint64_t timestamp_ns, std::span<const std::uint8_t> bytes,
                       std::uint32_t original_length) {
    const auto captured = static_cast<std::uint32_t>(std::min<std::size_t>(bytes.size(), snaplen_));
    std::array<std::uint8_t, 16> record{};
    put_le(record, 0, timestamp_ns / 1'000'000'000, 4);
    put_le(record, 4, timestamp_ns % 1'000'000'000, 4);
    put_le(record, 8, captured, 4);
    put_le(record, 12, std::max(original_length, captured), 4);
    emit(out_, record);
    out_.write(reinterpret_cast<const char*>(bytes.data()), captured);
    ++packets_;
}

}  // namespace qemu_rewind
