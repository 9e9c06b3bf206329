/*
 * QEMU Rewind: guest RAM of checkpoints, as page deltas
 *
 * Every checkpoint keeps the pages written since the previous checkpoint
 * of the timeline; the oldest keeps them all.  Writes are found with
 * QEMU's dirty-memory logging, which sees TCG stores and DMA alike.
 * Restoring a checkpoint rewrites only pages that may differ.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/bitmap.h"
#include "qemu/bitops.h"
#include "qemu/cutils.h"
#include "qemu/rcu.h"
#include "qapi/error.h"
#include "exec/memory.h"
#include "exec/cputlb.h"
#include "exec/ramlist.h"
#include "system/tcg.h"
#include "exec/target_page.h"
#include "rewind-internal.h"

/*
 * Dirty logging needs a global flag of its own so that a migration or
 * savevm ending does not switch it off for us.  Dirty-limit is a KVM
 * feature and never runs under TCG, the only accelerator replay has.
 */
#define REWIND_DIRTY_FLAG GLOBAL_DIRTY_LIMIT

typedef struct RewindBlock {
    RAMBlock *rb;
    uint8_t *host;
    ram_addr_t offset;
    uint64_t npages;
    unsigned long *dirty;   /* written since the current checkpoint */
} RewindBlock;

/* Pages of one block in one checkpoint, sorted; NULL data is a zero page */
typedef struct RewindBlockPages {
    uint32_t count;
    uint32_t *page;
    uint8_t **data;
} RewindBlockPages;

struct RewindPages {
    RewindBlockPages *blocks;   /* indexed like rewind_blocks */
};

static RewindBlock *rewind_blocks;
static int rewind_nblocks;
static bool rewind_logging;

static int rewind_count_block(RAMBlock *rb, void *opaque)
{
    GArray *arr = opaque;
    RewindBlock b = { 0 };

    if (!qemu_ram_is_migratable(rb)) {
        return 0;
    }
    b.rb = rb;
    b.host = qemu_ram_get_host_addr(rb);
    b.offset = qemu_ram_get_offset(rb);
    b.npages = qemu_ram_get_used_length(rb) >> qemu_target_page_bits();
    b.dirty = bitmap_new(b.npages);
    g_array_append_val(arr, b);
    return 0;
}

bool rewind_ram_start(Error **errp)
{
    GArray *arr = g_array_new(false, true, sizeof(RewindBlock));

    RCU_READ_LOCK_GUARD();
    qemu_ram_foreach_block(rewind_count_block, arr);
    rewind_nblocks = arr->len;
    rewind_blocks = (RewindBlock *)g_array_free(arr, false);
    if (!memory_global_dirty_log_start(REWIND_DIRTY_FLAG, errp)) {
        return false;
    }
    rewind_logging = true;
    return true;
}

void rewind_ram_stop(void)
{
    if (rewind_logging) {
        memory_global_dirty_log_stop(REWIND_DIRTY_FLAG);
        rewind_logging = false;
    }
}

uint64_t rewind_ram_guest_bytes(void)
{
    uint64_t total = 0;

    for (int i = 0; i < rewind_nblocks; i++) {
        total += rewind_blocks[i].npages << qemu_target_page_bits();
    }
    return total;
}

/*
 * Move the pages that dirty logging saw written into our own bitmaps and
 * clear them there, which also re-arms TCG's trapping of the next write.
 */
static void rewind_ram_harvest_block(RewindBlock *b)
{
    unsigned bits = qemu_target_page_bits();
    ram_addr_t first = b->offset >> bits;
    ram_addr_t end = first + b->npages;
    ram_addr_t page = first;
    DirtyMemoryBlocks *blocks;
    bool cleared = false;

    WITH_RCU_READ_LOCK_GUARD() {
        blocks = qatomic_rcu_read(&ram_list.dirty_memory[
                                      DIRTY_MEMORY_MIGRATION]);
        while (page < end) {
            unsigned long idx = page / DIRTY_MEMORY_BLOCK_SIZE;
            unsigned long ofs = page % DIRTY_MEMORY_BLOCK_SIZE;
            unsigned long *word = blocks->blocks[idx] + ofs / BITS_PER_LONG;
            unsigned shift = ofs % BITS_PER_LONG;
            unsigned long n = MIN(BITS_PER_LONG - shift, end - page);
            unsigned long mask = (n == BITS_PER_LONG ? ~0UL :
                                  ((1UL << n) - 1)) << shift;
            unsigned long got = 0;

            if (qatomic_read(word) & mask) {
                got = (qatomic_fetch_and(word, ~mask) & mask) >> shift;
            }
            while (got) {
                int bit = ctzl(got);

                set_bit(page - first + bit, b->dirty);
                got &= got - 1;
                cleared = true;
            }
            page += n;
        }
    }
    /* TCG traps the next write to a page only once told it is clean. */
    if (cleared && tcg_enabled()) {
        tlb_reset_dirty_range_all(b->offset, b->npages << bits);
    }
}

