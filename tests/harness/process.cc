#include "process.hh"

#include "util.hh"

#include <fcntl.h>
#include <sys/prctl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char **environ;

namespace qemu_rewind::test {

std::string ExitStatus::describe() const
{
    if (exited) {
        return "exit code " + std::to_string(code);
    }
    return std::string("killed by signal ") + strsignal(signal);
}

Process::Process(Process &&other) noexcept
    : pid_(other.pid_), status_(other.status_)
{
    other.pid_ = -1;
}

Process &Process::operator=(Process &&other) noexcept
{
    if (this != &other) {
        if (pid_ > 0 && !status_) {
            terminate();
        }
        pid_ = other.pid_;
        status_ = other.status_;
        other.pid_ = -1;
    }
    return *this;
}

Process::~Process()
{
    if (pid_ > 0 && !status_) {
        terminate(std::chrono::milliseconds(1000));
    }
}

static int open_or_die(const std::string &path, int flags)
{
    int fd = open(path.c_str(), flags | O_CLOEXEC, 0644);
    if (fd < 0) {
        _exit(127);
    }
    return fd;
}

Process Process::spawn(const std::vector<std::string> &argv,
                       const Options &options)
{
    if (argv.empty()) {
        throw std::invalid_argument("spawn: empty argv");
    }
    std::vector<char *> cargv;
    for (const auto &a : argv) {
        cargv.push_back(const_cast<char *>(a.c_str()));
    }
    cargv.push_back(nullptr);

    std::vector<std::string> env_strings;
    for (char **e = environ; *e; ++e) {
        env_strings.emplace_back(*e);
    }
    for (const auto &e : options.extra_env) {
        env_strings.push_back(e);
    }
    std::vector<char *> cenv;
    for (auto &e : env_strings) {
        cenv.push_back(e.data());
    }
    cenv.push_back(nullptr);

    pid_t pid = fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork: ") + strerror(errno));
    }
    if (pid == 0) {
        // Own process group, so terminate() also reaches grandchildren;
        // and never outlive a test that was killed (no orphan QEMUs).
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open_or_die(options.stdin_path.empty() ? "/dev/null"
                                                       : options.stdin_path,
                             O_RDONLY);
        dup2(in, 0);
        if (!options.stdout_path.empty()) {
            int out = open_or_die(options.stdout_path,
                                  O_WRONLY | O_CREAT | O_TRUNC);
            dup2(out, 1);
            if (options.stderr_path.empty()) {
                dup2(out, 2);
            }
        }
        if (!options.stderr_path.empty()) {
            int err = open_or_die(options.stderr_path,
                                  O_WRONLY | O_CREAT | O_TRUNC);
            dup2(err, 2);
        }
        if (!options.workdir.empty() && chdir(options.workdir.c_str()) != 0) {
            _exit(127);
        }
        execvpe(cargv[0], cargv.data(), cenv.data());
        dprintf(2, "exec %s: %s\n", cargv[0], strerror(errno));
        _exit(127);
    }
    setpgid(pid, pid);
    Process p;
    p.pid_ = pid;
    return p;
}

static ExitStatus decode(int wstatus)
{
    ExitStatus s;
    if (WIFEXITED(wstatus)) {
        s.exited = true;
        s.code = WEXITSTATUS(wstatus);
    } else if (WIFSIGNALED(wstatus)) {
        s.signal = WTERMSIG(wstatus);
    }
    return s;
}

bool Process::running()
{
    if (pid_ <= 0 || status_) {
        return false;
    }
    int wstatus;
    pid_t r = waitpid(pid_, &wstatus, WNOHANG);
    if (r == pid_) {
        status_ = decode(wstatus);
        return false;
    }
    return true;
}

std::optional<ExitStatus> Process::wait_for(std::chrono::milliseconds timeout)
{
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (running()) {
        if (std::chrono::steady_clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return status_;
}

ExitStatus Process::terminate(std::chrono::milliseconds grace)
{
    if (!running()) {
        return status_ ? *status_ : ExitStatus{};
    }
    kill(-pid_, SIGTERM);
    if (auto s = wait_for(grace)) {
        return *s;
    }
    kill(-pid_, SIGKILL);
    if (auto s = wait_for(std::chrono::milliseconds(5000))) {
        return *s;
    }
    return ExitStatus{};
}

CommandResult run_command(const std::vector<std::string> &argv,
                          std::chrono::milliseconds timeout,
                          const std::string &workdir)
{
    TempDir tmp("cmd");
    Process::Options o;
    o.stdout_path = tmp.path() + "/out";
    o.workdir = workdir;
    Process p = Process::spawn(argv, o);
    CommandResult r;
    if (auto s = p.wait_for(timeout)) {
        r.status = *s;
    } else {
        r.timed_out = true;
        r.status = p.terminate();
    }
    r.output = read_file(o.stdout_path);
    return r;
}

std::string shell_join(const std::vector<std::string> &argv)
{
    std::string out;
    for (const auto &a : argv) {
        if (!out.empty()) {
            out += ' ';
        }
        bool plain = !a.empty() &&
            a.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789_-+=.,:/@%") == std::string::npos;
        if (plain) {
            out += a;
        } else {
            out += '\'';
            for (char c : a) {
                if (c == '\'') {
                    out += "'\\''";
                } else {
                    out += c;
                }
            }
            out += '\'';
        }
    }
    return out;
}

}  // namespace qemu_rewind::test
