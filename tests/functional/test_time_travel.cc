// Reverse execution on in-memory checkpoints ("time travel"): during a
// replay QEMU keeps checkpoints by itself (device state in memory, guest
// RAM as page deltas), without a snapshot drive, and replay-seek,
// reverse-stepi and reverse-continue restore the nearest one and replay
// forwards from it.
//
// The truth is always a forward replay: the machine state at an
// instruction count (the whole "info registers" text and a hash of all
// guest RAM), or where a breakpoint was hit. Going back to the same
// instruction count, by any route, must give exactly that.
//
// The guest is scenario "boot" (no disk, so no -drive at all), recorded
// once per process.
#include "gdb_session.hh"
#include "record_replay.hh"
#include "symbols.hh"
#include "util.hh"

#include <catch2/catch_get_random_seed.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/interfaces/catch_interfaces_capture.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// A test's long report (steps, gdb transcript, QEMU command lines) is
// printed once after its checks, if one of them failed: TT_CHECK is CHECK
// that remembers a failure.
bool g_failed = false;
#define TT_CHECK(...)                                             \
    do {                                                          \
        CHECK(__VA_ARGS__);                                       \
        if (!Catch::getResultCapture().lastAssertionPassed()) {   \
            g_failed = true;                                      \
        }                                                         \
    } while (0)

void report_if_failed(const std::string &report)
{
    if (g_failed) {
        FAIL_CHECK("what the failures above come from:\n" << report);
    }
    g_failed = false;
}

Scenario boot_scenario() { return {"boot", "", {}}; }

// The boot scenario, recorded once per process (run-tests.sh runs every
// test case in its own process, so once per test case there).
struct Recording {
    TempDir dir{"time-travel"};
    std::string log;
    RunResult run;   // run.icount: where the guest powered off
};

const Recording &boot_recording()
{
    static std::unique_ptr<Recording> rec;
    if (!rec) {
        auto r = std::make_unique<Recording>();
        r->log = r->dir.path() + "/log.bin";
        std::filesystem::create_directories(r->dir.path() + "/record");
        r->run = run_to_poweroff(make_config(boot_scenario(), RrMode::Record, r->log),
                                 r->dir.path() + "/record", 600s);
        if (r->run.serial.find("REWIND-DONE") == std::string::npos ||
            r->run.icount < 100'000'000) {
            throw std::runtime_error("the boot scenario did not finish (icount " +
                                     std::to_string(r->run.icount) + "):\n" +
                                     r->run.diagnostics);
        }
        rec = std::move(r);
    }
    return *rec;
}

// Every test case starts here: the recording, and no failure noted yet.
const Recording &start_test()
{
    g_failed = false;
    return boot_recording();
}

// The machine at one instruction count.
struct State {
    std::uint64_t icount = 0;   // query-replay
    std::string status;         // query-status ("paused", "debug", ...)
    std::string registers;      // HMP "info registers", whole text
    std::string ram;            // hash of all guest RAM
};

// "info replay" in numbers.
struct CheckpointInfo {
    std::uint64_t icount = 0;
    int count = -1;   // -1: no "In-memory checkpoints: N, ..." line
    bool off = false;
    std::uint64_t bytes = 0, budget = 0, guest_ram = 0;
    std::vector<std::uint64_t> at;   // instruction count of each listed one
    std::uint64_t listed_bytes = 0;
    std::string text;
};

CheckpointInfo parse_info_replay(const std::string &text)
{
    CheckpointInfo c;
    c.text = text;
    static const std::regex now(R"(instruction count = (\d+))");
    static const std::regex head(
        R"(In-memory checkpoints: (\d+), (\d+) bytes \(budget (\d+) bytes, guest RAM (\d+) bytes\))");
    static const std::regex item(R"(#\d+ icount (\d+): \d+ pages, (\d+) bytes)");
    std::smatch m;
    if (std::regex_search(text, m, now)) {
        c.icount = std::stoull(m[1]);
    }
    c.off = text.find("In-memory checkpoints: off") != std::string::npos;
    if (std::regex_search(text, m, head)) {
        c.count = std::stoi(m[1]);
        c.bytes = std::stoull(m[2]);
        c.budget = std::stoull(m[3]);
        c.guest_ram = std::stoull(m[4]);
    }
    for (auto it = std::sregex_iterator(text.begin(), text.end(), item);
         it != std::sregex_iterator(); ++it) {
        c.at.push_back(std::stoull((*it)[1]));
        c.listed_bytes += std::stoull((*it)[2]);
    }
    return c;
}

