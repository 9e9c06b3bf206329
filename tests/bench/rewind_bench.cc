// make bench: QEMU Rewind against the unpatched vanilla build of the same
// base, on scenario (a), measured in the same run, runs interleaved so
// that machine noise hits both alike. Prints one table of medians and
// ratios, and writes build/bench/results.json:
//   {"metrics": {NAME: {"ours": x, "vanilla": y, "unit": "s"|...}}, ...}
#include "gdb_session.hh"
#include "qemu.hh"
#include "scenarios.hh"
#include "symbols.hh"
#include "util.hh"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <vector>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

struct Build {
    std::string name;                      // "ours" or "vanilla"
    std::string qemu;
    std::string qemu_img;
    std::vector<std::string> firmware_dirs;
};

// The boot scenario calls sethostname(2) once, about 1e9 instructions
// before it powers off: a breakpoint there is the reverse-continue target.
const char *const kMarker = "__x64_sys_sethostname";
// Upstream's reverse debugging can deadlock (fixed by our patch 0006): a
// command that takes longer than this counts as hung.
constexpr auto kGdbTimeout = std::chrono::seconds(300);

struct Metric {
    std::string unit;
    std::map<std::string, std::vector<double>> runs;   // build -> values
};

class Results {
public:
    void fail(const std::string &what) { failures_.push_back(what); }
    const std::vector<std::string> &failures() const { return failures_; }

    void add(const std::string &metric, const std::string &unit,
             const std::string &build, double value)
    {
        auto &m = metrics_[metric];
        m.unit = unit;
        m.runs[build].push_back(value);
        order_.push_back(metric);
    }

    static double median(std::vector<double> v)
    {
        if (v.empty()) {
            return 0;
        }
        std::sort(v.begin(), v.end());
        std::size_t n = v.size();
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    }

    json to_json() const
    {
        json out = {{"metrics", json::object()}, {"runs", json::object()}};
        for (const auto &[name, m] : metrics_) {
            json row = {{"unit", m.unit}};
            json raw = json::object();
            for (const auto &[build, values] : m.runs) {
                row[build] = median(values);
                raw[build] = values;
            }
            out["metrics"][name] = row;
            out["runs"][name] = raw;
        }
        out["failures"] = failures_;
        return out;
    }

    void print_table(std::ostream &os) const
    {
        char line[256];
        snprintf(line, sizeof line, "%-28s %-13s %14s %14s %10s\n", "metric",
                 "unit", "ours", "vanilla", "ours/van");
        os << line << std::string(83, '-') << "\n";
        std::vector<std::string> seen;
        for (const auto &name : order_) {
            if (std::find(seen.begin(), seen.end(), name) != seen.end()) {
                continue;
            }
            seen.push_back(name);
            const Metric &m = metrics_.at(name);
            auto get = [&](const char *b) -> std::optional<double> {
                auto it = m.runs.find(b);
                if (it == m.runs.end()) {
                    return std::nullopt;
                }
                return median(it->second);
            };
            auto fmt = [&](std::optional<double> v) {
                char b[32];
                if (!v) {
                    return std::string("-");
                }
                if (m.unit == "s") {
                    snprintf(b, sizeof b, "%.3f", *v);
                } else {
                    snprintf(b, sizeof b, "%.4g", *v);
                }
                return std::string(b);
            };
            auto ours = get("ours"), van = get("vanilla");
            std::string ratio = "-";
            if (ours && van && *van != 0) {
                char b[32];
                snprintf(b, sizeof b, "%.2f", *ours / *van);
                ratio = b;
            }
            snprintf(line, sizeof line, "%-28s %-13s %14s %14s %10s\n",
                     name.c_str(), m.unit.c_str(), fmt(ours).c_str(),
                     fmt(van).c_str(), ratio.c_str());
            os << line;
        }
    }

private:
    std::vector<std::string> failures_;
    std::map<std::string, Metric> metrics_;
    std::vector<std::string> order_;
};

QemuConfig config_for(const Build &b, RrMode mode, const std::string &log)
{
    Scenario s{"boot", "", {}};
    QemuConfig c = make_config(s, mode, log);
    c.binary = b.qemu;
    c.firmware_dirs = b.firmware_dirs;
    return c;
}

void progress(const std::string &msg)
{
    std::cerr << "bench: " << msg << std::endl;
}

// Plain, icount, record and replay wall times, log size, instructions.
void measure_runs(const Build &b, const std::string &dir, Results &res)
{
    std::string log = dir + "/log.bin";
    for (RrMode mode : {RrMode::None, RrMode::Icount, RrMode::Record, RrMode::Replay}) {
        std::string d = dir + "/" + to_string(mode);
        std::filesystem::create_directories(d);
        progress(b.name + ": " + to_string(mode) + " run");
        RunResult r = run_to_poweroff(config_for(b, mode, log), d, 1800s);
        res.add(std::string(to_string(mode)) + "_s", "s", b.name, r.seconds);
        if (mode == RrMode::Record) {
            res.add("log_bytes", "bytes", b.name, static_cast<double>(file_size(log)));
            res.add("instructions", "instructions", b.name, static_cast<double>(r.icount));
            res.add("instructions_per_log_byte", "instr/byte", b.name,
                    static_cast<double>(r.icount) / static_cast<double>(file_size(log)));
        }
    }
}

