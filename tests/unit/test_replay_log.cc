// Unit tests for rewind::ReplayLogReader, using logs built in memory by
// log_writer.hh.
#include <catch2/catch_test_macros.hpp>
#include <catch2/matchers/catch_matchers_string.hpp>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "log_writer.hh"
#include "replay_log.hh"

using namespace qemu_rewind;
using Catch::Matchers::ContainsSubstring;
using Catch::Matchers::StartsWith;
using ErrorKind = ReplayLogError::Kind;
using qemu_rewind::testing::LogWriter;

namespace {

using Bytes = std::vector<std::uint8_t>;

std::vector<ReplayEvent> read_all(Bytes bytes, ReaderOptions options = {}) {
    ReplayLogReader reader(std::move(bytes), options);
    std::vector<ReplayEvent> events;
    while (auto event = reader.next()) {
        events.push_back(std::move(*event));
    }
    return events;
}

ReplayEvent read_single(const LogWriter& log) {
    auto events = read_all(log.bytes());
    REQUIRE(events.size() == 1);
    return events.front();
}

ReplayLogError expect_error(Bytes bytes, ReaderOptions options = {}) {
    try {
        ReplayLogReader reader(std::move(bytes), options);
        while (reader.next()) {
        }
    } catch (const ReplayLogError& error) {
        return error;
    }
    FAIL("expected a ReplayLogError");
    throw std::logic_error("unreachable");
}

Bytes text_bytes(std::string_view text) { return Bytes(text.begin(), text.end()); }

// One sample of every event shape, with the name the truncation message
// must mention.
struct Sample {
    std::string name;
    LogWriter log;
};

std::vector<Sample> one_of_each_event() {
    std::vector<Sample> samples;
    const auto add = [&samples](std::string name, auto write) {
        LogWriter log;
        write(log);
        samples.push_back({std::move(name), std::move(log)});
    };
    const Bytes payload = {1, 2, 3};
    const std::vector<AudioSample> audio = {{1, 2}, {3, 4}};
    add("EVENT_INSTRUCTION", [](LogWriter& w) { w.instructions(5); });
    add("EVENT_ASYNC (ASYNC_EVENT_BH)", [](LogWriter& w) { w.async_with_id(AsyncKind::Bh, 7); });
    add("EVENT_ASYNC (ASYNC_EVENT_BH_ONESHOT)",
        [](LogWriter& w) { w.async_with_id(AsyncKind::BhOneshot, 7); });
    add("EVENT_ASYNC (ASYNC_EVENT_BLOCK)", [](LogWriter& w) { w.async_with_id(AsyncKind::Block, 7); });
    add("EVENT_ASYNC (ASYNC_EVENT_INPUT)", [](LogWriter& w) { w.input_key_number(30, true); });
    add("EVENT_ASYNC (ASYNC_EVENT_INPUT)", [](LogWriter& w) { w.input_key_qcode(17, false); });
    add("EVENT_ASYNC (ASYNC_EVENT_INPUT)", [](LogWriter& w) { w.input_btn(2, true); });
    add("EVENT_ASYNC (ASYNC_EVENT_INPUT)", [](LogWriter& w) { w.input_move(false, 1, -3); });
    add("EVENT_ASYNC (ASYNC_EVENT_INPUT)", [](LogWriter& w) { w.input_mtt(1, 2, 3, 0, 4); });
    add("EVENT_ASYNC (ASYNC_EVENT_CHAR_READ)", [&](LogWriter& w) { w.char_read(0, payload); });
    add("EVENT_ASYNC (ASYNC_EVENT_NET)", [&](LogWriter& w) { w.net_packet(0, 1, payload); });
    add("EVENT_CHAR_WRITE", [](LogWriter& w) { w.char_write(1, 0); });
    add("EVENT_CHAR_READ_ALL", [&](LogWriter& w) { w.char_read_all(payload); });
    add("EVENT_CHAR_READ_ALL_ERROR", [](LogWriter& w) { w.char_read_all_error(-5); });
    add("EVENT_AUDIO_OUT", [](LogWriter& w) { w.audio_out(64); });
    add("EVENT_AUDIO_IN", [&](LogWriter& w) { w.audio_in(9, audio); });
    add("EVENT_RANDOM", [&](LogWriter& w) { w.random(0, payload); });
    add("EVENT_CLOCK (CLOCK_HOST)", [](LogWriter& w) { w.save_clock(ClockKind::Host, 1); });
    add("EVENT_CLOCK (CLOCK_VIRTUAL_RT)", [](LogWriter& w) { w.save_clock(ClockKind::VirtualRt, 1); });
    // USB events name their sub-kind once it is read: every cut starts with the kind.
    add("EVENT_USB_ASYNC", [&](LogWriter& w) { w.usb_open(0, 1, 2, 3, payload, Bytes(18, 1), {payload}); });
    add("EVENT_USB_ASYNC", [](LogWriter& w) { w.usb_close(1); });
    add("EVENT_USB_ASYNC", [&](LogWriter& w) {
        const std::vector<UsbIsoPacket> packets = {{0, 3}};
        w.usb_complete(0, 0x81, 4, 0, 3, payload, packets);
    });
    add("EVENT_USB", [](LogWriter& w) { w.usb_submit(0, 0x02, 3, 31, 0, 7); });
    add("EVENT_USB", [&](LogWriter& w) { w.usb_call(UsbCall::String, 0, 2, 32, 3, 0, payload); });
    return samples;
}

}  // namespace

// ---------------------------------------------------------------------------
// Header

TEST_CASE("a header without events is an empty log", "[header]") {
    LogWriter log;
    ReplayLogReader reader(log.bytes());
    CHECK(reader.header().version == 0xe0200c);
    CHECK(reader.header().reserved == 0);
    CHECK(reader.header().finalized);
    CHECK(reader.size() == 12);
    CHECK_FALSE(reader.next().has_value());
    CHECK_FALSE(reader.next().has_value());  // stays at the end
    CHECK(reader.icount() == 0);
    CHECK_FALSE(reader.saw_end_event());
}

