// Debian's gdb against a replay: breakpoints at kernel symbols (from the
// image's System.map; the guest boots with nokaslr),
// reverse-stepi, reverse-continue to an earlier breakpoint and to the last
// write of a watched variable (landing before the writing instruction).
// Every landing is checked against where the same event happened going
// forwards (PC and instruction count).
#include "gdb_session.hh"
#include "record_replay.hh"
#include "symbols.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>
#include <filesystem>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

TEST_CASE("gdb: reverse-stepi and reverse-continue to a breakpoint and to a watchpoint",
          "[gdb][reverse]")
{
    TempDir dir("gdb");
    // No disk and no snapshot drive: reverse execution runs on in-memory
    // checkpoints.
    Scenario s{"boot", "", {}};
    std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    std::filesystem::create_directories(dir.path() + "/replay");
    QemuConfig rec_cfg = make_config(s, RrMode::Record, log);
    RunResult rec = run_to_poweroff(rec_cfg, dir.path() + "/record", 600s);
    INFO("record run:\n" << rec.diagnostics);
    REQUIRE(rec.serial.find("REWIND-DONE") != std::string::npos);

    auto syms = SymbolMap::load(images_dir() + "/System.map");
    const std::uint64_t sys_reboot = syms.address("__do_sys_reboot");
    const std::uint64_t power_off = syms.address("machine_power_off");
    const std::uint64_t state = syms.address("system_state");
    const std::string state_expr = "*(int *)" + hex(state);

    QemuConfig rep_cfg = make_config(s, RrMode::Replay, log);
    rep_cfg.gdb_port = free_tcp_port();
    rep_cfg.start_paused = true;
    QemuInstance replay(rep_cfg, dir.path() + "/replay");
    replay.start();

    GdbSession gdb(dir.path());
    struct Stop {
        std::uint64_t pc, icount;
    };
    // Runs an execution command and returns where it stopped.
    auto stop_after = [&](const std::string &command) {
        GdbReply r = gdb.run(command, scaled(900s));
        if (!r.ok()) {
            throw std::runtime_error(command + " failed: " + r.error);
        }
        return Stop{gdb.pc(), gdb.icount()};
    };
    Stop reboot{}, end{}, rsi1{}, rsi2{}, rc_break{}, write{}, end_again{}, rc_watch{},
        over{};
    std::uint64_t state_before = 0, state_after = 0, state_at_rc_watch = 0,
                  state_over = 0;
    try {
        REQUIRE(gdb.connect(*rep_cfg.gdb_port).ok());
        gdb.run("break *" + hex(sys_reboot));      // breakpoint 1
        gdb.run("break *" + hex(power_off));       // breakpoint 2
        reboot = stop_after("continue");
        end = stop_after("continue");
        rsi1 = stop_after("reverse-stepi");
        rsi2 = stop_after("reverse-stepi");
        gdb.run("delete 2");
        rc_break = stop_after("reverse-continue");
        state_before = gdb.value(state_expr);
        gdb.run("delete");
        gdb.run("watch " + state_expr);
        write = stop_after("continue");
        state_after = gdb.value(state_expr);
        gdb.run("delete");
        gdb.run("break *" + hex(power_off));
        end_again = stop_after("continue");
        gdb.run("delete");
        gdb.run("watch " + state_expr);
        rc_watch = stop_after("reverse-continue");
        state_at_rc_watch = gdb.value(state_expr);
        over = stop_after("stepi");
        state_over = gdb.value(state_expr);
        gdb.run("detach");
    } catch (const std::exception &e) {
        FAIL(e.what() << "\ngdb transcript:\n" << tail_lines(gdb.transcript(), 60)
                      << "\nreplay run:\n" << replay.diagnostics());
    }
    INFO("gdb transcript:\n" << tail_lines(gdb.transcript(), 60));
    INFO("replay run:\n" << replay.diagnostics());

    // Forward landmarks.
    CHECK(reboot.pc == sys_reboot);
    CHECK(end.pc == power_off);
    REQUIRE(end.icount > reboot.icount);

    // reverse-stepi moves back exactly one instruction each time.
    CHECK(rsi1.icount == end.icount - 1);
    CHECK(rsi2.icount == end.icount - 2);
    CHECK(rsi1.pc != power_off);

    // reverse-continue lands on the earlier breakpoint's forward hit.
    CHECK(rc_break.pc == sys_reboot);
    CHECK(rc_break.icount == reboot.icount);

    // The watched write between the two is found going forwards...
    CHECK(write.icount > reboot.icount);
    CHECK(write.icount < end.icount);
    CHECK(state_after != state_before);
    CHECK(end_again.icount == end.icount);
    // ...and reverse-continue from the end lands on the writing
    // instruction, before it runs (the forward stop is just after it):
    // the old value is in place, and one stepi does the write again.
    CHECK(rc_watch.icount + 1 == write.icount);
    CHECK(rc_watch.pc != write.pc);
    CHECK(state_at_rc_watch == state_before);
    CHECK(over.icount == write.icount);
    CHECK(over.pc == write.pc);
    CHECK(state_over == state_after);
    replay.quit();
}
