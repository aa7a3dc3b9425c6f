// SPDX-License-Identifier: GPL-2.0
//! What the scheduler reports, through scx_stats: the `top` target (the
//! active policy, its tunables and the event counters, summed over CPUs since
//! scx_llmos started, across restarts) and the `threads` target (one row per
//! thread).
//! Any scx_stats client reads them from the stats socket; `--stats`,
//! `--monitor` and `scx_llmos threads` are such clients.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use crossbeam::channel::{Receiver, Sender};
use libbpf_rs::{MapCore, MapFlags};
use scx_stats::prelude::*;
use scx_stats_derive::{stat_doc, Stats};
use serde::{Deserialize, Serialize};

use crate::bpf_intf;
use crate::settings::Tunables;

/// Where scx schedulers serve their statistics (scx_stats' default path).
pub const DEFAULT_SOCKET: &str = "/var/run/scx/root/stats";

const NR_STATS: usize = bpf_intf::llmos_stat_LLMOS_NR_STATS as usize;
const FIRST_LEVEL: usize = bpf_intf::llmos_stat_LLMOS_STAT_LEVEL_RUN as usize;

/// The per-CPU `stats` map summed over CPUs, indexed by `enum llmos_stat`.
pub type Counters = [u64; NR_STATS];

/// Reads every counter of the per-CPU `stats` map, summed over CPUs.
pub fn read(map: &impl MapCore) -> Result<Counters> {
    let mut totals = [0u64; NR_STATS];
    for (idx, total) in totals.iter_mut().enumerate() {
        let key = (idx as u32).to_ne_bytes();
        let per_cpu = map
            .lookup_percpu(&key, MapFlags::ANY)
            .context("failed to read the stats map")?
            .unwrap_or_default();
        *total = per_cpu.iter().map(|bytes| as_u64(bytes)).sum();
    }
    Ok(totals)
}

/// `earlier` and `now` added up: the counts of runs before a restart, which
/// loads a fresh BPF program, and of the current one.
pub fn add(earlier: &Counters, now: &Counters) -> Counters {
    std::array::from_fn(|idx| earlier[idx] + now[idx])
}

fn as_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

#[stat_doc]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Stats)]
#[stat(top)]
pub struct Metrics {
    #[stat(desc = "Active scheduling policy")]
    pub policy: String,
    #[stat(desc = "The tunables in force")]
    pub tunables: Tunables,
    #[stat(desc = "Wakeups placed straight onto an idle CPU")]
    pub idle_dispatches: u64,
    #[stat(desc = "Waking per-CPU kthreads run at once on their CPU")]
    pub kthread_dispatches: u64,
    #[stat(desc = "Tasks that may run on one CPU only, queued on that CPU")]
    pub pinned_dispatches: u64,
    #[stat(desc = "Tasks queued on their LLC's shared queue")]
    pub shared_dispatches: u64,
    #[stat(desc = "Tasks an idle CPU pulled from another LLC or CPU")]
    pub steals: u64,
    #[stat(desc = "Slices renewed because nothing else waited for the CPU")]
    pub slice_refills: u64,
    #[stat(desc = "Running tasks kicked off their CPU by a higher-ranked waking task")]
    pub preemptions: u64,
    #[stat(desc = "mlfq boosts of every thread to the top level")]
    pub boosts: u64,
    #[stat(desc = "Time the housekeeping timer spent in mlfq boosts (ns)")]
    pub boost_ns: u64,
    #[stat(desc = "affinity: tasks queued on their own CPU for cache warmth")]
    pub cpu_queued: u64,
    #[stat(desc = "Live policy switches carried out")]
    pub policy_switches: u64,
    #[stat(desc = "Queued tasks moved to the new policy's queues by a switch")]
    pub carried_over: u64,
    #[stat(desc = "Tasks that started on another LLC than they last ran on")]
    pub llc_migrations: u64,
    #[stat(desc = "Tasks the kernel pushed off a CPU going offline")]
    pub pushed_offline: u64,
    #[stat(desc = "Tasks started on each mlfq level, top level first")]
    pub level_runs: Vec<u64>,
}

