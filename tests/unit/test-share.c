// SPDX-License-Identifier: GPL-2.0-only
/*
 * Unit tests of dm-clone-share.h, the rules by which the background pass
 * gives way to the user's reads of the source: each rule alone, then two
 * sources simulated read by read: a link with a queue (each read waits
 * behind what the pass has in flight on it) and a source that only adds a
 * latency (reads wait for nothing). On the first the reads must come back
 * close to the source's own round trip; on the second the pass must go
 * on as if there were no reads, but for its probes.
 */
#include "unit.h"
#include "dm-clone-share.h"

#define MS	1000000ULL
#define T0	(1000 * 1000 * MS)	/* a clock far from zero */

/* What the pass may have in flight at @now, checking *left. */
static unsigned int pass(const struct clone_share *s, u64 now)
{
	u64 left = 0;
	unsigned int n = clone_share_pass(s, now, &left);

	if (n == CLONE_SHARE_ANY)
		return n;
	CHECK(left > 0);
	CHECK(left == (s->probe_until > now ? s->probe_until - now :
		       s->last_sent + clone_share_quiet(s) - now + 1));
	return n;
}

/* Rule 4: the first read probes; a clean read ends the probe. */
static void test_probe(void)
{
	struct clone_share s = { 0 };
	u64 now = T0;

	CHECK(pass(&s, now) == CLONE_SHARE_ANY);
	clone_share_sent(&s, now);
	CHECK(pass(&s, now) == 0);
	CHECK(pass(&s, now + CLONE_SHARE_PROBE_NS - 1) == 0);
	CHECK(pass(&s, now + CLONE_SHARE_PROBE_NS) == CLONE_SHARE_ANY);
	/* Reads sent during the probe start no other. */
	clone_share_sent(&s, now + 10 * MS);
	CHECK(s.probe_until == now + CLONE_SHARE_PROBE_NS);
	/* A read sent with the pass's copies still in flight: no base. */
	clone_share_done(&s, now, now + 40 * MS, false);
	CHECK(s.base_ns == 0);
	CHECK(pass(&s, now + 40 * MS) == 0);
	/* A clean one: the base, and the pass goes on at once. */
	clone_share_done(&s, now + 10 * MS, now + 22 * MS, true);
	CHECK(s.base_ns == 12 * MS);
	CHECK(pass(&s, now + 22 * MS) == CLONE_SHARE_ANY);
	CHECK(s.probe_until == 0);
	/* A fresh base: no probe. */
	clone_share_sent(&s, now + 30 * MS);
	CHECK(pass(&s, now + 30 * MS) == CLONE_SHARE_ANY);
	/* An old one: a probe again. */
	now += 22 * MS + CLONE_SHARE_BASE_NS + 1;
	clone_share_sent(&s, now);
	CHECK(pass(&s, now) == 0);
	CHECK(s.probe_until == now + CLONE_SHARE_PROBE_NS);
}

/* Rule 4: a probe that gets no clean read keeps the base, and waits. */
static void test_probe_in_vain(void)
{
	struct clone_share s = { 0 };
	u64 now = T0;

	clone_share_sent(&s, now);
	clone_share_done(&s, now, now + 5 * MS, true);
	CHECK(s.base_ns == 5 * MS);
	now += CLONE_SHARE_BASE_NS + 10 * MS;
	clone_share_sent(&s, now);
	CHECK(s.probe_until);
	now += CLONE_SHARE_PROBE_NS + MS;
	clone_share_sent(&s, now);		/* the probe is over */
	CHECK(s.probe_until == 0);
	CHECK(s.base_ns == 5 * MS);
	CHECK(pass(&s, now) == CLONE_SHARE_ANY);
	/* And the next probe only after CLONE_SHARE_BASE_NS. */
	clone_share_sent(&s, now + CLONE_SHARE_BASE_NS);
	CHECK(!s.probe_until);
	clone_share_sent(&s, now + CLONE_SHARE_BASE_NS + 1);
	CHECK(s.probe_until);
}

