/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_llmos: the enqueue/dispatch core shared by every policy.
 *
 * Queues: every CPU owns a DSQ per policy for tasks that can run only on
 * it, and every last-level cache (LLC) owns a DSQ per policy for the tasks
 * that can run on any of its CPUs. The policy decides a task's key, rank
 * and slice, and where the core asks it, its placement; the core asks only
 * through policy.bpf.h, with the policy it read once per callback. Ranks
 * share a queue, ordered by key (see ranked_key()). A CPU takes the lower
 * key of the active policy's two queue heads, then steals from the busiest
 * other LLC before it goes idle. Each queue has a second bank, which a
 * policy that retires banks uses to lift every task waiting in it at once
 * (see retire_banks()).
 *
 * A live policy switch is a write of active_policy: new decisions follow it
 * at once, and a 10 ms tick carries the tasks still queued under the old
 * policy over to the new one's queues (sweep_strays()).
 */
#include "llmos.bpf.h"
#include "period.bpf.h"
#include "policy.bpf.h"

char _license[] SEC("license") = "GPL";

/*
 * The kernel's watchdog ejects the scheduler when a runnable task waits this
 * long; it is the last line of defence, not a policy. It is the kernel's
 * maximum, because a slice ends only at a scheduler tick: at 250 Hz every
 * CPU hog on a CPU keeps it for at least 4 ms, so 1,000 of them need 4 s to
 * each get a turn, however short their slices, and more under emulation.
 * With 30 s a CPU can serve about 7,000 hogs at 250 Hz.
 */
#define WATCHDOG_TIMEOUT_MS 30000

/* How many CPUs a waking task looks at for one running a lower rank. */
#define PREEMPT_SCAN_CPUS 64

/* Tasks waiting in another LLC's queue before a busy CPU takes one (see llmos_dispatch()). */
#define BUSY_STEAL_MIN_QUEUED 2

/*
 * Tasks waiting in an LLC of another NUMA node before any CPU takes one
 * (see steal()): a task that moves across nodes leaves its memory behind,
 * and a lone one is about to be taken by its own LLC's CPUs.
 */
#define REMOTE_STEAL_MIN_QUEUED 2

/*
 * How long an RT or deadline task may hold a CPU before the tasks queued on
 * that CPU's own queue that may run elsewhere are carried off to their LLC's.
 * Interrupt threads and audio threads hold it for microseconds; a task that
 * moves for them loses its cache, and under affinity its place.
 */
#define RT_HOLD_NS 5000000ULL /* 5 ms */

/* Period of the housekeeping tick: policy switches, the policy's own tick, RT-held CPUs. */
#define TICK_NS 10000000ULL /* 10 ms */

/*
 * How often the tick looks for tasks queued where no CPU serves them (see
 * sweep_strays()), which then wait at most this long; the watchdog allows
 * 30 s. A look reads the length of every policy's queue of every CPU and
 * LLC: too much for every tick on a large machine.
 */
#define SWEEP_NS 1000000000ULL /* 1 s */

/*
 * Where the active mask cannot be read (see cpu_active()), how long a CPU
 * that pushed a task off counts as draining without an ops.cpu_offline():
 * a hotplug rolled back. If the CPU is still going down, its next push
 * marks it again.
 */
#define DRAIN_NS 1000000000ULL /* 1 s */

/* p->on_rq while the kernel moves a queued task between CPUs (kernel/sched/sched.h). */
#define TASK_ON_RQ_MIGRATING 2

UEI_DEFINE(uei);

/* When the tick next runs sweep_strays(); 0: at once. */
static u64 next_sweep_at;

/* Whether an LLC has a CPU that serves its queue (is_online()), for sweep_strays(). */
static bool llc_served[LLMOS_MAX_LLCS];

struct tick_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct tick_timer);
} tick_timer SEC(".maps");

/*
 * In ops.enqueue() of a wakeup: the CPU of the task that is waking another,
 * or -1. A task woken from task context was woken by the task running on
 * this CPU: it has just handed the wakee work (a message, a released lock)
 * and will give up the CPU at the end of its slice, with more done for the
 * wakee. Preempting it for the wakee would switch at every message of a
 * pipeline. A wakeup from an interrupt (a timer, a device) says nothing
 * about the task it interrupted.
 */
static s32 waker_cpu(void)
{
	/*
	 * Not bpf_in_interrupt(): its CONFIG_PREEMPT_RT check makes libbpf
	 * read the kernel config, which many systems do not install. (On RT,
	 * where softirqs run in threads, they count as task context here.)
	 */
	bool in_interrupt = get_preempt_count() & (NMI_MASK | HARDIRQ_MASK | SOFTIRQ_MASK);

	return in_interrupt ? -1 : (s32)bpf_get_smp_processor_id();
}

/*
 * The rank of the task waking another from here: the one running on this
 * CPU; 0 from an interrupt, which leaves the wakee its own (see
 * wakeup_rank()).
 */
static u32 current_waker_rank(void)
{
	s32 cpu = waker_cpu();

	return cpu < 0 ? 0 : running[cpu_idx(cpu)].rank;
}

/*
 * The rank @tctx's waking task competes for a running task's CPU with, and
 * in *@key its key for that, in ops.enqueue() (see wakeup_rank()). Its waker
 * is the larger of what ops.select_cpu() saw and what runs here: a wakeup
 * ops.select_cpu() queued on another CPU's wake list reaches ops.enqueue() in
 * that CPU's interrupt, and a task that may use one CPU only skips
 * ops.select_cpu().
 */
static u32 waking_rank(u32 policy, const struct task_ctx *tctx, u64 *key)
{
	u32 waker_rank;

	if (!wakers_lend_rank(policy))
		return run_rank(policy, tctx);
	waker_rank = current_waker_rank();
	if (tctx->waker_rank > waker_rank)
		waker_rank = tctx->waker_rank;
	return wakeup_rank(run_rank(policy, tctx), waker_rank, key);
}

/*
 * Kicks a CPU of @llc that @p may use and whose running task it outranks
 * at @rank with @key (see wakeup_rank()), preferring the one running the
 * lowest rank: a waking interactive task should not wait out a CPU hog's
 * long slice. The waker's CPU is spared (see waker_cpu()). It looks at the
 * LLC's own CPUs, at most PREEMPT_SCAN_CPUS of them, from @p's last one if
 * that is one of them, so that among equals its warm cache wins.
 */
static void preempt_for(u32 policy, struct task_struct *p, u32 llc, u32 rank, u64 key)
{
	s32 prev = scx_bpf_task_cpu(p), victim = -1, waker = waker_cpu();
	u32 first = llc_first[llc_idx(llc)], nr = llc_nr_cpus[llc_idx(llc)];
	u32 start = llc_of(prev) == llc ? cpu_pos[cpu_idx(prev)] : 0;
	u32 i, victim_rank = 0;

	bpf_for(i, 0, PREEMPT_SCAN_CPUS) {
		s32 cpu;

		if (i >= nr)
			break;
		cpu = llc_cpus[cpu_idx(first + (start + i) % nr)];
		if (cpu == waker || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr) ||
		    !outranks_running(policy, cpu, rank, key))
			continue;
		if (victim < 0 || running[cpu_idx(cpu)].rank > victim_rank) {
			victim = cpu;
			victim_rank = running[cpu_idx(cpu)].rank;
		}
	}
	if (victim >= 0) {
		kick_cpu(victim, SCX_KICK_PREEMPT);
		stat_inc(LLMOS_STAT_PREEMPT);
	}
}

