// A replay of a bundle run by rewind: the bundle opened and checked, the
// disks rebuilt, QEMU started paused with a QMP socket of the session's
// own.  Shared by `rewind replay`, `rewind debug` and `rewind
// check-restores`.
#pragma once

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "bundle.hh"
#include "bundle_commands.hh"
#include "log_commands.hh"
#include "child_process.hh"
#include "command_line.hh"
#include "qemu_binary.hh"
#include "qmp_client.hh"
#include "record_plan.hh"

namespace qemu_rewind::cli {

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


std::uint64_t parse_number(const std::string& text, const std::string& what);
int parse_port(const std::string& text, const std::string& what);
// replay's and debug's options (debug: gdb's instead of QEMU's after --).
SessionArgs parse_session_args(std::span<const std::string> args, bool debug);
// Checks the files a replay uses against the manifest's hashes.
void check_used_files(const OpenedBundle& bundle);

// A replay of a bundle running in QEMU, paused at its start.
class ReplaySession {
    using Clock = std::chrono::steady_clock;
public:
    explicit ReplaySession(SessionArgs args) : args_(std::move(args)) {}

    ~ReplaySession() {
        qmp_.close();
        if (qemu_.pid() > 0) {
            qemu_.terminate(std::chrono::seconds(2));
        }
        // The rebuilt disks can be large; the rest (serial output) stays.
        std::error_code ec;
        for (const auto& disk : disks_) {
            std::filesystem::remove(disk, ec);
        }
        if (log_in_work_) {
            std::filesystem::remove(work_ / bundle_path::kCheckpoints, ec);
            std::filesystem::remove(work_ / bundle_path::kLog, ec);
        }
        if (!socket_dir_.empty()) {
            std::filesystem::remove_all(socket_dir_, ec);
        }
    }

    // Opens and checks the bundle; throws BundleError.
    void prepare() {
        const std::filesystem::path root = std::filesystem::absolute(args_.bundle).lexically_normal();
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
            work_ = std::filesystem::absolute(args_.workdir).lexically_normal();
            std::filesystem::create_directories(work_);
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
        const std::filesystem::path firmware = work_ / "firmware";
        std::filesystem::create_directories(firmware);
        for (const auto& f : bundle_.manifest.files) {
            if (f.role != "firmware") {
                continue;
            }
            const std::filesystem::path link = firmware / std::filesystem::path(f.name).filename();
            std::error_code ec;
            std::filesystem::remove(link, ec);
            std::filesystem::create_symlink(bundle_.root / bundle_path::file(f.sha256), link);
        }
        if (bundle_.compressed_checkpoints) {
            // QEMU maps FILE.ckpt next to its log FILE: both go into the
            // work directory, the log as a link.
            const std::filesystem::path log = work_ / bundle_path::kLog;
            std::error_code ec;
            std::filesystem::remove(log, ec);
            std::filesystem::create_symlink(bundle_.log, log);
            unpack_checkpoints(bundle_, work_ / bundle_path::kCheckpoints);
            log_in_work_ = true;
        }
        for (std::size_t i = 0; i < bundle_.manifest.disks.size(); ++i) {
            const std::filesystem::path image = work_ / ("disk" + std::to_string(i) + ".img");
            disks_.push_back(image);  // removed at the end even if the rebuild fails
            rebuild_disk(bundle_, i, image);
        }

        qemu_binary_ = args_.qemu.empty() ? default_qemu() : args_.qemu;
        if (qemu_binary_.empty() && std::filesystem::exists(bundle_.manifest.qemu_binary)) {
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
        std::vector<std::string> arguments = bundle_.manifest.replay_arguments;
        if (log_in_work_) {
            const std::string in_bundle = std::string(kBundleToken) + "/" + std::string(bundle_path::kLog);
            const std::string in_work = std::string(kWorkToken) + "/" + std::string(bundle_path::kLog);
            for (auto& a : arguments) {
                for (auto at = a.find(in_bundle); at != std::string::npos; at = a.find(in_bundle, at + in_work.size())) {
                    a.replace(at, in_bundle.size(), in_work);
                }
            }
        }
        for (auto& a : expand_replay_template(arguments, bundle_.root.string(), work_.string())) {
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
        const auto deadline = Clock::now() + std::chrono::seconds(60);
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
                qmp_.connect(socket_dir_ + "/qmp.sock", std::chrono::milliseconds(200));
            } catch (const QmpError&) {
            }
        }
    }

    std::uint64_t icount() { return qmp_.execute("query-replay", nullptr, std::chrono::seconds(10)).value("icount", std::uint64_t{0}); }
    std::string status() { return qmp_.execute("query-status", nullptr, std::chrono::seconds(10)).value("status", ""); }

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
            qmp_.wait_event("STOP", std::chrono::milliseconds(200));
        }
        return false;
    }

    void quit() {
        try {
            qmp_.execute("quit", nullptr, std::chrono::seconds(10));
        } catch (const QmpError&) {
        }
        qmp_.close();
        if (!qemu_.wait(std::chrono::seconds(30))) {
            qemu_.terminate(std::chrono::seconds(2));
        }
    }

    const OpenedBundle& bundle() const { return bundle_; }
    const std::filesystem::path& work() const { return work_; }
    QmpClient& qmp() { return qmp_; }
    ChildProcess& qemu() { return qemu_; }
    const SessionArgs& args() const { return args_; }

private:
    SessionArgs args_;
    OpenedBundle bundle_;
    std::filesystem::path work_;
    std::string socket_dir_;
    std::string qemu_binary_;
    std::vector<std::filesystem::path> disks_;
    bool log_in_work_ = false;  // the unpacked checkpoints beside a link to the log
    ChildProcess qemu_;
    QmpClient qmp_;
};


// Prints the error; the exit status for it (2 bad bundle, 3 otherwise).
int report(const std::exception& e);
// Seeks and waits; returns whether the replay got there.
bool seek_to(ReplaySession& session, std::uint64_t target);

}  // namespace qemu_rewind::cli
