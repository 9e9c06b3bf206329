#include "child_process.hh"

#include <sys/prctl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

namespace qemu_rewind {

using Clock = std::chrono::steady_clock;

std::string ChildExit::describe() const {
    if (exited) {
        return "exit status " + std::to_string(code);
    }
    return "killed by signal " + std::to_string(signal) + " (" + strsignal(signal) + ")";
}

ChildProcess::ChildProcess(ChildProcess&& other) noexcept : pid_(other.pid_), exit_(other.exit_) { other.pid_ = -1; }

ChildProcess& ChildProcess::operator=(ChildProcess&& other) noexcept {
    if (this != &other) {
        if (pid_ > 0 && !exit_) {
            terminate();
        }
        pid_ = other.pid_;
        exit_ = other.exit_;
        other.pid_ = -1;
    }
    return *this;
}

ChildProcess::~ChildProcess() {
    if (pid_ > 0 && !exit_) {
        terminate(std::chrono::milliseconds(1000));
    }
}

namespace {

void redirect(int target, const std::string& path, int flags) {
    const int fd = ::open(path.c_str(), flags, 0644);
    if (fd < 0) {
        _exit(126);
    }
    ::dup2(fd, target);
    ::close(fd);
}

ChildExit decode(int status) {
    ChildExit e;
    if (WIFEXITED(status)) {
        e.exited = true;
        e.code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        e.signal = WTERMSIG(status);
    }
    return e;
}

}  // namespace

ChildProcess ChildProcess::spawn(const std::vector<std::string>& argv, const SpawnOptions& options) {
    if (argv.empty()) {
        throw std::invalid_argument("spawn: empty command");
    }
    std::vector<char*> args;
    for (const auto& a : argv) {
        args.push_back(const_cast<char*>(a.c_str()));
    }
    args.push_back(nullptr);
    // A pipe closed by exec tells the parent whether exec worked.
    int status_pipe[2];
    if (::pipe2(status_pipe, O_CLOEXEC) != 0) {
        throw std::runtime_error(std::string("pipe: ") + std::strerror(errno));
    }
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) {
        throw std::runtime_error(std::string("fork: ") + std::strerror(errno));
    }
    if (pid == 0) {
        ::close(status_pipe[0]);
        if (options.new_process_group) {
            ::setpgid(0, 0);
        }
        // A child in a group of its own does not get the signals that stop
        // us: let it end with us, and never outlive rewind (a leaked QEMU).
        ::prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (::getppid() != parent) {
            ::_exit(127);
        }
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        if (options.stdin_null) {
            redirect(0, "/dev/null", O_RDONLY);
        }
        if (!options.stdout_path.empty()) {
            redirect(1, options.stdout_path, O_WRONLY | O_CREAT | O_TRUNC);
        }
        if (!options.stderr_path.empty()) {
            if (options.stderr_path == options.stdout_path) {
                ::dup2(1, 2);
            } else {
                redirect(2, options.stderr_path, O_WRONLY | O_CREAT | O_TRUNC);
            }
        }
        ::execvp(args[0], args.data());
        const int error = errno;
        [[maybe_unused]] auto n = ::write(status_pipe[1], &error, sizeof error);
        _exit(127);
    }
    ::close(status_pipe[1]);
    int error = 0;
    const auto n = ::read(status_pipe[0], &error, sizeof error);
    ::close(status_pipe[0]);
    ChildProcess child;
    child.pid_ = pid;
    if (n == sizeof error) {
        child.wait();
        throw std::runtime_error("cannot run " + argv[0] + ": " + std::strerror(error));
    }
    return child;
}

bool ChildProcess::running() {
    if (pid_ <= 0 || exit_) {
        return false;
    }
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
        exit_ = decode(status);
        return false;
    }
    return r == 0;
}

std::optional<ChildExit> ChildProcess::wait(std::optional<std::chrono::milliseconds> timeout) {
    if (pid_ <= 0) {
        return exit_;
    }
    if (!timeout) {
        while (!exit_) {
            int status = 0;
            const pid_t r = ::waitpid(pid_, &status, 0);
            if (r == pid_) {
                exit_ = decode(status);
            } else if (r < 0 && errno != EINTR) {
                exit_ = ChildExit{};
            }
        }
        return exit_;
    }
    const auto deadline = Clock::now() + *timeout;
    while (running()) {
        if (Clock::now() >= deadline) {
            return std::nullopt;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_;
}

ChildExit ChildProcess::terminate(std::chrono::milliseconds grace) {
    if (running()) {
        ::kill(pid_, SIGTERM);
        if (!wait(grace)) {
            ::kill(pid_, SIGKILL);
            wait();
        }
    }
    return exit_.value_or(ChildExit{});
}

CommandOutput run_capture(const std::vector<std::string>& argv) {
    char out_template[] = "/tmp/rewind-out-XXXXXX";
    char err_template[] = "/tmp/rewind-err-XXXXXX";
    const int out_fd = ::mkstemp(out_template);
    const int err_fd = ::mkstemp(err_template);
    if (out_fd < 0 || err_fd < 0) {
        throw std::runtime_error(std::string("mkstemp: ") + std::strerror(errno));
    }
    ::close(out_fd);
    ::close(err_fd);
    CommandOutput result;
    try {
        SpawnOptions options;
        options.stdin_null = true;
        options.stdout_path = out_template;
        options.stderr_path = err_template;
        auto child = ChildProcess::spawn(argv, options);
        result.exit = child.wait().value_or(ChildExit{});
    } catch (...) {
        ::unlink(out_template);
        ::unlink(err_template);
        throw;
    }
    auto slurp = [](const char* path) {
        std::string text;
        if (FILE* f = std::fopen(path, "rb")) {
            char buffer[65536];
            std::size_t n;
            while ((n = std::fread(buffer, 1, sizeof buffer, f)) > 0) {
                text.append(buffer, n);
            }
            std::fclose(f);
        }
        ::unlink(path);
        return text;
    };
    result.output = slurp(out_template);
    result.error_output = slurp(err_template);
    return result;
}

std::string find_in_path(const std::string& name) {
    if (name.find('/') != std::string::npos) {
        return name;
    }
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    std::size_t start = 0;
    while (start <= dirs.size()) {
        const std::size_t end = dirs.find(':', start);
        std::string dir = dirs.substr(start, end == std::string::npos ? std::string::npos : end - start);
        if (dir.empty()) {
            dir = ".";
        }
        const std::string candidate = dir + "/" + name;
        if (::access(candidate.c_str(), X_OK) == 0) {
            return candidate;
        }
        if (end == std::string::npos) {
            break;
        }
        start = end + 1;
    }
    return {};
}

}  // namespace qemu_rewind