static void rewind_ram_harvest(void)
{
    for (int i = 0; i < rewind_nblocks; i++) {
        rewind_ram_harvest_block(&rewind_blocks[i]);
    }
}

static uint8_t *rewind_copy_page(const uint8_t *src, size_t size)
{
    if (buffer_is_zero(src, size)) {
        return NULL;
    }
    return g_memdup2(src, size);
}

RewindPages *rewind_ram_capture(bool full)
{
    size_t size = qemu_target_page_size();
    RewindPages *pages = g_new0(RewindPages, 1);

    rewind_ram_harvest();
    pages->blocks = g_new0(RewindBlockPages, rewind_nblocks);
    for (int i = 0; i < rewind_nblocks; i++) {
        RewindBlock *b = &rewind_blocks[i];
        RewindBlockPages *bp = &pages->blocks[i];
        uint64_t n = full ? b->npages : bitmap_count_one(b->dirty, b->npages);
        uint64_t p;

        bp->page = g_new(uint32_t, n);
        bp->data = g_new(uint8_t *, n);
        if (full) {
            for (p = 0; p < b->npages; p++) {
                bp->page[bp->count] = p;
                bp->data[bp->count++] = rewind_copy_page(b->host + p * size,
                                                         size);
            }
        } else {
            for (p = find_first_bit(b->dirty, b->npages); p < b->npages;
                 p = find_next_bit(b->dirty, b->npages, p + 1)) {
                bp->page[bp->count] = p;
                bp->data[bp->count++] = rewind_copy_page(b->host + p * size,
                                                         size);
            }
        }
        bitmap_zero(b->dirty, b->npages);
    }
    return pages;
}

void rewind_ram_free(RewindPages *pages)
{
    if (!pages) {
        return;
    }
    for (int i = 0; i < rewind_nblocks; i++) {
        RewindBlockPages *bp = &pages->blocks[i];

        for (uint32_t j = 0; j < bp->count; j++) {
            g_free(bp->data[j]);
        }
        g_free(bp->page);
        g_free(bp->data);
    }
    g_free(pages->blocks);
    g_free(pages);
}

uint64_t rewind_ram_bytes(const RewindPages *pages)
{
    uint64_t total = sizeof(*pages);

    for (int i = 0; i < rewind_nblocks; i++) {
        const RewindBlockPages *bp = &pages->blocks[i];

        total += bp->count * (sizeof(uint32_t) + sizeof(uint8_t *));
        for (uint32_t j = 0; j < bp->count; j++) {
            if (bp->data[j]) {
                total += qemu_target_page_size();
            }
        }
    }
    return total;
}

uint64_t rewind_ram_page_count(const RewindPages *pages)
{
    uint64_t total = 0;

    for (int i = 0; i < rewind_nblocks; i++) {
        total += pages->blocks[i].count;
    }
    return total;
}

static int64_t rewind_find_page(const RewindBlockPages *bp, uint32_t page)
{
    int64_t lo = 0, hi = (int64_t)bp->count - 1;

    while (lo <= hi) {
        int64_t mid = (lo + hi) / 2;

        if (bp->page[mid] == page) {
            return mid;
        } else if (bp->page[mid] < page) {
            lo = mid + 1;
        } else {
            hi = mid - 1;
        }
    }
    return -1;
}

/*
 * The older checkpoint goes away: the newer one takes over the pages it
 * lacks, whose content it shares since nothing wrote them in between.
 */
void rewind_ram_merge_into(RewindPages *older, RewindPages *newer)
{
    for (int i = 0; i < rewind_nblocks; i++) {
        RewindBlockPages *o = &older->blocks[i];
        RewindBlockPages *n = &newer->blocks[i];
        uint32_t total = o->count + n->count;
        uint32_t *page = g_new(uint32_t, total);
        uint8_t **data = g_new(uint8_t *, total);
        uint32_t a = 0, b = 0, k = 0;

        while (a < o->count || b < n->count) {
            if (b < n->count && (a == o->count || n->page[b] <= o->page[a])) {
                if (a < o->count && o->page[a] == n->page[b]) {
                    g_free(o->data[a++]);
                }
                page[k] = n->page[b];
                data[k++] = n->data[b++];
            } else {
                page[k] = o->page[a];
                data[k++] = o->data[a++];
            }
        }
        g_free(o->page);
        g_free(o->data);
        o->page = NULL;
        o->data = NULL;
        o->count = 0;
        g_free(n->page);
        g_free(n->data);
        n->page = page;
        n->data = data;
        n->count = k;
    }
}

