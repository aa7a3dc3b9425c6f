// SPDX-License-Identifier: GPL-2.0
//! The policies and the tunables, each defined once.
//!
//! `TUNABLES` is the one definition of every tunable: its name, range,
//! default, unit, description and how it reaches the BPF program. The
//! command-line options, the config file's keys, `ctl set`, `ctl status`, the
//! stats served over scx_stats and the README's table are all made from it.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use anyhow::{anyhow, bail, ensure, Result};
use clap::{Arg, ArgAction, ArgMatches, Args, FromArgMatches, ValueEnum};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::bpf_intf;
use crate::bpf_skel::types::{llmos_tunables, rodata};

/// A scheduling policy: its name here, its id in bpf/intf.h.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Policy {
    /// Multi-level feedback queue: threads that sleep often stay on top and
    /// preempt CPU hogs, which sink to levels with longer slices; every
    /// --boost-ms everything returns to the top.
    Mlfq,
    /// Weighted fair virtual time: each thread gets CPU in proportion to its
    /// nice weight, and a waking thread gets at most one slice of credit.
    Vtime,
    /// Static priority from nice or the config's [[priority]] rules: higher
    /// runs first; waiting raises a thread one step per --prio-aging-ms, so
    /// nothing starves.
    Prio,
    /// Cache- and group-aware placement: threads stay on their CPU while it
    /// is not overloaded, [[group]] threads prefer their CPUs; vtime order.
    Affinity,
    /// First come, first served: a thread runs until it sleeps (at most
    /// 100 ms at a time).
    Fifo,
    /// Round robin: first come, first served with a fixed --slice-us.
    Rr,
    /// Earliest deadline first for the threads the config's [[deadline]]
    /// rules reserve CPU time for (runtime_us in every period_us, done
    /// within deadline_us), ahead of all others while their budget lasts;
    /// the other threads share the rest as under vtime.
    Edf,
    /// Rate-monotonic, with no config: threads whose wakeups recur at a
    /// stable period run ahead of the others, the shortest period first,
    /// for at most a share of each period that their recent runs earned
    /// (up to half); the other threads share the rest as under vtime.
    Rms,
}

impl Policy {
    pub fn bpf_id(self) -> u32 {
        match self {
            Policy::Mlfq => bpf_intf::llmos_policy_LLMOS_POLICY_MLFQ,
            Policy::Vtime => bpf_intf::llmos_policy_LLMOS_POLICY_VTIME,
            Policy::Prio => bpf_intf::llmos_policy_LLMOS_POLICY_PRIO,
            Policy::Affinity => bpf_intf::llmos_policy_LLMOS_POLICY_AFFINITY,
            Policy::Fifo => bpf_intf::llmos_policy_LLMOS_POLICY_FIFO,
            Policy::Rr => bpf_intf::llmos_policy_LLMOS_POLICY_RR,
            Policy::Edf => bpf_intf::llmos_policy_LLMOS_POLICY_EDF,
            Policy::Rms => bpf_intf::llmos_policy_LLMOS_POLICY_RMS,
        }
    }

    /// The name the command line, the config file and `ctl` use.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|value| value.get_name().to_string())
            .unwrap_or_default()
    }

    /// Parses a policy name as the command line does.
    pub fn parse(name: &str) -> Result<Self> {
        Policy::from_str(name, false).map_err(|_| {
            let names: Vec<String> = Policy::value_variants().iter().map(|p| p.name()).collect();
            anyhow!(
                "unknown policy '{name}' (expected one of: {})",
                names.join(", ")
            )
        })
    }
}

/// The unit of a tunable's value, shown after its range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unit {
    Microseconds,
    Milliseconds,
    Count,
}

impl Unit {
    fn suffix(self) -> &'static str {
        match self {
            Unit::Microseconds => " us",
            Unit::Milliseconds => " ms",
            Unit::Count => "",
        }
    }
}

/// One value, or one per mlfq level (as many as `LEVELS` says).
#[derive(Clone, Copy, Debug)]
pub enum Shape {
    One {
        default: u64,
    },
    PerLevel {
        default: fn(u64) -> u64,
        described: &'static str,
    },
}

/// How a tunable's value reaches the BPF program.
#[derive(Clone, Copy)]
pub enum Reach {
    /// A field of `struct llmos_tunables`: `ctl set` may change it while the
    /// scheduler runs.
    Live(fn(&[u64], &mut llmos_tunables)),
    /// A read-only global, fixed when the program is loaded.
    AtLoad(fn(&[u64], &mut rodata)),
}

