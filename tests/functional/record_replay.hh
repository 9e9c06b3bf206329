// Shared steps of the record/replay functional tests.
#pragma once

#include "qemu.hh"
#include "scenarios.hh"

#include <functional>
#include <string>

namespace qemu_rewind::test {

struct RecordReplay {
    RunResult record;
    RunResult replay;
};

// Records `scenario` into dir/log.bin (calling `feed` while recording, to
// send input), calls `after_record` (to take the outside world away), then
// replays it with only the log as input, and returns both final states.
RecordReplay record_then_replay(const Scenario &scenario, const std::string &dir,
                                const std::function<void(QemuInstance &)> &feed = {},
                                const std::function<void()> &after_record = {});
// The same with other devices in the replay (a backend that needs no
// outside world, e.g. -audiodev none instead of pa).
RecordReplay record_then_replay(const Scenario &record, const Scenario &replay,
                                const std::string &dir,
                                const std::function<void(QemuInstance &)> &feed = {},
                                const std::function<void()> &after_record = {});

// The lines of `serial` that start with `prefix` (the prefix removed).
std::vector<std::string> lines_with(const std::string &serial,
                                    const std::string &prefix);

// Catch2 checks every record/replay pair must satisfy: the recording ran
// to REWIND-DONE without REWIND-FAIL, and the replay has the same serial
// output, instruction count and RAM hash.
void require_identical_runs(const RecordReplay &rr);

// The one line of `serial` that starts with `prefix` (removed); a test
// failure when there is none or more than one.
std::string one_line(const std::string &serial, const std::string &prefix);

// Runs the replay `replay`, which must fail: QEMU must exit within a
// bounded time (a hang is killed and reported) with `exit_code` (any
// non-zero one if -1) and say each of `messages`. Returns its output.
std::string check_replay_fails(const QemuConfig &replay, const std::string &dir,
                               const std::vector<std::string> &messages,
                               int exit_code = -1);

}  // namespace qemu_rewind::test
