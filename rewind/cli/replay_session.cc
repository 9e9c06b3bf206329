// The replay session shared by rewind replay/debug/check-restores
// (replay_session.hh).
#include "replay_session.hh"

#include <map>

namespace qemu_rewind::cli {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::uint64_t parse_number(const std::string& text, const std::string& what) {
    std::size_t used = 0;
    unsigned long long value = 0;
    try {
        value = std::stoull(text, &used, 0);
    } catch (const std::exception&) {
        used = 0;
    }
    if (text.empty() || used != text.size() || text.front() == '-') {
        throw UsageError(what + " expects a non-negative number, got '" + text + "'");
    }
    return value;
}

int parse_port(const std::string& text, const std::string& what) {
    const auto port = parse_number(text, what);
    if (port == 0 || port > 65535) {
        throw UsageError(what + " expects a TCP port, got '" + text + "'");
    }
    return static_cast<int>(port);
}

SessionArgs parse_session_args(std::span<const std::string> args, bool debug) {
    SessionArgs parsed;
    ArgumentScanner scan(args);
    for (; !scan.done(); scan.next()) {
        const std::string& arg = scan.current();
        if (arg == "--") {
            const auto rest = scan.rest().subspan(1);
            parsed.extra.assign(rest.begin(), rest.end());
            break;
        }
        if (scan.is("--workdir")) {
            parsed.workdir = scan.value("--workdir");
        } else if (scan.is("--qemu")) {
            parsed.qemu = scan.value("--qemu");
        } else if (!debug && arg == "--gdb") {
            parsed.gdb_port = kDefaultGdbPort;
        } else if (!debug && arg.starts_with("--gdb=")) {
            parsed.gdb_port = parse_port(arg.substr(6), "--gdb");
        } else if (!debug && scan.is("--seek")) {
            parsed.seek = parse_number(scan.value("--seek"), "--seek");
        } else if (debug && scan.is("--gdb-port")) {
            parsed.gdb_port = parse_port(scan.value("--gdb-port"), "--gdb-port");
        } else if (debug && scan.is("--vmlinux")) {
            parsed.vmlinux = scan.value("--vmlinux");
        } else if (debug && scan.is("--gdb")) {
            parsed.gdb = scan.value("--gdb");
        } else if (debug && scan.is("--module")) {
            const std::string spec = scan.value("--module");
            const auto eq = spec.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size()) {
                throw UsageError("--module expects NAME=PATH.ko, got '" + spec + "'");
            }
            parsed.modules.emplace_back(spec.substr(0, eq), spec.substr(eq + 1));
        } else if (arg.starts_with("-")) {
            throw UsageError("unknown option '" + arg + "'");
        } else if (parsed.bundle.empty()) {
            parsed.bundle = arg;
        } else {
            throw UsageError("unexpected argument '" + arg + "'");
        }
    }
    if (parsed.bundle.empty()) {
        throw UsageError("missing BUNDLE argument");
    }
    if (debug && !parsed.gdb_port) {
        parsed.gdb_port = kDefaultGdbPort;
    }
    return parsed;
}

// Checks the files a replay uses against the manifest's hashes.
void check_used_files(const OpenedBundle& bundle) {
    std::map<std::string, const ContentEntry*> listed;
    for (const auto& c : bundle.manifest.contents) {
        listed[c.path] = &c;
    }
    std::vector<std::string> used = {std::string(bundle_path::kLog)};
    if (bundle.checkpoints) {
        used.emplace_back(bundle_path::kCheckpoints);
    }
    if (bundle.compressed_checkpoints) {
        used.emplace_back(bundle_path::kCompressedCheckpoints);
    }
    for (const auto& f : bundle.manifest.files) {
        used.push_back(bundle_path::file(f.sha256));
    }
    for (const auto& path : used) {
        const fs::path full = bundle.root / path;
        auto it = listed.find(path);
        if (it == listed.end()) {
            throw BundleError(bundle.root / bundle_path::kManifest, path + " is not listed in \"contents\"");
        }
        std::error_code ec;
        if (!fs::is_regular_file(full, ec)) {
            throw BundleError(full, "missing (incomplete copy of the bundle?)");
        }
        if (fs::file_size(full, ec) != it->second->size) {
            throw BundleError(full, "size differs from the manifest's (truncated?)");
        }
        if (sha256_file(full) != it->second->sha256) {
            throw BundleError(full, "SHA-256 differs from the manifest's (corrupted)");
        }
    }
}

int report(const std::exception& e) {
    if (dynamic_cast<const BundleError*>(&e)) {
        std::cerr << "rewind: " << e.what() << "\n";
        return kExitBadInput;
    }
    std::cerr << "rewind: " << e.what() << "\n";
    return kExitQemuFailed;
}

// Seeks and waits; returns whether the replay got there.
bool seek_to(ReplaySession& session, std::uint64_t target) {
    if (target > session.bundle().manifest.icount) {
        throw UsageError("--seek " + std::to_string(target) + " is beyond the recording's end (" +
                         std::to_string(session.bundle().manifest.icount) + ")");
    }
    session.qmp().execute("replay-seek", {{"icount", target}}, 600s);
    return session.wait_until_at(target, 60s);
}

}  // namespace qemu_rewind::cli
