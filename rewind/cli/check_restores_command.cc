// `rewind check-restores BUNDLE`: the restore-fidelity checker.
//
// Reverse execution is "restore a checkpoint, replay forward", so it is
// only as good as the restore.  For points P of the recording (random
// ones, and ones right after device activity in the log), the checker
// replays straight to each P and takes the machine's state
// (query-rewind-state: RAM, every device section and vCPU, the armed
// timers), then seeks back to each P, newest first, so that every seek
// restores an older checkpoint and replays forward, and compares.  It
// names the first section and field that differ (docs/restore-fidelity.rst).
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>

#include "bundle_commands.hh"
#include "log_commands.hh"
#include "machine_state.hh"
#include "replay_log.hh"
#include "replay_session.hh"

namespace qemu_rewind::cli {

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct CheckArgs {
    SessionArgs session;
    std::uint64_t random_points = 20;
    std::uint64_t burst_points = 10;
    std::optional<std::uint64_t> seed;
    std::vector<std::uint64_t> at;  // --at: points given by hand
    std::string json_out;
};

CheckArgs parse_check_args(std::span<const std::string> args) {
    CheckArgs parsed;
    ArgumentScanner scan(args);
    for (; !scan.done(); scan.next()) {
        const std::string& arg = scan.current();
        if (scan.is("--points")) {
            parsed.random_points = parse_number(scan.value("--points"), "--points");
        } else if (scan.is("--bursts")) {
            parsed.burst_points = parse_number(scan.value("--bursts"), "--bursts");
        } else if (scan.is("--seed")) {
            parsed.seed = parse_number(scan.value("--seed"), "--seed");
        } else if (scan.is("--at")) {
            parsed.at.push_back(parse_number(scan.value("--at"), "--at"));
        } else if (scan.is("--json")) {
            parsed.json_out = scan.value("--json");
        } else if (scan.is("--workdir")) {
            parsed.session.workdir = scan.value("--workdir");
        } else if (scan.is("--qemu")) {
            parsed.session.qemu = scan.value("--qemu");
        } else if (arg.starts_with("-")) {
            throw UsageError("unknown option '" + arg + "'");
        } else if (parsed.session.bundle.empty()) {
            parsed.session.bundle = arg;
        } else {
            throw UsageError("unexpected argument '" + arg + "'");
        }
    }
    if (parsed.session.bundle.empty()) {
        throw UsageError("missing BUNDLE argument");
    }
    if (!parsed.at.empty()) {
        parsed.random_points = parsed.burst_points = 0;
    }
    if (parsed.random_points + parsed.burst_points + parsed.at.size() == 0) {
        throw UsageError("--points and --bursts are both 0: nothing to check");
    }
    return parsed;
}

struct Point {
    std::uint64_t icount = 0;
    std::string kind;  // "random", "device"
    MachineState straight;
    double seek_s = 0;
    std::vector<StateDifference> differences;
};

// Instruction counts of device activity in the log: block, network,
// chardev input and USB completions.  A reservoir of up to `want`.
std::vector<std::uint64_t> device_activity(const fs::path& log, std::uint64_t lo, std::uint64_t hi,
                                           std::uint64_t want, std::mt19937_64& rng) {
    std::vector<std::uint64_t> picked;
    if (want == 0) {
        return picked;
    }
    ReplayLogReader reader(log);
    std::uint64_t seen = 0;
    while (auto event = reader.next()) {
        const auto async = event->async_kind();
        const bool device = (async && (*async == AsyncKind::Block || *async == AsyncKind::Net ||
                                       *async == AsyncKind::CharRead || *async == AsyncKind::Input)) ||
                            event->usb_async_kind() == UsbAsyncKind::Complete;
        if (!device || event->icount < lo || event->icount > hi) {
            continue;
        }
        ++seen;
        if (picked.size() < want) {
            picked.push_back(event->icount);
        } else if (const auto slot = std::uniform_int_distribution<std::uint64_t>(0, seen - 1)(rng); slot < want) {
            picked[slot] = event->icount;
        }
    }
    return picked;
}

// Names QEMU's functions by address, from the running binary's symbols.
class QemuSymbols {
public:
    explicit QemuSymbols(pid_t pid) : pid_(pid) {}

    std::string operator()(std::uint64_t address) {
        load();
        if (auto it = names_.find(address - base_); it != names_.end()) {
            return it->second;
        }
        std::ostringstream hex;
        hex << "0x" << std::hex << address;
        return hex.str();
    }

private:
    void load() {
        if (loaded_) {
            return;
        }
        loaded_ = true;
        std::error_code ec;
        const auto exe = fs::read_symlink("/proc/" + std::to_string(pid_) + "/exe", ec);
        std::ifstream maps("/proc/" + std::to_string(pid_) + "/maps");
        std::string line;
        while (std::getline(maps, line)) {
            std::istringstream in(line);
            std::string range, perms, offset, dev, inode, path;
            in >> range >> perms >> offset >> dev >> inode >> path;
            if (!ec && path == exe.string() && std::stoull(offset, nullptr, 16) == 0) {
                base_ = std::stoull(range.substr(0, range.find('-')), nullptr, 16);
                break;
            }
        }
        if (ec) {
            return;
        }
        const auto nm = run_capture({"nm", "--defined-only", exe.string()});
        std::istringstream symbols(nm.output);
        while (std::getline(symbols, line)) {
            std::istringstream in(line);
            std::string value, type, name;
            if (in >> value >> type >> name && (type == "t" || type == "T")) {
                names_[std::stoull(value, nullptr, 16)] = name;
            }
        }
    }

