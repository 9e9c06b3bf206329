// `rewind record [--out DIR] [--checkpoint-every SECONDS] [--keep-checkpoints N]
//                [--force] [--console FILE] -- qemu-system-x86_64 ARGS...`
// Runs QEMU with the command line rewritten by record_plan.hh and turns
// what it wrote into a bundle (bundle.hh): disk blocks and the checkpoints
// QEMU saved (thinned by checkpoint_thinning.hh) compressed.
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "bundle.hh"
#include "bundle_commands.hh"
#include "checkpoint_thinning.hh"
#include "child_process.hh"
#include "command_line.hh"
#include "log_commands.hh"
#include "qemu_binary.hh"
#include "qemu_options.hh"
#include "qmp_client.hh"
#include "record_plan.hh"
#include "replay_log.hh"
#include "rewind_version.hh"

namespace qemu_rewind::cli {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

volatile std::sig_atomic_t g_stop_signal = 0;

// The output directory cannot be used (exit status 1, without the usage text).
class OutputRefused : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

void on_stop_signal(int signal) { g_stop_signal = signal; }

struct RecordArgs {
    std::string out;
    // Guest seconds between the checkpoints QEMU saves while recording.
    // Not by default yet: on q35, a checkpoint saved while SeaBIOS drives
    // the AHCI disk restores a state the replay does not follow
    // (docs/bundles.rst, "Checkpoints").
    std::optional<std::uint64_t> checkpoint_every;
    unsigned keep_checkpoints = kDefaultKeptCheckpoints;
    bool force = false;
    std::vector<std::string> consoles;
    std::vector<std::string> qemu_command;
};

RecordArgs parse_record_args(std::span<const std::string> args) {
    RecordArgs parsed;
    ArgumentScanner scan(args);
    for (; !scan.done(); scan.next()) {
        const std::string& arg = scan.current();
        if (arg == "--") {
            scan.next();
            break;
        }
        if (scan.is("--out") || arg == "-o") {
            parsed.out = scan.value(arg == "-o" ? "-o" : "--out");
        } else if (scan.is("--checkpoint-every")) {
            const std::string text = scan.value("--checkpoint-every");
            std::size_t used = 0;
            unsigned long long seconds = 0;
            try {
                seconds = std::stoull(text, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != text.size()) {
                throw UsageError("--checkpoint-every expects a number of seconds (0: none), got '" + text + "'");
            }
            parsed.checkpoint_every = seconds ? std::optional<std::uint64_t>(seconds) : std::nullopt;
        } else if (scan.is("--keep-checkpoints")) {
            const std::string text = scan.value("--keep-checkpoints");
            std::size_t used = 0;
            unsigned long keep = 0;
            try {
                keep = std::stoul(text, &used);
            } catch (const std::exception&) {
                used = 0;
            }
            if (used != text.size() || keep < 2 || keep > 100000) {
                throw UsageError("--keep-checkpoints expects a number from 2 to 100000, got '" + text + "'");
            }
            parsed.keep_checkpoints = static_cast<unsigned>(keep);
        } else if (arg == "--force") {
            parsed.force = true;
        } else if (scan.is("--console")) {
            parsed.consoles.push_back(scan.value("--console"));
        } else if (arg.starts_with("-")) {
            throw UsageError("unknown option '" + arg + "' (the QEMU command goes after --)");
        } else {
            break;  // the QEMU binary
        }
    }
    const auto rest = scan.rest();
    parsed.qemu_command.assign(rest.begin(), rest.end());
    if (parsed.qemu_command.empty()) {
        throw UsageError("record: missing the QEMU command (rewind record [options] -- qemu-system-x86_64 ARGS...)");
    }
    return parsed;
}

enum class TimeZone { Utc, Local };

// The current time in strftime's `format`.
std::string format_now(const char* format, TimeZone zone) {
    const std::time_t now = std::time(nullptr);
    std::tm tm{};
    if (zone == TimeZone::Utc) {
        gmtime_r(&now, &tm);
    } else {
        localtime_r(&now, &tm);
    }
    char text[64];
    std::strftime(text, sizeof text, format, &tm);
    return text;
}

std::string utc_now_iso() { return format_now("%Y-%m-%dT%H:%M:%SZ", TimeZone::Utc); }

std::string default_bundle_name() { return format_now("rewind-%Y%m%d-%H%M%S.rewind", TimeZone::Local); }

std::string host_name() {
    char name[256] = {};
    gethostname(name, sizeof name - 1);
    return name;
}

// Copies files into files/<sha256> and remembers them for the manifest.
class FileStore {
public:
    explicit FileStore(fs::path bundle) : bundle_(std::move(bundle)) {}

    std::string store(const std::string& path, const std::string& role, const std::string& name) {
        std::error_code ec;
        if (!fs::is_regular_file(path, ec)) {
            throw RecordRefusal("cannot record: " + role + " '" + path + "' is not a readable file");
        }
        const std::string sha = sha256_file(path);
        const fs::path target = bundle_ / bundle_path::file(sha);
        if (!fs::exists(target, ec)) {
            fs::copy_file(path, target);
        }
        for (const auto& f : files_) {
            if (f.sha256 == sha && f.role == role && f.name == name) {
                return sha;
            }
        }
        files_.push_back({role, name, fs::absolute(path).string(), sha, fs::file_size(path)});
        return sha;
    }
    [[nodiscard]] const std::vector<StoredFile>& files() const { return files_; }

private:
    fs::path bundle_;
    std::vector<StoredFile> files_;
};

DiskProbe probe_with_qemu_img(const std::string& qemu_img, const std::string& path,
                              const std::optional<std::string>& format) {
    std::vector<std::string> argv = {qemu_img, "info", "--output=json"};
    if (format) {
        argv.insert(argv.end(), {"-f", *format});
    }
    argv.push_back(path);
    const auto r = run_capture(argv);
    if (!r.exit.success()) {
        throw RecordRefusal("cannot record disk image '" + path + "': qemu-img info failed: " + r.error_output);
    }
    const json info = json::parse(r.output, nullptr, false);
    if (info.is_discarded() || !info.contains("format") || !info.contains("virtual-size")) {
        throw RecordRefusal("cannot record disk image '" + path + "': qemu-img info gave no format/size");
    }
    if (info.contains("encrypted") && info["encrypted"].is_boolean() && info["encrypted"].get<bool>()) {
        throw RecordRefusal("cannot record disk image '" + path + "': encrypted images are not supported");
    }
    return {info["format"].get<std::string>(), info["virtual-size"].get<std::uint64_t>()};
}

void run_or_throw(const std::vector<std::string>& argv, const std::string& what) {
    const auto r = run_capture(argv);
    if (!r.exit.success()) {
        throw std::runtime_error(what + " failed (" + r.exit.describe() + "): " + r.error_output);
    }
}

// The guest disk data the "reads" layer of a drive caught, into the block store.
DiskRecord store_disk(const PlannedDrive& drive, std::size_t index, const std::string& qemu_img,
                      BlockStoreWriter& store, const fs::path& bundle) {
    const auto r = run_capture({qemu_img, "map", "--output=json", "-f", "qcow2", drive.reads_overlay});
    if (!r.exit.success()) {
        throw std::runtime_error("qemu-img map " + drive.reads_overlay + " failed: " + r.error_output);
    }
    const json extents = json::parse(r.output, nullptr, false);
    if (!extents.is_array()) {
        throw std::runtime_error("qemu-img map " + drive.reads_overlay + " gave no extent list");
    }
    std::ifstream in(drive.reads_overlay, std::ios::binary);
    DiskMap map;
    map.virtual_size = drive.virtual_size;
    std::uint64_t blocks_read = 0;
    std::vector<std::uint8_t> block(kDiskBlockSize);
    for (const auto& e : extents) {
        const bool present = e.value("present", false);
        const bool data = e.value("data", false);
        const auto depth = e.value("depth", 0);
        if (!present || depth != 0) {
            continue;  // never read through this layer
        }
        const std::uint64_t start = e.value("start", std::uint64_t{0});
        const std::uint64_t length = e.value("length", std::uint64_t{0});
        if (start % kDiskBlockSize != 0) {
            throw std::runtime_error("qemu-img map: extent at " + std::to_string(start) + " is not 4 KiB aligned");
        }
        const std::uint64_t blocks = (length + kDiskBlockSize - 1) / kDiskBlockSize;
        blocks_read += blocks;
        if (!data) {
            continue;  // read as zeroes: the rebuilt image is zero there
        }
        if (e.value("compressed", false) || !e.contains("offset")) {
            throw std::runtime_error("qemu-img map: unexpected compressed extent in " + drive.reads_overlay);
        }
        const std::uint64_t host = e["offset"].get<std::uint64_t>();
        for (std::uint64_t b = 0; b < blocks; ++b) {
            std::fill(block.begin(), block.end(), 0);
            const std::uint64_t len = std::min<std::uint64_t>(kDiskBlockSize, length - b * kDiskBlockSize);
            in.clear();
            in.seekg(static_cast<std::streamoff>(host + b * kDiskBlockSize));
            in.read(reinterpret_cast<char*>(block.data()), static_cast<std::streamsize>(len));
            if (!in) {
                throw std::runtime_error("cannot read " + drive.reads_overlay);
            }
            if (std::all_of(block.begin(), block.end(), [](std::uint8_t c) { return c == 0; })) {
                continue;
            }
            map.entries.push_back({start / kDiskBlockSize + b, store.add(block)});
        }
    }
    std::sort(map.entries.begin(), map.entries.end(),
              [](const DiskMapEntry& a, const DiskMapEntry& b) { return a.disk_block < b.disk_block; });
    const auto bytes = encode_disk_map(map);
    const fs::path map_path = bundle / bundle_path::disk_map(index);
    std::ofstream out(map_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    if (!out.flush()) {
        throw BundleError(map_path, "write error");
    }
    DiskRecord record;
    record.node = drive.replay_node;
    record.source = fs::absolute(drive.source).string();
    record.format = drive.format;
    record.virtual_size = drive.virtual_size;
    record.blocks_read = blocks_read;
    record.map = bundle_path::disk_map(index);
    return record;
}

// ROM and option-ROM file names QEMU loaded: "info roms" (BIOS, fw_cfg
// ROMs) and the romfile properties of "info qtree" (PCI option ROMs).
std::set<std::string> loaded_rom_names(QmpClient& qmp) {
    std::set<std::string> names;
    auto add = [&](std::string name) {
        if (!name.empty() && name.find(' ') == std::string::npos && name.find('/') == std::string::npos) {
            names.insert(std::move(name));
        }
    };
    std::istringstream roms(qmp.hmp("info roms"));
    std::string line;
    while (std::getline(roms, line)) {
        if (auto at = line.find("fw=genroms/"); at != std::string::npos) {
            auto end = line.find(' ', at);
            add(line.substr(at + 11, end == std::string::npos ? std::string::npos : end - at - 11));
        } else if (auto name = line.find("name=\""); name != std::string::npos && line.find("mem=rom") != std::string::npos) {
            auto end = line.find('"', name + 6);
            add(line.substr(name + 6, end - name - 6));
        }
    }
    std::istringstream qtree(qmp.hmp("info qtree"));
    while (std::getline(qtree, line)) {
        if (auto at = line.find("romfile = \""); at != std::string::npos) {
            auto end = line.find('"', at + 11);
            add(line.substr(at + 11, end - at - 11));
        }
    }
    return names;
}

std::string format_bytes(std::uint64_t bytes) {
    char text[32];
    if (bytes >= (1u << 20)) {
        std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
    } else if (bytes >= 1024) {
        std::snprintf(text, sizeof text, "%.1f KiB", static_cast<double>(bytes) / 1024);
    } else {
        std::snprintf(text, sizeof text, "%llu B", static_cast<unsigned long long>(bytes));
    }
    return text;
}

std::uint64_t size_or_zero(const fs::path& path) {
    std::error_code ec;
    const auto size = fs::file_size(path, ec);
    return ec ? 0 : size;
}

// Guest seconds so far: QEMU's running host time minus its "Host - Guest
// clock" drift ("info jit").
std::optional<double> guest_seconds(QmpClient& qmp, double running_seconds) {
    try {
        const std::string jit = qmp.hmp("info jit", 2s);
        const auto at = jit.find("Host - Guest clock");
        if (at == std::string::npos) {
            return std::nullopt;
        }
        const long long drift_ms = std::stoll(jit.substr(jit.find_first_of("-0123456789", at + 18)));
        return running_seconds - static_cast<double>(drift_ms) / 1000.0;
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

class Recorder {
public:
    explicit Recorder(RecordArgs args) : args_(std::move(args)) {}

    int run() {
        bundle_ = fs::absolute(args_.out.empty() ? default_bundle_name() : args_.out).lexically_normal();
        prepare_bundle_dir();
        qemu_ = args_.qemu_command.front();
        qemu_img_ = find_qemu_img(qemu_);
        char socket_dir[] = "/tmp/rewind-record-XXXXXX";
        if (!mkdtemp(socket_dir)) {
            throw std::runtime_error(std::string("mkdtemp: ") + std::strerror(errno));
        }
        socket_dir_ = socket_dir;
        work_ = bundle_ / ".recording";
        fs::create_directories(work_);
        fs::create_directories(bundle_ / bundle_path::kFilesDir);

        FileStore files(bundle_);
        PlanEnvironment env;
        env.probe_disk = [&](const std::string& path, const std::optional<std::string>& format) {
            if (qemu_img_.empty()) {
                throw RecordRefusal("cannot record disk '" + path + "': no qemu-img found (set REWIND_QEMU_IMG)");
            }
            return probe_with_qemu_img(qemu_img_, path, format);
        };
        env.store_file = [&](const std::string& path, const std::string& role) {
            return files.store(path, role, fs::path(path).filename().string());
        };
        RecordRequest request{args_.qemu_command, bundle_.string(), work_.string(), socket_dir_ + "/qmp.sock",
                              args_.checkpoint_every};
        plan_ = plan_recording(request, env);
        for (const auto& note : plan_.notes) {
            std::cerr << "rewind: note: " << note << "\n";
        }
        for (const auto& d : plan_.drives) {
            run_or_throw({qemu_img_, "create", "-q", "-f", "qcow2", "-o", "cluster_size=4096", d.reads_overlay,
                          std::to_string(d.virtual_size)},
                         "qemu-img create " + d.reads_overlay);
            run_or_throw({qemu_img_, "create", "-q", "-f", "qcow2", d.writes_overlay, std::to_string(d.virtual_size)},
                         "qemu-img create " + d.writes_overlay);
        }

        std::signal(SIGINT, on_stop_signal);
        std::signal(SIGTERM, on_stop_signal);
        std::signal(SIGHUP, on_stop_signal);
        const auto started = Clock::now();
        qemu_process_ = ChildProcess::spawn(plan_.record_command);
        connect_qmp();
        if (qmp_.connected()) {
            collect_firmware(files);
        }
        const std::string stop = supervise(started);
        if (!ever_connected_) {
            // QEMU refused the command line or died before it ran anything.
            throw std::runtime_error("QEMU " + qemu_process_.exit_status().value_or(ChildExit{}).describe() +
                                     " before the recording started; no bundle made");
        }
        finish(files, stop);
        std::error_code ec;
        fs::remove_all(socket_dir_, ec);
        return stop == "qemu-died" ? kExitQemuFailed : kExitOk;
    }

    // Removes what a failed recording left: everything if QEMU wrote no
    // log, else only the scratch files (the log is worth keeping).
    void cleanup_after_failure() {
        std::error_code ec;
        if (!socket_dir_.empty()) {
            fs::remove_all(socket_dir_, ec);
        }
        if (!work_.empty()) {
            fs::remove_all(work_, ec);
        }
        if (created_bundle_ && (!ever_connected_ || !fs::exists(bundle_ / bundle_path::kLog, ec))) {
            fs::remove_all(bundle_, ec);
        }
    }

private:
    void prepare_bundle_dir() {
        std::error_code ec;
        if (fs::exists(bundle_, ec)) {
            const bool empty_dir = fs::is_directory(bundle_, ec) && fs::is_empty(bundle_, ec);
            if (!empty_dir && !args_.force) {
                throw OutputRefused(bundle_.string() + " exists (use --force to replace it)");
            }
            if (!empty_dir && !looks_like_bundle(bundle_) && !fs::exists(bundle_ / ".recording", ec)) {
                throw OutputRefused(bundle_.string() + " exists and is not a bundle: not replacing it");
            }
            fs::remove_all(bundle_);
        }
        fs::create_directories(bundle_);
        created_bundle_ = true;
        if (bundle_.string().find(',') != std::string::npos) {
            throw OutputRefused("the bundle path must not contain ',' (QEMU option syntax): " + bundle_.string());
        }
    }

    void connect_qmp() {
        const auto deadline = Clock::now() + 60s;
        while (Clock::now() < deadline && qemu_process_.running() && !g_stop_signal) {
            try {
                qmp_.connect(plan_.qmp_socket, 200ms);
                ever_connected_ = true;
                return;
            } catch (const QmpError&) {
            }
        }
    }

    void collect_firmware(FileStore& files) {
        std::vector<std::string> dirs;
        // The user's -L directories come first, as in QEMU.
        for (std::size_t i = 1; i + 1 < args_.qemu_command.size(); ++i) {
            if (args_.qemu_command[i] == "-L") {
                dirs.push_back(args_.qemu_command[i + 1]);
            }
        }
        for (auto& d : qemu_firmware_dirs(qemu_)) {
            dirs.push_back(std::move(d));
        }
        try {
            for (const auto& name : loaded_rom_names(qmp_)) {
                bool found = false;
                for (const auto& dir : dirs) {
                    const fs::path candidate = fs::path(dir) / name;
                    std::error_code ec;
                    if (fs::is_regular_file(candidate, ec)) {
                        files.store(candidate.string(), "firmware", name);
                        found = true;
                        break;
                    }
                }
                if (!found) {
                    notes_.push_back("firmware '" + name + "' not found in QEMU's search path: not in the bundle");
                }
            }
        } catch (const std::exception& e) {
            notes_.push_back(std::string("could not list the firmware QEMU loaded: ") + e.what());
        }
    }

    // Runs until the guest powers off, the user stops us, or QEMU exits.
    std::string supervise(Clock::time_point started) {
        // No status line over a guest console on the same terminal.
        const auto& cmd = args_.qemu_command;
        const bool guest_on_terminal = std::any_of(cmd.begin(), cmd.end(), [](const std::string& a) {
            return a == "-nographic" || a == "--nographic" || a.find("stdio") != std::string::npos;
        });
        const bool tty = isatty(STDERR_FILENO) && !guest_on_terminal;
        auto next_status = Clock::now() + 1s;
        std::string stop;
        bool status_shown = false;
        while (stop.empty()) {
            if (!qemu_process_.running()) {
                break;
            }
            if (g_stop_signal) {
                stop = "interrupted";
                break;
            }
            if (qmp_.connected()) {
                const auto shutdown = qmp_.wait_event("SHUTDOWN", 100ms);
                if (!shutdown.is_null()) {
                    // guest=false: QEMU was told to stop (a signal, a
                    // monitor's quit), e.g. the terminal's Ctrl-C reached it.
                    const auto data = shutdown.value("data", nlohmann::json::object());
                    const bool by_guest = data.value("guest", true);
                    // A reset under -no-reboot (e.g. panic=-1) or a panic
                    // device's report end the run too; say which.
                    const std::string reason = data.value("reason", "");
                    stop = !by_guest                   ? "interrupted"
                           : reason == "guest-reset"   ? "reset"
                           : reason == "guest-panic"   ? "panic"
                                                       : "poweroff";
                    break;
                }
            } else {
                std::this_thread::sleep_for(100ms);
            }
            if (tty && qmp_.connected() && Clock::now() >= next_status) {
                next_status += 1s;
                show_status(started);
                status_shown = true;
            }
        }
        if (status_shown) {
            std::cerr << "\n";
        }
        if (qmp_.connected() && qemu_process_.running()) {
            try {
                icount_ = qmp_.execute("query-replay", nullptr, 10s).value("icount", std::uint64_t{0});
            } catch (const QmpError&) {
            }
            try {
                qmp_.execute("quit", nullptr, 10s);
            } catch (const QmpError&) {
                // QEMU closes the socket as it exits
            }
        }
        qmp_.close();
        auto exit = qemu_process_.wait(60s);
        if (!exit) {
            notes_.push_back("QEMU did not exit within 60 s of quit: killed");
            exit = qemu_process_.terminate(2s);
        }
        if (stop.empty()) {
            if (g_stop_signal && exit->exited) {
                stop = "interrupted";  // QEMU saw the terminal's Ctrl-C too
            } else if (exit->success()) {
                stop = "qemu-exited";
            } else if (!ever_connected_) {
                stop = "qemu-died";  // run() reports the failed start
            } else {
                stop = "qemu-died";
                std::cerr << "rewind: QEMU " << exit->describe()
                          << "; keeping what it wrote (the replay ends where the log does)\n";
                notes_.push_back("QEMU " + exit->describe() + " during the recording; the log may end early");
            }
        }
        return stop;
    }

    void show_status(Clock::time_point started) {
        try {
            const auto icount = qmp_.execute("query-replay", nullptr, 2s).value("icount", std::uint64_t{0});
            const double wall = std::chrono::duration<double>(Clock::now() - started).count();
            const auto guest = guest_seconds(qmp_, wall);
            char text[160];
            std::snprintf(text, sizeof text, "\rrewind: recording: guest %s, %llu instructions, log %s   ",
                          guest ? (std::to_string(static_cast<long long>(*guest * 10) / 10) + "." +
                                   std::to_string(static_cast<long long>(*guest * 10) % 10) + " s")
                                      .c_str()
                                : "?",
                          static_cast<unsigned long long>(icount),
                          format_bytes(size_or_zero(bundle_ / bundle_path::kLog)).c_str());
            std::cerr << text << std::flush;
        } catch (const QmpError&) {
        }
    }

    void finish(FileStore& files, const std::string& stop) {
        const fs::path log = bundle_ / bundle_path::kLog;
        if (!fs::exists(log)) {
            throw std::runtime_error("QEMU wrote no log (" + stop + "); no bundle made");
        }
        Manifest m;
        m.created = utc_now_iso();
        m.host = host_name();
        m.rewind_version = REWIND_VERSION;
        const std::string qemu_path = find_in_path(qemu_);
        m.qemu_binary = qemu_path.empty() ? qemu_ : fs::absolute(qemu_path).string();
        try {
            m.qemu_sha256 = sha256_file(m.qemu_binary);
        } catch (const BundleError&) {
            m.qemu_sha256 = "";
        }
        m.qemu_build_id = elf_build_id(m.qemu_binary);
        m.original_command = args_.qemu_command;
        m.record_command = plan_.record_command;
        m.replay_arguments = plan_.replay_arguments;
        m.stop_reason = stop;
        m.checkpoint_every = args_.checkpoint_every;
        // The log's own count when QEMU finished it (it goes on to the
        // quit), else what QEMU last reported. The guest's serial output,
        // when the log has it (EVENT_CHAR_OUTPUT), for module addresses.
        std::uint64_t log_icount = 0;
        bool log_complete = false;
        std::map<std::uint8_t, std::string> char_output;
        try {
            ReaderOptions options;
            options.allow_unfinalized_header = true;
            options.tolerate_truncated_tail = true;
            ReplayLogReader reader(log, options);
            while (auto event = reader.next()) {
                if (const auto* out = std::get_if<CharOutputPayload>(&event->payload)) {
                    char_output[out->chardev].append(out->data.begin(), out->data.end());
                }
            }
            log_icount = reader.icount();
            log_complete = reader.saw_end_event() && !reader.truncation();
        } catch (const std::exception& e) {
            notes_.push_back(std::string("the log cannot be read to its end: ") + e.what());
        }
        m.icount = log_complete || !icount_ ? log_icount : *icount_;
        for (const auto& [chardev, text] : char_output) {
            console_from_log_ += text + "\n";
        }

        BlockStoreWriter store(bundle_);
        for (std::size_t i = 0; i < plan_.drives.size(); ++i) {
            m.disks.push_back(store_disk(plan_.drives[i], i, qemu_img_, store, bundle_));
        }
        store.finish();
        m.stored_blocks = store.count();
        if (plan_.drives.empty()) {
            std::error_code ec;
            fs::remove(bundle_ / bundle_path::kBlockStore, ec);
            fs::remove(bundle_ / bundle_path::kBlockHashes, ec);
            fs::remove(bundle_ / bundle_path::kDisksDir, ec);
        }
        m.block_store_compressed = true;
        pack_checkpoints(m);
        m.modules = scan_modules();
        m.files = files.files();
        m.notes = plan_.notes;
        m.notes.insert(m.notes.end(), notes_.begin(), notes_.end());

        std::error_code ec;
        fs::remove_all(work_, ec);
        for (const auto& entry : fs::recursive_directory_iterator(bundle_)) {
            if (!entry.is_regular_file()) {
                continue;
            }
            const std::string rel = fs::relative(entry.path(), bundle_).string();
            if (rel == bundle_path::kManifest) {
                continue;
            }
            m.contents.push_back({rel, entry.file_size(), sha256_file(entry.path())});
        }
        std::sort(m.contents.begin(), m.contents.end(), [](const auto& a, const auto& b) { return a.path < b.path; });
        write_manifest(bundle_, m);

        std::uint64_t total = 0;
        for (const auto& c : m.contents) {
            total += c.size;
        }
        std::cerr << "rewind: recorded " << m.icount << " instructions (" << stop << ") into " << bundle_.string()
                  << ": " << format_bytes(total) << " (log " << format_bytes(size_or_zero(log)) << ", "
                  << m.files.size() << " files, " << m.disks.size() << " disks, " << m.stored_blocks
                  << " stored disk blocks)\n";
        for (const auto& note : notes_) {
            std::cerr << "rewind: note: " << note << "\n";
        }
    }

    // QEMU's checkpoint file (replay.log.ckpt), thinned and compressed into
    // replay.log.ckpt.zst.  A recording whose checkpoints cannot be packed
    // is still a recording: it goes without them, with a note.
    void pack_checkpoints(Manifest& m) {
        const fs::path raw = bundle_ / bundle_path::kCheckpoints;
        const fs::path packed = bundle_ / bundle_path::kCompressedCheckpoints;
        std::error_code ec;
        if (!fs::is_regular_file(raw, ec)) {
            return;
        }
        const auto t0 = Clock::now();
        std::cerr << "rewind: packing checkpoints (" << format_bytes(fs::file_size(raw, ec)) << " saved)...\n";
        try {
            const ThinnedCheckpoints kept = thin_checkpoints(raw, packed, m.icount, args_.keep_checkpoints);
            m.checkpoints = Manifest::Checkpoints{kept.raw_bytes, kept.icounts};
            std::cerr << "rewind: kept " << kept.icounts.size() << " checkpoints: " << format_bytes(kept.raw_bytes)
                      << ", " << format_bytes(kept.compressed_bytes) << " compressed, in "
                      << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count() / 1000.0
                      << " s\n";
        } catch (const std::exception& e) {
            notes_.push_back(std::string("the checkpoints QEMU saved could not be packed, the bundle has none: ") +
                             e.what());
            fs::remove(packed, ec);
        }
        fs::remove(raw, ec);
    }

    // Module load addresses the guest printed: in --console files, and in
    // the files of file-backed serial ports of the recording.
    std::vector<ModuleRecord> scan_modules() {
        std::vector<std::string> sources = args_.consoles;
        const auto& cmd = args_.qemu_command;
        for (std::size_t i = 1; i + 1 < cmd.size(); ++i) {
            if (cmd[i] == "-chardev" || cmd[i] == "--chardev") {
                const auto c = KeyValueList::parse(cmd[i + 1]);
                if (c.implied() == "file" && c.get("path")) {
                    sources.push_back(*c.get("path"));
                }
                if (c.get("logfile")) {
                    sources.push_back(*c.get("logfile"));
                }
            } else if ((cmd[i] == "-serial" || cmd[i] == "--serial") && cmd[i + 1].starts_with("file:")) {
                sources.push_back(cmd[i + 1].substr(5));
            }
        }
        std::string text = console_from_log_;
        for (const auto& s : sources) {
            std::ifstream in(s, std::ios::binary);
            text += std::string(std::istreambuf_iterator<char>(in), {}) + "\n";
        }
        return scan_module_lines(text);
    }

    RecordArgs args_;
    fs::path bundle_;
    fs::path work_;
    std::string socket_dir_;
    std::string qemu_;
    std::string qemu_img_;
    RecordPlan plan_;
    ChildProcess qemu_process_;
    QmpClient qmp_;
    std::optional<std::uint64_t> icount_;
    std::vector<std::string> notes_;
    bool created_bundle_ = false;
    bool ever_connected_ = false;
    std::string console_from_log_;  // EVENT_CHAR_OUTPUT bytes
};

}  // namespace

int record(std::span<const std::string> args) {
    RecordArgs parsed = parse_record_args(args);
    Recorder recorder(std::move(parsed));
    try {
        return recorder.run();
    } catch (const RecordRefusal& e) {
        recorder.cleanup_after_failure();
        std::cerr << "rewind: " << e.what() << "\n";
        return kExitBadInput;
    } catch (const OutputRefused& e) {
        std::cerr << "rewind: " << e.what() << "\n";
        return kExitUsage;
    } catch (const UsageError&) {
        recorder.cleanup_after_failure();
        throw;
    } catch (const std::exception& e) {
        recorder.cleanup_after_failure();
        std::cerr << "rewind: record failed: " << e.what() << "\n";
        return kExitQemuFailed;
    }
}

}  // namespace qemu_rewind::cli
