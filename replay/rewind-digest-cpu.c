/*
 * QEMU Rewind: the CPU part of a divergence digest
 *
 * The registers that say where a CPU is and what it computes, hashed, plus
 * the program counter and stack pointer kept as they are so that an error
 * can show them.  Called only with the CPU outside its execution loop,
 * where the x86 flags are whole in eflags.
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 */

#include "qemu/osdep.h"
#include "qemu/crc32c.h"
#include "cpu.h"
#include "rewind-digest.h"

void rewind_digest_cpu(CPUState *cs, RewindCpuDigest *d)
{
#if defined(TARGET_I386)
    CPUX86State *env = cpu_env(cs);
    uint64_t v[CPU_NB_REGS + 16];
    int i, n = 0;

    for (i = 0; i < CPU_NB_REGS; i++) {
        v[n++] = env->regs[i];
    }
    v[n++] = env->eip;
    v[n++] = cpu_compute_eflags(env);
    for (i = 0; i < 6; i++) {
        v[n++] = (uint64_t)env->segs[i].selector << 32 ^ env->segs[i].base;
    }
    v[n++] = env->cr[0];
    v[n++] = env->cr[3];
    v[n++] = env->cr[4];
    v[n++] = env->efer;
    d->pc = env->eip + env->segs[R_CS].base;
    d->sp = env->regs[R_ESP];
    d->hash = crc32c(0xffffffff, (const uint8_t *)v, n * sizeof(v[0]));
    d->hash = crc32c(d->hash ^ 0xffffffff, (const uint8_t *)env->xmm_regs,
                     CPU_NB_REGS * sizeof(env->xmm_regs[0]));
#else
#error "QEMU Rewind digests know only x86 CPUs"
#endif
}