/// The one definition of a tunable.
pub struct Tunable {
    /// The config key and `ctl set` key; the option is `--` with dashes.
    pub name: &'static str,
    pub range: RangeInclusive<u64>,
    pub unit: Unit,
    pub shape: Shape,
    pub reach: Reach,
    /// What it does, for --help, the man page, the README and --help-stats.
    pub doc: &'static str,
}

/// The tunable whose value is the number of mlfq levels.
pub const LEVELS: &str = "mlfq_levels";
/// The tunable that gives each mlfq level its slice.
pub const LEVEL_SLICES: &str = "mlfq_slices_us";

const NSEC_PER_USEC: u64 = 1000;
const NSEC_PER_MSEC: u64 = 1_000_000;
/// A slice range: short enough to share a CPU, long enough not to thrash it.
const SLICE_US: RangeInclusive<u64> = 100..=100_000;

pub static TUNABLES: [Tunable; 6] = [
    Tunable {
        name: "slice_us",
        range: SLICE_US,
        unit: Unit::Microseconds,
        shape: Shape::One { default: 20_000 },
        reach: Reach::Live(|v, bpf| bpf.slice_ns = v[0] * NSEC_PER_USEC),
        doc: "Time slice of the vtime, prio, affinity and rr policies: how long a \
              thread may run before others waiting for its CPU get a turn (the \
              default is the kernel's default sched_ext slice).",
    },
    Tunable {
        name: LEVELS,
        range: 2..=bpf_intf::llmos_consts_LLMOS_MAX_LEVELS as u64,
        unit: Unit::Count,
        shape: Shape::One { default: 4 },
        reach: Reach::AtLoad(|v, bpf| bpf.nr_levels = v[0] as u32),
        doc: "mlfq policy: number of priority levels.",
    },
    Tunable {
        name: LEVEL_SLICES,
        range: SLICE_US,
        unit: Unit::Microseconds,
        shape: Shape::PerLevel {
            default: |level| 1000 << level,
            described: "1000 at the top, doubling per level",
        },
        reach: Reach::Live(|v, bpf| {
            for (ns, us) in bpf.level_slice_ns.iter_mut().zip(v) {
                *ns = us * NSEC_PER_USEC;
            }
        }),
        doc: "mlfq policy: each level's time slice, top level first. A thread \
              that uses a level's slice, counted across turns, drops a level.",
    },
    Tunable {
        name: "boost_ms",
        range: 10..=2000,
        unit: Unit::Milliseconds,
        shape: Shape::One { default: 1000 },
        reach: Reach::Live(|v, bpf| bpf.boost_interval_ns = v[0] * NSEC_PER_MSEC),
        doc: "mlfq policy: every this long every thread returns to the top \
              level, so nothing starves.",
    },
    Tunable {
        name: "prio_aging_ms",
        // 39 steps of aging must stay well inside the kernel watchdog's 5 s.
        range: 1..=50,
        unit: Unit::Milliseconds,
        shape: Shape::One { default: 10 },
        reach: Reach::Live(|v, bpf| bpf.prio_aging_ns = v[0] * NSEC_PER_MSEC),
        doc: "prio policy: a waiting thread gains one priority step per this \
              long, so none waits longer than 39 steps.",
    },
    Tunable {
        name: "priority_inheritance",
        range: 0..=1,
        unit: Unit::Count,
        shape: Shape::One { default: 1 },
        reach: Reach::Live(|v, bpf| bpf.priority_inheritance = v[0]),
        doc: "prio and mlfq policies: 1 lets a thread holding a PI futex (a \
              pthread mutex with PTHREAD_PRIO_INHERIT) that a thread of higher \
              priority or mlfq level waits for run at the waiter's until it lets \
              go; 0 turns that off.",
    },
];

impl Tunable {
    /// The tunable named `name`, and its place in `TUNABLES`.
    pub fn find(name: &str) -> Option<(usize, &'static Tunable)> {
        TUNABLES.iter().enumerate().find(|(_, t)| t.name == name)
    }

    pub fn per_level(&self) -> bool {
        matches!(self.shape, Shape::PerLevel { .. })
    }

