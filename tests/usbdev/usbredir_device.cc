#include "usbredir_device.hh"

#include <glib-unix.h>
#include <usbredirfilter.h>
#include <usbredirparser.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <set>
#include <stdexcept>
#include <vector>

namespace qemu_rewind::usbdev {

namespace {

constexpr const char *version_string = "rewind-usbredir";

// usbredir's endpoint table index: OUT endpoints 0-15, IN endpoints 16-31.
constexpr unsigned endpoint_index(std::uint8_t address)
{
    return ((address & 0x80) >> 3) | (address & 0x0f);
}

std::uint8_t redir_speed(Speed s)
{
    switch (s) {
    case Speed::Low: return usb_redir_speed_low;
    case Speed::Full: return usb_redir_speed_full;
    case Speed::High: return usb_redir_speed_high;
    case Speed::Super: return usb_redir_speed_super;
    }
    return usb_redir_speed_unknown;
}

// A model's completion status as a usbredir status.
std::uint8_t redir_status(int status)
{
    switch (status) {
    case urb_status::ok:
    case urb_status::remote_io:      // a short packet: the data is valid
        return usb_redir_success;
    case urb_status::stall: return usb_redir_stall;
    case urb_status::cancelled: return usb_redir_cancelled;
    case urb_status::overflow: return usb_redir_babble;
    default: return usb_redir_ioerror;
    }
}

// Bytes per (micro)frame: wMaxPacketSize with its high-bandwidth bits.
std::uint32_t payload_size(const EndpointDescription &e)
{
    return (e.max_packet_size & 0x7ff) * (1u + ((e.max_packet_size >> 11) & 3));
}

// The interfaces of a configuration in their current alternate settings.
std::vector<const InterfaceDescription *> active_interfaces(const UsbDeviceModel &model)
{
    std::vector<const InterfaceDescription *> out;
    const auto *c = find_configuration(model.description(), model.configuration());
    if (!c) {
        return out;
    }
    for (const auto &i : c->interfaces) {
        if (i.alternate == model.alternate(i.number)) {
            out.push_back(&i);
        }
    }
    return out;
}

const InterfaceDescription *find_alternate(const UsbDeviceModel &model, std::uint8_t interface,
                                           std::uint8_t alternate)
{
    const auto *c = find_configuration(model.description(), model.configuration());
    if (!c) {
        return nullptr;
    }
    for (const auto &i : c->interfaces) {
        if (i.number == interface && i.alternate == alternate) {
            return &i;
        }
    }
    return nullptr;
}

}  // namespace

// A stream QEMU asked the device to run on its own: interrupt receiving
// (one URB at a time) or an iso IN stream (`urbs` URBs of
// `packets_per_urb` packets), every completion sent to QEMU unasked.
struct UsbredirDevice::Stream {
    TransferType type = TransferType::Interrupt;
    std::uint32_t packet_size = 0;
    unsigned packets_per_urb = 1;
    unsigned urbs = 1;
    std::vector<UrbPtr> pending;
    Timer refill_timer;   // resubmits outside the completion callback
};

UsbredirDevice::UsbredirDevice(std::unique_ptr<UsbDeviceModel> model, EventLog &log)
    : model_(std::move(model)), log_(log)
{
    // Like the kernel, start in the first configuration: QEMU learns the
    // active one from interface_info/ep_info before the guest sets one.
    const auto &d = model_->description();
    if (!d.configurations.empty()) {
        model_->set_configuration(d.configurations.front().value);
    }
}

UsbredirDevice::~UsbredirDevice()
{
    closed_ = nullptr;
    close_connection("");
    if (capture_) {
        std::fclose(capture_);
    }
}

void UsbredirDevice::capture_to(const std::string &path)
{
    capture_ = std::fopen(path.c_str(), "wbe");
    if (!capture_) {
        throw std::runtime_error("cannot create capture file " + path + ": " +
                                 std::strerror(errno));
    }
}

void UsbredirDevice::attach(int read_fd, int write_fd)
{
    read_fd_ = read_fd;
    write_fd_ = write_fd;
    for (int fd : {read_fd_, write_fd_}) {
        int flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
            throw std::runtime_error(std::string("cannot make the connection non-blocking: ") +
                                     std::strerror(errno));
        }
    }
    create_parser();
    read_source_ = g_unix_fd_add(read_fd_, static_cast<GIOCondition>(G_IO_IN | G_IO_HUP | G_IO_ERR),
                                 &UsbredirDevice::on_readable, this);
    flush();   // our hello
}