/* The live state now differs from its checkpoint in these pages too. */
void rewind_ram_mark_dirty(const RewindPages *pages)
{
    for (int i = 0; i < rewind_nblocks; i++) {
        const RewindBlockPages *bp = &pages->blocks[i];

        for (uint32_t j = 0; j < bp->count; j++) {
            set_bit(bp->page[j], rewind_blocks[i].dirty);
        }
    }
}

/*
 * Make guest RAM equal to checkpoint chain[to], from a live state that
 * differs from chain[from] only in pages marked dirty.  The pages that
 * may differ are those dirty plus those written between the two
 * checkpoints.  Returns the number of pages rewritten.
 */
uint64_t rewind_ram_restore(RewindPages **chain, int n, int from, int to)
{
    size_t size = qemu_target_page_size();
    int lo = MIN(from, to), hi = MAX(from, to);
    uint64_t written = 0;

    assert(to >= 0 && to < n && from >= 0 && from < n);
    rewind_ram_harvest();
    for (int i = 0; i < rewind_nblocks; i++) {
        RewindBlock *b = &rewind_blocks[i];
        uint64_t p;

        for (int c = lo + 1; c <= hi; c++) {
            const RewindBlockPages *bp = &chain[c]->blocks[i];

            for (uint32_t j = 0; j < bp->count; j++) {
                set_bit(bp->page[j], b->dirty);
            }
        }
        for (p = find_first_bit(b->dirty, b->npages); p < b->npages;
             p = find_next_bit(b->dirty, b->npages, p + 1)) {
            const uint8_t *src = NULL;
            int c;

            /* Code translated from a run of rewritten pages is stale. */
            if (p == 0 || !test_bit(p - 1, b->dirty)) {
                uint64_t end = find_next_zero_bit(b->dirty, b->npages, p);

                rewind_invalidate_code(b->offset + p * size,
                                       b->offset + end * size - 1);
            }

            for (c = to; c >= 0; c--) {
                int64_t k = rewind_find_page(&chain[c]->blocks[i], p);

                if (k >= 0) {
                    src = chain[c]->blocks[i].data[k];
                    break;
                }
            }
            /* The oldest checkpoint lists every page. */
            assert(c >= 0);
            if (src) {
                memcpy(b->host + p * size, src, size);
            } else {
                memset(b->host + p * size, 0, size);
            }
            written++;
        }
        bitmap_zero(b->dirty, b->npages);
    }
    return written;
}

/*
 * On-disk form, for checkpoints persisted with a recording.  The layout
 * (blocks and their sizes) is written once; each checkpoint then has per
 * block a page count, the page numbers and a slot per page (the index of
 * its data, or REWIND_ZERO_SLOT), padding to a page, and the data pages,
 * so that a replay can map the file and use the pages where they lie.
 */
#define REWIND_ZERO_SLOT UINT32_MAX

static bool write_all(FILE *f, const void *buf, size_t len, Error **errp)
{
    if (len && fwrite(buf, 1, len, f) != len) {
        error_setg_errno(errp, errno, "could not write checkpoints");
        return false;
    }
    return true;
}

bool rewind_ram_write_layout(FILE *f, Error **errp)
{
    uint32_t n = rewind_nblocks;

    if (!write_all(f, &n, sizeof(n), errp)) {
        return false;
    }
    for (int i = 0; i < rewind_nblocks; i++) {
        const char *id = qemu_ram_get_idstr(rewind_blocks[i].rb);
        uint64_t npages = rewind_blocks[i].npages;
        uint16_t len = strlen(id);

        if (!write_all(f, &npages, sizeof(npages), errp) ||
            !write_all(f, &len, sizeof(len), errp) ||
            !write_all(f, id, len, errp)) {
            return false;
        }
    }
    return true;
}

static const void *take(const uint8_t *buf, size_t len, size_t *pos,
                        size_t n)
{
    const void *p;

    if (n > len || *pos > len - n) {
        return NULL;
    }
    p = buf + *pos;
    *pos += n;
    return p;
}

