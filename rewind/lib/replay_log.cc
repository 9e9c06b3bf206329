#include "replay_log.hh"

#include "log_container.hh"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <span>
#include <sstream>
#include <type_traits>

namespace qemu_rewind {

namespace {

constexpr std::array<std::string_view, kEventKindCount> kKindNames = {
    "EVENT_INSTRUCTION", "EVENT_INTERRUPT",  "EVENT_EXCEPTION",     "EVENT_ASYNC",
    "EVENT_SHUTDOWN",    "EVENT_CHAR_WRITE", "EVENT_CHAR_READ_ALL", "EVENT_CHAR_READ_ALL_ERROR",
    "EVENT_AUDIO_OUT",   "EVENT_AUDIO_IN",   "EVENT_RANDOM",        "EVENT_CLOCK",
    "EVENT_CHECKPOINT",  "EVENT_END",        "EVENT_USB_ASYNC",     "EVENT_USB",
    "EVENT_DIGEST",      "EVENT_CHAR_OUTPUT",
};

constexpr std::array<std::string_view, 7> kAsyncNames = {
    "ASYNC_EVENT_BH",        "ASYNC_EVENT_BH_ONESHOT", "ASYNC_EVENT_INPUT", "ASYNC_EVENT_INPUT_SYNC",
    "ASYNC_EVENT_CHAR_READ", "ASYNC_EVENT_BLOCK",      "ASYNC_EVENT_NET",
};

constexpr std::array<std::string_view, 2> kClockNames = {"CLOCK_HOST", "CLOCK_VIRTUAL_RT"};

constexpr std::array<std::string_view, 9> kCheckpointNames = {
    "CHECKPOINT_CLOCK_WARP_START",
    "CHECKPOINT_CLOCK_WARP_ACCOUNT",
    "CHECKPOINT_RESET_REQUESTED",
    "CHECKPOINT_SUSPEND_REQUESTED",
    "CHECKPOINT_CLOCK_VIRTUAL",
    "CHECKPOINT_CLOCK_HOST",
    "CHECKPOINT_CLOCK_VIRTUAL_RT",
    "CHECKPOINT_INIT",
    "CHECKPOINT_RESET",
};

constexpr std::array<std::string_view, kShutdownCauseCount> kShutdownNames = {
    "SHUTDOWN_CAUSE_NONE",           "SHUTDOWN_CAUSE_HOST_ERROR",
    "SHUTDOWN_CAUSE_HOST_QMP_QUIT",  "SHUTDOWN_CAUSE_HOST_QMP_SYSTEM_RESET",
    "SHUTDOWN_CAUSE_HOST_SIGNAL",    "SHUTDOWN_CAUSE_HOST_UI",
    "SHUTDOWN_CAUSE_GUEST_SHUTDOWN", "SHUTDOWN_CAUSE_GUEST_RESET",
    "SHUTDOWN_CAUSE_GUEST_PANIC",    "SHUTDOWN_CAUSE_SUBSYSTEM_RESET",
    "SHUTDOWN_CAUSE_SNAPSHOT_LOAD",
};

// RR_EV_* and RRCall of hw/usb/host-libusb-replay.c; 0 is neither.
constexpr std::array<std::string_view, kUsbAsyncKindCount> kUsbAsyncNames = {
    "", "OPEN", "CLOSE", "COMPLETE",
};
constexpr std::array<std::string_view, kUsbCallCount> kUsbCallNames = {
    "",
    "OPEN", "ACTIVE_CONFIG", "STRING", "DRIVER_ACTIVE", "DETACH", "ATTACH", "CLAIM", "RELEASE",
    "SET_CONFIG", "SET_ALT", "CLEAR_HALT", "RESET", "ALLOC_STREAMS", "FREE_STREAMS", "SUBMIT", "CANCEL",
};
// libusb's public enums, as the fields of the USB records hold them.
constexpr std::array<std::string_view, 6> kUsbSpeedNames = {
    "unknown", "low", "full", "high", "super", "super-plus",
};
constexpr std::array<std::string_view, 5> kUsbTransferTypeNames = {
    "control", "isochronous", "bulk", "interrupt", "bulk-stream",
};
constexpr std::array<std::string_view, 7> kUsbTransferStatusNames = {
    "COMPLETED", "ERROR", "TIMED_OUT", "CANCELLED", "STALL", "NO_DEVICE", "OVERFLOW",
};
// enum libusb_error, negated: index i names -i.
constexpr std::array<std::string_view, 13> kUsbErrorNames = {
    "SUCCESS", "IO",       "INVALID_PARAM", "ACCESS",      "NO_DEVICE", "NOT_FOUND",     "BUSY",
    "TIMEOUT", "OVERFLOW", "PIPE",          "INTERRUPTED", "NO_MEM",    "NOT_SUPPORTED",
};

constexpr std::array<std::string_view, 5> kInputKindNames = {"key", "btn", "rel", "abs", "mtt"};
constexpr std::array<std::string_view, 10> kButtonNames = {
    "left", "middle", "right",      "wheel-up",    "wheel-down",
    "side", "extra",  "wheel-left", "wheel-right", "touch",
};
constexpr std::array<std::string_view, 2> kAxisNames = {"x", "y"};
constexpr std::array<std::string_view, 5> kMultiTouchNames = {"begin", "update", "end", "cancel", "data"};

// Stream-based stand-in for std::format, which GCC 12's libstdc++ lacks.
// Bytes are printed as numbers, not characters.
template <typename... Args>
std::string concat(const Args&... args) {
    std::ostringstream out;
    const auto put = [&out](const auto& arg) {
        using T = std::decay_t<decltype(arg)>;
        if constexpr (std::is_same_v<T, std::uint8_t> || std::is_same_v<T, std::int8_t>) {
            out << static_cast<int>(arg);
        } else {
            out << arg;
        }
    };
    (put(args), ...);
    return out.str();
}

// Lower-case hex digits, zero-padded to at least `digits`.
std::string hex_digits(std::uint64_t value, int digits) {
    std::ostringstream out;
    out << std::hex << std::setw(digits) << std::setfill('0') << value;
    return out.str();
}

std::string hex(std::uint64_t value, int digits = 1) { return "0x" + hex_digits(value, digits); }

template <std::size_t N>
std::string enum_label(const std::array<std::string_view, N>& names, std::uint32_t value) {
    if (value < N) {
        return std::string(names[value]);
    }
    return concat(value);
}

// Printable preview of a byte string, C-escaped and cut after `limit` bytes.
std::string preview_bytes(std::span<const std::uint8_t> data, std::size_t limit = 32) {
    std::string out = "\"";
    for (std::size_t i = 0; i < data.size() && i < limit; ++i) {
        const auto byte = data[i];
        switch (byte) {
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        default:
            if (byte >= 0x20 && byte < 0x7f) {
                out += static_cast<char>(byte);
            } else {
                out += "\\x" + hex_digits(byte, 2);
            }
        }
    }
    out += '"';
    if (data.size() > limit) {
        out += "...";
    }
    return out;
}

}  // namespace

// ---------------------------------------------------------------------------
// Names

std::optional<EventKind> event_kind_of(std::uint8_t c) {
    using enum EventKind;
    if (c >= code::kAsync && c <= code::kAsyncLast) return Async;
    if (c >= code::kShutdown && c <= code::kShutdownLast) return Shutdown;
    if (c >= code::kClock && c <= code::kClockLast) return Clock;
    if (c >= code::kCheckpoint && c <= code::kCheckpointLast) return Checkpoint;
    switch (c) {
    case code::kInstruction: return Instruction;
    case code::kInterrupt: return Interrupt;
    case code::kException: return Exception;
    case code::kCharWrite: return CharWrite;
    case code::kCharReadAll: return CharReadAll;
    case code::kCharReadAllError: return CharReadAllError;
    case code::kAudioOut: return AudioOut;
    case code::kAudioIn: return AudioIn;
    case code::kRandom: return Random;
    case code::kEnd: return End;
    case code::kUsbAsync: return UsbAsync;
    case code::kUsb: return Usb;
    case code::kDigest: return Digest;
    case code::kCharOutput: return CharOutput;
    default: return std::nullopt;
    }
}

std::string_view event_kind_name(EventKind kind) { return kKindNames[static_cast<std::size_t>(kind)]; }

std::string_view async_kind_name(AsyncKind kind) { return kAsyncNames[static_cast<std::size_t>(kind)]; }

std::string_view clock_kind_name(ClockKind kind) { return kClockNames[static_cast<std::size_t>(kind)]; }

std::string_view checkpoint_name(Checkpoint checkpoint) {
    return kCheckpointNames[static_cast<std::size_t>(checkpoint)];
}

std::string shutdown_cause_name(ShutdownCause cause) {
    if (cause < kShutdownCauseCount) {
        return std::string(kShutdownNames[cause]);
    }
    // EVENT_SHUTDOWN_LAST = EVENT_SHUTDOWN + SHUTDOWN_CAUSE__MAX, one past the causes.
    return concat("SHUTDOWN_CAUSE_", cause);
}

std::string_view usb_async_kind_name(UsbAsyncKind kind) {
    return kUsbAsyncNames[static_cast<std::size_t>(kind)];
}

std::string_view usb_call_name(UsbCall call) { return kUsbCallNames[static_cast<std::size_t>(call)]; }

std::string event_code_name(std::uint8_t c) {
    const auto kind = event_kind_of(c);
    if (!kind) {
        return concat("UNKNOWN_EVENT_", c);
    }
    switch (*kind) {
    case EventKind::Async: return std::string(kAsyncNames[c - code::kAsync]);
    case EventKind::Shutdown: return shutdown_cause_name(static_cast<ShutdownCause>(c - code::kShutdown));
    case EventKind::Clock: return std::string(kClockNames[c - code::kClock]);
    case EventKind::Checkpoint: return std::string(kCheckpointNames[c - code::kCheckpoint]);
    default: return std::string(event_kind_name(*kind));
    }
}

std::optional<AsyncKind> ReplayEvent::async_kind() const {
    if (kind != EventKind::Async) return std::nullopt;
    return static_cast<AsyncKind>(code - code::kAsync);
}

std::optional<ClockKind> ReplayEvent::clock_kind() const {
    if (kind != EventKind::Clock) return std::nullopt;
    return static_cast<ClockKind>(code - code::kClock);
}

std::optional<Checkpoint> ReplayEvent::checkpoint() const {
    if (kind != EventKind::Checkpoint) return std::nullopt;
    return static_cast<Checkpoint>(code - code::kCheckpoint);
}

std::optional<ShutdownCause> ReplayEvent::shutdown_cause() const {
    if (kind != EventKind::Shutdown) return std::nullopt;
    return static_cast<ShutdownCause>(code - code::kShutdown);
}

std::optional<UsbAsyncKind> ReplayEvent::usb_async_kind() const {
    if (std::holds_alternative<UsbOpenPayload>(payload)) return UsbAsyncKind::Open;
    if (std::holds_alternative<UsbClosePayload>(payload)) return UsbAsyncKind::Close;
    if (std::holds_alternative<UsbCompletePayload>(payload)) return UsbAsyncKind::Complete;
    return std::nullopt;
}

std::optional<UsbCall> ReplayEvent::usb_call() const {
    if (const auto* call = std::get_if<UsbCallPayload>(&payload)) return call->call;
    return std::nullopt;
}

std::optional<std::uint8_t> ReplayEvent::usb_device() const {
    if (const auto* p = std::get_if<UsbOpenPayload>(&payload)) return p->device;
    if (const auto* p = std::get_if<UsbClosePayload>(&payload)) return p->device;
    if (const auto* p = std::get_if<UsbCompletePayload>(&payload)) return p->device;
    if (const auto* p = std::get_if<UsbCallPayload>(&payload)) return p->device;
    return std::nullopt;
}

namespace {

// "EVENT_USB_ASYNC (COMPLETE dev 0)": the kind name, the sub-kind, the device.
std::string usb_event_name(std::uint8_t c, std::string_view sub_kind, std::uint8_t device) {
    return concat(event_code_name(c), " (", sub_kind, " dev ", device, ")");
}

// "rc=0", "rc=-4 (NO_DEVICE)": libusb's return value.
std::string usb_rc(std::int32_t rc) {
    if (rc < 0 && static_cast<std::size_t>(-static_cast<std::int64_t>(rc)) < kUsbErrorNames.size()) {
        return concat("rc=", rc, " (", kUsbErrorNames[static_cast<std::size_t>(-rc)], ")");
    }
    return concat("rc=", rc);
}

std::string usb_status(std::int32_t status) {
    if (status >= 0 && static_cast<std::size_t>(status) < kUsbTransferStatusNames.size()) {
        return std::string(kUsbTransferStatusNames[static_cast<std::size_t>(status)]);
    }
    return concat(status);
}

// "1d6b:0104" from a device descriptor (idVendor at 8, idProduct at 10, little-endian).
std::string usb_ids(const std::vector<std::uint8_t>& descriptor) {
    if (descriptor.size() < 12) {
        return "?";
    }
    const auto le16 = [&descriptor](std::size_t at) {
        return static_cast<std::uint32_t>(descriptor[at] | descriptor[at + 1] << 8);
    };
    return hex_digits(le16(8), 4) + ":" + hex_digits(le16(10), 4);
}

std::string usb_call_fields(const UsbCallPayload& p) {
    const std::string rc = usb_rc(p.rc);
    switch (p.call) {
    case UsbCall::Open:
    case UsbCall::Reset: return rc;
    case UsbCall::ActiveConfig: return concat(rc, " config=", p.out);
    case UsbCall::String:
        return concat("index=", p.arg, " size=", p.arg2, " ", rc, " data=", preview_bytes(p.data));
    case UsbCall::DriverActive:
    case UsbCall::Detach:
    case UsbCall::Attach:
    case UsbCall::Claim:
    case UsbCall::Release: return concat("interface=", p.arg, " ", rc);
    case UsbCall::SetConfig: return concat("config=", p.arg, " ", rc);
    case UsbCall::SetAlt: return concat("interface=", p.arg, " alt=", p.arg2, " ", rc);
    case UsbCall::ClearHalt: return concat("ep=", hex(p.arg, 2), " ", rc);
    case UsbCall::AllocStreams: return concat("streams=", p.arg, " endpoints=", p.arg2, " ", rc);
    case UsbCall::FreeStreams: return concat("endpoints=", p.arg, " ", rc);
    case UsbCall::Submit:
        return concat("ep=", hex(p.submit_endpoint(), 2),
                      " type=", enum_label(kUsbTransferTypeNames, p.submit_transfer_type()),
                      " len=", p.arg2, " ", rc, " seq=", p.out);
    case UsbCall::Cancel: return concat("ep=", hex(p.arg, 2), " seq=", p.arg2, " ", rc);
    }
    return concat("arg=", p.arg, " arg2=", p.arg2, " ", rc, " out=", p.out);
}

}  // namespace

std::string event_name(const ReplayEvent& event) {
    const auto device = event.usb_device();
    if (const auto kind = event.usb_async_kind()) {
        return usb_event_name(event.code, usb_async_kind_name(*kind), *device);
    }
    if (const auto call = event.usb_call()) {
        return usb_event_name(event.code, usb_call_name(*call), *device);
    }
    return event_code_name(event.code);
}

std::string describe_fields(const ReplayEvent& event) {
    struct Describer {
        const ReplayEvent& ev;
        std::string operator()(std::monostate) const { return {}; }
        std::string operator()(const InstructionPayload& p) const {
            return concat("count=", p.count, " icount_after=", ev.icount + p.count);
        }
        std::string operator()(const AsyncIdPayload& p) const { return concat("id=", p.id); }
        std::string operator()(const InputPayload& p) const {
            std::string out = "type=" + enum_label(kInputKindNames, static_cast<std::uint32_t>(p.type));
            switch (p.type) {
            case InputKind::Key:
                if (p.key_kind == KeyValueKind::Number) {
                    out += concat(" number=", p.key_number);
                } else {
                    out += concat(" qcode=", p.qcode);
                }
                out += concat(" down=", p.down ? 1 : 0);
                break;
            case InputKind::Btn:
                out += concat(" button=", enum_label(kButtonNames, p.button), " down=", p.down ? 1 : 0);
                break;
            case InputKind::Rel:
            case InputKind::Abs:
                out += concat(" axis=", enum_label(kAxisNames, p.axis), " value=", p.value);
                break;
            case InputKind::Mtt:
                out += concat(" mtt=", enum_label(kMultiTouchNames, p.mtt_type), " slot=", p.slot,
                              " tracking_id=", p.tracking_id, " axis=", enum_label(kAxisNames, p.axis),
                              " value=", p.value);
                break;
            }
            return out;
        }
        std::string operator()(const CharReadPayload& p) const {
            return concat("chardev=", p.chardev, " len=", p.data.size(), " data=", preview_bytes(p.data));
        }
        std::string operator()(const NetPayload& p) const {
            return concat("filter=", p.filter, " flags=", hex(p.flags), " len=", p.packet.size());
        }
        std::string operator()(const CharWritePayload& p) const {
            return concat("result=", p.result, " offset=", p.offset);
        }
        std::string operator()(const CharReadAllPayload& p) const {
            return concat("len=", p.data.size(), " data=", preview_bytes(p.data));
        }
        std::string operator()(const CharReadAllErrorPayload& p) const { return concat("result=", p.result); }
        std::string operator()(const AudioOutPayload& p) const { return concat("played=", p.played); }
        std::string operator()(const AudioInPayload& p) const {
            return concat("recorded=", p.recorded, " write_pos=", p.write_pos, " samples=", p.samples.size());
        }
        std::string operator()(const RandomPayload& p) const {
            return concat("result=", p.result, " len=", p.data.size());
        }
        std::string operator()(const ClockPayload& p) const { return concat("value=", p.value); }
        std::string operator()(const DigestPayload& p) const {
            std::string out = concat("seq=", p.sequence);
            for (std::size_t i = 0; i < p.cpus.size(); ++i) {
                out += concat(" cpu", i, ".pc=", hex(p.cpus[i].pc), " cpu", i, ".sp=", hex(p.cpus[i].sp));
            }
            out += p.has_ram ? concat(" ram=", hex(p.ram_hash, 8)) : std::string(" ram=-");
            return p.version >= 2 ? out + concat(" devices=", p.devices.size()) : out;
        }
        std::string operator()(const CharOutputPayload& p) const {
            return concat("chardev=", p.chardev, " len=", p.data.size(), " data=", preview_bytes(p.data));
        }
        std::string operator()(const UsbOpenPayload& p) const {
            std::string ports;
            for (const auto port : p.ports) {
                ports += (ports.empty() ? "" : ".") + concat(port);
            }
            return concat("bus=", p.bus, " addr=", p.address, " ports=", ports.empty() ? "-" : ports,
                          " speed=", enum_label(kUsbSpeedNames, p.speed),
                          " id=", usb_ids(p.device_descriptor), " configs=", p.configs.size());
        }
        std::string operator()(const UsbClosePayload&) const { return {}; }
        std::string operator()(const UsbCompletePayload& p) const {
            std::string out = concat("ep=", hex(p.endpoint, 2), " seq=", p.seq,
                                     " status=", usb_status(p.status), " len=", p.actual_length,
                                     " in=", p.data.size());
            if (!p.packets.empty()) {
                out += concat(" packets=", p.packets.size());
            }
            return out;
        }
        std::string operator()(const UsbCallPayload& p) const { return usb_call_fields(p); }
    };
    return std::visit(Describer{event}, event.payload);
}

// ---------------------------------------------------------------------------
// Errors

ReplayLogError::ReplayLogError(Kind kind, std::uint64_t offset, const std::string& message)
    : std::runtime_error(message), kind_(kind), offset_(offset) {}

// ---------------------------------------------------------------------------
// Byte input: a whole buffer in memory, or a file read in chunks so large
// logs are streamed. The total size is fixed at open so every length in the
// log can be checked against what is really left.

class ByteInput {
public:
    explicit ByteInput(std::vector<std::uint8_t> bytes) {
        if (is_log_v2(bytes)) {
            open_v2(std::make_unique<LogContainer>(std::move(bytes)));
            return;
        }
        buffer_ = std::move(bytes);
        size_ = buffer_.size();
        buffer_end_ = buffer_.size();
    }

