// Time travel through replays of usb-host passthrough, and the errors a
// replay gives when the guest's USB traffic leaves the log.
//
// A replay of a usb-host recording keeps in-memory checkpoints like any
// other: replay-seek restores one, with the USB transfers in flight at
// that point (the keyboard's interrupt IN transfer is pending for almost
// the whole run), and replays forwards from it. Running on from there to
// the guest's power-off must end in exactly the state of the first
// replay: the same instruction count and guest RAM.
//
// A replay whose USB calls no longer match the log must stop with an
// error that names the instruction and the device, never hang waiting
// for a USB completion that will not come.
#include "record_replay.hh"
#include "usb_devices.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <filesystem>
#include <regex>
#include <sstream>
#include <thread>

using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

using Clock = std::chrono::steady_clock;

// Where the replay stands: what query-replay and query-status say.
struct Position {
    std::uint64_t icount = 0;
    std::string status;
};

// The status first: an instruction count read before the VM stopped is
// not where it stopped.
Position position(QemuInstance &q)
{
    Position p;
    p.status = q.qmp().execute("query-status").value("status", "");
    p.icount = q.icount();
    return p;
}

// Polls QMP until `done` holds for the replay's position; throws with the
// run's diagnostics when it does not within `timeout` or QEMU exits.
template <class Done>
Position wait_until(QemuInstance &q, const std::string &what,
                    std::chrono::milliseconds timeout, Done done)
{
    auto deadline = Clock::now() + timeout;
    Position p;
    for (;;) {
        if (q.exited()) {
            throw std::runtime_error(what + ": QEMU exited\n" + q.diagnostics());
        }
        p = position(q);
        if (done(p)) {
            return p;
        }
        if (Clock::now() >= deadline) {
            throw std::runtime_error(what + ": not done within " +
                                     std::to_string(timeout.count() / 1000) +
                                     " s (icount " + std::to_string(p.icount) + ", " +
                                     p.status + ")\n" + q.diagnostics());
        }
        std::this_thread::sleep_for(50ms);
    }
}

// cont, then wait until the guest has powered off (-no-shutdown: QEMU
// stops in runstate "shutdown").
Position run_to_end(QemuInstance &q, const std::string &what)
{
    q.qmp().execute("cont");
    return wait_until(q, what, scaled(300s),
                      [](const Position &p) { return p.status == "shutdown"; });
}

// replay-seek answers before the seek is done: it is done when the VM is
// stopped at the target.
Position seek(QemuInstance &q, std::uint64_t target)
{
    q.qmp().execute("replay-seek", {{"icount", target}}, scaled(60s));
    return wait_until(q, "replay-seek " + std::to_string(target), scaled(120s),
                      [target](const Position &p) {
                          return p.status != "running" && p.icount == target;
                      });
}

