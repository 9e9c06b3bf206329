// Bundles end to end: `rewind record` a scenario, take away everything it
// used (disk image, kernel, initrd), `rewind replay` the bundle alone; a
// damaged bundle is refused with a clear error; Ctrl-C ends a recording
// cleanly; `rewind debug` lands in a module function with its symbols.
#include "process.hh"
#include "qmp.hh"
#include "qemu.hh"
#include "record_replay.hh"
#include "scenarios.hh"
#include "usb_devices.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <signal.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <thread>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;
using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

std::string rewind_cli() { return rewind_binary(); }

struct CliResult {
    ExitStatus status;
    std::string output;  // stdout and stderr
    int code() const { return status.exited ? status.code : -1; }
};

CliResult rewind(const std::vector<std::string> &args, std::chrono::milliseconds timeout = 300s)
{
    std::vector<std::string> argv = {rewind_cli()};
    argv.insert(argv.end(), args.begin(), args.end());
    auto r = run_command(argv, scaled(timeout));
    INFO(shell_join(argv) << "\n" << r.output);
    REQUIRE_FALSE(r.timed_out);
    return {r.status, r.output};
}

// The QEMU command line of a scenario the way a user would type it: plain
// options, no record/replay ones (rewind record adds those).
std::vector<std::string> user_command(const std::string &kernel, const std::string &initrd,
                                      const std::string &serial_path,
                                      const std::vector<std::string> &devices)
{
    std::vector<std::string> a = {qemu_binary(), "-M", "pc", "-m", "256", "-nodefaults",
                                  "-display", "none", "-no-reboot",
                                  "-kernel", kernel, "-initrd", initrd,
                                  "-append", base_kernel_cmdline(),
                                  "-chardev", "file,id=ser0,path=" + serial_path,
                                  "-serial", "chardev:ser0"};
    a.insert(a.end(), devices.begin(), devices.end());
    return a;
}

nlohmann::json manifest_of(const std::string &bundle)
{
    return nlohmann::json::parse(read_file(bundle + "/manifest.json"));
}

// "rewind: replay reached the recorded end, instruction N" -> N.
std::uint64_t reached_icount(const std::string &output)
{
    const std::string tag = "reached the recorded end, instruction ";
    auto at = output.find(tag);
    if (at == std::string::npos) {
        return 0;
    }
    return std::stoull(output.substr(at + tag.size()));
}

// `rewind record --out BUNDLE` of the serial-echo scenario in the background
// (its output in DIR/record.out), the guest's second serial port a TCP
// server on `port`; returns once the guest waits for input.
Process start_serial_echo_recording(const std::string &dir, const std::string &bundle,
                                    const std::string &serial_path, int port)
{
    std::vector<std::string> argv = {rewind_cli(), "record", "--out", bundle, "--"};
    for (auto &a : user_command(images_dir() + "/vmlinux", initrd_path("serial-echo"), serial_path,
                                {"-chardev", "socket,id=ser1,host=127.0.0.1,port=" +
                                                 std::to_string(port) + ",server=on,wait=off",
                                 "-serial", "chardev:ser1"})) {
        argv.push_back(a);
    }
    Process::Options o;
    o.stdout_path = dir + "/record.out";
    Process rec = Process::spawn(argv, o);
    REQUIRE(wait_for_text(serial_path, "SERIAL-READY", static_cast<int>(scaled(120s).count())));
    return rec;
}

// A disk-scenario recording whose kernel, initrd and disk image lived in
// `dir` and are gone once it returns.
struct DiskBundle {
    std::string bundle;
    std::string serial;  // what the guest printed while recorded
    std::string disk_content;
};