/* Tasks waiting in @policy's queue on @cpu: in both banks where it retires them. */
static s32 cpu_queued(s32 cpu, u32 policy)
{
	s32 queued = scx_bpf_dsq_nr_queued(cpu_dsq(cpu, policy));

	if (retires_banks(policy))
		queued += scx_bpf_dsq_nr_queued(cpu_retired_dsq(cpu, policy));
	return queued;
}

/* Tasks waiting in @policy's queue of @llc: in both banks where it retires them. */
static s32 llc_queued(u32 llc, u32 policy)
{
	s32 queued = scx_bpf_dsq_nr_queued(llc_dsq(llc, policy));

	if (retires_banks(policy))
		queued += scx_bpf_dsq_nr_queued(llc_retired_dsq(llc, policy));
	return queued;
}

/*
 * Whether ops.select_cpu() placed the task being enqueued, so that it has
 * had its chance at an idle CPU. 6.12 kernels lack SCX_ENQ_CPU_SELECTED, and
 * the compat helper answers "yes" there, which would leave every preempted
 * or slice-expired task waiting in a queue while CPUs idle. There, a wakeup
 * is what went through ops.select_cpu() (the kernel skips it only for tasks
 * that cannot migrate, which are queued on their CPU anyway), and every
 * other enqueue looks for an idle CPU.
 */
static bool cpu_was_selected(u64 enq_flags)
{
#pragma push_macro("SCX_ENQ_CPU_SELECTED")
#undef SCX_ENQ_CPU_SELECTED
	if (!bpf_core_enum_value_exists(enum scx_enq_flags, SCX_ENQ_CPU_SELECTED))
		return enq_flags & SCX_ENQ_WAKEUP;
#pragma pop_macro("SCX_ENQ_CPU_SELECTED")
	return __COMPAT_is_enq_cpu_selected(enq_flags);
}

/*
 * Whether @p still carries a direct dispatch that an earlier ops.select_cpu()
 * asked for and the kernel never carried out: the wakeup was queued on the
 * chosen CPU's wake list (SCX_OPS_ALLOW_QUEUED_WAKEUP), the scheduler was
 * disabled before that CPU enqueued it, and the bypass path enqueued it
 * without clearing p->scx.ddsp_dsq_id (fixed upstream by "sched_ext: Fix
 * stale direct dispatch state in ddsp_dsq_id"). Inserting again WARNs in
 * mark_direct_dispatch(): after every restart on 6.16 and 6.17 (basic.sh,
 * faults_no_stall). The kernel carries out the stale one instead, to the
 * local queue of the CPU selected now, which is where we would put it: our
 * ops.select_cpu() inserts into nothing else.
 */
static bool stale_direct_dispatch(const struct task_struct *p)
{
	return p->scx.ddsp_dsq_id != SCX_DSQ_INVALID;
}

s32 BPF_STRUCT_OPS(llmos_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	u32 policy = active_policy;
	struct task_ctx *tctx = lookup_task_ctx(p);
	bool is_idle = false;
	s32 cpu;

	if (!tctx)
		return prev_cpu;
	/* Only where wakers lend their rank is who woke a task asked. */
	if (wakers_lend_rank(policy))
		tctx->waker_rank = current_waker_rank();
	cpu = policy_select_cpu(policy, p, tctx, prev_cpu, wake_flags, &is_idle);
	if (is_idle && !stale_direct_dispatch(p)) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, task_slice(policy, tctx), 0);
		stat_inc(LLMOS_STAT_IDLE_DISPATCH);
	}
	return cpu;
}

/*
 * p->on_rq is an int in some kernels and a u8 in others: a plain read fails
 * to load where it is signed (libbpf resizes no signed load); this one is
 * relocated in size and sign.
 */
static u32 task_on_rq(const struct task_struct *task)
{
	return BPF_CORE_READ_BITFIELD(task, on_rq);
}

/*
 * Marks the CPU @p last ran on as draining if the kernel has just pushed @p
 * off it to @cpu (see draining_since): @p is being moved while queued (not
 * woken), from a CPU it may still use, so not for a cpumask change. (The
 * kernel moves tasks between CPUs for sched_ext only through the local
 * queues, without ops.enqueue().)
 */
static void note_push(const struct task_struct *p, const struct task_ctx *tctx, s32 cpu)
{
	s32 from = tctx->counters.last_cpu;

	if (task_on_rq(p) != TASK_ON_RQ_MIGRATING || from < 0 || from == cpu ||
	    !bpf_cpumask_test_cpu(from, p->cpus_ptr))
		return;
	stat_inc(LLMOS_STAT_PUSHED);
	if (draining_since[cpu_idx(from)])
		return;
	draining_since[cpu_idx(from)] = bpf_ktime_get_ns() | 1;
	/* Tasks queued on it wait for the sweep. */
	next_sweep_at = 0;
}

/*
 * Where a task that may run only on one CPU, not @cpu, the CPU it is on,
 * goes: its cpumask changed, and the kernel could not move it, its CPU
 * having left the active mask meanwhile. The kernel moves it at its next
 * wakeup; a CPU hog never wakes up. Its own CPU, through that CPU's local
 * queue, if it serves again; @cpu's local queue if @cpu is going down too,
 * where the kernel runs it and so pushes it off (in @cpu's own queue it would
 * wait for a dispatch that a CPU going down no longer makes, and if it holds
 * an RCU read section, the hotplug waits for it: 15 such tasks waited 38 s
 * in a 6.16 hotplug test). Otherwise -1: it queues on @cpu's own queue, which
 * serves it (a CPU takes the tasks of its own runqueue from a queue whatever
 * their cpumask) by its key. Always inserted into @cpu's local queue, it
 * never let @cpu ask for another task while two of them took turns: the
 * tasks queued there waited 32 s for the watchdog (7.2, stress-ng's affinity
 * stressors pinned to CPU 1 as it went offline, the hotplug itself held up
 * by an RCU reader among them).
 */
static s32 pinned_elsewhere(struct task_struct *p, s32 cpu)
{
	s32 own = bpf_cpumask_first(p->cpus_ptr);

	if (own < nr_cpu_ids && is_online(own))
		return own;
	return is_online(cpu) ? -1 : cpu;
}

