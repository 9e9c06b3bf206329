// Unit tests of the inspection library: recording info, event filters, the
// log clock, the pcap and usbmon writers, the checkpoint file reader and
// how a RECORDING argument is resolved. Logs are built in memory.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "checkpoint_file.hh"
#include "event_filter.hh"
#include "log_clock.hh"
#include "pcap_writer.hh"
#include "recording.hh"
#include "recording_info.hh"
#include "synthetic_log.hh"
#include "usbmon.hh"

using namespace qemu_rewind;
using qemu_rewind::testing::SyntheticLog;
using Bytes = std::vector<std::uint8_t>;
using Catch::Matchers::ContainsSubstring;

namespace {

std::vector<ReplayEvent> events_of(const SyntheticLog& log) {
    ReplayLogReader reader(log.bytes());
    std::vector<ReplayEvent> events;
    while (auto e = reader.next()) events.push_back(std::move(*e));
    return events;
}

std::uint64_t le(const Bytes& b, std::size_t at, std::size_t width) {
    std::uint64_t v = 0;
    for (std::size_t i = width; i-- > 0;) v = v << 8 | b.at(at + i);
    return v;
}

Bytes bytes_of(const std::string& s) { return Bytes(s.begin(), s.end()); }

struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "rewind-inspect-XXXXXX").string();
        REQUIRE(mkdtemp(tmpl.data()) != nullptr);
        path = tmpl;
    }
    ~TempDir() { std::filesystem::remove_all(path); }
};

void write_file(const std::filesystem::path& path, const Bytes& bytes) {
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

}  // namespace

