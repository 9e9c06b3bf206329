/*
 * QEMU Rewind: digests of the device state, for divergence detection
 *
 * Recording logs, with each divergence digest, a digest of every section
 * of the device state as a checkpoint saves it; the replay compares them
 * at the same point of the log.  A replay that stops following its
 * recording (often after a restore that was not exact) then names the
 * device whose state differs first, instead of only "CPU 0 is elsewhere"
 * or "no progress" much later.
 *
 * Each entry is a CRC-32C of the section's name and instance, and one of
 * its bytes.  Left out, each for host-side state a replay does not
 * reproduce:
 * - "timer": offsets of the host's clocks, taken when the VM stops and
 *   starts (under icount the guest's clock is the instruction count,
 *   which the log checks itself);
 * - "replay": the log's own bookkeeping, its file position (a recording
 *   writes where a replay reads);
 * - "globalstate": the run state, which the user drives (a replay starts
 *   paused);
 * - "cpu_common": its interrupt_request carries kicks the host sends at
 *   host-timed points, such as CPU_INTERRUPT_EXITTB (the CPU's own state
 *   is in the CPU digest);
 * - "slirp": -netdev user's connections, a host-side backend whose output
 *   to the guest a replay takes from the log;
 * - usb-redir devices: the usbredir parser's buffers and the peer's (in a
 *   replay nothing is behind the chardev).
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "qapi/error.h"
#include "migration/global_state.h"
#include "migration/savevm.h"
#include "rewind-digest.h"

static const char *const host_dependent[] = {
    "timer", "replay", "globalstate", "cpu_common", "slirp",
};

static uint32_t name_crc(const char *idstr, uint32_t instance)
{
    g_autofree char *name = g_strdup_printf("%s#%" PRIu32, idstr, instance);

    return crc32c(0xffffffff, (const uint8_t *)name, strlen(name));
}

static void add_digest(void *opaque, const char *idstr, uint32_t instance,
                       const uint8_t *data, size_t size,
                       const char *description)
{
    GArray *digests = opaque;
    RewindDeviceDigest d;
    int i;

    for (i = 0; i < ARRAY_SIZE(host_dependent); i++) {
        if (!strcmp(idstr, host_dependent[i])) {
            return;
        }
    }
    if (g_str_has_suffix(idstr, "/usb-redir")) {
        return;
    }
    d.name = name_crc(idstr, instance);
    d.data = crc32c(0xffffffff, data, size);
    d.id = g_strdup_printf(instance ? "%s (instance %" PRIu32 ")" : "%s",
                           idstr, instance);
    g_array_append_val(digests, d);
}

static void clear_digest(gpointer p)
{
    g_free(((RewindDeviceDigest *)p)->id);
}

GArray *rewind_device_digests(void)
{
    GArray *digests = g_array_new(false, false, sizeof(RewindDeviceDigest));
    Error *err = NULL;

    g_array_set_clear_func(digests, clear_digest);
    /* As rewind_save_devices() does: the run state is part of it. */
    global_state_store();
    if (qemu_save_device_sections(add_digest, digests, false, &err)) {
        /* A device that cannot be saved has no digest; the rest do. */
        warn_report_err(err);
    }
    return digests;
}

const RewindDeviceDigest *rewind_device_digest_find(GArray *digests,
                                                    uint32_t name)
{
    guint i;

    for (i = 0; i < digests->len; i++) {
        if (g_array_index(digests, RewindDeviceDigest, i).name == name) {
            return &g_array_index(digests, RewindDeviceDigest, i);
        }
    }
    return NULL;
}
