// A small parser for the inspection commands' arguments: one positional
// RECORDING, flags, and options with a value ("--limit 5" or "--limit=5").
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

}  // namespace qemu_rewind::cli

namespace qemu_rewind::cli {

// Prints "rewind: PATH: message" (with a --partial hint for logs of killed
// recordings) and returns kExitBadInput.
int report_input_error(const std::string& path, const std::exception& error, std::ostream& err);

}  // namespace qemu_rewind::cli
