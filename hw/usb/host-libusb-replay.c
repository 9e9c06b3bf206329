/*
 * QEMU Rewind: record and replay of usb-host passthrough
 *
 * Copyright (c) 2026 QEMU Rewind authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/queue.h"
#include "migration/vmstate.h"
#include "migration/qemu-file-types.h"
#include "system/replay.h"
#include "system/replay-usb.h"
#include "hw/usb.h"
#include "hw/qdev-core.h"
#include "system/rewind-restore.h"

#define HOST_LIBUSB_REPLAY_IMPL
#include "host-libusb-replay.h"

/*
 * See host-libusb-replay.h for the idea.  The log holds, per usb-host
 * device (named by the order the devices were created in):
 *
 *   EVENT_USB_ASYNC OPEN      what the device is made of; the guest sees
 *                             it arrive here
 *   EVENT_USB_ASYNC CLOSE     it left (unplugged, or gone at a scan)
 *   EVENT_USB_ASYNC COMPLETE  a transfer completed: endpoint, submission
 *                             number, status, length, IN data, and per
 *                             packet status and length for isochronous
 *   EVENT_USB <call>          the result of one synchronous libusb call
 */

enum {
    RR_EV_OPEN = 1,
    RR_EV_CLOSE,
    RR_EV_COMPLETE,
};

typedef enum RRCall {
    RR_OPEN = 1,
    RR_ACTIVE_CONFIG,
    RR_STRING,
    RR_DRIVER_ACTIVE,
    RR_DETACH,
    RR_ATTACH,
    RR_CLAIM,
    RR_RELEASE,
    RR_SET_CONFIG,
    RR_SET_ALT,
    RR_CLEAR_HALT,
    RR_RESET,
    RR_ALLOC_STREAMS,
    RR_FREE_STREAMS,
    RR_SUBMIT,
    RR_CANCEL,
    RR_CALL_COUNT
} RRCall;

static const char *const rr_call_names[RR_CALL_COUNT] = {
    [RR_OPEN] = "open",
    [RR_ACTIVE_CONFIG] = "get the active configuration",
    [RR_STRING] = "read a string descriptor",
    [RR_DRIVER_ACTIVE] = "query the kernel driver",
    [RR_DETACH] = "detach the kernel driver",
    [RR_ATTACH] = "attach the kernel driver",
    [RR_CLAIM] = "claim an interface",
    [RR_RELEASE] = "release an interface",
    [RR_SET_CONFIG] = "set the configuration",
    [RR_SET_ALT] = "set an alternate setting",
    [RR_CLEAR_HALT] = "clear a halt",
    [RR_RESET] = "reset the device",
    [RR_ALLOC_STREAMS] = "allocate streams",
    [RR_FREE_STREAMS] = "free streams",
    [RR_SUBMIT] = "submit a transfer",
    [RR_CANCEL] = "cancel a transfer",
};

static const char *const rr_xfer_type_names[] = {
    "control", "isochronous", "bulk", "interrupt", "bulk stream",
};

#define RR_MAX_CONFIGS 8
#define RR_MAX_PORTS 8
#define RR_NUM_EPS 32

/* What a device is made of, logged with its OPEN event. */
typedef struct RRSnapshot {
    uint8_t bus, addr, speed;
    uint8_t nports;
    uint8_t ports[RR_MAX_PORTS];
    uint8_t ddesc[LIBUSB_DT_DEVICE_SIZE];
    uint8_t nconfigs;
    GByteArray *config[RR_MAX_CONFIGS];     /* raw descriptors */
} RRSnapshot;

typedef struct RRDev RRDev;

typedef struct RRXfer {
    struct libusb_transfer *xfer;
    RRDev *d;
    libusb_transfer_cb_fn orig_cb;
    uint8_t ep;             /* endpoint address; 0 for control */
    uint32_t seq;           /* submission number on that endpoint */
    bool in_flight;         /* submitted, completion not delivered yet */
    bool libusb_owned;      /* record: libusb still has it */
    bool freed;             /* host-libusb.c freed it while libusb had it */
    QTAILQ_ENTRY(RRXfer) next;
} RRXfer;

struct RRDev {
    void *host;
    const USBHostReplayOps *ops;
    int index;
    bool have_snap;
    RRSnapshot snap;
    libusb_device *dev;             /* record: real; replay: fake_dev */
    libusb_device_handle *dh;       /* record: real; replay: fake_dh */
    char fake_dev, fake_dh;
    uint8_t active_config;
    bool in_event;                  /* an OPEN/CLOSE event is running */
    bool open_pending, close_pending;
    uint32_t seq[RR_NUM_EPS];
    QTAILQ_HEAD(, RRXfer) inflight;
    /*
     * After a checkpoint restore: transfers in flight at the checkpoint,
     * {endpoint, number}, to bind to what the controller submits again
     * (while restoring), or that it did not submit again (after).
     */
    bool restoring;
    GArray *rebind;
    GArray *lost;
};

typedef struct RRInFlight {
    uint8_t ep;
    uint32_t seq;
} RRInFlight;

typedef struct RREvent {
    uint8_t kind;
    uint8_t dev;
    /* OPEN */
    RRSnapshot snap;
    libusb_device *ldev;            /* record: a reference until it runs */
    /* COMPLETE */
    uint8_t ep;
    uint32_t seq;
    int32_t status;
    int32_t actual_length;
    uint8_t *data;
    size_t data_len;
    uint32_t npackets;
    int32_t *pkt_status;
    uint32_t *pkt_len;
} RREvent;

static GPtrArray *rr_devs;
static GHashTable *rr_xfers;        /* struct libusb_transfer * -> RRXfer */
static bool rr_quiet;
static char fake_ctx;

/*
 * The mode the devices were created in: replay_finish() sets replay_mode
 * back to none before the exit notifiers release the devices, and a
 * replay's handles are not libusb's.
 */
static ReplayMode rr_mode(void)
{
    static int mode = -1;

    if (mode < 0) {
        mode = replay_mode;
    }
    return mode;
}

bool usb_host_rr_enabled(void)
{
    return rr_mode() != REPLAY_MODE_NONE;
}

static bool rr_record(void)
{
    return rr_mode() == REPLAY_MODE_RECORD;
}

static bool rr_play(void)
{
    return rr_mode() == REPLAY_MODE_PLAY;
}

static RRDev *rr_dev_by_host(void *host)
{
    guint i;

    for (i = 0; rr_devs && i < rr_devs->len; i++) {
        RRDev *d = g_ptr_array_index(rr_devs, i);
        if (d->host == host) {
            return d;
        }
    }
    return NULL;
}

static RRDev *rr_dev_by_index(int index)
{
    if (!rr_devs || index < 0 || index >= rr_devs->len) {
        return NULL;
    }
    return g_ptr_array_index(rr_devs, index);
}

/* The device a libusb_device belongs to, when it is one we log. */
static RRDev *rr_dev_by_dev(libusb_device *dev)
{
    guint i;

    if (!usb_host_rr_enabled() || !dev) {
        return NULL;
    }
    for (i = 0; rr_devs && i < rr_devs->len; i++) {
        RRDev *d = g_ptr_array_index(rr_devs, i);
        if (d->dev == dev) {
            return d;
        }
    }
    return NULL;
}

static RRDev *rr_dev_by_handle(libusb_device_handle *dh)
{
    guint i;

    if (!usb_host_rr_enabled() || !dh) {
        return NULL;
    }
    for (i = 0; rr_devs && i < rr_devs->len; i++) {
        RRDev *d = g_ptr_array_index(rr_devs, i);
        if (d->dh == dh) {
            return d;
        }
    }
    return NULL;
}

