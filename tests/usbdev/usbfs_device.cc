#include "usbfs_device.hh"

#include "usb_descriptors.hh"

#include <umockdev.h>

#include <sys/ioctl.h>
#include <linux/usbdevice_fs.h>

#include <algorithm>
#include <functional>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <stdexcept>

namespace qemu_rewind::usbdev {

namespace {

// Kernel capabilities we offer. NO_PACKET_SIZE_LIM makes libusb submit a
// bulk transfer as one URB; REAP_AFTER_DISCONNECT lets it reap the URBs a
// disconnect failed.
constexpr std::uint32_t capabilities =
    USBDEVFS_CAP_ZERO_PACKET | USBDEVFS_CAP_BULK_CONTINUATION |
    USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_REAP_AFTER_DISCONNECT;

constexpr int max_iso_packets = 128;   // as usbfs

#ifndef USBDEVFS_GET_SPEED
#define USBDEVFS_GET_SPEED _IO('U', 31)
#endif
constexpr unsigned conninfo_ex_nr = 32;   // USBDEVFS_CONNINFO_EX(len)

const char *ioctl_name(unsigned long request)
{
    switch (request) {
    case USBDEVFS_CONTROL: return "CONTROL";
    case USBDEVFS_BULK: return "BULK";
    case USBDEVFS_RESETEP: return "RESETEP";
    case USBDEVFS_SETINTERFACE: return "SETINTERFACE";
    case USBDEVFS_SETCONFIGURATION: return "SETCONFIGURATION";
    case USBDEVFS_GETDRIVER: return "GETDRIVER";
    case USBDEVFS_SUBMITURB: return "SUBMITURB";
    case USBDEVFS_DISCARDURB: return "DISCARDURB";
    case USBDEVFS_REAPURB: return "REAPURB";
    case USBDEVFS_REAPURBNDELAY: return "REAPURBNDELAY";
    case USBDEVFS_CLAIMINTERFACE: return "CLAIMINTERFACE";
    case USBDEVFS_RELEASEINTERFACE: return "RELEASEINTERFACE";
    case USBDEVFS_CONNECTINFO: return "CONNECTINFO";
    case USBDEVFS_IOCTL: return "IOCTL";
    case USBDEVFS_RESET: return "RESET";
    case USBDEVFS_CLEAR_HALT: return "CLEAR_HALT";
    case USBDEVFS_DISCONNECT: return "DISCONNECT";
    case USBDEVFS_CONNECT: return "CONNECT";
    case USBDEVFS_GET_CAPABILITIES: return "GET_CAPABILITIES";
    case USBDEVFS_DISCONNECT_CLAIM: return "DISCONNECT_CLAIM";
    case USBDEVFS_GET_SPEED: return "GET_SPEED";
    default: return "?";
    }
}

const char *type_name(TransferType t)
{
    switch (t) {
    case TransferType::Control: return "control";
    case TransferType::Bulk: return "bulk";
    case TransferType::Interrupt: return "interrupt";
    case TransferType::Iso: return "iso";
    }
    return "?";
}

// Speed as the kernel's enum usb_device_speed.
unsigned kernel_speed(Speed s)
{
    switch (s) {
    case Speed::Low: return 1;
    case Speed::Full: return 2;
    case Speed::High: return 3;
    case Speed::Super: return 5;
    }
    return 0;
}

// umockdev_ioctl_data_resolve: a new reference to a local copy of the
// client memory the pointer at `offset` points to, or nullptr.
UMockdevIoctlData *resolve(UMockdevIoctlData *data, std::size_t offset, std::size_t len)
{
    GError *error = nullptr;
    UMockdevIoctlData *r = umockdev_ioctl_data_resolve(data, offset, len, &error);
    if (error) {
        g_error_free(error);
        if (r) {
            g_object_unref(r);
        }
        return nullptr;
    }
    return r;
}

// The ioctl argument itself (a pointer value or an integer).
std::uint64_t arg_value(UMockdevIoctlClient *client)
{
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
    std::uint64_t v = 0;
    std::memcpy(&v, arg->data, std::min<std::size_t>(sizeof v, arg->data_len));
    return v;
}

template <typename T>
bool read_arg(UMockdevIoctlClient *client, T &out, UMockdevIoctlData **keep = nullptr)
{
    UMockdevIoctlData *d = resolve(umockdev_ioctl_client_get_arg(client), 0, sizeof(T));
    if (!d) {
        return false;
    }
    std::memcpy(&out, d->data, sizeof(T));
    if (keep) {
        *keep = d;
    } else {
        g_object_unref(d);
    }
    return true;
}

}  // namespace

struct UsbfsDevice::ServedUrb {
    UMockdevIoctlClient *client = nullptr;
    std::uint64_t client_addr = 0;             // the client's struct usbdevfs_urb *
    UMockdevIoctlData *urb_data = nullptr;     // its local copy (+ iso descriptors)
    UMockdevIoctlData *buffer_data = nullptr;  // the transfer buffer, or nullptr
    std::size_t data_offset = 0;               // 8 for control: setup packet first
    UrbPtr urb;

