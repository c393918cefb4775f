// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of dm-clone-window.h, the copy window's rules, with traces:
 * each trace is a list of rounds (the round trip and size of its pieces,
 * whether user writes waited) and the window expected after each. Pieces
 * end one per millisecond, so a round's copy rate is its pieces' size per
 * millisecond whatever the window.
 */
#include <string.h>

#include "unit.h"
#include "dm-clone-window.h"

#define MS	1000000ULL
#define T0	(1000 * 1000 * MS)	/* a clock far from zero */

struct round {
	u64 rtt_us;		/* each piece's round trip */
	u64 sectors;		/* each piece's size */
	bool waited;		/* user writes waited during the round */
	unsigned int want;	/* the window after it */
};

struct trace {
	struct clone_window w;
	u64 now;
	unsigned int limit;
};

static void trace_start(struct trace *t, unsigned int limit)
{
	clone_window_init(&t->w);
	t->now = T0;
	t->limit = limit;
	/* The first sample after a long pause only starts a round. */
	CHECK(!clone_window_sample(&t->w, t->now, 2048, MS));
}

/* Play one round; returns the window after it. */
static unsigned int play(struct trace *t, const struct round *r)
{
	unsigned int n = 0;
	bool ended = false;

	while (!ended && n++ < 100000) {
		t->now += MS;
		ended = clone_window_sample(&t->w, t->now, r->sectors,
					    r->rtt_us * 1000);
	}
	CHECK(ended);
	return clone_window_next(&t->w, t->now,
				 r->waited && clone_window_judged(&t->w),
				 t->limit);
}

static void run(const char *name, struct trace *t, const struct round *r,
		unsigned int n)
{
	unsigned int i, got;

	for (i = 0; i < n; i++) {
		got = play(t, &r[i]);
		unit_checks++;
		if (got != r[i].want) {
			unit_failed++;
			fprintf(stderr, "%s: round %u: window %u, expected %u\n",
				name, i + 1, got, r[i].want);
		}
	}
}

/* Rule 4: a flat round trip doubles the window, up to the limit (7). */
static const struct round flat[] = {
	{ 1000, 2048, false, 16 },
	{ 1000, 2048, false, 32 },
	{ 1000, 2048, false, 63 },
	{ 1000, 2048, false, 63 },
};

/*
 * Rule 3: writes waited, so halve and hold; rule 2: the round after the
 * change is not judged; rule 6: after the hold (8 rounds), a step up of a
 * quarter; rule 5: the step gained under 10 %, so back and hold.
 */
static const struct round yield[] = {
	{ 1000, 2048, true,  31 },	/* halved */
	{ 3000, 2048, true,  31 },	/* not judged (its waits ignored) */
	{ 3000, 2048, false, 31 },	/* held: 7 more rounds */
	{ 3000, 2048, false, 31 },
	{ 3000, 2048, false, 31 },
	{ 3000, 2048, false, 31 },
	{ 3000, 2048, false, 31 },
	{ 3000, 2048, false, 31 },
	{ 3000, 2048, false, 31 },
	{ 3000, 2048, false, 38 },	/* the hold is over: step up */
	{ 3000, 2048, false, 38 },	/* not judged */
	{ 3000, 2048, false, 31 },	/* same rate: step back, hold */
};

/* Rule 5: steps that gain 10 % or more go on climbing. */
static const struct round climb[] = {
	{ 3000, 2048, false, 38 },	/* not judged (after a step up) */
	{ 3000, 2300, false, 47 },	/* 12 % faster: up again */
	{ 3000, 2300, false, 47 },	/* not judged */
	{ 3000, 2600, false, 58 },	/* 13 % faster */
	{ 3000, 2600, false, 58 },	/* not judged */
	{ 3000, 2700, false, 47 },	/* 4 %: back to the window before */
};

/* Rule 3's floor: halving never goes below 8 pieces, nor above the window. */
static const struct round floor8[] = {
	{ 1000, 2048, false, 16 },	/* doubled */
	{ 1000, 2048, true,  8 },	/* halved */
	{ 1000, 2048, false, 8 },	/* not judged */
	{ 1000, 2048, true,  8 },	/* 8 is the floor */
};

static const struct round small[] = {
	{ 1000, 2048, false, 4 },	/* doubling, clamped to the limit */
	{ 1000, 2048, true,  4 },	/* smaller than the floor: kept */
};

static void test_traces(void)
{
	struct trace t;

	trace_start(&t, 63);
	run("flat", &t, flat, sizeof(flat) / sizeof(flat[0]));
	run("yield", &t, yield, sizeof(yield) / sizeof(yield[0]));

	/* From a step up (38, rate 2048 per ms behind it). */
	trace_start(&t, 63);
	run("flat", &t, flat, 3);
	run("yield", &t, yield, 10);
	run("climb", &t, climb, sizeof(climb) / sizeof(climb[0]));

	trace_start(&t, 63);
	run("floor8", &t, floor8, sizeof(floor8) / sizeof(floor8[0]));

	trace_start(&t, 4);
	run("small", &t, small, sizeof(small) / sizeof(small[0]));
}

/* Rule 1: a round is at least 20 ms and as many pieces as the window. */
static void test_round_length(void)
{
	struct trace t;
	unsigned int i;

	trace_start(&t, 63);
	for (i = 0; i < 19; i++)
		CHECK(!clone_window_sample(&t.w, t.now += MS, 2048, MS));
	CHECK(clone_window_sample(&t.w, t.now += MS, 2048, MS));
	clone_window_next(&t.w, t.now, false, 63);
	CHECK(t.w.size == 16);

	/* 16 pieces in 20 ms end nothing before 20 ms... */
	for (i = 0; i < 16; i++)
		CHECK(!clone_window_sample(&t.w, t.now += MS / 2, 2048, MS));
	/* ...and after 20 ms, the round ends. */
	CHECK(clone_window_sample(&t.w, t.now += 12 * MS, 2048, MS));
}

/* Rule 1: after a pause the first sample starts a round, uncounted. */
static void test_pause(void)
{
	struct trace t;

	trace_start(&t, 63);
	CHECK(!clone_window_sample(&t.w, t.now += MS, 2048, MS));
	CHECK(t.w.round_pieces == 1);
	t.now += CLONE_WINDOW_EPOCH_NS + 1;
	CHECK(!clone_window_sample(&t.w, t.now, 2048, MS));
	CHECK(t.w.round_pieces == 0 && t.w.round_start_ns == t.now);
}

/* Rule 7: a zero limit still leaves one piece; a zero round trip counts. */
static void test_limits(void)
{
	struct trace t;
	unsigned int i;

	trace_start(&t, 0);
	for (i = 0; i < 20; i++)
		clone_window_sample(&t.w, t.now += MS, 2048, 0);
	CHECK(clone_window_next(&t.w, t.now, false, 0) == 1);
	CHECK(t.w.base_ns == 1);
}

int main(void)
{
	test_traces();
	test_round_length();
	test_pause();
	test_limits();
	UNIT_DONE();
}
