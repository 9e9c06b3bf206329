/*
 * QEMU Rewind: watchpoints during reverse execution
 *
 * While a reverse-continue replays a stretch, a watchpoint hit is noted
 * rather than stopped at.  A write watchpoint only counts where the
 * write changes the value: the hook runs before the access, so a write
 * is known to have changed the value when the next write to the same
 * place (or the end of the pass) finds another value there.
 *
 * Device DMA does not go through the CPU's watchpoints: writes that do
 * not come from guest stores call replay_ram_written() while a pass
 * watches, and count where they change a watched value.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/breakpoint.h"
#include "exec/cpu-common.h"
#include "gdbstub/enums.h"
#include "exec/memory.h"
#include "exec/target_page.h"
#include "hw/core/cpu.h"
#include "system/replay.h"
#include "rewind-internal.h"

#define WATCH_TRACKS 4
#define WATCH_MAX_LEN 64

typedef struct WatchTrack {
    CPUState *cpu;
    vaddr addr;
    vaddr len;
    bool in_ram;
    uint64_t ram_addr;      /* where DMA would write it */
    uint8_t known[WATCH_MAX_LEN];   /* value at the last event seen */
    bool pending;           /* a CPU write whose effect is not known yet */
    uint64_t pending_icount;
} WatchTrack;

bool replay_watching_ram;
static WatchTrack watch_tracks[WATCH_TRACKS];
static int watch_ntracks;

static void read_watched(WatchTrack *t, uint8_t *buf)
{
    if (cpu_memory_rw_debug(t->cpu, t->addr, buf, t->len, false) < 0) {
        memset(buf, 0, t->len);
    }
}

static void find_ram(WatchTrack *t)
{
    MemTxAttrs attrs;
    hwaddr page = cpu_get_phys_page_attrs_debug(t->cpu, t->addr, &attrs);
    hwaddr xlat, plen = t->len;
    MemoryRegion *mr;

    t->in_ram = false;
    if (page == -1) {
        return;
    }
    RCU_READ_LOCK_GUARD();
    mr = address_space_translate(cpu_get_address_space(t->cpu, 0),
                                 page | (t->addr & ~TARGET_PAGE_MASK),
                                 &xlat, &plen, true, attrs);
    if (memory_region_is_ram(mr) && plen >= t->len) {
        t->ram_addr = memory_region_get_ram_addr(mr) + xlat;
        t->in_ram = true;
    }
}

static WatchTrack *add_track(CPUState *cpu, vaddr addr, vaddr len)
{
    WatchTrack *t;

    for (int i = 0; i < watch_ntracks; i++) {
        if (watch_tracks[i].addr == addr && watch_tracks[i].len == len) {
            return &watch_tracks[i];
        }
    }
    if (watch_ntracks == WATCH_TRACKS || len > WATCH_MAX_LEN) {
        return NULL;
    }
    t = &watch_tracks[watch_ntracks++];
    memset(t, 0, sizeof(*t));
    t->cpu = cpu;
    t->addr = addr;
    t->len = len;
    read_watched(t, t->known);
    find_ram(t);
    replay_watching_ram |= t->in_ram;
    return t;
}

/* A pass starts: track every gdb write watchpoint from here. */
void rewind_watch_reset(void)
{
    CPUState *cpu;
    CPUWatchpoint *wp;

    watch_ntracks = 0;
    replay_watching_ram = false;
    CPU_FOREACH(cpu) {
        QTAILQ_FOREACH(wp, &cpu->watchpoints, entry) {
            if ((wp->flags & BP_GDB) &&
                (wp->flags & BP_MEM_ACCESS) == BP_MEM_WRITE) {
                add_track(cpu, wp->vaddr, wp->len);
            }
        }
    }
}

/* At a pass's end: did the last write of each watchpoint change it? */
void rewind_watch_finish(void)
{
    uint8_t now[WATCH_MAX_LEN];

    for (int i = 0; i < watch_ntracks; i++) {
        WatchTrack *t = &watch_tracks[i];

        read_watched(t, now);
        if (t->pending && memcmp(now, t->known, t->len)) {
            rewind_note_hit(t->pending_icount, true, t->addr,
                            GDB_WATCHPOINT_WRITE);
        }
    }
    watch_ntracks = 0;
    replay_watching_ram = false;
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
    if ((flags & BP_MEM_ACCESS) != BP_MEM_WRITE) {
        rewind_note_hit(now, true, addr,
                 (flags & BP_MEM_ACCESS) == BP_MEM_ACCESS ?
                 GDB_WATCHPOINT_ACCESS : GDB_WATCHPOINT_READ);
        return;
    }
    t = add_track(cpu, addr, len);
    if (!t) {
        /* Too many or too long to compare: every write counts. */
        rewind_note_hit(now, true, addr, GDB_WATCHPOINT_WRITE);
        return;
    }
    read_watched(t, value);
    if (t->pending && memcmp(value, t->known, len)) {
        rewind_note_hit(t->pending_icount, true, addr, GDB_WATCHPOINT_WRITE);
    }
    memcpy(t->known, value, len);
    t->pending = true;
    t->pending_icount = now;
}

/*
 * A write that is not a guest store (DMA, or QEMU writing guest memory),
 * after it is done.  If a CPU write is still pending, its effect and the
 * DMA's cannot be told apart: both count as changes when the value moved.
 */
void replay_ram_written(uint64_t ram_addr, uint64_t len)
{
    uint8_t value[WATCH_MAX_LEN];

    for (int i = 0; i < watch_ntracks; i++) {
        WatchTrack *t = &watch_tracks[i];

        if (!t->in_ram || ram_addr >= t->ram_addr + t->len ||
            t->ram_addr >= ram_addr + len) {
            continue;
        }
        read_watched(t, value);
        if (memcmp(value, t->known, t->len)) {
            if (t->pending) {
                rewind_note_hit(t->pending_icount, true, t->addr,
                                GDB_WATCHPOINT_WRITE);
            }
            rewind_note_hit(replay_get_current_icount(), true, t->addr,
                            GDB_WATCHPOINT_WRITE);
        }
        memcpy(t->known, value, t->len);
        t->pending = false;
    }
}
