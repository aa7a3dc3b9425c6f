/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The edf policy. A thread that a [[deadline]] rule reserves CPU time for
 * (classify.bpf.h) runs, while its budget for the current period lasts, at
 * EDF_RANK_RESERVED keyed by its absolute deadline: ahead of every other
 * thread, earliest deadline first, and on waking it takes the CPU of any
 * thread whose deadline is later or that has none. Once it has used its
 * runtime in a period it runs as any other thread until the next period,
 * so a reserved thread cannot starve the machine; the loader admitted the
 * rules only if together they reserve at most 90% of the CPUs (config.rs
 * admit()). Every other thread runs at EDF_RANK_SHARED in vtime order,
 * sharing what the reservations leave.
 *
 * Periods follow the thread: one begins when it wakes as the constant
 * bandwidth server's rule allows (edf_wakeup()), or, once its budget is
 * spent, when it runs or waits a period after the last began. So a thread
 * woken at the start of each period gets its runtime in each, by its
 * deadline, and one that wakes more often, or never sleeps, gets no more
 * than its runtime per period.
 *
 * A reserved thread waits in its reservation's own queue, which every CPU
 * looks at in ops.dispatch() (edf_head()), so that its rank can change while
 * it waits: one whose budget is spent competes there as a shared thread, by
 * vtime, until its next period begins, and then by its new deadline at once,
 * not after a turn it would first have to wait for among the shared threads.
 * A timer per reservation makes the CPU decide again when it matters: when
 * a running reserved thread's budget runs out (slices end only at ticks,
 * 4 ms apart at HZ=250, longer than many budgets) and when a waiting one's
 * next period begins.
 *
 * A deadline is ns since boot, below RANK_SPAN (2^58 ns, 9 years of uptime);
 * a shared thread's key is its vtime ranked one RANK_SPAN up. So a key below
 * RANK_SPAN is a deadline (see key_is_vtime()), which is neither kept near
 * the LLC's vtime_now() nor advances it.
 */
#ifndef __LLMOS_EDF_BPF_H
#define __LLMOS_EDF_BPF_H

#include "llmos.bpf.h"
#include "classify.bpf.h"
#include "vtime.bpf.h"

#define EDF_RANK_RESERVED 0
#define EDF_RANK_SHARED 1

/* The reservation @tctx's task holds, or NULL. */
static const struct llmos_reservation *reservation_of(const struct task_ctx *tctx)
{
	if (tctx->reservation < 0)
		return NULL;
	return &rules_of(tctx->rules_gen)
			->reservations[tctx->reservation & (LLMOS_MAX_DEADLINE_RULES - 1)];
}

/* Whether @tctx's task runs on its reservation: it holds one, with budget left. */
static bool edf_reserved(const struct task_ctx *tctx)
{
	return tctx->reservation >= 0 && tctx->budget_ns > 0;
}

/*
 * What ops.dispatch() and the timer know of a reservation without its
 * thread. Its fields are written by the holder's callbacks and read
 * anywhere: a stale read costs one needless or one late decision, which
 * the next one mends. Its times are on the timer's clock (CLOCK_MONOTONIC,
 * bpf_ktime_get_ns()), not scx_bpf_now()'s: that is the runqueue's clock,
 * which in the timer's callback may be as old as the last scheduling event
 * on its CPU. Checked against it, the callback re-armed itself for time
 * that had already passed (7.2, 1 vCPU: a thread with 1.3 ms of budget left
 * ran 7 ms on).
 */
struct reservation_slot {
	struct bpf_timer timer;
	u64 run_until;	/* while its thread runs: when its budget runs out, or its next period begins */
	u64 due_at;	/* while it waits with its budget spent: when its next period begins... */
	u64 due_key;	/* ...and the deadline (ranked) it competes with from then */
	s32 run_cpu;	/* the CPU its thread runs on, or -1 */
	s32 wait_cpu;	/* the CPU it waits for, to kick at due_at */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LLMOS_MAX_DEADLINE_RULES);
	__type(key, u32);
	__type(value, struct reservation_slot);
} reservation_slots SEC(".maps");

/*
 * The reservations whose queues have had a thread: ops.dispatch() looks at
 * these. Bits are only ever set, so a thread is never left in a queue that
 * no CPU looks at (a bit cleared as another CPU queued a thread would do
 * that).
 */
static u64 reservation_queues_used;

static u64 reservation_dsq(u32 rule)
{
	return LLMOS_RESERVATION_DSQ_BASE + (rule & (LLMOS_MAX_DEADLINE_RULES - 1));
}

