/*
 * QEMU Rewind: the machine's armed timers, carried by checkpoints
 *
 * The device state a checkpoint saves does not say which timers were
 * armed: each device's post_load re-arms its own from fields it saved,
 * or, written for migration, from "now" (e1000e's interrupt delays), or
 * starts one that was not running at all (virtio-net's announce).  A
 * restore is the same machine a moment earlier, so after every post_load
 * ran, the virtual clock's machine timers are made exactly what they were
 * when the checkpoint was taken: a timer armed now but not then is
 * deleted, and one armed then gets its old expiry back.
 *
 * Only timers of the main loop's virtual clock that are not marked
 * QEMU_TIMER_ATTR_EXTERNAL (host backends such as slirp) count.  A timer
 * is known by its address: a timer freed and another allocated at the
 * same address in between would be mistaken for it, which only device
 * unplug does.  A timer armed at the checkpoint that no post_load armed
 * again is armed again too: the timer objects live as long as their
 * devices, which a replay does not unplug behind the log's back.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/timer.h"
#include "qemu/timer-armed.h"
#include "rewind-internal.h"

typedef struct RewindTimer {
    QEMUTimer *ts;
    int64_t expire;
} RewindTimer;

struct RewindTimers {
    GArray *armed;      /* RewindTimer, earliest first */
};

static void collect(QEMUTimer *ts, void *opaque)
{
    RewindTimer t = { ts, ts->expire_time };

    if (!(ts->attributes & QEMU_TIMER_ATTR_EXTERNAL)) {
        g_array_append_val((GArray *)opaque, t);
    }
}

static GArray *armed_now(void)
{
    GArray *armed = g_array_new(false, false, sizeof(RewindTimer));

    timerlist_foreach_armed(main_loop_tlg.tl[QEMU_CLOCK_VIRTUAL], collect,
                            armed);
    return armed;
}

RewindTimers *rewind_timers_capture(void)
{
    RewindTimers *t = g_new(RewindTimers, 1);

    t->armed = armed_now();
    return t;
}

void rewind_timers_free(RewindTimers *t)
{
    if (t) {
        g_array_free(t->armed, true);
        g_free(t);
    }
}

static const RewindTimer *find(GArray *armed, QEMUTimer *ts)
{
    guint i;

    for (i = 0; i < armed->len; i++) {
        if (g_array_index(armed, RewindTimer, i).ts == ts) {
            return &g_array_index(armed, RewindTimer, i);
        }
    }
    return NULL;
}

int rewind_timers_impose(const RewindTimers *saved)
{
    g_autoptr(GArray) now = armed_now();
    int changed = 0;
    guint i;

    for (i = 0; i < now->len; i++) {
        RewindTimer *t = &g_array_index(now, RewindTimer, i);

        if (!find(saved->armed, t->ts)) {
            timer_del(t->ts);
            changed++;
        }
    }
    for (i = 0; i < saved->armed->len; i++) {
        RewindTimer *t = &g_array_index(saved->armed, RewindTimer, i);
        const RewindTimer *cur = find(now, t->ts);

        if (!cur || cur->expire != t->expire) {
            timer_mod_ns(t->ts, t->expire);
            changed++;
        }
    }
    return changed;
}

void rewind_timers_foreach(void (*fn)(QEMUTimer *ts, int64_t expire,
                                      void *opaque), void *opaque)
{
    g_autoptr(GArray) now = armed_now();
    guint i;

    for (i = 0; i < now->len; i++) {
        RewindTimer *t = &g_array_index(now, RewindTimer, i);

        fn(t->ts, t->expire, opaque);
    }
}
