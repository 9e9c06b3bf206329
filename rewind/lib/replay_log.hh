// Reader for QEMU 10.0's record/replay log (REPLAY_VERSION 0xe0200c), with
// QEMU Rewind's usb-host passthrough records (EVENT_USB_ASYNC, EVENT_USB),
// in upstream's raw file (format 1, described here) or in QEMU Rewind's
// compressed chunks (format 2, log_container.hh), which hold the same
// stream; offsets are stream offsets in both.
//
// Layout (replay/replay.c, replay/replay-internal.c):
//   header : u32 version, u64 field that QEMU 10.0 never writes (HEADER_SIZE = 12)
//   events : u8 code, then a payload whose shape depends on the code
// All integers are big-endian; an "array" is a u32 length followed by that many bytes.
// QEMU writes the version only in replay_finish(), so a recording that was killed
// (or is still running) has an all-zero header.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace qemu_rewind {

inline constexpr std::uint32_t kReplayVersion = 0xe0200c;
inline constexpr std::size_t kReplayHeaderSize = 4 + 8;

// Event codes, enum ReplayEvents in replay/replay-internal.h. Ranges encode a
// sub-kind in the code itself (async kind, shutdown cause, clock, checkpoint).
namespace code {
inline constexpr std::uint8_t kInstruction = 0;
inline constexpr std::uint8_t kInterrupt = 1;
inline constexpr std::uint8_t kException = 2;
inline constexpr std::uint8_t kAsync = 3;  // + ReplayAsyncEventKind (7)
inline constexpr std::uint8_t kAsyncLast = 9;
inline constexpr std::uint8_t kShutdown = 10;  // + ShutdownCause, 0..SHUTDOWN_CAUSE__MAX
inline constexpr std::uint8_t kShutdownLast = 21;
inline constexpr std::uint8_t kCharWrite = 22;
inline constexpr std::uint8_t kCharReadAll = 23;
inline constexpr std::uint8_t kCharReadAllError = 24;
inline constexpr std::uint8_t kAudioOut = 25;
inline constexpr std::uint8_t kAudioIn = 26;
inline constexpr std::uint8_t kRandom = 27;
inline constexpr std::uint8_t kClock = 28;  // + ReplayClockKind (2)
inline constexpr std::uint8_t kClockLast = 29;
inline constexpr std::uint8_t kCheckpoint = 30;  // + ReplayCheckpoint (9)
inline constexpr std::uint8_t kCheckpointLast = 38;
inline constexpr std::uint8_t kEnd = 39;
// QEMU Rewind's usb-host passthrough (replay/replay-usb.c): after EVENT_END,
// so that logs without USB keep upstream's codes and REPLAY_VERSION.
inline constexpr std::uint8_t kUsbAsync = 40;
inline constexpr std::uint8_t kUsb = 41;
// QEMU Rewind's divergence digests (replay/rewind-digest.c) and the bytes
// the guest wrote to recorded chardevs (replay/rewind-char-output.c).
inline constexpr std::uint8_t kDigest = 42;
inline constexpr std::uint8_t kCharOutput = 43;
inline constexpr std::uint8_t kCount = 44;  // first invalid code
}  // namespace code

// Coarse event family; one per range of codes.
enum class EventKind : std::uint8_t {
    Instruction,
    Interrupt,
    Exception,
    Async,
    Shutdown,
    CharWrite,
    CharReadAll,
    CharReadAllError,
    AudioOut,
    AudioIn,
    Random,
    Clock,
    Checkpoint,
    End,
    UsbAsync,
    Usb,
    Digest,
    CharOutput,
};
inline constexpr std::size_t kEventKindCount = 18;

// ReplayAsyncEventKind (replay/replay-internal.h).
enum class AsyncKind : std::uint8_t { Bh, BhOneshot, Input, InputSync, CharRead, Block, Net };

// ReplayClockKind (include/system/replay.h).
enum class ClockKind : std::uint8_t { Host, VirtualRt };

// ReplayCheckpoint (include/system/replay.h).
enum class Checkpoint : std::uint8_t {
    ClockWarpStart,
    ClockWarpAccount,
    ResetRequested,
    SuspendRequested,
    ClockVirtual,
    ClockHost,
    ClockVirtualRt,
    Init,
    Reset,
};

// ShutdownCause (qapi/run-state.json). The code range also admits the value
// SHUTDOWN_CAUSE__MAX (11), which QEMU accepts when reading; kept as a raw number.
using ShutdownCause = std::uint8_t;
inline constexpr ShutdownCause kShutdownCauseCount = 11;

