// Where the parts of a recording are, given what the user named: a bundle
// directory (NAME.rewind/ with manifest.json, replay.log, replay.log.ckpt),
// any directory holding a replay.log, or a bare log file (with FILE.ckpt
// next to it when QEMU persisted checkpoints).
#pragma once

#include <filesystem>
#include <optional>
#include <stdexcept>

#include "bundle.hh"

namespace qemu_rewind {

struct RecordingPaths {
    std::filesystem::path log;
    std::optional<Manifest> manifest;                  // bundles only, validated
    std::optional<std::filesystem::path> checkpoints;  // the .ckpt file, if present
    std::optional<std::filesystem::path> directory;    // the bundle or directory named
};

class RecordingError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// Throws RecordingError when the path does not exist or a directory has no
// log, BundleError for a directory with a manifest.json that is not a valid
// bundle.
RecordingPaths locate_recording(const std::filesystem::path& path);

}  // namespace qemu_rewind
