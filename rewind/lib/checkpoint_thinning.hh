// Which checkpoints a bundle keeps, and the compacted, compressed file
// that holds them (replay.log.ckpt.zst).
//
// While recording, QEMU saves a checkpoint every few guest seconds
// (replay/rewind-persist.c): each holds the device state and the RAM pages
// written since the previous one.  A long recording makes many; a bundle
// keeps a bounded number, placed as a developer needs them: the first (the
// machine at the start), the last, more of them towards the end (where the
// bug usually is: each kept one halves the distance to the end) and the
// rest spread evenly.  A dropped checkpoint's pages go into the next kept
// one, so the kept ones are exactly the machines QEMU saved.
//
// The result is a checkpoint file in QEMU's own format (checkpoint_file.hh),
// zstd-compressed; a replay decompresses it into its work directory, where
// QEMU maps it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <vector>

namespace qemu_rewind {

inline constexpr unsigned kDefaultKeptCheckpoints = 16;

// Indices into `icounts` (increasing) of the checkpoints to keep, at most
// `keep` of them (at least 2: the first and the last).  `end` is the
// recording's last instruction.
std::vector<std::size_t> choose_checkpoints(const std::vector<std::uint64_t>& icounts, std::uint64_t end,
                                            unsigned keep);

struct ThinnedCheckpoints {
    std::vector<std::uint64_t> icounts;  // of the kept checkpoints
    std::uint64_t raw_bytes = 0;         // the uncompressed file
    std::uint64_t compressed_bytes = 0;
};

// Reads QEMU's checkpoint file `from`, keeps the checkpoints `choose`
// picks, and writes them compressed to `to`.  An unfinished last record is
// left out.  Throws CheckpointFileError or std::runtime_error.
ThinnedCheckpoints thin_checkpoints(const std::filesystem::path& from, const std::filesystem::path& to,
                                    std::uint64_t end, unsigned keep);

}  // namespace qemu_rewind
