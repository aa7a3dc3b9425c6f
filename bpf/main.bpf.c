/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_llmos: the enqueue/dispatch core shared by every policy.
 *
 * Queues: every CPU owns a DSQ for tasks that can run only on it, and every
 * last-level cache (LLC) owns a shared DSQ for the tasks that can run on any
 * of its CPUs. A CPU serves the earlier of its two queue heads, then steals
 * from the other LLCs before it goes idle. Both kinds are vtime-ordered, so
 * whatever the active policy puts in the vtime key decides who runs next.
 */
#include <scx/common.bpf.h>
#include "intf.h"

char _license[] SEC("license") = "GPL";

/*
 * The kernel's watchdog ejects the scheduler when a runnable task waits this
 * long; it is the last line of defence, not a policy.
 */
#define WATCHDOG_TIMEOUT_MS 5000

/* Set by the loader before the program is loaded. */
const volatile u64 slice_ns = 5000000;	/* 5 ms */
const volatile u32 nr_llcs = 1;
const volatile u32 cpu_llc[LLMOS_MAX_CPUS];

/* Written by the loader at any time: read on every scheduling decision. */
volatile u32 active_policy = LLMOS_POLICY_VTIME;

UEI_DEFINE(uei);

/*
 * The vtime of the task that most recently started running. It is the
 * system's notion of "now" for fairness: a task waking from a long sleep is
 * placed no further back than one slice behind it, so sleeping earns a
 * bounded head start instead of a monopoly on the CPU.
 */
static u64 vtime_now;

struct task_ctx {
	u64 vtime;		/* weighted CPU time consumed */
	u64 started_at;		/* when the task last got a CPU */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LLMOS_NR_STATS);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

static void stat_inc(enum llmos_stat idx)
{
	u32 key = idx;
	u64 *cnt = bpf_map_lookup_elem(&stats, &key);

	if (cnt)
		(*cnt)++;
}

static struct task_ctx *lookup_task_ctx(const struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, (struct task_struct *)p, 0, 0);
}

static u64 cpu_dsq(s32 cpu)
{
	return cpu;
}

static u32 llc_of(s32 cpu)
{
	u32 idx = cpu;

	if (idx >= LLMOS_MAX_CPUS)
		return 0;
	/* The mask is a no-op (LLMOS_MAX_CPUS is a power of two) that proves the bound to the verifier. */
	return cpu_llc[idx & (LLMOS_MAX_CPUS - 1)];
}

static u64 llc_dsq(u32 llc)
{
	return LLMOS_LLC_DSQ_BASE + llc;
}

static bool is_pcpu_kthread(const struct task_struct *p)
{
	return (p->flags & PF_KTHREAD) && p->nr_cpus_allowed == 1;
}

/* Tasks that cannot leave their CPU: they belong on that CPU's own DSQ. */
static bool is_pcpu_task(const struct task_struct *p)
{
	return p->nr_cpus_allowed == 1 || is_migration_disabled(p);
}

/*
 * The ordering key the active policy gives a task. Only one policy exists so
 * far; the switch is where the others plug in.
 */
static u64 task_queue_key(const struct task_ctx *tctx)
{
	switch (active_policy) {
	case LLMOS_POLICY_VTIME:
	default:
		return tctx->vtime;
	}
}

s32 BPF_STRUCT_OPS(llmos_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	bool is_idle = false;
	s32 cpu;

	/*
	 * The built-in idle picker honours p->cpus_ptr and prefers prev_cpu
	 * and its cache siblings, which is what a waking task wants.
	 */
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, 0);
		stat_inc(LLMOS_STAT_IDLE_DISPATCH);
	}
	return cpu;
}

void BPF_STRUCT_OPS(llmos_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p);
	struct task_ctx *tctx;

	/*
	 * Per-CPU kthreads (ksoftirqd, kworkers) often sit on the path of
	 * other work finishing; run them next on their own CPU.
	 */
	if (is_pcpu_kthread(p)) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, slice_ns, enq_flags);
		stat_inc(LLMOS_STAT_KTHREAD_DISPATCH);
		return;
	}

	tctx = lookup_task_ctx(p);
	if (!tctx) {
		scx_bpf_error("%s[%d] has no task context", p->comm, p->pid);
		return;
	}

	/*
	 * A task that may run only on its current CPU goes to that CPU's DSQ,
	 * where it competes by vtime with the LLC queue instead of jumping it.
	 */
	if (is_pcpu_task(p)) {
		scx_bpf_dsq_insert_vtime(p, cpu_dsq(cpu), slice_ns,
					 task_queue_key(tctx), enq_flags);
		stat_inc(LLMOS_STAT_PINNED_DISPATCH);
		scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		return;
	}

	/*
	 * ops.select_cpu() is skipped for tasks that were preempted or whose
	 * slice ran out; give them an idle CPU if there is one.
	 */
	if (!__COMPAT_is_enq_cpu_selected(enq_flags)) {
		s32 idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

		if (idle >= 0) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | idle, slice_ns, enq_flags);
			scx_bpf_kick_cpu(idle, SCX_KICK_IDLE);
			stat_inc(LLMOS_STAT_IDLE_DISPATCH);
			return;
		}
	}

	/*
	 * Queue on the LLC of a CPU the task may use, so that CPUs which can
	 * run it find it on their home queue rather than only by stealing.
	 */
	if (!bpf_cpumask_test_cpu(cpu, p->cpus_ptr))
		cpu = bpf_cpumask_any_distribute(p->cpus_ptr);
	scx_bpf_dsq_insert_vtime(p, llc_dsq(llc_of(cpu)), slice_ns,
				 task_queue_key(tctx), enq_flags);
	stat_inc(LLMOS_STAT_SHARED_DISPATCH);
}

