// SPDX-License-Identifier: GPL-2.0-only
/*
 * tests/run --selftest: a module whose loading triggers a kernel
 * WARNING, or with leak=1 leaks 64 bytes instead (for kmemleak).
 */
#include <linux/module.h>
#include <linux/bug.h>
#include <linux/slab.h>
#include <linux/string.h>

static bool leak;
module_param(leak, bool, 0444);

static int __init selftest_warn_init(void)
{
void *p;

if (!leak) {
WARN_ON(1);
return 0;
}
p = kmalloc(64, GFP_KERNEL);
if (p)
memset(p, 0x5a, 64);
pr_info("dmclone_selftest_warn: leaked 64 bytes on purpose\n");
return 0;
}

static void __exit selftest_warn_exit(void)
{
}

module_init(selftest_warn_init);
module_exit(selftest_warn_exit);
MODULE_LICENSE("GPL");
