// A full-speed HID boot keyboard that types a given text:
// `rewind-usbdev --device keyboard:text=STRING`.
//
// One interface (class 3, boot subclass, keyboard protocol) with an
// interrupt IN endpoint (0x81, 8-byte boot reports, every 10 ms). The host
// always keeps an interrupt URB pending on it; the keyboard completes one
// only when it has a new report, as real keyboards do with idle rate 0.
//
// When it types: by default (start=led) once the host turns the Scroll
// Lock LED on (SET_REPORT output report, bit 2), which a guest does after
// it has opened the keyboard's event device, so no key is lost before
// anyone listens; with start=poll, `delay_ms` after the first interrupt
// URB. Each character is pressed and released in its own reports; a
// shifted one is Left Shift down, key down, key up, Shift up (four
// reports, so the host sees one key change per report). After the text
// it types Enter, the end marker, then idles (URBs stay pending).
//
// Options: text=STRING (printable ASCII and tab, without ','; default
// "hello"),
// start=led|poll, delay_ms=N (start=poll, default 100), interval_ms=N
// between reports (default 10).
// Identity: 1209:0003 "QEMU Rewind" "Test Keyboard" (Linux names its input
// device "QEMU Rewind Test Keyboard").
#pragma once

#include "device_registry.hh"
#include "usb_device_model.hh"

#include <array>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace qemu_rewind::usbdev {

// A HID keyboard usage (page 7) and whether Shift is needed for `c` on a
// US layout; empty for anything but printable ASCII and tab (no newline:
// Enter is the keyboard's end marker).
struct HidKey {
    std::uint8_t usage = 0;
    bool shift = false;
};
std::optional<HidKey> hid_key_for(char c);

class HidKeyboard : public UsbDeviceModel {
public:
    explicit HidKeyboard(const DeviceSpec &spec);

    const DeviceDescription &description() const override { return description_; }
    ControlResult control(const SetupPacket &setup, std::span<std::uint8_t> data) override;
    void submit(const UrbPtr &urb) override;
    void discarded(const UrbPtr &urb) override;
    void set_configuration(std::uint8_t value) override;
    void reset() override;
    void unplugged() override;
    // "status": "typed=N of=M leds=0xLL protocol=P idle=I pending=U"
    std::string command(std::string_view text) override;

    using Report = std::array<std::uint8_t, 8>;

private:
    void start_typing();
    void send_next();          // the next report into the oldest pending URB
    void drop_pending();

    DeviceDescription description_;
    std::vector<std::uint8_t> report_descriptor_;
    std::vector<Report> reports_;   // everything to type, in order
    std::size_t sent_ = 0;          // reports delivered so far
    bool typing_ = false;
    bool start_on_led_ = true;
    std::chrono::milliseconds delay_{100};
    std::chrono::milliseconds interval_{10};
    std::deque<UrbPtr> pending_;    // interrupt IN URBs, oldest first
    Report current_{};              // the last report sent (GET_REPORT)
    std::uint8_t leds_ = 0;
    std::uint8_t protocol_ = 1;     // 0 boot, 1 report
    std::uint8_t idle_ = 0;         // units of 4 ms; 0 = only on change
    Timer start_timer_;
    Timer report_timer_;
};

}  // namespace qemu_rewind::usbdev
