/*
 * QEMU Rewind: reverse execution for the gdbstub, on in-memory checkpoints
 *
 * Every reverse operation is "restore a checkpoint before the target,
 * replay forward to it".  reverse-continue runs one forward pass per
 * stretch between checkpoints, newest first, noting the last breakpoint
 * or watchpoint hit before the window's end; then it lands on that hit
 * from the nearest checkpoint, which the pass itself has usually placed.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "exec/replay-stop.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "replay-internal.h"
#include "rewind-internal.h"

/* A reverse operation runs: breakpoints are noted, not stopped at. */
static bool debugging;

/* reverse-continue: hits are looked for in [pass start, window_end) */
static uint64_t window_end;
static uint64_t pass_start;
static int64_t last_hit = -1;
static bool last_hit_watch;
static vaddr last_hit_addr;
static int last_hit_type;

/* The hit a reverse-continue lands on. */
static bool land_watch;
static vaddr land_addr;
static int land_type;

/* What the next stop reply should say. */
static ReplayStopEdge stop_edge = REPLAY_STOP_NONE;
static bool stop_watch;
static vaddr stop_watch_addr;
static int stop_watch_type;

bool replay_running_debug(void)
{
    return debugging;
}

/*
 * The log has nothing more for the guest: its end, the guest's power-off,
 * or the shutdown the host asked for when recording stopped.
 */
static bool rewind_at_log_end(void)
{
    unsigned int kind = replay_state.data_kind;

    /* Replayed to the guest's power-off: nothing follows it. */
    if (kind == EVENT_END || runstate_check(RUN_STATE_SHUTDOWN)) {
        return true;
    }
    switch ((int)kind - EVENT_SHUTDOWN) {
    case SHUTDOWN_CAUSE_HOST_QMP_QUIT:
    case SHUTDOWN_CAUSE_HOST_SIGNAL:
    case SHUTDOWN_CAUSE_HOST_UI:
    case SHUTDOWN_CAUSE_HOST_ERROR:
        return true;
    default:
        return false;
    }
}

ReplayStopEdge replay_take_stop_edge(void)
{
    ReplayStopEdge edge = stop_edge;

    stop_edge = REPLAY_STOP_NONE;
    if (edge == REPLAY_STOP_NONE && replay_mode == REPLAY_MODE_PLAY &&
        rewind_at_log_end()) {
        edge = REPLAY_STOP_END;
    }
    return edge;
}

bool replay_take_stop_watchpoint(vaddr *addr, int *type)
{
    bool hit = stop_watch;

    if (hit) {
        *addr = stop_watch_addr;
        *type = stop_watch_type;
    }
    stop_watch = false;
    return hit;
}

void rewind_break(uint64_t icount, QEMUTimerCB callback, void *opaque)
{
    assert(replay_mode == REPLAY_MODE_PLAY);
    assert(replay_mutex_locked());
    assert(callback);

    replay_break_icount = icount;
    if (replay_break_timer) {
        timer_del(replay_break_timer);
        timer_free(replay_break_timer);
    }
    replay_break_timer = timer_new_ns(QEMU_CLOCK_REALTIME, callback, opaque);
    /* Already there: nothing will advance the count to trigger it. */
    if (replay_get_current_icount() == icount) {
        timer_mod_ns(replay_break_timer,
                     qemu_clock_get_ns(QEMU_CLOCK_REALTIME));
    }
}

void rewind_delete_break(void)
{
    assert(replay_mode == REPLAY_MODE_PLAY);

    if (replay_break_timer) {
        timer_free(replay_break_timer);
        replay_break_timer = NULL;
    }
    replay_break_icount = -1ULL;
}

/* Take a checkpoint at the stopped live state if that is possible now. */
static void checkpoint_here(void)
{
    Error *err = NULL;

    if (rewind_can_checkpoint() && !rewind_take_checkpoint(&err)) {
        warn_report_err(err);
    }
}

/*
 * A long way to a target: stop a little before it on the way and place
 * a checkpoint there, so that the reverse-stepi that usually follows
 * replays a short stretch instead of the same long one again.
 */
#define STONE_MIN_DISTANCE 50000
#define STONE_BEFORE 10000

static uint64_t stone_target;
static QEMUTimerCB *stone_callback;

static void stone_reached(void *opaque)
{
    rewind_delete_break();
    vm_stop(RUN_STATE_RESTORE_VM);
    checkpoint_here();
    rewind_break(stone_target, stone_callback, NULL);
    vm_start();
}

/*
 * Go to icount (VM stopped): restore the latest checkpoint at or before
 * it unless the live state is already between the two, then arrange a
 * stop there.  The caller starts the VM.
 */
bool rewind_goto(uint64_t icount, QEMUTimerCB callback, Error **errp)
{
    uint64_t now = replay_get_current_icount();
    RewindCheckpoint *c;

    if (!rewind_active()) {
        error_setg(errp, "reverse execution needs in-memory checkpoints, "
                   "which are off (rrcheckpoints=off, or a device that "
                   "cannot be saved)");
        return false;
    }
    c = rewind_find_before(icount);
    if (!c) {
        error_setg(errp, "instruction %" PRIu64 " is before the first "
                   "checkpoint", icount);
        return false;
    }
    if (icount < now || c->icount > now) {
        if (!rewind_restore(c, errp)) {
            return false;
        }
        now = c->icount;
    }
    if (icount - now > STONE_MIN_DISTANCE) {
        stone_target = icount;
        stone_callback = callback;
        rewind_break(icount - STONE_BEFORE, stone_reached, NULL);
    } else {
        rewind_break(icount, callback, NULL);
    }
    return true;
}