static struct reservation_slot *slot_of(s32 rule)
{
	u32 key = rule & (LLMOS_MAX_DEADLINE_RULES - 1);

	return bpf_map_lookup_elem(&reservation_slots, &key);
}

/*
 * Arms @slot's timer for @at on the scheduler's clock, which reads @now;
 * returns @at on the timer's clock.
 */
static u64 arm_slot(struct reservation_slot *slot, u64 at, u64 now)
{
	u64 delay = time_before(now, at) ? at - now : 0;

	bpf_timer_start(&slot->timer, delay, 0);
	return bpf_ktime_get_ns() + delay;
}

/*
 * A reservation's timer: its running thread's budget ran out, or its
 * waiting thread's next period began. Either way the CPU concerned decides
 * again (ops.dispatch()); if the time moved meanwhile (a new period began
 * while the thread ran), the timer waits for the new one.
 */
static int reservation_timer_fired(void *map, int *key, struct reservation_slot *slot)
{
	u64 now = bpf_ktime_get_ns(), at = slot->run_until;
	s32 cpu = slot->run_cpu;

	if (cpu < 0) {
		cpu = slot->wait_cpu;
		at = slot->due_at;
	}
	if (!at || cpu < 0)
		return 0;
	if (time_before(now, at)) {
		bpf_timer_start(&slot->timer, at - now, 0);
		return 0;
	}
	kick_cpu(cpu, SCX_KICK_PREEMPT);
	return 0;
}

/* At load: each reservation's timer. */
static s32 edf_init(void)
{
	struct reservation_slot *slot;
	s32 err;
	u32 i;

	bpf_for(i, 0, LLMOS_MAX_DEADLINE_RULES) {
		slot = slot_of(i);
		if (!slot)
			return -ENOENT;
		slot->run_cpu = slot->wait_cpu = -1;
		err = bpf_timer_init(&slot->timer, &reservation_slots, CLOCK_MONOTONIC);
		if (!err)
			err = bpf_timer_set_callback(&slot->timer, reservation_timer_fired);
		if (err)
			return err;
		err = scx_bpf_create_dsq(reservation_dsq(i), -1);
		if (err)
			return err;
	}
	return 0;
}

static u32 edf_rank(const struct task_ctx *tctx)
{
	return edf_reserved(tctx) ? EDF_RANK_RESERVED : EDF_RANK_SHARED;
}

/*
 * A reserved thread's slice: what is left of its budget (the reservation's
 * timer stops it when that runs out: slices end only at ticks).
 */
static u64 edf_slice(const struct task_ctx *tctx)
{
	if (edf_reserved(tctx) && (u64)tctx->budget_ns < tunables.slice_ns)
		return tctx->budget_ns;
	return tunables.slice_ns;
}

/*
 * When the next period of @r may begin for @tctx once its budget is spent:
 * a period after the last began, so that it gets no more than its runtime
 * per period.
 */
static u64 edf_next_start(const struct task_ctx *tctx, const struct llmos_reservation *r)
{
	return tctx->period_start + r->period_ns;
}

/*
 * Where a period of @r that begins at @now for @tctx starts, the last one
 * being over: on the last one's grid, a whole number of periods after it,
 * if that still leaves the runtime before the deadline; else at @now. A
 * wakeup can only be late: a period counted from a late one ran on past the
 * thread's next wakeup on time, which found the budget nearly spent and
 * waited as a shared thread (7.2, 1 vCPU, host loaded: wakeups 3.9 and 7.9
 * ms late, then waits of 6.2 and 5.6 ms in the next periods).
 */
static u64 edf_period_start(const struct task_ctx *tctx, const struct llmos_reservation *r,
			    u64 now)
{
	u64 grid;

	if (!tctx->period_start || time_before(now, tctx->period_start + r->period_ns))
		return now;
	grid = now - (now - tctx->period_start) % r->period_ns;
	return now - grid <= r->deadline_ns - r->runtime_ns ? grid : now;
}

