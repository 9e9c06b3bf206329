/*
 * QEMU Rewind: replay log records for usb-host passthrough
 *
 * Copyright (c) 2026 QEMU Rewind authors
 *
 * This work is licensed under the terms of the GNU GPL, version 2 or later.
 * See the COPYING file in the top-level directory.
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "system/replay.h"
#include "system/replay-usb.h"
#include "system/cpus.h"
#include "system/runstate.h"
#include "replay-internal.h"

/*
 * The event plumbing lives here, in the replay core; what the records
 * mean lives with usb-host (hw/usb/host-libusb-replay.c), which
 * registers itself when the first usb-host device is created.
 */
static const ReplayUsbOps *usb_ops;

void replay_usb_register(const ReplayUsbOps *ops)
{
    usb_ops = ops;
}

void replay_usb_add_event(void *opaque)
{
    replay_add_event(REPLAY_ASYNC_EVENT_USB, opaque, NULL, 0);
}

/*
 * Record: an event queued while the guest is halted would wait for the
 * next virtual-clock warp, up to a second of real time, with the guest
 * idle waiting for it (an 8 MB read over usb-storage took 33 s to
 * record instead of 6).  We hold the replay mutex, so the vCPU is not
 * executing, and a halted one does not move its instruction count: the
 * event can be logged and delivered now.
 */
void replay_usb_deliver_if_idle(void)
{
    if (replay_mode == REPLAY_MODE_RECORD && runstate_is_running() &&
        all_cpu_threads_idle()) {
        replay_async_events();
    }
}

void replay_event_usb_save(void *opaque)
{
    usb_ops->save(opaque);
}

void *replay_event_usb_load(void)
{
    if (!usb_ops) {
        error_report("replay: the log holds usb-host passthrough events, "
                     "but this machine has no usb-host device; replay with "
                     "the command line of the recording");
        exit(1);
    }
    return usb_ops->load();
}

void replay_event_usb_run(void *opaque)
{
    usb_ops->run(opaque);
}

void replay_usb_check_skipped(void)
{
    uint8_t call, dev;

    if (replay_state.data_kind != EVENT_USB ||
        replay_state.instruction_count != 0) {
        return;
    }
    call = replay_get_byte();
    dev = replay_get_byte();
    error_report("replay diverged at instruction %" PRIu64 ": the log holds "
                 "a call of usb-host device %d (%s) here, which the guest "
                 "did not make", replay_get_current_icount(), dev,
                 usb_ops && usb_ops->call_name ? usb_ops->call_name(call) :
                 "?");
    exit(1);
}

void replay_usb_sync_save_begin(void)
{
    g_assert(replay_mutex_locked());
    replay_save_instructions();
    replay_put_event(EVENT_USB);
}

bool replay_usb_sync_load_begin(void)
{
    g_assert(replay_mutex_locked());
    replay_account_executed_instructions();
    return replay_next_event_is(EVENT_USB);
}

void replay_usb_sync_load_end(void)
{
    replay_finish_event();
}

int replay_usb_next_event(void)
{
    return replay_state.data_kind;
}

void replay_usb_put_u8(uint8_t v)
{
    replay_put_byte(v);
}

void replay_usb_put_u32(uint32_t v)
{
    replay_put_dword(v);
}

void replay_usb_put_bytes(const uint8_t *buf, size_t len)
{
    replay_put_array(buf, len);
}

uint8_t replay_usb_get_u8(void)
{
    return replay_get_byte();
}

uint32_t replay_usb_get_u32(void)
{
    return replay_get_dword();
}

uint8_t *replay_usb_get_bytes(size_t *len)
{
    uint8_t *buf = NULL;

    replay_get_array_alloc(&buf, len);
    return buf;
}
