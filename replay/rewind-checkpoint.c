/*
 * QEMU Rewind: the timeline of in-memory checkpoints
 *
 * A checkpoint is the device state, serialised to memory, plus guest RAM
 * as the pages written since the previous checkpoint.  They are kept in
 * timeline (instruction count) order.  The live machine is described
 * relative to one of them, "current", by the pages written since.
 *
 * Placement: the replay takes a checkpoint every rrcheckpoint-interval
 * milliseconds of replay (a quarter of that while reverse-stepi
 * replays), and thins them so that their spacing grows with the distance
 * from the present: their number grows like the log of the recording's
 * length.  A memory budget bounds them too.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "block/block.h"
#include "io/channel-buffer.h"
#include "migration/global_state.h"
#include "migration/qemu-file.h"
#include "migration/savevm.h"
#include "migration/vmstate.h"
#include "hw/core/cpu.h"
#include "system/cpus.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "system/rewind-restore.h"
#include "replay-internal.h"
#include "rewind-internal.h"
#include "rewind-digest.h"

RewindConfig rewind_config = {
    .enabled = true,
    .interval_ms = 50,
};

static RewindCheckpointList checkpoints =
    QTAILQ_HEAD_INITIALIZER(checkpoints);
static RewindCheckpoint *current;
static int count;
static uint64_t memory_used;
static bool started;
static bool dense;
static QEMUTimer *placement_timer;
static uint64_t placement_count;
static int64_t placement_ns;       /* host time spent taking them */

/*
 * Spacing/distance below which a checkpoint is merged away.  What is left
 * is a geometric series of ratio about 1.08: the stretch holding a point
 * at distance D from the present is about 0.08 D long, which is what a
 * reverse-continue replays beyond the distance it travels.  (0.8, a
 * series of ratio 1.5, made that cost 2x the distance; 0.15 keeps about
 * 3x as many checkpoints, 0.40x guest RAM instead of 0.31x at the end
 * of scenario (a).)
 */
#define REWIND_THIN_RATIO 0.15

bool rewind_active(void)
{
    return started;
}

RewindCheckpointList *rewind_checkpoints(void)
{
    return &checkpoints;
}

int rewind_checkpoint_count(void)
{
    return count;
}

uint64_t rewind_memory_used(void)
{
    return memory_used;
}

uint64_t rewind_memory_budget(void)
{
    return rewind_config.mem_budget ? rewind_config.mem_budget
                                    : rewind_ram_guest_bytes();
}

RewindCheckpoint *rewind_first(void)
{
    return QTAILQ_FIRST(&checkpoints);
}

RewindCheckpoint *rewind_current(void)
{
    return current;
}

/*
 * Nothing half-done: no replay event queued, no block request open, and
 * no virtual-clock timer that has expired without running yet (restored,
 * such a state could put the log past the timer's checkpoint while the
 * device has still to fire, and the replay then waits forever).
 */
static int checkpoint_holds;

void rewind_hold_checkpoints(int delta)
{
    checkpoint_holds += delta;
    assert(checkpoint_holds >= 0);
}

bool rewind_quiescent(void)
{
    return !replay_has_events() && !rewind_block_busy() && !checkpoint_holds &&
           qemu_clock_deadline_ns_all(QEMU_CLOCK_VIRTUAL,
                                      QEMU_TIMER_ATTR_ALL) != 0;
}

bool rewind_can_checkpoint(void)
{
    return started && rewind_quiescent();
}

static uint64_t checkpoint_bytes(RewindCheckpoint *c)
{
    return sizeof(*c) + c->devices_size + rewind_ram_bytes(c->pages);
}

/* The latest checkpoint at or before icount. */
RewindCheckpoint *rewind_find_before(uint64_t icount)
{
    RewindCheckpoint *c, *best = NULL;

    QTAILQ_FOREACH(c, &checkpoints, next) {
        if (c->icount > icount) {
            break;
        }
        best = c;
    }
    return best;
}

