// USB host passthrough (-device usb-host, libusb) with software devices:
// rewind-usbdev (tests/usbdev) serves USB flash drives to QEMU's libusb
// through libumockdev. Plain runs check the passthrough itself; record/
// replay runs record with the devices and replay with them gone.
#include "record_replay.hh"
#include "usb_devices.hh"
#include "util.hh"

#include "../usbdev/iso_stream.hh"

#include <catch2/catch_test_macros.hpp>
#include <catch2/generators/catch_generators.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <filesystem>
#include <map>
#include <sstream>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

std::string expected_line(const UsbDrive &d)
{
    return d.serial + " " + md5_hex(d.content);
}

std::size_t count_lines_with(const std::string &text, const std::string &needle)
{
    std::size_t n = 0;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        n += line.find(needle) != std::string::npos;
    }
    return n;
}

void require_clean_run(const RunResult &r)
{
    INFO("run:\n" << r.diagnostics);
    REQUIRE(r.serial.find("REWIND-FAIL") == std::string::npos);
    REQUIRE(r.serial.find("REWIND-DONE") != std::string::npos);
}

// Records with rewind-usbdev serving `drives`, then replays with no
// device program at all: the same QEMU command line, but nothing behind
// usb-host.
RecordReplay record_then_replay_usb(const Scenario &s, const std::vector<UsbDrive> &drives,
                                    const std::string &dir,
                                    const std::function<void(QemuInstance &)> &feed = {})
{
    std::string log = dir + "/log.bin";
    std::filesystem::create_directories(dir + "/record");
    std::filesystem::create_directories(dir + "/replay");
    RecordReplay rr;
    QemuConfig rec = make_config(s, RrMode::Record, log);
    rec.wrapper = usbdev_wrapper(drives, dir + "/record/usbdev.log");
    rr.record = run_to_poweroff(rec, dir + "/record", 600s, feed);
    for (const auto &d : drives) {
        std::filesystem::remove(d.image);   // the replay must not need them
    }
    rr.replay = run_to_poweroff(make_config(s, RrMode::Replay, log), dir + "/replay", 900s);
    return rr;
}

}  // namespace

TEST_CASE("usb-storage: a passed-through USB drive is read by the guest (plain)",
          "[usb]")
{
    TempDir dir("usb-plain");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A")};
    QemuConfig c = make_config(usb_storage_scenario(1), RrMode::None);
    std::string log = dir.path() + "/usbdev.log";
    c.wrapper = usbdev_wrapper(drives, log);
    RunResult r = run_to_poweroff(c, dir.path(), 120s);
    require_clean_run(r);
    CHECK(lines_with(r.serial, "USB-MD5 ") == std::vector{expected_line(drives[0])});

    // libusb polls the node for reapable URBs: with real poll readiness it
    // asks only after a completion (one EAGAIN per batch of reaps), never
    // in a loop. A busy loop makes tens of thousands of ioctls.
    std::string usblog = read_file(log);
    INFO("rewind-usbdev log tail:\n" << tail_lines(usblog, 20));
    std::size_t reaped = count_lines_with(usblog, " REAP ");
    std::size_t empty_reaps = count_lines_with(usblog, "-> EAGAIN");
    std::size_t ioctls = count_lines_with(usblog, " SUBMITURB ") + reaped + empty_reaps;
    CHECK(reaped > 50);                 // descriptors, SCSI probing, the file
    CHECK(empty_reaps <= reaped);
    CHECK(ioctls < 2000);
    CHECK(usblog.find("unhandled ioctl") == std::string::npos);
}

