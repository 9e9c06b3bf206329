// `rewind record`, `rewind replay`, `rewind debug` and `rewind verify`:
// making a bundle from a QEMU command line, replaying it, debugging it.
#pragma once

#include <ostream>
#include <span>
#include <string>

namespace qemu_rewind::cli {

// Exit status of record/replay/debug when QEMU failed, died, or the replay
// did not reach the recorded end (0, 1 and 2 as in log_commands.hh).
inline constexpr int kExitQemuFailed = 3;
// Exit status of check-restores when a restore was not exact.
inline constexpr int kExitNotExact = 4;

// `args` excludes the program and subcommand names; the return value is
// the process exit code. Messages go to stderr.
int record(std::span<const std::string> args);
int replay(std::span<const std::string> args);
int debug(std::span<const std::string> args);
int check_restores(std::span<const std::string> args);
int verify(std::span<const std::string> args, std::ostream& out, std::ostream& err);

}  // namespace qemu_rewind::cli
