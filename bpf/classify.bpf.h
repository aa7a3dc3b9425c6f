/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Config rules: which static priority (prio policy), which affinity group
 * (affinity policy) and which CPU reservation (edf policy) a thread gets.
 * Rules match the thread's name, cgroup, uid or process; the first match
 * wins. A thread is classified when it joins, again when its name changes
 * (an exec, or a rename), and again after `scx_llmos ctl reload` brought
 * new rules (see rules_gen).
 */
#ifndef __LLMOS_CLASSIFY_BPF_H
#define __LLMOS_CLASSIFY_BPF_H

#include "llmos.bpf.h"

/* What a rule can be matched against, read once per classification. */
struct task_facts {
	u64 comm[2];
	u32 uid;
	u32 tgid;
	struct cgroup *cgrp;	/* only read when a cgroup rule asks */
	s32 cgrp_level;
};

static void read_facts(struct task_struct *p, struct task_facts *facts)
{
	struct cgroup *cgrp;

	__builtin_memset(facts, 0, sizeof(*facts));
	bpf_probe_read_kernel(facts->comm, sizeof(facts->comm), p->comm);
	facts->uid = BPF_CORE_READ(p, real_cred, uid.val);
	facts->tgid = p->tgid;
	/* Locals, not facts->cgrp: CO-RE would try to relocate struct task_facts. */
	cgrp = BPF_CORE_READ(p, cgroups, dfl_cgrp);
	facts->cgrp = cgrp;
	facts->cgrp_level = cgrp ? BPF_CORE_READ(cgrp, level) : -1;
}

/* Whether the task's cgroup is @id at depth @level, or below it. */
static bool in_cgroup(const struct task_facts *facts, u64 id, u32 level)
{
	struct cgroup *cgrp = facts->cgrp, *ancestor = NULL;

	if (!cgrp || level > LLMOS_MAX_CGROUP_DEPTH || (s32)level > facts->cgrp_level)
		return false;
	if (bpf_core_read(&ancestor, sizeof(ancestor), &cgrp->ancestors[level]) || !ancestor)
		return false;
	return BPF_CORE_READ(ancestor, kn, id) == id;
}

static bool rule_matches(const struct llmos_rule *rule, const struct task_facts *facts)
{
	const u64 *comm = (const u64 *)rule->comm;

	switch (rule->match) {
	case LLMOS_MATCH_COMM:
		return comm[0] == facts->comm[0] && comm[1] == facts->comm[1];
	case LLMOS_MATCH_CGROUP:
		return in_cgroup(facts, rule->id, rule->cgroup_level);
	case LLMOS_MATCH_UID:
		return rule->id == facts->uid;
	case LLMOS_MATCH_PID:
		return rule->id == facts->tgid;
	}
	return false;
}

/* The rules in force, of generation @gen. */
static const struct llmos_rules *rules_of(u64 gen)
{
	return &rules[gen & 1];
}

/*
 * A reservation is one thread's, so that the sum the loader admitted
 * (config.rs admit()) bounds what the reserved threads take: the first
 * thread its rule matches holds it until it exits, is classified anew
 * (an exec, a reload), or the rules change (a slot claimed under an older
 * generation is free). Each slot holds the holder's generation and tid.
 */
static u64 reservation_holder[LLMOS_MAX_DEADLINE_RULES];

static u64 holder_word(u64 gen, u32 tid)
{
	return gen << 32 | tid;
}

static bool claim_reservation(u32 rule, u64 gen, u32 tid)
{
	u64 *slot = &reservation_holder[rule & (LLMOS_MAX_DEADLINE_RULES - 1)];
	u64 held = *slot;

	if (held && (u32)(held >> 32) == (u32)gen)
		return false;
	return __sync_val_compare_and_swap(slot, held, holder_word(gen, tid)) == held;
}

