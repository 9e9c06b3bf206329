/* SPDX-License-Identifier: GPL-2.0 */
/*
 * rewind_demo.h - the ioctl interface of /dev/rewind_demo, shared by the
 * demo driver (rewind_demo.c) and its guest program
 * (tests/guest/programs/rewind-demo-ioctl.cc).
 */
#ifndef REWIND_DEMO_H
#define REWIND_DEMO_H

#include <linux/ioctl.h>
#include <linux/types.h>

/* One report read from the sensor. */
struct rewind_demo_report {
	__u32 length;		/* payload bytes in the report */
	__u32 checksum;		/* sum of the payload bytes */
};

/* Reads the next report from the device (blocks up to 2 s). */
#define REWIND_DEMO_READ	_IOR('R', 0x01, struct rewind_demo_report)

#endif