DiskBundle record_disk_bundle(const std::string &dir)
{
    const std::string kernel = dir + "/vmlinux";
    const std::string initrd = dir + "/disk.cpio";
    fs::copy_file(images_dir() + "/vmlinux", kernel);
    fs::copy_file(initrd_path("disk"), initrd);
    RandomDisk disk = make_random_disk(dir);
    DiskBundle b{dir + "/disk.rewind", "", disk.content};
    const std::string serial_path = dir + "/record-serial.log";
    std::vector<std::string> args = {"record", "--out", b.bundle, "--"};
    for (auto &a : user_command(kernel, initrd, serial_path,
                                {"-drive", "file=" + disk.qcow2 + ",if=none,id=d0",
                                 "-device", "virtio-blk-pci,drive=d0"})) {
        args.push_back(a);
    }
    CliResult rec = rewind(args);
    INFO(rec.output);
    REQUIRE(rec.code() == 0);
    b.serial = read_file(serial_path);
    REQUIRE(lines_with(b.serial, "DISK-READ ") ==
            std::vector<std::string>{md5_hex(disk.content.substr(0, 1 << 20))});
    REQUIRE(b.serial.find("REWIND-DONE") != std::string::npos);
    // The outside world goes away.
    for (const auto &f : {kernel, initrd, disk.qcow2, dir + "/disk.raw"}) {
        fs::remove(f);
    }
    return b;
}

void flip_byte(const std::string &path, std::uint64_t offset)
{
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(offset));
    char c = 0;
    f.get(c);
    f.seekp(static_cast<std::streamoff>(offset));
    f.put(static_cast<char>(c ^ 0x40));
}

std::string copy_bundle(const std::string &from, const std::string &to)
{
    fs::copy(from, to, fs::copy_options::recursive);
    return to;
}

}  // namespace

TEST_CASE("bundle: a disk recording replays from the bundle alone", "[bundle]")
{
    TempDir dir("bundle-disk");
    DiskBundle b = record_disk_bundle(dir.path());
    const auto manifest = manifest_of(b.bundle);
    INFO(manifest.dump(2));
    const std::uint64_t icount = manifest["recording"]["icount"].get<std::uint64_t>();
    CHECK(icount > 0);
    CHECK(manifest["recording"]["stop_reason"] == "poweroff");
    // Only what the guest read is kept: its first MiB and the 64 KiB it
    // read before overwriting them, not the 4 MiB image.
    const auto stored = manifest["block_store"]["blocks"].get<std::uint64_t>() * 4096;
    CHECK(manifest["block_store"]["compression"] == "zstd");
    // The scenario's disk holds random bytes: compression cannot shrink them.
    CHECK(fs::file_size(b.bundle + "/disks/blocks.zst") < stored + 4096);
    CHECK(stored >= (1u << 20) + (64u << 10));
    CHECK(stored < (2u << 20));

    CliResult verify = rewind({"verify", b.bundle});
    INFO(verify.output);
    CHECK(verify.code() == 0);

    const std::string work = dir.path() + "/replay";
    CliResult rep = rewind({"replay", b.bundle, "--workdir", work});
    INFO(rep.output);
    REQUIRE(rep.code() == 0);
    CHECK(reached_icount(rep.output) == icount);
    CHECK(read_file(work + "/ser0.out") == b.serial);
    // The rebuilt disk image does not outlive the replay.
    CHECK_FALSE(file_exists(work + "/disk0.img"));

    // --seek stops on the way.
    CliResult seek = rewind({"replay", b.bundle, "--workdir", dir.path() + "/seek",
                             "--seek", std::to_string(icount / 2)});
    INFO(seek.output);
    CHECK(seek.code() == 0);
    CHECK_THAT(seek.output, ContainsSubstring("paused at instruction " + std::to_string(icount / 2)));
}