TEST_CASE("foreign files are not replay logs", "[header][errors]") {
    SECTION("ELF binary") {
        Bytes elf = {0x7f, 'E', 'L', 'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0};
        const auto error = expect_error(elf);
        CHECK(error.kind() == ErrorKind::NotReplayLog);
        CHECK(error.offset() == 0);
        CHECK_THAT(error.what(), StartsWith("not a QEMU replay log"));
        CHECK_THAT(error.what(), ContainsSubstring("0x7f454c46"));
    }
    SECTION("text file") {
        const auto error = expect_error(text_bytes("hello, this is plain text\n"));
        CHECK(error.kind() == ErrorKind::NotReplayLog);
        CHECK_THAT(error.what(), StartsWith("not a QEMU replay log"));
    }
    SECTION("shorter than the header") {
        for (std::size_t size = 0; size < 12; ++size) {
            CAPTURE(size);
            Bytes bytes = LogWriter().bytes();
            bytes.resize(size);
            const auto error = expect_error(bytes);
            CHECK(error.kind() == ErrorKind::NotReplayLog);
            CHECK_THAT(error.what(),
                       ContainsSubstring(std::to_string(size) + " bytes is shorter than the 12-byte header"));
        }
    }
}

TEST_CASE("a replay log of another version is rejected with both versions", "[header][errors]") {
    LogWriter log(0xe0200b);
    log.instructions(1);
    const auto error = expect_error(log.bytes());
    CHECK(error.kind() == ErrorKind::WrongVersion);
    CHECK(error.offset() == 0);
    CHECK(std::string(error.what()) == "replay log version 0xe0200b, expected 0xe0200c");
}

TEST_CASE("an all-zero version means the recording was not finalized", "[header][errors]") {
    LogWriter log(0);
    log.instructions(10);
    log.save_clock(ClockKind::Host, 99);

    const auto error = expect_error(log.bytes());
    CHECK(error.kind() == ErrorKind::UnfinalizedHeader);
    CHECK_THAT(error.what(), ContainsSubstring("not finalized"));

    ReplayLogReader reader(log.bytes(), {.allow_unfinalized_header = true});
    CHECK(reader.header().version == 0);
    CHECK_FALSE(reader.header().finalized);
    auto first = reader.next();
    REQUIRE(first);
    CHECK(first->kind == EventKind::Instruction);
    auto second = reader.next();
    REQUIRE(second);
    CHECK(second->icount == 10);
    CHECK_FALSE(reader.next());
}

// ---------------------------------------------------------------------------
// Event codes and names

TEST_CASE("code ranges match enum ReplayEvents of QEMU 10.0", "[codes]") {
    // 7 async kinds, 11 shutdown causes + SHUTDOWN_CAUSE__MAX, 2 clocks, 9 checkpoints.
    CHECK(event_code_name(3) == "ASYNC_EVENT_BH");
    CHECK(event_code_name(9) == "ASYNC_EVENT_NET");
    CHECK(event_code_name(10) == "SHUTDOWN_CAUSE_NONE");
    CHECK(event_code_name(14) == "SHUTDOWN_CAUSE_HOST_SIGNAL");
    CHECK(event_code_name(20) == "SHUTDOWN_CAUSE_SNAPSHOT_LOAD");
    CHECK(event_code_name(21) == "SHUTDOWN_CAUSE_11");
    CHECK(event_code_name(22) == "EVENT_CHAR_WRITE");
    CHECK(event_code_name(27) == "EVENT_RANDOM");
    CHECK(event_code_name(28) == "CLOCK_HOST");
    CHECK(event_code_name(29) == "CLOCK_VIRTUAL_RT");
    CHECK(event_code_name(30) == "CHECKPOINT_CLOCK_WARP_START");
    CHECK(event_code_name(37) == "CHECKPOINT_INIT");
    CHECK(event_code_name(38) == "CHECKPOINT_RESET");
    CHECK(event_code_name(39) == "EVENT_END");
    // QEMU Rewind's usb-host records follow EVENT_END.
    CHECK(event_code_name(40) == "EVENT_USB_ASYNC");
    CHECK(event_code_name(41) == "EVENT_USB");
    CHECK(event_kind_of(40) == EventKind::UsbAsync);
    CHECK(event_kind_of(41) == EventKind::Usb);
    CHECK(event_code_name(44) == "UNKNOWN_EVENT_44");
    for (int c = 0; c < code::kCount; ++c) {
        CAPTURE(c);
        CHECK(event_kind_of(static_cast<std::uint8_t>(c)).has_value());
    }
    for (int c = code::kCount; c < 256; ++c) {
        CAPTURE(c);
        CHECK_FALSE(event_kind_of(static_cast<std::uint8_t>(c)).has_value());
    }
}

// ---------------------------------------------------------------------------
// Decoding each event kind

TEST_CASE("EVENT_INSTRUCTION carries the instruction delta", "[decode]") {
    LogWriter log;
    log.instructions(0x12345678);
    const auto event = read_single(log);
    CHECK(event.offset == 12);
    CHECK(event.size == 5);
    CHECK(event.code == 0);
    CHECK(event.kind == EventKind::Instruction);
    CHECK(event.icount == 0);
    CHECK(std::get<InstructionPayload>(event.payload).count == 0x12345678);
    CHECK(describe_fields(event) == "count=305419896 icount_after=305419896");
}

TEST_CASE("payload-less events: interrupt, exception, shutdown, checkpoint, end", "[decode]") {
    LogWriter log;
    log.interrupt();
    log.exception();
    for (ShutdownCause cause = 0; cause <= kShutdownCauseCount; ++cause) {
        log.shutdown_request(cause);
    }
    for (int cp = 0; cp <= static_cast<int>(Checkpoint::Reset); ++cp) {
        log.checkpoint(static_cast<Checkpoint>(cp));
    }
    log.end();

    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 2 + 12 + 9 + 1);
    CHECK(events[0].kind == EventKind::Interrupt);
    CHECK(events[1].kind == EventKind::Exception);
    for (std::size_t i = 0; i < 12; ++i) {
        const auto& event = events[2 + i];
        CHECK(event.kind == EventKind::Shutdown);
        CHECK(event.shutdown_cause() == static_cast<ShutdownCause>(i));
        CHECK(event.code == code::kShutdown + i);
    }
    CHECK(event_code_name(events[2 + 4].code) == "SHUTDOWN_CAUSE_HOST_SIGNAL");
    for (std::size_t i = 0; i < 9; ++i) {
        const auto& event = events[14 + i];
        CHECK(event.kind == EventKind::Checkpoint);
        CHECK(event.checkpoint() == static_cast<Checkpoint>(i));
        CHECK_FALSE(event.clock_kind().has_value());
    }
    CHECK(events[14 + 7].checkpoint() == Checkpoint::Init);
    CHECK(events.back().kind == EventKind::End);
    for (const auto& event : events) {
        CHECK(event.size == 1);
        CHECK(std::holds_alternative<std::monostate>(event.payload));
    }
}

