// The gdb commands that load a recording's symbols: the kernel's, and each
// module's at the addresses the guest reported while it was recorded
// (rewind-module lines, docs/bundles.rst). Shared by `rewind debug` and the
// demo.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "bundle.hh"

namespace qemu_rewind {

struct SymbolFiles {
    std::string vmlinux;                                       // may be empty
    std::vector<std::pair<std::string, std::string>> modules;  // name, .ko path
};

struct SymbolCommands {
    std::vector<std::string> commands;  // in order, without "set confirm"
    std::vector<std::string> notes;     // modules given without an address, or recorded but not given
};

SymbolCommands gdb_symbol_commands(const Manifest& manifest, const SymbolFiles& files);

}  // namespace qemu_rewind
