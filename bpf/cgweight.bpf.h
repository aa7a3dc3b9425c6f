/* SPDX-License-Identifier: GPL-2.0 */
/*
 * cgroup v2 cpu.weight (systemd's CPUWeight=) for the policies ordered by
 * vtime: sibling cgroups share the CPU in proportion to their weights, at
 * every level of the hierarchy, as the kernel's fair class shares it.
 *
 * A cgroup competes in its parent as one thread of weight cpu.weight would
 * (100, the default, is a nice-0 thread's weight): its share of the parent's
 * is its weight over the parent's pool, the weights of the parent's runnable
 * threads plus those of its active children (a child is active while a
 * thread in it or below it is runnable). A thread's share of its cgroup is
 * likewise its weight over the cgroup's pool. Flattened, a thread in cgroup
 * c gets units(c) * weight / pool(c), where units(c) is c's share counted in
 * nice-0 threads of the root: cpu.weight / 100 for a child of the root, and
 * units(parent) * cpu.weight / pool(parent) below. So its vtime is charged
 * pool(c) / units(c) times what a thread of its weight in the root cgroup
 * would be (cg_scale). Threads in the root cgroup are charged as ever.
 *
 * Cost: a thread's cgroup is looked up when it becomes runnable, stops
 * being runnable and ends a turn, never when it is queued or dispatched
 * (the scale is kept in its task_ctx). units() change only when a cgroup
 * turns active or idle, or a weight changes: a generation count tells a
 * cgroup's cached units are stale, and they are worked out again from the
 * nearest up-to-date ancestor down. Pools are read live. Activity is counted
 * under one lock, taken only when a cgroup's first thread becomes runnable
 * or its last one stops being so.
 *
 * The kernel calls the cgroup callbacks only if it was built with
 * CONFIG_EXT_GROUP_SCHED; without it no cgroup is known and every thread is
 * charged as one of the root cgroup.
 */
#ifndef __LLMOS_CGWEIGHT_BPF_H
#define __LLMOS_CGWEIGHT_BPF_H

#include "llmos.bpf.h"

/* cg_scale() of a thread charged as one of the root cgroup. */
#define CG_SCALE_ONE (1ULL << 16)
/* units() of a cgroup worth one nice-0 thread of the root cgroup. */
#define CG_UNITS_ONE (1ULL << 16)
/* Bounds of cg_scale(): a thread is charged 1/65,536 to 2^20 times the root's rate. */
#define CG_SCALE_MIN 1ULL
#define CG_SCALE_MAX (1ULL << 36)

struct cgrp_ctx {
	u64 parent_id;		/* the parent's cgroup id; 0 for a child of the root */
	u64 task_weight;	/* sum of the weights of its runnable threads */
	u64 child_weight;	/* sum of the cpu.weight of its active children */
	u64 units;		/* its share, CG_UNITS_ONE per nice-0 root thread... */
	u64 units_gen;		/* ...as of this cg_gen */
	s64 nr_runnable;	/* its runnable threads */
	s64 nr_active;		/* 1 if it has runnable threads, plus its active children */
	u32 weight;		/* cpu.weight, 1..10000 */
	u32 level;		/* depth below the root, from 1 */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, LLMOS_MAX_CGROUPS);
	__type(key, u64);
	__type(value, struct cgrp_ctx);
} cgrp_ctxs SEC(".maps");

/* Serialises activity changes and weight changes along the hierarchy. */
private(CGWEIGHT) struct bpf_spin_lock cg_lock;
/* Bumped when a cgroup turns active or idle or its weight changes. */
u64 cg_gen = 1;

/*
 * The id of the cgroup whose CPU share @p takes; 0 for the root cgroup.
 * Asked at every wakeup: plain loads, which the verifier makes fault-safe
 * as @p is a trusted argument, where BPF_CORE_READ() would call
 * bpf_probe_read_kernel() for each field read, three for a thread of the
 * root cgroup and five for another (ops.runnable() took 13% less: 7.2,
 * 1 vCPU, 2 spinners and a sleeper, medians of 6 rounds).
 */
static u64 task_cgroup_id(const struct task_struct *p)
{
	struct task_group *tg;
	struct cgroup *cgrp;

	if (!bpf_core_field_exists(p->sched_task_group))
		return 0;
	tg = p->sched_task_group;
	cgrp = tg ? tg->css.cgroup : NULL;
	if (!cgrp || !cgrp->level)
		return 0;
	return cgrp->kn->id;
}

/*
 * @cgc gains (@delta 1) or loses (-1) its first runnable thread, or active
 * child: so may its parent, and so on up.
 */
static void cg_change_activity(struct cgrp_ctx *cgc, s64 delta)
{
	struct cgrp_ctx *parent;
	bool changed = false, up;
	u32 depth;
	s64 old;

	bpf_for(depth, 0, LLMOS_MAX_CGROUP_DEPTH) {
		if (!cgc)
			break;
		parent = cgc->level > 1 ? bpf_map_lookup_elem(&cgrp_ctxs, &cgc->parent_id) : NULL;
		up = false;
		bpf_spin_lock(&cg_lock);
		old = cgc->nr_active;
		cgc->nr_active = old + delta;
		if ((delta > 0 && old == 0) || (delta < 0 && old == 1)) {
			changed = true;
			if (parent) {
				parent->child_weight += delta > 0 ? cgc->weight : -(u64)cgc->weight;
				up = true;
			}
		}
		bpf_spin_unlock(&cg_lock);
		if (!up)
			break;
		cgc = parent;
	}
	if (changed)
		__sync_fetch_and_add(&cg_gen, 1);
}

