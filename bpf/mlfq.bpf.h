/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The multi-level feedback queue: nr_levels levels with growing slices. A
 * task that uses its level's allotment, counted across slices and paid back
 * by sleep, drops a level (through as many as it used allotments of while it
 * kept its CPU); a task that sleeps longer than it ran climbs a level once
 * such sleeps add up to a slice of the level above (through as many as they
 * cover); every boost_interval_ns everything returns to the top.
 *
 * A task a boost brought back from below is "lifted" until it has had one
 * turn on top (or sleeps there like an interactive task). Lifted tasks queue
 * behind the two top levels' own (see level_rank()) and may be preempted by
 * them: a boost saves CPU hogs from starving without making the interactive
 * tasks wait out the hogs' turns. Only one turn, so that tasks of a busy
 * pipeline do not keep preempting each other for it.
 */
#ifndef __LLMOS_MLFQ_BPF_H
#define __LLMOS_MLFQ_BPF_H

#include "llmos.bpf.h"

/*
 * The rank of the tasks a boost lifted to the top: below levels 0 and 1, above
 * the rest. Below level 1 too: a thread that sleeps most of the time but
 * whose burst outlasts level 0's slice runs the rest of it on level 1, and
 * lifted hogs ahead of it there delayed it at every boost (4 hogs, 2 ms work
 * every 10 ms, boost 500 ms: p99 13.9-15.0 ms).
 */
#define MLFQ_LIFTED_RANK 2

/*
 * Bumped by every periodic boost (and by a switch to mlfq). A task whose
 * boost_gen lags has been boosted to level 0 but has not run since; its
 * context catches up lazily, so a boost costs nothing per sleeping task.
 */
static u32 boost_gen;

/* When mlfq last boosted every task to the top. */
static u64 last_boost_at;

/*
 * A task's level, counting a boost it has not caught up with yet. Only mlfq
 * has levels: policy_level() asks this under mlfq alone.
 */
static u32 task_level(const struct task_ctx *tctx)
{
	if (tctx->boost_gen != boost_gen)
		return 0;
	return tctx->level < nr_levels ? tctx->level : nr_levels - 1;
}

static u64 level_slice(u32 level)
{
	return tunables.level_slice_ns[level & (LLMOS_MAX_LEVELS - 1)];
}

/* Whether the task is on top only because a boost lifted it there. */
static bool task_lifted(const struct task_ctx *tctx)
{
	return tctx->lifted || (tctx->boost_gen != boost_gen && tctx->level);
}

/*
 * The rank of a task at @level: levels 0 and 1 first, then lifted tasks,
 * then levels 2, 3, ... Ranks order mlfq's queues (see ranked_key()) and
 * decide wakeup preemption.
 */
static u32 level_rank(u32 level, bool lifted)
{
	if (level >= 2)
		return level + 1;
	if (level == 1)
		return 1;
	return lifted ? MLFQ_LIFTED_RANK : 0;
}

/* A task runs at its level's rank, or at one it inherited (inherit.bpf.h). */
static u32 mlfq_rank(const struct task_ctx *tctx)
{
	u32 level = task_level(tctx);

	if (tctx->inherits && tctx->inherited_level < level)
		return level_rank(tctx->inherited_level, false);
	return level_rank(level, task_lifted(tctx));
}

/*
 * Whether a task waking at @rank may preempt a task of the same rank that
 * is further ahead in vtime. Only on the bottom level: above it the levels
 * take turns inside, as their slices are short, and preempting for vtime
 * alone would switch at every wakeup of a busy pipeline. On the bottom
 * level, where everything that sank meets CPU hogs with the longest slices,
 * a thread that sleeps would wait out a hog's slice (8 ms and more, to the
 * next tick) at every wakeup, and with its cycles that long it could not
 * sleep off what it owes and climb: a main thread that sank by creating its
 * workers, woken every 1 ms beside 4 spinners, waited 11 ms per wakeup and
 * sat on the bottom level for 300-900 ms.
 */
static bool mlfq_preempts_within(u32 rank)
{
	return rank == level_rank(nr_levels - 1, false);
}

