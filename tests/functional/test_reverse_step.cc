// gdb's own source-level reverse commands in a kernel module: reverse-step,
// reverse-next, reverse-finish, and a watchpoint found by reverse-continue.
//
// The guest (scenario "module", tests/guest/module.sh) loads our test
// module (tests/guest/module, built with debug info by
// scripts/make-guest-images.sh), prints where its sections were loaded and
// runs rewind_test_step() once. Its replay gets the module's symbols with
// add-symbol-file at those addresses. Lines are found through the
// "LINE:<name>" markers in the module's source (build/images/module/, the
// copy it was built from), never hard-coded.
//
// Every reverse landing is compared with the forward truth of the same
// replay: where gdb's forward next/stepi/continue arrived, with the
// instruction count (monitor info replay) and PC of each arrival.
#include "gdb_session.hh"
#include "record_replay.hh"
#include "symbols.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <filesystem>
#include <map>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <vector>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

constexpr int kSeed = 5;   // module.sh's default seed
const char *const kSource = "rewind_test_steps.c";

// tests/guest/module/rewind_test_steps.c: pattern[i] = (i * 37 + 11) & 0xff
std::uint8_t pattern_byte(int i) { return static_cast<std::uint8_t>(i * 37 + 11); }

// The 8 pattern bytes at `offset`, as the little-endian guest reads them.
std::uint64_t pattern_qword(int offset)
{
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) {
        v = (v << 8) | pattern_byte(offset + i);
    }
    return v;
}

// What rewind_test_step(seed) returns and stores in rewind_test_last.
std::uint32_t expected_result(int seed)
{
    int len = 64 - (seed & 7);
    std::uint32_t sum = 0;
    for (int i = 0; i < len; ++i) {
        std::uint8_t b = pattern_byte(i);
        if (i == 0) {
            b ^= static_cast<std::uint8_t>(seed);
        }
        sum = sum * 31 + b;
    }
    return sum ^ static_cast<std::uint32_t>(seed);
}

// "LINE:<name>" marker -> line number (1-based), from the module's source.
std::map<std::string, int> source_markers(const std::string &path)
{
    std::string text = read_file(path);
    if (text.empty()) {
        throw std::runtime_error("missing " + path + ": build the guest images (make images)");
    }
    std::map<std::string, int> lines;
    std::istringstream in(text);
    std::string line;
    static const std::regex marker(R"(LINE:([a-z-]+))");
    for (int n = 1; std::getline(in, line); ++n) {
        std::smatch m;
        if (std::regex_search(line, m, marker)) {
            lines[m[1]] = n;
        }
    }
    return lines;
}

// The top-level key=value pairs of a GDB/MI result list ("a=\"x\",b={...}");
// strings are unquoted, tuples and lists kept as their raw text.
std::map<std::string, std::string> mi_fields(const std::string &s)
{
    std::map<std::string, std::string> out;
    std::size_t i = 0;
    while (i < s.size()) {
        std::size_t eq = s.find('=', i);
        if (eq == std::string::npos) {
            break;
        }
        std::string key = s.substr(i, eq - i);
        std::size_t j = eq + 1;
        int depth = 0;
        bool quoted = false;
        for (; j < s.size(); ++j) {
            char c = s[j];
            if (quoted) {
                if (c == '\\') {
                    ++j;
                } else if (c == '"') {
                    quoted = false;
                }
            } else if (c == '"') {
                quoted = true;
            } else if (c == '{' || c == '[') {
                ++depth;
            } else if (c == '}' || c == ']') {
                --depth;
            } else if (c == ',' && depth == 0) {
                break;
            }
        }
        std::string value = s.substr(eq + 1, j - eq - 1);
        if (!value.empty() && value[0] == '"') {
            value = mi_unquote(value);
        }
        out[key] = value;
        i = j + 1;
    }
    return out;
}

// Where an execution command stopped.
struct Stop {
    std::string reason;   // MI stop reason ("end-stepping-range", ...)
    std::string func;     // "??" outside the module's symbols
    std::string file;
    int line = 0;         // 0 without line info
    std::uint64_t pc = 0;
    std::uint64_t icount = 0;
    double seconds = 0;
    std::string wp_old, wp_new;   // a watchpoint's value={old=,new=}
};

