/*
 * QEMU Rewind: what device loaders need to know about a checkpoint restore
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_REWIND_RESTORE_H
#define SYSTEM_REWIND_RESTORE_H

/*
 * True while a checkpoint restore resets the machine and then loads the
 * device state.  A restore is the same machine a moment earlier, not one
 * arriving from another host: reset and post_load hooks must not act
 * outside the machine (write ROM blobs to RAM, talk to a host device),
 * announce, or re-arm timers from "now" (the restore puts the armed
 * timers back itself).  By the time devices load, the restore has
 * dropped the translated code of every page of guest RAM it rewrote, so
 * a loader need not flush all translated code (which would make the
 * replay after every reverse step translate everything again).
 */
bool rewind_restoring(void);

/*
 * Called by a loader while rewind_restoring(): run fn(opaque) once every
 * device is loaded, before the guest runs again.  For work a migration
 * would put off to a timer (xhci fetching the transfers that were in
 * flight again): in a replay a timer runs only where the log says, and
 * the restored machine must be whole before the next logged event.
 */
void rewind_after_restore(void (*fn)(void *opaque), void *opaque);

/*
 * State a checkpoint cannot carry (usb-host's isochronous rings): no
 * checkpoint is taken while holds are taken.  delta is +1 or -1.
 */
void rewind_hold_checkpoints(int delta);

#endif
