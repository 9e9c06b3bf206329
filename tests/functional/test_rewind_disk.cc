// Going back in time over guest disk writes: a restore must take back what
// the guest wrote to its disk since, or the replay diverges.
#include "record_replay.hh"
#include "qemu.hh"
#include "scenarios.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <chrono>
#include <filesystem>
#include <thread>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

// Waits until the replay is paused at `icount` (after replay-seek).
void wait_paused_at(QemuInstance &q, std::uint64_t icount)
{
    auto deadline = std::chrono::steady_clock::now() + scaled(60s);
    while (std::chrono::steady_clock::now() < deadline) {
        auto st = q.qmp().execute("query-status");
        if (st.value("status", "") == "paused" && q.icount() == icount) {
            return;
        }
        std::this_thread::sleep_for(20ms);
    }
    FAIL("replay did not stop at " << icount << "\n" << q.diagnostics());
}

// Waits until the guest has powered off (-no-shutdown keeps QEMU paused in
// the "shutdown" state).  Polls the state: a SHUTDOWN event of the first
// run may still be queued.
void wait_powered_off(QemuInstance &q)
{
    auto deadline = std::chrono::steady_clock::now() + scaled(600s);
    while (std::chrono::steady_clock::now() < deadline) {
        if (q.qmp().execute("query-status").value("status", "") == "shutdown") {
            return;
        }
        std::this_thread::sleep_for(50ms);
    }
    FAIL("the guest did not power off again\n" << q.diagnostics());
}

}  // namespace

TEST_CASE("time travel: going back before a disk write takes the write back",
          "[time-travel][disk]")
{
    TempDir dir("rewind-disk");
    RandomDisk d = make_random_disk(dir.path());
    const std::string &content = d.content;
    Scenario s{"disk", "", disk_devices(d.qcow2)};
    std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    std::filesystem::create_directories(dir.path() + "/replay");
    RunResult rec = run_to_poweroff(make_config(s, RrMode::Record, log),
                                    dir.path() + "/record", 600s);
    const std::string before = md5_hex(content.substr(2 << 20, 64 << 10));
    REQUIRE(lines_with(rec.serial, "DISK-BEFORE ") ==
            std::vector<std::string>{before});

    // Replay to the power-off: the guest has overwritten that region.
    QemuConfig cfg = make_config(s, RrMode::Replay, log);
    cfg.start_paused = true;
    QemuInstance q(cfg, dir.path() + "/replay");
    q.start();
    q.qmp().execute("cont");
    wait_powered_off(q);
    const std::uint64_t end = q.icount();
    const std::string ram_end = q.ram_hash();
    INFO(q.qmp().hmp("info replay"));
    CHECK(end == rec.icount);

    // Back to the start, and forwards again: the guest must read the
    // original bytes again, and end in the same state.
    q.qmp().execute("replay-seek", {{"icount", 0}});
    wait_paused_at(q, 0);
    q.qmp().execute("cont");
    wait_powered_off(q);
    std::string serial = q.serial();
    INFO(serial);
    CHECK(lines_with(serial, "DISK-BEFORE ") ==
          std::vector<std::string>{before, before});
    CHECK(lines_with(serial, "DISK-WRITE ").size() == 2);
    CHECK(q.icount() == end);
    CHECK(q.ram_hash() == ram_end);
    q.quit();
}