/*
 * The budget of a new period of @r beginning at *@start, for a thread whose
 * last period began at @last_start and left it @left (< 0: it overran by
 * as much). As under SCHED_DEADLINE, the debt comes off the new budget, but
 * each period the thread slept through beyond the last repays a runtime of
 * it: what it used before its first sleep (7.2: edf-a's start-up, 3 ms for
 * a 0.5 ms runtime) is not charged to a wakeup many periods later. A debt
 * still of a whole runtime or more postpones the period by as many periods
 * as it takes to leave budget, as SCHED_DEADLINE's replenishment does,
 * rather than leave the thread a period without any: it keeps its
 * bandwidth, and runs after the threads due sooner but ahead of the shared
 * ones. Without this, one period whose cost spiked (1.7 ms for 0.5 ms of
 * work, the guest stopped meanwhile) left the thread a period behind CPU
 * hogs, and late. The postponed period (*@start) is on the grid of the last
 * one, as SCHED_DEADLINE moves a deadline by whole periods: counted from a
 * wakeup that came late, it began after the thread's next wakeup on time,
 * which then found no budget and waited behind the hogs (7.2, 1 vCPU: a
 * 3.7 ms period, then a wakeup 5.5 ms late; the period after was 1 ms late).
 */
static s64 edf_replenish(const struct llmos_reservation *r, s64 left, u64 last_start, u64 *start)
{
	u64 periods = (*start - last_start) / r->period_ns, postponed;
	s64 debt = left < 0 ? left : 0;

	if (debt < 0 && periods > 1) {
		if (periods - 1 > (u64)(-debt) / r->runtime_ns)
			debt = 0;
		else
			debt += (s64)((periods - 1) * r->runtime_ns);
	}
	left = (s64)r->runtime_ns + debt;
	if (left > 0)
		return left;
	postponed = (u64)(-left) / r->runtime_ns + 1;
	*start = last_start + (periods + postponed) * r->period_ns;
	return left + (s64)(postponed * r->runtime_ns);
}

/*
 * Where @tctx's reservation stands once a turn of @used ns ends at @now:
 * the budget left in *@left and, if a new period begins then, its start in
 * *@start (0 otherwise; see edf_replenish()). One definition for
 * ops.dispatch(), which weighs the turn before it ends, and for
 * edf_charge(), which ends it.
 */
static void edf_after_turn(const struct task_ctx *tctx, const struct llmos_reservation *r,
			   u64 used, u64 now, s64 *left, u64 *start)
{
	*left = tctx->budget_ns;
	/* A thread that ran as a shared one had no budget to pay from. */
	if (*left > 0)
		*left -= (s64)used;
	*start = 0;
	if (time_before(now, edf_next_start(tctx, r)))
		return;
	*start = edf_period_start(tctx, r, now);
	*left = edf_replenish(r, *left, tctx->period_start, start);
}

/* Ends a turn of @used ns at @now in @tctx's reservation (see edf_after_turn()). */
static void edf_account(struct task_ctx *tctx, u64 used, u64 now)
{
	const struct llmos_reservation *r = reservation_of(tctx);
	s64 left;
	u64 start;

	if (!r)
		return;
	edf_after_turn(tctx, r, used, now, &left, &start);
	tctx->budget_ns = left;
	if (start) {
		tctx->period_start = start;
		tctx->edf_deadline = start + r->deadline_ns;
	}
}

/*
 * A reserved thread woke up at @now: the constant bandwidth server's rule
 * (as SCHED_DEADLINE's) starts a period at the wakeup (see
 * edf_period_start()) if the last one is over, or if what is left of its
 * budget, used by its deadline, would take more than the reservation's
 * share of that time. So periods follow the thread's own wakeups. A grid of
 * periods fixed at its first wakeup drifted with the timer's delays (a
 * wakeup can only be late): on time again, the thread woke before its
 * period and ran on the last one's remains (7.2, 1 vCPU: 1 ms of work
 * every 5 ms missed 5.7% of deadlines).
 */
static void edf_wakeup(struct task_ctx *tctx, u64 now)
{
	const struct llmos_reservation *r = reservation_of(tctx);
	s64 left = tctx->budget_ns;
	u64 start;

	if (!r)
		return;
	if (time_before(now, edf_next_start(tctx, r)) && time_before(now, tctx->edf_deadline) &&
	    (left <= 0 || (u64)left * r->deadline_ns <= (tctx->edf_deadline - now) * r->runtime_ns))
		return;
	start = edf_period_start(tctx, r, now);
	tctx->budget_ns = edf_replenish(r, left, tctx->period_start, &start);
	tctx->period_start = start;
	tctx->edf_deadline = start + r->deadline_ns;
}

/*
 * While @tctx's thread runs on @cpu from @now: the timer ends its turn when
 * its budget runs out, or, running as a shared thread, when its next period
 * begins (which its CPU then starts it on at once).
 */
