#include "gdb.hh"

#include "process.hh"
#include "util.hh"

#include <regex>
#include <sstream>
#include <stdexcept>

namespace qemu_rewind::test {

GdbScript::GdbScript(int port)
{
    lines_ = {
        "set pagination off",
        "set confirm off",
        "set width 0",
        "set remotetimeout 600",
        "target remote 127.0.0.1:" + std::to_string(port),
    };
}

GdbScript &GdbScript::cmd(const std::string &line)
{
    lines_.push_back(line);
    return *this;
}

GdbScript &GdbScript::report(const std::string &key)
{
    // "monitor info replay" prints the icount through the gdbstub.
    lines_.push_back("printf \"@@" + key + " pc=%lx \", $pc");
    lines_.push_back("monitor info replay");
    return *this;
}

GdbScript &GdbScript::print_hex(const std::string &key, const std::string &expr)
{
    lines_.push_back("printf \"@@" + key + " %lx\\n\", " + expr);
    return *this;
}

std::string GdbScript::text() const
{
    std::string t;
    for (const auto &l : lines_) {
        t += l + "\n";
    }
    return t;
}

const GdbStop &GdbResult::stop(const std::string &key) const
{
    auto it = stops.find(key);
    if (it == stops.end()) {
        throw std::runtime_error("gdb did not report '" + key + "'; gdb output:\n" +
                                 tail_lines(output, 40));
    }
    return it->second;
}

std::uint64_t GdbResult::value(const std::string &key) const
{
    auto it = values.find(key);
    if (it == values.end()) {
        throw std::runtime_error("gdb did not print '" + key + "'; gdb output:\n" +
                                 tail_lines(output, 40));
    }
    return it->second;
}

GdbResult run_gdb(const GdbScript &script, const std::string &workdir,
                  std::chrono::milliseconds timeout)
{
    std::string path = workdir + "/gdb.cmds";
    write_file(path, script.text());
    auto r = run_command({gdb_binary(), "-nx", "-batch", "-x", path}, timeout,
                         workdir);
    GdbResult g;
    g.output = r.output;
    g.timed_out = r.timed_out;
    write_file(workdir + "/gdb.out", r.output);
    // A report is "@@key pc=HEX " followed by the monitor's
    // "... instruction count = N" on the same line.
    std::regex stop_re(R"(@@([\w.-]+) pc=([0-9a-f]+) .*instruction count = (\d+))");
    std::regex value_re(R"(@@([\w.-]+) ([0-9a-f]+)\s*$)");
    std::istringstream in(r.output);
    std::string line;
    std::smatch m;
    while (std::getline(in, line)) {
        if (std::regex_search(line, m, stop_re)) {
            g.stops[m[1]] = {std::stoull(m[2], nullptr, 16), std::stoull(m[3])};
        } else if (std::regex_search(line, m, value_re)) {
            g.values[m[1]] = std::stoull(m[2], nullptr, 16);
        }
    }
    return g;
}

}  // namespace qemu_rewind::test