    pid_t pid_;
    bool loaded_ = false;
    std::uint64_t base_ = 0;
    std::map<std::uint64_t, std::string> names_;
};

MachineState query_state(ReplaySession& session) {
    return parse_machine_state(session.qmp().execute("query-rewind-state", {{"fields", true}}, 120s));
}

// Runs the replay forward (no restore: replay-break, not replay-seek) to icount.
void run_straight_to(ReplaySession& session, std::uint64_t icount) {
    session.qmp().execute("replay-break", {{"icount", icount}}, 10s);
    session.qmp().execute("cont", nullptr, 10s);
    if (!session.wait_until_at(icount, 60s)) {
        throw std::runtime_error("the straight replay did not reach instruction " + std::to_string(icount));
    }
}

void write_json(const std::string& path, std::uint64_t seed, const std::vector<Point>& points) {
    json out = {{"seed", seed}, {"points", json::array()}};
    std::size_t exact = 0;
    for (const auto& p : points) {
        json diffs = json::array();
        for (const auto& d : p.differences) {
            diffs.push_back({{"where", d.where}, {"detail", d.detail}});
        }
        exact += p.differences.empty();
        out["points"].push_back({{"icount", p.icount},
                                 {"kind", p.kind},
                                 {"exact", p.differences.empty()},
                                 {"seek_s", p.seek_s},
                                 {"differences", diffs}});
    }
    out["total"] = points.size();
    out["exact"] = exact;
    std::ofstream(path) << out.dump(1) << "\n";
}

}  // namespace

int check_restores(std::span<const std::string> args) {
    const CheckArgs parsed = parse_check_args(args);
    ReplaySession session(parsed.session);
    try {
        session.prepare();
        const std::uint64_t seed = parsed.seed.value_or(std::random_device{}());
        std::mt19937_64 rng(seed);
        const std::uint64_t end = session.bundle().manifest.icount;
        if (end < 1000) {
            throw UsageError("the recording is too short to check (" + std::to_string(end) + " instructions)");
        }
        // Not the last instructions: the guest's power-off ends the replay.
        const std::uint64_t lo = 1, hi = end - 2;

        std::map<std::uint64_t, std::string> chosen;
        std::uniform_int_distribution<std::uint64_t> anywhere(lo, hi);
        for (std::uint64_t i = 0; i < parsed.random_points; ++i) {
            chosen.emplace(anywhere(rng), "random");
        }
        std::uniform_int_distribution<std::uint64_t> shortly(0, 2000);
        for (const auto at :
             device_activity(session.bundle().root / bundle_path::kLog, lo, hi, parsed.burst_points, rng)) {
            chosen.emplace(std::min(at + shortly(rng), hi), "device");
        }
        for (const auto at : parsed.at) {
            if (at < lo || at > hi) {
                throw UsageError("--at " + std::to_string(at) + " is outside the recording (1.." + std::to_string(hi) +
                                 ")");
            }
            chosen.emplace(at, "given");
        }
        std::vector<Point> points;
        for (const auto& [icount, kind] : chosen) {
            points.push_back({icount, kind, {}, 0, {}});
        }
        std::cerr << "rewind: checking restores at " << points.size() << " points of " << end
                  << " instructions (seed " << seed << ")\n";

        session.start({}, true);
        // The straight replay: no restore on the way.
        for (std::size_t i = 0; i < points.size(); ++i) {
            const auto t0 = Clock::now();
            run_straight_to(session, points[i].icount);
            points[i].straight = query_state(session);
            std::cerr << "  straight " << i + 1 << "/" << points.size() << " at " << points[i].icount << " ("
                      << points[i].kind << ", "
                      << std::chrono::duration<double>(Clock::now() - t0).count() << " s)\n";
        }
        // Past the last point, so that going back to it restores too.
        run_straight_to(session, std::min(points.back().icount + (end - points.back().icount) / 2 + 1, hi + 1));

        QemuSymbols symbols(session.qemu().pid());
        const SymbolNamer namer = [&](std::uint64_t a) { return symbols(a); };
        std::size_t exact = 0;
        for (std::size_t n = points.size(); n-- > 0;) {
            Point& p = points[n];
            const auto t0 = Clock::now();
            session.qmp().execute("replay-seek", {{"icount", p.icount}}, 600s);
            if (!session.wait_until_at(p.icount, 60s)) {
                p.differences.push_back({"replay", "the seek back did not reach the instruction (divergence)"});
            } else {
                p.seek_s = std::chrono::duration<double>(Clock::now() - t0).count();
                p.differences =
                    compare_machine_states(p.straight, query_state(session), default_state_exclusions(), namer);
            }
            exact += p.differences.empty();
            std::cout << (p.differences.empty() ? "exact   " : "DIFFERS ") << p.icount << " (" << p.kind
                      << ", seek " << p.seek_s << " s)\n";
            for (const auto& d : p.differences) {
                std::cout << "    " << d.where << ": " << d.detail << "\n";
            }
            std::cout.flush();
            if (!session.qemu().running()) {
                // The report still says what was found, and what was not checked.
                std::cerr << "rewind: QEMU ended during the check\n";
                for (std::size_t k = 0; k < n; ++k) {
                    points[k].differences.push_back({"replay", "not checked: QEMU ended at an earlier point"});
                }
                break;
            }
        }
        std::cout << exact << " of " << points.size() << " restores exact\n";
        if (!parsed.json_out.empty()) {
            write_json(parsed.json_out, seed, points);
        }
        session.quit();
        return exact == points.size() ? kExitOk : kExitNotExact;
    } catch (const std::exception& e) {
        return report(e);
    }
}

}  // namespace qemu_rewind::cli