void BPF_STRUCT_OPS(llmos_enqueue, struct task_struct *p, u64 enq_flags)
{
	u32 policy = active_policy, llc;
	s32 cpu = scx_bpf_task_cpu(p), idle;
	bool wakeup = enq_flags & SCX_ENQ_WAKEUP;
	struct task_ctx *tctx;
	u64 slice, key, dsq, wake_key;
	u32 wake_rank;

	/*
	 * A waking per-CPU kthread (kworker, ksoftirqd) is usually work that
	 * another task waits for, often from another CPU: I/O completions
	 * deferred to a workqueue (virtiofs defers every one), or flush_work()
	 * on work queued on every CPU. Behind a CPU hog's slice each such
	 * wait would cost up to a slice, so it preempts, as a waking kworker
	 * does under EEVDF, for a short slice. One that keeps running (its
	 * slice ran out) is queued like any pinned task below, so that a busy
	 * ksoftirqd cannot starve the tasks of its CPU.
	 */
	if (is_pcpu_kthread(p) && wakeup) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, short_slice(), enq_flags | SCX_ENQ_PREEMPT);
		running[cpu_idx(cpu)].kthread_cut_in = true;
		stat_inc(LLMOS_STAT_KTHREAD_DISPATCH);
		return;
	}

	/*
	 * The loader's threads answer `scx_llmos ctl`. They run for
	 * microseconds, and under fifo behind CPU hogs each of their wakeups
	 * would otherwise wait out whole slices: a user switching away from a
	 * policy that starves them must not be starved by it. Where an RT or
	 * deadline task holds their CPU, another CPU will do: on the shared
	 * queue each wakeup would wait out fifo's 100 ms turns.
	 */
	if (p->tgid == loader_tgid) {
		s32 target = cpu;

		if (is_cpu_held(cpu) && !is_migration_disabled(p))
			target = scx_bpf_pick_any_cpu(p->cpus_ptr, 0);
		if (target == cpu && !is_cpu_held(cpu)) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, short_slice(), enq_flags | SCX_ENQ_PREEMPT);
			return;
		}
		if (target >= 0 && target != cpu && is_online(target) && !is_cpu_held(target)) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | target, short_slice(),
					   enq_flags | SCX_ENQ_PREEMPT);
			kick_cpu(target, SCX_KICK_PREEMPT);
			return;
		}
	}

	tctx = lookup_task_ctx(p);
	if (!tctx) {
		scx_bpf_error("%s[%d] has no task context", p->comm, p->pid);
		return;
	}
	note_push(p, tctx, cpu);

	/*
	 * dispatch() let the CPU's last task go without a refill only so that
	 * it can be placed anew (see policy_moves_prev()).
	 */
	if (enq_flags & SCX_ENQ_LAST) {
		slice = task_slice(policy, tctx);
		idle = policy_place_last(policy, p, tctx, cpu);
		if (idle >= 0) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | idle, slice, enq_flags);
			kick_cpu(idle, SCX_KICK_IDLE);
			stat_inc(LLMOS_STAT_IDLE_DISPATCH);
		} else {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice, enq_flags);
		}
		return;
	}

	/*
	 * A task that may run only on its current CPU goes to that CPU's DSQ,
	 * where it competes by rank and key with the LLC queue.
	 */
	if (is_pcpu_task(p)) {
		/* Its one CPU is another (see pinned_elsewhere()). */
		if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr)) {
			s32 to = pinned_elsewhere(p, cpu);

			if (to >= 0) {
				scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | to, task_slice(policy, tctx),
						   enq_flags);
				stat_inc(LLMOS_STAT_PINNED_DISPATCH);
				return;
			}
		}
		dsq = policy_queue_for(policy, tctx, cpu, cpu_dsq(cpu, policy));
		key = enter_queue(policy, p, tctx, llc_of(cpu), cpu_queued(cpu, policy), &slice);
		stat_inc(LLMOS_STAT_PINNED_DISPATCH);
		/*
		 * A task that outranks the one running on its CPU is next there
		 * anyway: put it at the head of the CPU's local queue, and the
		 * kernel ends the running task's slice at once. A kick would do
		 * the same through an interrupt, which costs more.
		 */
		if (wakeup && preempts_on_wakeup(policy)) {
			wake_key = key;
			wake_rank = waking_rank(policy, tctx, &wake_key);
			if (outranks_running(policy, cpu, wake_rank, wake_key) && cpu != waker_cpu()) {
				stat_inc(LLMOS_STAT_PREEMPT);
				if (preempts_at_local_head(policy)) {
					scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice,
							   enq_flags | SCX_ENQ_PREEMPT);
					return;
				}
				scx_bpf_dsq_insert_vtime(p, dsq, slice, key, enq_flags);
				kick_cpu(cpu, SCX_KICK_PREEMPT);
				return;
			}
		}
		/*
		 * No kick: the kernel reschedules an idle CPU a task wakes up on
		 * (wakeup_preempt()), and a pinned task is otherwise queued by
		 * its own busy CPU (a slice ran out). A kick from here, with the
		 * CPU's lock held, would cost an irq_work at every wakeup.
		 */
		scx_bpf_dsq_insert_vtime(p, dsq, slice, key, enq_flags);
		return;
	}

	/*
	 * ops.select_cpu() is skipped for tasks that were preempted or whose
	 * slice ran out; give them an idle CPU if there is one.
	 */
	if (!cpu_was_selected(enq_flags)) {
		idle = policy_pick_idle(policy, p, tctx, cpu);
		/*
		 * A CPU going offline is idle between pushes (see draining_since):
		 * the task would only be pushed back. The kick makes it idle again.
		 */
		if (idle >= 0 && !is_online(idle)) {
			kick_cpu(idle, SCX_KICK_IDLE);
			idle = -1;
		}
		if (idle >= 0) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | idle, task_slice(policy, tctx),
					   enq_flags);
			kick_cpu(idle, SCX_KICK_IDLE);
			stat_inc(LLMOS_STAT_IDLE_DISPATCH);
			return;
		}
	}

	if (policy_enqueue(policy, p, tctx, cpu, enq_flags))
		return;

	llc = home_llc(p, cpu);
	dsq = policy_queue_for(policy, tctx, cpu, llc_dsq(llc, policy));
	key = enter_queue(policy, p, tctx, llc, queued_per_cpu(llc_queued(llc, policy), llc), &slice);
	/* `ctl inject-fault stray`: this task strays, once (see sweep_strays()). */
	if (injected_fault == LLMOS_FAULT_STRAY &&
	    __sync_val_compare_and_swap(&injected_fault, LLMOS_FAULT_STRAY, LLMOS_FAULT_NONE) ==
		    LLMOS_FAULT_STRAY)
		dsq = llc_dsq(llc, (policy + 1) % LLMOS_NR_POLICIES);
	scx_bpf_dsq_insert_vtime(p, dsq, slice, key, enq_flags);
	stat_inc(LLMOS_STAT_SHARED_DISPATCH);

	if (wakeup && preempts_on_wakeup(policy)) {
		wake_key = key;
		wake_rank = waking_rank(policy, tctx, &wake_key);
		preempt_for(policy, p, llc, wake_rank, wake_key);
	}
}

/* Move the head of @dsq to this CPU; tasks it may not run are skipped. */
static bool consume(u64 dsq)
{
	return scx_bpf_dsq_move_to_local(dsq, 0);
}

/*
 * Moves the head of @dsq, a queue of @llc, which competed with @key, to this
 * CPU. In vtime-ordered queues it advances the LLC's vtime_now() to the
 * head's vtime: queues are served in vtime order (within a rank), so the
 * head's vtime is how far service has got. (Tasks started any other way,
 * such as kthreads or tasks placed straight on an idle CPU, say nothing
 * about that.)
 */
static bool consume_head(u64 dsq, u32 llc, u64 key, u32 policy)
{
	if (!consume(dsq))
		return false;
	if (key_is_vtime(policy, key))
		advance_vtime_now(llc, unranked_key(key, llc));
	return true;
}

enum queue_result {
	QUEUES_EMPTY,	/* nothing queued (or it was taken by another CPU) */
	QUEUES_NOT_DUE,	/* nothing queued is due before the limit */
	QUEUES_SERVED,	/* a task was moved to this CPU */
};

/*
 * Whether either bank of a queue of @policy in @llc, @current and @retired
 * (@overdue: see cpu_bank_overdue), has a task waiting; if so, in *@dsq the
 * bank whose head is due first and in *@key the key that head competes with
 * (see retired_key()). Inlined: a BPF call takes at most five arguments.
 */
