// Real distribution VMs: the Debian 12 system of scripts/make-debian-vm.sh
// (systemd, its own kernel and initramfs, booted from its disk), recorded
// with `rewind record` on the machines driver developers use, and the
// restore-fidelity checker (`rewind check-restores`) over the bundle:
// at random points and right after device activity, the machine reached
// through a checkpoint restore must equal the straight replay's, RAM,
// every device section and vCPU, and the armed timers.
//
// [realvm] runs in make check; [realvm-long] (hidden) in make check-long.
#include "http_server.hh"
#include "process.hh"
#include "qemu.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <filesystem>
#include <nlohmann/json.hpp>

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
                                  "-append", first_line(read_file(dir + "/cmdline")) + " quiet rewind.http=" +
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

// Records the workload (boot, DHCP, an HTTP download from the host, 16 MiB
// written with fsync, four gzip processes, power-off) and checks restores
// at `random` random points and `device` points after device activity.
void record_and_check(const VmScenario &s, int random, int device)
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
}

}  // namespace

TEST_CASE("realvm: Debian on pc, virtio-blk and virtio-net, 1 GiB: every restore is exact", "[realvm]")
{
    record_and_check({"pc", "virtio", "virtio-net-pci", "1G"}, 12, 8);
}

TEST_CASE("realvm: Debian on q35, AHCI and e1000e, 1 GiB: every restore is exact", "[realvm]")
{
    record_and_check({"q35", "ahci", "e1000e", "1G"}, 6, 6);
}

TEST_CASE("realvm: Debian on pc, AHCI and e1000e, 4 GiB: every restore is exact", "[.][realvm-long]")
{
    record_and_check({"pc", "ahci", "e1000e", "4G"}, 50, 50);
}

TEST_CASE("realvm: Debian on q35, virtio-blk and virtio-net, 4 GiB: every restore is exact", "[.][realvm-long]")
{
    record_and_check({"q35", "virtio", "virtio-net-pci", "4G"}, 50, 50);
}

TEST_CASE("realvm: Debian on pc, virtio, 1 GiB: 100 points", "[.][realvm-long]")
{
    record_and_check({"pc", "virtio", "virtio-net-pci", "1G"}, 60, 40);
}
