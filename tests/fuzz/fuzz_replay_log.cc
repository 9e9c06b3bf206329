// libFuzzer target: the replay log reader (format 1 and 2, through
// ReplayLogReader's auto-detection, and format 2's container directly)
// and what the inspection commands do with the events it returns. Every
// bad input must end in ReplayLogError; anything else is a bug.
#include <cstddef>
#include <cstdint>
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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::vector<std::uint8_t> bytes(data, data + size);
    read_events(bytes, {});
    read_events(bytes, {.allow_unfinalized_header = true, .tolerate_truncated_tail = true});
    read_container(bytes);
    return 0;
}