/* Gives up the reservation @tctx's task (@tid) holds, if any. */
static void release_reservation(struct task_ctx *tctx, u32 tid)
{
	if (tctx->reservation < 0)
		return;
	__sync_val_compare_and_swap(&reservation_holder[tctx->reservation &
							 (LLMOS_MAX_DEADLINE_RULES - 1)],
				    holder_word(tctx->rules_gen, tid), 0);
	tctx->reservation = -1;
}

/* Applies the config rules to @p. */
static void classify(struct task_struct *p, struct task_ctx *tctx)
{
	u64 gen = rules_gen;
	const struct llmos_rules *in_force = rules_of(gen);
	u32 nr_prio_rules = in_force->nr_prio_rules, nr_groups = in_force->nr_groups;
	u32 nr_deadline_rules = in_force->nr_deadline_rules;
	struct task_facts facts;
	u32 i;

	release_reservation(tctx, p->pid);
	tctx->exec_id = p->self_exec_id;
	tctx->rules_gen = gen;
	tctx->rule_prio = -1;
	tctx->group = -1;
	tctx->comm[0] = tctx->comm[1] = 0;
	if (!nr_prio_rules && !nr_groups && !nr_deadline_rules)
		return;
	read_facts(p, &facts);
	tctx->comm[0] = facts.comm[0];
	tctx->comm[1] = facts.comm[1];
	bpf_for(i, 0, nr_prio_rules) {
		if (i >= LLMOS_MAX_PRIO_RULES)
			break;
		if (rule_matches(&in_force->prio_rules[i], &facts)) {
			tctx->rule_prio = in_force->prio_rules[i].value;
			break;
		}
	}
	bpf_for(i, 0, nr_groups) {
		if (i >= LLMOS_MAX_GROUPS)
			break;
		if (rule_matches(&in_force->group_rules[i], &facts)) {
			tctx->group = i;
			break;
		}
	}
	bpf_for(i, 0, nr_deadline_rules) {
		if (i >= LLMOS_MAX_DEADLINE_RULES)
			break;
		if (!rule_matches(&in_force->deadline_rules[i], &facts))
			continue;
		/* Held by another thread: this one is not reserved. */
		if (claim_reservation(i, gen, p->pid)) {
			tctx->reservation = i;
			/* Its first period starts at its next wakeup or turn's end (edf.bpf.h). */
			tctx->period_start = 0;
			tctx->budget_ns = 0;
		}
		break;
	}
}

/*
 * Applies the rules again to a task that exec'd or was renamed since they
 * were last applied, or that they have changed for since. Programs name
 * their threads after creating them (pthread_setname_np()), so a thread
 * has its parent's name when it joins.
 */
static void reclassify_if_stale(struct task_struct *p, struct task_ctx *tctx)
{
	u64 comm[2] = {};

	if (tctx->exec_id != p->self_exec_id || tctx->rules_gen != rules_gen) {
		classify(p, tctx);
		return;
	}
	/* Only a task classified under rules has its name noted (see classify()). */
	if (!tctx->comm[0])
		return;
	bpf_probe_read_kernel(comm, sizeof(comm), p->comm);
	if (comm[0] != tctx->comm[0] || comm[1] != tctx->comm[1])
		classify(p, tctx);
}

/* The task's static priority: from a rule, else 19 - nice, so 0..39 like nice reversed. */
static u32 task_prio(const struct task_struct *p, const struct task_ctx *tctx)
{
	s32 prio = tctx->rule_prio >= 0 ? tctx->rule_prio : LOWEST_STATIC_PRIO - p->static_prio;

	if (prio < 0)
		return 0;
	return prio > LLMOS_MAX_PRIO ? LLMOS_MAX_PRIO : prio;
}

/* The CPUs of @group, in the rules in force. */
static const u64 *group_bitmap(s32 group)
{
	return rules_of(rules_gen)->group_cpus[group & (LLMOS_MAX_GROUPS - 1)];
}

static bool group_has_cpu(s32 group, s32 cpu)
{
	return cpu_in_bitmap(group_bitmap(group), cpu);
}

#endif /* __LLMOS_CLASSIFY_BPF_H */
