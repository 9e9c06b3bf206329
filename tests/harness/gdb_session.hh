// An interactive gdb driven over GDB/MI: one command at a time, each with
// its console output, stop record and wall time. Used by the demo (a
// narrated transcript) and the benchmarks (latency of reverse commands).
#pragma once

#include "process.hh"

#include <chrono>
#include <cstdint>
#include <string>

namespace qemu_rewind::test {

struct GdbReply {
    std::string command;
    std::string console;     // what the CLI command printed
    std::string stop;        // the *stopped record, if execution ran
    std::string error;       // ^error message, if any
    double seconds = 0;      // from sending to the final record
    bool ok() const { return error.empty(); }
};

class GdbSession {
public:
    explicit GdbSession(const std::string &workdir);
    ~GdbSession();
    GdbSession(const GdbSession &) = delete;
    GdbSession &operator=(const GdbSession &) = delete;

    // Runs a CLI command (as typed at the gdb prompt). Throws
    // std::runtime_error if gdb does not answer within the timeout.
    GdbReply run(const std::string &cli, std::chrono::milliseconds timeout =
                                             std::chrono::seconds(600));
    GdbReply connect(int port);
    std::uint64_t pc();
    // The replay's instruction count (monitor info replay).
    std::uint64_t icount();
    // The value of a gdb expression, read as an unsigned integer.
    std::uint64_t value(const std::string &expr);
    // Every command so far with what it printed, for failure reports.
    const std::string &transcript() const { return transcript_; }

private:
    std::string read_line(std::chrono::steady_clock::time_point deadline);

    int to_gdb_ = -1;
    int from_gdb_ = -1;
    int pid_ = -1;
    std::string buffer_;
    std::string transcript_;
};

// Decodes an MI c-string body (the text between the quotes).
std::string mi_unquote(const std::string &quoted);

}  // namespace qemu_rewind::test
