// The file format 2 that QEMU Rewind's QEMU writes the replay log in
// (replay/rewind-log.c): zstd-compressed chunks of the event stream, cut at
// event boundaries, each with its stream offset and first instruction count,
// then an index and a trailer once the recording has finished.
//
// "Stream offsets" are the byte offsets the events would have in upstream's
// raw format (header included), so they mean the same in both formats.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace qemu_rewind {

inline constexpr std::size_t kLogV2HeaderSize = 32;
inline constexpr std::size_t kLogV2ChunkHeaderSize = 40;
inline constexpr std::size_t kLogV2TrailerSize = 24;
inline constexpr std::uint32_t kLogV2Format = 2;
// Upstream's raw header: u32 version, u64; the stream starts after it.
inline constexpr std::uint64_t kStreamStart = 12;

// CRC-32C (Castagnoli), as QEMU's crc32c(0xffffffff, ...) ^ 0xffffffff.
std::uint32_t crc32c(std::span<const std::uint8_t> data);

// True if `start` (the first bytes of a file) is the format 2 magic.
bool is_log_v2(std::span<const std::uint8_t> start);

struct LogChunkInfo {
    std::uint64_t file_offset = 0;
    std::uint64_t stream_offset = 0;
    std::uint64_t first_icount = 0;  // instructions before the chunk's first event
    std::uint32_t raw_size = 0;
    std::uint32_t packed_size = 0;
    std::uint32_t sequence = 0;
};

struct LogContainerInfo {
    std::uint32_t replay_version = 0;
    std::uint64_t file_size = 0;
    std::uint64_t stream_end = 0;  // stream offset after the last chunk
    // Index and trailer present and consistent: QEMU finished the recording.
    bool indexed = false;
    std::uint64_t final_icount = 0;  // from the index; 0 without one
    std::vector<LogChunkInfo> chunks;
    // Without an index: bytes after the last complete chunk, and why they
    // are not one (a recording killed while writing, or damage).
    std::uint64_t unreadable_tail = 0;
    std::string tail_problem;
};

class RandomAccessBytes;  // log_container.cc

// Random access to a format 2 file. Every method throws ReplayLogError
// (replay_log.hh) with a message naming the chunk and the problem.
class LogContainer {
public:
    explicit LogContainer(const std::filesystem::path& path);
    explicit LogContainer(std::vector<std::uint8_t> bytes);
    ~LogContainer();
    LogContainer(LogContainer&&) noexcept;
    LogContainer& operator=(LogContainer&&) noexcept;

    [[nodiscard]] const LogContainerInfo& info() const noexcept { return info_; }
    // Checks the chunk's header and checksum and decompresses it.
    [[nodiscard]] std::vector<std::uint8_t> read_chunk(std::size_t index) const;
    // Index of the chunk holding stream offset `offset` (< stream_end).
    [[nodiscard]] std::size_t chunk_at(std::uint64_t offset) const;
    // Index of a chunk from which reading on meets every event at or after
    // `icount` (the last one that starts before it).
    [[nodiscard]] std::size_t chunk_for_icount(std::uint64_t icount) const;

private:
    void parse();
    bool load_index();
    void scan_chunks();

    std::unique_ptr<RandomAccessBytes> bytes_;
    LogContainerInfo info_;
};

}  // namespace qemu_rewind

namespace qemu_rewind {

// One chunk to write: raw stream bytes (starting at an event) and the
// instruction count before its first event.
struct LogChunkData {
    std::vector<std::uint8_t> raw;
    std::uint64_t first_icount = 0;
};

// A format 2 file as QEMU writes it (zstd level `level`); without index and
// trailer when `finished` is false, as a killed recording leaves it. For
// tests and tools that rewrite logs.
std::vector<std::uint8_t> write_log_v2(const std::vector<LogChunkData>& chunks, std::uint32_t replay_version,
                                       std::uint64_t final_icount, bool finished = true, int level = 3);

}  // namespace qemu_rewind