/// Each counter field of `Metrics` with the `enum llmos_stat` entry it
/// counts: the one list that `from_counters` and `delta` walk.
type CounterField = (fn(&mut Metrics) -> &mut u64, u32);
const COUNTER_FIELDS: [CounterField; FIRST_LEVEL] = [
    (
        |m| &mut m.idle_dispatches,
        bpf_intf::llmos_stat_LLMOS_STAT_IDLE_DISPATCH,
    ),
    (
        |m| &mut m.kthread_dispatches,
        bpf_intf::llmos_stat_LLMOS_STAT_KTHREAD_DISPATCH,
    ),
    (
        |m| &mut m.pinned_dispatches,
        bpf_intf::llmos_stat_LLMOS_STAT_PINNED_DISPATCH,
    ),
    (
        |m| &mut m.shared_dispatches,
        bpf_intf::llmos_stat_LLMOS_STAT_SHARED_DISPATCH,
    ),
    (|m| &mut m.steals, bpf_intf::llmos_stat_LLMOS_STAT_STEAL),
    (
        |m| &mut m.slice_refills,
        bpf_intf::llmos_stat_LLMOS_STAT_SLICE_REFILL,
    ),
    (
        |m| &mut m.preemptions,
        bpf_intf::llmos_stat_LLMOS_STAT_PREEMPT,
    ),
    (|m| &mut m.boosts, bpf_intf::llmos_stat_LLMOS_STAT_BOOST),
    (
        |m| &mut m.boost_ns,
        bpf_intf::llmos_stat_LLMOS_STAT_BOOST_NS,
    ),
    (
        |m| &mut m.cpu_queued,
        bpf_intf::llmos_stat_LLMOS_STAT_CPU_QUEUE,
    ),
    (
        |m| &mut m.policy_switches,
        bpf_intf::llmos_stat_LLMOS_STAT_SWITCH,
    ),
    (
        |m| &mut m.carried_over,
        bpf_intf::llmos_stat_LLMOS_STAT_CARRIED,
    ),
    (
        |m| &mut m.llc_migrations,
        bpf_intf::llmos_stat_LLMOS_STAT_LLC_MIGRATION,
    ),
    (
        |m| &mut m.pushed_offline,
        bpf_intf::llmos_stat_LLMOS_STAT_PUSHED,
    ),
];

impl Metrics {
    /// The counters of `counters`, bound to their fields by symbol, with
    /// the run counters of the first `levels` levels; policy and tunables
    /// are the caller's to fill.
    pub fn from_counters(counters: &Counters, levels: usize) -> Self {
        let mut metrics = Self {
            level_runs: counters[FIRST_LEVEL..][..levels].to_vec(),
            ..Self::default()
        };
        for (field, stat) in COUNTER_FIELDS {
            *field(&mut metrics) = counters[stat as usize];
        }
        metrics
    }

    /// The counters' growth since `prev`; policy and tunables are this one's.
    pub fn delta(&self, prev: &Self) -> Self {
        let mut delta = self.clone();
        let mut prev = prev.clone();
        for (field, _) in COUNTER_FIELDS {
            let before = *field(&mut prev);
            let count = field(&mut delta);
            *count = count.saturating_sub(before);
        }
        for (level, runs) in delta.level_runs.iter_mut().enumerate() {
            *runs = runs.saturating_sub(prev.level_runs.get(level).copied().unwrap_or(0));
        }
        delta
    }

    /// Tasks queued anywhere: the dispatch counters together, one per path
    /// a task takes to a queue (`format` lists them after "dispatch").
    pub fn dispatches(&self) -> u64 {
        self.idle_dispatches
            + self.kthread_dispatches
            + self.pinned_dispatches
            + self.shared_dispatches
            + self.cpu_queued
    }

    /// One line of `--stats`/`--monitor` output: the policy and what
    /// happened in the interval (`self` is a delta).
    pub fn format(&self) -> String {
        let runs: Vec<String> = self.level_runs.iter().map(u64::to_string).collect();
        format!(
            "[{}] dispatch idle {} kthread {} pinned {} shared {} cpu {} | steal {} refill {} preempt {} | boost {} ({} us) | switch {} carried {} | xllc {} pushed {} | level runs {}",
            self.policy,
            self.idle_dispatches,
            self.kthread_dispatches,
            self.pinned_dispatches,
            self.shared_dispatches,
            self.cpu_queued,
            self.steals,
            self.slice_refills,
            self.preemptions,
            self.boosts,
            self.boost_ns / 1000,
            self.policy_switches,
            self.carried_over,
            self.llc_migrations,
            self.pushed_offline,
            runs.join("/"),
        )
    }
}

