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

namespace qemu_rewind::cli {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr int kDefaultGdbPort = 1234;

// Options shared by replay and debug.
struct SessionArgs {
    std::string bundle;
    std::string workdir;
    std::string qemu;
    std::optional<int> gdb_port;
    std::optional<std::uint64_t> seek;
    std::vector<std::string> extra;  // after "--": QEMU args (replay) or gdb args (debug)
    // debug only
    std::string vmlinux;
    std::vector<std::pair<std::string, std::string>> modules;  // NAME, PATH.ko
    std::string gdb = "gdb";
};

std::uint64_t parse_number(const std::string& text, const std::string& what) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used, 0);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || text.front() == '-') {
        throw UsageError(what + " expects a non-negative number, got '" + text + "'");
    }
    return value;
}

int parse_port(const std::string& text, const std::string& what) {
    const auto port = parse_number(text, what);
    if (port == 0 || port > 65535) {
        throw UsageError(what + " expects a TCP port, got '" + text + "'");
    }
    return static_cast<int>(port);
}

SessionArgs parse_session_args(std::span<const std::string> args, bool debug) {
    SessionArgs parsed;
    ArgumentScanner scan(args);
    for (; !scan.done(); scan.next()) {
        const std::string& arg = scan.current();
        if (arg == "--") {
            const auto rest = scan.rest().subspan(1);
            parsed.extra.assign(rest.begin(), rest.end());
            break;
        }
        if (scan.is("--workdir")) {
            parsed.workdir = scan.value("--workdir");
        } else if (scan.is("--qemu")) {
            parsed.qemu = scan.value("--qemu");
        } else if (!debug && arg == "--gdb") {
            parsed.gdb_port = kDefaultGdbPort;
        } else if (!debug && arg.starts_with("--gdb=")) {
            parsed.gdb_port = parse_port(arg.substr(6), "--gdb");
        } else if (!debug && scan.is("--seek")) {
            parsed.seek = parse_number(scan.value("--seek"), "--seek");
        } else if (debug && scan.is("--gdb-port")) {
            parsed.gdb_port = parse_port(scan.value("--gdb-port"), "--gdb-port");
        } else if (debug && scan.is("--vmlinux")) {
            parsed.vmlinux = scan.value("--vmlinux");
        } else if (debug && scan.is("--gdb")) {
            parsed.gdb = scan.value("--gdb");
        } else if (debug && scan.is("--module")) {
            const std::string spec = scan.value("--module");
            const auto eq = spec.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
                throw UsageError("--module expects NAME=PATH.ko, got '" + spec + "'");
            }
            parsed.modules.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
        } else if (arg.starts_with("-")) {
            throw UsageError("unknown option '" + arg + "'");
        } else if (parsed.bundle.empty()) {
            parsed.bundle = arg;
        } else {
            throw UsageError("unexpected argument '" + arg + "'");
        }
    }
    if (parsed.bundle.empty()) {
        throw UsageError("missing BUNDLE argument");
    }
    if (debug && !parsed.gdb_port) {
        parsed.gdb_port = kDefaultGdbPort;
    }
    return parsed;
}

// Checks the files a replay uses against the manifest's hashes.
void check_used_files(const OpenedBundle& bundle) {
    std::map<std::string, const ContentEntry*> listed;
    for (const auto& c : bundle.manifest.contents) {
        listed[c.path] = &c;
    }
    std::vector<std::string> used = {std::string(bundle_path::kLog)};
    if (bundle.checkpoints) {
        used.emplace_back(bundle_path::kCheckpoints);
    }
    for (const auto& f : bundle.manifest.files) {
        used.push_back(bundle_path::file(f.sha256));
    }
    for (const auto& path : used) {
        const fs::path full = bundle.root / path;
        auto it = listed.find(path);
        if (it == listed.end()) {
            throw BundleError(bundle.root / bundle_path::kManifest, path + " is not listed in \"contents\"");
        }
        std::error_code ec;
        if (!fs::is_regular_file(full, ec)) {
            throw BundleError(full, "missing (incomplete copy of the bundle?)");
        }
        if (fs::file_size(full, ec) != it->second->size) {
            throw BundleError(full, "size differs from the manifest's (truncated?)");
        }
        if (sha256_file(full) != it->second->sha256) {
            throw BundleError(full, "SHA-256 differs from the manifest's (corrupted)");
        }
    }
}

