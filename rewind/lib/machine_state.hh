// The whole machine at one instant of a replay, as QEMU's
// query-rewind-state returns it (replay/rewind-state.c), and the comparison
// of two such states that the restore-fidelity checker makes: RAM blocks
// (named down to the MiB), each device state section (vCPUs included)
// down to the field, using the migration stream's own description of the
// fields, and the armed timers of the virtual clock.
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <vector>

namespace qemu_rewind {

class MachineStateError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// One leaf of a section's description: a field (an array of plain values
// is one leaf), its bytes in the section.
struct StateField {
    std::string path;         // "env.regs", "virtio/rewind-notify/vq[0].signalled_used"
    std::uint64_t offset = 0;  // in the section's bytes
    std::uint64_t size = 0;
    std::uint64_t element_size = 0;  // arrays: one element's size; else = size
};

struct StateSection {
    std::string id;  // the migration stream's section name ("cpu", "0000:00:03.0/virtio-net")
    std::int64_t instance = 0;
    std::string digest;
    std::vector<std::uint8_t> data;  // empty when queried without fields
    std::vector<StateField> fields;  // empty when the description did not parse
    std::string layout_problem;      // why fields is empty, if it is

    [[nodiscard]] std::string name() const;  // "id" or "id#instance"
};

struct RamBlockState {
    std::string name;
    std::uint64_t size = 0;
    std::string digest;
    std::vector<std::string> chunks;  // per MiB
};

struct TimerState {
    std::uint64_t callback = 0;  // address in QEMU
    std::int64_t expire = 0;     // ns of the virtual clock
};

struct MachineState {
    std::uint64_t icount = 0;
    std::int64_t clock = 0;
    std::vector<RamBlockState> ram;
    std::vector<StateSection> sections;
    std::vector<TimerState> timers;
};

// Parses query-rewind-state's return value; throws MachineStateError.
MachineState parse_machine_state(const nlohmann::json& reply);

// Splits a section's bytes into fields using its JSON description
// (QEMU's vmstate "vmdesc"): the section header, each field's size,
// subsection headers, struct and array nesting, the footer.  Throws
// MachineStateError when the sizes do not add up.
std::vector<StateField> describe_section_fields(const std::string& id, const nlohmann::json& description,
                                                std::uint64_t size);

// A field (or RAM block, or timer) whose value the checker may ignore,
// with the reason it differs legitimately.
struct StateExclusion {
    std::string section;  // section id, or its last part ("e1000e": any slot)
    std::string field;    // path prefix
    std::string reason;
};

// What the checker leaves out, each with its reason (docs/restore-fidelity.rst).
const std::vector<StateExclusion>& default_state_exclusions();

struct StateDifference {
    std::string where;   // "RAM pc.ram MiB 17", "section cpu#0 field env.eip", "timers"
    std::string detail;  // the two values, as far as they can be shown
};

// Names a QEMU code address (timer callbacks); may return the hex address.
using SymbolNamer = std::function<std::string(std::uint64_t)>;

// Everything that differs between the straight replay's state and the
// restored one, in save order; empty when the restore was exact.
std::vector<StateDifference> compare_machine_states(const MachineState& straight, const MachineState& restored,
                                                    const std::vector<StateExclusion>& exclusions,
                                                    const SymbolNamer& namer = {});

}  // namespace qemu_rewind
