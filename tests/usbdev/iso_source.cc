#include "iso_source.hh"

#include <algorithm>
#include <sstream>

namespace qemu_rewind::usbdev {

namespace {

constexpr std::uint8_t endpoint_in = 0x81;
constexpr std::uint8_t iso_async = 0x05;   // isochronous, asynchronous, data

const ModelRegistration registration{
    "iso",
    "iso[:seed=N,speed=full|high,max_packet=N,pace_us=N]  vendor-specific "
    "device (1209:0004) streaming pseudo-random data from SEED on an "
    "isochronous IN endpoint in alternate setting 1; packets of varying "
    "length (some short, some empty)",
    [](const DeviceSpec &spec) { return std::make_unique<IsoSource>(spec); }};

}  // namespace

IsoSource::IsoSource(const DeviceSpec &spec)
    : seed_(0), max_packet_(0), stream_(0, 0)
{
    spec.allow_only({"seed", "speed", "max_packet", "pace_us"});
    std::string speed = spec.get("speed", "full");
    if (speed != "full" && speed != "high") {
        throw SpecError("--device " + spec.text + ": speed must be 'full' or 'high'");
    }
    bool high = speed == "high";
    std::uint64_t limit = high ? 1024 : 1023;
    std::uint64_t max_packet = spec.get_number("max_packet", high ? 1024 : 200);
    if (max_packet == 0 || max_packet > limit) {
        throw SpecError("--device " + spec.text + ": max_packet must be 1 to " +
                        std::to_string(limit) + " at " + speed + " speed");
    }
    max_packet_ = static_cast<std::uint32_t>(max_packet);
    pace_ = std::chrono::microseconds(spec.get_number("pace_us", high ? 125 : 1000));
    seed_ = spec.seed_or_random();   // last: a random seed is printed only for a valid spec
    stream_ = IsoStream(seed_, max_packet_);

    description_.usb_version = 0x0200;
    description_.max_packet_size0 = 64;
    description_.vendor_id = 0x1209;
    description_.product_id = 0x0004;
    description_.manufacturer = "QEMU Rewind";
    description_.product = "Iso Source";
    description_.serial = "ISO-0001";
    description_.speed = high ? Speed::High : Speed::Full;
    InterfaceDescription alt0;
    alt0.interface_class = 0xff;
    InterfaceDescription alt1 = alt0;
    alt1.alternate = 1;
    alt1.endpoints.push_back(
        {endpoint_in, iso_async, static_cast<std::uint16_t>(max_packet_), 1});
    ConfigurationDescription config;
    config.interfaces = {alt0, alt1};
    description_.configurations.push_back(config);
}

void IsoSource::submit(const UrbPtr &urb)
{
    if (urb->type() != TransferType::Iso || urb->endpoint() != endpoint_in ||
        alternate(0) != 1) {
        urb->complete(urb_status::stall);
        return;
    }
    pending_.push_back({urb, Clock::now()});
    if (pending_.size() == 1) {
        schedule_head();
    }
}

void IsoSource::schedule_head()
{
    timer_.stop();
    if (pending_.empty()) {
        return;
    }
    const Pending &head = pending_.front();
    auto frames = static_cast<long>(head.urb->iso_packets().size());
    auto due = std::max(head.submitted, last_done_) + frames * pace_;
    auto delay = std::chrono::duration_cast<std::chrono::microseconds>(due - Clock::now());
    timer_.start_once(std::max(delay, std::chrono::microseconds(0)),
                      [this] { complete_head(); });
}

void IsoSource::complete_head()
{
    if (pending_.empty()) {
        return;
    }
    UrbPtr urb = pending_.front().urb;
    pending_.pop_front();
    fill(*urb);
    last_done_ = Clock::now();
    ++urbs_;
    urb->complete(urb_status::ok);
    schedule_head();
}

void IsoSource::fill(Urb &urb)
{
    auto buf = urb.buffer();
    std::size_t offset = 0;
    for (IsoPacket &p : urb.iso_packets()) {
        std::uint32_t len = stream_.next_length();
        std::uint32_t room = static_cast<std::uint32_t>(
            std::min<std::size_t>(p.length, buf.size() - std::min(offset, buf.size())));
        std::uint32_t n = std::min(len, room);
        for (std::uint32_t i = 0; i < n; ++i) {
            buf[offset + i] = stream_.next_byte();
        }
        // A host asking for less than a packet loses the rest (babble).
        for (std::uint32_t i = n; i < len; ++i) {
            stream_.next_byte();
        }
        p.actual_length = n;
        p.status = n < len ? urb_status::overflow : urb_status::ok;
        offset += p.length;
        packets_ += n > 0;
        bytes_ += n;
    }
}

void IsoSource::discarded(const UrbPtr &urb)
{
    bool was_head = !pending_.empty() && pending_.front().urb == urb;
    std::erase_if(pending_, [&](const Pending &p) { return p.urb == urb; });
    if (was_head) {
        schedule_head();
    }
}

void IsoSource::drop_pending()
{
    // As the kernel does when the endpoint goes away: -ESHUTDOWN.
    timer_.stop();
    auto urbs = std::move(pending_);
    pending_.clear();
    for (auto &p : urbs) {
        p.urb->complete(urb_status::shutdown);
    }
}

void IsoSource::set_configuration(std::uint8_t value)
{
    drop_pending();
    UsbDeviceModel::set_configuration(value);
}

void IsoSource::set_interface(std::uint8_t interface, std::uint8_t alternate)
{
    if (interface == 0 && alternate != 1) {
        drop_pending();
    }
    UsbDeviceModel::set_interface(interface, alternate);
}

void IsoSource::reset()
{
    drop_pending();
    UsbDeviceModel::reset();
}

void IsoSource::unplugged()
{
    timer_.stop();
    pending_.clear();
}

std::string IsoSource::command(std::string_view text)
{
    if (text != "status") {
        return "error: iso commands: status";
    }
    std::ostringstream s;
    s << "seed=" << seed_ << " packets=" << packets_ << " bytes=" << bytes_
      << " urbs=" << urbs_ << " pending=" << pending_.size()
      << " alt=" << static_cast<int>(alternate(0));
    return s.str();
}

}  // namespace qemu_rewind::usbdev
