// SPDX-License-Identifier: GPL-2.0
//! The config's priority rules, affinity groups and edf reservations, turned
//! into the tables the BPF program matches threads against: at load, and
//! again when `ctl reload` re-reads the config.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::bpf_intf;
use crate::bpf_skel::types::{
    llmos_reservation as BpfReservation, llmos_rule as BpfRule, llmos_rules as BpfRules,
};
use crate::config::{self, Config, Matcher};

const CPU_WORDS: usize = bpf_intf::llmos_consts_LLMOS_CPU_WORDS as usize;

/// The BPF tables for one config.
pub struct Tables {
    prio_rules: Vec<BpfRule>,
    group_rules: Vec<BpfRule>,
    group_cpus: Vec<[u64; CPU_WORDS]>,
    deadline_rules: Vec<BpfRule>,
    reservations: Vec<BpfReservation>,
}

impl Tables {
    /// Converts the rules; `nr_cpu_ids` bounds the CPUs a group may name.
    /// The reservations must fit the CPUs online now (config::admit()).
    pub fn build(config: &Config, nr_cpu_ids: usize) -> Result<Self> {
        config::admit(&config.deadline_rules, online_cpus()?)?;
        let needs_cgroups = config
            .priority_rules
            .iter()
            .map(|rule| &rule.matcher)
            .chain(config.groups.iter().map(|group| &group.matcher))
            .chain(config.deadline_rules.iter().map(|rule| &rule.matcher))
            .any(|matcher| matches!(matcher, Matcher::Cgroup(_)));
        let cgroup_root = if needs_cgroups {
            Some(cgroup2_root()?)
        } else {
            None
        };
        let rule = |matcher: &Matcher, value: u32, line: usize| {
            bpf_rule(matcher, value, cgroup_root.as_deref())
                .with_context(|| format!("config line {line}"))
        };
        let prio_rules = config
            .priority_rules
            .iter()
            .map(|r| rule(&r.matcher, r.priority, r.line))
            .collect::<Result<_>>()?;
        let group_rules = config
            .groups
            .iter()
            .map(|g| rule(&g.matcher, 0, g.line))
            .collect::<Result<_>>()?;
        let group_cpus = config
            .groups
            .iter()
            .map(|g| {
                cpu_bitmap(&g.cpus, nr_cpu_ids).with_context(|| format!("config line {}", g.line))
            })
            .collect::<Result<_>>()?;
        let deadline_rules = config
            .deadline_rules
            .iter()
            .map(|r| rule(&r.matcher, 0, r.line))
            .collect::<Result<_>>()?;
        let reservations = config
            .deadline_rules
            .iter()
            .map(|r| BpfReservation {
                runtime_ns: u64::from(r.runtime_us) * 1000,
                period_ns: u64::from(r.period_us) * 1000,
                deadline_ns: u64::from(r.deadline_us) * 1000,
            })
            .collect();
        Ok(Self {
            prio_rules,
            group_rules,
            group_cpus,
            deadline_rules,
            reservations,
        })
    }

    /// The tables as the BPF program reads them.
    pub fn to_bpf(&self) -> BpfRules {
        // SAFETY: plain old data, for which all zeroes is a valid value.
        let mut bpf: BpfRules = unsafe { std::mem::zeroed() };
        bpf.nr_prio_rules = self.prio_rules.len() as u32;
        bpf.prio_rules[..self.prio_rules.len()].copy_from_slice(&self.prio_rules);
        bpf.nr_groups = self.group_rules.len() as u32;
        bpf.group_rules[..self.group_rules.len()].copy_from_slice(&self.group_rules);
        bpf.group_cpus[..self.group_cpus.len()].copy_from_slice(&self.group_cpus);
        bpf.nr_deadline_rules = self.deadline_rules.len() as u32;
        bpf.deadline_rules[..self.deadline_rules.len()].copy_from_slice(&self.deadline_rules);
        bpf.reservations[..self.reservations.len()].copy_from_slice(&self.reservations);
        bpf
    }
}

/// How many CPUs are online, which reservations may use.
fn online_cpus() -> Result<usize> {
    let path = "/sys/devices/system/cpu/online";
    let list = std::fs::read_to_string(path).with_context(|| format!("failed to read {path}"))?;
    Ok(config::parse_cpulist(list.trim())
        .with_context(|| format!("{path}: {list:?}"))?
        .len())
}

