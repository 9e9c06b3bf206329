// rewind: command-line front end of the QEMU Rewind tools.
#include <iostream>
#include <string>
#include <vector>

#include "log_commands.hh"

namespace {

constexpr const char* kUsage =
    "usage: rewind <command> [options]\n"
    "\n"
    "commands:\n"
    "  log-info LOG [--json] [--partial]      summarize a QEMU record/replay log\n"
    "  log-events LOG [--limit N] [--partial] list its events, one per line:\n"
    "                                         offset, icount, event, decoded fields\n"
    "\n"
    "--partial accepts logs of recordings that were killed (no version in the\n"
    "header, last event cut short).\n"
    "exit status: 0 ok, 1 bad usage, 2 bad or unreadable log\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace qemu_rewind::cli;
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
        (args.empty() ? std::cerr : std::cout) << kUsage;
        return args.empty() ? kExitUsage : kExitOk;
    }
    const std::string& command = args[0];
    const auto rest = std::span(args).subspan(1);
    try {
        if (command == "log-info") {
            return log_info(rest, std::cout, std::cerr);
        }
        if (command == "log-events") {
            return log_events(rest, std::cout, std::cerr);
        }
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& error) {
        std::cerr << "rewind: " << error.what() << "\n\n" << kUsage;
        return kExitUsage;
    }
}
