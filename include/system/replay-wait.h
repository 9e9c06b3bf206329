/*
 * QEMU Rewind: blocking on a vCPU thread while holding the replay mutex
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_REPLAY_WAIT_H
#define SYSTEM_REPLAY_WAIT_H

/*
 * A vCPU thread must take the replay mutex before it can pick up queued
 * work (see rr_cpu_thread_fn()). A thread that waits for such work while
 * holding the replay mutex, as the main loop does when loading a snapshot
 * for reverse debugging, would wait forever.
 *
 * Call replay_release_for_cpu_wait() with the BQL held, just before
 * waiting; it drops the replay mutex if this thread holds it and says
 * whether it did. Pass that to replay_reacquire_after_cpu_wait() once the
 * wait is over, still with the BQL held: it takes the replay mutex back in
 * the required order (replay mutex, then BQL).
 */
bool replay_release_for_cpu_wait(void);
void replay_reacquire_after_cpu_wait(bool released);

#endif /* SYSTEM_REPLAY_WAIT_H */
