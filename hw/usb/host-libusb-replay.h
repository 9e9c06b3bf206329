/*
 * QEMU Rewind: record and replay of usb-host passthrough
 *
 * Copyright (c) 2026 QEMU Rewind authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#ifndef HW_USB_HOST_LIBUSB_REPLAY_H
#define HW_USB_HOST_LIBUSB_REPLAY_H

#include <libusb.h>

/*
 * host-libusb.c includes this header after <libusb.h>: every libusb call
 * it makes goes through the functions below instead.  Without -icount
 * rr=... they call libusb and nothing else.  While recording they call
 * libusb and log what it answered; in a replay they never touch libusb
 * (the device need not exist) and answer from the log.
 *
 * What a device is made of (bus, address, speed, port, descriptors) is
 * logged once, with the event that attaches it to the guest.  Every
 * other call that can fail is a synchronous record, checked against
 * what the guest asks for: a replay that asks for something else stops
 * with an error naming the instruction count, the device and the
 * endpoint.  Transfer completions are replay events, matched by device,
 * endpoint and submission number.
 */

typedef struct USBHostReplayOps {
    /* usb_host_open() proper: attach the device to the guest */
    int (*open)(void *host, libusb_device *dev);
    /* usb_host_close() proper: detach it */
    int (*close)(void *host);
    /* drop every request and iso ring without completing any packet */
    void (*drop_requests)(void *host);
    /* set what host-libusb.c keeps of an open device, without I/O */
    void (*set_handle)(void *host, libusb_device *dev,
                       libusb_device_handle *dh);
    /* re-read the endpoints of the active configuration */
    void (*ep_update)(void *host);
    /* interfaces claimed (bits 0-15) and detached from the kernel (16-31) */
    uint32_t (*get_ifs)(void *host);
    void (*set_ifs)(void *host, uint32_t mask);
} USBHostReplayOps;

bool usb_host_rr_enabled(void);
/* Registers a usb-host device; its index names it in the log. */
void usb_host_rr_realize(void *host, const USBHostReplayOps *ops);
void usb_host_rr_unrealize(void *host);
/*
 * Under record/replay the guest must see the device arrive and leave at
 * a logged instruction: these return true when the open or close was
 * turned into a replay event (or, in a replay, left to the log).
 */
bool usb_host_rr_defer_open(void *host, libusb_device *dev);
bool usb_host_rr_defer_close(void *host);
/* At exit: release the device without logging anything. */
void usb_host_rr_quiet(void);

extern const VMStateDescription vmstate_usb_host_rr;

/* The libusb calls of host-libusb.c. */
int usb_host_rr_init(libusb_context **ctx);
void usb_host_rr_set_log_level(libusb_context *ctx, int level);
void usb_host_rr_set_pollfd_notifiers(libusb_context *ctx,
                                      libusb_pollfd_added_cb added,
                                      libusb_pollfd_removed_cb removed,
                                      void *user_data);
const struct libusb_pollfd **usb_host_rr_get_pollfds(libusb_context *ctx);
int usb_host_rr_handle_events_timeout(libusb_context *ctx,
                                      struct timeval *tv);
ssize_t usb_host_rr_get_device_list(libusb_context *ctx,
                                    libusb_device ***list);
void usb_host_rr_free_device_list(libusb_device **list, int unref);
libusb_device *usb_host_rr_ref_device(libusb_device *dev);
void usb_host_rr_unref_device(libusb_device *dev);
uint8_t usb_host_rr_get_bus_number(libusb_device *dev);
uint8_t usb_host_rr_get_device_address(libusb_device *dev);
int usb_host_rr_get_device_speed(libusb_device *dev);
int usb_host_rr_get_port_numbers(libusb_device *dev, uint8_t *numbers,
                                 int len);
int usb_host_rr_get_device_descriptor(libusb_device *dev,
                                      struct libusb_device_descriptor *desc);
int usb_host_rr_get_config_descriptor(libusb_device *dev, uint8_t index,
                                      struct libusb_config_descriptor **c);
int usb_host_rr_get_active_config_descriptor(libusb_device *dev,
                                      struct libusb_config_descriptor **c);
void usb_host_rr_free_config_descriptor(struct libusb_config_descriptor *c);
int usb_host_rr_get_ss_endpoint_companion_descriptor(libusb_context *ctx,
        const struct libusb_endpoint_descriptor *endpoint,
        struct libusb_ss_endpoint_companion_descriptor **comp);
void usb_host_rr_free_ss_endpoint_companion_descriptor(
        struct libusb_ss_endpoint_companion_descriptor *comp);
