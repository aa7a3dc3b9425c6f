/* SPDX-License-Identifier: GPL-2.0 */
/*
 * State shared by every part of the scheduler: tunables, per-task context,
 * maps, and the queue (DSQ) naming.
 */
#ifndef __LLMOS_BPF_H
#define __LLMOS_BPF_H

#include <scx/common.bpf.h>
#include <bpf_experimental.h>
#include "intf.h"

#define NSEC_PER_MSEC 1000000ULL

/*
 * Per-CPU and per-LLC state that other CPUs read is aligned to a cache line,
 * so that one CPU's writes do not invalidate its neighbours' lines.
 */
#define CACHE_LINE_BYTES 64

/* p->scx.weight of a nice-0 task (sched_prio_to_weight[] scaled to 100). */
#define NICE_0_WEIGHT 100

/* p->static_prio of nice 19, the lowest (MAX_PRIO - 1 in the kernel). */
#define LOWEST_STATIC_PRIO 139

/* Set by the loader before the program is loaded. */
const volatile u32 nr_llcs = 1;
const volatile u32 cpu_llc[LLMOS_MAX_CPUS];
const volatile u32 llc_node[LLMOS_MAX_LLCS];	/* the NUMA node of each LLC */
/*
 * Every CPU, LLC by LLC: LLC l's llc_nr_cpus[l] CPUs start at
 * llc_cpus[llc_first[l]], and cpu_pos[c] is CPU c's place among its LLC's.
 * They are the CPUs that serve the LLC's queues.
 */
const volatile u32 llc_cpus[LLMOS_MAX_CPUS];
const volatile u32 llc_first[LLMOS_MAX_LLCS];
const volatile u32 llc_nr_cpus[LLMOS_MAX_LLCS];
const volatile u32 cpu_pos[LLMOS_MAX_CPUS];
const volatile u32 nr_levels = 4;
/* The loader's process: its threads serve `scx_llmos ctl` (see llmos_enqueue()). */
const volatile u32 loader_tgid;
/*
 * The CPUs the loader found online, and so whose LLC cpu_llc knows: a CPU
 * outside it that comes online needs a restart (see llmos_cpu_online()).
 */
const volatile u64 cpus_in_topology[LLMOS_CPU_WORDS];

/*
 * Written by the loader at any time (`scx_llmos ctl`), read on every
 * scheduling decision; a stale read costs one decision under the old value.
 */
volatile u32 active_policy = LLMOS_POLICY_MLFQ;
/* Filled by the loader before it loads the program (see intf.h). */
volatile struct llmos_tunables tunables;
/*
 * The config's rules, in two slots so that `scx_llmos ctl reload` can fill
 * the one not in use and then switch to it by bumping rules_gen, whose low
 * bit names the slot in use. A classification reads rules_gen once and
 * keeps to its slot; a task classified under an older rules_gen is
 * classified again (see classify.bpf.h). The loader waits a while after a
 * switch before it fills the other slot again, far longer than a
 * classification takes.
 */
struct llmos_rules rules[2];
volatile u64 rules_gen;

/* enum llmos_fault, asked for by the loader: tick() and llmos_enqueue() act on it. */
volatile u32 injected_fault;

/*
 * A policy switch, written by the loader after active_policy: the switch's
 * sequence number above the new policy's id, in one 64-bit store, so that
 * the tick reads the two together on any architecture. The tick copies the
 * sequence number to settled_seq once every queued task is in that policy's
 * queues (see tick()); the loader reads settled_seq to know a switch is
 * complete.
 */
volatile u64 policy_switch;
u64 settled_seq;

static u64 switch_seq(u64 word)
{
	return word >> 32;
}

static u32 switch_policy(u64 word)
{
	return (u32)word;
}

u32 nr_cpu_ids;

