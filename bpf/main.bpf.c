/* SPDX-License-Identifier: GPL-2.0 */
/*
 * scx_llmos: the enqueue/dispatch core shared by every policy.
 *
 * Queues: every CPU owns a DSQ per priority level for tasks that can run only
 * on it, and every last-level cache (LLC) owns a DSQ per level for the tasks
 * that can run on any of its CPUs, plus one each for tasks a boost lifted. A
 * CPU serves its levels top-down, taking the earlier vtime of its two queue
 * heads at each level, then steals from the busiest other LLC before it goes
 * idle.
 *
 * Policies only decide a task's level, slice and vtime key:
 * - vtime: one level; the key is CPU time scaled by weight (nice).
 * - mlfq: nr_levels levels with growing slices. A task that uses its level's
 *   allotment, counted across slices, drops a level; a task that sleeps longer
 *   than it ran gets its allotment back, and climbs a level if it slept a
 *   slice of the level above; every boost_interval_ns everything returns to
 *   the top. A waking task preempts a CPU running a lower level.
 */
#include <scx/common.bpf.h>
#include "intf.h"

char _license[] SEC("license") = "GPL";

/*
 * The kernel's watchdog ejects the scheduler when a runnable task waits this
 * long; it is the last line of defence, not a policy.
 */
#define WATCHDOG_TIMEOUT_MS 5000

/* How many CPUs a waking task looks at for one running a lower level. */
#define PREEMPT_SCAN_CPUS 64

/* Set by the loader before the program is loaded. */
const volatile u64 slice_ns = 20000000;	/* vtime policy: 20 ms, as SCX_SLICE_DFL */
const volatile u32 nr_llcs = 1;
const volatile u32 cpu_llc[LLMOS_MAX_CPUS];
const volatile u32 nr_levels = 4;
const volatile u64 level_slice_ns[LLMOS_MAX_LEVELS];
const volatile u64 boost_interval_ns = 1000000000;

/* Written by the loader at any time: read on every scheduling decision. */
volatile u32 active_policy = LLMOS_POLICY_MLFQ;

UEI_DEFINE(uei);

static u32 nr_cpu_ids;

/*
 * How far the vtime-ordered queues have been served: the vtime of the last
 * queue head a CPU took. It is the system's notion of "now" for fairness: a
 * task waking from a long sleep is placed no further back than one slice
 * behind it, so sleeping earns a bounded head start instead of a monopoly
 * on the CPU, and never lands behind tasks that have waited their turn.
 */
static u64 vtime_now;

/*
 * Bumped by every periodic boost. A task whose boost_gen lags has been
 * boosted to level 0 but has not run since; its context catches up lazily,
 * so a boost costs nothing per sleeping task.
 */
static u32 boost_gen;

/* The level and vtime of the task each CPU is running, for wakeup preemption. */
static u32 running_level[LLMOS_MAX_CPUS];
static u64 running_vtime[LLMOS_MAX_CPUS];

struct task_ctx {
	u64 vtime;		/* weighted CPU time consumed */
	u64 exec_at_start;	/* its sum_exec_runtime when it last got a CPU */
	u64 runnable_at;	/* when it last started waiting for a CPU */
	u64 sleep_at;		/* when it last went to sleep */
	u64 allot_used;		/* CPU time used at its level since it got there */
	u32 level;
	u32 boost_gen;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct task_ctx);
} task_ctxs SEC(".maps");

/* Per-thread figures for the loader; exited threads are deleted, and the
 * least recently used go first if the map fills. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LLMOS_MAX_THREADS);
	__type(key, u32);
	__type(value, struct llmos_thread_stats);
} thread_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LLMOS_NR_STATS);
	__type(key, u32);
	__type(value, u64);
} stats SEC(".maps");

struct boost_timer {
	struct bpf_timer timer;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct boost_timer);
} boost_timer SEC(".maps");

static void stat_inc(u32 idx)
{
	u64 *cnt = bpf_map_lookup_elem(&stats, &idx);

	if (cnt)
		(*cnt)++;
}

static struct task_ctx *lookup_task_ctx(const struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, (struct task_struct *)p, 0, 0);
}

static struct llmos_thread_stats *lookup_thread_stats(const struct task_struct *p)
{
	u32 tid = p->pid;

	return bpf_map_lookup_elem(&thread_stats, &tid);
}

/* Bounds a CPU id for the verifier (LLMOS_MAX_CPUS is a power of two). */
static u32 cpu_idx(s32 cpu)
{
	return (u32)cpu & (LLMOS_MAX_CPUS - 1);
}

