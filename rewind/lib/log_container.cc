#include "log_container.hh"

#include <zstd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "replay_log.hh"

namespace qemu_rewind {

namespace {

constexpr std::array<std::uint8_t, 8> kMagic = {'Q', 'E', 'M', 'U', 'R', 'W', 'L', 'G'};
constexpr std::array<std::uint8_t, 4> kChunkMagic = {'R', 'W', 'C', 'K'};
constexpr std::array<std::uint8_t, 4> kIndexMagic = {'R', 'W', 'I', 'X'};
constexpr std::array<std::uint8_t, 8> kTrailerMagic = {'Q', 'R', 'W', 'L', 'G', 'E', 'N', 'D'};
// A chunk QEMU writes holds about 1 MiB; anything far larger is damage,
// and must not make a reader allocate gigabytes.
constexpr std::uint32_t kMaxChunkBytes = 256u << 20;

template <typename... Args>
std::string concat(const Args&... args) {
    std::ostringstream out;
    (out << ... << args);
    return out.str();
}

std::uint32_t le32(const std::uint8_t* p) {
    return std::uint32_t(p[0]) | std::uint32_t(p[1]) << 8 | std::uint32_t(p[2]) << 16 |
           std::uint32_t(p[3]) << 24;
}

std::uint64_t le64(const std::uint8_t* p) { return le32(p) | std::uint64_t(le32(p + 4)) << 32; }

bool starts_with(std::span<const std::uint8_t> bytes, std::span<const std::uint8_t> magic) {
    return bytes.size() >= magic.size() && std::equal(magic.begin(), magic.end(), bytes.begin());
}

const std::array<std::uint32_t, 256>& crc_table() {
    static const auto table = [] {
        std::array<std::uint32_t, 256> t{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) {
                c = (c & 1) ? (c >> 1) ^ 0x82f63b78u : c >> 1;  // reflected Castagnoli
            }
            t[i] = c;
        }
        return t;
    }();
    return table;
}

ReplayLogError corrupt(std::uint64_t offset, const std::string& message) {
    return ReplayLogError(ReplayLogError::Kind::Corrupt, offset, message);
}

}  // namespace

std::uint32_t crc32c(std::span<const std::uint8_t> data) {
    const auto& table = crc_table();
    std::uint32_t crc = 0xffffffffu;
    for (std::uint8_t b : data) {
        crc = table[(crc ^ b) & 0xff] ^ (crc >> 8);
    }
    return crc ^ 0xffffffffu;
}

bool is_log_v2(std::span<const std::uint8_t> start) { return starts_with(start, kMagic); }

// A file or a memory buffer, read at given offsets.
class RandomAccessBytes {
public:
    explicit RandomAccessBytes(std::vector<std::uint8_t> bytes) : memory_(std::move(bytes)), size_(memory_.size()) {}

    explicit RandomAccessBytes(const std::filesystem::path& path) : path_(path.string()) {
        std::error_code ec;
        size_ = std::filesystem::file_size(path, ec);
        if (ec) {
            throw ReplayLogError(ReplayLogError::Kind::Io, 0,
                                 concat("cannot read replay log '", path_, "': ", ec.message()));
        }
        errno = 0;
        file_.open(path, std::ios::binary);
        if (!file_) {
            throw ReplayLogError(ReplayLogError::Kind::Io, 0,
                                 concat("cannot open replay log '", path_,
                                        "': ", errno ? std::strerror(errno) : "open failed"));
        }
        from_file_ = true;
    }

    [[nodiscard]] std::uint64_t size() const { return size_; }

    // False if the range is not all inside the data.
    bool read(std::uint64_t offset, std::span<std::uint8_t> out) {
        if (offset > size_ || out.size() > size_ - offset) {
            return false;
        }
        if (!from_file_) {
            std::copy_n(memory_.begin() + static_cast<std::ptrdiff_t>(offset), out.size(), out.begin());
            return true;
        }
        file_.clear();
        file_.seekg(static_cast<std::streamoff>(offset));
        file_.read(reinterpret_cast<char*>(out.data()), static_cast<std::streamsize>(out.size()));
        if (static_cast<std::size_t>(file_.gcount()) != out.size()) {
            throw ReplayLogError(ReplayLogError::Kind::Io, offset,
                                 concat("read error in '", path_, "' at offset ", offset));
        }
        return true;
    }

private:
    std::vector<std::uint8_t> memory_;
    std::ifstream file_;
    std::string path_;
    bool from_file_ = false;
    std::uint64_t size_ = 0;
};

