/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The boundary between the core (main.bpf.c) and the policies: the core asks
 * everything it needs to know about the active policy through the traits
 * table and the policy_*() hooks below, passing the policy it read once at
 * the top of its callback, so that one decision never sees two policies
 * during a live switch. Each policy's own code lives in its file: vtime.bpf.h,
 * mlfq.bpf.h, prio.bpf.h, affinity.bpf.h, fifo.bpf.h (fifo and rr), edf.bpf.h,
 * rms.bpf.h.
 *
 * Adding a policy takes its id in intf.h's enum llmos_policy, its file, its
 * traits in the table below, and its cases in the hooks whose default it
 * does not want (the default is the vtime policy's, or nothing).
 */
#ifndef __LLMOS_POLICY_BPF_H
#define __LLMOS_POLICY_BPF_H

#include "llmos.bpf.h"
#include "classify.bpf.h"
#include "vtime.bpf.h"
#include "mlfq.bpf.h"
#include "prio.bpf.h"
#include "fifo.bpf.h"
#include "edf.bpf.h"
#include "rms.bpf.h"

/*
 * The traits table: what the core needs to know of a policy beyond its
 * hooks, as the policies that have each trait. Comparisons, not bits of a
 * mask: the verifier learns the policy from a comparison that one branch
 * took and prunes the branches the others would take (tests of a mask bit
 * made llmos_dispatch 72% longer to verify), and an array of rows lost its
 * index's bound.
 */
/*
 * Its queues are ordered by vtime (and so advance vtime_now()); under edf
 * and rms, all but their first rank's (see key_is_vtime()).
 */
static bool keyed_by_vtime(u32 policy)
{
	return policy == LLMOS_POLICY_VTIME || policy == LLMOS_POLICY_MLFQ ||
	       policy == LLMOS_POLICY_AFFINITY || policy == LLMOS_POLICY_EDF ||
	       policy == LLMOS_POLICY_RMS;
}

/*
 * Whether @key, a key in one of @policy's queues, is a vtime (ranked):
 * under edf and rms, keys below RANK_SPAN are deadlines or periods.
 */
static bool key_is_vtime(u32 policy, u64 key)
{
	if (policy == LLMOS_POLICY_EDF || policy == LLMOS_POLICY_RMS)
		return key >= RANK_SPAN;
	return keyed_by_vtime(policy);
}

/*
 * Whether @tctx's task runs outside the fair share: on a reservation edf
 * holds for it, or at a period's rank under rms.
 */
static bool runs_outside_share(u32 policy, const struct task_ctx *tctx)
{
	if (policy == LLMOS_POLICY_EDF)
		return edf_reserved(tctx);
	return policy == LLMOS_POLICY_RMS && rms_periodic(tctx);
}

/*
 * Whether a turn of @tctx's task counts against its fair share: not one it
 * ran outside it, or a reserved or periodic thread would pay for its rank
 * twice (it would wait as long as the time it was promised when it next
 * runs as a shared thread), as SCHED_DEADLINE's runtime is not the fair
 * class's.
 */
static bool charges_vtime(u32 policy, const struct task_ctx *tctx)
{
	return !runs_outside_share(policy, tctx);
}

/* Whether @tctx's task enters @policy's queues keyed by its vtime. */
static bool queued_by_vtime(u32 policy, const struct task_ctx *tctx)
{
	return keyed_by_vtime(policy) && !runs_outside_share(policy, tctx);
}

/* It retires its queues' banks (and so serves two per queue). */
static bool retires_banks(u32 policy)
{
	return policy == LLMOS_POLICY_MLFQ;
}

/*
 * A thread holding a PI futex runs at the priority or level of those waiting
 * for it (see inherit.bpf.h).
 */
static bool inherits_priority(u32 policy)
{
	return policy == LLMOS_POLICY_PRIO || policy == LLMOS_POLICY_MLFQ;
}

/* A waking task may take the CPU from a running one it outranks. */
static bool preempts_on_wakeup(u32 policy)
{
	return policy == LLMOS_POLICY_MLFQ || policy == LLMOS_POLICY_PRIO ||
	       policy == LLMOS_POLICY_EDF || policy == LLMOS_POLICY_RMS;
}

/*
 * A waking task that outranks the one running on its only CPU goes to the
 * head of that CPU's local queue, which ends the running task's slice at
 * once. Not under edf and rms: of threads woken at one instant, the head
 * would run the last woken first (7.2, 1 vCPU: three periodic threads woken
 * by one timer interrupt ran latest deadline first, and the earliest missed
 * its deadline). There the thread is queued and the CPU is kicked, so that
 * ops.dispatch() serves the earliest deadline or the shortest period.
 */
static bool preempts_at_local_head(u32 policy)
{
	return policy != LLMOS_POLICY_EDF && policy != LLMOS_POLICY_RMS;
}

/*
 * A task woken by one of a lower rank preempts only as that rank would (see
 * wakeup_rank()). Not under edf: a reserved thread's deadline holds
 * whoever wakes it.
 */
static bool wakers_lend_rank(u32 policy)
{
	return policy == LLMOS_POLICY_MLFQ || policy == LLMOS_POLICY_PRIO;
}

/*
 * Slices shrink as queues grow, so that one round through a queue takes
 * about this long and no queued task comes near the watchdog's timeout,
 * however many tasks there are...
 */
#define ROUND_NS 500000000ULL /* 500 ms */
/* ...but not below this, where switching would eat the CPU. */
#define MIN_SLICE_NS 100000ULL /* 100 us */

/*
 * The slice of the work that must not wait (a waking per-CPU kthread, the
 * loader's threads): the shortest a policy gives, mlfq's top level's.
 */
static u64 short_slice(void)
{
	return level_slice(0);
}

/*
 * The key of a task entering a queue of @llc where it gets @slice. Under the
 * policies ordered by vtime, that is its vtime, moved to within a slice
 * behind and two slices ahead of the LLC's vtime_now() (and kept so).
 * Behind: a task that slept earns at most a slice of catching up. Ahead: a
 * task that ran while nothing else wanted its CPU (alone, or placed on an
 * idle CPU) owes at most two slices of its own, weighted by its nice and
 * its cgroup. Two, as EEVDF bounds a task's lag by two slices: a slice ends
 * only at a tick, so a turn runs up to a tick past it, and all of that is
 * owed. With one, each turn of a thread of a light cgroup was let off part
 * of its charge: beside a cgroup of cpu.weight 400, one of 100 got 1:3.2 of
 * the CPUs under mlfq (8 ms slices) and 1:3.7 under vtime (20 ms), not 1:4;
 * with two, 1:3.7-3.9 and 1:4.0 (7.2, 2 vCPUs). Both bounds are needed so
 * that no task waits more than about three rounds of its queue (more in
 * proportion to a low weight): with 1,000 CPU hogs sharing a CPU, a task
 * whose vtime was 20 ms ahead of theirs would otherwise wait for each of
 * them to run 20 ms, 20 s in all. A task that moves to another LLC is
 * placed by that LLC's clock. Inlined: a BPF call takes at most five
 * arguments.
 */
static __always_inline u64 entry_key(u32 policy, const struct task_struct *p,
				      struct task_ctx *tctx, u64 key, u64 slice, u32 llc)
{
	u64 low = vtime_now(llc) - slice, high = vtime_now(llc) + vtime_charge(p, tctx, 2 * slice);

	if (!queued_by_vtime(policy, tctx))
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
	case LLMOS_POLICY_EDF:
		if (edf_reserved(tctx))
			return tctx->edf_deadline;
		return bounded_vtime(tctx->vtime, llc);
	case LLMOS_POLICY_RMS:
		if (rms_periodic(tctx))
			return tctx->period_ns;
		return bounded_vtime(tctx->vtime, llc);
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
	case LLMOS_POLICY_EDF:
		return edf_slice(tctx);
	case LLMOS_POLICY_RMS:
		return rms_slice(tctx, 0);
	default:
		return tunables.slice_ns;
	}
}