/* Move the head of @dsq to this CPU; tasks it may not run are skipped. */
static bool consume(u64 dsq)
{
	return scx_bpf_dsq_move_to_local(dsq, 0);
}

void BPF_STRUCT_OPS(llmos_dispatch, s32 cpu, struct task_struct *prev)
{
	u32 home = llc_of(cpu), i;
	struct task_struct *pinned, *shared;

	/* Serve whichever of the two home queues has the earlier head. */
	pinned = __COMPAT_scx_bpf_dsq_peek(cpu_dsq(cpu));
	shared = __COMPAT_scx_bpf_dsq_peek(llc_dsq(home));
	if (shared && (!pinned || time_before(shared->scx.dsq_vtime, pinned->scx.dsq_vtime))) {
		if (consume(llc_dsq(home)))
			return;
	}
	if (consume(cpu_dsq(cpu)) || consume(llc_dsq(home)))
		return;

	/*
	 * Work stealing: an idle CPU is wasted capacity while another LLC has
	 * a backlog. Start after our own LLC so that CPUs spread their
	 * attention instead of all draining LLC 0 first.
	 */
	bpf_for(i, 1, nr_llcs) {
		u32 victim = (home + i) % nr_llcs;

		if (consume(llc_dsq(victim))) {
			stat_inc(LLMOS_STAT_STEAL);
			return;
		}
	}

	/* Nothing else wants this CPU: let the previous task keep it. */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED)) {
		scx_bpf_task_set_slice(prev, slice_ns);
		stat_inc(LLMOS_STAT_SLICE_REFILL);
	}
}

void BPF_STRUCT_OPS(llmos_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	u64 floor = vtime_now - slice_ns;

	if (!tctx)
		return;
	/* Bound the credit a long sleep earns (see vtime_now). */
	if (time_before(tctx->vtime, floor))
		tctx->vtime = floor;
}

void BPF_STRUCT_OPS(llmos_running, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	if (!tctx)
		return;
	tctx->started_at = scx_bpf_now();
	if (time_before(vtime_now, tctx->vtime))
		vtime_now = tctx->vtime;
}

void BPF_STRUCT_OPS(llmos_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	u64 used;

	if (!tctx)
		return;
	/* Charge CPU time inversely to weight: nice -20 ages ~88x slower than nice 19. */
	used = scx_bpf_now() - tctx->started_at;
	tctx->vtime += used * 100 / p->scx.weight;
}

void BPF_STRUCT_OPS(llmos_enable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);

	/* A new task starts level with the others, neither ahead nor owed. */
	if (tctx)
		tctx->vtime = vtime_now;
}

s32 BPF_STRUCT_OPS(llmos_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

void BPF_STRUCT_OPS(llmos_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	/* Free the context now: a task may leave sched_ext long before it dies. */
	bpf_task_storage_delete(&task_ctxs, p);
}

s32 BPF_STRUCT_OPS_SLEEPABLE(llmos_init)
{
	u32 nr_cpus = scx_bpf_nr_cpu_ids(), i;
	s32 err;

	if (nr_cpus > LLMOS_MAX_CPUS || nr_llcs > LLMOS_MAX_LLCS) {
		scx_bpf_error("topology too large: %u CPUs, %u LLCs", nr_cpus, nr_llcs);
		return -E2BIG;
	}
	bpf_for(i, 0, nr_cpus) {
		err = scx_bpf_create_dsq(cpu_dsq(i), -1);
		if (err) {
			scx_bpf_error("failed to create CPU DSQ %u: %d", i, err);
			return err;
		}
	}
	bpf_for(i, 0, nr_llcs) {
		err = scx_bpf_create_dsq(llc_dsq(i), -1);
		if (err) {
			scx_bpf_error("failed to create LLC DSQ %u: %d", i, err);
			return err;
		}
	}
	return 0;
}

void BPF_STRUCT_OPS(llmos_exit, struct scx_exit_info *ei)
{
	UEI_RECORD(uei, ei);
}

SCX_OPS_DEFINE(llmos_ops,
	       .select_cpu	= (void *)llmos_select_cpu,
	       .enqueue		= (void *)llmos_enqueue,
	       .dispatch	= (void *)llmos_dispatch,
	       .runnable	= (void *)llmos_runnable,
	       .running		= (void *)llmos_running,
	       .stopping	= (void *)llmos_stopping,
	       .enable		= (void *)llmos_enable,
	       .init_task	= (void *)llmos_init_task,
	       .exit_task	= (void *)llmos_exit_task,
	       .init		= (void *)llmos_init,
	       .exit		= (void *)llmos_exit,
	       .timeout_ms	= WATCHDOG_TIMEOUT_MS,
	       .name		= "scx_llmos");
