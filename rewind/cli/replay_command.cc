// `rewind replay BUNDLE ...` and `rewind debug BUNDLE ...`: run QEMU on a
// bundle's log with the bundle's own kernel, firmware and disk data.
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <thread>

#include "bundle.hh"
#include "bundle_commands.hh"
#include "child_process.hh"
#include "command_line.hh"
#include "gdb_symbols.hh"
#include "log_commands.hh"
#include "qemu_binary.hh"
#include "qmp_client.hh"
#include "record_plan.hh"
#include "replay_session.hh"

namespace qemu_rewind::cli {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Whether a gdb is connected to the stub: QEMU shows the socket of its
// "gdb" chardev as "disconnected:..." when none is.
bool gdb_attached(QmpClient& qmp) {
    for (const auto& chardev : qmp.execute("query-chardev")) {
        if (chardev.value("label", "") == "gdb") {
            return !chardev.value("filename", "").starts_with("disconnected");
        }
    }
    return false;
}

// A gdb session is over: a gdb was attached and has gone (detach, kill,
// quit) and the guest has shut down (QEMU waits under -no-shutdown; gdb's
// kill is a shutdown request, seen as a SHUTDOWN event also while the VM
// was stopped). Until a gdb has come, the replay waits for one, even past
// the guest's end: a developer may start by going back from there.
struct GdbSessionWatch {
    bool gdb_seen = false;
    bool shut_down = false;

    bool over(QmpClient& qmp) {
        try {
            const bool attached = gdb_attached(qmp);
            gdb_seen = gdb_seen || attached;
            shut_down = shut_down || !qmp.wait_event("SHUTDOWN", std::chrono::milliseconds(0)).is_null() ||
                        qmp.execute("query-status").value("status", "") == "shutdown";
            return gdb_seen && shut_down && !attached;
        } catch (const std::exception&) {
            return false;  // QEMU is going away; wait() tells
        }
    }
};

}  // namespace

int replay(std::span<const std::string> args) {
    ReplaySession session(parse_session_args(args, false));
    try {
        session.prepare();
        std::cerr << "rewind: replay output (serial files, command line) in " << session.work().string() << "\n";
        session.start(session.args().extra, session.args().gdb_port.has_value());
        const std::uint64_t end = session.bundle().manifest.icount;
        if (session.args().seek) {
            const bool there = seek_to(session, *session.args().seek);
            std::cerr << "rewind: " << (there ? "paused at instruction " : "did not reach instruction ")
                      << *session.args().seek << "\n";
            if (!there) {
                session.quit();
                return kExitQemuFailed;
            }
            if (!session.args().gdb_port) {
                session.quit();
                return kExitOk;
            }
        }
        if (session.args().gdb_port) {
            std::cerr << "rewind: waiting for gdb: target remote 127.0.0.1:" << *session.args().gdb_port
                      << " (the replay ends with QEMU, or when gdb leaves a shut-down guest: gdb's kill, "
                         "or detach at the end)\n";
            std::signal(SIGINT, SIG_IGN);
            GdbSessionWatch watch;
            for (;;) {
                if (const auto exit = session.qemu().wait(200ms)) {
                    return exit->exited ? kExitOk : kExitQemuFailed;
                }
                if (watch.over(session.qmp())) {
                    session.quit();
                    return kExitOk;
                }
            }
        }
        session.qmp().execute("replay-break", {{"icount", end}});
        session.qmp().execute("cont");
        const bool reached = session.wait_until_at(end, 60s);
        std::uint64_t at = 0;
        try {
            at = session.icount();
        } catch (const QmpError&) {
        }
        if (reached) {
            std::cerr << "rewind: replay reached the recorded end, instruction " << end << "\n";
        } else {
            std::cerr << "rewind: replay did NOT reach the recorded end: at instruction " << at << " of " << end
                      << (session.qemu().running() ? "" : " (QEMU exited)") << "\n";
        }
        session.quit();
        return reached ? kExitOk : kExitQemuFailed;
    } catch (const UsageError&) {
        throw;
    } catch (const std::exception& e) {
        return report(e);
    }
}

int debug(std::span<const std::string> args) {
    ReplaySession session(parse_session_args(args, true));
    try {
        session.prepare();
        const auto& m = session.bundle().manifest;
        const int port = *session.args().gdb_port;
        // The gdb script: symbols first (they do not need the target), then connect.
        const fs::path script = session.work() / "debug.gdb";
        {
            std::ofstream out(script);
            out << "# written by rewind debug for " << session.bundle().root.string() << "\n";
            // add-symbol-file asks for confirmation otherwise.
            out << "set confirm off\n";
            SymbolFiles files{session.args().vmlinux, {}};
            for (const auto& [name, path] : session.args().modules) {
                files.modules.emplace_back(name, path);
            }
            const SymbolCommands symbols = gdb_symbol_commands(m, files);
            for (const auto& command : symbols.commands) {
                out << command << "\n";
            }
            for (const auto& note : symbols.notes) {
                std::cerr << "rewind: " << note << "\n";
            }
            out << "set confirm on\n";
            out << "target remote 127.0.0.1:" << port << "\n";
        }
        session.start({}, /*own_process_group=*/true);
        session.qmp().close();
        std::vector<std::string> gdb = {session.args().gdb, "-q", "-x", script.string()};
        gdb.insert(gdb.end(), session.args().extra.begin(), session.args().extra.end());
        std::cerr << "rewind: replay paused at instruction 0 of " << m.icount << "; gdb script " << script.string()
                  << "\n";
        // gdb owns the terminal: Ctrl-C is for it, not for us.
        std::signal(SIGINT, SIG_IGN);
        auto child = ChildProcess::spawn(gdb);
        const auto exit = child.wait();
        std::signal(SIGINT, SIG_DFL);
        return exit && exit->success() ? kExitOk : kExitQemuFailed;
    } catch (const UsageError&) {
        throw;
    } catch (const std::exception& e) {
        return report(e);
    }
}

}  // namespace qemu_rewind::cli
