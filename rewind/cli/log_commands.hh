// The inspection commands of `rewind`: info, events, extract (and the older
// names log-info and log-events, which are the first two).
#pragma once

#include <ostream>
#include <span>
#include <stdexcept>
#include <string>

namespace qemu_rewind::cli {

// Exit codes shared by all subcommands.
inline constexpr int kExitOk = 0;
inline constexpr int kExitUsage = 1;
inline constexpr int kExitBadInput = 2;

// Thrown for malformed command lines; main() prints it with the usage text.
class UsageError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// `args` excludes the program and subcommand names. Output goes to `out`,
// diagnostics to `err`; the return value is the process exit code.
int info(std::span<const std::string> args, std::ostream& out, std::ostream& err);
int events(std::span<const std::string> args, std::ostream& out, std::ostream& err);
int extract(std::span<const std::string> args, std::ostream& out, std::ostream& err);

}  // namespace qemu_rewind::cli
