/*
 * QEMU Rewind: what the gdb stub's stop replies say about a stop
 *
 * gdb learns from a T stop reply why the target stopped ("swbreak",
 * "hwbreak", "watch", "replaylog") and the values of the registers it
 * needs first. Without them it must guess the reason from the PC and
 * fetch registers with extra round trips, which adds up when a reverse
 * command stops many times.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/gdbstub.h"
#include "exec/replay-stop.h"
#include "gdbstub/enums.h"
#include "hw/core/cpu.h"
#include "system/hw_accel.h"
#include "internals.h"
#include "stop-reply.h"

/* How many of gdb's Z0 and Z1 breakpoints are inserted at an address */
typedef struct GDBBreakpointKinds {
    vaddr addr;
    unsigned int sw;
    unsigned int hw;
} GDBBreakpointKinds;

static GArray *gdb_bp_kinds;

static GDBBreakpointKinds *gdb_bp_kinds_at(vaddr addr, bool create)
{
    GDBBreakpointKinds fresh = { .addr = addr };

    if (!gdb_bp_kinds) {
        gdb_bp_kinds = g_array_new(false, false, sizeof(GDBBreakpointKinds));
    }
    for (guint i = 0; i < gdb_bp_kinds->len; i++) {
        GDBBreakpointKinds *k = &g_array_index(gdb_bp_kinds,
                                               GDBBreakpointKinds, i);
        if (k->addr == addr) {
            return k;
        }
    }
    if (!create) {
        return NULL;
    }
    g_array_append_val(gdb_bp_kinds, fresh);
    return &g_array_index(gdb_bp_kinds, GDBBreakpointKinds,
                          gdb_bp_kinds->len - 1);
}

void gdb_stop_note_breakpoint(int type, vaddr addr, bool inserted)
{
    GDBBreakpointKinds *k;
    unsigned int *count;

    if (type != GDB_BREAKPOINT_SW && type != GDB_BREAKPOINT_HW) {
        return;
    }
    k = gdb_bp_kinds_at(addr, inserted);
    if (!k) {
        return;
    }
    count = type == GDB_BREAKPOINT_SW ? &k->sw : &k->hw;
    if (inserted) {
        (*count)++;
    } else if (*count) {
        (*count)--;
    }
    if (!k->sw && !k->hw) {
        g_array_remove_index_fast(gdb_bp_kinds,
                                  k - (GDBBreakpointKinds *)gdb_bp_kinds->data);
    }
}

void gdb_stop_forget_breakpoints(void)
{
    if (gdb_bp_kinds) {
        g_array_set_size(gdb_bp_kinds, 0);
    }
}

/* "swbreak:;" or "hwbreak:;" if @cpu stands at one of gdb's breakpoints */
static void gdb_append_breakpoint_reason(GString *reason, CPUState *cpu)
{
    GDBBreakpointKinds *k;

    if (!cpu->cc->get_pc) {
        return;
    }
    cpu_synchronize_state(cpu);
    k = gdb_bp_kinds_at(cpu->cc->get_pc(cpu), false);
    if (!k) {
        return;
    }
    /* Only a gdb that asked for these stop reasons may be sent them. */
    if (k->sw && gdbserver_state.swbreak) {
        g_string_append(reason, "swbreak:;");
    } else if (k->hw && gdbserver_state.hwbreak) {
        g_string_append(reason, "hwbreak:;");
    }
}

int gdb_stop_reason(GString *reason, CPUState *cpu, RunState state, int sig)
{
    ReplayStopEdge edge = replay_take_stop_edge();
    vaddr addr;
    int type;
    bool watched = replay_take_stop_watchpoint(&addr, &type);

    if (edge != REPLAY_STOP_NONE) {
        /* gdb reports "No more reverse-execution history." */
        g_string_append(reason, edge == REPLAY_STOP_BEGIN ?
                        "replaylog:begin;" : "replaylog:end;");
        return GDB_SIGNAL_TRAP;
    }
    if (state != RUN_STATE_DEBUG) {
        return sig;
    }
    if (watched) {
        g_string_append_printf(reason, "%swatch:%" VADDR_PRIx ";",
                               type == GDB_WATCHPOINT_READ ? "r" :
                               type == GDB_WATCHPOINT_ACCESS ? "a" : "",
                               addr);
    } else {
        gdb_append_breakpoint_reason(reason, cpu);
    }
    return sig;
}

/*
 * The gdb numbers of the PC, SP and frame pointer among the CPU's core
 * registers, found by name; -1 when the architecture has no such name.
 */
static void gdb_find_expedited_registers(CPUState *cpu, int regs[3])
{
    static const char *const names[3][5] = {
        { "pc", "rip", "eip", NULL },
        { "sp", "rsp", "esp", NULL },
        { "fp", "rbp", "ebp", "x29", NULL },
    };
    static const CPUClass *cached_cc;
    static int cached[3];
    g_autoptr(GArray) list = NULL;

    if (cached_cc == cpu->cc) {
        memcpy(regs, cached, sizeof(cached));
        return;
    }
    list = gdb_get_register_list(cpu);
    for (int r = 0; r < 3; r++) {
        cached[r] = -1;
        for (int n = 0; names[r][n] && cached[r] < 0; n++) {
            for (guint i = 0; i < list->len; i++) {
                GDBRegDesc *d = &g_array_index(list, GDBRegDesc, i);

                /* Only registers of the 'g' packet: gdb always knows them. */
                if (d->gdb_reg < cpu->gdb_num_g_regs && d->name &&
                    !strcmp(d->name, names[r][n])) {
                    cached[r] = d->gdb_reg;
                    break;
                }
            }
        }
    }
    cached_cc = cpu->cc;
    memcpy(regs, cached, sizeof(cached));
}

void gdb_stop_append_registers(GString *buf, CPUState *cpu)
{
    g_autoptr(GByteArray) value = g_byte_array_new();
    int regs[3];

    cpu_synchronize_state(cpu);
    gdb_find_expedited_registers(cpu, regs);
    for (int r = 0; r < 3; r++) {
        int len;

        if (regs[r] < 0) {
            continue;
        }
        g_byte_array_set_size(value, 0);
        /* As a 'p' packet would answer: target byte order, gdb's size */
        len = gdb_read_register(cpu, value, regs[r]);
        if (len <= 0 || len > value->len) {
            continue;
        }
        g_string_append_printf(buf, "%02x:", regs[r]);
        for (int i = 0; i < len; i++) {
            g_string_append_c(buf, tohex(value->data[i] >> 4));
            g_string_append_c(buf, tohex(value->data[i] & 0xf));
        }
        g_string_append_c(buf, ';');
    }
}