void UsbredirDevice::create_parser()
{
    parser_ = usbredirparser_create();
    if (!parser_) {
        throw std::runtime_error("usbredirparser_create failed");
    }
    parser_->priv = this;
    parser_->log_func = &parser_log;
    parser_->read_func = &parser_read;
    parser_->write_func = &parser_write;
    parser_->hello_func = &on_hello;
    parser_->reset_func = &on_reset;
    parser_->set_configuration_func = &on_set_configuration;
    parser_->get_configuration_func = &on_get_configuration;
    parser_->set_alt_setting_func = &on_set_alt_setting;
    parser_->get_alt_setting_func = &on_get_alt_setting;
    parser_->start_iso_stream_func = &on_start_iso_stream;
    parser_->stop_iso_stream_func = &on_stop_iso_stream;
    parser_->start_interrupt_receiving_func = &on_start_interrupt_receiving;
    parser_->stop_interrupt_receiving_func = &on_stop_interrupt_receiving;
    parser_->alloc_bulk_streams_func = &on_alloc_bulk_streams;
    parser_->free_bulk_streams_func = &on_free_bulk_streams;
    parser_->start_bulk_receiving_func = &on_start_bulk_receiving;
    parser_->stop_bulk_receiving_func = &on_stop_bulk_receiving;
    parser_->cancel_data_packet_func = &on_cancel_data_packet;
    parser_->filter_reject_func = &on_filter_reject;
    parser_->filter_filter_func = &on_filter_filter;
    parser_->control_packet_func = &on_control_packet;
    parser_->bulk_packet_func = &on_bulk_packet;
    parser_->interrupt_packet_func = &on_interrupt_packet;
    parser_->iso_packet_func = &on_iso_packet;

    // QEMU's usb-redir needs the last three on an xHCI port.
    std::uint32_t caps[USB_REDIR_CAPS_SIZE] = {};
    for (int cap : {usb_redir_cap_connect_device_version, usb_redir_cap_filter,
                    usb_redir_cap_ep_info_max_packet_size, usb_redir_cap_64bits_ids,
                    usb_redir_cap_32bits_bulk_length}) {
        usbredirparser_caps_set_cap(caps, cap);
    }
    usbredirparser_init(parser_, version_string, caps, USB_REDIR_CAPS_SIZE,
                        usbredirparser_fl_usb_host);
}

// ---- I/O -----------------------------------------------------------------

void UsbredirDevice::parser_log(void *priv, int level, const char *msg)
{
    auto &s = self(priv);
    s.log_.line("usbredirparser: %s", msg);
    if (level <= usbredirparser_warning) {
        std::cerr << "rewind-usbredir: usbredirparser: " << msg << "\n";
    }
}

int UsbredirDevice::parser_read(void *priv, std::uint8_t *data, int count)
{
    auto &s = self(priv);
    ssize_t n = read(s.read_fd_, data, static_cast<std::size_t>(count));
    if (n > 0) {
        if (s.capture_) {
            std::fwrite(data, 1, static_cast<std::size_t>(n), s.capture_);
        }
        return static_cast<int>(n);
    }
    if (n == 0) {
        s.eof_ = true;
        return -1;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 0;
    }
    s.read_error_ = std::string("read failed: ") + std::strerror(errno);
    return -1;
}

int UsbredirDevice::parser_write(void *priv, std::uint8_t *data, int count)
{
    auto &s = self(priv);
    ssize_t n = write(s.write_fd_, data, static_cast<std::size_t>(count));
    if (n >= 0) {
        return static_cast<int>(n);
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        return 0;
    }
    return -1;
}

gboolean UsbredirDevice::on_readable(gint, GIOCondition, gpointer opaque)
{
    auto &s = self(opaque);
    int r = usbredirparser_do_read(s.parser_);
    if (s.eof_ || !s.read_error_.empty()) {
        s.read_source_ = 0;   // removed by returning FALSE
        s.close_connection(s.read_error_);
        return G_SOURCE_REMOVE;
    }
    if (r == usbredirparser_read_parse_error) {
        s.log_.line("parse error in QEMU's data (packet skipped)");
        std::cerr << "rewind-usbredir: cannot parse a packet from QEMU (skipped)\n";
    }
    s.flush();
    return G_SOURCE_CONTINUE;
}

