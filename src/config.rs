// SPDX-License-Identifier: GPL-2.0
//! The config file (`--config FILE`): the policy, tunables, `[[priority]]`
//! rules, affinity `[[group]]`s and edf's `[[deadline]]` reservations.
//!
//! Everything is validated here, before the scheduler attaches, so that a
//! typo fails with its line instead of quietly running with a default. The
//! tunables' keys and ranges are those of `settings::TUNABLES`.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeInclusive;
use std::path::Path;

use anyhow::{anyhow, bail, ensure, Result};
use serde::Deserialize;
use toml::Spanned;

use crate::settings::{Given, Policy, Tunable, Value, LEVELS, TUNABLES};

/// Sizes of the BPF side's rule and group tables (bpf/intf.h).
pub const MAX_PRIORITY_RULES: usize = 32;
pub const MAX_GROUPS: usize = 16;
pub const MAX_DEADLINE_RULES: usize = 16;
/// Top of the priority scale `19 - nice`: nice 19 -> 0, nice -20 -> 39.
pub const MAX_PRIORITY: u32 = 39;

/// CPU bitmaps in BPF hold this many ids (LLMOS_MAX_CPUS in bpf/intf.h).
const MAX_CPUS: u32 = 1024;
/// The kernel keeps 15 bytes of a task's comm (TASK_COMM_LEN includes the NUL).
const MAX_COMM_LEN: usize = 15;

const PRIORITY: RangeInclusive<u32> = 0..=MAX_PRIORITY;
const PID: RangeInclusive<u32> = 1..=u32::MAX;
/// A reservation's period: from 1 ms (a tick is 1-4 ms, and the budget is
/// enforced between ticks by a timer) to 1 s.
const PERIOD_US: RangeInclusive<u32> = 1_000..=1_000_000;
/// A reservation's runtime per period, at least 50 us (below that a context
/// switch is a good part of it); at most its deadline, checked per rule.
const RUNTIME_US: RangeInclusive<u32> = 50..=1_000_000;
/// The share of the CPUs `[[deadline]]` rules may reserve in all: the rest
/// is for every other thread, which must never starve.
const ADMIT_PERCENT: u64 = 90;

/// The keys of the file besides the tunables.
const POLICY: &str = "policy";
const TABLES: [&str; 3] = ["priority", "group", "deadline"];

/// Which threads a rule or group applies to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Matcher {
    Comm(String),
    Cgroup(String),
    Uid(u32),
    Pid(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PriorityRule {
    pub matcher: Matcher,
    pub priority: u32,
    /// 1-based line of the rule's `[[priority]]` header (of the inline table
    /// if written as one), for messages about the rule at run time.
    pub line: usize,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Group {
    pub matcher: Matcher,
    /// Sorted and deduplicated.
    pub cpus: Vec<u32>,
    /// 1-based line of the group's `[[group]]` header, as in `PriorityRule`.
    pub line: usize,
}

/// A CPU reservation under edf: the one thread the matcher finds first runs
/// up to `runtime_us` in every `period_us`, earliest deadline first, done
/// within `deadline_us` of its period's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeadlineRule {
    pub matcher: Matcher,
    pub runtime_us: u32,
    pub period_us: u32,
    /// At most `period_us`; `period_us` when not given.
    pub deadline_us: u32,
    /// 1-based line of the rule's `[[deadline]]` header, as in `PriorityRule`.
    pub line: usize,
}

/// A parsed config file; keys it does not set are `None`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Config {
    pub policy: Option<Policy>,
    pub tunables: Given,
    pub priority_rules: Vec<PriorityRule>,
    pub groups: Vec<Group>,
    pub deadline_rules: Vec<DeadlineRule>,
}

/// Reads and parses a config file; errors are "<path>: line N: <reason>".
pub fn load(path: &Path) -> Result<Config> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    parse(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
}

/// Parses config text; errors are "line N: <reason>", on one line.
pub fn parse(text: &str) -> Result<Config> {
    parse_text(text).map_err(one_line)
}