    pub fn live(&self) -> bool {
        matches!(self.reach, Reach::Live(_))
    }

    /// The command-line option, without its dashes.
    fn long(&self) -> String {
        self.name.replace('_', "-")
    }

    /// "100 to 100000 us", or for a list "each 100 to 100000 us".
    pub fn range_text(&self) -> String {
        let each = match self.shape {
            Shape::One { .. } => "",
            Shape::PerLevel { .. } => "each ",
        };
        format!(
            "{each}{} to {}{}",
            self.range.start(),
            self.range.end(),
            self.unit.suffix()
        )
    }

    pub fn default_text(&self) -> String {
        match self.shape {
            Shape::One { default } => default.to_string(),
            Shape::PerLevel { described, .. } => described.into(),
        }
    }

    fn default_value(&self, levels: u64) -> Value {
        match self.shape {
            Shape::One { default } => Value::One(default),
            Shape::PerLevel { default, .. } => Value::PerLevel((0..levels).map(default).collect()),
        }
    }

    /// --help's text: the description, then what values it takes.
    fn help(&self) -> String {
        let per_level = match self.shape {
            Shape::One { .. } => "",
            Shape::PerLevel { .. } => "comma-separated, one per level, ",
        };
        format!(
            "{} ({per_level}{}; default {})",
            self.doc,
            self.range_text(),
            self.default_text()
        )
    }

    /// `n`, if it is in range; `label` names it in the error.
    fn check(&self, label: &str, n: i128) -> Result<u64> {
        let (lo, hi) = (*self.range.start(), *self.range.end());
        ensure!(
            (i128::from(lo)..=i128::from(hi)).contains(&n),
            "{label} = {n} is not in {lo}..={hi}"
        );
        Ok(n as u64)
    }

    /// A list's values, each in range and as many as mlfq can have levels.
    fn check_list(&self, values: &[i128]) -> Result<Value> {
        let levels = Tunable::find(LEVELS).unwrap().1.range.clone();
        ensure!(
            levels.contains(&(values.len() as u64)),
            "{} needs {}..={} entries, got {}",
            self.name,
            levels.start(),
            levels.end(),
            values.len()
        );
        let checked = values
            .iter()
            .enumerate()
            .map(|(i, &n)| self.check(&format!("{}[{i}]", self.name), n))
            .collect::<Result<_>>()?;
        Ok(Value::PerLevel(checked))
    }

    /// Parses a value as `ctl set` gets it: a number, or numbers separated
    /// by commas.
    fn parse(&self, text: &str) -> Result<Value> {
        let number = |v: &str| {
            v.trim()
                .parse::<u64>()
                .map(i128::from)
                .map_err(|_| anyhow!("{}: '{}' is not an unsigned integer", self.name, v.trim()))
        };
        match self.shape {
            Shape::One { .. } => Ok(Value::One(self.check(self.name, number(text)?)?)),
            Shape::PerLevel { .. } => {
                let values = text.split(',').map(number).collect::<Result<Vec<_>>>()?;
                self.check_list(&values)
            }
        }
    }

    /// Reads a value from the config file.
    pub fn read_toml(&self, value: &toml::Value) -> Result<Value> {
        let wrong = |expected: &str| anyhow!("{} must be {expected}, got {value}", self.name);
        match (self.shape, value) {
            (Shape::One { .. }, toml::Value::Integer(n)) => {
                Ok(Value::One(self.check(self.name, i128::from(*n))?))
            }
            (Shape::One { .. }, _) => Err(wrong("an integer")),
            (Shape::PerLevel { .. }, toml::Value::Array(items)) => {
                let values = items
                    .iter()
                    .map(|item| item.as_integer().map(i128::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| wrong("an array of integers"))?;
                self.check_list(&values)
            }
            (Shape::PerLevel { .. }, _) => Err(wrong("an array of integers")),
        }
    }

    fn arg(&self) -> Arg {
        let parser = clap::value_parser!(u64).range(self.range.clone());
        let arg = Arg::new(self.name)
            .long(self.long())
            .help(self.help())
            .value_parser(parser);
        match self.shape {
            Shape::One { .. } => arg.value_name(self.name.to_uppercase()),
            Shape::PerLevel { .. } => {
                let unit = self.unit.suffix().trim().to_uppercase();
                arg.value_name(format!("{unit},{unit},..."))
                    .value_delimiter(',')
                    .action(ArgAction::Append)
            }
        }
    }
}

/// A tunable's value.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    One(u64),
    PerLevel(Vec<u64>),
}