gboolean UsbredirDevice::on_writable(gint, GIOCondition, gpointer opaque)
{
    auto &s = self(opaque);
    s.write_source_ = 0;
    s.flush();
    return G_SOURCE_REMOVE;
}

void UsbredirDevice::flush()
{
    if (!parser_ || write_fd_ < 0) {
        return;
    }
    if (usbredirparser_do_write(parser_) != 0) {
        request_close(std::string("write failed: ") + std::strerror(errno));
        return;
    }
    // Whatever would have blocked is still queued: write it when we can.
    if (usbredirparser_has_data_to_write(parser_) > 0 && write_source_ == 0) {
        write_source_ = g_unix_fd_add(write_fd_, G_IO_OUT, &UsbredirDevice::on_writable, this);
    }
}

// Closing destroys the parser: never from inside one of its callbacks.
void UsbredirDevice::request_close(const std::string &reason)
{
    if (close_source_ || read_fd_ < 0) {
        return;
    }
    close_reason_ = reason;
    close_source_ = g_idle_add(
        [](gpointer opaque) -> gboolean {
            auto &s = self(opaque);
            s.close_source_ = 0;
            s.close_connection(s.close_reason_);
            return G_SOURCE_REMOVE;
        },
        this);
}

void UsbredirDevice::close_connection(const std::string &reason)
{
    if (read_fd_ < 0) {
        return;
    }
    log_.line("connection closed%s%s", reason.empty() ? "" : ": ", reason.c_str());
    for (unsigned *source : {&read_source_, &write_source_}) {
        if (*source) {
            g_source_remove(*source);
            *source = 0;
        }
    }
    if (close_source_) {
        g_source_remove(close_source_);
        close_source_ = 0;
    }
    model_->unplugged();
    stop_all_streams();
    fail_in_flight();
    if (parser_) {
        usbredirparser_destroy(parser_);
        parser_ = nullptr;
    }
    close(read_fd_);
    if (write_fd_ != read_fd_) {
        close(write_fd_);
    }
    read_fd_ = write_fd_ = -1;
    if (capture_) {
        std::fflush(capture_);
    }
    if (closed_) {
        auto fn = std::move(closed_);
        fn(reason);
    }
}

void UsbredirDevice::free_data(std::uint8_t *data)
{
    if (data) {
        usbredirparser_free_packet_data(parser_, data);
    }
}

// ---- Device description -----------------------------------------------

void UsbredirDevice::send_device_info()
{
    usb_redir_interface_info_header interfaces{};
    usb_redir_ep_info_header endpoints{};
    std::fill(std::begin(endpoints.type), std::end(endpoints.type),
              static_cast<std::uint8_t>(usb_redir_type_invalid));
    const auto &d = model_->description();
    for (std::uint8_t ep0 : {0x00, 0x80}) {
        endpoints.type[endpoint_index(ep0)] = usb_redir_type_control;
        endpoints.max_packet_size[endpoint_index(ep0)] = d.max_packet_size0;
    }
    for (const auto *i : active_interfaces(*model_)) {
        if (interfaces.interface_count >= 32) {
            break;
        }
        unsigned n = interfaces.interface_count++;
        interfaces.interface[n] = i->number;
        interfaces.interface_class[n] = i->interface_class;
        interfaces.interface_subclass[n] = i->interface_subclass;
        interfaces.interface_protocol[n] = i->interface_protocol;
        for (const auto &e : i->endpoints) {
            unsigned x = endpoint_index(e.address);
            endpoints.type[x] = e.attributes & 3;   // the USB transfer types
            endpoints.interval[x] = e.interval;
            endpoints.interface[x] = i->number;
            endpoints.max_packet_size[x] = static_cast<std::uint16_t>(payload_size(e));
        }
    }
    usbredirparser_send_interface_info(parser_, &interfaces);
    usbredirparser_send_ep_info(parser_, &endpoints);
    log_.line("sent interface_info (%u interfaces) and ep_info, configuration %u",
              interfaces.interface_count, model_->configuration());
}

const EndpointDescription *UsbredirDevice::active_endpoint(std::uint8_t address) const
{
    for (const auto *i : active_interfaces(*model_)) {
        for (const auto &e : i->endpoints) {
            if (e.address == address) {
                return &e;
            }
        }
    }
    return nullptr;
}

