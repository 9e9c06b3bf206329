// rewind-usbdev: runs a command (QEMU) with software USB devices that its
// libusb sees as real ones, through libumockdev.
//
//   rewind-usbdev [--device SPEC]... [--log FILE] [--control FIFO] -- COMMAND ARGS...
//
// Device i (from 0, in --device order) is bus 1, address 2+i:
// /dev/bus/usb/001/002, 003, ... (so QEMU: -device usb-host,hostbus=1,hostaddr=2).
// COMMAND runs with LD_PRELOAD=libumockdev-preload.so.0 and UMOCKDEV_DIR
// pointing at the testbed; we serve its usbfs ioctls until it exits, and
// exit with its status (128+N if killed by signal N). SIGTERM, SIGINT and
// SIGHUP are forwarded to it.
//
// Unplugging: SIGUSR1 unplugs every device; the --control FIFO (created if
// missing) takes lines "unplug" (all), "unplug N" (device N) and
// "device N TEXT" (a command for device N's model). An unplugged device
// fails its pending URBs with -ESHUTDOWN, answers ENODEV from then on, and
// leaves sysfs with a "remove" uevent.
//
// Exit status 2: bad arguments or devices (the message says which).
#include "child_command.hh"
#include "command_line.hh"
#include "device_registry.hh"
#include "event_log.hh"
#include "mock_testbed.hh"
#include "usbfs_device.hh"

#include <glib-unix.h>
#include <glib.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

namespace qemu_rewind::usbdev {
namespace {

constexpr const char *preload_library = "libumockdev-preload.so.0";

struct Options {
    std::vector<std::string> devices;
    std::string log_path;
    std::string control_path;
    std::vector<std::string> command;
};

void print_usage(std::ostream &out)
{
    out << "usage: rewind-usbdev [--device SPEC]... [--log FILE] [--control FIFO]"
           " -- COMMAND ARGS...\n"
           "Runs COMMAND with software USB devices served through libumockdev:\n"
           "device i (in --device order, from 0) is bus 1 address 2+i\n"
           "(/dev/bus/usb/001/002, ...). Device kinds:\n";
    for (const auto &u : model_usages()) {
        out << "  " << u << "\n";
    }
    out << "--log FILE      one line per usbfs ioctl, URB and device event\n"
           "--control FIFO  lines \"unplug [N]\" and \"device N TEXT\"\n"
           "SIGUSR1 unplugs all devices. Exit status: COMMAND's (2: bad usage).\n";
}

Options parse_options(int argc, char **argv)
{
    Options o;
    OptionReader options(argc, argv);
    while (auto option = options.next()) {
        const std::string &a = *option;
        if (a == "--device") {
            o.devices.push_back(options.value(a));
        } else if (a.rfind("--device=", 0) == 0) {
            o.devices.push_back(a.substr(9));
        } else if (a == "--log") {
            o.log_path = options.value(a);
        } else if (a == "--control") {
            o.control_path = options.value(a);
        } else if (a == "--help" || a == "-h") {
            print_usage(std::cout);
            std::exit(0);
        } else {
            throw UsageError("unknown option '" + a + "' (the command goes after --)");
        }
    }
    o.command = options.command();
    if (o.command.empty()) {
        throw UsageError("no command to run (give it after --)");
    }
    if (o.devices.empty()) {
        throw UsageError("no --device given");
    }
    return o;
}

class Server {
public:
    Server(const Options &options) : options_(options) {}
    int run();

private:
    void add_devices();
    void open_control();
    void unplug(std::size_t index);
    void unplug_all();
    void control_line(const std::string &line);

    static int on_sigusr1(void *self);
    static int on_control_readable(GIOChannel *, GIOCondition, void *self);

