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
	/* Entries in the per-thread statistics map (least recently used go first). */
	LLMOS_MAX_THREADS = 32768,

	/*
	 * DSQ ids. Each CPU and each last-level cache owns LLMOS_DSQ_SLOTS
	 * queues: one per priority level, then one for tasks a boost lifted
	 * to the top. CPU <cpu>'s queues, for tasks that may run only there,
	 * are <cpu> * LLMOS_DSQ_SLOTS + <slot>; LLC <llc>'s, for tasks that
	 * can run anywhere in it, LLMOS_LLC_DSQ_BASE + <llc> *
	 * LLMOS_DSQ_SLOTS + <slot>.
	 */
	LLMOS_LIFTED_SLOT = LLMOS_MAX_LEVELS,
	LLMOS_DSQ_SLOTS = LLMOS_MAX_LEVELS + 1,
	LLMOS_LLC_DSQ_BASE = 1 << 20,
};

/*
 * Scheduling policies. The active one lives in .bss and is read on the hot
 * path, so the loader can change it without reloading the program.
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
	LLMOS_NR_POLICIES,
};

/* Per-CPU event counters, summed by the loader for --stats. */
enum llmos_stat {
	LLMOS_STAT_IDLE_DISPATCH,	/* woke straight onto an idle CPU */
	LLMOS_STAT_KTHREAD_DISPATCH,	/* per-CPU kthread to its own CPU */
	LLMOS_STAT_PINNED_DISPATCH,	/* single-CPU task to its CPU's DSQ */
	LLMOS_STAT_SHARED_DISPATCH,	/* queued on its LLC's shared DSQ */
	LLMOS_STAT_STEAL,		/* idle CPU pulled work from another LLC */
	LLMOS_STAT_SLICE_REFILL,	/* nothing else to run: prev kept the CPU */
	LLMOS_STAT_PREEMPT,		/* a waking task kicked a lower-level one off its CPU */
	LLMOS_STAT_BOOST,		/* periodic boosts of every task to the top level */
	LLMOS_STAT_LEVEL_RUN,		/* first of LLMOS_MAX_LEVELS: tasks started per level */
	LLMOS_NR_STATS = LLMOS_STAT_LEVEL_RUN + LLMOS_MAX_LEVELS,
};

/* One thread as the scheduler sees it: the value of the thread_stats map, keyed by tid. */
struct llmos_thread_stats {
	u32 tid;
	u32 tgid;
	char comm[16];
	u32 level;		/* current MLFQ level (0 = top) */
	s32 last_cpu;		/* CPU it last ran on */
	u64 runtime_ns;		/* CPU time while scx_llmos was attached */
	u64 wait_ns;		/* time spent runnable but not running */
	u64 nr_runs;		/* times it got a CPU */
	u64 nr_voluntary;	/* times it gave up the CPU to sleep */
	u64 nr_involuntary;	/* times it was preempted or ran out of slice */
	u64 nr_migrations;	/* times it started on a different CPU than before */
	u64 nr_demotions;	/* MLFQ level drops */
	u64 nr_boosts;		/* periodic boosts that lifted it */
};

#endif /* __LLMOS_INTF_H */
