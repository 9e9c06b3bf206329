// Parsing and comparing query-rewind-state replies (machine_state.hh).
#include "machine_state.hh"

#include <algorithm>
#include <array>
#include <cstdio>
#include <map>

namespace qemu_rewind {

namespace {

using nlohmann::json;

// QEMU_VM_SECTION_FOOTER byte + be32 section id, when the machine sends it.
constexpr std::uint64_t kFooterSize = 5;
// QEMU_VM_SUBSECTION byte, name length byte, name, be32 version.
constexpr std::uint64_t kSubsectionFixed = 1 + 1 + 4;

std::vector<std::uint8_t> decode_base64(const std::string& text) {
    static const std::array<int, 256> table = [] {
        std::array<int, 256> t{};
        t.fill(-1);
        const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        for (int i = 0; i < 64; ++i) {
            t[static_cast<unsigned char>(alphabet[i])] = i;
        }
        return t;
    }();
    std::vector<std::uint8_t> out;
    out.reserve(text.size() / 4 * 3);
    std::uint32_t acc = 0;
    int bits = 0;
    for (const char c : text) {
        if (c == '=') {
            break;
        }
        const int v = table[static_cast<unsigned char>(c)];
        if (v < 0) {
            throw MachineStateError("section data is not base64");
        }
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out.push_back(static_cast<std::uint8_t>(acc >> bits));
        }
    }
    return out;
}

std::uint64_t hex_number(const std::string& text) {
    try {
        return std::stoull(text, nullptr, 16);
    } catch (const std::exception&) {
        throw MachineStateError("not a hexadecimal number: '" + text + "'");
    }
}

class FieldWalker {
public:
    explicit FieldWalker(std::vector<StateField>& out) : out_(out) {}

    // Walks an object with "fields" (and "subsections") from offset; returns
    // the offset after it.
    std::uint64_t walk(const json& object, const std::string& prefix, std::uint64_t offset) {
        for (const auto& f : object.value("fields", json::array())) {
            std::string name = f.at("name").get<std::string>();
            if (f.contains("index")) {
                name += "[" + std::to_string(f.at("index").get<std::int64_t>()) + "]";
            }
            const auto size = f.at("size").get<std::uint64_t>();
            if (f.contains("array_len")) {
                const auto n = f.at("array_len").get<std::uint64_t>();
                if (f.contains("struct")) {
                    for (std::uint64_t i = 0; i < n; ++i) {
                        nested(f.at("struct"), prefix + name + "[" + std::to_string(i) + "].", offset + i * size,
                               size);
                    }
                } else {
                    out_.push_back({prefix + name, offset, n * size, size});
                }
                offset += n * size;
            } else {
                if (f.contains("struct")) {
                    nested(f.at("struct"), prefix + name + ".", offset, size);
                } else {
                    out_.push_back({prefix + name, offset, size, size});
                }
                offset += size;
            }
        }
        for (const auto& s : object.value("subsections", json::array())) {
            const std::string name = s.at("vmsd_name").get<std::string>();
            offset += kSubsectionFixed + name.size();
            offset = walk(s, prefix + name + "/", offset);
        }
        return offset;
    }

private:
    // A struct must take exactly its field's size.
    void nested(const json& object, const std::string& prefix, std::uint64_t offset, std::uint64_t size) {
        if (walk(object, prefix, offset) != offset + size) {
            throw MachineStateError("struct " + prefix + " does not add up to its " + std::to_string(size) +
                                    " bytes");
        }
    }

