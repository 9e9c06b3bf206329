/*
 * QEMU Rewind: when the gdb stub must flush translated code for breakpoints
 *
 * TCG looks for breakpoints when it looks a translation block up, but
 * blocks chained to each other jump without a lookup: a breakpoint set
 * after a chain through its address was made would be missed.  Upstream
 * flushes all translated code at every breakpoint stop to be safe, which
 * costs a translation of everything the guest runs next, and makes every
 * reverse step translate again all the code its replay runs.
 *
 * gdb removes its breakpoints at each stop and inserts them again before
 * it resumes, usually the same ones.  Chains made while a breakpoint was
 * set respect it, so the flush is needed only when the VM is about to
 * run with a breakpoint it did not have during its previous run.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/tb-flush.h"
#include "hw/core/cpu.h"
#include "system/tcg.h"
#include "breakpoint-flush.h"

typedef struct {
    int cpu;
    vaddr pc;
} BreakpointAt;

/* The breakpoints set during the VM's previous run, sorted. */
static GArray *previous_run;

static gint compare_breakpoints(gconstpointer a, gconstpointer b)
{
    const BreakpointAt *x = a, *y = b;

    if (x->cpu != y->cpu) {
        return x->cpu < y->cpu ? -1 : 1;
    }
    return x->pc < y->pc ? -1 : x->pc > y->pc;
}

static GArray *breakpoints_now(void)
{
    GArray *set = g_array_new(false, false, sizeof(BreakpointAt));
    CPUBreakpoint *bp;
    CPUState *cpu;

    CPU_FOREACH(cpu) {
        QTAILQ_FOREACH(bp, &cpu->breakpoints, entry) {
            BreakpointAt at = { .cpu = cpu->cpu_index, .pc = bp->pc };

            g_array_append_val(set, at);
        }
    }
    g_array_sort(set, compare_breakpoints);
    return set;
}

/* Whether every element of the sorted set @a is in the sorted set @b. */
static bool is_subset(GArray *a, GArray *b)
{
    guint j = 0;

    for (guint i = 0; i < a->len; i++) {
        const BreakpointAt *x = &g_array_index(a, BreakpointAt, i);

        while (j < b->len &&
               compare_breakpoints(&g_array_index(b, BreakpointAt, j), x) < 0) {
            j++;
        }
        if (j == b->len ||
            compare_breakpoints(&g_array_index(b, BreakpointAt, j), x) != 0) {
            return false;
        }
    }
    return true;
}

void gdb_breakpoints_before_run(void)
{
    GArray *now = breakpoints_now();

    /* Before the first run seen here, any code may have been chained. */
    if (tcg_enabled() && (previous_run ? !is_subset(now, previous_run)
                                       : now->len > 0)) {
        tb_flush(first_cpu);
    }
    if (previous_run) {
        g_array_unref(previous_run);
    }
    previous_run = now;
}
