#include "log_commands.hh"

#include <charconv>
#include <cstdio>
#include <iomanip>
#include <optional>

#include <nlohmann/json.hpp>

#include "replay_log.hh"

namespace qemu_rewind::cli {

namespace {

struct LogArgs {
    std::string log_path;
    bool json = false;
    std::optional<std::uint64_t> limit;
    bool partial = false;  // accept killed recordings (no version, cut tail)
};

struct AllowedFlags {
    bool json = false;
    bool limit = false;
};

std::uint64_t parse_count(const std::string& text, const std::string& flag) {
    std::uint64_t value = 0;
    const auto* end = text.data() + text.size();
    const auto [ptr, ec] = std::from_chars(text.data(), end, value);
    if (ec != std::errc{} || ptr != end || text.empty()) {
        throw UsageError(flag + " expects a non-negative integer, got '" + text + "'");
    }
    return value;
}

LogArgs parse_log_args(std::span<const std::string> args, AllowedFlags allowed) {
    LogArgs parsed;
    bool have_path = false;
    for (std::size_t i = 0; i < args.size(); ++i) {
        const std::string& arg = args[i];
        if (arg == "--partial") {
            parsed.partial = true;
        } else if (allowed.json && arg == "--json") {
            parsed.json = true;
        } else if (allowed.limit && (arg == "--limit" || arg.starts_with("--limit="))) {
            if (arg == "--limit") {
                if (i + 1 >= args.size()) {
                    throw UsageError("--limit needs a value");
                }
                parsed.limit = parse_count(args[++i], "--limit");
            } else {
                parsed.limit = parse_count(arg.substr(8), "--limit");
            }
        } else if (arg.starts_with("-") && arg != "-") {
            throw UsageError("unknown option '" + arg + "'");
        } else if (have_path) {
            throw UsageError("unexpected argument '" + arg + "'");
        } else {
            parsed.log_path = arg;
            have_path = true;
        }
    }
    if (!have_path) {
        throw UsageError("missing LOG argument");
    }
    return parsed;
}

ReaderOptions reader_options(const LogArgs& args) {
    ReaderOptions options;
    options.allow_unfinalized_header = args.partial;
    options.tolerate_truncated_tail = args.partial;
    return options;
}

std::string version_text(const LogHeader& header) {
    char text[32];
    std::snprintf(text, sizeof text, "0x%06x", header.version);
    return text;
}

// How the log ends, in words.
std::string ending_text(const LogSummary& summary) {
    if (summary.truncation) {
        return "cut inside the last event (" + summary.truncation->message + ")";
    }
    if (summary.has_end_event) {
        return "EVENT_END";
    }
    return "end of data on an event boundary (no EVENT_END: recording was not finished)";
}

nlohmann::json summary_json(const LogSummary& summary) {
    nlohmann::json events = nlohmann::json::object();
    for (std::size_t k = 0; k < kEventKindCount; ++k) {
        events[std::string(event_kind_name(static_cast<EventKind>(k)))] = summary.kind_counts[k];
    }
    nlohmann::json codes = nlohmann::json::object();
    for (std::size_t c = 0; c < summary.code_counts.size(); ++c) {
        if (summary.code_counts[c] != 0) {
            codes[event_code_name(static_cast<std::uint8_t>(c))] = summary.code_counts[c];
        }
    }
    // usb-host records by sub-kind: {"async": {"COMPLETE": n, ...}, "calls": {"SUBMIT": n, ...}}.
    nlohmann::json usb_async = nlohmann::json::object();
    for (std::size_t k = 1; k < kUsbAsyncKindCount; ++k) {
        if (summary.usb_async_counts[k] != 0) {
            usb_async[std::string(usb_async_kind_name(static_cast<UsbAsyncKind>(k)))] =
                summary.usb_async_counts[k];
        }
    }
    nlohmann::json usb_calls = nlohmann::json::object();
    for (std::size_t c = 1; c < kUsbCallCount; ++c) {
        if (summary.usb_call_counts[c] != 0) {
            usb_calls[std::string(usb_call_name(static_cast<UsbCall>(c)))] = summary.usb_call_counts[c];
        }
    }
    nlohmann::json truncation = nullptr;
    if (summary.truncation) {
        truncation = {{"offset", summary.truncation->offset},
                      {"event_offset", summary.truncation->event_offset},
                      {"message", summary.truncation->message}};
    }
    return {
        {"version", summary.header.version},
        {"version_hex", version_text(summary.header)},
        {"finalized", summary.header.finalized},
        {"bytes", summary.bytes},
        {"instructions", summary.instructions},
        {"event_count", summary.event_count},
        {"char_read_bytes", summary.char_read_bytes},
        {"net_bytes", summary.net_bytes},
        {"usb_in_bytes", summary.usb_in_bytes},
        {"usb_event_bytes", summary.usb_event_bytes},
        {"usb", {{"async", usb_async}, {"calls", usb_calls}}},
        {"complete", summary.has_end_event},
        {"truncation", truncation},
        {"events", events},
        {"codes", codes},
    };
}

void print_summary(const std::string& path, const LogSummary& summary, std::ostream& out) {
    const auto row = [&out](std::string_view label, const auto& value) {
        out << std::left << std::setw(18) << label << value << '\n';
    };
    row("log:", path);
    row("version:",
        version_text(summary.header) + (summary.header.finalized ? "" : " (header not finalized)"));
    row("bytes:", summary.bytes);
    row("events:", summary.event_count);
    row("instructions:", summary.instructions);
    row("char bytes read:", summary.char_read_bytes);
    row("net bytes:", summary.net_bytes);
    row("usb IN bytes:", summary.usb_in_bytes);
    row("usb log bytes:", summary.usb_event_bytes);
    row("ends with:", ending_text(summary));
    out << "events by kind:\n";
    for (std::size_t k = 0; k < kEventKindCount; ++k) {
        if (summary.kind_counts[k] != 0) {
            out << "  " << std::left << std::setw(34) << event_kind_name(static_cast<EventKind>(k))
                << summary.kind_counts[k] << '\n';
        }
    }
    out << "events by code:\n";
    for (std::size_t c = 0; c < summary.code_counts.size(); ++c) {
        if (summary.code_counts[c] != 0) {
            out << "  " << std::left << std::setw(34) << event_code_name(static_cast<std::uint8_t>(c))
                << summary.code_counts[c] << '\n';
        }
    }
    if (summary.count(EventKind::UsbAsync) + summary.count(EventKind::Usb) == 0) {
        return;
    }
    out << "usb-host events:\n";
    for (std::size_t k = 1; k < kUsbAsyncKindCount; ++k) {
        if (summary.usb_async_counts[k] != 0) {
            const std::string name = std::string(event_kind_name(EventKind::UsbAsync)) + " (" +
                                     std::string(usb_async_kind_name(static_cast<UsbAsyncKind>(k))) + ")";
            out << "  " << std::left << std::setw(34) << name << summary.usb_async_counts[k] << '\n';
        }
    }
    for (std::size_t c = 1; c < kUsbCallCount; ++c) {
        if (summary.usb_call_counts[c] != 0) {
            const std::string name = std::string(event_kind_name(EventKind::Usb)) + " (" +
                                     std::string(usb_call_name(static_cast<UsbCall>(c))) + ")";
            out << "  " << std::left << std::setw(34) << name << summary.usb_call_counts[c] << '\n';
        }
    }
}

void print_event(const ReplayEvent& event, std::ostream& out) {
    out << std::right << std::setw(10) << event.offset << ' ' << std::setw(14) << event.icount << "  ";
    const std::string fields = describe_fields(event);
    if (fields.empty()) {
        out << event_name(event) << '\n';
    } else {
        out << std::left << std::setw(34) << event_name(event) << ' ' << fields << '\n';
    }
}

int report_input_error(const std::string& path, const ReplayLogError& error, std::ostream& err) {
    err << "rewind: " << path << ": " << error.what() << '\n';
    if (error.kind() == ReplayLogError::Kind::UnfinalizedHeader ||
        error.kind() == ReplayLogError::Kind::Truncated) {
        err << "rewind: hint: --partial reads logs of recordings that were killed\n";
    }
    return kExitBadInput;
}

}  // namespace

int log_info(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    const LogArgs parsed = parse_log_args(args, {.json = true, .limit = false});
    try {
        const LogSummary summary = summarize(parsed.log_path, reader_options(parsed));
        if (parsed.json) {
            out << summary_json(summary).dump(2) << '\n';
        } else {
            print_summary(parsed.log_path, summary, out);
        }
        return kExitOk;
    } catch (const ReplayLogError& error) {
        return report_input_error(parsed.log_path, error, err);
    }
}

int log_events(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    const LogArgs parsed = parse_log_args(args, {.json = false, .limit = true});
    try {
        ReplayLogReader reader(parsed.log_path, reader_options(parsed));
        std::uint64_t printed = 0;
        while (!parsed.limit || printed < *parsed.limit) {
            const auto event = reader.next();
            if (!event) {
                break;
            }
            print_event(*event, out);
            ++printed;
        }
        if (reader.truncation()) {
            err << "rewind: note: " << reader.truncation()->message << '\n';
        }
        return kExitOk;
    } catch (const ReplayLogError& error) {
        out.flush();
        return report_input_error(parsed.log_path, error, err);
    }
}

}  // namespace qemu_rewind::cli
