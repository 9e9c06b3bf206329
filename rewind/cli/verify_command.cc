// `rewind verify BUNDLE`: every check verify_bundle() knows, one line each.
#include <ostream>

#include "bundle.hh"
#include "bundle_commands.hh"
#include "log_commands.hh"

namespace qemu_rewind::cli {

int verify(std::span<const std::string> args, std::ostream& out, std::ostream& err) {
    std::string path;
    bool quiet = false;
    for (const auto& arg : args) {
        if (arg == "--quiet" || arg == "-q") {
            quiet = true;
        } else if (arg.starts_with("-")) {
            throw UsageError("unknown option '" + arg + "'");
        } else if (!path.empty()) {
            throw UsageError("unexpected argument '" + arg + "'");
        } else {
            path = arg;
        }
    }
    if (path.empty()) {
        throw UsageError("missing BUNDLE argument");
    }
    const VerifyReport report = verify_bundle(path);
    if (!quiet) {
        for (const auto& line : report.checked) {
            out << "ok: " << line << "\n";
        }
    }
    for (const auto& problem : report.problems) {
        err << "rewind: " << problem << "\n";
    }
    if (report.ok()) {
        out << path << ": OK\n";
        return kExitOk;
    }
    out << path << ": BAD (" << report.problems.size() << (report.problems.size() == 1 ? " problem" : " problems")
        << ")\n";
    return kExitBadInput;
}

}  // namespace qemu_rewind::cli
