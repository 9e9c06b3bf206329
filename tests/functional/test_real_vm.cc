// Real distribution VMs: the Debian 12 system of scripts/make-debian-vm.sh
// (systemd, its own kernel and initramfs, booted from its disk), recorded
// with `rewind record` on the machines driver developers use, and the
// restore-fidelity checker (`rewind check-restores`) over the bundle:
// at random points and right after device activity, the machine reached
// through a checkpoint restore must equal the straight replay's, RAM,
// every device section and vCPU, and the armed timers.
//
// Then gdb's reverse operations on the same bundle, through the stub of
// `rewind replay --gdb`: reverse-stepi after seeks to random points,
// reverse-continue to a breakpoint and to a watchpoint, each checked for
// where it lands.
//
// [realvm] runs in make check; [realvm-long] (hidden) in make check-long.
#include "http_server.hh"
#include "process.hh"
#include "qemu.hh"
#include "qmp.hh"
#include "rsp_client.hh"
#include "util.hh"

#include <catch2/catch_get_random_seed.hpp>
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;
using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

struct VmScenario {
    std::string machine;  // pc, q35
    std::string disk;     // virtio, ahci
    std::string nic;      // virtio-net-pci, e1000e
    std::string memory;   // 1G, 4G
};

std::string vm_dir() { return images_dir() + "/debian-vm"; }

std::string first_line(const std::string &text) { return text.substr(0, text.find('\n')); }

std::vector<std::string> vm_command(const VmScenario &s, const std::string &serial, int http_port)
{
    const std::string dir = vm_dir();
    std::vector<std::string> a = {qemu_binary(), "-M", s.machine, "-m", s.memory, "-nodefaults",
                                  "-display", "none", "-no-reboot",
                                  "-kernel", dir + "/vmlinuz", "-initrd", dir + "/initrd.img",
                                  "-append", first_line(read_file(dir + "/cmdline")) + " rewind.http=" +
                                                 std::to_string(http_port),
                                  "-chardev", "file,id=ser0,path=" + serial, "-serial", "chardev:ser0",
                                  "-netdev", "user,id=n0", "-device", s.nic + ",netdev=n0"};
    if (s.disk == "virtio") {
        a.insert(a.end(), {"-drive", "file=" + dir + "/disk.qcow2,if=virtio"});
    } else {
        // q35 has its AHCI controller built in (bus ide.0); pc gets one.
        a.insert(a.end(), {"-drive", "file=" + dir + "/disk.qcow2,if=none,id=d0"});
        if (s.machine == "q35") {
            a.insert(a.end(), {"-device", "ide-hd,drive=d0,bus=ide.0"});
        } else {
            a.insert(a.end(), {"-device", "ahci,id=ahci0", "-device", "ide-hd,drive=d0,bus=ahci0.0"});
        }
    }
    return a;
}

