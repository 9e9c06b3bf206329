#include "recording.hh"

namespace qemu_rewind {

namespace fs = std::filesystem;

namespace {

std::optional<fs::path> if_file(const fs::path& path) {
    std::error_code ec;
    if (fs::is_regular_file(path, ec)) {
        return path;
    }
    return std::nullopt;
}

}  // namespace

RecordingPaths locate_recording(const fs::path& path) {
    std::error_code ec;
    const auto status = fs::status(path, ec);
    if (ec || !fs::exists(status)) {
        throw RecordingError("'" + path.string() + "' does not exist");
    }
    RecordingPaths paths;
    if (looks_like_bundle(path)) {
        OpenedBundle bundle = open_bundle(path);
        paths.directory = path;
        paths.log = bundle.log;
        paths.checkpoints = bundle.checkpoints;
        paths.manifest = std::move(bundle.manifest);
        return paths;
    }
    if (fs::is_directory(status)) {
        paths.directory = path;
        paths.log = path / "replay.log";
        if (!if_file(paths.log)) {
            throw RecordingError("'" + path.string() +
                                 "' is a directory without a replay.log: not a QEMU Rewind bundle");
        }
    } else {
        paths.log = path;
    }
    paths.checkpoints = if_file(fs::path(paths.log.string() + ".ckpt"));
    return paths;
}

}  // namespace qemu_rewind
