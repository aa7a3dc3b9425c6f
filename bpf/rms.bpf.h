/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The rms policy: rate-monotonic priorities, with no config. A thread whose
 * wakeups recur at a stable period (period.bpf.h detects it, and admits its
 * share of a CPU) runs at RMS_RANK_PERIODIC keyed by its period: ahead of
 * every aperiodic thread, the shortest period first, and on waking it takes
 * the CPU of any thread of a longer period or none. Within each period it
 * keeps that rank for its budget only (period_budget()); past it, it runs
 * as an aperiodic thread for the rest of that activation, which counts
 * against its detection as a wakeup off its grid would, so a thread that
 * grows into a CPU hog cannot starve the machine. Aperiodic threads run at
 * RMS_RANK_SHARED in vtime order, as under vtime, and a waking one takes
 * the CPU of one further ahead in vtime: a thread not yet found periodic
 * does not wait out a CPU hog's slice.
 *
 * A period is below RANK_SPAN (a second at most) and an aperiodic thread's
 * key is its vtime ranked one RANK_SPAN up, so a key below RANK_SPAN is a
 * period, which is neither kept near the LLC's vtime_now() nor advances it,
 * as edf's deadlines.
 *
 * No timer ends a periodic thread's run at its budget, as edf's does: slices
 * end at ticks, so a periodic thread may overrun its budget by up to a tick
 * in an activation (4 ms at HZ=250).
 */
#ifndef __LLMOS_RMS_BPF_H
#define __LLMOS_RMS_BPF_H

#include "llmos.bpf.h"
#include "period.bpf.h"

#define RMS_RANK_PERIODIC 0
#define RMS_RANK_SHARED 1

/* Whether @tctx's thread runs at its period's rank after @used ns more of its activation. */
static bool rms_periodic_after(const struct task_ctx *tctx, u64 used)
{
	return is_periodic(tctx) && tctx->act_used + used < period_budget(tctx);
}

static bool rms_periodic(const struct task_ctx *tctx)
{
	return rms_periodic_after(tctx, 0);
}

static u32 rms_rank(const struct task_ctx *tctx)
{
	return rms_periodic(tctx) ? RMS_RANK_PERIODIC : RMS_RANK_SHARED;
}

/* A periodic thread's slice is what is left of its budget, if less. */
static u64 rms_slice(const struct task_ctx *tctx, u64 used)
{
	u64 left;

	if (!rms_periodic_after(tctx, used))
		return tunables.slice_ns;
	left = period_budget(tctx) - tctx->act_used - used;
	return left < tunables.slice_ns ? left : tunables.slice_ns;
}

/*
 * The rank, and in *@slice the slice, and in *@key the key (its period or
 * @vtime) that a thread which has run @used ns of its turn keeps its CPU
 * with (see policy_prev_turn()).
 */
static u32 rms_prev_rank(const struct task_ctx *tctx, u64 used, u64 vtime, u64 *slice, u64 *key)
{
	*slice = rms_slice(tctx, used);
	if (!rms_periodic_after(tctx, used)) {
		*key = vtime;
		return RMS_RANK_SHARED;
	}
	*key = tctx->period_ns;
	return RMS_RANK_PERIODIC;
}

#endif /* __LLMOS_RMS_BPF_H */
