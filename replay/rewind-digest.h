/*
 * QEMU Rewind: divergence digests
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef REPLAY_REWIND_DIGEST_H
#define REPLAY_REWIND_DIGEST_H

#include "hw/core/cpu.h"

typedef struct RewindCpuDigest {
    uint64_t pc;
    uint64_t sp;
    uint32_t hash;
} RewindCpuDigest;

/* rewind-digest-cpu.c (target-specific) */
void rewind_digest_cpu(CPUState *cs, RewindCpuDigest *d);

/* rewind-digest-devices.c: one entry per device state section */
typedef struct RewindDeviceDigest {
    uint32_t name;      /* CRC-32C of "idstr#instance" */
    uint32_t data;      /* CRC-32C of the section's bytes */
    char *id;           /* for messages */
} RewindDeviceDigest;
/* The live machine's, in save order; g_array_unref() frees them. */
GArray *rewind_device_digests(void);
const RewindDeviceDigest *rewind_device_digest_find(GArray *digests,
                                                    uint32_t name);

/* Recording: digests begin; replaying: the stall watchdog begins. */
void rewind_digest_start(void);
/*
 * Replaying, with EVENT_DIGEST or EVENT_CHAR_OUTPUT next in the log:
 * checks it against the machine and exits with an error naming what
 * differs.  Returns false, leaving the event, when a CPU is inside its
 * execution loop and its state cannot be read whole.
 */
bool rewind_digest_check(void);
/*
 * Replaying: a checkpoint at icount was restored; a divergence found next
 * is said to lie after it (the state was the checkpoint's there).
 */
void rewind_digest_restored(uint64_t icount);

/* rewind-char-output.c: bytes the guest wrote, checked in batches */
size_t rewind_char_output_pending(void);
/* Recording: logs the batches, before a digest */
void rewind_char_output_flush(void);
/* Replaying, with EVENT_CHAR_OUTPUT next: compares, or exits */
void rewind_char_output_compare(uint64_t since_icount);
/* Replaying: a checkpoint restore; the batches in progress are cut */
void rewind_char_output_restored(void);

/* Exit status of a replay that stops because it diverged */
#define REWIND_EXIT_DIVERGED 3
/* Reports that the replay does not follow its log, and exits. */
G_NORETURN void rewind_diverged(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

#endif
