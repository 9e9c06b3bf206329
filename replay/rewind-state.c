/*
 * QEMU Rewind: the machine's whole state, digested, for comparing instants
 *
 * A checkpoint restore must give back exactly the machine that was saved:
 * the restore-fidelity checker (rewind check-restores) replays to an
 * instruction count once straight and once through a restore, and
 * compares what query-rewind-state says at both.  It digests each RAM
 * block (and each MiB of it), each section of the device state as a
 * checkpoint saves it, vCPUs included, and the armed timers of the
 * virtual clock (which no section holds).  With "fields" it also returns each
 * section's bytes and the migration stream's description of its fields,
 * so that the checker can name the first field that differs.
 *
 * The digest is a 64-bit hash of our own (four multiply-rotate lanes),
 * fast enough for gigabytes of RAM at every compared instant; it only has
 * to tell different states apart, not resist an adversary.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "qemu/units.h"
#include "qapi/error.h"
#include "qapi/qapi-commands-replay.h"
#include "qobject/qdict.h"
#include "monitor/hmp.h"
#include "monitor/monitor.h"
#include "exec/ramblock.h"
#include "exec/ramlist.h"
#include "migration/savevm.h"
#include "migration/global_state.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "rewind-internal.h"

#define STATE_CHUNK     MiB

static const uint64_t lane_seed[4] = {
    0x9e3779b97f4a7c15ULL, 0xc2b2ae3d27d4eb4fULL,
    0x165667b19e3779f9ULL, 0x27d4eb2f165667c5ULL,
};
#define MIX_PRIME 0x9fb21c651e98df25ULL

static inline uint64_t mix_word(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= MIX_PRIME;
    return (h << 31) | (h >> 33);
}

static uint64_t state_hash(const uint8_t *p, size_t len)
{
    uint64_t h[4] = { lane_seed[0], lane_seed[1], lane_seed[2],
                      lane_seed[3] };
    uint64_t tail = 0, r;
    size_t i = 0;

    for (; i + 32 <= len; i += 32) {
        h[0] = mix_word(h[0], ldq_le_p(p + i));
        h[1] = mix_word(h[1], ldq_le_p(p + i + 8));
        h[2] = mix_word(h[2], ldq_le_p(p + i + 16));
        h[3] = mix_word(h[3], ldq_le_p(p + i + 24));
    }
    for (; i < len; i++) {
        tail = (tail << 8) | p[i];
        if ((i & 7) == 7) {
            h[0] = mix_word(h[0], tail);
            tail = 0;
        }
    }
    r = len;
    r = mix_word(r, h[0]);
    r = mix_word(r, h[1]);
    r = mix_word(r, h[2]);
    r = mix_word(r, h[3]);
    r = mix_word(r, tail);
    r ^= r >> 29;
    r *= MIX_PRIME;
    return r ^ (r >> 32);
}

static char *hash_hex(uint64_t h)
{
    return g_strdup_printf("%016" PRIx64, h);
}

typedef struct StateWalk {
    bool fields;
    RewindRamBlockList **ram;
    RewindStateSectionList **sections;
    RewindTimerList **timers;
} StateWalk;

static void add_section(void *opaque, const char *idstr, uint32_t instance,
                        const uint8_t *data, size_t size,
                        const char *description)
{
    StateWalk *w = opaque;
    RewindStateSection *s = g_new0(RewindStateSection, 1);

    s->id = g_strdup(idstr);
    s->instance = instance;
    s->size = size;
    s->digest = hash_hex(state_hash(data, size));
    if (w->fields) {
        s->data = g_base64_encode(data, size);
        s->description = g_strdup(description);
    }
    QAPI_LIST_APPEND(w->sections, s);
}

static int add_ram_block(RAMBlock *rb, void *opaque)
{
    StateWalk *w = opaque;
    uint8_t *host = qemu_ram_get_host_addr(rb);
    uint64_t len = qemu_ram_get_used_length(rb);
    RewindRamBlock *b;
    GString *chunks = NULL;
    uint64_t off, whole = 0;

    if (!qemu_ram_is_migratable(rb)) {
        return 0;
    }
    b = g_new0(RewindRamBlock, 1);
    b->name = g_strdup(qemu_ram_get_idstr(rb));
    b->size = len;
    if (w->fields) {
        chunks = g_string_new(NULL);
    }
    for (off = 0; off < len; off += STATE_CHUNK) {
        uint64_t h = state_hash(host + off, MIN(STATE_CHUNK, len - off));

        whole = mix_word(whole, h);
        if (chunks) {
            g_string_append_printf(chunks, "%016" PRIx64, h);
        }
    }
    b->digest = hash_hex(whole);
    if (chunks) {
        b->chunks = g_string_free(chunks, false);
    }
    QAPI_LIST_APPEND(w->ram, b);
    return 0;
}

static void add_timer(QEMUTimer *ts, int64_t expire, void *opaque)
{
    StateWalk *w = opaque;
    RewindTimer *t = g_new0(RewindTimer, 1);

    t->callback = g_strdup_printf("0x%" PRIxPTR, (uintptr_t)ts->cb);
    t->expire = expire;
    QAPI_LIST_APPEND(w->timers, t);
}

RewindState *qmp_query_rewind_state(bool has_fields, bool fields,
                                    Error **errp)
{
    g_autoptr(RewindState) st = g_new0(RewindState, 1);
    StateWalk w = {
        .fields = has_fields && fields,
        .ram = &st->ram,
        .sections = &st->sections,
        .timers = &st->timers,
    };

    if (replay_mode != REPLAY_MODE_PLAY) {
        error_setg(errp, "the machine's state is digested only in a replay");
        return NULL;
    }
    if (runstate_is_running()) {
        error_setg(errp, "stop the replay first (its state changes while "
                   "it runs)");
        return NULL;
    }
    st->icount = replay_get_current_icount();
    st->clock = qemu_clock_get_ns(QEMU_CLOCK_VIRTUAL);
    RCU_READ_LOCK_GUARD();
    qemu_ram_foreach_block(add_ram_block, &w);
    /* As rewind_save_devices() does: the run state is part of it. */
    global_state_store();
    if (qemu_save_device_sections(add_section, &w, w.fields, errp)) {
        return NULL;
    }
    rewind_timers_foreach(add_timer, &w);
    return g_steal_pointer(&st);
}

void hmp_info_rewind_state(Monitor *mon, const QDict *qdict)
{
    Error *err = NULL;
    g_autoptr(RewindState) st = qmp_query_rewind_state(false, false, &err);
    RewindRamBlockList *rb;
    RewindStateSectionList *s;
    RewindTimerList *t;

    if (!st) {
        monitor_printf(mon, "%s\n", error_get_pretty(err));
        error_free(err);
        return;
    }
    monitor_printf(mon, "instruction count %" PRId64 ", virtual clock %"
                   PRId64 " ns\n", st->icount, st->clock);
    for (rb = st->ram; rb; rb = rb->next) {
        monitor_printf(mon, "  ram %-24s %s %" PRId64 " bytes\n",
                       rb->value->name, rb->value->digest, rb->value->size);
    }
    for (s = st->sections; s; s = s->next) {
        monitor_printf(mon, "  %-30s %4" PRId64 " %s %" PRId64 " bytes\n",
                       s->value->id, s->value->instance, s->value->digest,
                       s->value->size);
    }
    for (t = st->timers; t; t = t->next) {
        monitor_printf(mon, "  timer %s expires at %" PRId64 " ns\n",
                       t->value->callback, t->value->expire);
    }
}