// A replay of a bundle running in QEMU, paused at its start.
class ReplaySession {
public:
    explicit ReplaySession(SessionArgs args) : args_(std::move(args)) {}

    ~ReplaySession() {
        qmp_.close();
        if (qemu_.pid() > 0) {
            qemu_.terminate(2s);
        }
        // The rebuilt disks can be large; the rest (serial output) stays.
        std::error_code ec;
        for (const auto& disk : disks_) {
            fs::remove(disk, ec);
        }
        if (!socket_dir_.empty()) {
            fs::remove_all(socket_dir_, ec);
        }
    }

    // Opens and checks the bundle; throws BundleError.
    void prepare() {
        const fs::path root = fs::absolute(args_.bundle).lexically_normal();
        bundle_ = open_bundle(root);
        if (root.string().find(',') != std::string::npos) {
            throw UsageError("the bundle path must not contain ',' (QEMU option syntax): " + root.string());
        }
        check_used_files(bundle_);

        if (args_.workdir.empty()) {
            char dir[] = "/tmp/rewind-replay-XXXXXX";
            if (!mkdtemp(dir)) {
                throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
            }
            work_ = dir;
        } else {
            work_ = fs::absolute(args_.workdir).lexically_normal();
            fs::create_directories(work_);
        }
        if (work_.string().find(',') != std::string::npos) {
            throw UsageError("the work directory must not contain ',': " + work_.string());
        }
        char sockets[] = "/tmp/rewind-qmp-XXXXXX";
        if (!mkdtemp(sockets)) {
            throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        }
        socket_dir_ = sockets;

        // Firmware under the names QEMU looks for, ahead of QEMU's own.
        const fs::path firmware = work_ / "firmware";
        fs::create_directories(firmware);
        for (const auto& f : bundle_.manifest.files) {
            if (f.role != "firmware") {
                continue;
            }
            const fs::path link = firmware / fs::path(f.name).filename();
            std::error_code ec;
            fs::remove(link, ec);
            fs::create_symlink(bundle_.root / bundle_path::file(f.sha256), link);
        }
        for (std::size_t i = 0; i < bundle_.manifest.disks.size(); ++i) {
            const fs::path image = work_ / ("disk" + std::to_string(i) + ".img");
            disks_.push_back(image);  // removed at the end even if the rebuild fails
            rebuild_disk(bundle_, i, image);
        }

        qemu_binary_ = args_.qemu.empty() ? default_qemu() : args_.qemu;
        if (qemu_binary_.empty() && fs::exists(bundle_.manifest.qemu_binary)) {
            qemu_binary_ = bundle_.manifest.qemu_binary;
        }
        if (qemu_binary_.empty()) {
            throw std::runtime_error("no QEMU to replay with: give --qemu PATH or set REWIND_QEMU");
        }
        const std::string build_id = elf_build_id(find_in_path(qemu_binary_));
        if (!bundle_.manifest.qemu_build_id.empty() && build_id != bundle_.manifest.qemu_build_id) {
            std::cerr << "rewind: warning: " << qemu_binary_ << " is not the QEMU build that recorded (build id "
                      << (build_id.empty() ? "none" : build_id) << ", recorded with "
                      << bundle_.manifest.qemu_build_id << "): the replay may diverge\n";
        }
    }

    std::vector<std::string> command(bool start_paused) const {
        std::vector<std::string> argv = {qemu_binary_, "-L", (work_ / "firmware").string()};
        for (auto& a : expand_replay_template(bundle_.manifest.replay_arguments, bundle_.root.string(), work_.string())) {
            argv.push_back(std::move(a));
        }
        argv.insert(argv.end(), {"-qmp", "unix:" + socket_dir_ + "/qmp.sock,server=on,wait=off"});
        if (start_paused) {
            argv.push_back("-S");
        }
        if (args_.gdb_port) {
            argv.insert(argv.end(), {"-gdb", "tcp:127.0.0.1:" + std::to_string(*args_.gdb_port)});
        }
        return argv;
    }

