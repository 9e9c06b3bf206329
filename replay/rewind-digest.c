/*
 * QEMU Rewind: divergence detection
 *
 * A replay that does not follow its recording (another kernel, disk image
 * or command line, a damaged log, a bug) used to run on in a wrong state
 * or hang.  Recording logs a digest of the machine every rrdigest million
 * guest instructions: per CPU the program counter, the stack pointer and a
 * hash of the registers; and a hash of a sample of guest RAM that moves on with
 * each digest, so that over time all of RAM is covered.  The replay
 * compares when it reaches the same point of the log, and stops with an
 * error naming the instructions between the last digest that matched and
 * this one.
 *
 * A replay can also stop making progress (the guest waits for something
 * the log never brings); a watchdog turns that into an error too.
 *
 * Digest payload: u8 version, u32 sequence number, u8 flags (RAM hash
 * present), u32 CPU count, per CPU u64 pc, u64 sp, u32 register hash,
 * then u32 RAM sample hash; from version 2, u32 device section count and
 * per section u32 name hash, u32 state hash (rewind-digest-devices.c).
 * The replay still reads version 1.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "qemu/error-report.h"
#include "qemu/main-loop.h"
#include "qemu/timer.h"
#include "qemu/units.h"
#include "exec/cpu-common.h"
#include "exec/target_page.h"
#include "hw/core/cpu.h"
#include "system/replay.h"
#include "system/rewind-block.h"
#include "system/runstate.h"
#include "replay-internal.h"
#include "rewind-internal.h"
#include "rewind-log.h"
#include "rewind-digest.h"

#define DIGEST_VERSION      2
#define DIGEST_MAX_DEVICES  65536
#define DIGEST_HAS_RAM      1
/* pages hashed per digest: 256 KiB, a fraction of a millisecond */
#define RAM_SAMPLE_PAGES    64
#define TICK_MS             20
/* serial output logged at the latest once this much has piled up */
#define OUTPUT_BATCH        (64 * KiB)

static QEMUTimer *digest_timer;
static uint64_t digest_due;     /* instruction count */
static uint32_t digest_seq;

/* Replay: the last digest that matched */
static uint64_t ok_icount;
static bool ok_any;

/* Replay watchdog: what progress looked like at the last tick */
static QEMUTimer *stall_timer;
static uint64_t stall_icount;
static int64_t stall_pos;
static int stall_ticks;

G_NORETURN void rewind_diverged(const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_report("replay diverged %s", msg);
    error_printf("The replay no longer reproduces the recording: it was "
                 "started with another kernel, firmware, disk image or "
                 "command line than the recording, its log is damaged, or "
                 "QEMU Rewind has a bug.\n");
    exit(REWIND_EXIT_DIVERGED);
}

/* ---- RAM sample ---- */

typedef struct RamSample {
    uint64_t skip;      /* pages to pass before the sample starts */
    uint64_t left;      /* pages still to hash */
    uint64_t total;
    uint32_t crc;
} RamSample;

static int ram_count(RAMBlock *rb, void *opaque)
{
    RamSample *s = opaque;

    if (qemu_ram_is_migratable(rb)) {
        s->total += qemu_ram_get_used_length(rb) / qemu_target_page_size();
    }
    return 0;
}

static int ram_hash(RAMBlock *rb, void *opaque)
{
    RamSample *s = opaque;
    size_t page = qemu_target_page_size();
    uint64_t pages, n;
    uint8_t *host;

    if (!qemu_ram_is_migratable(rb) || !s->left) {
        return 0;
    }
    pages = qemu_ram_get_used_length(rb) / page;
    if (s->skip >= pages) {
        s->skip -= pages;
        return 0;
    }
    host = qemu_ram_get_host_addr(rb);
    n = MIN(pages - s->skip, s->left);
    s->crc = crc32c(s->crc, host + s->skip * page, n * page);
    s->left -= n;
    s->skip = 0;
    return 0;
}

/* Pages seq * RAM_SAMPLE_PAGES on, wrapping around the end of RAM. */
static uint32_t ram_sample(uint32_t seq)
{
    RamSample s = { 0 };
    uint64_t start;

    qemu_ram_foreach_block(ram_count, &s);
    if (!s.total) {
        return 0;
    }
    start = (uint64_t)seq * RAM_SAMPLE_PAGES % s.total;
    s.crc = 0xffffffff;
    s.skip = start;
    s.left = MIN(RAM_SAMPLE_PAGES, s.total);
    qemu_ram_foreach_block(ram_hash, &s);
    if (s.left) {
        s.skip = 0;
        qemu_ram_foreach_block(ram_hash, &s);
    }
    return s.crc;
}

