// rewind: command-line front end of the QEMU Rewind tools.
#include <iostream>
#include <string>
#include <vector>

#include "bundle_commands.hh"
#include "log_commands.hh"
#include "rewind_version.hh"

namespace {

constexpr const char* kUsage =
    "usage: rewind <command> [options]    (rewind --version: the version)\n"
    "\n"
    "commands:\n"
    "  info RECORDING [--json]            duration, events by kind, devices, sizes,\n"
    "                                     checkpoints, manifest\n"
    "  events RECORDING [--kind K,...] [--from ICOUNT] [--to ICOUNT] [--device N]\n"
    "                   [--limit N] [--json]\n"
    "                                     the timeline: offset, icount, event, fields\n"
    "  extract RECORDING --serial [--input] [--chardev N] [-o FILE]\n"
    "                                     serial output (or input) as text\n"
    "  extract RECORDING --net [--filter N] -o FILE.pcap\n"
    "                                     packets delivered to the guest, as pcap\n"
    "  extract RECORDING --usb [--device N] -o FILE.pcap\n"
    "                                     usb-host transfers, as usbmon pcap\n"
    "  log-info, log-events               old names of info and events\n"
    "  record [--out DIR] [--checkpoint-every SECONDS] [--keep-checkpoints N]\n"
    "         [--force] [--console FILE] -- qemu-system-x86_64 ARGS...\n"
    "                                     record QEMU into a bundle directory: log,\n"
    "                                     checkpoints, kernel/firmware, the disk\n"
    "                                     data the guest read (docs/bundles.rst)\n"
    "  replay BUNDLE [--gdb[=PORT]] [--seek ICOUNT] [--workdir DIR] [--qemu PATH]\n"
    "         [-- QEMU ARGS...]           replay it without the original images\n"
    "  debug BUNDLE [--vmlinux PATH] [--module NAME=PATH.ko]... [--gdb-port N]\n"
    "        [--gdb PROGRAM] [-- GDB ARGS...]\n"
    "                                     replay under gdb, kernel/module symbols\n"
    "  check-restores BUNDLE [--points N] [--bursts N] [--seed S] [--at ICOUNT]...\n"
    "                 [--json FILE]\n"
    "                                     restore-fidelity checker: the machine after\n"
    "                                     a checkpoint restore equals the straight\n"
    "                                     replay's (exit 4 if not; docs/restore-fidelity.rst)\n"
    "  verify BUNDLE [--quiet]            check a bundle's files, hashes, disk\n"
    "                                     blocks and log\n"
    "\n"
    "RECORDING is a bundle directory or a replay log file. --partial (any of\n"
    "these) accepts logs of recordings that were killed (no version in the\n"
    "header, last event cut short).\n"
    "exit status: 0 ok, 1 bad usage, 2 bad or unreadable log or bundle,\n"
    "3 QEMU failed or the replay did not reach the recorded end\n";

}  // namespace

int main(int argc, char** argv) {
    using namespace qemu_rewind::cli;
    const std::vector<std::string> args(argv + 1, argv + argc);
    if (args.empty() || args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
        (args.empty() ? std::cerr : std::cout) << kUsage;
        return args.empty() ? kExitUsage : kExitOk;
    }
    if (args[0] == "--version" || args[0] == "version") {
        std::cout << "rewind (QEMU Rewind) " << REWIND_VERSION << "\n";
        return kExitOk;
    }
    const std::string& command = args[0];
    const auto rest = std::span(args).subspan(1);
    try {
        if (command == "info" || command == "log-info") {
            return info(rest, std::cout, std::cerr);
        }
        if (command == "events" || command == "log-events") {
            return events(rest, std::cout, std::cerr);
        }
        if (command == "extract") {
            return extract(rest, std::cout, std::cerr);
        }
        if (command == "record") {
            return record(rest);
        }
        if (command == "replay") {
            return replay(rest);
        }
        if (command == "debug") {
            return debug(rest);
        }
        if (command == "check-restores") {
            return check_restores(rest);
        }
        if (command == "verify") {
            return verify(rest, std::cout, std::cerr);
        }
        throw UsageError("unknown command '" + command + "'");
    } catch (const UsageError& error) {
        std::cerr << "rewind: " << error.what() << "\n\n" << kUsage;
        return kExitUsage;
    }
}
