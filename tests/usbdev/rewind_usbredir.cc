// rewind-usbredir: serves one software USB device (the models of
// rewind-usbdev) to QEMU's -device usb-redir over the usbredir protocol,
// as the USB-host side (what usbredirserver does for a real device).
//
//   rewind-usbredir --device SPEC (--connect ADDR | --listen ADDR | --pipe PATH)
//                   [--connect-timeout SEC] [--log FILE] [--capture FILE]
//                   [-- COMMAND ARGS...]
//
// ADDR is HOST:PORT or unix:PATH. QEMU's side:
//   --connect: -chardev socket,id=ID,host=H,port=P,server=on,wait=off
//   --listen:  -chardev socket,id=ID,host=H,port=P   (QEMU connects at start)
//   --pipe P:  -chardev pipe,id=ID,path=P            (FIFOs P.in and P.out)
// and -device usb-redir,chardev=ID on a USB 2 or xHCI controller.
//
// With a COMMAND (QEMU) after --, we run it as our child, serve the
// device while it runs and exit with its status (128+N if killed by
// signal N); SIGTERM, SIGINT and SIGHUP are forwarded to it. Without one
// we exit when QEMU closes the connection (status 0).
// Exit status 1: the connection failed; 2: bad arguments or device.
#include "child_command.hh"
#include "command_line.hh"
#include "device_registry.hh"
#include "event_log.hh"
#include "usbredir_device.hh"
#include "usbredir_transport.hh"

#include <glib-unix.h>
#include <glib.h>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qemu_rewind::usbdev {
namespace {

enum class Transport { None, Connect, Listen, Pipe };

struct Options {
    std::string device;
    Transport transport = Transport::None;
    std::string where;                 // address or FIFO path
    double connect_timeout = 30;       // seconds
    std::string log_path;
    std::string capture_path;
    std::vector<std::string> command;
};

void print_usage(std::ostream &out)
{
    out << "usage: rewind-usbredir --device SPEC (--connect ADDR | --listen ADDR | --pipe PATH)\n"
           "                       [--connect-timeout SEC] [--log FILE] [--capture FILE]\n"
           "                       [-- COMMAND ARGS...]\n"
           "Serves a software USB device to QEMU's -device usb-redir (usbredir protocol,\n"
           "USB-host side). ADDR: HOST:PORT or unix:PATH.\n"
           "  --connect ADDR   connect to QEMU's -chardev socket,...,server=on,wait=off\n"
           "                   (retried for --connect-timeout seconds, default 30)\n"
           "  --listen ADDR    accept one connection from QEMU's -chardev socket (client)\n"
           "  --pipe PATH      QEMU's -chardev pipe,path=PATH: FIFOs PATH.in (we write)\n"
           "                   and PATH.out (we read), created if missing; start us first\n"
           "  --log FILE       one line per usbredir request and event\n"
           "  --capture FILE   every byte QEMU sent\n"
           "  -- COMMAND...    run COMMAND (QEMU) as our child; exit with its status\n"
           "Device kinds:\n";
    for (const auto &u : model_usages()) {
        out << "  " << u << "\n";
    }
}

Options parse_options(int argc, char **argv)
{
    Options o;
    OptionReader options(argc, argv);
    auto set_transport = [&](Transport t, const std::string &name) {
        if (o.transport != Transport::None) {
            throw UsageError("give only one of --connect, --listen and --pipe");
        }
        o.transport = t;
        o.where = options.value(name);
    };
    while (auto option = options.next()) {
        const std::string &a = *option;
        if (a == "--device") {
            if (!o.device.empty()) {
                throw UsageError("one --device only (a usb-redir connection carries one device)");
            }
            o.device = options.value(a);
        } else if (a == "--connect") {
            set_transport(Transport::Connect, a);
        } else if (a == "--listen") {
            set_transport(Transport::Listen, a);
        } else if (a == "--pipe") {
            set_transport(Transport::Pipe, a);
        } else if (a == "--connect-timeout") {
            std::string v = options.value(a);
            char *end = nullptr;
            o.connect_timeout = std::strtod(v.c_str(), &end);
            if (v.empty() || *end || o.connect_timeout < 0) {
                throw UsageError("--connect-timeout: not a number of seconds: '" + v + "'");
            }
        } else if (a == "--log") {
            o.log_path = options.value(a);
        } else if (a == "--capture") {
            o.capture_path = options.value(a);
        } else if (a == "--help" || a == "-h") {
            print_usage(std::cout);
            std::exit(0);
        } else {
            throw UsageError("unknown option '" + a + "' (a command goes after --)");
        }
    }
    o.command = options.command();
    if (o.device.empty()) {
        throw UsageError("no --device given");
    }
    if (o.transport == Transport::None) {
        throw UsageError("no --connect, --listen or --pipe given");
    }
    return o;
}

class Server {
public:
    explicit Server(const Options &options) : options_(options) {}
    ~Server();
    int run();

private:
    void start_connecting();
    void start_listening();
    void fail(const std::string &message);
    void quit(int status);

    static gboolean on_connect_retry(gpointer self);
    static gboolean on_accept(gint fd, GIOCondition, gpointer self);

