// Writes QEMU replay logs in memory for the unit tests: the writer mirrors
// QEMU's replay_put_* functions and the record-side callers that use them
// (QEMU Rewind's usb-host and char-output records included).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "replay_log.hh"

namespace qemu_rewind::testing {

// Builds a log the way QEMU records one. Method names follow the QEMU
// functions they mirror.
class LogWriter {
public:
    using Bytes = std::vector<std::uint8_t>;

    // replay_finish() writes the version; replay_enable() leaves the 8-byte
    // field after it untouched (zero).
    explicit LogWriter(std::uint32_t version = kReplayVersion) {
        put_dword(version);
        put_qword(0);
    }

    // replay/replay-internal.c
    void put_byte(std::uint8_t byte) { bytes_.push_back(byte); }
    void put_event(std::uint8_t event) { put_byte(event); }
    void put_word(std::uint16_t word) {
        put_byte(static_cast<std::uint8_t>(word >> 8));
        put_byte(static_cast<std::uint8_t>(word));
    }
    void put_dword(std::uint32_t dword) {
        put_word(static_cast<std::uint16_t>(dword >> 16));
        put_word(static_cast<std::uint16_t>(dword));
    }
    void put_qword(std::int64_t qword) {
        put_dword(static_cast<std::uint32_t>(static_cast<std::uint64_t>(qword) >> 32));
        put_dword(static_cast<std::uint32_t>(qword));
    }
    void put_array(std::span<const std::uint8_t> buf) {
        put_dword(static_cast<std::uint32_t>(buf.size()));
        bytes_.insert(bytes_.end(), buf.begin(), buf.end());
    }

    // replay_advance_current_icount()
    void instructions(std::uint32_t diff) {
        put_event(code::kInstruction);
        put_dword(diff);
    }
    void interrupt() { put_event(code::kInterrupt); }  // replay_interrupt()
    void exception() { put_event(code::kException); }  // replay_exception()
    // replay_shutdown_request()
    void shutdown_request(ShutdownCause cause) {
        put_event(static_cast<std::uint8_t>(code::kShutdown + cause));
    }
    // replay_checkpoint()
    void checkpoint(Checkpoint cp) {
        put_event(static_cast<std::uint8_t>(code::kCheckpoint + static_cast<int>(cp)));
    }
    // replay_save_clock()
    void save_clock(ClockKind kind, std::int64_t clock) {
        put_event(static_cast<std::uint8_t>(code::kClock + static_cast<int>(kind)));
        put_qword(clock);
    }
    // replay_save_event(): header of every async event
    void async(AsyncKind kind) {
        put_event(static_cast<std::uint8_t>(code::kAsync + static_cast<int>(kind)));
    }
    // replay_save_event() for BH, BH_ONESHOT and BLOCK
    void async_with_id(AsyncKind kind, std::uint64_t id) {
        async(kind);
        put_qword(static_cast<std::int64_t>(id));
    }
    // replay_event_char_read_save()
    void char_read(std::uint8_t chardev, std::span<const std::uint8_t> buf) {
        async(AsyncKind::CharRead);
        put_byte(chardev);
        put_array(buf);
    }
    // replay_event_net_save()
    void net_packet(std::uint8_t filter, std::uint32_t flags, std::span<const std::uint8_t> packet) {
        async(AsyncKind::Net);
        put_byte(filter);
        put_dword(flags);
        put_array(packet);
    }
    // replay_save_input_event(), one method per InputEventKind
    void input_key_number(std::int64_t number, bool down) {
        async(AsyncKind::Input);
        put_dword(0);  // INPUT_EVENT_KIND_KEY
        put_dword(0);  // KEY_VALUE_KIND_NUMBER
        put_qword(number);
        put_byte(down);
    }
    void input_key_qcode(std::uint32_t qcode, bool down) {
        async(AsyncKind::Input);
        put_dword(0);  // INPUT_EVENT_KIND_KEY
        put_dword(1);  // KEY_VALUE_KIND_QCODE
        put_dword(qcode);
        put_byte(down);
    }
    void input_btn(std::uint32_t button, bool down) {
        async(AsyncKind::Input);
        put_dword(1);  // INPUT_EVENT_KIND_BTN
        put_dword(button);
        put_byte(down);
    }
    void input_move(bool absolute, std::uint32_t axis, std::int64_t value) {
        async(AsyncKind::Input);
        put_dword(absolute ? 3 : 2);  // INPUT_EVENT_KIND_ABS / _REL
        put_dword(axis);
        put_qword(value);
    }
    void input_mtt(std::uint32_t type, std::int64_t slot, std::int64_t tracking_id, std::uint32_t axis,
                   std::int64_t value) {
        async(AsyncKind::Input);
        put_dword(4);  // INPUT_EVENT_KIND_MTT
        put_dword(type);
        put_qword(slot);
        put_qword(tracking_id);
        put_dword(axis);
        put_qword(value);
    }
    // replay_char_write_event_save()
    void char_write(std::int32_t res, std::int32_t offset) {
        put_event(code::kCharWrite);
        put_dword(static_cast<std::uint32_t>(res));
        put_dword(static_cast<std::uint32_t>(offset));
    }
    // replay_char_read_all_save_buf() / _save_error()
    void char_read_all(std::span<const std::uint8_t> buf) {
        put_event(code::kCharReadAll);
        put_array(buf);
    }
    void char_read_all_error(std::int32_t res) {
        put_event(code::kCharReadAllError);
        put_dword(static_cast<std::uint32_t>(res));
    }
    // replay_audio_out()
    void audio_out(std::uint64_t played) {
        put_event(code::kAudioOut);
        put_qword(static_cast<std::int64_t>(played));
    }
    // replay_audio_in(): `recorded` sample pairs ending at wpos
    void audio_in(std::uint64_t wpos, std::span<const AudioSample> samples) {
        put_event(code::kAudioIn);
        put_qword(static_cast<std::int64_t>(samples.size()));
        put_qword(static_cast<std::int64_t>(wpos));
        for (const auto& s : samples) {
            put_qword(static_cast<std::int64_t>(s.left));
            put_qword(static_cast<std::int64_t>(s.right));
        }
    }
    // replay_save_random()
    void random(std::int32_t ret, std::span<const std::uint8_t> buf) {
        put_event(code::kRandom);
        put_dword(static_cast<std::uint32_t>(ret));
        put_array(buf);
    }
    // replay/rewind-char-output.c: EVENT_CHAR_OUTPUT, u8 chardev, what the guest wrote.
    void char_output(std::uint8_t chardev, std::span<const std::uint8_t> buf) {
        put_event(code::kCharOutput);
        put_byte(chardev);
        put_array(buf);
    }
    // replay_finish()
    void end() { put_event(code::kEnd); }