    const Options &options_;
    EventLog log_;
    MockTestbed testbed_;
    struct Served {
        std::unique_ptr<UsbfsDevice> device;
        std::string syspath;
    };
    std::vector<Served> devices_;
    GMainLoop *loop_ = g_main_loop_new(nullptr, FALSE);
    ChildCommand command_{"rewind-usbdev", log_};
    int exit_status_ = 0;
    int control_fd_ = -1;
    std::string control_buffer_;
};

void Server::add_devices()
{
    for (std::size_t i = 0; i < options_.devices.size(); ++i) {
        auto model = create_model(parse_device_spec(options_.devices[i]));
        auto device = std::make_unique<UsbfsDevice>(static_cast<unsigned>(i), std::move(model),
                                                    log_);
        UsbAddress where{device->bus(), device->address(), static_cast<unsigned>(i + 1)};
        std::string syspath = testbed_.add_usb_device(device->model().description(), where);
        device->serve(testbed_.get(), testbed_.node_file(device->devnode()));
        device->on_configuration_change([this, syspath](std::uint8_t value) {
            testbed_.set_attribute(syspath, "bConfigurationValue",
                                   value ? std::to_string(value) : "");
        });
        log_.line("dev%zu %s at %s (%s)", i, options_.devices[i].c_str(),
                  device->devnode().c_str(), syspath.c_str());
        devices_.push_back({std::move(device), syspath});
    }
}

int Server::on_sigusr1(void *opaque)
{
    auto *self = static_cast<Server *>(opaque);
    self->log_.line("SIGUSR1: unplugging all devices");
    self->unplug_all();
    return G_SOURCE_CONTINUE;
}

void Server::unplug(std::size_t index)
{
    Served &s = devices_.at(index);
    if (s.device->unplugged()) {
        return;
    }
    s.device->unplug();
    testbed_.remove_device(s.syspath);
}

void Server::unplug_all()
{
    for (std::size_t i = 0; i < devices_.size(); ++i) {
        unplug(i);
    }
}

void Server::open_control()
{
    const std::string &path = options_.control_path;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) {
        if (mkfifo(path.c_str(), 0600) != 0) {
            throw std::runtime_error("cannot create control FIFO " + path + ": " +
                                     std::strerror(errno));
        }
    } else if (!S_ISFIFO(st.st_mode)) {
        throw std::runtime_error("--control " + path + " exists and is not a FIFO");
    }
    // Read-write so that writers coming and going never give us EOF.
    control_fd_ = open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (control_fd_ < 0) {
        throw std::runtime_error("cannot open control FIFO " + path + ": " +
                                 std::strerror(errno));
    }
    GIOChannel *ch = g_io_channel_unix_new(control_fd_);
    g_io_add_watch(ch, G_IO_IN, &Server::on_control_readable, this);
    g_io_channel_unref(ch);
}

int Server::on_control_readable(GIOChannel *, GIOCondition, void *opaque)
{
    auto *self = static_cast<Server *>(opaque);
    char buf[4096];
    ssize_t n;
    while ((n = read(self->control_fd_, buf, sizeof buf)) > 0) {
        self->control_buffer_.append(buf, static_cast<std::size_t>(n));
    }
    std::size_t nl;
    while ((nl = self->control_buffer_.find('\n')) != std::string::npos) {
        std::string line = self->control_buffer_.substr(0, nl);
        self->control_buffer_.erase(0, nl + 1);
        self->control_line(line);
    }
    return G_SOURCE_CONTINUE;
}

void Server::control_line(const std::string &line)
{
    log_.line("control: %s", line.c_str());
    auto parse_index = [this](const std::string &s, std::size_t &index) {
        char *end = nullptr;
        unsigned long v = std::strtoul(s.c_str(), &end, 10);
        if (s.empty() || *end || v >= devices_.size()) {
            return false;
        }
        index = v;
        return true;
    };
    std::size_t index = 0;
    if (line == "unplug") {
        unplug_all();
    } else if (line.rfind("unplug ", 0) == 0) {
        if (parse_index(line.substr(7), index)) {
            unplug(index);
        } else {
            std::cerr << "rewind-usbdev: control: no device '" << line.substr(7) << "'\n";
        }
    } else if (line.rfind("device ", 0) == 0) {
        std::string rest = line.substr(7);
        auto sp = rest.find(' ');
        if (sp == std::string::npos || !parse_index(rest.substr(0, sp), index)) {
            std::cerr << "rewind-usbdev: control: bad line '" << line << "'\n";
            return;
        }
        std::string reply = devices_[index].device->model().command(rest.substr(sp + 1));
        log_.line("control: device %zu: %s", index, reply.c_str());
        if (reply.rfind("error", 0) == 0) {
            std::cerr << "rewind-usbdev: device " << index << ": " << reply << "\n";
        }
    } else if (!line.empty()) {
        std::cerr << "rewind-usbdev: control: unknown command '" << line << "'\n";
    }
}

int Server::run()
{
    if (!options_.log_path.empty()) {
        log_.open(options_.log_path);
    }
    add_devices();
    if (!options_.control_path.empty()) {
        open_control();
    }
    command_.forward_signals();
    g_unix_signal_add(SIGUSR1, &Server::on_sigusr1, this);
    // The child inherits our environment: UMOCKDEV_DIR from the testbed,
    // LD_PRELOAD with the preload library (main() made sure of it).
    command_.start(options_.command, [this](int code) {
        exit_status_ = code;
        g_main_loop_quit(loop_);
    });
    g_main_loop_run(loop_);
    for (const auto &s : devices_) {
        log_.line("dev%u served %llu ioctls", s.device->index(),
                  static_cast<unsigned long long>(s.device->ioctl_count()));
    }
    devices_.clear();
    if (control_fd_ >= 0) {
        close(control_fd_);
    }
    return exit_status_;
}

}  // namespace
}  // namespace qemu_rewind::usbdev

namespace {

bool preloaded()
{
    const char *p = std::getenv("LD_PRELOAD");
    return p && std::strstr(p, qemu_rewind::usbdev::preload_library);
}

// libumockdev's uevent sender looks the device up through libudev in *our*
// process: we must see the testbed's /sys too, so we run under the preload
// library ourselves (as umockdev-wrapper would run us).
void reexec_preloaded(char **argv)
{
    std::string preload = qemu_rewind::usbdev::preload_library;
    if (const char *old = std::getenv("LD_PRELOAD"); old && *old) {
        preload += std::string(" ") + old;
    }
    setenv("LD_PRELOAD", preload.c_str(), 1);
    execv("/proc/self/exe", argv);
    std::cerr << "rewind-usbdev: cannot re-execute itself with "
              << qemu_rewind::usbdev::preload_library << ": " << std::strerror(errno) << "\n";
    std::exit(2);
}

}  // namespace

int main(int argc, char **argv)
{
    using namespace qemu_rewind::usbdev;
    if (!preloaded()) {
        reexec_preloaded(argv);
    }
    Options options;
    return run_program(
        "rewind-usbdev", print_usage, [&] { options = parse_options(argc, argv); },
        [&] {
            Server server(options);
            return server.run();
        },
        2);
}