TEST_CASE("usb-storage: unplugging the drive (SIGUSR1 to rewind-usbdev) removes it "
          "from the guest (plain)",
          "[usb]")
{
    TempDir dir("usb-unplug");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A")};
    QemuConfig c = make_config(usb_storage_scenario(1, "rewind.unplug=1"), RrMode::None);
    std::string log = dir.path() + "/usbdev.log";
    c.wrapper = usbdev_wrapper(drives, log);
    RunResult r = run_to_poweroff(c, dir.path(), 120s, [](QemuInstance &q) {
        REQUIRE(wait_for_text(q.workdir() + "/serial.log", "USB-WAIT-UNPLUG",
                              static_cast<int>(scaled(60s).count())));
        // QEMU runs as rewind-usbdev's child: our child is rewind-usbdev.
        REQUIRE(kill(q.pid(), SIGUSR1) == 0);
    });
    require_clean_run(r);
    CHECK(lines_with(r.serial, "USB-MD5 ") == std::vector{expected_line(drives[0])});
    CHECK(r.serial.find("USB-UNPLUGGED") != std::string::npos);
    std::string usblog = read_file(log);
    CHECK(usblog.find("dev0 unplug") != std::string::npos);
}

TEST_CASE("usb-storage: two identical drives are told apart by bus address (plain)",
          "[usb]")
{
    TempDir dir("usb-two");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A"),
                                    make_usb_drive(dir.path(), "DISK-B", 128 * 1024)};
    QemuConfig c = make_config(usb_storage_scenario(2), RrMode::None);
    c.wrapper = usbdev_wrapper(drives, dir.path() + "/usbdev.log");
    RunResult r = run_to_poweroff(c, dir.path(), 120s);
    require_clean_run(r);
    CHECK(lines_with(r.serial, "USB-MD5 ") ==
          std::vector{expected_line(drives[0]), expected_line(drives[1])});
}

TEST_CASE("usb-storage: a USB drive is replayed from the log without the device",
          "[usb][replay]")
{
    TempDir dir("usb-rr");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A")};
    std::string expected = expected_line(drives[0]);
    auto rr = record_then_replay_usb(usb_storage_scenario(1), drives, dir.path());
    require_identical_runs(rr);
    CHECK(lines_with(rr.replay.serial, "USB-MD5 ") == std::vector{expected});
}

TEST_CASE("usb-storage: two identical USB drives are replayed, each with its own data",
          "[usb][replay]")
{
    TempDir dir("usb-rr-two");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A"),
                                    make_usb_drive(dir.path(), "DISK-B", 128 * 1024)};
    std::vector<std::string> expected = {expected_line(drives[0]), expected_line(drives[1])};
    auto rr = record_then_replay_usb(usb_storage_scenario(2), drives, dir.path());
    require_identical_runs(rr);
    CHECK(lines_with(rr.replay.serial, "USB-MD5 ") == expected);
}

TEST_CASE("usb-storage: an unplug during recording is replayed", "[usb][replay]")
{
    TempDir dir("usb-rr-unplug");
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A")};
    std::string expected = expected_line(drives[0]);
    auto rr = record_then_replay_usb(
        usb_storage_scenario(1, "rewind.unplug=1"), drives, dir.path(), [](QemuInstance &q) {
            REQUIRE(wait_for_text(q.workdir() + "/serial.log", "USB-WAIT-UNPLUG",
                                  static_cast<int>(scaled(300s).count())));
            REQUIRE(kill(q.pid(), SIGUSR1) == 0);
        });
    require_identical_runs(rr);
    CHECK(lines_with(rr.replay.serial, "USB-MD5 ") == std::vector{expected});
    CHECK(rr.replay.serial.find("USB-UNPLUGGED") != std::string::npos);
}

// ---- Interrupt and isochronous traffic: a HID keyboard that types a
// random text (an interrupt IN URB is always pending) and a
// vendor-specific device streaming seeded pseudo-random data on an
// isochronous IN endpoint, read in the guest by our module rewind_usbiso
// (scenarios usb-hid and usb-iso, models tests/usbdev/hid_keyboard.hh and
// iso_source.hh).