    ~ServedUrb()
    {
        if (buffer_data) {
            g_object_unref(buffer_data);
        }
        if (urb_data) {
            g_object_unref(urb_data);
        }
    }
};

UsbfsDevice::UsbfsDevice(unsigned index, std::unique_ptr<UsbDeviceModel> model,
                         EventLog &log)
    : index_(index), model_(std::move(model)), log_(log)
{
}

UsbfsDevice::~UsbfsDevice()
{
    // Models may still hold URBs: their completion must not reach us.
    for (auto &[key, served] : in_flight_) {
        served->urb->set_completion_handler({});
    }
    for (auto &[client, state] : clients_) {
        if (state.waiting_reaper) {
            g_object_unref(state.waiting_reaper);
        }
    }
    if (handler_) {
        g_signal_handlers_disconnect_by_data(handler_, this);
        g_object_unref(handler_);
    }
}

std::string UsbfsDevice::devnode() const
{
    char buf[32];
    std::snprintf(buf, sizeof buf, "/dev/bus/usb/%03u/%03u", bus(), address());
    return buf;
}

void UsbfsDevice::serve(UMockdevTestbed *testbed, const std::string &node_file)
{
    readiness_.install(node_file);
    // The kernel configures a new device with its first configuration.
    const auto &d = model_->description();
    if (!d.configurations.empty()) {
        model_->set_configuration(d.configurations.front().value);
    }
    reported_configuration_ = model_->configuration();

    handler_ = umockdev_ioctl_base_new();
    g_signal_connect(handler_, "handle-ioctl", G_CALLBACK(&UsbfsDevice::on_ioctl), this);
    g_signal_connect(handler_, "client-connected",
                     G_CALLBACK(&UsbfsDevice::on_client_connected), this);
    GError *error = nullptr;
    if (!umockdev_testbed_attach_ioctl(testbed, devnode().c_str(), handler_, &error)) {
        std::string msg = error ? error->message : "unknown error";
        g_clear_error(&error);
        throw std::runtime_error("cannot attach the usbfs handler to " + devnode() + ": " + msg);
    }
}

// libumockdev serves the ioctl socket from its own worker thread; the
// models and their timers live on our main loop. Every call from the worker
// is handed to the main context, so that all device state has one thread.
namespace {

struct MainThreadCall {
    std::function<void()> fn;
};

int run_main_thread_call(void *opaque)
{
    auto *call = static_cast<MainThreadCall *>(opaque);
    call->fn();
    delete call;
    return G_SOURCE_REMOVE;
}

void on_main_thread(std::function<void()> fn)
{
    g_main_context_invoke(nullptr, &run_main_thread_call, new MainThreadCall{std::move(fn)});
}

}  // namespace

void UsbfsDevice::on_client_connected(UMockdevIoctlBase *, UMockdevIoctlClient *client,
                                      void *opaque)
{
    auto *self = static_cast<UsbfsDevice *>(opaque);
    g_signal_connect(client, "notify::connected",
                     G_CALLBACK(&UsbfsDevice::on_client_notify), self);
    g_object_ref(client);
    on_main_thread([self, client] {
        self->clients_[client];
        self->log_.line("dev%u open client=%p", self->index_, static_cast<void *>(client));
        g_object_unref(client);
    });
}

void UsbfsDevice::on_client_notify(UMockdevIoctlClient *client, void *, void *opaque)
{
    if (!umockdev_ioctl_client_get_connected(client)) {
        auto *self = static_cast<UsbfsDevice *>(opaque);
        g_object_ref(client);
        on_main_thread([self, client] {
            self->client_gone(client);
            g_object_unref(client);
        });
    }
}

void UsbfsDevice::client_gone(UMockdevIoctlClient *client)
{
    auto it = clients_.find(client);
    if (it == clients_.end() || it->second.gone) {
        return;
    }
    log_.line("dev%u close client=%p", index_, static_cast<void *>(client));
    it->second.gone = true;
    it->second.completed.clear();
    if (it->second.waiting_reaper) {
        g_object_unref(it->second.waiting_reaper);
        it->second.waiting_reaper = nullptr;
    }
    // Like the kernel on close: kill the client's URBs.
    for (auto i = in_flight_.begin(); i != in_flight_.end();) {
        if (i->first.first != client) {
            ++i;
            continue;
        }
        auto served = i->second;
        i = in_flight_.erase(i);
        served->urb->set_completion_handler({});
        if (!served->urb->done()) {
            served->urb->complete(urb_status::cancelled);
            model_->discarded(served->urb);
        }
    }
    g_signal_handlers_disconnect_by_data(client, this);
    update_readiness();
}

int UsbfsDevice::on_ioctl(UMockdevIoctlBase *, UMockdevIoctlClient *client, void *opaque)
{
    auto *self = static_cast<UsbfsDevice *>(opaque);
    g_object_ref(client);
    on_main_thread([self, client] {
        Reply reply;
        if (self->handle(client, reply)) {
            umockdev_ioctl_client_complete(client, reply.result, reply.error);
        }
        g_object_unref(client);
    });
    return TRUE;   // answered later, by umockdev_ioctl_client_complete
}

bool UsbfsDevice::handle(UMockdevIoctlClient *client, Reply &reply)
{
    ++ioctl_count_;
    unsigned long request = umockdev_ioctl_client_get_request(client);
    ClientState &state = clients_[client];
    auto fail = [&reply](int error) {
        reply = {-1, error};
        return true;
    };

    if (request == USBDEVFS_REAPURB || request == USBDEVFS_REAPURBNDELAY) {
        // Reaping works after a disconnect too: the failed URBs come back.
        return reap_urb(client, state, request == USBDEVFS_REAPURB, reply);
    }
    if (unplugged_) {
        log_.line("dev%u %s -> ENODEV (unplugged)", index_, ioctl_name(request));
        return fail(ENODEV);
    }

    const DeviceDescription &desc = model_->description();
    switch (request) {
    case USBDEVFS_SUBMITURB:
        reply = submit_urb(client, state);
        return true;
    case USBDEVFS_DISCARDURB:
        reply = discard_urb(client, state);
        return true;
    case USBDEVFS_CONTROL:
        reply = control(client);
        check_configuration();
        return true;
    case USBDEVFS_GET_CAPABILITIES: {
        UMockdevIoctlData *d = resolve(umockdev_ioctl_client_get_arg(client), 0, 4);
        if (!d) {
            return fail(EFAULT);
        }
        std::memcpy(d->data, &capabilities, 4);
        g_object_unref(d);
        log_.line("dev%u GET_CAPABILITIES -> 0x%x", index_, capabilities);
        return true;
    }
    case USBDEVFS_CLAIMINTERFACE:
    case USBDEVFS_RELEASEINTERFACE:
    case USBDEVFS_DISCONNECT_CLAIM: {
        unsigned ifnum = 0;
        if (!read_arg(client, ifnum)) {
            return fail(EFAULT);
        }
        bool exists = false;
        for (const auto &c : desc.configurations) {
            if (c.value != model_->configuration()) {
                continue;
            }
            for (const auto &i : c.interfaces) {
                exists = exists || i.number == ifnum;
            }
        }
        log_.line("dev%u %s %u%s", index_, ioctl_name(request), ifnum,
                  exists ? "" : " -> ENOENT");
        if (!exists) {
            return fail(ENOENT);
        }
        if (request == USBDEVFS_RELEASEINTERFACE) {
            if (!state.claimed.erase(ifnum)) {
                return fail(EINVAL);
            }
        } else {
            state.claimed.insert(ifnum);
        }
        return true;
    }
    case USBDEVFS_SETINTERFACE: {
        usbdevfs_setinterface si{};
        if (!read_arg(client, si)) {
            return fail(EFAULT);
        }
        bool exists = false;
        for (const auto &c : desc.configurations) {
            for (const auto &i : c.interfaces) {
                exists = exists || (c.value == model_->configuration() &&
                                    i.number == si.interface && i.alternate == si.altsetting);
            }
        }
        log_.line("dev%u SETINTERFACE %u alt %u%s", index_, si.interface, si.altsetting,
                  exists ? "" : " -> EINVAL");
        if (!exists) {
            return fail(EINVAL);
        }
        model_->set_interface(static_cast<std::uint8_t>(si.interface),
                              static_cast<std::uint8_t>(si.altsetting));
        return true;
    }
    case USBDEVFS_SETCONFIGURATION: {
        int value = 0;
        if (!read_arg(client, value)) {
            return fail(EFAULT);
        }
        bool exists = value == 0 || value == -1;
        for (const auto &c : desc.configurations) {
            exists = exists || c.value == value;
        }
        log_.line("dev%u SETCONFIGURATION %d%s", index_, value, exists ? "" : " -> EINVAL");
        if (!exists) {
            return fail(EINVAL);
        }
        model_->set_configuration(static_cast<std::uint8_t>(value < 0 ? 0 : value));
        check_configuration();
        return true;
    }
    case USBDEVFS_RESET:
        log_.line("dev%u RESET", index_);
        // The kernel flushes the endpoints and unbinds usbfs (libusb
        // claims the interfaces again); the configuration stays.
        cancel_in_flight(nullptr, urb_status::cancelled);
        for (auto &[c, s] : clients_) {
            s.claimed.clear();
        }
        model_->reset();
        return true;
    case USBDEVFS_CLEAR_HALT:
    case USBDEVFS_RESETEP: {
        unsigned ep = 0;
        if (!read_arg(client, ep)) {
            return fail(EFAULT);
        }
        log_.line("dev%u %s 0x%02x", index_, ioctl_name(request), ep);
        if (request == USBDEVFS_CLEAR_HALT) {
            model_->clear_halt(static_cast<std::uint8_t>(ep));
        }
        return true;
    }
    case USBDEVFS_GETDRIVER:
        // No kernel driver is bound to our interfaces.
        log_.line("dev%u GETDRIVER -> ENODATA", index_);
        return fail(ENODATA);
    case USBDEVFS_IOCTL:
        reply = usbfs_ioctl(client);
        return true;
    case USBDEVFS_CONNECTINFO: {
        UMockdevIoctlData *d = resolve(umockdev_ioctl_client_get_arg(client), 0,
                                       sizeof(usbdevfs_connectinfo));
        if (!d) {
            return fail(EFAULT);
        }
        usbdevfs_connectinfo ci{};
        ci.devnum = address();
        ci.slow = desc.speed == Speed::Low;
        std::memcpy(d->data, &ci, sizeof ci);
        g_object_unref(d);
        log_.line("dev%u CONNECTINFO", index_);
        return true;
    }
    case USBDEVFS_GET_SPEED:
        log_.line("dev%u GET_SPEED", index_);
        reply.result = kernel_speed(desc.speed);
        return true;
    default:
        break;
    }
    if (_IOC_TYPE(request) == 'U' && _IOC_NR(request) == conninfo_ex_nr &&
        _IOC_DIR(request) == _IOC_READ) {
        usbdevfs_conninfo_ex ci{};
        ci.size = sizeof ci;
        ci.busnum = bus();
        ci.devnum = address();
        ci.speed = kernel_speed(desc.speed);
        ci.num_ports = 1;
        ci.ports[0] = static_cast<std::uint8_t>(index_ + 1);
        std::size_t n = std::min<std::size_t>(_IOC_SIZE(request), sizeof ci);
        UMockdevIoctlData *d = resolve(umockdev_ioctl_client_get_arg(client), 0, n);
        if (!d) {
            return fail(EFAULT);
        }
        std::memcpy(d->data, &ci, n);
        g_object_unref(d);
        log_.line("dev%u CONNINFO_EX", index_);
        return true;
    }
    log_.line("dev%u unhandled ioctl 0x%lx -> ENOTTY", index_, request);
    return fail(ENOTTY);
}

UsbfsDevice::Reply UsbfsDevice::usbfs_ioctl(UMockdevIoctlClient *client)
{
    usbdevfs_ioctl io{};
    if (!read_arg(client, io)) {
        return {-1, EFAULT};
    }
    // Kernel driver detach/attach through usbfs: there is no driver, so
    // detaching finds none and (re)attaching binds none, harmlessly.
    if (static_cast<unsigned>(io.ioctl_code) == USBDEVFS_DISCONNECT) {
        log_.line("dev%u IOCTL DISCONNECT if=%d -> ENODATA", index_, io.ifno);
        return {-1, ENODATA};
    }
    if (static_cast<unsigned>(io.ioctl_code) == USBDEVFS_CONNECT) {
        log_.line("dev%u IOCTL CONNECT if=%d", index_, io.ifno);
        return {0, 0};
    }
    log_.line("dev%u IOCTL 0x%x if=%d -> ENOTTY", index_, io.ioctl_code, io.ifno);
    return {-1, ENOTTY};
}

UsbfsDevice::Reply UsbfsDevice::control(UMockdevIoctlClient *client)
{
    UMockdevIoctlData *d = nullptr;
    usbdevfs_ctrltransfer ct{};
    if (!read_arg(client, ct, &d)) {
        return {-1, EFAULT};
    }
    SetupPacket setup{ct.bRequestType, ct.bRequest, ct.wValue, ct.wIndex, ct.wLength};
    std::vector<std::uint8_t> data(ct.wLength);
    UMockdevIoctlData *buf = nullptr;
    if (ct.wLength) {
        buf = resolve(d, offsetof(usbdevfs_ctrltransfer, data), ct.wLength);
        if (!buf) {
            g_object_unref(d);
            return {-1, EFAULT};
        }
        if (!setup.is_in()) {
            std::memcpy(data.data(), buf->data, ct.wLength);
        }
    }
    ControlResult r = model_->control(setup, data);
    std::size_t n = setup.is_in() ? std::min(r.length, data.size()) : data.size();
    if (r.status == urb_status::ok && setup.is_in() && buf) {
        std::memcpy(buf->data, data.data(), n);
    }
    log_.line("dev%u CONTROL %02x %02x %04x %04x %u -> %d len %zu", index_,
              ct.bRequestType, ct.bRequest, ct.wValue, ct.wIndex, ct.wLength, r.status, n);
    if (buf) {
        g_object_unref(buf);
    }
    g_object_unref(d);
    if (r.status != urb_status::ok) {
        return {-1, -r.status};
    }
    return {static_cast<long>(n), 0};
}

UsbfsDevice::Reply UsbfsDevice::submit_urb(UMockdevIoctlClient *client, ClientState &)
{
    UMockdevIoctlData *arg = umockdev_ioctl_client_get_arg(client);
    std::uint64_t addr = arg_value(client);
    UMockdevIoctlData *urb_data = resolve(arg, 0, sizeof(usbdevfs_urb));
    if (!urb_data) {
        return {-1, EFAULT};
    }
    usbdevfs_urb u{};
    std::memcpy(&u, urb_data->data, sizeof u);
    int packets = 0;
    if (u.type == USBDEVFS_URB_TYPE_ISO) {
        packets = u.number_of_packets;
        if (packets < 1 || packets > max_iso_packets) {
            g_object_unref(urb_data);
            return {-1, EINVAL};
        }
        // The iso descriptors follow the struct: read it again, longer.
        // Reloading forgets the resolved pointer; put the client's back.
        g_object_unref(urb_data);
        GError *error = nullptr;
        umockdev_ioctl_data_reload(arg, &error);
        g_clear_error(&error);
        std::memcpy(arg->data, &addr, sizeof addr);
        urb_data = resolve(arg, 0, sizeof(usbdevfs_urb) +
                                       packets * sizeof(usbdevfs_iso_packet_desc));
        if (!urb_data) {
            return {-1, EFAULT};
        }
    }

    auto served = std::make_shared<ServedUrb>();
    served->client = client;
    served->client_addr = addr;
    served->urb_data = urb_data;

    TransferType type;
    const DeviceDescription &desc = model_->description();
    const EndpointDescription *ep = nullptr;
    if ((u.endpoint & 0x7f) != 0) {
        ep = find_endpoint(desc, model_->configuration(), u.endpoint);
        if (!ep) {
            log_.line("dev%u SUBMITURB ep 0x%02x -> ENOENT (no such endpoint)", index_,
                      u.endpoint);
            return {-1, ENOENT};
        }
    }
    switch (u.type) {
    case USBDEVFS_URB_TYPE_CONTROL:
        type = TransferType::Control;
        if (ep || u.buffer_length < 8) {
            return {-1, EINVAL};
        }
        break;
    case USBDEVFS_URB_TYPE_BULK:
    case USBDEVFS_URB_TYPE_INTERRUPT:
        // usbfs accepts either type for bulk and interrupt endpoints.
        if (!ep || ((ep->attributes & 3) != 2 && (ep->attributes & 3) != 3)) {
            return {-1, EINVAL};
        }
        type = (ep->attributes & 3) == 3 ? TransferType::Interrupt : TransferType::Bulk;
        break;
    case USBDEVFS_URB_TYPE_ISO:
        if (!ep || (ep->attributes & 3) != 1) {
            return {-1, EINVAL};
        }
        type = TransferType::Iso;
        break;
    default:
        return {-1, EINVAL};
    }
    if (u.buffer_length < 0) {
        return {-1, EINVAL};
    }
    std::size_t length = static_cast<std::size_t>(u.buffer_length);
    if (length) {
        served->buffer_data = resolve(urb_data, offsetof(usbdevfs_urb, buffer), length);
        if (!served->buffer_data) {
            return {-1, EFAULT};
        }
    }
    const std::uint8_t *client_bytes =
        served->buffer_data ? served->buffer_data->data : nullptr;

    std::vector<std::uint8_t> bytes;
    std::vector<IsoPacket> iso;
    SetupPacket setup;
    bool in = u.endpoint & 0x80;
    if (type == TransferType::Control) {
        setup.request_type = client_bytes[0];
        setup.request = client_bytes[1];
        setup.value = static_cast<std::uint16_t>(client_bytes[2] | client_bytes[3] << 8);
        setup.index = static_cast<std::uint16_t>(client_bytes[4] | client_bytes[5] << 8);
        setup.length = static_cast<std::uint16_t>(client_bytes[6] | client_bytes[7] << 8);
        if (setup.length > length - 8) {
            return {-1, EINVAL};
        }
        in = setup.is_in();
        served->data_offset = 8;
        bytes.assign(setup.length, 0);
        if (!in) {
            std::memcpy(bytes.data(), client_bytes + 8, setup.length);
        }
    } else {
        bytes.assign(length, 0);
        if (!in && length) {
            std::memcpy(bytes.data(), client_bytes, length);
        }
    }
    if (type == TransferType::Iso) {
        auto *descs = reinterpret_cast<usbdevfs_iso_packet_desc *>(
            urb_data->data + sizeof(usbdevfs_urb));
        std::size_t total = 0;
        for (int i = 0; i < packets; ++i) {
            iso.push_back(IsoPacket{descs[i].length, 0, urb_status::ok});
            total += descs[i].length;
        }
        if (total > length) {
            return {-1, EINVAL};
        }
    }

    std::uint8_t endpoint = type == TransferType::Control
                                ? static_cast<std::uint8_t>(in ? 0x80 : 0)
                                : u.endpoint;
    served->urb = std::make_shared<Urb>(type, endpoint, std::move(bytes), std::move(iso));
    std::weak_ptr<ServedUrb> weak = served;
    served->urb->set_completion_handler([this, weak](Urb &) {
        if (auto s = weak.lock()) {
            completed(s);
        }
    });
    in_flight_[{client, addr}] = served;
    if (type == TransferType::Control) {
        log_.line("dev%u SUBMITURB control %02x %02x %04x %04x %u", index_,
                  setup.request_type, setup.request, setup.value, setup.index, setup.length);
        ControlResult r = model_->control(setup, served->urb->buffer());
        std::size_t n = in ? r.length : setup.length;
        served->urb->complete(r.status, r.status == urb_status::ok ? n : 0);
        check_configuration();
    } else {
        log_.line("dev%u SUBMITURB %s ep 0x%02x len %zu%s", index_, type_name(type),
                  endpoint, length,
                  type == TransferType::Iso
                      ? (" packets " + std::to_string(packets)).c_str()
                      : "");
        model_->submit(served->urb);
    }
    return {0, 0};
}

void UsbfsDevice::completed(const std::shared_ptr<ServedUrb> &served)
{
    auto it = clients_.find(served->client);
    const Urb &urb = *served->urb;
    log_.line("dev%u complete %s ep 0x%02x status %d len %zu", index_,
              type_name(urb.type()), urb.endpoint(), urb.status(), urb.actual_length());
    if (it == clients_.end() || it->second.gone) {
        in_flight_.erase({served->client, served->client_addr});
        return;
    }
    ClientState &state = it->second;
    state.completed.push_back(served);
    if (state.waiting_reaper) {
        UMockdevIoctlClient *reaper = state.waiting_reaper;
        state.waiting_reaper = nullptr;
        deliver(reaper, state, umockdev_ioctl_client_get_arg(reaper));
        umockdev_ioctl_client_complete(reaper, 0, 0);
        g_object_unref(reaper);
    }
    update_readiness();
}

bool UsbfsDevice::reap_urb(UMockdevIoctlClient *client, ClientState &state, bool wait,
                           Reply &reply)
{
    if (state.completed.empty()) {
        if (unplugged_) {
            log_.line("dev%u REAP -> ENODEV", index_);
            reply = {-1, ENODEV};
            return true;
        }
        if (!wait) {
            log_.line("dev%u REAPURBNDELAY -> EAGAIN", index_);
            reply = {-1, EAGAIN};
            return true;
        }
        // REAPURB blocks until a URB completes (answered by completed()).
        if (state.waiting_reaper) {
            reply = {-1, EBUSY};
            return true;
        }
        state.waiting_reaper = client;
        g_object_ref(client);
        return false;
    }
    deliver(client, state, umockdev_ioctl_client_get_arg(client));
    reply = {0, 0};
    return true;
}

void UsbfsDevice::deliver(UMockdevIoctlClient *, ClientState &state, UMockdevIoctlData *arg)
{
    auto served = state.completed.front();
    state.completed.pop_front();
    in_flight_.erase({served->client, served->client_addr});
    const Urb &urb = *served->urb;

    auto *u = reinterpret_cast<usbdevfs_urb *>(served->urb_data->data);
    u->status = urb.status();
    u->actual_length = static_cast<int>(urb.actual_length());
    u->error_count = urb.error_count();
    if (urb.type() == TransferType::Iso) {
        u->start_frame = static_cast<int>(frame_);
        auto *descs = reinterpret_cast<usbdevfs_iso_packet_desc *>(
            served->urb_data->data + sizeof(usbdevfs_urb));
        auto packets = urb.iso_packets();
        frame_ += static_cast<std::uint32_t>(packets.size());
        for (std::size_t i = 0; i < packets.size(); ++i) {
            descs[i].actual_length = std::min(packets[i].actual_length, packets[i].length);
            descs[i].status = static_cast<unsigned>(packets[i].status);
        }
    }
    if (urb.is_in() && served->buffer_data) {
        // Iso IN data lies at each packet's offset: copy the whole buffer.
        std::size_t room = served->buffer_data->data_len - served->data_offset;
        std::size_t n = urb.type() == TransferType::Iso
                            ? urb.buffer().size()
                            : urb.actual_length();
        std::memcpy(served->buffer_data->data + served->data_offset, urb.buffer().data(),
                    std::min(n, room));
    }
    // The reaped pointer: the client's urb, written back with its buffer.
    UMockdevIoctlData *slot = resolve(arg, 0, sizeof(void *));
    if (slot) {
        umockdev_ioctl_data_set_ptr(slot, 0, served->urb_data);
        g_object_unref(slot);
    }
    log_.line("dev%u REAP %s ep 0x%02x status %d len %zu", index_, type_name(urb.type()),
              urb.endpoint(), urb.status(), urb.actual_length());
    update_readiness();
}

UsbfsDevice::Reply UsbfsDevice::discard_urb(UMockdevIoctlClient *client, ClientState &)
{
    std::uint64_t addr = arg_value(client);
    auto it = in_flight_.find({client, addr});
    if (it == in_flight_.end() || it->second->urb->done()) {
        log_.line("dev%u DISCARDURB -> EINVAL (not pending)", index_);
        return {-1, EINVAL};
    }
    auto served = it->second;
    log_.line("dev%u DISCARDURB %s ep 0x%02x", index_, type_name(served->urb->type()),
              served->urb->endpoint());
    served->urb->complete(urb_status::cancelled);
    model_->discarded(served->urb);
    return {0, 0};
}

void UsbfsDevice::cancel_in_flight(UMockdevIoctlClient *client, int status)
{
    std::vector<std::shared_ptr<ServedUrb>> pending;
    for (auto &[key, served] : in_flight_) {
        if ((!client || key.first == client) && !served->urb->done()) {
            pending.push_back(served);
        }
    }
    for (auto &served : pending) {
        served->urb->complete(status);
        model_->discarded(served->urb);
    }
}

void UsbfsDevice::unplug()
{
    if (unplugged_) {
        return;
    }
    log_.line("dev%u unplug", index_);
    model_->unplugged();
    unplugged_ = true;
    cancel_in_flight(nullptr, urb_status::shutdown);
    for (auto &[client, state] : clients_) {
        // A blocked REAPURB gets ENODEV now.
        if (state.waiting_reaper && state.completed.empty()) {
            umockdev_ioctl_client_complete(state.waiting_reaper, -1, ENODEV);
            g_object_unref(state.waiting_reaper);
            state.waiting_reaper = nullptr;
        }
    }
    update_readiness();
}

void UsbfsDevice::update_readiness()
{
    bool ready = false;
    for (const auto &[client, state] : clients_) {
        ready = ready || (!state.gone && !state.completed.empty());
    }
    readiness_.set_ready(ready);
}

void UsbfsDevice::check_configuration()
{
    if (model_->configuration() != reported_configuration_) {
        reported_configuration_ = model_->configuration();
        if (configuration_changed_) {
            configuration_changed_(reported_configuration_);
        }
    }
}

}  // namespace qemu_rewind::usbdev
