/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * dm-clone's copy window: how many pieces of background copying may be in
 * flight when the user gave no hydration_threshold. Pure arithmetic on one
 * state struct, with no kernel state, shared by the copy engine
 * (dm-clone-copier.c) and the userspace unit tests (tests/unit, which
 * provide u64 and bool).
 *
 * Why a window: a few pieces in flight keep a local disk busy, and more
 * only make them wait for each other (and the user writes waiting for
 * regions in flight wait with them); a remote source needs many in flight
 * to hide its latency. The window finds the number from what it sees.
 *
 * Every background piece that ends is a sample (its sectors, its round
 * trip). Samples are gathered into rounds; at the end of a round the
 * window changes by the first of these rules that applies:
 *
 *  1. A round lasts at least CLONE_WINDOW_ROUND_NS and as many samples as
 *     the window. A sample coming more than CLONE_WINDOW_EPOCH_NS after
 *     the round began (copying paused) starts a new round and is not
 *     counted.
 *  2. The round right after a change (other than a doubling) is not
 *     judged: its pieces started under the old window. User writes that
 *     waited during it count in the next round.
 *  3. User writes waited for regions in flight: halve the window, not
 *     below CLONE_WINDOW_YIELD (nor above what it was), and hold it for
 *     CLONE_WINDOW_HOLD rounds. User I/O first.
 *  4. The round's mean round trip is under CLONE_WINDOW_FREE percent of
 *     the base (the shortest round mean of this epoch or the last; epochs
 *     are CLONE_WINDOW_EPOCH_NS long): pieces do not wait for each other,
 *     so double. The next round judges the doubled window on its own
 *     round trips (a burst of new pieces cannot make them look shorter).
 *  5. Growing (the last change was a step up): if the round copied at
 *     least CLONE_WINDOW_GAIN percent as fast as the one before, step up
 *     again by a quarter (at least one piece); else go back to the window
 *     before that step and hold for CLONE_WINDOW_HOLD rounds.
 *  6. Not growing: when the hold is over, step up by a quarter.
 *  7. The window stays within 1 and the limit the caller gives (the
 *     buffers background copies may use).
 */

#ifndef DM_CLONE_WINDOW_H
#define DM_CLONE_WINDOW_H

#ifdef __KERNEL__
#include <linux/math64.h>
#define clone_window_div(a, b)	div64_u64(a, b)
#else
#define clone_window_div(a, b)	((a) / (b))
#endif

#define CLONE_WINDOW_START		8		/* pieces */
#define CLONE_WINDOW_YIELD		8		/* pieces */
#define CLONE_WINDOW_ROUND_NS		20000000ULL	/* 20 ms */
#define CLONE_WINDOW_EPOCH_NS		10000000000ULL	/* 10 s */
#define CLONE_WINDOW_FREE		150		/* percent */
#define CLONE_WINDOW_GAIN		110		/* percent */
#define CLONE_WINDOW_HOLD		8		/* rounds */

struct clone_window {
	unsigned int size;		/* pieces */
	unsigned int before;		/* the size before the last step up */
	unsigned int hold;		/* rounds before stepping up again */
	bool growing;			/* the last change was a step up */
	bool settle;			/* changed: the next round is not judged */

	/* The round being gathered. */
	u64 round_start_ns;
	unsigned int round_pieces;
	u64 round_sectors;
	u64 round_rtt_ns;		/* the samples' round trips, summed */

	/* What earlier rounds left. */
	u64 last_rate;			/* sectors per second */
	u64 base_ns;			/* the base round trip (rule 4) */
	u64 epoch_min_ns;		/* shortest round mean of this epoch */
	u64 epoch_start_ns;
};

static inline void clone_window_init(struct clone_window *w)
{
	*w = (struct clone_window){
		.size = CLONE_WINDOW_START,
		.growing = true,
	};
}

static inline void clone_window_start_round(struct clone_window *w, u64 now)
{
	w->round_start_ns = now;
	w->round_pieces = 0;
	w->round_sectors = 0;
	w->round_rtt_ns = 0;
}

/*
 * A background piece of @sectors ended at @now after @rtt_ns. Returns true
 * when it ends a round (rule 1): call clone_window_next() then.
 */
static inline bool clone_window_sample(struct clone_window *w, u64 now,
				       u64 sectors, u64 rtt_ns)
{
	u64 elapsed = now - w->round_start_ns;

	if (elapsed > CLONE_WINDOW_EPOCH_NS) {
		clone_window_start_round(w, now);
		return false;
	}
	w->round_rtt_ns += rtt_ns ? rtt_ns : 1;
	w->round_sectors += sectors;
	return ++w->round_pieces >= w->size && elapsed >= CLONE_WINDOW_ROUND_NS;
}

/*
 * Is the round that just ended judged (rule 2)? If not, the caller keeps
 * its count of waiting writes for the next one.
 */
static inline bool clone_window_judged(const struct clone_window *w)
{
	return !w->settle;
}

static inline unsigned int clone_window_step_up(struct clone_window *w,
						unsigned int s)
{
	w->growing = true;
	w->before = s;
	return s + (s / 4 ? s / 4 : 1);
}

/*
 * End the round that clone_window_sample() closed at @now: the new
 * window, by rules 2 to 7. @writes_waited: user writes waited for regions
 * in flight during the round; @limit: the most pieces allowed.
 */
static inline unsigned int clone_window_next(struct clone_window *w, u64 now,
					     bool writes_waited,
					     unsigned int limit)
{
	u64 elapsed = now - w->round_start_ns;
	u64 rate = clone_window_div(w->round_sectors * 1000000000ULL,
				    elapsed ? elapsed : 1);
	u64 avg = clone_window_div(w->round_rtt_ns,
				   (u64)(w->round_pieces ? w->round_pieces : 1));
	unsigned int s = w->size, yield;
	bool doubled = false;

	/* The base: a round's mean, not the shortest sample (jitter). */
	if (now - w->epoch_start_ns > CLONE_WINDOW_EPOCH_NS) {
		w->base_ns = w->epoch_min_ns ? w->epoch_min_ns : avg;
		w->epoch_min_ns = 0;
		w->epoch_start_ns = now;
	}
	if (!w->epoch_min_ns || avg < w->epoch_min_ns)
		w->epoch_min_ns = avg;
	if (!w->base_ns || avg < w->base_ns)
		w->base_ns = avg;

	if (w->settle) {
		w->settle = false;
		clone_window_start_round(w, now);
		return s;
	}

	if (writes_waited) {
		yield = s < CLONE_WINDOW_YIELD ? s : CLONE_WINDOW_YIELD;
		s = s / 2 > yield ? s / 2 : yield;
		w->growing = false;
		w->hold = CLONE_WINDOW_HOLD;
	} else if (avg * 100 < w->base_ns * CLONE_WINDOW_FREE) {
		w->growing = false;
		w->hold = 0;
		s *= 2;
		doubled = true;
	} else if (w->growing) {
		if (rate * 100 >= w->last_rate * CLONE_WINDOW_GAIN) {
			s = clone_window_step_up(w, s);
		} else {
			s = w->before;
			w->growing = false;
			w->hold = CLONE_WINDOW_HOLD;
		}
	} else if (!w->hold || !--w->hold) {
		s = clone_window_step_up(w, s);
	}

	if (!limit)
		limit = 1;
	if (s > limit)
		s = limit;
	if (s < 1)
		s = 1;
	w->settle = !doubled && s != w->size;
	w->size = s;
	w->last_rate = rate;
	clone_window_start_round(w, now);
	return s;
}

#endif /* DM_CLONE_WINDOW_H */