// ---- Control packets ------------------------------------------------------

void UsbredirDevice::on_hello(void *priv, usb_redir_hello_header *hello)
{
    auto &s = self(priv);
    std::string version(hello->version, strnlen(hello->version, sizeof hello->version));
    s.log_.line("hello from '%s'", version.c_str());
    if (!usbredirparser_peer_has_cap(s.parser_, usb_redir_cap_64bits_ids) ||
        !usbredirparser_peer_has_cap(s.parser_, usb_redir_cap_32bits_bulk_length)) {
        s.log_.line("peer lacks 64-bit ids or 32-bit bulk lengths");
    }
    const auto &d = s.model_->description();
    s.send_device_info();
    usb_redir_device_connect_header connect{};
    connect.speed = redir_speed(d.speed);
    connect.device_class = d.device_class;
    connect.device_subclass = d.device_subclass;
    connect.device_protocol = d.device_protocol;
    connect.vendor_id = d.vendor_id;
    connect.product_id = d.product_id;
    connect.device_version_bcd = d.device_version;
    usbredirparser_send_device_connect(s.parser_, &connect);
    s.log_.line("sent device_connect %04x:%04x", d.vendor_id, d.product_id);
}

void UsbredirDevice::on_reset(void *priv)
{
    auto &s = self(priv);
    s.log_.line("reset");
    s.stop_all_streams();
    s.model_->reset();
}

void UsbredirDevice::on_set_configuration(void *priv, std::uint64_t id,
                                          usb_redir_set_configuration_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    usb_redir_configuration_status_header status{};
    if (h->configuration != 0 && !find_configuration(s.model_->description(), h->configuration)) {
        status.status = usb_redir_inval;
        status.configuration = s.model_->configuration();
        s.log_.line("set_configuration %u -> no such configuration", h->configuration);
    } else {
        s.stop_all_streams();
        s.model_->set_configuration(h->configuration);
        s.send_device_info();
        status.status = usb_redir_success;
        status.configuration = h->configuration;
        s.log_.line("set_configuration %u", h->configuration);
    }
    usbredirparser_send_configuration_status(s.parser_, id, &status);
}

void UsbredirDevice::on_get_configuration(void *priv, std::uint64_t id)
{
    auto &s = self(priv);
    ++s.packets_;
    usb_redir_configuration_status_header status{};
    status.status = usb_redir_success;
    status.configuration = s.model_->configuration();
    usbredirparser_send_configuration_status(s.parser_, id, &status);
}

void UsbredirDevice::on_set_alt_setting(void *priv, std::uint64_t id,
                                        usb_redir_set_alt_setting_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    usb_redir_alt_setting_status_header status{};
    status.interface = h->interface;
    if (!find_alternate(*s.model_, h->interface, h->alt)) {
        status.status = usb_redir_inval;
        status.alt = s.model_->alternate(h->interface);
        s.log_.line("set_alt_setting %u/%u -> no such setting", h->interface, h->alt);
    } else {
        // The endpoints of the old setting go away.
        for (const auto *i : active_interfaces(*s.model_)) {
            if (i->number == h->interface) {
                for (const auto &e : i->endpoints) {
                    s.stop_stream(e.address);
                }
            }
        }
        s.model_->set_interface(h->interface, h->alt);
        s.send_device_info();
        status.status = usb_redir_success;
        status.alt = h->alt;
        s.log_.line("set_alt_setting %u/%u", h->interface, h->alt);
    }
    usbredirparser_send_alt_setting_status(s.parser_, id, &status);
}

void UsbredirDevice::on_get_alt_setting(void *priv, std::uint64_t id,
                                        usb_redir_get_alt_setting_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    usb_redir_alt_setting_status_header status{};
    status.interface = h->interface;
    if (!find_alternate(*s.model_, h->interface, s.model_->alternate(h->interface))) {
        status.status = usb_redir_inval;
        status.alt = 0xff;
    } else {
        status.status = usb_redir_success;
        status.alt = s.model_->alternate(h->interface);
    }
    usbredirparser_send_alt_setting_status(s.parser_, id, &status);
}

void UsbredirDevice::on_filter_reject(void *priv)
{
    auto &s = self(priv);
    s.rejected_ = true;
    s.log_.line("QEMU rejected the device (usb-redir filter)");
    std::cerr << "rewind-usbredir: QEMU's usb-redir rejected the device (its filter= "
                 "property does not allow it)\n";
}

