/*
 * QEMU Rewind: the replay log file, format 2
 *
 * File layout, integers little-endian:
 *   header   "QEMURWLG", u32 format (2), u32 REPLAY_VERSION,
 *            u32 chunk target size, u32 0, u64 0                (32 bytes)
 *   chunks   "RWCK", u32 raw size, u32 packed size, u32 crc32c of the
 *            packed bytes, u64 stream offset of the first raw byte,
 *            u64 instruction count at the first event, u32 sequence,
 *            u32 crc32c of the 36 bytes before it               (40 bytes)
 *            then the packed bytes: one zstd frame
 *   index    "RWIX", u32 chunk count, u64 stream end, u64 last icount,
 *            per chunk u64 file offset, u64 stream offset, u64 icount,
 *            then u32 crc32c of the index
 *   trailer  "QRWLGEND", u64 index file offset, u32 index size,
 *            u32 crc32c of the 16 bytes before it               (24 bytes)
 *
 * A chunk ends at an event boundary once it holds chunk_target bytes or
 * has been open for a second, and is flushed to the file at once: a
 * recording whose QEMU is killed keeps every complete chunk.  Such a file
 * has no index; the replay finds the chunks by scanning their headers.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include <zstd.h>
#include "qemu/bswap.h"
#include "qemu/crc32c.h"
#include "qemu/error-report.h"
#include "system/replay.h"
#include "system/runstate.h"
#include "replay-internal.h"
#include "rewind-log.h"

#define LOG_MAGIC           "QEMURWLG"
#define LOG_FORMAT          2
#define LOG_HEADER_SIZE     32
#define CHUNK_MAGIC         "RWCK"
#define CHUNK_HEADER_SIZE   40
#define INDEX_MAGIC         "RWIX"
#define TRAILER_MAGIC       "QRWLGEND"
#define TRAILER_SIZE        24
/* What upstream's raw format calls HEADER_SIZE: u32 version, u64 */
#define V1_HEADER_SIZE      12
/* REPLAY_VERSION of replay.c: the events inside are upstream's */
#define V1_VERSION          0xe0200c

#define CHUNK_TARGET        (1 << 20)
#define CHUNK_MAX_AGE_US    G_USEC_PER_SEC
#define ZSTD_LEVEL          9

typedef struct LogChunk {
    uint64_t file_offset;
    uint64_t stream_offset;
    uint64_t icount;
} LogChunk;

static struct {
    FILE *file;
    char *fname;
    bool record;
    bool raw;               /* replaying upstream's format 1 */
    GArray *chunks;         /* LogChunk, in file order */
    uint64_t stream_end;    /* replay: end of the data */
    bool complete;          /* replay: the file has its index */

    /* the chunk being written or read */
    uint8_t *buf;
    size_t len;             /* bytes in buf */
    size_t pos;             /* replay: next byte to read in buf */
    size_t cap;
    uint64_t buf_offset;    /* stream offset of buf[0] */
    uint64_t buf_icount;
    int buf_chunk;          /* replay: index in chunks, -1: none */
    int64_t buf_started_us;

    ZSTD_CCtx *cctx;
    bool write_failed;
} lg;

/* CRC-32C; QEMU's crc32c() does the final inversion itself */
static uint32_t checksum(const void *data, size_t len)
{
    return crc32c(0xffffffff, data, len);
}

static void put_le32(uint8_t *p, uint32_t v)
{
    stl_le_p(p, v);
}

static void put_le64(uint8_t *p, uint64_t v)
{
    stq_le_p(p, v);
}

/* ---- recording ---- */

static void write_bytes(const void *data, size_t len)
{
    if (!lg.write_failed && fwrite(data, 1, len, lg.file) != len) {
        error_report("replay log '%s': write failed: %s", lg.fname,
                     strerror(errno));
        lg.write_failed = true;
    }
}

