// One software USB device as Linux usbfs presents it: the usbfs ioctls
// libusb sends for /dev/bus/usb/BBB/DDD, answered from a UsbDeviceModel.
// URBs are kept per client fd as the kernel does: submitted, completed by
// the model (now or later), reaped by the client. Poll readiness follows
// the reap queue (see poll_readiness.hh). libumockdev calls us from its
// worker thread; we handle everything on the main loop, the models' thread.
#pragma once

#include "event_log.hh"
#include "poll_readiness.hh"
#include "usb_device_model.hh"

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

typedef struct _UMockdevTestbed UMockdevTestbed;
typedef struct _UMockdevIoctlBase UMockdevIoctlBase;
typedef struct _UMockdevIoctlClient UMockdevIoctlClient;
typedef struct _UMockdevIoctlData UMockdevIoctlData;

namespace qemu_rewind::usbdev {

class UsbfsDevice {
public:
    UsbfsDevice(unsigned index, std::unique_ptr<UsbDeviceModel> model, EventLog &log);
    ~UsbfsDevice();
    UsbfsDevice(const UsbfsDevice &) = delete;
    UsbfsDevice &operator=(const UsbfsDevice &) = delete;

    unsigned index() const { return index_; }
    unsigned bus() const { return 1; }
    unsigned address() const { return 2 + index_; }
    std::string devnode() const;            // /dev/bus/usb/001/002
    UsbDeviceModel &model() { return *model_; }

    // Serves the node: `node_file` is the testbed's file for devnode(),
    // replaced by a FIFO for poll readiness.
    void serve(UMockdevTestbed *testbed, const std::string &node_file);
    // Called when the active configuration changes (sysfs attribute).
    void on_configuration_change(std::function<void(std::uint8_t)> fn)
    {
        configuration_changed_ = std::move(fn);
    }

    // The device goes away: pending URBs complete with -ESHUTDOWN (still
    // reapable), everything else fails with ENODEV from now on.
    void unplug();
    bool unplugged() const { return unplugged_; }

    std::uint64_t ioctl_count() const { return ioctl_count_; }

private:
    struct ServedUrb;
    struct ClientState {
        std::deque<std::shared_ptr<ServedUrb>> completed;   // reapable, in order
        UMockdevIoctlClient *waiting_reaper = nullptr;     // blocked REAPURB
        std::set<unsigned> claimed;
        bool gone = false;
    };
    struct Reply {
        long result = 0;
        int error = 0;
    };

    static int on_ioctl(UMockdevIoctlBase *handler, UMockdevIoctlClient *client, void *self);
    static void on_client_connected(UMockdevIoctlBase *handler, UMockdevIoctlClient *client,
                                    void *self);
    static void on_client_notify(UMockdevIoctlClient *client, void *pspec, void *self);

    // Returns false when the reply is deferred (blocking REAPURB).
    bool handle(UMockdevIoctlClient *client, Reply &reply);
    Reply submit_urb(UMockdevIoctlClient *client, ClientState &state);
    bool reap_urb(UMockdevIoctlClient *client, ClientState &state, bool wait, Reply &reply);
    void deliver(UMockdevIoctlClient *client, ClientState &state,
                 UMockdevIoctlData *arg);
    Reply discard_urb(UMockdevIoctlClient *client, ClientState &state);
    Reply control(UMockdevIoctlClient *client);
    Reply usbfs_ioctl(UMockdevIoctlClient *client);
    void completed(const std::shared_ptr<ServedUrb> &served);
    void client_gone(UMockdevIoctlClient *client);
    void cancel_in_flight(UMockdevIoctlClient *client, int status);
    void update_readiness();
    void check_configuration();

    unsigned index_;
    std::unique_ptr<UsbDeviceModel> model_;
    EventLog &log_;
    UMockdevIoctlBase *handler_ = nullptr;
    PollReadiness readiness_;
    std::map<UMockdevIoctlClient *, ClientState> clients_;
    // Submitted, not reaped yet; key: the client and its urb address.
    std::map<std::pair<UMockdevIoctlClient *, std::uint64_t>, std::shared_ptr<ServedUrb>>
        in_flight_;
    bool unplugged_ = false;
    std::uint8_t reported_configuration_ = 0;
    std::function<void(std::uint8_t)> configuration_changed_;
    std::uint32_t frame_ = 0;             // iso start_frame counter
    std::uint64_t ioctl_count_ = 0;
};

}  // namespace qemu_rewind::usbdev