/* ---- recording ---- */

static void digest_write(void)
{
    /*
     * A block request in flight may have written guest RAM already, or
     * not yet, in the replay: RAM is only comparable without one.
     */
    bool with_ram = !rewind_block_busy();
    g_autoptr(GArray) devices = NULL;
    CPUState *cs;
    uint32_t n = 0;
    guint i;

    CPU_FOREACH(cs) {
        n++;
    }
    /* Before the event: saving must not come between its fields. */
    devices = rewind_device_digests();
    replay_save_instructions();
    rewind_char_output_flush();
    replay_put_event(EVENT_DIGEST);
    replay_put_byte(DIGEST_VERSION);
    replay_put_dword(digest_seq);
    replay_put_byte(with_ram ? DIGEST_HAS_RAM : 0);
    replay_put_dword(n);
    CPU_FOREACH(cs) {
        RewindCpuDigest d;

        rewind_digest_cpu(cs, &d);
        replay_put_qword(d.pc);
        replay_put_qword(d.sp);
        replay_put_dword(d.hash);
    }
    replay_put_dword(with_ram ? ram_sample(digest_seq) : 0);
    replay_put_dword(devices->len);
    for (i = 0; i < devices->len; i++) {
        RewindDeviceDigest *d = &g_array_index(devices, RewindDeviceDigest, i);

        replay_put_dword(d->name);
        replay_put_dword(d->data);
    }
    digest_seq++;
}

/*
 * Runs in the main loop, which holds the replay mutex: the vCPU is
 * outside its execution loop, at an instruction boundary.
 */
static void digest_tick(void *opaque)
{
    uint64_t now = replay_get_current_icount();

    if (runstate_is_running() &&
        (now >= digest_due || rewind_char_output_pending() >= OUTPUT_BATCH)) {
        digest_write();
        digest_due = now + rewind_config.digest_period_minsn * 1000000;
    }
    timer_mod(digest_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + TICK_MS);
}

/* ---- replaying ---- */

/*
 * Device sections whose state differs from the recording's, each said
 * once, as a warning: the CPU, RAM and output checks decide that the
 * replay diverged, and the warning before that error names the device
 * where it began.  (Not fatal on its own yet: a restore of some
 * checkpoints leaves the RTC's state differing, see
 * docs/divergence.rst.)  A machine with other sections than the
 * recording's (another command line) is said once and left to the checks
 * that name the cause better (usb-host's, the CPUs').
 */
static GHashTable *told_devices;

static void check_devices(const RewindDeviceDigest *rec, uint32_t n,
                          uint64_t now)
{
    g_autoptr(GArray) live = rewind_device_digests();
    static bool told;
    uint32_t i, found = 0;

    if (!told_devices) {
        told_devices = g_hash_table_new(NULL, NULL);
    }

    for (i = 0; i < n; i++) {
        found += rewind_device_digest_find(live, rec[i].name) != NULL;
    }
    if (found != n || live->len != n) {
        if (!told) {
            told = true;
            warn_report("replay: the recording's machine had %u device "
                        "state sections, this one has %u, %u of them the "
                        "same: was it started with another command line?",
                        n, live->len, found);
        }
        return;
    }
    for (i = 0; i < n; i++) {
        const RewindDeviceDigest *d = rewind_device_digest_find(live,
                                                                rec[i].name);

        if (d->data != rec[i].data && !g_hash_table_contains(told_devices,
                                          GUINT_TO_POINTER(d->name))) {
            g_hash_table_add(told_devices, GUINT_TO_POINTER(d->name));
            warn_report("replay: between instruction %" PRIu64 " and %"
                        PRIu64 " the state of device '%s' came to differ "
                        "from the recording's", ok_icount, now, d->id);
        }
    }
}

