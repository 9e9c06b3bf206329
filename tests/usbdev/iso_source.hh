// A vendor-specific device streaming pseudo-random data on an isochronous
// IN endpoint: `rewind-usbdev --device iso:seed=N`.
//
// Interface 0 (class 0xff) has two alternate settings, as real streaming
// devices do: alt 0 without endpoints (no bandwidth), alt 1 with the iso IN
// endpoint 0x81 (asynchronous, bInterval 1: one packet per frame at full
// speed, per microframe at high speed). Each packet's length and the
// bytes it carries come from IsoStream(seed, max_packet) (iso_stream.hh):
// some packets are short, some empty, and the bytes continue across
// packets and URBs, so whoever reads N bytes gets a prefix of the stream,
// however the host cuts it into URBs.
//
// URBs complete in real time: one is done when its packets' (micro)frames
// have passed (pace_us per packet, from the later of its submission and
// the previous completion), as on a bus; pace_us=0 completes at once.
// Submissions outside alt 1 stall; leaving alt 1, a reset or a
// configuration change ends the pending URBs with -ESHUTDOWN.
//
// Options: seed=N (default: random, printed on stderr), speed=full|high
// (default full), max_packet=N (default 200 full speed, 1024 high speed),
// pace_us=N (default 1000 full speed, 125 high speed).
// Identity: 1209:0004 "QEMU Rewind" "Iso Source"; guest driver:
// tests/guest/module/rewind_usbiso.c.
#pragma once

#include "device_registry.hh"
#include "iso_stream.hh"
#include "usb_device_model.hh"

#include <chrono>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>

namespace qemu_rewind::usbdev {

class IsoSource : public UsbDeviceModel {
public:
    explicit IsoSource(const DeviceSpec &spec);

    const DeviceDescription &description() const override { return description_; }
    void submit(const UrbPtr &urb) override;
    void discarded(const UrbPtr &urb) override;
    void set_configuration(std::uint8_t value) override;
    void set_interface(std::uint8_t interface, std::uint8_t alternate) override;
    void reset() override;
    void unplugged() override;
    // "status": "seed=S packets=P bytes=B urbs=U pending=N alt=A"
    std::string command(std::string_view text) override;

private:
    using Clock = std::chrono::steady_clock;

    void schedule_head();      // arm the timer for the oldest pending URB
    void complete_head();
    void fill(Urb &urb);
    void drop_pending();

    DeviceDescription description_;
    std::uint64_t seed_;
    std::uint32_t max_packet_;
    std::chrono::microseconds pace_;
    IsoStream stream_;
    struct Pending {
        UrbPtr urb;
        Clock::time_point submitted;
    };
    std::deque<Pending> pending_;       // iso IN URBs, oldest first
    Clock::time_point last_done_{};     // when the previous URB completed
    Timer timer_;
    std::uint64_t packets_ = 0, bytes_ = 0, urbs_ = 0;   // delivered so far
};

}  // namespace qemu_rewind::usbdev
