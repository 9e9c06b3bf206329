/*
 * QEMU Rewind: why a replay run stopped, for the gdb stub's stop replies
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef EXEC_REPLAY_STOP_H
#define EXEC_REPLAY_STOP_H

#include "exec/vaddr.h"

/*
 * The replay code records why a run it drove stopped where it did, and
 * the gdb stub reads it when it builds the stop reply for that stop
 * (gdbstub/stop-reply.c). Builds without record/replay use the stubs of
 * stubs/replay-stop.c, which report nothing.
 */

typedef enum ReplayStopEdge {
    REPLAY_STOP_NONE,
    REPLAY_STOP_BEGIN,  /* a reverse run reached the start of the recording */
    REPLAY_STOP_END,    /* a forward run reached the end of the replay log */
} ReplayStopEdge;

/*
 * Why the last replay run stopped at an edge of the recording; reading
 * clears it.
 */
ReplayStopEdge replay_take_stop_edge(void);

/*
 * The watchpoint (gdb type GDB_WATCHPOINT_WRITE etc. and address) that a
 * reverse run landed on, if any; reading clears it.
 */
bool replay_take_stop_watchpoint(vaddr *addr, int *type);

#endif /* EXEC_REPLAY_STOP_H */
