#include "command_line.hh"

#include <charconv>

#include "log_commands.hh"

namespace qemu_rewind::cli {

std::uint64_t parse_count(const std::string& text, const std::string& what) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || text.empty()) {
        throw UsageError(what + " expects a non-negative integer, got '" + text + "'");
    }
    return value;
}

bool ArgumentScanner::is(const std::string& flag) const {
    return current() == flag || current().starts_with(flag + "=");
}

std::string ArgumentScanner::value(const std::string& flag) {
    const std::string& arg = current();
    if (arg.size() > flag.size() && arg[flag.size()] == '=') {
        return arg.substr(flag.size() + 1);
    }
    if (i_ + 1 >= args_.size()) {
        throw UsageError(flag + " needs a value");
    }
    return args_[++i_];
}

std::optional<std::string> ParsedArgs::value(const std::string& option) const {
    const auto it = options.find(option);
    if (it == options.end()) return std::nullopt;
    return it->second;
}

std::optional<std::uint64_t> ParsedArgs::count(const std::string& option) const {
    const auto text = value(option);
    if (!text) return std::nullopt;
    return parse_count(*text, option);
}

std::optional<std::uint8_t> ParsedArgs::index(const std::string& option) const {
    const auto n = count(option);
    if (!n) return std::nullopt;
    if (*n > 255) throw UsageError(option + " expects an index from 0 to 255");
    return static_cast<std::uint8_t>(*n);
}

ReaderOptions ParsedArgs::reader_options() const {
    ReaderOptions options;
    options.allow_unfinalized_header = has("--partial");
    options.tolerate_truncated_tail = has("--partial");
    return options;
}

ParsedArgs parse_args(std::span<const std::string> args, const std::set<std::string>& flags,
                      const std::set<std::string>& options, const std::map<std::string, std::string>& aliases) {
    ParsedArgs parsed;
    bool have_recording = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        std::string arg = args[i];
        if (const auto alias = aliases.find(arg); alias != aliases.end()) arg = alias->second;
        const auto eq = arg.find('=');
        const std::string name = arg.starts_with("--") && eq != std::string::npos ? arg.substr(0, eq) : arg;
        if (name == "--partial" || flags.contains(name)) {
            if (name != arg) throw UsageError(name + " takes no value");
            parsed.flags.insert(name);
        } else if (options.contains(name)) {
            if (name != arg) {
                parsed.options[name] = arg.substr(eq + 1);
            } else if (i + 1 < args.size()) {
                parsed.options[name] = args[++i];
            } else {
                throw UsageError(name + " needs a value");
            }
        } else if (arg.starts_with("-") && arg != "-") {
            throw UsageError("unknown option '" + arg + "'");
        } else if (have_recording) {
            throw UsageError("unexpected argument '" + arg + "'");
        } else {
            parsed.recording = arg;
            have_recording = true;
        }
    }
    if (!have_recording) throw UsageError("missing RECORDING argument (a bundle directory or a replay log)");
    return parsed;
}

}  // namespace qemu_rewind::cli

namespace qemu_rewind::cli {

int report_input_error(const std::string& path, const std::exception& error, std::ostream& err) {
    err << "rewind: " << path << ": " << error.what() << '\n';
    if (const auto* log_error = dynamic_cast<const ReplayLogError*>(&error)) {
        if (log_error->kind() == ReplayLogError::Kind::UnfinalizedHeader ||
            log_error->kind() == ReplayLogError::Kind::Truncated) {
            err << "rewind: hint: --partial reads logs of recordings that were killed\n";
        }
    }
    return kExitBadInput;
}

}  // namespace qemu_rewind::cli
