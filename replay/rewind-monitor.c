/*
 * QEMU Rewind: monitor commands for the replay timeline
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-replay.h"
#include "qobject/qdict.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "replay-internal.h"
#include "rewind-internal.h"

static void print_checkpoints(Monitor *mon)
{
    RewindCheckpoint *c;
    uint64_t taken;
    int64_t ns;
    int i = 0;

    if (!rewind_active()) {
        monitor_printf(mon, "In-memory checkpoints: off\n");
        return;
    }
    monitor_printf(mon, "In-memory checkpoints: %d, %" PRIu64 " bytes "
                   "(budget %" PRIu64 " bytes, guest RAM %" PRIu64
                   " bytes)\n", rewind_checkpoint_count(),
                   rewind_memory_used(), rewind_memory_budget(),
                   rewind_ram_guest_bytes());
    rewind_placement_stats(&taken, &ns);
    monitor_printf(mon, "Automatic placement: %" PRIu64 " taken, %" PRId64
                   " ms of replay spent on them\n", taken, ns / SCALE_MS);
    QTAILQ_FOREACH(c, rewind_checkpoints(), next) {
        monitor_printf(mon, "  #%d icount %" PRIu64 ": %" PRIu64 " pages, "
                       "%" PRIu64 " bytes%s%s\n", i++, c->icount,
                       rewind_ram_page_count(c->pages),
                       (uint64_t)(c->devices_size +
                                  rewind_ram_bytes(c->pages)),
                       c->persisted ? " (persisted)" : "",
                       c == rewind_current() ? " (current)" : "");
    }
}

void hmp_info_replay(Monitor *mon, const QDict *qdict)
{
    if (replay_mode == REPLAY_MODE_NONE) {
        monitor_printf(mon, "Record/replay is not active\n");
        return;
    }
    monitor_printf(mon, "%s execution '%s': instruction count = %" PRId64
                   "\n", replay_mode == REPLAY_MODE_RECORD ? "Recording"
                                                           : "Replaying",
                   replay_get_filename(), replay_get_current_icount());
    if (replay_mode == REPLAY_MODE_PLAY) {
        print_checkpoints(mon);
    }
}

ReplayInfo *qmp_query_replay(Error **errp)
{
    ReplayInfo *retval = g_new0(ReplayInfo, 1);

    retval->mode = replay_mode;
    if (replay_get_filename()) {
        retval->filename = g_strdup(replay_get_filename());
    }
    retval->icount = replay_get_current_icount();
    return retval;
}

static void stop_vm_at_break(void *opaque)
{
    rewind_delete_break();
    vm_stop(RUN_STATE_PAUSED);
}

void qmp_replay_break(int64_t icount, Error **errp)
{
    if (replay_mode != REPLAY_MODE_PLAY) {
        error_setg(errp, "setting the breakpoint is allowed only in play "
                   "mode");
    } else if (icount < replay_get_current_icount()) {
        error_setg(errp, "cannot set breakpoint at the instruction in the "
                   "past");
    } else {
        rewind_break(icount, stop_vm_at_break, NULL);
    }
}

void hmp_replay_break(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_replay_break(qdict_get_try_int(qdict, "icount", -1LL), &err);
    if (err) {
        error_report_err(err);
    }
}

void qmp_replay_delete_break(Error **errp)
{
    if (replay_mode != REPLAY_MODE_PLAY) {
        error_setg(errp, "replay breakpoints are allowed only in play mode");
        return;
    }
    rewind_delete_break();
}

void hmp_replay_delete_break(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_replay_delete_break(&err);
    if (err) {
        error_report_err(err);
    }
}

void qmp_replay_seek(int64_t icount, Error **errp)
{
    if (icount < 0) {
        error_setg(errp, "the instruction count must not be negative");
        return;
    }
    rewind_seek(icount, errp);
}

void hmp_replay_seek(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;

    qmp_replay_seek(qdict_get_try_int(qdict, "icount", -1LL), &err);
    if (err) {
        error_report_err(err);
    }
}