    void start(const std::vector<std::string>& extra_qemu_args, bool own_process_group) {
        auto argv = command(true);
        argv.insert(argv.end(), extra_qemu_args.begin(), extra_qemu_args.end());
        {
            std::ofstream cmdline(work_ / "cmdline");
            for (const auto& a : argv) {
                cmdline << a << "\n";
            }
        }
        SpawnOptions options;
        options.new_process_group = own_process_group;
        options.stdin_null = own_process_group;
        qemu_ = ChildProcess::spawn(argv, options);
        const auto deadline = Clock::now() + 60s;
        while (!qmp_.connected()) {
            if (!qemu_.running()) {
                throw std::runtime_error("QEMU " + qemu_.exit_status()->describe() +
                                         " before the replay started (command line in " +
                                         (work_ / "cmdline").string() + ")");
            }
            if (Clock::now() >= deadline) {
                throw std::runtime_error("QEMU's QMP socket did not come up within 60 s");
            }
            try {
                qmp_.connect(socket_dir_ + "/qmp.sock", 200ms);
            } catch (const QmpError&) {
            }
        }
    }

    std::uint64_t icount() { return qmp_.execute("query-replay", nullptr, 10s).value("icount", std::uint64_t{0}); }
    std::string status() { return qmp_.execute("query-status", nullptr, 10s).value("status", ""); }

    // Waits until the replay is paused (or powered off) at `target`, or stops
    // making progress for `stall`; true if it got there.
    bool wait_until_at(std::uint64_t target, std::chrono::seconds stall) {
        std::uint64_t last = 0;
        auto last_progress = Clock::now();
        while (qemu_.running()) {
            try {
                const std::uint64_t now = icount();
                const std::string st = status();
                if (now == target && (st == "paused" || st == "shutdown" || st == "debug")) {
                    return true;
                }
                if (now > target) {
                    return false;
                }
                if (now != last) {
                    last = now;
                    last_progress = Clock::now();
                } else if (Clock::now() - last_progress > stall) {
                    std::cerr << "rewind: the replay stopped making progress at instruction " << now << " (status "
                              << st << "), " << target - now << " before " << target << "\n";
                    return false;
                }
            } catch (const QmpError&) {
                break;  // QEMU went away
            }
            qmp_.wait_event("STOP", 200ms);
        }
        return false;
    }

    void quit() {
        try {
            qmp_.execute("quit", nullptr, 10s);
        } catch (const QmpError&) {
        }
        qmp_.close();
        if (!qemu_.wait(30s)) {
            qemu_.terminate(2s);
        }
    }

    const OpenedBundle& bundle() const { return bundle_; }
    const fs::path& work() const { return work_; }
    QmpClient& qmp() { return qmp_; }
    ChildProcess& qemu() { return qemu_; }
    const SessionArgs& args() const { return args_; }

private:
    SessionArgs args_;
    OpenedBundle bundle_;
    fs::path work_;
    std::string socket_dir_;
    std::string qemu_binary_;
    std::vector<fs::path> disks_;
    ChildProcess qemu_;
    QmpClient qmp_;
};

int report(const std::exception& e) {
    if (dynamic_cast<const BundleError*>(&e)) {
        std::cerr << "rewind: " << e.what() << "\n";
        return kExitBadInput;
    }
    std::cerr << "rewind: " << e.what() << "\n";
    return kExitQemuFailed;
}

// Seeks and waits; returns whether the replay got there.
bool seek_to(ReplaySession& session, std::uint64_t target) {
    if (target > session.bundle().manifest.icount) {
        throw UsageError("--seek " + std::to_string(target) + " is beyond the recording's end (" +
                         std::to_string(session.bundle().manifest.icount) + ")");
    }
    session.qmp().execute("replay-seek", {{"icount", target}}, 600s);
    return session.wait_until_at(target, 60s);
}

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
