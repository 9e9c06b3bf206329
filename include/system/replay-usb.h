/*
 * QEMU Rewind: the replay log's records for usb-host passthrough
 *
 * Copyright (c) 2026 QEMU Rewind authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#ifndef SYSTEM_REPLAY_USB_H
#define SYSTEM_REPLAY_USB_H

/*
 * Two kinds of records carry what libusb told a usb-host device:
 *
 * - EVENT_USB, a synchronous record: written when a libusb call returns
 *   while recording, read at the same point of the replay instead of
 *   calling libusb.  The guest makes these calls at a deterministic
 *   point, so the record is where the replay expects it.
 * - EVENT_USB_ASYNC, an asynchronous event (the device arrived, it was
 *   unplugged, a transfer completed): queued like any replay event and
 *   delivered at the same instruction count in the replay.
 *
 * Both codes follow upstream's EVENT_END, so logs without USB keep
 * upstream's event codes.  hw/usb/host-libusb-replay.c writes the
 * payloads through the helpers below.
 */

typedef struct ReplayUsbOps {
    /* record: write the payload of an event queued by replay_usb_add_event */
    void (*save)(void *opaque);
    /* replay: read one payload back; NULL only after an error report */
    void *(*load)(void);
    /* both modes: deliver the event and free opaque */
    void (*run)(void *opaque);
    /* what a synchronous record's call code means, for error messages */
    const char *(*call_name)(uint8_t call);
} ReplayUsbOps;

void replay_usb_register(const ReplayUsbOps *ops);
/* Queue an event (runs at once when events are not enabled yet). */
void replay_usb_add_event(void *opaque);
/*
 * From a main-loop handler that is not itself running replay events:
 * while recording, deliver queued events at once if the guest is halted.
 */
void replay_usb_deliver_if_idle(void);

/*
 * Replay, from the vCPU thread with no instructions left before the next
 * record: a synchronous record is read while the guest executes the
 * instruction that made the call, or while the main loop runs a logged
 * event or timer.  The vCPU finding one next means the guest went past
 * the call without making it: exits with a divergence error instead of
 * waiting forever.
 */
void replay_usb_check_skipped(void);

/* Synchronous records. */
void replay_usb_sync_save_begin(void);
/* False when the next record of the log is not EVENT_USB. */
bool replay_usb_sync_load_begin(void);
void replay_usb_sync_load_end(void);
/* The code of the next record in the log, for error messages. */
int replay_usb_next_event(void);

void replay_usb_put_u8(uint8_t v);
void replay_usb_put_u32(uint32_t v);
void replay_usb_put_bytes(const uint8_t *buf, size_t len);
uint8_t replay_usb_get_u8(void);
uint32_t replay_usb_get_u32(void);
/* Reads a block written by replay_usb_put_bytes into a new buffer. */
uint8_t *replay_usb_get_bytes(size_t *len);

#endif
