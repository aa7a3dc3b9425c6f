/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Weighted virtual time: the vtime policy's order, which mlfq (within a
 * level) and affinity share. Every policy keeps each task's vtime, so that a
 * switch to one ordered by it starts fair.
 */
#ifndef __LLMOS_VTIME_BPF_H
#define __LLMOS_VTIME_BPF_H

#include "llmos.bpf.h"
#include "cgweight.bpf.h"

/*
 * A task's vtime, no further behind @llc's vtime_now() than one slice:
 * whether it slept or was starved, a task earns at most a slice of catching
 * up, so a laggard cannot hold a CPU for many slices while others wait.
 */
static u64 bounded_vtime(u64 vtime, u32 llc)
{
	u64 floor = vtime_now(llc) - tunables.slice_ns;

	return time_before(vtime, floor) ? floor : vtime;
}

/*
 * vtime for @used ns of CPU: inversely to weight, nice -20 ages ~88x slower
 * than nice 19, and times the share its cgroup leaves it (cg_scale()).
 */
static u64 vtime_charge(const struct task_struct *p, const struct task_ctx *tctx, u64 used)
{
	u64 charge = used * NICE_0_WEIGHT / p->scx.weight;
	u64 scale = tctx->cg_scale ? tctx->cg_scale : CG_SCALE_ONE;

	/* charge * scale >> 16 in two halves: their product may pass 2^64. */
	return (charge >> 16) * scale + (((charge & 0xffff) * scale) >> 16);
}

/* @tctx's vtime, bounded by @llc's clock, once charged @used ns of CPU. */
static u64 charged_vtime(const struct task_struct *p, const struct task_ctx *tctx, u32 llc,
			 u64 used)
{
	return bounded_vtime(tctx->vtime, llc) + vtime_charge(p, tctx, used);
}

#endif /* __LLMOS_VTIME_BPF_H */