LogContainer::LogContainer(const std::filesystem::path& path)
    : bytes_(std::make_unique<RandomAccessBytes>(path)) {
    parse();
}

LogContainer::LogContainer(std::vector<std::uint8_t> bytes)
    : bytes_(std::make_unique<RandomAccessBytes>(std::move(bytes))) {
    parse();
}

LogContainer::~LogContainer() = default;
LogContainer::LogContainer(LogContainer&&) noexcept = default;
LogContainer& LogContainer::operator=(LogContainer&&) noexcept = default;

void LogContainer::parse() {
    std::array<std::uint8_t, kLogV2HeaderSize> h{};
    info_.file_size = bytes_->size();
    if (!bytes_->read(0, h) || !is_log_v2(h)) {
        throw ReplayLogError(ReplayLogError::Kind::NotReplayLog, 0,
                             "not a QEMU Rewind log (no format 2 header)");
    }
    const std::uint32_t format = le32(h.data() + 8);
    if (format != kLogV2Format) {
        throw ReplayLogError(ReplayLogError::Kind::WrongVersion, 8,
                             concat("QEMU Rewind log format ", format, ", this reader knows format ", kLogV2Format));
    }
    info_.replay_version = le32(h.data() + 12);
    info_.indexed = load_index();
    if (!info_.indexed) {
        info_.chunks.clear();
        scan_chunks();
    }
}

// The index QEMU writes when the recording ends; false if absent or damaged.
bool LogContainer::load_index() {
    const std::uint64_t size = info_.file_size;
    std::array<std::uint8_t, kLogV2TrailerSize> t{};
    if (size < kLogV2HeaderSize + kLogV2TrailerSize || !bytes_->read(size - t.size(), t) ||
        !starts_with(t, kTrailerMagic) || le32(t.data() + 20) != crc32c(std::span(t).first(20))) {
        return false;
    }
    const std::uint64_t at = le64(t.data() + 8);
    const std::uint32_t index_size = le32(t.data() + 16);
    if (index_size < 28 || at < kLogV2HeaderSize || at > size || size - at != index_size + t.size()) {
        return false;
    }
    std::vector<std::uint8_t> ix(index_size);
    if (!bytes_->read(at, ix) || !starts_with(ix, kIndexMagic) ||
        le32(ix.data() + index_size - 4) != crc32c(std::span(ix).first(index_size - 4))) {
        return false;
    }
    const std::uint32_t count = le32(ix.data() + 4);
    if (std::uint64_t(count) * 24 + 28 != index_size) {
        return false;
    }
    info_.stream_end = le64(ix.data() + 8);
    info_.final_icount = le64(ix.data() + 16);
    std::uint64_t expect_file = kLogV2HeaderSize;
    for (std::uint32_t i = 0; i < count; ++i) {
        const std::uint8_t* e = ix.data() + 24 + std::size_t(i) * 24;
        LogChunkInfo c;
        c.file_offset = le64(e);
        c.stream_offset = le64(e + 8);
        c.first_icount = le64(e + 16);
        c.sequence = i;
        // The sizes come from each chunk's own header, checked here so that
        // the index and the chunks it points at agree.
        std::array<std::uint8_t, kLogV2ChunkHeaderSize> ch{};
        if (c.file_offset != expect_file || !bytes_->read(c.file_offset, ch) || !starts_with(ch, kChunkMagic) ||
            le32(ch.data() + 36) != crc32c(std::span(ch).first(36)) || le64(ch.data() + 16) != c.stream_offset ||
            le64(ch.data() + 24) != c.first_icount) {
            throw corrupt(c.file_offset, concat("index entry ", i, " does not match the chunk at file offset ",
                                                c.file_offset));
        }
        c.raw_size = le32(ch.data() + 4);
        c.packed_size = le32(ch.data() + 8);
        expect_file = c.file_offset + kLogV2ChunkHeaderSize + c.packed_size;
        info_.chunks.push_back(c);
    }
    std::uint64_t expect_stream = kStreamStart;
    for (const auto& c : info_.chunks) {
        if (c.stream_offset != expect_stream) {
            throw corrupt(c.file_offset, concat("chunk ", c.sequence, " starts at stream offset ", c.stream_offset,
                                                ", expected ", expect_stream));
        }
        expect_stream += c.raw_size;
    }
    if (expect_stream != info_.stream_end || expect_file != at) {
        throw corrupt(at, "the index does not cover the chunks exactly");
    }
    return true;
}