fn parse_text(text: &str) -> Result<Config> {
    let line = |offset: usize| {
        let before = &text.as_bytes()[..offset.min(text.len())];
        before.iter().filter(|&&b| b == b'\n').count() + 1
    };
    let toml_error = |e: toml::de::Error| match e.span() {
        Some(span) => anyhow!("line {}: {}", line(span.start), e.message().trim_end()),
        None => anyhow!("{}", e.message().trim_end()),
    };
    // The keys first, in the order they are written, so that the first
    // mistake is the one reported.
    let keys: BTreeMap<Spanned<String>, Spanned<toml::Value>> =
        toml::from_str(text).map_err(toml_error)?;
    let mut keys: Vec<_> = keys.into_iter().collect();
    keys.sort_by_key(|(key, _)| key.span().start);

    let mut policy = None;
    let mut tunables = Given::new();
    let mut lines = BTreeMap::new();
    for (key, value) in keys {
        let at = line(value.span().start);
        let in_line = |e: anyhow::Error| anyhow!("line {at}: {e}");
        match key.get_ref().as_str() {
            POLICY => {
                let name = value
                    .get_ref()
                    .as_str()
                    .ok_or_else(|| anyhow!("policy must be a string, got {}", value.get_ref()))
                    .map_err(in_line)?;
                policy = Some(Policy::parse(name).map_err(in_line)?);
            }
            name if TABLES.contains(&name) => {}
            name => {
                let Some((_, tunable)) = Tunable::find(name) else {
                    let known: Vec<String> = std::iter::once(POLICY)
                        .chain(TUNABLES.iter().map(|t| t.name))
                        .chain(TABLES)
                        .map(|key| format!("`{key}`"))
                        .collect();
                    bail!(
                        "line {}: unknown field `{name}`, expected one of {}",
                        line(key.span().start),
                        known.join(", ")
                    );
                };
                tunables.insert(
                    tunable.name,
                    tunable.read_toml(value.get_ref()).map_err(in_line)?,
                );
                lines.insert(tunable.name, at);
            }
        }
    }
    // A list given with the number of levels must match it; alone, it is
    // checked against the number of levels in force.
    if let Some(Value::One(levels)) = tunables.get(LEVELS) {
        for (name, value) in &tunables {
            if let Value::PerLevel(values) = value {
                ensure!(
                    values.len() as u64 == *levels,
                    "line {}: {name} has {} entries but {LEVELS} = {levels}; they must match",
                    lines[name],
                    values.len()
                );
            }
        }
    }

    let raw: RawTables = toml::from_str(text).map_err(toml_error)?;
    let priority_rules = entries(
        raw.priority,
        "[[priority]]",
        MAX_PRIORITY_RULES,
        &line,
        |r, line| {
            let matcher = matcher(r.comm, r.cgroup, r.uid, r.pid)?;
            Ok(PriorityRule {
                matcher,
                priority: r.priority,
                line,
            })
        },
    )?;
    let groups = entries(raw.group, "[[group]]", MAX_GROUPS, &line, |g, line| {
        let matcher = matcher(g.comm, g.cgroup, g.uid, g.pid)?;
        Ok(Group {
            matcher,
            cpus: g.cpus,
            line,
        })
    })?;

    let deadline_rules = entries(
        raw.deadline,
        "[[deadline]]",
        MAX_DEADLINE_RULES,
        &line,
        |d, line| {
            let matcher = matcher(d.comm, d.cgroup, d.uid, d.pid)?;
            let deadline_us = d.deadline_us.unwrap_or(d.period_us);
            ensure!(
                deadline_us <= d.period_us,
                "deadline_us = {deadline_us} is longer than period_us = {}",
                d.period_us
            );
            ensure!(
                d.runtime_us <= deadline_us,
                "runtime_us = {} is longer than its deadline ({deadline_us} us)",
                d.runtime_us
            );
            Ok(DeadlineRule {
                matcher,
                runtime_us: d.runtime_us,
                period_us: d.period_us,
                deadline_us,
                line,
            })
        },
    )?;

    Ok(Config {
        policy,
        tunables,
        priority_rules,
        groups,
        deadline_rules,
    })
}

/// Admission control for edf: the `[[deadline]]` rules may reserve in all
/// (the sum of runtime / period) at most ADMIT_PERCENT of @cpus CPUs, so
/// that a config cannot promise more than the machine has, nor leave the
/// other threads nothing. The error names the rules' lines.
pub fn admit(rules: &[DeadlineRule], cpus: usize) -> Result<()> {
    // Parts per million of a CPU, rounded up: a config at the limit to the
    // microsecond is refused rather than admitted by a rounding.
    let reserved: u64 = rules
        .iter()
        .map(|r| (u64::from(r.runtime_us) * 1_000_000).div_ceil(u64::from(r.period_us)))
        .sum();
    let limit = cpus as u64 * ADMIT_PERCENT * 10_000;
    if reserved <= limit {
        return Ok(());
    }
    let lines: Vec<String> = rules.iter().map(|r| r.line.to_string()).collect();
    bail!(
        "the [[deadline]] rules at lines {} reserve {:.2} CPUs (runtime_us / period_us summed), \
         more than {ADMIT_PERCENT}% of the {cpus} CPUs ({:.2})",
        lines.join(", "),
        reserved as f64 / 1e6,
        limit as f64 / 1e6
    )
}

