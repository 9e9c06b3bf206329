#include "checkpoint_thinning.hh"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <stdexcept>
#include <string>

#include "checkpoint_file.hh"
#include "zstd_file.hh"

namespace qemu_rewind {

namespace {

constexpr std::uint64_t kRecordMagic = 0x3143455243575251ULL;  // "QRWCREC1"
constexpr std::uint32_t kZeroSlot = 0xffffffffu;
constexpr int kLevel = 3;

std::uint64_t round_up(std::uint64_t value, std::uint64_t to) { return (value + to - 1) / to * to; }

// The latest checkpoint at or before `target`.
std::size_t at_or_before(const std::vector<std::uint64_t>& icounts, std::uint64_t target) {
    const auto it = std::upper_bound(icounts.begin(), icounts.end(), target);
    return it == icounts.begin() ? 0 : static_cast<std::size_t>(it - icounts.begin() - 1);
}

// A read-only mapping of a whole file.
class MappedFile {
public:
    explicit MappedFile(const std::filesystem::path& path) {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
        struct stat st {};
        if (fd < 0 || ::fstat(fd, &st) != 0) {
            if (fd >= 0) {
                ::close(fd);
            }
            throw CheckpointFileError("cannot open '" + path.string() + "': " + std::strerror(errno));
        }
        size_ = static_cast<std::size_t>(st.st_size);
        if (size_) {
            void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, fd, 0);
            if (p == MAP_FAILED) {
                ::close(fd);
                throw CheckpointFileError("cannot map '" + path.string() + "': " + std::strerror(errno));
            }
            data_ = static_cast<const std::uint8_t*>(p);
        }
        ::close(fd);
    }
    ~MappedFile() {
        if (data_) {
            ::munmap(const_cast<std::uint8_t*>(data_), size_);
        }
    }
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;
    [[nodiscard]] const std::uint8_t* data() const { return data_; }
    [[nodiscard]] std::size_t size() const { return size_; }

private:
    const std::uint8_t* data_ = nullptr;
    std::size_t size_ = 0;
};

// Bounds-checked host-order reads (the file is QEMU's, written on x86).
class Cursor {
public:
    Cursor(const MappedFile& file, std::uint64_t pos, std::uint64_t end) : f_(file), pos_(pos), end_(end) {}
    const std::uint8_t* take(std::uint64_t n) {
        if (n > end_ - pos_) {
            throw CheckpointFileError("checkpoint record truncated at offset " + std::to_string(pos_));
        }
        const std::uint8_t* p = f_.data() + pos_;
        pos_ += n;
        return p;
    }
    template <typename T>
    T get() {
        T v;
        std::memcpy(&v, take(sizeof(T)), sizeof(T));
        return v;
    }
    [[nodiscard]] std::uint64_t pos() const { return pos_; }
    void align(std::uint64_t to) { pos_ = std::min(end_, round_up(pos_, to)); }

private:
    const MappedFile& f_;
    std::uint64_t pos_;
    std::uint64_t end_;
};

// One block's pages in one checkpoint: page number -> data (nullptr: zero).
using BlockPages = std::map<std::uint32_t, const std::uint8_t*>;

struct Record {
    std::uint64_t icount = 0;
    const std::uint8_t* devices = nullptr;
    std::uint64_t devices_size = 0;
    std::uint64_t offset = 0;
    std::uint64_t size = 0;
};

// Adds the pages of `r` to `into` (newer data replaces older).
void merge_record(const MappedFile& file, const Record& r, const CheckpointFile& layout,
                  std::vector<BlockPages>& into) {
    Cursor c(file, r.offset + 32 + r.devices_size, r.offset + r.size);
    struct Table {
        const std::uint8_t* pages;
        const std::uint8_t* slots;
        std::uint32_t count;
    };
    std::vector<Table> tables;
    std::uint64_t slots = 0;
    for (std::size_t b = 0; b < layout.ram_blocks.size(); ++b) {
        const auto count = c.get<std::uint32_t>();
        Table t{c.take(std::uint64_t{count} * 4), c.take(std::uint64_t{count} * 4), count};
        for (std::uint32_t j = 0; j < count; ++j) {
            std::uint32_t slot;
            std::memcpy(&slot, t.slots + 4 * j, 4);
            if (slot != kZeroSlot) {
                ++slots;
            }
        }
        tables.push_back(t);
    }
    c.align(layout.page_size);
    const std::uint8_t* data = c.take(slots * layout.page_size);
    for (std::size_t b = 0; b < tables.size(); ++b) {
        for (std::uint32_t j = 0; j < tables[b].count; ++j) {
            std::uint32_t page, slot;
            std::memcpy(&page, tables[b].pages + 4 * j, 4);
            std::memcpy(&slot, tables[b].slots + 4 * j, 4);
            if (page >= layout.ram_blocks[b].pages || (slot != kZeroSlot && slot >= slots)) {
                throw CheckpointFileError("bad page table in the checkpoint at instruction " + std::to_string(r.icount));
            }
            into[b][page] = slot == kZeroSlot ? nullptr : data + std::uint64_t{slot} * layout.page_size;
        }
    }
}

class PaddedWriter {
public:
    explicit PaddedWriter(ZstdFileWriter& out) : out_(out) {}
    void bytes(const void* p, std::size_t n) { out_.write({static_cast<const std::uint8_t*>(p), n}); }
    template <typename T>
    void put(T v) {
        bytes(&v, sizeof v);
    }
    void pad_to(std::uint64_t multiple) {
        static const std::vector<std::uint8_t> zeros(1 << 16);
        std::uint64_t n = round_up(out_.bytes_in(), multiple) - out_.bytes_in();
        while (n) {
            const std::size_t k = static_cast<std::size_t>(std::min<std::uint64_t>(n, zeros.size()));
            bytes(zeros.data(), k);
            n -= k;
        }
    }
    [[nodiscard]] std::uint64_t offset() const { return out_.bytes_in(); }

private:
    ZstdFileWriter& out_;
};

void write_record(PaddedWriter& w, const Record& r, const std::vector<BlockPages>& pages, std::uint32_t page_size) {
    const std::uint64_t start = w.offset();
    std::uint64_t size = 32 + r.devices_size;
    std::uint64_t slots = 0;
    for (const auto& b : pages) {
        size += 4 + 8 * b.size();
        for (const auto& [page, data] : b) {
            slots += data != nullptr;
        }
    }
    // As QEMU lays a record out: tables, page alignment, data, page alignment.
    const std::uint64_t total = round_up(round_up(start + size, page_size) + slots * page_size, page_size) - start;
    w.put(kRecordMagic);
    w.put(r.icount);
    w.put(r.devices_size);
    w.put(total);
    w.bytes(r.devices, r.devices_size);
    std::uint32_t next = 0;
    for (const auto& b : pages) {
        w.put(static_cast<std::uint32_t>(b.size()));
        for (const auto& [page, data] : b) {
            w.put(page);
        }
        for (const auto& [page, data] : b) {
            w.put(data ? next++ : kZeroSlot);
        }
    }
    w.pad_to(page_size);
    for (const auto& b : pages) {
        for (const auto& [page, data] : b) {
            if (data) {
                w.bytes(data, page_size);
            }
        }
    }
    w.pad_to(page_size);
}

}  // namespace