TEST_CASE("EVENT_CLOCK: clock kind from the code, signed 64-bit value", "[decode]") {
    LogWriter log;
    log.save_clock(ClockKind::Host, 1'700'000'000'123'456'789);
    log.save_clock(ClockKind::VirtualRt, -42);
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 2);
    CHECK(events[0].code == 28);
    CHECK(events[0].clock_kind() == ClockKind::Host);
    CHECK(std::get<ClockPayload>(events[0].payload).value == 1'700'000'000'123'456'789);
    CHECK(events[0].size == 9);
    CHECK(events[1].code == 29);
    CHECK(events[1].clock_kind() == ClockKind::VirtualRt);
    CHECK(std::get<ClockPayload>(events[1].payload).value == -42);
}

TEST_CASE("async events with an id: BH, BH_ONESHOT, BLOCK", "[decode][async]") {
    LogWriter log;
    log.async_with_id(AsyncKind::Bh, 1000);
    log.async_with_id(AsyncKind::BhOneshot, 0xfedcba9876543210ULL);
    log.async_with_id(AsyncKind::Block, 3);
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 3);
    CHECK(events[0].async_kind() == AsyncKind::Bh);
    CHECK(std::get<AsyncIdPayload>(events[0].payload).id == 1000);
    CHECK(events[1].async_kind() == AsyncKind::BhOneshot);
    CHECK(std::get<AsyncIdPayload>(events[1].payload).id == 0xfedcba9876543210ULL);
    CHECK(events[2].async_kind() == AsyncKind::Block);
    CHECK(std::get<AsyncIdPayload>(events[2].payload).id == 3);
    CHECK(events[2].code == 8);
    for (const auto& event : events) {
        CHECK(event.kind == EventKind::Async);
        CHECK(event.size == 9);
    }
}

TEST_CASE("ASYNC_EVENT_INPUT decodes every InputEventKind", "[decode][async][input]") {
    LogWriter log;
    log.input_key_number(-7, true);
    log.input_key_qcode(0x1e, false);
    log.input_btn(4, true);
    log.input_move(false, 0, -120);
    log.input_move(true, 1, 32767);
    log.input_mtt(2, 5, 77, 1, 1234);
    log.async(AsyncKind::InputSync);

    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 7);

    const auto& key_number = std::get<InputPayload>(events[0].payload);
    CHECK(key_number.type == InputKind::Key);
    CHECK(key_number.key_kind == KeyValueKind::Number);
    CHECK(key_number.key_number == -7);
    CHECK(key_number.down);
    CHECK(events[0].size == 1 + 4 + 4 + 8 + 1);

    const auto& key_qcode = std::get<InputPayload>(events[1].payload);
    CHECK(key_qcode.key_kind == KeyValueKind::Qcode);
    CHECK(key_qcode.qcode == 0x1e);
    CHECK_FALSE(key_qcode.down);
    CHECK(events[1].size == 1 + 4 + 4 + 4 + 1);
    CHECK(describe_fields(events[1]) == "type=key qcode=30 down=0");

    const auto& btn = std::get<InputPayload>(events[2].payload);
    CHECK(btn.type == InputKind::Btn);
    CHECK(btn.button == 4);
    CHECK(btn.down);
    CHECK(describe_fields(events[2]) == "type=btn button=wheel-down down=1");

    const auto& rel = std::get<InputPayload>(events[3].payload);
    CHECK(rel.type == InputKind::Rel);
    CHECK(rel.axis == 0);
    CHECK(rel.value == -120);

    const auto& abs = std::get<InputPayload>(events[4].payload);
    CHECK(abs.type == InputKind::Abs);
    CHECK(abs.axis == 1);
    CHECK(abs.value == 32767);
    CHECK(events[4].size == 1 + 4 + 4 + 8);

    const auto& mtt = std::get<InputPayload>(events[5].payload);
    CHECK(mtt.type == InputKind::Mtt);
    CHECK(mtt.mtt_type == 2);
    CHECK(mtt.slot == 5);
    CHECK(mtt.tracking_id == 77);
    CHECK(mtt.axis == 1);
    CHECK(mtt.value == 1234);
    CHECK(events[5].size == 1 + 4 + 4 + 8 + 8 + 4 + 8);

    CHECK(events[6].async_kind() == AsyncKind::InputSync);
    CHECK(std::holds_alternative<std::monostate>(events[6].payload));
    CHECK(events[6].size == 1);
}

TEST_CASE("ASYNC_EVENT_INPUT with an impossible type is invalid", "[decode][async][input][errors]") {
    SECTION("event type") {
        LogWriter log;
        log.async(AsyncKind::Input);
        log.put_dword(5);  // INPUT_EVENT_KIND__MAX
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::InvalidPayload);
        CHECK(error.offset() == 13);
        CHECK_THAT(error.what(), ContainsSubstring("input event type 5"));
    }
    SECTION("key value kind") {
        LogWriter log;
        log.async(AsyncKind::Input);
        log.put_dword(0);
        log.put_dword(2);  // KEY_VALUE_KIND__MAX
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::InvalidPayload);
        CHECK(error.offset() == 17);
        CHECK_THAT(error.what(), ContainsSubstring("key value kind 2"));
    }
}

TEST_CASE("ASYNC_EVENT_CHAR_READ and ASYNC_EVENT_NET carry device index and bytes", "[decode][async]") {
    LogWriter log;
    const Bytes serial = text_bytes("ls\n");
    Bytes packet(60);
    for (std::size_t i = 0; i < packet.size(); ++i) {
        packet[i] = static_cast<std::uint8_t>(i * 3);
    }
    log.char_read(2, serial);
    log.net_packet(1, 0x4, packet);
    log.char_read(0, {});

    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 3);

    CHECK(events[0].async_kind() == AsyncKind::CharRead);
    const auto& read = std::get<CharReadPayload>(events[0].payload);
    CHECK(read.chardev == 2);
    CHECK(read.data == serial);
    CHECK(events[0].size == 1 + 1 + 4 + 3);
    CHECK(describe_fields(events[0]) == "chardev=2 len=3 data=\"ls\\n\"");

    CHECK(events[1].async_kind() == AsyncKind::Net);
    const auto& net = std::get<NetPayload>(events[1].payload);
    CHECK(net.filter == 1);
    CHECK(net.flags == 4);
    CHECK(net.packet == packet);
    CHECK(events[1].size == 1 + 1 + 4 + 4 + 60);

    CHECK(std::get<CharReadPayload>(events[2].payload).data.empty());
    CHECK(events[2].offset == events[1].offset + events[1].size);
}

