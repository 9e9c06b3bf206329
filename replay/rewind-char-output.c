/*
 * QEMU Rewind: what the guest wrote to its character devices
 *
 * Upstream logs only the result of each write to a recorded chardev, so
 * the log cannot tell what the guest printed, and a replay that prints
 * something else goes unnoticed.  Recording collects the bytes per
 * chardev and logs them in batches (EVENT_CHAR_OUTPUT: u8 chardev index,
 * array of bytes), just before each digest: one event per write would
 * cost more than the rest of the log.  The replay collects what its guest
 * writes and compares at the same point.  Tools read the guest's console
 * output from the log.
 *
 * After a checkpoint restore the replay has seen only the end of the
 * batch, which must then match the end of the recorded one.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/error-report.h"
#include "chardev/char.h"
#include "system/replay.h"
#include "replay-internal.h"
#include "rewind-digest.h"

typedef struct CharOutput {
    GByteArray *bytes;      /* written since the last batch */
    bool partial;           /* replay: since a restore, not a batch start */
} CharOutput;

static CharOutput *outputs;
static int output_count;
/*
 * A chardev first seen after a restore has seen only the end of its batch
 * too: a replay that seeks straight to the end of a recording may reach
 * the last batch before its guest writes anything.
 */
static bool restored_once;

static CharOutput *output_at(int id)
{
    if (id >= output_count) {
        outputs = g_renew(CharOutput, outputs, id + 1);
        while (output_count <= id) {
            outputs[output_count].bytes = g_byte_array_new();
            outputs[output_count].partial = restored_once;
            output_count++;
        }
    }
    return &outputs[id];
}

static CharOutput *output_of(Chardev *s)
{
    int id = replay_char_driver_index(s);

    return id < 0 ? NULL : output_at(id);
}

/* At most @max bytes of @buf, printable, for an error message. */
static char *printable(const uint8_t *buf, size_t len, size_t max)
{
    GString *s = g_string_new("\"");
    size_t i;

    for (i = 0; i < len && i < max; i++) {
        if (buf[i] >= 0x20 && buf[i] < 0x7f && buf[i] != '"' &&
            buf[i] != '\\') {
            g_string_append_c(s, buf[i]);
        } else if (buf[i] == '\n') {
            g_string_append(s, "\\n");
        } else {
            g_string_append_printf(s, "\\x%02x", buf[i]);
        }
    }
    g_string_append(s, len > max ? "\"..." : "\"");
    return g_string_free(s, false);
}

void replay_char_output_save(Chardev *s, const uint8_t *buf, int len)
{
    CharOutput *o = output_of(s);

    if (o && len > 0) {
        g_byte_array_append(o->bytes, buf, len);
    }
}

void replay_char_output_check(Chardev *s, const uint8_t *buf, int len)
{
    replay_char_output_save(s, buf, len);
}

size_t rewind_char_output_pending(void)
{
    size_t n = 0;
    int i;

    for (i = 0; i < output_count; i++) {
        n += outputs[i].bytes->len;
    }
    return n;
}

void rewind_char_output_flush(void)
{
    int i;

    for (i = 0; i < output_count; i++) {
        if (outputs[i].bytes->len) {
            replay_put_event(EVENT_CHAR_OUTPUT);
            replay_put_byte(i);
            replay_put_array(outputs[i].bytes->data, outputs[i].bytes->len);
            g_byte_array_set_size(outputs[i].bytes, 0);
        }
    }
}

void rewind_char_output_compare(uint64_t since_icount)
{
    g_autofree uint8_t *rec = NULL;
    size_t rec_len = 0, off = 0, i;
    uint8_t id = replay_get_byte();
    CharOutput *o = output_at(id);
    const uint8_t *seen = o->bytes->data;
    size_t seen_len = o->bytes->len;

    replay_get_array_alloc(&rec, &rec_len);
    replay_finish_event();
    if (o->partial && seen_len <= rec_len) {
        off = rec_len - seen_len;   /* compare the ends */
    }
    if (seen_len != rec_len - off || memcmp(rec + off, seen, seen_len)) {
        for (i = 0; i < seen_len && off + i < rec_len &&
             seen[i] == rec[off + i]; i++) {
            /* find the first difference */
        }
        rewind_diverged("between instruction %" PRIu64 " and %" PRIu64
                        ": the guest wrote %s to character device %u, where "
                        "the recording wrote %s",
                        since_icount, replay_state.current_icount,
                        printable(seen + i, seen_len - i, 40), id,
                        printable(rec + off + i, rec_len - off - i, 40));
    }
    g_byte_array_set_size(o->bytes, 0);
    o->partial = false;
}

void rewind_char_output_restored(void)
{
    int i;

    for (i = 0; i < output_count; i++) {
        g_byte_array_set_size(outputs[i].bytes, 0);
        outputs[i].partial = true;
    }
    restored_once = true;
}