static __always_inline bool queue_head(u64 current, u64 retired, bool overdue, u32 policy,
					u32 llc, u64 *dsq, u64 *key)
{
	struct task_struct *head, *old;
	u64 old_key;

	/*
	 * Before 7.1 the compat peek walks the queue with the DSQ iterator,
	 * which takes the queue's lock: the same answer at a higher cost.
	 */
	head = __COMPAT_scx_bpf_dsq_peek(current);
	*dsq = current;
	*key = head ? head->scx.dsq_vtime : 0;
	if (!retires_banks(policy) || !scx_bpf_dsq_nr_queued(retired))
		return head != NULL;
	old = __COMPAT_scx_bpf_dsq_peek(retired);
	if (!old)
		return head != NULL;
	old_key = retired_key(policy, old->scx.dsq_vtime, llc, overdue);
	if (head && !time_before(old_key, *key))
		return true;
	*dsq = retired;
	*key = old_key;
	return true;
}

/*
 * Moves whichever of the CPU's and its LLC's queue heads of @policy has the
 * lower key to this CPU, unless that key is not before *@limit (the key of
 * the previous task, which then keeps the CPU).
 */
static enum queue_result dispatch_queued(s32 cpu, u32 llc, u32 policy, const u64 *limit)
{
	u64 first_dsq, second_dsq, first_key, second_key, dsq, key;
	bool first, second;

	first = queue_head(cpu_dsq(cpu, policy), cpu_retired_dsq(cpu, policy),
			   cpu_bank_overdue[cpu_idx(cpu)], policy, llc, &first_dsq, &first_key);
	second = queue_head(llc_dsq(llc, policy), llc_retired_dsq(llc, policy),
			    llc_bank_overdue[llc_idx(llc)], policy, llc, &second_dsq, &second_key);
	if (!first || (second && time_before(second_key, first_key))) {
		bool had_first = first;

		first = second;
		second = had_first;
		dsq = first_dsq;
		first_dsq = second_dsq;
		second_dsq = dsq;
		key = first_key;
		first_key = second_key;
		second_key = key;
	}
	if (!first)
		return QUEUES_EMPTY;
	if (limit && !time_before(first_key, *limit))
		return QUEUES_NOT_DUE;
	if (consume_head(first_dsq, llc, first_key, policy))
		return QUEUES_SERVED;
	/* Another CPU took that head meanwhile: the other queue's will do. */
	if (second && (!limit || time_before(second_key, *limit)) &&
	    consume_head(second_dsq, llc, second_key, policy))
		return QUEUES_SERVED;
	return QUEUES_EMPTY;
}

/* Takes a task from @llc's queue: from its retired bank first, which waited longer. */
static bool steal_from(u32 llc, u32 policy)
{
	if (!(retires_banks(policy) && consume(llc_retired_dsq(llc, policy))) &&
	    !consume(llc_dsq(llc, policy)))
		return false;
	stat_inc(LLMOS_STAT_STEAL);
	return true;
}

/*
 * Work stealing: an idle CPU is wasted capacity while another LLC has a
 * backlog. Try the busiest LLC of our NUMA node first, then the busiest of
 * the other nodes, then (an idle CPU) the rest of our node's in order after
 * our own. @min_queued is the backlog worth a migration: any for an idle
 * CPU, more for a busy one (see llmos_dispatch()); from another node, at
 * least REMOTE_STEAL_MIN_QUEUED.
 */
static bool steal(u32 home, u32 policy, s32 min_queued)
{
	u32 i, near = home, far = home;
	s32 most_near = 0, most_far = 0;

	bpf_for(i, 1, nr_llcs) {
		u32 llc = (home + i) % nr_llcs;
		s32 queued = llc_queued(llc, policy);

		if (same_node(llc, home)) {
			if (queued > most_near) {
				most_near = queued;
				near = llc;
			}
		} else if (queued > most_far) {
			most_far = queued;
			far = llc;
		}
	}
	if (near != home && most_near >= min_queued && steal_from(near, policy))
		return true;
	if (far != home && most_far >= min_queued && most_far >= REMOTE_STEAL_MIN_QUEUED &&
	    steal_from(far, policy))
		return true;
	/* A busy CPU moves a task only for the backlog that justified it. */
	if (min_queued > 1)
		return false;
	bpf_for(i, 1, nr_llcs) {
		u32 llc = (home + i) % nr_llcs;

		if (llc != near && same_node(llc, home) && steal_from(llc, policy))
			return true;
	}
	return false;
}

/*
 * While a switch is being settled, tasks may still wait in the previous
 * policy's queues of this CPU and LLC, or in a policy's own queues (see
 * own_queue()): serve them rather than go idle.
 */
static bool serve_unsettled(s32 cpu, u32 home, u32 policy)
{
	u32 other;

	bpf_for(other, 0, LLMOS_NR_POLICIES) {
		if (other == policy)
			continue;
		if (consume(cpu_dsq(cpu, other)) || consume(cpu_retired_dsq(cpu, other)) ||
		    consume(llc_dsq(home, other)) || consume(llc_retired_dsq(home, other)))
			return true;
	}
	if (!serves_own_queues(policy)) {
		bpf_for(other, 0, OWN_QUEUES) {
			if (consume(own_queue(other)))
				return true;
		}
	}
	return false;
}

/*
 * Ends @p's turn on @cpu: charges the CPU time used since the turn began to
 * its vtime and to the policy (mlfq's allotment, and the level it drops to
 * if @requeued: it gave up the CPU and wants to go on), and ends what lasts
 * a turn. From ops.stopping(), and from ops.dispatch() when @p keeps its CPU
 * with a new slice: the kernel calls neither ops.stopping() nor
 * ops.running() then, and a CPU hog that kept its CPU that way kept the rank
 * of its first turn. After a boost such a hog held every CPU at level 1
 * while the lifted tasks waited for the next boost (4 hogs on a CPU, boosts
 * 100 ms apart: each hog went 188-208 ms without the CPU); an interactive
 * thread runnable at the boost among them waited 40-440 ms (4 CPUs, 16 hogs,
 * 2 ms of work every 10 ms).
 */
static void end_turn(u32 policy, struct task_struct *p, struct task_ctx *tctx, s32 cpu,
		     bool requeued)
{
	u64 used;

	policy_turn_over(tctx);
	/*
	 * The kernel's own account of the CPU time, brought up to date before
	 * ops.stopping() and ops.dispatch(): it is what /proc/<tid>/schedstat
	 * reports, and it is exact where timestamps taken in the callbacks are
	 * not.
	 */
	used = run_so_far(p, tctx);
	tctx->exec_at_start = p->se.sum_exec_runtime;
	/* Every policy keeps vtime, so a switch to a vtime policy starts fair. */
	if (charges_vtime(policy, tctx))
		tctx->vtime = charged_vtime(p, tctx, llc_of(cpu), used);
	policy_charge(policy, tctx, cpu, used, requeued);
	period_charge(tctx, used);
	drop_inheritance_if_released(p, tctx);
	tctx->counters.runtime_ns += used;
}

