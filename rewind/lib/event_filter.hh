// Selecting events of a log for `rewind events`: by kind or code name, by
// instruction-count range, by device.
#pragma once

#include <bitset>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "replay_log.hh"

namespace qemu_rewind {

class EventFilterError : public std::invalid_argument {
public:
    using std::invalid_argument::invalid_argument;
};

// Names a --kind value may take: each event kind and each event code, as
// the log tools print them ("EVENT_CLOCK", "CLOCK_HOST", "ASYNC_EVENT_NET")
// or short ("clock", "clock_host", "net": lower case, without the leading
// "EVENT_" or "ASYNC_EVENT_"); '-' may stand for '_'.
std::vector<std::string> event_selector_names();

// The codes one name selects; throws EventFilterError for unknown names.
std::bitset<256> codes_named(std::string_view name);

// The device index an event is about, if it is about one: the chardev of
// ASYNC_EVENT_CHAR_READ and EVENT_CHAR_OUTPUT, the net filter of ASYNC_EVENT_NET, the usb-host
// device of USB records.
std::optional<std::uint8_t> event_device(const ReplayEvent& event);

struct EventFilter {
    std::optional<std::bitset<256>> codes;  // nullopt: all
    std::uint64_t from_icount = 0;
    std::optional<std::uint64_t> to_icount;  // inclusive
    std::optional<std::uint8_t> device;

    // Adds the codes of a comma-separated list of names.
    void add_kinds(std::string_view list);

    [[nodiscard]] bool matches(const ReplayEvent& event) const;
    // True once no later event can match (icounts only grow).
    [[nodiscard]] bool past_end(const ReplayEvent& event) const {
        return to_icount && event.icount > *to_icount;
    }
};

}  // namespace qemu_rewind