/*
 * Live pages written since "current" are also written since any earlier
 * checkpoint, so once the replay has gone past later checkpoints the
 * live state can be described relative to the latest of them.
 */
void rewind_note_position(void)
{
    RewindCheckpoint *c = rewind_find_before(replay_get_current_icount());

    if (c && current && c->icount > current->icount) {
        current = c;
    }
}

bool rewind_save_devices(uint8_t **data, size_t *size, Error **errp)
{
    QIOChannelBuffer *bioc = qio_channel_buffer_new(256 * 1024);
    QEMUFile *f = qemu_file_new_output(QIO_CHANNEL(bioc));
    int ret;

    /* Its section fails to load unless the run state was stored. */
    global_state_store();
    ret = qemu_save_device_state(f);
    if (ret == 0) {
        ret = qemu_fflush(f);
    }
    if (ret == 0) {
        *size = bioc->usage;
        *data = g_memdup2(bioc->data, bioc->usage);
    }
    qemu_fclose(f);
    object_unref(OBJECT(bioc));
    if (ret) {
        error_setg(errp, "could not save the device state (%d)", ret);
        return false;
    }
    return true;
}

/* rewind_ram_restore() has dropped the code of the pages it rewrote. */
static bool restoring;

bool rewind_restoring(void)
{
    return restoring;
}

typedef struct AfterRestore {
    void (*fn)(void *opaque);
    void *opaque;
} AfterRestore;

static GArray *after_restore;

void rewind_after_restore(void (*fn)(void *opaque), void *opaque)
{
    AfterRestore a = { fn, opaque };

    assert(restoring);
    if (!after_restore) {
        after_restore = g_array_new(false, false, sizeof(AfterRestore));
    }
    g_array_append_val(after_restore, a);
}

/* In the order they were asked for: the controllers before their devices. */
static void run_after_restore(void)
{
    guint i;

    for (i = 0; after_restore && i < after_restore->len; i++) {
        AfterRestore *a = &g_array_index(after_restore, AfterRestore, i);
        a->fn(a->opaque);
    }
    if (after_restore) {
        g_array_set_size(after_restore, 0);
    }
}

static bool load_devices(RewindCheckpoint *c, Error **errp)
{
    QIOChannelBuffer *bioc = qio_channel_buffer_new(c->devices_size);
    QEMUFile *f;
    int ret;

    memcpy(bioc->data, c->devices, c->devices_size);
    bioc->usage = c->devices_size;
    f = qemu_file_new_input(QIO_CHANNEL(bioc));
    object_unref(OBJECT(bioc));

    /* qemu_save_device_state() wrote the stream header. */
    if (qemu_get_be32(f) != QEMU_VM_FILE_MAGIC ||
        qemu_get_be32(f) != QEMU_VM_FILE_VERSION) {
        qemu_fclose(f);
        error_setg(errp, "checkpoint at %" PRIu64 " has a bad device state",
                   c->icount);
        return false;
    }
    ret = qemu_load_device_state(f);
    qemu_fclose(f);
    if (ret < 0) {
        error_setg(errp, "could not load the device state of checkpoint "
                   "at %" PRIu64 " (%d)", c->icount, ret);
        return false;
    }
    return true;
}

/*
 * Take a checkpoint of the live state; the vCPUs must be paused and no
 * replay event pending.  Returns the checkpoint at this instruction
 * count, which may be one taken before.
 */
RewindCheckpoint *rewind_take_checkpoint(Error **errp)
{
    uint64_t icount = replay_get_current_icount();
    RewindCheckpoint *c, *at;

    assert(started && bql_locked());
    if (!rewind_quiescent()) {
        error_setg(errp, "replay events, block requests or due timers "
                   "are pending");
        return NULL;
    }
    rewind_note_position();
    at = rewind_find_before(icount);
    if (at && at->icount == icount) {
        return at;
    }

    c = g_new0(RewindCheckpoint, 1);
    c->icount = icount;
    c->taken_ns = qemu_clock_get_ns(QEMU_CLOCK_REALTIME);
    if (!rewind_save_devices(&c->devices, &c->devices_size, errp)) {
        g_free(c);
        return NULL;
    }
    c->pages = rewind_ram_capture(at == NULL);
    c->timers = rewind_timers_capture();
    if (at) {
        QTAILQ_INSERT_AFTER(&checkpoints, at, c, next);
    } else {
        QTAILQ_INSERT_HEAD(&checkpoints, c, next);
    }
    current = c;
    count++;
    memory_used += checkpoint_bytes(c);
    return c;
}