namespace {

// ---- keyboard ----

// What the guest prints for `text` followed by Enter: Linux key codes
// (input-event-codes.h) of a US layout, "+C" press, "-C" release, Shift
// held around a shifted character.
std::string expected_keys(const std::string &text)
{
    static const std::map<char, int> plain = [] {
        std::map<char, int> m;
        const std::string rows[] = {"1234567890-", "qwertyuiop", "asdfghjkl", "zxcvbnm,./"};
        const int first[] = {2, 16, 30, 44};
        for (int r = 0; r < 4; ++r) {
            for (std::size_t i = 0; i < rows[r].size(); ++i) {
                m[rows[r][i]] = first[r] + static_cast<int>(i);
            }
        }
        m[' '] = 57;
        return m;
    }();
    static const std::map<char, char> shifted = {{'!', '1'}, {'?', '/'}, {'_', '-'}};
    constexpr int left_shift = 42, enter = 28;
    std::ostringstream out;
    for (char c : text) {
        char base = c;
        bool shift = false;
        if (c >= 'A' && c <= 'Z') {
            base = static_cast<char>(c - 'A' + 'a');
            shift = true;
        } else if (shifted.count(c)) {
            base = shifted.at(c);
            shift = true;
        }
        int code = plain.at(base);
        if (shift) {
            out << " +" << left_shift << " +" << code << " -" << code << " -" << left_shift;
        } else {
            out << " +" << code << " -" << code;
        }
    }
    out << " +" << enter << " -" << enter;
    return out.str();
}

// ---- iso source ----

constexpr std::size_t iso_bytes = 16384;        // usb-iso.sh's default

// "<md5> <packets>": what the guest must print after USB-ISO for `seed`
// at `speed` ("full" or "high": iso_source's default packet sizes).
std::string expected_iso_line(std::uint64_t seed, const std::string &speed = "full")
{
    std::uint32_t max_packet = speed == "high" ? 1024 : 200;
    auto p = qemu_rewind::usbdev::iso_stream_prefix(seed, max_packet, iso_bytes);
    return md5_hex(p.data) + " " + std::to_string(p.packets);
}

std::uint64_t random_seed()
{
    std::string b = random_bytes(8);
    std::uint64_t seed = 0;
    for (unsigned char c : b) {
        seed = seed << 8 | c;
    }
    return seed;
}

// ---- runs ----

RunResult run_plain(const std::string &scenario, const std::string &device,
                    const std::string &dir)
{
    QemuConfig c = make_config(usb_device_scenario(scenario), RrMode::None);
    c.wrapper = single_device_wrapper(device, dir + "/usbdev.log");
    return run_to_poweroff(c, dir, 120s);
}

// Records with rewind-usbdev serving `device`, then replays the same
// command line with nothing behind usb-host.
RecordReplay record_then_replay_device(const std::string &scenario,
                                       const std::string &device, const std::string &dir)
{
    std::string log = dir + "/log.bin";
    std::filesystem::create_directories(dir + "/record");
    std::filesystem::create_directories(dir + "/replay");
    RecordReplay rr;
    QemuConfig rec = make_config(usb_device_scenario(scenario), RrMode::Record, log);
    rec.wrapper = single_device_wrapper(device, dir + "/record/usbdev.log");
    rr.record = run_to_poweroff(rec, dir + "/record", 600s);
    rr.replay = run_to_poweroff(make_config(usb_device_scenario(scenario), RrMode::Replay, log),
                                dir + "/replay", 900s);
    return rr;
}

}  // namespace

TEST_CASE("usb-hid: a passed-through USB keyboard types a random text into the guest "
          "(plain)",
          "[usb][hid]")
{
    TempDir dir("usb-hid");
    std::string text = random_keyboard_text(24);
    INFO("text: " << text);
    RunResult r = run_plain("usb-hid", "keyboard:text=" + text, dir.path());
    require_clean_run(r);
    CHECK(lines_with(r.serial, "USB-KEYS") == std::vector{expected_keys(text)});
    // The host starts the typing with a SET_REPORT (Scroll Lock LED), and
    // keeps an interrupt URB pending to the end: QEMU discards it at exit.
    std::string usblog = read_file(dir.path() + "/usbdev.log");
    INFO("rewind-usbdev log tail:\n" << tail_lines(usblog, 20));
    CHECK(usblog.find("SUBMITURB control 21 09 0200") != std::string::npos);
    CHECK(usblog.find("DISCARDURB interrupt ep 0x81") != std::string::npos);
}

