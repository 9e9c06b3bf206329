#include "hid_keyboard.hh"

#include <algorithm>
#include <cstring>
#include <sstream>

namespace qemu_rewind::usbdev {

namespace {

namespace hid_request {
constexpr std::uint8_t get_report = 0x01;
constexpr std::uint8_t get_idle = 0x02;
constexpr std::uint8_t get_protocol = 0x03;
constexpr std::uint8_t set_report = 0x09;
constexpr std::uint8_t set_idle = 0x0a;
constexpr std::uint8_t set_protocol = 0x0b;
}  // namespace hid_request

constexpr std::uint8_t get_descriptor = 0x06;
constexpr std::uint8_t hid_descriptor_type = 0x21;
constexpr std::uint8_t report_descriptor_type = 0x22;
constexpr std::uint8_t output_report = 2;     // SET_REPORT wValue high byte
constexpr std::uint8_t scroll_lock_led = 0x04;
constexpr std::uint8_t left_shift = 0x02;     // modifier bit
constexpr std::uint8_t usage_enter = 0x28;
constexpr std::uint8_t endpoint_in = 0x81;

// The boot keyboard report descriptor: 8 modifier bits, a reserved byte,
// 5 LED output bits (+3 padding), 6 key usages. Short items written out
// from the HID 1.11 item encoding: the prefix byte is tag|type|size.
std::vector<std::uint8_t> boot_keyboard_report_descriptor()
{
    return {
        0x05, 0x01,   // Usage Page (Generic Desktop)
        0x09, 0x06,   // Usage (Keyboard)
        0xa1, 0x01,   // Collection (Application)
        0x05, 0x07,   //   Usage Page (Keyboard/Keypad)
        0x19, 0xe0,   //   Usage Minimum (Left Control)
        0x29, 0xe7,   //   Usage Maximum (Right GUI)
        0x15, 0x00,   //   Logical Minimum (0)
        0x25, 0x01,   //   Logical Maximum (1)
        0x75, 0x01,   //   Report Size (1)
        0x95, 0x08,   //   Report Count (8)
        0x81, 0x02,   //   Input (Data, Variable, Absolute): modifiers
        0x95, 0x01,   //   Report Count (1)
        0x75, 0x08,   //   Report Size (8)
        0x81, 0x01,   //   Input (Constant): reserved byte
        0x05, 0x08,   //   Usage Page (LEDs)
        0x19, 0x01,   //   Usage Minimum (Num Lock)
        0x29, 0x05,   //   Usage Maximum (Kana)
        0x95, 0x05,   //   Report Count (5)
        0x75, 0x01,   //   Report Size (1)
        0x91, 0x02,   //   Output (Data, Variable, Absolute): LEDs
        0x95, 0x01,   //   Report Count (1)
        0x75, 0x03,   //   Report Size (3)
        0x91, 0x01,   //   Output (Constant): padding
        0x05, 0x07,   //   Usage Page (Keyboard/Keypad)
        0x19, 0x00,   //   Usage Minimum (0)
        0x29, 0x65,   //   Usage Maximum (Application)
        0x15, 0x00,   //   Logical Minimum (0)
        0x25, 0x65,   //   Logical Maximum (101)
        0x95, 0x06,   //   Report Count (6)
        0x75, 0x08,   //   Report Size (8)
        0x81, 0x00,   //   Input (Data, Array): keys
        0xc0,         // End Collection
    };
}

std::vector<std::uint8_t> hid_descriptor(std::size_t report_descriptor_length)
{
    return {
        9, hid_descriptor_type,
        0x11, 0x01,   // bcdHID 1.11
        0,            // bCountryCode: not localized
        1,            // bNumDescriptors
        report_descriptor_type,
        static_cast<std::uint8_t>(report_descriptor_length),
        static_cast<std::uint8_t>(report_descriptor_length >> 8),
    };
}

HidKeyboard::Report key_report(std::uint8_t modifiers, std::uint8_t usage = 0)
{
    return {modifiers, 0, usage, 0, 0, 0, 0, 0};
}

ControlResult reply(std::span<std::uint8_t> data, std::span<const std::uint8_t> bytes)
{
    std::size_t n = std::min(data.size(), bytes.size());
    std::memcpy(data.data(), bytes.data(), n);
    return ControlResult::ok(n);
}

const ModelRegistration registration{
    "keyboard",
    "keyboard[:text=STRING,start=led|poll,delay_ms=N,interval_ms=N]  full-speed "
    "HID boot keyboard (1209:0003) that types STRING (no ',') and Enter once the "
    "host sets its Scroll Lock LED (start=led) or delay_ms after it starts "
    "polling (start=poll)",
    [](const DeviceSpec &spec) { return std::make_unique<HidKeyboard>(spec); }};

}  // namespace

std::optional<HidKey> hid_key_for(char c)
{
    if (c >= 'a' && c <= 'z') {
        return HidKey{static_cast<std::uint8_t>(0x04 + (c - 'a')), false};
    }
    if (c >= 'A' && c <= 'Z') {
        return HidKey{static_cast<std::uint8_t>(0x04 + (c - 'A')), true};
    }
    if (c >= '1' && c <= '9') {
        return HidKey{static_cast<std::uint8_t>(0x1e + (c - '1')), false};
    }
    // The rest of a US layout: unshifted and shifted character per usage.
    struct Pair {
        char plain, shifted;
        std::uint8_t usage;
    };
    static constexpr Pair pairs[] = {
        {'0', ')', 0x27}, {'\t', 0, 0x2b}, {' ', 0, 0x2c},
        {'-', '_', 0x2d}, {'=', '+', 0x2e}, {'[', '{', 0x2f}, {']', '}', 0x30},
        {'\\', '|', 0x31}, {';', ':', 0x33}, {'\'', '"', 0x34}, {'`', '~', 0x35},
        {',', '<', 0x36}, {'.', '>', 0x37}, {'/', '?', 0x38},
    };
    static constexpr char shifted_digits[] = "!@#$%^&*(";
    if (const char *p = std::strchr(shifted_digits, c); p && c) {
        return HidKey{static_cast<std::uint8_t>(0x1e + (p - shifted_digits)), true};
    }
    for (const auto &p : pairs) {
        if (c == p.plain) {
            return HidKey{p.usage, false};
        }
        if (p.shifted && c == p.shifted) {
            return HidKey{p.usage, true};
        }
    }
    return std::nullopt;
}

HidKeyboard::HidKeyboard(const DeviceSpec &spec)
    : report_descriptor_(boot_keyboard_report_descriptor())
{
    spec.allow_only({"text", "start", "delay_ms", "interval_ms"});
    std::string text = spec.get("text", "hello");
    std::string start = spec.get("start", "led");
    if (start != "led" && start != "poll") {
        throw SpecError("--device " + spec.text + ": start must be 'led' or 'poll'");
    }
    start_on_led_ = start == "led";
    delay_ = std::chrono::milliseconds(spec.get_number("delay_ms", 100));
    interval_ = std::chrono::milliseconds(spec.get_number("interval_ms", 10));
    if (interval_.count() == 0) {
        throw SpecError("--device " + spec.text + ": interval_ms must be at least 1");
    }

    for (char c : text) {
        auto key = hid_key_for(c);
        if (!key) {
            throw SpecError("--device " + spec.text + ": the keyboard cannot type '" +
                            std::string(1, c) + "' (printable ASCII only)");
        }
        if (key->shift) {
            reports_.push_back(key_report(left_shift));
            reports_.push_back(key_report(left_shift, key->usage));
            reports_.push_back(key_report(left_shift));
        } else {
            reports_.push_back(key_report(0, key->usage));
        }
        reports_.push_back(key_report(0));
    }
    reports_.push_back(key_report(0, usage_enter));
    reports_.push_back(key_report(0));

    description_.usb_version = 0x0110;
    description_.max_packet_size0 = 8;
    description_.vendor_id = 0x1209;
    description_.product_id = 0x0003;
    description_.manufacturer = "QEMU Rewind";
    description_.product = "Test Keyboard";
    description_.serial = "KBD-0001";
    description_.speed = Speed::Full;
    InterfaceDescription intf;
    intf.interface_class = 3;       // HID
    intf.interface_subclass = 1;    // boot interface
    intf.interface_protocol = 1;    // keyboard
    intf.extra = hid_descriptor(report_descriptor_.size());
    intf.endpoints.push_back({endpoint_in, 3, 8, 10});
    ConfigurationDescription config;
    config.attributes = 0xa0;       // bus-powered, remote wakeup
    config.interfaces.push_back(intf);
    description_.configurations.push_back(config);
}

ControlResult HidKeyboard::control(const SetupPacket &setup, std::span<std::uint8_t> data)
{
    // Descriptors of the interface: HID and report descriptor.
    if (setup.type() == 0 && setup.recipient() == 1 && setup.request == get_descriptor) {
        switch (setup.value >> 8) {
        case hid_descriptor_type:
            return reply(data, hid_descriptor(report_descriptor_.size()));
        case report_descriptor_type:
            return reply(data, report_descriptor_);
        default:
            return ControlResult::stall();
        }
    }
    if (setup.type() != 1 || setup.recipient() != 1) {
        return UsbDeviceModel::control(setup, data);
    }
    switch (setup.request) {
    case hid_request::get_report:
        return reply(data, current_);
    case hid_request::get_idle:
        return reply(data, std::span<const std::uint8_t>(&idle_, 1));
    case hid_request::get_protocol:
        return reply(data, std::span<const std::uint8_t>(&protocol_, 1));
    case hid_request::set_idle:
        idle_ = static_cast<std::uint8_t>(setup.value >> 8);
        return ControlResult::ok();
    case hid_request::set_protocol:
        protocol_ = static_cast<std::uint8_t>(setup.value);
        return ControlResult::ok();
    case hid_request::set_report:
        if ((setup.value >> 8) != output_report || data.empty()) {
            return ControlResult::stall();
        }
        leds_ = data[0];
        if (start_on_led_ && (leds_ & scroll_lock_led)) {
            start_typing();
        }
        return ControlResult::ok();
    default:
        return ControlResult::stall();
    }
}

void HidKeyboard::submit(const UrbPtr &urb)
{
    if (urb->type() != TransferType::Interrupt || urb->endpoint() != endpoint_in) {
        urb->complete(urb_status::stall);
        return;
    }
    pending_.push_back(urb);
    if (!start_on_led_ && !typing_ && !start_timer_.active() && sent_ == 0) {
        start_timer_.start_once(delay_, [this] { start_typing(); });
    }
}

void HidKeyboard::discarded(const UrbPtr &urb)
{
    pending_.erase(std::remove(pending_.begin(), pending_.end(), urb), pending_.end());
}

void HidKeyboard::start_typing()
{
    if (typing_ || sent_ > 0) {
        return;   // types its text once
    }
    typing_ = true;
    report_timer_.start_repeating(interval_, [this] { send_next(); });
}

void HidKeyboard::send_next()
{
    if (sent_ == reports_.size()) {
        typing_ = false;
        report_timer_.stop();
        return;
    }
    if (pending_.empty()) {
        return;   // the host is not polling right now: try next tick
    }
    UrbPtr urb = pending_.front();
    pending_.pop_front();
    current_ = reports_[sent_++];
    auto buf = urb->buffer();
    std::size_t n = std::min(buf.size(), current_.size());
    std::memcpy(buf.data(), current_.data(), n);
    urb->complete(urb_status::ok, n);
}

void HidKeyboard::drop_pending()
{
    // As the kernel does when a reset or configuration change disables
    // the endpoint: the URBs end with -ESHUTDOWN.
    auto urbs = std::move(pending_);
    pending_.clear();
    for (auto &u : urbs) {
        u->complete(urb_status::shutdown);
    }
}

void HidKeyboard::set_configuration(std::uint8_t value)
{
    drop_pending();
    UsbDeviceModel::set_configuration(value);
}

void HidKeyboard::reset()
{
    drop_pending();
    leds_ = 0;
    protocol_ = 1;
    idle_ = 0;
    UsbDeviceModel::reset();
}

void HidKeyboard::unplugged()
{
    start_timer_.stop();
    report_timer_.stop();
    pending_.clear();
}

std::string HidKeyboard::command(std::string_view text)
{
    if (text != "status") {
        return "error: keyboard commands: status";
    }
    std::ostringstream s;
    s << "typed=" << sent_ << " of=" << reports_.size() << " leds=0x" << std::hex
      << static_cast<int>(leds_) << std::dec << " protocol=" << static_cast<int>(protocol_)
      << " idle=" << static_cast<int>(idle_) << " pending=" << pending_.size();
    return s.str();
}

}  // namespace qemu_rewind::usbdev