    std::vector<StateField>& out_;
};

std::string hex_bytes(const std::vector<std::uint8_t>& data, std::uint64_t offset, std::uint64_t size) {
    std::string text = "0x";
    char buf[3];
    for (std::uint64_t i = 0; i < size && offset + i < data.size(); ++i) {
        std::snprintf(buf, sizeof buf, "%02x", data[offset + i]);
        text += buf;
    }
    return text;
}

// "e1000e" matches the section "0000:00:01.0/e1000e" of any slot.
bool excluded(const std::vector<StateExclusion>& exclusions, const std::string& section, const std::string& field) {
    return std::any_of(exclusions.begin(), exclusions.end(), [&](const StateExclusion& e) {
        return (e.section == section || section.ends_with("/" + e.section)) && field.starts_with(e.field);
    });
}

// The field paths of a that b lacks (a subsection saved on one side only).
std::string fields_only_in(const StateSection& a, const StateSection& b) {
    std::string list;
    for (const auto& f : a.fields) {
        if (std::none_of(b.fields.begin(), b.fields.end(), [&](const auto& g) { return g.path == f.path; })) {
            list += (list.empty() ? "" : ", ") + f.path;
        }
    }
    return list.empty() ? "none" : list;
}

// The differing fields of one section whose digests differ.
void compare_section(const StateSection& a, const StateSection& b, const std::vector<StateExclusion>& exclusions,
                     std::vector<StateDifference>& out) {
    const std::string where = "section " + a.name();
    if (a.data.empty() || b.data.empty()) {
        if (!excluded(exclusions, a.id, "")) {
            out.push_back({where, "digest " + a.digest + " (straight) vs " + b.digest + " (restored)"});
        }
        return;
    }
    if (a.fields.empty() || b.fields.empty() || a.data.size() != b.data.size() ||
        a.fields.size() != b.fields.size()) {
        if (excluded(exclusions, a.id, "")) {
            return;
        }
        std::uint64_t first = 0;
        while (first < std::min(a.data.size(), b.data.size()) && a.data[first] == b.data[first]) {
            ++first;
        }
        std::string why = a.layout_problem.empty() ? b.layout_problem : a.layout_problem;
        if (why.empty()) {
            why = "fields only in the straight replay: " + fields_only_in(a, b) +
                  "; only in the restored machine: " + fields_only_in(b, a);
        }
        out.push_back({where, std::to_string(a.data.size()) + " vs " + std::to_string(b.data.size()) +
                                  " bytes, first difference at byte " + std::to_string(first) + " (" + why + ")"});
        return;
    }
    for (std::size_t i = 0; i < a.fields.size(); ++i) {
        const StateField& f = a.fields[i];
        if (std::equal(a.data.begin() + f.offset, a.data.begin() + f.offset + f.size, b.data.begin() + f.offset)) {
            continue;
        }
        if (excluded(exclusions, a.id, f.path)) {
            continue;
        }
        std::uint64_t at = 0;
        while (at < f.size && a.data[f.offset + at] == b.data[f.offset + at]) {
            ++at;
        }
        std::string detail;
        if (f.element_size && f.element_size <= 8) {
            const std::uint64_t element = at / f.element_size;
            const std::uint64_t start = f.offset + element * f.element_size;
            detail = (f.size > f.element_size ? "element " + std::to_string(element) + ": " : std::string()) +
                     hex_bytes(a.data, start, f.element_size) + " (straight) vs " +
                     hex_bytes(b.data, start, f.element_size) + " (restored)";
        } else {
            detail = "byte " + std::to_string(at) + " of " + std::to_string(f.size) + " differs";
        }
        out.push_back({where + " field " + f.path, detail});
    }
}

void compare_ram(const MachineState& a, const MachineState& b, const std::vector<StateExclusion>& exclusions,
                 std::vector<StateDifference>& out) {
    for (const auto& block : a.ram) {
        auto it = std::find_if(b.ram.begin(), b.ram.end(), [&](const auto& o) { return o.name == block.name; });
        if (it == b.ram.end()) {
            out.push_back({"RAM " + block.name, "only in the straight replay"});
            continue;
        }
        if (it->digest == block.digest || excluded(exclusions, "ram", block.name)) {
            continue;
        }
        std::string detail = "digest " + block.digest + " vs " + it->digest;
        if (!block.chunks.empty() && block.chunks.size() == it->chunks.size()) {
            std::vector<std::size_t> mib;
            for (std::size_t i = 0; i < block.chunks.size(); ++i) {
                if (block.chunks[i] != it->chunks[i]) {
                    mib.push_back(i);
                }
            }
            if (!mib.empty()) {
                detail = std::to_string(mib.size()) + " MiB differ, the first at MiB " + std::to_string(mib.front()) +
                         " (offset 0x" + [&] {
                             char buf[32];
                             std::snprintf(buf, sizeof buf, "%llx",
                                           static_cast<unsigned long long>(mib.front()) << 20);
                             return std::string(buf);
                         }() + ")";
            }
        }
        out.push_back({"RAM " + block.name, detail});
    }
}

void compare_timers(const MachineState& a, const MachineState& b, const SymbolNamer& namer,
                    std::vector<StateDifference>& out) {
    auto name = [&](std::uint64_t addr) {
        if (namer) {
            return namer(addr);
        }
        char buf[32];
        std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(addr));
        return std::string(buf);
    };
    std::map<std::pair<std::uint64_t, std::int64_t>, int> count;
    for (const auto& t : a.timers) {
        ++count[{t.callback, t.expire}];
    }
    for (const auto& t : b.timers) {
        --count[{t.callback, t.expire}];
    }
    for (const auto& [key, n] : count) {
        if (n == 0) {
            continue;
        }
        out.push_back({"timer " + name(key.first),
                       "armed for " + std::to_string(key.second) + " ns only in the " +
                           (n > 0 ? "straight replay" : "restored machine")});
    }
}

}  // namespace

