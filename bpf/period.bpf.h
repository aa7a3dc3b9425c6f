/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Period detection, under every policy: whether a thread's wakeups recur at
 * a stable period, which period, and whether each activation (its run from
 * a wakeup to its next sleep) ends by the next wakeup due. The rms policy
 * ranks the periodic threads by it (rms.bpf.h); `scx_llmos threads` shows
 * the period and the misses under any policy, and a switch to rms finds its
 * threads already known.
 *
 * A phase-locked loop on the wakeups: the next wakeup is expected one
 * period after the last expected one (next_wake), on a grid that one late
 * wakeup does not move, as a thread sleeping to absolute times wakes on
 * its grid again after it. A wakeup within an eighth of a period of a
 * point of the grid matches it, and moves the period by an eighth of its
 * error and the grid by a half, so the grid follows a thread that sleeps
 * for relative times (its wakeups drift by its run and its wait). A
 * thread is periodic after PERIOD_LOCK_MATCHES matches in a row whose
 * activations each ran at most half a period, once its share is admitted
 * (below); before a first match, a wakeup off the grid of a guess makes
 * the last interval the next guess at once. Each wakeup off the grid adds
 * PERIOD_MISS_SCORE to a score that each match takes 1 off, and at
 * PERIOD_FORGET_SCORE detection starts again from the last interval:
 * after three wakeups off the grid in a row, or one in every three or so
 * (a thread locked on twice its period, waking early every other time);
 * one late wakeup under load does not cost a periodic thread its rank. An
 * activation that ran past its budget (below) scores as a wakeup off the
 * grid. A sleep of more than PERIOD_FORGET_PERIODS periods starts
 * detection again at once.
 *
 * Admission: a periodic thread claims a share of a CPU, its mean
 * activation (an average that moves an eighth of the way to each new one)
 * and a quarter over its period, and the claims add up to at most 90% of
 * the CPUs online: a thread whose claim does not fit stays aperiodic, or
 * becomes so again when its mean grows past what fits, so what periodic
 * threads use leaves the others at least a tenth of the machine over time
 * (of the machine, not of each CPU: threads pinned to one CPU may claim
 * more of it). A claim follows its thread's mean (when it shrinks, by
 * more than a quarter, so that the shared sum is not written at every
 * wakeup). rms runs a periodic thread at its rank for up to its budget in
 * each period: twice its mean and BUDGET_SLACK_NS, at most half the
 * period. A spike is not a miss: under emulation an activation costs up
 * to 3x its mean now and then.
 */
#ifndef __LLMOS_PERIOD_BPF_H
#define __LLMOS_PERIOD_BPF_H

#include "llmos.bpf.h"

#define PERIOD_LOCK_MATCHES 4
/* A mismatch scores PERIOD_MISS_SCORE, a match takes 1 off; forgotten at PERIOD_FORGET_SCORE. */
#define PERIOD_MISS_SCORE 2
#define PERIOD_FORGET_SCORE 5
#define PERIOD_FORGET_PERIODS 4
/* Periods outside this range are not taken for one. */
#define PERIOD_MIN_NS 100000ULL		/* 100 us */
#define PERIOD_MAX_NS 1000000000ULL	/* 1 s */
/* Shares of a CPU, in 1/CLAIM_ONE: one CPU. */
#define CLAIM_SHIFT 10
#define CLAIM_ONE (1U << CLAIM_SHIFT)
#define CLAIM_MAX (CLAIM_ONE / 2)
/*
 * Beyond twice the mean, in a budget: a short activation's cost varies by
 * more than its own length (7.2, 1 vCPU: 0.5 ms of work cost 0.6 ms on
 * average and up to 2 ms; with budgets of twice the mean alone, 26 of 5,800
 * periods of such a thread were late, by at most 5.2 ms, the time the
 * longer periods' threads ahead of it take; 0 with this slack).
 */
#define BUDGET_SLACK_NS 500000ULL

/* The periodic threads' claims together (see above). */
static u64 period_claims;

/* Whether @tctx's thread is periodic: detected and admitted. */
static bool is_periodic(const struct task_ctx *tctx)
{
	return tctx->claim;
}

/* CPU time per period that @tctx's thread runs at its period's rank, if periodic. */
static u64 period_budget(const struct task_ctx *tctx)
{
	u64 budget = 2 * tctx->act_avg + BUDGET_SLACK_NS;

	return budget < tctx->period_ns / 2 ? budget : tctx->period_ns / 2;
}

/*
 * The CPUs online, whose 90% the claims may take: a machine may have many
 * more possible CPU ids than CPUs (a VM with room for CPUs to hot-add), and
 * claims up to 90% of those would leave the others nothing. Claims admitted
 * before CPUs went offline stay until they grow.
 */
static u32 nr_online_cpus(void)
{
	struct bpf_cpumask *online;
	u32 nr = 0;

	bpf_rcu_read_lock();
	online = online_cpus;
	if (online)
		nr = bpf_cpumask_weight(cast_mask(online));
	bpf_rcu_read_unlock();
	return nr ? nr : 1;
}

static void release_claim(struct task_ctx *tctx)
{
	if (!tctx->claim)
		return;
	__sync_fetch_and_add(&period_claims, -(u64)tctx->claim);
	tctx->claim = 0;
}

/*
 * Admits @tctx's thread, or moves its claim to what its mean activation now
 * asks, if that fits; if not, it is not periodic (again) until it does.
 */