void UsbredirDevice::on_filter_filter(void *priv, usbredirfilter_rule *rules, int count)
{
    auto &s = self(priv);
    std::vector<std::uint8_t> cls, sub, proto;
    for (const auto *i : active_interfaces(*s.model_)) {
        cls.push_back(i->interface_class);
        sub.push_back(i->interface_subclass);
        proto.push_back(i->interface_protocol);
    }
    const auto &d = s.model_->description();
    int r = usbredirfilter_check(rules, count, d.device_class, d.device_subclass,
                                 d.device_protocol, cls.data(), sub.data(), proto.data(),
                                 static_cast<int>(cls.size()), d.vendor_id, d.product_id,
                                 d.device_version, 0);
    s.log_.line("filter with %d rules: device %s", count, r == 0 ? "allowed" : "not allowed");
    if (r != 0) {
        std::cerr << "rewind-usbredir: QEMU's usb-redir filter does not allow "
                  << std::hex << d.vendor_id << ":" << d.product_id << std::dec
                  << " (QEMU will reject it)\n";
    }
    usbredirfilter_free(rules);
}

// ---- Transfers -------------------------------------------------------------

void UsbredirDevice::submit(std::uint64_t id, const UrbPtr &urb)
{
    in_flight_[id] = urb;
    model_->submit(urb);
}

UrbPtr UsbredirDevice::take_in_flight(std::uint64_t id)
{
    UrbPtr urb;
    if (auto it = in_flight_.find(id); it != in_flight_.end()) {
        urb = std::move(it->second);
        in_flight_.erase(it);
    }
    return urb;
}

void UsbredirDevice::on_control_packet(void *priv, std::uint64_t id,
                                       usb_redir_control_packet_header *h, std::uint8_t *data,
                                       int data_len)
{
    auto &s = self(priv);
    ++s.packets_;
    SetupPacket setup{h->requesttype, h->request, h->value, h->index, h->length};
    std::vector<std::uint8_t> buffer;
    if (setup.is_in()) {
        buffer.resize(setup.length);
    } else {
        buffer.assign(data, data + data_len);
    }
    s.free_data(data);
    ControlResult r = s.rejected_ ? ControlResult::stall() : s.model_->control(setup, buffer);
    usb_redir_control_packet_header reply = *h;
    reply.status = redir_status(r.status);
    std::size_t length = 0;
    if (r.status == urb_status::ok) {
        length = setup.is_in() ? std::min(r.length, buffer.size()) : buffer.size();
    }
    reply.length = static_cast<std::uint16_t>(length);
    s.log_.line("control %02x %02x %04x %04x %u -> %u bytes status %u", h->requesttype,
                h->request, h->value, h->index, h->length, reply.length, reply.status);
    usbredirparser_send_control_packet(s.parser_, id, &reply,
                                       setup.is_in() && length ? buffer.data() : nullptr,
                                       setup.is_in() ? static_cast<int>(length) : 0);
}

void UsbredirDevice::on_bulk_packet(void *priv, std::uint64_t id,
                                    usb_redir_bulk_packet_header *h, std::uint8_t *data,
                                    int data_len)
{
    auto &s = self(priv);
    ++s.packets_;
    std::uint8_t ep = h->endpoint;
    std::uint32_t length = std::uint32_t(h->length_high) << 16 | h->length;
    const auto *e = s.active_endpoint(ep);
    if (s.rejected_ || !e || (e->attributes & 3) != usb_redir_type_bulk) {
        s.free_data(data);
        usb_redir_bulk_packet_header reply = *h;
        reply.status = usb_redir_inval;
        reply.length = reply.length_high = 0;
        s.log_.line("bulk ep 0x%02x: not a bulk endpoint now", ep);
        usbredirparser_send_bulk_packet(s.parser_, id, &reply, nullptr, 0);
        return;
    }
    std::vector<std::uint8_t> buffer;
    if (ep & 0x80) {
        buffer.resize(length);
    } else {
        buffer.assign(data, data + data_len);
    }
    s.free_data(data);
    auto urb = std::make_shared<Urb>(TransferType::Bulk, ep, std::move(buffer));
    usb_redir_bulk_packet_header header = *h;
    urb->set_completion_handler([&s, id, header](Urb &u) {
        UrbPtr keep = s.take_in_flight(id);   // u lives until we return
        usb_redir_bulk_packet_header reply = header;
        reply.status = redir_status(u.status());
        auto n = static_cast<std::uint32_t>(u.actual_length());
        reply.length = static_cast<std::uint16_t>(n & 0xffff);
        reply.length_high = static_cast<std::uint16_t>(n >> 16);
        bool in = u.is_in() && n > 0;
        s.log_.line("bulk ep 0x%02x %u bytes -> %u status %u", u.endpoint(),
                    static_cast<unsigned>(u.buffer().size()), n, reply.status);
        usbredirparser_send_bulk_packet(s.parser_, id, &reply,
                                        in ? u.buffer().data() : nullptr,
                                        in ? static_cast<int>(n) : 0);
        s.flush();
    });
    s.submit(id, urb);
}

