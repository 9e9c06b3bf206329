// Kernel symbols from the guest image's System.map (the guest boots with
// nokaslr, so these are the run-time addresses).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

namespace qemu_rewind::test {

class SymbolMap {
public:
    static SymbolMap load(const std::string &system_map_path);
    // From "REWIND-SYM <addr> <type> <name>" lines that a guest printed
    // from /proc/kallsyms (see tests/guest/common.sh, rewind.syms=).
    static SymbolMap from_guest_output(const std::string &serial);
    // Throws std::runtime_error naming the symbol when it is absent.
    std::uint64_t address(const std::string &name) const;
    std::optional<std::uint64_t> find(const std::string &name) const;
    // "name+0xoff" for the text symbol at or below addr.
    std::string describe(std::uint64_t addr) const;
    // The name of the text symbol containing addr ("" if none).
    std::string function_at(std::uint64_t addr) const;

private:
    static SymbolMap parse(const std::string &text, const std::string &prefix);
    std::map<std::string, std::uint64_t> by_name_;
    std::map<std::uint64_t, std::string> text_by_addr_;
};

}  // namespace qemu_rewind::test
