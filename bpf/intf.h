/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Types and constants shared by the BPF scheduler and the Rust loader. The
 * loader's bindings are generated from this file, so keep it plain C.
 */
#ifndef __LLMOS_INTF_H
#define __LLMOS_INTF_H

#ifndef __VMLINUX_H__
typedef unsigned char u8;
typedef unsigned int u32;
typedef int s32;
typedef unsigned long long u64;
#endif

enum llmos_consts {
	/* Sizes of the loader-filled topology tables in .rodata. */
	LLMOS_MAX_CPUS = 1024,
	LLMOS_MAX_LLCS = 256,
	/* MLFQ priority levels; level 0 is the top. */
	LLMOS_MAX_LEVELS = 8,

	/* Priority rules and affinity groups from the config file. */
	LLMOS_MAX_PRIO_RULES = 32,
	LLMOS_MAX_GROUPS = 16,
	/* edf's reservations, each one thread's. */
	LLMOS_MAX_DEADLINE_RULES = 16,
	/* Static priorities run 0..LLMOS_MAX_PRIO, the scale of 19 - nice. */
	LLMOS_MAX_PRIO = 39,
	/* Deepest cgroup a rule may name, or cpu.weight reaches. */
	LLMOS_MAX_CGROUP_DEPTH = 64,
	/* cgroups whose cpu.weight is honoured; more are charged as the root. */
	LLMOS_MAX_CGROUPS = 65536,
	/* Bits of a word of a CPU bitmap, and the words of one. */
	LLMOS_WORD_BITS = 64,
	LLMOS_CPU_WORDS = LLMOS_MAX_CPUS / LLMOS_WORD_BITS,
	/* A thread's name, as the kernel's TASK_COMM_LEN. */
	LLMOS_COMM_LEN = 16,

	/*
	 * DSQ ids. Every policy owns one queue per CPU and one per LLC, so a
	 * live policy switch knows exactly which queued tasks to carry over:
	 * those in the other policies' queues. Each queue has LLMOS_DSQ_BANKS
	 * banks, one taking new tasks while the other drains (see
	 * retire_banks()). Bank <bank> of CPU <cpu>'s queue, for tasks that may
	 * run only there (and for the affinity policy, tasks placed there for
	 * cache warmth), is (<cpu> * LLMOS_NR_POLICIES + <policy>) *
	 * LLMOS_DSQ_BANKS + <bank>; of LLC <llc>'s, for tasks that can run
	 * anywhere in it, LLMOS_LLC_DSQ_BASE + (<llc> * LLMOS_NR_POLICIES +
	 * <policy>) * LLMOS_DSQ_BANKS + <bank>.
	 */
	LLMOS_DSQ_BANKS = 2,
	LLMOS_LLC_DSQ_BASE = 1 << 20,
	/*
	 * edf's reserved threads wait in a queue of their reservation's,
	 * LLMOS_RESERVATION_DSQ_BASE + <rule>, which any CPU serves (see
	 * edf.bpf.h).
	 */
	LLMOS_RESERVATION_DSQ_BASE = 1 << 21,
};

/*
 * Scheduling policies. The active one lives in .data and is read on the hot
 * path, so the loader can switch it without detaching the scheduler.
 */
enum llmos_policy {
	/* Weighted fair virtual time: CPU shares follow nice weights. */
	LLMOS_POLICY_VTIME = 0,
	/*
	 * Multi-level feedback queue: strict priority levels with growing
	 * slices, demotion on using a level's allotment, promotion on sleep,
	 * periodic boost of everything to the top.
	 */
	LLMOS_POLICY_MLFQ = 1,
	/* Static priority (nice or config rules); waiting raises it (aging). */
	LLMOS_POLICY_PRIO = 2,
	/* vtime order; placement keeps threads on their CPU, LLC or group CPUs. */
	LLMOS_POLICY_AFFINITY = 3,
	/* Arrival order; a thread runs until it sleeps (or a safety cap). */
	LLMOS_POLICY_FIFO = 4,
	/* Arrival order with a fixed slice. */
	LLMOS_POLICY_RR = 5,
	/*
	 * Earliest deadline first for the threads the config reserves CPU time
	 * for (runtime per period, within a deadline), while their budget
	 * lasts; vtime for every other thread.
	 */
	LLMOS_POLICY_EDF = 6,
	/*
	 * Rate-monotonic: threads whose wakeups recur at a stable period run
	 * ahead of the others, the shortest period first, within a budget;
	 * vtime for every other thread. No config.
	 */
	LLMOS_POLICY_RMS = 7,
	LLMOS_NR_POLICIES,
};

/*
 * The tunables the loader may change while the scheduler runs (`scx_llmos
 * ctl set`), in one .data struct: each field is written by the loader from
 * its table of settings (src/settings.rs) and read on the scheduling path; a
 * stale read costs one decision under the old value.
 */
struct llmos_tunables {
	u64 slice_ns;			/* vtime, prio, affinity, rr: a task's slice */
	u64 level_slice_ns[LLMOS_MAX_LEVELS];	/* mlfq: each level's slice */
	u64 boost_interval_ns;		/* mlfq: every thread back to the top */
	u64 prio_aging_ns;		/* prio: a wait that is worth one priority step */
	u64 priority_inheritance;	/* prio, mlfq: PI futex holders run at their waiters' */
};