void BPF_STRUCT_OPS(llmos_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 policy = active_policy, home = llc_of(cpu);
	struct task_ctx *pctx = NULL;
	u64 prev_key = 0, prev_ranked_key = 0, prev_slice = 0, own_dsq = 0, own_key = 0;
	const u64 *limit = NULL;
	enum queue_result queues;
	u32 prev_rank = 0;

	/*
	 * prev blocked on a PI futex: its owner, if queued, runs here now, at
	 * the priority it inherited (see inherit.bpf.h). Only where the policy
	 * inherits is the owner noted (ops.stopping()): asking the policy here
	 * again cost the verifier about 1,000 more instructions on 6.16.
	 */
	if (prev && !(prev->scx.flags & SCX_TASK_QUEUED)) {
		struct task_ctx *wctx = lookup_task_ctx(prev);
		u32 owner = wctx ? wctx->lock_owner : 0;

		if (owner) {
			wctx->lock_owner = 0;
			if (run_lock_owner(owner, cpu))
				return;
		}
	}

	/*
	 * A previous task whose slice ran out but still wants the CPU is not
	 * queued yet. It competes as it will be queued, with the rank and key
	 * its run has earned; otherwise two tasks sharing a CPU would just
	 * alternate, whatever their weights or priorities.
	 */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED) && (pctx = lookup_task_ctx(prev))) {
		u64 used = run_so_far(prev, pctx);

		prev_rank = policy_prev_turn(policy, prev, pctx, home, used, &prev_key, &prev_slice);
		prev_ranked_key = ranked_key(prev_rank, prev_key);
		limit = &prev_ranked_key;
	}

	/*
	 * The policy's own queue (see policy_head()) competes too: if its head
	 * is due before prev, the CPU's and the LLC's queue heads go first only
	 * if they are due before it.
	 */
	if (policy_head(policy, &own_dsq, &own_key) &&
	    (!pctx || time_before(own_key, prev_ranked_key)))
		limit = &own_key;
	queues = dispatch_queued(cpu, home, policy, limit);
	if (queues != QUEUES_SERVED && limit == &own_key) {
		if (consume(own_dsq))
			return;
		/* Its task may not run here: the queues compete with prev alone. */
		queues = dispatch_queued(cpu, home, policy, pctx ? &prev_ranked_key : NULL);
	}
	switch (queues) {
	case QUEUES_SERVED:
		return;
	case QUEUES_NOT_DUE:
		break;
	case QUEUES_EMPTY:
		/* What it would take from other CPUs would be pushed back (see draining_since). */
		if (!is_online(cpu))
			break;
		/*
		 * A busy CPU whose own queues are empty would keep its task while
		 * another LLC has more waiting than it can serve: its tasks would
		 * get a share of their CPUs, ours all of ours. Take one of them
		 * (ours is queued here, so the two LLCs end up level) when at
		 * least two wait there: with one, the migration would only move
		 * the imbalance, and the task, back and forth.
		 */
		if (pctx) {
			if (steal(home, policy, BUSY_STEAL_MIN_QUEUED))
				return;
			break;
		}
		if (policy_balance(policy, cpu))
			return;
		if (steal(home, policy, 1))
			return;
		if (settled_seq != switch_seq(policy_switch) && serve_unsettled(cpu, home, policy))
			return;
	}

	/* Nothing queued is due before the previous task: it keeps the CPU... */
	if (pctx) {
		/* ...unless the policy would rather place it anew (see ops.enqueue()). */
		if (policy_moves_prev(policy, prev, pctx, cpu))
			return;
		end_turn(policy, prev, pctx, cpu, false);
		scx_bpf_task_set_slice(prev, prev_slice);
		/*
		 * A waking task must now beat the rank and key prev kept its CPU
		 * with, not those it started with, which may be long stale:
		 * under prio a hog that started after a long wait would look
		 * aged for as long as it keeps the CPU.
		 */
		running[cpu_idx(cpu)].rank = prev_rank;
		running[cpu_idx(cpu)].key = prev_key;
		stat_inc(LLMOS_STAT_SLICE_REFILL);
	}
}

/*
 * An RT or deadline task took this CPU. The tasks in its local queue would
 * wait as long as it runs: hand them back to ops.enqueue(), which finds them
 * an idle CPU or queues them where the policy wants them. The affinity
 * policy wants them on this CPU's own queue, to keep their caches through
 * the RT task's usual microseconds; the tick carries them off if it holds
 * the CPU longer (see RT_HOLD_NS). The stopper (migration/N) holds a CPU
 * only to move a task: nothing to hand back for it.
 *
 * Nor for a per-CPU kthread, which runs for as short a time (the tick
 * carries our own queue off if it holds the CPU longer). One of them is the
 * hotplug thread taking its CPU down, and from 7.1 a re-enqueue is deferred
 * to the runqueue's next balance, which that CPU may never reach: the
 * kernel frees the scheduler with the request still on the runqueue's list
 * (WARN in scx_sched_free_rcu_work()), and the next attach corrupts the
 * list and the kernel dies (7.2, 2 CPUs, CPU 1 offline and back 3 times
 * under 2 hogs, detach, attach: 2 of 2 boots; without this re-enqueue, 0
 * of 2).
 */
void BPF_STRUCT_OPS(llmos_cpu_release, s32 cpu, struct scx_cpu_release_args *args)
{
	if (args->reason == SCX_CPU_PREEMPT_STOP)
		return;
	cpu_held_since[cpu_idx(cpu)] = bpf_ktime_get_ns() | 1;
	if (!is_pcpu_kthread(args->task))
		scx_bpf_reenqueue_local();
}

void BPF_STRUCT_OPS(llmos_cpu_acquire, s32 cpu, struct scx_cpu_acquire_args *args)
{
	cpu_held_since[cpu_idx(cpu)] = 0;
}

/*
 * Hotplug without a restart: a suspend takes every CPU but one offline, and
 * a restart would hand the machine to the default scheduler meanwhile. A CPU
 * that was offline when the loader read the topology has no known LLC: it
 * takes a restart, in which the loader reads the topology again.
 */
void BPF_STRUCT_OPS(llmos_cpu_online, s32 cpu)
{
	if (!in_topology(cpu)) {
		scx_bpf_exit(SCX_ECODE_ACT_RESTART | SCX_ECODE_RSN_HOTPLUG,
			     "CPU %d came online, unknown to the loaded topology", cpu);
		return;
	}
	mark_online(cpu, true);
}

/* What waits in the CPU's queues is swept to online CPUs at the next tick. */
void BPF_STRUCT_OPS(llmos_cpu_offline, s32 cpu)
{
	mark_online(cpu, false);
	cpu_held_since[cpu_idx(cpu)] = 0;
	next_sweep_at = 0;
}

void BPF_STRUCT_OPS(llmos_runnable, struct task_struct *p, u64 enq_flags)
{
	u32 policy = active_policy;
	struct task_ctx *tctx = lookup_task_ctx(p);
	u64 now = scx_bpf_now();

	if (!tctx)
		return;
	cg_task_runnable(p, tctx);
	reclassify_if_stale(p, tctx);
	policy_catch_up(tctx);
	/*
	 * The kernel also takes a queued task off its queue and puts it back
	 * to change its nice, cpumask or cgroup. That is no wakeup: it must
	 * not refill an mlfq allotment (a hog reniced often would never sink),
	 * send a fifo or rr task to the back, or restart prio's aging. (A new
	 * task started waiting in ops.enable().)
	 */
	if (!(enq_flags & SCX_ENQ_WAKEUP))
		return;
	tctx->runnable_at = now;
	tctx->vtime = bounded_vtime(tctx->vtime, llc_of(scx_bpf_task_cpu(p)));
	period_wakeup(tctx, now);
	policy_wakeup(policy, tctx, now);
}