/* Rules 2 and 3: slow reads bound the pass, reads near the base not. */
static void test_bound(void)
{
	struct clone_share s = { 0 };
	u64 now = T0, t, q;
	int i;

	clone_share_sent(&s, now);
	clone_share_done(&s, now, now + 10 * MS, true);
	CHECK(pass(&s, now + 10 * MS) == CLONE_SHARE_ANY);
	/* Twice the base plus the slack is not over it yet. */
	for (i = 0, t = now + 20 * MS; i < 20; i++, t += 20 * MS) {
		clone_share_sent(&s, t - 22 * MS);
		clone_share_done(&s, t - 22 * MS, t, false);
	}
	CHECK(s.avg_ns <= 2 * s.base_ns + CLONE_SHARE_SLACK_NS);
	CHECK(pass(&s, t) == CLONE_SHARE_ANY);
	for (i = 0; i < 20; i++, t += 20 * MS)
		clone_share_done(&s, t - 12 * MS, t, false);
	/* Reads four times the base: the average gets there, one copy. */
	for (i = 0; i < 3 && pass(&s, t) == CLONE_SHARE_ANY; i++, t += 20 * MS) {
		clone_share_sent(&s, t - 40 * MS);
		clone_share_done(&s, t - 40 * MS, t, false);
	}
	t -= 20 * MS;
	CHECK(i == 2);			/* an average, not one read */
	CHECK(pass(&s, t) == 1);
	/* Slower still: the pass waits. */
	clone_share_sent(&s, t);
	clone_share_done(&s, t, t + 40 * MS, false);
	t += 40 * MS;
	CHECK(pass(&s, t) == 0);
	clone_share_done(&s, t - 40 * MS, t, false);
	CHECK(pass(&s, t) == 0);
	/* A clean read raises the bound, whatever its round trip. */
	clone_share_done(&s, t - 40 * MS, t, true);
	CHECK(pass(&s, t) == 1);
	/* Fast reads raise it one by one, until it goes. */
	for (i = 0; i < 100 && pass(&s, t) != CLONE_SHARE_ANY; i++) {
		clone_share_sent(&s, t);
		t += 10 * MS;
		clone_share_done(&s, t - 10 * MS, t, false);
	}
	CHECK(i >= CLONE_SHARE_MAX - 1 && i < 100);
	/*
	 * The bound lasts while reads come, not after: a quiet second past
	 * the reads' average round trip (a read in flight is not over).
	 */
	clone_share_sent(&s, t);
	clone_share_done(&s, t, t + 200 * MS, false);
	t += 200 * MS;
	q = clone_share_quiet(&s);
	CHECK(q == CLONE_SHARE_QUIET_NS + s.avg_ns);
	CHECK(pass(&s, t) == 1);
	CHECK(pass(&s, t - 200 * MS + q) == 1);
	CHECK(pass(&s, t - 200 * MS + q + 1) == CLONE_SHARE_ANY);
	/* And the first read after that starts without one. */
	t += q;
	clone_share_sent(&s, t);
	CHECK(pass(&s, t) == CLONE_SHARE_ANY);
	/* Its average starts again from it. */
	clone_share_done(&s, t, t + 11 * MS, false);
	CHECK(s.avg_ns == 11 * MS);
	/* A probe within a bound: nothing, then the bound again. */
	clone_share_sent(&s, t);
	clone_share_done(&s, t, t + 100 * MS, false);
	CHECK(pass(&s, t + 100 * MS) == 1);
	t += 100 * MS;
	s.base_at = t - CLONE_SHARE_BASE_NS - 1;
	clone_share_sent(&s, t);
	CHECK(pass(&s, t) == 0);
	clone_share_done(&s, t, t + 10 * MS, true);
	CHECK(pass(&s, t + 10 * MS) == 2);
}

/*
 * Rule 3: once there is a bound, reads an eighth over the base (plus the
 * slack) lower it, where they would not have set one.
 */
