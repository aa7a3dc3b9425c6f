/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Config rules: which static priority (prio policy) and which affinity group
 * (affinity policy) a thread gets. Rules match the thread's name, cgroup, uid
 * or process; the first match wins. A thread is classified when it joins,
 * again after it execs, since exec is what gives it its name, and again
 * after `scx_llmos ctl reload` brought new rules (see rules_gen).
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

/* Applies the config rules to @p. */
static void classify(struct task_struct *p, struct task_ctx *tctx)
{
	u64 gen = rules_gen;
	const struct llmos_rules *in_force = rules_of(gen);
	u32 nr_prio_rules = in_force->nr_prio_rules, nr_groups = in_force->nr_groups;
	struct task_facts facts;
	u32 i;

	tctx->exec_id = p->self_exec_id;
	tctx->rules_gen = gen;
	tctx->rule_prio = -1;
	tctx->group = -1;
	if (!nr_prio_rules && !nr_groups)
		return;
	read_facts(p, &facts);
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
}

/*
 * Applies the rules again to a task that exec'd since they were last
 * applied, or that they have changed for since.
 */
static void reclassify_if_stale(struct task_struct *p, struct task_ctx *tctx)
{
	if (tctx->exec_id != p->self_exec_id || tctx->rules_gen != rules_gen)
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
