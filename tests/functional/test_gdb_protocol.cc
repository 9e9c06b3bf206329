// What QEMU's gdbstub says on the wire to a reverse debugger, checked with
// a raw RSP client (gdb hides most of it): the qSupported features, no-ack
// mode, and the stop reason and registers in each T stop reply, going
// forwards and backwards in a replay of the "boot" scenario.
//
// Breakpoints are at kernel functions from the image's System.map (the
// guest boots with nokaslr). x86_64 gdb register numbers: 0x10 rip,
// 0x07 rsp, 0x06 rbp.
#include "gdb_session.hh"
#include "process.hh"
#include "qemu.hh"
#include "rsp_client.hh"
#include "scenarios.hh"
#include "symbols.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <set>
#include <sstream>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

constexpr int kRip = 0x10, kRsp = 0x07, kRbp = 0x06;

// Records the boot scenario into dir/log.bin (with the qcow2 drive that
// holds the "init" snapshot reverse execution starts from) and returns the
// configuration of its replay, paused at the start under a gdbstub.
QemuConfig record_boot_for_debugging(const std::string &dir)
{
    Scenario s{"boot", "", snapshot_drive(dir)};
    std::string log = dir + "/log.bin";
    std::filesystem::create_directories(dir + "/record");
    std::filesystem::create_directories(dir + "/replay");
    QemuConfig rec_cfg = make_config(s, RrMode::Record, log);
    rec_cfg.rrsnapshot = "init";
    RunResult rec = run_to_poweroff(rec_cfg, dir + "/record", 600s);
    INFO("record run:\n" << rec.diagnostics);
    REQUIRE(rec.serial.find("REWIND-DONE") != std::string::npos);

    QemuConfig rep_cfg = make_config(s, RrMode::Replay, log);
    rep_cfg.rrsnapshot = "init";
    rep_cfg.gdb_port = free_tcp_port();
    rep_cfg.start_paused = true;
    return rep_cfg;
}

std::set<std::string> split_features(const std::string &reply)
{
    std::set<std::string> out;
    std::istringstream in(reply);
    std::string item;
    while (std::getline(in, item, ';')) {
        out.insert(item);
    }
    return out;
}

// "Z0,ffffffff81000000,1"
std::string bp_packet(char op, int type, std::uint64_t addr)
{
    std::string a = hex(addr).substr(2);
    return std::string(1, op) + std::to_string(type) + "," + a + ",1";
}

// The hex field of register `regnum` in a T reply (empty if absent).
std::string reg_field(const StopReply &r, int regnum)
{
    char name[8];
    std::snprintf(name, sizeof name, "%02x", regnum);
    auto it = r.fields.find(name);
    return it == r.fields.end() ? "" : it->second;
}

// The gdbstub's answers for one run, as the test records them.
struct Landing {
    std::string packet;
    StopReply stop;
    std::uint64_t icount = 0;
};

}  // namespace

