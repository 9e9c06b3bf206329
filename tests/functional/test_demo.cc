// make demo's flow, as a test: record the USB driver's stack smash with the
// device, replay the bundle without it under gdb, and run backwards from the
// function's last line to the instruction that wrote its return address,
// which must be on the line that copies the device's data.
#include "driver_demo.hh"
#include "util.hh"

#include <catch2/catch_test_macros.hpp>

#include <sstream>

using namespace qemu_rewind::test;

TEST_CASE("demo: reverse-continue from the crashing driver's last line lands on its copying line",
          "[demo][gdb][usb]")
{
    TempDir dir("demo");
    std::ostringstream transcript;
    DemoResult r;
    try {
        r = run_driver_demo(dir.path(), transcript);
    } catch (const std::exception &e) {
        FAIL(e.what() << "\n--- transcript ---\n" << transcript.str());
    }
    INFO(transcript.str());
    CHECK(r.panic_line.find("stack-protector: Kernel stack is corrupted") != std::string::npos);
    CHECK(r.recorded_icount > 0);
    CHECK(r.watched != 0);
    REQUIRE(r.source.copy_line > 0);
    CHECK(r.landing_line == r.source.copy_line);
    CHECK(r.landing.find(r.source.file) != std::string::npos);
}
