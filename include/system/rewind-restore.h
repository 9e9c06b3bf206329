/*
 * QEMU Rewind: what device loaders need to know about a checkpoint restore
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_REWIND_RESTORE_H
#define SYSTEM_REWIND_RESTORE_H

/*
 * True while a checkpoint restore loads the device state.  The restore
 * has already dropped the translated code of every page of guest RAM it
 * rewrote, so a loader need not flush all translated code (which would
 * make the replay after every reverse step translate everything again).
 */
bool rewind_restoring(void);

#endif
