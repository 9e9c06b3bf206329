/*
 * QEMU Rewind: the replay log file, format 2
 *
 * replay-internal.c reads and writes the log as a byte stream; this is
 * the file underneath.  Recording writes format 2: zstd-compressed
 * chunks cut at event boundaries, each with its first instruction count
 * and checksums, then an index and a trailer when the recording ends.
 * Replaying reads format 2, or upstream's raw format (1) as it is.
 *
 * Positions (rewind_log_tell/seek) are offsets in the uncompressed
 * stream, header included, i.e. what they would be in a format 1 file;
 * checkpoints store them.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef REPLAY_REWIND_LOG_H
#define REPLAY_REWIND_LOG_H

/* Takes over @f (opened by replay_enable) and handles the header. */
void rewind_log_open(FILE *f, const char *fname, bool record);
/* Recording: writes the last chunk, the index and the trailer. */
void rewind_log_close(void);

/* Recording */
void rewind_log_put(const void *buf, size_t len);
/* An event starts: a chunk may end here. */
void rewind_log_event_boundary(void);
/* Ends the current chunk now, so that a crash keeps what came before. */
void rewind_log_flush(void);
bool rewind_log_write_failed(void);

/* Replaying: false at the end of the data */
bool rewind_log_get(void *buf, size_t len);
/* The recording stops at the current position, without EVENT_END. */
bool rewind_log_at_cut_end(void);
/* Replays that end as EVENT_END would, and pauses with a message. */
void rewind_log_reached_cut_end(void);

int64_t rewind_log_tell(void);
void rewind_log_seek(int64_t pos);

#endif
