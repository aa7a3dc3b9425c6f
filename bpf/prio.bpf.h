/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The prio policy: the key is when the task started waiting plus
 * prio_aging_ns per step below the top priority, so a higher priority runs
 * first unless a lower one has waited prio_aging_ns per step of difference:
 * no runnable task waits more than LLMOS_MAX_PRIO * prio_aging_ns for its
 * turn. Priorities come from nice or the config's rules (classify.bpf.h),
 * and a holder of a PI futex takes its waiters' (inherit.bpf.h).
 */
#ifndef __LLMOS_PRIO_BPF_H
#define __LLMOS_PRIO_BPF_H

#include "llmos.bpf.h"
#include "inherit.bpf.h"

static u64 prio_key(const struct task_struct *p, const struct task_ctx *tctx, u64 waiting_since)
{
	return waiting_since + (LLMOS_MAX_PRIO - effective_prio(p, tctx)) * tunables.prio_aging_ns;
}

#endif /* __LLMOS_PRIO_BPF_H */
