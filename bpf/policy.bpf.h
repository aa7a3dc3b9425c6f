/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What each policy decides: a task's key in the policy's vtime-ordered
 * queues (lower runs first), its slice, and whether a waking task may
 * preempt a running one. The core in main.bpf.c does the rest the same way
 * for every policy.
 *
 * - vtime, affinity: the key is CPU time scaled by weight (nice).
 * - mlfq: the rank of the task's level, then vtime (see ranked_key()).
 * - prio: the key is when the task started waiting plus prio_aging_ns per
 *   step below the top priority, so a higher priority runs first unless a
 *   lower one has waited prio_aging_ns per step of difference: no runnable
 *   task waits more than LLMOS_MAX_PRIO * prio_aging_ns for its turn.
 * - fifo, rr: the key is when the task started waiting.
 */
#ifndef __LLMOS_POLICY_BPF_H
#define __LLMOS_POLICY_BPF_H

#include "llmos.bpf.h"
#include "mlfq.bpf.h"
#include "classify.bpf.h"

/*
 * fifo lets a task run until it sleeps, but not for ever: a CPU hog would
 * starve everything queued behind it into the kernel's watchdog.
 */
#define FIFO_MAX_RUN_NS 100000000ULL /* 100 ms */

/*
 * Slices shrink as queues grow, so that one round through a queue takes
 * about this long and no queued task comes near the watchdog's timeout,
 * however many tasks there are...
 */
#define ROUND_NS 500000000ULL /* 500 ms */
/* ...but not below this, where switching would eat the CPU. */
#define MIN_SLICE_NS 100000ULL /* 100 us */

/*
 * The rank and key of the task each CPU is running, for wakeup preemption.
 * Each CPU writes its own at every context switch and wakers on other CPUs
 * read them: a cache line per CPU, or a switch on one CPU would invalidate
 * the line its neighbours write (16 CPUs' ranks shared one).
 */
struct cpu_running {
	u64 key;
	u32 rank;
} __attribute__((aligned(CACHE_LINE_BYTES)));

static struct cpu_running running[LLMOS_MAX_CPUS];

/* Whether the policy's queues are ordered by vtime (and so advance vtime_now()). */
static bool keyed_by_vtime(u32 policy)
{
	return policy == LLMOS_POLICY_MLFQ || policy == LLMOS_POLICY_VTIME ||
	       policy == LLMOS_POLICY_AFFINITY;
}

/* Whether the policy retires its queues' banks (and so serves two per queue). */
static bool retires_banks(u32 policy)
{
	return policy == LLMOS_POLICY_MLFQ;
}

/*
 * The key a task waiting in a retired bank of @policy's queues of @llc
 * competes with; @overdue: the bank outlived a boost interval.
 */
static u64 retired_key(u32 policy, u64 key, u32 llc, bool overdue)
{
	return policy == LLMOS_POLICY_MLFQ ? mlfq_retired_key(key, llc, overdue) : key;
}

/* Whether a waking task may take the CPU from a running one it outranks. */
static bool preempts_on_wakeup(u32 policy)
{
	return policy == LLMOS_POLICY_MLFQ || policy == LLMOS_POLICY_PRIO;
}

/*
 * A task's vtime, no further behind @llc's vtime_now() than one slice:
 * whether it slept or was starved, a task earns at most a slice of catching
 * up, so a laggard cannot hold a CPU for many slices while others wait.
 */
static u64 bounded_vtime(u64 vtime, u32 llc)
{
	u64 floor = vtime_now(llc) - tunables.slice_ns;

	return time_before(vtime, floor) ? floor : vtime;
}

/* vtime for @used ns of CPU: inversely to weight, nice -20 ages ~88x slower than nice 19. */
static u64 vtime_charge(const struct task_struct *p, u64 used)
{
	return used * NICE_0_WEIGHT / p->scx.weight;
}

/*
 * The key of a task entering a queue of @llc where it gets @slice. Under the
 * policies ordered by vtime, that is its vtime, moved to within a slice of
 * the LLC's vtime_now() either way (and kept so). Behind: a task that slept
 * earns at most a slice of catching up. Ahead: a task that ran while nothing
 * else wanted its CPU (alone, or placed on an idle CPU) owes at most a slice
 * of its own, weighted by its nice. Both are needed so that no task waits
 * more than about two rounds of its queue (more in proportion to a low
 * weight): with 1,000 CPU hogs sharing a CPU, a task whose vtime was 20 ms
 * ahead of theirs would otherwise wait for each of them to run 20 ms, 20 s
 * in all. A task that moves to another LLC is placed by that LLC's clock.
 */