TEST_CASE("bundle: truncated, corrupted or foreign bundles are refused with exit status 2",
          "[bundle]")
{
    TempDir dir("bundle-bad");
    DiskBundle b = record_disk_bundle(dir.path());
    auto refused = [&](const std::string &bundle, const std::string &what) {
        const std::vector<std::vector<std::string>> commands = {
            {"verify", bundle}, {"replay", bundle, "--workdir", dir.path() + "/work"}};
        for (const auto &command : commands) {
            CliResult r = rewind(command, 120s);
            INFO(shell_join(command) << ":\n" << r.output);
            CHECK(r.code() == 2);
            CHECK_THAT(r.output, ContainsSubstring(what));
            CHECK_THAT(r.output, !ContainsSubstring("terminate called"));
        }
    };

    // One recording, damaged in a fresh copy each time.
    struct Damage {
        std::string name;
        std::function<std::string(const std::string &copy)> apply;  // returns the expected text
    };
    const std::vector<Damage> damages = {
        {"no manifest", [](const std::string &c) {
             fs::remove(c + "/manifest.json");
             return std::string("manifest.json: missing");
         }},
        {"truncated manifest", [](const std::string &c) {
             std::string text = read_file(c + "/manifest.json");
             write_file(c + "/manifest.json", text.substr(0, text.size() / 3));
             return std::string("not valid JSON");
         }},
        {"foreign manifest", [](const std::string &c) {
             write_file(c + "/manifest.json", R"({"format": "rr-trace", "format_version": 1})");
             return std::string("not a QEMU Rewind bundle");
         }},
        {"later format version", [](const std::string &c) {
             auto m = manifest_of(c);
             m["format_version"] = 2;
             write_file(c + "/manifest.json", m.dump());
             return std::string("format version 2");
         }},
        {"truncated log", [](const std::string &c) {
             fs::resize_file(c + "/replay.log", fs::file_size(c + "/replay.log") / 2);
             return std::string("replay.log");
         }},
        {"corrupted disk block", [](const std::string &c) {
             flip_byte(c + "/disks/blocks.zst", fs::file_size(c + "/disks/blocks.zst") / 2);
             return std::string("blocks.zst");
         }},
        {"missing kernel", [](const std::string &c) {
             std::string kernel;
             const auto manifest = manifest_of(c);
             for (const auto &f : manifest["files"]) {
                 if (f["role"] == "kernel") {
                     kernel = f["sha256"].get<std::string>();
                 }
             }
             fs::remove(c + "/files/" + kernel);
             return "files/" + kernel;
         }},
        {"not a bundle at all", [](const std::string &c) {
             fs::remove_all(c);
             fs::create_directories(c);
             return std::string("missing");
         }},
    };
    int n = 0;
    for (const auto &damage : damages) {
        INFO(damage.name);
        const std::string copy = copy_bundle(b.bundle, dir.path() + "/damaged" + std::to_string(n++));
        refused(copy, damage.apply(copy));
        fs::remove_all(copy);
    }
}

TEST_CASE("bundle: Ctrl-C ends a recording cleanly and the bundle replays", "[bundle]")
{
    TempDir dir("bundle-sigint");
    const int port = free_tcp_port();
    const std::string serial_path = dir.path() + "/record-serial.log";
    const std::string bundle = dir.path() + "/echo.rewind";
    Process rec = start_serial_echo_recording(dir.path(), bundle, serial_path, port);
    // Input that only the log can give back at replay.
    const std::string line = random_token(24);
    TcpClient client(port, 10000);
    client.send(line + "\n");
    const std::string echo = "ECHO " + md5_hex(line);
    REQUIRE(wait_for_text(serial_path, echo, static_cast<int>(scaled(60s).count())));

    ::kill(rec.pid(), SIGINT);
    auto status = rec.wait_for(scaled(120s));
    INFO(read_file(dir.path() + "/record.out"));
    REQUIRE(status);
    REQUIRE(status->exited);
    REQUIRE(status->code == 0);
    const auto manifest = manifest_of(bundle);
    CHECK(manifest["recording"]["stop_reason"] == "interrupted");
    const std::uint64_t icount = manifest["recording"]["icount"].get<std::uint64_t>();

    const std::string work = dir.path() + "/replay";
    CliResult rep = rewind({"replay", bundle, "--workdir", work});
    INFO(rep.output);
    REQUIRE(rep.code() == 0);
    CHECK(reached_icount(rep.output) == icount);
    const std::string replayed = read_file(work + "/ser0.out");
    CHECK(replayed.find(echo) != std::string::npos);
    CHECK(replayed == read_file(serial_path));
}

