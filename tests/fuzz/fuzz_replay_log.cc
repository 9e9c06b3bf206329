// libFuzzer target: the replay log reader (format 1 and 2, through
// ReplayLogReader's auto-detection, and format 2's container directly,
// also with the checksums of a mutated format 2 file made right again)
// and what the inspection commands do with the events it returns. Every
// bad input must end in ReplayLogError; anything else is a bug.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "event_filter.hh"
#include "log_clock.hh"
#include "log_container.hh"
#include "replay_log.hh"
#include "usbmon.hh"

namespace {

using namespace qemu_rewind;

// Enough to reach deep into a log; bounded so one input stays fast.
constexpr int kMaxEvents = 200000;

void read_events(const std::vector<std::uint8_t>& bytes, ReaderOptions options) {
    try {
        ReplayLogReader reader(bytes, options);
        LogClock clock;
        UsbmonConverter usbmon;
        EventFilter filter;
        filter.device = 0;
        for (int i = 0; i < kMaxEvents; ++i) {
            const auto event = reader.next();
            if (!event) break;
            (void)event_name(*event);
            (void)describe_fields(*event);
            (void)filter.matches(*event);
            clock.observe(*event);
            (void)usbmon.convert(*event, clock.wall_ns(event->icount));
        }
    } catch (const ReplayLogError&) {
    }
}

void read_container(const std::vector<std::uint8_t>& bytes) {
    if (!is_log_v2(bytes)) return;
    try {
        LogContainer container(bytes);
        const auto& info = container.info();
        for (std::size_t i = 0; i < info.chunks.size() && i < 64; ++i) {
            (void)container.read_chunk(i);
        }
        if (!info.chunks.empty()) {
            (void)container.chunk_for_icount(info.final_icount / 2);
            (void)container.chunk_at(info.chunks.front().stream_offset);
        }
    } catch (const ReplayLogError&) {
    }
}

std::uint32_t le32(const std::uint8_t* p) { return p[0] | p[1] << 8 | p[2] << 16 | std::uint32_t{p[3]} << 24; }
std::uint64_t le64(const std::uint8_t* p) { return le32(p) | std::uint64_t{le32(p + 4)} << 32; }
void put_le32(std::uint8_t* p, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}

// Format 2 guards every chunk header, chunk and the index with CRC-32C,
// which random mutations almost never keep right: without this, the
// fuzzer would stop at the checksums. Rewrites them where the structure
// (as far as it can be followed) says they are.
std::vector<std::uint8_t> with_checksums_fixed(std::vector<std::uint8_t> b) {
    std::size_t pos = kLogV2HeaderSize;
    while (pos + kLogV2ChunkHeaderSize <= b.size() && std::memcmp(&b[pos], "RWCK", 4) == 0) {
        const std::uint64_t packed = le32(&b[pos + 8]);
        if (packed > b.size() - pos - kLogV2ChunkHeaderSize) break;
        put_le32(&b[pos + 12], crc32c(std::span(b).subspan(pos + kLogV2ChunkHeaderSize, packed)));
        put_le32(&b[pos + 36], crc32c(std::span(b).subspan(pos, 36)));
        pos += kLogV2ChunkHeaderSize + packed;
    }
    if (b.size() >= kLogV2HeaderSize + kLogV2TrailerSize) {
        std::uint8_t* t = &b[b.size() - kLogV2TrailerSize];
        if (std::memcmp(t, "QRWLGEND", 8) == 0) {
            const std::uint64_t at = le64(t + 8);
            const std::uint32_t size = le32(t + 16);
            const std::uint64_t index_room = b.size() - kLogV2TrailerSize;
            if (size >= 4 && at <= index_room && size <= index_room - at) {
                put_le32(&b[at + size - 4], crc32c(std::span(b).subspan(at, size - 4)));
            }
            put_le32(t + 20, crc32c(std::span(t, 20)));
        }
    }
    return b;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::vector<std::uint8_t> bytes(data, data + size);
    read_events(bytes, {});
    read_events(bytes, {.allow_unfinalized_header = true, .tolerate_truncated_tail = true});
    read_container(bytes);
    if (is_log_v2(bytes)) {
        const auto fixed = with_checksums_fixed(bytes);
        read_events(fixed, {.allow_unfinalized_header = true, .tolerate_truncated_tail = true});
        read_container(fixed);
    }
    return 0;
}