static void update_claim(struct task_ctx *tctx)
{
	u64 have = tctx->claim, more, cap;
	u64 want = ((tctx->act_avg + tctx->act_avg / 4) << CLAIM_SHIFT) / tctx->period_ns + 1;

	if (want > CLAIM_MAX)
		want = CLAIM_MAX;
	if (want < have) {
		if (want < have - have / 4) {
			__sync_fetch_and_add(&period_claims, -(have - want));
			tctx->claim = want;
		}
		return;
	}
	more = want - have;
	if (!more)
		return;
	/* Only a claim that grows asks how many CPUs are online. */
	cap = (u64)nr_online_cpus() * CLAIM_ONE * 9 / 10;
	if (__sync_fetch_and_add(&period_claims, more) + more > cap) {
		__sync_fetch_and_add(&period_claims, -more);
		release_claim(tctx);
		return;
	}
	tctx->claim = want;
}

/* Starts detection afresh at a wakeup at @now. */
static void restart_detection(struct task_ctx *tctx, u64 now)
{
	u64 interval = tctx->wake_at ? now - tctx->wake_at : 0;

	release_claim(tctx);
	tctx->matches = 0;
	tctx->miss_score = 0;
	tctx->period_ns = interval >= PERIOD_MIN_NS && interval <= PERIOD_MAX_NS ? interval : 0;
	tctx->next_wake = now + tctx->period_ns;
}

/*
 * An activation's length, at most twice the mean, for the mean: one that a
 * guest stop or an interrupt storm stretched would otherwise raise a claim
 * for many periods, and while two threads' claims were so raised a third
 * could be refused. A thread whose activations grow still moves its mean
 * (by up to an eighth of it at each).
 */
static u64 bounded_sample(const struct task_ctx *tctx, u64 used)
{
	return used < 2 * tctx->act_avg ? used : 2 * tctx->act_avg;
}

/*
 * A thread woke up at @now. The grid point nearest the wakeup may be some
 * periods on from the one expected: a thread that was still running or
 * waiting for a CPU at the points it skipped missed them, and is on time
 * again (one starved while it is not yet periodic wakes on its grid only
 * every other period or so, and must be found all the same); one that
 * slept through them says nothing either way.
 */
static void period_wakeup(struct task_ctx *tctx, u64 now)
{
	u64 period = tctx->period_ns, last_run = tctx->act_used, tol, skipped, point;
	u64 limit = is_periodic(tctx) ? period_budget(tctx) : period / 2;
	s64 err;

	tctx->act_used = 0;
	/*
	 * Until a match, the mean is the last activation: a thread's first
	 * (its start, before its first sleep) or one of another pattern would
	 * seed a claim far below what its periods need (7.2, 1 vCPU, claims
	 * then twice the mean: of three threads that each work 3 ms every 10,
	 * two were admitted where the cap left room for one, their means grown
	 * from their first activations, before their first sleeps).
	 */
	if (tctx->matches)
		tctx->act_avg += ((s64)bounded_sample(tctx, last_run) - (s64)tctx->act_avg) >> 3;
	else
		tctx->act_avg = last_run;
	if (!period) {
		restart_detection(tctx, now);
		goto out;
	}
	tol = period >> 3;
	skipped = time_before(now, tctx->next_wake) ? 0 :
		  (now - tctx->next_wake + period / 2) / period;
	point = tctx->next_wake + skipped * period;
	err = (s64)(now - point);
	if (skipped > PERIOD_FORGET_PERIODS) {
		restart_detection(tctx, now);
		goto out;
	}
	if (err >= -(s64)tol && err <= (s64)tol && last_run <= limit) {
		tctx->next_wake = point + period + (err >> 1);
		if (skipped && time_before(tctx->sleep_at, point - period))
			goto out;
		if (!skipped)
			tctx->period_ns = period + (err >> 3);
		if (tctx->miss_score)
			tctx->miss_score--;
		if (tctx->matches < PERIOD_LOCK_MATCHES)
			tctx->matches++;
		if (tctx->matches >= PERIOD_LOCK_MATCHES)
			update_claim(tctx);
		goto out;
	}
	/*
	 * Before a first match the period is one interval's guess, and a
	 * wakeup off its grid is the evidence against it: the last interval
	 * is the next guess at once.
	 */
	if (!is_periodic(tctx) && !tctx->matches) {
		restart_detection(tctx, now);
		goto out;
	}
	if (!is_periodic(tctx))
		tctx->matches = 0;
	tctx->miss_score += PERIOD_MISS_SCORE;
	if (tctx->miss_score >= PERIOD_FORGET_SCORE) {
		restart_detection(tctx, now);
		goto out;
	}
	/* Back on the grid: its next point. */
	tctx->next_wake = time_before(now, point) ? point : point + period;
out:
	tctx->wake_at = now;
}

/* A thread ran @used ns more of its activation. */
static void period_charge(struct task_ctx *tctx, u64 used)
{
	tctx->act_used += used;
}

/* A thread went to sleep at @now: a periodic one's activation missed if it ended late. */
static void period_sleeps(struct task_ctx *tctx, u64 now)
{
	if (is_periodic(tctx) && time_before(tctx->next_wake, now))
		tctx->counters.nr_deadline_misses++;
}

#endif /* __LLMOS_PERIOD_BPF_H */