/* The level a task is on: mlfq's levels; 0 under the policies without them. */
static u32 policy_level(u32 policy, const struct task_ctx *tctx)
{
	return policy == LLMOS_POLICY_MLFQ ? task_level(tctx) : 0;
}

/*
 * The rank a task runs at: under mlfq, from its level (see level_rank());
 * under edf, whether it runs on its reservation; under rms, whether at its
 * period's; the same for all under the other policies, which order a queue
 * by key alone.
 */
static u32 run_rank(u32 policy, const struct task_ctx *tctx)
{
	if (policy == LLMOS_POLICY_MLFQ)
		return mlfq_rank(tctx);
	if (policy == LLMOS_POLICY_EDF)
		return edf_rank(tctx);
	if (policy == LLMOS_POLICY_RMS)
		return rms_rank(tctx);
	return 0;
}

/*
 * How a task that has run @used ns since it got its CPU competes for it when
 * its slice ends, as it would be queued now: its rank, and in *@key its key
 * and in *@slice the slice it keeps the CPU with if nothing queued is due
 * before it. One hook, so that a policy weighs the turn once (edf's budget).
 */
static u32 policy_prev_turn(u32 policy, const struct task_struct *p, const struct task_ctx *tctx,
			    u32 llc, u64 used, u64 *key, u64 *slice)
{
	switch (policy) {
	case LLMOS_POLICY_MLFQ:
		*key = charged_vtime(p, tctx, llc, used);
		return mlfq_prev_rank(tctx, used, slice);
	case LLMOS_POLICY_EDF:
		return edf_prev_rank(tctx, used, charged_vtime(p, tctx, llc, used), slice, key);
	case LLMOS_POLICY_RMS:
		return rms_prev_rank(tctx, used, charged_vtime(p, tctx, llc, used), slice, key);
	case LLMOS_POLICY_PRIO:
		*key = prio_key(p, tctx, scx_bpf_now());
		break;
	case LLMOS_POLICY_FIFO:
	case LLMOS_POLICY_RR:
		*key = scx_bpf_now();
		break;
	default:
		*key = charged_vtime(p, tctx, llc, used);
	}
	*slice = task_slice(policy, tctx);
	return 0;
}