TEST_CASE("char device events: write, read-all, read-all error", "[decode]") {
    LogWriter log;
    log.char_write(-11, 7);
    log.char_read_all(text_bytes("OK"));
    log.char_read_all_error(-5);
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 3);

    const auto& write = std::get<CharWritePayload>(events[0].payload);
    CHECK(write.result == -11);
    CHECK(write.offset == 7);
    CHECK(events[0].size == 9);

    CHECK(std::get<CharReadAllPayload>(events[1].payload).data == text_bytes("OK"));
    CHECK(events[1].size == 1 + 4 + 2);

    CHECK(std::get<CharReadAllErrorPayload>(events[2].payload).result == -5);
    CHECK(events[2].size == 5);
}

TEST_CASE("audio events: out count, in samples", "[decode]") {
    LogWriter log;
    const std::vector<AudioSample> samples = {{10, 20}, {30, 40}, {0xffffffffffffffffULL, 0}};
    log.audio_out(4096);
    log.audio_in(100, samples);
    log.audio_in(5, {});
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 3);

    CHECK(std::get<AudioOutPayload>(events[0].payload).played == 4096);

    const auto& in = std::get<AudioInPayload>(events[1].payload);
    CHECK(in.recorded == 3);
    CHECK(in.write_pos == 100);
    REQUIRE(in.samples.size() == 3);
    CHECK(in.samples[1].left == 30);
    CHECK(in.samples[1].right == 40);
    CHECK(in.samples[2].left == 0xffffffffffffffffULL);
    CHECK(events[1].size == 1 + 8 + 8 + 3 * 16);

    const auto& empty = std::get<AudioInPayload>(events[2].payload);
    CHECK(empty.recorded == 0);
    CHECK(empty.samples.empty());
    CHECK(events[2].size == 17);
}

TEST_CASE("EVENT_RANDOM carries the result and the bytes", "[decode]") {
    LogWriter log;
    const Bytes entropy = {0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02, 0x03};
    log.random(0, entropy);
    log.random(-1, {});
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 2);
    CHECK(std::get<RandomPayload>(events[0].payload).result == 0);
    CHECK(std::get<RandomPayload>(events[0].payload).data == entropy);
    CHECK(events[0].size == 1 + 4 + 4 + 8);
    CHECK(std::get<RandomPayload>(events[1].payload).result == -1);
}

// ---------------------------------------------------------------------------
// usb-host passthrough records (QEMU Rewind)

namespace {

// A USB 2.0 device descriptor: VID 0x1209, PID 0x0001, one configuration.
Bytes device_descriptor() {
    return {18, 1, 0x00, 0x02, 0, 0, 0, 64, 0x09, 0x12, 0x01, 0x00, 0x00, 0x01, 1, 2, 3, 1};
}

}  // namespace

TEST_CASE("EVENT_USB_ASYNC OPEN carries the device snapshot", "[decode][usb-records]") {
    LogWriter log;
    const Bytes ports = {1, 4};
    const Bytes config_a(32, 0x11);
    const Bytes config_b(9, 0x22);
    log.usb_open(1, 3, 7, 3, ports, device_descriptor(), {config_a, config_b});
    const auto event = read_single(log);
    CHECK(event.code == 40);
    CHECK(event.kind == EventKind::UsbAsync);
    CHECK(event.usb_async_kind() == UsbAsyncKind::Open);
    CHECK(event.usb_device() == 1);
    CHECK_FALSE(event.usb_call().has_value());
    const auto& open = std::get<UsbOpenPayload>(event.payload);
    CHECK(open.device == 1);
    CHECK(open.bus == 3);
    CHECK(open.address == 7);
    CHECK(open.speed == 3);
    CHECK(open.ports == ports);
    CHECK(open.device_descriptor == device_descriptor());
    REQUIRE(open.configs.size() == 2);
    CHECK(open.configs[0] == config_a);
    CHECK(open.configs[1] == config_b);
    CHECK(event.size == 1 + 2 + 3 + (4 + 2) + (4 + 18) + 1 + (4 + 32) + (4 + 9));
    CHECK(event_name(event) == "EVENT_USB_ASYNC (OPEN dev 1)");
    CHECK(describe_fields(event) == "bus=3 addr=7 ports=1.4 speed=high id=1209:0001 configs=2");
}

TEST_CASE("EVENT_USB_ASYNC CLOSE and COMPLETE", "[decode][usb-records]") {
    LogWriter log;
    const Bytes in = {0x55, 0x53, 0x42, 0x53, 1, 0, 0, 0, 0, 0, 0, 0, 0};  // a CSW
    const std::vector<UsbIsoPacket> packets = {{0, 200}, {-1, 0}, {0, 17}};
    log.usb_close(2);
    log.usb_complete(0, 0x81, 41, 0, 13, in);
    log.usb_complete(0, 0x02, 7, 4, 0, {});  // OUT transfer that stalled: no data
    log.usb_complete(1, 0x83, 0xfffffffe, 0, 217, Bytes(217, 0xab), packets);
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 4);

    CHECK(events[0].usb_async_kind() == UsbAsyncKind::Close);
    CHECK(std::get<UsbClosePayload>(events[0].payload).device == 2);
    CHECK(events[0].size == 3);
    CHECK(event_name(events[0]) == "EVENT_USB_ASYNC (CLOSE dev 2)");
    CHECK(describe_fields(events[0]).empty());

    const auto& csw = std::get<UsbCompletePayload>(events[1].payload);
    CHECK(csw.device == 0);
    CHECK(csw.endpoint == 0x81);
    CHECK(csw.seq == 41);
    CHECK(csw.status == 0);
    CHECK(csw.actual_length == 13);
    CHECK(csw.data == in);
    CHECK(csw.packets.empty());
    CHECK(events[1].size == 1 + 2 + 1 + 4 + 4 + 4 + (4 + 13) + 4);
    CHECK(event_name(events[1]) == "EVENT_USB_ASYNC (COMPLETE dev 0)");
    CHECK(describe_fields(events[1]) == "ep=0x81 seq=41 status=COMPLETED len=13 in=13");

    const auto& stall = std::get<UsbCompletePayload>(events[2].payload);
    CHECK(stall.status == 4);
    CHECK(stall.data.empty());
    CHECK(describe_fields(events[2]) == "ep=0x02 seq=7 status=STALL len=0 in=0");

    const auto& iso = std::get<UsbCompletePayload>(events[3].payload);
    CHECK(iso.device == 1);
    CHECK(iso.seq == 0xfffffffe);
    CHECK(iso.data.size() == 217);
    REQUIRE(iso.packets.size() == 3);
    CHECK(iso.packets[0].actual_length == 200);
    CHECK(iso.packets[1].status == -1);
    CHECK(iso.packets[2].actual_length == 17);
    CHECK(events[3].size == 1 + 2 + 1 + 4 + 4 + 4 + (4 + 217) + 4 + 3 * 8);
    CHECK(describe_fields(events[3]) == "ep=0x83 seq=4294967294 status=COMPLETED len=217 in=217 packets=3");
}