TEST_CASE("bundle: rewind debug stops in a module function with the module's symbols",
          "[bundle][gdb]")
{
    TempDir dir("bundle-debug");
    const std::string serial_path = dir.path() + "/record-serial.log";
    const std::string bundle = dir.path() + "/module.rewind";
    std::vector<std::string> args = {"record", "--out", bundle, "--"};
    for (auto &a : user_command(images_dir() + "/vmlinux", initrd_path("module"), serial_path, {})) {
        args.push_back(a);
    }
    CliResult rec = rewind(args);
    REQUIRE(rec.code() == 0);
    const std::string serial = read_file(serial_path);
    // The guest's own account of where .text went, and the manifest's.
    const std::string text = one_line(serial, "REWIND-MODULE-SECTION .text ");
    const auto manifest = manifest_of(bundle);
    INFO(manifest.dump(2));
    REQUIRE(manifest["modules"].size() == 1);
    CHECK(manifest["modules"][0]["name"] == "rewind_test");
    CHECK(manifest["modules"][0]["sections"][".text"] == text);

    const std::string ko = images_dir() + "/module/rewind_test.ko";
    CliResult dbg = rewind({"debug", bundle, "--workdir", dir.path() + "/debug",
                            "--gdb-port", std::to_string(free_tcp_port()),
                            "--gdb", gdb_binary(),
                            "--module", "rewind_test=" + ko, "--",
                            "-batch", "-ex", "break rewind_test_step", "-ex", "continue",
                            "-ex", "info symbol $pc"});
    INFO(dbg.output);
    CHECK(dbg.code() == 0);
    CHECK_THAT(dbg.output, ContainsSubstring("Breakpoint 1, rewind_test_step"));
    CHECK_THAT(dbg.output, ContainsSubstring("rewind_test_step in section .text"));
}

TEST_CASE("bundle: a recording whose QEMU was killed keeps a bundle that replays",
          "[bundle]")
{
    TempDir dir("bundle-killed");
    const std::string serial_path = dir.path() + "/record-serial.log";
    const std::string bundle = dir.path() + "/killed.rewind";
    // serial-echo waits for input on a second port that nobody connects to.
    Process rec = start_serial_echo_recording(dir.path(), bundle, serial_path, free_tcp_port());
    // QEMU is rewind's only child.
    const std::string children = read_file("/proc/" + std::to_string(rec.pid()) + "/task/" +
                                           std::to_string(rec.pid()) + "/children");
    INFO("children of rewind: " << children);
    const int qemu_pid = std::atoi(children.c_str());
    REQUIRE(qemu_pid > 0);
    ::kill(qemu_pid, SIGKILL);
    auto status = rec.wait_for(scaled(120s));
    const std::string out = read_file(dir.path() + "/record.out");
    INFO(out);
    REQUIRE(status);
    CHECK(status->exited);
    CHECK(status->code == 3);
    CHECK_THAT(out, ContainsSubstring("killed by signal 9"));
    const auto manifest = manifest_of(bundle);
    CHECK(manifest["recording"]["stop_reason"] == "qemu-died");

    CliResult verify = rewind({"verify", bundle});
    CHECK(verify.code() == 0);
    CliResult rep = rewind({"replay", bundle, "--workdir", dir.path() + "/replay"});
    INFO(rep.output);
    CHECK(rep.code() == 0);
    CHECK(reached_icount(rep.output) == manifest["recording"]["icount"].get<std::uint64_t>());
    // The replay ends with the last chunk QEMU flushed: what it printed is
    // the start of what the recording printed.
    const std::string replayed = read_file(dir.path() + "/replay/ser0.out");
    CHECK(read_file(serial_path).starts_with(replayed));
}

