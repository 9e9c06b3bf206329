// The device of the driver-debugging demo (tests/guest/usb-demo.sh):
// `rewind-usbdev --device demo[:seed=N]`.
//
// A vendor-specific sensor-like device: interface 0 (class 0xff) with a
// bulk IN endpoint 0x81 and a bulk OUT endpoint 0x02. Every bulk IN
// transfer returns one report: byte 0 is the payload length L, then L
// pseudo-random payload bytes. The first 1 to 3 reports (how many comes
// from the seed) are short, L in [4, 15]; every later one is long, L in
// [100, 200]. A report never exceeds 256 bytes, the buffer the guest
// driver (tests/guest/module/rewind_demo.c) reads into; that driver
// copies the payload into a 16-byte stack buffer, so the first long
// report smashes its stack. Whatever the host sends to the OUT endpoint
// is accepted and ignored. Transfers complete at once.
//
// Options: seed=N (default: random, printed on stderr so that a run can
// be repeated). Identity: 1209:000d "QEMU Rewind" "Rewind Demo Sensor".
#pragma once

#include "device_registry.hh"
#include "usb_device_model.hh"

#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace qemu_rewind::usbdev {

// The sequence of reports for one seed (the same on every run).
class DemoReports {
public:
    static constexpr std::size_t short_min = 4, short_max = 15;
    static constexpr std::size_t long_min = 100, long_max = 200;
    static constexpr std::size_t max_report = 1 + long_max;

    explicit DemoReports(std::uint64_t seed);

    // How many short reports come before the first long one (1 to 3).
    unsigned short_reports() const { return short_reports_; }
    // The next report: length byte, then payload.
    std::vector<std::uint8_t> next();

private:
    // Uniform enough in [lo, hi] for a demo; mt19937_64 is the same
    // everywhere, so a seed means the same reports on every host.
    std::uint64_t between(std::uint64_t lo, std::uint64_t hi);

    std::mt19937_64 gen_;
    unsigned short_reports_;
    std::uint64_t sent_ = 0;
};

class DemoDevice : public UsbDeviceModel {
public:
    static constexpr std::uint8_t bulk_in = 0x81;
    static constexpr std::uint8_t bulk_out = 0x02;
    static constexpr std::uint16_t vendor_id = 0x1209;
    static constexpr std::uint16_t product_id = 0x000d;

    explicit DemoDevice(std::uint64_t seed);
    explicit DemoDevice(const DeviceSpec &spec);

    const DeviceDescription &description() const override { return description_; }
    void submit(const UrbPtr &urb) override;
    // "status": "seed=S reports=R short=N"
    std::string command(std::string_view text) override;

    std::uint64_t seed() const { return seed_; }

private:
    DeviceDescription description_;
    std::uint64_t seed_;
    DemoReports reports_;
    std::uint64_t sent_ = 0;
};

}  // namespace qemu_rewind::usbdev