void UsbredirDevice::on_interrupt_packet(void *priv, std::uint64_t id,
                                         usb_redir_interrupt_packet_header *h,
                                         std::uint8_t *data, int data_len)
{
    auto &s = self(priv);
    ++s.packets_;
    std::uint8_t ep = h->endpoint;
    const auto *e = s.active_endpoint(ep);
    // QEMU reads interrupt IN endpoints through interrupt receiving; a
    // packet is an OUT transfer.
    if (s.rejected_ || !e || (e->attributes & 3) != usb_redir_type_interrupt || (ep & 0x80)) {
        s.free_data(data);
        usb_redir_interrupt_packet_header reply = *h;
        reply.status = usb_redir_inval;
        reply.length = 0;
        usbredirparser_send_interrupt_packet(s.parser_, id, &reply, nullptr, 0);
        return;
    }
    std::vector<std::uint8_t> buffer(data, data + data_len);
    s.free_data(data);
    auto urb = std::make_shared<Urb>(TransferType::Interrupt, ep, std::move(buffer));
    usb_redir_interrupt_packet_header header = *h;
    urb->set_completion_handler([&s, id, header](Urb &u) {
        UrbPtr keep = s.take_in_flight(id);   // u lives until we return
        usb_redir_interrupt_packet_header reply = header;
        reply.status = redir_status(u.status());
        reply.length = static_cast<std::uint16_t>(u.actual_length());
        usbredirparser_send_interrupt_packet(s.parser_, id, &reply, nullptr, 0);
        s.flush();
    });
    s.submit(id, urb);
}

void UsbredirDevice::on_iso_packet(void *priv, std::uint64_t, usb_redir_iso_packet_header *h,
                                   std::uint8_t *data, int)
{
    auto &s = self(priv);
    // Only sent on iso OUT streams, which we refuse to start.
    s.log_.line("iso packet for ep 0x%02x ignored (no iso OUT streams)", h->endpoint);
    s.free_data(data);
}

void UsbredirDevice::on_cancel_data_packet(void *priv, std::uint64_t id)
{
    auto &s = self(priv);
    auto it = s.in_flight_.find(id);
    if (it == s.in_flight_.end()) {
        // Already answered: QEMU drops the answer when it arrives.
        s.log_.line("cancel %llu: already done", static_cast<unsigned long long>(id));
        return;
    }
    UrbPtr urb = it->second;
    s.log_.line("cancel %llu (ep 0x%02x)", static_cast<unsigned long long>(id),
                urb->endpoint());
    urb->complete(urb_status::cancelled);   // answers with status cancelled
    s.model_->discarded(urb);
}

void UsbredirDevice::fail_in_flight()
{
    auto pending = std::move(in_flight_);
    in_flight_.clear();
    for (auto &[id, urb] : pending) {
        urb->set_completion_handler({});   // nobody to answer any more
        urb->complete(urb_status::shutdown);
        model_->discarded(urb);
    }
}

// ---- Streams ---------------------------------------------------------------

void UsbredirDevice::on_start_interrupt_receiving(void *priv, std::uint64_t id,
                                                  usb_redir_start_interrupt_receiving_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    std::uint8_t ep = h->endpoint;
    const auto *e = s.active_endpoint(ep);
    usb_redir_interrupt_receiving_status_header status{};
    status.endpoint = ep;
    if (s.rejected_ || !e || (e->attributes & 3) != usb_redir_type_interrupt || !(ep & 0x80)) {
        status.status = usb_redir_inval;
        s.log_.line("start interrupt receiving ep 0x%02x: not an interrupt IN endpoint", ep);
    } else {
        s.stop_stream(ep);
        auto stream = std::make_unique<Stream>();
        stream->type = TransferType::Interrupt;
        stream->packet_size = payload_size(*e);
        s.streams_[ep] = std::move(stream);
        status.status = usb_redir_success;
        s.log_.line("start interrupt receiving ep 0x%02x", ep);
    }
    usbredirparser_send_interrupt_receiving_status(s.parser_, id, &status);
    if (status.status == usb_redir_success) {
        s.refill(ep);
    }
}