TEST_CASE("bundle: going back in time over a disk write on the rebuilt disk", "[bundle][time-travel]")
{
    TempDir dir("bundle-disk-seek");
    DiskBundle b = record_disk_bundle(dir.path());
    const std::uint64_t end = manifest_of(b.bundle)["recording"]["icount"].get<std::uint64_t>();
    const std::string work = dir.path() + "/replay";
    // A QMP socket of the test's own (rewind keeps its own connection).
    const std::string socket = dir.path() + "/test-qmp.sock";
    std::vector<std::string> argv = {rewind_cli(), "replay", b.bundle, "--workdir", work,
                                     "--gdb=" + std::to_string(free_tcp_port()), "--",
                                     "-qmp", "unix:" + socket + ",server=on,wait=off"};
    Process::Options o;
    o.stdout_path = dir.path() + "/replay.out";
    Process rep = Process::spawn(argv, o);
    QmpClient qmp;
    qmp.connect(socket, scaled(30s));
    auto run_to_end = [&] {
        qmp.execute("cont");
        const auto deadline = std::chrono::steady_clock::now() + scaled(300s);
        while (qmp.execute("query-status").value("status", "") != "shutdown") {
            REQUIRE(std::chrono::steady_clock::now() < deadline);
            std::this_thread::sleep_for(50ms);
        }
        CHECK(qmp.execute("query-replay").value("icount", std::uint64_t{0}) == end);
    };
    run_to_end();
    qmp.execute("replay-seek", {{"icount", 0}});
    run_to_end();
    qmp.execute("quit");
    rep.wait_for(scaled(60s));
    // The second pass read the original data again, not the guest's write.
    const std::string serial = read_file(work + "/ser0.out");
    INFO(serial);
    const std::string before = md5_hex(b.disk_content.substr(2 << 20, 64 << 10));
    CHECK(lines_with(serial, "DISK-BEFORE ") == std::vector<std::string>{before, before});
    CHECK(lines_with(serial, "DISK-WRITE ").size() == 2);
}

TEST_CASE("bundle: a USB drive passed through is recorded by rewind record and replays "
          "without the device",
          "[bundle][usb]")
{
    TempDir dir("bundle-usb");
    UsbDrive drive = make_usb_drive(dir.path(), "DISK-A");
    const std::string bundle = dir.path() + "/usb.rewind";
    const std::string serial = dir.path() + "/record-serial.log";
    // rewind-usbdev serves the drive; rewind record runs under it and
    // QEMU under rewind record, as a QA machine with the device plugged.
    std::vector<std::string> argv = usbdev_wrapper({drive}, dir.path() + "/usbdev.log");
    argv.insert(argv.end(), {rewind_cli(), "record", "--out", bundle, "--"});
    auto user = user_command(images_dir() + "/vmlinux", initrd_path("usb-storage"), serial,
                             {"-device", "qemu-xhci", "-device", "usb-host,hostbus=1,hostaddr=2"});
    argv.insert(argv.end(), user.begin(), user.end());
    auto rec = run_command(argv, scaled(300s), dir.path());
    INFO(shell_join(argv) << "\n" << rec.output);
    REQUIRE_FALSE(rec.timed_out);
    REQUIRE(rec.status.exited);
    REQUIRE(rec.status.code == 0);
    const std::string expected = "USB-MD5 " + drive.serial + " " + md5_hex(drive.content);
    REQUIRE(read_file(serial).find(expected) != std::string::npos);

    // The developer's machine: no device program, no image.
    fs::remove(drive.image);
    CliResult replay = rewind({"replay", bundle, "--workdir", dir.path() + "/replay"});
    CHECK(replay.code() == 0);
    CHECK(reached_icount(replay.output) == manifest_of(bundle).at("recording").at("icount").get<std::uint64_t>());
    // What the replayed guest printed, from the log's output records.
    CliResult text = rewind({"extract", bundle, "--serial"});
    CHECK(text.code() == 0);
    CHECK(text.output.find(expected) != std::string::npos);
    CliResult info = rewind({"info", bundle});
    CHECK(info.output.find("usb-host 0") != std::string::npos);
    CHECK(info.output.find("1209:0001") != std::string::npos);
}