/*
 * Also called when the kernel takes a queued task off to change it (its
 * nice, cpumask or cgroup), before it puts it back with ops.runnable().
 */
void BPF_STRUCT_OPS(llmos_quiescent, struct task_struct *p, u64 deq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx)
		cg_task_quiescent(tctx);
}

void BPF_STRUCT_OPS(llmos_running, struct task_struct *p)
{
	u32 policy = active_policy;
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = scx_bpf_task_cpu(p);
	struct llmos_thread_counters *ts;
	u64 slice, waited;
	u32 level;

	if (!tctx)
		return;
	waited = scx_bpf_now() - tctx->runnable_at;
	running[cpu_idx(cpu)].turn++;
	running[cpu_idx(cpu)].kthread_cut_in = false;
	policy_catch_up(tctx);
	policy_running(policy, tctx, cpu, waited);
	level = policy_level(policy, tctx);
	/*
	 * A task a boost lifted while it waited (see retire_banks()) was queued
	 * with the slice of the level it had then.
	 */
	slice = task_slice(policy, tctx);
	if (p->scx.slice > slice)
		scx_bpf_task_set_slice(p, slice);
	tctx->exec_at_start = p->se.sum_exec_runtime;
	tctx->on_cpu = true;
	tctx->waker_rank = 0;
	running[cpu_idx(cpu)].rank = run_rank(policy, tctx);
	running[cpu_idx(cpu)].key = queue_key(policy, p, tctx, llc_of(cpu));
	stat_inc(LLMOS_STAT_LEVEL_RUN + (level & (LLMOS_MAX_LEVELS - 1)));

	ts = &tctx->counters;
	ts->nr_runs++;
	ts->wait_ns += waited;
	if (ts->last_cpu >= 0 && ts->last_cpu != cpu) {
		ts->nr_migrations++;
		if (llc_of(ts->last_cpu) != llc_of(cpu))
			stat_inc(LLMOS_STAT_LLC_MIGRATION);
	}
	ts->last_cpu = cpu;
}

void BPF_STRUCT_OPS(llmos_stopping, struct task_struct *p, bool runnable)
{
	u32 policy = active_policy;
	struct task_ctx *tctx = lookup_task_ctx(p);
	s32 cpu = scx_bpf_task_cpu(p);
	struct llmos_thread_counters *ts;
	u64 now = scx_bpf_now();

	if (!tctx)
		return;
	ts = &tctx->counters;
	tctx->on_cpu = false;
	/*
	 * A CPU hog never wakes up: notice its new name, or new rules, here
	 * (not at each new slice: that cost the verifier 20% more on 7.2).
	 */
	reclassify_if_stale(p, tctx);
	/* Its cgroup's pool has changed since it became runnable, if others woke or slept. */
	tctx->cg_scale = cg_scale(tctx);
	end_turn(policy, p, tctx, cpu, runnable);
	running[cpu_idx(cpu)].rank = 0;
	running[cpu_idx(cpu)].turn++;
	if (!runnable && inherits_priority(policy))
		note_lock_wait(p, tctx, policy_level(policy, tctx));

	if (runnable) {
		tctx->runnable_at = now;
		ts->nr_involuntary++;
	} else {
		tctx->sleep_at = now;
		ts->nr_voluntary++;
		period_sleeps(tctx, now);
	}
}

void BPF_STRUCT_OPS(llmos_enable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	/* A new task starts level with the others, neither ahead nor owed. */
	tctx->vtime = vtime_now(llc_of(scx_bpf_task_cpu(p)));
	policy_task_start(tctx);
	tctx->runnable_at = scx_bpf_now();
	tctx->reservation = -1;
	classify(p, tctx);
	tctx->counters.last_cpu = -1;
}

/*
 * @p leaves sched_ext (for an RT class, say, as audio threads do), while it
 * lives: it gives back its share of the periodic threads' (period.bpf.h).
 */
void BPF_STRUCT_OPS(llmos_disable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx)
		release_claim(tctx);
}

s32 BPF_STRUCT_OPS(llmos_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

void BPF_STRUCT_OPS(llmos_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (tctx) {
		release_reservation(tctx, p->pid);
		release_claim(tctx);
		cg_task_quiescent(tctx);
	}
	/* Free it now: a task may leave sched_ext long before it dies. */
	bpf_task_storage_delete(&task_ctxs, p);
}

s32 BPF_STRUCT_OPS(llmos_cgroup_init, struct cgroup *cgrp, struct scx_cgroup_init_args *args)
{
	cg_init(cgrp, args->weight);
	return 0;
}

void BPF_STRUCT_OPS(llmos_cgroup_exit, struct cgroup *cgrp)
{
	u64 id = cgrp->kn->id;

	bpf_map_delete_elem(&cgrp_ctxs, &id);
}

void BPF_STRUCT_OPS(llmos_cgroup_set_weight, struct cgroup *cgrp, u32 weight)
{
	cg_set_weight(cgrp, weight);
}

/*
 * @p moved to another cgroup: the kernel moves its weight between the pools
 * (ops.quiescent() and ops.runnable() around the move, if it is runnable),
 * and its config rules are applied again when it next runs, so that a
 * cgroup rule follows it.
 */
void BPF_STRUCT_OPS(llmos_cgroup_move, struct task_struct *p, struct cgroup *from,
		    struct cgroup *to)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	/* No exec ever gets there: reclassify_if_stale() sees a stale exec_id. */
	if (tctx)
		tctx->exec_id = ~0ULL;
}

/*
 * The loader answers the stats socket's `threads` target (and so `scx_llmos
 * threads`) with this iterator: each thread's counters from its task
 * context, the rest from the task. The scheduling path never copies a row
 * to a map, and every read is current.
 */
SEC("iter/task")
int dump_threads(struct bpf_iter__task *ctx)
{
	struct task_struct *p = ctx->task;
	struct llmos_thread_stats row = {};
	struct task_ctx *tctx;

	if (!p || !(tctx = lookup_task_ctx(p)))
		return 0;
	row.counters = tctx->counters;
	row.tid = p->pid;
	row.tgid = p->tgid;
	row.level = policy_level(active_policy, tctx);
	row.priority = effective_prio(p, tctx);
	row.group = tctx->group;
	/*
	 * SCX_TASK_QUEUED: the kernel has it runnable (the running task too).
	 * Our own on_cpu, not p->on_cpu, which 6.16's BTF does not resolve.
	 * `scx_llmos top` counts the waiting per level.
	 */
	row.waiting = (p->scx.flags & SCX_TASK_QUEUED) && !tctx->on_cpu;
	row.period_ns = is_periodic(tctx) ? tctx->period_ns : 0;
	bpf_probe_read_kernel_str(row.comm, sizeof(row.comm), p->comm);
	bpf_seq_write(ctx->meta->seq, &row, sizeof(row));
	return 0;
}

/*
 * Moves every task queued on @dsq to the queue, and with the key, that
 * @policy gives it, as if it were enqueued now. A task that may run only on
 * an offline CPU goes to that CPU's local queue: the kernel still runs what
 * is there, and so moves the task to a CPU that is online. One on a CPU it
 * may not use goes where pinned_elsewhere() says.
 *
 * A global function, which the verifier checks once, on its own: inlined
 * in the tick's loops, it made an attach take 15-24 s on 6.16 to 6.18 under
 * emulation, against 2-5 s so.
 */