/// Parses a Linux cpulist such as "0-3,8,10-11" into sorted, deduplicated
/// ids; errors are one line.
pub fn parse_cpulist(s: &str) -> Result<Vec<u32>> {
    let id = |piece: &str, v: &str| -> Result<u32> {
        let cpu: u32 = v
            .parse()
            .ok()
            .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| anyhow!("'{piece}' is not a cpu id or range"))?;
        ensure!(
            cpu < MAX_CPUS,
            "cpu {cpu} is out of range (max {})",
            MAX_CPUS - 1
        );
        Ok(cpu)
    };
    let parse = || -> Result<Vec<u32>> {
        ensure!(!s.trim().is_empty(), "it is empty");
        let mut cpus = Vec::new();
        for piece in s.trim().split(',').map(str::trim) {
            match piece.split_once('-') {
                Some((lo, hi)) => {
                    let (lo, hi) = (id(piece, lo)?, id(piece, hi)?);
                    ensure!(lo <= hi, "range '{piece}' is descending");
                    cpus.extend(lo..=hi);
                }
                None => cpus.push(id(piece, piece)?),
            }
        }
        cpus.sort_unstable();
        cpus.dedup();
        Ok(cpus)
    };
    parse().map_err(|e| one_line(anyhow!("bad cpu list '{s}': {e}")))
}

/// @err with its control characters escaped (`\n`, `\u{1b}`): an error that
/// quotes what a user or a client sent stays one printable line.
pub fn one_line(err: anyhow::Error) -> anyhow::Error {
    let text: String = format!("{err:#}")
        .chars()
        .map(|c| match c.is_control() {
            true => c.escape_default().to_string(),
            false => c.to_string(),
        })
        .collect();
    anyhow!(text)
}

fn check<T: PartialOrd + Debug>(key: &str, value: T, range: RangeInclusive<T>) -> Result<T> {
    ensure!(
        range.contains(&value),
        "{key} = {value:?} is not in {range:?}"
    );
    Ok(value)
}

fn matcher(
    comm: Option<String>,
    cgroup: Option<String>,
    uid: Option<u32>,
    pid: Option<u32>,
) -> Result<Matcher> {
    let mut found: Vec<(&str, Matcher)> = [
        ("comm", comm.map(Matcher::Comm)),
        ("cgroup", cgroup.map(Matcher::Cgroup)),
        ("uid", uid.map(Matcher::Uid)),
        ("pid", pid.map(Matcher::Pid)),
    ]
    .into_iter()
    .filter_map(|(key, m)| Some((key, m?)))
    .collect();
    match found.len() {
        1 => Ok(found.remove(0).1),
        0 => bail!("needs a matcher: one of comm, cgroup, uid, pid"),
        _ => {
            let keys: Vec<_> = found.iter().map(|(key, _)| *key).collect();
            bail!(
                "has {} matchers ({}); it needs exactly one",
                keys.len(),
                keys.join(", ")
            )
        }
    }
}

/// Builds the `[[priority]]` or `[[group]]` tables (`what`), prefixing each
/// error with the line and name of the table it is about.
fn entries<R, T>(
    raw: Vec<Spanned<R>>,
    what: &str,
    max: usize,
    line: &impl Fn(usize) -> usize,
    build: impl Fn(R, usize) -> Result<T>,
) -> Result<Vec<T>> {
    raw.into_iter()
        .enumerate()
        .map(|(i, entry)| {
            let at = line(entry.span().start);
            ensure!(i < max, "line {at}: too many {what} tables (max {max})");
            build(entry.into_inner(), at).map_err(|e| anyhow!("line {at}: {what} {e}"))
        })
        .collect()
}

/// The `[[priority]]`, `[[group]]` and `[[deadline]]` tables; `parse_text`
/// has checked the other keys.
#[derive(Deserialize)]
struct RawTables {
    #[serde(default)]
    priority: Vec<Spanned<RawRule>>,
    #[serde(default)]
    group: Vec<Spanned<RawGroup>>,
    #[serde(default)]
    deadline: Vec<Spanned<RawDeadline>>,
}