    explicit ByteInput(const std::filesystem::path& path) {
        // file_size() also rejects directories, which ifstream would "open".
        std::error_code ec;
        size_ = std::filesystem::file_size(path, ec);
        if (ec) {
            throw ReplayLogError(ReplayLogError::Kind::Io, 0,
                                 concat("cannot read replay log '", path.string(), "': ", ec.message()));
        }
        errno = 0;
        file_.open(path, std::ios::binary);
        if (!file_) {
            const std::string reason = errno != 0 ? std::strerror(errno) : "open failed";
            throw ReplayLogError(ReplayLogError::Kind::Io, 0,
                                 concat("cannot open replay log '", path.string(), "': ", reason));
        }
        std::array<std::uint8_t, 8> magic{};
        file_.read(reinterpret_cast<char*>(magic.data()), magic.size());
        if (static_cast<std::size_t>(file_.gcount()) == magic.size() && is_log_v2(magic)) {
            file_.close();
            open_v2(std::make_unique<LogContainer>(path));
            return;
        }
        file_.clear();
        file_.seekg(0);
        from_file_ = true;
        buffer_.resize(kChunkSize);
    }

    [[nodiscard]] std::uint64_t size() const noexcept { return size_; }
    [[nodiscard]] std::uint64_t offset() const noexcept { return offset_; }
    [[nodiscard]] std::uint64_t remaining() const noexcept { return size_ - offset_; }
    [[nodiscard]] const LogContainer* container() const noexcept { return container_.get(); }

