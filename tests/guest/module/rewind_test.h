/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rewind_test.h - shared by the two halves of the rewind_test module.
 *
 * rewind_test_main.c is the driver glue (built like any module, -O2);
 * rewind_test_steps.c holds the functions the reverse-stepping tests step
 * through (built with -O0, see Kbuild).  No kernel headers here: the steps
 * file must not pull in code that only builds when optimised.
 */
#ifndef REWIND_TEST_H
#define REWIND_TEST_H

#define RT_BUF_LEN 64

/* Copies rewind_test_pattern into a stack buffer, hashes it with the
 * helper and stores the result in rewind_test_last; returns the result. */
unsigned int rewind_test_step(int seed);
/* sum = sum * 31 + buf[i] over len bytes (unsigned, mod 2^32). */
unsigned int rewind_test_helper(const unsigned char *buf, int len);

extern unsigned int rewind_test_last;
extern const unsigned char rewind_test_pattern[RT_BUF_LEN];

#endif