TEST_CASE("EVENT_USB holds one libusb call and its result", "[decode][usb-records]") {
    LogWriter log;
    log.usb_call(UsbCall::Open, 0, 0, 0, 0, 0);
    log.usb_call(UsbCall::ActiveConfig, 0, 0, 0, 0, 1);
    log.usb_call(UsbCall::String, 0, 2, 32, 5, 0, text_bytes(std::string_view("Disk\0", 5)));
    log.usb_call(UsbCall::Claim, 0, 1, 0, -6, 0);
    log.usb_call(UsbCall::SetAlt, 0, 1, 2, 0, 0);
    log.usb_submit(0, 0x81, 2, 512, 0, 9);
    log.usb_submit(0, 0x00, 0, 8 + 18, -4, 3);
    log.usb_call(UsbCall::Cancel, 3, 0x81, 9, 0, 0);
    log.usb_call(UsbCall::ClearHalt, 0, 0x02, 0, 0, 0);
    const auto events = read_all(log.bytes());
    REQUIRE(events.size() == 9);
    for (const auto& event : events) {
        CHECK(event.code == 41);
        CHECK(event.kind == EventKind::Usb);
        CHECK_FALSE(event.usb_async_kind().has_value());
    }

    CHECK(events[0].usb_call() == UsbCall::Open);
    CHECK(events[0].size == 1 + 2 + 4 * 4);
    CHECK(event_name(events[0]) == "EVENT_USB (OPEN dev 0)");
    CHECK(describe_fields(events[0]) == "rc=0");

    CHECK(std::get<UsbCallPayload>(events[1].payload).out == 1);
    CHECK(describe_fields(events[1]) == "rc=0 config=1");

    const auto& string = std::get<UsbCallPayload>(events[2].payload);
    CHECK(string.call == UsbCall::String);
    CHECK(string.arg == 2);
    CHECK(string.arg2 == 32);
    CHECK(string.rc == 5);
    CHECK(string.data == text_bytes(std::string_view("Disk\0", 5)));
    CHECK(events[2].size == 1 + 2 + 4 * 4 + 4 + 5);
    CHECK(describe_fields(events[2]) == "index=2 size=32 rc=5 data=\"Disk\\x00\"");

    CHECK(std::get<UsbCallPayload>(events[3].payload).rc == -6);
    CHECK(describe_fields(events[3]) == "interface=1 rc=-6 (BUSY)");
    CHECK(describe_fields(events[4]) == "interface=1 alt=2 rc=0");

    const auto& submit = std::get<UsbCallPayload>(events[5].payload);
    CHECK(submit.call == UsbCall::Submit);
    CHECK(submit.submit_endpoint() == 0x81);
    CHECK(submit.submit_transfer_type() == 2);
    CHECK(submit.arg2 == 512);
    CHECK(submit.out == 9);
    CHECK(event_name(events[5]) == "EVENT_USB (SUBMIT dev 0)");
    CHECK(describe_fields(events[5]) == "ep=0x81 type=bulk len=512 rc=0 seq=9");
    CHECK(describe_fields(events[6]) == "ep=0x00 type=control len=26 rc=-4 (NO_DEVICE) seq=3");

    CHECK(event_name(events[7]) == "EVENT_USB (CANCEL dev 3)");
    CHECK(describe_fields(events[7]) == "ep=0x81 seq=9 rc=0");
    CHECK(describe_fields(events[8]) == "ep=0x02 rc=0");
}

TEST_CASE("usb-host sub-kind names", "[codes][usb-records]") {
    CHECK(usb_async_kind_name(UsbAsyncKind::Open) == "OPEN");
    CHECK(usb_async_kind_name(UsbAsyncKind::Close) == "CLOSE");
    CHECK(usb_async_kind_name(UsbAsyncKind::Complete) == "COMPLETE");
    CHECK(usb_call_name(UsbCall::Open) == "OPEN");
    CHECK(usb_call_name(UsbCall::DriverActive) == "DRIVER_ACTIVE");
    CHECK(usb_call_name(UsbCall::FreeStreams) == "FREE_STREAMS");
    CHECK(usb_call_name(UsbCall::Submit) == "SUBMIT");
    CHECK(usb_call_name(UsbCall::Cancel) == "CANCEL");
    CHECK(static_cast<int>(UsbCall::Cancel) == 16);
    CHECK(event_kind_name(EventKind::UsbAsync) == "EVENT_USB_ASYNC");
    CHECK(event_kind_name(EventKind::Usb) == "EVENT_USB");
}