// What every "info replay" with checkpoints on must show.
void check_checkpoints(const CheckpointInfo &c, const std::string &when)
{
    INFO("info replay " << when << ":\n" << c.text);
    TT_CHECK(c.count > 1);
    TT_CHECK(c.at.size() == static_cast<std::size_t>(c.count));
    TT_CHECK(std::is_sorted(c.at.begin(), c.at.end()));
    TT_CHECK(std::adjacent_find(c.at.begin(), c.at.end()) == c.at.end());
    TT_CHECK((!c.at.empty() && c.at.front() == 0));
    TT_CHECK(c.guest_ram >= 256ull << 20);
    TT_CHECK(c.listed_bytes <= c.bytes);
    TT_CHECK(static_cast<double>(c.bytes) <= 1.5 * static_cast<double>(c.guest_ram));
}

// The lines of two texts that differ, for failure reports.
std::string diff_lines(const std::string &expected, const std::string &actual)
{
    std::istringstream a(expected), b(actual);
    std::string la, lb, out;
    for (int n = 1;; ++n) {
        bool ga = static_cast<bool>(std::getline(a, la));
        bool gb = static_cast<bool>(std::getline(b, lb));
        if (!ga && !gb) {
            break;
        }
        if (!ga || !gb || la != lb) {
            out += "line " + std::to_string(n) + ":\n  - " + (ga ? la : "(none)") +
                   "\n  + " + (gb ? lb : "(none)") + "\n";
        }
    }
    return out;
}

// K instruction counts in [lo, hi), one at random in each of K equal
// stretches: increasing, distinct, spread over the whole range.
std::vector<std::uint64_t> spread_points(std::uint64_t lo, std::uint64_t hi, int k,
                                         std::uint32_t seed)
{
    std::mt19937_64 rng(seed);
    std::uint64_t width = (hi - lo) / static_cast<std::uint64_t>(k);
    std::vector<std::uint64_t> out;
    for (int i = 0; i < k; ++i) {
        std::uniform_int_distribution<std::uint64_t> d(0, width - 1);
        out.push_back(lo + static_cast<std::uint64_t>(i) * width + d(rng));
    }
    return out;
}

std::string join(const std::vector<std::uint64_t> &v)
{
    std::string s;
    for (auto x : v) {
        s += (s.empty() ? "" : " ") + std::to_string(x);
    }
    return s;
}

// A replay of the recording, driven through QMP and optionally gdb, that
// logs every step with its wall time.
class Replay {
public:
    Replay(const Recording &rec, const std::string &name, bool checkpoints, bool with_gdb)
        : rec_(rec), dir_(rec.dir.path() + "/" + name)
    {
        std::filesystem::create_directories(dir_);
        QemuConfig cfg = make_config(boot_scenario(), RrMode::Replay, rec.log);
        if (!checkpoints) {
            cfg.rr_options.push_back("rrcheckpoints=off");
        }
        cfg.start_paused = true;
        if (with_gdb) {
            cfg.gdb_port = free_tcp_port();
        }
        qemu_ = std::make_unique<QemuInstance>(cfg, dir_);
        qemu_->start();
        if (with_gdb) {
            gdb_ = std::make_unique<GdbSession>(dir_);
            GdbReply c = gdb_->connect(*cfg.gdb_port);
            if (!c.ok()) {
                throw std::runtime_error("gdb cannot connect: " + c.error + "\n" + report());
            }
        }
    }

    ~Replay()
    {
        write_file(dir_ + "/steps.log", steps_);
        if (gdb_) {
            write_file(dir_ + "/gdb-transcript.log", gdb_->transcript());
        }
        qemu_->quit();
    }

    QemuInstance &qemu() { return *qemu_; }
    GdbSession &gdb() { return *gdb_; }

