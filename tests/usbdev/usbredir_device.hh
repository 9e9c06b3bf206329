// The USB-host side of one usbredir connection (libusbredirparser with
// usbredirparser_fl_usb_host): presents a UsbDeviceModel to QEMU's
// -device usb-redir as usbredirhost would present a real device.
//
// After QEMU's hello we send interface_info, ep_info and device_connect;
// then we answer control, bulk and interrupt packets, configuration and
// alternate-setting requests, cancels and resets from the model, and run
// interrupt-receiving and isochronous IN streams on it (iso OUT streams,
// bulk streams and bulk receiving are refused with a status; we do not
// announce them).
//
// Runs on the GLib main loop, the models' thread. The file descriptors are
// made non-blocking: libusbredirparser reads until the read callback says
// it would block.
#pragma once

#include "event_log.hh"
#include "usb_device_model.hh"

#include <glib.h>
#include <usbredirparser.h>

#include <cstdint>
#include <cstdio>
#include <functional>
#include <map>
#include <memory>
#include <string>

namespace qemu_rewind::usbdev {

class UsbredirDevice {
public:
    UsbredirDevice(std::unique_ptr<UsbDeviceModel> model, EventLog &log);
    ~UsbredirDevice();
    UsbredirDevice(const UsbredirDevice &) = delete;
    UsbredirDevice &operator=(const UsbredirDevice &) = delete;

    // Every byte QEMU sends is also appended to this file (for comparing
    // what QEMU sent while recording and while replaying).
    void capture_to(const std::string &path);

    // Starts speaking usbredir on the connection (one fd for a socket, two
    // for a FIFO pair). Takes ownership of the descriptors.
    void attach(int read_fd, int write_fd);

    // Called once when the connection ends: QEMU closed it (reason "") or
    // it failed (reason says why).
    void on_closed(std::function<void(const std::string &reason)> fn)
    {
        closed_ = std::move(fn);
    }

    UsbDeviceModel &model() { return *model_; }
    bool connected() const { return read_fd_ >= 0; }
    std::uint64_t packets() const { return packets_; }   // requests answered

private:
    struct Stream;
    static UsbredirDevice &self(void *priv) { return *static_cast<UsbredirDevice *>(priv); }

    // libusbredirparser callbacks (priv is `this`)
    static void parser_log(void *priv, int level, const char *msg);
    static int parser_read(void *priv, std::uint8_t *data, int count);
    static int parser_write(void *priv, std::uint8_t *data, int count);
    static void on_hello(void *priv, struct usb_redir_hello_header *hello);
    static void on_reset(void *priv);
    static void on_set_configuration(void *priv, std::uint64_t id,
                                     struct usb_redir_set_configuration_header *h);
    static void on_get_configuration(void *priv, std::uint64_t id);
    static void on_set_alt_setting(void *priv, std::uint64_t id,
                                   struct usb_redir_set_alt_setting_header *h);
    static void on_get_alt_setting(void *priv, std::uint64_t id,
                                   struct usb_redir_get_alt_setting_header *h);
    static void on_start_iso_stream(void *priv, std::uint64_t id,
                                    struct usb_redir_start_iso_stream_header *h);
    static void on_stop_iso_stream(void *priv, std::uint64_t id,
                                   struct usb_redir_stop_iso_stream_header *h);
    static void on_start_interrupt_receiving(
        void *priv, std::uint64_t id, struct usb_redir_start_interrupt_receiving_header *h);
    static void on_stop_interrupt_receiving(
        void *priv, std::uint64_t id, struct usb_redir_stop_interrupt_receiving_header *h);
    static void on_alloc_bulk_streams(void *priv, std::uint64_t id,
                                      struct usb_redir_alloc_bulk_streams_header *h);
    static void on_free_bulk_streams(void *priv, std::uint64_t id,
                                     struct usb_redir_free_bulk_streams_header *h);
    static void on_start_bulk_receiving(void *priv, std::uint64_t id,
                                        struct usb_redir_start_bulk_receiving_header *h);
    static void on_stop_bulk_receiving(void *priv, std::uint64_t id,
                                       struct usb_redir_stop_bulk_receiving_header *h);
    static void on_cancel_data_packet(void *priv, std::uint64_t id);
    static void on_filter_reject(void *priv);
    static void on_filter_filter(void *priv, struct usbredirfilter_rule *rules, int count);
    static void on_control_packet(void *priv, std::uint64_t id,
                                  struct usb_redir_control_packet_header *h,
                                  std::uint8_t *data, int data_len);
    static void on_bulk_packet(void *priv, std::uint64_t id,
                               struct usb_redir_bulk_packet_header *h, std::uint8_t *data,
                               int data_len);
    static void on_interrupt_packet(void *priv, std::uint64_t id,
                                    struct usb_redir_interrupt_packet_header *h,
                                    std::uint8_t *data, int data_len);
    static void on_iso_packet(void *priv, std::uint64_t id,
                              struct usb_redir_iso_packet_header *h, std::uint8_t *data,
                              int data_len);

    static gboolean on_readable(gint fd, GIOCondition condition, gpointer self);
    static gboolean on_writable(gint fd, GIOCondition condition, gpointer self);

    void create_parser();
    void send_device_info();        // interface_info + ep_info
    void flush();                   // write what the parser queued
    void request_close(const std::string &reason);
    void close_connection(const std::string &reason);
    void free_data(std::uint8_t *data);

    // The endpoint's description in the current configuration and
    // alternate settings, or nullptr.
    const EndpointDescription *active_endpoint(std::uint8_t address) const;
    void submit(std::uint64_t id, const UrbPtr &urb);
    UrbPtr take_in_flight(std::uint64_t id);
    void stop_stream(std::uint8_t endpoint);
    void stop_all_streams();
    void refill(std::uint8_t endpoint);
    void stream_completed(std::uint8_t endpoint, Urb &urb);
    void fail_in_flight();

    std::unique_ptr<UsbDeviceModel> model_;
    EventLog &log_;
    usbredirparser *parser_ = nullptr;
    int read_fd_ = -1;
    int write_fd_ = -1;
    unsigned read_source_ = 0;
    unsigned write_source_ = 0;
    unsigned close_source_ = 0;
    std::string close_reason_;
    bool eof_ = false;
    std::string read_error_;
    std::FILE *capture_ = nullptr;
    std::function<void(const std::string &)> closed_;

    // Requests from QEMU waiting for the model, by usbredir packet id.
    std::map<std::uint64_t, UrbPtr> in_flight_;
    // Interrupt-receiving and iso IN streams, by endpoint address.
    std::map<std::uint8_t, std::unique_ptr<Stream>> streams_;
    bool rejected_ = false;
    std::uint64_t packets_ = 0;
};

}  // namespace qemu_rewind::usbdev
