// `rewind events RECORDING [--kind K,...] [--from ICOUNT] [--to ICOUNT]
// [--device N] [--limit N] [--json] [--partial]`: a filterable timeline.
#include <iomanip>

#include <nlohmann/json.hpp>

#include "command_line.hh"
#include "event_filter.hh"
#include "log_commands.hh"
#include "recording.hh"

namespace qemu_rewind::cli {

namespace {

constexpr std::size_t kJsonDataLimit = 64;  // bytes of a payload's data shown as hex

std::string hex_bytes(const std::vector<std::uint8_t>& data) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    for (std::size_t i = 0; i < data.size() && i < kJsonDataLimit; ++i) {
        out += kDigits[data[i] >> 4];
        out += kDigits[data[i] & 15];
    }
    return out;
}

void put_data(nlohmann::json& j, const std::vector<std::uint8_t>& data, const char* name = "data") {
    j["len"] = data.size();
    j[name] = hex_bytes(data);
    if (data.size() > kJsonDataLimit) j["data_cut"] = true;
}

// One event as a JSON object: where it is, what it is, its decoded fields.
nlohmann::json event_json(const ReplayEvent& event) {
    nlohmann::json j = {{"offset", event.offset},
                        {"icount", event.icount},
                        {"code", event.code},
                        {"kind", std::string(event_kind_name(event.kind))},
                        {"name", event_code_name(event.code)},
                        {"size", event.size}};
    if (const auto device = event_device(event)) j["device"] = *device;
    struct Fields {
        nlohmann::json& j;
        void operator()(std::monostate) const {}
        void operator()(const InstructionPayload& p) const { j["count"] = p.count; }
        void operator()(const AsyncIdPayload& p) const { j["id"] = p.id; }
        void operator()(const InputPayload& p) const {
            j["input_type"] = static_cast<std::uint32_t>(p.type);  // the rest: "fields"
        }
        void operator()(const CharReadPayload& p) const { put_data(j, p.data); }
        void operator()(const NetPayload& p) const {
            j["flags"] = p.flags;
            put_data(j, p.packet);
        }
        void operator()(const CharWritePayload& p) const {
            j["result"] = p.result;
            j["write_offset"] = p.offset;
        }
        void operator()(const CharReadAllPayload& p) const { put_data(j, p.data); }
        void operator()(const CharReadAllErrorPayload& p) const { j["result"] = p.result; }
        void operator()(const AudioOutPayload& p) const { j["played"] = p.played; }
        void operator()(const AudioInPayload& p) const {
            j["recorded"] = p.recorded;
            j["write_pos"] = p.write_pos;
        }
        void operator()(const RandomPayload& p) const {
            j["result"] = p.result;
            put_data(j, p.data);
        }
        void operator()(const ClockPayload& p) const { j["value"] = p.value; }
        void operator()(const UsbOpenPayload& p) const {
            j["bus"] = p.bus;
            j["address"] = p.address;
            j["speed"] = p.speed;
            j["ports"] = p.ports;
            j["configs"] = p.configs.size();
        }
        void operator()(const UsbClosePayload&) const {}
        void operator()(const UsbCompletePayload& p) const {
            j["endpoint"] = p.endpoint;
            j["seq"] = p.seq;
            j["status"] = p.status;
            j["actual_length"] = p.actual_length;
            if (!p.packets.empty()) j["iso_packets"] = p.packets.size();
            put_data(j, p.data);
        }
        void operator()(const UsbCallPayload& p) const {
            j["call"] = std::string(usb_call_name(p.call));
            j["arg"] = p.arg;
            j["arg2"] = p.arg2;
            j["rc"] = p.rc;
            j["out"] = p.out;
            if (!p.data.empty()) put_data(j, p.data);
        }
        void operator()(const DigestPayload& p) const {
            j["sequence"] = p.sequence;
            auto& cpus = j["cpus"] = nlohmann::json::array();
            for (const auto& cpu : p.cpus) {
                cpus.push_back({{"pc", cpu.pc}, {"sp", cpu.sp}, {"hash", cpu.hash}});
            }
            if (p.has_ram) j["ram_hash"] = p.ram_hash;
            if (p.version >= 2) {
                auto& devices = j["devices"] = nlohmann::json::array();
                for (const auto& d : p.devices) {
                    devices.push_back({{"name", d.name}, {"state", d.state}});
                }
            }
        }
        void operator()(const CharOutputPayload& p) const { put_data(j, p.data); }
    };
    std::visit(Fields{j}, event.payload);
    // The text output's rendering too: names for enums, input details.
    const auto text = describe_fields(event);
    if (!text.empty()) j["fields"] = text;
    j["name"] = event_name(event);
    return j;
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

}  // namespace

int events(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    const ParsedArgs parsed =
        parse_args(args, {"--json"}, {"--kind", "--from", "--to", "--device", "--limit"});
    EventFilter filter;
    try {
        if (const auto kinds = parsed.value("--kind")) filter.add_kinds(*kinds);
    } catch (const EventFilterError& error) {
        throw UsageError(std::string("--kind: ") + error.what());
    }
    filter.from_icount = parsed.count("--from").value_or(0);
    filter.to_icount = parsed.count("--to");
    filter.device = parsed.index("--device");
    const auto limit = parsed.count("--limit");
    const bool json = parsed.has("--json");
    try {
        const RecordingPaths paths = locate_recording(parsed.recording);
        ReplayLogReader reader(paths.log, parsed.reader_options());
        // Format 2: start at the chunk that holds --from instead of reading
        // everything before it.
        if (filter.from_icount > 0) reader.seek_near_icount(filter.from_icount);
        std::uint64_t printed = 0;
        while (!limit || printed < *limit) {
            const auto event = reader.next();
            if (!event || filter.past_end(*event)) break;
            if (!filter.matches(*event)) continue;
            if (json) {
                out << event_json(*event).dump() << '\n';
            } else {
                print_event(*event, out);
            }
            ++printed;
        }
        if (reader.truncation()) err << "rewind: note: " << reader.truncation()->message << '\n';
        return kExitOk;
    } catch (const ReplayLogError& error) {
        out.flush();
        return report_input_error(parsed.recording, error, err);
    } catch (const std::runtime_error& error) {  // bundle and recording errors
        return report_input_error(parsed.recording, error, err);
    }
}

}  // namespace qemu_rewind::cli
