/*
 * QEMU Rewind: what the gdb stub's stop replies say about a stop
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef GDBSTUB_STOP_REPLY_H
#define GDBSTUB_STOP_REPLY_H

#include "exec/vaddr.h"
#include "qapi/qapi-types-run-state.h"

/*
 * gdb's Z0 (software) and Z1 (hardware) breakpoints are the same thing to
 * TCG, so the stub remembers which kind gdb asked for at each address to
 * answer swbreak or hwbreak. Called after a successful insertion or
 * removal of any gdb break/watchpoint type, and when all are removed.
 */
void gdb_stop_note_breakpoint(int type, vaddr addr, bool inserted);
void gdb_stop_forget_breakpoints(void);

/*
 * Appends the stop reason of a stop in @state to @reason, as "name:value;"
 * fields of a T packet: replaylog:begin/end when a replay run stopped at
 * an edge of the recording, the watchpoint a reverse run landed on, or
 * swbreak/hwbreak when the stop is at one of gdb's breakpoints. Returns
 * the signal to report, @sig unless the reason calls for SIGTRAP.
 */
int gdb_stop_reason(GString *reason, CPUState *cpu, RunState state, int sig);

/*
 * Appends the registers gdb needs first at any stop (PC, SP, frame
 * pointer) as "NN:value;" fields, so that it does not have to ask.
 */
void gdb_stop_append_registers(GString *buf, CPUState *cpu);

#endif /* GDBSTUB_STOP_REPLY_H */