static const char *rr_dev_name(RRDev *d)
{
    DeviceState *ds = DEVICE(d->host);

    return ds->id ? ds->id : object_get_canonical_path(OBJECT(ds));
}

static unsigned rr_ep_index(uint8_t ep)
{
    return (ep & 0x0f) | ((ep & 0x80) ? 0x10 : 0);
}

/* ---- errors ---------------------------------------------------------- */

static G_NORETURN void rr_diverged(RRDev *d, const char *what, int ep,
                                   const char *found)
{
    uint16_t vid = d->have_snap ? lduw_le_p(d->snap.ddesc + 8) : 0;
    uint16_t pid = d->have_snap ? lduw_le_p(d->snap.ddesc + 10) : 0;

    error_report("replay diverged at instruction %" PRIu64 ": usb-host "
                 "device %d '%s' (%04x:%04x): the guest tried to %s%s%s, "
                 "but %s",
                 replay_get_current_icount(), d->index, rr_dev_name(d),
                 vid, pid, what, ep >= 0 ? " on endpoint " : "",
                 ep >= 0 ? g_strdup_printf("0x%02x", ep) : "", found);
    exit(1);
}

/* ---- synchronous records --------------------------------------------- */

/*
 * One libusb call: call, device, two arguments that must match in the
 * replay, the return code, one result value, and an optional payload.
 */
typedef struct RRSync {
    RRCall call;
    uint32_t arg, arg2;
    int32_t rc;
    uint32_t out;
    uint8_t *data;
    size_t len;
} RRSync;

/*
 * Nothing is logged or read from the log while a checkpoint is restored:
 * the machine reset that comes first, and the load, are not the guest's.
 */
static bool rr_logging(RRDev *d)
{
    return d && usb_host_rr_enabled() && !rr_quiet && !d->restoring &&
           !(rr_play() && rewind_restoring());
}

static void rr_sync_save(RRDev *d, const RRSync *s)
{
    replay_usb_sync_save_begin();
    replay_usb_put_u8(s->call);
    replay_usb_put_u8(d->index);
    replay_usb_put_u32(s->arg);
    replay_usb_put_u32(s->arg2);
    replay_usb_put_u32(s->rc);
    replay_usb_put_u32(s->out);
    if (s->call == RR_STRING) {
        replay_usb_put_bytes(s->data, s->len);
    }
}

/* Replay: fill s->rc, s->out (and s->data) from the log, after checks. */
static void rr_sync_load(RRDev *d, RRSync *s, int ep)
{
    uint8_t call, dev;
    uint32_t arg, arg2;
    const char *what = rr_call_names[s->call];

    if (!replay_usb_sync_load_begin()) {
        rr_diverged(d, what, ep, g_strdup_printf(
                    "the log holds no usb-host call here (next record: "
                    "event %d)", replay_usb_next_event()));
    }
    call = replay_usb_get_u8();
    dev = replay_usb_get_u8();
    arg = replay_usb_get_u32();
    arg2 = replay_usb_get_u32();
    s->rc = (int32_t)replay_usb_get_u32();
    s->out = replay_usb_get_u32();
    if (call == RR_STRING) {
        s->data = replay_usb_get_bytes(&s->len);
    }
    replay_usb_sync_load_end();
    if (call != s->call || dev != d->index) {
        rr_diverged(d, what, ep, g_strdup_printf(
                    "the log holds '%s' for device %d here",
                    call < RR_CALL_COUNT && rr_call_names[call] ?
                    rr_call_names[call] : "?", dev));
    }
    if (arg != s->arg || arg2 != s->arg2) {
        if (s->call == RR_SUBMIT) {
            rr_diverged(d, g_strdup_printf("submit a %s transfer of %u bytes",
                            rr_xfer_type_names[(s->arg >> 8) % 5], s->arg2),
                        ep, g_strdup_printf(
                            "the log holds a %s transfer of %u bytes on "
                            "endpoint 0x%02x",
                            rr_xfer_type_names[(arg >> 8) % 5], arg2,
                            arg & 0xff));
        }
        rr_diverged(d, g_strdup_printf("%s (%u, %u)", what, s->arg, s->arg2),
                    ep, g_strdup_printf("the log holds (%u, %u)", arg, arg2));
    }
}

/*
 * A call that only returns a code: in the replay the code comes from the
 * log; while recording, real() is called and its code logged.
 */
#define RR_SIMPLE_CALL(d, callid, a1, a2, ep, real)                     \
    ({                                                                  \
        RRSync s_ = { .call = (callid), .arg = (a1), .arg2 = (a2) };    \
        if (!rr_logging(d)) {                                           \
            s_.rc = rr_play() ? 0 : (real);                             \
        } else if (rr_play()) {                                         \
            rr_sync_load(d, &s_, ep);                                   \
        } else {                                                        \
            s_.rc = (real);                                             \
            rr_sync_save(d, &s_);                                       \
        }                                                               \
        s_.rc;                                                          \
    })

/* ---- descriptors ----------------------------------------------------- */

static void put_le16(GByteArray *b, uint16_t v)
{
    uint8_t le[2] = { v & 0xff, v >> 8 };

    g_byte_array_append(b, le, 2);
}

/* The raw descriptors of a configuration, from libusb's parsed form. */
static GByteArray *rr_config_to_raw(const struct libusb_config_descriptor *c)
{
    GByteArray *b = g_byte_array_new();
    uint8_t hdr[4] = { 9, LIBUSB_DT_CONFIG, 0, 0 };
    int i, a, e;

    g_byte_array_append(b, hdr, 4);
    g_byte_array_append(b, (uint8_t[]) { c->bNumInterfaces,
                        c->bConfigurationValue, c->iConfiguration,
                        c->bmAttributes, c->MaxPower }, 5);
    g_byte_array_append(b, c->extra, c->extra_length);
    for (i = 0; i < c->bNumInterfaces; i++) {
        const struct libusb_interface *itf = &c->interface[i];
        for (a = 0; a < itf->num_altsetting; a++) {
            const struct libusb_interface_descriptor *alt =
                &itf->altsetting[a];
            g_byte_array_append(b, (uint8_t[]) { 9, LIBUSB_DT_INTERFACE,
                                alt->bInterfaceNumber, alt->bAlternateSetting,
                                alt->bNumEndpoints, alt->bInterfaceClass,
                                alt->bInterfaceSubClass,
                                alt->bInterfaceProtocol, alt->iInterface }, 9);
            g_byte_array_append(b, alt->extra, alt->extra_length);
            for (e = 0; e < alt->bNumEndpoints; e++) {
                const struct libusb_endpoint_descriptor *ep =
                    &alt->endpoint[e];
                bool audio = ep->bLength >= LIBUSB_DT_ENDPOINT_AUDIO_SIZE;
                g_byte_array_append(b, (uint8_t[]) {
                                    audio ? LIBUSB_DT_ENDPOINT_AUDIO_SIZE :
                                    LIBUSB_DT_ENDPOINT_SIZE,
                                    LIBUSB_DT_ENDPOINT, ep->bEndpointAddress,
                                    ep->bmAttributes }, 4);
                put_le16(b, ep->wMaxPacketSize);
                g_byte_array_append(b, &ep->bInterval, 1);
                if (audio) {
                    g_byte_array_append(b, (uint8_t[]) { ep->bRefresh,
                                        ep->bSynchAddress }, 2);
                }
                g_byte_array_append(b, ep->extra, ep->extra_length);
            }
        }
    }
    stw_le_p(b->data + 2, b->len);
    return b;
}

static void rr_append_extra(const unsigned char **extra, int *len,
                            const uint8_t *p, int n)
{
    unsigned char *x = g_realloc((void *)*extra, *len + n);

    memcpy(x + *len, p, n);
    *extra = x;
    *len += n;
}