fn bpf_rule(matcher: &Matcher, value: u32, cgroup_root: Option<&Path>) -> Result<BpfRule> {
    let mut rule = BpfRule {
        r#match: 0,
        value,
        id: 0,
        cgroup_level: 0,
        pad: 0,
        comm: [0; 16],
    };
    match matcher {
        Matcher::Comm(comm) => {
            rule.r#match = bpf_intf::llmos_match_LLMOS_MATCH_COMM;
            for (dst, src) in rule.comm.iter_mut().zip(comm.bytes()) {
                *dst = src as _;
            }
        }
        Matcher::Cgroup(path) => {
            let root = cgroup_root.expect("cgroup root resolved for cgroup rules");
            let (id, level) = cgroup_id(root, path)?;
            rule.r#match = bpf_intf::llmos_match_LLMOS_MATCH_CGROUP;
            rule.id = id;
            rule.cgroup_level = level;
        }
        Matcher::Uid(uid) => {
            rule.r#match = bpf_intf::llmos_match_LLMOS_MATCH_UID;
            rule.id = (*uid).into();
        }
        Matcher::Pid(pid) => {
            rule.r#match = bpf_intf::llmos_match_LLMOS_MATCH_PID;
            rule.id = (*pid).into();
        }
    }
    Ok(rule)
}

/// Where the cgroup v2 hierarchy is mounted, from /proc/self/mounts.
fn cgroup2_root() -> Result<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")?;
    mounts
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        .find(|f| f.get(2) == Some(&"cgroup2"))
        .and_then(|f| f.get(1).map(PathBuf::from))
        .context("cgroup rules need the cgroup v2 hierarchy, and none is mounted")
}

/// A cgroup's id (the inode of its directory, which the kernel also reports
/// as its kernfs id) and its depth below the root.
fn cgroup_id(root: &Path, path: &str) -> Result<(u64, u32)> {
    let relative = path.trim_start_matches('/');
    let dir = root.join(relative);
    let meta = std::fs::metadata(&dir)
        .with_context(|| format!("cgroup {path} does not exist ({})", dir.display()))?;
    let level = relative.split('/').filter(|part| !part.is_empty()).count() as u32;
    if level > bpf_intf::llmos_consts_LLMOS_MAX_CGROUP_DEPTH {
        bail!(
            "cgroup {path} is nested deeper than {} levels",
            bpf_intf::llmos_consts_LLMOS_MAX_CGROUP_DEPTH
        );
    }
    Ok((meta.ino(), level))
}

/// A group's CPU list as a bitmap; every CPU must exist.
fn cpu_bitmap(cpus: &[u32], nr_cpu_ids: usize) -> Result<[u64; CPU_WORDS]> {
    let mut words = [0u64; CPU_WORDS];
    for &cpu in cpus {
        if cpu as usize >= nr_cpu_ids {
            bail!(
                "CPU {cpu} does not exist (this machine has CPUs 0-{})",
                nr_cpu_ids - 1
            );
        }
        words[cpu as usize / 64] |= 1 << (cpu % 64);
    }
    Ok(words)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_bitmap_sets_exactly_the_listed_cpus() {
        let words = cpu_bitmap(&[0, 2, 63, 64, 130], 200).unwrap();
        assert_eq!(words[0], (1 << 0) | (1 << 2) | (1 << 63));
        assert_eq!(words[1], 1);
        assert_eq!(words[2], 1 << 2);
        assert!(words[3..].iter().all(|&w| w == 0));
        assert_eq!(
            cpu_bitmap(&[1, 4], 2).unwrap_err().to_string(),
            "CPU 4 does not exist (this machine has CPUs 0-1)"
        );
    }

    #[test]
    fn rules_carry_their_matcher() {
        let comm = bpf_rule(&Matcher::Comm("stress-ng".into()), 30, None).unwrap();
        assert_eq!(comm.r#match, bpf_intf::llmos_match_LLMOS_MATCH_COMM);
        assert_eq!(comm.value, 30);
        let name: Vec<u8> = comm.comm.iter().map(|&c| c as u8).collect();
        assert_eq!(&name[..10], b"stress-ng\0");
        assert!(name[10..].iter().all(|&c| c == 0));
        let uid = bpf_rule(&Matcher::Uid(1000), 5, None).unwrap();
        assert_eq!(
            (uid.r#match, uid.id),
            (bpf_intf::llmos_match_LLMOS_MATCH_UID, 1000)
        );
        let pid = bpf_rule(&Matcher::Pid(42), 5, None).unwrap();
        assert_eq!(
            (pid.r#match, pid.id),
            (bpf_intf::llmos_match_LLMOS_MATCH_PID, 42)
        );
    }

    #[test]
    fn cgroup_ids_are_directory_inodes_with_depth() {
        let root = std::env::temp_dir().join(format!("llmos-cg-{}", std::process::id()));
        std::fs::create_dir_all(root.join("a/b")).unwrap();
        let ino = std::fs::metadata(root.join("a/b")).unwrap().ino();
        assert_eq!(cgroup_id(&root, "/a/b").unwrap(), (ino, 2));
        assert!(cgroup_id(&root, "/nope")
            .unwrap_err()
            .to_string()
            .starts_with("cgroup /nope does not exist"));
        std::fs::remove_dir_all(&root).unwrap();
    }
}