bool rewind_digest_check(void)
{
    CPUState *cs;
    uint32_t seq, n, i = 0, ram;
    uint8_t version, flags;
    RewindCpuDigest *rec;
    RewindDeviceDigest *dev = NULL;
    uint32_t ndev = 0;
    uint64_t now = replay_state.current_icount;

    if (replay_state.data_kind == EVENT_CHAR_OUTPUT) {
        rewind_char_output_compare(ok_icount);
        return true;
    }
    CPU_FOREACH(cs) {
        if (qatomic_read(&cs->running)) {
            return false;
        }
    }
    version = replay_get_byte();
    if (version < 1 || version > DIGEST_VERSION) {
        error_report("replay log: digest of version %u, this QEMU knows "
                     "versions 1 to %d", version, DIGEST_VERSION);
        exit(1);
    }
    seq = replay_get_dword();
    flags = replay_get_byte();
    n = replay_get_dword();
    if (n > 4096) {
        error_report("replay log: a digest of %u CPUs: the log is damaged",
                     n);
        exit(1);
    }
    rec = g_new0(RewindCpuDigest, n);
    for (i = 0; i < n; i++) {
        rec[i].pc = replay_get_qword();
        rec[i].sp = replay_get_qword();
        rec[i].hash = replay_get_dword();
    }
    ram = replay_get_dword();
    if (version >= 2) {
        ndev = replay_get_dword();
        if (ndev > DIGEST_MAX_DEVICES) {
            error_report("replay log: a digest of %u device sections: the "
                         "log is damaged", ndev);
            exit(1);
        }
        dev = g_new0(RewindDeviceDigest, ndev);
        for (i = 0; i < ndev; i++) {
            dev[i].name = replay_get_dword();
            dev[i].data = replay_get_dword();
        }
    }
    replay_finish_event();

    i = 0;
    CPU_FOREACH(cs) {
        RewindCpuDigest d;

        if (i >= n) {
            break;
        }
        rewind_digest_cpu(cs, &d);
        if (d.pc != rec[i].pc || d.sp != rec[i].sp || d.hash != rec[i].hash) {
            rewind_diverged("%s%" PRIu64 " and %" PRIu64 ": CPU %u %s: the "
                            "recording had pc=0x%" PRIx64 " sp=0x%" PRIx64
                            ", the replay has pc=0x%" PRIx64 " sp=0x%"
                            PRIx64, ok_any ? "between instruction " :
                            "between the start (instruction ", ok_icount,
                            now, i, d.pc == rec[i].pc && d.sp == rec[i].sp ?
                            "registers differ" : "is elsewhere",
                            rec[i].pc, rec[i].sp, d.pc, d.sp);
        }
        i++;
    }
    if (i != n) {
        rewind_diverged("at instruction %" PRIu64 ": the recording had %u "
                        "CPUs, the replay has %u", now, n, i);
    }
    if ((flags & DIGEST_HAS_RAM) && ram_sample(seq) != ram) {
        rewind_diverged("%s%" PRIu64 " and %" PRIu64 ": guest RAM differs "
                        "(digest %u, RAM pages from %" PRIu64 ")",
                        ok_any ? "between instruction " :
                        "between the start (instruction ", ok_icount, now,
                        seq, (uint64_t)seq * RAM_SAMPLE_PAGES);
    }
    g_free(rec);
    if (dev) {
        check_devices(dev, ndev, now);
        g_free(dev);
    }
    ok_icount = now;
    ok_any = true;
    return true;
}

/* A restore to instruction icount: the next window starts there. */
void rewind_digest_restored(uint64_t icount)
{
    ok_icount = icount;
    ok_any = true;
}

/*
 * Every second: a running replay whose instruction count and log
 * position stand still is waiting for something that will not come.
 */
static void stall_tick(void *opaque)
{
    uint64_t icount = replay_state.current_icount;
    int64_t pos = rewind_log_tell();

    if (!runstate_is_running() || replay_state.data_kind == EVENT_END ||
        icount != stall_icount || pos != stall_pos) {
        stall_ticks = 0;
    } else if (++stall_ticks >= rewind_config.stall_s) {
        rewind_diverged("at instruction %" PRIu64 ": the replay has made no "
                        "progress for %d s; the log expects %s%s%s next, "
                        "which the guest does not reach",
                        icount, stall_ticks,
                        replay_state.instruction_count ?
                        g_strdup_printf("%d more instructions",
                                        replay_state.instruction_count) :
                        replay_event_name(replay_state.data_kind),
                        replay_state.instruction_count ? " before " : "",
                        replay_state.instruction_count ?
                        "its next event" : "");
    }
    stall_icount = icount;
    stall_pos = pos;
    timer_mod(stall_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1000);
}

void rewind_digest_start(void)
{
    if (replay_mode == REPLAY_MODE_RECORD &&
        rewind_config.digest_period_minsn) {
        digest_timer = timer_new_ms(QEMU_CLOCK_REALTIME, digest_tick, NULL);
        digest_due = 0;
        timer_mod(digest_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME));
    } else if (replay_mode == REPLAY_MODE_PLAY && rewind_config.stall_s) {
        stall_timer = timer_new_ms(QEMU_CLOCK_REALTIME, stall_tick, NULL);
        timer_mod(stall_timer, qemu_clock_get_ms(QEMU_CLOCK_REALTIME) + 1000);
    }
}