std::string StateSection::name() const {
    return instance ? id + "#" + std::to_string(instance) : id;
}

std::vector<StateField> describe_section_fields(const std::string& id, const json& description, std::uint64_t size) {
    // Header: section type, be32 section id, name length, name, be32
    // instance id, be32 version id.
    const std::uint64_t header = 1 + 4 + 1 + id.size() + 4 + 4;
    std::vector<StateField> fields;
    FieldWalker walker(fields);
    const std::uint64_t end = walker.walk(description, "", header);
    if (end != size && end + kFooterSize != size) {
        throw MachineStateError("its fields take " + std::to_string(end - header) + " of " + std::to_string(size) +
                                " bytes");
    }
    return fields;
}

MachineState parse_machine_state(const json& reply) {
    MachineState state;
    try {
        state.icount = reply.at("icount").get<std::uint64_t>();
        state.clock = reply.value("clock", std::int64_t{0});
        for (const auto& r : reply.at("ram")) {
            RamBlockState block{r.at("name").get<std::string>(), r.at("size").get<std::uint64_t>(),
                                r.at("digest").get<std::string>(), {}};
            const std::string chunks = r.value("chunks", "");
            for (std::size_t i = 0; i + 16 <= chunks.size(); i += 16) {
                block.chunks.push_back(chunks.substr(i, 16));
            }
            state.ram.push_back(std::move(block));
        }
        for (const auto& s : reply.at("sections")) {
            StateSection section;
            section.id = s.at("id").get<std::string>();
            section.instance = s.at("instance").get<std::int64_t>();
            section.digest = s.at("digest").get<std::string>();
            if (s.contains("data")) {
                section.data = decode_base64(s.at("data").get<std::string>());
                try {
                    section.fields = describe_section_fields(
                        section.id, json::parse(s.value("description", "{}")), section.data.size());
                } catch (const std::exception& e) {
                    section.layout_problem = e.what();
                }
            }
            state.sections.push_back(std::move(section));
        }
        for (const auto& t : reply.value("timers", json::array())) {
            state.timers.push_back({hex_number(t.at("callback").get<std::string>()), t.at("expire").get<std::int64_t>()});
        }
    } catch (const json::exception& e) {
        throw MachineStateError(std::string("query-rewind-state reply: ") + e.what());
    }
    return state;
}

const std::vector<StateExclusion>& default_state_exclusions() {
    static const std::vector<StateExclusion> exclusions = {
        // Offsets from the host's clocks (system/cpu-timers.c), taken when
        // the VM stops and starts.  Under icount the guest's clock is the
        // instruction count; they only feed QEMU_CLOCK_VIRTUAL_RT, whose
        // every read during a replay comes from the log.
        {"timer", "cpu_ticks_offset", "host clock offset, not the guest's under icount"},
        {"timer", "cpu_clock_offset", "host clock offset, not the guest's under icount"},
        // Counts the log events a replay has read, for error messages only;
        // a checkpoint saved while recording carries the recorder's count.
        {"replay", "current_event", "count of log events read, for error messages only"},
        // User networking's host side.  In a replay the guest's packets come
        // from the log (filter-replay), never from slirp, whose state a
        // checkpoint saved while recording holds as the recording left it.
        {"slirp", "", "user networking's host side: no packet of it reaches a replaying guest"},
    };
    return exclusions;
}

std::vector<StateDifference> compare_machine_states(const MachineState& straight, const MachineState& restored,
                                                    const std::vector<StateExclusion>& exclusions,
                                                    const SymbolNamer& namer) {
    std::vector<StateDifference> out;
    if (straight.icount != restored.icount) {
        out.push_back({"instruction count", std::to_string(straight.icount) + " vs " + std::to_string(restored.icount)});
    }
    if (straight.clock != restored.clock) {
        out.push_back({"virtual clock", std::to_string(straight.clock) + " vs " + std::to_string(restored.clock) + " ns"});
    }
    compare_ram(straight, restored, exclusions, out);
    for (const auto& a : straight.sections) {
        auto it = std::find_if(restored.sections.begin(), restored.sections.end(),
                               [&](const auto& b) { return b.id == a.id && b.instance == a.instance; });
        if (it == restored.sections.end()) {
            out.push_back({"section " + a.name(), "only in the straight replay"});
        } else if (it->digest != a.digest) {
            compare_section(a, *it, exclusions, out);
        }
    }
    for (const auto& b : restored.sections) {
        if (std::none_of(straight.sections.begin(), straight.sections.end(),
                         [&](const auto& a) { return b.id == a.id && b.instance == a.instance; })) {
            out.push_back({"section " + b.name(), "only in the restored machine"});
        }
    }
    compare_timers(straight, restored, namer, out);
    return out;
}

}  // namespace qemu_rewind