TEST_CASE("gdb protocol: qSupported, no-ack mode, stop reasons and registers "
          "in stop replies, forwards and in reverse",
          "[gdb][protocol]")
{
    TempDir dir("gdbproto");
    QemuConfig cfg = record_boot_for_debugging(dir.path());
    auto syms = SymbolMap::load(images_dir() + "/System.map");
    const std::uint64_t sys_reboot = syms.address("__do_sys_reboot");
    const std::uint64_t power_off = syms.address("machine_power_off");

    QemuInstance replay(cfg, dir.path() + "/replay");
    replay.start();
    auto client = std::make_unique<RspClient>(*cfg.gdb_port, scaled(30s));
    RspClient *rsp = client.get();

    std::string supported, noack_reply, halt_reply;
    std::string old_supported;   // a second connection, as an old gdb
    bool noack_after = true, old_ack_mode = false;
    std::uint64_t old_start_pc = 0;
    Landing old_bs, old_bp, begin;
    std::map<int, std::string> p_regs;   // 'p' answers at the first stop
    Landing swb, hwb, step, bs_on_bp, bs_off_bp, bc;
    int acks_seen = -1;
    // Sends an execution command and records where it stopped.
    auto run = [&](const std::string &command) {
        Landing l;
        l.packet = rsp->request(command, scaled(900s));
        l.stop = parse_stop_reply(l.packet);
        l.icount = replay.icount();
        return l;
    };
    auto ok = [&](const std::string &packet) {
        std::string reply = rsp->request(packet);
        if (reply != "OK") {
            throw std::runtime_error(packet + " answered '" + reply + "'");
        }
    };
    try {
        supported = rsp->request("qSupported:multiprocess+;swbreak+;hwbreak+;"
                                "vContSupported+;xmlRegisters=i386");
        noack_reply = rsp->start_no_ack_mode();
        halt_reply = rsp->request("?");

        // Forwards to a software breakpoint.
        ok(bp_packet('Z', 0, sys_reboot));
        swb = run("c");
        for (int reg : {kRip, kRsp, kRbp}) {
            char p[8];
            std::snprintf(p, sizeof p, "p%x", reg);
            p_regs[reg] = rsp->request(p);
        }
        ok(bp_packet('z', 0, sys_reboot));

        // Forwards to a hardware breakpoint, then one step.
        ok(bp_packet('Z', 1, power_off));
        hwb = run("c");
        step = run("s");

        // Backwards: onto the hardware breakpoint, then past it.
        bs_on_bp = run("bs");
        bs_off_bp = run("bs");

        // Reverse-continue to the software breakpoint.
        ok(bp_packet('z', 1, power_off));
        ok(bp_packet('Z', 0, sys_reboot));
        bc = run("bc");
        ok(bp_packet('z', 0, sys_reboot));
        acks_seen = rsp->acks_after_no_ack();
        noack_after = !rsp->ack_mode();

        // A new connection, from a gdb that offers neither swbreak+ nor
        // hwbreak+ nor no-ack mode: acknowledgments are back, and a
        // breakpoint stop says nothing it did not ask for.
        client.reset();
        client = std::make_unique<RspClient>(*cfg.gdb_port, scaled(30s));
        rsp = client.get();
        old_supported = rsp->request("qSupported:multiprocess+");
        old_ack_mode = rsp->ack_mode();
        rsp->request("?");   // also removes every breakpoint
        ok(bp_packet('Z', 0, sys_reboot));
        old_bs = run("bs");
        old_start_pc = le_hex_to_u64(rsp->request("p10"));
        old_bp = run("c");
        ok(bp_packet('z', 0, sys_reboot));

        // No breakpoint behind: reverse-continue to the start of the
        // recording (a stop reason every gdb understands).
        begin = run("bc");
    } catch (const std::exception &e) {
        FAIL(e.what() << "\nRSP transcript:\n" << tail_lines(rsp->transcript(), 60)
                      << "\nreplay run:\n" << replay.diagnostics());
    }
    INFO("RSP transcript:\n" << tail_lines(rsp->transcript(), 60));
    INFO("replay run:\n" << replay.diagnostics());

    // qSupported announces what reverse debugging uses.
    auto features = split_features(supported);
    for (const char *f : {"swbreak+", "hwbreak+", "QStartNoAckMode+",
                          "ReverseStep+", "ReverseContinue+"}) {
        CHECK(features.count(f) == 1);
    }
    // No-ack mode: agreed, and no '+'/'-' from the stub afterwards.
    CHECK(noack_reply == "OK");
    CHECK(noack_after);
    CHECK(acks_seen == 0);
    CHECK(halt_reply.rfind("T05", 0) == 0);

    // A software breakpoint going forwards: swbreak, and the registers gdb
    // needs first, with the values 'p' gives.
    CHECK(swb.stop.signal == 5);
    CHECK(swb.stop.has("swbreak"));
    CHECK_FALSE(swb.stop.has("hwbreak"));
    CHECK(swb.stop.register_le(kRip) == sys_reboot);
    for (int reg : {kRip, kRsp, kRbp}) {
        CHECK(reg_field(swb.stop, reg).size() == 16);
        CHECK(reg_field(swb.stop, reg) == p_regs[reg]);
    }
    CHECK(swb.stop.register_le(kRsp) >= 0xffff800000000000ULL);  // kernel stack

    // A hardware breakpoint: hwbreak, not swbreak.
    CHECK(hwb.stop.signal == 5);
    CHECK(hwb.stop.has("hwbreak"));
    CHECK_FALSE(hwb.stop.has("swbreak"));
    CHECK(hwb.stop.register_le(kRip) == power_off);
    REQUIRE(hwb.icount > swb.icount);

    // A step away from it is no breakpoint stop.
    CHECK(step.stop.signal == 5);
    CHECK_FALSE(step.stop.has("swbreak"));
    CHECK_FALSE(step.stop.has("hwbreak"));
    CHECK(step.stop.register_le(kRip) != power_off);
    CHECK(step.icount == hwb.icount + 1);

    // reverse-stepi back onto the hardware breakpoint reports it...
    CHECK(bs_on_bp.stop.signal == 5);
    CHECK(bs_on_bp.stop.has("hwbreak"));
    CHECK(bs_on_bp.stop.register_le(kRip) == power_off);
    CHECK(bs_on_bp.icount == hwb.icount);
    // ...and one further back, off any breakpoint, reports none, with the
    // registers of the earlier instruction.
    CHECK(bs_off_bp.stop.signal == 5);
    CHECK_FALSE(bs_off_bp.stop.has("swbreak"));
    CHECK_FALSE(bs_off_bp.stop.has("hwbreak"));
    CHECK(bs_off_bp.stop.register_le(kRip) != power_off);
    CHECK(reg_field(bs_off_bp.stop, kRsp).size() == 16);
    CHECK(reg_field(bs_off_bp.stop, kRbp).size() == 16);
    CHECK(bs_off_bp.icount == hwb.icount - 1);

    // reverse-continue lands on the software breakpoint's forward hit.
    CHECK(bc.stop.signal == 5);
    CHECK(bc.stop.has("swbreak"));
    CHECK(bc.stop.register_le(kRip) == sys_reboot);
    CHECK(bc.icount == swb.icount);
    CHECK(reg_field(bc.stop, kRsp) == reg_field(swb.stop, kRsp));
    CHECK(reg_field(bc.stop, kRbp) == reg_field(swb.stop, kRbp));

    // The second connection (an old gdb) keeps acknowledgments and is told
    // nothing it did not ask for.
    auto old_features = split_features(old_supported);
    CHECK(old_features.count("swbreak+") == 0);
    CHECK(old_features.count("hwbreak+") == 0);
    CHECK(old_features.count("QStartNoAckMode+") == 1);
    CHECK(old_ack_mode);
    CHECK(old_start_pc != sys_reboot);
    CHECK(old_start_pc == old_bs.stop.register_le(kRip));
    CHECK(old_bs.icount == swb.icount - 1);
    CHECK(old_bp.stop.signal == 5);
    CHECK_FALSE(old_bp.stop.has("swbreak"));
    CHECK_FALSE(old_bp.stop.has("hwbreak"));
    CHECK(old_bp.stop.register_le(kRip) == sys_reboot);
    CHECK(old_bp.icount == swb.icount);

    CHECK(begin.stop.signal == 5);
    CHECK(begin.stop.has("replaylog"));
    CHECK(begin.stop.fields["replaylog"] == "begin");
    CHECK_FALSE(begin.stop.has("swbreak"));
    CHECK(begin.icount == 0);
    CHECK(begin.stop.has("10"));
    replay.quit();
}