// No index: a recording that did not finish. Take the complete chunks.
void LogContainer::scan_chunks() {
    std::uint64_t at = kLogV2HeaderSize;
    std::uint64_t stream = kStreamStart;
    const std::uint64_t size = info_.file_size;
    while (at < size) {
        std::array<std::uint8_t, kLogV2ChunkHeaderSize> ch{};
        if (!bytes_->read(at, ch)) {
            info_.tail_problem = "a chunk header cut short";
            break;
        }
        if (!starts_with(ch, kChunkMagic) || le32(ch.data() + 36) != crc32c(std::span(ch).first(36))) {
            info_.tail_problem = starts_with(ch, kIndexMagic) ? "a damaged index"
                                                               : concat("not a chunk header at file offset ", at);
            break;
        }
        LogChunkInfo c;
        c.file_offset = at;
        c.raw_size = le32(ch.data() + 4);
        c.packed_size = le32(ch.data() + 8);
        c.stream_offset = le64(ch.data() + 16);
        c.first_icount = le64(ch.data() + 24);
        c.sequence = le32(ch.data() + 32);
        if (c.stream_offset != stream || c.sequence != info_.chunks.size()) {
            info_.tail_problem = concat("chunk at file offset ", at, " is out of sequence");
            break;
        }
        if (c.packed_size > size - at - kLogV2ChunkHeaderSize) {
            info_.tail_problem = concat("chunk ", c.sequence, " cut short");
            break;
        }
        info_.chunks.push_back(c);
        at += kLogV2ChunkHeaderSize + c.packed_size;
        stream += c.raw_size;
    }
    info_.stream_end = stream;
    info_.unreadable_tail = size - at;
}

