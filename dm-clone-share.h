/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone's share of the source with the user's reads: when the
 * background pass makes the user's reads of uncopied regions wait, it
 * gives way. Pure arithmetic on one state struct, with no kernel state,
 * shared by the hydration (dm-clone-hydration.c) and the userspace unit
 * tests (tests/unit, which provide u64 and bool).
 *
 * Why: reads of uncopied regions go to the source. Over a link with a
 * bandwidth (NBD, iSCSI), the pass's copies fill it, and each read waits
 * in the link's queue behind them: a program started on the clone read
 * its files several times slower than from the source alone. Over a
 * source that is only slow to answer (a latency, no queue), the reads lose
 * nothing to the copies, and slowing the pass would only make hydration
 * slower. What tells the two apart is the reads' own round trips: as long
 * as they take about what they take with no copy of the pass ahead of
 * them, the pass goes on as it would.
 *
 * The rules, on the round trips (in ns) of reads sent to the source:
 *
 *  1. A read sent while the pass has no copy in flight is *clean*: its
 *     round trip is the source's own. The base is the shortest clean
 *     round trip; one set more than CLONE_SHARE_BASE_NS ago gives way to
 *     the next clean one (a source may get slower for good).
 *  2. Each round trip moves the average a quarter of the way (the first
 *     after CLONE_SHARE_QUIET_NS without any sets it).
 *  3. While reads go on (one sent in the last CLONE_SHARE_QUIET_NS plus
 *     their average round trip: a read is not over while in flight, and
 *     behind a queue of more than that second, or over a slow link, it
 *     may take longer), the copies the pass has in flight are bounded. A
 *     read that comes back with the average over twice the base plus
 *     CLONE_SHARE_SLACK_NS sets the bound to 1: the reads wait in a
 *     queue. While there is a bound,
 *     a read that comes back with the average over the base plus an
 *     eighth plus CLONE_SHARE_SLACK_NS halves it (it may reach 0: the
 *     pass waits); any other read, and any clean one, raises it by one,
 *     and at CLONE_SHARE_MAX it is gone. So the pass keeps what the reads
 *     leave of the source, and the reads come back in about what the
 *     source alone takes. The copies the reads asked for, and prefetched
 *     ranges, are not the pass's: they go on as before.
 *  4. A read sent with no base, or a base older than CLONE_SHARE_BASE_NS,
 *     starts a probe: the pass starts nothing for at most
 *     CLONE_SHARE_PROBE_NS, its copies in flight drain, and the first
 *     clean read to come back ends the probe. A probe that gets none
 *     leaves the base as it was, and counts as a measurement (no new
 *     probe for CLONE_SHARE_BASE_NS).
 *  5. While there is a bound, the pass's copies are small (at most
 *     CLONE_SHARE_PIECE_SECTORS): a read waits behind whole copies, and a
 *     piece of 1 MiB holds a 50 MB/s link for 20 ms, longer than the
 *     source takes to answer; with pieces of 64 KiB (1.3 ms there) the
 *     pass keeps a few in flight between reads that still come back
 *     near the source's own time.
 */

#ifndef DM_CLONE_SHARE_H
#define DM_CLONE_SHARE_H

#define CLONE_SHARE_BASE_NS		5000000000ULL	/* 5 s */
#define CLONE_SHARE_QUIET_NS		1000000000ULL	/* 1 s */
#define CLONE_SHARE_PROBE_NS		1000000000ULL	/* 1 s */
#define CLONE_SHARE_MAX			64		/* copies */
#define CLONE_SHARE_SLACK_NS		2000000ULL	/* 2 ms */
#define CLONE_SHARE_PIECE_SECTORS	128		/* 64 KiB */

/* No bound (rule 3). */
#define CLONE_SHARE_ANY			(~0U)

