#include "log_clock.hh"

#include <algorithm>

namespace qemu_rewind {

void LogClock::observe(const ReplayEvent& event) {
    if (event.clock_kind() != ClockKind::Host) {
        return;
    }
    const auto value = std::get<ClockPayload>(event.payload).value;
    if (value < 0) {
        return;
    }
    const auto ns = static_cast<std::uint64_t>(value);
    // Several reads at one instruction count: keep the first. A host clock
    // stepped backwards (NTP) would make times go back; keep them monotonic.
    if (!anchors_.empty()) {
        if (event.icount <= anchors_.back().icount) {
            return;
        }
        anchors_.push_back({event.icount, std::max(ns, anchors_.back().ns)});
        return;
    }
    anchors_.push_back({event.icount, ns});
}

std::uint64_t LogClock::wall_ns(std::uint64_t icount) const {
    if (anchors_.empty()) {
        return icount;
    }
    const auto after = std::upper_bound(anchors_.begin(), anchors_.end(), icount,
                                        [](std::uint64_t i, const Anchor& a) { return i < a.icount; });
    if (after == anchors_.begin()) {
        return anchors_.front().ns;
    }
    const Anchor& a = *(after - 1);
    if (after == anchors_.end()) {
        return a.ns;
    }
    const Anchor& b = *after;
    // (icount - a) / (b - a) of the way from a.ns to b.ns, without overflow
    // for spans up to 2^64 ns x 2^64 instructions.
    const auto span_ns = static_cast<unsigned __int128>(b.ns - a.ns);
    const auto into = static_cast<unsigned __int128>(icount - a.icount);
    return a.ns + static_cast<std::uint64_t>(span_ns * into / (b.icount - a.icount));
}

}  // namespace qemu_rewind
