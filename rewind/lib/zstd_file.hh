// zstd-compressed files in a bundle (the disk block store, the persisted
// checkpoints): a streaming writer and a bounded streaming reader.
//
// The writer uses long-distance matching (a 128 MiB window), which finds
// the pages a checkpoint shares with an older one or with a file the guest
// loaded, far apart in the stream.  The reader accepts that window and no
// larger, and stops with an error past a caller-given number of bytes, so a
// crafted file can neither ask for more memory nor fill the disk.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <span>
#include <vector>

struct ZSTD_CCtx_s;
struct ZSTD_DCtx_s;

namespace qemu_rewind {

inline constexpr int kZstdWindowLog = 27;

class ZstdFileWriter {
public:
    // Creates (truncates) `path`.  Throws std::runtime_error.
    ZstdFileWriter(const std::filesystem::path& path, int level);
    ~ZstdFileWriter();
    ZstdFileWriter(const ZstdFileWriter&) = delete;
    ZstdFileWriter& operator=(const ZstdFileWriter&) = delete;

    void write(std::span<const std::uint8_t> data);
    // Ends the frame and closes the file; throws on a write error.
    void finish();
    [[nodiscard]] std::uint64_t bytes_in() const { return in_; }

private:
    void drain(int mode, std::span<const std::uint8_t> data);
    std::filesystem::path path_;
    std::FILE* file_ = nullptr;
    ZSTD_CCtx_s* cctx_ = nullptr;
    std::vector<std::uint8_t> out_;
    std::uint64_t in_ = 0;
};

class ZstdFileReader {
public:
    // Throws std::runtime_error if `path` cannot be opened.
    ZstdFileReader(const std::filesystem::path& path, std::uint64_t max_bytes);
    ~ZstdFileReader();
    ZstdFileReader(const ZstdFileReader&) = delete;
    ZstdFileReader& operator=(const ZstdFileReader&) = delete;

    // Fills `out` as far as the data goes; returns the bytes written (less
    // than out.size() only at the end).  Throws std::runtime_error for
    // damaged data, a frame cut short, or more than max_bytes in all.
    std::size_t read(std::span<std::uint8_t> out);
    [[nodiscard]] std::uint64_t bytes_out() const { return out_; }

private:
    std::filesystem::path path_;
    std::FILE* file_ = nullptr;
    ZSTD_DCtx_s* dctx_ = nullptr;
    std::vector<std::uint8_t> in_;
    std::size_t in_pos_ = 0;
    std::size_t in_len_ = 0;
    bool eof_ = false;
    bool frame_done_ = true;
    std::uint64_t max_ = 0;
    std::uint64_t out_ = 0;
};

// Decompresses `from` into `to` (created), at most max_bytes; returns the
// bytes written.  Throws std::runtime_error naming `from`.
std::uint64_t zstd_decompress_file(const std::filesystem::path& from, const std::filesystem::path& to,
                                   std::uint64_t max_bytes);

}  // namespace qemu_rewind