static void rr_free_config(struct libusb_config_descriptor *c)
{
    int i, a, e;

    if (!c) {
        return;
    }
    for (i = 0; i < c->bNumInterfaces; i++) {
        struct libusb_interface *itf = (void *)&c->interface[i];
        for (a = 0; a < itf->num_altsetting; a++) {
            struct libusb_interface_descriptor *alt =
                (void *)&itf->altsetting[a];
            for (e = 0; e < alt->bNumEndpoints; e++) {
                g_free((void *)alt->endpoint[e].extra);
            }
            g_free((void *)alt->endpoint);
            g_free((void *)alt->extra);
        }
        g_free((void *)itf->altsetting);
    }
    g_free((void *)c->interface);
    g_free((void *)c->extra);
    g_free(c);
}

/* libusb's parsed form of raw configuration descriptors; NULL if bad. */
static struct libusb_config_descriptor *rr_config_from_raw(const uint8_t *p,
                                                            size_t len)
{
    struct libusb_config_descriptor *c;
    struct libusb_interface *itf = NULL;
    struct libusb_interface_descriptor *alt = NULL;
    struct libusb_endpoint_descriptor *ep = NULL;
    int nitf = -1, nep = 0;
    size_t off;

    if (len < 9 || p[1] != LIBUSB_DT_CONFIG) {
        return NULL;
    }
    c = g_new0(struct libusb_config_descriptor, 1);
    c->bLength = 9;
    c->bDescriptorType = LIBUSB_DT_CONFIG;
    c->wTotalLength = lduw_le_p(p + 2);
    c->bNumInterfaces = p[4];
    c->bConfigurationValue = p[5];
    c->iConfiguration = p[6];
    c->bmAttributes = p[7];
    c->MaxPower = p[8];
    c->interface = g_new0(struct libusb_interface, c->bNumInterfaces);

    for (off = p[0]; off + 2 <= len; off += p[off]) {
        const uint8_t *dsc = p + off;
        uint8_t dlen = dsc[0];

        if (dlen < 2 || off + dlen > len) {
            break;
        }
        if (dsc[1] == LIBUSB_DT_INTERFACE && dlen >= 9) {
            if (nitf < 0 || itf->altsetting[0].bInterfaceNumber != dsc[2]) {
                if (++nitf >= c->bNumInterfaces) {
                    break;
                }
                itf = (void *)&c->interface[nitf];
            }
            itf->altsetting = g_renew(struct libusb_interface_descriptor,
                                      (void *)itf->altsetting,
                                      itf->num_altsetting + 1);
            alt = (void *)&itf->altsetting[itf->num_altsetting++];
            memset(alt, 0, sizeof(*alt));
            alt->bLength = 9;
            alt->bDescriptorType = LIBUSB_DT_INTERFACE;
            alt->bInterfaceNumber = dsc[2];
            alt->bAlternateSetting = dsc[3];
            alt->bNumEndpoints = dsc[4];
            alt->bInterfaceClass = dsc[5];
            alt->bInterfaceSubClass = dsc[6];
            alt->bInterfaceProtocol = dsc[7];
            alt->iInterface = dsc[8];
            alt->endpoint = g_new0(struct libusb_endpoint_descriptor,
                                   alt->bNumEndpoints);
            nep = 0;
            ep = NULL;
        } else if (dsc[1] == LIBUSB_DT_ENDPOINT && dlen >= 7 && alt &&
                   nep < alt->bNumEndpoints) {
            ep = (void *)&alt->endpoint[nep++];
            ep->bLength = dlen;
            ep->bDescriptorType = LIBUSB_DT_ENDPOINT;
            ep->bEndpointAddress = dsc[2];
            ep->bmAttributes = dsc[3];
            ep->wMaxPacketSize = lduw_le_p(dsc + 4);
            ep->bInterval = dsc[6];
            if (dlen >= 9) {
                ep->bRefresh = dsc[7];
                ep->bSynchAddress = dsc[8];
            }
        } else if (ep) {
            rr_append_extra(&ep->extra, &ep->extra_length, dsc, dlen);
        } else if (alt) {
            rr_append_extra(&alt->extra, &alt->extra_length, dsc, dlen);
        } else {
            rr_append_extra(&c->extra, &c->extra_length, dsc, dlen);
        }
    }
    /* keep only what was filled, so that freeing stays consistent */
    c->bNumInterfaces = nitf + 1;
    if (alt && nep < alt->bNumEndpoints) {
        alt->bNumEndpoints = nep;
    }
    return c;
}

static void rr_snapshot_clear(RRSnapshot *s)
{
    int i;

    for (i = 0; i < s->nconfigs; i++) {
        g_byte_array_unref(s->config[i]);
    }
    memset(s, 0, sizeof(*s));
}

/* Record: what libusb knows of dev, before it is opened. */
static void rr_snapshot_take(RRSnapshot *s, libusb_device *dev)
{
    struct libusb_device_descriptor dd;
    uint8_t *r = s->ddesc;
    int i, n;

    memset(s, 0, sizeof(*s));
    s->bus = libusb_get_bus_number(dev);
    s->addr = libusb_get_device_address(dev);
    s->speed = libusb_get_device_speed(dev);
    n = libusb_get_port_numbers(dev, s->ports, RR_MAX_PORTS);
    s->nports = n > 0 ? n : 0;
    if (libusb_get_device_descriptor(dev, &dd) == 0) {
        r[0] = LIBUSB_DT_DEVICE_SIZE;
        r[1] = LIBUSB_DT_DEVICE;
        stw_le_p(r + 2, dd.bcdUSB);
        r[4] = dd.bDeviceClass;
        r[5] = dd.bDeviceSubClass;
        r[6] = dd.bDeviceProtocol;
        r[7] = dd.bMaxPacketSize0;
        stw_le_p(r + 8, dd.idVendor);
        stw_le_p(r + 10, dd.idProduct);
        stw_le_p(r + 12, dd.bcdDevice);
        r[14] = dd.iManufacturer;
        r[15] = dd.iProduct;
        r[16] = dd.iSerialNumber;
        r[17] = dd.bNumConfigurations;
    }
    for (i = 0; i < MIN(r[17], RR_MAX_CONFIGS); i++) {
        struct libusb_config_descriptor *c;
        if (libusb_get_config_descriptor(dev, i, &c) != 0) {
            break;
        }
        s->config[s->nconfigs++] = rr_config_to_raw(c);
        libusb_free_config_descriptor(c);
    }
}

static void rr_snapshot_save(const RRSnapshot *s)
{
    int i;

    replay_usb_put_u8(s->bus);
    replay_usb_put_u8(s->addr);
    replay_usb_put_u8(s->speed);
    replay_usb_put_bytes(s->ports, s->nports);
    replay_usb_put_bytes(s->ddesc, sizeof(s->ddesc));
    replay_usb_put_u8(s->nconfigs);
    for (i = 0; i < s->nconfigs; i++) {
        replay_usb_put_bytes(s->config[i]->data, s->config[i]->len);
    }
}

static void rr_snapshot_load(RRSnapshot *s)
{
    uint8_t *buf;
    size_t len;
    int i;

    memset(s, 0, sizeof(*s));
    s->bus = replay_usb_get_u8();
    s->addr = replay_usb_get_u8();
    s->speed = replay_usb_get_u8();
    buf = replay_usb_get_bytes(&len);
    s->nports = MIN(len, RR_MAX_PORTS);
    memcpy(s->ports, buf, s->nports);
    g_free(buf);
    buf = replay_usb_get_bytes(&len);
    memcpy(s->ddesc, buf, MIN(len, sizeof(s->ddesc)));
    g_free(buf);
    s->nconfigs = MIN(replay_usb_get_u8(), RR_MAX_CONFIGS);
    for (i = 0; i < s->nconfigs; i++) {
        buf = replay_usb_get_bytes(&len);
        s->config[i] = g_byte_array_new_take(buf, len);
    }
}

