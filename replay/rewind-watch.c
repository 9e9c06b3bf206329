/*
 * QEMU Rewind: watchpoints during reverse execution
 *
 * While a reverse-continue replays a stretch, a watchpoint hit is noted
 * rather than stopped at.  A write watchpoint only counts where the
 * write changes the value: the hook runs before the access, so a write
 * is known to have changed the value when the next write to the same
 * place (or the end of the pass) finds another value there.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/breakpoint.h"
#include "exec/cpu-common.h"
#include "gdbstub/enums.h"
#include "hw/core/cpu.h"
#include "system/replay.h"
#include "rewind-internal.h"

#define WATCH_TRACKS 4
#define WATCH_MAX_LEN 64

typedef struct WatchTrack {
    CPUState *cpu;
    vaddr addr;
    vaddr len;
    uint64_t icount;        /* of the last write seen */
    uint8_t before[WATCH_MAX_LEN];  /* the value it found */
} WatchTrack;

static WatchTrack watch_tracks[WATCH_TRACKS];
static int watch_ntracks;

static void read_watched(WatchTrack *t, uint8_t *buf)
{
    if (cpu_memory_rw_debug(t->cpu, t->addr, buf, t->len, false) < 0) {
        memset(buf, 0, t->len);
    }
}

void rewind_watch_reset(void)
{
    watch_ntracks = 0;
}

/* At a pass's end: did the last write of each watchpoint change it? */
void rewind_watch_finish(void)
{
    uint8_t now[WATCH_MAX_LEN];

    for (int i = 0; i < watch_ntracks; i++) {
        WatchTrack *t = &watch_tracks[i];

        read_watched(t, now);
        if (memcmp(now, t->before, t->len)) {
            rewind_note_hit(t->icount, true, t->addr, GDB_WATCHPOINT_WRITE);
        }
    }
    watch_ntracks = 0;
}

void replay_watchpoint_hit(CPUState *cpu, vaddr addr, vaddr len, int flags)
{
    /*
     * The count already includes the accessing instruction (a one-
     * instruction block, see the caller).  Reverse execution lands
     * before it: the instruction that wrote, the old value in place.
     */
    uint64_t now = replay_get_current_icount() - 1;
    uint8_t value[WATCH_MAX_LEN];
    WatchTrack *t = NULL;

    assert(replay_mode == REPLAY_MODE_PLAY);
    if ((flags & BP_MEM_ACCESS) != BP_MEM_WRITE || len > WATCH_MAX_LEN) {
        rewind_note_hit(now, true, addr,
                 (flags & BP_MEM_ACCESS) == BP_MEM_ACCESS ?
                 GDB_WATCHPOINT_ACCESS :
                 (flags & BP_MEM_READ) ? GDB_WATCHPOINT_READ
                                       : GDB_WATCHPOINT_WRITE);
        return;
    }
    for (int i = 0; i < watch_ntracks; i++) {
        if (watch_tracks[i].addr == addr && watch_tracks[i].len == len) {
            t = &watch_tracks[i];
        }
    }
    if (!t) {
        if (watch_ntracks == WATCH_TRACKS) {
            rewind_note_hit(now, true, addr, GDB_WATCHPOINT_WRITE);
            return;
        }
        t = &watch_tracks[watch_ntracks++];
        t->cpu = cpu;
        t->addr = addr;
        t->len = len;
        read_watched(t, t->before);
        t->icount = now;
        return;
    }
    read_watched(t, value);
    if (memcmp(value, t->before, len)) {
        rewind_note_hit(t->icount, true, addr, GDB_WATCHPOINT_WRITE);
    }
    memcpy(t->before, value, len);
    t->icount = now;
}