std::vector<std::uint8_t> LogContainer::read_chunk(std::size_t index) const {
    const LogChunkInfo& c = info_.chunks.at(index);
    std::array<std::uint8_t, kLogV2ChunkHeaderSize> ch{};
    if (!bytes_->read(c.file_offset, ch) || !starts_with(ch, kChunkMagic) ||
        le32(ch.data() + 36) != crc32c(std::span(ch).first(36))) {
        throw corrupt(c.file_offset, concat("chunk ", index, " (file offset ", c.file_offset, ") has a bad header"));
    }
    if (c.raw_size > kMaxChunkBytes || c.packed_size > kMaxChunkBytes) {
        throw corrupt(c.file_offset, concat("chunk ", index, " claims ", c.raw_size, " bytes, more than a log holds"));
    }
    std::vector<std::uint8_t> packed(c.packed_size);
    if (!bytes_->read(c.file_offset + kLogV2ChunkHeaderSize, packed)) {
        throw corrupt(c.file_offset, concat("chunk ", index, " (file offset ", c.file_offset, ") is cut short"));
    }
    if (le32(ch.data() + 12) != crc32c(packed)) {
        throw corrupt(c.file_offset, concat("the checksum of chunk ", index, " (file offset ", c.file_offset,
                                            ", instructions from ", c.first_icount, ") does not match its data"));
    }
    std::vector<std::uint8_t> raw(c.raw_size);
    const std::size_t got = ZSTD_decompress(raw.data(), raw.size(), packed.data(), packed.size());
    if (ZSTD_isError(got) || got != raw.size()) {
        throw corrupt(c.file_offset, concat("chunk ", index, " (file offset ", c.file_offset, ") does not decompress: ",
                                            ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size"));
    }
    return raw;
}

std::size_t LogContainer::chunk_at(std::uint64_t offset) const {
    const auto& chunks = info_.chunks;
    auto it = std::upper_bound(chunks.begin(), chunks.end(), offset,
                               [](std::uint64_t o, const LogChunkInfo& c) { return o < c.stream_offset; });
    if (it == chunks.begin() || offset >= info_.stream_end) {
        throw ReplayLogError(ReplayLogError::Kind::Io, offset,
                             concat("stream offset ", offset, " is outside the log"));
    }
    return static_cast<std::size_t>(it - chunks.begin() - 1);
}

std::size_t LogContainer::chunk_for_icount(std::uint64_t icount) const {
    const auto& chunks = info_.chunks;
    // The last chunk that starts before `icount`: events at `icount` may
    // end the chunk before one that starts at it.
    auto it = std::lower_bound(chunks.begin(), chunks.end(), icount,
                               [](const LogChunkInfo& c, std::uint64_t i) { return c.first_icount < i; });
    return it == chunks.begin() ? 0 : static_cast<std::size_t>(it - chunks.begin() - 1);
}

}  // namespace qemu_rewind

namespace qemu_rewind {

namespace {

void put_le32(std::vector<std::uint8_t>& b, std::uint32_t v) {
    for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

void put_le64(std::vector<std::uint8_t>& b, std::uint64_t v) {
    put_le32(b, static_cast<std::uint32_t>(v));
    put_le32(b, static_cast<std::uint32_t>(v >> 32));
}

}  // namespace

std::vector<std::uint8_t> write_log_v2(const std::vector<LogChunkData>& chunks, std::uint32_t replay_version,
                                       std::uint64_t final_icount, bool finished, int level) {
    std::vector<std::uint8_t> f(kMagic.begin(), kMagic.end());
    put_le32(f, kLogV2Format);
    put_le32(f, replay_version);
    put_le32(f, 1u << 20);
    put_le32(f, 0);
    put_le64(f, 0);
    std::vector<std::uint8_t> index(kIndexMagic.begin(), kIndexMagic.end());
    std::vector<std::uint8_t> entries;
    std::uint64_t stream = kStreamStart;
    for (std::size_t i = 0; i < chunks.size(); ++i) {
        const auto& raw = chunks[i].raw;
        std::vector<std::uint8_t> packed(ZSTD_compressBound(raw.size()));
        const std::size_t n = ZSTD_compress(packed.data(), packed.size(), raw.data(), raw.size(), level);
        if (ZSTD_isError(n)) {
            throw std::runtime_error(std::string("zstd: ") + ZSTD_getErrorName(n));
        }
        packed.resize(n);
        put_le64(entries, f.size());
        put_le64(entries, stream);
        put_le64(entries, chunks[i].first_icount);
        std::vector<std::uint8_t> h(kChunkMagic.begin(), kChunkMagic.end());
        put_le32(h, static_cast<std::uint32_t>(raw.size()));
        put_le32(h, static_cast<std::uint32_t>(packed.size()));
        put_le32(h, crc32c(packed));
        put_le64(h, stream);
        put_le64(h, chunks[i].first_icount);
        put_le32(h, static_cast<std::uint32_t>(i));
        put_le32(h, crc32c(h));
        f.insert(f.end(), h.begin(), h.end());
        f.insert(f.end(), packed.begin(), packed.end());
        stream += raw.size();
    }
    if (!finished) {
        return f;
    }
    const std::uint64_t index_at = f.size();
    put_le32(index, static_cast<std::uint32_t>(chunks.size()));
    put_le64(index, stream);
    put_le64(index, final_icount);
    index.insert(index.end(), entries.begin(), entries.end());
    put_le32(index, crc32c(index));
    f.insert(f.end(), index.begin(), index.end());
    std::vector<std::uint8_t> t(kTrailerMagic.begin(), kTrailerMagic.end());
    put_le64(t, index_at);
    put_le32(t, static_cast<std::uint32_t>(index.size()));
    put_le32(t, crc32c(t));
    f.insert(f.end(), t.begin(), t.end());
    return f;
}

}  // namespace qemu_rewind