static void stop_debug(void *opaque)
{
    debugging = false;
    rewind_set_dense(false);
    rewind_delete_break();
    vm_stop(RUN_STATE_DEBUG);
}

static void stop_at_begin(void *opaque)
{
    stop_edge = REPLAY_STOP_BEGIN;
    stop_debug(opaque);
}

static bool start_reverse(void)
{
    assert(replay_mode == REPLAY_MODE_PLAY);
    if (!rewind_active()) {
        error_report("rewind: reverse execution is not available: "
                     "in-memory checkpoints are off");
        return false;
    }
    stop_edge = REPLAY_STOP_NONE;
    stop_watch = false;
    checkpoint_here();
    debugging = true;
    return true;
}

static void land_at_begin(void)
{
    Error *err = NULL;

    if (!rewind_goto(rewind_first()->icount, stop_at_begin, &err)) {
        error_report_err(err);
        stop_debug(NULL);
        return;
    }
    /* Idempotent: the gdbstub also starts the VM after bs/bc. */
    vm_start();
}

bool replay_reverse_step(void)
{
    uint64_t now = replay_get_current_icount();
    Error *err = NULL;

    if (!start_reverse()) {
        return false;
    }
    /*
     * Stepping backwards: place checkpoints densely on the way.  (Not for
     * reverse-continue: its passes replay long stretches, where dense
     * placement cost more than the shorter landing saves.)
     */
    rewind_set_dense(true);
    if (now <= rewind_first()->icount) {
        land_at_begin();
        return true;
    }
    if (!rewind_goto(now - 1, stop_debug, &err)) {
        error_report_err(err);
        debugging = false;
        return false;
    }
    return true;
}

static void continue_pass_end(void *opaque);

/* Replay the stretch before window_end from the checkpoint before it. */
static void continue_pass(void)
{
    RewindCheckpoint *c = window_end ? rewind_find_before(window_end - 1)
                                     : NULL;
    Error *err = NULL;

    if (!c) {
        land_at_begin();
        return;
    }
    last_hit = -1;
    rewind_watch_reset();
    pass_start = c->icount;
    if (!rewind_restore(c, &err)) {
        error_report_err(err);
        stop_debug(NULL);
        return;
    }
    rewind_break(window_end, continue_pass_end, NULL);
    vm_start();
}

static void stop_at_hit(void *opaque)
{
    stop_watch = land_watch;
    stop_watch_addr = land_addr;
    stop_watch_type = land_type;
    stop_debug(opaque);
}

static void continue_pass_end(void *opaque)
{
    Error *err = NULL;

    rewind_delete_break();
    vm_stop(RUN_STATE_RESTORE_VM);
    rewind_watch_finish();
    if (last_hit >= 0) {
        land_watch = last_hit_watch;
        land_addr = last_hit_addr;
        land_type = last_hit_type;
        if (!rewind_goto(last_hit, stop_at_hit, &err)) {
            error_report_err(err);
            stop_debug(NULL);
            return;
        }
        vm_start();
        return;
    }
    if (pass_start <= rewind_first()->icount) {
        land_at_begin();
        return;
    }
    window_end = pass_start;
    continue_pass();
}

bool replay_reverse_continue(void)
{
    uint64_t now = replay_get_current_icount();

    if (!start_reverse()) {
        return false;
    }
    if (now <= rewind_first()->icount) {
        land_at_begin();
        return true;
    }
    /*
     * At the guest's power-off, the instruction just behind is the one
     * that powered it off: a pass through it would power off again
     * before it ends.  Look for hits before that instruction.
     */
    window_end = runstate_check(RUN_STATE_SHUTDOWN) ? now - 1 : now;
    continue_pass();
    return true;
}

/* Only hits before the window's end (where the pass started) count. */
void rewind_note_hit(uint64_t icount, bool watch, vaddr addr, int type)
{
    if (icount >= window_end || (last_hit >= 0 && icount < last_hit)) {
        return;
    }
    last_hit = icount;
    last_hit_watch = watch;
    last_hit_addr = addr;
    last_hit_type = type;
}

/* From the vCPU thread: a breakpoint is hit during a reverse operation. */
void replay_breakpoint(void)
{
    assert(replay_mode == REPLAY_MODE_PLAY);
    rewind_note_hit(replay_get_current_icount(), false, 0, 0);
}

void replay_gdb_attached(void)
{
    /* The in-memory checkpoints need no snapshot drive. */
}

/* Seek for the monitor: stop (paused) at icount. */
static void stop_paused(void *opaque)
{
    debugging = false;
    rewind_set_dense(false);
    rewind_delete_break();
    vm_stop(RUN_STATE_PAUSED);
}

bool rewind_seek(uint64_t icount, Error **errp)
{
    if (replay_mode != REPLAY_MODE_PLAY) {
        error_setg(errp, "replay must be enabled to seek");
        return false;
    }
    if (runstate_is_running()) {
        vm_stop(RUN_STATE_PAUSED);
    }
    if (icount < replay_get_current_icount() || rewind_active()) {
        if (!rewind_goto(icount, stop_paused, errp)) {
            return false;
        }
    } else {
        rewind_break(icount, stop_paused, NULL);
    }
    /* Passing breakpoints on the way is not stopping at them. */
    debugging = true;
    vm_start();
    return true;
}