TEST_CASE("usb-host records QEMU could not have written are invalid", "[decode][usb-records][errors]") {
    SECTION("EVENT_USB_ASYNC kind") {
        for (const std::uint8_t kind : {std::uint8_t{0}, std::uint8_t{4}, std::uint8_t{0xff}}) {
            CAPTURE(int{kind});
            LogWriter log;
            log.put_event(code::kUsbAsync);
            log.put_byte(kind);
            log.put_byte(0);
            const auto error = expect_error(log.bytes());
            CHECK(error.kind() == ErrorKind::InvalidPayload);
            CHECK(error.offset() == 13);
            CHECK_THAT(error.what(), StartsWith("invalid EVENT_USB_ASYNC at offset 12: usb-host event kind " +
                                                std::to_string(kind)));
        }
    }
    SECTION("EVENT_USB call") {
        for (const std::uint8_t call : {std::uint8_t{0}, std::uint8_t{17}}) {
            CAPTURE(int{call});
            LogWriter log;
            log.instructions(1);
            log.put_event(code::kUsb);
            log.put_byte(call);
            const auto error = expect_error(log.bytes());
            CHECK(error.kind() == ErrorKind::InvalidPayload);
            CHECK(error.offset() == 18);
            CHECK_THAT(error.what(), ContainsSubstring("usb-host call " + std::to_string(call) + " is not"));
        }
    }
    SECTION("more configuration descriptors than QEMU records") {
        LogWriter log;
        log.usb_open(0, 1, 2, 3, {}, device_descriptor(), std::vector<Bytes>(9, Bytes{9, 2}));
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::InvalidPayload);
        CHECK(error.offset() == 12 + 1 + 2 + 3 + 4 + 4 + 18);
        CHECK_THAT(error.what(), StartsWith("invalid EVENT_USB_ASYNC (OPEN dev 0) at offset 12: "
                                            "9 configuration descriptors, QEMU records at most 8"));
    }
    SECTION("more isochronous packets than QEMU accepts") {
        LogWriter log;
        log.usb_complete(0, 0x81, 0, 0, 0, {});
        Bytes bytes = log.bytes();
        bytes.resize(bytes.size() - 4);  // replace the packet count
        for (const std::uint8_t b : {0x00, 0x01, 0x00, 0x01}) {
            bytes.push_back(b);
        }
        const auto error = expect_error(bytes);
        CHECK(error.kind() == ErrorKind::InvalidPayload);
        CHECK_THAT(error.what(), ContainsSubstring("65537 isochronous packets, QEMU accepts at most 65536"));
    }
}

TEST_CASE("truncated usb-host records name the sub-kind and device read so far",
          "[errors][truncation][usb-records]") {
    LogWriter log;
    log.instructions(5);                                   // offset 12
    log.usb_complete(2, 0x81, 3, 0, 4, Bytes{1, 2, 3, 4});  // offset 17
    const Bytes full = log.bytes();
    const auto cut_at = [&full](std::size_t size) {
        return expect_error(Bytes(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(size)));
    };
    CHECK_THAT(cut_at(18).what(),
               StartsWith("truncated at offset 18 inside EVENT_USB_ASYNC (event at offset 17)"));
    CHECK_THAT(cut_at(19).what(),
               StartsWith("truncated at offset 19 inside EVENT_USB_ASYNC (COMPLETE) (event at offset 17)"));
    for (std::size_t size = 20; size < full.size(); ++size) {
        CAPTURE(size);
        const auto error = cut_at(size);
        CHECK(error.kind() == ErrorKind::Truncated);
        CHECK(error.offset() == size);
        CHECK_THAT(error.what(), StartsWith("truncated at offset " + std::to_string(size) +
                                            " inside EVENT_USB_ASYNC (COMPLETE dev 2) (event at offset 17)"));
    }
    // Inside the IN data: the array's length is checked before reading it.
    CHECK_THAT(cut_at(full.size() - 6).what(),
               ContainsSubstring("array length 4 at offset " + std::to_string(full.size() - 12) +
                                 " exceeds the 2 bytes left"));

    LogWriter call;
    call.usb_submit(1, 0x02, 2, 31, 0, 0);
    const Bytes call_bytes(call.bytes().begin(), call.bytes().end() - 1);
    CHECK_THAT(expect_error(call_bytes).what(),
               StartsWith("truncated at offset 30 inside EVENT_USB (SUBMIT dev 1) (event at offset 12)"));
}

TEST_CASE("huge usb-host lengths are errors, not allocations", "[errors][usb-records]") {
    SECTION("IN data length") {
        LogWriter log;
        log.put_event(code::kUsbAsync);
        log.put_byte(static_cast<std::uint8_t>(UsbAsyncKind::Complete));
        log.put_byte(0);
        log.put_byte(0x81);
        log.put_dword(0);
        log.put_dword(0);
        log.put_dword(0);
        log.put_dword(0xffffffff);
        log.put_qword(0);
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::Truncated);
        CHECK_THAT(error.what(), ContainsSubstring("array length 4294967295"));
    }
    SECTION("isochronous packet count") {
        LogWriter log;
        log.put_event(code::kUsbAsync);
        log.put_byte(static_cast<std::uint8_t>(UsbAsyncKind::Complete));
        log.put_byte(0);
        log.put_byte(0x81);
        log.put_dword(0);
        log.put_dword(0);
        log.put_dword(0);
        log.put_dword(0);       // no data
        log.put_dword(0x8000);  // packets
        log.put_qword(0);       // one packet's worth
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::Truncated);
        CHECK_THAT(error.what(),
                   ContainsSubstring("32768 isochronous packet records of 8 bytes exceed the 8 bytes left"));
    }
}

TEST_CASE("summarize tallies usb-host records, IN bytes and log bytes", "[summary][usb-records]") {
    LogWriter log;
    log.usb_open(0, 1, 2, 3, Bytes{1}, device_descriptor(), {Bytes(32, 0)});
    log.usb_call(UsbCall::Open, 0, 0, 0, 0, 0);
    log.instructions(100);
    log.usb_submit(0, 0x81, 2, 512, 0, 0);
    log.usb_submit(0, 0x02, 2, 31, 0, 0);
    log.usb_complete(0, 0x02, 0, 0, 31, {});
    log.usb_complete(0, 0x81, 0, 0, 512, Bytes(512, 7));
    log.usb_close(0);
    log.end();
    const auto usb_bytes = log.size() - 12 - 5 - 1;  // all but header, EVENT_INSTRUCTION, EVENT_END

    ReplayLogReader reader(log.bytes());
    const auto summary = summarize(reader);
    CHECK(summary.event_count == 9);
    CHECK(summary.count(EventKind::UsbAsync) == 4);
    CHECK(summary.count(EventKind::Usb) == 3);
    CHECK(summary.code_counts[code::kUsbAsync] == 4);
    CHECK(summary.code_counts[code::kUsb] == 3);
    CHECK(summary.count(UsbAsyncKind::Open) == 1);
    CHECK(summary.count(UsbAsyncKind::Close) == 1);
    CHECK(summary.count(UsbAsyncKind::Complete) == 2);
    CHECK(summary.count(UsbCall::Open) == 1);
    CHECK(summary.count(UsbCall::Submit) == 2);
    CHECK(summary.count(UsbCall::Cancel) == 0);
    CHECK(summary.usb_in_bytes == 512);
    CHECK(summary.usb_event_bytes == usb_bytes);
    CHECK(summary.instructions == 100);
    CHECK(summary.has_end_event);
}

