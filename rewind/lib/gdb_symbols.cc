#include "gdb_symbols.hh"

#include <algorithm>
#include <cstdio>
#include <filesystem>

namespace qemu_rewind {

namespace {

std::string hex(std::uint64_t value) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(value));
    return buf;
}

}  // namespace

SymbolCommands gdb_symbol_commands(const Manifest& manifest, const SymbolFiles& files) {
    namespace fs = std::filesystem;
    SymbolCommands out;
    if (!files.vmlinux.empty()) {
        out.commands.push_back("file " + fs::absolute(files.vmlinux).string());
    }
    for (const auto& module : files.modules) {
        // Not a structured binding: clang 14 (make fuzz) cannot capture one.
        const std::string& name = module.first;
        const std::string& path = module.second;
        auto it = std::find_if(manifest.modules.begin(), manifest.modules.end(),
                               [&](const ModuleRecord& r) { return r.name == name; });
        if (it == manifest.modules.end() || !it->sections.contains(".text")) {
            out.notes.push_back("module " + name +
                                ": no load address in the recording (the guest did not print a "
                                "rewind-module line)");
            continue;
        }
        std::string command = "add-symbol-file " + fs::absolute(path).string() + " " + hex(it->sections.at(".text"));
        for (const auto& [section, address] : it->sections) {
            // .symtab/.strtab are not sections of the .ko gdb could place.
            if (section != ".text" && section != ".symtab" && section != ".strtab") {
                command += " -s " + section + " " + hex(address);
            }
        }
        out.commands.push_back(command);
    }
    for (const auto& mod : manifest.modules) {
        const bool given = std::any_of(files.modules.begin(), files.modules.end(),
                                       [&](const auto& p) { return p.first == mod.name; });
        if (!given) {
            out.notes.push_back("module " + mod.name + " was loaded at .text " +
                                (mod.sections.contains(".text") ? hex(mod.sections.at(".text")) : "?") +
                                " (give --module " + mod.name + "=PATH.ko for its symbols)");
        }
    }
    return out;
}

}  // namespace qemu_rewind
