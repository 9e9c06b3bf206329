#include "zstd_file.hh"

#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace qemu_rewind {

namespace {

std::runtime_error zstd_error(const std::filesystem::path& path, const std::string& what) {
    return std::runtime_error(path.string() + ": " + what);
}

void check(std::size_t rc, const std::filesystem::path& path) {
    if (ZSTD_isError(rc)) {
        throw zstd_error(path, std::string("zstd: ") + ZSTD_getErrorName(rc));
    }
}

}  // namespace

ZstdFileWriter::ZstdFileWriter(const std::filesystem::path& path, int level)
    : path_(path), out_(ZSTD_CStreamOutSize()) {
    file_ = std::fopen(path.c_str(), "wb");
    if (!file_) {
        throw zstd_error(path, std::string("cannot create: ") + std::strerror(errno));
    }
    cctx_ = ZSTD_createCCtx();
    if (!cctx_) {
        throw zstd_error(path, "zstd: out of memory");
    }
    check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_compressionLevel, level), path);
    check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_enableLongDistanceMatching, 1), path);
    check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_windowLog, kZstdWindowLog), path);
    check(ZSTD_CCtx_setParameter(cctx_, ZSTD_c_checksumFlag, 1), path);
    // Two workers where libzstd has them; one thread otherwise.
    (void)ZSTD_CCtx_setParameter(cctx_, ZSTD_c_nbWorkers, 2);
}

ZstdFileWriter::~ZstdFileWriter() {
    if (file_) {
        std::fclose(file_);
    }
    ZSTD_freeCCtx(cctx_);
}

void ZstdFileWriter::drain(int mode, std::span<const std::uint8_t> data) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    for (;;) {
        ZSTD_outBuffer out{out_.data(), out_.size(), 0};
        const std::size_t left = ZSTD_compressStream2(cctx_, &out, &in, static_cast<ZSTD_EndDirective>(mode));
        check(left, path_);
        if (out.pos && std::fwrite(out_.data(), 1, out.pos, file_) != out.pos) {
            throw zstd_error(path_, "write error (disk full?)");
        }
        const bool done = mode == ZSTD_e_end ? left == 0 : in.pos == in.size;
        if (done) {
            return;
        }
    }
}

void ZstdFileWriter::write(std::span<const std::uint8_t> data) {
    in_ += data.size();
    drain(ZSTD_e_continue, data);
}

void ZstdFileWriter::finish() {
    drain(ZSTD_e_end, {});
    const int rc = std::fclose(file_);
    file_ = nullptr;
    if (rc != 0) {
        throw zstd_error(path_, "write error (disk full?)");
    }
}

ZstdFileReader::ZstdFileReader(const std::filesystem::path& path, std::uint64_t max_bytes)
    : path_(path), in_(ZSTD_DStreamInSize()), max_(max_bytes) {
    file_ = std::fopen(path.c_str(), "rb");
    if (!file_) {
        throw zstd_error(path, std::string("cannot open: ") + std::strerror(errno));
    }
    dctx_ = ZSTD_createDCtx();
    if (!dctx_) {
        throw zstd_error(path, "zstd: out of memory");
    }
    // The window the writer uses, and no more: memory stays bounded.
    check(ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, kZstdWindowLog), path);
}

ZstdFileReader::~ZstdFileReader() {
    if (file_) {
        std::fclose(file_);
    }
    ZSTD_freeDCtx(dctx_);
}

std::size_t ZstdFileReader::read(std::span<std::uint8_t> out_span) {
    ZSTD_outBuffer out{out_span.data(), out_span.size(), 0};
    while (out.pos < out.size) {
        if (in_pos_ == in_len_ && !eof_) {
            in_len_ = std::fread(in_.data(), 1, in_.size(), file_);
            in_pos_ = 0;
            if (in_len_ == 0) {
                if (std::ferror(file_)) {
                    throw zstd_error(path_, "read error");
                }
                eof_ = true;
            }
        }
        if (in_pos_ == in_len_ && eof_) {
            if (!frame_done_) {
                throw zstd_error(path_, "compressed data cut short (truncated?)");
            }
            break;
        }
        ZSTD_inBuffer in{in_.data(), in_len_, in_pos_};
        const std::size_t before = out.pos;
        const std::size_t rc = ZSTD_decompressStream(dctx_, &out, &in);
        check(rc, path_);
        in_pos_ = in.pos;
        frame_done_ = rc == 0;
        out_ += out.pos - before;
        if (out_ > max_) {
            throw zstd_error(path_, "holds more than the " + std::to_string(max_) + " bytes expected (corrupted?)");
        }
    }
    return out.pos;
}

std::uint64_t zstd_decompress_file(const std::filesystem::path& from, const std::filesystem::path& to,
                                   std::uint64_t max_bytes) {
    ZstdFileReader reader(from, max_bytes);
    std::FILE* out = std::fopen(to.c_str(), "wb");
    if (!out) {
        throw zstd_error(to, std::string("cannot create: ") + std::strerror(errno));
    }
    std::vector<std::uint8_t> buf(1 << 20);
    try {
        for (;;) {
            const std::size_t n = reader.read(buf);
            if (n && std::fwrite(buf.data(), 1, n, out) != n) {
                throw zstd_error(to, "write error (disk full?)");
            }
            if (n < buf.size()) {
                break;
            }
        }
    } catch (...) {
        std::fclose(out);
        throw;
    }
    if (std::fclose(out) != 0) {
        throw zstd_error(to, "write error (disk full?)");
    }
    return reader.bytes_out();
}

}  // namespace qemu_rewind
