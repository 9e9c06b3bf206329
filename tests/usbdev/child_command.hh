// The COMMAND (QEMU) that rewind-usbdev and rewind-usbredir run as their
// child: started with fork/execvp, watched from the GLib main loop, its
// end reported as an exit code (128+N if killed by signal N), and
// SIGTERM, SIGINT and SIGHUP sent to us passed on to it.
#pragma once

#include "event_log.hh"

#include <glib.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace qemu_rewind::usbdev {

class ChildCommand {
public:
    using ExitHandler = std::function<void(int exit_code)>;
    using SignalHandler = std::function<void(int signal)>;

    // program names us in messages ("rewind-usbdev: cannot run ...").
    ChildCommand(std::string program, EventLog &log);
    // A child still running gets SIGTERM and is waited for: QEMU must not
    // outlive the devices it was given.
    ~ChildCommand();
    ChildCommand(const ChildCommand &) = delete;
    ChildCommand &operator=(const ChildCommand &) = delete;

    // Runs command (found in PATH, with our environment). on_exit is called
    // from the main loop when it ends; if it cannot be executed the child
    // says so on stderr and exits 127. Throws std::runtime_error if fork
    // fails.
    void start(const std::vector<std::string> &command, ExitHandler on_exit);
    bool running() const { return pid_ > 0; }
    // Sends signal to the child if it is running.
    void signal(int signal);

    // From now on SIGTERM, SIGINT and SIGHUP are caught in the main loop and
    // sent to the child; while none runs, without_child gets them instead
    // (if given).
    void forward_signals(SignalHandler without_child = {});

    // The exit code a shell would give for a waitpid() status.
    static int exit_code(int wait_status);

private:
    static void on_exit(GPid pid, int status, void *self);
    static gboolean on_signal(void *forward);

    std::string program_;
    EventLog &log_;
    pid_t pid_ = -1;
    unsigned watch_ = 0;
    ExitHandler on_exit_;
    SignalHandler without_child_;
    struct Forward {
        ChildCommand *owner;
        int signal;
        unsigned source;
    };
    std::vector<std::unique_ptr<Forward>> forwards_;
};

}  // namespace qemu_rewind::usbdev