    // Copies out.size() bytes; the caller has checked remaining().
    void read(std::span<std::uint8_t> out) {
        std::size_t done = 0;
        while (done < out.size()) {
            if (buffer_pos_ == buffer_end_) {
                refill();
            }
            const std::size_t n = std::min(out.size() - done, buffer_end_ - buffer_pos_);
            std::copy_n(buffer_.begin() + static_cast<std::ptrdiff_t>(buffer_pos_), n,
                        out.begin() + static_cast<std::ptrdiff_t>(done));
            buffer_pos_ += n;
            offset_ += n;
            done += n;
        }
    }

    // Format 2: continue at stream offset `offset` (a chunk start).
    void seek(std::uint64_t offset) {
        offset_ = offset;
        buffer_pos_ = buffer_end_ = 0;
    }

private:
    static constexpr std::size_t kChunkSize = 1 << 16;

    // The stream of a format 2 file starts with upstream's header, which
    // the file does not hold: make it up from the file's version.
    void open_v2(std::unique_ptr<LogContainer> container) {
        container_ = std::move(container);
        const std::uint32_t v = container_->info().replay_version;
        buffer_ = {std::uint8_t(v >> 24), std::uint8_t(v >> 16), std::uint8_t(v >> 8), std::uint8_t(v), 0, 0, 0, 0,
                   0, 0, 0, 0};
        buffer_end_ = buffer_.size();
        size_ = container_->info().stream_end;
    }