static void test_bound_holds(void)
{
	struct clone_share s = { 0 };
	u64 t = T0;
	unsigned int b;
	int i;

	clone_share_sent(&s, t);
	clone_share_done(&s, t, t + 10 * MS, true);
	t += 10 * MS;
	/* 15 ms reads: not slow enough to set a bound. */
	for (i = 0; i < 20; i++, t += 15 * MS) {
		clone_share_sent(&s, t);
		clone_share_done(&s, t, t + 15 * MS, false);
	}
	CHECK(pass(&s, t) == CLONE_SHARE_ANY);
	/* 40 ms reads set one; 10 ms reads raise it. */
	for (i = 0; i < 3; i++, t += 40 * MS) {
		clone_share_sent(&s, t);
		clone_share_done(&s, t, t + 40 * MS, false);
	}
	CHECK(pass(&s, t) != CLONE_SHARE_ANY);
	for (i = 0; i < 20; i++, t += 10 * MS) {
		clone_share_sent(&s, t);
		clone_share_done(&s, t, t + 10 * MS, false);
	}
	b = pass(&s, t);
	CHECK(b >= 8 && b != CLONE_SHARE_ANY);
	/* Now 15 ms reads lower it (10 + 1.25 + 2 ms is the mark). */
	for (i = 0; i < 20 && pass(&s, t) >= b; i++, t += 15 * MS) {
		clone_share_sent(&s, t);
		clone_share_done(&s, t, t + 15 * MS, false);
	}
	CHECK(pass(&s, t) < b);
	/* And 12 ms ones raise it again. */
	b = pass(&s, t);
	for (i = 0; i < 20; i++, t += 12 * MS) {
		clone_share_sent(&s, t);
		clone_share_done(&s, t, t + 12 * MS, false);
	}
	CHECK(pass(&s, t) > b);
}

/* Rule 1: a source that got slower for good gets a new base. */
/*
 * Rule 3 with reads slower than the quiet second (behind a queue of more
 * than a second of the pass's copies, or over a slow link): the read in
 * flight still goes on, and the next one, sent as it comes back, keeps
 * the bound.
 */
static void test_long_reads(void)
{
	struct clone_share s = { 0 };
	u64 t = T0;

	clone_share_sent(&s, t);
	clone_share_done(&s, t, t + 10 * MS, true);
	t += 10 * MS;
	/* A read that waited 1.5 s behind the pass: a bound of 1. */
	clone_share_sent(&s, t);
	clone_share_done(&s, t, t + 1500 * MS, false);
	t += 1500 * MS;
	CHECK(pass(&s, t) == 1);
	/* The next read, as slow: the bound holds all along, then halves. */
	clone_share_sent(&s, t);
	CHECK(pass(&s, t) == 1);
	CHECK(pass(&s, t + 1400 * MS) == 1);
	clone_share_done(&s, t, t + 1500 * MS, false);
	t += 1500 * MS;
	CHECK(pass(&s, t) == 0);
	clone_share_sent(&s, t);
	CHECK(pass(&s, t + 1400 * MS) == 0);
	/* Reads that stop: the bound ends a quiet second past their time. */
	CHECK(pass(&s, t + CLONE_SHARE_QUIET_NS + s.avg_ns + 1) ==
	      CLONE_SHARE_ANY);
}

static void test_base_ages(void)
{
	struct clone_share s = { 0 };
	u64 now = T0;

	clone_share_sent(&s, now);
	clone_share_done(&s, now, now + 5 * MS, true);
	clone_share_done(&s, now, now + 8 * MS, true);
	CHECK(s.base_ns == 5 * MS);
	now += CLONE_SHARE_BASE_NS + 10 * MS;
	clone_share_done(&s, now - 30 * MS, now, true);
	CHECK(s.base_ns == 30 * MS);
}

struct sim {
	u64 reads_ms;		/* the reads' round trips, summed */
	unsigned int reads;
	unsigned int pieces;	/* the pass's pieces sent */
	u64 piece_ms;		/* and their transfer times, summed */
};

/*
 * A source read by read for @secs seconds: reads one after the other
 * (each sent when the last came back), the pass sending a piece of
 * @piece_ms of transfer (@small_ms while it is bounded: rule 5) whenever
 * the rules and its @window allow. @queue: a link that sends one thing at
 * a time, in order (a read waits for every piece sent before it); else
 * each read and piece takes only @lat_ms and its own transfer.
 */
