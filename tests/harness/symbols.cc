#include "symbols.hh"

#include "util.hh"

#include <sstream>
#include <stdexcept>

namespace qemu_rewind::test {

SymbolMap SymbolMap::load(const std::string &path)
{
    SymbolMap m = parse(read_file(path), "");
    if (m.by_name_.empty()) {
        throw std::runtime_error("no symbols in " + path);
    }
    return m;
}

SymbolMap SymbolMap::from_guest_output(const std::string &serial)
{
    return parse(serial, "REWIND-SYM ");
}

SymbolMap SymbolMap::parse(const std::string &text, const std::string &prefix)
{
    std::istringstream lines(text);
    std::string line;
    SymbolMap m;
    while (std::getline(lines, line)) {
        if (line.compare(0, prefix.size(), prefix) != 0) {
            continue;
        }
        std::istringstream in(line.substr(prefix.size()));
        std::string addr, type, name;
        if (!(in >> addr >> type >> name) ||
            addr.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
            continue;
        }
        std::uint64_t a = std::stoull(addr, nullptr, 16);
        m.by_name_.emplace(name, a);
        if (type == "t" || type == "T") {
            m.text_by_addr_[a] = name;
        }
    }
    return m;
}

std::optional<std::uint64_t> SymbolMap::find(const std::string &name) const
{
    auto it = by_name_.find(name);
    if (it == by_name_.end()) {
        return std::nullopt;
    }
    return it->second;
}

std::uint64_t SymbolMap::address(const std::string &name) const
{
    if (auto a = find(name)) {
        return *a;
    }
    throw std::runtime_error("kernel symbol '" + name + "' not in the symbol table");
}

std::string SymbolMap::function_at(std::uint64_t addr) const
{
    auto it = text_by_addr_.upper_bound(addr);
    if (it == text_by_addr_.begin()) {
        return "";
    }
    return std::prev(it)->second;
}

std::string SymbolMap::describe(std::uint64_t addr) const
{
    auto it = text_by_addr_.upper_bound(addr);
    if (it == text_by_addr_.begin()) {
        std::ostringstream s;
        s << "0x" << std::hex << addr;
        return s.str();
    }
    --it;
    std::ostringstream s;
    s << it->second << "+0x" << std::hex << (addr - it->first);
    return s.str();
}

}  // namespace qemu_rewind::test
