// The driver-debugging demo (make demo, docs/tutorial-driver-debugging.rst):
// a kernel module smashes its stack with data from a USB device; the
// session is recorded with the device into a bundle, then replayed without
// it under gdb, which goes back from the crash to the line that wrote the
// function's return address. Shared by the rewind-demo program and its
// functional test.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <string>

namespace qemu_rewind::test {

// Where the demo's gdb steps stop, read from the module's source.
struct DemoSource {
    std::string file;      // rewind_demo.c
    std::string function;  // the function whose stack is smashed
    int copy_line = 0;     // the line that copies the device's data
    int last_line = 0;     // the function's last line (its return)
};

// The module source shipped with the guest images.
DemoSource find_demo_source(const std::string &source_path);

struct DemoResult {
    std::string bundle;
    std::string panic_line;        // the recorded guest's panic message
    std::uint64_t recorded_icount = 0;
    std::string landing;           // gdb's frame line after reverse-continue
    int landing_line = 0;          // its line in DemoSource::file
    std::uint64_t watched = 0;     // address of the saved return address
    DemoSource source;
};

// Runs the whole demo in `workdir`, narrating to `out`. Throws
// std::runtime_error naming the step that failed.
DemoResult run_driver_demo(const std::string &workdir, std::ostream &out);

}  // namespace qemu_rewind::test