    // usb-host passthrough, hw/usb/host-libusb-replay.c through
    // replay/replay-usb.c. rr_event_save(), OPEN (with rr_snapshot_save()):
    void usb_open(std::uint8_t device, std::uint8_t bus, std::uint8_t address, std::uint8_t speed,
                  std::span<const std::uint8_t> ports, std::span<const std::uint8_t> device_descriptor,
                  const std::vector<Bytes>& configs) {
        usb_async_header(UsbAsyncKind::Open, device);
        put_byte(bus);
        put_byte(address);
        put_byte(speed);
        put_array(ports);
        put_array(device_descriptor);
        put_byte(static_cast<std::uint8_t>(configs.size()));
        for (const auto& config : configs) {
            put_array(config);
        }
    }
    void usb_close(std::uint8_t device) { usb_async_header(UsbAsyncKind::Close, device); }
    void usb_complete(std::uint8_t device, std::uint8_t endpoint, std::uint32_t seq, std::int32_t status,
                      std::uint32_t actual_length, std::span<const std::uint8_t> in_data,
                      std::span<const UsbIsoPacket> packets = {}) {
        usb_async_header(UsbAsyncKind::Complete, device);
        put_byte(endpoint);
        put_dword(seq);
        put_dword(static_cast<std::uint32_t>(status));
        put_dword(actual_length);
        put_array(in_data);
        put_dword(static_cast<std::uint32_t>(packets.size()));
        for (const auto& packet : packets) {
            put_dword(static_cast<std::uint32_t>(packet.status));
            put_dword(packet.actual_length);
        }
    }
    // rr_sync_save() (after replay_usb_sync_save_begin()); `string` only for String.
    void usb_call(UsbCall call, std::uint8_t device, std::uint32_t arg, std::uint32_t arg2, std::int32_t rc,
                  std::uint32_t out, std::span<const std::uint8_t> string = {}) {
        put_event(code::kUsb);
        put_byte(static_cast<std::uint8_t>(call));
        put_byte(device);
        put_dword(arg);
        put_dword(arg2);
        put_dword(static_cast<std::uint32_t>(rc));
        put_dword(out);
        if (call == UsbCall::String) {
            put_array(string);
        }
    }
    // usb_host_rr_submit_transfer(): arg packs the endpoint and transfer type.
    void usb_submit(std::uint8_t device, std::uint8_t endpoint, std::uint8_t type, std::uint32_t length,
                    std::int32_t rc, std::uint32_t seq) {
        usb_call(UsbCall::Submit, device, endpoint | static_cast<std::uint32_t>(type) << 8, length, rc, seq);
    }

    [[nodiscard]] const Bytes& bytes() const { return bytes_; }
    [[nodiscard]] std::size_t size() const { return bytes_.size(); }

private:
    // replay_save_event() for REPLAY_ASYNC_EVENT_USB, then rr_event_save().
    void usb_async_header(UsbAsyncKind kind, std::uint8_t device) {
        put_event(code::kUsbAsync);
        put_byte(static_cast<std::uint8_t>(kind));
        put_byte(device);
    }

    Bytes bytes_;
};

}  // namespace qemu_rewind::testing