struct task_ctx {
	u64 vtime;		/* weighted CPU time consumed */
	u64 exec_at_start;	/* its sum_exec_runtime when it last got a CPU */
	u64 runnable_at;	/* when it last started waiting for a CPU */
	u64 sleep_at;		/* when it last went to sleep */
	u64 allot_used;		/* CPU time used at its MLFQ level since it got there */
	u64 slept_at_level;	/* its sleeps in a row at that level (see mlfq_wakeup()) */
	u64 exec_id;		/* p->self_exec_id when the rules were last applied */
	u64 rules_gen;		/* rules_gen when they were last applied */
	u64 comm[2];		/* its name then, if there were rules (see reclassify_if_stale()) */
	u64 cg_id;		/* cgroup whose pool it weighs in while runnable, or 0... */
	u64 cg_scale;		/* ...its vtime charge over a root thread's, Q16 (cgweight.bpf.h) */
	u64 period_start;	/* edf: when its reservation's current period began... */
	u64 edf_deadline;	/* ...and when its budget for it is due */
	s64 budget_ns;		/* edf: CPU time left in the period; < 0: overrun, owed */
	u64 wake_at;		/* when it last woke up (period.bpf.h)... */
	u64 period_ns;		/* ...the period its wakeups seem to recur at, or 0... */
	u64 next_wake;		/* ...when the next is due... */
	u64 act_used;		/* ...CPU time since the last wakeup... */
	u64 act_avg;		/* ...and its mean per activation (moves an eighth to each) */
	u32 claim;		/* share of a CPU admitted for it as periodic, or 0 */
	u16 matches;		/* wakeups in a row on time (see period_wakeup())... */
	u16 miss_score;		/* ...and a score of those not, once periodic */
	s32 reservation;	/* edf: the [[deadline]] rule it holds, or -1 */
	u32 cg_weight;		/* its weight in cg_id's pool */
	u32 level;		/* MLFQ level */
	u32 boost_gen;		/* the boost it has caught up with */
	s32 rule_prio;		/* priority a config rule gave it, or -1: from nice */
	s32 group;		/* affinity group, or -1 */
	u32 inherited_prio;	/* priority from a thread waiting on a PI futex it holds, or 0... */
	u32 inherited_level;	/* ...and mlfq level, if inherits (see inherit.bpf.h) */
	u32 lock_owner;		/* tid of the PI futex owner it blocked on, for dispatch */
	u32 waker_rank;		/* rank of the task that woke it, since it last ran (see waking_rank()) */
	bool inherits;		/* a thread waits on a PI futex it holds */
	bool lifted;		/* a boost put it back on top from below (see mlfq.bpf.h) */
	bool on_cpu;		/* between ops.running() and ops.stopping() */
	struct llmos_thread_counters counters;	/* read by dump_threads() */
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

static void stat_add(u32 idx, u64 amount)
{
	u64 *cnt = bpf_map_lookup_elem(&stats, &idx);

	if (cnt)
		*cnt += amount;
}

static void stat_inc(u32 idx)
{
	stat_add(idx, 1);
}

static struct task_ctx *lookup_task_ctx(const struct task_struct *p)
{
	return bpf_task_storage_get(&task_ctxs, (struct task_struct *)p, 0, 0);
}

/* Bounds a CPU id for the verifier (LLMOS_MAX_CPUS is a power of two). */
static u32 cpu_idx(s32 cpu)
{
	return (u32)cpu & (LLMOS_MAX_CPUS - 1);
}

/*
 * Since when an RT or deadline task holds @cpu (bpf_ktime_get_ns(), 0 if
 * none), from ops.cpu_release() to ops.cpu_acquire(): nothing is dispatched
 * there meanwhile.
 */
static u64 cpu_held_since[LLMOS_MAX_CPUS];

static bool is_cpu_held(s32 cpu)
{
	return cpu_held_since[cpu_idx(cpu)];
}

static u32 llc_of(s32 cpu)
{
	return cpu_llc[cpu_idx(cpu)];
}

/* Bounds an LLC index for the verifier (LLMOS_MAX_LLCS is a power of two). */
static u32 llc_idx(u32 llc)
{
	return llc & (LLMOS_MAX_LLCS - 1);
}

static bool same_node(u32 llc, u32 other)
{
	return llc_node[llc_idx(llc)] == llc_node[llc_idx(other)];
}

/* @queued tasks waiting in a queue of @llc, per CPU that serves it. */
static s32 queued_per_cpu(s32 queued, u32 llc)
{
	u32 cpus = llc_nr_cpus[llc_idx(llc)];

	return cpus > 1 ? queued / (s32)cpus : queued;
}

/* Whether @cpu is set in the CPU bitmap @words (LLMOS_CPU_WORDS long). */
static bool cpu_in_bitmap(const volatile u64 *words, s32 cpu)
{
	u32 idx = cpu_idx(cpu);

	return (words[idx / LLMOS_WORD_BITS] >> (idx % LLMOS_WORD_BITS)) & 1;
}

static bool in_topology(s32 cpu)
{
	return cpu_in_bitmap(cpus_in_topology, cpu);
}

/*
 * What each CPU is running: the rank and key of its task, for wakeup
 * preemption, and its turn, bumped as a task gets the CPU and as it lets go
 * of it, so that a timer armed for one turn can tell that the turn has
 * ended (rms.bpf.h). Each CPU writes its own at every context switch and
 * wakers on other CPUs read them: a cache line per CPU, or a switch on one
 * CPU would invalidate the line its neighbours write (16 CPUs' ranks shared
 * one).
 */
struct cpu_running {
	u64 key;
	u32 rank;
	u32 turn;
	/*
	 * A waking per-CPU kthread preempted the CPU's task (see ops.enqueue()),
	 * until the CPU runs its next task: the task leaving it meanwhile was
	 * cut short for the kthread's microseconds.
	 */
	bool kthread_cut_in;
} __attribute__((aligned(CACHE_LINE_BYTES)));

static struct cpu_running running[LLMOS_MAX_CPUS];

/*
 * CPU hotplug, from ops.cpu_offline() to ops.cpu_online(). The kernel does
 * not ask an offline CPU's ops.dispatch() for work, so nothing may be queued
 * where only offline CPUs would serve it: a CPU's own queues, or the shared
 * queue of an LLC none of whose CPUs is online. (Hotplug callbacks run one
 * at a time, under the kernel's hotplug lock.)
 */
static bool cpu_offline[LLMOS_MAX_CPUS];
/*
 * The CPUs is_online() says yes to, to pick one without a loop (home_llc()).
 * The tick brings it up to date with draining_since.
 */
private(LLMOS) struct bpf_cpumask __kptr *online_cpus;

/*
 * A CPU going offline leaves the kernel's active mask an RCU grace period
 * before ops.cpu_offline(), and from then on it serves no queue: the kernel
 * moves no task to it from another CPU (is_cpu_allowed()), pushes off any
 * task it starts, and on 6.16 no longer asks its ops.dispatch() for work.
 * Tasks left there wait, and if one was preempted inside an RCU read
 * section, the grace period waits for it, ops.cpu_offline() never comes,
 * and the RCU stall ejects the scheduler (6.16: 5 tasks in the queue of an
 * LLC whose other CPU was offline, 32 s; 7.2 with the host's cores busy: two
 * RCU readers on CPU 2 queued on CPU 3's own queue by the affinity policy,
 * 21 s). Such a CPU is draining: it counts as offline for placement,
 * steals nothing, and its queues are swept to CPUs that serve them. The tick
 * reads the active mask (cpu_active()); ops.enqueue() also recognises a push
 * at once (note_push()), and where the mask cannot be read a CPU drains for
 * DRAIN_NS after its last push.
 */
static u64 draining_since[LLMOS_MAX_CPUS];

/*
 * The address of the kernel's cpu_active_mask, from /proc/kallsyms (the
 * loader's ksym.rs); 0 where it is not there (no CONFIG_KALLSYMS_ALL, or
 * addresses hidden), and only pushes tell a CPU is going down. Its BTF has
 * no global variables, so it could only be an untyped __ksym, for which
 * libbpf parses all of /proc/kallsyms with fscanf at every load: in a 6.16
 * guest under TCG an attach took 9.5-15.8 s that way, 5.7-7.8 s with the
 * loader's scan (4 interleaved rounds).
 */
const volatile u64 cpu_active_mask_addr;

/* 1 if @cpu is in the kernel's active mask, 0 if not, -1 if that is unknown. */
static int cpu_active(s32 cpu)
{
	u64 word;

	if (!cpu_active_mask_addr ||
	    bpf_probe_read_kernel(&word, sizeof(word),
				  (const void *)(cpu_active_mask_addr +
						 cpu / LLMOS_WORD_BITS * sizeof(word))))
		return -1;
	return (word >> (cpu % LLMOS_WORD_BITS)) & 1;
}

/*
 * scx_bpf_kick_cpu() queues an irq_work on the calling CPU, whose interrupt
 * runs it. A CPU going offline takes no more interrupts once the kernel has
 * dropped it from the online mask (x86 soft-disables its local APIC) and has
 * run its last irq_works (smpcfd_dying_cpu()), yet it still runs our
 * callbacks: its stopper's completion wakes the hotplug thread from there.
 * A kick queued then never runs and stays on that CPU's irq_work list, and
 * when the CPU comes back no irq_work queued behind it raises an interrupt:
 * the next detach spins for ever in bpf_scx_unreg(), waiting for its disable
 * work (7.2, 2 CPUs, CPU 1 offline and back 3 times under 2 hogs, then
 * detach and attach: the guest hung at a detach in 2 of 2 boots, CPU 1's
 * list holding its kick, then the disable work). Such a CPU runs nothing of
 * ours again; the kernel reschedules an idle CPU it enqueues a task on.
 */
static void kick_cpu(s32 cpu, u64 flags)
{
	const struct cpumask *online = scx_bpf_get_online_cpumask();
	bool here_online = bpf_cpumask_test_cpu(bpf_get_smp_processor_id(), online);

	scx_bpf_put_cpumask(online);
	if (here_online)
		scx_bpf_kick_cpu(cpu, flags);
}

static bool is_online(s32 cpu)
{
	u32 idx = cpu_idx(cpu);

	return !cpu_offline[idx] && !draining_since[idx];
}

/*
 * Sets @cpu's bit in online_cpus to is_online(@cpu). The tick timer, unlike
 * an ops callback, holds no RCU read lock, without which kernels before 6.18
 * do not trust the mask (see carry_over()).
 */
static void sync_online_cpus(s32 cpu)
{
	struct bpf_cpumask *mask;

	bpf_rcu_read_lock();
	mask = online_cpus;
	if (mask && is_online(cpu))
		bpf_cpumask_set_cpu(cpu, mask);
	else if (mask)
		bpf_cpumask_clear_cpu(cpu, mask);
	bpf_rcu_read_unlock();
}

/* From ops.cpu_online() and ops.cpu_offline(). */
static void mark_online(s32 cpu, bool online)
{
	u32 idx = cpu_idx(cpu);

	draining_since[idx] = 0;
	cpu_offline[idx] = !online;
	sync_online_cpus(cpu);
}

/*
 * The LLC whose shared queue a task belongs on: that of @cpu if the task may
 * run there, else of an online CPU it may use, so that CPUs which can run it
 * find it on their home queue rather than only by stealing.
 */
static u32 home_llc(const struct task_struct *p, s32 cpu)
{
	struct bpf_cpumask *online = online_cpus;
	u32 other;

	if (bpf_cpumask_test_cpu(cpu, p->cpus_ptr) && is_online(cpu))
		return llc_of(cpu);
	/* Only a task queued from an offline or forbidden CPU gets here. */
	if (online) {
		other = bpf_cpumask_any_and_distribute(p->cpus_ptr, cast_mask(online));
		if (other < nr_cpu_ids)
			return llc_of(other);
	}
	return llc_of(bpf_cpumask_any_distribute(p->cpus_ptr));
}

/*
 * Which bank of each CPU's and LLC's queues takes new tasks (see intf.h);
 * the other one is retired and only drains. A CPU serves both, a retired
 * bank's tasks with the keys retired_key() gives them. Only mlfq's boost
 * retires banks, to lift every queued task at once (see retire_banks()).
 */
static u8 cpu_bank[LLMOS_MAX_CPUS];
static u8 llc_bank[LLMOS_MAX_LLCS];

/*
 * Whether a queue's retired bank outlived a whole boost interval: it still
 * held tasks at the next boost (see retire_banks()). Its tasks have waited
 * at least that long, and mlfq ranks them with its top level (see
 * mlfq_retired_key()).
 */
static bool cpu_bank_overdue[LLMOS_MAX_CPUS];
static bool llc_bank_overdue[LLMOS_MAX_LLCS];

/* Bank @bank of @policy's queue on @cpu (see intf.h). */
static u64 cpu_bank_dsq(s32 cpu, u32 policy, u32 bank)
{
	return ((u64)cpu * LLMOS_NR_POLICIES + policy) * LLMOS_DSQ_BANKS + (bank & 1);
}

/* Bank @bank of @policy's queue shared by the CPUs of @llc. */
static u64 llc_bank_dsq(u32 llc, u32 policy, u32 bank)
{
	return LLMOS_LLC_DSQ_BASE + ((u64)llc * LLMOS_NR_POLICIES + policy) * LLMOS_DSQ_BANKS +
	       (bank & 1);
}

/* @policy's queue on @cpu, the bank that takes new tasks. */
static u64 cpu_dsq(s32 cpu, u32 policy)
{
	return cpu_bank_dsq(cpu, policy, cpu_bank[cpu_idx(cpu)]);
}

static u64 cpu_retired_dsq(s32 cpu, u32 policy)
{
	return cpu_bank_dsq(cpu, policy, cpu_bank[cpu_idx(cpu)] ^ 1);
}

/* @policy's queue shared by the CPUs of @llc, the bank that takes new tasks. */
static u64 llc_dsq(u32 llc, u32 policy)
{
	return llc_bank_dsq(llc, policy, llc_bank[llc_idx(llc)]);
}

static u64 llc_retired_dsq(u32 llc, u32 policy)
{
	return llc_bank_dsq(llc, policy, llc_bank[llc_idx(llc)] ^ 1);
}

/*
 * Retires the bank of each of @policy's queues that takes new tasks, where
 * the other bank has drained: new tasks go to that one from now on. A queue
 * whose retired bank still holds tasks keeps its banks: its tasks have
 * waited since before the last retirement, and those queued since wait
 * behind them anyway. The cost is a read of each queue's length, however
 * many tasks wait.
 */
static void retire_banks(u32 policy)
{
	u32 i;

	bpf_for(i, 0, nr_cpu_ids) {
		bool kept = scx_bpf_dsq_nr_queued(cpu_retired_dsq(i, policy)) > 0;

		if (!kept)
			cpu_bank[cpu_idx(i)] ^= 1;
		cpu_bank_overdue[cpu_idx(i)] = kept;
	}
	bpf_for(i, 0, nr_llcs) {
		bool kept = scx_bpf_dsq_nr_queued(llc_retired_dsq(i, policy)) > 0;

		if (!kept)
			llc_bank[llc_idx(i)] ^= 1;
		llc_bank_overdue[llc_idx(i)] = kept;
	}
}

/*
 * How far an LLC's vtime-ordered queues have been served: the vtime of the
 * last queue head one of its CPUs took. It is the LLC's notion of "now" for
 * fairness: a task waking from a long sleep is placed no further back than
 * one slice behind it, so sleeping earns a bounded head start instead of a
 * monopoly on the CPU, and never lands behind tasks that have waited their
 * turn. One per LLC, a cache line each: every queue head taken writes it,
 * and a global one would be a line that every CPU writes.
 */
struct llc_vtime {
	u64 now;
} __attribute__((aligned(CACHE_LINE_BYTES)));

static struct llc_vtime llc_vtimes[LLMOS_MAX_LLCS];

static u64 vtime_now(u32 llc)
{
	return llc_vtimes[llc_idx(llc)].now;
}

/* Service in @llc's queues has reached @vtime. */
static void advance_vtime_now(u32 llc, u64 vtime)
{
	struct llc_vtime *clock = &llc_vtimes[llc_idx(llc)];

	if (time_before(clock->now, vtime))
		clock->now = vtime;
}

/*
 * mlfq keeps all its levels in one queue per CPU and LLC, ordered by key, so
 * that a CPU finds the next task with two queue peeks, as under any other
 * policy, rather than two per level. A task's rank (see mlfq_rank()) is the
 * top bits of its key: rank r adds r * RANK_SPAN to its vtime, so every task
 * of a higher rank sorts ahead of every task of a lower one. The kernel
 * orders keys by signed difference; queued vtimes lie within a few slices of
 * their LLC's vtime_now() (see entry_key()), far inside RANK_SPAN / 2, and
 * the 9 ranks span 2^61, inside 2^63.
 */
#define RANK_SPAN (1ULL << 58)

static u64 ranked_key(u32 rank, u64 key)
{
	return key + (u64)rank * RANK_SPAN;
}

/*
 * The rank of a key in a vtime-ordered queue of @llc: its distance from the
 * LLC's vtime_now(), rounded.
 */
static u32 key_rank(u64 key, u32 llc)
{
	return (key - vtime_now(llc) + RANK_SPAN / 2) / RANK_SPAN;
}

/* A key in a vtime-ordered queue of @llc without its rank: the task's vtime. */
static u64 unranked_key(u64 key, u32 llc)
{
	return key - (u64)key_rank(key, llc) * RANK_SPAN;
}

/*
 * Claims an idle CPU for @p, which did not pass through ops.select_cpu()
 * (preempted, or its slice ran out), nearest first: @prev, then its LLC,
 * then anywhere, so that it does not leave a warm cache for another LLC
 * while a CPU of its own is idle. -1 if none. Before 6.16, which lacks
 * scx_bpf_select_cpu_and(): @prev, then any idle CPU.
 */
static s32 pick_idle_near(struct task_struct *p, s32 prev)
{
	s32 cpu;

	if (__COMPAT_HAS_scx_bpf_select_cpu_and) {
		cpu = scx_bpf_select_cpu_and(p, prev, 0, p->cpus_ptr, 0);
		return cpu >= 0 ? cpu : -1;
	}
	if (bpf_cpumask_test_cpu(prev, p->cpus_ptr) && scx_bpf_test_and_clear_cpu_idle(prev))
		return prev;
	return scx_bpf_pick_idle_cpu(p->cpus_ptr, 0);
}

static bool is_pcpu_kthread(const struct task_struct *p)
{
	return (p->flags & PF_KTHREAD) && p->nr_cpus_allowed == 1;
}

/*
 * Tasks that cannot leave their CPU: they belong on that CPU's own DSQs.
 * Before 6.15 that includes a task preempted with migration disabled (inside
 * a BPF program such as a seccomp filter), which the kernel enqueues before
 * it narrows its cpumask (put_prev_task_scx() comes first), and a scheduler
 * that sends it to another CPU's local queue is ejected. From 6.15 the
 * kernel queues such a task on its CPU itself, without ops.enqueue(), unless
 * SCX_OPS_ENQ_MIGRATION_DISABLED is set.
 */
static bool is_pcpu_task(const struct task_struct *p)
{
	return p->nr_cpus_allowed == 1 || is_migration_disabled(p);
}

#endif /* __LLMOS_BPF_H */
