// Replays that cannot follow their recording must stop with an error that
// names the problem (docs/divergence.rst), never hang or run on silently;
// and a recording whose QEMU was killed replays up to its last chunk.
#include "record_replay.hh"
#include "process.hh"
#include "qemu.hh"
#include "scenarios.hh"
#include "util.hh"

#include "log_container.hh"
#include "replay_log.hh"

#include <catch2/catch_test_macros.hpp>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <thread>

using namespace qemu_rewind;
using namespace qemu_rewind::test;
using namespace std::chrono_literals;

namespace {

constexpr int kExitDiverged = 3;  // REWIND_EXIT_DIVERGED, replay/rewind-digest.h

std::vector<std::uint8_t> read_bytes(const std::string &path)
{
    std::ifstream in(path, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_bytes(const std::string &path, const std::vector<std::uint8_t> &bytes)
{
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// Records the boot scenario into dir/log.bin.
RunResult record_boot(const std::string &dir, const std::vector<std::string> &rr_options = {})
{
    std::filesystem::create_directories(dir + "/record");
    QemuConfig c = make_config(Scenario{"boot", "", {}}, RrMode::Record, dir + "/log.bin");
    c.rr_options = rr_options;
    return run_to_poweroff(c, dir + "/record", 600s);
}

// Rewrites the format 2 log at `path` with `edit` applied to the raw
// stream of the chunk that holds the middle instruction count: checksums
// stay right, so only the replay itself can notice.
void edit_log_middle(const std::string &path,
                     const std::function<void(std::vector<std::uint8_t> &, std::uint64_t)> &edit)
{
    const LogContainer log(path);
    REQUIRE(log.info().indexed);
    REQUIRE(log.info().chunks.size() >= 3);
    std::vector<LogChunkData> chunks;
    for (std::size_t i = 0; i < log.info().chunks.size(); ++i) {
        chunks.push_back({log.read_chunk(i), log.info().chunks[i].first_icount});
    }
    const std::size_t middle = log.chunk_for_icount(log.info().final_icount / 2);
    edit(chunks[middle].raw, log.info().chunks[middle].stream_offset);
    write_bytes(path, write_log_v2(chunks, log.info().replay_version, log.info().final_icount));
}

}  // namespace

TEST_CASE("divergence: a replay with another kernel command line stops at the first digest, "
          "naming the instructions and the CPU state",
          "[divergence]")
{
    TempDir dir("diverge-cmdline");
    RunResult rec = record_boot(dir.path());
    QemuConfig other = make_config(Scenario{"boot", "rewind.unused=1", {}}, RrMode::Replay,
                                   dir.path() + "/log.bin");
    std::string out = check_replay_fails(other, dir.path() + "/replay", {"replay diverged between"},
                                         kExitDiverged);
    CHECK((out.find("CPU 0 is elsewhere") != std::string::npos ||
           out.find("CPU 0 registers differ") != std::string::npos ||
           out.find("guest RAM differs") != std::string::npos));
}

TEST_CASE("divergence: a replay with another disk image stops with an error", "[divergence][disk]")
{
    TempDir dir("diverge-disk");
    std::filesystem::create_directories(dir.path() + "/a");
    std::filesystem::create_directories(dir.path() + "/b");
    RandomDisk recorded = make_random_disk(dir.path() + "/a");
    RandomDisk other = make_random_disk(dir.path() + "/b");
    REQUIRE(recorded.content != other.content);
    std::filesystem::create_directories(dir.path() + "/record");
    RunResult rec = run_to_poweroff(
        make_config(Scenario{"disk", "", disk_devices(recorded.qcow2)}, RrMode::Record, dir.path() + "/log.bin"),
        dir.path() + "/record", 600s);
    REQUIRE(rec.serial.find("REWIND-DONE") != std::string::npos);
    QemuConfig replay =
        make_config(Scenario{"disk", "", disk_devices(other.qcow2)}, RrMode::Replay, dir.path() + "/log.bin");
    check_replay_fails(replay, dir.path() + "/replay", {"replay diverged"}, kExitDiverged);
}

TEST_CASE("divergence: a flipped bit in the log is reported with its chunk", "[divergence]")
{
    TempDir dir("diverge-flip");
    record_boot(dir.path());
    const std::string log = dir.path() + "/log.bin";
    const LogContainer container(log);
    REQUIRE(container.info().chunks.size() >= 2);
    const LogChunkInfo chunk = container.info().chunks[1];
    auto bytes = read_bytes(log);
    bytes[chunk.file_offset + kLogV2ChunkHeaderSize + chunk.packed_size / 2] ^= 0x04;
    write_bytes(log, bytes);
    QemuConfig replay = make_config(Scenario{"boot", "", {}}, RrMode::Replay, log);
    check_replay_fails(replay, dir.path() + "/replay", {"is damaged", "checksum of chunk 1"}, 1);
}

TEST_CASE("divergence: a changed instruction count in the log, checksums intact, is caught by "
          "the replay",
          "[divergence]")
{
    TempDir dir("diverge-count");
    // Without digests, so that the stall watchdog or the serial output
    // check must catch it; with digests in a second recording.
    for (const bool digests : {false, true}) {
        const std::string sub = dir.path() + (digests ? "/digests" : "/plain");
        record_boot(sub, digests ? std::vector<std::string>{} : std::vector<std::string>{"rrdigest=0"});
        const std::string log = sub + "/log.bin";
        edit_log_middle(log, [](std::vector<std::uint8_t> &raw, std::uint64_t) {
            // The chunk's first event is an instruction count (almost
            // always); give the guest 5000 more instructions than it ran.
            REQUIRE(raw.size() > 5);
            if (raw[0] == code::kInstruction) {
                std::uint32_t n = std::uint32_t(raw[1]) << 24 | std::uint32_t(raw[2]) << 16 |
                                  std::uint32_t(raw[3]) << 8 | raw[4];
                n += 5000;
                for (int i = 0; i < 4; ++i) {
                    raw[1 + i] = static_cast<std::uint8_t>(n >> (24 - 8 * i));
                }
            } else {
                raw.insert(raw.begin(), {code::kInstruction, 0, 0, 0x13, 0x88});
            }
        });
        QemuConfig replay = make_config(Scenario{"boot", "", {}}, RrMode::Replay, log);
        replay.rr_options = {"rrstall=3"};
        check_replay_fails(replay, sub + "/replay", {"replay diverged"}, kExitDiverged);
    }
}

TEST_CASE("a recording killed with SIGKILL replays up to its last complete chunk, then pauses",
          "[divergence][killed]")
{
    TempDir dir("killed-record");
    const std::string log = dir.path() + "/log.bin";
    std::filesystem::create_directories(dir.path() + "/record");
    std::string recorded_serial;
    {
        QemuInstance q(make_config(Scenario{"boot", "", {}}, RrMode::Record, log), dir.path() + "/record");
        q.start();
        // Kill it once the guest has printed something, a second later
        // (so that a chunk holds the output).
        auto until = std::chrono::steady_clock::now() + scaled(120s);
        while (q.serial().empty() && std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(50ms);
        }
        std::this_thread::sleep_for(1500ms);
        REQUIRE_FALSE(q.exited());
        ::kill(q.pid(), SIGKILL);
        for (int i = 0; i < 100 && !q.exited(); ++i) {
            std::this_thread::sleep_for(20ms);
        }
        recorded_serial = q.serial();
    }
    ReaderOptions partial;
    partial.allow_unfinalized_header = true;
    ReplayLogReader reader(log, partial);
    REQUIRE(reader.container() != nullptr);
    CHECK_FALSE(reader.header().finalized);
    REQUIRE(reader.container()->chunks.size() >= 2);
    while (reader.next()) {
    }
    const std::uint64_t last = reader.icount();
    INFO("the log's complete chunks hold " << last << " instructions");
    CHECK(last > 0);

    std::filesystem::create_directories(dir.path() + "/replay");
    QemuInstance q(make_config(Scenario{"boot", "", {}}, RrMode::Replay, log), dir.path() + "/replay");
    q.start();
    auto deadline = std::chrono::steady_clock::now() + scaled(120s);
    bool paused = false;
    while (!paused && std::chrono::steady_clock::now() < deadline && !q.exited()) {
        paused = q.qmp().execute("query-status").value("status", "") == "paused";
        if (!paused) {
            std::this_thread::sleep_for(50ms);
        }
    }
    INFO(q.diagnostics());
    REQUIRE(paused);
    CHECK(q.icount() == last);
    CHECK(q.stderr_text().find("the recording did not finish") != std::string::npos);
    // What the replay printed is what the recording had printed by then.
    const std::string replayed = q.serial();
    CHECK(!replayed.empty());
    CHECK(recorded_serial.compare(0, replayed.size(), replayed) == 0);
}