    // QMP replay-break at icount, cont, and wait until the VM stops.
    void run_to(std::uint64_t icount)
    {
        auto t0 = Clock::now();
        drain_stops();
        qemu_->qmp().execute("replay-break", {{"icount", icount}});
        qemu_->qmp().execute("cont");
        wait_stop("replay-break " + std::to_string(icount) + " + cont");
        note("replay-break " + std::to_string(icount) + " + cont", t0);
        flush_gdb();
    }

    // QMP replay-seek, and wait until the VM stops.
    void seek(std::uint64_t icount)
    {
        auto t0 = Clock::now();
        drain_stops();
        qemu_->qmp().execute("replay-seek", {{"icount", icount}}, scaled(60s));
        wait_stop("replay-seek " + std::to_string(icount));
        note("replay-seek " + std::to_string(icount), t0);
        flush_gdb();
    }

    State capture()
    {
        auto t0 = Clock::now();
        State s;
        s.icount = qemu_->icount();
        s.status = qemu_->qmp().execute("query-status").value("status", "");
        s.registers = qemu_->qmp().hmp("info registers");
        s.ram = qemu_->ram_hash();
        note("  state: icount " + std::to_string(s.icount) + ", " + s.status +
                 ", RAM " + s.ram,
             t0);
        return s;
    }

    std::string registers() { return qemu_->qmp().hmp("info registers"); }
    std::string status() { return qemu_->qmp().execute("query-status").value("status", ""); }
    std::string info_replay() { return qemu_->qmp().hmp("info replay"); }

    // A gdb command that does not run the guest.
    GdbReply cli(const std::string &command)
    {
        GdbReply r = gdb_->run(command, scaled(60s));
        if (!r.ok()) {
            throw std::runtime_error(command + " failed: " + r.error);
        }
        return r;
    }

    // A gdb execution command; returns its reply, notes where it stopped.
    struct Stop {
        GdbReply reply;
        std::uint64_t pc = 0, icount = 0;
    };
    Stop exec(const std::string &command)
    {
        Stop s;
        s.reply = gdb_->run(command, scaled(180s));
        if (!s.reply.ok()) {
            throw std::runtime_error(command + " failed: " + s.reply.error);
        }
        if (s.reply.stop.empty()) {
            throw std::runtime_error(command + " did not stop the target");
        }
        s.pc = gdb_->pc();
        s.icount = gdb_->icount();
        std::ostringstream o;
        o.precision(2);
        o << std::fixed << "gdb " << command << " -> icount " << s.icount << " pc "
          << hex(s.pc) << ", " << s.reply.seconds << " s\n";
        steps_ += o.str();
        return s;
    }

    const std::string &steps() const { return steps_; }

    // What a failing test prints: the steps, gdb's transcript, where the
    // replay is now (if QEMU still answers) and how it was run.
    std::string report()
    {
        std::string now;
        try {
            auto st = qemu_->qmp().execute("query-status", nullptr, 5s);
            now = "status " + st.value("status", "?") + "\n" +
                  qemu_->qmp().hmp("info replay");
        } catch (const std::exception &e) {
            now = std::string("QMP does not answer: ") + e.what() + "\n";
        }
        return "steps:\n" + steps_ +
               (gdb_ ? "gdb transcript (tail):\n" + tail_lines(gdb_->transcript(), 60) + "\n"
                     : std::string()) +
               "replay now: " + now + "replay run:\n" + qemu_->diagnostics() +
               "record run:\n" + rec_.run.diagnostics;
    }

private:
    // The VM moved behind gdb's back: it still has the registers of where
    // it last stopped.
    void flush_gdb()
    {
        if (gdb_) {
            cli("maintenance flush register-cache");
        }
    }

    // Forgets the STOP events of earlier steps (gdb's own stops make some
    // too): a QMP command reads every event sent before its reply.
    void drain_stops()
    {
        qemu_->qmp().execute("query-status");
        while (!qemu_->qmp().wait_event("STOP", 0ms).is_null()) {
        }
    }