static u32 llc_of(s32 cpu)
{
	return cpu_llc[cpu_idx(cpu)];
}

static u64 cpu_dsq(s32 cpu, u32 slot)
{
	return (u64)cpu * LLMOS_DSQ_SLOTS + slot;
}

static u64 llc_dsq(u32 llc, u32 slot)
{
	return LLMOS_LLC_DSQ_BASE + (u64)llc * LLMOS_DSQ_SLOTS + slot;
}

static bool is_mlfq(void)
{
	return active_policy == LLMOS_POLICY_MLFQ;
}

/* Queue ranks the active policy serves (see rank_slot()). */
static u32 active_ranks(void)
{
	return is_mlfq() ? nr_levels + 1 : 1;
}

/*
 * The queue slot served at @rank: level 0 first, then the tasks a boost
 * lifted to the top, then levels 1, 2, ... Lifted CPU hogs are back on top
 * of everything below, but the interactive tasks that never left level 0
 * keep their turn ahead of them.
 */
static u32 rank_slot(u32 rank)
{
	if (rank == 0)
		return 0;
	return rank == 1 ? LLMOS_LIFTED_SLOT : rank - 1;
}

/* A task's level, counting a boost it has not caught up with yet. */
static u32 task_level(const struct task_ctx *tctx)
{
	if (!is_mlfq() || tctx->boost_gen != boost_gen)
		return 0;
	return tctx->level < nr_levels ? tctx->level : nr_levels - 1;
}

static u64 level_slice(u32 level)
{
	if (!is_mlfq())
		return slice_ns;
	return level_slice_ns[level & (LLMOS_MAX_LEVELS - 1)];
}

/* Applies any boost the task missed: back to the top with a fresh allotment. */
static void catch_up_boost(struct task_ctx *tctx, struct llmos_thread_stats *ts)
{
	if (tctx->boost_gen == boost_gen)
		return;
	tctx->boost_gen = boost_gen;
	tctx->allot_used = 0;
	if (tctx->level) {
		tctx->level = 0;
		if (ts)
			ts->nr_boosts++;
	}
}

/*
 * A task's vtime, no further behind vtime_now than one slice: whether it
 * slept or was starved, a task earns at most a slice of catching up, so a
 * laggard cannot hold a CPU for many slices while others wait.
 */
static u64 bounded_vtime(u64 vtime)
{
	u64 floor = vtime_now - slice_ns;

	return time_before(vtime, floor) ? floor : vtime;
}

/* CPU time @p has used since it last got a CPU. */
static u64 run_so_far(const struct task_struct *p, const struct task_ctx *tctx)
{
	return p->se.sum_exec_runtime - tctx->exec_at_start;
}

/* vtime for @used ns of CPU: inversely to weight, nice -20 ages ~88x slower than nice 19. */
static u64 vtime_charge(const struct task_struct *p, u64 used)
{
	return used * 100 / p->scx.weight;
}

/*
 * The level a task drops to when charged @used more CPU time. The allotment
 * is counted across slices, so giving up the CPU just before the slice ends
 * does not keep a task on top.
 */
static u32 level_after(const struct task_ctx *tctx, u64 used)
{
	u32 level = task_level(tctx);
	u64 allot_used = tctx->boost_gen == boost_gen ? tctx->allot_used : 0;

	if (is_mlfq() && allot_used + used >= level_slice(level) && level + 1 < nr_levels)
		return level + 1;
	return level;
}

static bool is_pcpu_kthread(const struct task_struct *p)
{
	return (p->flags & PF_KTHREAD) && p->nr_cpus_allowed == 1;
}

/* Tasks that cannot leave their CPU: they belong on that CPU's own DSQs. */
static bool is_pcpu_task(const struct task_struct *p)
{
	return p->nr_cpus_allowed == 1 || is_migration_disabled(p);
}

/*
 * Whether a task waking at @level with @vtime should take @cpu: the CPU runs
 * a lower level, or the same level with a task more than a slice ahead in
 * vtime (so a boost, which puts CPU hogs back on the top level, does not
 * make the interactive tasks there wait out the hogs' turns).
 */
