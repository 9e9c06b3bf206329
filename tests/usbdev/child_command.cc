#include "child_command.hh"

#include <glib-unix.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <stdexcept>

namespace qemu_rewind::usbdev {

ChildCommand::ChildCommand(std::string program, EventLog &log)
    : program_(std::move(program)), log_(log)
{
}

ChildCommand::~ChildCommand()
{
    for (const auto &f : forwards_) {
        g_source_remove(f->source);
    }
    if (watch_) {
        g_source_remove(watch_);
    }
    if (running()) {
        kill(pid_, SIGTERM);
        waitpid(pid_, nullptr, 0);
    }
}

void ChildCommand::start(const std::vector<std::string> &command, ExitHandler on_exit)
{
    std::vector<std::string> words = command;
    std::vector<char *> argv;
    for (auto &w : words) {
        argv.push_back(w.data());
    }
    argv.push_back(nullptr);

    pid_t pid = fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork failed: ") + std::strerror(errno));
    }
    if (pid == 0) {
        execvp(argv[0], argv.data());
        std::string msg = program_ + ": cannot run " + words[0] + ": " +
                          std::strerror(errno) + "\n";
        (void)!write(2, msg.data(), msg.size());
        _exit(127);
    }
    pid_ = pid;
    on_exit_ = std::move(on_exit);
    log_.line("started %s pid %d", words[0].c_str(), pid_);
    watch_ = g_child_watch_add(pid_, &ChildCommand::on_exit, this);
}

void ChildCommand::signal(int signal)
{
    if (running()) {
        kill(pid_, signal);
    }
}

int ChildCommand::exit_code(int wait_status)
{
    return WIFEXITED(wait_status) ? WEXITSTATUS(wait_status) : 128 + WTERMSIG(wait_status);
}

void ChildCommand::on_exit(GPid pid, int status, void *opaque)
{
    auto *self = static_cast<ChildCommand *>(opaque);
    int code = exit_code(status);
    self->log_.line("command pid %d ended, exit status %d", pid, code);
    g_spawn_close_pid(pid);
    self->pid_ = -1;
    self->watch_ = 0;   // GLib removes a child watch once it has fired
    if (self->on_exit_) {
        self->on_exit_(code);
    }
}

void ChildCommand::forward_signals(SignalHandler without_child)
{
    without_child_ = std::move(without_child);
    if (!forwards_.empty()) {
        return;
    }
    for (int sig : {SIGTERM, SIGINT, SIGHUP}) {
        forwards_.push_back(std::make_unique<Forward>(Forward{this, sig, 0}));
        forwards_.back()->source =
            g_unix_signal_add(sig, &ChildCommand::on_signal, forwards_.back().get());
    }
}

gboolean ChildCommand::on_signal(void *opaque)
{
    auto *f = static_cast<Forward *>(opaque);
    ChildCommand *self = f->owner;
    if (self->running()) {
        self->log_.line("signal %d: forwarded", f->signal);
        kill(self->pid_, f->signal);
    } else {
        self->log_.line("signal %d", f->signal);
        if (self->without_child_) {
            self->without_child_(f->signal);
        }
    }
    return G_SOURCE_CONTINUE;
}

}  // namespace qemu_rewind::usbdev