/*
 * The key a task waiting in a retired bank of @policy's queues of @llc
 * competes with; @overdue: the bank outlived a boost interval.
 */
static u64 retired_key(u32 policy, u64 key, u32 llc, bool overdue)
{
	return policy == LLMOS_POLICY_MLFQ ? mlfq_retired_key(key, llc, overdue) : key;
}

/*
 * Whether a task waking at @rank may preempt a running one of the same rank:
 * under edf, an earlier deadline a later one; under rms, a shorter period a
 * longer one, and an aperiodic thread one further ahead in vtime, as on
 * mlfq's bottom level (see mlfq_preempts_within()): a periodic thread rms
 * has not yet found would otherwise wait out a CPU hog's slice at each
 * wakeup, and miss its first periods.
 */
static bool preempts_within_rank(u32 policy, u32 rank)
{
	if (policy == LLMOS_POLICY_EDF)
		return rank == EDF_RANK_RESERVED;
	return policy != LLMOS_POLICY_MLFQ || mlfq_preempts_within(rank);
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
 * Whether a task waking at @rank with @key (ranked) should take @cpu under
 * @policy: the CPU runs a lower rank, or the same rank with a task whose key
 * is larger, where the rank allows it (see preempts_within_rank()).
 */
static bool outranks_running(u32 policy, s32 cpu, u32 rank, u64 key)
{
	u32 idx = cpu_idx(cpu);

	if (running[idx].rank != rank)
		return running[idx].rank > rank;
	if (!preempts_within_rank(policy, rank))
		return false;
	return time_before(key, ranked_key(rank, running[idx].key));
}

/*
 * The rank a task waking at @rank competes for a running task's CPU with
 * (outranks_running()) when what woke it runs at @waker_rank, and in *@key
 * its key (ranked) for that. A wakeup is as urgent as its wakee, but no more
 * urgent than what caused it: a task woken by one of a lower rank competes as
 * if queued behind every task of its waker's rank, so that it takes only a
 * CPU running a rank below its waker's. A CPU hog that hands work to its
 * consumer (hackbench's senders, on mlfq's bottom level, wake its receivers)
 * would otherwise take another hog's CPU for it at every message, where the
 * hog would have run on and the consumer found more to do when a CPU came
 * free: on 4 vCPUs hackbench took 1.6-1.7x EEVDF's time, 0.95-1.01x with
 * this, and 79% of its 7,335 preemptions had been for wakeups by
 * bottom-level tasks (bench/wakeup-lending.md).
 * Interrupts (timers, devices) and interactive wakers lend nothing: their
 * wakees preempt as before. Only the preemption changes: the wakee is
 * queued at its own rank, first in line for the next CPU that comes free.
 */
static u32 wakeup_rank(u32 rank, u32 waker_rank, u64 *key)
{
	if (waker_rank <= rank)
		return rank;
	/* Half a span into the waker's rank: behind every queued key of it (see RANK_SPAN). */
	*key += (u64)(waker_rank - rank) * RANK_SPAN + RANK_SPAN / 2;
	return waker_rank;
}

/* The policies that place tasks themselves queue them with enter_queue(). */
#include "affinity.bpf.h"

/*
 * ops.select_cpu()'s pick for a waking task; *@is_idle if it claimed an idle
 * CPU. The built-in idle picker honours p->cpus_ptr and prefers prev_cpu and
 * its cache siblings, which is what a waking task wants. Inlined: a BPF call
 * takes at most five arguments.
 */
static __always_inline s32 policy_select_cpu(u32 policy, struct task_struct *p,
					      const struct task_ctx *tctx, s32 prev_cpu,
					      u64 wake_flags, bool *is_idle)
{
	if (policy == LLMOS_POLICY_AFFINITY)
		return affinity_select_cpu(p, tctx, prev_cpu, wake_flags, is_idle);
	return scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, is_idle);
}