static bool outranks_running(s32 cpu, u32 level, u64 vtime)
{
	u32 idx = cpu_idx(cpu);

	if (running_level[idx] != level)
		return running_level[idx] > level;
	return time_before(vtime + level_slice(level), running_vtime[idx]);
}

/*
 * Kicks a CPU of @llc that @p may use and whose running task it outranks,
 * preferring the one running the lowest level: a waking interactive task
 * should not wait out a CPU hog's long slice.
 */
static void preempt_for(struct task_struct *p, u32 llc, u32 level, u64 vtime)
{
	s32 start = scx_bpf_task_cpu(p), victim = -1;
	u32 i, victim_level = 0;

	bpf_for(i, 0, PREEMPT_SCAN_CPUS) {
		s32 cpu;

		if (i >= nr_cpu_ids)
			break;
		cpu = (start + i) % nr_cpu_ids;
		if (llc_of(cpu) != llc || !bpf_cpumask_test_cpu(cpu, p->cpus_ptr) ||
		    !outranks_running(cpu, level, vtime))
			continue;
		if (victim < 0 || running_level[cpu_idx(cpu)] > victim_level) {
			victim = cpu;
			victim_level = running_level[cpu_idx(cpu)];
		}
	}
	if (victim >= 0) {
		scx_bpf_kick_cpu(victim, SCX_KICK_PREEMPT);
		stat_inc(LLMOS_STAT_PREEMPT);
	}
}

s32 BPF_STRUCT_OPS(llmos_select_cpu, struct task_struct *p, s32 prev_cpu, u64 wake_flags)
{
	struct task_ctx *tctx;
	bool is_idle = false;
	s32 cpu;

	/*
	 * The built-in idle picker honours p->cpus_ptr and prefers prev_cpu
	 * and its cache siblings, which is what a waking task wants.
	 */
	cpu = scx_bpf_select_cpu_dfl(p, prev_cpu, wake_flags, &is_idle);
	if (is_idle && (tctx = lookup_task_ctx(p))) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, level_slice(task_level(tctx)), 0);
		stat_inc(LLMOS_STAT_IDLE_DISPATCH);
	}
	return cpu;
}

void BPF_STRUCT_OPS(llmos_enqueue, struct task_struct *p, u64 enq_flags)
{
	s32 cpu = scx_bpf_task_cpu(p);
	struct task_ctx *tctx;
	u32 level, llc;
	u64 slice;

	/*
	 * Per-CPU kthreads (ksoftirqd, kworkers) often sit on the path of
	 * other work finishing; run them next on their own CPU.
	 */
	if (is_pcpu_kthread(p)) {
		scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL, level_slice(0), enq_flags);
		stat_inc(LLMOS_STAT_KTHREAD_DISPATCH);
		return;
	}

	tctx = lookup_task_ctx(p);
	if (!tctx) {
		scx_bpf_error("%s[%d] has no task context", p->comm, p->pid);
		return;
	}
	level = task_level(tctx);
	slice = level_slice(level);

	/*
	 * A task that may run only on its current CPU goes to that CPU's DSQ,
	 * where it competes by level and vtime with the LLC queue.
	 */
	if (is_pcpu_task(p)) {
		scx_bpf_dsq_insert_vtime(p, cpu_dsq(cpu, level), slice, tctx->vtime, enq_flags);
		stat_inc(LLMOS_STAT_PINNED_DISPATCH);
		if (is_mlfq() && (enq_flags & SCX_ENQ_WAKEUP) &&
		    outranks_running(cpu, level, tctx->vtime)) {
			scx_bpf_kick_cpu(cpu, SCX_KICK_PREEMPT);
			stat_inc(LLMOS_STAT_PREEMPT);
		} else {
			scx_bpf_kick_cpu(cpu, SCX_KICK_IDLE);
		}
		return;
	}

	/*
	 * ops.select_cpu() is skipped for tasks that were preempted or whose
	 * slice ran out; give them an idle CPU if there is one.
	 */
	if (!__COMPAT_is_enq_cpu_selected(enq_flags)) {
		s32 idle = scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);

		if (idle >= 0) {
			scx_bpf_dsq_insert(p, SCX_DSQ_LOCAL_ON | idle, slice, enq_flags);
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
	llc = llc_of(cpu);
	scx_bpf_dsq_insert_vtime(p, llc_dsq(llc, level), slice, tctx->vtime, enq_flags);
	stat_inc(LLMOS_STAT_SHARED_DISPATCH);

	if (is_mlfq() && (enq_flags & SCX_ENQ_WAKEUP))
		preempt_for(p, llc, level, tctx->vtime);
}