std::string describe(const Stop &s)
{
    std::ostringstream o;
    o << s.func;
    if (s.line) {
        o << " " << std::filesystem::path(s.file).filename().string() << ":" << s.line;
    }
    o << " pc=" << hex(s.pc) << " icount=" << s.icount;
    if (!s.reason.empty()) {
        o << " (" << s.reason << ")";
    }
    return o.str();
}

bool is_memcpy(const std::string &function)
{
    return function == "memcpy" || function == "__memcpy" ||
           function == "memcpy_orig" || function == "memcpy_erms";
}

// A recording of the module scenario, replayed under gdb with the module's
// symbols loaded.
class ModuleReplay {
public:
    explicit ModuleReplay(const std::string &tag)
        : dir_(tag),
          scenario_{"module", "", snapshot_drive(dir_.path())},
          module_dir_(images_dir() + "/module"),
          lines_(source_markers(module_dir_ + "/" + kSource))
    {
        std::string log = dir_.path() + "/log.bin";
        std::filesystem::create_directories(dir_.path() + "/record");
        std::filesystem::create_directories(dir_.path() + "/replay");
        // Reverse execution needs a qcow2 drive for its "init" snapshot.
        QemuConfig rec_cfg = make_config(scenario_, RrMode::Record, log);
        rec_cfg.rrsnapshot = "init";
        record_ = run_to_poweroff(rec_cfg, dir_.path() + "/record", 600s);
        if (record_.serial.find("REWIND-DONE") == std::string::npos) {
            throw std::runtime_error("the module scenario did not finish:\n" +
                                     record_.diagnostics);
        }
        for (const std::string &l : lines_with(record_.serial, "REWIND-MODULE-SECTION ")) {
            std::istringstream in(l);
            std::string name, addr;
            if (in >> name >> addr) {
                sections_[name] = std::stoull(addr, nullptr, 16);
            }
        }
        if (!sections_.count(".text")) {
            throw std::runtime_error("the guest printed no REWIND-MODULE-SECTION .text:\n" +
                                     record_.diagnostics);
        }
        auto results = lines_with(record_.serial, "REWIND-MODULE-RESULT ");
        result_line_ = results.empty() ? "" : results.front();

        QemuConfig rep_cfg = make_config(scenario_, RrMode::Replay, log);
        rep_cfg.rrsnapshot = "init";
        rep_cfg.gdb_port = free_tcp_port();
        rep_cfg.start_paused = true;
        replay_ = std::make_unique<QemuInstance>(rep_cfg, dir_.path() + "/replay");
        replay_->start();
        gdb_ = std::make_unique<GdbSession>(dir_.path());
        GdbReply c = gdb_->connect(*rep_cfg.gdb_port);
        if (!c.ok()) {
            throw std::runtime_error("gdb cannot connect: " + c.error);
        }
        // add-symbol-file FILE TEXT [-s SECTION ADDR]...: .bss holds
        // rewind_test_last, .rodata the pattern.
        std::string cmd = "add-symbol-file " + module_dir_ + "/rewind_test.ko " +
                          hex(sections_.at(".text"));
        for (const auto &[name, addr] : sections_) {
            if (name != ".text") {
                cmd += " -s " + name + " " + hex(addr);
            }
        }
        cli(cmd);
    }

    ~ModuleReplay()
    {
        write_file(dir_.path() + "/gdb-transcript.log", gdb_ ? gdb_->transcript() : "");
        write_file(dir_.path() + "/gdb-stops.log", stops_);
        if (gdb_) {
            try {
                gdb_->run("detach", 30s);
            } catch (const std::exception &) {
                // the replay is going away anyway
            }
        }
        if (replay_) {
            replay_->quit();
        }
    }

    // A command that does not run the guest; throws on a gdb error.
    GdbReply cli(const std::string &command)
    {
        GdbReply r = gdb_->run(command, scaled(120s));
        if (!r.ok()) {
            throw std::runtime_error(command + " failed: " + r.error);
        }
        return r;
    }