// What an EVENT_USB_ASYNC reports (RR_EV_* in hw/usb/host-libusb-replay.c):
// a device appeared, left, or completed a transfer.
enum class UsbAsyncKind : std::uint8_t { Open = 1, Close = 2, Complete = 3 };
inline constexpr std::size_t kUsbAsyncKindCount = 4;  // codes 0..3, 0 unused

// The synchronous libusb call whose result an EVENT_USB holds (RRCall in
// hw/usb/host-libusb-replay.c).
enum class UsbCall : std::uint8_t {
    Open = 1,      // libusb_open
    ActiveConfig,  // libusb_get_active_config_descriptor; out = bConfigurationValue
    String,        // libusb_get_string_descriptor_ascii; arg = index, arg2 = buffer size
    DriverActive,  // libusb_kernel_driver_active; arg = interface
    Detach,        // libusb_detach_kernel_driver; arg = interface
    Attach,        // libusb_attach_kernel_driver; arg = interface
    Claim,         // libusb_claim_interface; arg = interface
    Release,       // libusb_release_interface; arg = interface
    SetConfig,     // libusb_set_configuration; arg = configuration
    SetAlt,        // libusb_set_interface_alt_setting; arg = interface, arg2 = alt
    ClearHalt,     // libusb_clear_halt; arg = endpoint
    Reset,         // libusb_reset_device
    AllocStreams,  // libusb_alloc_streams; arg = streams, arg2 = endpoints
    FreeStreams,   // libusb_free_streams; arg = endpoints
    Submit,        // libusb_submit_transfer; see UsbCallPayload
    Cancel,        // libusb_cancel_transfer; arg = endpoint, arg2 = submission number
};
inline constexpr std::size_t kUsbCallCount = 17;  // codes 0..16, 0 unused

// QEMU's limits when it reads these records back.
inline constexpr std::size_t kUsbMaxConfigs = 8;           // RR_MAX_CONFIGS
inline constexpr std::uint32_t kUsbMaxIsoPackets = 0x10000;  // rr_event_load()

// InputEventKind / KeyValueKind (qapi/ui.json); other enums of the input
// payload (QKeyCode, InputButton, InputAxis, InputMultiTouchType) stay raw.
enum class InputKind : std::uint32_t { Key, Btn, Rel, Abs, Mtt };
enum class KeyValueKind : std::uint32_t { Number, Qcode };

// ---- payloads, one struct per payload shape ----

struct InstructionPayload {
    std::uint32_t count = 0;  // instructions executed since the previous event
};

// ASYNC_EVENT_BH, ASYNC_EVENT_BH_ONESHOT (icount when scheduled) and
// ASYNC_EVENT_BLOCK (blkreplay request id).
struct AsyncIdPayload {
    std::uint64_t id = 0;
};

struct InputPayload {
    InputKind type = InputKind::Key;
    // Key
    KeyValueKind key_kind = KeyValueKind::Number;
    std::int64_t key_number = 0;  // KEY_VALUE_KIND_NUMBER
    std::uint32_t qcode = 0;      // KEY_VALUE_KIND_QCODE
    // Key and Btn
    bool down = false;
    std::uint32_t button = 0;  // InputButton
    // Rel, Abs and Mtt
    std::uint32_t axis = 0;  // InputAxis
    std::int64_t value = 0;
    // Mtt
    std::uint32_t mtt_type = 0;  // InputMultiTouchType
    std::int64_t slot = 0;
    std::int64_t tracking_id = 0;
};

struct CharReadPayload {       // ASYNC_EVENT_CHAR_READ: bytes from a chardev backend
    std::uint8_t chardev = 0;  // index in QEMU's registration order
    std::vector<std::uint8_t> data;
};

struct NetPayload {           // ASYNC_EVENT_NET: packet passed through filter-replay
    std::uint8_t filter = 0;  // index in QEMU's registration order
    std::uint32_t flags = 0;
    std::vector<std::uint8_t> packet;
};

struct CharWritePayload {
    std::int32_t result = 0;
    std::int32_t offset = 0;
};

struct CharReadAllPayload {
    std::vector<std::uint8_t> data;
};

struct CharReadAllErrorPayload {
    std::int32_t result = 0;  // negative errno-style value
};

struct AudioOutPayload {
    std::uint64_t played = 0;
};

struct AudioSample {
    std::uint64_t left = 0;
    std::uint64_t right = 0;
};

struct AudioInPayload {
    std::uint64_t recorded = 0;
    std::uint64_t write_pos = 0;
    std::vector<AudioSample> samples;
};

struct RandomPayload {
    std::int32_t result = 0;
    std::vector<std::uint8_t> data;
};

