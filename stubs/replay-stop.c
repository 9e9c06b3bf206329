/*
 * QEMU Rewind: stubs for builds without record/replay. Only the functions
 * of exec/replay-stop.h may live here: the replay code's own definitions
 * must be able to take their place at link time.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/replay-stop.h"

ReplayStopEdge replay_take_stop_edge(void)
{
    return REPLAY_STOP_NONE;
}

bool replay_take_stop_watchpoint(vaddr *addr, int *type)
{
    return false;
}
