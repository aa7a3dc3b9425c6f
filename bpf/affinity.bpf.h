/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The affinity policy's placement. A thread of an affinity group goes to an
 * idle CPU of its group's set when there is one, to any idle CPU when there
 * is not (the set is a preference, never a cage), and within its own cpumask
 * always. Other threads stay on the CPU they last ran on while its queue is
 * short, for a warm cache, and spill to their LLC's shared queue when it is
 * not. Idle CPUs balance the load by pulling from the longest CPU queue.
 */
#ifndef __LLMOS_AFFINITY_BPF_H
#define __LLMOS_AFFINITY_BPF_H

/* Included by policy.bpf.h after enter_queue(), which it queues tasks with. */
#include "llmos.bpf.h"
#include "classify.bpf.h"

/* Tasks waiting on one CPU's queue beyond which it counts as overloaded. */
#define CPU_QUEUE_MAX 2

/* A group may name CPUs that are offline (or go offline later): they are skipped. */
static bool may_use_group_cpu(const struct task_struct *p, s32 group, s32 cpu)
{
	return group_has_cpu(group, cpu) && is_online(cpu) && bpf_cpumask_test_cpu(cpu, p->cpus_ptr);
}

/*
 * The loops over a group's CPUs below visit its CPUs only, not every CPU
 * id: they run in ops.select_cpu() and ops.enqueue(), with a runqueue
 * locked. These are the words of a group's bitmap that hold CPU ids.
 */
static u32 group_words(void)
{
	return (nr_cpu_ids + LLMOS_WORD_BITS - 1) / LLMOS_WORD_BITS;
}

/* Claims an idle CPU of @group that @p may use, @prev first (warm cache); -1 if none. */
static s32 pick_idle_in_group(struct task_struct *p, s32 group, s32 prev)
{
	int *cpu;

	if (may_use_group_cpu(p, group, prev) && scx_bpf_test_and_clear_cpu_idle(prev))
		return prev;
	bpf_for_each(bits, cpu, group_bitmap(group), group_words()) {
		if (*cpu != prev && may_use_group_cpu(p, group, *cpu) &&
		    scx_bpf_test_and_clear_cpu_idle(*cpu))
			return *cpu;
	}
	return -1;
}

/* The CPU of @group that @p may use with the shortest queue; -1 if none. */
static s32 least_loaded_in_group(struct task_struct *p, s32 group)
{
	s32 best = -1, fewest = 0;
	int *cpu;

	bpf_for_each(bits, cpu, group_bitmap(group), group_words()) {
		s32 queued;

		if (!may_use_group_cpu(p, group, *cpu))
			continue;
		queued = scx_bpf_dsq_nr_queued(cpu_dsq(*cpu, LLMOS_POLICY_AFFINITY));
		if (best < 0 || queued < fewest) {
			best = *cpu;
			fewest = queued;
		}
	}
	return best;
}

/*
 * Whether @p, running on @cpu outside its group's CPUs, should move to one of
 * them that is idle. A CPU hog never wakes up, so this is its only chance to
 * get back to its group after spilling.
 */
static bool affinity_should_move(struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	const struct cpumask *idle;
	bool found = false;
	int *other;

	/*
	 * Preempted inside migrate_disable() (a seccomp filter, a BPF
	 * program, kmap_local), it may not leave this CPU: the kernel aborts
	 * a scheduler that sends it elsewhere.
	 */
	if (tctx->group < 0 || group_has_cpu(tctx->group, cpu) || is_migration_disabled(p))
		return false;
	idle = scx_bpf_get_idle_cpumask();
	bpf_for_each(bits, other, group_bitmap(tctx->group), group_words()) {
		if (may_use_group_cpu(p, tctx->group, *other) && bpf_cpumask_test_cpu(*other, idle)) {
			found = true;
			break;
		}
	}
	scx_bpf_put_idle_cpumask(idle);
	return found;
}

/*
 * The CPU's last task, which dispatch() let go so that it can be placed anew
 * (see affinity_should_move()): an idle CPU of its group, claimed; -1 if none.
 */