double seconds_since(Clock::time_point t0)
{
    return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Replays `log` (recorded as `record`, on the same command line, with no
// device program behind usb-host), runs to the power-off, then seeks back
// to fractions of the run and runs to the power-off again from each.
void check_seeks_back_to_same_end(const Scenario &s, const std::string &log,
                                  const RunResult &record, const std::string &dir)
{
    INFO("record run:\n" << record.diagnostics);
    REQUIRE(record.serial.find("REWIND-FAIL") == std::string::npos);
    REQUIRE(record.serial.find("REWIND-DONE") != std::string::npos);
    REQUIRE(record.icount > 0);

    std::filesystem::create_directories(dir);
    QemuConfig cfg = make_config(s, RrMode::Replay, log);
    cfg.start_paused = true;
    QemuInstance q(cfg, dir);
    q.start();
    std::ostringstream steps;
    steps.precision(2);
    steps << std::fixed;
    try {
        auto t0 = Clock::now();
        Position end = run_to_end(q, "replay to the power-off");
        std::string ram = q.ram_hash();
        // The serial output of the whole run, before seeks replay parts
        // of it again.
        std::string serial = q.serial();
        steps << "replay to the power-off: icount " << end.icount << ", "
              << seconds_since(t0) << " s\n";
        INFO("replay run:\n" << q.diagnostics());
        CHECK(serial == record.serial);
        CHECK(end.icount == record.icount);
        CHECK(ram == record.ram_hash);

        for (double fraction : {0.9, 0.5, 0.2, 0.7}) {
            auto target = static_cast<std::uint64_t>(static_cast<double>(end.icount) * fraction);
            auto t1 = Clock::now();
            seek(q, target);
            steps << "replay-seek " << target << " (" << fraction << " of the run), "
                  << seconds_since(t1) << " s";
            auto t2 = Clock::now();
            Position again = run_to_end(q, "run on from " + std::to_string(target));
            std::string ram_again = q.ram_hash();
            steps << "; on to the power-off: icount " << again.icount << ", "
                  << seconds_since(t2) << " s\n";
            INFO("steps:\n" << steps.str());
            CHECK(again.icount == end.icount);
            CHECK(ram_again == ram);
        }
    } catch (const std::exception &e) {
        write_file(dir + "/steps.log", steps.str());
        FAIL("steps:\n" << steps.str() << e.what());
    }
    write_file(dir + "/steps.log", steps.str());
    q.quit();
}

// Records `s` into dir/log.bin, QEMU running under `wrapper` (rewind-usbdev
// serving the devices behind usb-host).
RunResult record_usb(const Scenario &s, const std::vector<std::string> &wrapper,
                     const std::string &dir)
{
    std::filesystem::create_directories(dir + "/record");
    QemuConfig rec = make_config(s, RrMode::Record, dir + "/log.bin");
    rec.wrapper = wrapper;
    return run_to_poweroff(rec, dir + "/record", 600s);
}

// N of "replay diverged at instruction N", or 0.
std::uint64_t diverged_at(const std::string &output)
{
    static const std::regex re(R"(replay diverged at instruction (\d+))");
    std::smatch m;
    return std::regex_search(output, m, re) ? std::stoull(m[1]) : 0;
}

}  // namespace

TEST_CASE("usb-hid time travel: seeking back with the interrupt transfer in flight "
          "replays to the same end",
          "[usb][time-travel]")
{
    TempDir dir("usb-hid-tt");
    Scenario s = usb_device_scenario("usb-hid");
    std::string text = random_keyboard_text(16);
    INFO("text: " << text);
    RunResult record = record_usb(
        s, single_device_wrapper("keyboard:text=" + text, dir.path() + "/record/usbdev.log"),
        dir.path());
    CHECK(lines_with(record.serial, "USB-KEYS").size() == 1);
    check_seeks_back_to_same_end(s, dir.path() + "/log.bin", record, dir.path() + "/replay");
}

TEST_CASE("usb-storage time travel: seeking back in a bulk-transfer replay replays to "
          "the same end",
          "[usb][time-travel]")
{
    TempDir dir("usb-storage-tt");
    Scenario s = usb_storage_scenario(1);
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A")};
    RunResult record =
        record_usb(s, usbdev_wrapper(drives, dir.path() + "/record/usbdev.log"), dir.path());
    CHECK(lines_with(record.serial, "USB-MD5 ") ==
          std::vector<std::string>{drives[0].serial + " " + md5_hex(drives[0].content)});
    std::filesystem::remove(drives[0].image);   // the replay must not need it
    check_seeks_back_to_same_end(s, dir.path() + "/log.bin", record, dir.path() + "/replay");
}

TEST_CASE("usb-host replay: USB calls that leave the log are an error naming the "
          "instruction and device, never a hang",
          "[usb][time-travel]")
{
    TempDir dir("usb-diverge");
    Scenario s = usb_storage_scenario(1);
    std::vector<UsbDrive> drives = {make_usb_drive(dir.path(), "DISK-A")};
    RunResult record =
        record_usb(s, usbdev_wrapper(drives, dir.path() + "/record/usbdev.log"), dir.path());
    INFO("record run:\n" << record.diagnostics);
    REQUIRE(record.serial.find("REWIND-DONE") != std::string::npos);
    std::string log = dir.path() + "/log.bin";

    // The only change to the command line of the recording: the guest's
    // device resets are no longer passed on to the device.
    Scenario reset_off = s;
    REQUIRE(reset_off.device_args.back() == "usb-host,hostbus=1,hostaddr=2");
    reset_off.device_args.back() += ",guest-reset=off";
    std::string out = check_replay_fails(make_config(reset_off, RrMode::Replay, log), dir.path() + "/replay-reset-off",
                                         {"replay diverged at instruction", "usb-host device 0"});
    // An instruction of the recording: where the guest no longer resets.
    INFO(out);
    CHECK(diverged_at(out) > 0);
    CHECK(diverged_at(out) <= record.icount);

    // The log holds usb-host events, the machine has no usb-host.
    Scenario without = s;
    without.device_args = {"-device", "qemu-xhci"};
    check_replay_fails(make_config(without, RrMode::Replay, log), dir.path() + "/replay-no-device",
                       {"has no usb-host device"});
}