TEST_CASE("usb-iso: the guest reads a passed-through isochronous IN stream, full and "
          "high speed (plain)",
          "[usb][iso]")
{
    std::string speed = GENERATE("full", "high");
    TempDir dir("usb-iso");
    std::uint64_t seed = random_seed();
    INFO("seed: " << seed << ", " << speed << " speed");
    RunResult r = run_plain("usb-iso", "iso:seed=" + std::to_string(seed) + ",speed=" + speed,
                            dir.path());
    require_clean_run(r);
    CHECK(lines_with(r.serial, "USB-ISO ") == std::vector{expected_iso_line(seed, speed)});
    auto stats = lines_with(r.serial, "USB-ISO-STATS ");
    REQUIRE(stats.size() == 1);
    CHECK(stats[0].find(" errors=0 ") != std::string::npos);
}

TEST_CASE("usb-hid: a USB keyboard's typing is replayed from the log without the device",
          "[usb][hid][replay]")
{
    TempDir dir("usb-hid-rr");
    std::string text = random_keyboard_text(16);
    INFO("text: " << text);
    auto rr = record_then_replay_device("usb-hid", "keyboard:text=" + text, dir.path());
    require_identical_runs(rr);
    CHECK(lines_with(rr.replay.serial, "USB-KEYS") == std::vector{expected_keys(text)});
}

TEST_CASE("usb-iso: an isochronous IN stream is replayed from the log without the device",
          "[usb][iso][replay]")
{
    TempDir dir("usb-iso-rr");
    std::uint64_t seed = random_seed();
    INFO("seed: " << seed);
    auto rr = record_then_replay_device("usb-iso", "iso:seed=" + std::to_string(seed),
                                        dir.path());
    require_identical_runs(rr);
    CHECK(lines_with(rr.replay.serial, "USB-ISO ") == std::vector{expected_iso_line(seed)});
}

// ---- usb-redir: the same USB drive (the mass-storage model of
// tests/usbdev) served over the usbredir protocol by rewind-usbredir to
// -device usb-redir, which reaches it through a chardev instead of libusb.
// What is recorded is the chardev's input, by upstream's chardev replay
// (docs/devices/usb.rst, "usb-redir").

namespace {

std::string usbredir_binary()
{
    std::string b = env_or("REWIND_USBREDIR", "");
    if (!b.empty()) {
        return b;
    }
    return (std::filesystem::path(usbdev_binary()).parent_path() / "rewind-usbredir").string();
}

// The usb-storage scenario with one drive behind usb-redir on an xHCI
// controller; `chardev` defines the chardev "usbredir0".
Scenario usbredir_storage_scenario(const std::vector<std::string> &chardev)
{
    Scenario s{"usb-storage", "rewind.disks=1", {"-device", "qemu-xhci"}};
    s.device_args.insert(s.device_args.end(), chardev.begin(), chardev.end());
    s.device_args.insert(s.device_args.end(), {"-device", "usb-redir,chardev=usbredir0"});
    return s;
}

// The chardev for record and replay. Upstream records only the chardevs
// given to -serial/-parallel, not one attached by a device property: a
// fifth -serial names it (serial0 is the console; the pc board creates
// ports only for serial0-3, so usb-redir can still take it). And QEMU's
// pipe chardev, not a socket: it is open from the start in both runs
// (usb-redir starts its parser at realize), while a socket's connection
// is not in the log and a replay without a peer stalls.
std::vector<std::string> recorded_pipe_chardev(const std::string &fifo_path)
{
    return {"-chardev", "pipe,id=usbredir0,path=" + fifo_path,
            "-serial", "none", "-serial", "none", "-serial", "none",
            "-serial", "chardev:usbredir0"};
}

std::vector<std::string> usbredir_wrapper(const UsbDrive &d, const std::string &log,
                                          const std::vector<std::string> &transport)
{
    std::vector<std::string> w = {usbredir_binary(), "--log", log, "--device",
                                  "storage:image=" + d.image + ",serial=" + d.serial};
    w.insert(w.end(), transport.begin(), transport.end());
    w.push_back("--");
    return w;
}

}  // namespace

