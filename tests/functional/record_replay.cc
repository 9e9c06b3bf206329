#include "record_replay.hh"

#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <chrono>
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

std::string check_replay_fails(const QemuConfig &replay, const std::string &dir,
                               const std::vector<std::string> &messages, int exit_code)
{
    std::filesystem::create_directories(dir);
    QemuInstance q(replay, dir);
    auto t0 = std::chrono::steady_clock::now();
    CommandResult r = run_command(q.argv(), scaled(std::chrono::seconds(120)), dir);
    write_file(dir + "/qemu.out", r.output);
    INFO("replay: " << q.command_line() << "\nended after "
                    << std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count()
                    << " s: " << r.status.describe()
                    << (r.timed_out ? " (killed: it did not exit in time)" : "")
                    << "\noutput (tail):\n" << tail_lines(r.output, 20));
    CHECK_FALSE(r.timed_out);
    CHECK(r.status.exited);
    if (exit_code < 0) {
        CHECK(r.status.code != 0);
    } else {
        CHECK(r.status.code == exit_code);
    }
    for (const auto &m : messages) {
        CHECK(r.output.find(m) != std::string::npos);
    }
    return r.output;
}

}  // namespace qemu_rewind::test