struct ClockPayload {
    std::int64_t value = 0;
};

// ---- usb-host passthrough (hw/usb/host-libusb-replay.c) ----
// `device` is the usb-host device's index in QEMU's creation order.

// EVENT_USB_ASYNC OPEN (rr_snapshot_save()): the device as libusb saw it
// before opening it, so that the replay can describe it without the host.
struct UsbOpenPayload {
    std::uint8_t device = 0;
    std::uint8_t bus = 0;
    std::uint8_t address = 0;
    std::uint8_t speed = 0;  // enum libusb_speed
    std::vector<std::uint8_t> ports;
    std::vector<std::uint8_t> device_descriptor;  // 18 bytes, USB layout
    std::vector<std::vector<std::uint8_t>> configs;  // raw configuration descriptors
};

// EVENT_USB_ASYNC CLOSE: the device left (unplugged, or gone at a scan).
struct UsbClosePayload {
    std::uint8_t device = 0;
};

struct UsbIsoPacket {
    std::int32_t status = 0;  // enum libusb_transfer_status
    std::uint32_t actual_length = 0;
};

// EVENT_USB_ASYNC COMPLETE: a transfer completed.
struct UsbCompletePayload {
    std::uint8_t device = 0;
    std::uint8_t endpoint = 0;  // address; 0 for control transfers
    std::uint32_t seq = 0;      // submission number on that endpoint (EVENT_USB SUBMIT's out)
    std::int32_t status = 0;    // enum libusb_transfer_status
    std::uint32_t actual_length = 0;
    std::vector<std::uint8_t> data;     // IN data; empty for OUT transfers
    std::vector<UsbIsoPacket> packets;  // isochronous transfers only
};

// EVENT_USB: the result of one synchronous libusb call (rr_sync_save()).
// For Submit: arg = endpoint | transfer type << 8 (enum
// libusb_transfer_type), arg2 = length (control: with the setup packet),
// out = the transfer's submission number on its endpoint.
struct UsbCallPayload {
    UsbCall call = UsbCall::Open;
    std::uint8_t device = 0;
    std::uint32_t arg = 0;
    std::uint32_t arg2 = 0;
    std::int32_t rc = 0;  // libusb's return value
    std::uint32_t out = 0;
    std::vector<std::uint8_t> data;  // String: the string with its NUL

    [[nodiscard]] std::uint8_t submit_endpoint() const { return static_cast<std::uint8_t>(arg); }
    [[nodiscard]] std::uint8_t submit_transfer_type() const { return static_cast<std::uint8_t>(arg >> 8); }
};

// ---- QEMU Rewind's checks (replay/rewind-digest.c, rewind-char-output.c) ----

// Version 2 adds the device state digests; version 1 is still read.
inline constexpr std::uint8_t kDigestVersion = 2;
inline constexpr std::uint32_t kDigestMaxDevices = 65536;  // what QEMU accepts
inline constexpr std::uint32_t kDigestMaxCpus = 4096;  // what QEMU accepts

struct DigestCpu {
    std::uint64_t pc = 0;
    std::uint64_t sp = 0;
    std::uint32_t hash = 0;  // CRC-32C of the registers
};

// EVENT_DIGEST: the machine at this point of the recording, which the
// replay checks.
struct DigestDevice {
    std::uint32_t name = 0;  // CRC-32C of "idstr#instance"
    std::uint32_t state = 0; // CRC-32C of the section's bytes
};

struct DigestPayload {
    std::uint8_t version = kDigestVersion;
    std::uint32_t sequence = 0;
    bool has_ram = false;        // RAM was comparable (no block request in flight)
    std::vector<DigestCpu> cpus;
    std::uint32_t ram_hash = 0;  // CRC-32C of a RAM sample chosen by `sequence`
    std::vector<DigestDevice> devices;  // version 2: each device state section
};

// EVENT_CHAR_OUTPUT: what the guest wrote to one recorded chardev since the
// previous batch (they are logged before each digest and at the end).
struct CharOutputPayload {
    std::uint8_t chardev = 0;  // index in QEMU's registration order, as CharReadPayload
    std::vector<std::uint8_t> data;
};

// std::monostate: events without a payload (interrupt, exception, input sync,
// shutdown, checkpoint, end).
using EventPayload =
    std::variant<std::monostate, InstructionPayload, AsyncIdPayload, InputPayload, CharReadPayload,
                 NetPayload, CharWritePayload, CharReadAllPayload, CharReadAllErrorPayload, AudioOutPayload,
                 AudioInPayload, RandomPayload, ClockPayload, UsbOpenPayload, UsbClosePayload,
                 UsbCompletePayload, UsbCallPayload, DigestPayload, CharOutputPayload>;

