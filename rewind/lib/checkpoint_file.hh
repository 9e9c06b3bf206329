// Reader for the checkpoints QEMU Rewind persists next to a recording
// (FILE.ckpt for rrfile=FILE, replay/rewind-persist.c). Only the file's
// layout and record headers are read, not the device state or RAM pages.
//
// File (host byte order, little-endian on x86):
//   "QRWCKPT1", u32 page size,
//   RAM layout: u32 block count, per block u64 page count, u16 id length, id
//   padding to a page boundary
//   records, each: u64 magic "QRWCREC1", u64 icount, u64 device-state size,
//   u64 record size (0 while QEMU writes it, then rounded up to a page)
// A recording killed half-way leaves complete records followed by an
// unfinished one; QEMU ignores the unfinished one, and so does this reader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <istream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace qemu_rewind {

struct CheckpointRamBlock {
    std::string id;  // QEMU's RAM block id, e.g. "pc.ram"
    std::uint64_t pages = 0;
};

struct PersistedCheckpoint {
    std::uint64_t offset = 0;  // of the record in the file
    std::uint64_t icount = 0;
    std::uint64_t device_state_bytes = 0;
    std::uint64_t bytes = 0;  // the whole record
};

struct CheckpointFile {
    std::uint64_t bytes = 0;
    std::uint32_t page_size = 0;
    std::vector<CheckpointRamBlock> ram_blocks;
    std::vector<PersistedCheckpoint> checkpoints;
    // Why reading stopped before the end of the file (an unfinished record).
    std::optional<std::string> unfinished;
};

class CheckpointFileError : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

// `size` is the number of bytes `in` holds. Throws CheckpointFileError for a
// file that is not a checkpoint file or whose layout is cut or implausible.
CheckpointFile read_checkpoint_file(std::istream& in, std::uint64_t size);
CheckpointFile read_checkpoint_file(const std::filesystem::path& path);

}  // namespace qemu_rewind
