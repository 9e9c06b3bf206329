// libFuzzer target: the parts of a bundle that rewind reads from disk,
// the manifest (JSON) and the disk maps, and the module-line scanner that
// reads guest console output. Bad input must end in BundleError.
//
// The first byte picks the parser, so one corpus covers all three.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include <nlohmann/json.hpp>

#include "bundle.hh"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace qemu_rewind;
    if (size == 0) return 0;
    const std::span<const std::uint8_t> rest(data + 1, size - 1);
    try {
        switch (data[0] % 3) {
        case 0: {
            const auto json = nlohmann::json::parse(rest.begin(), rest.end(), nullptr, false);
            if (json.is_discarded()) return 0;
            const Manifest manifest = manifest_from_json(json, "manifest.json");
            // What is read back must be written and read again the same.
            const Manifest again = manifest_from_json(manifest_to_json(manifest), "manifest.json");
            if (manifest_to_json(again) != manifest_to_json(manifest)) __builtin_trap();
            break;
        }
        case 1: {
            const DiskMap map = decode_disk_map(rest, "disks/0.map");
            if (decode_disk_map(encode_disk_map(map), "disks/0.map").entries.size() != map.entries.size()) {
                __builtin_trap();
            }
            break;
        }
        default:
            (void)scan_module_lines(std::string_view(reinterpret_cast<const char*>(rest.data()), rest.size()));
        }
    } catch (const BundleError&) {
    }
    return 0;
}