struct ReplayEvent {
    std::uint64_t offset = 0;  // file offset of the code byte
    std::uint64_t size = 0;    // bytes taken by code + payload
    std::uint8_t code = 0;
    EventKind kind = EventKind::End;
    // Instructions executed before this event (sum of all earlier
    // EVENT_INSTRUCTION deltas). For EVENT_INSTRUCTION itself it is the count
    // before its delta is applied.
    std::uint64_t icount = 0;
    EventPayload payload;

    // Sub-kinds encoded in the code; nullopt when the event is of another kind.
    [[nodiscard]] std::optional<AsyncKind> async_kind() const;
    [[nodiscard]] std::optional<ClockKind> clock_kind() const;
    [[nodiscard]] std::optional<Checkpoint> checkpoint() const;
    [[nodiscard]] std::optional<ShutdownCause> shutdown_cause() const;
    // USB sub-kinds, from the payload; nullopt for other events.
    [[nodiscard]] std::optional<UsbAsyncKind> usb_async_kind() const;
    [[nodiscard]] std::optional<UsbCall> usb_call() const;
    // Index of the usb-host device a USB event is about.
    [[nodiscard]] std::optional<std::uint8_t> usb_device() const;
};

// ---- names ----

// Coarse name: "EVENT_INSTRUCTION", "EVENT_ASYNC", "EVENT_CLOCK", ...
std::string_view event_kind_name(EventKind kind);
// Per-code name following QEMU's replay_event_name(): "EVENT_INSTRUCTION",
// "ASYNC_EVENT_BH", "SHUTDOWN_CAUSE_HOST_SIGNAL", "CLOCK_HOST", "CHECKPOINT_INIT".
// Unknown codes give "UNKNOWN_EVENT_<n>".
std::string event_code_name(std::uint8_t code);
std::optional<EventKind> event_kind_of(std::uint8_t code);
std::string_view async_kind_name(AsyncKind kind);
std::string_view clock_kind_name(ClockKind kind);
std::string_view checkpoint_name(Checkpoint checkpoint);
std::string shutdown_cause_name(ShutdownCause cause);
// "OPEN", "CLOSE", "COMPLETE"; "SUBMIT", "ACTIVE_CONFIG", ... (the RR_EV_*
// and RRCall names of hw/usb/host-libusb-replay.c without their prefix).
std::string_view usb_async_kind_name(UsbAsyncKind kind);
std::string_view usb_call_name(UsbCall call);
// Name of one event: event_code_name(), plus for USB events the sub-kind
// and device, which are in the payload: "EVENT_USB_ASYNC (OPEN dev 0)",
// "EVENT_USB (SUBMIT dev 1)".
std::string event_name(const ReplayEvent& event);
// Human-readable "key=value ..." rendering of an event's decoded fields.
std::string describe_fields(const ReplayEvent& event);

// ---- errors ----

class ReplayLogError : public std::runtime_error {
public:
    enum class Kind {
        NotReplayLog,       // header is not a QEMU replay log at all
        WrongVersion,       // QEMU replay log of another format version
        UnfinalizedHeader,  // all-zero version: QEMU did not finish the recording
        Truncated,          // data ends inside an event
        UnknownEvent,       // event code >= EVENT_COUNT
        InvalidPayload,     // a payload value QEMU could not have written or replayed
        TrailingData,       // bytes after EVENT_END
        Io,                 // cannot open or read the file
        Corrupt,            // format 2: a chunk or the index fails its checks
    };

    ReplayLogError(Kind kind, std::uint64_t offset, const std::string& message);

    [[nodiscard]] Kind kind() const noexcept { return kind_; }
    // Byte offset in the log where the problem was detected.
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }

private:
    Kind kind_;
    std::uint64_t offset_;
};

// ---- reader ----

struct ReaderOptions {
    // Accept a version field of 0, which is what a recording killed before
    // replay_finish() (or still running) leaves behind.
    bool allow_unfinalized_header = false;
    // Treat a cut inside the last event as the end of the log instead of an
    // error; the cut is reported by ReplayLogReader::truncation(). Meant for
    // killed recordings whose last stdio buffer was never flushed.
    bool tolerate_truncated_tail = false;
};

struct LogHeader {
    std::uint32_t version = 0;
    std::uint64_t reserved = 0;  // second header field; QEMU 10.0 leaves it zero
    // The recording ended cleanly: format 1, the version was written;
    // format 2, the index was.
    bool finalized = false;
    // 1: upstream's raw file; 2: QEMU Rewind's chunked file (log_container.hh).
    std::uint32_t format = 1;
};