static s32 affinity_place_last(struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	if (tctx->group < 0 || is_migration_disabled(p))
		return -1;
	return pick_idle_in_group(p, tctx->group, cpu);
}

/* ops.select_cpu() for a waking task: claims an idle CPU if there is one. */
static s32 affinity_select_cpu(struct task_struct *p, const struct task_ctx *tctx,
			       s32 prev_cpu, u64 wake_flags, bool *is_idle)
{
	if (tctx->group >= 0) {
		s32 cpu = pick_idle_in_group(p, tctx->group, prev_cpu);

		if (cpu >= 0) {
			*is_idle = true;
			return cpu;
		}
	}
	/* prev_cpu if idle, else an idle CPU sharing its cache, else any. */
	return scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, is_idle);
}

/*
 * An idle CPU for a task that did not pass through select_cpu, claimed; -1 if
 * none, or if it should wait for @prev. A group's thread that a per-CPU
 * kthread cut short on a CPU of its group waits there, on the CPU's own
 * queue (see affinity_queue_on_cpu()), for the kthread's microseconds: on an
 * idle CPU elsewhere it would run a whole slice away from its group and its
 * cache (a kworker woken on its CPU every 20 ms moved it 50 times a second).
 * Not where an RT task holds the CPU: the kthread waits as long as it does.
 */
static s32 affinity_pick_idle(struct task_struct *p, const struct task_ctx *tctx, s32 prev)
{
	if (tctx->group >= 0) {
		s32 cpu = pick_idle_in_group(p, tctx->group, prev);

		if (cpu >= 0)
			return cpu;
		if (running[cpu_idx(prev)].kthread_cut_in && !is_cpu_held(prev) &&
		    may_use_group_cpu(p, tctx->group, prev))
			return -1;
	}
	return pick_idle_near(p, prev);
}

/*
 * Queues @p on a CPU's own queue: its group's least loaded CPU, or the CPU it
 * ran on. Returns false if that CPU is overloaded (or not allowed), and the
 * task belongs on the shared queue instead.
 */
static bool affinity_queue_on_cpu(struct task_struct *p, struct task_ctx *tctx, s32 prev,
				  u64 enq_flags)
{
	s32 target = prev, queued;
	u64 dsq, key, slice;

	if (tctx->group >= 0) {
		s32 cpu = least_loaded_in_group(p, tctx->group);

		if (cpu >= 0)
			target = cpu;
	}
	if (!is_online(target) || !bpf_cpumask_test_cpu(target, p->cpus_ptr))
		return false;
	dsq = cpu_dsq(target, LLMOS_POLICY_AFFINITY);
	queued = scx_bpf_dsq_nr_queued(dsq);
	if (queued >= CPU_QUEUE_MAX)
		return false;
	key = enter_queue(LLMOS_POLICY_AFFINITY, p, tctx, llc_of(target), queued, &slice);
	scx_bpf_dsq_insert_vtime(p, dsq, slice, key, enq_flags);
	kick_cpu(target, SCX_KICK_IDLE);
	stat_inc(LLMOS_STAT_CPU_QUEUE);
	return true;
}

/*
 * Load balancing: a CPU with nothing to do takes the first task it may run
 * from the longest other CPU queue (tasks pinned there are skipped).
 */
static bool steal_from_cpu_queues(s32 cpu)
{
	struct task_struct *p;
	s32 busiest = -1, most = 0;
	u32 i;

	bpf_for(i, 0, nr_cpu_ids) {
		s32 queued;

		if (i == cpu)
			continue;
		queued = scx_bpf_dsq_nr_queued(cpu_dsq(i, LLMOS_POLICY_AFFINITY));
		if (queued > most) {
			most = queued;
			busiest = i;
		}
	}
	if (busiest < 0)
		return false;
	bpf_for_each(scx_dsq, p, cpu_dsq(busiest, LLMOS_POLICY_AFFINITY), 0) {
		if (is_migration_disabled(p) || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
			continue;
		if (scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, 0)) {
			stat_inc(LLMOS_STAT_STEAL);
			return true;
		}
	}
	return false;
}

#endif /* __LLMOS_AFFINITY_BPF_H */