std::vector<std::size_t> choose_checkpoints(const std::vector<std::uint64_t>& icounts, std::uint64_t end,
                                            unsigned keep) {
    const std::size_t n = icounts.size();
    keep = std::max(keep, 2u);
    if (n <= keep) {
        std::vector<std::size_t> all(n);
        for (std::size_t i = 0; i < n; ++i) {
            all[i] = i;
        }
        return all;
    }
    std::set<std::size_t> kept = {0, n - 1};
    const std::uint64_t first = icounts.front();
    const std::uint64_t span = end > first ? end - first : 0;
    // Half of them halve the distance to the end, one after the other.
    const std::size_t towards_end = 2 + (keep - 2 + 1) / 2;
    for (unsigned k = 1; k < 64 && kept.size() < towards_end; ++k) {
        kept.insert(at_or_before(icounts, end - (span >> k)));
    }
    // The rest split the widest gaps, so that no stretch is left bare.
    while (kept.size() < keep) {
        std::size_t best = n;
        std::uint64_t widest = 0;
        for (auto it = kept.begin(); std::next(it) != kept.end(); ++it) {
            const std::size_t lo = *it, hi = *std::next(it);
            if (hi - lo > 1 && icounts[hi] - icounts[lo] > widest) {
                widest = icounts[hi] - icounts[lo];
                // The checkpoint inside nearest the middle.
                const std::size_t mid = at_or_before(icounts, icounts[lo] + widest / 2);
                best = std::clamp(mid, lo + 1, hi - 1);
            }
        }
        if (best == n) {
            break;
        }
        kept.insert(best);
    }
    return {kept.begin(), kept.end()};
}

ThinnedCheckpoints thin_checkpoints(const std::filesystem::path& from, const std::filesystem::path& to,
                                    std::uint64_t end, unsigned keep) {
    const CheckpointFile layout = read_checkpoint_file(from);
    if (layout.checkpoints.empty()) {
        throw CheckpointFileError("'" + from.string() + "' holds no complete checkpoint");
    }
    const MappedFile file(from);
    std::vector<Record> records;
    std::vector<std::uint64_t> icounts;
    for (const auto& c : layout.checkpoints) {
        Record r{c.icount, file.data() + c.offset + 32, c.device_state_bytes, c.offset, c.bytes};
        if (!records.empty() && r.icount <= records.back().icount) {
            throw CheckpointFileError("checkpoints out of order at offset " + std::to_string(c.offset));
        }
        records.push_back(r);
        icounts.push_back(r.icount);
    }
    const auto chosen = choose_checkpoints(icounts, end, keep);

    ZstdFileWriter out(to, kLevel);
    PaddedWriter w(out);
    // The file header and RAM layout, as QEMU wrote them.
    const std::uint64_t header_end = round_up(layout.checkpoints.front().offset, layout.page_size);
    w.bytes(file.data(), static_cast<std::size_t>(std::min<std::uint64_t>(header_end, file.size())));
    w.pad_to(layout.page_size);

    ThinnedCheckpoints result;
    std::size_t next = 0;
    for (const std::size_t k : chosen) {
        std::vector<BlockPages> pages(layout.ram_blocks.size());
        for (; next <= k; ++next) {
            merge_record(file, records[next], layout, pages);
        }
        write_record(w, records[k], pages, layout.page_size);
        result.icounts.push_back(records[k].icount);
    }
    result.raw_bytes = out.bytes_in();
    out.finish();
    result.compressed_bytes = std::filesystem::file_size(to);
    return result;
}

}  // namespace qemu_rewind
