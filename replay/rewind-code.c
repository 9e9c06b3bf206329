/*
 * QEMU Rewind: translated code of guest RAM that a restore rewrites
 *
 * A restore writes guest RAM behind TCG's back.  Instead of flushing all
 * translated code, as a snapshot load does, it drops the code of the
 * pages it rewrote: the rest of the code cache stays valid, and the
 * replay after a reverse step does not translate everything again.
 * Target-specific only because the TB interface is.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "exec/exec-all.h"
#include "system/tcg.h"
#include "rewind-internal.h"

void rewind_invalidate_code(ram_addr_t start, ram_addr_t last)
{
    if (tcg_enabled()) {
        tb_invalidate_phys_range(start, last);
    }
}