TEST_CASE("recording info: devices, clocks, per-code counts and bytes", "[inspect]") {
    SyntheticLog log;
    log.clock(ClockKind::VirtualRt, 0)
        .clock(ClockKind::Host, 1'700'000'000'000'000'000)
        .instructions(1000)
        .char_read(0, bytes_of("root\n"))
        .char_read(2, bytes_of("x"))
        .char_output(0, bytes_of("login: "))
        .net(0, Bytes(60, 0xab))
        .net(0, Bytes(100, 0xcd))
        .block(7)
        .usb_open(0, 3, 9, 0x1209, 0x0001)
        .usb_submit(0, 0x81, 2, 512, 0)
        .usb_complete(0, 0x81, 0, 0, 13, bytes_of("USBS123456789"))
        .instructions(500)
        .clock(ClockKind::VirtualRt, 2'500'000'000)
        .clock(ClockKind::Host, 1'700'000'003'000'000'000)
        .end();
    ReplayLogReader reader(log.bytes());
    const RecordingInfo info = gather_recording_info(reader);

    CHECK(info.instructions == 1500);
    CHECK(info.has_end_event);
    CHECK(info.bytes == log.bytes().size());
    CHECK(info.first_host_ns == 1'700'000'000'000'000'000);
    CHECK(*info.last_host_ns - *info.first_host_ns == 3'000'000'000);
    CHECK(info.last_virtual_rt_ns == 2'500'000'000);

    REQUIRE(info.chardevs.size() == 2);
    CHECK(info.chardevs.at(0).read_bytes == 5);
    CHECK(info.chardevs.at(0).output_bytes == 7);
    CHECK(info.chardevs.at(2).output_bytes == 0);
    CHECK(info.chardevs.at(2).reads == 1);
    REQUIRE(info.net_filters.size() == 1);
    CHECK(info.net_filters.at(0).packets == 2);
    CHECK(info.net_filters.at(0).bytes == 160);
    CHECK(info.block_requests == 1);
    REQUIRE(info.usb_devices.size() == 1);
    const UsbDeviceUse& usb = info.usb_devices.at(0);
    CHECK(usb.opened);
    CHECK(usb.vendor == 0x1209);
    CHECK(usb.product == 0x0001);
    CHECK(usb.bus == 3);
    CHECK(usb.address == 9);
    CHECK(usb.submissions == 1);
    CHECK(usb.completions == 1);
    CHECK(usb.in_bytes == 13);

    // Each net event: code, filter, flags, length, packet.
    const auto net_code = code::kAsync + static_cast<int>(AsyncKind::Net);
    CHECK(info.code_counts[net_code] == 2);
    CHECK(info.code_bytes[net_code] == 2 * (1 + 1 + 4 + 4) + 160);
    CHECK(info.kind_count(EventKind::Instruction) == 2);
    CHECK(info.kind_bytes(EventKind::Instruction) == 10);
    std::uint64_t all_bytes = 0;
    for (const auto b : info.code_bytes) all_bytes += b;
    CHECK(all_bytes + kReplayHeaderSize == info.bytes);
}

TEST_CASE("event filter: names, icount range, device", "[inspect]") {
    CHECK(codes_named("net").count() == 1);
    CHECK(codes_named("ASYNC_EVENT_NET") == codes_named("net"));
    CHECK(codes_named("clock").count() == 2);  // CLOCK_HOST and CLOCK_VIRTUAL_RT
    CHECK(codes_named("clock-host").count() == 1);
    CHECK(codes_named("EVENT_USB").test(code::kUsb));
    CHECK_FALSE(codes_named("usb").test(code::kUsbAsync));
    CHECK_THROWS_AS(codes_named("nonsense"), EventFilterError);

    SyntheticLog log;
    log.char_read(1, bytes_of("a")).instructions(10).net(0, Bytes(60, 1)).instructions(10).char_read(0, bytes_of("b"))
        .usb_open(1, 1, 2, 1, 2).char_output(1, bytes_of("out")).end();
    const auto events = events_of(log);

    EventFilter by_kind;
    by_kind.add_kinds("char_read,usb_async");
    std::vector<std::uint64_t> offsets;
    for (const auto& e : events) if (by_kind.matches(e)) offsets.push_back(e.offset);
    CHECK(offsets.size() == 3);

    EventFilter by_device;
    by_device.device = 1;
    std::size_t n = 0;
    for (const auto& e : events) n += by_device.matches(e);
    CHECK(n == 3);  // chardev 1's input and output, usb-host device 1

    EventFilter range;
    range.from_icount = 10;
    range.to_icount = 10;
    std::vector<std::string> names;
    for (const auto& e : events) if (range.matches(e)) names.push_back(event_code_name(e.code));
    CHECK(names == std::vector<std::string>{"ASYNC_EVENT_NET", "EVENT_INSTRUCTION"});
    CHECK(range.past_end(events.back()));
}

TEST_CASE("log clock interpolates host clock reads in instructions", "[inspect]") {
    SyntheticLog log;
    log.clock(ClockKind::Host, 1000).instructions(100).clock(ClockKind::Host, 2000).clock(ClockKind::Host, 2500)
        .instructions(100).clock(ClockKind::Host, 4000).end();
    LogClock clock;
    for (const auto& e : events_of(log)) clock.observe(e);
    CHECK(clock.anchors() == 3);       // the second read at icount 100 is not an anchor
    CHECK(clock.wall_ns(0) == 1000);
    CHECK(clock.wall_ns(50) == 1500);
    CHECK(clock.wall_ns(100) == 2000);
    CHECK(clock.wall_ns(150) == 3000);
    CHECK(clock.wall_ns(1000) == 4000);  // after the last read: its time

    LogClock none;
    CHECK(none.wall_ns(12345) == 12345);
}

TEST_CASE("pcap writer: file header and records", "[inspect]") {
    std::ostringstream out;
    PcapWriter pcap(out, kLinktypeEthernet, 8);
    pcap.write(1'700'000'000'123'456'789, bytes_of("0123456789"));
    const std::string s = out.str();
    const Bytes b(s.begin(), s.end());
    REQUIRE(b.size() == 24 + 16 + 8);
    CHECK(le(b, 0, 4) == 0xa1b23c4d);
    CHECK(le(b, 4, 2) == 2);
    CHECK(le(b, 6, 2) == 4);
    CHECK(le(b, 16, 4) == 8);  // snaplen
    CHECK(le(b, 20, 4) == 1);  // Ethernet
    CHECK(le(b, 24, 4) == 1'700'000'000);
    CHECK(le(b, 28, 4) == 123'456'789);
    CHECK(le(b, 32, 4) == 8);   // captured: cut to the snaplen
    CHECK(le(b, 36, 4) == 10);  // on the wire
    CHECK(s.substr(40) == "01234567");
}

TEST_CASE("usbmon: submission and completion records from usb-host events", "[inspect]") {
    const std::vector<UsbIsoPacket> iso = {{0, 3}, {4, 0}, {0, 2}};
    SyntheticLog log;
    log.usb_open(0, 2, 7, 0x1209, 1)
        .usb_submit(0, 0x81, 2, 512, 5)           // bulk IN
        .usb_complete(0, 0x81, 5, 0, 13, bytes_of("USBS123456789"))
        .usb_submit(0, 0x02, 2, 31, 9)            // bulk OUT
        .usb_complete(0, 0x02, 9, 4, 0, {})       // stalled
        .usb_submit(0, 0, 0, 8 + 18, 0)           // control: no 'S' record
        .usb_complete(0, 0, 0, 0, 18, Bytes(18, 0x12))
        .usb_submit(0, 0x83, 1, 30, 1)            // isochronous IN
        .usb_complete(0, 0x83, 1, 0, 5, bytes_of("abcde"), iso)
        .end();
    UsbmonConverter usbmon;
    std::vector<UsbmonRecord> records;
    for (const auto& e : events_of(log)) {
        for (auto& r : usbmon.convert(e, 1'000'000'002'500'000)) records.push_back(std::move(r));
    }
    REQUIRE(records.size() == 7);
    const Bytes& submit = records[0].bytes;
    REQUIRE(submit.size() == kUsbmonHeaderSize);
    CHECK(submit[8] == 'S');
    CHECK(submit[9] == 3);       // bulk
    CHECK(submit[10] == 0x81);
    CHECK(submit[11] == 7);      // device address
    CHECK(le(submit, 12, 2) == 2);  // bus
    CHECK(le(submit, 16, 8) == 1'000'000);
    CHECK(le(submit, 24, 4) == 2'500);
    CHECK(static_cast<std::int32_t>(le(submit, 28, 4)) == -EINPROGRESS);
    CHECK(le(submit, 32, 4) == 512);
    CHECK(le(submit, 36, 4) == 0);

    const Bytes& complete = records[1].bytes;
    CHECK(complete[8] == 'C');
    CHECK(le(complete, 0, 8) == le(submit, 0, 8));  // same URB id
    CHECK(le(complete, 32, 4) == 13);
    CHECK(le(complete, 36, 4) == 13);
    CHECK(complete[15] == 0);  // data present
    CHECK(std::string(complete.begin() + 64, complete.end()) == "USBS123456789");

    CHECK(records[2].bytes[10] == 0x02);
    CHECK(records[2].bytes[15] == '>');  // OUT data is not in the log
    CHECK(static_cast<std::int32_t>(le(records[3].bytes, 28, 4)) == -EPIPE);

    const Bytes& control = records[4].bytes;
    CHECK(control[8] == 'C');
    CHECK(control[9] == 2);
    CHECK(control[10] == 0x80);  // returned data: IN
    CHECK(le(control, 36, 4) == 18);

    const Bytes& iso_complete = records[6].bytes;
    CHECK(iso_complete[9] == 0);  // isochronous
    CHECK(le(iso_complete, 60, 4) == 3);  // ndesc
    CHECK(le(iso_complete, 40, 4) == 1);  // error count
    REQUIRE(iso_complete.size() == 64 + 3 * 16 + 5);
    CHECK(le(iso_complete, 64 + 16 + 4, 4) == 3);   // second packet starts after the first's 3 bytes
    CHECK(static_cast<std::int32_t>(le(iso_complete, 64 + 16, 4)) == -EPIPE);
    CHECK(le(iso_complete, 64 + 32 + 4, 4) == 3);
    CHECK(le(iso_complete, 64 + 32 + 8, 4) == 2);
    CHECK(std::string(iso_complete.end() - 5, iso_complete.end()) == "abcde");
    CHECK(usbmon.unmatched_completions() == 0);
}

namespace {

// A checkpoint file as replay/rewind-persist.c writes it (little-endian).
Bytes checkpoint_file(const std::vector<std::uint64_t>& icounts, bool unfinished_tail) {
    Bytes b;
    const auto put = [&b](std::uint64_t v, int width) {
        for (int i = 0; i < width; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
    };
    for (const char c : std::string("QRWCKPT1")) b.push_back(static_cast<std::uint8_t>(c));
    put(4096, 4);
    put(1, 4);       // one RAM block
    put(32768, 8);   // pages
    put(6, 2);
    for (const char c : std::string("pc.ram")) b.push_back(static_cast<std::uint8_t>(c));
    b.resize(4096);
    for (const auto icount : icounts) {
        const auto start = b.size();
        put(0x3143455243575251ULL, 8);
        put(icount, 8);
        put(100, 8);
        put(8192, 8);
        b.resize(start + 8192);
    }
    if (unfinished_tail) {
        put(0x3143455243575251ULL, 8);
        put(999, 8);
        put(100, 8);
        put(0, 8);  // size not filled in yet
    }
    return b;
}

}  // namespace

TEST_CASE("checkpoint file: record headers, unfinished tail, damage", "[inspect]") {
    const Bytes good = checkpoint_file({0, 5000, 9000}, true);
    std::istringstream in(std::string(good.begin(), good.end()));
    const CheckpointFile file = read_checkpoint_file(in, good.size());
    CHECK(file.page_size == 4096);
    REQUIRE(file.ram_blocks.size() == 1);
    CHECK(file.ram_blocks[0].id == "pc.ram");
    CHECK(file.ram_blocks[0].pages == 32768);
    REQUIRE(file.checkpoints.size() == 3);
    CHECK(file.checkpoints[1].icount == 5000);
    CHECK(file.checkpoints[1].offset == 4096 + 8192);
    CHECK(file.unfinished.has_value());

    Bytes foreign = good;
    foreign[0] = 'X';
    std::istringstream bad(std::string(foreign.begin(), foreign.end()));
    CHECK_THROWS_WITH(read_checkpoint_file(bad, foreign.size()), ContainsSubstring("not a QEMU Rewind checkpoint"));

    const Bytes cut(good.begin(), good.begin() + 20);
    std::istringstream short_in(std::string(cut.begin(), cut.end()));
    CHECK_THROWS_AS(read_checkpoint_file(short_in, cut.size()), CheckpointFileError);
}

TEST_CASE("a RECORDING argument: log file, directory, missing", "[inspect]") {
    TempDir dir;
    const Bytes log = SyntheticLog().end().bytes();
    write_file(dir.path / "run.log", log);
    write_file(dir.path / "run.log.ckpt", checkpoint_file({0}, false));
    const RecordingPaths file = locate_recording(dir.path / "run.log");
    CHECK(file.log == dir.path / "run.log");
    CHECK(file.checkpoints == dir.path / "run.log.ckpt");
    CHECK_FALSE(file.manifest);

    std::filesystem::create_directory(dir.path / "plain");
    CHECK_THROWS_WITH(locate_recording(dir.path / "plain"), ContainsSubstring("without a replay.log"));
    write_file(dir.path / "plain" / "replay.log", log);
    CHECK(locate_recording(dir.path / "plain").log == dir.path / "plain" / "replay.log");
    CHECK_THROWS_AS(locate_recording(dir.path / "missing"), RecordingError);
}

TEST_CASE("a RECORDING argument: bundle directory", "[inspect]") {
    TempDir dir;
    const auto bundle = dir.path / "run.rewind";
    std::filesystem::create_directory(bundle);
    write_file(bundle / "replay.log", SyntheticLog().end().bytes());
    Manifest manifest;
    manifest.host = "qa-box";
    manifest.icount = 42;
    write_manifest(bundle, manifest);
    const RecordingPaths paths = locate_recording(bundle);
    CHECK(paths.log == bundle / "replay.log");
    CHECK(paths.directory == bundle);
    REQUIRE(paths.manifest);
    CHECK(paths.manifest->host == "qa-box");
    CHECK_FALSE(paths.checkpoints);

    // A manifest that is not one is an error, not a bare directory.
    write_file(bundle / "manifest.json", bytes_of("{\"format\": \"something else\"}"));
    CHECK_THROWS_AS(locate_recording(bundle), BundleError);
}