impl Value {
    pub fn as_slice(&self) -> &[u64] {
        match self {
            Value::One(n) => std::slice::from_ref(n),
            Value::PerLevel(values) => values,
        }
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        let values: Vec<String> = self.as_slice().iter().map(u64::to_string).collect();
        f.write_str(&values.join(","))
    }
}

/// The tunables one source (the command line or the config file) gives, by name.
pub type Given = BTreeMap<&'static str, Value>;

/// The value of every tunable, in the order of `TUNABLES`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tunables(Vec<Value>);

impl Tunables {
    /// The values in force: the command line's over the config file's over
    /// the defaults. A per-level list must have one value per level.
    pub fn resolve(cli: &Given, file: &Given) -> Result<Self> {
        let given = |name| cli.get(name).or(file.get(name));
        let levels = match given(LEVELS) {
            Some(value) => value.as_slice()[0],
            None => Tunable::find(LEVELS).unwrap().1.default_value(0).as_slice()[0],
        };
        let values = TUNABLES
            .iter()
            .map(|t| {
                given(t.name)
                    .cloned()
                    .unwrap_or_else(|| t.default_value(levels))
            })
            .collect();
        let tunables = Self(values);
        if let Some((name, values)) = tunables.mismatched_list() {
            bail!("{name} has {values} values but {LEVELS} is {levels}; they must match");
        }
        Ok(tunables)
    }

    /// The value of the tunable `name`, which must be one of `TUNABLES`.
    pub fn get(&self, name: &str) -> &Value {
        let (idx, _) = Tunable::find(name).expect("a tunable of TUNABLES");
        &self.0[idx]
    }

    pub fn levels(&self) -> u32 {
        self.get(LEVELS).as_slice()[0] as u32
    }

    /// A per-level list that has not one value per level: its name and
    /// how many values it has.
    fn mismatched_list(&self) -> Option<(&'static str, usize)> {
        let levels = self.levels() as usize;
        self.iter()
            .filter(|(tunable, _)| tunable.per_level())
            .map(|(tunable, value)| (tunable.name, value.as_slice().len()))
            .find(|&(_, values)| values != levels)
    }

    /// Applies `ctl set`'s assignment, if it fits the running levels.
    pub fn set(&mut self, assignment: &Assignment) -> Result<()> {
        let mut changed = self.clone();
        changed.0[assignment.index] = assignment.value.clone();
        if let Some((name, values)) = changed.mismatched_list() {
            bail!(
                "{name} needs one value per level: {values} values, {} levels",
                self.levels()
            );
        }
        *self = changed;
        Ok(())
    }

    /// Writes the live tunables into the BPF program's struct.
    pub fn write_live(&self, bpf: &mut llmos_tunables) {
        for (tunable, value) in self.iter() {
            if let Reach::Live(write) = tunable.reach {
                write(value.as_slice(), bpf);
            }
        }
    }

    /// Writes the tunables fixed at load into the program's rodata.
    pub fn write_at_load(&self, bpf: &mut rodata) {
        for (tunable, value) in self.iter() {
            if let Reach::AtLoad(write) = tunable.reach {
                write(value.as_slice(), bpf);
            }
        }
    }

    /// Each tunable with its value, in the order of `TUNABLES`.
    pub fn iter(&self) -> impl Iterator<Item = (&'static Tunable, &Value)> {
        TUNABLES.iter().zip(&self.0)
    }

    /// "name value" per tunable, lists comma-separated, joined by `sep`.
    pub fn describe(&self, sep: &str) -> String {
        let pairs: Vec<String> = self
            .iter()
            .map(|(t, v)| format!("{} {v}", t.name))
            .collect();
        pairs.join(sep)
    }
}

impl Default for Tunables {
    fn default() -> Self {
        Self::resolve(&Given::new(), &Given::new()).expect("the defaults fit together")
    }
}

impl Serialize for Tunables {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(TUNABLES.iter().map(|t| t.name).zip(&self.0))
    }
}

