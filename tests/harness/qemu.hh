// Running the QEMU under test: command lines for plain/icount/record/replay
// runs of a guest scenario, and reading the final state (serial output,
// instruction count, guest RAM hash) through QMP.
#pragma once

#include "process.hh"
#include "qmp.hh"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace qemu_rewind::test {

enum class RrMode { None, Icount, Record, Replay };
const char *to_string(RrMode mode);

struct QemuConfig {
    std::string binary;                  // default: qemu_binary()
    std::vector<std::string> firmware_dirs;  // -L DIR each (vanilla builds)
    std::string kernel;                  // default: images_dir()/vmlinux
    std::string initrd;                  // required
    std::string append;                  // kernel command line
    std::vector<std::string> device_args;  // scenario devices (same in record and replay)
    RrMode mode = RrMode::None;
    std::string rrfile;                  // with Record/Replay
    std::string rrsnapshot;              // optional: rrsnapshot=NAME
    // More -icount suboptions for Record/Replay ("rrcheckpoints=off",
    // "rrpersist=1"; our build only).
    std::vector<std::string> rr_options;
    int memory_mb = 256;
    bool stop_at_poweroff = true;        // -no-shutdown: keep state readable
    std::optional<int> gdb_port;         // -gdb tcp:127.0.0.1:PORT
    bool start_paused = false;           // -S
    // A program QEMU runs under, with its arguments (the QEMU command line
    // follows), e.g. {usbdev_binary(), "--device", "storage:...", "--"}.
    std::vector<std::string> wrapper;
};

class QemuInstance {
public:
    QemuInstance(QemuConfig config, std::string workdir);
    ~QemuInstance();
    QemuInstance(const QemuInstance &) = delete;
    QemuInstance &operator=(const QemuInstance &) = delete;

    std::vector<std::string> argv() const;
    std::string command_line() const { return shell_join(argv()); }
    void start();
    QmpClient &qmp() { return qmp_; }

    // Waits until the guest powers off (QEMU stops at SHUTDOWN) or QEMU
    // exits. False on timeout.
    bool wait_for_poweroff(std::chrono::milliseconds timeout);
    bool exited();

    std::uint64_t icount();           // QMP query-replay
    std::string ram_hash();           // hash of all guest RAM via pmemsave
    std::string serial() const;       // everything the guest wrote to ttyS0
    std::string stderr_text() const;
    // Command line plus the tails of stderr and serial: what a failing
    // test prints so the run can be reproduced by hand.
    std::string diagnostics() const;
    void quit();                      // QMP quit, then make sure it is gone

    const std::string &workdir() const { return workdir_; }
    const QemuConfig &config() const { return config_; }
    int pid() const { return process_.pid(); }

private:
    QemuConfig config_;
    std::string workdir_;
    Process process_;
    QmpClient qmp_;
};

// The final state of one run to guest poweroff.
struct RunResult {
    std::string command_line;
    std::string serial;
    std::string ram_hash;
    std::uint64_t icount = 0;
    double seconds = 0;        // wall time from start to poweroff
    std::string diagnostics;
};

// Starts QEMU, optionally calls `during` once QMP is up (to feed input),
// waits for poweroff and collects the final state. Throws
// std::runtime_error with diagnostics when QEMU fails or times out.
RunResult run_to_poweroff(const QemuConfig &config, const std::string &workdir,
                          std::chrono::milliseconds timeout,
                          const std::function<void(QemuInstance &)> &during = {});

// Test timeouts scale with REWIND_TIMEOUT_SCALE (a float, default 1) for
// slow or loaded machines.
std::chrono::milliseconds scaled(std::chrono::milliseconds base);

}  // namespace qemu_rewind::test