// Reverse debugging latency on a replay under gdb: reverse-stepi at the
// end of the recording, and reverse-continue to a breakpoint ~1e9
// instructions back.
void measure_reverse(const Build &b, const std::string &dir, Results &res)
{
    std::vector<std::string> drive = snapshot_drive(dir, b.qemu_img);
    std::string log = dir + "/rlog.bin";
    std::filesystem::create_directories(dir + "/rrecord");
    std::filesystem::create_directories(dir + "/rreplay");

    QemuConfig rec = config_for(b, RrMode::Record, log);
    rec.device_args = drive;
    rec.rrsnapshot = "init";
    progress(b.name + ": recording for reverse debugging");
    run_to_poweroff(rec, dir + "/rrecord", 1800s);
    auto syms = SymbolMap::load(images_dir() + "/System.map");

    QemuConfig rep = config_for(b, RrMode::Replay, log);
    rep.device_args = drive;
    rep.rrsnapshot = "init";
    rep.gdb_port = free_tcp_port();
    rep.start_paused = true;
    rep.stop_at_poweroff = true;
    QemuInstance q(rep, dir + "/rreplay");
    q.start();
    GdbSession gdb(dir);
    gdb.connect(*rep.gdb_port);
    gdb.run("break *" + hex(syms.address("machine_power_off")));
    progress(b.name + ": replaying to the end under gdb");
    gdb.run("continue", kGdbTimeout);
    std::uint64_t end = gdb.icount();

    progress(b.name + ": reverse-stepi at the end");
    GdbReply rs = gdb.run("reverse-stepi", kGdbTimeout);
    if (!rs.ok() || gdb.icount() != end - 1) {
        throw std::runtime_error(b.name + ": reverse-stepi did not step back one "
                                 "instruction: " + rs.error + rs.console);
    }
    res.add("reverse_stepi_end_s", "s", b.name, rs.seconds);

    gdb.run("delete");
    gdb.run("break *" + hex(syms.address(kMarker)));
    progress(b.name + ": reverse-continue to the sethostname breakpoint");
    GdbReply rc = gdb.run("reverse-continue", kGdbTimeout);
    std::uint64_t landed = gdb.icount();
    if (!rc.ok() || gdb.pc() != syms.address(kMarker)) {
        throw std::runtime_error(b.name + ": reverse-continue did not reach the "
                                 "breakpoint: " + rc.error + rc.console);
    }
    res.add("reverse_continue_1e9_s", "s", b.name, rc.seconds);
    res.add("reverse_continue_distance", "instructions", b.name,
            static_cast<double>(end - landed));
    q.quit();
}

int usage()
{
    std::cerr << "usage: rewind-bench [--runs N] [--out FILE] [--keep]\n"
                 "Compares build/qemu with build/vanilla on the boot scenario.\n"
                 "Environment: REWIND_QEMU, REWIND_VANILLA_QEMU, REWIND_IMAGES, ...\n";
    return 2;
}

}  // namespace

int main(int argc, char **argv)
{
    int runs = 3;
    std::string out = "build/bench/results.json";
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--runs" && i + 1 < argc) {
            runs = std::atoi(argv[++i]);
        } else if (a == "--out" && i + 1 < argc) {
            out = argv[++i];
        } else {
            return usage();
        }
    }
    if (runs < 1) {
        return usage();
    }
    try {
        std::vector<Build> builds = {
            {"ours", qemu_binary(), qemu_img_binary(), {}},
            {"vanilla", env_or("REWIND_VANILLA_QEMU", ""),
             env_or("REWIND_VANILLA_QEMU_IMG", qemu_img_binary()),
             // Vanilla looks for firmware only inside its build tree.
             {"/usr/share/seabios", "/usr/share/qemu", "/usr/lib/ipxe/qemu"}},
        };
        if (builds[1].qemu.empty() || !file_exists(builds[1].qemu)) {
            throw std::runtime_error("no vanilla build: run 'make vanilla' "
                                     "(or set REWIND_VANILLA_QEMU)");
        }
        Results res;
        TempDir tmp("bench");
        for (int run = 0; run < runs; ++run) {
            for (const Build &b : builds) {
                std::string dir = tmp.path() + "/" + b.name + std::to_string(run);
                std::filesystem::create_directories(dir);
                progress("run " + std::to_string(run + 1) + "/" + std::to_string(runs));
                measure_runs(b, dir, res);
                try {
                    measure_reverse(b, dir, res);
                } catch (const std::exception &e) {
                    std::string what = b.name + " run " + std::to_string(run + 1) +
                                       ": reverse debugging failed: " + e.what();
                    progress(what);
                    res.fail(what);
                }
            }
        }
        std::filesystem::create_directories(std::filesystem::path(out).parent_path());
        json j = res.to_json();
        j["runs_per_metric"] = runs;
        j["scenario"] = "boot";
        write_file(out, j.dump(2) + "\n");
        std::cout << "\nQEMU Rewind vs vanilla, scenario (a) 'boot', medians of "
                  << runs << " runs\n\n";
        res.print_table(std::cout);
        for (const auto &f : res.failures()) {
            std::cout << "failed: " << f.substr(0, 300) << "\n";
        }
        std::cout << "\nwritten to " << out << "\n";
    } catch (const std::exception &e) {
        std::cerr << "bench: error: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