static void write_chunk(void)
{
    uint8_t h[CHUNK_HEADER_SIZE];
    size_t bound = ZSTD_compressBound(lg.len);
    g_autofree uint8_t *packed = g_malloc(bound);
    size_t packed_len;
    LogChunk c;
    long at;

    if (!lg.len) {
        return;
    }
    packed_len = ZSTD_compressCCtx(lg.cctx, packed, bound, lg.buf, lg.len,
                                   ZSTD_LEVEL);
    if (ZSTD_isError(packed_len)) {
        error_report("replay log '%s': zstd: %s", lg.fname,
                     ZSTD_getErrorName(packed_len));
        exit(1);
    }
    at = ftell(lg.file);
    memcpy(h, CHUNK_MAGIC, 4);
    put_le32(h + 4, lg.len);
    put_le32(h + 8, packed_len);
    put_le32(h + 12, checksum(packed, packed_len));
    put_le64(h + 16, lg.buf_offset);
    put_le64(h + 24, lg.buf_icount);
    put_le32(h + 32, lg.chunks->len);
    put_le32(h + 36, checksum(h, 36));
    write_bytes(h, sizeof(h));
    write_bytes(packed, packed_len);
    if (!lg.write_failed && fflush(lg.file) != 0) {
        error_report("replay log '%s': write failed: %s", lg.fname,
                     strerror(errno));
        lg.write_failed = true;
    }

    c.file_offset = at;
    c.stream_offset = lg.buf_offset;
    c.icount = lg.buf_icount;
    g_array_append_val(lg.chunks, c);
    lg.buf_offset += lg.len;
    lg.len = 0;
}

void rewind_log_put(const void *data, size_t len)
{
    /* Recording always writes format 2 */
    if (!lg.len) {
        lg.buf_icount = replay_state.current_icount;
        lg.buf_started_us = g_get_monotonic_time();
    }
    if (lg.len + len > lg.cap) {
        lg.cap = MAX(lg.cap * 2, lg.len + len);
        lg.buf = g_realloc(lg.buf, lg.cap);
    }
    memcpy(lg.buf + lg.len, data, len);
    lg.len += len;
}

void rewind_log_event_boundary(void)
{
    if (lg.record && lg.len &&
        (lg.len >= CHUNK_TARGET ||
         g_get_monotonic_time() - lg.buf_started_us >= CHUNK_MAX_AGE_US)) {
        write_chunk();
    }
}

void rewind_log_flush(void)
{
    if (lg.record) {
        write_chunk();
    }
}

bool rewind_log_write_failed(void)
{
    return lg.write_failed;
}

static void write_index(void)
{
    size_t size = 24 + lg.chunks->len * 24 + 4;
    g_autofree uint8_t *ix = g_malloc(size);
    uint8_t t[TRAILER_SIZE];
    long at = ftell(lg.file);
    guint i;

    memcpy(ix, INDEX_MAGIC, 4);
    put_le32(ix + 4, lg.chunks->len);
    put_le64(ix + 8, lg.buf_offset);
    put_le64(ix + 16, replay_state.current_icount);
    for (i = 0; i < lg.chunks->len; i++) {
        LogChunk *c = &g_array_index(lg.chunks, LogChunk, i);
        put_le64(ix + 24 + i * 24, c->file_offset);
        put_le64(ix + 32 + i * 24, c->stream_offset);
        put_le64(ix + 40 + i * 24, c->icount);
    }
    put_le32(ix + size - 4, checksum(ix, size - 4));
    write_bytes(ix, size);

    memcpy(t, TRAILER_MAGIC, 8);
    put_le64(t + 8, at);
    put_le32(t + 16, size);
    put_le32(t + 20, checksum(t, 20));
    write_bytes(t, sizeof(t));
    if (!lg.write_failed && fflush(lg.file) != 0) {
        lg.write_failed = true;
    }
}

/* ---- replaying ---- */