/* A checkpoint from the recording's file; the base stays first. */
void rewind_insert_persisted(RewindCheckpoint *c)
{
    RewindCheckpoint *at = rewind_find_before(c->icount);

    assert(at && at->icount < c->icount);
    c->persisted = true;
    QTAILQ_INSERT_AFTER(&checkpoints, at, c, next);
    count++;
}

static void free_checkpoint(RewindCheckpoint *c)
{
    rewind_ram_free(c->pages);
    rewind_timers_free(c->timers);
    g_free(c->devices);
    g_free(c);
}

static void remove_checkpoint(RewindCheckpoint *c)
{
    RewindCheckpoint *after = QTAILQ_NEXT(c, next);

    assert(c != current && c != rewind_first() && !c->persisted);
    memory_used -= checkpoint_bytes(c);
    if (after) {
        memory_used -= checkpoint_bytes(after);
        rewind_ram_merge_into(c->pages, after->pages);
        memory_used += checkpoint_bytes(after);
    }
    QTAILQ_REMOVE(&checkpoints, c, next);
    count--;
    free_checkpoint(c);
}

/*
 * How much a checkpoint is worth: the stretch of timeline it splits,
 * relative to its distance from the present.  Evenly spaced recent ones
 * score about 2; a geometric series of ratio q scores q - 1/q.
 */
static double checkpoint_value(RewindCheckpoint *c, uint64_t now)
{
    RewindCheckpoint *before = QTAILQ_PREV(c, next);
    RewindCheckpoint *after = QTAILQ_NEXT(c, next);
    uint64_t hi = after ? after->icount : MAX(now, c->icount);
    uint64_t dist = c->icount > now ? c->icount - now : now - c->icount;

    return (double)(hi - before->icount) / (double)MAX(dist, 1);
}

void rewind_thin(void)
{
    uint64_t now = replay_get_current_icount();
    uint64_t budget = rewind_memory_budget();

    for (;;) {
        RewindCheckpoint *c, *worst = NULL;
        double worst_value = 0;

        QTAILQ_FOREACH(c, &checkpoints, next) {
            double v;

            if (c == rewind_first() || c == current || c->persisted) {
                continue;
            }
            v = checkpoint_value(c, now);
            if (!worst || v < worst_value) {
                worst = c;
                worst_value = v;
            }
        }
        if (!worst ||
            (worst_value >= REWIND_THIN_RATIO && memory_used <= budget)) {
            return;
        }
        remove_checkpoint(worst);
    }
}

