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

	/*
	 * DSQ ids: each CPU owns DSQ <cpu> for tasks that may run only there;
	 * each last-level cache owns DSQ LLMOS_LLC_DSQ_BASE + <llc> for the
	 * tasks that can run anywhere in it.
	 */
	LLMOS_LLC_DSQ_BASE = 1 << 20,
};

/*
 * Scheduling policies. The active one lives in .bss and is read on the hot
 * path, so the loader can change it without reloading the program.
 */
enum llmos_policy {
	/* Weighted fair virtual time: CPU shares follow nice weights. */
	LLMOS_POLICY_VTIME = 0,
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
	LLMOS_NR_STATS,
};

#endif /* __LLMOS_INTF_H */