/// Clients (`top`, `--monitor`) read the tunables back from the stats JSON.
impl<'de> Deserialize<'de> for Tunables {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut map = BTreeMap::<String, Value>::deserialize(deserializer)?;
        TUNABLES
            .iter()
            .map(|t| {
                map.remove(t.name)
                    .ok_or_else(|| serde::de::Error::missing_field(t.name))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }
}

/// --help-stats describes each tunable as the table does.
impl scx_stats::Meta for Tunables {
    fn meta() -> scx_stats::StatsMeta {
        use scx_stats::{StatsData, StatsField, StatsFieldAttrs, StatsKind, StatsStructAttrs};
        let fields = TUNABLES
            .iter()
            .map(|t| {
                let data = match t.shape {
                    Shape::One { .. } => StatsData::Datum(StatsKind::U64),
                    Shape::PerLevel { .. } => StatsData::Array(StatsKind::U64),
                };
                let desc = format!("{} ({})", t.doc, t.range_text());
                let attrs = StatsFieldAttrs {
                    desc: Some(desc),
                    ..Default::default()
                };
                (t.name.to_string(), StatsField { data, attrs })
            })
            .collect();
        scx_stats::StatsMeta {
            name: "Tunables".into(),
            attrs: StatsStructAttrs {
                desc: Some("The tunables in force".into()),
                ..Default::default()
            },
            fields,
        }
    }
}

/// The policy and tunables in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Settings {
    pub policy: Policy,
    #[serde(flatten)]
    pub tunables: Tunables,
}

impl Settings {
    /// `ctl status`: one "key value" line per setting.
    pub fn describe(&self) -> String {
        format!(
            "policy {}\n{}",
            self.policy.name(),
            self.tunables.describe("\n")
        )
    }
}

/// `ctl set KEY=VALUE`: a live tunable and its new value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    index: usize,
    pub value: Value,
}

impl Assignment {
    pub fn key(&self) -> &'static str {
        TUNABLES[self.index].name
    }

    /// Parses "KEY=VALUE" with the keys and ranges of the table; lists take
    /// "500,1000,2000,4000". Whether a list fits the running number of
    /// levels is `Tunables::set`'s to check. Errors are one line.
    pub fn parse(arg: &str) -> Result<Self> {
        Self::parse_assignment(arg).map_err(crate::config::one_line)
    }

    fn parse_assignment(arg: &str) -> Result<Self> {
        let Some((key, value)) = arg.split_once('=') else {
            bail!("expected KEY=VALUE, got '{arg}'");
        };
        let key = key.trim();
        match Tunable::find(key) {
            Some((index, tunable)) if tunable.live() => Ok(Self {
                index,
                value: tunable.parse(value)?,
            }),
            Some(_) => bail!("{key} cannot be changed live; it needs a restart"),
            None if key == "policy" => {
                bail!("policy cannot be set with `ctl set`; use `ctl policy`")
            }
            None => {
                let live: Vec<&str> = TUNABLES
                    .iter()
                    .filter(|t| t.live())
                    .map(|t| t.name)
                    .collect();
                bail!("unknown tunable '{key}' (settable: {})", live.join(", "))
            }
        }
    }
}

/// The tunables' command-line options, made from `TUNABLES`.
#[derive(Clone, Debug, Default)]
pub struct TunableArgs {
    pub given: Given,
}

impl FromArgMatches for TunableArgs {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let mut args = Self::default();
        args.update_from_arg_matches(matches)?;
        Ok(args)
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        for tunable in &TUNABLES {
            let mut values = match matches.get_many::<u64>(tunable.name) {
                Some(values) => values.copied().collect::<Vec<_>>(),
                None => continue,
            };
            let value = match tunable.shape {
                Shape::One { .. } => Value::One(values.pop().unwrap_or_default()),
                Shape::PerLevel { .. } => Value::PerLevel(values),
            };
            self.given.insert(tunable.name, value);
        }
        Ok(())
    }
}

