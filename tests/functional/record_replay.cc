#include "record_replay.hh"

#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <filesystem>
#include <sstream>

namespace qemu_rewind::test {

using namespace std::chrono_literals;

RecordReplay record_then_replay(const Scenario &scenario, const std::string &dir,
                                const std::function<void(QemuInstance &)> &feed,
                                const std::function<void()> &after_record)
{
    return record_then_replay(scenario, scenario, dir, feed, after_record);
}

RecordReplay record_then_replay(const Scenario &record, const Scenario &replay,
                                const std::string &dir,
                                const std::function<void(QemuInstance &)> &feed,
                                const std::function<void()> &after_record)
{
    std::string log = dir + "/log.bin";
    std::string rec_dir = dir + "/record", rep_dir = dir + "/replay";
    std::filesystem::create_directories(rec_dir);
    std::filesystem::create_directories(rep_dir);
    RecordReplay rr;
    rr.record = run_to_poweroff(make_config(record, RrMode::Record, log),
                                rec_dir, 600s, feed);
    if (after_record) {
        after_record();
    }
    rr.replay = run_to_poweroff(make_config(replay, RrMode::Replay, log),
                                rep_dir, 900s);
    return rr;
}

std::vector<std::string> lines_with(const std::string &serial,
                                    const std::string &prefix)
{
    std::vector<std::string> out;
    std::istringstream in(serial);
    std::string line;
    while (std::getline(in, line)) {
        if (!line.empty() && line.back() == '\r') {
            line.pop_back();
        }
        if (line.rfind(prefix, 0) == 0) {
            out.push_back(line.substr(prefix.size()));
        }
    }
    return out;
}

void require_identical_runs(const RecordReplay &rr)
{
    INFO("record run:\n" << rr.record.diagnostics);
    INFO("replay run:\n" << rr.replay.diagnostics);
    REQUIRE(rr.record.serial.find("REWIND-FAIL") == std::string::npos);
    REQUIRE(rr.record.serial.find("REWIND-DONE") != std::string::npos);
    CHECK(rr.record.icount > 0);
    CHECK(rr.replay.serial == rr.record.serial);
    CHECK(rr.replay.icount == rr.record.icount);
    CHECK(rr.replay.ram_hash == rr.record.ram_hash);
}

std::string one_line(const std::string &serial, const std::string &prefix)
{
    auto l = lines_with(serial, prefix);
    INFO("guest serial:\n" << tail_lines(serial, 30));
    REQUIRE(l.size() == 1);
    return l[0];
}

}  // namespace qemu_rewind::test
