/*
 * QEMU Rewind: the armed timers of a timer list
 *
 * A checkpoint restore must leave the virtual clock's timers as they were
 * when the checkpoint was taken: device post_load hooks written for
 * migration re-arm timers "from now" or start ones that were not running.
 * Checkpoints therefore carry the armed timers, and the restore-fidelity
 * checker compares them.  Declared here, not in qemu/timer.h, so that the
 * hook stays out of a header every file includes.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef QEMU_TIMER_ARMED_H
#define QEMU_TIMER_ARMED_H

#include "qemu/timer.h"

/*
 * Call fn(ts, opaque) with each armed timer of timer_list, earliest
 * first.  fn runs under the list's lock: it must not arm or delete timers.
 */
typedef void QEMUTimerVisitFn(QEMUTimer *ts, void *opaque);
void timerlist_foreach_armed(QEMUTimerList *timer_list,
                             QEMUTimerVisitFn *fn, void *opaque);

#endif
