/*
 * QEMU Rewind: stubs for builds without record/replay
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "system/replay-wait.h"

bool replay_release_for_cpu_wait(void)
{
    return false;
}

void replay_reacquire_after_cpu_wait(bool released)
{
}
