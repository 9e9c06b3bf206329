#include "usb_devices.hh"

#include "process.hh"
#include "util.hh"

#include <filesystem>
#include <stdexcept>

namespace qemu_rewind::test {

using namespace std::chrono_literals;

namespace {

std::string mke2fs_binary()
{
    for (const char *p : {"/usr/sbin/mke2fs", "/sbin/mke2fs"}) {
        if (file_exists(p)) {
            return p;
        }
    }
    return "mke2fs";
}

}  // namespace

UsbDrive make_usb_drive(const std::string &dir, const std::string &serial, std::size_t bytes)
{
    UsbDrive d{random_bytes(bytes), dir + "/" + serial + ".img", serial};
    std::string files = dir + "/" + serial + "-files";
    std::filesystem::create_directories(files);
    write_file(files + "/rewind-data", d.content);
    // mke2fs -d fills the file system from a folder, without root or mount.
    auto r = run_command({mke2fs_binary(), "-q", "-t", "ext2", "-d", files, "-L", "rewind",
                          d.image, "4M"},
                         60s);
    if (!r.status.exited || r.status.code != 0) {
        throw std::runtime_error("mke2fs " + d.image + " failed:\n" + r.output);
    }
    return d;
}

Scenario usb_storage_scenario(std::size_t drives, const std::string &append)
{
    Scenario s{"usb-storage", "rewind.disks=" + std::to_string(drives), {"-device", "qemu-xhci"}};
    if (!append.empty()) {
        s.append_extra += " " + append;
    }
    for (std::size_t i = 0; i < drives; ++i) {
        s.device_args.insert(s.device_args.end(),
                             {"-device", "usb-host,hostbus=1,hostaddr=" + std::to_string(2 + i)});
    }
    return s;
}

Scenario usb_device_scenario(const std::string &name, const std::string &append)
{
    return {name, append, {"-device", "qemu-xhci", "-device", "usb-host,hostbus=1,hostaddr=2"}};
}

std::vector<std::string> usbdev_wrapper(const std::vector<UsbDrive> &drives,
                                        const std::string &log)
{
    std::vector<std::string> w = {usbdev_binary(), "--log", log};
    for (const auto &d : drives) {
        w.insert(w.end(), {"--device", "storage:image=" + d.image + ",serial=" + d.serial});
    }
    w.push_back("--");
    return w;
}

std::vector<std::string> single_device_wrapper(const std::string &device,
                                               const std::string &log)
{
    return {usbdev_binary(), "--log", log, "--device", device, "--"};
}

std::vector<std::string> usb_demo_command(const std::string &serial_path)
{
    return {qemu_binary(), "-M", "pc", "-m", "256", "-nodefaults", "-display", "none",
            "-no-reboot", "-kernel", images_dir() + "/vmlinux",
            "-initrd", initrd_path("usb-demo"), "-append", base_kernel_cmdline(),
            "-chardev", "file,id=ser0,path=" + serial_path, "-serial", "chardev:ser0",
            "-device", "qemu-xhci", "-device", "usb-host,hostbus=1,hostaddr=2"};
}

std::string random_keyboard_text(std::size_t n)
{
    static const std::string alphabet =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !?.-_";
    std::string text;
    for (unsigned char b : random_bytes(n)) {
        text += alphabet[b % alphabet.size()];
    }
    return text;
}

}  // namespace qemu_rewind::test