/* ---- events ---------------------------------------------------------- */

static void rr_event_free(RREvent *ev)
{
    rr_snapshot_clear(&ev->snap);
    g_free(ev->data);
    g_free(ev->pkt_status);
    g_free(ev->pkt_len);
    g_free(ev);
}

static void rr_event_save(void *opaque)
{
    RREvent *ev = opaque;
    uint32_t i;

    replay_usb_put_u8(ev->kind);
    replay_usb_put_u8(ev->dev);
    switch (ev->kind) {
    case RR_EV_OPEN:
        rr_snapshot_save(&ev->snap);
        break;
    case RR_EV_COMPLETE:
        replay_usb_put_u8(ev->ep);
        replay_usb_put_u32(ev->seq);
        replay_usb_put_u32(ev->status);
        replay_usb_put_u32(ev->actual_length);
        replay_usb_put_bytes(ev->data, ev->data_len);
        replay_usb_put_u32(ev->npackets);
        for (i = 0; i < ev->npackets; i++) {
            replay_usb_put_u32(ev->pkt_status[i]);
            replay_usb_put_u32(ev->pkt_len[i]);
        }
        break;
    }
}

static void *rr_event_load(void)
{
    RREvent *ev = g_new0(RREvent, 1);
    uint32_t i;

    ev->kind = replay_usb_get_u8();
    ev->dev = replay_usb_get_u8();
    switch (ev->kind) {
    case RR_EV_OPEN:
        rr_snapshot_load(&ev->snap);
        break;
    case RR_EV_CLOSE:
        break;
    case RR_EV_COMPLETE:
        ev->ep = replay_usb_get_u8();
        ev->seq = replay_usb_get_u32();
        ev->status = replay_usb_get_u32();
        ev->actual_length = replay_usb_get_u32();
        ev->data = replay_usb_get_bytes(&ev->data_len);
        ev->npackets = replay_usb_get_u32();
        if (ev->npackets > 0x10000) {
            error_report("replay: corrupt usb-host event in the log "
                         "(%u iso packets)", ev->npackets);
            exit(1);
        }
        ev->pkt_status = g_new0(int32_t, ev->npackets);
        ev->pkt_len = g_new0(uint32_t, ev->npackets);
        for (i = 0; i < ev->npackets; i++) {
            ev->pkt_status[i] = replay_usb_get_u32();
            ev->pkt_len[i] = replay_usb_get_u32();
        }
        break;
    default:
        error_report("replay: unknown usb-host event %d in the log",
                     ev->kind);
        exit(1);
    }
    if (!rr_dev_by_index(ev->dev)) {
        error_report("replay: the log holds an event for usb-host device %d, "
                     "but this machine has %u usb-host devices; replay with "
                     "the command line of the recording", ev->dev,
                     rr_devs ? rr_devs->len : 0);
        exit(1);
    }
    return ev;
}

/* IN data comes back with the completion: the setup packet says for ep0 */
static bool rr_xfer_in(struct libusb_transfer *xfer)
{
    if (xfer->type == LIBUSB_TRANSFER_TYPE_CONTROL) {
        return xfer->buffer[0] & LIBUSB_ENDPOINT_IN;
    }
    return xfer->endpoint & LIBUSB_ENDPOINT_IN;
}

/*
 * usb-host's isochronous rings hold completed data a checkpoint cannot
 * carry: no checkpoint while an isochronous transfer is in flight.
 */
static void rr_set_in_flight(RRXfer *x, bool in_flight)
{
    if (x->in_flight == in_flight) {
        return;
    }
    x->in_flight = in_flight;
    if (x->xfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
        rewind_hold_checkpoints(in_flight ? 1 : -1);
    }
}

static RRXfer *rr_find_inflight(RRDev *d, uint8_t ep, uint32_t seq)
{
    RRXfer *x;

    QTAILQ_FOREACH(x, &d->inflight, next) {
        if (x->ep == ep && x->seq == seq) {
            return x;
        }
    }
    return NULL;
}

/* Replay: put the logged completion into the transfer. */
static void rr_fill_xfer(RRDev *d, RRXfer *x, RREvent *ev)
{
    struct libusb_transfer *xfer = x->xfer;
    size_t off = 0;
    uint32_t i;

    xfer->status = ev->status;
    xfer->actual_length = ev->actual_length;
    if (xfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
        if (ev->npackets != xfer->num_iso_packets) {
            rr_diverged(d, "complete an isochronous transfer", x->ep,
                        g_strdup_printf("the log holds %u packets, the "
                                        "transfer has %d", ev->npackets,
                                        xfer->num_iso_packets));
        }
        for (i = 0; i < ev->npackets; i++) {
            struct libusb_iso_packet_descriptor *pd =
                &xfer->iso_packet_desc[i];
            unsigned char *buf = libusb_get_iso_packet_buffer_simple(xfer, i);
            pd->status = ev->pkt_status[i];
            pd->actual_length = MIN(ev->pkt_len[i], pd->length);
            if (rr_xfer_in(xfer)) {
                size_t n = MIN(pd->actual_length, ev->data_len - off);
                memcpy(buf, ev->data + off, n);
                off += n;
            }
        }
        return;
    }
    if (ev->data_len && rr_xfer_in(xfer)) {
        size_t skip = xfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ?
                      LIBUSB_CONTROL_SETUP_SIZE : 0;
        size_t room = xfer->length > skip ? xfer->length - skip : 0;
        memcpy(xfer->buffer + skip, ev->data, MIN(ev->data_len, room));
    }
}

static void rr_run_complete(RRDev *d, RREvent *ev)
{
    RRXfer *x = rr_find_inflight(d, ev->ep, ev->seq);

    if (!x) {
        guint i;
        for (i = 0; d->lost && i < d->lost->len; i++) {
            RRInFlight *l = &g_array_index(d->lost, RRInFlight, i);
            if (l->ep == ev->ep && l->seq == ev->seq) {
                rr_diverged(d, "receive a completion", ev->ep,
                            g_strdup_printf("transfer %u was in flight at "
                            "the checkpoint this replay restored, and the "
                            "USB controller did not submit it again (only "
                            "xhci does)", ev->seq));
            }
        }
        if (ev->seq < d->seq[rr_ep_index(ev->ep)]) {
            return;     /* QEMU dropped the transfer since (device closed) */
        }
        rr_diverged(d, "receive a completion", ev->ep, g_strdup_printf(
                    "transfer %u on that endpoint was never submitted",
                    ev->seq));
    }
    if (rr_play()) {
        rr_fill_xfer(d, x, ev);
    }
    QTAILQ_REMOVE(&d->inflight, x, next);
    rr_set_in_flight(x, false);
    x->orig_cb(x->xfer);
}

static void rr_event_run(void *opaque)
{
    RREvent *ev = opaque;
    RRDev *d = rr_dev_by_index(ev->dev);

    switch (ev->kind) {
    case RR_EV_OPEN:
        d->open_pending = false;
        /* the device takes the event's snapshot over */
        rr_snapshot_clear(&d->snap);
        d->snap = ev->snap;
        memset(&ev->snap, 0, sizeof(ev->snap));
        d->have_snap = true;
        d->dev = rr_play() ? (libusb_device *)&d->fake_dev : ev->ldev;
        d->in_event = true;
        d->ops->open(d->host, d->dev);
        d->in_event = false;
        if (ev->ldev) {
            libusb_unref_device(ev->ldev);
        }
        break;
    case RR_EV_CLOSE:
        d->close_pending = false;
        d->in_event = true;
        d->ops->close(d->host);
        d->in_event = false;
        break;
    case RR_EV_COMPLETE:
        rr_run_complete(d, ev);
        break;
    }
    rr_event_free(ev);
}