int usb_host_rr_open(libusb_device *dev, libusb_device_handle **dh);
int usb_host_rr_wrap_sys_device(libusb_context *ctx, intptr_t fd,
                                libusb_device_handle **dh);
libusb_device *usb_host_rr_get_device(libusb_device_handle *dh);
void usb_host_rr_close(libusb_device_handle *dh);
int usb_host_rr_get_string_descriptor_ascii(libusb_device_handle *dh,
                                            uint8_t index,
                                            unsigned char *data, int length);
int usb_host_rr_kernel_driver_active(libusb_device_handle *dh, int iface);
int usb_host_rr_detach_kernel_driver(libusb_device_handle *dh, int iface);
int usb_host_rr_attach_kernel_driver(libusb_device_handle *dh, int iface);
int usb_host_rr_claim_interface(libusb_device_handle *dh, int iface);
int usb_host_rr_release_interface(libusb_device_handle *dh, int iface);
int usb_host_rr_set_configuration(libusb_device_handle *dh, int config);
int usb_host_rr_set_interface_alt_setting(libusb_device_handle *dh,
                                          int iface, int alt);
int usb_host_rr_clear_halt(libusb_device_handle *dh, unsigned char ep);
int usb_host_rr_reset_device(libusb_device_handle *dh);
int usb_host_rr_alloc_streams(libusb_device_handle *dh, uint32_t num,
                              unsigned char *eps, int neps);
int usb_host_rr_free_streams(libusb_device_handle *dh, unsigned char *eps,
                             int neps);
int usb_host_rr_submit_transfer(struct libusb_transfer *xfer);
int usb_host_rr_cancel_transfer(struct libusb_transfer *xfer);
void usb_host_rr_free_transfer(struct libusb_transfer *xfer);

#ifndef HOST_LIBUSB_REPLAY_IMPL
#define libusb_init usb_host_rr_init
#define libusb_set_option(ctx, opt, level) \
    usb_host_rr_set_log_level(ctx, level)
#define libusb_set_debug usb_host_rr_set_log_level
#define libusb_set_pollfd_notifiers usb_host_rr_set_pollfd_notifiers
#define libusb_get_pollfds usb_host_rr_get_pollfds
#define libusb_handle_events_timeout usb_host_rr_handle_events_timeout
#define libusb_get_device_list usb_host_rr_get_device_list
#define libusb_free_device_list usb_host_rr_free_device_list
#define libusb_ref_device usb_host_rr_ref_device
#define libusb_unref_device usb_host_rr_unref_device
#define libusb_get_bus_number usb_host_rr_get_bus_number
#define libusb_get_device_address usb_host_rr_get_device_address
#define libusb_get_device_speed usb_host_rr_get_device_speed
#define libusb_get_port_numbers usb_host_rr_get_port_numbers
#define libusb_get_device_descriptor usb_host_rr_get_device_descriptor
#define libusb_get_config_descriptor usb_host_rr_get_config_descriptor
#define libusb_get_active_config_descriptor \
    usb_host_rr_get_active_config_descriptor
#define libusb_free_config_descriptor usb_host_rr_free_config_descriptor
#define libusb_get_ss_endpoint_companion_descriptor \
    usb_host_rr_get_ss_endpoint_companion_descriptor
#define libusb_free_ss_endpoint_companion_descriptor \
    usb_host_rr_free_ss_endpoint_companion_descriptor
#define libusb_open usb_host_rr_open
#define libusb_wrap_sys_device usb_host_rr_wrap_sys_device
#define libusb_get_device usb_host_rr_get_device
#define libusb_close usb_host_rr_close
#define libusb_get_string_descriptor_ascii \
    usb_host_rr_get_string_descriptor_ascii
#define libusb_kernel_driver_active usb_host_rr_kernel_driver_active
#define libusb_detach_kernel_driver usb_host_rr_detach_kernel_driver
#define libusb_attach_kernel_driver usb_host_rr_attach_kernel_driver
#define libusb_claim_interface usb_host_rr_claim_interface
#define libusb_release_interface usb_host_rr_release_interface
#define libusb_set_configuration usb_host_rr_set_configuration
#define libusb_set_interface_alt_setting usb_host_rr_set_interface_alt_setting
#define libusb_clear_halt usb_host_rr_clear_halt
#define libusb_reset_device usb_host_rr_reset_device
#define libusb_alloc_streams usb_host_rr_alloc_streams
#define libusb_free_streams usb_host_rr_free_streams
#define libusb_submit_transfer usb_host_rr_submit_transfer
#define libusb_cancel_transfer usb_host_rr_cancel_transfer
#define libusb_free_transfer usb_host_rr_free_transfer
#endif

#endif
