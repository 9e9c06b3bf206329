#include "checkpoint_file.hh"

#include <array>
#include <cstring>
#include <fstream>

namespace qemu_rewind {

namespace {

constexpr std::array<char, 8> kFileMagic = {'Q', 'R', 'W', 'C', 'K', 'P', 'T', '1'};
constexpr std::uint64_t kRecordMagic = 0x3143455243575251ULL;  // "QRWCREC1" read little-endian
constexpr std::uint64_t kRecordHeaderSize = 32;

// Bounds-checked little-endian reads from a stream of known size.
class LittleEndianInput {
public:
    LittleEndianInput(std::istream& in, std::uint64_t size) : in_(in), size_(size) {}

    [[nodiscard]] std::uint64_t offset() const { return offset_; }
    [[nodiscard]] std::uint64_t remaining() const { return size_ - offset_; }

    void bytes(char* out, std::uint64_t n, const char* what) {
        if (n > remaining()) {
            throw CheckpointFileError(std::string("checkpoint file ends inside ") + what + " at offset " +
                                      std::to_string(offset_));
        }
        in_.read(out, static_cast<std::streamsize>(n));
        if (static_cast<std::uint64_t>(in_.gcount()) != n) {
            throw CheckpointFileError("read error at offset " + std::to_string(offset_));
        }
        offset_ += n;
    }

    std::uint64_t uint(std::size_t width, const char* what) {
        std::array<unsigned char, 8> raw{};
        bytes(reinterpret_cast<char*>(raw.data()), width, what);
        std::uint64_t value = 0;
        for (std::size_t i = width; i-- > 0;) {
            value = value << 8 | raw[i];
        }
        return value;
    }

    void seek(std::uint64_t offset) {
        if (offset > size_) {
            throw CheckpointFileError("checkpoint file offset " + std::to_string(offset) + " is past its end");
        }
        in_.clear();
        in_.seekg(static_cast<std::streamoff>(offset));
        if (!in_) {
            throw CheckpointFileError("cannot seek to offset " + std::to_string(offset));
        }
        offset_ = offset;
    }

private:
    std::istream& in_;
    std::uint64_t size_;
    std::uint64_t offset_ = 0;
};

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

}  // namespace

CheckpointFile read_checkpoint_file(std::istream& in, std::uint64_t size) {
    CheckpointFile file;
    file.bytes = size;
    LittleEndianInput input(in, size);

    std::array<char, 8> magic{};
    if (size < magic.size()) {
        throw CheckpointFileError("not a QEMU Rewind checkpoint file (" + std::to_string(size) + " bytes)");
    }
    input.bytes(magic.data(), magic.size(), "the magic");
    if (magic != kFileMagic) {
        throw CheckpointFileError("not a QEMU Rewind checkpoint file (no QRWCKPT1 magic)");
    }
    file.page_size = static_cast<std::uint32_t>(input.uint(4, "the page size"));
    // QEMU's target pages are powers of two; anything else is garbage.
    if (file.page_size < 512 || file.page_size > (1u << 24) || (file.page_size & (file.page_size - 1)) != 0) {
        throw CheckpointFileError("implausible page size " + std::to_string(file.page_size));
    }
    const auto blocks = input.uint(4, "the RAM layout");
    // Each block takes at least 10 bytes: no allocation beyond the file.
    if (blocks > input.remaining() / 10) {
        throw CheckpointFileError(std::to_string(blocks) + " RAM blocks do not fit in the file");
    }
    for (std::uint64_t i = 0; i < blocks; ++i) {
        CheckpointRamBlock block;
        block.pages = input.uint(8, "the RAM layout");
        const auto id_length = input.uint(2, "the RAM layout");
        block.id.resize(id_length);
        input.bytes(block.id.data(), id_length, "a RAM block id");
        file.ram_blocks.push_back(std::move(block));
    }

    std::uint64_t pos = round_up(input.offset(), file.page_size);
    while (pos <= size && size - pos >= kRecordHeaderSize) {
        input.seek(pos);
        PersistedCheckpoint checkpoint;
        checkpoint.offset = pos;
        const auto record_magic = input.uint(8, "a record header");
        checkpoint.icount = input.uint(8, "a record header");
        checkpoint.device_state_bytes = input.uint(8, "a record header");
        checkpoint.bytes = input.uint(8, "a record header");
        // QEMU's persist_parse() stops on the same conditions, and on a
        // record too small for its own header.
        if (record_magic != kRecordMagic || checkpoint.bytes < kRecordHeaderSize ||
            checkpoint.bytes > size - pos ||
            checkpoint.device_state_bytes > checkpoint.bytes - kRecordHeaderSize) {
            file.unfinished = "unfinished or damaged checkpoint record at offset " + std::to_string(pos) +
                              " (QEMU ignores it and what follows)";
            break;
        }
        file.checkpoints.push_back(checkpoint);
        pos += checkpoint.bytes;
    }
    return file;
}

CheckpointFile read_checkpoint_file(const std::filesystem::path& path) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    if (ec) {
        throw CheckpointFileError("cannot read '" + path.string() + "': " + ec.message());
    }
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw CheckpointFileError("cannot open '" + path.string() + "'");
    }
    return read_checkpoint_file(in, size);
}

}  // namespace qemu_rewind