impl Args for TunableArgs {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        TUNABLES.iter().fold(cmd, |cmd, t| cmd.arg(t.arg()))
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The README's table of tunables (a test checks that the README has it).
#[cfg(test)]
pub fn markdown_table() -> String {
    use std::fmt::Write as _;
    let mut table = String::from(
        "| Key (config file, `ctl set`) | Option | Range | Default | Live | What it does |\n\
         |---|---|---|---|---|---|\n",
    );
    for t in &TUNABLES {
        let live = if t.live() { "yes" } else { "no (restart)" };
        writeln!(
            table,
            "| `{}` | `--{}` | {} | {} | {live} | {} |",
            t.name,
            t.long(),
            t.range_text(),
            t.default_text(),
            t.doc
        )
        .unwrap();
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assignment(arg: &str) -> Result<(&'static str, Value), String> {
        Assignment::parse(arg)
            .map(|a| (a.key(), a.value))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn the_readme_has_the_table() {
        let readme = include_str!("../README.md");
        let begin = "<!-- tunables: generated from src/settings.rs; a unit test checks it -->\n";
        let table = readme
            .split_once(begin)
            .and_then(|(_, rest)| rest.split_once("<!-- end of tunables -->"))
            .map(|(table, _)| table)
            .expect("README.md has the tunables' markers");
        assert_eq!(
            table,
            markdown_table(),
            "README.md's table differs; the table is:\n{}",
            markdown_table()
        );
    }

    #[test]
    fn defaults() {
        assert_eq!(
            Tunables::default().describe("\n"),
            "slice_us 20000\nmlfq_levels 4\nmlfq_slices_us 1000,2000,4000,8000\nboost_ms 1000\nprio_aging_ms 10\npriority_inheritance 1"
        );
        let three = Given::from([(LEVELS, Value::One(3))]);
        assert_eq!(
            Tunables::resolve(&three, &Given::new())
                .unwrap()
                .get(LEVEL_SLICES),
            &Value::PerLevel(vec![1000, 2000, 4000])
        );
    }

    #[test]
    fn the_command_line_overrides_the_file() {
        let file = Given::from([
            ("slice_us", Value::One(5000)),
            ("boost_ms", Value::One(100)),
            (LEVELS, Value::One(2)),
        ]);
        let cli = Given::from([("slice_us", Value::One(700))]);
        let tunables = Tunables::resolve(&cli, &file).unwrap();
        assert_eq!(
            tunables.describe(" "),
            "slice_us 700 mlfq_levels 2 mlfq_slices_us 1000,2000 boost_ms 100 prio_aging_ms 10 priority_inheritance 1"
        );
        let slices = Given::from([(LEVEL_SLICES, Value::PerLevel(vec![100, 200, 300]))]);
        assert_eq!(
            Tunables::resolve(&slices, &file).unwrap_err().to_string(),
            "mlfq_slices_us has 3 values but mlfq_levels is 2; they must match"
        );
    }

    #[test]
    fn assignments() {
        assert_eq!(
            assignment("slice_us=5000"),
            Ok(("slice_us", Value::One(5000)))
        );
        assert_eq!(
            assignment(" boost_ms = 10 "),
            Ok(("boost_ms", Value::One(10)))
        );
        assert_eq!(
            assignment("prio_aging_ms=50"),
            Ok(("prio_aging_ms", Value::One(50)))
        );
        assert_eq!(
            assignment("mlfq_slices_us=500, 1000,2000,4000"),
            Ok((LEVEL_SLICES, Value::PerLevel(vec![500, 1000, 2000, 4000])))
        );
        let e = |arg| assignment(arg).unwrap_err();
        assert_eq!(e("slice_us=99"), "slice_us = 99 is not in 100..=100000");
        assert_eq!(e("boost_ms=5000"), "boost_ms = 5000 is not in 10..=2000");
        assert_eq!(e("prio_aging_ms=0"), "prio_aging_ms = 0 is not in 1..=50");
        assert_eq!(
            e("mlfq_slices_us=500,50"),
            "mlfq_slices_us[1] = 50 is not in 100..=100000"
        );
        assert_eq!(
            e("mlfq_slices_us=500"),
            "mlfq_slices_us needs 2..=8 entries, got 1"
        );
        assert_eq!(
            e("mlfq_slices_us=500,,600"),
            "mlfq_slices_us: '' is not an unsigned integer"
        );
        assert_eq!(
            e("slice_us=fast"),
            "slice_us: 'fast' is not an unsigned integer"
        );
        assert_eq!(e("slice_us"), "expected KEY=VALUE, got 'slice_us'");
        assert_eq!(
            e("slice=100"),
            "unknown tunable 'slice' (settable: slice_us, mlfq_slices_us, boost_ms, prio_aging_ms, \
             priority_inheritance)"
        );
        assert_eq!(
            e("policy=fifo"),
            "policy cannot be set with `ctl set`; use `ctl policy`"
        );
        assert_eq!(
            e("mlfq_levels=3"),
            "mlfq_levels cannot be changed live; it needs a restart"
        );
    }

    #[test]
    fn a_list_set_live_must_fit_the_levels() {
        let mut tunables = Tunables::default();
        let three = Assignment::parse("mlfq_slices_us=100,200,300").unwrap();
        assert_eq!(
            tunables.set(&three).unwrap_err().to_string(),
            "mlfq_slices_us needs one value per level: 3 values, 4 levels"
        );
        assert_eq!(tunables, Tunables::default());
        tunables
            .set(&Assignment::parse("mlfq_slices_us=100,200,300,400").unwrap())
            .unwrap();
        assert_eq!(
            tunables.get(LEVEL_SLICES),
            &Value::PerLevel(vec![100, 200, 300, 400])
        );
    }

    #[test]
    fn values_reach_bpf_in_its_units() {
        let cli = Given::from([
            ("slice_us", Value::One(5000)),
            (LEVELS, Value::One(2)),
            (LEVEL_SLICES, Value::PerLevel(vec![300, 900])),
            ("boost_ms", Value::One(250)),
            ("prio_aging_ms", Value::One(7)),
        ]);
        let tunables = Tunables::resolve(&cli, &Given::new()).unwrap();
        let mut live = llmos_tunables::default();
        tunables.write_live(&mut live);
        assert_eq!(
            (
                live.slice_ns,
                live.level_slice_ns,
                live.boost_interval_ns,
                live.prio_aging_ns
            ),
            (
                5_000_000,
                [300_000, 900_000, 0, 0, 0, 0, 0, 0],
                250_000_000,
                7_000_000
            )
        );
        // SAFETY: rodata is plain old data, all zeroes a valid value.
        let mut rodata: rodata = unsafe { std::mem::zeroed() };
        tunables.write_at_load(&mut rodata);
        assert_eq!(rodata.nr_levels, 2);
    }

    #[test]
    fn json_and_stats_meta_name_every_tunable() {
        let tunables = Tunables::default();
        let json = serde_json::to_value(&tunables).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "slice_us": 20000, "mlfq_levels": 4, "mlfq_slices_us": [1000, 2000, 4000, 8000],
                "boost_ms": 1000, "prio_aging_ms": 10,
                "priority_inheritance": 1
            })
        );
        assert_eq!(serde_json::from_value::<Tunables>(json).unwrap(), tunables);
        let meta = <Tunables as scx_stats::Meta>::meta();
        let described: Vec<&str> = meta.fields.keys().map(String::as_str).collect();
        let mut names: Vec<&str> = TUNABLES.iter().map(|t| t.name).collect();
        names.sort_unstable();
        assert_eq!(described, names);
        assert_eq!(
            meta.fields["boost_ms"].attrs.desc.as_deref(),
            Some("mlfq policy: every this long every thread returns to the top level, so nothing starves. (10 to 2000 ms)")
        );
    }