__noinline int carry_over(u64 dsq, u32 policy)
{
	struct task_struct *p;

	if (!scx_bpf_dsq_nr_queued(dsq))
		return 0;
	/*
	 * The DSQ iterator hands out task pointers that only RCU keeps alive.
	 * Inside an ops callback the kernel holds the RCU read lock; in the tick
	 * timer, where this runs, kernels before 6.18 make the program take it
	 * itself (the verifier: "expected an RCU CS"), and later ones accept it.
	 */
	bpf_rcu_read_lock();
	bpf_for_each(scx_dsq, p, dsq, 0) {
		struct task_ctx *tctx = lookup_task_ctx(p);
		s32 cpu = scx_bpf_task_cpu(p);
		u64 to, key, slice;
		s32 queued;
		u32 llc;

		if (!tctx)
			continue;
		if (is_pcpu_task(p)) {
			s32 local = is_online(cpu) ? -1 : cpu;

			if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
				local = pinned_elsewhere(p, cpu);
			if (local >= 0) {
				if (scx_bpf_dsq_move(BPF_FOR_EACH_ITER, p, SCX_DSQ_LOCAL_ON | local, 0))
					stat_inc(LLMOS_STAT_CARRIED);
				continue;
			}
			llc = llc_of(cpu);
			to = cpu_dsq(cpu, policy);
			queued = scx_bpf_dsq_nr_queued(to);
		} else {
			llc = home_llc(p, cpu);
			to = llc_dsq(llc, policy);
			queued = queued_per_cpu(scx_bpf_dsq_nr_queued(to), llc);
		}
		if (to == dsq)
			continue;
		key = enter_queue(policy, p, tctx, llc, queued, &slice);
		scx_bpf_dsq_move_set_slice(BPF_FOR_EACH_ITER, slice);
		scx_bpf_dsq_move_set_vtime(BPF_FOR_EACH_ITER, key);
		if (scx_bpf_dsq_move_vtime(BPF_FOR_EACH_ITER, p, to, 0))
			stat_inc(LLMOS_STAT_CARRIED);
	}
	bpf_rcu_read_unlock();
	return 0;
}

/*
 * Moves every task queued where no CPU serves it, under @policy, to the
 * queue @policy gives it: tasks in another policy's queues, in the queues
 * of a CPU that is offline or draining, or of an LLC with no other, and in
 * a retired bank that @policy does not serve (see retire_banks()). A switch
 * leaves such strays when an ops.enqueue() that read the old policy inserts
 * after the switch's sweep passed its queue; a CPU going offline leaves its own.
 */
static void sweep_strays(u32 policy)
{
	u32 other, i;

	bpf_for(i, 0, nr_llcs)
		llc_served[llc_idx(i)] = false;
	bpf_for(i, 0, nr_cpu_ids) {
		if (is_online(i))
			llc_served[llc_idx(llc_of(i))] = true;
	}
	bpf_for(other, 0, LLMOS_NR_POLICIES) {
		bpf_for(i, 0, nr_cpu_ids) {
			bool served = other == policy && is_online(i);

			if (!served)
				carry_over(cpu_dsq(i, other), policy);
			if (!served || !retires_banks(policy))
				carry_over(cpu_retired_dsq(i, other), policy);
		}
		bpf_for(i, 0, nr_llcs) {
			bool served = other == policy && llc_served[llc_idx(i)];

			if (!served)
				carry_over(llc_dsq(i, other), policy);
			if (!served || !retires_banks(policy))
				carry_over(llc_retired_dsq(i, other), policy);
		}
	}
	/* Only their policy serves its own queues (see own_queue()). */
	if (!serves_own_queues(policy)) {
		bpf_for(i, 0, OWN_QUEUES)
			carry_over(own_queue(i), policy);
	}
}

static int tick(void *map, int *key, struct bpf_timer *timer)
{
	u64 word = policy_switch, now = bpf_ktime_get_ns();
	u32 policy = switch_policy(word);
	const struct cpumask *online;
	bool switched;
	u32 cpu;

	/*
	 * The exits a bug or the scheduler itself would take, on request, so
	 * that tests can prove the kernel's fallback and the loader's restart.
	 * The timer is not re-armed: the scheduler is on its way out.
	 */
	if (injected_fault == LLMOS_FAULT_ERROR) {
		scx_bpf_error("fault injected by `scx_llmos ctl inject-fault error`");
		return 0;
	}
	if (injected_fault == LLMOS_FAULT_RESTART) {
		scx_bpf_exit(SCX_ECODE_ACT_RESTART,
			     "restart asked for by `scx_llmos ctl inject-fault restart`");
		return 0;
	}
	online = scx_bpf_get_online_cpumask();
	bpf_for(cpu, 0, nr_cpu_ids) {
		u64 held_since = cpu_held_since[cpu_idx(cpu)];
		u64 draining = draining_since[cpu_idx(cpu)];

		/* A CPU's own queue also holds tasks that may run elsewhere (affinity). */
		if (held_since && now - held_since >= RT_HOLD_NS) {
			carry_over(cpu_dsq(cpu, policy), policy);
			carry_over(cpu_retired_dsq(cpu, policy), policy);
		}
		/* Draining while out of the active mask (see draining_since). */
		switch (cpu_offline[cpu_idx(cpu)] ? 1 : cpu_active(cpu)) {
		case 0:
			if (!draining) {
				draining_since[cpu_idx(cpu)] = now | 1;
				next_sweep_at = 0;
			}
			break;
		case 1:
			draining_since[cpu_idx(cpu)] = 0;
			break;
		default:
			if (draining && now - draining >= DRAIN_NS)
				draining_since[cpu_idx(cpu)] = 0;
		}
		sync_online_cpus(cpu);
		/*
		 * After ops.cpu_offline() the kernel's hotplug thread waits on
		 * that CPU for its runqueue to empty, and only a schedule there
		 * wakes it (balance_push() in the idle task). Tasks of that CPU
		 * still in shared queues leave it when another CPU takes them,
		 * which reschedules nothing there: an idle CPU would keep the
		 * thread waiting for ever (the hotplug hung on 6.16). Kick it
		 * until the kernel has it offline.
		 */
		if (cpu_offline[cpu_idx(cpu)] && bpf_cpumask_test_cpu(cpu, online))
			kick_cpu(cpu, SCX_KICK_IDLE);
	}
	scx_bpf_put_cpumask(online);
	/*
	 * A switch is complete once every task queued under another policy is
	 * in the new one's queues.
	 */
	switched = switch_seq(word) != settled_seq;
	if (switched || !time_before(now, next_sweep_at)) {
		if (switched)
			policy_switched_to(policy);
		sweep_strays(policy);
		/* An enqueue that read the old policy is microseconds behind. */
		next_sweep_at = now + (switched ? TICK_NS : SWEEP_NS);
		if (switched) {
			settled_seq = switch_seq(word);
			stat_inc(LLMOS_STAT_SWITCH);
		}
	}
	policy_tick(policy, now);
	bpf_timer_start(timer, TICK_NS, 0);
	return 0;
}