bool rewind_ram_check_layout(const uint8_t *buf, size_t len, size_t *pos,
                             Error **errp)
{
    const uint32_t *n = take(buf, len, pos, sizeof(*n));

    if (!n || *n != rewind_nblocks) {
        error_setg(errp, "the recording's machine has %u RAM blocks, this "
                   "one %d", n ? *n : 0, rewind_nblocks);
        return false;
    }
    for (int i = 0; i < rewind_nblocks; i++) {
        const uint64_t *npages = take(buf, len, pos, sizeof(*npages));
        const uint16_t *idlen = take(buf, len, pos, sizeof(*idlen));
        const char *id = idlen ? take(buf, len, pos, *idlen) : NULL;
        const char *want = qemu_ram_get_idstr(rewind_blocks[i].rb);

        if (!id || *npages != rewind_blocks[i].npages ||
            *idlen != strlen(want) || memcmp(id, want, *idlen)) {
            error_setg(errp, "RAM block %d of the recording's machine "
                       "differs from this one's (%s)", i, want);
            return false;
        }
    }
    return true;
}

bool rewind_ram_write(const RewindPages *pages, FILE *f, Error **errp)
{
    size_t size = qemu_target_page_size();
    uint32_t slot = 0;
    long at;

    for (int i = 0; i < rewind_nblocks; i++) {
        const RewindBlockPages *bp = &pages->blocks[i];

        if (!write_all(f, &bp->count, sizeof(bp->count), errp) ||
            !write_all(f, bp->page, bp->count * sizeof(uint32_t), errp)) {
            return false;
        }
        for (uint32_t j = 0; j < bp->count; j++) {
            uint32_t s = bp->data[j] ? slot++ : REWIND_ZERO_SLOT;

            if (!write_all(f, &s, sizeof(s), errp)) {
                return false;
            }
        }
    }
    at = ftell(f);
    if (at < 0 || fseek(f, ROUND_UP(at, size), SEEK_SET) < 0) {
        error_setg_errno(errp, errno, "could not write checkpoints");
        return false;
    }
    for (int i = 0; i < rewind_nblocks; i++) {
        const RewindBlockPages *bp = &pages->blocks[i];

        for (uint32_t j = 0; j < bp->count; j++) {
            if (bp->data[j] && !write_all(f, bp->data[j], size, errp)) {
                return false;
            }
        }
    }
    return true;
}

/* Page sets whose data stays in buf (a mapped file): never freed. */
RewindPages *rewind_ram_map(const uint8_t *buf, size_t len, size_t *pos,
                            Error **errp)
{
    size_t size = qemu_target_page_size();
    RewindPages *pages = g_new0(RewindPages, 1);
    const uint32_t **slots = g_new0(const uint32_t *, rewind_nblocks);
    const uint8_t *data;
    uint64_t nslots = 0;

    pages->blocks = g_new0(RewindBlockPages, rewind_nblocks);
    for (int i = 0; i < rewind_nblocks; i++) {
        RewindBlockPages *bp = &pages->blocks[i];
        const uint32_t *count = take(buf, len, pos, sizeof(*count));
        const uint32_t *page = count ?
            take(buf, len, pos, (size_t)*count * sizeof(uint32_t)) : NULL;

        slots[i] = page ?
            take(buf, len, pos, (size_t)*count * sizeof(uint32_t)) : NULL;
        if (!slots[i]) {
            goto truncated;
        }
        bp->count = *count;
        bp->page = g_memdup2(page, bp->count * sizeof(uint32_t));
        bp->data = g_new0(uint8_t *, bp->count);
        for (uint32_t j = 0; j < bp->count; j++) {
            if (bp->page[j] >= rewind_blocks[i].npages ||
                (j && bp->page[j] <= bp->page[j - 1])) {
                error_setg(errp, "bad page list in checkpoint file");
                goto fail;
            }
            if (slots[i][j] != REWIND_ZERO_SLOT) {
                nslots++;
            }
        }
    }
    *pos = ROUND_UP(*pos, size);
    data = take(buf, len, pos, nslots * size);
    if (!data) {
        goto truncated;
    }
    for (int i = 0; i < rewind_nblocks; i++) {
        RewindBlockPages *bp = &pages->blocks[i];

        for (uint32_t j = 0; j < bp->count; j++) {
            if (slots[i][j] == REWIND_ZERO_SLOT) {
                continue;
            }
            if (slots[i][j] >= nslots) {
                error_setg(errp, "bad page slot in checkpoint file");
                goto fail;
            }
            /* Borrowed from the mapping; const is the file's, not ours. */
            bp->data[j] = (uint8_t *)(data + (size_t)slots[i][j] * size);
        }
    }
    g_free(slots);
    return pages;

truncated:
    error_setg(errp, "checkpoint file is truncated");
fail:
    for (int i = 0; i < rewind_nblocks; i++) {
        g_free(pages->blocks[i].page);
        g_free(pages->blocks[i].data);
    }
    g_free(pages->blocks);
    g_free(pages);
    g_free(slots);
    return NULL;
}