    // An execution command: returns where it stopped.
    Stop exec(const std::string &command)
    {
        // Reverse commands replay from the start for every instruction they
        // step back over (several seconds each, today).
        GdbReply r = gdb_->run(command, scaled(1800s));
        if (!r.ok()) {
            throw std::runtime_error(command + " failed: " + r.error);
        }
        if (r.stop.empty()) {
            throw std::runtime_error(command + " did not stop the target");
        }
        Stop s;
        auto f = mi_fields(r.stop.substr(r.stop.find(',') + 1));
        s.reason = f["reason"];
        std::string value = f["value"];
        if (value.size() >= 2 && value[0] == '{') {
            auto vf = mi_fields(value.substr(1, value.size() - 2));
            s.wp_old = vf["old"];
            s.wp_new = vf["new"];
        }
        std::string frame = f["frame"];
        if (frame.size() >= 2) {
            auto ff = mi_fields(frame.substr(1, frame.size() - 2));
            s.func = ff["func"];
            s.file = ff["file"];
            s.line = ff["line"].empty() ? 0 : std::stoi(ff["line"]);
        }
        s.pc = gdb_->pc();
        s.icount = gdb_->icount();
        s.seconds = r.seconds;
        std::ostringstream o;
        o.precision(1);
        o << std::fixed << command << " -> " << describe(s) << ", " << r.seconds << " s\n";
        stops_ += o.str();
        return s;
    }

    std::uint64_t value(const std::string &expr) { return gdb_->value(expr); }

    int line(const std::string &marker) const
    {
        auto it = lines_.find(marker);
        if (it == lines_.end()) {
            throw std::runtime_error(std::string("no LINE:") + marker + " in " + kSource);
        }
        return it->second;
    }
    std::string at(const std::string &marker) const
    {
        return std::string(kSource) + ":" + std::to_string(line(marker));
    }

    const std::string &result_line() const { return result_line_; }

    // What a failing test prints: every stop, gdb's transcript, the replay.
    std::string report() const
    {
        return "stops:\n" + stops_ + "gdb transcript (tail):\n" +
               tail_lines(gdb_ ? gdb_->transcript() : "", 80) + "\nreplay run:\n" +
               (replay_ ? replay_->diagnostics() : "") + "\nrecord run:\n" +
               record_.diagnostics;
    }

private:
    TempDir dir_;
    Scenario scenario_;
    std::string module_dir_;
    std::map<std::string, int> lines_;
    RunResult record_;
    std::map<std::string, std::uint64_t> sections_;
    std::string result_line_;
    std::unique_ptr<QemuInstance> replay_;
    std::unique_ptr<GdbSession> gdb_;
    std::string stops_;
};

// Forward truth in rewind_test_step, from LINE:len to LINE:return: where
// gdb's forward "next" arrived at each line, the call instruction of
// LINE:call (forward stepi), the start of the helper's last line.
struct Forward {
    std::vector<int> lines;           // every line gdb stopped at, in order
    std::map<int, Stop> line_start;
    Stop call_insn;
    Stop helper_end;
    std::uint64_t global_before = 0;   // rewind_test_last at LINE:global
    std::uint64_t global_after = 0;    // ... and at LINE:return
};

Forward run_forward(ModuleReplay &m)
{
    Forward f;
    auto next_until = [&](int line) {
        for (int i = 0; i < 12; ++i) {
            Stop s = m.exec("next");
            f.lines.push_back(s.line);
            f.line_start.emplace(s.line, s);
            if (s.line == line) {
                return;
            }
        }
        throw std::runtime_error("forward next never reached line " + std::to_string(line));
    };
    m.cli("break " + m.at("len"));
    Stop s = m.exec("continue");
    f.lines.push_back(s.line);
    f.line_start.emplace(s.line, s);
    m.cli("delete");
    next_until(m.line("call"));
    // Into the helper one instruction at a time: the last stop before it
    // is the call instruction.
    Stop prev = f.line_start.at(m.line("call"));
    for (int i = 0;; ++i) {
        if (i == 16) {
            throw std::runtime_error("stepi never entered rewind_test_helper");
        }
        s = m.exec("stepi");
        if (s.func == "rewind_test_helper") {
            break;
        }
        prev = s;
    }
    f.call_insn = prev;
    m.cli("tbreak " + m.at("helper-end"));
    f.helper_end = m.exec("continue");
    f.lines.push_back(f.helper_end.line);
    next_until(m.line("global"));
    f.global_before = m.value("rewind_test_last");
    next_until(m.line("return"));
    f.global_after = m.value("rewind_test_last");
    return f;
}

#define CHECK_LANDED(stop, truth, marker)                                  \
    do {                                                                   \
        INFO("landed: " << describe(stop) << "; expected " << (marker)     \
                        << ": " << describe(truth));                       \
        CHECK((stop).func == (truth).func);                                \
        CHECK((stop).line == (truth).line);                                \
        CHECK((stop).pc == (truth).pc);                                    \
        CHECK((stop).icount == (truth).icount);                            \
    } while (0)

}  // namespace