/* Move the head of @dsq to this CPU; tasks it may not run are skipped. */
static bool consume(u64 dsq)
{
	return scx_bpf_dsq_move_to_local(dsq, 0);
}

/*
 * Moves the head of @dsq, peeked as @head, to this CPU, and advances
 * vtime_now to it: queues are served in vtime order, so the head's vtime is
 * how far service has got. (Tasks started any other way, such as kthreads
 * or tasks placed straight on an idle CPU, say nothing about that.)
 */
static bool consume_head(u64 dsq, struct task_struct *head)
{
	u64 vtime = head->scx.dsq_vtime;

	if (!consume(dsq))
		return false;
	if (time_before(vtime_now, vtime))
		vtime_now = vtime;
	return true;
}

/* Serve one level: whichever of the CPU's and its LLC's queue heads is earlier. */
static bool dispatch_level(s32 cpu, u32 llc, u32 level)
{
	u64 own = cpu_dsq(cpu, level), shared = llc_dsq(llc, level);
	struct task_struct *own_head, *shared_head;

	own_head = __COMPAT_scx_bpf_dsq_peek(own);
	shared_head = __COMPAT_scx_bpf_dsq_peek(shared);
	if (!own_head)
		return shared_head && consume_head(shared, shared_head);
	if (shared_head && time_before(shared_head->scx.dsq_vtime, own_head->scx.dsq_vtime) &&
	    consume_head(shared, shared_head))
		return true;
	if (consume_head(own, own_head))
		return true;
	return shared_head && consume_head(shared, shared_head);
}

static bool steal_from(u32 llc, u32 ranks)
{
	u32 rank;

	bpf_for(rank, 0, ranks) {
		if (consume(llc_dsq(llc, rank_slot(rank)))) {
			stat_inc(LLMOS_STAT_STEAL);
			return true;
		}
	}
	return false;
}

/*
 * Work stealing: an idle CPU is wasted capacity while another LLC has a
 * backlog. Try the busiest LLC first, then the rest in order after our own.
 */
static bool steal(u32 home, u32 ranks)
{
	u32 i, rank, busiest = home;
	s32 most = 0;

	bpf_for(i, 1, nr_llcs) {
		u32 llc = (home + i) % nr_llcs;
		s32 queued = 0;

		bpf_for(rank, 0, ranks)
			queued += scx_bpf_dsq_nr_queued(llc_dsq(llc, rank_slot(rank)));
		if (queued > most) {
			most = queued;
			busiest = llc;
		}
	}
	if (busiest == home)
		return false;
	if (steal_from(busiest, ranks))
		return true;
	bpf_for(i, 1, nr_llcs) {
		u32 llc = (home + i) % nr_llcs;

		if (llc != busiest && steal_from(llc, ranks))
			return true;
	}
	return false;
}

/* Whether a task queued at @level for this CPU is due before @vtime. */
static bool queued_before(s32 cpu, u32 llc, u32 level, u64 vtime)
{
	struct task_struct *head;

	head = __COMPAT_scx_bpf_dsq_peek(cpu_dsq(cpu, level));
	if (head && time_before(head->scx.dsq_vtime, vtime))
		return true;
	head = __COMPAT_scx_bpf_dsq_peek(llc_dsq(llc, level));
	return head && time_before(head->scx.dsq_vtime, vtime);
}