/* Applies any boost the task missed: back to the top with a fresh allotment. */
static void catch_up_boost(struct task_ctx *tctx)
{
	if (tctx->boost_gen == boost_gen)
		return;
	tctx->boost_gen = boost_gen;
	tctx->allot_used = 0;
	if (tctx->level) {
		tctx->level = 0;
		tctx->lifted = true;
		tctx->counters.nr_boosts++;
	}
}

/*
 * The level a task sinks to when charged @used more CPU time, and in *@rest
 * what it has then used of that level's allotment: through as many levels as
 * the CPU time covers allotments, since a task that kept its CPU with new
 * slices has been charged nothing since it got it (see end_turn()). The
 * allotment is counted across slices, so giving up the CPU just before the
 * slice ends does not keep a task on top.
 */
static u32 sunk_level(const struct task_ctx *tctx, u64 used, u64 *rest)
{
	u32 level = task_level(tctx), i;
	u64 owed = (tctx->boost_gen == boost_gen ? tctx->allot_used : 0) + used;

	bpf_for(i, 1, LLMOS_MAX_LEVELS) {
		if (level + 1 >= nr_levels || owed < level_slice(level))
			break;
		owed -= level_slice(level);
		level++;
	}
	*rest = owed;
	return level;
}

static u32 level_after(const struct task_ctx *tctx, u64 used)
{
	u64 rest;

	return sunk_level(tctx, used, &rest);
}

/*
 * The rank and, in *@slice, the slice a task that has run @used ns competes
 * with for its CPU when its slice ends: its turn is over, so it is no longer
 * lifted (see end_turn()).
 */
static u32 mlfq_prev_rank(const struct task_ctx *tctx, u64 used, u64 *slice)
{
	u32 level = level_after(tctx, used);

	*slice = level_slice(level);
	return level_rank(level, false);
}

/* Down to @level, having used @allot_used of its allotment there. */
static void mlfq_demote(struct task_ctx *tctx, u32 level, u64 allot_used)
{
	tctx->counters.nr_demotions += level - task_level(tctx);
	tctx->level = level;
	tctx->allot_used = allot_used;
	tctx->slept_at_level = 0;
}

/*
 * On wakeup. Sleep pays back the CPU time used at the level: a task that
 * still owes the level's allotment after that drops a level now (a CPU hog
 * that naps to dodge demotion, or waits on a page fault or a lock; see
 * mlfq_charge() for why not when it went to sleep), so a task that runs
 * more than half the time sinks and one that runs less stays. A task that
 * slept longer than it had run is mostly waiting on something: once such
 * sleeps, in a row, add up to a slice of the level above, it climbs there
 * (or, lifted, joins the top level's own tasks), and on through as many
 * levels as their slices add up to, as it sank through as many allotments.
 * Added up, not one sleep that long: a thread woken every 1-2 ms (an audio
 * or input loop) never sleeps a 4 ms slice, and one start-up burst (loading,
 * creating its workers) parked it at the bottom, behind CPU hogs, until the
 * next boost. Through several at once: a thread that works 2 ms of every
 * 10 ms and had one 16 ms burst (on a host that took its CPU away) climbed a
 * level per wakeup from the bottom, and waited 50 ms there behind CPU hogs.
 */
static void mlfq_wakeup(struct task_ctx *tctx, u64 now)
{
	u64 slept = now - tctx->sleep_at;
	u32 level = task_level(tctx), i;

	if (slept < tctx->allot_used) {
		tctx->allot_used -= slept;
		tctx->slept_at_level = 0;
		if (level_after(tctx, 0) != level)
			mlfq_demote(tctx, level + 1, 0);
		return;
	}
	tctx->allot_used = 0;
	tctx->slept_at_level += slept;
	bpf_for(i, 1, LLMOS_MAX_LEVELS) {
		if (!level || tctx->slept_at_level < level_slice(level - 1))
			break;
		tctx->slept_at_level -= level_slice(level - 1);
		level--;
	}
	tctx->level = level;
	if (slept >= level_slice(0))
		tctx->lifted = false;
}