    const Options &options_;
    EventLog log_;
    std::unique_ptr<UsbredirDevice> device_;
    GMainLoop *loop_ = g_main_loop_new(nullptr, FALSE);
    ChildCommand command_{"rewind-usbredir", log_};
    int exit_status_ = 0;
    std::optional<SocketAddress> address_;
    std::chrono::steady_clock::time_point connect_deadline_;
    std::string last_connect_error_;
    int listen_fd_ = -1;
};

Server::~Server()
{
    device_.reset();
    if (listen_fd_ >= 0) {
        close(listen_fd_);
    }
    g_main_loop_unref(loop_);
}

void Server::quit(int status)
{
    exit_status_ = status;
    g_main_loop_quit(loop_);
}

// The device cannot be served: without a child we end; with one we end it
// too, rather than leave QEMU running with nothing behind usb-redir.
void Server::fail(const std::string &message)
{
    std::cerr << "rewind-usbredir: " << message << "\n";
    log_.line("error: %s", message.c_str());
    command_.signal(SIGTERM);
    quit(1);
}

void Server::start_connecting()
{
    connect_deadline_ = std::chrono::steady_clock::now() +
                        std::chrono::milliseconds(static_cast<long>(options_.connect_timeout * 1000));
    // From the main loop, so that a failure can end it.
    g_timeout_add(20, &Server::on_connect_retry, this);
}

gboolean Server::on_connect_retry(gpointer opaque)
{
    auto *self = static_cast<Server *>(opaque);
    int error_number = 0;
    int fd = try_connect(*self->address_, self->last_connect_error_, error_number);
    if (fd >= 0) {
        self->log_.line("connected to %s", self->address_->text.c_str());
        self->device_->attach(fd, fd);
        return G_SOURCE_REMOVE;
    }
    bool not_yet = error_number == ECONNREFUSED || error_number == ENOENT;
    if (!not_yet || std::chrono::steady_clock::now() >= self->connect_deadline_) {
        self->fail(self->last_connect_error_ +
                   (not_yet ? " (QEMU did not listen in time: is its chardev server=on?)" : ""));
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

void Server::start_listening()
{
    listen_fd_ = listen_on(*address_);
    log_.line("listening on %s", address_->text.c_str());
    g_unix_fd_add(listen_fd_, G_IO_IN, &Server::on_accept, this);
}

gboolean Server::on_accept(gint fd, GIOCondition, gpointer opaque)
{
    auto *self = static_cast<Server *>(opaque);
    int conn = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (conn < 0) {
        if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED) {
            return G_SOURCE_CONTINUE;
        }
        self->fail(std::string("accept failed: ") + std::strerror(errno));
        return G_SOURCE_REMOVE;
    }
    self->log_.line("accepted a connection on %s", self->address_->text.c_str());
    close(self->listen_fd_);   // one device, one connection
    self->listen_fd_ = -1;
    self->device_->attach(conn, conn);
    return G_SOURCE_REMOVE;
}

int Server::run()
{
    if (!options_.log_path.empty()) {
        log_.open(options_.log_path);
    }
    auto model = create_model(parse_device_spec(options_.device));
    device_ = std::make_unique<UsbredirDevice>(std::move(model), log_);
    if (!options_.capture_path.empty()) {
        device_->capture_to(options_.capture_path);
    }
    device_->on_closed([this](const std::string &reason) {
        log_.line("QEMU closed the connection%s%s (%llu requests answered)",
                  reason.empty() ? "" : ": ", reason.c_str(),
                  static_cast<unsigned long long>(device_->packets()));
        if (!reason.empty()) {
            std::cerr << "rewind-usbredir: connection lost: " << reason << "\n";
        }
        if (!command_.running()) {
            quit(reason.empty() ? 0 : 1);
        }
    });
    log_.line("device %s", options_.device.c_str());

    if (options_.transport != Transport::Pipe) {
        try {
            address_ = parse_socket_address(options_.where);
        } catch (const std::invalid_argument &e) {
            throw UsageError(e.what());
        }
    }
    // QEMU must find the FIFOs or the listening socket when it starts;
    // connecting waits for QEMU to listen.
    if (options_.transport == Transport::Pipe) {
        FifoPair f = open_fifo_pair(options_.where);
        log_.line("FIFOs %s.in and %s.out", options_.where.c_str(), options_.where.c_str());
        device_->attach(f.read_fd, f.write_fd);
    } else if (options_.transport == Transport::Listen) {
        start_listening();
    }
    // Without a child, a signal ends us as it would have ended it.
    command_.forward_signals([this](int signal) { quit(128 + signal); });
    if (!options_.command.empty()) {
        command_.start(options_.command, [this](int code) { quit(code); });
    }
    if (options_.transport == Transport::Connect) {
        start_connecting();
    }
    g_main_loop_run(loop_);
    log_.line("exit status %d", exit_status_);
    return exit_status_;
}

}  // namespace
}  // namespace qemu_rewind::usbdev

int main(int argc, char **argv)
{
    using namespace qemu_rewind::usbdev;
    // A write to a socket QEMU closed is an error to report, not a signal.
    signal(SIGPIPE, SIG_IGN);
    Options options;
    // Exit status 1: the connection failed.
    return run_program(
        "rewind-usbredir", print_usage, [&] { options = parse_options(argc, argv); },
        [&] {
            Server server(options);
            return server.run();
        },
        1);
}
