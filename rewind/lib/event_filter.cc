#include "event_filter.hh"

#include <algorithm>
#include <cctype>

namespace qemu_rewind {

namespace {

std::string normalize(std::string_view name) {
    std::string out;
    for (const char c : name) {
        out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
    return out;
}

std::string shorten(std::string_view name) {
    for (const std::string_view prefix : {"ASYNC_EVENT_", "EVENT_"}) {
        if (name.starts_with(prefix)) {
            name.remove_prefix(prefix.size());
            break;
        }
    }
    std::string out;
    for (const char c : name) out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

// Every (name, code) pair a selector can name: per code its code name, and
// its kind's name.
template <typename Visit>
void for_each_name(Visit visit) {
    for (int c = 0; c < 256; ++c) {
        const auto code = static_cast<std::uint8_t>(c);
        const auto kind = event_kind_of(code);
        if (!kind) continue;
        visit(event_code_name(code), code);
        visit(std::string(event_kind_name(*kind)), code);
    }
}

}  // namespace

std::vector<std::string> event_selector_names() {
    std::vector<std::string> names;
    for_each_name([&names](const std::string& name, std::uint8_t) {
        const auto s = shorten(name);
        if (std::find(names.begin(), names.end(), s) == names.end()) names.push_back(s);
    });
    return names;
}

std::bitset<256> codes_named(std::string_view name) {
    const std::string wanted = normalize(name);
    std::bitset<256> codes;
    for_each_name([&](const std::string& full, std::uint8_t code) {
        if (wanted == full || wanted == normalize(shorten(full))) codes.set(code);
    });
    if (codes.none()) {
        std::string known;
        for (const auto& n : event_selector_names()) known += (known.empty() ? "" : ", ") + n;
        throw EventFilterError("unknown event kind '" + std::string(name) + "'; known: " + known);
    }
    return codes;
}

std::optional<std::uint8_t> event_device(const ReplayEvent& event) {
    if (const auto* read = std::get_if<CharReadPayload>(&event.payload)) return read->chardev;
    if (const auto* output = std::get_if<CharOutputPayload>(&event.payload)) return output->chardev;
    if (const auto* net = std::get_if<NetPayload>(&event.payload)) return net->filter;
    return event.usb_device();
}

void EventFilter::add_kinds(std::string_view list) {
    if (!codes) codes.emplace();
    while (true) {
        const auto comma = list.find(',');
        const auto item = list.substr(0, comma);
        if (item.empty()) throw EventFilterError("empty event kind in '" + std::string(list) + "'");
        *codes |= codes_named(item);
        if (comma == std::string_view::npos) break;
        list.remove_prefix(comma + 1);
    }
}

bool EventFilter::matches(const ReplayEvent& event) const {
    if (codes && !codes->test(event.code)) return false;
    if (event.icount < from_icount || past_end(event)) return false;
    if (device && event_device(event) != device) return false;
    return true;
}

}  // namespace qemu_rewind