TEST_CASE("reverse-step: reverse-step into a module function's callee, reverse-finish out",
          "[gdb][reverse-step]")
{
    ModuleReplay m("reverse-step");
    Forward f;
    Stop rs_global, rs_after, rs_helper, rf;
    std::uint64_t last_at_rs_global = 0, sum_at_rf = 0, len_at_rf = 0;
    std::string insn_at_rf;
    try {
        f = run_forward(m);
        // at the start of LINE:return
        rs_global = m.exec("reverse-step");
        last_at_rs_global = m.value("rewind_test_last");
        rs_after = m.exec("reverse-step");
        rs_helper = m.exec("reverse-step");
        rf = m.exec("reverse-finish");
        sum_at_rf = m.value("sum");
        len_at_rf = m.value("len");
        insn_at_rf = m.cli("x/i $pc").console;
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << m.report());
    }
    INFO(m.report());

    // The guest ran the step: its result is what the source computes.
    CHECK(m.result_line() == "seed=" + std::to_string(kSeed) +
                                 " result=" + std::to_string(expected_result(kSeed)));
    // Forward sanity: each statement of rewind_test_step is its own line
    // stop, in source order (the -O0 build), with the helper in between.
    CHECK(f.lines == std::vector<int>{m.line("len"), m.line("memcpy"),
                                      m.line("before-call"), m.line("call"),
                                      m.line("helper-end"), m.line("after-call"),
                                      m.line("global"), m.line("return")});
    // The global is written at LINE:global, and the helper
    // (a loop over ~60 bytes) lies between the call and the next line.
    CHECK(f.global_before == 0);
    CHECK(f.global_after == expected_result(kSeed));
    REQUIRE(f.line_start.count(m.line("global")));
    REQUIRE(f.line_start.count(m.line("after-call")));
    CHECK(f.helper_end.func == "rewind_test_helper");
    CHECK(f.helper_end.line == m.line("helper-end"));
    CHECK(f.call_insn.line == m.line("call"));
    CHECK(f.line_start.at(m.line("after-call")).icount > f.call_insn.icount + 500);

    // LINE:return -> LINE:global, and the write of the global is undone.
    CHECK_LANDED(rs_global, f.line_start.at(m.line("global")), "LINE:global");
    CHECK(last_at_rs_global == 0);
    // LINE:global -> LINE:after-call (a plain line)
    CHECK_LANDED(rs_after, f.line_start.at(m.line("after-call")), "LINE:after-call");
    // LINE:after-call -> into the helper, at the start of its last line
    CHECK_LANDED(rs_helper, f.helper_end, "LINE:helper-end");
    // reverse-finish: out of the helper, onto the call instruction in
    // LINE:call, before the helper ran (sum not assigned yet: the kernel's
    // -ftrivial-auto-var-init=zero made it 0).
    CHECK_LANDED(rf, f.call_insn, "the call instruction of LINE:call");
    CHECK(insn_at_rf.find("call") != std::string::npos);
    CHECK(insn_at_rf.find("rewind_test_helper") != std::string::npos);
    CHECK(sum_at_rf == 0);
    CHECK(len_at_rf == static_cast<std::uint64_t>(64 - (kSeed & 7)));
}

TEST_CASE("reverse-step: reverse-next over a call in a module function",
          "[gdb][reverse-step]")
{
    ModuleReplay m("reverse-next");
    Forward f;
    Stop rn_global, rn_after, rn_call, rn_before;
    std::uint64_t sum_at_call = 0, buf0_at_call = 0, buf0_at_before = 0;
    try {
        f = run_forward(m);
        rn_global = m.exec("reverse-next");
        rn_after = m.exec("reverse-next");
        rn_call = m.exec("reverse-next");
        sum_at_call = m.value("sum");
        buf0_at_call = m.value("buf[0]");
        rn_before = m.exec("reverse-next");
        buf0_at_before = m.value("buf[0]");
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << m.report());
    }
    INFO(m.report());

    REQUIRE(f.line_start.count(m.line("call")));
    REQUIRE(f.line_start.count(m.line("before-call")));
    CHECK_LANDED(rn_global, f.line_start.at(m.line("global")), "LINE:global");
    CHECK_LANDED(rn_after, f.line_start.at(m.line("after-call")), "LINE:after-call");
    // Over the whole helper call in one command, to the start of LINE:call:
    // the helper has not run (sum still 0), buf[0] already xor-ed.
    CHECK_LANDED(rn_call, f.line_start.at(m.line("call")), "LINE:call");
    CHECK(sum_at_call == 0);
    CHECK(buf0_at_call == static_cast<std::uint64_t>(pattern_byte(0) ^ kSeed));
    // The line before the call, before its xor.
    CHECK_LANDED(rn_before, f.line_start.at(m.line("before-call")), "LINE:before-call");
    CHECK(buf0_at_before == pattern_byte(0));
}