CommandResult run_rewind(const std::vector<std::string> &args, std::chrono::milliseconds timeout)
{
    std::vector<std::string> argv = {rewind_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_command(argv, scaled(timeout));
    INFO(shell_join(argv) << "\n" << r.output);
    REQUIRE_FALSE(r.timed_out);
    return r;
}

// "rewind-vm: sym NAME 0xADDR" lines of the console.
std::map<std::string, std::uint64_t> guest_symbols(const std::string &console)
{
    std::map<std::string, std::uint64_t> syms;
    std::istringstream in(console);
    std::string line;
    while (std::getline(in, line)) {
        const auto at = line.find("rewind-vm: sym ");
        if (at == std::string::npos) {
            continue;
        }
        std::istringstream f(line.substr(at + 15));
        std::string name, addr;
        if (f >> name >> addr && addr.size() > 2 && addr != "0x") {
            syms[name] = std::stoull(addr, nullptr, 16);
        }
    }
    return syms;
}

std::string hex(std::uint64_t v)
{
    std::ostringstream o;
    o << std::hex << v;
    return o.str();
}

// A replay of the bundle under `rewind replay --gdb`, driven over the
// gdb remote protocol and a QMP socket of the test's own.
class GdbReplay {
public:
    GdbReplay(const std::string &bundle, const std::string &dir)
    {
        const int port = free_tcp_port();
        socket_ = dir + "/test-qmp.sock";
        Process::Options o;
        o.stdout_path = dir + "/replay.out";
        proc_ = Process::spawn({rewind_binary(), "replay", bundle, "--workdir", dir + "/replay",
                                "--gdb=" + std::to_string(port), "--", "-qmp",
                                "unix:" + socket_ + ",server=on,wait=off"},
                               o);
        qmp_.connect(socket_, scaled(60s));
        rsp_ = std::make_unique<RspClient>(port, scaled(60s));
        rsp_->start_no_ack_mode();
        rsp_->request("?");
    }
    ~GdbReplay()
    {
        try {
            qmp_.execute("quit");
        } catch (const std::exception &) {
        }
        proc_.wait_for(scaled(30s));
    }

    std::uint64_t icount() { return qmp_.execute("query-replay").value("icount", std::uint64_t{0}); }

    // replay-seek (restore + replay forward), waits until paused there.
    void seek(std::uint64_t target)
    {
        qmp_.execute("replay-seek", {{"icount", target}}, scaled(600s));
        wait_paused_at(target);
    }
    // Forward without a restore, from where it is.
    void run_to(std::uint64_t target)
    {
        qmp_.execute("replay-break", {{"icount", target}});
        qmp_.execute("cont");
        wait_paused_at(target);
    }
    // A gdb packet that resumes (bs, bc): its stop reply.
    StopReply resume(const std::string &packet)
    {
        return parse_stop_reply(rsp_->request(packet, scaled(600s)));
    }
    std::string request(const std::string &packet) { return rsp_->request(packet); }
    const std::string &transcript() const { return rsp_->transcript(); }

private:
    void wait_paused_at(std::uint64_t target)
    {
        const auto deadline = std::chrono::steady_clock::now() + scaled(600s);
        for (;;) {
            const std::string st = qmp_.execute("query-status").value("status", "");
            if (icount() == target && st != "running") {
                return;
            }
            if (std::chrono::steady_clock::now() > deadline) {
                throw std::runtime_error("the replay did not stop at " + std::to_string(target) + " (at " +
                                         std::to_string(icount()) + ", " + st + ")");
            }
            std::this_thread::sleep_for(20ms);
        }
    }

    std::string socket_;
    Process proc_;
    QmpClient qmp_;
    std::unique_ptr<RspClient> rsp_;
};

double seconds_since(std::chrono::steady_clock::time_point t0)
{
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// `rounds` rounds of: seek to a random point and three reverse-stepi
// (each lands one instruction earlier); reverse-continue to a breakpoint
// on schedule() (lands on it, earlier); reverse-continue to a write
// watchpoint on jiffies_64 (lands earlier, with a watch stop reply).
// Five reverse operations a round.
void reverse_operations(const std::string &bundle, const std::string &dir, std::uint64_t end,
                        const std::map<std::string, std::uint64_t> &syms, int rounds)
{
    REQUIRE(syms.count("schedule"));
    REQUIRE(syms.count("jiffies_64"));
    GdbReplay r(bundle, dir);
    std::mt19937_64 rng(Catch::getSeed());
    std::uniform_int_distribution<std::uint64_t> anywhere(end / 20, end - end / 20);
    std::vector<double> stepi_s;
    double back_s = 0, forward_s = 0;
    int ops = 0;
    // x86_64 gdb register 16 is rip.
    constexpr int kRip = 16;
    try {
        for (int i = 0; i < rounds; ++i) {
            const std::uint64_t p = anywhere(rng);
            r.seek(p);
            for (int k = 1; k <= 3; ++k) {
                const auto t0 = std::chrono::steady_clock::now();
                r.resume("bs");
                stepi_s.push_back(seconds_since(t0));
                INFO("reverse-stepi " << k << " from " << p);
                REQUIRE(r.icount() == p - k);
                ++ops;
            }
            // Breakpoint: the last time schedule() ran before here.
            const std::uint64_t from = r.icount();
            REQUIRE(r.request("Z0," + hex(syms.at("schedule")) + ",1") == "OK");
            auto t0 = std::chrono::steady_clock::now();
            const StopReply hit = r.resume("bc");
            back_s += seconds_since(t0);
            REQUIRE(r.request("z0," + hex(syms.at("schedule")) + ",1") == "OK");
            const std::uint64_t landed = r.icount();
            INFO("reverse-continue to schedule from " << from << " landed at " << landed);
            REQUIRE(landed < from);
            CHECK(hit.register_le(kRip) == syms.at("schedule"));
            ++ops;
            // The same distance forward, without a restore.
            t0 = std::chrono::steady_clock::now();
            r.run_to(from);
            forward_s += seconds_since(t0);
            // Watchpoint: the last write of jiffies_64 before here.
            REQUIRE(r.request("Z2," + hex(syms.at("jiffies_64")) + ",8") == "OK");
            const StopReply w = r.resume("bc");
            REQUIRE(r.request("z2," + hex(syms.at("jiffies_64")) + ",8") == "OK");
            INFO("reverse-continue to the jiffies_64 write from " << from);
            CHECK(r.icount() < from);
            CHECK(w.has("watch"));
            ++ops;
        }
    } catch (const std::exception &e) {
        FAIL(e.what() << "\ngdb packets:\n" << r.transcript().substr(0, 4000));
    }
    std::sort(stepi_s.begin(), stepi_s.end());
    const double p95 = stepi_s[stepi_s.size() * 95 / 100];
    WARN(ops << " reverse operations; reverse-stepi p95 " << p95 << " s, median "
             << stepi_s[stepi_s.size() / 2] << " s; reverse-continue to breakpoints " << back_s
             << " s for " << forward_s << " s forward over the same distances");
    CHECK(ops == 5 * rounds);
}

// Records the workload (boot, DHCP, an HTTP download from the host, 16 MiB
// written with fsync, four gzip processes, power-off), checks restores at
// `random` random points and `device` points after device activity, then
// runs `reverse_rounds` rounds of gdb reverse operations.
void record_and_check(const VmScenario &s, int random, int device, int reverse_rounds)
{
    if (!fs::exists(vm_dir() + "/disk.qcow2")) {
        FAIL("no Debian VM image in " << vm_dir() << " (make images builds it)");
    }
    TempDir tmp("realvm");
    const std::string payload = random_bytes(3 << 20);
    HttpServer http(payload);
    const std::string serial = tmp.path() + "/serial.log";
    const std::string bundle = tmp.path() + "/vm.rewind";

    std::vector<std::string> rec = {"record", "--out", bundle, "--"};
    const auto cmd = vm_command(s, serial, http.port());
    rec.insert(rec.end(), cmd.begin(), cmd.end());
    auto r = run_rewind(rec, 900s);
    const std::string console = read_file(serial);
    INFO("console:\n" << console);
    REQUIRE(r.status.exited);
    REQUIRE(r.status.code == 0);
    REQUIRE_THAT(console, ContainsSubstring("rewind-vm: http md5 " + md5_hex(payload)));
    REQUIRE_THAT(console, ContainsSubstring("rewind-vm: gzip 4 1"));
    REQUIRE_THAT(console, ContainsSubstring("rewind-vm: done"));

    const std::string report = tmp.path() + "/check.json";
    r = run_rewind({"check-restores", bundle, "--points", std::to_string(random), "--bursts",
                    std::to_string(device), "--json", report},
                   1800s);
    const auto result = nlohmann::json::parse(read_file(report));
    const std::size_t total = result.at("total");
    const std::size_t exact = result.at("exact");
    std::size_t after_device = 0;
    for (const auto &p : result.at("points")) {
        after_device += p.at("kind") == "device";
    }
    INFO("seed " << result.at("seed"));
    CHECK(total >= static_cast<std::size_t>(random + device) * 3 / 4);
    CHECK(after_device > 0);
    CHECK(exact == total);
    CHECK(r.status.code == 0);

    if (reverse_rounds > 0) {
        const std::uint64_t end = nlohmann::json::parse(read_file(bundle + "/manifest.json"))["recording"]["icount"];
        reverse_operations(bundle, tmp.path(), end, guest_symbols(console), reverse_rounds);
    }
}

}  // namespace

TEST_CASE("realvm: Debian on pc, virtio-blk and virtio-net, 1 GiB: every restore is exact", "[realvm]")
{
    record_and_check({"pc", "virtio", "virtio-net-pci", "1G"}, 12, 8, 10);
}

TEST_CASE("realvm: Debian on q35, AHCI and e1000e, 1 GiB: every restore is exact", "[realvm]")
{
    record_and_check({"q35", "ahci", "e1000e", "1G"}, 6, 6, 4);
}

TEST_CASE("realvm: Debian on pc, AHCI and e1000e, 4 GiB: every restore is exact", "[.][realvm-long]")
{
    record_and_check({"pc", "ahci", "e1000e", "4G"}, 50, 50, 40);
}

TEST_CASE("realvm: Debian on q35, virtio-blk and virtio-net, 4 GiB: every restore is exact", "[.][realvm-long]")
{
    record_and_check({"q35", "virtio", "virtio-net-pci", "4G"}, 50, 50, 40);
}

TEST_CASE("realvm: Debian on pc, virtio, 1 GiB: 100 points", "[.][realvm-long]")
{
    record_and_check({"pc", "virtio", "virtio-net-pci", "1G"}, 60, 40, 40);
}