static void simulate(struct sim *r, bool queue, u64 lat_ms, u64 read_ms,
		     u64 piece_ms, u64 small_ms, unsigned int window, u64 secs)
{
	struct clone_share s = { 0 };
	u64 now = T0, end = T0 + secs * 1000 * MS;
	u64 link_free = now;	/* when the link has sent all it was given */
	u64 pieces[64];		/* when each piece in flight comes back */
	unsigned int n = 0, i, allowed;
	u64 sent, back, t, p;
	bool clean;

	*r = (struct sim){ 0 };
	while (now < end) {
		sent = now;
		clean = !n;
		clone_share_sent(&s, sent);
		if (queue) {
			t = link_free > sent ? link_free : sent;
			link_free = t + read_ms * MS;
			back = link_free + lat_ms * MS;
		} else {
			back = sent + (lat_ms + read_ms) * MS;
		}
		/* The pass meanwhile, millisecond by millisecond. */
		for (; now < back; now += MS) {
			for (i = 0; i < n; )
				if (pieces[i] <= now)
					pieces[i] = pieces[--n];
				else
					i++;
			allowed = pass(&s, now);
			p = allowed == CLONE_SHARE_ANY ? piece_ms : small_ms;
			while (n < window && n < allowed) {
				if (queue) {
					t = link_free > now ? link_free : now;
					link_free = t + p * MS;
					pieces[n++] = link_free + lat_ms * MS;
				} else {
					pieces[n++] = now + (lat_ms + p) * MS;
				}
				r->pieces++;
				r->piece_ms += p;
			}
		}
		clone_share_done(&s, sent, back, clean);
		r->reads_ms += (back - sent) / MS;
		r->reads++;
	}
}

static void test_simulated(void)
{
	struct sim link, free_, lat, lat_free;

	/*
	 * 128 KiB reads and 1 MiB pieces over 50 MB/s, 10 ms away; pieces
	 * of 64 KiB (1 ms there) while the pass is bounded; a copy window
	 * of 48 pieces (what it reaches over such a link).
	 */
	simulate(&link, true, 10, 3, 20, 1, 48, 30);
	simulate(&free_, true, 10, 3, 20, 1, 0, 30);
	printf("link: reads %llu ms (%llu ms with no pass), pieces %u (%llu ms of the link) in 30 s\n",
	       (unsigned long long)(link.reads_ms / link.reads),
	       (unsigned long long)(free_.reads_ms / free_.reads), link.pieces,
	       (unsigned long long)link.piece_ms);
	/*
	 * The reads come back within a third of the source's own time
	 * (with pieces of 1 MiB under the bound, 24 ms against 13; with
	 * the bound lowered only past twice the base, 22).
	 */
	CHECK(link.reads_ms * 3 <= free_.reads_ms * 4 * link.reads / free_.reads);
	/* And the pass still has a part of the link: a tenth at least. */
	CHECK(link.piece_ms * 10 >= 30 * 1000);

	/*
	 * A window of 64 pieces: 1.3 s of the link queued ahead of a read,
	 * longer than the quiet second (before the quiet time counted the
	 * reads' own round trip, each read waited the whole queue: 1.2 s).
	 */
	simulate(&link, true, 10, 3, 20, 1, 64, 30);
	printf("link, 64 pieces: reads %llu ms\n",
	       (unsigned long long)(link.reads_ms / link.reads));
	CHECK(link.reads_ms * 3 <= free_.reads_ms * 4 * link.reads / free_.reads);
	/*
	 * 10 MB/s: 128 KiB reads take 13 ms of the link, 1 MiB pieces 100,
	 * 64 KiB ones 7; 48 pieces are 4.8 s of it. Reads within twice
	 * their own time (30 s of reads waiting behind whole queues: 4.8 s
	 * each before).
	 */
	simulate(&link, true, 10, 13, 100, 7, 48, 30);
	simulate(&free_, true, 10, 13, 100, 7, 0, 30);
	printf("10 MB/s link: reads %llu ms (%llu ms with no pass), pass %llu ms of the link in 30 s\n",
	       (unsigned long long)(link.reads_ms / link.reads),
	       (unsigned long long)(free_.reads_ms / free_.reads),
	       (unsigned long long)link.piece_ms);
	CHECK(link.reads_ms <= free_.reads_ms * 2 * link.reads / free_.reads);
	CHECK(link.piece_ms * 10 >= 30 * 1000);

	/* The same sizes from a source that answers in 10 ms, no queue. */
	simulate(&lat, false, 10, 0, 1, 1, 8, 30);
	simulate(&lat_free, false, 10, 0, 1, 1, 0, 30);
	printf("latency: reads %llu ms, %u pieces in 30 s\n",
	       (unsigned long long)(lat.reads_ms / lat.reads), lat.pieces);
	/* The pass loses only its probes: one a few seconds, a read long. */
	CHECK(lat.pieces * 100 >= 95 * (30 * 1000 / 11) * 8);
	CHECK(lat.reads_ms == lat_free.reads_ms);
}

int main(void)
{
	test_probe();
	test_probe_in_vain();
	test_bound();
	test_bound_holds();
	test_long_reads();
	test_base_ages();
	test_simulated();
	UNIT_DONE();
}
