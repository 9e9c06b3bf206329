// Unit tests of the restore-fidelity checker's state comparison
// (rewind/lib/machine_state): section layouts from QEMU's field
// descriptions, and the differences it names.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <string>
#include <vector>

#include "machine_state.hh"

using namespace qemu_rewind;
using Catch::Matchers::ContainsSubstring;
using nlohmann::json;
using Bytes = std::vector<std::uint8_t>;

namespace {

std::string base64(const Bytes& data) {
    static const char* abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    std::size_t i = 0;
    for (; i + 3 <= data.size(); i += 3) {
        const std::uint32_t v = data[i] << 16 | data[i + 1] << 8 | data[i + 2];
        for (int s = 18; s >= 0; s -= 6) {
            out += abc[(v >> s) & 63];
        }
    }
    if (i < data.size()) {
        std::uint32_t v = data[i] << 16 | (i + 1 < data.size() ? data[i + 1] << 8 : 0);
        out += abc[(v >> 18) & 63];
        out += abc[(v >> 12) & 63];
        out += i + 1 < data.size() ? abc[(v >> 6) & 63] : '=';
        out += '=';
    }
    return out;
}

// A section "dev" as QEMU saves it: header, a u32 "ctrl", a 3-element u16
// array "regs", a struct "q" with two u8 fields, a subsection
// "dev/timer" with a u64 "expire", the footer.
Bytes section_bytes(std::uint32_t ctrl, std::uint16_t reg1, std::uint8_t qb, std::uint64_t expire) {
    Bytes b = {4, 0, 0, 0, 7, 3, 'd', 'e', 'v', 0, 0, 0, 0, 0, 0, 0, 1};
    for (int s = 24; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(ctrl >> s));
    for (std::uint16_t r : {std::uint16_t(0x1111), reg1, std::uint16_t(0x3333)}) {
        b.push_back(static_cast<std::uint8_t>(r >> 8));
        b.push_back(static_cast<std::uint8_t>(r));
    }
    b.push_back(0xaa);
    b.push_back(qb);
    const std::string sub = "dev/timer";
    b.push_back(5);
    b.push_back(static_cast<std::uint8_t>(sub.size()));
    b.insert(b.end(), sub.begin(), sub.end());
    b.insert(b.end(), {0, 0, 0, 1});
    for (int s = 56; s >= 0; s -= 8) b.push_back(static_cast<std::uint8_t>(expire >> s));
    b.insert(b.end(), {0x7e, 0, 0, 0, 7});
    return b;
}

const json kDescription = json::parse(R"({
  "name": "dev", "instance_id": 0, "vmsd_name": "dev", "version": 1,
  "fields": [
    {"name": "ctrl", "type": "uint32", "size": 4},
    {"name": "regs", "array_len": 3, "type": "uint16", "size": 2},
    {"name": "q", "type": "struct", "struct": {"vmsd_name": "q", "version": 1, "fields": [
        {"name": "a", "type": "uint8", "size": 1}, {"name": "b", "type": "uint8", "size": 1}]}, "size": 2}
  ],
  "subsections": [
    {"vmsd_name": "dev/timer", "version": 1, "fields": [{"name": "expire", "type": "int64", "size": 8}]}
  ]})");

json reply(const Bytes& section, const std::string& digest, const std::string& chunks = "",
           json timers = json::array()) {
    return {{"icount", 1000},
            {"clock", 5000},
            {"ram", {{{"name", "pc.ram"}, {"size", 2 << 20}, {"digest", chunks.empty() ? "00" : chunks}, {"chunks", chunks}}}},
            {"sections", {{{"id", "dev"}, {"instance", 0}, {"digest", digest}, {"size", section.size()},
                           {"data", base64(section)}, {"description", kDescription.dump()}}}},
            {"timers", timers}};
}

}  // namespace

TEST_CASE("a section's bytes are split into its described fields", "[unit][state]") {
    const Bytes bytes = section_bytes(1, 2, 3, 4);
    const auto fields = describe_section_fields("dev", kDescription, bytes.size());
    REQUIRE(fields.size() == 5);
    CHECK(fields[0].path == "ctrl");
    CHECK(fields[0].offset == 17);
    CHECK(fields[1].path == "regs");
    CHECK(fields[1].size == 6);
    CHECK(fields[1].element_size == 2);
    CHECK(fields[2].path == "q.a");
    CHECK(fields[3].path == "q.b");
    CHECK(fields[3].offset == 28);
    CHECK(fields[4].path == "dev/timer/expire");
    CHECK(fields[4].offset == 29 + 1 + 1 + 9 + 4);
    CHECK_THROWS_AS(describe_section_fields("dev", kDescription, bytes.size() + 1), MachineStateError);
}

TEST_CASE("equal states have no difference; a changed field is named with both values", "[unit][state]") {
    const auto a = parse_machine_state(reply(section_bytes(1, 2, 3, 4), "aa"));
    CHECK(compare_machine_states(a, a, {}).empty());

    const auto b = parse_machine_state(reply(section_bytes(1, 0x2222, 3, 99), "bb"));
    const auto diffs = compare_machine_states(a, b, {});
    REQUIRE(diffs.size() == 2);
    CHECK(diffs[0].where == "section dev field regs");
    CHECK(diffs[0].detail == "element 1: 0x0002 (straight) vs 0x2222 (restored)");
    CHECK(diffs[1].where == "section dev field dev/timer/expire");
    CHECK_THAT(diffs[1].detail, ContainsSubstring("0x0000000000000004 (straight)"));

    // An exclusion with its reason hides exactly that field.
    const std::vector<StateExclusion> skip = {{"dev", "dev/timer/", "test"}};
    REQUIRE(compare_machine_states(a, b, skip).size() == 1);
}

TEST_CASE("RAM is named down to the MiB, timers by callback", "[unit][state]") {
    const auto a = parse_machine_state(reply(section_bytes(1, 2, 3, 4), "aa", "00000000000000010000000000000002",
                                             json::array({{{"callback", "0x10"}, {"expire", 7}}})));
    const auto b = parse_machine_state(reply(section_bytes(1, 2, 3, 4), "aa", "00000000000000010000000000000003",
                                             json::array({{{"callback", "0x10"}, {"expire", 9}}})));
    const auto diffs = compare_machine_states(a, b, {}, [](std::uint64_t addr) {
        return addr == 0x10 ? std::string("e1000e_intrmgr_on_timer") : std::string("?");
    });
    REQUIRE(diffs.size() == 3);
    CHECK(diffs[0].where == "RAM pc.ram");
    CHECK_THAT(diffs[0].detail, ContainsSubstring("the first at MiB 1"));
    CHECK(diffs[1].where == "timer e1000e_intrmgr_on_timer");
    CHECK_THAT(diffs[1].detail, ContainsSubstring("7 ns only in the straight replay"));
    CHECK_THAT(diffs[2].detail, ContainsSubstring("9 ns only in the restored machine"));
}