struct Truncation {
    std::uint64_t offset = 0;        // where the data ran out
    std::uint64_t event_offset = 0;  // start of the cut event
    std::string message;
};

class ByteInput;  // defined in replay_log.cc
struct LogContainerInfo;  // log_container.hh

// Streams events one at a time without loading the file into memory.
// Not copyable; every method may throw ReplayLogError.
class ReplayLogReader {
public:
    explicit ReplayLogReader(const std::filesystem::path& path, ReaderOptions options = {});
    explicit ReplayLogReader(std::vector<std::uint8_t> bytes, ReaderOptions options = {});
    ~ReplayLogReader();
    ReplayLogReader(ReplayLogReader&&) noexcept;
    ReplayLogReader& operator=(ReplayLogReader&&) noexcept;
    ReplayLogReader(const ReplayLogReader&) = delete;
    ReplayLogReader& operator=(const ReplayLogReader&) = delete;

    // Next event, or nullopt at the end of the log (after EVENT_END, at the
    // end of the data on an event boundary, or at a tolerated truncation).
    std::optional<ReplayEvent> next();

    [[nodiscard]] const LogHeader& header() const noexcept { return header_; }
    [[nodiscard]] std::uint64_t size() const noexcept;                       // total bytes of the log
    [[nodiscard]] std::uint64_t icount() const noexcept { return icount_; }  // after last event
    [[nodiscard]] bool saw_end_event() const noexcept { return saw_end_; }
    [[nodiscard]] const std::optional<Truncation>& truncation() const noexcept { return truncation_; }
    // Format 2 only (nullptr for format 1): the chunks and the index.
    [[nodiscard]] const LogContainerInfo* container() const noexcept;
    // Format 2 only: goes on reading at the chunk from which every event at
    // or after `icount` is met; returns false (and does nothing) for
    // format 1. Events before `icount` may still come first.
    bool seek_near_icount(std::uint64_t icount);

private:
    void read_header();
    ReplayEvent decode_event();

    std::unique_ptr<ByteInput> input_;
    ReaderOptions options_;
    LogHeader header_;
    std::uint64_t icount_ = 0;
    std::uint64_t last_event_offset_ = 0;
    bool saw_end_ = false;
    bool done_ = false;
    std::optional<Truncation> truncation_;
};

// ---- summary ----

struct LogSummary {
    LogHeader header;
    std::uint64_t bytes = 0;
    std::uint64_t event_count = 0;
    std::uint64_t instructions = 0;                            // sum of EVENT_INSTRUCTION deltas
    std::array<std::uint64_t, kEventKindCount> kind_counts{};  // indexed by EventKind
    std::array<std::uint64_t, 256> code_counts{};              // indexed by code
    // Bytes fed from chardev backends to the guest: ASYNC_EVENT_CHAR_READ
    // payloads (serial/console input) plus EVENT_CHAR_READ_ALL payloads.
    std::uint64_t char_read_bytes = 0;
    std::uint64_t net_bytes = 0;  // ASYNC_EVENT_NET packet bytes
    std::uint64_t char_output_bytes = 0;  // EVENT_CHAR_OUTPUT: what the guest wrote
    std::uint64_t digests = 0;
    // usb-host: IN data of completed transfers (EVENT_USB_ASYNC COMPLETE),
    // the bytes the log holds for the devices' answers; and the log bytes
    // taken by USB events altogether (codes, descriptors, calls included).
    std::uint64_t usb_in_bytes = 0;
    std::uint64_t usb_event_bytes = 0;
    std::array<std::uint64_t, kUsbAsyncKindCount> usb_async_counts{};  // indexed by UsbAsyncKind
    std::array<std::uint64_t, kUsbCallCount> usb_call_counts{};         // indexed by UsbCall
    bool has_end_event = false;
    std::optional<Truncation> truncation;  // only with tolerate_truncated_tail

    [[nodiscard]] std::uint64_t count(EventKind kind) const {
        return kind_counts[static_cast<std::size_t>(kind)];
    }
    [[nodiscard]] std::uint64_t count(UsbAsyncKind kind) const {
        return usb_async_counts[static_cast<std::size_t>(kind)];
    }
    [[nodiscard]] std::uint64_t count(UsbCall call) const {
        return usb_call_counts[static_cast<std::size_t>(call)];
    }
};

// Reads the remaining events of `reader` and tallies them.
LogSummary summarize(ReplayLogReader& reader);
LogSummary summarize(const std::filesystem::path& path, ReaderOptions options = {});

}  // namespace qemu_rewind