static void edf_runs(struct task_ctx *tctx, s32 cpu, u64 now)
{
	const struct llmos_reservation *r = reservation_of(tctx);
	struct reservation_slot *slot = slot_of(tctx->reservation);

	if (!r || !slot)
		return;
	slot->run_cpu = cpu;
	slot->due_at = 0;
	if (edf_reserved(tctx))
		slot->run_until = arm_slot(slot, now + tctx->budget_ns, now);
	else
		slot->run_until = arm_slot(slot, edf_next_start(tctx, r), now);
}

/* A task got @cpu: a reserved thread whose period is due starts it. */
static void edf_running(struct task_ctx *tctx, s32 cpu)
{
	u64 now = scx_bpf_now();

	if (tctx->reservation < 0)
		return;
	edf_account(tctx, 0, now);
	edf_runs(tctx, cpu, now);
}

/*
 * A turn of @used ns on @cpu ended. A thread that keeps its CPU with a new
 * slice (ops.dispatch()) runs on; otherwise its reservation's timer has
 * nothing to end.
 */
static void edf_charge(struct task_ctx *tctx, s32 cpu, u64 used)
{
	struct reservation_slot *slot = slot_of(tctx->reservation);
	u64 now = scx_bpf_now();

	if (tctx->reservation < 0 || !slot)
		return;
	edf_account(tctx, used, now);
	if (tctx->on_cpu)
		edf_runs(tctx, cpu, now);
	else
		slot->run_cpu = -1;
}

/*
 * The rank, and in *@slice the slice, and in *@key the key (a deadline or
 * @vtime) that a thread which has run @used ns of its turn keeps its CPU
 * with (see policy_prev_turn()): as its turn would leave it.
 */
static u32 edf_prev_rank(const struct task_ctx *tctx, u64 used, u64 vtime, u64 *slice, u64 *key)
{
	const struct llmos_reservation *r = reservation_of(tctx);
	s64 left;
	u64 start;

	*slice = tunables.slice_ns;
	*key = vtime;
	if (!r)
		return EDF_RANK_SHARED;
	edf_after_turn(tctx, r, used, scx_bpf_now(), &left, &start);
	if (left <= 0)
		return EDF_RANK_SHARED;
	if ((u64)left < *slice)
		*slice = left;
	*key = start ? start + r->deadline_ns : tctx->edf_deadline;
	return EDF_RANK_RESERVED;
}

/*
 * The queue @tctx's task waits in, queued from @cpu: a reserved thread's is
 * its reservation's (@dsq otherwise). One whose budget is spent competes as
 * a shared thread until its next period begins; then the timer has @cpu
 * decide again.
 */
static u64 edf_queue_for(const struct task_ctx *tctx, s32 cpu, u64 dsq)
{
	const struct llmos_reservation *r = reservation_of(tctx);
	struct reservation_slot *slot = slot_of(tctx->reservation);
	u64 now, next;

	if (!r || !slot)
		return dsq;
	__sync_fetch_and_or(&reservation_queues_used, 1ULL << (tctx->reservation & 63));
	slot->wait_cpu = cpu;
	if (edf_reserved(tctx)) {
		slot->due_at = 0;
	} else {
		now = scx_bpf_now();
		next = edf_next_start(tctx, r);
		slot->due_key = ranked_key(EDF_RANK_RESERVED, next + r->deadline_ns);
		slot->due_at = arm_slot(slot, next, now);
	}
	return reservation_dsq(tctx->reservation);
}

/*
 * The reserved thread to run first, if any: in *@dsq its queue and in *@key
 * the key (ranked) it competes with: its deadline, or its vtime while its
 * budget is spent, until its next period is due. It may not be allowed on
 * the CPU that asks, and then stays queued (see consume()).
 */
static bool edf_head(u64 *dsq, u64 *key)
{
	u64 used = reservation_queues_used, now = bpf_ktime_get_ns();
	bool found = false;
	u32 i;

	bpf_for(i, 0, LLMOS_MAX_DEADLINE_RULES) {
		struct reservation_slot *slot;
		struct task_struct *head;
		u64 queue = reservation_dsq(i), head_key;

		if (!(used & (1ULL << i)) || !scx_bpf_dsq_nr_queued(queue))
			continue;
		head = __COMPAT_scx_bpf_dsq_peek(queue);
		if (!head)
			continue;
		head_key = head->scx.dsq_vtime;
		slot = slot_of(i);
		if (slot && slot->due_at && !time_before(now, slot->due_at))
			head_key = slot->due_key;
		if (!found || time_before(head_key, *key)) {
			*dsq = queue;
			*key = head_key;
			found = true;
		}
	}
	return found;
}

#endif /* __LLMOS_EDF_BPF_H */