static G_NORETURN void corrupt(const char *what, ...) G_GNUC_PRINTF(1, 2);

static G_NORETURN void corrupt(const char *what, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, what);
    msg = g_strdup_vprintf(what, ap);
    va_end(ap);
    error_report("replay log '%s' is damaged: %s", lg.fname, msg);
    exit(1);
}

static bool read_at(uint64_t offset, void *data, size_t len)
{
    return fseeko(lg.file, offset, SEEK_SET) == 0 &&
           fread(data, 1, len, lg.file) == len;
}

static bool chunk_header_ok(const uint8_t *h)
{
    return !memcmp(h, CHUNK_MAGIC, 4) &&
           ldl_le_p(h + 36) == checksum(h, 36);
}

/* The index written when the recording ended; false if there is none. */
static bool load_index(uint64_t file_size)
{
    uint8_t t[TRAILER_SIZE];
    g_autofree uint8_t *ix = NULL;
    uint64_t at;
    uint32_t size, n, i;

    if (file_size < LOG_HEADER_SIZE + TRAILER_SIZE ||
        !read_at(file_size - TRAILER_SIZE, t, sizeof(t)) ||
        memcmp(t, TRAILER_MAGIC, 8) || ldl_le_p(t + 20) != checksum(t, 20)) {
        return false;
    }
    at = ldq_le_p(t + 8);
    size = ldl_le_p(t + 16);
    if (size < 28 || at + size + TRAILER_SIZE != file_size) {
        return false;
    }
    ix = g_malloc(size);
    if (!read_at(at, ix, size) || memcmp(ix, INDEX_MAGIC, 4) ||
        ldl_le_p(ix + size - 4) != checksum(ix, size - 4)) {
        return false;
    }
    n = ldl_le_p(ix + 4);
    if ((uint64_t)n * 24 + 28 != size) {
        return false;
    }
    for (i = 0; i < n; i++) {
        LogChunk c = {
            .file_offset = ldq_le_p(ix + 24 + i * 24),
            .stream_offset = ldq_le_p(ix + 32 + i * 24),
            .icount = ldq_le_p(ix + 40 + i * 24),
        };
        g_array_append_val(lg.chunks, c);
    }
    lg.stream_end = ldq_le_p(ix + 8);
    return true;
}

/* No index (the recording was killed): find the complete chunks. */
static void scan_chunks(uint64_t file_size)
{
    uint64_t at = LOG_HEADER_SIZE;
    uint64_t expect = V1_HEADER_SIZE;
    uint8_t h[CHUNK_HEADER_SIZE];

    lg.stream_end = V1_HEADER_SIZE;
    while (at + CHUNK_HEADER_SIZE <= file_size) {
        LogChunk c;
        uint32_t raw, packed;

        if (!read_at(at, h, sizeof(h)) || !chunk_header_ok(h)) {
            break;
        }
        raw = ldl_le_p(h + 4);
        packed = ldl_le_p(h + 8);
        c.file_offset = at;
        c.stream_offset = ldq_le_p(h + 16);
        c.icount = ldq_le_p(h + 24);
        if (c.stream_offset != expect ||
            at + CHUNK_HEADER_SIZE + packed > file_size) {
            break;
        }
        g_array_append_val(lg.chunks, c);
        at += CHUNK_HEADER_SIZE + packed;
        expect += raw;
        lg.stream_end = expect;
    }
    warn_report("replay log '%s': the recording did not finish (its QEMU "
                "was killed?)%s; the replay stops at the end of its %u "
                "complete chunks (the last starts at instruction %" PRIu64
                ")", lg.fname,
                at < file_size ? " and its tail is not a complete chunk" : "",
                lg.chunks->len,
                lg.chunks->len ?
                g_array_index(lg.chunks, LogChunk, lg.chunks->len - 1).icount :
                0);
}