void UsbredirDevice::on_stop_interrupt_receiving(void *priv, std::uint64_t id,
                                                 usb_redir_stop_interrupt_receiving_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    s.stop_stream(h->endpoint);
    s.log_.line("stop interrupt receiving ep 0x%02x", h->endpoint);
    usb_redir_interrupt_receiving_status_header status{};
    status.endpoint = h->endpoint;
    status.status = usb_redir_success;
    usbredirparser_send_interrupt_receiving_status(s.parser_, id, &status);
}

void UsbredirDevice::on_start_iso_stream(void *priv, std::uint64_t id,
                                         usb_redir_start_iso_stream_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    std::uint8_t ep = h->endpoint;
    const auto *e = s.active_endpoint(ep);
    usb_redir_iso_stream_status_header status{};
    status.endpoint = ep;
    if (s.rejected_ || !e || (e->attributes & 3) != usb_redir_type_iso || !(ep & 0x80) ||
        h->pkts_per_urb == 0 || h->no_urbs == 0) {
        // Iso OUT streams are not implemented: no model needs them.
        status.status = usb_redir_stall;
        s.log_.line("start iso stream ep 0x%02x refused (only iso IN is served)", ep);
    } else {
        s.stop_stream(ep);
        auto stream = std::make_unique<Stream>();
        stream->type = TransferType::Iso;
        stream->packet_size = payload_size(*e);
        stream->packets_per_urb = h->pkts_per_urb;
        stream->urbs = h->no_urbs;
        s.streams_[ep] = std::move(stream);
        status.status = usb_redir_success;
        s.log_.line("start iso stream ep 0x%02x: %u URBs of %u packets", ep, h->no_urbs,
                    h->pkts_per_urb);
    }
    usbredirparser_send_iso_stream_status(s.parser_, id, &status);
    if (status.status == usb_redir_success) {
        s.refill(ep);
    }
}

void UsbredirDevice::on_stop_iso_stream(void *priv, std::uint64_t id,
                                        usb_redir_stop_iso_stream_header *h)
{
    auto &s = self(priv);
    ++s.packets_;
    s.stop_stream(h->endpoint);
    s.log_.line("stop iso stream ep 0x%02x", h->endpoint);
    usb_redir_iso_stream_status_header status{};
    status.endpoint = h->endpoint;
    status.status = usb_redir_success;
    usbredirparser_send_iso_stream_status(s.parser_, id, &status);
}

// Keeps the stream's URBs submitted to the model.
void UsbredirDevice::refill(std::uint8_t ep)
{
    for (;;) {
        // A completion inside submit() may have ended the stream.
        auto it = streams_.find(ep);
        if (it == streams_.end() || !parser_) {
            return;
        }
        Stream &stream = *it->second;
        if (stream.pending.size() >= stream.urbs) {
            return;
        }
        UrbPtr urb;
        if (stream.type == TransferType::Iso) {
            std::vector<IsoPacket> packets(stream.packets_per_urb,
                                           IsoPacket{stream.packet_size, 0, urb_status::ok});
            urb = std::make_shared<Urb>(
                TransferType::Iso, ep,
                std::vector<std::uint8_t>(std::size_t(stream.packet_size) * packets.size()),
                std::move(packets));
        } else {
            urb = std::make_shared<Urb>(TransferType::Interrupt, ep,
                                        std::vector<std::uint8_t>(stream.packet_size));
        }
        urb->set_completion_handler([this, ep](Urb &u) { stream_completed(ep, u); });
        stream.pending.push_back(urb);
        model_->submit(urb);
        // A model that completes at once must not make us loop here: the
        // completion resubmits from the main loop.
        if (urb->done()) {
            return;
        }
    }
}