/* What `scx_llmos ctl inject-fault` asks the BPF side to do, for tests. */
enum llmos_fault {
	LLMOS_FAULT_NONE = 0,
	LLMOS_FAULT_ERROR = 1,		/* scx_bpf_error(), as a bug would */
	LLMOS_FAULT_RESTART = 2,	/* scx_bpf_exit() asking for a restart */
	/*
	 * The next task queued on an LLC's queue goes to another policy's
	 * queue after its switch was settled, as a task does whose ops.enqueue()
	 * read the policy just before a switch (see sweep_strays()).
	 */
	LLMOS_FAULT_STRAY = 3,
};

/* What a priority rule or affinity group matches on. */
enum llmos_match {
	LLMOS_MATCH_COMM = 0,	/* the thread's name, exactly */
	LLMOS_MATCH_CGROUP = 1,	/* a cgroup (v2) or any cgroup below it */
	LLMOS_MATCH_UID = 2,	/* the thread's real uid */
	LLMOS_MATCH_PID = 3,	/* every thread of a process */
};

/* One config rule; the first that matches a thread wins. */
struct llmos_rule {
	u32 match;		/* enum llmos_match */
	u32 value;		/* priority rule: the priority; group: unused */
	u64 id;			/* uid, pid, or cgroup id */
	u32 cgroup_level;	/* depth of the cgroup below the root */
	u32 pad;
	char comm[LLMOS_COMM_LEN];
};

/* What a [[deadline]] rule reserves for its thread under edf. */
struct llmos_reservation {
	u64 runtime_ns;		/* CPU time in each period... */
	u64 period_ns;
	u64 deadline_ns;	/* ...used within this long of the period's start */
};

/*
 * The config's priority rules, affinity groups and edf reservations, as the
 * loader writes them (src/rules.rs): at load, and again on `scx_llmos ctl
 * reload`.
 */
struct llmos_rules {
	u32 nr_prio_rules;
	u32 nr_groups;
	u32 nr_deadline_rules;
	u32 pad;
	struct llmos_rule prio_rules[LLMOS_MAX_PRIO_RULES];
	struct llmos_rule group_rules[LLMOS_MAX_GROUPS];
	u64 group_cpus[LLMOS_MAX_GROUPS][LLMOS_CPU_WORDS];	/* each group's CPUs */
	struct llmos_rule deadline_rules[LLMOS_MAX_DEADLINE_RULES];
	struct llmos_reservation reservations[LLMOS_MAX_DEADLINE_RULES];	/* each rule's */
};

/* Per-CPU event counters, summed by the loader for its stats (src/stats.rs). */
enum llmos_stat {
	LLMOS_STAT_IDLE_DISPATCH,	/* woke straight onto an idle CPU */
	LLMOS_STAT_KTHREAD_DISPATCH,	/* waking per-CPU kthread, run at once on its CPU */
	LLMOS_STAT_PINNED_DISPATCH,	/* single-CPU task to its CPU's DSQ */
	LLMOS_STAT_SHARED_DISPATCH,	/* queued on its LLC's shared DSQ */
	LLMOS_STAT_STEAL,		/* idle CPU pulled work from another LLC or CPU */
	LLMOS_STAT_SLICE_REFILL,	/* nothing else to run: prev kept the CPU */
	LLMOS_STAT_PREEMPT,		/* a waking task kicked a lower-ranked one off its CPU */
	LLMOS_STAT_BOOST,		/* periodic boosts of every task to the top level */
	LLMOS_STAT_CPU_QUEUE,		/* affinity: queued on its own CPU for cache warmth */
	LLMOS_STAT_SWITCH,		/* live policy switches carried out */
	LLMOS_STAT_CARRIED,		/* queued tasks moved to a new policy's queues */
	LLMOS_STAT_LLC_MIGRATION,	/* a task started on another LLC than it last ran on */
	LLMOS_STAT_PUSHED,		/* tasks the kernel pushed off a CPU going offline */
	LLMOS_STAT_BOOST_NS,		/* ns the tick spent in mlfq boosts (their cost) */
	LLMOS_STAT_LEVEL_RUN,		/* first of LLMOS_MAX_LEVELS: tasks started per level */
	LLMOS_NR_STATS = LLMOS_STAT_LEVEL_RUN + LLMOS_MAX_LEVELS,
};

/* What the scheduler counts for each thread, in its task context. */
struct llmos_thread_counters {
	u64 runtime_ns;		/* CPU time while scx_llmos was attached */
	u64 wait_ns;		/* time spent runnable but not running */
	u64 nr_runs;		/* times it got a CPU */
	u64 nr_voluntary;	/* times it gave up the CPU to sleep */
	u64 nr_involuntary;	/* times it was preempted or ran out of slice */
	u64 nr_migrations;	/* times it started on a different CPU than before */
	u64 nr_demotions;	/* MLFQ level drops */
	u64 nr_boosts;		/* periodic boosts that lifted it */
	u64 nr_deadline_misses;	/* periodic: activations that ended after the next wakeup was due */
	s32 last_cpu;		/* CPU it last ran on, or -1 */
	u32 pad;
};

/* One thread as the scheduler sees it: a record of the dump_threads iterator. */
struct llmos_thread_stats {
	u32 tid;
	u32 tgid;
	char comm[LLMOS_COMM_LEN];
	u32 level;		/* current MLFQ level (0 = top) */
	u32 priority;		/* static priority (prio policy), 0..LLMOS_MAX_PRIO */
	s32 group;		/* affinity group from the config, or -1 */
	u32 waiting;		/* 1: runnable but not on a CPU, so queued somewhere */
	u64 period_ns;		/* the period its wakeups recur at, if periodic; else 0 */
	struct llmos_thread_counters counters;
};

#endif /* __LLMOS_INTF_H */
