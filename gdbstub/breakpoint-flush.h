/*
 * QEMU Rewind: when the gdb stub must flush translated code for breakpoints
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef GDBSTUB_BREAKPOINT_FLUSH_H
#define GDBSTUB_BREAKPOINT_FLUSH_H

/*
 * Called as the VM is about to run: flushes all translated code if a
 * breakpoint is set that was not set during the VM's previous run.
 */
void gdb_breakpoints_before_run(void);

#endif