/// One thread as the scheduler sees it.
#[stat_doc]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Stats)]
pub struct ThreadRow {
    #[stat(desc = "Thread id")]
    pub tid: u64,
    #[stat(desc = "Process id (thread group)")]
    pub tgid: u64,
    #[stat(desc = "Thread name")]
    pub comm: String,
    #[stat(desc = "mlfq level (0 = top)")]
    pub level: u64,
    #[stat(desc = "Static priority of the prio policy, 0 to 39 (higher runs first)")]
    pub priority: u64,
    #[stat(desc = "Affinity group from the config, or -1")]
    pub group: i64,
    #[stat(desc = "1 if it is runnable but not on a CPU (waiting in a queue), else 0")]
    #[serde(default)]
    pub waiting: u64,
    #[stat(desc = "CPU it last ran on, or -1")]
    pub cpu: i64,
    #[stat(desc = "CPU time while scx_llmos was attached (ns)")]
    pub runtime_ns: u64,
    #[stat(desc = "Time spent runnable but not running (ns)")]
    pub wait_ns: u64,
    #[stat(desc = "Times it got a CPU")]
    pub runs: u64,
    #[stat(desc = "Times it gave up the CPU to sleep")]
    pub voluntary: u64,
    #[stat(desc = "Times it was preempted or used up its slice")]
    pub involuntary: u64,
    #[stat(desc = "Times it started on another CPU than before")]
    pub migrations: u64,
    #[stat(desc = "mlfq level drops")]
    pub demotions: u64,
    #[stat(desc = "mlfq boosts that lifted it")]
    pub boosts: u64,
    #[stat(
        desc = "The period its wakeups recur at if it is periodic (rms ranks it by that), else 0 (ns)"
    )]
    #[serde(default)]
    pub period_ns: u64,
    #[stat(desc = "While periodic: activations that ended after its next wakeup was due")]
    #[serde(default)]
    pub deadline_misses: u64,
}

/// The `threads` target: every thread the scheduler knows, or one process's
/// (request argument `pid`), most CPU time first.
#[stat_doc]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, Stats)]
pub struct Threads {
    #[stat(desc = "One row per thread")]
    pub threads: Vec<ThreadRow>,
    #[stat(
        desc = "When the rows were read, on the scheduler's CLOCK_MONOTONIC (ns): rates between two reads divide by its difference"
    )]
    #[serde(default)]
    pub read_at_ns: u64,
}

/// CLOCK_MONOTONIC now, in ns.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec to fill; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// What a stats client asks the scheduler's run loop for.
#[derive(Debug, PartialEq, Eq)]
pub enum Query {
    Top,
    Threads { tgid: Option<u32> },
}

/// The run loop's answer: the target's JSON, or why it has none.
pub type Answer = Result<serde_json::Value>;

/// Reads a target's JSON from the run loop.
fn ask(query: Query, (req, res): (&Sender<Query>, &Receiver<Answer>)) -> Answer {
    req.send(query)?;
    res.recv()?
}

/// The targets and their descriptions, served from the run loop's answers.
pub fn server_data() -> StatsServerData<Query, Answer> {
    let top: Box<dyn StatsReaderSend<Query, Answer>> =
        Box::new(|_args, channels| ask(Query::Top, channels));
    let threads: Box<dyn StatsReaderSend<Query, Answer>> = Box::new(|args, channels| {
        let tgid = match args.get("pid") {
            Some(pid) => Some(
                pid.parse()
                    .with_context(|| format!("pid '{pid}' is not a process id"))?,
            ),
            None => None,
        };
        ask(Query::Threads { tgid }, channels)
    });
    StatsServerData::new()
        .add_meta(Metrics::meta())
        .add_meta(Tunables::meta())
        .add_meta(ThreadRow::meta())
        .add_meta(Threads::meta())
        .add_stats("top", top)
        .add_stats("threads", threads)
}

/// The stats server, which outlives restarts of the BPF scheduler; its
/// socket is removed on drop.
pub struct Server {
    server: StatsServer<Query, Answer>,
    socket: PathBuf,
}