    // Waits for a STOP event after which the VM is not running.
    void wait_stop(const std::string &what)
    {
        // A whole forward replay takes about 6 s on a quiet machine.
        auto deadline = Clock::now() + scaled(120s);
        for (;;) {
            auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                deadline - Clock::now());
            if (left.count() <= 0 ||
                qemu_->qmp().wait_event("STOP", left).is_null()) {
                throw std::runtime_error(what + ": the VM did not stop within " +
                                         std::to_string(scaled(120s).count() / 1000) +
                                         " s");
            }
            if (!qemu_->qmp().execute("query-status").value("running", true)) {
                return;
            }
        }
    }

    void note(const std::string &what, Clock::time_point t0)
    {
        std::ostringstream o;
        o.precision(2);
        o << std::fixed << what << ", "
          << std::chrono::duration<double>(Clock::now() - t0).count() << " s\n";
        steps_ += o.str();
    }

    const Recording &rec_;
    std::string dir_;
    std::unique_ptr<QemuInstance> qemu_;
    std::unique_ptr<GdbSession> gdb_;
    std::string steps_;
};

// CF, PF, AF, ZF, SF and OF of the EFLAGS in an "info registers" text.
std::uint64_t arithmetic_flags(const std::string &registers)
{
    static const std::regex re(R"((?:RFL|EFL)=([0-9a-f]+))");
    std::smatch m;
    if (!std::regex_search(registers, m, re)) {
        return 0;
    }
    return std::stoull(m[1], nullptr, 16) & 0x8d5;
}

void check_same_state(const State &forward, const State &back, const std::string &how)
{
    INFO("back at " << forward.icount << " by " << how);
    INFO("register lines that differ (- forward, + back):\n"
         << diff_lines(forward.registers, back.registers));
    TT_CHECK(back.icount == forward.icount);
    TT_CHECK(back.registers == forward.registers);
    TT_CHECK(back.ram == forward.ram);
}

// A kernel function's address from the image's System.map.
std::uint64_t kernel_symbol(const std::string &name)
{
    return SymbolMap::load(images_dir() + "/System.map").address(name);
}

// Forward truth for a breakpoint: every hit (instruction count and
// registers) from the current position to the end of the recording.
struct Hit {
    std::uint64_t icount = 0;
    std::string registers;
    std::string ram;   // only with hash_ram
};

std::vector<Hit> forward_hits(Replay &r, std::uint64_t addr, std::uint64_t end,
                              bool hash_ram, std::size_t max_hits = 200)
{
    std::vector<Hit> hits;
    r.cli("break *" + hex(addr));
    for (;;) {
        auto s = r.exec("continue");
        if (s.pc != addr) {
            if (s.icount != end) {
                throw std::runtime_error("continue stopped at icount " +
                                         std::to_string(s.icount) + " pc " + hex(s.pc) +
                                         ", neither the breakpoint nor the end " +
                                         std::to_string(end));
            }
            break;
        }
        Hit h;
        h.icount = s.icount;
        h.registers = r.registers();
        if (hash_ram) {
            h.ram = r.capture().ram;
        }
        hits.push_back(std::move(h));
        if (hits.size() > max_hits) {
            throw std::runtime_error("more than " + std::to_string(max_hits) +
                                     " hits of " + hex(addr));
        }
    }
    r.cli("delete");
    return hits;
}

}  // namespace