struct clone_share {
	u64 base_ns;		/* rule 1; 0: none */
	u64 base_at;		/* when set (or probed in vain) */
	u64 avg_ns;		/* rule 2 */
	u64 last_done;		/* the last read's return; 0: none yet */
	u64 last_sent;		/* the last read sent; 0: none yet */
	unsigned int bound;	/* rule 3; CLONE_SHARE_ANY: none */
	u64 probe_until;	/* rule 4: none; 0 when no probe is on */
};

/*
 * @now - @then, or 0 if @then is later: the callers read the clock before
 * they take the lock, so the times of reads on other CPUs interleave.
 */
static inline u64 clone_share_since(u64 now, u64 then)
{
	return now > then ? now - then : 0;
}

/* How long after the last read was sent reads no longer go on (rule 3). */
static inline u64 clone_share_quiet(const struct clone_share *s)
{
	return CLONE_SHARE_QUIET_NS + s->avg_ns;
}

/* A read goes to the source at @now (rule 4). */
static inline void clone_share_sent(struct clone_share *s, u64 now)
{
	if (!s->last_sent ||
	    clone_share_since(now, s->last_sent) > clone_share_quiet(s))
		s->bound = CLONE_SHARE_ANY;
	s->last_sent = now;
	if (s->probe_until) {
		if (now < s->probe_until)
			return;
		/* No clean read came: keep the base, try again later. */
		s->probe_until = 0;
		s->base_at = now;
	}
	if (s->base_at &&
	    clone_share_since(now, s->base_at) <= CLONE_SHARE_BASE_NS)
		return;
	s->probe_until = now + CLONE_SHARE_PROBE_NS;
}

/*
 * The average past which a read is slow (rule 3): twice the base to set
 * a bound, an eighth over it to keep lowering one.
 */
static inline u64 clone_share_slow(const struct clone_share *s)
{
	if (s->bound == CLONE_SHARE_ANY)
		return 2 * s->base_ns + CLONE_SHARE_SLACK_NS;
	return s->base_ns + s->base_ns / 8 + CLONE_SHARE_SLACK_NS;
}

/*
 * A read sent at @sent came back at @now; @clean: the pass had no copy in
 * flight when it was sent (rules 1 to 3).
 */
static inline void clone_share_done(struct clone_share *s, u64 sent, u64 now,
				    bool clean)
{
	u64 rtt = clone_share_since(now, sent) ?: 1;

	if (!s->last_done ||
	    clone_share_since(now, s->last_done) > CLONE_SHARE_QUIET_NS)
		s->avg_ns = rtt;
	else
		s->avg_ns = s->avg_ns - s->avg_ns / 4 + rtt / 4;
	s->last_done = now;
	if (clean) {
		if (!s->base_ns || rtt < s->base_ns ||
		    clone_share_since(now, s->base_at) > CLONE_SHARE_BASE_NS) {
			s->base_ns = rtt;
			s->base_at = now;
		}
		s->probe_until = 0;
	} else if (s->base_ns && s->avg_ns > clone_share_slow(s)) {
		s->bound = s->bound == CLONE_SHARE_ANY ? 1 : s->bound / 2;
		return;
	}
	if (s->bound != CLONE_SHARE_ANY && ++s->bound >= CLONE_SHARE_MAX)
		s->bound = CLONE_SHARE_ANY;
}

/*
 * How many copies the pass may have in flight at @now (rules 3 and 4), or
 * CLONE_SHARE_ANY; when bounded, *@left is how long the bound lasts at
 * most (if no read comes).
 */
static inline unsigned int clone_share_pass(const struct clone_share *s,
					    u64 now, u64 *left)
{
	if (s->probe_until > now) {
		*left = s->probe_until - now;
		return 0;
	}
	if (s->bound != CLONE_SHARE_ANY && s->last_sent &&
	    clone_share_since(now, s->last_sent) <= clone_share_quiet(s)) {
		*left = s->last_sent + clone_share_quiet(s) + 1 - now;
		return s->bound;
	}
	return CLONE_SHARE_ANY;
}

#endif /* DM_CLONE_SHARE_H */