// RawRule, RawGroup and RawDeadline repeat the four matcher fields: serde's `flatten`
// would share them, but it cannot be combined with `deny_unknown_fields`,
// which is what reports a misspelt key with its line. `matcher()` is the one
// place that interprets them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default, deserialize_with = "de::comm")]
    comm: Option<String>,
    #[serde(default, deserialize_with = "de::cgroup")]
    cgroup: Option<String>,
    uid: Option<u32>,
    #[serde(default, deserialize_with = "de::pid")]
    pid: Option<u32>,
    #[serde(deserialize_with = "de::priority")]
    priority: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGroup {
    #[serde(default, deserialize_with = "de::comm")]
    comm: Option<String>,
    #[serde(default, deserialize_with = "de::cgroup")]
    cgroup: Option<String>,
    uid: Option<u32>,
    #[serde(default, deserialize_with = "de::pid")]
    pid: Option<u32>,
    #[serde(deserialize_with = "de::cpus")]
    cpus: Vec<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeadline {
    #[serde(default, deserialize_with = "de::comm")]
    comm: Option<String>,
    #[serde(default, deserialize_with = "de::cgroup")]
    cgroup: Option<String>,
    uid: Option<u32>,
    #[serde(default, deserialize_with = "de::pid")]
    pid: Option<u32>,
    #[serde(deserialize_with = "de::runtime_us")]
    runtime_us: u32,
    #[serde(deserialize_with = "de::period_us")]
    period_us: u32,
    #[serde(default, deserialize_with = "de::deadline_us")]
    deadline_us: Option<u32>,
}

/// `deserialize_with` validators. Failing inside serde, rather than after it,
/// lets the toml crate point the error at the offending value's line. Each
/// returns any `R: From<T>` so that one function serves `T` and `Option<T>`.
mod de {
    use super::*;
    use serde::de::{Deserializer, Error};

    macro_rules! ranged {
        ($($key:ident: $t:ty = $range:expr;)*) => {$(
            pub fn $key<'de, D: Deserializer<'de>, R: From<$t>>(d: D) -> Result<R, D::Error> {
                check(stringify!($key), <$t>::deserialize(d)?, $range)
                    .map(R::from)
                    .map_err(D::Error::custom)
            }
        )*};
    }

    ranged! {
        priority: u32 = PRIORITY;
        pid: u32 = PID;
        runtime_us: u32 = RUNTIME_US;
        period_us: u32 = PERIOD_US;
        deadline_us: u32 = RUNTIME_US;
    }

    /// Applies `f` to a string value, turning its error into a serde one.
    fn string<'de, D: Deserializer<'de>, T, R: From<T>>(
        d: D,
        f: impl FnOnce(String) -> anyhow::Result<T>,
    ) -> Result<R, D::Error> {
        f(String::deserialize(d)?)
            .map(R::from)
            .map_err(D::Error::custom)
    }

    pub fn comm<'de, D: Deserializer<'de>, R: From<String>>(d: D) -> Result<R, D::Error> {
        string(d, |s| {
            ensure!(
                (1..=MAX_COMM_LEN).contains(&s.len()),
                "comm '{s}' is {} bytes; expected 1..={MAX_COMM_LEN} (the kernel keeps {MAX_COMM_LEN})",
                s.len()
            );
            Ok(s)
        })
    }

    pub fn cgroup<'de, D: Deserializer<'de>, R: From<String>>(d: D) -> Result<R, D::Error> {
        string(d, |s| {
            ensure!(
                s.starts_with('/'),
                "cgroup '{s}' is not an absolute path (it must start with '/')"
            );
            Ok(s)
        })
    }

    pub fn cpus<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
        string(d, |s| parse_cpulist(&s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::ValueEnum;

    /// The error message of parsing `text`, which must fail.
    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn full_file() {
        let text = r#"
# comment
policy = "prio"
slice_us = 20000
mlfq_levels = 4
mlfq_slices_us = [1000, 2000, 4000, 8000]
boost_ms = 1000
prio_aging_ms = 10

[[priority]]
comm = "Xorg"
priority = 30

[[priority]]
uid = 1000
priority = 0

[[priority]]
pid = 4242
priority = 39

[[group]]
cgroup = "/system.slice/build.service"
cpus = "4,0-1,1"

[[group]]
comm = "kworker/0:1"
cpus = "1023"
"#;
        let config = parse(text).unwrap();
        assert_eq!(
            config,
            Config {
                policy: Some(Policy::Prio),
                tunables: Given::from([
                    ("slice_us", Value::One(20_000)),
                    ("mlfq_levels", Value::One(4)),
                    (
                        "mlfq_slices_us",
                        Value::PerLevel(vec![1000, 2000, 4000, 8000])
                    ),
                    ("boost_ms", Value::One(1000)),
                    ("prio_aging_ms", Value::One(10)),
                ]),
                priority_rules: vec![
                    PriorityRule {
                        matcher: Matcher::Comm("Xorg".into()),
                        priority: 30,
                        line: 10
                    },
                    PriorityRule {
                        matcher: Matcher::Uid(1000),
                        priority: 0,
                        line: 14
                    },
                    PriorityRule {
                        matcher: Matcher::Pid(4242),
                        priority: 39,
                        line: 18
                    },
                ],
                groups: vec![
                    Group {
                        matcher: Matcher::Cgroup("/system.slice/build.service".into()),
                        cpus: vec![0, 1, 4],
                        line: 22,
                    },
                    Group {
                        matcher: Matcher::Comm("kworker/0:1".into()),
                        cpus: vec![1023],
                        line: 26
                    },
                ],
                deadline_rules: vec![],
            }
        );
    }

    #[test]
    fn empty_file() {
        assert_eq!(parse("").unwrap(), Config::default());
        assert_eq!(parse("# nothing\n").unwrap(), Config::default());
    }

    #[test]
    fn inline_tables_and_every_policy() {
        let config = parse(
            "priority = [{ comm = \"a\", priority = 1 },\n  { cgroup = \"/\", priority = 2 }]",
        )
        .unwrap();
        assert_eq!(
            config.priority_rules,
            vec![
                PriorityRule {
                    matcher: Matcher::Comm("a".into()),
                    priority: 1,
                    line: 1
                },
                PriorityRule {
                    matcher: Matcher::Cgroup("/".into()),
                    priority: 2,
                    line: 2
                },
            ]
        );
        for &p in Policy::value_variants() {
            assert_eq!(
                parse(&format!("policy = \"{}\"", p.name())).unwrap().policy,
                Some(p)
            );
        }
    }

    fn deadline(matcher: Matcher, runtime_us: u32, period_us: u32, line: usize) -> DeadlineRule {
        DeadlineRule {
            matcher,
            runtime_us,
            period_us,
            deadline_us: period_us,
            line,
        }
    }

    #[test]
    fn deadline_rules() {
        let config = parse(
            "[[deadline]]\ncomm = \"audio\"\nruntime_us = 1000\nperiod_us = 5000\n\n\
             [[deadline]]\npid = 7\nruntime_us = 50\nperiod_us = 1000000\ndeadline_us = 50\n",
        )
        .unwrap();
        assert_eq!(
            config.deadline_rules,
            vec![
                deadline(Matcher::Comm("audio".into()), 1000, 5000, 1),
                DeadlineRule {
                    deadline_us: 50,
                    ..deadline(Matcher::Pid(7), 50, 1_000_000, 6)
                },
            ]
        );
    }

    #[test]
    fn bad_deadline_rules() {
        let rule = |fields: &str| err(&format!("[[deadline]]\ncomm = \"a\"\n{fields}"));
        assert_eq!(
            rule("runtime_us = 1000\nperiod_us = 999\n"),
            "line 4: period_us = 999 is not in 1000..=1000000"
        );
        assert_eq!(
            rule("runtime_us = 49\nperiod_us = 1000\n"),
            "line 3: runtime_us = 49 is not in 50..=1000000"
        );
        assert_eq!(
            rule("runtime_us = 100\nperiod_us = 1000\ndeadline_us = 2000\n"),
            "line 1: [[deadline]] deadline_us = 2000 is longer than period_us = 1000"
        );
        assert_eq!(
            rule("runtime_us = 600\nperiod_us = 1000\ndeadline_us = 500\n"),
            "line 1: [[deadline]] runtime_us = 600 is longer than its deadline (500 us)"
        );
        assert_eq!(
            rule("period_us = 1000\n"),
            "line 1: missing field `runtime_us`"
        );
        assert_eq!(
            err("[[deadline]]\nruntime_us = 100\nperiod_us = 1000\n"),
            "line 1: [[deadline]] needs a matcher: one of comm, cgroup, uid, pid"
        );
    }

    #[test]
    fn admission() {
        let rules = [
            deadline(Matcher::Comm("a".into()), 1000, 5000, 2),
            deadline(Matcher::Comm("b".into()), 2000, 10_000, 7),
            deadline(Matcher::Comm("c".into()), 4000, 20_000, 12),
        ];
        // 0.6 of a CPU: within 90% of one.
        admit(&rules, 1).unwrap();
        admit(&[], 1).unwrap();
        let greedy = [
            deadline(Matcher::Comm("a".into()), 900, 1000, 2),
            deadline(Matcher::Comm("b".into()), 50, 5000, 7),
        ];
        assert_eq!(
            admit(&greedy, 1).unwrap_err().to_string(),
            "the [[deadline]] rules at lines 2, 7 reserve 0.91 CPUs (runtime_us / period_us \
             summed), more than 90% of the 1 CPUs (0.90)"
        );
        admit(&greedy, 2).unwrap();
        // 90% exactly is admitted; a microsecond per second more is not.
        admit(&greedy[..1], 1).unwrap();
        admit(
            &[
                greedy[0].clone(),
                deadline(Matcher::Pid(1), 1, 1_000_000, 9),
            ],
            1,
        )
        .unwrap_err();
    }

    #[test]
    fn unknown_key() {
        assert_eq!(
            err("slice_us = 100\nslice = 5\n"),
            "line 2: unknown field `slice`, expected one of `policy`, `slice_us`, `mlfq_levels`, \
             `mlfq_slices_us`, `boost_ms`, `prio_aging_ms`, `priority_inheritance`, `priority`, \
             `group`, `deadline`"
        );
        assert_eq!(
            err("[[priority]]\ncomm = \"a\"\npriority = 1\ncpus = \"0\"\n"),
            "line 4: unknown field `cpus`, expected one of `comm`, `cgroup`, `uid`, `pid`, `priority`"
        );
    }

    #[test]
    fn wrong_type() {
        assert_eq!(
            err("\nslice_us = \"fast\"\n"),
            "line 2: slice_us must be an integer, got \"fast\""
        );
        assert_eq!(
            err("boost_ms = -5\n"),
            "line 1: boost_ms = -5 is not in 10..=2000"
        );
        assert_eq!(
            err("mlfq_slices_us = 1000\n"),
            "line 1: mlfq_slices_us must be an array of integers, got 1000"
        );
        assert_eq!(
            err("policy = 1\n"),
            "line 1: policy must be a string, got 1"
        );
    }

    #[test]
    fn syntax_error() {
        assert!(err("slice_us = 100\nslice_us =\n").starts_with("line 2: "));
    }

    #[test]
    fn out_of_range() {
        assert_eq!(
            err("\n\nslice_us = 5\n"),
            "line 3: slice_us = 5 is not in 100..=100000"
        );
        assert_eq!(
            err("mlfq_levels = 9"),
            "line 1: mlfq_levels = 9 is not in 2..=8"
        );
        assert_eq!(
            err("boost_ms = 2001"),
            "line 1: boost_ms = 2001 is not in 10..=2000"
        );
        assert_eq!(
            err("prio_aging_ms = 0"),
            "line 1: prio_aging_ms = 0 is not in 1..=50"
        );
        assert_eq!(
            err("mlfq_slices_us = [1000, 99]"),
            "line 1: mlfq_slices_us[1] = 99 is not in 100..=100000"
        );
        assert_eq!(
            err("mlfq_slices_us = [1000]"),
            "line 1: mlfq_slices_us needs 2..=8 entries, got 1"
        );
    }

    #[test]
    fn priority_40() {
        assert_eq!(
            err("[[priority]]\ncomm = \"a\"\npriority = 40\n"),
            "line 3: priority = 40 is not in 0..=39"
        );
    }

    #[test]
    fn missing_priority() {
        assert_eq!(
            err("\n[[priority]]\ncomm = \"a\"\n"),
            "line 2: missing field `priority`"
        );
    }

    #[test]
    fn rule_without_matcher() {
        assert_eq!(
            err("[[priority]]\ncomm = \"a\"\npriority = 1\n\n[[priority]]\npriority = 2\n"),
            "line 5: [[priority]] needs a matcher: one of comm, cgroup, uid, pid"
        );
    }

    #[test]
    fn rule_with_two_matchers() {
        assert_eq!(
            err("[[priority]]\ncomm = \"a\"\nuid = 0\npriority = 1\n"),
            "line 1: [[priority]] has 2 matchers (comm, uid); it needs exactly one"
        );
        assert_eq!(
            err("\n[[group]]\npid = 1\ncgroup = \"/a\"\ncpus = \"0\"\n"),
            "line 2: [[group]] has 2 matchers (cgroup, pid); it needs exactly one"
        );
    }

    #[test]
    fn bad_matchers() {
        assert_eq!(
            err("[[priority]]\ncomm = \"0123456789abcdef\"\npriority = 1\n"),
            "line 2: comm '0123456789abcdef' is 16 bytes; expected 1..=15 (the kernel keeps 15)"
        );
        assert_eq!(
            err("[[priority]]\ncomm = \"\"\npriority = 1\n"),
            "line 2: comm '' is 0 bytes; expected 1..=15 (the kernel keeps 15)"
        );
        assert_eq!(
            err("[[group]]\ncgroup = \"system.slice\"\ncpus = \"0\"\n"),
            "line 2: cgroup 'system.slice' is not an absolute path (it must start with '/')"
        );
        assert_eq!(
            err("[[priority]]\npid = 0\npriority = 1\n"),
            "line 2: pid = 0 is not in 1..=4294967295"
        );
    }

    #[test]
    fn bad_cpus() {
        let group = |cpus: &str| err(&format!("[[group]]\nuid = 0\ncpus = \"{cpus}\"\n"));
        assert_eq!(
            group("3-1"),
            "line 3: bad cpu list '3-1': range '3-1' is descending"
        );
        assert_eq!(
            group("x"),
            "line 3: bad cpu list 'x': 'x' is not a cpu id or range"
        );
        assert_eq!(group(""), "line 3: bad cpu list '': it is empty");
        assert_eq!(
            group("0,1024"),
            "line 3: bad cpu list '0,1024': cpu 1024 is out of range (max 1023)"
        );
        assert_eq!(err("[[group]]\nuid = 0\n"), "line 1: missing field `cpus`");
    }

    #[test]
    fn slices_levels_mismatch() {
        assert_eq!(
            err("mlfq_levels = 4\n\nmlfq_slices_us = [\n  1000,\n  2000,\n  4000,\n]\n"),
            "line 3: mlfq_slices_us has 3 entries but mlfq_levels = 4; they must match"
        );
        // Alone, the list is checked only for its own length.
        assert_eq!(
            parse("mlfq_slices_us = [100, 200, 300]").unwrap().tunables,
            Given::from([("mlfq_slices_us", Value::PerLevel(vec![100, 200, 300]))])
        );
    }

    #[test]
    fn unknown_policy() {
        assert_eq!(
            err("\npolicy = \"cfs\""),
            "line 2: unknown policy 'cfs' (expected one of: mlfq, vtime, prio, affinity, fifo, rr, edf, rms)"
        );
        assert_eq!(Policy::parse("rr").unwrap(), Policy::Rr);
    }

    #[test]
    fn too_many_rules() {
        let rules = |n| "[[priority]]\nuid = 1\npriority = 1\n".repeat(n);
        assert_eq!(
            parse(&rules(MAX_PRIORITY_RULES))
                .unwrap()
                .priority_rules
                .len(),
            32
        );
        assert_eq!(
            err(&rules(33)),
            "line 97: too many [[priority]] tables (max 32)"
        );
        let groups = |n| "[[group]]\nuid = 1\ncpus = \"0\"\n".repeat(n);
        assert_eq!(parse(&groups(MAX_GROUPS)).unwrap().groups.len(), 16);
        assert_eq!(
            err(&groups(17)),
            "line 49: too many [[group]] tables (max 16)"
        );
    }

    #[test]
    fn load_names_the_path() {
        let path =
            std::env::temp_dir().join(format!("scx_llmos-config-test-{}.toml", std::process::id()));
        std::fs::write(&path, "slice_us = 100\nboost_ms = 1\n").unwrap();
        let e = load(&path).unwrap_err().to_string();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(
            e,
            format!(
                "{}: line 2: boost_ms = 1 is not in 10..=2000",
                path.display()
            )
        );
        assert!(load(Path::new("/nonexistent/x.toml"))
            .unwrap_err()
            .to_string()
            .starts_with("/nonexistent/x.toml: "));
    }

    #[test]
    fn limits_match_bpf() {
        use crate::bpf_intf::*;
        assert_eq!(
            MAX_PRIORITY_RULES,
            llmos_consts_LLMOS_MAX_PRIO_RULES as usize
        );
        assert_eq!(MAX_GROUPS, llmos_consts_LLMOS_MAX_GROUPS as usize);
        assert_eq!(MAX_PRIORITY, llmos_consts_LLMOS_MAX_PRIO);
        assert_eq!(MAX_CPUS, llmos_consts_LLMOS_MAX_CPUS);
    }

    #[test]
    fn cpulist() {
        assert_eq!(parse_cpulist("0").unwrap(), vec![0]);
        assert_eq!(
            parse_cpulist("0-3,8,10-11").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpulist("8,0-2,1,2-2\n").unwrap(), vec![0, 1, 2, 8]);
        assert_eq!(parse_cpulist("1023").unwrap(), vec![1023]);
        let e = |s| parse_cpulist(s).unwrap_err().to_string();
        assert_eq!(e("3-1"), "bad cpu list '3-1': range '3-1' is descending");
        assert_eq!(e("0,x"), "bad cpu list '0,x': 'x' is not a cpu id or range");
        assert_eq!(e("1-"), "bad cpu list '1-': '1-' is not a cpu id or range");
        assert_eq!(
            e("0,,1"),
            "bad cpu list '0,,1': '' is not a cpu id or range"
        );
        assert_eq!(e("+1"), "bad cpu list '+1': '+1' is not a cpu id or range");
        assert_eq!(e(""), "bad cpu list '': it is empty");
        assert_eq!(
            e("1000-1024"),
            "bad cpu list '1000-1024': cpu 1024 is out of range (max 1023)"
        );
    }
}

/// Generated hostile input: whatever a config file or a `ctl set` holds, the
/// parser answers with a value or with one line naming the problem.
#[cfg(test)]
mod hostile_input {
    use super::*;
    use proptest::prelude::*;

    fn one_line(err: anyhow::Error) -> Result<(), TestCaseError> {
        let text = err.to_string();
        prop_assert!(!text.is_empty() && !text.contains(['\n', '\r']), "{text:?}");
        Ok(())
    }

    /// Any text, often with control characters and path-like pieces.
    fn text() -> impl Strategy<Value = String> {
        prop_oneof![any::<String>(), "[\\x00-\\x1f/a-z0-9 ]{0,16}"]
    }

    /// A TOML value of any type, with strings that hold any character.
    fn value() -> impl Strategy<Value = String> {
        prop_oneof![
            any::<i64>().prop_map(|n| n.to_string()),
            any::<u64>().prop_map(|n| n.to_string()),
            any::<f64>().prop_map(|f| format!("{f:?}")),
            any::<bool>().prop_map(|b| b.to_string()),
            text().prop_map(|s| format!("{s:?}")),
            prop::collection::vec(any::<u32>(), 0..10).prop_map(|v| format!("{v:?}")),
            "[0-9a-z\\-, ]{0,12}".prop_map(|s| format!("{s:?}")),
        ]
    }

    /// Lines a config file might hold: known and unknown keys (quoted keys
    /// may hold any character), table headers, and garbage.
    fn line() -> impl Strategy<Value = String> {
        let keys = prop::sample::select(vec![
            "policy",
            "slice_us",
            "mlfq_levels",
            "mlfq_slices_us",
            "boost_ms",
            "prio_aging_ms",
            "comm",
            "cgroup",
            "uid",
            "pid",
            "priority",
            "cpus",
        ]);
        prop_oneof![
            4 => (keys, value()).prop_map(|(k, v)| format!("{k} = {v}")),
            1 => (text(), value()).prop_map(|(k, v)| format!("{k:?} = {v}")),
            1 => prop::sample::select(vec!["[[priority]]", "[[group]]", "[priority]", "[x]"])
                .prop_map(String::from),
            1 => any::<String>(),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn config_files(lines in prop::collection::vec(line(), 0..12)) {
            if let Err(err) = parse(&lines.join("\n")) {
                one_line(err)?;
            }
        }

        #[test]
        fn config_bytes(text in text()) {
            if let Err(err) = parse(&text) {
                one_line(err)?;
            }
        }

        #[test]
        fn cpulists(text in "[0-9\\-, \n]{0,20}|\\PC{0,20}") {
            match parse_cpulist(&text) {
                Ok(cpus) => prop_assert!(cpus.windows(2).all(|w| w[0] < w[1]) && cpus.iter().all(|&c| c < MAX_CPUS)),
                Err(err) => one_line(err)?,
            }
        }
    }
}
