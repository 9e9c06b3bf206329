// Persisted checkpoints in bundles: which ones are kept, and that the
// thinned, compressed file holds exactly the machines QEMU saved.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include "checkpoint_file.hh"
#include "checkpoint_thinning.hh"
#include "zstd_file.hh"

using namespace qemu_rewind;
using Catch::Matchers::ContainsSubstring;
namespace fs = std::filesystem;

namespace {

constexpr std::uint32_t kPage = 4096;
constexpr std::uint32_t kZero = 0xffffffffu;

struct Scratch {
    fs::path path;
    Scratch() {
        std::string t = (fs::temp_directory_path() / "rewind-unit-ckpt-XXXXXX").string();
        path = mkdtemp(t.data());
    }
    ~Scratch() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};

// Writes a checkpoint file as replay/rewind-persist.c does.
class FileBuilder {
public:
    explicit FileBuilder(std::vector<std::pair<std::string, std::uint64_t>> blocks) : blocks_(std::move(blocks)) {
        bytes("QRWCKPT1", 8);
        put<std::uint32_t>(kPage);
        put<std::uint32_t>(static_cast<std::uint32_t>(blocks_.size()));
        for (const auto& [id, pages] : blocks_) {
            put<std::uint64_t>(pages);
            put<std::uint16_t>(static_cast<std::uint16_t>(id.size()));
            bytes(id.data(), id.size());
        }
        pad();
    }
    // pages[block] = {page -> fill byte (0: a zero page)}
    void record(std::uint64_t icount, const std::string& devices,
                const std::vector<std::map<std::uint32_t, std::uint8_t>>& pages) {
        const std::size_t start = out_.size();
        put<std::uint64_t>(0x3143455243575251ULL);
        put(icount);
        put<std::uint64_t>(devices.size());
        const std::size_t total_at = out_.size();
        put<std::uint64_t>(0);
        bytes(devices.data(), devices.size());
        std::vector<std::uint8_t> fills;
        for (const auto& b : pages) {
            put<std::uint32_t>(static_cast<std::uint32_t>(b.size()));
            for (const auto& [page, fill] : b) put(page);
            for (const auto& [page, fill] : b) {
                put<std::uint32_t>(fill ? static_cast<std::uint32_t>(fills.size()) : kZero);
                if (fill) fills.push_back(fill);
            }
        }
        pad();
        for (const auto f : fills) out_.insert(out_.end(), kPage, f);
        pad();
        const std::uint64_t total = out_.size() - start;
        std::memcpy(out_.data() + total_at, &total, 8);
    }
    void save(const fs::path& path) const {
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(out_.data()), out_.size());
    }

private:
    template <typename T>
    void put(T v) {
        bytes(&v, sizeof v);
    }
    void bytes(const void* p, std::size_t n) {
        out_.insert(out_.end(), static_cast<const std::uint8_t*>(p), static_cast<const std::uint8_t*>(p) + n);
    }
    void pad() { out_.resize((out_.size() + kPage - 1) / kPage * kPage); }
    std::vector<std::pair<std::string, std::uint64_t>> blocks_;
    std::vector<std::uint8_t> out_;
};

// The machine each record of a checkpoint file describes: device state and
// the first byte of every nonzero page (pages hold one byte value each here).
struct Machine {
    std::string devices;
    std::map<std::pair<int, std::uint32_t>, std::uint8_t> ram;
    bool operator==(const Machine&) const = default;
};

std::map<std::uint64_t, Machine> machines(const std::vector<std::uint8_t>& f, int nblocks) {
    const CheckpointFile layout = [&] {
        std::string s(f.begin(), f.end());
        std::istringstream in(s);
        return read_checkpoint_file(in, s.size());
    }();
    std::map<std::uint64_t, Machine> result;
    Machine m;
    for (const auto& c : layout.checkpoints) {
        std::size_t at = c.offset + 32;
        m.devices.assign(reinterpret_cast<const char*>(f.data() + at), c.device_state_bytes);
        at += c.device_state_bytes;
        std::vector<std::pair<std::uint32_t, std::uint32_t>> entries[8];
        std::uint32_t slots = 0;
        for (int b = 0; b < nblocks; ++b) {
            std::uint32_t n;
            std::memcpy(&n, f.data() + at, 4);
            at += 4;
            for (std::uint32_t j = 0; j < n; ++j) {
                std::uint32_t page, slot;
                std::memcpy(&page, f.data() + at + 4 * j, 4);
                std::memcpy(&slot, f.data() + at + 4 * (n + j), 4);
                entries[b].push_back({page, slot});
                slots += slot != kZero;
            }
            at += 8 * n;
        }
        at = (at + kPage - 1) / kPage * kPage;
        for (int b = 0; b < nblocks; ++b) {
            for (const auto& [page, slot] : entries[b]) {
                if (slot == kZero) {
                    m.ram.erase({b, page});
                } else {
                    REQUIRE(slot < slots);
                    m.ram[{b, page}] = f[at + std::size_t{slot} * kPage];
                }
            }
        }
        result[c.icount] = m;
    }
    return result;
}