TEST_CASE("reverse-step: watch -l on a stack slot, reverse-continue to the memcpy that wrote it",
          "[gdb][reverse-step]")
{
    // buf[8..15] of rewind_test_step is written twice: zeroed at its
    // declaration (the kernel's -ftrivial-auto-var-init=zero; the slot
    // already held 0) and by the kernel's memcpy called at LINE:memcpy,
    // which is the only write that changes it.
    ModuleReplay m("reverse-watch");
    auto syms = SymbolMap::load(images_dir() + "/System.map");
    const std::string watch = "watch -l *(unsigned long *)&buf[8]";
    Stop fw, rw, after;
    std::uint64_t value_fw = 0, value_rw = 0, value_after = 0;
    std::uint64_t ret_fw = 0, ret_rw = 0;
    int ret_line = 0;
    try {
        m.cli("break " + m.at("len"));
        m.exec("continue");
        const std::string slot = "*(unsigned long *)" + hex(m.value("(unsigned long)&buf[8]"));
        m.cli("delete");
        // Forwards from LINE:len: the watchpoint stops right after the write.
        m.cli(watch);
        fw = m.exec("continue");
        value_fw = m.value(slot);
        // memcpy is a leaf without a frame: its return address is at the
        // top of the stack.
        ret_fw = m.value("*(unsigned long *)$sp");
        m.cli("delete");
        m.cli("break " + m.at("return"));
        m.exec("continue");
        m.cli("delete");
        // Backwards from LINE:return.
        m.cli(watch);
        rw = m.exec("reverse-continue");
        value_rw = m.value(slot);
        ret_rw = m.value("*(unsigned long *)$sp");
        // The line of the call instruction (the byte before the return address).
        std::string info = m.cli("info line *" + hex(ret_rw - 1)).console;
        static const std::regex re(R"(Line (\d+) of \"([^\"]*)\")");
        std::smatch mm;
        if (std::regex_search(info, mm, re) && mm[2].str().find(kSource) != std::string::npos) {
            ret_line = std::stoi(mm[1]);
        }
        // One instruction forwards from the landing does the write.
        m.cli("delete");
        after = m.exec("stepi");
        value_after = m.value(slot);
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n" << m.report());
    }
    INFO(m.report());
    INFO("forward hit in " << syms.describe(fw.pc) << ", reverse landing in "
                           << syms.describe(rw.pc));

    // Forwards: a stop in the kernel's memcpy (no module symbols there),
    // right after the write of the pattern's bytes 8..15.
    CHECK(fw.reason == "watchpoint-trigger");
    CHECK(is_memcpy(syms.function_at(fw.pc)));
    CHECK(value_fw == pattern_qword(8));
    // Backwards: gdb reports the watchpoint, with the value after the
    // write as "old" and the one before it as "new" (time runs backwards),
    // and the state is the one just before the writing instruction
    // (a "rep movsq" iteration: same PC, one instruction earlier), in
    // the same memcpy call, returning into LINE:memcpy.
    CHECK(rw.reason == "watchpoint-trigger");
    CHECK(rw.wp_old == std::to_string(pattern_qword(8)));
    CHECK(rw.wp_new == "0");
    CHECK(rw.icount + 1 == fw.icount);
    CHECK(is_memcpy(syms.function_at(rw.pc)));
    CHECK(value_rw == 0);
    CHECK(ret_rw == ret_fw);
    CHECK(ret_line == m.line("memcpy"));
    // ...and that instruction is the writer: one stepi arrives where the
    // forward watchpoint stopped, with the bytes written.
    CHECK(after.icount == fw.icount);
    CHECK(after.pc == fw.pc);
    CHECK(value_after == pattern_qword(8));
}