static s32 create_dsqs(void)
{
	u32 slot, policy, bank, i;
	s32 err;

	/* Both banks of every policy's queues: a switch must not allocate. */
	bpf_for(slot, 0, LLMOS_NR_POLICIES * LLMOS_DSQ_BANKS) {
		policy = slot / LLMOS_DSQ_BANKS;
		bank = slot % LLMOS_DSQ_BANKS;
		bpf_for(i, 0, nr_cpu_ids) {
			err = scx_bpf_create_dsq(cpu_bank_dsq(i, policy, bank), -1);
			if (err) {
				scx_bpf_error("failed to create DSQ for CPU %u policy %u: %d", i, policy, err);
				return err;
			}
		}
		bpf_for(i, 0, nr_llcs) {
			err = scx_bpf_create_dsq(llc_bank_dsq(i, policy, bank), -1);
			if (err) {
				scx_bpf_error("failed to create DSQ for LLC %u policy %u: %d", i, policy, err);
				return err;
			}
		}
	}
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(llmos_init)
{
	struct bpf_cpumask *online;
	struct bpf_timer *timer;
	u32 key = 0, cpu;
	s32 err;

	nr_cpu_ids = scx_bpf_nr_cpu_ids();
	if (nr_cpu_ids > LLMOS_MAX_CPUS || nr_llcs > LLMOS_MAX_LLCS ||
	    !nr_levels || nr_levels > LLMOS_MAX_LEVELS) {
		scx_bpf_error("unsupported shape: %u CPUs, %u LLCs, %u levels",
			      nr_cpu_ids, nr_llcs, nr_levels);
		return -E2BIG;
	}
	err = create_dsqs();
	if (err)
		return err;
	err = policy_init();
	if (err)
		return err;
	online = bpf_cpumask_create();
	if (!online)
		return -ENOMEM;
	bpf_for(cpu, 0, nr_cpu_ids) {
		cpu_offline[cpu_idx(cpu)] = !in_topology(cpu);
		if (in_topology(cpu))
			bpf_cpumask_set_cpu(cpu, online);
	}
	online = bpf_kptr_xchg(&online_cpus, online);
	if (online)
		bpf_cpumask_release(online);

	timer = bpf_map_lookup_elem(&tick_timer, &key);
	if (!timer) {
		scx_bpf_error("tick timer missing");
		return -ENOENT;
	}
	policies_init(bpf_ktime_get_ns());
	/*
	 * From 6.18 the timer is allocated with kmalloc_nolock(), which fails
	 * on a CPU without cmpxchg16b: say so rather than let
	 * bpf_timer_start() return a bare -EINVAL.
	 */
	err = bpf_timer_init(timer, &tick_timer, CLOCK_MONOTONIC);
	if (!err)
		err = bpf_timer_set_callback(timer, tick);
	if (!err)
		err = bpf_timer_start(timer, TICK_NS, 0);
	if (err)
		scx_bpf_error("cannot start the tick timer: %d", err);
	return err;
}

void BPF_STRUCT_OPS(llmos_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

/*
 * What the kernel prints with an error exit (the loader prints it with the
 * exit) and on sysrq-D: where tasks wait and which CPUs serve. It lists the
 * tasks of each runqueue and the DSQ each waits on; these add what the
 * scheduler knows of them. A stall in CI took a loop of hotplug boots to
 * explain, as the dump did not say which queues CPU 0 was not serving.
 */
void BPF_STRUCT_OPS(llmos_dump, struct scx_dump_ctx *dctx)
{
	u32 policy = active_policy, llc;
	u64 now = bpf_ktime_get_ns();

	scx_bpf_dump("llmos: policy %u, switch %llu settled %llu, boost %llu ms ago, sweep due in %lld ms\n",
		     policy, switch_seq(policy_switch), settled_seq,
		     (now - last_boost_at) / NSEC_PER_MSEC, (s64)(next_sweep_at - now) / (s64)NSEC_PER_MSEC);
	bpf_for(llc, 0, nr_llcs)
		scx_bpf_dump("llmos: LLC %u queue %d, retired bank %d%s\n", llc,
			     scx_bpf_dsq_nr_queued(llc_dsq(llc, policy)),
			     scx_bpf_dsq_nr_queued(llc_retired_dsq(llc, policy)),
			     llc_bank_overdue[llc_idx(llc)] ? " (overdue)" : "");
}

void BPF_STRUCT_OPS(llmos_dump_cpu, struct scx_dump_ctx *dctx, s32 cpu, bool idle)
{
	u32 policy = active_policy, idx = cpu_idx(cpu);
	s32 queued = scx_bpf_dsq_nr_queued(cpu_dsq(cpu, policy));
	s32 retired = scx_bpf_dsq_nr_queued(cpu_retired_dsq(cpu, policy));
	u64 now = bpf_ktime_get_ns(), held = cpu_held_since[idx], draining = draining_since[idx];

	if (idle && !queued && !retired)
		return;
	scx_bpf_dump("llmos: %s, LLC %u, queue %d, retired bank %d%s, running rank %u; RT-held %llu ms, draining %llu ms\n",
		     cpu_offline[idx] ? "offline" : (draining ? "draining" : "online"), llc_of(cpu),
		     queued, retired, cpu_bank_overdue[idx] ? " (overdue)" : "", running[idx].rank,
		     held ? (now - held) / NSEC_PER_MSEC : 0, draining ? (now - draining) / NSEC_PER_MSEC : 0);
}

void BPF_STRUCT_OPS(llmos_dump_task, struct scx_dump_ctx *dctx, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	scx_bpf_dump("llmos: level %u, priority %u, group %d, vtime %llu, last CPU %d, runnable for %llu ms\n",
		     policy_level(active_policy, tctx), effective_prio(p, tctx), tctx->group, tctx->vtime,
		     tctx->counters.last_cpu,
		     tctx->runnable_at ? (scx_bpf_now() - tctx->runnable_at) / NSEC_PER_MSEC : 0);
}

SCX_OPS_DEFINE(llmos_ops,
	       .select_cpu	= (void *)llmos_select_cpu,
	       .enqueue		= (void *)llmos_enqueue,
	       .dispatch	= (void *)llmos_dispatch,
	       .runnable	= (void *)llmos_runnable,
	       .quiescent	= (void *)llmos_quiescent,
	       .running		= (void *)llmos_running,
	       .stopping	= (void *)llmos_stopping,
	       .cpu_acquire	= (void *)llmos_cpu_acquire,
	       .cpu_release	= (void *)llmos_cpu_release,
	       .cpu_online	= (void *)llmos_cpu_online,
	       .cpu_offline	= (void *)llmos_cpu_offline,
	       .enable		= (void *)llmos_enable,
	       .disable		= (void *)llmos_disable,
	       .init_task	= (void *)llmos_init_task,
	       .exit_task	= (void *)llmos_exit_task,
	       .cgroup_init	= (void *)llmos_cgroup_init,
	       .cgroup_exit	= (void *)llmos_cgroup_exit,
	       .cgroup_move	= (void *)llmos_cgroup_move,
	       .cgroup_set_weight = (void *)llmos_cgroup_set_weight,
	       .init		= (void *)llmos_init,
	       .exit		= (void *)llmos_exit,
	       .dump		= (void *)llmos_dump,
	       .dump_cpu	= (void *)llmos_dump_cpu,
	       .dump_task	= (void *)llmos_dump_task,
	       .timeout_ms	= WATCHDOG_TIMEOUT_MS,
	       /* A CPU's last task is handed to ops.enqueue() when dispatch() does not keep it. */
	       .flags		= SCX_OPS_ENQ_LAST,
	       .name		= "scx_llmos");
