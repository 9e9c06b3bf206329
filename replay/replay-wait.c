/*
 * QEMU Rewind: blocking on a vCPU thread while holding the replay mutex
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/main-loop.h"
#include "system/replay.h"
#include "system/replay-wait.h"
#include "replay-internal.h"

bool replay_release_for_cpu_wait(void)
{
    if (replay_mode == REPLAY_MODE_NONE || !replay_mutex_locked()) {
        return false;
    }
    replay_mutex_unlock();
    return true;
}

void replay_reacquire_after_cpu_wait(bool released)
{
    if (!released) {
        return;
    }
    /* The replay mutex must be taken before the BQL. */
    bql_unlock();
    replay_mutex_lock();
    bql_lock();
}
