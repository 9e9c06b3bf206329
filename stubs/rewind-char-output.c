/*
 * QEMU Rewind: stubs for builds without record/replay
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "system/replay.h"

void replay_char_output_save(Chardev *s, const uint8_t *buf, int len)
{
}

void replay_char_output_check(Chardev *s, const uint8_t *buf, int len)
{
}
