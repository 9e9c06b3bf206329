// make demo: record guest (a), replay it under gdb, and find the last write
// to a kernel variable by running backwards, printing a narrated transcript
// of the gdb commands, what they answered and how long each took.
#include "gdb_session.hh"
#include "qemu.hh"
#include "scenarios.hh"
#include "symbols.hh"
#include "util.hh"

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

void say(const std::string &text)
{
    std::cout << text << std::endl;
}

// Prints a gdb command as typed, its answer indented, and its duration.
GdbReply show(GdbSession &gdb, const std::string &command,
              const std::string &comment = "")
{
    std::string typed = "  (gdb) " + command;
    if (!comment.empty()) {
        typed += std::string(typed.size() < 52 ? 52 - typed.size() : 1, ' ') +
                 "# " + comment;
    }
    std::cout << typed << std::flush;
    GdbReply r = gdb.run(command, scaled(1800s));
    char t[32];
    snprintf(t, sizeof t, "   [%.2f s]", r.seconds);
    std::cout << t << "\n";
    std::istringstream lines(r.console + (r.error.empty() ? "" : r.error + "\n"));
    std::string line;
    while (std::getline(lines, line)) {
        if (!line.empty()) {
            std::cout << "        " << line << "\n";
        }
    }
    std::cout.flush();
    if (!r.ok()) {
        throw std::runtime_error("gdb: '" + command + "' failed: " + r.error);
    }
    return r;
}

}  // namespace

int main(int argc, char **argv)
{
    std::string workdir;
    if (argc == 3 && std::string(argv[1]) == "--workdir") {
        workdir = argv[2];
    } else if (argc != 1) {
        std::cerr << "usage: rewind-demo [--workdir DIR]\n";
        return 2;
    }
    try {
        TempDir tmp("demo");
        if (workdir.empty()) {
            workdir = tmp.path();
        }
        std::filesystem::create_directories(workdir + "/record");
        std::filesystem::create_directories(workdir + "/replay");
        auto syms = SymbolMap::load(images_dir() + "/System.map");
        const std::uint64_t power_off = syms.address("machine_power_off");
        const std::uint64_t state = syms.address("system_state");
        const std::string state_expr = "*(int *)" + hex(state);

        say("QEMU Rewind demo: record a Linux guest, then debug it backwards\n");
        say("Step 1. Record guest (a): Debian's kernel (" +
            tail_lines(read_file(images_dir() + "/kernel-version"), 1).substr(0, 40) +
            ") with a busybox init that prints 200 lines of work and powers off.");
        Scenario s{"boot", "", {}};
        std::string log = workdir + "/log.bin";
        QemuConfig rec = make_config(s, RrMode::Record, log);
        RunResult recorded = run_to_poweroff(rec, workdir + "/record", 900s);
        char buf[256];
        snprintf(buf, sizeof buf,
                 "        recorded %.3g instructions in %.1f s; log %.1f MB (%s)\n",
                 static_cast<double>(recorded.icount), recorded.seconds,
                 file_size(log) / 1e6, log.c_str());
        say(buf);

        say("Step 2. Replay the recording with gdb attached. Nothing but the log\n"
            "        drives the guest; it starts paused at its first instruction.");
        QemuConfig rep = make_config(s, RrMode::Replay, log);
        rep.gdb_port = free_tcp_port();
        rep.start_paused = true;
        QemuInstance q(rep, workdir + "/replay");
        q.start();
        say("        $ " + q.command_line().substr(0, 110) + " ...\n");

        say("Step 3. The guest powered off. Who last wrote the kernel's system_state?");
        GdbSession gdb(workdir);
        show(gdb, "target remote 127.0.0.1:" + std::to_string(*rep.gdb_port));
        show(gdb, "break *" + hex(power_off), "machine_power_off");
        show(gdb, "continue", "run forwards to the power-off");
        show(gdb, "monitor info replay");
        std::uint64_t end = gdb.icount();
        show(gdb, "print " + state_expr, "system_state (5 = SYSTEM_POWER_OFF)");
        show(gdb, "delete");
        show(gdb, "watch " + state_expr);
        show(gdb, "reverse-continue", "run backwards to the last write");
        show(gdb, "x/i $pc", "the instruction that wrote it");
        std::uint64_t writer = gdb.pc();
        std::uint64_t at = gdb.icount();
        show(gdb, "print " + state_expr, "before it runs");
        show(gdb, "stepi", "forwards over the write");
        show(gdb, "print " + state_expr, "after it");
        show(gdb, "reverse-stepi", "and back");
        show(gdb, "reverse-stepi", "one more, into the code before");
        show(gdb, "monitor info replay", "the checkpoints behind these steps");
        show(gdb, "detach");
        q.quit();

        snprintf(buf, sizeof buf,
                 "\nsystem_state was last written by the instruction at %s\n"
                 "(instruction %llu of the recording, %llu before machine_power_off).",
                 syms.describe(writer).c_str(), static_cast<unsigned long long>(at),
                 static_cast<unsigned long long>(end - at));
        say(buf);
        say("Each reverse step restored an in-memory checkpoint near its target and\n"
            "replayed only the stretch after it (docs/time-travel.rst).");
    } catch (const std::exception &e) {
        std::cerr << "demo: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