static const char *rr_call_name(uint8_t call)
{
    return call < RR_CALL_COUNT && rr_call_names[call] ?
           rr_call_names[call] : "unknown call";
}

static const ReplayUsbOps rr_event_ops = {
    .save = rr_event_save,
    .load = rr_event_load,
    .run = rr_event_run,
    .call_name = rr_call_name,
};

/* Record: libusb completed a transfer; the guest sees it as an event. */
static void LIBUSB_CALL rr_complete_cb(struct libusb_transfer *xfer)
{
    RRXfer *x = g_hash_table_lookup(rr_xfers, xfer);
    RREvent *ev;
    int i;

    x->libusb_owned = false;
    if (x->freed) {
        g_hash_table_remove(rr_xfers, xfer);
        libusb_free_transfer(xfer);
        g_free(x);
        return;
    }
    if (rr_quiet) {
        QTAILQ_REMOVE(&x->d->inflight, x, next);
        rr_set_in_flight(x, false);
        x->orig_cb(xfer);
        return;
    }
    ev = g_new0(RREvent, 1);
    ev->kind = RR_EV_COMPLETE;
    ev->dev = x->d->index;
    ev->ep = x->ep;
    ev->seq = x->seq;
    ev->status = xfer->status;
    ev->actual_length = xfer->actual_length;
    if (xfer->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
        GByteArray *b = g_byte_array_new();
        ev->npackets = xfer->num_iso_packets;
        ev->pkt_status = g_new0(int32_t, ev->npackets);
        ev->pkt_len = g_new0(uint32_t, ev->npackets);
        for (i = 0; i < xfer->num_iso_packets; i++) {
            struct libusb_iso_packet_descriptor *pd =
                &xfer->iso_packet_desc[i];
            ev->pkt_status[i] = pd->status;
            ev->pkt_len[i] = pd->actual_length;
            if (rr_xfer_in(xfer)) {
                g_byte_array_append(b,
                        libusb_get_iso_packet_buffer_simple(xfer, i),
                        MIN(pd->actual_length, pd->length));
            }
        }
        ev->data_len = b->len;
        ev->data = g_byte_array_free(b, false);
    } else if (rr_xfer_in(xfer) && xfer->actual_length > 0) {
        size_t skip = xfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ?
                      LIBUSB_CONTROL_SETUP_SIZE : 0;
        ev->data_len = xfer->actual_length;
        ev->data = g_memdup2(xfer->buffer + skip, ev->data_len);
    }
    replay_usb_add_event(ev);
    replay_usb_deliver_if_idle();
}

/* ---- devices --------------------------------------------------------- */

void usb_host_rr_realize(void *host, const USBHostReplayOps *ops)
{
    RRDev *d;

    if (!usb_host_rr_enabled()) {
        return;
    }
    if (!rr_devs) {
        rr_devs = g_ptr_array_new();
        rr_xfers = g_hash_table_new(NULL, NULL);
        replay_usb_register(&rr_event_ops);
    }
    d = g_new0(RRDev, 1);
    d->host = host;
    d->ops = ops;
    d->index = rr_devs->len;
    QTAILQ_INIT(&d->inflight);
    g_ptr_array_add(rr_devs, d);
}

void usb_host_rr_unrealize(void *host)
{
    RRDev *d = rr_dev_by_host(host);

    if (d) {
        /* keep the slot: indexes name devices in the log */
        d->host = NULL;
        d->dev = NULL;
        d->dh = NULL;
    }
}

bool usb_host_rr_defer_open(void *host, libusb_device *dev)
{
    RRDev *d = rr_dev_by_host(host);
    RREvent *ev;

    if (!d || d->in_event) {
        return false;
    }
    if (rr_play() || d->open_pending) {
        return true;
    }
    ev = g_new0(RREvent, 1);
    ev->kind = RR_EV_OPEN;
    ev->dev = d->index;
    rr_snapshot_take(&ev->snap, dev);
    ev->ldev = libusb_ref_device(dev);
    d->open_pending = true;
    replay_usb_add_event(ev);
    return true;
}

bool usb_host_rr_defer_close(void *host)
{
    RRDev *d = rr_dev_by_host(host);
    RREvent *ev;

    if (!d || d->in_event || rr_quiet) {
        return false;
    }
    if (rr_play() || d->close_pending) {
        return true;
    }
    ev = g_new0(RREvent, 1);
    ev->kind = RR_EV_CLOSE;
    ev->dev = d->index;
    d->close_pending = true;
    replay_usb_add_event(ev);
    return true;
}

void usb_host_rr_quiet(void)
{
    rr_quiet = true;
}

/* ---- the libusb calls ------------------------------------------------ */

int usb_host_rr_init(libusb_context **ctx)
{
    if (rr_play()) {
        *ctx = (libusb_context *)&fake_ctx;
        return 0;
    }
    return libusb_init(ctx);
}

void usb_host_rr_set_log_level(libusb_context *ctx, int level)
{
    if (!rr_play()) {
        libusb_set_option(ctx, LIBUSB_OPTION_LOG_LEVEL, level);
    }
}

void usb_host_rr_set_pollfd_notifiers(libusb_context *ctx,
                                      libusb_pollfd_added_cb added,
                                      libusb_pollfd_removed_cb removed,
                                      void *user_data)
{
    if (!rr_play()) {
        libusb_set_pollfd_notifiers(ctx, added, removed, user_data);
    }
}

const struct libusb_pollfd **usb_host_rr_get_pollfds(libusb_context *ctx)
{
    return rr_play() ? NULL : libusb_get_pollfds(ctx);
}

int usb_host_rr_handle_events_timeout(libusb_context *ctx, struct timeval *tv)
{
    return rr_play() ? 0 : libusb_handle_events_timeout(ctx, tv);
}

ssize_t usb_host_rr_get_device_list(libusb_context *ctx,
                                    libusb_device ***list)
{
    if (rr_play()) {
        /* a replay sees devices arrive from the log only */
        *list = g_new0(libusb_device *, 1);
        return 0;
    }
    return libusb_get_device_list(ctx, list);
}

void usb_host_rr_free_device_list(libusb_device **list, int unref)
{
    if (rr_play()) {
        g_free(list);
        return;
    }
    libusb_free_device_list(list, unref);
}

libusb_device *usb_host_rr_ref_device(libusb_device *dev)
{
    return rr_play() ? dev : libusb_ref_device(dev);
}

void usb_host_rr_unref_device(libusb_device *dev)
{
    if (!rr_play()) {
        libusb_unref_device(dev);
    }
}

static RRDev *rr_snap_dev(libusb_device *dev)
{
    RRDev *d = rr_dev_by_dev(dev);

    return d && d->have_snap ? d : NULL;
}

uint8_t usb_host_rr_get_bus_number(libusb_device *dev)
{
    RRDev *d = rr_snap_dev(dev);

    return d ? d->snap.bus : rr_play() ? 0 : libusb_get_bus_number(dev);
}

uint8_t usb_host_rr_get_device_address(libusb_device *dev)
{
    RRDev *d = rr_snap_dev(dev);

    return d ? d->snap.addr : rr_play() ? 0 : libusb_get_device_address(dev);
}

