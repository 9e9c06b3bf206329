/*
 * QEMU Rewind: checkpoints saved with a recording
 *
 * With rrpersist=SECONDS, recording writes a checkpoint every SECONDS of
 * guest time into FILE.ckpt next to the log FILE: device state and the
 * RAM pages written since the previous one (the first has all of them).
 * A last one is written when the guest powers off or panics (the VM
 * stops there, under -no-shutdown), so that going to the end of a
 * recording, where the bug usually is, needs no replay at all.
 * A replay maps the file and adds them to its timeline, so it can seek
 * anywhere without replaying from the start.
 *
 * File: magic, page size, RAM layout; then records, each a header, the
 * device state, the page tables and page-aligned page data.  A record's
 * size is filled in once it is complete, so a recording killed half-way
 * leaves a file whose complete records are still usable.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <sys/mman.h>
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qapi/error.h"
#include "exec/target_page.h"
#include "migration/savevm.h"
#include "system/cpus.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "replay-internal.h"
#include "rewind-internal.h"
#include "rewind-log.h"

static const char persist_magic[8] = "QRWCKPT1";
#define PERSIST_RECORD_MAGIC 0x3143455243575251ULL  /* "QRWCREC1" */

typedef struct PersistRecordHeader {
    uint64_t magic;
    uint64_t icount;
    uint64_t devices_size;
    uint64_t total_size;        /* whole record; 0 while being written */
} PersistRecordHeader;

static FILE *persist_file;
static QEMUTimer *persist_timer;
static int64_t persist_due_ns;
static int persist_written;
static uint64_t persist_last_icount;

char *rewind_persist_filename(void)
{
    return g_strdup_printf("%s.ckpt", replay_get_filename());
}

static bool persist_write(bool full, Error **errp)
{
    PersistRecordHeader h = { .magic = PERSIST_RECORD_MAGIC };
    g_autofree uint8_t *devices = NULL;
    size_t devices_size;
    RewindPages *pages;
    long start, end;
    bool ok;

    /*
     * The log must hold every instruction before this point, in a chunk
     * on disk: a replay of a killed recording can only use checkpoints
     * that its log reaches.
     */
    replay_save_instructions();
    rewind_log_flush();
    h.icount = replay_get_current_icount();
    if (persist_written && h.icount == persist_last_icount) {
        return true;    /* this instant is saved already */
    }
    if (!rewind_save_devices(&devices, &devices_size, errp)) {
        return false;
    }
    h.devices_size = devices_size;
    pages = rewind_ram_capture(full);

    start = ftell(persist_file);
    ok = start >= 0 &&
         fwrite(&h, sizeof(h), 1, persist_file) == 1 &&
         fwrite(devices, 1, devices_size, persist_file) == devices_size &&
         rewind_ram_write(pages, persist_file, errp);
    rewind_ram_free(pages);
    end = ok ? ftell(persist_file) : -1;
    if (ok && end > start) {
        h.total_size = ROUND_UP(end - start, qemu_target_page_size());
        ok = fseek(persist_file, start + offsetof(PersistRecordHeader,
                                                  total_size),
                   SEEK_SET) == 0 &&
             fwrite(&h.total_size, sizeof(h.total_size), 1,
                    persist_file) == 1 &&
             fseek(persist_file, start + h.total_size, SEEK_SET) == 0 &&
             fflush(persist_file) == 0;
    }
    if (!ok) {
        if (errp && !*errp) {
            error_setg_errno(errp, errno, "could not write a checkpoint");
        }
        return false;
    }
    persist_written++;
    persist_last_icount = h.icount;
    return true;
}

static void persist_arm(void)
{
    timer_mod(persist_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 20);
}

static void persist_tick(void *opaque)
{
    Error *err = NULL;

    if (!runstate_is_running() ||
        qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) < persist_due_ns) {
        persist_arm();
        return;
    }
    if (rewind_quiescent()) {
        pause_all_vcpus();
        if (rewind_quiescent()) {
            if (!persist_write(false, &err)) {
                error_report_err(err);
                warn_report("rewind: no more checkpoints are saved with "
                            "this recording");
                resume_all_vcpus();
                return;
            }
            persist_due_ns += rewind_config.persist_period_s *
                              NANOSECONDS_PER_SECOND;
        }
        resume_all_vcpus();
    }
    persist_arm();
}

/* The guest's last instant: the vCPUs are stopped already. */
static void persist_at_stop(void *opaque, bool running, RunState state)
{
    Error *err = NULL;

    if (running || !persist_file ||
        (state != RUN_STATE_SHUTDOWN && state != RUN_STATE_GUEST_PANICKED)) {
        return;
    }
    if (!rewind_quiescent()) {
        return;
    }
    if (!persist_write(false, &err)) {
        error_report_err(err);
    }
}

