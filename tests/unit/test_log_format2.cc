// Unit tests of log format 2 (rewind/lib/log_container.hh): files built in
// memory the way replay/rewind-log.c writes them, read back through
// ReplayLogReader; plus the digest and chardev-output events.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "log_container.hh"
#include "replay_log.hh"

using namespace qemu_rewind;
using Catch::Matchers::ContainsSubstring;
using ErrorKind = ReplayLogError::Kind;

namespace {

using Bytes = std::vector<std::uint8_t>;

void be32(Bytes& b, std::uint32_t v) {
    for (int i = 3; i >= 0; --i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
void be64(Bytes& b, std::uint64_t v) {
    be32(b, static_cast<std::uint32_t>(v >> 32));
    be32(b, static_cast<std::uint32_t>(v));
}

// One event stream (upstream's encoding) cut into chunks at event starts.
struct Stream {
    std::vector<Bytes> chunks{{}};
    std::vector<std::uint64_t> chunk_icounts{0};
    std::uint64_t icount = 0;

    Bytes& cur() { return chunks.back(); }
    void cut() {
        chunks.emplace_back();
        chunk_icounts.push_back(icount);
    }
    void instructions(std::uint32_t n) {
        cur().push_back(code::kInstruction);
        be32(cur(), n);
        icount += n;
    }
    void clock(std::int64_t value) {
        cur().push_back(code::kClock);
        be64(cur(), static_cast<std::uint64_t>(value));
    }
    // Version 2 carries two device sections; version 1 none.
    void digest(std::uint32_t seq, std::uint64_t pc, std::uint8_t version = kDigestVersion) {
        cur().push_back(code::kDigest);
        cur().push_back(version);
        be32(cur(), seq);
        cur().push_back(1);
        be32(cur(), 1);
        be64(cur(), pc);
        be64(cur(), 0x1000);
        be32(cur(), 0xabcd);
        be32(cur(), 0x1234);
        if (version >= 2) {
            be32(cur(), 2);
            for (std::uint32_t v : {0x11u, 0x22u, 0x33u, 0x44u}) {
                be32(cur(), v);
            }
        }
    }
    void output(std::uint8_t chardev, const std::string& text) {
        cur().push_back(code::kCharOutput);
        cur().push_back(chardev);
        be32(cur(), static_cast<std::uint32_t>(text.size()));
        cur().insert(cur().end(), text.begin(), text.end());
    }
    void end() { cur().push_back(code::kEnd); }
};

// What replay/rewind-log.c writes for `s`; without the index and trailer
// when `finished` is false (a killed recording).
Bytes write_v2(const Stream& s, bool finished = true) {
    std::vector<LogChunkData> chunks;
    for (std::size_t i = 0; i < s.chunks.size(); ++i) {
        chunks.push_back({s.chunks[i], s.chunk_icounts[i]});
    }
    return write_log_v2(chunks, kReplayVersion, s.icount, finished);
}

TEST_CASE("the format 2 writer lays out header, chunk headers and trailer as QEMU does", "[format2]") {
    const Bytes f = write_v2(Stream{}, true);
    REQUIRE(f.size() == kLogV2HeaderSize + kLogV2ChunkHeaderSize + 9 + (28 + 24) + kLogV2TrailerSize);
    CHECK(std::string(f.begin(), f.begin() + 8) == "QEMURWLG");
    CHECK(f[8] == 2);
    CHECK(std::string(f.begin() + 32, f.begin() + 36) == "RWCK");
    CHECK(std::string(f.end() - 24, f.end() - 16) == "QRWLGEND");
}

Stream three_chunks() {
    Stream s;
    s.instructions(100);
    s.clock(5);
    s.cut();
    s.instructions(200);
    s.digest(0, 0xffffffff81000000);
    s.output(0, "hello\n");
    s.cut();
    s.instructions(300);
    s.end();
    return s;
}

std::vector<ReplayEvent> read_all(ReplayLogReader& reader) {
    std::vector<ReplayEvent> events;
    while (auto e = reader.next()) {
        events.push_back(*e);
    }
    return events;
}

}  // namespace

TEST_CASE("crc32c is CRC-32C (Castagnoli)", "[format2]") {
    const std::string check = "123456789";
    CHECK(crc32c(std::span(reinterpret_cast<const std::uint8_t*>(check.data()), check.size())) == 0xe3069283u);
}

TEST_CASE("a finished format 2 log reads like the raw stream, with its index", "[format2]") {
    const Stream s = three_chunks();
    ReplayLogReader reader(write_v2(s));
    CHECK(reader.header().format == 2);
    CHECK(reader.header().finalized);
    CHECK(reader.header().version == kReplayVersion);
    REQUIRE(reader.container() != nullptr);
    CHECK(reader.container()->indexed);
    CHECK(reader.container()->chunks.size() == 3);
    CHECK(reader.container()->final_icount == 600);

    const auto events = read_all(reader);
    REQUIRE(events.size() == 7);
    // Stream offsets are those of the raw format: the second chunk's first
    // event follows the 12-byte header and the first chunk's 14 bytes.
    CHECK(events[0].offset == 12);
    CHECK(events[2].offset == 12 + 14);
    CHECK(events[2].icount == 100);
    const auto* digest = std::get_if<DigestPayload>(&events[3].payload);
    REQUIRE(digest != nullptr);
    CHECK(digest->cpus.size() == 1);
    CHECK(digest->cpus[0].pc == 0xffffffff81000000);
    CHECK(digest->has_ram);
    CHECK(digest->ram_hash == 0x1234);
    REQUIRE(digest->devices.size() == 2);
    CHECK(digest->devices[1].name == 0x33);
    CHECK(digest->devices[1].state == 0x44);
    const auto* output = std::get_if<CharOutputPayload>(&events[4].payload);
    REQUIRE(output != nullptr);
    CHECK(std::string(output->data.begin(), output->data.end()) == "hello\n");
    CHECK(events[6].kind == EventKind::End);
    CHECK(reader.icount() == 600);
    CHECK(reader.saw_end_event());
}

TEST_CASE("digests of version 1 (no device sections) are still read", "[format2]") {
    Stream s;
    s.instructions(100);
    s.digest(0, 0xffffffff81000000, 1);
    s.digest(1, 0xffffffff81000010, 3);
    s.end();
    ReplayLogReader reader(write_v2(s));
    auto first = reader.next();
    first = reader.next();
    REQUIRE(first);
    const auto* digest = std::get_if<DigestPayload>(&first->payload);
    REQUIRE(digest != nullptr);
    CHECK(digest->version == 1);
    CHECK(digest->devices.empty());
    CHECK(digest->ram_hash == 0x1234);
    // A version this reader does not know is an error, not a guess.
    CHECK_THROWS(reader.next());
}

TEST_CASE("seek_near_icount starts at the chunk that holds an instruction count", "[format2]") {
    ReplayLogReader reader(write_v2(three_chunks()));
    CHECK(reader.seek_near_icount(350));
    auto e = reader.next();
    REQUIRE(e);
    CHECK(e->icount == 300);
    CHECK(e->kind == EventKind::Instruction);
    // header, chunks 0 and 1 (a version 2 digest of 1 CPU and 2 devices: 55)
    CHECK(e->offset == 12 + 14 + 5 + 55 + 12);
}

TEST_CASE("a killed recording's log has no index and reads up to its last complete chunk", "[format2]") {
    Stream s = three_chunks();
    Bytes file = write_v2(s, false);
    // QEMU was killed while writing the third chunk.
    file.resize(file.size() - 5);

    const auto error = [&] {
        try {
            ReplayLogReader reader(file);
        } catch (const ReplayLogError& e) {
            return e;
        }
        FAIL("no error");
        throw;
    }();
    CHECK(error.kind() == ErrorKind::UnfinalizedHeader);
    CHECK_THAT(error.what(), ContainsSubstring("did not finish"));
    CHECK_THAT(error.what(), ContainsSubstring("2 complete chunks"));

    ReaderOptions options;
    options.allow_unfinalized_header = true;
    ReplayLogReader reader(file, options);
    CHECK_FALSE(reader.header().finalized);
    CHECK(reader.container()->chunks.size() == 2);
    CHECK(reader.container()->unreadable_tail > 0);
    const auto events = read_all(reader);
    CHECK(events.size() == 5);
    CHECK(reader.icount() == 300);
    CHECK_FALSE(reader.saw_end_event());
}

TEST_CASE("a flipped byte in a chunk is reported with the chunk, never read as events", "[format2][errors]") {
    Bytes file = write_v2(three_chunks());
    const LogContainer container(file);
    const auto& chunk = container.info().chunks[1];
    file[chunk.file_offset + kLogV2ChunkHeaderSize + chunk.packed_size / 2] ^= 0x10;
    ReplayLogReader reader(file);
    try {
        read_all(reader);
        FAIL("no error");
    } catch (const ReplayLogError& e) {
        CHECK(e.kind() == ErrorKind::Corrupt);
        CHECK_THAT(e.what(), ContainsSubstring("checksum of chunk 1"));
    }
}

TEST_CASE("a damaged index or chunk header is an error naming it", "[format2][errors]") {
    const Bytes good = write_v2(three_chunks());
    SECTION("index entry pointing elsewhere") {
        Bytes file = good;
        const LogContainer container(good);
        // The trailer's index offset is right; damage the first entry's file offset
        // and fix the index checksum so that only the entry is wrong.
        const std::size_t index_at = good.size() - kLogV2TrailerSize - (24 + 3 * 24 + 4);
        file[index_at + 24] ^= 1;
        Bytes ix(file.begin() + static_cast<std::ptrdiff_t>(index_at), file.end() - kLogV2TrailerSize - 4);
        const std::uint32_t crc = crc32c(ix);
        for (int i = 0; i < 4; ++i) file[file.size() - kLogV2TrailerSize - 4 + i] = static_cast<std::uint8_t>(crc >> (8 * i));
        CHECK_THROWS_AS(ReplayLogReader(file), ReplayLogError);
    }
    SECTION("foreign file") {
        Bytes file = {'Q', 'E', 'M', 'U', 'R', 'W', 'L', 'G', 9, 0, 0, 0};
        file.resize(64);
        try {
            ReplayLogReader reader(file);
            FAIL("no error");
        } catch (const ReplayLogError& e) {
            CHECK(e.kind() == ErrorKind::WrongVersion);
            CHECK_THAT(e.what(), ContainsSubstring("format 9"));
        }
    }
}