int usb_host_rr_get_device_speed(libusb_device *dev)
{
    RRDev *d = rr_snap_dev(dev);

    return d ? d->snap.speed : rr_play() ? 0 : libusb_get_device_speed(dev);
}

int usb_host_rr_get_port_numbers(libusb_device *dev, uint8_t *numbers,
                                 int len)
{
    RRDev *d = rr_snap_dev(dev);

    if (!d) {
        return rr_play() ? LIBUSB_ERROR_NOT_FOUND :
               libusb_get_port_numbers(dev, numbers, len);
    }
    if (len < d->snap.nports) {
        return LIBUSB_ERROR_OVERFLOW;
    }
    memcpy(numbers, d->snap.ports, d->snap.nports);
    return d->snap.nports;
}

int usb_host_rr_get_device_descriptor(libusb_device *dev,
                                      struct libusb_device_descriptor *desc)
{
    RRDev *d = rr_snap_dev(dev);
    const uint8_t *r;

    if (!d) {
        return rr_play() ? LIBUSB_ERROR_NOT_FOUND :
               libusb_get_device_descriptor(dev, desc);
    }
    r = d->snap.ddesc;
    desc->bLength = r[0];
    desc->bDescriptorType = r[1];
    desc->bcdUSB = lduw_le_p(r + 2);
    desc->bDeviceClass = r[4];
    desc->bDeviceSubClass = r[5];
    desc->bDeviceProtocol = r[6];
    desc->bMaxPacketSize0 = r[7];
    desc->idVendor = lduw_le_p(r + 8);
    desc->idProduct = lduw_le_p(r + 10);
    desc->bcdDevice = lduw_le_p(r + 12);
    desc->iManufacturer = r[14];
    desc->iProduct = r[15];
    desc->iSerialNumber = r[16];
    desc->bNumConfigurations = r[17];
    return 0;
}

int usb_host_rr_get_config_descriptor(libusb_device *dev, uint8_t index,
                                      struct libusb_config_descriptor **c)
{
    RRDev *d = rr_snap_dev(dev);

    if (!usb_host_rr_enabled()) {
        return libusb_get_config_descriptor(dev, index, c);
    }
    if (!d || index >= d->snap.nconfigs) {
        return LIBUSB_ERROR_NOT_FOUND;
    }
    *c = rr_config_from_raw(d->snap.config[index]->data,
                            d->snap.config[index]->len);
    return *c ? 0 : LIBUSB_ERROR_IO;
}

int usb_host_rr_get_active_config_descriptor(libusb_device *dev,
                                      struct libusb_config_descriptor **c)
{
    RRDev *d = rr_snap_dev(dev);
    RRSync s = { .call = RR_ACTIVE_CONFIG };
    int i;

    if (!usb_host_rr_enabled()) {
        return libusb_get_active_config_descriptor(dev, c);
    }
    if (!d) {
        return LIBUSB_ERROR_NOT_FOUND;
    }
    if (!rr_logging(d)) {
        /* at exit, or restoring a checkpoint: the last known value */
        s.rc = d->active_config ? 0 : LIBUSB_ERROR_NOT_FOUND;
        s.out = d->active_config;
    } else if (rr_play()) {
        rr_sync_load(d, &s, -1);
    } else {
        struct libusb_config_descriptor *real;
        s.rc = libusb_get_active_config_descriptor(dev, &real);
        if (s.rc == 0) {
            s.out = real->bConfigurationValue;
            libusb_free_config_descriptor(real);
        }
        rr_sync_save(d, &s);
    }
    if (s.rc != 0) {
        return s.rc;
    }
    d->active_config = s.out;
    for (i = 0; i < d->snap.nconfigs; i++) {
        const GByteArray *raw = d->snap.config[i];
        if (raw->len >= 9 && raw->data[5] == s.out) {
            *c = rr_config_from_raw(raw->data, raw->len);
            return *c ? 0 : LIBUSB_ERROR_IO;
        }
    }
    return LIBUSB_ERROR_NOT_FOUND;
}

void usb_host_rr_free_config_descriptor(struct libusb_config_descriptor *c)
{
    if (!usb_host_rr_enabled()) {
        libusb_free_config_descriptor(c);
        return;
    }
    rr_free_config(c);
}

int usb_host_rr_get_ss_endpoint_companion_descriptor(libusb_context *ctx,
        const struct libusb_endpoint_descriptor *endpoint,
        struct libusb_ss_endpoint_companion_descriptor **comp)
{
    int off;

    if (!usb_host_rr_enabled()) {
        return libusb_get_ss_endpoint_companion_descriptor(ctx, endpoint,
                                                           comp);
    }
    for (off = 0; off + 2 <= endpoint->extra_length;
         off += endpoint->extra[off]) {
        const unsigned char *x = endpoint->extra + off;
        if (x[0] < 2) {
            break;
        }
        if (x[1] == LIBUSB_DT_SS_ENDPOINT_COMPANION && x[0] >= 6 &&
            off + 6 <= endpoint->extra_length) {
            *comp = g_new0(struct libusb_ss_endpoint_companion_descriptor, 1);
            (*comp)->bLength = x[0];
            (*comp)->bDescriptorType = x[1];
            (*comp)->bMaxBurst = x[2];
            (*comp)->bmAttributes = x[3];
            (*comp)->wBytesPerInterval = lduw_le_p(x + 4);
            return LIBUSB_SUCCESS;
        }
    }
    return LIBUSB_ERROR_NOT_FOUND;
}

void usb_host_rr_free_ss_endpoint_companion_descriptor(
        struct libusb_ss_endpoint_companion_descriptor *comp)
{
    if (!usb_host_rr_enabled()) {
        libusb_free_ss_endpoint_companion_descriptor(comp);
        return;
    }
    g_free(comp);
}

int usb_host_rr_open(libusb_device *dev, libusb_device_handle **dh)
{
    RRDev *d = rr_snap_dev(dev);
    int rc;

    if (!d) {
        return rr_play() ? LIBUSB_ERROR_NO_DEVICE : libusb_open(dev, dh);
    }
    rc = RR_SIMPLE_CALL(d, RR_OPEN, 0, 0, -1, libusb_open(dev, dh));
    if (rc == 0) {
        if (rr_play()) {
            *dh = (libusb_device_handle *)&d->fake_dh;
        }
        d->dh = *dh;
    }
    return rc;
}

int usb_host_rr_wrap_sys_device(libusb_context *ctx, intptr_t fd,
                                libusb_device_handle **dh)
{
    /* usb-host refuses hostdevice= under record/replay */
    return libusb_wrap_sys_device(ctx, fd, dh);
}

libusb_device *usb_host_rr_get_device(libusb_device_handle *dh)
{
    RRDev *d = rr_dev_by_handle(dh);

    return d ? d->dev : libusb_get_device(dh);
}

void usb_host_rr_close(libusb_device_handle *dh)
{
    RRDev *d = rr_dev_by_handle(dh);

    if (d) {
        d->dh = NULL;
    }
    if (!rr_play()) {
        libusb_close(dh);
    }
}

int usb_host_rr_get_string_descriptor_ascii(libusb_device_handle *dh,
                                            uint8_t index,
                                            unsigned char *data, int length)
{
    RRDev *d = rr_dev_by_handle(dh);
    RRSync s = { .call = RR_STRING, .arg = index, .arg2 = length };

    if (!rr_logging(d)) {
        return rr_play() ? LIBUSB_ERROR_NO_DEVICE :
               libusb_get_string_descriptor_ascii(dh, index, data, length);
    }
    if (rr_play()) {
        rr_sync_load(d, &s, 0);
        memcpy(data, s.data, MIN(s.len, length));
        g_free(s.data);
        return s.rc;
    }
    s.rc = libusb_get_string_descriptor_ascii(dh, index, data, length);
    s.data = data;
    s.len = s.rc > 0 ? MIN(s.rc + 1, length) : 0;   /* with its NUL */
    rr_sync_save(d, &s);
    return s.rc;
}

