#include "demo_device.hh"

#include <algorithm>
#include <sstream>

namespace qemu_rewind::usbdev {

namespace {

constexpr std::uint8_t bulk = 0x02;

const ModelRegistration registration{
    "demo",
    "demo[:seed=N]  vendor-specific device (1209:000d) of the driver-debugging "
    "demo: each bulk IN transfer on 0x81 returns a report (length byte, then "
    "random payload), 1-3 short ones (4-15 bytes) then long ones (100-200 bytes)",
    [](const DeviceSpec &spec) { return std::make_unique<DemoDevice>(spec); }};

std::uint64_t seed_from(const DeviceSpec &spec)
{
    spec.allow_only({"seed"});
    return spec.seed_or_random();
}

DeviceDescription demo_description()
{
    DeviceDescription d;
    d.usb_version = 0x0200;
    d.vendor_id = DemoDevice::vendor_id;
    d.product_id = DemoDevice::product_id;
    d.manufacturer = "QEMU Rewind";
    d.product = "Rewind Demo Sensor";
    d.serial = "DEMO-0001";
    d.speed = Speed::High;
    InterfaceDescription iface;
    iface.interface_class = 0xff;
    iface.endpoints = {{DemoDevice::bulk_in, bulk, 512, 0},
                       {DemoDevice::bulk_out, bulk, 512, 0}};
    ConfigurationDescription config;
    config.interfaces = {iface};
    d.configurations = {config};
    return d;
}

}  // namespace

DemoReports::DemoReports(std::uint64_t seed) : gen_(seed)
{
    short_reports_ = static_cast<unsigned>(between(1, 3));
}

std::uint64_t DemoReports::between(std::uint64_t lo, std::uint64_t hi)
{
    return lo + gen_() % (hi - lo + 1);
}

std::vector<std::uint8_t> DemoReports::next()
{
    const bool is_short = sent_ < short_reports_;
    const auto len = is_short ? between(short_min, short_max) : between(long_min, long_max);
    std::vector<std::uint8_t> report(1 + len);
    report[0] = static_cast<std::uint8_t>(len);
    for (std::size_t i = 1; i < report.size(); ++i) {
        report[i] = static_cast<std::uint8_t>(gen_());
    }
    ++sent_;
    return report;
}

DemoDevice::DemoDevice(std::uint64_t seed)
    : description_(demo_description()), seed_(seed), reports_(seed)
{
}

DemoDevice::DemoDevice(const DeviceSpec &spec) : DemoDevice(seed_from(spec)) {}

void DemoDevice::submit(const UrbPtr &urb)
{
    if (urb->type() != TransferType::Bulk) {
        urb->complete(urb_status::stall);
        return;
    }
    if (urb->endpoint() == bulk_out) {
        urb->complete(urb_status::ok, urb->buffer().size());   // accepted, ignored
        return;
    }
    if (urb->endpoint() != bulk_in) {
        urb->complete(urb_status::stall);
        return;
    }
    const auto report = reports_.next();
    ++sent_;
    auto buf = urb->buffer();
    const std::size_t n = std::min(report.size(), buf.size());
    std::copy_n(report.begin(), n, buf.begin());
    // A host asking for less than the report gets babble, as from real hardware.
    urb->complete(n < report.size() ? urb_status::overflow : urb_status::ok, n);
}

std::string DemoDevice::command(std::string_view text)
{
    if (text != "status") {
        return "error: demo commands: status";
    }
    std::ostringstream s;
    s << "seed=" << seed_ << " reports=" << sent_ << " short=" << reports_.short_reports();
    return s.str();
}

}  // namespace qemu_rewind::usbdev