// The same from gdb's side: Debian's gdb (13) takes up no-ack mode and the
// stop reasons, and still reads its breakpoint and step stops right. A
// plain run is enough for that: no recording.
TEST_CASE("gdb protocol: gdb uses no-ack mode and swbreak/hwbreak, and its "
          "breakpoints and steps still work",
          "[gdb][protocol]")
{
    TempDir dir("gdbproto-gdb");
    auto syms = SymbolMap::load(images_dir() + "/System.map");
    const std::uint64_t sys_reboot = syms.address("__do_sys_reboot");
    const std::uint64_t power_off = syms.address("machine_power_off");
    QemuConfig cfg = make_config(Scenario{"boot", "", {}}, RrMode::None);
    cfg.gdb_port = free_tcp_port();
    cfg.start_paused = true;
    QemuInstance qemu(cfg, dir.path());
    qemu.start();

    GdbSession gdb(dir.path());
    std::string noack, swbreak, hwbreak;
    GdbReply hb, sb, si;
    std::uint64_t hb_pc = 0, sb_pc = 0, si_pc = 0;
    try {
        REQUIRE(gdb.connect(*cfg.gdb_port).ok());
        noack = gdb.run("show remote noack-packet").console;
        swbreak = gdb.run("show remote swbreak-feature-packet").console;
        hwbreak = gdb.run("show remote hwbreak-feature-packet").console;
        gdb.run("hbreak *" + hex(sys_reboot));
        hb = gdb.run("continue", scaled(600s));
        hb_pc = gdb.pc();
        gdb.run("delete");
        gdb.run("break *" + hex(power_off));
        sb = gdb.run("continue", scaled(600s));
        sb_pc = gdb.pc();
        si = gdb.run("stepi", scaled(60s));
        si_pc = gdb.pc();
        gdb.run("delete");
        gdb.run("detach");
    } catch (const std::exception &e) {
        FAIL(e.what() << "\ngdb transcript:\n" << tail_lines(gdb.transcript(), 60)
                      << "\nQEMU run:\n" << qemu.diagnostics());
    }
    INFO("gdb transcript:\n" << tail_lines(gdb.transcript(), 60));
    INFO("QEMU run:\n" << qemu.diagnostics());
    CHECK(noack.find("currently enabled") != std::string::npos);
    CHECK(swbreak.find("currently enabled") != std::string::npos);
    CHECK(hwbreak.find("currently enabled") != std::string::npos);
    CHECK(hb.stop.find("reason=\"breakpoint-hit\"") != std::string::npos);
    CHECK(hb_pc == sys_reboot);
    CHECK(sb.stop.find("reason=\"breakpoint-hit\"") != std::string::npos);
    CHECK(sb_pc == power_off);
    CHECK(si.stop.find("reason=\"end-stepping-range\"") != std::string::npos);
    CHECK(si_pc != power_off);
    qemu.quit();
}