// ---------------------------------------------------------------------------
// Instruction accounting and summary

TEST_CASE("each event knows the icount at which it occurs", "[icount]") {
    LogWriter log;
    log.checkpoint(Checkpoint::Init);       // icount 0
    log.save_clock(ClockKind::Host, 1);     // icount 0
    log.instructions(100);                  // icount 0 -> 100
    log.async_with_id(AsyncKind::Bh, 100);  // icount 100
    log.instructions(0x7fffffff);           // 100 -> 100 + 2^31 - 1
    log.interrupt();
    log.instructions(0x7fffffff);
    log.instructions(3);
    log.shutdown_request(4);
    log.end();

    ReplayLogReader reader(log.bytes());
    std::vector<std::uint64_t> icounts;
    while (auto event = reader.next()) {
        icounts.push_back(event->icount);
    }
    const std::uint64_t big = 0x7fffffff;
    const std::vector<std::uint64_t> expected = {
        0, 0, 0, 100, 100, 100 + big, 100 + big, 100 + 2 * big, 103 + 2 * big, 103 + 2 * big};
    CHECK(icounts == expected);
    CHECK(reader.icount() == 103 + 2 * big);
    CHECK(reader.icount() > 0xffffffffULL);  // no 32-bit wrap-around
    CHECK(reader.saw_end_event());
}

TEST_CASE("summarize counts kinds, codes, instructions, bytes and char input", "[summary]") {
    LogWriter log;
    log.checkpoint(Checkpoint::Init);
    log.instructions(1000);
    log.save_clock(ClockKind::Host, 5);
    log.save_clock(ClockKind::VirtualRt, 6);
    log.save_clock(ClockKind::Host, 7);
    log.char_read(0, text_bytes("hello"));
    log.char_read_all(text_bytes("xy"));
    log.char_write(1, 0);
    log.net_packet(0, 0, Bytes(42, 0xaa));
    log.instructions(234);
    log.shutdown_request(4);
    log.end();

    ReplayLogReader reader(log.bytes());
    const LogSummary summary = summarize(reader);
    CHECK(summary.header.version == kReplayVersion);
    CHECK(summary.bytes == log.size());
    CHECK(summary.event_count == 12);
    CHECK(summary.instructions == 1234);
    CHECK(summary.count(EventKind::Instruction) == 2);
    CHECK(summary.count(EventKind::Clock) == 3);
    CHECK(summary.count(EventKind::Async) == 2);
    CHECK(summary.count(EventKind::Checkpoint) == 1);
    CHECK(summary.count(EventKind::Shutdown) == 1);
    CHECK(summary.count(EventKind::CharWrite) == 1);
    CHECK(summary.count(EventKind::CharReadAll) == 1);
    CHECK(summary.count(EventKind::End) == 1);
    CHECK(summary.count(EventKind::Random) == 0);
    CHECK(summary.code_counts[code::kClock] == 2);
    CHECK(summary.code_counts[code::kClock + 1] == 1);
    CHECK(summary.code_counts[code::kShutdown + 4] == 1);
    CHECK(summary.char_read_bytes == 5 + 2);
    CHECK(summary.net_bytes == 42);
    CHECK(summary.has_end_event);
    CHECK_FALSE(summary.truncation.has_value());
}

// ---------------------------------------------------------------------------
// End of data, truncation and garbage

TEST_CASE("a log ending on an event boundary without EVENT_END ends normally", "[end]") {
    LogWriter log;
    log.instructions(50);
    log.save_clock(ClockKind::Host, 9);
    ReplayLogReader reader(log.bytes());
    const auto summary = summarize(reader);
    CHECK(summary.event_count == 2);
    CHECK(summary.instructions == 50);
    CHECK_FALSE(summary.has_end_event);
    CHECK_FALSE(summary.truncation.has_value());
}

TEST_CASE("truncation at every byte inside every event kind", "[errors][truncation]") {
    for (const auto& sample : one_of_each_event()) {
        const Bytes& full = sample.log.bytes();
        // Cut after the code byte and at every point up to one byte short.
        for (std::size_t cut = 13; cut < full.size(); ++cut) {
            CAPTURE(sample.name, cut, full.size());
            const Bytes truncated(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(cut));
            const auto error = expect_error(truncated);
            CHECK(error.kind() == ErrorKind::Truncated);
            CHECK(error.offset() == cut);
            CHECK_THAT(error.what(),
                       StartsWith("truncated at offset " + std::to_string(cut) + " inside " + sample.name));
            CHECK_THAT(error.what(), ContainsSubstring("event at offset 12"));
        }
        // The complete event decodes.
        CAPTURE(sample.name);
        CHECK(read_all(full).size() == 1);
    }
}

TEST_CASE("truncation after earlier complete events reports the cut event", "[errors][truncation]") {
    LogWriter log;
    log.instructions(10);                    // offset 12, 5 bytes
    log.char_read(0, text_bytes("abcdef"));  // offset 17
    Bytes bytes = log.bytes();
    bytes.resize(bytes.size() - 2);

    ReplayLogReader reader(bytes);
    auto first = reader.next();
    REQUIRE(first);
    CHECK(std::get<InstructionPayload>(first->payload).count == 10);
    try {
        (void)reader.next();
        FAIL("expected truncation");
    } catch (const ReplayLogError& error) {
        CHECK(error.kind() == ErrorKind::Truncated);
        CHECK(error.offset() == bytes.size());
        CHECK_THAT(error.what(),
                   ContainsSubstring("inside EVENT_ASYNC (ASYNC_EVENT_CHAR_READ) (event at offset 17)"));
        CHECK_THAT(error.what(), ContainsSubstring("array length 6 at offset 19 exceeds the 4 bytes left"));
    }
    CHECK_FALSE(reader.next());  // stays finished after an error
}

TEST_CASE("tolerate_truncated_tail stops at the cut and reports it", "[truncation]") {
    LogWriter log(0);  // a killed recording has no version either
    log.instructions(10);
    log.save_clock(ClockKind::Host, 77);
    Bytes bytes = log.bytes();
    bytes.resize(bytes.size() - 3);

    ReplayLogReader reader(bytes, {.allow_unfinalized_header = true, .tolerate_truncated_tail = true});
    const auto summary = summarize(reader);
    CHECK(summary.event_count == 1);
    CHECK(summary.instructions == 10);
    REQUIRE(summary.truncation.has_value());
    CHECK(summary.truncation->offset == bytes.size());
    CHECK(summary.truncation->event_offset == 17);
    CHECK_THAT(summary.truncation->message, ContainsSubstring("inside EVENT_CLOCK (CLOCK_HOST)"));
}