#define RR_HANDLE_CALL(dh, callid, a1, a2, ep, real)                    \
    ({                                                                  \
        RRDev *d_ = rr_dev_by_handle(dh);                               \
        d_ ? RR_SIMPLE_CALL(d_, callid, a1, a2, ep, real) :             \
             (rr_play() ? LIBUSB_ERROR_NO_DEVICE : (real));             \
    })

int usb_host_rr_kernel_driver_active(libusb_device_handle *dh, int iface)
{
    return RR_HANDLE_CALL(dh, RR_DRIVER_ACTIVE, iface, 0, -1,
                          libusb_kernel_driver_active(dh, iface));
}

int usb_host_rr_detach_kernel_driver(libusb_device_handle *dh, int iface)
{
    return RR_HANDLE_CALL(dh, RR_DETACH, iface, 0, -1,
                          libusb_detach_kernel_driver(dh, iface));
}

int usb_host_rr_attach_kernel_driver(libusb_device_handle *dh, int iface)
{
    return RR_HANDLE_CALL(dh, RR_ATTACH, iface, 0, -1,
                          libusb_attach_kernel_driver(dh, iface));
}

int usb_host_rr_claim_interface(libusb_device_handle *dh, int iface)
{
    return RR_HANDLE_CALL(dh, RR_CLAIM, iface, 0, -1,
                          libusb_claim_interface(dh, iface));
}

int usb_host_rr_release_interface(libusb_device_handle *dh, int iface)
{
    return RR_HANDLE_CALL(dh, RR_RELEASE, iface, 0, -1,
                          libusb_release_interface(dh, iface));
}

int usb_host_rr_set_configuration(libusb_device_handle *dh, int config)
{
    return RR_HANDLE_CALL(dh, RR_SET_CONFIG, config, 0, 0,
                          libusb_set_configuration(dh, config));
}

int usb_host_rr_set_interface_alt_setting(libusb_device_handle *dh,
                                          int iface, int alt)
{
    return RR_HANDLE_CALL(dh, RR_SET_ALT, iface, alt, 0,
                          libusb_set_interface_alt_setting(dh, iface, alt));
}

int usb_host_rr_clear_halt(libusb_device_handle *dh, unsigned char ep)
{
    return RR_HANDLE_CALL(dh, RR_CLEAR_HALT, ep, 0, ep,
                          libusb_clear_halt(dh, ep));
}

int usb_host_rr_reset_device(libusb_device_handle *dh)
{
    return RR_HANDLE_CALL(dh, RR_RESET, 0, 0, -1, libusb_reset_device(dh));
}

int usb_host_rr_alloc_streams(libusb_device_handle *dh, uint32_t num,
                              unsigned char *eps, int neps)
{
    return RR_HANDLE_CALL(dh, RR_ALLOC_STREAMS, num, neps, -1,
                          libusb_alloc_streams(dh, num, eps, neps));
}

int usb_host_rr_free_streams(libusb_device_handle *dh, unsigned char *eps,
                             int neps)
{
    return RR_HANDLE_CALL(dh, RR_FREE_STREAMS, neps, 0, -1,
                          libusb_free_streams(dh, eps, neps));
}

/* ---- transfers ------------------------------------------------------- */

static RRXfer *rr_xfer_get(RRDev *d, struct libusb_transfer *xfer)
{
    RRXfer *x = g_hash_table_lookup(rr_xfers, xfer);

    if (!x) {
        x = g_new0(RRXfer, 1);
        x->xfer = xfer;
        g_hash_table_insert(rr_xfers, xfer, x);
    }
    x->d = d;
    if (xfer->callback != rr_complete_cb) {
        x->orig_cb = xfer->callback;
        xfer->callback = rr_complete_cb;
    }
    return x;
}

/*
 * Restoring a checkpoint: the controller submits again what was in flight
 * there.  Each gets its number back, in order per endpoint, without
 * reading the log (the submission was logged before the checkpoint).
 */
static int rr_rebind(RRDev *d, struct libusb_transfer *xfer)
{
    RRXfer *x = rr_xfer_get(d, xfer);
    uint8_t ep = xfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ?
                 0 : xfer->endpoint;
    guint i;

    for (i = 0; i < d->rebind->len; i++) {
        RRInFlight *r = &g_array_index(d->rebind, RRInFlight, i);
        if (r->ep == ep) {
            x->ep = ep;
            x->seq = r->seq;
            rr_set_in_flight(x, true);
            x->libusb_owned = false;
            QTAILQ_INSERT_TAIL(&d->inflight, x, next);
            g_array_remove_index(d->rebind, i);
            return 0;
        }
    }
    rr_diverged(d, "submit a transfer while a checkpoint was restored", ep,
                g_strdup("no transfer was in flight on that endpoint at the "
                         "checkpoint"));
}

int usb_host_rr_submit_transfer(struct libusb_transfer *xfer)
{
    RRDev *d = rr_dev_by_handle(xfer->dev_handle);
    RRXfer *x;
    RRSync s = { .call = RR_SUBMIT };
    uint8_t ep;

    if (d && d->restoring) {
        return rr_rebind(d, xfer);
    }
    if (!rr_logging(d)) {
        return rr_play() ? LIBUSB_ERROR_NO_DEVICE :
               libusb_submit_transfer(xfer);
    }
    x = rr_xfer_get(d, xfer);
    ep = xfer->type == LIBUSB_TRANSFER_TYPE_CONTROL ? 0 : xfer->endpoint;
    s.arg = ep | (xfer->type << 8);
    s.arg2 = xfer->length;
    s.out = d->seq[rr_ep_index(ep)]++;
    if (rr_play()) {
        rr_sync_load(d, &s, ep);
    } else {
        s.rc = libusb_submit_transfer(xfer);
        rr_sync_save(d, &s);
    }
    if (s.rc == 0) {
        x->ep = ep;
        x->seq = s.out;
        rr_set_in_flight(x, true);
        x->libusb_owned = rr_record();
        QTAILQ_INSERT_TAIL(&d->inflight, x, next);
    }
    return s.rc;
}

int usb_host_rr_cancel_transfer(struct libusb_transfer *xfer)
{
    RRXfer *x = rr_xfers ? g_hash_table_lookup(rr_xfers, xfer) : NULL;

    if (!x || !rr_logging(x->d)) {
        return rr_play() ? 0 : libusb_cancel_transfer(xfer);
    }
    return RR_SIMPLE_CALL(x->d, RR_CANCEL, x->ep, x->seq, x->ep,
                          libusb_cancel_transfer(xfer));
}

void usb_host_rr_free_transfer(struct libusb_transfer *xfer)
{
    RRXfer *x = rr_xfers ? g_hash_table_lookup(rr_xfers, xfer) : NULL;

    if (!x) {
        libusb_free_transfer(xfer);
        return;
    }
    if (x->in_flight) {
        /* its completion, logged or not, is not delivered any more */
        QTAILQ_REMOVE(&x->d->inflight, x, next);
        rr_set_in_flight(x, false);
    }
    if (x->libusb_owned) {
        x->freed = true;        /* freed when libusb gives it back */
        return;
    }
    g_hash_table_remove(rr_xfers, xfer);
    g_free(x);
    libusb_free_transfer(xfer);
}

/* ---- checkpoints ----------------------------------------------------- */

