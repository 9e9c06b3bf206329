// The data of the isochronous source (iso_source.hh) as a function of its
// seed alone: a sequence of packet lengths and an independent byte stream
// the packets carry in order. Header-only so that tests can compute what a
// guest must have received without linking the device models.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>

namespace qemu_rewind::usbdev {

class IsoStream {
public:
    IsoStream(std::uint64_t seed, std::uint32_t max_packet)
        : lengths_(seed ^ 0x6c656e67746873ULL), bytes_(seed), max_packet_(max_packet)
    {
    }

    // Length of the next packet: 1 in 16 empty, 1 in 4 short (1 to
    // max_packet - 1 bytes), the rest full.
    std::uint32_t next_length()
    {
        std::uint64_t r = lengths_.next();
        unsigned kind = r & 15;
        if (kind == 0 || max_packet_ == 0) {
            return 0;
        }
        if (kind <= 4 && max_packet_ > 1) {
            return 1 + static_cast<std::uint32_t>((r >> 8) % (max_packet_ - 1));
        }
        return max_packet_;
    }

    std::uint8_t next_byte()
    {
        if (have_ == 0) {
            word_ = bytes_.next();
            have_ = 8;
        }
        auto b = static_cast<std::uint8_t>(word_);
        word_ >>= 8;
        --have_;
        return b;
    }

private:
    // SplitMix64 (Steele, Lea, Flood 2014): a counter through a mixing
    // function, good enough for test data and trivial to reproduce.
    class SplitMix64 {
    public:
        explicit SplitMix64(std::uint64_t seed) : state_(seed) {}
        std::uint64_t next()
        {
            std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
            return z ^ (z >> 31);
        }

    private:
        std::uint64_t state_;
    };

    SplitMix64 lengths_;
    SplitMix64 bytes_;
    std::uint32_t max_packet_;
    std::uint64_t word_ = 0;
    unsigned have_ = 0;
};

// What a reader of the stream that keeps `bytes` bytes gets (the guest
// module rewind_usbiso): the bytes, and how many packets carried them
// (the last one possibly cut). Empty packets are not counted.
struct IsoPrefix {
    std::string data;
    std::size_t packets = 0;
};

inline IsoPrefix iso_stream_prefix(std::uint64_t seed, std::uint32_t max_packet,
                                   std::size_t bytes)
{
    IsoStream s(seed, max_packet);
    IsoPrefix p;
    p.data.reserve(bytes);
    while (p.data.size() < bytes && max_packet > 0) {
        std::uint32_t len = s.next_length();
        if (len == 0) {
            continue;
        }
        ++p.packets;
        std::size_t keep = std::min<std::size_t>(len, bytes - p.data.size());
        for (std::size_t i = 0; i < keep; ++i) {
            p.data.push_back(static_cast<char>(s.next_byte()));
        }
    }
    return p;
}

}  // namespace qemu_rewind::usbdev