static u64 entry_key(u32 policy, const struct task_struct *p, struct task_ctx *tctx, u64 key,
		     u64 slice, u32 llc)
{
	u64 low = vtime_now(llc) - slice, high = vtime_now(llc) + vtime_charge(p, slice);

	if (!keyed_by_vtime(policy))
		return key;
	if (time_before(key, low))
		key = low;
	else if (time_before(high, key))
		key = high;
	tctx->vtime = key;
	return key;
}

/* CPU time @p has used since it last got a CPU. */
static u64 run_so_far(const struct task_struct *p, const struct task_ctx *tctx)
{
	return p->se.sum_exec_runtime - tctx->exec_at_start;
}

static u64 prio_key(const struct task_struct *p, const struct task_ctx *tctx, u64 waiting_since)
{
	return waiting_since + (LLMOS_MAX_PRIO - task_prio(p, tctx)) * tunables.prio_aging_ns;
}

/* The task's key in its queue under @policy. */
static u64 queue_key(u32 policy, const struct task_struct *p, const struct task_ctx *tctx,
		     u32 llc)
{
	switch (policy) {
	case LLMOS_POLICY_PRIO:
		return prio_key(p, tctx, tctx->runnable_at);
	case LLMOS_POLICY_FIFO:
	case LLMOS_POLICY_RR:
		return tctx->runnable_at;
	default:
		return bounded_vtime(tctx->vtime, llc);
	}
}

/* The slice of a task under @policy: under mlfq, its level's. */
static u64 task_slice(u32 policy, const struct task_ctx *tctx)
{
	switch (policy) {
	case LLMOS_POLICY_MLFQ:
		return level_slice(task_level(tctx));
	case LLMOS_POLICY_FIFO:
		return FIFO_MAX_RUN_NS;
	default:
		return tunables.slice_ns;
	}
}

/*
 * @slice, shortened so that the tasks ahead, @queued per CPU that serves the
 * queue, can all run within ROUND_NS.
 */
static u64 queue_slice(u64 slice, s32 queued)
{
	u64 share = ROUND_NS / ((queued > 0 ? queued : 0) + 1);

	if (share < MIN_SLICE_NS)
		share = MIN_SLICE_NS;
	return share < slice ? share : slice;
}

/*
 * The rank a task runs at: under mlfq, from its level (see level_rank()); the
 * same for all under the other policies, which order a queue by key alone.
 */
static u32 run_rank(u32 policy, const struct task_ctx *tctx)
{
	return policy == LLMOS_POLICY_MLFQ ? mlfq_rank(tctx) : 0;
}

/*
 * The key of @p entering a queue of @policy in @llc with @queued tasks
 * waiting per CPU that serves it, and in @slice its slice there: shortened
 * for the queue's length, and its key kept near the LLC's vtime_now()
 * (entry_key()) and ranked (ranked_key()). Inlined: a BPF call takes at
 * most five arguments.
 */
static __always_inline u64 enter_queue(u32 policy, const struct task_struct *p,
					struct task_ctx *tctx, u32 llc, s32 queued, u64 *slice)
{
	u64 key;

	*slice = queue_slice(task_slice(policy, tctx), queued);
	key = entry_key(policy, p, tctx, queue_key(policy, p, tctx, llc), *slice, llc);
	return ranked_key(run_rank(policy, tctx), key);
}

/*
 * Whether a task waking at @rank with @key (ranked) should take @cpu: the
 * CPU runs a lower rank, or the same rank with a task whose key is larger,
 * where the rank allows it (see mlfq_preempts_within()).
 */
static bool outranks_running(s32 cpu, u32 rank, u64 key)
{
	u32 idx = cpu_idx(cpu);

	if (running[idx].rank != rank)
		return running[idx].rank > rank;
	if (is_mlfq() && !mlfq_preempts_within(rank))
		return false;
	return time_before(key, ranked_key(rank, running[idx].key));
}

#endif /* __LLMOS_POLICY_BPF_H */
