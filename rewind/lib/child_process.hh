// Child processes for the rewind tools that run QEMU, qemu-img and gdb.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace qemu_rewind {

struct ChildExit {
    bool exited = false;  // normal exit: `code` is valid
    int code = -1;
    int signal = 0;  // the signal that ended it, when !exited
    [[nodiscard]] bool success() const { return exited && code == 0; }
    [[nodiscard]] std::string describe() const;  // "exit status 1", "killed by signal 9 (Killed)"
};

struct SpawnOptions {
    bool new_process_group = false;  // keep it away from the terminal's Ctrl-C
    bool stdin_null = false;
    std::string stdout_path;  // empty: inherit
    std::string stderr_path;  // empty: inherit; same as stdout_path: shared
};

class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(ChildProcess&&) noexcept;
    ChildProcess& operator=(ChildProcess&&) noexcept;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ~ChildProcess();  // kills a child still running

    // Throws std::runtime_error if the program cannot be started.
    static ChildProcess spawn(const std::vector<std::string>& argv, const SpawnOptions& options = {});

    [[nodiscard]] int pid() const { return pid_; }
    // Non-blocking; true while the child runs.
    bool running();
    // Waits up to `timeout` (forever without one); nullopt if still running.
    std::optional<ChildExit> wait(std::optional<std::chrono::milliseconds> timeout = std::nullopt);
    // SIGTERM, then SIGKILL after `grace`.
    ChildExit terminate(std::chrono::milliseconds grace = std::chrono::milliseconds(3000));
    [[nodiscard]] const std::optional<ChildExit>& exit_status() const { return exit_; }

private:
    int pid_ = -1;
    std::optional<ChildExit> exit_;
};

// Runs a program to completion and returns its exit and standard output
// (stderr goes to `error_output`).
struct CommandOutput {
    ChildExit exit;
    std::string output;
    std::string error_output;
};
CommandOutput run_capture(const std::vector<std::string>& argv);

// The first executable `name` in $PATH, or "" ("name" with a '/' is returned as is).
std::string find_in_path(const std::string& name);

}  // namespace qemu_rewind
