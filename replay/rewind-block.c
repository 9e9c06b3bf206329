/*
 * QEMU Rewind: a journal of guest disk writes, to take them back
 *
 * Restoring a checkpoint puts RAM and devices back, but a guest disk
 * (blkreplay over an image) keeps what was written since.  During replay
 * every write through blkreplay is journaled with the data it replaces
 * and the data it writes, keyed by its request id, which is part of the
 * replay state and so is restored with each checkpoint.  A restore then
 * undoes the journaled writes between the target's request id and the
 * live one (or redoes them, going forward).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qapi/error.h"
#include "block/block-global-state.h"
#include "block/block-io.h"
#include "block/block_int.h"
#include "block/graph-lock.h"
#include "system/replay.h"
#include "system/rewind-block.h"
#include "replay-internal.h"
#include "rewind-internal.h"

typedef struct BlockWrite {
    BlockDriverState *bs;       /* the blkreplay node */
    uint64_t reqid;
    int64_t offset;
    int64_t bytes;
    uint8_t *before;
    uint8_t *after;
} BlockWrite;

/* Sorted by request id; ids replayed again after a restore are known. */
static GPtrArray *journal;
static uint64_t journal_bytes;
static bool journal_broken;

static int find_write(uint64_t reqid, bool *found)
{
    int lo = 0, hi = journal ? journal->len : 0;

    while (lo < hi) {
        int mid = (lo + hi) / 2;
        BlockWrite *w = g_ptr_array_index(journal, mid);

        if (w->reqid < reqid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    *found = journal && lo < journal->len &&
             ((BlockWrite *)g_ptr_array_index(journal, lo))->reqid == reqid;
    return lo;
}

void coroutine_fn GRAPH_RDLOCK
rewind_block_before_write(BlockDriverState *bs, uint64_t reqid,
                          int64_t offset, int64_t bytes, QEMUIOVector *qiov)
{
    BlockWrite *w;
    bool found;
    int at;

    if (replay_mode != REPLAY_MODE_PLAY || !rewind_active()) {
        return;
    }
    if (!journal) {
        journal = g_ptr_array_new();
    }
    at = find_write(reqid, &found);
    if (found) {
        return;
    }
    w = g_new0(BlockWrite, 1);
    w->bs = bs;
    w->reqid = reqid;
    w->offset = offset;
    w->bytes = bytes;
    w->before = g_malloc(bytes);
    w->after = g_malloc0(bytes);
    if (bdrv_co_pread(bs->file, offset, bytes, w->before, 0) < 0) {
        warn_report("rewind: cannot read what a disk write replaces; going "
                    "back in time will not restore the disk");
        journal_broken = true;
    }
    if (qiov) {
        qemu_iovec_to_buf(qiov, 0, w->after, bytes);
    }
    journal_bytes += 2 * bytes;
    g_ptr_array_insert(journal, at, w);
}

static bool put(BlockWrite *w, const uint8_t *data, Error **errp)
{
    int ret;

    bdrv_graph_rdlock_main_loop();
    ret = bdrv_pwrite(w->bs->file, w->offset, w->bytes, data, 0);
    bdrv_graph_rdunlock_main_loop();
    if (ret < 0) {
        error_setg_errno(errp, -ret, "cannot restore the guest disk");
        return false;
    }
    return true;
}

/*
 * The disk holds every write with id < from; make it hold those with
 * id < to.  Called with all block I/O drained.
 */
bool rewind_block_restore(uint64_t from, uint64_t to, Error **errp)
{
    bool found;
    int i;

    if (!journal || from == to) {
        return true;
    }
    if (journal_broken) {
        error_setg(errp, "the guest disk cannot be restored: a write "
                   "was not journaled");
        return false;
    }
    if (to < from) {
        i = find_write(from, &found) - 1;
        for (; i >= 0; i--) {
            BlockWrite *w = g_ptr_array_index(journal, i);

            if (w->reqid < to) {
                break;
            }
            if (!put(w, w->before, errp)) {
                return false;
            }
        }
    } else {
        for (i = find_write(from, &found); i < journal->len; i++) {
            BlockWrite *w = g_ptr_array_index(journal, i);

            if (w->reqid >= to) {
                break;
            }
            if (!put(w, w->after, errp)) {
                return false;
            }
        }
    }
    return true;
}

/*
 * A request in flight has done its I/O, or not, and waits for the replay
 * to deliver its completion: a checkpoint now would capture a device
 * waiting on a request that a restore cannot bring back.  (Draining does
 * not help under replay: the completion comes when the log says so.)
 */
bool rewind_block_busy(void)
{
    BlockDriverState *bs = NULL;

    while ((bs = bdrv_next_all_states(bs))) {
        if (qatomic_read(&bs->in_flight)) {
            return true;
        }
    }
    return false;
}

uint64_t rewind_block_journal_bytes(void)
{
    return journal_bytes;
}