TEST_CASE("time-travel: replay-seek and reverse-stepi back to random instruction counts "
          "give the forward state",
          "[time-travel]")
{
    const Recording &rec = start_test();
    const std::uint64_t end = rec.run.icount;
    const std::uint32_t seed = Catch::getSeed();
    constexpr int K = 6;
    // From near the start to near the end, before the power-off.
    const auto points = spread_points(end / 100, end - end / 100, K, seed);
    INFO("Catch2 random seed " << seed << " (repeat with --rng-seed " << seed
                               << "); instruction counts " << join(points)
                               << "; the recording ends at " << end);

    // Forward truth, without checkpoints.
    std::map<std::uint64_t, State> forward;
    CheckpointInfo forward_info;
    std::string seek_back_error;
    {
        Replay r(rec, "forward", false, false);
        try {
            for (auto t : points) {
                r.run_to(t);
                forward[t] = r.capture();
            }
            forward_info = parse_info_replay(r.info_replay());
            // Without checkpoints there is no going back.
            try {
                r.seek(points.front());
            } catch (const QmpError &e) {
                seek_back_error = e.what();
            }
        } catch (const std::exception &e) {
            FAIL(e.what() << "\n" << r.report());
        }
        for (auto t : points) {
            TT_CHECK(forward[t].icount == t);
            TT_CHECK(forward[t].status == "paused");
        }
        INFO("info replay:\n" << forward_info.text);
        TT_CHECK(forward_info.off);
        TT_CHECK(forward_info.icount == points.back());
        INFO("replay-seek back: " << seek_back_error);
        TT_CHECK(seek_back_error.find("checkpoints") != std::string::npos);
        report_if_failed("forward replay (rrcheckpoints=off):\n" + r.report());
    }

    // Backwards: forward past the last point, then to each point in
    // decreasing order; at two of them from one instruction later with
    // gdb's reverse-stepi.
    std::map<std::uint64_t, State> back;
    std::map<std::uint64_t, std::string> how;
    std::map<std::uint64_t, std::uint64_t> gdb_icount;
    CheckpointInfo at_far, after;
    State start, at_zero;
    std::uint64_t from_for_zero = points.front();
    const std::uint64_t far = end - end / 200;
    Replay r(rec, "backward", true, true);
    try {
        start = r.capture();   // -S: nothing ran yet
        r.run_to(far);
        at_far = parse_info_replay(r.info_replay());
        for (int i = K - 1; i >= 0; --i) {
            const std::uint64_t t = points[i];
            if (i == 1 || i == K - 2) {
                r.seek(t + 1);
                gdb_icount[t] = r.exec("reverse-stepi").icount;
                how[t] = "replay-seek " + std::to_string(t + 1) + " + gdb reverse-stepi";
            } else {
                r.seek(t);
                how[t] = "replay-seek";
            }
            back[t] = r.capture();
        }
        after = parse_info_replay(r.info_replay());
        // Back to the very start, from a point where the arithmetic flags
        // are not all clear (the CPU keeps them lazily): the state QEMU
        // started with.
        for (auto t : points) {
            if (arithmetic_flags(forward.at(t).registers) != 0) {
                from_for_zero = t;
                break;
            }
        }
        if (from_for_zero != points.front()) {
            r.seek(from_for_zero);
        }
        r.seek(0);
        at_zero = r.capture();
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << r.report());
    }

    check_same_state(start, at_zero, "replay-seek 0 from " + std::to_string(from_for_zero));
    check_checkpoints(at_far, "at " + std::to_string(far));
    TT_CHECK(at_far.icount == far);
    check_checkpoints(after, "after going back");
    TT_CHECK(after.icount == points.front());
    for (auto t : points) {
        check_same_state(forward.at(t), back.at(t), how.at(t));
        if (gdb_icount.count(t)) {
            TT_CHECK(gdb_icount.at(t) == t);
            TT_CHECK(back.at(t).status == "debug");
        } else {
            TT_CHECK(back.at(t).status == "paused");
        }
    }
    TT_CHECK(gdb_icount.size() == 2);
    report_if_failed("backward replay:\n" + r.report());
}