TEST_CASE("usb-redir: a USB drive served over usbredir (TCP) is read by the guest (plain)",
          "[usb][usbredir]")
{
    TempDir dir("usbredir-plain");
    UsbDrive drive = make_usb_drive(dir.path(), "DISK-R");
    std::string port = std::to_string(free_tcp_port());
    Scenario s = usbredir_storage_scenario(
        {"-chardev", "socket,id=usbredir0,host=127.0.0.1,port=" + port + ",server=on,wait=off"});
    QemuConfig c = make_config(s, RrMode::None);
    std::string log = dir.path() + "/usbredir.log";
    c.wrapper = usbredir_wrapper(drive, log, {"--connect", "127.0.0.1:" + port});
    RunResult r = run_to_poweroff(c, dir.path(), 120s);
    require_clean_run(r);
    CHECK(lines_with(r.serial, "USB-MD5 ") == std::vector{expected_line(drive)});

    std::string usblog = read_file(log);
    INFO("rewind-usbredir log tail:\n" << tail_lines(usblog, 20));
    CHECK(usblog.find("hello from 'qemu usb-redir guest") != std::string::npos);
    CHECK(usblog.find("sent device_connect 1209:0001") != std::string::npos);
    CHECK(usblog.find("set_configuration 1") != std::string::npos);
    CHECK(count_lines_with(usblog, "bulk ep 0x81 ") > 20);   // SCSI data and status
    CHECK(count_lines_with(usblog, "status 0") > 50);
    CHECK(usblog.find("not a bulk endpoint") == std::string::npos);
}

TEST_CASE("usb-redir: a USB drive over usbredir is replayed from the log with nothing "
          "behind the chardev",
          "[usb][usbredir][replay]")
{
    TempDir dir("usbredir-rr");
    UsbDrive drive = make_usb_drive(dir.path(), "DISK-R");
    std::string fifo = dir.path() + "/usbredir";
    Scenario s = usbredir_storage_scenario(recorded_pipe_chardev(fifo));
    std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    std::filesystem::create_directories(dir.path() + "/replay");

    // Recording: rewind-usbredir creates the FIFOs usbredir.in/.out, runs
    // QEMU and keeps a copy of everything QEMU sends it.
    std::string sent_path = dir.path() + "/record/from-qemu.bin";
    RecordReplay rr;
    QemuConfig rec = make_config(s, RrMode::Record, log);
    rec.wrapper = usbredir_wrapper(drive, dir.path() + "/record/usbredir.log",
                                   {"--pipe", fifo, "--capture", sent_path});
    rr.record = run_to_poweroff(rec, dir.path() + "/record", 600s);

    // Replay, the same command line with no device program and no image:
    // usbredir.in is a FIFO nobody writes (QEMU holds both ends, so it
    // reads nothing and never an end of file), usbredir.out a plain file
    // that collects what the replayed QEMU sends to nobody.
    std::filesystem::remove(drive.image);
    std::filesystem::remove(fifo + ".in");
    std::filesystem::remove(fifo + ".out");
    REQUIRE(mkfifo((fifo + ".in").c_str(), 0600) == 0);
    write_file(fifo + ".out", "");
    rr.replay = run_to_poweroff(make_config(s, RrMode::Replay, log), dir.path() + "/replay",
                                900s);
    require_identical_runs(rr);
    CHECK(lines_with(rr.replay.serial, "USB-MD5 ") == std::vector{expected_line(drive)});

    // The replayed usb-redir sent the same usbredir stream, byte for byte.
    std::string sent = read_file(sent_path);
    std::string resent = read_file(fifo + ".out");
    CHECK(sent.size() > 1000);
    CHECK(resent.size() == sent.size());
    CHECK(hash_bytes(resent) == hash_bytes(sent));
}