static void load_chunk(int i)
{
    LogChunk *c = &g_array_index(lg.chunks, LogChunk, i);
    uint8_t h[CHUNK_HEADER_SIZE];
    g_autofree uint8_t *packed = NULL;
    uint32_t raw, packed_len;
    size_t got;

    if (!read_at(c->file_offset, h, sizeof(h)) || !chunk_header_ok(h) ||
        ldq_le_p(h + 16) != c->stream_offset) {
        corrupt("chunk %d (file offset %" PRIu64 ", from instruction %"
                PRIu64 ") has a bad header", i, c->file_offset, c->icount);
    }
    raw = ldl_le_p(h + 4);
    packed_len = ldl_le_p(h + 8);
    if (i + 1 < lg.chunks->len ?
        c->stream_offset + raw != g_array_index(lg.chunks, LogChunk,
                                                i + 1).stream_offset :
        c->stream_offset + raw != lg.stream_end) {
        corrupt("chunk %d (file offset %" PRIu64 ") does not match the "
                "index", i, c->file_offset);
    }
    packed = g_malloc(packed_len);
    if (!read_at(c->file_offset + CHUNK_HEADER_SIZE, packed, packed_len)) {
        corrupt("chunk %d (file offset %" PRIu64 ") is cut short", i,
                c->file_offset);
    }
    if (ldl_le_p(h + 12) != checksum(packed, packed_len)) {
        corrupt("the checksum of chunk %d (file offset %" PRIu64
                ", instructions from %" PRIu64 ") does not match its data",
                i, c->file_offset, c->icount);
    }
    if (raw > lg.cap) {
        lg.cap = raw;
        lg.buf = g_realloc(lg.buf, lg.cap);
    }
    got = ZSTD_decompress(lg.buf, raw, packed, packed_len);
    if (ZSTD_isError(got) || got != raw) {
        corrupt("chunk %d (file offset %" PRIu64 ") does not decompress: %s",
                i, c->file_offset,
                ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
    }
    lg.len = raw;
    lg.buf_offset = c->stream_offset;
    lg.buf_icount = c->icount;
    lg.buf_chunk = i;
}

/* Makes buf hold the chunk with stream offset @pos; false at the end. */
static bool load_chunk_at(uint64_t pos)
{
    int lo = 0, hi = lg.chunks->len - 1;

    if (pos >= lg.stream_end) {
        return false;
    }
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (g_array_index(lg.chunks, LogChunk, mid).stream_offset <= pos) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    if (lg.buf_chunk != lo) {
        load_chunk(lo);
    }
    lg.pos = pos - lg.buf_offset;
    return true;
}

bool rewind_log_get(void *data, size_t len)
{
    uint8_t *out = data;

    if (lg.raw) {
        return fread(data, 1, len, lg.file) == len;
    }
    while (len) {
        size_t n;

        if (lg.pos >= lg.len &&
            !load_chunk_at(lg.buf_offset + lg.len)) {
            return false;
        }
        n = MIN(len, lg.len - lg.pos);
        memcpy(out, lg.buf + lg.pos, n);
        out += n;
        len -= n;
        lg.pos += n;
    }
    return true;
}

bool rewind_log_at_cut_end(void)
{
    return !lg.raw && !lg.record && !lg.complete &&
           rewind_log_tell() >= lg.stream_end;
}

void rewind_log_reached_cut_end(void)
{
    static bool told;

    replay_state.data_kind = EVENT_END;
    replay_state.has_unread_data = true;
    if (!told) {
        told = true;
        error_report("replay: the log ends at instruction %" PRIu64
                     " without its end event: the recording did not "
                     "finish (its QEMU was killed?); the replay pauses "
                     "here", replay_state.current_icount);
    }
    qemu_system_vmstop_request_prepare();
    qemu_system_vmstop_request(RUN_STATE_PAUSED);
}

int64_t rewind_log_tell(void)
{
    if (lg.raw) {
        return ftello(lg.file);
    }
    return lg.buf_offset + (lg.record ? lg.len : lg.pos);
}

void rewind_log_seek(int64_t pos)
{
    if (lg.raw) {
        if (fseeko(lg.file, pos, SEEK_SET) != 0) {
            error_report("replay log '%s': cannot seek: %s", lg.fname,
                         strerror(errno));
            exit(1);
        }
        return;
    }
    assert(!lg.record);
    if (pos == lg.stream_end) {
        /* at the end: no chunk to load */
        lg.buf_chunk = -1;
        lg.buf_offset = pos;
        lg.len = lg.pos = 0;
    } else if (!load_chunk_at(pos)) {
        error_report("replay log '%s': position %" PRId64 " is past the "
                     "end of the log (%" PRIu64 ")", lg.fname, pos,
                     lg.stream_end);
        exit(1);
    }
}

/* ---- open and close ---- */

static void open_for_replay(void)
{
    uint8_t h[LOG_HEADER_SIZE];
    uint64_t file_size;
    size_t got;

    got = fread(h, 1, sizeof(h), lg.file);
    if (got >= 4 && ldl_be_p(h) == V1_VERSION) {
        /* upstream's raw format */
        lg.raw = true;
        rewind_log_seek(V1_HEADER_SIZE);
        return;
    }
    if (got < sizeof(h) || memcmp(h, LOG_MAGIC, 8)) {
        if (got >= 4 && ldl_be_p(h) == 0) {
            error_report("replay log '%s' has no version: a recording in "
                         "upstream's format that did not finish cannot be "
                         "replayed", lg.fname);
        } else {
            error_report("'%s' is not a QEMU replay log", lg.fname);
        }
        exit(1);
    }
    if (ldl_le_p(h + 8) != LOG_FORMAT) {
        error_report("replay log '%s' is in format %u; this QEMU reads "
                     "format %d", lg.fname, ldl_le_p(h + 8), LOG_FORMAT);
        exit(1);
    }
    if (ldl_le_p(h + 12) != V1_VERSION) {
        error_report("replay log '%s' was written by a QEMU with replay "
                     "version 0x%x; this one has 0x%x", lg.fname,
                     ldl_le_p(h + 12), V1_VERSION);
        exit(1);
    }
    if (fseeko(lg.file, 0, SEEK_END) != 0) {
        error_report("replay log '%s': cannot seek: %s", lg.fname,
                     strerror(errno));
        exit(1);
    }
    file_size = ftello(lg.file);
    lg.complete = load_index(file_size);
    if (!lg.complete) {
        g_array_set_size(lg.chunks, 0);
        scan_chunks(file_size);
    }
    lg.buf_chunk = -1;
    rewind_log_seek(V1_HEADER_SIZE);
}

void rewind_log_open(FILE *f, const char *fname, bool record)
{
    uint8_t h[LOG_HEADER_SIZE] = { 0 };

    lg.file = f;
    lg.fname = g_strdup(fname);
    lg.record = record;
    lg.chunks = g_array_new(false, false, sizeof(LogChunk));
    lg.buf_chunk = -1;
    if (!record) {
        open_for_replay();
        return;
    }
    memcpy(h, LOG_MAGIC, 8);
    put_le32(h + 8, LOG_FORMAT);
    put_le32(h + 12, V1_VERSION);
    put_le32(h + 16, CHUNK_TARGET);
    write_bytes(h, sizeof(h));
    lg.cctx = ZSTD_createCCtx();
    lg.buf_offset = V1_HEADER_SIZE;
}

void rewind_log_close(void)
{
    if (lg.record) {
        write_chunk();
        write_index();
        ZSTD_freeCCtx(lg.cctx);
        lg.cctx = NULL;
    }
    g_free(lg.buf);
    g_free(lg.fname);
    if (lg.chunks) {
        g_array_free(lg.chunks, true);
    }
    memset(&lg, 0, sizeof(lg));
}