TEST_CASE("time-travel: the start and the end of the recording: reverse-continue "
          "without breakpoints stops at the start, reverse-stepi works from the end",
          "[time-travel]")
{
    const Recording &rec = start_test();
    const std::uint64_t end = rec.run.icount;
    Replay r(rec, "edges", true, true);
    State start, at_begin, before_end, at_rsi;
    std::uint64_t pc_start = 0, pc_before_end = 0;
    Replay::Stop rc, to_end, rsi, rsi2, si, to_end_again;
    std::string end_status;
    try {
        start = r.capture();   // -S: nothing ran yet
        pc_start = r.gdb().pc();
        r.run_to(end / 2);
        rc = r.exec("reverse-continue");
        at_begin = r.capture();

        // Forward truth one instruction before the guest's power-off.
        r.run_to(end - 1);
        before_end = r.capture();
        pc_before_end = r.gdb().pc();

        to_end = r.exec("continue");   // to the power-off
        end_status = r.status();
        rsi = r.exec("reverse-stepi");
        at_rsi = r.capture();
        rsi2 = r.exec("reverse-stepi");
        si = r.exec("stepi");
        to_end_again = r.exec("continue");
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << r.report());
    }
    auto syms = SymbolMap::load(images_dir() + "/System.map");

    // The start: instruction 0, the state QEMU started with.
    REQUIRE(start.icount == 0);
    TT_CHECK(rc.icount == 0);
    TT_CHECK(rc.pc == pc_start);
    check_same_state(start, at_begin, "reverse-continue from " + std::to_string(end / 2));
    {
        // gdb is told the history ends there (replaylog:begin).
        INFO("gdb said: " << rc.reply.console);
        TT_CHECK(rc.reply.console.find("No more reverse-execution history.") !=
                 std::string::npos);
    }

    // The end: the guest's power-off, where the recording stopped, and
    // gdb is told the history ends there too (replaylog:end).
    TT_CHECK(to_end.icount == end);
    TT_CHECK(end_status == "shutdown");
    {
        INFO("gdb said: " << to_end.reply.console);
        TT_CHECK(to_end.reply.console.find("No more reverse-execution history.") !=
                 std::string::npos);
    }
    TT_CHECK(before_end.icount == end - 1);
    // One instruction back from the power-off: the forward state there.
    TT_CHECK(rsi.icount == end - 1);
    TT_CHECK(rsi.pc == pc_before_end);
    {
        INFO("the last instructions: " << syms.describe(rsi2.pc) << ", "
                                       << syms.describe(rsi.pc));
        TT_CHECK(!syms.function_at(rsi.pc).empty());
        TT_CHECK(!syms.function_at(rsi2.pc).empty());
    }
    check_same_state(before_end, at_rsi, "reverse-stepi from the power-off");
    TT_CHECK(rsi2.icount == end - 2);
    // And forwards again, to the same end.
    TT_CHECK(si.icount == end - 1);
    TT_CHECK(si.pc == pc_before_end);
    TT_CHECK(to_end_again.icount == end);
    TT_CHECK(to_end_again.pc == to_end.pc);
    report_if_failed(r.report());
}

TEST_CASE("time-travel: reverse-continue from the guest's power-off lands on the last "
          "breakpoint hit before it",
          "[time-travel]")
{
    const Recording &rec = start_test();
    const std::uint64_t end = rec.run.icount;
    // Called once, shortly before the power-off.
    const std::uint64_t power_off = kernel_symbol("machine_power_off");
    Replay r(rec, "from-power-off", true, true);
    Replay::Stop hit, to_end, rc;
    std::string hit_regs, rc_regs, rc_status, serial_before, serial_after;
    try {
        r.cli("break *" + hex(power_off));
        hit = r.exec("continue");
        hit_regs = r.registers();
        to_end = r.exec("continue");
        serial_before = r.qemu().serial();
        rc = r.exec("reverse-continue");
        rc_regs = r.registers();
        rc_status = r.status();
        serial_after = r.qemu().serial();
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << r.report());
    }
    TT_CHECK(hit.pc == power_off);
    TT_CHECK(to_end.icount == end);
    TT_CHECK(rc.icount == hit.icount);
    TT_CHECK(rc.pc == power_off);
    TT_CHECK(rc_regs == hit_regs);
    TT_CHECK(rc_status == "debug");
    {
        INFO("gdb said: " << rc.reply.console);
        TT_CHECK(rc.reply.console.find("Breakpoint 1") != std::string::npos);
    }
    report_if_failed(r.report());
}

