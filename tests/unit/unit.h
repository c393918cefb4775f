/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A tiny test harness and the kernel types the pure headers
 * (dm-clone-region.h, dm-clone-window.h, dm-clone-share.h) need.
 */
#ifndef UNIT_H
#define UNIT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

typedef uint64_t u64;
typedef uint32_t u32;

#define BITS_PER_LONG	(8 * (int)sizeof(long))

static int unit_failed, unit_checks;

#define CHECK(cond) do {						\
	unit_checks++;							\
	if (!(cond)) {							\
		unit_failed++;						\
		fprintf(stderr, "%s:%d: check failed: %s\n",		\
			__FILE__, __LINE__, #cond);			\
	}								\
} while (0)

#define UNIT_DONE() do {						\
	printf("%d checks, %d failed\n", unit_checks, unit_failed);	\
	return unit_failed ? 1 : 0;					\
} while (0)

#endif