/* An idle CPU, claimed, for a task that did not pass through ops.select_cpu(); -1 if none. */
static s32 policy_pick_idle(u32 policy, struct task_struct *p, const struct task_ctx *tctx,
			    s32 cpu)
{
	if (policy == LLMOS_POLICY_AFFINITY)
		return affinity_pick_idle(p, tctx, cpu);
	return pick_idle_near(p, cpu);
}

/*
 * An idle CPU, claimed, for the CPU's last task that dispatch() let go
 * (see policy_moves_prev()); -1: it stays on @cpu.
 */
static s32 policy_place_last(u32 policy, struct task_struct *p, const struct task_ctx *tctx,
			     s32 cpu)
{
	if (policy == LLMOS_POLICY_AFFINITY)
		return affinity_place_last(p, tctx, cpu);
	return -1;
}

/*
 * Whether the policy queued @p itself, somewhere other than its LLC's
 * shared queue (which is where the core queues it otherwise).
 */
static bool policy_enqueue(u32 policy, struct task_struct *p, struct task_ctx *tctx, s32 cpu,
			   u64 enq_flags)
{
	if (policy == LLMOS_POLICY_AFFINITY)
		return affinity_queue_on_cpu(p, tctx, cpu, enq_flags);
	return false;
}

/*
 * The queue @tctx's task waits in, queued from @cpu, where the core would
 * queue it in @dsq (its CPU's or its LLC's): edf keeps each reserved thread
 * in a queue of its own.
 */
static u64 policy_queue_for(u32 policy, const struct task_ctx *tctx, s32 cpu, u64 dsq)
{
	if (policy == LLMOS_POLICY_EDF)
		return edf_queue_for(tctx, cpu, dsq);
	return dsq;
}

/*
 * The queues of their own that policies keep (edf's, one per reservation),
 * OWN_QUEUES of them, the @i-th own_queue(@i). Only their policy serves
 * them (policy_head()): switched away from it, the core serves them while
 * the switch settles and then carries what is left over.
 */
#define OWN_QUEUES LLMOS_MAX_DEADLINE_RULES

static u64 own_queue(u32 i)
{
	return reservation_dsq(i);
}

static bool serves_own_queues(u32 policy)
{
	return policy == LLMOS_POLICY_EDF;
}