TEST_CASE("time-travel: a diskless replay (no -drive) reverse-steps and reverse-continues "
          "to a breakpoint's earlier hits",
          "[time-travel]")
{
    const Recording &rec = start_test();
    const std::uint64_t end = rec.run.icount;
    // Called at every process exit: many times while the guest boots.
    const std::uint64_t do_exit = kernel_symbol("do_exit");
    Replay r(rec, "diskless", true, true);

    // No snapshot drive, nor any other.
    const auto argv = r.qemu().argv();
    INFO("replay command line: " << r.qemu().command_line());
    REQUIRE(std::find(argv.begin(), argv.end(), "-drive") == argv.end());
    REQUIRE(std::find(argv.begin(), argv.end(), "-blockdev") == argv.end());
    REQUIRE(r.qemu().command_line().find("rrsnapshot") == std::string::npos);
    REQUIRE(r.qemu().qmp().execute("query-block").empty());

    std::vector<Hit> hits;
    std::uint64_t from = 0;
    std::size_t j = 0;
    Replay::Stop rsi, rc1, rc2, fwd;
    std::string regs_rc1, regs_rc2;
    try {
        hits = forward_hits(r, do_exit, end, false);
        if (hits.size() < 4) {
            throw std::runtime_error("do_exit was hit only " + std::to_string(hits.size()) +
                                     " times");
        }
        // Start between two hits in the middle.
        j = hits.size() / 2;
        from = (hits[j].icount + hits[j + 1].icount) / 2;
        r.seek(from);
        rsi = r.exec("reverse-stepi");
        r.cli("break *" + hex(do_exit));
        rc1 = r.exec("reverse-continue");
        regs_rc1 = r.registers();
        rc2 = r.exec("reverse-continue");
        regs_rc2 = r.registers();
        fwd = r.exec("continue");
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << r.report());
    }
    std::string all;
    for (const auto &h : hits) {
        all += std::to_string(h.icount) + " ";
    }
    INFO("do_exit hits going forwards: " << all << "; reverse from " << from);

    TT_CHECK(rsi.icount == from - 1);
    // The last hit before the start point, then the one before it.
    TT_CHECK(rc1.icount == hits[j].icount);
    TT_CHECK(rc1.pc == do_exit);
    TT_CHECK(regs_rc1 == hits[j].registers);
    TT_CHECK(rc2.icount == hits[j - 1].icount);
    TT_CHECK(rc2.pc == do_exit);
    TT_CHECK(regs_rc2 == hits[j - 1].registers);
    // Forwards again: the next hit after the landing.
    auto next = std::find_if(hits.begin(), hits.end(),
                             [&](const Hit &h) { return h.icount > rc2.icount; });
    REQUIRE(next != hits.end());
    TT_CHECK(fwd.icount == next->icount);
    TT_CHECK(fwd.pc == do_exit);
    report_if_failed(r.report());
}

TEST_CASE("time-travel: reverse-continue across many checkpoints to a function called "
          "only early in boot",
          "[time-travel]")
{
    const Recording &rec = start_test();
    const std::uint64_t end = rec.run.icount;
    // Called a few times while the kernel starts, never by the workload.
    const std::uint64_t fn = kernel_symbol("wait_for_initramfs");
    Replay r(rec, "far", true, true);
    // Shortly before the power-off (reverse-continue from the power-off
    // itself has its own test).
    const std::uint64_t from = end - end / 1000;
    std::vector<Hit> hits;
    CheckpointInfo at_from;
    Replay::Stop rc;
    State landed;
    try {
        hits = forward_hits(r, fn, end, true, 20);
        r.seek(from);
        at_from = parse_info_replay(r.info_replay());
        r.cli("break *" + hex(fn));
        rc = r.exec("reverse-continue");
        landed = r.capture();
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << r.report());
    }
    if (hits.empty()) {
        FAIL("wait_for_initramfs was never hit\n" << r.report());
    }
    const Hit &last = hits.back();
    INFO("last forward hit at " << last.icount << ", " << from - last.icount
                                << " instructions before the start point " << from);
    // The function really is early: most of the recording lies between.
    if (from - last.icount <= end / 2) {
        FAIL("wait_for_initramfs is not called only early\n" << r.report());
    }
    // ... and so do several checkpoints, that reverse-continue crosses.
    check_checkpoints(at_from, "at the start point");
    TT_CHECK(at_from.icount == from);
    TT_CHECK(std::count_if(at_from.at.begin(), at_from.at.end(),
                           [&](std::uint64_t c) { return c > last.icount; }) >= 3);

    TT_CHECK(rc.icount == last.icount);
    TT_CHECK(rc.pc == fn);
    check_same_state(State{last.icount, "", last.registers, last.ram}, landed,
                     "reverse-continue from " + std::to_string(from));
    report_if_failed(r.report());
}