// What gdb saves with these features, from its own packet log: after
// QStartNoAckMode no acknowledgments, and after a breakpoint stop no 'g'
// or 'p' packet: the stop reply already holds the registers it needs.
TEST_CASE("gdb protocol: gdb sends no acks and reads no registers after a "
          "breakpoint stop",
          "[gdb][protocol]")
{
    TempDir dir("gdbproto-log");
    auto syms = SymbolMap::load(images_dir() + "/System.map");
    const std::uint64_t sys_reboot = syms.address("__do_sys_reboot");
    QemuConfig cfg = make_config(Scenario{"boot", "", {}}, RrMode::None);
    cfg.gdb_port = free_tcp_port();
    cfg.start_paused = true;
    QemuInstance qemu(cfg, dir.path());
    qemu.start();

    CommandResult gdb = run_command(
        {gdb_binary(), "-nx", "-batch", "-ex", "set remotetimeout 600",
         "-ex", "set debug remote 1",
         "-ex", "target remote 127.0.0.1:" + std::to_string(*cfg.gdb_port),
         "-ex", "break *" + hex(sys_reboot), "-ex", "continue",
         "-ex", "printf \"pc=%lx sp=%lx fp=%lx\\n\", $pc, $sp, $fp",
         "-ex", "detach"},
        scaled(600s), dir.path());
    INFO("gdb output:\n" << tail_lines(gdb.output, 80));
    INFO("QEMU run:\n" << qemu.diagnostics());
    REQUIRE_FALSE(gdb.timed_out);
    CHECK(gdb.output.find("pc=" + hex(sys_reboot).substr(2) + " ") !=
          std::string::npos);

    // Phases of the packet log: before no-ack mode was agreed, then up to
    // the breakpoint's stop reply, then after it.
    enum { Acked, NoAck, Stopped } phase = Acked;
    bool noack_asked = false;
    int acks_after = 0, reads_after_stop = 0, sent_after_stop = 0;
    std::string stop_reply;
    std::istringstream in(gdb.output);
    std::string line;
    while (std::getline(in, line)) {
        bool sending = line.find("Sending packet: $") != std::string::npos;
        std::string packet = sending ? line.substr(line.find('$') + 1) : "";
        if (sending && packet.rfind("QStartNoAckMode", 0) == 0) {
            noack_asked = true;
        } else if (noack_asked && phase == Acked &&
                   line.find("Packet received: OK") != std::string::npos) {
            phase = NoAck;
        } else if (phase == NoAck &&
                   line.find("Packet received: T05") != std::string::npos &&
                   line.find("swbreak") != std::string::npos) {
            phase = Stopped;
            stop_reply = line;
        } else if (phase != Acked && line.find("Received Ack") != std::string::npos) {
            ++acks_after;
        } else if (phase == Stopped && sending) {
            ++sent_after_stop;
            if (packet.rfind("g#", 0) == 0 || packet.rfind("p", 0) == 0) {
                ++reads_after_stop;
            }
        }
    }
    CHECK(noack_asked);
    CHECK(phase == Stopped);      // went through no-ack mode to the stop
    CHECK(acks_after == 0);
    CHECK(sent_after_stop > 0);   // the log goes on (the detach at least)
    CHECK(reads_after_stop == 0); // $pc, $sp, $fp came with the stop reply
    qemu.quit();
}

// A forward run to the end of the replay: the guest's power-off, after
// which the log has nothing more for it, is reported as replaylog:end.
TEST_CASE("gdb protocol: replaylog:end at the end of the replay",
          "[gdb][protocol][replaylog]")
{
    TempDir dir("gdbproto-end");
    QemuConfig cfg = record_boot_for_debugging(dir.path());

    QemuInstance replay(cfg, dir.path() + "/replay");
    replay.start();
    RspClient rsp(*cfg.gdb_port, scaled(30s));
    StopReply end;
    try {
        rsp.request("qSupported:multiprocess+;swbreak+;hwbreak+");
        REQUIRE(rsp.start_no_ack_mode() == "OK");
        end = parse_stop_reply(rsp.request("c", scaled(900s)));
    } catch (const std::exception &e) {
        FAIL(e.what() << "\nRSP transcript:\n" << tail_lines(rsp.transcript(), 60)
                      << "\nreplay run:\n" << replay.diagnostics());
    }
    INFO("RSP transcript:\n" << tail_lines(rsp.transcript(), 60));
    INFO("replay run:\n" << replay.diagnostics());
    CHECK(end.signal == 5);
    CHECK(end.has("replaylog"));
    CHECK(end.fields["replaylog"] == "end");
    CHECK(end.has("10"));
    replay.quit();
}