void BPF_STRUCT_OPS(llmos_dispatch, s32 cpu, struct task_struct *prev)
{
	/* prev_level: LLMOS_DSQ_SLOTS, no slot, unless prev competes below. */
	u32 home = llc_of(cpu), ranks = active_ranks(), rank, prev_level = LLMOS_DSQ_SLOTS;
	struct task_ctx *pctx = NULL;
	bool keep_prev = false;
	u64 prev_vtime = 0;

	/*
	 * A previous task whose slice ran out but still wants the CPU is not
	 * queued yet. It competes as it will be queued, at the level and
	 * vtime its run has earned; otherwise two tasks sharing a CPU would
	 * just alternate, whatever their weights.
	 */
	if (prev && (prev->scx.flags & SCX_TASK_QUEUED) && (pctx = lookup_task_ctx(prev))) {
		u64 used = run_so_far(prev, pctx);

		prev_level = level_after(pctx, used);
		prev_vtime = bounded_vtime(pctx->vtime) + vtime_charge(prev, used);
	}

	/* Higher levels are always served first. */
	bpf_for(rank, 0, ranks) {
		u32 slot = rank_slot(rank);

		if (slot == prev_level && !queued_before(cpu, home, slot, prev_vtime)) {
			keep_prev = true;
			break;
		}
		if (dispatch_level(cpu, home, slot))
			return;
	}
	if (!keep_prev && steal(home, ranks))
		return;

	/* Nothing queued is due before the previous task: it keeps the CPU. */
	if (pctx) {
		scx_bpf_task_set_slice(prev, level_slice(prev_level));
		stat_inc(LLMOS_STAT_SLICE_REFILL);
	}
}

void BPF_STRUCT_OPS(llmos_runnable, struct task_struct *p, u64 enq_flags)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct llmos_thread_stats *ts = lookup_thread_stats(p);
	u64 now = scx_bpf_now();

	if (!tctx)
		return;
	catch_up_boost(tctx, ts);
	tctx->runnable_at = now;
	tctx->vtime = bounded_vtime(tctx->vtime);

	/*
	 * A task that slept longer than it has run at its level is mostly
	 * waiting on something: its allotment is refilled. If it also slept
	 * at least a slice of the level above, it climbs there. A CPU hog
	 * that naps briefly (to dodge demotion, or on a page fault or a lock)
	 * gets neither.
	 */
	if (is_mlfq()) {
		u64 slept = now - tctx->sleep_at;
		u32 level = task_level(tctx);

		if (slept >= tctx->allot_used) {
			tctx->allot_used = 0;
			if (level && slept >= level_slice(level - 1))
				tctx->level = level - 1;
		}
	}
	if (ts)
		ts->level = task_level(tctx);
}

void BPF_STRUCT_OPS(llmos_running, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct llmos_thread_stats *ts = lookup_thread_stats(p);
	s32 cpu = scx_bpf_task_cpu(p);
	u64 now = scx_bpf_now();
	u32 level;

	if (!tctx)
		return;
	catch_up_boost(tctx, ts);
	level = task_level(tctx);
	tctx->exec_at_start = p->se.sum_exec_runtime;
	running_level[cpu_idx(cpu)] = level;
	running_vtime[cpu_idx(cpu)] = tctx->vtime;
	stat_inc(LLMOS_STAT_LEVEL_RUN + (level & (LLMOS_MAX_LEVELS - 1)));

	if (!ts)
		return;
	ts->nr_runs++;
	ts->wait_ns += now - tctx->runnable_at;
	if (ts->last_cpu >= 0 && ts->last_cpu != cpu)
		ts->nr_migrations++;
	ts->last_cpu = cpu;
	ts->level = level;
}

void BPF_STRUCT_OPS(llmos_stopping, struct task_struct *p, bool runnable)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct llmos_thread_stats *ts = lookup_thread_stats(p);
	u64 now = scx_bpf_now(), used;
	u32 level;

	if (!tctx)
		return;
	catch_up_boost(tctx, ts);
	/*
	 * The kernel's own account of the CPU time, brought up to date before
	 * ops.stopping(): it is what /proc/<tid>/schedstat reports, and it
	 * is exact where timestamps taken in the callbacks are not.
	 */
	used = run_so_far(p, tctx);
	running_level[cpu_idx(scx_bpf_task_cpu(p))] = 0;

	tctx->vtime = bounded_vtime(tctx->vtime) + vtime_charge(p, used);

	/* Demotion (see level_after()). */
	level = task_level(tctx);
	if (is_mlfq()) {
		u32 next = level_after(tctx, used);

		tctx->allot_used += used;
		if (next != level) {
			tctx->level = level = next;
			tctx->allot_used = 0;
			if (ts)
				ts->nr_demotions++;
		}
	}

	if (runnable)
		tctx->runnable_at = now;
	else
		tctx->sleep_at = now;

	if (!ts)
		return;
	ts->runtime_ns += used;
	ts->level = level;
	if (runnable) {
		ts->nr_involuntary++;
	} else {
		ts->nr_voluntary++;
		/* A thread that exec()s changes its name; pick that up cheaply. */
		bpf_probe_read_kernel_str(ts->comm, sizeof(ts->comm), p->comm);
	}
}