TEST_CASE("unknown event codes are rejected with their offset", "[errors]") {
    for (const std::uint8_t bad : {std::uint8_t{44}, std::uint8_t{0x7f}, std::uint8_t{0xff}}) {
        CAPTURE(int{bad});
        LogWriter log;
        log.instructions(3);
        log.put_byte(bad);
        log.put_qword(0);
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::UnknownEvent);
        CHECK(error.offset() == 17);
        CHECK_THAT(error.what(), StartsWith("unknown event code " + std::to_string(bad)));
        CHECK_THAT(error.what(), ContainsSubstring("at offset 17"));
    }
}

TEST_CASE("huge lengths are errors, not allocations", "[errors]") {
    SECTION("array length 0xffffffff in every array-carrying event") {
        for (std::uint8_t event_code : {std::uint8_t(code::kAsync + 4), std::uint8_t(code::kAsync + 6),
                                        code::kCharReadAll, code::kRandom}) {
            CAPTURE(int{event_code});
            LogWriter log;
            log.put_event(event_code);
            if (event_code == code::kAsync + 4) log.put_byte(0);  // chardev id
            if (event_code == code::kAsync + 6) {                 // filter id + flags
                log.put_byte(0);
                log.put_dword(0);
            }
            if (event_code == code::kRandom) log.put_dword(0);  // ret
            log.put_dword(0xffffffff);
            log.put_qword(0);  // a few bytes of "data"
            const auto error = expect_error(log.bytes());
            CHECK(error.kind() == ErrorKind::Truncated);
            CHECK_THAT(error.what(), ContainsSubstring("array length 4294967295"));
            CHECK_THAT(error.what(), ContainsSubstring("exceeds the 8 bytes left"));
        }
    }
    SECTION("audio-in sample count") {
        LogWriter log;
        log.put_event(code::kAudioIn);
        log.put_qword(static_cast<std::int64_t>(0x1000000000000000ULL));
        log.put_qword(0);
        log.put_qword(1);
        log.put_qword(2);
        const auto error = expect_error(log.bytes());
        CHECK(error.kind() == ErrorKind::Truncated);
        CHECK_THAT(error.what(),
                   ContainsSubstring("audio sample records of 16 bytes exceed the 16 bytes left"));
    }
}

TEST_CASE("bytes after EVENT_END are reported", "[errors]") {
    LogWriter log;
    log.instructions(1);
    log.end();
    log.put_byte(0);
    log.put_byte(0);
    const auto error = expect_error(log.bytes());
    CHECK(error.kind() == ErrorKind::TrailingData);
    CHECK(error.offset() == 18);
    CHECK_THAT(error.what(), ContainsSubstring("2 bytes of trailing data after EVENT_END at offset 17"));
}

TEST_CASE("random garbage after a valid header never crashes", "[errors][fuzz]") {
    std::mt19937 rng(12345);
    std::uniform_int_distribution<int> byte(0, 255);
    std::uniform_int_distribution<int> length(0, 200);
    int errors = 0;
    int clean = 0;
    for (int round = 0; round < 3000; ++round) {
        Bytes bytes = LogWriter().bytes();
        const int extra = length(rng);
        for (int i = 0; i < extra; ++i) {
            // Bias towards valid codes and small numbers so decoding gets deep.
            const int b = byte(rng);
            bytes.push_back(static_cast<std::uint8_t>(b < 128 ? b % (code::kCount + 1) : b));
        }
        try {
            ReplayLogReader reader(bytes);
            std::uint64_t end_offset = 12;
            while (auto event = reader.next()) {
                REQUIRE(event->offset == end_offset);
                end_offset += event->size;
            }
            CHECK(end_offset == bytes.size());
            ++clean;
        } catch (const ReplayLogError& error) {
            CHECK(error.offset() <= bytes.size());
            ++errors;
        }
    }
    CHECK(errors > 0);
    CHECK(clean > 0);
}

// ---------------------------------------------------------------------------
// Reading from files

TEST_CASE("reading from a file streams across buffer refills", "[file]") {
    const auto path = std::filesystem::temp_directory_path() /
                      ("rewind-unit-replay-" + std::to_string(std::random_device{}()) + ".bin");
    LogWriter log;
    Bytes big(200'000);
    for (std::size_t i = 0; i < big.size(); ++i) {
        big[i] = static_cast<std::uint8_t>(i * 7 + 1);
    }
    log.checkpoint(Checkpoint::Init);
    for (int i = 0; i < 20'000; ++i) {
        log.instructions(3);
        log.save_clock(ClockKind::VirtualRt, i);
    }
    log.char_read(1, big);  // spans several 64 KiB chunks
    log.instructions(1);
    log.end();
    {
        std::ofstream out(path, std::ios::binary);
        out.write(reinterpret_cast<const char*>(log.bytes().data()),
                  static_cast<std::streamsize>(log.size()));
    }

    {
        ReplayLogReader reader(path);
        std::int64_t expected_clock = 0;
        bool saw_big = false;
        while (auto event = reader.next()) {
            if (const auto* clock = std::get_if<ClockPayload>(&event->payload)) {
                REQUIRE(clock->value == expected_clock);
                ++expected_clock;
            } else if (const auto* read = std::get_if<CharReadPayload>(&event->payload)) {
                CHECK(read->data == big);
                CHECK(event->icount == 60'000);
                saw_big = true;
            }
        }
        CHECK(expected_clock == 20'000);
        CHECK(saw_big);
        CHECK(reader.icount() == 60'001);
        CHECK(reader.saw_end_event());
    }
    const auto summary = summarize(path);
    CHECK(summary.bytes == log.size());
    CHECK(summary.event_count == 1 + 40'000 + 3);
    CHECK(summary.char_read_bytes == big.size());
    std::filesystem::remove(path);
}

TEST_CASE("a missing file is an I/O error", "[file][errors]") {
    try {
        ReplayLogReader reader(std::filesystem::path("/nonexistent/dir/replay.bin"));
        FAIL("expected an error");
    } catch (const ReplayLogError& error) {
        CHECK(error.kind() == ErrorKind::Io);
        CHECK_THAT(error.what(), ContainsSubstring("/nonexistent/dir/replay.bin"));
    }
}
