/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Weighted virtual time: the vtime policy's order, which mlfq (within a
 * level) and affinity share. Every policy keeps each task's vtime, so that a
 * switch to one ordered by it starts fair.
 */
#ifndef __LLMOS_VTIME_BPF_H
#define __LLMOS_VTIME_BPF_H

#include "llmos.bpf.h"

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

/* vtime for @used ns of CPU: inversely to weight, nice -20 ages ~88x slower than nice 19. */
static u64 vtime_charge(const struct task_struct *p, u64 used)
{
	return used * NICE_0_WEIGHT / p->scx.weight;
}

#endif /* __LLMOS_VTIME_BPF_H */