/* At load: what the policies set up beyond the core's queues. */
static s32 policy_init(void)
{
	s32 err = edf_init();

	if (err) {
		scx_bpf_error("cannot set up edf's reservations: %d", err);
		return err;
	}
	err = rms_init();
	if (err)
		scx_bpf_error("cannot set up rms's budget timers: %d", err);
	return err;
}

/*
 * A queue of the policy's own whose head competes with the CPU's and the
 * LLC's queue heads in ops.dispatch(): in *@dsq, with its key (ranked) in
 * *@key.
 */
static bool policy_head(u32 policy, u64 *dsq, u64 *key)
{
	if (policy == LLMOS_POLICY_EDF)
		return edf_head(dsq, key);
	return false;
}

/* For an idle CPU with nothing queued for it: whether the policy found it a task. */
static bool policy_balance(u32 policy, s32 cpu)
{
	if (policy == LLMOS_POLICY_AFFINITY)
		return steal_from_cpu_queues(cpu);
	return false;
}

/*
 * Whether @prev, which would keep @cpu, should rather be let go to be
 * placed anew (ops.enqueue() with SCX_ENQ_LAST; see policy_place_last()).
 */
static bool policy_moves_prev(u32 policy, struct task_struct *prev,
			      const struct task_ctx *pctx, s32 cpu)
{
	if (policy == LLMOS_POLICY_AFFINITY)
		return affinity_should_move(prev, pctx, cpu);
	return false;
}

/* A new task's per-policy state: level with the others. */
static void policy_task_start(struct task_ctx *tctx)
{
	tctx->boost_gen = boost_gen;
}

/*
 * Brings state a policy updates lazily up to date before a task is looked
 * at (mlfq's boosts, which do not visit every task; see catch_up_boost()).
 * Under every policy, so that a switch to mlfq finds it current.
 */
static void policy_catch_up(struct task_ctx *tctx)
{
	catch_up_boost(tctx);
}

/*
 * A task's turn on its CPU ended: what lasts one turn ends (a task mlfq's
 * boost lifted has had its turn), then policy_catch_up(), which may start
 * it again (a boost came meanwhile).
 */
static void policy_turn_over(struct task_ctx *tctx)
{
	tctx->lifted = false;
	policy_catch_up(tctx);
}

/* A task woke up at @now. */
static void policy_wakeup(u32 policy, struct task_ctx *tctx, u64 now)
{
	if (policy == LLMOS_POLICY_MLFQ)
		mlfq_wakeup(tctx, now);
	else if (policy == LLMOS_POLICY_EDF)
		edf_wakeup(tctx, now);
}

/* A task got @cpu after waiting @waited ns. */
static void policy_running(u32 policy, struct task_ctx *tctx, s32 cpu, u64 waited)
{
	if (policy == LLMOS_POLICY_MLFQ)
		mlfq_end_starvation(tctx, waited);
	else if (policy == LLMOS_POLICY_EDF)
		edf_running(tctx, cpu);
	else if (policy == LLMOS_POLICY_RMS)
		rms_running(tctx, cpu);
}

/*
 * A task's turn on @cpu ended after @used ns; @requeued: it gave up its CPU
 * and wants to go on (not: it sleeps, or it keeps its CPU with a new slice).
 */
static void policy_charge(u32 policy, struct task_ctx *tctx, s32 cpu, u64 used, bool requeued)
{
	if (policy == LLMOS_POLICY_MLFQ)
		mlfq_charge(tctx, used, requeued);
	else if (policy == LLMOS_POLICY_EDF)
		edf_charge(tctx, cpu, used);
}

/* A switch to @policy is being settled. */
static void policy_switched_to(u32 policy)
{
	if (policy == LLMOS_POLICY_MLFQ)
		mlfq_switched_to();
}

/* The housekeeping tick, at @now, under @policy. */
static void policy_tick(u32 policy, u64 now)
{
	if (policy == LLMOS_POLICY_MLFQ)
		mlfq_tick(now);
}

/* At load: the policies' clocks start now. */
static void policies_init(u64 now)
{
	last_boost_at = now;
}

#endif /* __LLMOS_POLICY_BPF_H */