    void refill() {
        if (container_) {
            if (offset_ >= size_) {
                throw ReplayLogError(ReplayLogError::Kind::Io, offset_,
                                     "internal error: read past the end of the log");
            }
            const std::size_t i = container_->chunk_at(offset_);
            buffer_ = container_->read_chunk(i);
            buffer_pos_ = static_cast<std::size_t>(offset_ - container_->info().chunks[i].stream_offset);
            buffer_end_ = buffer_.size();
            return;
        }
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunkSize, remaining()));
        if (!from_file_ || want == 0) {
            throw ReplayLogError(ReplayLogError::Kind::Io, offset_,
                                 "internal error: read past the end of the log");
        }
        file_.read(reinterpret_cast<char*>(buffer_.data()), static_cast<std::streamsize>(want));
        const auto got = static_cast<std::size_t>(file_.gcount());
        if (got != want) {
            // The file shrank after it was opened.
            throw ReplayLogError(
                ReplayLogError::Kind::Io, offset_ + got,
                concat("read error at offset ", offset_ + got, ": file is shorter than its size at open"));
        }
        buffer_pos_ = 0;
        buffer_end_ = got;
    }

    std::vector<std::uint8_t> buffer_;
    std::ifstream file_;
    bool from_file_ = false;
    std::unique_ptr<LogContainer> container_;
    std::uint64_t size_ = 0;
    std::uint64_t offset_ = 0;
    std::size_t buffer_pos_ = 0;
    std::size_t buffer_end_ = 0;
};