/*
 * A checkpoint holds, per device: whether it was open and what it is
 * made of, the active configuration, the guest's configuration and
 * alternate settings, the submission counters, and the transfers in
 * flight (endpoint and number).  A restore drops every request of the
 * state it leaves without completing any; xhci then fetches the
 * transfers that were in flight again (rewind_after_restore()) and
 * rr_rebind() gives each its number back.
 */
#define RR_VMSTATE_VERSION 1

static void rr_put_bytes(QEMUFile *f, const uint8_t *buf, uint32_t len)
{
    qemu_put_be32(f, len);
    qemu_put_buffer(f, buf, len);
}

static GByteArray *rr_get_bytes(QEMUFile *f)
{
    uint32_t len = qemu_get_be32(f);
    GByteArray *b;

    if (len > 1 << 20) {
        return NULL;
    }
    b = g_byte_array_sized_new(len);
    g_byte_array_set_size(b, len);
    qemu_get_buffer(f, b->data, len);
    return b;
}

static int rr_vmstate_put(QEMUFile *f, void *pv, size_t size,
                          const VMStateField *field, JSONWriter *vmdesc)
{
    RRDev *d = rr_dev_by_host(pv);
    USBDevice *udev = USB_DEVICE(pv);
    RRXfer *x;
    uint32_t n = 0;
    int i;

    qemu_put_byte(f, RR_VMSTATE_VERSION);
    qemu_put_byte(f, d->dh != NULL);
    qemu_put_byte(f, d->have_snap);
    if (d->have_snap) {
        const RRSnapshot *s = &d->snap;
        qemu_put_byte(f, s->bus);
        qemu_put_byte(f, s->addr);
        qemu_put_byte(f, s->speed);
        rr_put_bytes(f, s->ports, s->nports);
        rr_put_bytes(f, s->ddesc, sizeof(s->ddesc));
        qemu_put_byte(f, s->nconfigs);
        for (i = 0; i < s->nconfigs; i++) {
            rr_put_bytes(f, s->config[i]->data, s->config[i]->len);
        }
    }
    qemu_put_byte(f, d->active_config);
    for (i = 0; i < RR_NUM_EPS; i++) {
        qemu_put_be32(f, d->seq[i]);
    }
    qemu_put_be32(f, d->ops->get_ifs(d->host));
    qemu_put_be32(f, udev->configuration);
    qemu_put_be32(f, udev->ninterfaces);
    for (i = 0; i < USB_MAX_INTERFACES; i++) {
        qemu_put_be32(f, udev->altsetting[i]);
    }
    QTAILQ_FOREACH(x, &d->inflight, next) {
        n++;
    }
    qemu_put_be32(f, n);
    QTAILQ_FOREACH(x, &d->inflight, next) {
        qemu_put_byte(f, x->ep);
        qemu_put_be32(f, x->seq);
    }
    return 0;
}

static void rr_restore_done(void *opaque)
{
    RRDev *d = opaque;

    d->restoring = false;
    g_array_append_vals(d->lost, d->rebind->data, d->rebind->len);
    g_array_set_size(d->rebind, 0);
}

static void rr_drop_queue(USBEndpoint *ep)
{
    /* packets of the controller state that was left; it dropped them too */
    QTAILQ_INIT(&ep->queue);
}

static int rr_vmstate_get(QEMUFile *f, void *pv, size_t size,
                          const VMStateField *field)
{
    RRDev *d = rr_dev_by_host(pv);
    USBDevice *udev = USB_DEVICE(pv);
    RRSnapshot *s = &d->snap;
    RRXfer *x;
    bool open;
    uint32_t n, ifs;
    int i;

    if (qemu_get_byte(f) != RR_VMSTATE_VERSION) {
        error_report("usb-host: checkpoint from another version of the "
                     "replay layer");
        return -EINVAL;
    }
    /* leave the state we are in without completing anything */
    d->ops->drop_requests(d->host);
    while ((x = QTAILQ_FIRST(&d->inflight)) != NULL) {
        QTAILQ_REMOVE(&d->inflight, x, next);
        rr_set_in_flight(x, false);
    }
    rr_drop_queue(&udev->ep_ctl);
    for (i = 0; i < USB_MAX_ENDPOINTS; i++) {
        rr_drop_queue(&udev->ep_in[i]);
        rr_drop_queue(&udev->ep_out[i]);
    }
    d->open_pending = d->close_pending = false;

    open = qemu_get_byte(f);
    rr_snapshot_clear(s);
    d->have_snap = qemu_get_byte(f);
    if (d->have_snap) {
        GByteArray *b;
        s->bus = qemu_get_byte(f);
        s->addr = qemu_get_byte(f);
        s->speed = qemu_get_byte(f);
        b = rr_get_bytes(f);
        if (!b) {
            return -EINVAL;
        }
        s->nports = MIN(b->len, RR_MAX_PORTS);
        memcpy(s->ports, b->data, s->nports);
        g_byte_array_unref(b);
        b = rr_get_bytes(f);
        if (!b) {
            return -EINVAL;
        }
        memcpy(s->ddesc, b->data, MIN(b->len, sizeof(s->ddesc)));
        g_byte_array_unref(b);
        n = qemu_get_byte(f);
        for (i = 0; i < n; i++) {
            b = rr_get_bytes(f);
            if (!b || i >= RR_MAX_CONFIGS) {
                return -EINVAL;
            }
            s->config[s->nconfigs++] = b;
        }
    }
    d->active_config = qemu_get_byte(f);
    for (i = 0; i < RR_NUM_EPS; i++) {
        d->seq[i] = qemu_get_be32(f);
    }
    ifs = qemu_get_be32(f);
    udev->configuration = qemu_get_be32(f);
    udev->ninterfaces = qemu_get_be32(f);
    for (i = 0; i < USB_MAX_INTERFACES; i++) {
        udev->altsetting[i] = qemu_get_be32(f);
    }

    if (!d->rebind) {
        d->rebind = g_array_new(false, false, sizeof(RRInFlight));
        d->lost = g_array_new(false, false, sizeof(RRInFlight));
    }
    g_array_set_size(d->rebind, 0);
    g_array_set_size(d->lost, 0);
    n = qemu_get_be32(f);
    for (i = 0; i < n; i++) {
        RRInFlight r;
        r.ep = qemu_get_byte(f);
        r.seq = qemu_get_be32(f);
        g_array_append_val(d->rebind, r);
    }

    if (!rr_play()) {
        /* only a replay restores checkpoints */
        return 0;
    }
    d->restoring = true;
    d->ops->set_ifs(d->host, ifs);
    if (open && d->have_snap) {
        d->dev = (libusb_device *)&d->fake_dev;
        d->dh = (libusb_device_handle *)&d->fake_dh;
        d->ops->set_handle(d->host, d->dev, d->dh);
        d->ops->ep_update(d->host);
    } else {
        d->dh = NULL;
        d->ops->set_handle(d->host, NULL, NULL);
    }
    if (rewind_restoring()) {
        rewind_after_restore(rr_restore_done, d);
    } else {
        rr_restore_done(d);
    }
    return 0;
}

static const VMStateInfo rr_vmstate_info = {
    .name = "usb-host-replay",
    .get = rr_vmstate_get,
    .put = rr_vmstate_put,
};

static bool rr_vmstate_needed(void *opaque)
{
    return usb_host_rr_enabled() && rr_dev_by_host(opaque);
}

const VMStateDescription vmstate_usb_host_rr = {
    .name = "usb-host/replay",
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = rr_vmstate_needed,
    .fields = (const VMStateField[]) {
        {
            .name = "state",
            .info = &rr_vmstate_info,
            .flags = VMS_SINGLE,
            .size = 1,
        },
        VMSTATE_END_OF_LIST()
    }
};
