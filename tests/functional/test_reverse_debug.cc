// Debian's gdb against a replay: breakpoints at kernel symbols (from the
// image's System.map; the guest boots with nokaslr),
// reverse-stepi, reverse-continue to an earlier breakpoint and to the last
// write of a watched variable. Every landing is checked against where the
// same event happened going forwards (PC and instruction count).
#include "gdb.hh"
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
    // Reverse execution needs a qcow2 drive to hold the "init" snapshot;
    // the guest itself has no disk.
    Scenario s{"boot", "", snapshot_drive(dir.path()), {}};
    std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    std::filesystem::create_directories(dir.path() + "/replay");
    QemuConfig rec_cfg = make_config(s, RrMode::Record, log);
    rec_cfg.rrsnapshot = "init";
    RunResult rec = run_to_poweroff(rec_cfg, dir.path() + "/record", 600s);
    INFO("record run:\n" << rec.diagnostics);
    REQUIRE(rec.serial.find("REWIND-DONE") != std::string::npos);

    auto syms = SymbolMap::load(images_dir() + "/System.map");
    const std::uint64_t sys_reboot = syms.address("__do_sys_reboot");
    const std::uint64_t power_off = syms.address("machine_power_off");
    const std::uint64_t state = syms.address("system_state");
    const std::string state_expr = "*(int *)" + hex(state);

    QemuConfig rep_cfg = make_config(s, RrMode::Replay, log);
    rep_cfg.rrsnapshot = "init";
    rep_cfg.gdb_port = free_tcp_port();
    rep_cfg.start_paused = true;
    QemuInstance replay(rep_cfg, dir.path() + "/replay");
    replay.start();

    GdbScript g(*rep_cfg.gdb_port);
    g.cmd("break *" + hex(sys_reboot))      // breakpoint 1
        .cmd("break *" + hex(power_off))    // breakpoint 2
        .cmd("continue").report("fwd-reboot")
        .cmd("continue").report("fwd-end")
        .cmd("reverse-stepi").report("rsi-1")
        .cmd("reverse-stepi").report("rsi-2")
        .cmd("delete 2")
        .cmd("reverse-continue").report("rc-break")
        .print_hex("state-before", state_expr)
        .cmd("delete")
        .cmd("watch " + state_expr)
        .cmd("continue").report("fwd-watch")
        .print_hex("state-after", state_expr)
        .cmd("delete")
        .cmd("break *" + hex(power_off))
        .cmd("continue").report("fwd-end-again")
        .cmd("delete")
        .cmd("watch " + state_expr)
        .cmd("reverse-continue").report("rc-watch")
        .print_hex("state-at-rc-watch", state_expr)
        .cmd("detach");
    GdbResult r = run_gdb(g, dir.path(), scaled(1500s));
    INFO("gdb output (tail):\n" << tail_lines(r.output, 60));
    INFO("replay run:\n" << replay.diagnostics());
    REQUIRE_FALSE(r.timed_out);

    // Forward landmarks.
    const GdbStop &reboot = r.stop("fwd-reboot");
    const GdbStop &end = r.stop("fwd-end");
    CHECK(reboot.pc == sys_reboot);
    CHECK(end.pc == power_off);
    REQUIRE(end.icount > reboot.icount);

    // reverse-stepi moves back exactly one instruction each time.
    CHECK(r.stop("rsi-1").icount == end.icount - 1);
    CHECK(r.stop("rsi-2").icount == end.icount - 2);
    CHECK(r.stop("rsi-1").pc != power_off);

    // reverse-continue lands on the earlier breakpoint's forward hit.
    CHECK(r.stop("rc-break").pc == sys_reboot);
    CHECK(r.stop("rc-break").icount == reboot.icount);

    // The watched write between the two is found going forwards...
    const GdbStop &write = r.stop("fwd-watch");
    CHECK(write.icount > reboot.icount);
    CHECK(write.icount < end.icount);
    CHECK(r.value("state-after") != r.value("state-before"));
    CHECK(r.stop("fwd-end-again").icount == end.icount);
    // ...and reverse-continue from the end lands on that same write.
    CHECK(r.stop("rc-watch").icount == write.icount);
    CHECK(r.stop("rc-watch").pc == write.pc);
    CHECK(r.value("state-at-rc-watch") == r.value("state-after"));
    replay.quit();
}
