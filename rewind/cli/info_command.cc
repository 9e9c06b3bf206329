// `rewind info RECORDING [--json] [--partial]`: what a recording holds.
#include <algorithm>
#include <ctime>
#include <iomanip>
#include <sstream>

#include <nlohmann/json.hpp>

#include "checkpoint_file.hh"
#include "command_line.hh"
#include "log_commands.hh"
#include "recording.hh"
#include "recording_info.hh"

namespace qemu_rewind::cli {

namespace {

constexpr std::array<const char*, 6> kSpeedNames = {"unknown", "low", "full", "high", "super", "super-plus"};

std::string hex4(std::uint16_t value) {
    std::ostringstream out;
    out << std::hex << std::setw(4) << std::setfill('0') << value;
    return out.str();
}

std::string seconds(std::int64_t ns) {
    std::ostringstream out;
    out << std::fixed << std::setprecision(3) << static_cast<double>(ns) / 1e9 << " s";
    return out.str();
}

std::string utc_time(std::int64_t epoch_ns) {
    const std::time_t t = static_cast<std::time_t>(epoch_ns / 1'000'000'000);
    std::tm tm{};
    if (!gmtime_r(&t, &tm)) return "?";
    char text[32];
    std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return text;
}

std::string version_text(const LogHeader& header) {
    char text[16];
    std::snprintf(text, sizeof text, "0x%06x", header.version);
    return text;
}

std::string ending_text(const RecordingInfo& info) {
    if (info.truncation) return "cut inside the last event (" + info.truncation->message + ")";
    if (info.has_end_event) return "EVENT_END";
    return "end of data on an event boundary (no EVENT_END: recording was not finished)";
}

std::string usb_id(const UsbDeviceUse& use) {
    return use.opened ? hex4(use.vendor) + ":" + hex4(use.product) : "?";
}

struct Sources {
    RecordingPaths paths;
    std::optional<CheckpointFile> checkpoints;
    std::optional<std::string> checkpoints_error;
    std::optional<nlohmann::json> manifest;
};

Sources read_sources(const RecordingPaths& paths) {
    Sources s{paths, {}, {}, {}};
    if (paths.checkpoints) {
        try {
            s.checkpoints = read_checkpoint_file(*paths.checkpoints);
        } catch (const CheckpointFileError& e) {
            s.checkpoints_error = e.what();
        }
    }
    if (paths.manifest) s.manifest = manifest_to_json(*paths.manifest);
    return s;
}

// ---- JSON ----

nlohmann::json info_json(const Sources& s, const RecordingInfo& info) {
    using nlohmann::json;
    json kinds = json::object();
    for (std::size_t k = 0; k < kEventKindCount; ++k) {
        const auto kind = static_cast<EventKind>(k);
        if (const auto n = info.kind_count(kind)) {
            kinds[std::string(event_kind_name(kind))] = {{"count", n}, {"bytes", info.kind_bytes(kind)}};
        }
    }
    json codes = json::object();
    for (std::size_t c = 0; c < info.code_counts.size(); ++c) {
        if (info.code_counts[c]) {
            codes[event_code_name(static_cast<std::uint8_t>(c))] = {{"count", info.code_counts[c]},
                                                                    {"bytes", info.code_bytes[c]}};
        }
    }
    json duration = {{"instructions", info.instructions}};
    if (info.last_virtual_rt_ns) duration["vm_running_ns"] = *info.last_virtual_rt_ns;
    if (info.first_host_ns) {
        duration["host_start_ns"] = *info.first_host_ns;
        duration["host_end_ns"] = *info.last_host_ns;
        duration["host_start"] = utc_time(*info.first_host_ns);
    }
    json chardevs = json::array();
    for (const auto& [index, use] : info.chardevs) {
        chardevs.push_back({{"index", index},
                            {"reads", use.reads},
                            {"read_bytes", use.read_bytes},
                            {"output_bytes", use.output_bytes}});
    }
    json nets = json::array();
    for (const auto& [index, use] : info.net_filters) {
        nets.push_back({{"index", index}, {"packets", use.packets}, {"bytes", use.bytes}});
    }
    json usbs = json::array();
    for (const auto& [index, use] : info.usb_devices) {
        json dev = {{"index", index},       {"opens", use.opens},           {"closes", use.closes},
                    {"submissions", use.submissions}, {"completions", use.completions},
                    {"in_bytes", use.in_bytes},       {"log_bytes", use.log_bytes}};
        if (use.opened) {
            dev["id"] = usb_id(use);
            dev["vendor"] = use.vendor;
            dev["product"] = use.product;
            dev["bus"] = use.bus;
            dev["address"] = use.address;
            dev["speed"] = use.speed < kSpeedNames.size() ? kSpeedNames[use.speed] : "unknown";
        }
        usbs.push_back(dev);
    }
    json log = {{"path", s.paths.log.string()},  {"version", info.header.version},
                {"format", info.header.format},       {"chunks", info.chunks},
                {"file_bytes", info.file_bytes},
                {"finalized", info.header.finalized}, {"bytes", info.bytes},
                {"complete", info.has_end_event},     {"ends_with", ending_text(info)}};
    json result = {
        {"recording", s.paths.directory ? s.paths.directory->string() : s.paths.log.string()},
        {"bundle", s.paths.manifest.has_value()},
        {"log", log},
        {"duration", duration},
        {"events", info.events},
        {"kinds", kinds},
        {"codes", codes},
        {"devices",
         {{"chardevs", chardevs},
          {"char_read_all_bytes", info.char_read_all_bytes},
          {"net_filters", nets},
          {"usb_host", usbs},
          {"block_requests", info.block_requests},
          {"input_events", info.input_events},
          {"audio", {{"out_events", info.audio_out_events},
                     {"in_events", info.audio_in_events},
                     {"in_samples", info.audio_in_samples}}},
          {"random_bytes", info.random_bytes}}},
        {"digests", info.digests},
    };
    if (s.checkpoints) {
        json icounts = json::array();
        for (const auto& c : s.checkpoints->checkpoints) icounts.push_back(c.icount);
        result["checkpoints"] = {{"path", s.paths.checkpoints->string()},
                                 {"bytes", s.checkpoints->bytes},
                                 {"page_size", s.checkpoints->page_size},
                                 {"icounts", icounts},
                                 {"unfinished", s.checkpoints->unfinished.value_or("")}};
    } else if (s.checkpoints_error) {
        result["checkpoints"] = {{"path", s.paths.checkpoints->string()}, {"error", *s.checkpoints_error}};
    }
    if (s.manifest) result["manifest"] = *s.manifest;
    return result;
}

// ---- text ----

// The bundle's manifest, as a person wants to read it (--json has it all).
void print_manifest(const Manifest& m, std::ostream& out) {
    const auto row = [&out](std::string_view label, const std::string& value) {
        out << "  " << std::left << std::setw(18) << label << value << '\n';
    };
    const auto join = [](const std::vector<std::string>& words) {
        std::string text;
        for (const auto& w : words) text += (text.empty() ? "" : " ") + w;
        return text;
    };
    out << "manifest:\n";
    row("created:", m.created + " on " + m.host + " (QEMU Rewind " + m.rewind_version + ")");
    row("qemu:", m.qemu_binary + (m.qemu_build_id.empty() ? "" : " (build id " + m.qemu_build_id + ")"));
    std::vector<std::string> quoted;
    for (const auto& word : m.original_command) {
        quoted.push_back(word.find_first_of(" \t'\"") == std::string::npos ? word : "'" + word + "'");
    }
    row("command:", join(quoted));
    std::string stop = m.stop_reason + " after " + std::to_string(m.icount) + " instructions";
    if (m.checkpoint_every) stop += ", a checkpoint every " + std::to_string(*m.checkpoint_every) + " s";
    row("recording:", stop);
    for (const auto& f : m.files) {
        row(f.role + ":", f.name + " (" + std::to_string(f.size) + " bytes, from " + f.source + ")");
    }
    for (const auto& d : m.disks) {
        row("disk " + d.node + ":", d.source + " (" + d.format + ", " + std::to_string(d.virtual_size) +
                                        " bytes, " + std::to_string(d.blocks_read) + " blocks read)");
    }
    if (m.disks.empty()) row("disks:", "none");
    row("stored blocks:", std::to_string(m.stored_blocks));
    for (const auto& mod : m.modules) row("module:", mod.name);
    for (const auto& note : m.notes) row("note:", note);
}

void print_info(const Sources& s, const RecordingInfo& info, std::ostream& out) {
    const auto row = [&out](std::string_view label, const auto& value) {
        out << std::left << std::setw(20) << label << value << '\n';
    };
    if (s.paths.directory) {
        row("recording:", s.paths.directory->string() + (s.paths.manifest ? " (bundle)" : " (directory)"));
    }
    row("log:", s.paths.log.string());
    row("  version:", version_text(info.header) + (info.header.finalized ? "" : " (header not finalized)"));
    if (info.header.format == 2) {
        row("  format:", "2 (" + std::to_string(info.chunks) + " zstd chunks" +
                             (info.header.finalized ? ", indexed)" : ", no index: recording did not finish)"));
        std::ostringstream ratio;
        ratio << std::fixed << std::setprecision(1)
              << static_cast<double>(info.bytes) / static_cast<double>(std::max<std::uint64_t>(info.file_bytes, 1));
        row("  bytes:", std::to_string(info.file_bytes) + " in the file, " + std::to_string(info.bytes) +
                            " of events (" + ratio.str() + "x)");
    } else {
        row("  format:", "1 (upstream's raw stream)");
        row("  bytes:", info.bytes);
    }
    row("  ends with:", ending_text(info));
    out << "duration:\n";
    row("  instructions:", info.instructions);
    if (info.last_virtual_rt_ns) {
        row("  VM running time:", seconds(*info.last_virtual_rt_ns) +
                                      " (host time the VM ran, last CLOCK_VIRTUAL_RT read; under "
                                      "-icount shift=auto the guest clock follows it)");
    } else {
        row("  VM running time:", "unknown (no CLOCK_VIRTUAL_RT read in the log)");
    }
    if (info.first_host_ns) {
        row("  host clock:", utc_time(*info.first_host_ns) + " + " +
                                 seconds(*info.last_host_ns - *info.first_host_ns) +
                                 " (first to last CLOCK_HOST read)");
    }
    if (info.digests) {
        row("digests:", std::to_string(info.digests) + " (points where a replay checks the machine)");
    }
    row("events:", info.events);
    out << "  " << std::left << std::setw(34) << "kind" << std::right << std::setw(12) << "count"
        << std::setw(14) << "bytes" << '\n';
    for (std::size_t c = 0; c < info.code_counts.size(); ++c) {
        if (info.code_counts[c]) {
            out << "  " << std::left << std::setw(34) << event_code_name(static_cast<std::uint8_t>(c))
                << std::right << std::setw(12) << info.code_counts[c] << std::setw(14) << info.code_bytes[c]
                << '\n';
        }
    }
    out << "devices:\n";
    bool any = false;
    const auto device = [&](const std::string& name, const std::string& text) {
        out << "  " << std::left << std::setw(18) << name << text << '\n';
        any = true;
    };
    for (const auto& [index, use] : info.chardevs) {
        device("chardev " + std::to_string(index), std::to_string(use.read_bytes) + " bytes to the guest (" +
                                                       std::to_string(use.reads) + " reads), " +
                                                       std::to_string(use.output_bytes) + " bytes from it");
    }
    if (info.char_read_all_bytes) {
        device("chardev (read_all)", std::to_string(info.char_read_all_bytes) + " bytes to the guest");
    }
    for (const auto& [index, use] : info.net_filters) {
        device("net filter " + std::to_string(index), std::to_string(use.packets) + " packets, " +
                                                          std::to_string(use.bytes) + " bytes to the guest");
    }
    for (const auto& [index, use] : info.usb_devices) {
        std::string text = usb_id(use);
        if (use.opened) {
            text += " bus " + std::to_string(use.bus) + " addr " + std::to_string(use.address) + " " +
                    (use.speed < kSpeedNames.size() ? kSpeedNames[use.speed] : "unknown") + " speed";
        }
        text += ": " + std::to_string(use.completions) + " transfers, " + std::to_string(use.in_bytes) +
                " IN bytes, " + std::to_string(use.log_bytes) + " log bytes";
        device("usb-host " + std::to_string(index), text);
    }
    if (info.block_requests) device("block", std::to_string(info.block_requests) + " requests (blkreplay)");
    if (info.input_events) device("input", std::to_string(info.input_events) + " events");
    if (info.audio_out_events || info.audio_in_events) {
        device("audio", std::to_string(info.audio_out_events) + " output, " +
                            std::to_string(info.audio_in_events) + " capture events (" +
                            std::to_string(info.audio_in_samples) + " samples)");
    }
    if (info.random_bytes) device("random", std::to_string(info.random_bytes) + " bytes");
    if (!any) out << "  (no device input in the log)\n";

    if (s.checkpoints) {
        const auto& file = *s.checkpoints;
        std::string text = std::to_string(file.checkpoints.size()) + " in " + s.paths.checkpoints->string() +
                           " (" + std::to_string(file.bytes) + " bytes)";
        row("checkpoints:", text);
        std::string icounts;
        for (const auto& c : file.checkpoints) icounts += (icounts.empty() ? "" : " ") + std::to_string(c.icount);
        if (!icounts.empty()) row("  at icount:", icounts);
        if (file.unfinished) row("  note:", *file.unfinished);
    } else if (s.checkpoints_error) {
        row("checkpoints:", s.paths.checkpoints->string() + ": " + *s.checkpoints_error);
    } else if (s.paths.manifest && s.paths.manifest->checkpoints) {
        // Compressed in the bundle: the manifest lists them.
        const auto& ck = *s.paths.manifest->checkpoints;
        row("checkpoints:", std::to_string(ck.icounts.size()) + " in " + std::string(bundle_path::kCompressedCheckpoints) +
                                " (" + std::to_string(ck.bytes) + " bytes uncompressed)");
        std::string icounts;
        for (const auto c : ck.icounts) icounts += (icounts.empty() ? "" : " ") + std::to_string(c);
        if (!icounts.empty()) row("  at icount:", icounts);
    } else {
        row("checkpoints:", "none persisted");
    }
    if (s.paths.manifest) print_manifest(*s.paths.manifest, out);
}

}  // namespace

int info(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    const ParsedArgs parsed = parse_args(args, {"--json"}, {});
    try {
        const Sources sources = read_sources(locate_recording(parsed.recording));
        ReplayLogReader reader(sources.paths.log, parsed.reader_options());
        const RecordingInfo info = gather_recording_info(reader);
        if (parsed.has("--json")) {
            out << info_json(sources, info).dump(2) << '\n';
        } else {
            print_info(sources, info, out);
        }
        return kExitOk;
    } catch (const std::runtime_error& error) {  // log, bundle, recording errors
        return report_input_error(parsed.recording, error, err);
    }
}

}  // namespace qemu_rewind::cli
