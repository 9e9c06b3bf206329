// SPDX-License-Identifier: GPL-2.0
/*
 * rewind_test_main.c - driver glue of the rewind_test module, the guest
 * half of the reverse-stepping tests (tests/guest/module.sh,
 * tests/functional/test_reverse_step.cc).
 *
 * /proc/rewind_test (root only):
 *   write "<seed>"  runs rewind_test_step(seed) in the writer's context
 *   read            "REWIND-MODULE-RESULT seed=<seed> result=<n>\n", where
 *                   n is rewind_test_last (the global the step wrote), in
 *                   decimal; "REWIND-MODULE-RESULT none\n" before any write
 *
 * The result, in Python:
 *   pat = [(i * 37 + 11) & 0xff for i in range(64)]
 *   n = 64 - (seed & 7); buf = pat[:n]; buf[0] ^= seed & 0xff
 *   s = 0
 *   for b in buf: s = (s * 31 + b) % 2**32
 *   result = s ^ (seed % 2**32)
 */
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/proc_fs.h>
#include <linux/seq_file.h>
#include <linux/uaccess.h>

#include "rewind_test.h"

static int rewind_test_seed;
static bool rewind_test_ran;

static ssize_t rewind_test_write(struct file *file, const char __user *ubuf,
				 size_t count, loff_t *ppos)
{
	int seed, err;

	err = kstrtoint_from_user(ubuf, count, 0, &seed);
	if (err)
		return err;
	rewind_test_step(seed);
	rewind_test_seed = seed;
	rewind_test_ran = true;
	return count;
}

static int rewind_test_show(struct seq_file *m, void *v)
{
	if (!rewind_test_ran)
		seq_puts(m, "REWIND-MODULE-RESULT none\n");
	else
		seq_printf(m, "REWIND-MODULE-RESULT seed=%d result=%u\n",
			   rewind_test_seed, rewind_test_last);
	return 0;
}

static int rewind_test_open(struct inode *inode, struct file *file)
{
	return single_open(file, rewind_test_show, NULL);
}

static const struct proc_ops rewind_test_ops = {
	.proc_open = rewind_test_open,
	.proc_read = seq_read,
	.proc_lseek = seq_lseek,
	.proc_release = single_release,
	.proc_write = rewind_test_write,
};

static int __init rewind_test_init(void)
{
	if (!proc_create("rewind_test", 0600, NULL, &rewind_test_ops))
		return -ENOMEM;
	return 0;
}

static void __exit rewind_test_exit(void)
{
	remove_proc_entry("rewind_test", NULL);
}

module_init(rewind_test_init);
module_exit(rewind_test_exit);
MODULE_DESCRIPTION("QEMU Rewind: functions to step through backwards");
MODULE_LICENSE("GPL");