/*
 * Charges @used CPU time to the allotment, and drops a task that used it up
 * and is queued again (@requeued: it gave up its CPU, runnable) to the level
 * it sank to. One that keeps its CPU with a new slice is only charged: it
 * runs at the rank it sank to (see mlfq_prev_rank()) and drops when it next
 * gives the CPU up. One going to sleep keeps its level until it wakes and it
 * is known how long it slept: an interactive task whose burst ran past the
 * allotment and then slept ten times as long is not demoted (nor shown a
 * level lower while it sleeps). On the bottom level a task owes at most its
 * allotment: were all its CPU time there counted, a thread that sank by one
 * long burst (a program's start-up) would have to sleep that long at once to
 * climb again.
 */
static void mlfq_charge(struct task_ctx *tctx, u64 used, bool requeued)
{
	u64 rest;
	u32 level = sunk_level(tctx, used, &rest);

	if (requeued && level != task_level(tctx)) {
		mlfq_demote(tctx, level, rest < level_slice(level) ? rest : level_slice(level));
		return;
	}
	tctx->allot_used += used;
	if (rest > level_slice(level))
		tctx->allot_used -= rest - level_slice(level);
}

/*
 * The key a task that was queued when a boost came competes with: the
 * boost lifted it to MLFQ_LIFTED_RANK, where it keeps its vtime order. The
 * boost does not re-key the queued tasks one by one (a lock round trip
 * each, from the timer): it retires the bank they wait in (see
 * retire_banks()), and this ranks the whole bank.
 *
 * A bank still waiting at the next boost (@overdue) joins level 0:
 * threads that each sleep longer than they run stay on levels 0 and 1, and
 * enough of them keep a CPU busy for ever; below them a lifted CPU hog
 * would wait until the kernel's watchdog ejected the scheduler. So a task
 * waits at most two boost intervals, and then takes its turn as a level-0
 * task (see mlfq_end_starvation()). It joins at the LLC's vtime_now(), not
 * with the vtime it has kept since it queued: that would put it ahead of
 * an interactive thread just woken, whose vtime is within a slice of now.
 */
static u64 mlfq_retired_key(u64 key, u32 llc, bool overdue)
{
	u64 vtime;

	if (overdue) {
		vtime = unranked_key(key, llc);
		return time_before(vtime, vtime_now(llc)) ? vtime_now(llc) : vtime;
	}
	if (key_rank(key, llc) <= MLFQ_LIFTED_RANK)
		return key;
	return ranked_key(MLFQ_LIFTED_RANK, unranked_key(key, llc));
}

/*
 * A lifted task that waited a whole boost interval for its turn (see
 * mlfq_retired_key()) takes it as a level-0 task: lifted, it would be
 * preempted by the next waking level-0 task, and under a stream of them
 * run for microseconds.
 */
static void mlfq_end_starvation(struct task_ctx *tctx, u64 waited)
{
	if (waited >= tunables.boost_interval_ns)
		tctx->lifted = false;
}

/*
 * The periodic boost: the tasks that sleep or run catch up when they next
 * wake or run (see catch_up_boost()), the queued ones are lifted with their
 * bank (see mlfq_retired_key()) and get the top level's slice when they run.
 * Its cost does not grow with the number of tasks.
 */
static void mlfq_boost(void)
{
	boost_gen++;
	retire_banks(LLMOS_POLICY_MLFQ);
	stat_inc(LLMOS_STAT_BOOST);
}

/* From the tick: the boost, every boost interval, and what it cost. */
static void mlfq_tick(u64 now)
{
	if (now - last_boost_at < tunables.boost_interval_ns)
		return;
	mlfq_boost();
	last_boost_at = now;
	stat_add(LLMOS_STAT_BOOST_NS, bpf_ktime_get_ns() - now);
}

/* A switch to mlfq starts every task on the top level, as a boost does. */
static void mlfq_switched_to(void)
{
	boost_gen++;
}

#endif /* __LLMOS_MLFQ_BPF_H */
