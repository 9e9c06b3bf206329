// SPDX-License-Identifier: GPL-2.0
/*
 * rewind_test_steps.c - what tests/functional/test_reverse_step.cc steps
 * through backwards, line by line.
 *
 * Built with -O0 (see Kbuild): every statement keeps its own instructions,
 * in source order, so "which line does gdb land on" has one right answer.
 * The tests find lines by the LINE:<name> markers in this file (the copy
 * next to the built module, build/images/module/), never by number: keep
 * one marker per line, and keep each statement on one line.
 *
 * memcpy is the kernel's own (an out-of-line call: the length is not a
 * compile-time constant).  A watchpoint on buf[8..15] therefore triggers
 * inside the kernel's memcpy, called from LINE:memcpy.
 */
#include "rewind_test.h"

void *memcpy(void *dst, const void *src, unsigned long len);

unsigned int rewind_test_last;

/* rewind_test_pattern[i] = (i * 37 + 11) & 0xff */
const unsigned char rewind_test_pattern[RT_BUF_LEN] = {
	0x0b, 0x30, 0x55, 0x7a, 0x9f, 0xc4, 0xe9, 0x0e,
	0x33, 0x58, 0x7d, 0xa2, 0xc7, 0xec, 0x11, 0x36,
	0x5b, 0x80, 0xa5, 0xca, 0xef, 0x14, 0x39, 0x5e,
	0x83, 0xa8, 0xcd, 0xf2, 0x17, 0x3c, 0x61, 0x86,
	0xab, 0xd0, 0xf5, 0x1a, 0x3f, 0x64, 0x89, 0xae,
	0xd3, 0xf8, 0x1d, 0x42, 0x67, 0x8c, 0xb1, 0xd6,
	0xfb, 0x20, 0x45, 0x6a, 0x8f, 0xb4, 0xd9, 0xfe,
	0x23, 0x48, 0x6d, 0x92, 0xb7, 0xdc, 0x01, 0x26,
};

unsigned int rewind_test_helper(const unsigned char *buf, int len)
{
	unsigned int sum = 0; /* LINE:helper-first */
	int i;

	for (i = 0; i < len; i++) /* LINE:helper-loop */
		sum = sum * 31 + buf[i]; /* LINE:helper-body */
	return sum; /* LINE:helper-return */
} /* LINE:helper-end */

unsigned int rewind_test_step(int seed)
{
	unsigned char buf[RT_BUF_LEN] __attribute__((aligned(8)));
	unsigned int sum, result;
	int len;

	len = RT_BUF_LEN - (seed & 7); /* LINE:len */
	memcpy(buf, rewind_test_pattern, len); /* LINE:memcpy */
	buf[0] ^= (unsigned char)seed; /* LINE:before-call */
	sum = rewind_test_helper(buf, len); /* LINE:call */
	result = sum ^ (unsigned int)seed; /* LINE:after-call */
	rewind_test_last = result; /* LINE:global */
	return result; /* LINE:return */
} /* LINE:step-end */