namespace {

// Reads the fields of one event, mirroring replay_get_byte/dword/qword/array
// from replay/replay-internal.c, and turns short data into a truncation error
// naming the event being decoded.
class FieldReader {
public:
    FieldReader(ByteInput& input, std::uint64_t event_offset, std::uint8_t event_code)
        : in_(input), event_offset_(event_offset), event_code_(event_code) {}

    std::uint8_t u8() { return static_cast<std::uint8_t>(big_endian(1)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(big_endian(4)); }
    std::uint64_t u64() { return big_endian(8); }
    std::int32_t i32() { return static_cast<std::int32_t>(u32()); }
    std::int64_t i64() { return static_cast<std::int64_t>(u64()); }

    // replay_get_array(): u32 length, then the bytes. The length is checked
    // against the data left before allocating anything.
    std::vector<std::uint8_t> array() {
        const std::uint64_t length_offset = in_.offset();
        const std::uint32_t length = u32();
        if (length > in_.remaining()) {
            throw truncated(concat("array length ", length, " at offset ", length_offset, " exceeds the ",
                                   in_.remaining(), " bytes left"));
        }
        std::vector<std::uint8_t> bytes(length);
        in_.read(bytes);
        return bytes;
    }

    // For repeated fixed-size records: checks `count * record_size` up front.
    void require_records(std::uint64_t count, std::uint64_t record_size, std::string_view what) {
        if (count > in_.remaining() / record_size) {
            throw truncated(concat(count, " ", what, " records of ", record_size, " bytes exceed the ",
                                   in_.remaining(), " bytes left"));
        }
    }

    [[nodiscard]] ReplayLogError truncated(const std::string& detail) const {
        return ReplayLogError(ReplayLogError::Kind::Truncated, in_.size(),
                              concat("truncated at offset ", in_.size(), " inside ", event_label(),
                                     " (event at offset ", event_offset_, "): ", detail));
    }

    [[nodiscard]] ReplayLogError invalid(std::uint64_t at, const std::string& detail) const {
        return ReplayLogError(ReplayLogError::Kind::InvalidPayload, at,
                              concat("invalid ", event_label(), " at offset ", event_offset_, ": ", detail));
    }

    [[nodiscard]] std::uint64_t offset() const { return in_.offset(); }

    // Names what the payload read so far says the event is, for later
    // messages: USB events carry their sub-kind in the payload.
    void name_sub_kind(std::string sub_kind) { sub_kind_ = std::move(sub_kind); }

private:
    std::uint64_t big_endian(std::size_t width) {
        if (in_.remaining() < width) {
            throw truncated(concat("needs ", width, " more bytes at offset ", in_.offset(), ", ",
                                   in_.remaining(), " left"));
        }
        std::array<std::uint8_t, 8> raw{};
        in_.read(std::span(raw).first(width));
        std::uint64_t value = 0;
        for (std::size_t i = 0; i < width; ++i) {
            value = (value << 8) | raw[i];
        }
        return value;
    }

    // "EVENT_ASYNC (ASYNC_EVENT_CHAR_READ)", "EVENT_USB_ASYNC (COMPLETE dev 0)"
    // or just "EVENT_CHAR_WRITE".
    [[nodiscard]] std::string event_label() const {
        const auto kind_name = std::string(event_kind_name(*event_kind_of(event_code_)));
        if (!sub_kind_.empty()) {
            return concat(kind_name, " (", sub_kind_, ")");
        }
        const auto code_name = event_code_name(event_code_);
        return kind_name == code_name ? kind_name : concat(kind_name, " (", code_name, ")");
    }

    ByteInput& in_;
    std::uint64_t event_offset_;
    std::uint8_t event_code_;
    std::string sub_kind_;
};

// replay_read_input_event() in replay/replay-input.c.
InputPayload decode_input(FieldReader& fields) {
    InputPayload input;
    const auto type_offset = fields.offset();
    const std::uint32_t type = fields.u32();
    if (type >= kInputKindNames.size()) {
        throw fields.invalid(type_offset, concat("input event type ", type, " is not an InputEventKind"));
    }
    input.type = static_cast<InputKind>(type);
    switch (input.type) {
    case InputKind::Key: {
        const auto kind_offset = fields.offset();
        const std::uint32_t key_kind = fields.u32();
        if (key_kind == static_cast<std::uint32_t>(KeyValueKind::Number)) {
            input.key_kind = KeyValueKind::Number;
            input.key_number = fields.i64();
        } else if (key_kind == static_cast<std::uint32_t>(KeyValueKind::Qcode)) {
            input.key_kind = KeyValueKind::Qcode;
            input.qcode = fields.u32();
        } else {
            throw fields.invalid(kind_offset, concat("key value kind ", key_kind, " is not a KeyValueKind"));
        }
        input.down = fields.u8() != 0;
        break;
    }
    case InputKind::Btn:
        input.button = fields.u32();
        input.down = fields.u8() != 0;
        break;
    case InputKind::Rel:
    case InputKind::Abs:
        input.axis = fields.u32();
        input.value = fields.i64();
        break;
    case InputKind::Mtt:
        input.mtt_type = fields.u32();
        input.slot = fields.i64();
        input.tracking_id = fields.i64();
        input.axis = fields.u32();
        input.value = fields.i64();
        break;
    }
    return input;
}

// replay_read_event() in replay/replay-events.c, which delegates to the
// per-device loaders for input, char and net.
EventPayload decode_async(FieldReader& fields, AsyncKind kind) {
    switch (kind) {
    case AsyncKind::Bh:
    case AsyncKind::BhOneshot:
    case AsyncKind::Block: return AsyncIdPayload{fields.u64()};
    case AsyncKind::Input: return decode_input(fields);
    case AsyncKind::InputSync: return std::monostate{};
    case AsyncKind::CharRead: {
        // replay_event_char_read_load() in replay/replay-char.c.
        CharReadPayload read;
        read.chardev = fields.u8();
        read.data = fields.array();
        return read;
    }
    case AsyncKind::Net: {
        // replay_event_net_load() in replay/replay-net.c.
        NetPayload net;
        net.filter = fields.u8();
        net.flags = fields.u32();
        net.packet = fields.array();
        return net;
    }
    }
    return std::monostate{};
}

// replay_audio_in() in replay/replay-audio.c. Its sample loop runs from
// (wpos - recorded) mod size up to wpos, i.e. `recorded mod size` pairs, and
// the ring size is not in the log. Captures are at most `size` samples, so
// this reads `recorded` pairs; only a capture of exactly `size` samples
// (which QEMU logs with no pairs at all) would be misread.
AudioInPayload decode_audio_in(FieldReader& fields) {
    AudioInPayload audio;
    audio.recorded = fields.u64();
    audio.write_pos = fields.u64();
    fields.require_records(audio.recorded, 16, "audio sample");
    audio.samples.resize(static_cast<std::size_t>(audio.recorded));
    for (auto& sample : audio.samples) {
        sample.left = fields.u64();
        sample.right = fields.u64();
    }
    return audio;
}

// rr_snapshot_load() in hw/usb/host-libusb-replay.c.
UsbOpenPayload decode_usb_open(FieldReader& fields, std::uint8_t device) {
    UsbOpenPayload open;
    open.device = device;
    open.bus = fields.u8();
    open.address = fields.u8();
    open.speed = fields.u8();
    open.ports = fields.array();
    open.device_descriptor = fields.array();
    const auto count_offset = fields.offset();
    const std::uint8_t configs = fields.u8();
    // QEMU reads at most RR_MAX_CONFIGS arrays and would take the rest
    // for the next event.
    if (configs > kUsbMaxConfigs) {
        throw fields.invalid(count_offset, concat(configs, " configuration descriptors, QEMU records "
                                                  "at most ", kUsbMaxConfigs));
    }
    for (std::uint8_t i = 0; i < configs; ++i) {
        open.configs.push_back(fields.array());
    }
    return open;
}

// rr_event_load() in hw/usb/host-libusb-replay.c, COMPLETE branch.
UsbCompletePayload decode_usb_complete(FieldReader& fields, std::uint8_t device) {
    UsbCompletePayload complete;
    complete.device = device;
    complete.endpoint = fields.u8();
    complete.seq = fields.u32();
    complete.status = fields.i32();
    complete.actual_length = fields.u32();
    complete.data = fields.array();
    const auto count_offset = fields.offset();
    const std::uint32_t packets = fields.u32();
    if (packets > kUsbMaxIsoPackets) {
        throw fields.invalid(count_offset, concat(packets, " isochronous packets, QEMU accepts at most ",
                                                  kUsbMaxIsoPackets));
    }
    fields.require_records(packets, 8, "isochronous packet");
    complete.packets.resize(packets);
    for (auto& packet : complete.packets) {
        packet.status = fields.i32();
        packet.actual_length = fields.u32();
    }
    return complete;
}

// rr_event_save() / rr_event_load() in hw/usb/host-libusb-replay.c.
EventPayload decode_usb_async(FieldReader& fields) {
    const auto kind_offset = fields.offset();
    const std::uint8_t kind = fields.u8();
    if (kind == 0 || kind >= kUsbAsyncKindCount) {
        throw fields.invalid(kind_offset, concat("usb-host event kind ", kind,
                                                 " is not OPEN (1), CLOSE (2) or COMPLETE (3)"));
    }
    const auto name = kUsbAsyncNames[kind];
    fields.name_sub_kind(std::string(name));
    const std::uint8_t device = fields.u8();
    fields.name_sub_kind(concat(name, " dev ", device));
    switch (static_cast<UsbAsyncKind>(kind)) {
    case UsbAsyncKind::Open: return decode_usb_open(fields, device);
    case UsbAsyncKind::Close: return UsbClosePayload{device};
    case UsbAsyncKind::Complete: return decode_usb_complete(fields, device);
    }
    return std::monostate{};
}

// digest_write() / rewind_digest_check() in replay/rewind-digest.c.
DigestPayload decode_digest(FieldReader& fields) {
    DigestPayload digest;
    const auto version_offset = fields.offset();
    const std::uint8_t version = fields.u8();
    if (version < 1 || version > kDigestVersion) {
        throw fields.invalid(version_offset, concat("digest version ", version, ", expected 1 to ", kDigestVersion));
    }
    digest.version = version;
    digest.sequence = fields.u32();
    digest.has_ram = (fields.u8() & 1) != 0;
    // A record count, bounded by what QEMU writes and by the bytes left.
    auto count = [&fields](std::uint32_t max, std::uint64_t record_size, std::string_view noun,
                           std::string_view record) {
        const auto offset = fields.offset();
        const std::uint32_t n = fields.u32();
        if (n > max) {
            throw fields.invalid(offset, concat("a digest of ", n, " ", noun));
        }
        fields.require_records(n, record_size, record);
        return n;
    };
    digest.cpus.resize(count(kDigestMaxCpus, 20, "CPUs", "digest CPU"));
    for (auto& cpu : digest.cpus) {
        cpu.pc = fields.u64();
        cpu.sp = fields.u64();
        cpu.hash = fields.u32();
    }
    digest.ram_hash = fields.u32();
    if (version >= 2) {
        digest.devices.resize(count(kDigestMaxDevices, 8, "device sections", "digest device"));
        for (auto& d : digest.devices) {
            d.name = fields.u32();
            d.state = fields.u32();
        }
    }
    return digest;
}

// rr_sync_save() / rr_sync_load() in hw/usb/host-libusb-replay.c.
UsbCallPayload decode_usb_call(FieldReader& fields) {
    UsbCallPayload call;
    const auto call_offset = fields.offset();
    const std::uint8_t code = fields.u8();
    // Unknown calls cannot be read on: whether an array follows depends on the call.
    if (code == 0 || code >= kUsbCallCount) {
        throw fields.invalid(call_offset, concat("usb-host call ", code, " is not a known libusb call (1..",
                                                 kUsbCallCount - 1, ")"));
    }
    call.call = static_cast<UsbCall>(code);
    fields.name_sub_kind(std::string(kUsbCallNames[code]));
    call.device = fields.u8();
    fields.name_sub_kind(concat(kUsbCallNames[code], " dev ", call.device));
    call.arg = fields.u32();
    call.arg2 = fields.u32();
    call.rc = fields.i32();
    call.out = fields.u32();
    if (call.call == UsbCall::String) {
        call.data = fields.array();
    }
    return call;
}

}  // namespace

// ---------------------------------------------------------------------------
// Reader

ReplayLogReader::ReplayLogReader(const std::filesystem::path& path, ReaderOptions options)
    : input_(std::make_unique<ByteInput>(path)), options_(options) {
    read_header();
}

ReplayLogReader::ReplayLogReader(std::vector<std::uint8_t> bytes, ReaderOptions options)
    : input_(std::make_unique<ByteInput>(std::move(bytes))), options_(options) {
    read_header();
}

ReplayLogReader::~ReplayLogReader() = default;
ReplayLogReader::ReplayLogReader(ReplayLogReader&&) noexcept = default;
ReplayLogReader& ReplayLogReader::operator=(ReplayLogReader&&) noexcept = default;

std::uint64_t ReplayLogReader::size() const noexcept { return input_->size(); }

const LogContainerInfo* ReplayLogReader::container() const noexcept {
    const LogContainer* c = input_->container();
    return c ? &c->info() : nullptr;
}

bool ReplayLogReader::seek_near_icount(std::uint64_t icount) {
    const LogContainer* c = input_->container();
    if (!c || c->info().chunks.empty()) {
        return false;
    }
    const LogChunkInfo& chunk = c->info().chunks[c->chunk_for_icount(icount)];
    if (chunk.stream_offset < input_->offset()) {
        return false;  // never backwards: the caller is already past it
    }
    input_->seek(chunk.stream_offset);
    icount_ = chunk.first_icount;
    return true;
}

// replay_enable() checks the version and then seeks to HEADER_SIZE;
// replay_finish() writes the version last, so 0 means "never finalized".
void ReplayLogReader::read_header() {
    using Kind = ReplayLogError::Kind;
    if (input_->size() < kReplayHeaderSize) {
        throw ReplayLogError(Kind::NotReplayLog, 0,
                             concat("not a QEMU replay log: ", input_->size(), " bytes is shorter than the ",
                                    kReplayHeaderSize, "-byte header"));
    }
    FieldReader fields(*input_, 0, code::kEnd);
    header_.version = fields.u32();
    header_.reserved = fields.u64();

    if (const LogContainer* container = input_->container()) {
        const LogContainerInfo& info = container->info();
        header_.format = kLogV2Format;
        header_.finalized = info.indexed;
        if (header_.version != kReplayVersion) {
            throw ReplayLogError(Kind::WrongVersion, 12,
                                 concat("QEMU Rewind log of replay version ", hex(header_.version, 6), ", expected ",
                                        hex(kReplayVersion, 6)));
        }
        if (!info.indexed && !options_.allow_unfinalized_header) {
            throw ReplayLogError(
                Kind::UnfinalizedHeader, info.file_size - info.unreadable_tail,
                concat("the log has no index: the recording did not finish (QEMU was killed or is still "
                       "recording); its ",
                       info.chunks.size(), " complete chunks are readable",
                       info.tail_problem.empty() ? "" : concat(", then ", info.tail_problem)));
        }
        return;
    }
    if (header_.version == kReplayVersion) {
        header_.finalized = true;
        return;
    }
    if (header_.version == 0) {
        if (options_.allow_unfinalized_header) {
            return;
        }
        throw ReplayLogError(Kind::UnfinalizedHeader, 0,
                             "replay log header has no version (0): the recording was not finalized "
                             "(QEMU was killed or is still recording)");
    }
    // Every released REPLAY_VERSION has the form 0xe020nn.
    if ((header_.version & 0xffffff00u) == 0x00e02000u) {
        throw ReplayLogError(
            Kind::WrongVersion, 0,
            concat("replay log version ", hex(header_.version, 6), ", expected ", hex(kReplayVersion, 6)));
    }
    throw ReplayLogError(Kind::NotReplayLog, 0,
                         concat("not a QEMU replay log (header starts with ", hex(header_.version, 8), ")"));
}

std::optional<ReplayEvent> ReplayLogReader::next() {
    if (done_) {
        return std::nullopt;
    }
    if (input_->remaining() == 0) {
        // Ending on an event boundary without EVENT_END is what a recording
        // killed after a flush looks like; not an error.
        done_ = true;
        return std::nullopt;
    }
    try {
        ReplayEvent event = decode_event();
        if (event.kind == EventKind::End) {
            saw_end_ = true;
            done_ = true;
            if (input_->remaining() != 0) {
                throw ReplayLogError(
                    ReplayLogError::Kind::TrailingData, input_->offset(),
                    concat(input_->remaining(), " bytes of trailing data after EVENT_END at offset ",
                           event.offset));
            }
        }
        return event;
    } catch (const ReplayLogError& error) {
        done_ = true;
        if (error.kind() == ReplayLogError::Kind::Truncated && options_.tolerate_truncated_tail) {
            truncation_ = Truncation{error.offset(), last_event_offset_, error.what()};
            return std::nullopt;
        }
        throw;
    }
}

ReplayEvent ReplayLogReader::decode_event() {
    ReplayEvent event;
    event.offset = input_->offset();
    last_event_offset_ = event.offset;
    event.icount = icount_;

    FieldReader code_reader(*input_, event.offset, code::kEnd);
    event.code = code_reader.u8();
    const auto kind = event_kind_of(event.code);
    if (!kind) {
        throw ReplayLogError(ReplayLogError::Kind::UnknownEvent, event.offset,
                             concat("unknown event code ", event.code, " (", hex(event.code, 2),
                                    ") at offset ", event.offset));
    }
    event.kind = *kind;

    FieldReader fields(*input_, event.offset, event.code);
    switch (event.kind) {
    case EventKind::Instruction: {
        // replay_advance_current_icount() / replay_fetch_data_kind().
        const std::uint32_t count = fields.u32();
        event.payload = InstructionPayload{count};
        icount_ += count;
        break;
    }
    case EventKind::Async:
        // replay_save_event() / replay_read_event().
        event.payload = decode_async(fields, *event.async_kind());
        break;
    case EventKind::CharWrite: {
        // replay_char_write_event_load().
        CharWritePayload write;
        write.result = fields.i32();
        write.offset = fields.i32();
        event.payload = write;
        break;
    }
    case EventKind::CharReadAll:
        // replay_char_read_all_load(), EVENT_CHAR_READ_ALL branch.
        event.payload = CharReadAllPayload{fields.array()};
        break;
    case EventKind::CharReadAllError:
        // replay_char_read_all_load(), EVENT_CHAR_READ_ALL_ERROR branch.
        event.payload = CharReadAllErrorPayload{fields.i32()};
        break;
    case EventKind::AudioOut:
        // replay_audio_out().
        event.payload = AudioOutPayload{fields.u64()};
        break;
    case EventKind::AudioIn: event.payload = decode_audio_in(fields); break;
    case EventKind::Random: {
        // replay_read_random().
        RandomPayload random;
        random.result = fields.i32();
        random.data = fields.array();
        event.payload = std::move(random);
        break;
    }
    case EventKind::Clock:
        // replay_read_next_clock().
        event.payload = ClockPayload{fields.i64()};
        break;
    case EventKind::UsbAsync:
        // replay_save_event() / replay_read_event(), then the usb-host callbacks.
        event.payload = decode_usb_async(fields);
        break;
    case EventKind::Usb:
        // replay_usb_sync_save_begin(), then rr_sync_save().
        event.payload = decode_usb_call(fields);
        break;
    case EventKind::Digest: event.payload = decode_digest(fields); break;
    case EventKind::CharOutput: {
        // rewind_char_output_flush().
        CharOutputPayload output;
        output.chardev = fields.u8();
        output.data = fields.array();
        event.payload = std::move(output);
        break;
    }
    case EventKind::Interrupt:   // replay_interrupt()
    case EventKind::Exception:   // replay_exception()
    case EventKind::Shutdown:    // replay_shutdown_request(): cause is in the code
    case EventKind::Checkpoint:  // replay_checkpoint(): kind is in the code
    case EventKind::End:         // replay_finish()
        break;
    }
    event.size = input_->offset() - event.offset;
    return event;
}

// ---------------------------------------------------------------------------
// Summary

LogSummary summarize(ReplayLogReader& reader) {
    LogSummary summary;
    summary.header = reader.header();
    summary.bytes = reader.size();
    while (auto event = reader.next()) {
        ++summary.event_count;
        ++summary.kind_counts[static_cast<std::size_t>(event->kind)];
        ++summary.code_counts[event->code];
        if (const auto* read = std::get_if<CharReadPayload>(&event->payload)) {
            summary.char_read_bytes += read->data.size();
        } else if (const auto* read_all = std::get_if<CharReadAllPayload>(&event->payload)) {
            summary.char_read_bytes += read_all->data.size();
        } else if (const auto* net = std::get_if<NetPayload>(&event->payload)) {
            summary.net_bytes += net->packet.size();
        } else if (const auto* complete = std::get_if<UsbCompletePayload>(&event->payload)) {
            summary.usb_in_bytes += complete->data.size();
        } else if (const auto* output = std::get_if<CharOutputPayload>(&event->payload)) {
            summary.char_output_bytes += output->data.size();
        } else if (std::holds_alternative<DigestPayload>(event->payload)) {
            ++summary.digests;
        }
        if (const auto usb_kind = event->usb_async_kind()) {
            ++summary.usb_async_counts[static_cast<std::size_t>(*usb_kind)];
            summary.usb_event_bytes += event->size;
        } else if (const auto call = event->usb_call()) {
            ++summary.usb_call_counts[static_cast<std::size_t>(*call)];
            summary.usb_event_bytes += event->size;
        }
    }
    summary.instructions = reader.icount();
    summary.has_end_event = reader.saw_end_event();
    summary.truncation = reader.truncation();
    return summary;
}

LogSummary summarize(const std::filesystem::path& path, ReaderOptions options) {
    ReplayLogReader reader(path, options);
    return summarize(reader);
}

}  // namespace qemu_rewind
