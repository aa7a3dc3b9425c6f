/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Priority inheritance through PI futexes (pthread mutexes with
 * PTHREAD_PRIO_INHERIT, which the kernel backs with an rt_mutex): a thread
 * holding one that a thread of higher priority (prio) or level (mlfq) waits
 * for runs at the waiter's until it lets go of it, so that threads of a
 * priority in between cannot hold up the waiter by holding up the holder.
 *
 * The kernel's own PI chain lowers the holder's p->prio to its top
 * waiter's (basic.sh checks it does for sched_ext tasks on each kernel of
 * the test matrix), but it carries nice only: it knows nothing of our
 * rules' priorities or mlfq's levels, and two nice-0 threads look equal to
 * it. So we keep our own record: a thread that blocks on a PI futex (its
 * pi_blocked_on is set before it sleeps) passes its priority and level,
 * with what it inherited itself, on to the futex's owner, and its CPU,
 * about to pick another task, runs the owner next if it is queued (see
 * run_lock_owner()). The holder drops what it inherited once the kernel
 * says nobody waits on it (pi_top_task NULL). A waiter that arrives later
 * at the head of a chain of holders reaches the first holder only.
 * Reading p->prio on the queueing path as well cost the verifier 26% (6.16)
 * and 32% (6.17) more instructions for what the record already carries.
 *
 * Plain futexes carry no owner the kernel knows of, so nothing is inherited
 * through them.
 */
#ifndef __LLMOS_INHERIT_BPF_H
#define __LLMOS_INHERIT_BPF_H

#include "llmos.bpf.h"
#include "classify.bpf.h"

/* The rt_mutex owner word's low bit says it has waiters; the rest is the task. */
#define RT_MUTEX_OWNER_FLAGS 1UL

static bool inheritance_on(void)
{
	return tunables.priority_inheritance;
}

/*
 * The priority @p runs at on the scale of task_prio(): its own, or that of
 * the highest-priority thread waiting on a PI futex it holds (0 if none).
 */
static u32 effective_prio(const struct task_struct *p, const struct task_ctx *tctx)
{
	u32 own = task_prio(p, tctx);

	return tctx->inherited_prio > own ? tctx->inherited_prio : own;
}

/*
 * The PI futex owner @p is blocked on, by tid; 0 if none. The pointers are
 * read as the kernel left them: the waiter sits on its stack while it
 * sleeps, and the owner cannot exit while it holds the lock.
 */
static u32 lock_owner_of(const struct task_struct *p)
{
	struct rt_mutex_waiter *waiter = BPF_CORE_READ(p, pi_blocked_on);
	struct task_struct *owner;

	if (!waiter)
		return 0;
	owner = (void *)((unsigned long)BPF_CORE_READ(waiter, lock, owner) & ~RT_MUTEX_OWNER_FLAGS);
	return owner ? BPF_CORE_READ(owner, pid) : 0;
}

/*
 * @p, on mlfq level @level, goes to sleep: if it waits for a PI futex, the
 * futex's owner inherits its priority and level (with what @p inherited
 * itself, so along a chain of holders), and @p notes the owner for its
 * CPU's next dispatch (see run_lock_owner()).
 */
static void note_lock_wait(struct task_struct *p, struct task_ctx *tctx, u32 level)
{
	u32 prio = effective_prio(p, tctx), tid;
	struct task_struct *owner;
	struct task_ctx *octx;

	if (tctx->inherits && tctx->inherited_level < level)
		level = tctx->inherited_level;

	tctx->lock_owner = 0;
	if (!inheritance_on() || !(tid = lock_owner_of(p)))
		return;
	owner = bpf_task_from_pid(tid);
	if (!owner)
		return;
	octx = lookup_task_ctx(owner);
	if (octx) {
		if (prio > octx->inherited_prio)
			octx->inherited_prio = prio;
		if (!octx->inherits || level < octx->inherited_level)
			octx->inherited_level = level;
		octx->inherits = true;
		tctx->lock_owner = tid;
	}
	bpf_task_release(owner);
}

/* @p lets go of what it inherited once no thread waits on a lock it holds. */
static void drop_inheritance_if_released(const struct task_struct *p, struct task_ctx *tctx)
{
	if (tctx->inherits && !BPF_CORE_READ(p, pi_top_task)) {
		tctx->inherits = false;
		tctx->inherited_prio = 0;
	}
}

/*
 * Called by a CPU whose task just blocked on a PI futex (ops.dispatch()):
 * runs the futex's owner here next if it waits in one of our queues and may
 * run here. Its key there was set before it inherited anything; waiting for
 * its turn by it would keep the inversion going. A global function: the
 * verifier checks the DSQ walk once, not in every caller's paths.
 */
__noinline bool run_lock_owner(u32 tid, s32 cpu)
{
	struct task_struct *owner, *p;
	struct task_ctx *octx;
	bool moved = false;
	u64 dsq;

	owner = bpf_task_from_pid(tid);
	if (!owner)
		return false;
	octx = lookup_task_ctx(owner);
	dsq = BPF_CORE_READ(owner, scx.dsq, id);
	/* Queued, in one of our queues (not a local or the global one), not running. */
	if (!octx || octx->on_cpu || !(owner->scx.flags & SCX_TASK_QUEUED) || !dsq ||
	    (dsq & SCX_DSQ_FLAG_BUILTIN) || !bpf_cpumask_test_cpu(cpu, owner->cpus_ptr)) {
		bpf_task_release(owner);
		return false;
	}
	bpf_rcu_read_lock();
	bpf_for_each(scx_dsq, p, dsq, 0) {
		if (p->pid != tid)
			continue;
		moved = scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL, 0);
		break;
	}
	bpf_rcu_read_unlock();
	bpf_task_release(owner);
	return moved;
}

#endif /* __LLMOS_INHERIT_BPF_H */