/* The weights competing in @cgc: its runnable threads' and its active children's. */
static u64 cg_pool(const struct cgrp_ctx *cgc)
{
	u64 pool = cgc->task_weight + cgc->child_weight;

	return pool ? pool : 1;
}

/*
 * @cgc's units() as of generation @gen. Each pass brings the highest stale
 * cgroup on the way up (whose parent is up to date, or which is a child of
 * the root) up to date; passes end when @cgc is.
 */
static u64 cg_units(struct cgrp_ctx *cgc, u64 gen)
{
	struct cgrp_ctx *node, *stale, *parent;
	u32 pass, depth;

	bpf_for(pass, 0, LLMOS_MAX_CGROUP_DEPTH) {
		node = cgc;
		stale = NULL;
		parent = NULL;
		bpf_for(depth, 0, LLMOS_MAX_CGROUP_DEPTH) {
			if (!node || node->units_gen == gen)
				break;
			stale = node;
			parent = NULL;
			if (node->level <= 1)
				break;
			node = parent = bpf_map_lookup_elem(&cgrp_ctxs, &node->parent_id);
		}
		if (!stale)
			break;
		if (parent && parent->units_gen == gen)
			stale->units = parent->units * stale->weight / cg_pool(parent);
		else
			stale->units = (u64)stale->weight * CG_UNITS_ONE / NICE_0_WEIGHT;
		if (!stale->units)
			stale->units = 1;
		stale->units_gen = gen;
	}
	return cgc->units ? cgc->units : 1;
}

/* How much more than a root thread of its weight @tctx's thread is charged (Q16). */
static u64 cg_scale(struct task_ctx *tctx)
{
	struct cgrp_ctx *cgc;
	u64 scale;

	if (!tctx->cg_id || !(cgc = bpf_map_lookup_elem(&cgrp_ctxs, &tctx->cg_id)))
		return CG_SCALE_ONE;
	scale = cg_pool(cgc) * CG_UNITS_ONE / cg_units(cgc, cg_gen) * CG_SCALE_ONE / NICE_0_WEIGHT;
	if (scale < CG_SCALE_MIN)
		return CG_SCALE_MIN;
	return scale > CG_SCALE_MAX ? CG_SCALE_MAX : scale;
}

/* @p became runnable: it weighs in its cgroup's pool until it stops being so. */
static void cg_task_runnable(const struct task_struct *p, struct task_ctx *tctx)
{
	u64 id = task_cgroup_id(p);
	struct cgrp_ctx *cgc;

	tctx->cg_id = 0;
	if (id && (cgc = bpf_map_lookup_elem(&cgrp_ctxs, &id))) {
		tctx->cg_id = id;
		tctx->cg_weight = p->scx.weight;
		__sync_fetch_and_add(&cgc->task_weight, tctx->cg_weight);
		if (!__sync_fetch_and_add(&cgc->nr_runnable, 1))
			cg_change_activity(cgc, 1);
	}
	tctx->cg_scale = cg_scale(tctx);
}

/* @p stopped being runnable (or is moved): out of its cgroup's pool. */
static void cg_task_quiescent(struct task_ctx *tctx)
{
	struct cgrp_ctx *cgc;

	if (!tctx->cg_id)
		return;
	cgc = bpf_map_lookup_elem(&cgrp_ctxs, &tctx->cg_id);
	tctx->cg_id = 0;
	if (!cgc)
		return;
	__sync_fetch_and_sub(&cgc->task_weight, tctx->cg_weight);
	if (!__sync_sub_and_fetch(&cgc->nr_runnable, 1))
		cg_change_activity(cgc, -1);
}

/* A new cgroup, or one that existed when we attached, of weight @weight. */
static void cg_init(struct cgroup *cgrp, u32 weight)
{
	struct cgrp_ctx cgc = { .weight = weight ? weight : NICE_0_WEIGHT };
	/* A local: inside bpf_core_read(), cgc.level would be relocated too. */
	u32 level = BPF_CORE_READ(cgrp, level);
	struct cgroup *parent = NULL;
	u64 id;

	if (!level || level > LLMOS_MAX_CGROUP_DEPTH)
		return;
	cgc.level = level;
	if (level > 1) {
		if (bpf_core_read(&parent, sizeof(parent), &cgrp->ancestors[level - 1]) || !parent)
			return;
		cgc.parent_id = BPF_CORE_READ(parent, kn, id);
	}
	id = cgrp->kn->id;
	/* No room: the cgroup's threads are charged as the root's. */
	bpf_map_update_elem(&cgrp_ctxs, &id, &cgc, BPF_ANY);
}

static void cg_set_weight(struct cgroup *cgrp, u32 weight)
{
	u64 id = cgrp->kn->id;
	struct cgrp_ctx *cgc = bpf_map_lookup_elem(&cgrp_ctxs, &id), *parent = NULL;

	if (!cgc || !weight)
		return;
	if (cgc->level > 1)
		parent = bpf_map_lookup_elem(&cgrp_ctxs, &cgc->parent_id);
	bpf_spin_lock(&cg_lock);
	if (parent && cgc->nr_active > 0)
		parent->child_weight += (u64)weight - cgc->weight;
	cgc->weight = weight;
	bpf_spin_unlock(&cg_lock);
	__sync_fetch_and_add(&cg_gen, 1);
}

#endif /* __LLMOS_CGWEIGHT_BPF_H */
