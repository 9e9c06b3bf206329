// make demo: the driver-debugging demo (driver_demo.hh). Records a kernel
// module's stack smash with its USB device present, then replays the
// recording without the device under gdb and runs backwards from the crash
// to the line that wrote the return address, printing each gdb command,
// its answer and how long it took.
#include "driver_demo.hh"
#include "util.hh"

#include <filesystem>
#include <iostream>

using namespace qemu_rewind::test;

int main(int argc, char **argv)
{
    std::string workdir;
    if (argc == 3 && std::string(argv[1]) == "--workdir") {
        workdir = argv[2];
    } else if (argc != 1) {
        std::cerr << "usage: rewind-demo [--workdir DIR]\n";
        return 2;
    }
    try {
        TempDir tmp("demo");
        if (workdir.empty()) {
            workdir = tmp.path();
        }
        std::filesystem::create_directories(workdir);
        DemoResult r = run_driver_demo(workdir, std::cout);
        return r.landing_line == r.source.copy_line ? 0 : 1;
    } catch (const std::exception &e) {
        std::cerr << "demo: error: " << e.what() << "\n";
        return 1;
    }
}