    #[test]
    fn policy_names_round_trip() {
        for policy in Policy::value_variants() {
            assert_eq!(Policy::parse(&policy.name()).unwrap(), *policy);
        }
        assert_eq!(
            Policy::parse("lottery").unwrap_err().to_string(),
            "unknown policy 'lottery' (expected one of: mlfq, vtime, prio, affinity, fifo, rr, edf, rms)"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Each tunable takes exactly its range, by `ctl set`.
        #[test]
        fn tunables_accept_exactly_their_range(n in proptest::prelude::any::<u64>()) {
            for tunable in TUNABLES.iter().filter(|t| t.live() && !t.per_level()) {
                let parsed = Assignment::parse(&format!("{}={n}", tunable.name)).ok();
                proptest::prop_assert_eq!(parsed.map(|a| a.value), tunable.range.contains(&n).then_some(Value::One(n)));
            }
        }

        /// Whatever `ctl set` gets, the answer is a value or one line.
        #[test]
        fn hostile_assignments(key in "[a-z_]{0,16}|slice_us|boost_ms|mlfq_slices_us|prio_aging_ms",
                               value in "\\PC{0,24}|[\\x00-\\x1f0-9,]{0,16}") {
            if let Err(err) = Assignment::parse(&format!("{key}={value}")) {
                let text = err.to_string();
                proptest::prop_assert!(!text.is_empty() && !text.contains(['\n', '\r']), "{text:?}");
            }
        }
    }
}
