// Wall-clock times for points of a recording, from the host clock reads the
// log holds. QEMU logs every read of QEMU_CLOCK_HOST (the host's wall clock,
// ns since the Unix epoch) as EVENT_CLOCK CLOCK_HOST with the instruction
// count at the read. Between two reads, time is interpolated linearly in
// instructions; before the first and after the last read it is that read's
// time. A log without host clock reads gets the instruction count itself,
// taken as nanoseconds since the epoch, so that at least the order and the
// spacing in instructions show.
//
// These are the host times of the recording, not the guest's clock: the
// guest's virtual clock (icount << shift plus the idle warps) is not in the log.
#pragma once

#include <cstdint>
#include <vector>

#include "replay_log.hh"

namespace qemu_rewind {

class LogClock {
public:
    // Feed every event of the log, in order.
    void observe(const ReplayEvent& event);

    [[nodiscard]] std::uint64_t wall_ns(std::uint64_t icount) const;
    [[nodiscard]] bool has_host_clock() const noexcept { return !anchors_.empty(); }
    [[nodiscard]] std::size_t anchors() const noexcept { return anchors_.size(); }

private:
    struct Anchor {
        std::uint64_t icount;
        std::uint64_t ns;
    };
    std::vector<Anchor> anchors_;  // strictly increasing icount, non-decreasing ns
};

}  // namespace qemu_rewind
