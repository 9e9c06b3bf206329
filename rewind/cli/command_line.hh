// Argument parsing for the rewind commands: parse_args() for the inspection
// commands (one positional RECORDING, flags, and options with a value,
// "--limit 5" or "--limit=5"), ArgumentScanner for commands with their own
// option loop (record, replay, debug).
#pragma once

#include <cstdint>
#include <exception>
#include <map>
#include <ostream>
#include <optional>
#include <set>
#include <span>
#include <string>

#include "replay_log.hh"

namespace qemu_rewind::cli {

struct ParsedArgs {
    std::string recording;
    std::set<std::string> flags;                  // "--json", ...
    std::map<std::string, std::string> options;   // "--limit" -> "5"

    [[nodiscard]] bool has(const std::string& flag) const { return flags.contains(flag); }
    [[nodiscard]] std::optional<std::string> value(const std::string& option) const;
    // The option's value as a non-negative integer; UsageError otherwise.
    [[nodiscard]] std::optional<std::uint64_t> count(const std::string& option) const;
    // A device index (0..255).
    [[nodiscard]] std::optional<std::uint8_t> index(const std::string& option) const;
    // Reader options: --partial accepts killed recordings.
    [[nodiscard]] ReaderOptions reader_options() const;
};

// Throws UsageError for unknown options, a missing value or RECORDING.
// "--partial" is always accepted. `aliases` maps short forms ("-o") to
// option names.
ParsedArgs parse_args(std::span<const std::string> args, const std::set<std::string>& flags,
                      const std::set<std::string>& options,
                      const std::map<std::string, std::string>& aliases = {});

std::uint64_t parse_count(const std::string& text, const std::string& what);

// Walks the arguments of a command that parses its own options (record,
// replay, debug): an option's value is given as "--flag VALUE" or
// "--flag=VALUE".
class ArgumentScanner {
public:
    explicit ArgumentScanner(std::span<const std::string> args) : args_(args) {}

    [[nodiscard]] bool done() const { return i_ >= args_.size(); }
    [[nodiscard]] const std::string& current() const { return args_[i_]; }
    void next() { ++i_; }
    // The arguments from the current one on.
    [[nodiscard]] std::span<const std::string> rest() const { return args_.subspan(i_); }

    // The current argument is `flag` or "flag=...".
    [[nodiscard]] bool is(const std::string& flag) const;
    // The value of the current argument `flag`: after its '=', or the next
    // argument (which it consumes). UsageError if there is none.
    std::string value(const std::string& flag);

private:
    std::span<const std::string> args_;
    std::size_t i_ = 0;
};

}  // namespace qemu_rewind::cli

namespace qemu_rewind::cli {

// Prints "rewind: PATH: message" (with a --partial hint for logs of killed
// recordings) and returns kExitBadInput.
int report_input_error(const std::string& path, const std::exception& error, std::ostream& err);

}  // namespace qemu_rewind::cli
