/*
 * QEMU Rewind: guest disk writes during replay, so that going back in
 * time can take them back
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#ifndef SYSTEM_REWIND_BLOCK_H
#define SYSTEM_REWIND_BLOCK_H

#include "block/block_int.h"

/*
 * Called by blkreplay before it writes (qiov NULL: zeroes or discard)
 * through request reqid.
 */
void coroutine_fn GRAPH_RDLOCK
rewind_block_before_write(BlockDriverState *bs, uint64_t reqid,
                          int64_t offset, int64_t bytes, QEMUIOVector *qiov);

#endif