std::vector<std::uint8_t> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), {}};
}

}  // namespace

TEST_CASE("checkpoints kept: first and last, denser towards the end, at most N", "[checkpoints]") {
    std::vector<std::uint64_t> icounts;
    for (std::uint64_t i = 0; i < 200; ++i) icounts.push_back(i * 100);
    const auto kept = choose_checkpoints(icounts, 20000, 16);
    REQUIRE(kept.size() <= 16);
    CHECK(kept.size() >= 12);
    CHECK(kept.front() == 0);
    CHECK(kept.back() == 199);
    CHECK(std::is_sorted(kept.begin(), kept.end()));
    // The last quarter of the recording holds more of them than the first.
    const auto in_range = [&](std::size_t lo, std::size_t hi) {
        return std::count_if(kept.begin(), kept.end(), [&](std::size_t k) { return k >= lo && k < hi; });
    };
    CHECK(in_range(150, 200) > in_range(0, 50));
    // Nearest to the end: within 1/64 of the recording.
    CHECK(icounts[kept[kept.size() - 2]] >= 20000 - 20000 / 64 - 100);

    // Fewer than N: all of them.
    CHECK(choose_checkpoints({0, 5, 9}, 10, 16) == std::vector<std::size_t>{0, 1, 2});
    CHECK(choose_checkpoints(icounts, 20000, 2) == std::vector<std::size_t>{0, 199});
}

TEST_CASE("checkpoints thinned: the kept ones are exactly the machines QEMU saved", "[checkpoints]") {
    Scratch dir;
    FileBuilder f({{"pc.ram", 64}, {"pc.bios", 4}});
    std::mt19937 rng(3);
    // A full first record, then records of pages written since the previous one.
    std::vector<std::map<std::uint32_t, std::uint8_t>> first(2);
    for (std::uint32_t p = 0; p < 64; ++p) first[0][p] = p % 3 ? 0 : static_cast<std::uint8_t>(1 + p);
    for (std::uint32_t p = 0; p < 4; ++p) first[1][p] = 0xb0;
    f.record(0, "dev-0", first);
    for (std::uint64_t r = 1; r < 40; ++r) {
        std::vector<std::map<std::uint32_t, std::uint8_t>> delta(2);
        for (int k = 0; k < 6; ++k) {
            // Some pages written, some zeroed.
            delta[0][rng() % 64] = static_cast<std::uint8_t>(rng() % 4 ? 1 + rng() % 250 : 0);
        }
        f.record(r * 1000, "dev-" + std::to_string(r), delta);
    }
    f.save(dir.path / "raw.ckpt");
    const auto saved = machines(read_all(dir.path / "raw.ckpt"), 2);
    REQUIRE(saved.size() == 40);

    const ThinnedCheckpoints kept = thin_checkpoints(dir.path / "raw.ckpt", dir.path / "kept.zst", 40000, 8);
    CHECK(kept.icounts.size() == 8);
    CHECK(kept.icounts.front() == 0);
    CHECK(kept.icounts.back() == 39000);
    CHECK(kept.compressed_bytes == fs::file_size(dir.path / "kept.zst"));
    CHECK(kept.compressed_bytes < kept.raw_bytes / 4);

    zstd_decompress_file(dir.path / "kept.zst", dir.path / "kept.ckpt", kept.raw_bytes);
    const auto thinned = machines(read_all(dir.path / "kept.ckpt"), 2);
    REQUIRE(thinned.size() == kept.icounts.size());
    for (const auto& [icount, machine] : thinned) {
        INFO("checkpoint at " << icount);
        REQUIRE(saved.contains(icount));
        CHECK(machine == saved.at(icount));
    }
    // QEMU's own reader sees the same list, nothing unfinished.
    const CheckpointFile reread = read_checkpoint_file(dir.path / "kept.ckpt");
    CHECK(reread.checkpoints.size() == 8);
    CHECK_FALSE(reread.unfinished);
}

TEST_CASE("zstd files: bounded reads refuse more data than expected, and cut streams", "[checkpoints]") {
    Scratch dir;
    {
        ZstdFileWriter w(dir.path / "a.zst", 3);
        std::vector<std::uint8_t> data(1 << 20, 0x5a);
        w.write(data);
        w.finish();
    }
    CHECK(zstd_decompress_file(dir.path / "a.zst", dir.path / "a", 1 << 20) == (1u << 20));
    REQUIRE_THROWS_WITH(zstd_decompress_file(dir.path / "a.zst", dir.path / "b", (1 << 20) - 1),
                        ContainsSubstring("more than the"));
    const auto packed = read_all(dir.path / "a.zst");
    std::ofstream(dir.path / "cut.zst", std::ios::binary)
        .write(reinterpret_cast<const char*>(packed.data()), static_cast<std::streamsize>(packed.size() - 3));
    REQUIRE_THROWS_WITH(zstd_decompress_file(dir.path / "cut.zst", dir.path / "c", 1 << 20),
                        ContainsSubstring("cut.zst"));
}