impl Server {
    /// Serves the targets on `socket`, which only its owner (root) may use,
    /// in a directory others cannot write (created mode 0700 if missing):
    /// in one they could, they could swap the socket for another.
    pub fn launch(socket: &Path) -> Result<Self> {
        let dir = socket
            .parent()
            .filter(|dir| !dir.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        crate::ctl::owner_only(|| std::fs::create_dir_all(dir))
            .with_context(|| format!("cannot create {}", dir.display()))?;
        crate::ctl::ensure_private_dir(dir)?;
        let server =
            crate::ctl::owner_only(|| StatsServer::new(server_data()).set_path(socket).launch())
                .with_context(|| format!("cannot serve statistics on {}", socket.display()))?;
        Ok(Self {
            server,
            socket: socket.to_path_buf(),
        })
    }

    /// The run loop's ends: answers go out, queries come in.
    pub fn channels(&self) -> (Sender<Answer>, Receiver<Query>) {
        self.server.channels()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// The request arguments that ask for the `threads` target: every thread,
/// or process `tgid`'s only.
pub fn threads_args(tgid: Option<u32>) -> Vec<(String, String)> {
    let mut args = vec![("target".to_string(), "threads".to_string())];
    if let Some(tgid) = tgid {
        args.push(("pid".into(), tgid.to_string()));
    }
    args
}

/// Connects to the stats socket of a running scx_llmos. Without a timeout: a
/// scheduler that is attaching or restarting answers once it runs.
pub fn connect(socket: &Path) -> Result<StatsClient> {
    StatsClient::new()
        .set_path(socket)
        .connect(None)
        .with_context(|| {
            format!(
                "cannot reach scx_llmos's statistics at {} (is it running?)",
                socket.display()
            )
        })
}

/// `--stats`/`--monitor`: prints every `interval` what happened since the
/// line before, until `shutdown` is set or the scheduler goes away.
pub fn monitor(socket: &Path, interval: Duration, shutdown: &AtomicBool) -> Result<()> {
    let mut client = connect(socket)?;
    let mut prev: Metrics = client.request("stats", vec![])?;
    while !shutdown.load(Ordering::Relaxed) {
        std::thread::sleep(interval);
        let now: Metrics = client
            .request("stats", vec![])
            .context("scx_llmos stopped answering")?;
        println!("{}", now.delta(&prev).format());
        prev = now;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counters() -> Counters {
        let mut counters = [0; NR_STATS];
        for (idx, value) in counters.iter_mut().enumerate() {
            *value = 100 + idx as u64;
        }
        counters
    }

    #[test]
    fn counters_bind_to_their_fields_by_symbol() {
        let m = Metrics::from_counters(&counters(), 4);
        let at = |stat: u32| 100 + u64::from(stat);
        assert_eq!(
            m.idle_dispatches,
            at(bpf_intf::llmos_stat_LLMOS_STAT_IDLE_DISPATCH)
        );
        assert_eq!(m.steals, at(bpf_intf::llmos_stat_LLMOS_STAT_STEAL));
        assert_eq!(m.preemptions, at(bpf_intf::llmos_stat_LLMOS_STAT_PREEMPT));
        assert_eq!(m.boost_ns, at(bpf_intf::llmos_stat_LLMOS_STAT_BOOST_NS));
        assert_eq!(m.pushed_offline, at(bpf_intf::llmos_stat_LLMOS_STAT_PUSHED));
        assert_eq!(
            m.dispatches(),
            [
                bpf_intf::llmos_stat_LLMOS_STAT_IDLE_DISPATCH,
                bpf_intf::llmos_stat_LLMOS_STAT_KTHREAD_DISPATCH,
                bpf_intf::llmos_stat_LLMOS_STAT_PINNED_DISPATCH,
                bpf_intf::llmos_stat_LLMOS_STAT_SHARED_DISPATCH,
                bpf_intf::llmos_stat_LLMOS_STAT_CPU_QUEUE,
            ]
            .map(at)
            .iter()
            .sum::<u64>()
        );
        // Every counter before the level runs has one field, and each field one counter.
        let mut stats: Vec<u32> = COUNTER_FIELDS.iter().map(|&(_, stat)| stat).collect();
        stats.sort_unstable();
        assert_eq!(stats, (0..FIRST_LEVEL as u32).collect::<Vec<_>>());
        let first = at(bpf_intf::llmos_stat_LLMOS_STAT_LEVEL_RUN);
        assert_eq!(m.level_runs, vec![first, first + 1, first + 2, first + 3]);
        assert_eq!(
            NR_STATS,
            FIRST_LEVEL + bpf_intf::llmos_consts_LLMOS_MAX_LEVELS as usize
        );
    }

    #[test]
    fn delta_counts_since_previous_and_keeps_the_settings() {
        let prev = Metrics::from_counters(&counters(), 2);
        let mut now = prev.clone();
        now.policy = "mlfq".into();
        let boost_250 = crate::settings::Assignment::parse("boost_ms=250").unwrap();
        now.tunables.set(&boost_250).unwrap();
        now.idle_dispatches += 10;
        now.boosts += 1;
        now.boost_ns += 2500;
        now.level_runs[1] += 5;
        let delta = now.delta(&prev);
        assert_eq!(
            delta,
            Metrics {
                policy: "mlfq".into(),
                tunables: now.tunables.clone(),
                idle_dispatches: 10,
                boosts: 1,
                boost_ns: 2500,
                level_runs: vec![0, 5],
                ..Metrics::default()
            }
        );
        assert_eq!(
            delta.format(),
            "[mlfq] dispatch idle 10 kthread 0 pinned 0 shared 0 cpu 0 | steal 0 refill 0 preempt 0 | boost 1 (2 us) | switch 0 carried 0 | xllc 0 pushed 0 | level runs 0/5"
        );
    }

    #[test]
    fn every_field_is_described() {
        for meta in [Metrics::meta(), ThreadRow::meta(), Threads::meta()] {
            for (name, field) in &meta.fields {
                assert!(
                    field.attrs.desc.as_deref().is_some_and(|d| !d.is_empty()),
                    "{}.{name} has no description",
                    meta.name
                );
            }
        }
    }

    #[test]
    fn targets_are_served_from_the_run_loop_on_an_owner_only_socket() {
        use std::os::unix::fs::PermissionsExt;

        let dir = std::env::temp_dir().join(format!("llmos-stats-test-{}", std::process::id()));
        let socket = dir.join("stats");
        let server = Server::launch(&socket).unwrap();
        for path in [&socket, &dir] {
            let mode = std::fs::metadata(path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} mode {mode:o}", path.display());
        }
        // The scheduler's run loop, as Scheduler::run() answers.
        let (answers, queries) = server.channels();
        let run_loop = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let query = queries.recv().unwrap();
                let answer = match &query {
                    Query::Top => Metrics {
                        policy: "prio".into(),
                        boosts: 3,
                        level_runs: vec![1, 2],
                        ..Metrics::default()
                    }
                    .to_json(),
                    Query::Threads { tgid } => Threads {
                        threads: vec![ThreadRow {
                            tid: 8,
                            tgid: tgid.unwrap().into(),
                            comm: "worker".into(),
                            ..ThreadRow::default()
                        }],
                        read_at_ns: 42,
                    }
                    .to_json(),
                };
                answers.send(answer).unwrap();
                seen.push(query);
            }
            seen
        });

        let mut client = connect(&socket).unwrap();
        let top: Metrics = client.request("stats", vec![]).unwrap();
        assert_eq!(
            (top.policy.as_str(), top.boosts, &top.level_runs[..]),
            ("prio", 3, &[1, 2][..])
        );
        let threads: Threads = client.request("stats", threads_args(Some(7))).unwrap();
        assert_eq!((threads.threads[0].tid, threads.threads[0].tgid), (8, 7));
        // A bad argument is refused before it reaches the run loop.
        let mut bad_pid = threads_args(None);
        bad_pid.push(("pid".into(), "seven".into()));
        let err = client.request::<Threads>("stats", bad_pid).unwrap_err();
        assert!(
            format!("{err:#}").contains("pid 'seven' is not a process id"),
            "{err:#}"
        );
        assert_eq!(
            run_loop.join().unwrap(),
            vec![Query::Top, Query::Threads { tgid: Some(7) }]
        );
        let meta: std::collections::BTreeMap<String, StatsMeta> =
            client.request("stats_meta", vec![]).unwrap();
        assert_eq!(
            meta.keys().map(String::as_str).collect::<Vec<_>>(),
            ["Metrics", "ThreadRow", "Threads", "Tunables"]
        );
        drop(server);
        assert!(!socket.exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn per_cpu_values_are_read_as_u64() {
        assert_eq!(as_u64(&42u64.to_ne_bytes()), 42);
        assert_eq!(as_u64(&[]), 0);
    }
}
