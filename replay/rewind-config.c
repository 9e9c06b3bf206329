/*
 * QEMU Rewind: checkpoint settings from the -icount option
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "qemu/option.h"
#include "rewind-internal.h"

/*
 * rrcheckpoints=on|off      in-memory checkpoints during replay (on)
 * rrcheckpoint-mem=SIZE     their memory budget (guest RAM size)
 * rrcheckpoint-interval=MS  replay time between them near the present (50)
 * rrpersist=SECONDS         while recording, save a checkpoint with the log
 *                           every SECONDS of guest time (0: never)
 * rrdigest=N                while recording, log a digest of the machine
 *                           every N million instructions (100; 0: never),
 *                           which the replay checks
 * rrstall=SECONDS           a replay that makes no progress for SECONDS
 *                           (10; 0: wait forever) stops with an error
 */
void rewind_configure(QemuOpts *opts)
{
    rewind_config.enabled = qemu_opt_get_bool(opts, "rrcheckpoints", true);
    rewind_config.mem_budget = qemu_opt_get_size(opts, "rrcheckpoint-mem", 0);
    rewind_config.interval_ms =
        qemu_opt_get_number(opts, "rrcheckpoint-interval",
                            rewind_config.interval_ms);
    rewind_config.persist_period_s =
        qemu_opt_get_number(opts, "rrpersist", 0);
    rewind_config.digest_period_minsn =
        qemu_opt_get_number(opts, "rrdigest", 100);
    rewind_config.stall_s = qemu_opt_get_number(opts, "rrstall", 10);
    if (rewind_config.digest_period_minsn < 0 || rewind_config.stall_s < 0) {
        error_report("rrdigest and rrstall must be positive numbers, "
                     "or 0 to disable");
        exit(1);
    }
    if (rewind_config.interval_ms <= 0) {
        error_report("rrcheckpoint-interval must be a positive number of "
                     "milliseconds");
        exit(1);
    }
    if (rewind_config.persist_period_s < 0) {
        error_report("rrpersist must be a number of seconds, 0 to disable");
        exit(1);
    }
}