/* Bring the whole machine back to checkpoint c; the VM must be stopped. */
bool rewind_restore(RewindCheckpoint *c, Error **errp)
{
    g_autofree RewindPages **chain = g_new(RewindPages *, count);
    RewindCheckpoint *it;
    int n = 0, from = -1, to = -1;
    uint64_t block_id;
    CPUState *cpu;
    bool ok;

    assert(started && !runstate_is_running());
    rewind_note_position();
    /* Going back from the guest's power-off: the machine runs again. */
    if (runstate_check(RUN_STATE_SHUTDOWN)) {
        runstate_set(RUN_STATE_PAUSED);
    }

    /* Queued events and the guest's requests belong to the state left. */
    replay_flush_events();
    qemu_system_drop_guest_requests();
    bdrv_drain_all_begin();

    QTAILQ_FOREACH(it, &checkpoints, next) {
        if (it == current) {
            from = n;
        }
        if (it == c) {
            to = n;
        }
        chain[n++] = it->pages;
    }
    assert(from >= 0 && to >= 0);
    restoring = true;
    /*
     * A load assumes a freshly reset machine, as load_snapshot() gives it:
     * a subsection saved only when its fields are not at their reset
     * values (cpu/fpop_ip_dp, piix4_pm/cpuhp, ...) is simply absent from
     * the checkpoint, and loading over a live machine would keep the
     * values the replay had reached later.  Reset hooks that would act
     * outside the machine (ROM blobs, usb-host) hold back while
     * rewind_restoring().
     */
    qemu_system_reset(SHUTDOWN_CAUSE_SNAPSHOT_LOAD);
    /* RAM before devices: post_load hooks read guest memory. */
    rewind_ram_restore(chain, n, from, to);
    current = c;
    block_id = replay_state.block_request_id;
    ok = load_devices(c, errp);
    restoring = false;
    run_after_restore();
    rewind_digest_restored(c->icount);
    /* Last: post_load and after-restore work may have armed timers. */
    if (c->timers) {
        rewind_timers_impose(c->timers);
    }
    rewind_char_output_restored();
    ok = ok &&
         rewind_block_restore(block_id, replay_state.block_request_id, errp);
    bdrv_drain_all_end();
    /*
     * A breakpoint noted during reverse execution is stepped over with
     * single-stepping, and a CPU left stepping would not note the next
     * hit: a restored CPU is never half-way over a breakpoint.
     */
    CPU_FOREACH(cpu) {
        cpu_single_step(cpu, 0);
    }
    return ok;
}

/*
 * Periodic placement.  The timer runs on replay time: it only counts
 * while the guest runs, since a stopped VM re-arms it on resume.
 */
static int64_t placement_interval_ms(void)
{
    return MAX(dense ? rewind_config.interval_ms / 4
                     : rewind_config.interval_ms, 1);
}

static void placement_arm(int64_t ms)
{
    timer_mod(placement_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + ms);
}

void rewind_placement_stats(uint64_t *taken, int64_t *ns)
{
    *taken = placement_count;
    *ns = placement_ns;
}

void rewind_set_dense(bool on)
{
    dense = on;
}

static void placement_tick(void *opaque)
{
    Error *err = NULL;
    int64_t start;

    if (!runstate_is_running()) {
        return;
    }
    if (!rewind_quiescent()) {
        placement_arm(1);
        return;
    }
    start = get_clock();
    pause_all_vcpus();
    if (rewind_quiescent()) {
        if (!rewind_take_checkpoint(&err)) {
            warn_report_err(err);
        }
        rewind_thin();
    }
    resume_all_vcpus();
    placement_count++;
    placement_ns += get_clock() - start;
    placement_arm(placement_interval_ms());
}

static void placement_vm_state(void *opaque, bool running, RunState state)
{
    if (running) {
        placement_arm(placement_interval_ms());
    } else {
        timer_del(placement_timer);
    }
}

/*
 * The first checkpoint: the machine as created, before it runs.  Called
 * when record/replay sets up its initial state.
 */
void rewind_checkpoints_init(void)
{
    Error *err = NULL;

    rewind_digest_start();
    if (replay_mode == REPLAY_MODE_RECORD) {
        rewind_persist_record_start();
        return;
    }
    if (replay_mode != REPLAY_MODE_PLAY || !rewind_config.enabled) {
        return;
    }
    if (qemu_savevm_state_blocked(&err)) {
        error_report_err(err);
        warn_report("rewind: in-memory checkpoints are off, so reverse "
                    "execution is not available");
        return;
    }
    if (!rewind_ram_start(&err)) {
        error_report_err(err);
        warn_report("rewind: no dirty-memory logging, so reverse execution "
                    "is not available");
        return;
    }
    started = true;
    if (!rewind_take_checkpoint(&err)) {
        error_report_err(err);
        error_report("rewind: could not take the initial checkpoint");
        exit(1);
    }
    rewind_persist_load();
    placement_timer = timer_new_ms(QEMU_CLOCK_REALTIME, placement_tick, NULL);
    qemu_add_vm_change_state_handler(placement_vm_state, NULL);
}
