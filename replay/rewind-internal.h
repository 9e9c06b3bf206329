/*
 * QEMU Rewind: checkpoints and reverse execution, shared declarations
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef REPLAY_REWIND_INTERNAL_H
#define REPLAY_REWIND_INTERNAL_H

#include "qemu/queue.h"
#include "qemu/timer.h"
#include "exec/vaddr.h"
#include "exec/cpu-common.h"

/*
 * Guest RAM of one checkpoint: for every tracked RAM block, the pages
 * written since the previous checkpoint of the timeline (or all pages,
 * for the oldest one), with their content at this checkpoint.
 */
typedef struct RewindPages RewindPages;

/* The machine's armed virtual-clock timers at one instant. */
typedef struct RewindTimers RewindTimers;

/* One saved machine state on the replay timeline. */
typedef struct RewindCheckpoint {
    uint64_t icount;
    int64_t taken_ns;           /* host realtime when taken */
    bool persisted;             /* came from the recording's file */
    uint8_t *devices;           /* device state, QEMUFile stream */
    size_t devices_size;
    RewindPages *pages;
    RewindTimers *timers;       /* NULL when persisted */
    QTAILQ_ENTRY(RewindCheckpoint) next;
} RewindCheckpoint;

typedef QTAILQ_HEAD(, RewindCheckpoint) RewindCheckpointList;

/* Settings, from -icount suboptions. */
typedef struct RewindConfig {
    bool enabled;               /* rrcheckpoints=on|off */
    uint64_t mem_budget;        /* rrcheckpoint-mem=SIZE, 0: guest RAM */
    int64_t interval_ms;        /* rrcheckpoint-interval=MS of replay */
    int64_t persist_period_s;   /* rrpersist=SECONDS of guest time */
    int64_t digest_period_minsn; /* rrdigest=MILLIONS of instructions */
    int64_t stall_s;            /* rrstall=SECONDS without progress */
} RewindConfig;

extern RewindConfig rewind_config;

/* rewind-code.c: translated code of RAM a restore rewrote (last inclusive) */
void rewind_invalidate_code(ram_addr_t start, ram_addr_t last);

/* rewind-ram.c: page-granular guest RAM, tracked through dirty logging */
bool rewind_ram_start(Error **errp);
void rewind_ram_stop(void);
uint64_t rewind_ram_guest_bytes(void);
RewindPages *rewind_ram_capture(bool full);
void rewind_ram_free(RewindPages *pages);
uint64_t rewind_ram_bytes(const RewindPages *pages);
uint64_t rewind_ram_page_count(const RewindPages *pages);
void rewind_ram_merge_into(RewindPages *older, RewindPages *newer);
void rewind_ram_mark_dirty(const RewindPages *pages);
/* chain[0..n-1] in timeline order; chain[0] is complete. */
uint64_t rewind_ram_restore(RewindPages **chain, int n, int from, int to);

bool rewind_ram_write_layout(FILE *f, Error **errp);
bool rewind_ram_check_layout(const uint8_t *buf, size_t len, size_t *pos,
                             Error **errp);
bool rewind_ram_write(const RewindPages *pages, FILE *f, Error **errp);
RewindPages *rewind_ram_map(const uint8_t *buf, size_t len, size_t *pos,
                            Error **errp);

/* rewind-timers.c: the machine's armed timers, put back by a restore */
RewindTimers *rewind_timers_capture(void);
void rewind_timers_free(RewindTimers *t);
/* Make the armed timers what t says; returns how many it changed. */
int rewind_timers_impose(const RewindTimers *t);
/* fn(timer, expiry) for each armed machine timer, earliest first. */
void rewind_timers_foreach(void (*fn)(QEMUTimer *ts, int64_t expire,
                                      void *opaque), void *opaque);

/* rewind-checkpoint.c: the timeline of checkpoints */
bool rewind_save_devices(uint8_t **data, size_t *size, Error **errp);
void rewind_insert_persisted(RewindCheckpoint *c);
bool rewind_active(void);
bool rewind_quiescent(void);
bool rewind_can_checkpoint(void);
RewindCheckpoint *rewind_take_checkpoint(Error **errp);
bool rewind_restore(RewindCheckpoint *ckpt, Error **errp);
RewindCheckpoint *rewind_find_before(uint64_t icount);
RewindCheckpoint *rewind_first(void);
RewindCheckpoint *rewind_current(void);
void rewind_note_position(void);
void rewind_thin(void);
uint64_t rewind_memory_used(void);
uint64_t rewind_memory_budget(void);
int rewind_checkpoint_count(void);
RewindCheckpointList *rewind_checkpoints(void);
void rewind_set_dense(bool dense);
void rewind_placement_stats(uint64_t *taken, int64_t *ns);
void rewind_checkpoints_init(void);

/* rewind-timeline.c: moving the replay to an instruction count */
void rewind_break(uint64_t icount, QEMUTimerCB callback, void *opaque);
void rewind_delete_break(void);
bool rewind_goto(uint64_t icount, QEMUTimerCB callback, Error **errp);
bool rewind_seek(uint64_t icount, Error **errp);
void rewind_note_hit(uint64_t icount, bool watch, vaddr addr, int type);

/* rewind-watch.c: write watchpoints that change the value */
void rewind_watch_reset(void);
void rewind_watch_finish(void);

/* rewind-persist.c: checkpoints saved with a recording */
void rewind_persist_record_start(void);
void rewind_persist_load(void);
char *rewind_persist_filename(void);

/* rewind-block.c: guest disk writes, to take them back */
bool rewind_block_restore(uint64_t from, uint64_t to, Error **errp);
uint64_t rewind_block_journal_bytes(void);
bool rewind_block_busy(void);

/* rewind-config.c */
void rewind_configure(QemuOpts *opts);

#endif
