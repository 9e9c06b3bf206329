// The interface between rewind-usbdev's usbfs server and the software USB
// devices it serves. A device model describes itself (descriptors), answers
// requests on endpoint 0 and completes transfers (URBs) on its other
// endpoints, now or later. The server does everything usbfs-specific:
// client memory, reaping, poll readiness, discards, unplug.
//
// Threading: everything runs on rewind-usbdev's GLib main loop (the default
// main context). Models never block; for "later" use a Timer (below) or
// keep the UrbPtr and complete it when the data is there.
//
// Adding a model: write NAME.hh/.cc in tests/usbdev, derive from
// UsbDeviceModel and register a factory for `--device KIND:key=val,...`
// with a ModelRegistration (see device_registry.hh).
#pragma once

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace qemu_rewind::usbdev {

enum class Speed { Low, Full, High, Super };

// ---- Descriptions (the server turns them into descriptor bytes) ----------

struct EndpointDescription {
    std::uint8_t address = 0;          // 0x81 = EP 1 IN, 0x02 = EP 2 OUT
    std::uint8_t attributes = 0;       // 1 iso (+ sync/usage bits), 2 bulk, 3 interrupt
    std::uint16_t max_packet_size = 0; // including the high-bandwidth bits 11-12
    std::uint8_t interval = 0;         // bInterval as on the wire
    std::vector<std::uint8_t> extra = {};  // class-specific descriptors after it
};

// One alternate setting of one interface. List every alternate setting of
// an interface in ConfigurationDescription::interfaces, alternate 0 first.
struct InterfaceDescription {
    std::uint8_t number = 0;
    std::uint8_t alternate = 0;
    std::uint8_t interface_class = 0;
    std::uint8_t interface_subclass = 0;
    std::uint8_t interface_protocol = 0;
    std::string name = {};                 // iInterface string; "" = none
    std::vector<std::uint8_t> extra = {};  // class descriptors before the
                                           // endpoints (HID descriptor, ...)
    std::vector<EndpointDescription> endpoints = {};
};

struct ConfigurationDescription {
    std::uint8_t value = 1;            // bConfigurationValue
    std::uint8_t attributes = 0x80;    // bus-powered
    std::uint8_t max_power = 50;       // units of 2 mA
    std::vector<InterfaceDescription> interfaces = {};
};

struct DeviceDescription {
    std::uint16_t usb_version = 0x0200;
    std::uint8_t device_class = 0;     // 0: per interface
    std::uint8_t device_subclass = 0;
    std::uint8_t device_protocol = 0;
    std::uint8_t max_packet_size0 = 64;
    std::uint16_t vendor_id = 0;
    std::uint16_t product_id = 0;
    std::uint16_t device_version = 0x0100;  // bcdDevice
    std::string manufacturer = {};     // string descriptors; "" = none
    std::string product = {};
    std::string serial = {};
    Speed speed = Speed::High;
    std::vector<ConfigurationDescription> configurations = {};
};

// The configuration with bConfigurationValue value, or nullptr.
const ConfigurationDescription *find_configuration(const DeviceDescription &d,
                                                   std::uint8_t value);

// ---- Transfers ---------------------------------------------------------

// Completion status as usbfs reports it: 0 or a negative errno, the
// values Linux host controller drivers use.
namespace urb_status {
constexpr int ok = 0;
constexpr int stall = -EPIPE;            // endpoint halted / request refused
constexpr int cancelled = -ENOENT;       // discarded by the host
constexpr int shutdown = -ESHUTDOWN;     // device unplugged
constexpr int overflow = -EOVERFLOW;     // device sent more than asked
constexpr int protocol_error = -EPROTO;
constexpr int remote_io = -EREMOTEIO;    // short packet with SHORT_NOT_OK
constexpr int iso_partial = -EXDEV;      // iso: some packets failed
}  // namespace urb_status

struct SetupPacket {
    std::uint8_t request_type = 0;     // bmRequestType
    std::uint8_t request = 0;          // bRequest
    std::uint16_t value = 0;
    std::uint16_t index = 0;
    std::uint16_t length = 0;

    bool is_in() const { return request_type & 0x80; }
    // 0 standard, 1 class, 2 vendor
    unsigned type() const { return (request_type >> 5) & 3; }
    // 0 device, 1 interface, 2 endpoint, 3 other
    unsigned recipient() const { return request_type & 0x1f; }
};

struct ControlResult {
    int status = urb_status::ok;
    std::size_t length = 0;            // IN: bytes written to data

    static ControlResult ok(std::size_t n = 0) { return {urb_status::ok, n}; }
    static ControlResult stall() { return {urb_status::stall, 0}; }
};

enum class TransferType { Control, Bulk, Interrupt, Iso };

struct IsoPacket {
    std::uint32_t length = 0;          // requested
    std::uint32_t actual_length = 0;   // set by the model (IN: bytes written)
    int status = urb_status::ok;       // per packet
};

// One transfer on a non-zero endpoint. The server owns the client side; the
// model fills buffer() (IN) or reads it (OUT) and calls complete() once.
class Urb {
public:
    Urb(TransferType type, std::uint8_t endpoint, std::vector<std::uint8_t> buffer,
        std::vector<IsoPacket> iso_packets = {});

    TransferType type() const { return type_; }
    std::uint8_t endpoint() const { return endpoint_; }   // with 0x80 for IN
    bool is_in() const { return endpoint_ & 0x80; }

    // OUT: the bytes the host sent. IN: room for the answer (the requested
    // length, zero-filled). For iso, packet i's data starts at the sum of
    // the requested lengths of packets 0..i-1 (as usbfs lays it out).
    std::span<std::uint8_t> buffer() { return buffer_; }
    std::span<const std::uint8_t> buffer() const { return buffer_; }
    // Iso only: the packets; fill in actual_length and status of each.
    std::span<IsoPacket> iso_packets() { return iso_packets_; }
    std::span<const IsoPacket> iso_packets() const { return iso_packets_; }

    // Makes the URB reapable. Bulk/interrupt: actual_length bytes were
    // transferred. Iso: the total length is taken from the packets
    // (actual_length is ignored) and a failed packet makes the error count.
    // Ignored once done() (the host discarded it or the device went away).
    void complete(int status, std::size_t actual_length = 0);
    bool done() const { return done_; }
    int status() const { return status_; }
    std::size_t actual_length() const { return actual_length_; }
    int error_count() const { return error_count_; }

    // For the server: called once, when the URB completes.
    void set_completion_handler(std::function<void(Urb &)> handler)
    {
        on_complete_ = std::move(handler);
    }

private:
    TransferType type_;
    std::uint8_t endpoint_;
    std::vector<std::uint8_t> buffer_;
    std::vector<IsoPacket> iso_packets_;
    bool done_ = false;
    int status_ = 0;
    std::size_t actual_length_ = 0;
    int error_count_ = 0;
    std::function<void(Urb &)> on_complete_;
};
using UrbPtr = std::shared_ptr<Urb>;

// ---- Timers on the server's main loop ------------------------------------

// A one-shot or repeating timer; stopped on destruction, so a model that
// owns its timers needs no cleanup.
class Timer {
public:
    Timer() = default;
    ~Timer() { stop(); }
    Timer(const Timer &) = delete;
    Timer &operator=(const Timer &) = delete;

    void start_once(std::chrono::microseconds delay, std::function<void()> fn);
    void start_repeating(std::chrono::microseconds period, std::function<void()> fn);
    void stop();
    bool active() const { return source_id_ != 0; }

private:
    static int fire(void *self);
    unsigned source_id_ = 0;
    bool repeating_ = false;
    std::function<void()> fn_;
};

// ---- The model -------------------------------------------------------------

class UsbDeviceModel {
public:
    virtual ~UsbDeviceModel() = default;

    virtual const DeviceDescription &description() const = 0;

    // A request on endpoint 0 (from USBDEVFS_CONTROL or a control URB).
    // OUT: `data` holds the setup.length bytes the host sent. IN: room for
    // setup.length bytes; return how many were written.
    // The default handles the standard requests from description()
    // (GET_DESCRIPTOR device/configuration/string/device qualifier,
    // GET/SET_CONFIGURATION, GET/SET_INTERFACE, GET_STATUS, CLEAR/SET_FEATURE)
    // and stalls everything else. Override for class or vendor requests and
    // call UsbDeviceModel::control() for the rest.
    virtual ControlResult control(const SetupPacket &setup, std::span<std::uint8_t> data);

    // A transfer on a non-zero endpoint: complete it now, or keep the
    // pointer and complete it later. The default stalls it.
    virtual void submit(const UrbPtr &urb);

    // The host discarded a pending URB (it is already done() with
    // urb_status::cancelled): drop your reference.
    virtual void discarded(const UrbPtr &urb) { (void)urb; }

    // State changes, whether they come as usbfs ioctls or control requests.
    // The defaults only record them (configuration(), alternate()).
    virtual void set_configuration(std::uint8_t value);
    virtual void set_interface(std::uint8_t interface, std::uint8_t alternate);
    virtual void reset();                         // USBDEVFS_RESET
    virtual void clear_halt(std::uint8_t endpoint) { (void)endpoint; }

    // The device is being unplugged: the server fails every pending URB
    // with urb_status::shutdown right after; stop producing data.
    virtual void unplugged() {}

    // A line for this device from rewind-usbdev's control channel
    // ("device N TEXT", see rewind-usbdev --help); returns the reply line.
    virtual std::string command(std::string_view text)
    {
        return "error: no commands for this device: " + std::string(text);
    }

    std::uint8_t configuration() const { return configuration_; }
    std::uint8_t alternate(std::uint8_t interface) const;

private:
    std::uint8_t configuration_ = 0;
    std::map<std::uint8_t, std::uint8_t> alternates_;
};

}  // namespace qemu_rewind::usbdev
