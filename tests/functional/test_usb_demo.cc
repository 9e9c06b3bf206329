// The driver-debugging demo's crash as a recording: the demo device
// (rewind-usbdev --device demo:seed=N) passed through to the usb-demo
// scenario, whose driver (tests/guest/module/rewind_demo.c) smashes its
// stack on the device's first long report. `rewind record` keeps the
// panic in a bundle; the bundle replays it to the recorded end with the
// device program gone, and the replayed serial output is the recorded one.
// (make demo's gdb flow over such a bundle is test_demo.cc.)
#include "process.hh"
#include "qemu.hh"
#include "record_replay.hh"
#include "scenarios.hh"
#include "usb_devices.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <random>
#include <regex>

#include "driver_demo.hh"

using namespace qemu_rewind::test;
using namespace std::chrono_literals;
using Catch::Matchers::ContainsSubstring;

namespace {

constexpr const char *panic_message =
    "Kernel panic - not syncing: stack-protector: Kernel stack is corrupted in: "
    "rewind_demo_ioctl+";

CommandResult run_checked(const std::vector<std::string> &argv, const std::string &dir = "")
{
    auto r = run_command(argv, scaled(300s), dir);
    INFO(shell_join(argv) << "\n" << r.output);
    REQUIRE_FALSE(r.timed_out);
    REQUIRE(r.status.exited);
    return r;
}

// "rewind: replay reached the recorded end, instruction N" -> N (0 if absent).
std::uint64_t reached_icount(const std::string &output)
{
    const std::string tag = "reached the recorded end, instruction ";
    auto at = output.find(tag);
    return at == std::string::npos ? 0 : std::stoull(output.substr(at + tag.size()));
}

// "instructions:     N" of `rewind info`.
std::uint64_t recorded_icount(const std::string &info)
{
    std::smatch m;
    const std::regex re("instructions: +([0-9]+)");
    return std::regex_search(info, m, re) ? std::stoull(m[1].str()) : 0;
}

}  // namespace

TEST_CASE("usb demo: the driver's stack smash is recorded with the device and replays without it",
          "[demo][usb][bundle]")
{
    TempDir dir("usb-demo");
    std::random_device rd;
    const std::uint64_t seed = (static_cast<std::uint64_t>(rd()) << 32) | rd();
    INFO("device seed " << seed << " (rewind-usbdev --device demo:seed=" << seed << ")");
    const std::string bundle = dir.path() + "/usb-demo.rewind";
    const std::string serial_path = dir.path() + "/record-serial.log";

    std::vector<std::string> argv =
        single_device_wrapper("demo:seed=" + std::to_string(seed), dir.path() + "/usbdev.log");
    argv.insert(argv.end(), {rewind_binary(), "record", "--out", bundle, "--"});
    const auto qemu = usb_demo_command(serial_path);
    argv.insert(argv.end(), qemu.begin(), qemu.end());
    auto rec = run_checked(argv, dir.path());
    CHECK(rec.status.code == 0);

    const std::string serial = read_file(serial_path);
    INFO("recorded serial output:\n" << serial);
    REQUIRE_THAT(serial, ContainsSubstring(panic_message));
    // Where the module went, for rewind debug (one line, .text among its sections).
    CHECK(std::regex_search(serial, std::regex("rewind-module: rewind_demo .* \\.text=0x")));
    CHECK(serial.find("REWIND-FAIL") == std::string::npos);
    // The reports before the crash: the device's 1 to 3 short ones, each
    // copied whole (4 to 15 bytes); the first long one never returns.
    const auto reports = lines_with(serial, "DEMO-REPORT ");
    CHECK(reports.size() >= 1);
    CHECK(reports.size() <= 3);
    for (std::size_t i = 0; i < reports.size(); ++i) {
        std::smatch m;
        const std::regex re("([0-9]+) length=([0-9]+) checksum=[0-9]+\r?");
        REQUIRE(std::regex_match(reports[i], m, re));
        CHECK(std::stoul(m[1].str()) == i + 1);
        CHECK(std::stoul(m[2].str()) >= 4);
        CHECK(std::stoul(m[2].str()) <= 15);
    }

    // The developer's machine: no device program, only the bundle.
    const std::string work = dir.path() + "/replay";
    auto replay = run_checked({rewind_binary(), "replay", bundle, "--workdir", work});
    CHECK(replay.status.code == 0);
    auto info = run_checked({rewind_binary(), "info", bundle});
    const std::uint64_t end = recorded_icount(info.output);
    CHECK(end > 0);
    CHECK(reached_icount(replay.output) == end);
    CHECK(read_file(work + "/ser0.out") == serial);
    // What the log says the guest printed.
    auto text = run_checked({rewind_binary(), "extract", bundle, "--serial"});
    CHECK(text.status.code == 0);
    CHECK_THAT(text.output, ContainsSubstring(panic_message));
}

TEST_CASE("usb demo: the driver's debug info has rows for its copying and return lines",
          "[demo][gdb]")
{
    // The lines make demo stops on, found in the source next to the .ko
    // the way the demo finds them.
    const std::string dir = images_dir() + "/module";
    const DemoSource src = find_demo_source(dir + "/rewind_demo.c");
    const int copy_line = src.copy_line;
    const int return_line = src.last_line;
    auto r = run_checked({gdb_binary(), "-nx", "-batch", "-ex",
                          "info line rewind_demo.c:" + std::to_string(copy_line), "-ex",
                          "info line rewind_demo.c:" + std::to_string(return_line),
                          dir + "/rewind_demo.ko"});
    INFO(r.output);
    for (auto line : {copy_line, return_line}) {
        const std::regex row("Line " + std::to_string(line) +
                             " of \"[^\"]*rewind_demo.c\" starts at address 0x[0-9a-f]+ "
                             "<" + src.function + "\\+[0-9]+> and ends at");
        CHECK(std::regex_search(r.output, row));
    }
}