void rewind_persist_record_start(void)
{
    g_autofree char *fname = rewind_persist_filename();
    uint32_t page_size = qemu_target_page_size();
    Error *err = NULL;

    if (rewind_config.persist_period_s <= 0) {
        /* A stale file would not match the new log. */
        unlink(fname);
        return;
    }
    if (qemu_savevm_state_blocked(&err)) {
        error_report_err(err);
        error_report("rrpersist: a device cannot be saved, so checkpoints "
                     "cannot be recorded");
        exit(1);
    }
    if (!rewind_ram_start(&err)) {
        error_report_err(err);
        exit(1);
    }
    persist_file = fopen(fname, "w+b");
    if (!persist_file) {
        error_report("rrpersist: cannot create '%s': %s", fname,
                     strerror(errno));
        exit(1);
    }
    if (fwrite(persist_magic, sizeof(persist_magic), 1, persist_file) != 1 ||
        fwrite(&page_size, sizeof(page_size), 1, persist_file) != 1 ||
        !rewind_ram_write_layout(persist_file, &err) ||
        fseek(persist_file, ROUND_UP(ftell(persist_file), page_size),
              SEEK_SET) < 0 ||
        !persist_write(true, &err)) {
        error_report_err(err);
        error_report("rrpersist: cannot write '%s'", fname);
        exit(1);
    }
    persist_due_ns = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL) +
                     rewind_config.persist_period_s * NANOSECONDS_PER_SECOND;
    persist_timer = timer_new_ms(QEMU_CLOCK_REALTIME, persist_tick, NULL);
    persist_arm();
    qemu_add_vm_change_state_handler(persist_at_stop, NULL);
}

static bool persist_parse(const uint8_t *buf, size_t len, Error **errp)
{
    size_t pos = sizeof(persist_magic) + sizeof(uint32_t);
    uint64_t last = 0;
    int loaded = 0;

    if (len < pos || memcmp(buf, persist_magic, sizeof(persist_magic))) {
        error_setg(errp, "not a QEMU Rewind checkpoint file");
        return false;
    }
    if (*(const uint32_t *)(buf + sizeof(persist_magic)) !=
        qemu_target_page_size()) {
        error_setg(errp, "checkpoints were saved with another page size");
        return false;
    }
    if (!rewind_ram_check_layout(buf, len, &pos, errp)) {
        return false;
    }
    pos = ROUND_UP(pos, qemu_target_page_size());
    while (pos + sizeof(PersistRecordHeader) <= len) {
        const PersistRecordHeader *h = (const void *)(buf + pos);
        size_t at = pos + sizeof(*h) + h->devices_size;
        RewindCheckpoint *c;

        if (h->magic != PERSIST_RECORD_MAGIC || h->total_size == 0 ||
            h->total_size > len - pos || h->devices_size > h->total_size) {
            warn_report("rewind: ignoring an incomplete checkpoint at "
                        "offset %zu of the checkpoint file", pos);
            break;
        }
        if (h->icount <= last && loaded) {
            error_setg(errp, "checkpoints out of order at offset %zu", pos);
            return false;
        }
        last = h->icount;
        if (h->icount > rewind_first()->icount) {
            c = g_new0(RewindCheckpoint, 1);
            c->icount = h->icount;
            c->devices = (uint8_t *)(buf + pos + sizeof(*h));
            c->devices_size = h->devices_size;
            c->pages = rewind_ram_map(buf, pos + h->total_size, &at, errp);
            if (!c->pages) {
                g_free(c);
                return false;
            }
            rewind_insert_persisted(c);
        }
        loaded++;
        pos += h->total_size;
    }
    return true;
}

/*
 * The file stays mapped for the life of the replay: the checkpoints'
 * pages and device states point into it.
 */
void rewind_persist_load(void)
{
    g_autofree char *fname = rewind_persist_filename();
    Error *err = NULL;
    struct stat st;
    void *buf;
    int fd;

    fd = open(fname, O_RDONLY);
    if (fd < 0) {
        if (errno != ENOENT) {
            warn_report("rewind: cannot open '%s': %s", fname,
                        strerror(errno));
        }
        return;
    }
    if (fstat(fd, &st) < 0 || st.st_size == 0) {
        close(fd);
        return;
    }
    buf = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (buf == MAP_FAILED) {
        warn_report("rewind: cannot map '%s': %s", fname, strerror(errno));
        return;
    }
    if (!persist_parse(buf, st.st_size, &err)) {
        error_prepend(&err, "'%s': ", fname);
        error_report_err(err);
        error_report("rewind: the recording's checkpoints do not fit this "
                     "replay");
        exit(1);
    }
}
