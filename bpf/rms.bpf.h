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
 * Slices end only at ticks (4 ms apart at HZ=250), and a budget is often
 * shorter: each CPU's budget timer ends a periodic thread's turn when its
 * budget runs out (rms_running()).
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
 * Each CPU's budget timer, armed for the turn (running[].turn) in which a
 * periodic thread got the CPU: a thread that has let go of it since is not
 * the one to end. Without it a thread past its budget kept its period's
 * rank until the next tick: a thread of a longer period woken with it
 * waited that long behind it (7.2, 1 vCPU: beside a thread working 0.3 ms
 * every 8.5 ms and 7 ms every sixth period, one of 17 ms that had to be
 * done 4.5 ms in waited 2.1-5.4 ms, by the tick's phase, and was late at
 * 68-79 of its 411 periods; 0-2 with the timer, after ~2 ms).
 */
struct budget_timer {
	struct bpf_timer timer;
	u32 turn;
	s32 cpu;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LLMOS_MAX_CPUS);
	__type(key, u32);
	__type(value, struct budget_timer);
} budget_timers SEC(".maps");

/* The budget of the thread its CPU ran in that turn is spent: its CPU decides again. */
static int budget_spent(void *map, int *key, struct budget_timer *bt)
{
	s32 cpu = bt->cpu;

	if (running[cpu_idx(cpu)].turn == bt->turn)
		kick_cpu(cpu, SCX_KICK_PREEMPT);
	return 0;
}

/* At load: each CPU's budget timer. */
static s32 rms_init(void)
{
	struct budget_timer *bt;
	s32 err;
	u32 i;

	bpf_for(i, 0, nr_cpu_ids) {
		bt = bpf_map_lookup_elem(&budget_timers, &i);
		if (!bt)
			return -ENOENT;
		bt->cpu = i;
		err = bpf_timer_init(&bt->timer, &budget_timers, CLOCK_MONOTONIC);
		if (!err)
			err = bpf_timer_set_callback(&bt->timer, budget_spent);
		if (err)
			return err;
	}
	return 0;
}

/* A periodic thread got @cpu: the CPU's timer ends its turn when its budget runs out. */
static void rms_running(const struct task_ctx *tctx, s32 cpu)
{
	u32 key = cpu;
	struct budget_timer *bt;

	if (!rms_periodic(tctx))
		return;
	bt = bpf_map_lookup_elem(&budget_timers, &key);
	if (!bt)
		return;
	bt->turn = running[cpu_idx(cpu)].turn;
	bpf_timer_start(&bt->timer, period_budget(tctx) - tctx->act_used, 0);
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
