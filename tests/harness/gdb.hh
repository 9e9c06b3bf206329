// Driving Debian's gdb against a QEMU gdbstub: a batch script whose
// results are printed as "@@KEY value" marker lines and parsed back.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace qemu_rewind::test {

class GdbScript {
public:
    explicit GdbScript(int port);
    GdbScript &cmd(const std::string &line);
    // Emits "@@<key> pc=<hex> icount=<n>" after the previous command.
    GdbScript &report(const std::string &key);
    // Emits "@@<key> <value of expr as hex>".
    GdbScript &print_hex(const std::string &key, const std::string &expr);
    std::string text() const;

private:
    std::vector<std::string> lines_;
};

struct GdbStop {
    std::uint64_t pc = 0;
    std::uint64_t icount = 0;
};

struct GdbResult {
    std::string output;
    bool timed_out = false;
    std::map<std::string, GdbStop> stops;       // from report()
    std::map<std::string, std::uint64_t> values; // from print_hex()
    const GdbStop &stop(const std::string &key) const;   // throws if missing
    std::uint64_t value(const std::string &key) const;
};

GdbResult run_gdb(const GdbScript &script, const std::string &workdir,
                  std::chrono::milliseconds timeout);

}  // namespace qemu_rewind::test