void UsbredirDevice::stream_completed(std::uint8_t ep, Urb &urb)
{
    auto it = streams_.find(ep);
    if (it == streams_.end() || !parser_) {
        return;
    }
    Stream &stream = *it->second;
    UrbPtr keep;   // urb lives until we return
    std::erase_if(stream.pending, [&](const UrbPtr &p) {
        if (p.get() != &urb) {
            return false;
        }
        keep = p;
        return true;
    });
    bool failed = urb.status() != urb_status::ok && urb.status() != urb_status::iso_partial &&
                  urb.status() != urb_status::remote_io;
    if (failed) {
        // The stream ends (the model left the alternate setting, was reset,
        // stalled...); QEMU restarts it when the guest asks again.
        log_.line("stream ep 0x%02x ended: status %d", ep, urb.status());
        if (stream.type == TransferType::Iso) {
            usb_redir_iso_stream_status_header status{usb_redir_stall, ep};
            usbredirparser_send_iso_stream_status(parser_, 0, &status);
        } else {
            usb_redir_interrupt_receiving_status_header status{usb_redir_stall, ep};
            usbredirparser_send_interrupt_receiving_status(parser_, 0, &status);
        }
        stop_stream(ep);
        flush();
        return;
    }
    if (stream.type == TransferType::Iso) {
        std::size_t offset = 0;
        for (const auto &p : urb.iso_packets()) {
            usb_redir_iso_packet_header header{};
            header.endpoint = ep;
            header.status = p.status == urb_status::ok ? usb_redir_success : usb_redir_ioerror;
            header.length = static_cast<std::uint16_t>(std::min(p.actual_length, p.length));
            usbredirparser_send_iso_packet(parser_, 0, &header,
                                           header.length ? urb.buffer().data() + offset : nullptr,
                                           header.length);
            offset += p.length;
        }
    } else {
        usb_redir_interrupt_packet_header header{};
        header.endpoint = ep;
        header.status = usb_redir_success;
        header.length = static_cast<std::uint16_t>(urb.actual_length());
        usbredirparser_send_interrupt_packet(parser_, 0, &header,
                                             header.length ? urb.buffer().data() : nullptr,
                                             header.length);
        log_.line("interrupt ep 0x%02x: %u bytes", ep, header.length);
    }
    flush();
    stream.refill_timer.start_once(std::chrono::microseconds(0), [this, ep] { refill(ep); });
}

void UsbredirDevice::stop_stream(std::uint8_t ep)
{
    auto it = streams_.find(ep);
    if (it == streams_.end()) {
        return;
    }
    auto stream = std::move(it->second);
    streams_.erase(it);
    for (auto &urb : stream->pending) {
        urb->set_completion_handler({});
        urb->complete(urb_status::cancelled);
        model_->discarded(urb);
    }
}

void UsbredirDevice::stop_all_streams()
{
    while (!streams_.empty()) {
        stop_stream(streams_.begin()->first);
    }
}

// ---- Refused requests (never announced) -------------------------------------

void UsbredirDevice::on_alloc_bulk_streams(void *priv, std::uint64_t id,
                                           usb_redir_alloc_bulk_streams_header *h)
{
    auto &s = self(priv);
    usb_redir_bulk_streams_status_header status{h->endpoints, h->no_streams, usb_redir_inval};
    usbredirparser_send_bulk_streams_status(s.parser_, id, &status);
}

void UsbredirDevice::on_free_bulk_streams(void *priv, std::uint64_t id,
                                          usb_redir_free_bulk_streams_header *h)
{
    auto &s = self(priv);
    usb_redir_bulk_streams_status_header status{h->endpoints, 0, usb_redir_inval};
    usbredirparser_send_bulk_streams_status(s.parser_, id, &status);
}

void UsbredirDevice::on_start_bulk_receiving(void *priv, std::uint64_t id,
                                             usb_redir_start_bulk_receiving_header *h)
{
    auto &s = self(priv);
    usb_redir_bulk_receiving_status_header status{h->stream_id, h->endpoint, usb_redir_inval};
    usbredirparser_send_bulk_receiving_status(s.parser_, id, &status);
}

void UsbredirDevice::on_stop_bulk_receiving(void *priv, std::uint64_t id,
                                            usb_redir_stop_bulk_receiving_header *h)
{
    auto &s = self(priv);
    usb_redir_bulk_receiving_status_header status{h->stream_id, h->endpoint, usb_redir_inval};
    usbredirparser_send_bulk_receiving_status(s.parser_, id, &status);
}

}  // namespace qemu_rewind::usbdev
