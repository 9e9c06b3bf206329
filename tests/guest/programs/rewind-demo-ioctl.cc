// rewind-demo-ioctl - guest program of the driver-debugging demo
// (tests/guest/usb-demo.sh): reads reports from the demo sensor through
// /dev/rewind_demo (tests/guest/module/rewind_demo.c), one ioctl each,
// and prints "DEMO-REPORT <n> length=<L> checksum=<C>" per report.
//
// Usage: rewind-demo-ioctl [COUNT]   (default 10 reports)
// Exit status 0 after COUNT reports, 1 if the device or an ioctl fails.
// Built static (g++ -static -Os) by scripts/make-guest-images.sh for the
// initramfs, which has no C++ runtime.
#include "rewind_demo.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

int main(int argc, char **argv)
{
    const long count = argc > 1 ? std::strtol(argv[1], nullptr, 10) : 10;
    const char *path = "/dev/rewind_demo";
    const int fd = open(path, O_RDWR);
    if (fd < 0) {
        std::printf("DEMO-ERROR open %s: %s\n", path, std::strerror(errno));
        return 1;
    }
    for (long n = 1; n <= count; ++n) {
        rewind_demo_report report{};
        if (ioctl(fd, REWIND_DEMO_READ, &report) != 0) {
            std::printf("DEMO-ERROR ioctl REWIND_DEMO_READ: %s\n", std::strerror(errno));
            close(fd);
            return 1;
        }
        // One line at a time, so that the console has it before a crash.
        std::printf("DEMO-REPORT %ld length=%u checksum=%u\n", n, report.length,
                    report.checksum);
        std::fflush(stdout);
    }
    close(fd);
    return 0;
}
