// Child processes for tests: spawn with output to files, wait with a
// deadline, and always clean up (a test must never hang or leak QEMUs).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace qemu_rewind::test {

struct ExitStatus {
    bool exited = false;   // normal exit (code valid)
    int code = -1;
    int signal = 0;        // terminating signal, when !exited
    std::string describe() const;
};

class Process {
public:
    struct Options {
        std::string stdout_path;   // empty: inherit
        std::string stderr_path;   // empty: same file as stdout
        std::string stdin_path;    // empty: /dev/null
        std::string workdir;       // empty: current directory
        std::vector<std::string> extra_env;   // "NAME=value"
    };

    Process() = default;
    Process(const Process &) = delete;
    Process &operator=(const Process &) = delete;
    Process(Process &&other) noexcept;
    Process &operator=(Process &&other) noexcept;
    ~Process();   // kills the process group if still running

    static Process spawn(const std::vector<std::string> &argv,
                         const Options &options);

    int pid() const { return pid_; }
    bool running();
    // Waits until the process exits or the timeout passes.
    std::optional<ExitStatus> wait_for(std::chrono::milliseconds timeout);
    // SIGTERM, then SIGKILL after a grace period; returns the exit status.
    ExitStatus terminate(std::chrono::milliseconds grace =
                             std::chrono::milliseconds(3000));

private:
    int pid_ = -1;
    std::optional<ExitStatus> status_;
};

// Runs a command to completion (bounded by timeout) and returns its output.
struct CommandResult {
    ExitStatus status;
    bool timed_out = false;
    std::string output;   // stdout and stderr interleaved
};
CommandResult run_command(const std::vector<std::string> &argv,
                          std::chrono::milliseconds timeout,
                          const std::string &workdir = "");

// Shell-style quoting of an argv, for printing a reproducible command line.
std::string shell_join(const std::vector<std::string> &argv);

}  // namespace qemu_rewind::test