void BPF_STRUCT_OPS(llmos_enable, struct task_struct *p)
{
	struct task_ctx *tctx = lookup_task_ctx(p);
	struct llmos_thread_stats ts = {
		.tid = p->pid,
		.tgid = p->tgid,
		.last_cpu = -1,
	};

	/* A new task starts level with the others, neither ahead nor owed. */
	if (tctx) {
		tctx->vtime = vtime_now;
		tctx->boost_gen = boost_gen;
	}
	bpf_probe_read_kernel_str(ts.comm, sizeof(ts.comm), p->comm);
	bpf_map_update_elem(&thread_stats, &ts.tid, &ts, BPF_ANY);
}

s32 BPF_STRUCT_OPS(llmos_init_task, struct task_struct *p, struct scx_init_task_args *args)
{
	if (!bpf_task_storage_get(&task_ctxs, p, 0, BPF_LOCAL_STORAGE_GET_F_CREATE))
		return -ENOMEM;
	return 0;
}

void BPF_STRUCT_OPS(llmos_exit_task, struct task_struct *p, struct scx_exit_task_args *args)
{
	u32 tid = p->pid;

	/* Free both now: a task may leave sched_ext long before it dies. */
	bpf_map_delete_elem(&thread_stats, &tid);
	bpf_task_storage_delete(&task_ctxs, p);
}

/* Moves every task queued on @from to @to, keeping their vtime order. */
static void lift_queue(u64 from, u64 to)
{
	struct task_struct *p;

	if (!scx_bpf_dsq_nr_queued(from))
		return;
	bpf_for_each(scx_dsq, p, from, 0)
		scx_bpf_dsq_move_vtime(BPF_FOR_EACH_ITER, p, to, 0);
}

/*
 * The periodic boost. Queued tasks are moved to the lifted queues, served
 * right after level 0 (see rank_slot()); the rest catch up when they next
 * wake or run (see catch_up_boost()).
 */
static int boost_timerfn(void *map, int *key, struct bpf_timer *timer)
{
	u32 level, i;

	if (is_mlfq()) {
		boost_gen++;
		bpf_for(level, 1, nr_levels) {
			bpf_for(i, 0, nr_llcs)
				lift_queue(llc_dsq(i, level), llc_dsq(i, LLMOS_LIFTED_SLOT));
			bpf_for(i, 0, nr_cpu_ids)
				lift_queue(cpu_dsq(i, level), cpu_dsq(i, LLMOS_LIFTED_SLOT));
		}
		stat_inc(LLMOS_STAT_BOOST);
	}
	bpf_timer_start(timer, boost_interval_ns, 0);
	return 0;
}

static s32 create_dsqs(void)
{
	u32 rank, slot, i;
	s32 err;

	/* Every level's queues and the lifted queues, whatever the policy. */
	bpf_for(rank, 0, nr_levels + 1) {
		slot = rank_slot(rank);
		bpf_for(i, 0, nr_cpu_ids) {
			err = scx_bpf_create_dsq(cpu_dsq(i, slot), -1);
			if (err) {
				scx_bpf_error("failed to create DSQ for CPU %u slot %u: %d", i, slot, err);
				return err;
			}
		}
		bpf_for(i, 0, nr_llcs) {
			err = scx_bpf_create_dsq(llc_dsq(i, slot), -1);
			if (err) {
				scx_bpf_error("failed to create DSQ for LLC %u slot %u: %d", i, slot, err);
				return err;
			}
		}
	}
	return 0;
}

s32 BPF_STRUCT_OPS_SLEEPABLE(llmos_init)
{
	struct bpf_timer *timer;
	u32 key = 0;
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

	timer = bpf_map_lookup_elem(&boost_timer, &key);
	if (!timer) {
		scx_bpf_error("boost timer missing");
		return -ENOENT;
	}
	bpf_timer_init(timer, &boost_timer, CLOCK_MONOTONIC);
	bpf_timer_set_callback(timer, boost_timerfn);
	return bpf_timer_start(timer, boost_interval_ns, 0);
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
