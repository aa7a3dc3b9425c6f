// SPDX-License-Identifier: GPL-2.0
//! scx_llmos: a sched_ext CPU scheduler. This is the loader: it checks that
//! the scheduler can run, configures and attaches the BPF program, reports
//! statistics while it runs, and detaches it cleanly on exit.

mod bpf_intf;
mod bpf_skel;
mod config;
mod ctl;
mod kconfig;
mod preflight;
mod rules;
mod settings;
mod stats;
mod threads;
mod top;

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bpf_skel::*;
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use crossbeam::channel::{Receiver, Sender};
use libbpf_rs::OpenObject;
use log::{info, warn};
use scx_stats::ToJson;
use scx_utils::{
    scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report, Topology, UserExitInfo,
};
use settings::{Policy, Settings};

const SCHEDULER_NAME: &str = "scx_llmos";

/// How often the run loop wakes, between requests, to check for exit and signals.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// scx_llmos: a sched_ext CPU scheduler that keeps interactive threads
/// responsive under load.
///
/// Runs until interrupted (Ctrl-C or SIGTERM); the kernel then returns every
/// thread to its default scheduler. Options given here override --config.
#[derive(Debug, Parser)]
#[command(name = SCHEDULER_NAME, version)]
struct Opts {
    #[command(subcommand)]
    command: Option<Command>,

    /// Scheduling policy (default: mlfq). `scx_llmos ctl policy P` switches
    /// it while the scheduler runs.
    #[arg(long, value_enum)]
    policy: Option<Policy>,

    /// TOML file with tunables (the options below, as `slice_us = 5000`),
    /// [[priority]] rules and affinity [[group]]s; see the README.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    #[command(flatten)]
    tunables: settings::TunableArgs,

    /// The control socket `scx_llmos ctl` talks to.
    #[arg(long, value_name = "PATH", default_value = ctl::DEFAULT_SOCKET)]
    ctl_socket: PathBuf,

    /// Run, and print every SEC seconds what the scheduler did (0.1 to
    /// 3600): its policy and the events of the interval.
    #[arg(long, value_name = "SEC", value_parser = parse_interval)]
    stats: Option<Duration>,

    /// Load nothing: print every SEC seconds what the running scx_llmos did,
    /// as --stats does (0.1 to 3600).
    #[arg(long, value_name = "SEC", value_parser = parse_interval, conflicts_with = "stats")]
    monitor: Option<Duration>,

    /// Describe every statistic the scheduler serves and exit.
    #[arg(long)]
    help_stats: bool,

    /// The scx_stats socket where the scheduler serves its statistics and
    /// thread rows, and where --monitor, `threads`, `top` and scx tools read
    /// them (before or after the subcommand).
    #[arg(long, value_name = "PATH", default_value = stats::DEFAULT_SOCKET, global = true)]
    stats_socket: PathBuf,

    /// Size of the kernel's debug dump printed if the scheduler exits with an
    /// error, in bytes (0: the kernel's default).
    #[arg(long, default_value_t = 0)]
    exit_dump_len: u32,

    /// Show libbpf's messages while loading (repeat for more).
    #[arg(short, long, action = clap::ArgAction::Count)]
    verbose: u8,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the per-thread table of the running scx_llmos (as root):
    /// level, CPU time, time waiting, runs, switches, migrations, demotions,
    /// boosts, priority and affinity group of every thread.
    Threads(ThreadsOpts),
    /// Watch the running scx_llmos live in the terminal, as top shows
    /// processes (as root): its policy, tunables and events per second, the
    /// threads on each mlfq level, and the threads by CPU %, wait %, runs/s,
    /// migrations/s, level, priority or tid (keys c w r m l p t; q, Esc or
    /// Ctrl-C quits).
    Top(TopOpts),
    /// Control the running scx_llmos (as root) without detaching it.
    #[command(subcommand)]
    Ctl(CtlCommand),
    /// Print the completion script for a shell, e.g.
    /// `scx_llmos completions bash > /etc/bash_completion.d/scx_llmos`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), e.g.
    /// `scx_llmos man > /usr/local/share/man/man8/scx_llmos.8`.
    Man,
}

#[derive(Debug, Subcommand)]
enum CtlCommand {
    /// Switch to another policy; queued threads are carried over.
    Policy {
        #[arg(value_enum)]
        policy: Policy,
    },
    /// Change a tunable that may change live (see --help and the README).
    Set {
        #[arg(value_name = "KEY=VALUE")]
        assignment: String,
    },
    /// Show the active policy and tunables.
    Status {
        /// One JSON object, keyed by setting, for scripts.
        #[arg(long)]
        json: bool,
    },
    /// For tests of the exit paths: make the BPF scheduler exit as a bug
    /// would (error: the kernel returns every thread to its default
    /// scheduler and scx_llmos exits non-zero with the reason and a dump),
    /// ask to be restarted (restart: scx_llmos loads it again), or queue
    /// the next task in another policy's queue, as a task queued during a
    /// switch may be (stray: the scheduler finds it within a second).
    InjectFault {
        #[arg(value_enum)]
        fault: Fault,
    },
}

/// What `ctl inject-fault` asks the BPF scheduler to do, for tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Fault {
    Error,
    Restart,
    Stray,
}

impl Fault {
    fn bpf_id(self) -> u32 {
        match self {
            Fault::Error => bpf_intf::llmos_fault_LLMOS_FAULT_ERROR,
            Fault::Restart => bpf_intf::llmos_fault_LLMOS_FAULT_RESTART,
            Fault::Stray => bpf_intf::llmos_fault_LLMOS_FAULT_STRAY,
        }
    }
}

impl CtlCommand {
    /// The request line sent over the control socket.
    fn request(&self) -> String {
        match self {
            CtlCommand::Policy { policy } => format!("policy {}", policy.name()),
            CtlCommand::Set { assignment } => format!("set {assignment}"),
            CtlCommand::Status { json: false } => "status".into(),
            CtlCommand::Status { json: true } => "status json".into(),
            CtlCommand::InjectFault { fault } => {
                format!(
                    "inject-fault {}",
                    fault.to_possible_value().unwrap().get_name()
                )
            }
        }
    }
}

#[derive(Debug, Args)]
struct ThreadsOpts {
    /// Only the threads of this process.
    #[arg(long)]
    pid: Option<u32>,

    /// Print the table again every SEC seconds (0.1 to 3600).
    #[arg(long, value_name = "SEC", value_parser = parse_interval)]
    interval: Option<Duration>,

    /// With --interval: stop after this many tables.
    #[arg(long, requires = "interval")]
    count: Option<u64>,

    /// One JSON object per table (the stats socket's `threads` target), for scripts.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct TopOpts {
    /// Poll the scheduler and redraw every SEC seconds (0.1 to 3600).
    #[arg(long, value_name = "SEC", value_parser = parse_interval, default_value = "1")]
    interval: Duration,
}

/// A request line of the control socket, as `Ctl::request` writes it.
#[derive(Debug, PartialEq, Eq)]
enum ControlRequest {
    Policy(Policy),
    Set(settings::Assignment),
    /// `status`, or `status json` for one JSON object.
    Status {
        json: bool,
    },
    InjectFault(Fault),
}

impl ControlRequest {
    /// Parses a line from a client, who may send anything: the error is one
    /// line that the client gets back.
    fn parse(command: &str) -> Result<Self> {
        Self::parse_line(command).map_err(config::one_line)
    }

    fn parse_line(command: &str) -> Result<Self> {
        let (verb, arg) = command.split_once(' ').unwrap_or((command, ""));
        Ok(match verb {
            "policy" => Self::Policy(Policy::parse(arg.trim())?),
            "set" => Self::Set(settings::Assignment::parse(arg.trim())?),
            "status" if arg.trim().is_empty() => Self::Status { json: false },
            "status" if arg.trim() == "json" => Self::Status { json: true },
            "inject-fault" => {
                Self::InjectFault(Fault::from_str(arg.trim(), false).map_err(|_| {
                    anyhow::anyhow!(
                        "unknown fault '{}' (expected error, restart or stray)",
                        arg.trim()
                    )
                })?)
            }
            _ => {
                bail!("unknown request '{command}' (expected policy, set, status or inject-fault)")
            }
        })
    }
}

/// The policy and tunables in force: the command line's over the config
/// file's over the defaults.
fn resolve_settings(opts: &Opts, file: &config::Config) -> Result<Settings> {
    Ok(Settings {
        policy: opts.policy.or(file.policy).unwrap_or(Policy::Mlfq),
        tunables: settings::Tunables::resolve(&opts.tunables.given, &file.tunables)?,
    })
}

/// Parses a statistics interval in seconds, fractions allowed.
fn parse_interval(arg: &str) -> Result<Duration, String> {
    let secs: f64 = arg
        .parse()
        .map_err(|_| format!("'{arg}' is not a number of seconds"))?;
    if !(0.1..=3600.0).contains(&secs) {
        return Err(format!("{secs} is not in 0.1..=3600 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The CPU topology as the BPF side reads it (see the rodata in
/// bpf/llmos.bpf.h).
#[derive(Debug, PartialEq)]
struct LlcLayout {
    /// The LLC of every CPU id, numbered densely from 0 in the order LLCs
    /// first appear (0 for ids that have no CPU).
    cpu_llc: Vec<u32>,
    /// The NUMA node of each LLC.
    llc_node: Vec<u32>,
    /// Every CPU, LLC by LLC: LLC l's are `llc_cpus[llc_first[l]..][..llc_nr_cpus[l]]`.
    llc_cpus: Vec<u32>,
    llc_first: Vec<u32>,
    llc_nr_cpus: Vec<u32>,
    /// Each CPU id's place among its LLC's CPUs in `llc_cpus`.
    cpu_pos: Vec<u32>,
}

/// The layout of CPUs given as CPU id -> (LLC id, NUMA node).
fn llc_layout(cpus: &BTreeMap<usize, (usize, usize)>) -> LlcLayout {
    let nr_cpu_ids = cpus.keys().next_back().map_or(0, |max| max + 1);
    let mut cpu_llc = vec![0u32; nr_cpu_ids];
    let mut dense: BTreeMap<usize, u32> = BTreeMap::new();
    let mut llc_node = Vec::new();
    for (&cpu, &(llc, node)) in cpus {
        cpu_llc[cpu] = *dense.entry(llc).or_insert_with(|| {
            llc_node.push(node as u32);
            llc_node.len() as u32 - 1
        });
    }
    let mut members: Vec<Vec<u32>> = vec![Vec::new(); llc_node.len()];
    for &cpu in cpus.keys() {
        members[cpu_llc[cpu] as usize].push(cpu as u32);
    }
    let mut cpu_pos = vec![0u32; nr_cpu_ids];
    let mut llc_first = Vec::new();
    let mut llc_nr_cpus = Vec::new();
    let mut llc_cpus = Vec::new();
    for list in members {
        llc_first.push(llc_cpus.len() as u32);
        llc_nr_cpus.push(list.len() as u32);
        for (pos, &cpu) in list.iter().enumerate() {
            cpu_pos[cpu as usize] = pos as u32;
        }
        llc_cpus.extend(list);
    }
    LlcLayout {
        cpu_llc,
        llc_node,
        llc_cpus,
        llc_first,
        llc_nr_cpus,
        cpu_pos,
    }
}

/// How long a policy switch may take to settle before `ctl` reports an error;
/// the BPF tick settles it within 10 ms.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(2);

struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    struct_ops: Option<libbpf_rs::Link>,
    settings: Settings,
    control: &'a ctl::Listener,
    stats_queries: Receiver<stats::Query>,
    stats_answers: Sender<stats::Answer>,
    /// The counters of the runs before a restart.
    earlier_counters: stats::Counters,
}

impl<'a> Scheduler<'a> {
    fn init(
        opts: &Opts,
        settings: &Settings,
        file: &config::Config,
        control: &'a ctl::Listener,
        stats_server: &stats::Server,
        earlier_counters: stats::Counters,
        open_object: &'a mut MaybeUninit<OpenObject>,
    ) -> Result<Self> {
        let topo = Topology::new().context("failed to read the CPU topology")?;
        let cpu_llcs: BTreeMap<usize, (usize, usize)> = topo
            .all_cpus
            .values()
            .map(|cpu| (cpu.id, (cpu.llc_id, cpu.node_id)))
            .collect();
        let layout = llc_layout(&cpu_llcs);
        let nr_llcs = layout.llc_node.len() as u32;
        if layout.cpu_llc.len() > bpf_intf::llmos_consts_LLMOS_MAX_CPUS as usize
            || nr_llcs > bpf_intf::llmos_consts_LLMOS_MAX_LLCS
        {
            bail!(
                "{} CPUs in {nr_llcs} LLCs is more than scx_llmos supports ({} CPUs, {} LLCs)",
                layout.cpu_llc.len(),
                bpf_intf::llmos_consts_LLMOS_MAX_CPUS,
                bpf_intf::llmos_consts_LLMOS_MAX_LLCS
            );
        }
        // A group may name a CPU that is offline now: the BPF side skips it
        // until it comes online.
        let possible_cpus =
            libbpf_rs::num_possible_cpus().context("failed to count the possible CPUs")?;
        let tables = rules::Tables::build(
            file,
            possible_cpus.min(bpf_intf::llmos_consts_LLMOS_MAX_CPUS as usize),
        )?;

        let mut skel_builder = BpfSkelBuilder::default();
        skel_builder.obj_builder.debug(opts.verbose > 0);
        let kconfig = kconfig::fallback();
        let open_opts =
            kconfig
                .as_ref()
                .map(|config| libbpf_rs::libbpf_sys::bpf_object_open_opts {
                    sz: std::mem::size_of::<libbpf_rs::libbpf_sys::bpf_object_open_opts>() as u64,
                    kconfig: config.as_ptr(),
                    ..Default::default()
                });
        let mut skel = scx_ops_open!(skel_builder, open_object, llmos_ops, open_opts)?;
        skel.struct_ops.llmos_ops_mut().exit_dump_len = opts.exit_dump_len;
        // `scx_llmos threads` links the thread iterator when it reads it.
        skel.progs.dump_threads.set_autoattach(false);

        let rodata = skel.maps.rodata_data.as_mut().unwrap();
        rodata.nr_llcs = nr_llcs;
        rodata.cpu_llc[..layout.cpu_llc.len()].copy_from_slice(&layout.cpu_llc);
        rodata.cpu_pos[..layout.cpu_pos.len()].copy_from_slice(&layout.cpu_pos);
        rodata.llc_node[..layout.llc_node.len()].copy_from_slice(&layout.llc_node);
        rodata.llc_first[..layout.llc_first.len()].copy_from_slice(&layout.llc_first);
        rodata.llc_nr_cpus[..layout.llc_nr_cpus.len()].copy_from_slice(&layout.llc_nr_cpus);
        rodata.llc_cpus[..layout.llc_cpus.len()].copy_from_slice(&layout.llc_cpus);
        for &cpu in cpu_llcs.keys() {
            rodata.cpus_in_topology[cpu / 64] |= 1 << (cpu % 64);
        }
        settings.tunables.write_at_load(rodata);
        rodata.loader_tgid = std::process::id();
        tables.write_to(rodata);
        let data = skel.maps.data_data.as_mut().unwrap();
        data.active_policy = settings.policy.bpf_id();
        let bss = skel.maps.bss_data.as_mut().unwrap();
        settings.tunables.write_live(&mut bss.tunables);
        // Switch 0: the policy it starts with.
        bss.policy_switch = u64::from(settings.policy.bpf_id());

        let mut skel = scx_ops_load!(skel, llmos_ops, uei)?;
        let struct_ops = Some(scx_ops_attach!(skel, llmos_ops)?);
        info!(
            "{SCHEDULER_NAME} {} attached: policy {}, {} CPUs in {nr_llcs} LLCs, {} priority rules, {} affinity groups, control socket {}",
            env!("CARGO_PKG_VERSION"),
            settings.policy.name(),
            cpu_llcs.len(),
            file.priority_rules.len(),
            file.groups.len(),
            opts.ctl_socket.display(),
        );

        let (stats_answers, stats_queries) = stats_server.channels();
        Ok(Self {
            skel,
            struct_ops,
            settings: settings.clone(),
            control,
            stats_queries,
            stats_answers,
            earlier_counters,
        })
    }

    fn run(&mut self, shutdown: &AtomicBool) -> Result<UserExitInfo> {
        let control = self.control;
        let (requests, queries) = (control.requests(), self.stats_queries.clone());
        while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&self.skel, uei) {
            // A channel whose serving thread is gone (neither ever returns)
            // is always ready: the loop then sleeps rather than spin.
            crossbeam::select! {
                recv(requests) -> request => match request {
                    Ok(request) => {
                        let reply = match self.handle(&request.command) {
                            Ok(text) => format!("ok: {text}"),
                            Err(err) => format!("error: {err:#}"),
                        };
                        request.reply(reply);
                    }
                    Err(_) => std::thread::sleep(POLL_INTERVAL),
                },
                recv(queries) -> query => match query {
                    // The client has gone if nobody takes the answer.
                    Ok(query) => drop(self.stats_answers.send(self.answer(query))),
                    Err(_) => std::thread::sleep(POLL_INTERVAL),
                },
                default(POLL_INTERVAL) => {}
            }
        }
        // Dropping the link detaches the scheduler; the kernel then records why.
        self.struct_ops.take();
        uei_report!(&self.skel, uei)
    }

    /// The JSON of the stats target a client asked for.
    fn answer(&self, query: stats::Query) -> stats::Answer {
        Ok(match query {
            stats::Query::Top => self.metrics()?.to_json()?,
            stats::Query::Threads { tgid } => stats::Threads {
                threads: threads::read(&self.skel.progs.dump_threads, tgid)?,
            }
            .to_json()?,
        })
    }

    /// The counters since scx_llmos started, this run's and the earlier ones'.
    fn counters(&self) -> Result<stats::Counters> {
        Ok(stats::add(
            &self.earlier_counters,
            &stats::read(&self.skel.maps.stats)?,
        ))
    }

    /// The policy, the tunables in force and the counters.
    fn metrics(&self) -> Result<stats::Metrics> {
        let settings = &self.settings;
        let counters = self.counters()?;
        Ok(stats::Metrics {
            policy: settings.policy.name(),
            tunables: settings.tunables.clone(),
            ..stats::Metrics::from_counters(&counters, settings.tunables.levels() as usize)
        })
    }

    /// Carries out one control request; returns what to tell the client.
    fn handle(&mut self, command: &str) -> Result<String> {
        match ControlRequest::parse(command)? {
            ControlRequest::Policy(policy) => self.switch_policy(policy),
            ControlRequest::Set(tunable) => self.set_tunable(tunable),
            ControlRequest::Status { json: false } => Ok(self.settings.describe()),
            ControlRequest::Status { json: true } => Ok(serde_json::to_string(&self.settings)?),
            ControlRequest::InjectFault(fault) => {
                let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
                // SAFETY: bss is the BPF program's mmapped globals; the tick
                // and ops.enqueue() read this word.
                unsafe { std::ptr::write_volatile(&mut bss.injected_fault, fault.bpf_id()) };
                warn!("injected fault: {fault:?}, as `ctl inject-fault` asked");
                Ok(format!("fault injected: {fault:?}"))
            }
        }
    }

    /// Switches the running scheduler's policy and waits until every queued
    /// task has been carried over to the new policy's queues.
    fn switch_policy(&mut self, policy: Policy) -> Result<String> {
        let old = self.settings.policy;
        let start = Instant::now();
        let data = self.skel.maps.data_data.as_deref_mut().unwrap();
        // SAFETY: data and bss are the BPF program's mmapped globals, which it
        // reads and writes concurrently: volatile accesses keep each one.
        unsafe { std::ptr::write_volatile(&mut data.active_policy, policy.bpf_id()) };
        let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
        // SAFETY: as above.
        let seq = (unsafe { std::ptr::read_volatile(&bss.policy_switch) } >> 32) + 1;
        // The policy must be visible before the switch that announces it.
        std::sync::atomic::fence(Ordering::SeqCst);
        // SAFETY: as above; one aligned 64-bit store, so the BPF tick reads
        // the sequence number and the policy together.
        unsafe {
            std::ptr::write_volatile(
                &mut bss.policy_switch,
                (seq << 32) | u64::from(policy.bpf_id()),
            )
        };
        self.settings.policy = policy;
        // SAFETY: as above.
        while unsafe { std::ptr::read_volatile(&bss.settled_seq) } < seq {
            if start.elapsed() > SETTLE_TIMEOUT {
                bail!(
                    "policy {} is active but queued tasks were not carried over within {} s",
                    policy.name(),
                    SETTLE_TIMEOUT.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        info!(
            "policy {} -> {} (settled in {} us)",
            old.name(),
            policy.name(),
            start.elapsed().as_micros()
        );
        Ok(format!("policy {} (was {})", policy.name(), old.name()))
    }

    /// Changes a tunable of the running scheduler; it applies to the next
    /// scheduling decision.
    fn set_tunable(&mut self, assignment: settings::Assignment) -> Result<String> {
        self.settings.tunables.set(&assignment)?;
        let bss = self.skel.maps.bss_data.as_deref_mut().unwrap();
        // SAFETY: bss is the BPF program's mmapped globals, which it reads
        // concurrently: volatile accesses reach it as they are, and only
        // the loader writes the tunables.
        let mut live = unsafe { std::ptr::read_volatile(&bss.tunables) };
        self.settings.tunables.write_live(&mut live);
        // SAFETY: as above.
        unsafe { std::ptr::write_volatile(&mut bss.tunables, live) };
        let description = format!("{} = {}", assignment.key(), assignment.value);
        info!("set {description}");
        Ok(description)
    }
}

impl Drop for Scheduler<'_> {
    fn drop(&mut self) {
        if self.struct_ops.take().is_some() {
            info!("detaching {SCHEDULER_NAME}");
        }
    }
}

fn init_logging() -> Result<()> {
    let config = simplelog::ConfigBuilder::new()
        .set_time_level(simplelog::LevelFilter::Off)
        .set_target_level(simplelog::LevelFilter::Off)
        .set_thread_level(simplelog::LevelFilter::Off)
        .set_location_level(simplelog::LevelFilter::Off)
        .build();
    simplelog::TermLogger::init(
        simplelog::LevelFilter::Info,
        config,
        simplelog::TerminalMode::Stderr,
        simplelog::ColorChoice::Never,
    )
    .context("failed to set up logging")
}

/// Fails unless this process runs as root (see preflight::require_root).
fn require_root() -> Result<()> {
    // SAFETY: geteuid() has no preconditions and cannot fail.
    preflight::require_root(unsafe { libc::geteuid() })
}

fn run(opts: &Opts) -> Result<()> {
    match &opts.command {
        Some(Command::Threads(threads)) => {
            require_root()?;
            return threads::show(
                &opts.stats_socket,
                threads.pid,
                threads.interval,
                threads.count,
                threads.json,
            );
        }
        Some(Command::Top(top)) => {
            require_root()?;
            return top::run(&opts.stats_socket, top.interval);
        }
        Some(Command::Completions { shell }) => {
            let mut command = Opts::command();
            clap_complete::generate(*shell, &mut command, SCHEDULER_NAME, &mut std::io::stdout());
            return Ok(());
        }
        Some(Command::Man) => {
            clap_mangen::Man::new(Opts::command())
                .section("8")
                .render(&mut std::io::stdout())?;
            return Ok(());
        }
        Some(Command::Ctl(command)) => {
            let reply = ctl::send(&opts.ctl_socket, &command.request())?;
            // JSON for scripts: the object alone, without the "ok: " of a reply.
            match command {
                CtlCommand::Status { json: true } => {
                    println!("{}", reply.strip_prefix("ok: ").unwrap_or(&reply))
                }
                _ => println!("{reply}"),
            }
            return Ok(());
        }
        None => {}
    }
    if opts.help_stats {
        stats::server_data().describe_meta(
            &mut std::io::stdout(),
            Some(&["Metrics", "Tunables", "Threads"]),
        )?;
        return Ok(());
    }
    if let Some(interval) = opts.monitor {
        require_root()?;
        // Loads nothing, so Ctrl-C may end it as it ends any reader.
        return stats::monitor(&opts.stats_socket, interval, &AtomicBool::new(false));
    }
    let file = match &opts.config {
        Some(path) => config::load(path)?,
        None => config::Config::default(),
    };
    let settings = resolve_settings(opts, &file)?;
    preflight::require_sched_ext_free(Path::new(preflight::SCHED_EXT_SYSFS))?;
    require_root()?;
    init_logging()?;

    let shutdown = Arc::new(AtomicBool::new(false));
    let on_signal = shutdown.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))
        .context("failed to install the SIGINT/SIGTERM handler")?;

    // Before attaching: a scheduler nobody can control must not start. It
    // outlives restarts, so that `ctl` keeps its socket and nothing leaks;
    // so does the stats server, whose socket only root may use.
    let control = ctl::Listener::bind(&opts.ctl_socket)?;
    let stats_server = stats::Server::launch(&opts.stats_socket)?;
    if let Some(interval) = opts.stats {
        let (socket, shutdown) = (opts.stats_socket.clone(), shutdown.clone());
        std::thread::Builder::new()
            .name("stats".into())
            .spawn(move || {
                if let Err(err) = stats::monitor(&socket, interval, &shutdown) {
                    warn!("--stats stopped: {err:#}");
                }
            })?;
    }
    let mut open_object = MaybeUninit::uninit();
    let mut settings = settings;
    let mut restarts = Restarts::default();
    let mut earlier_counters = [0; bpf_intf::llmos_stat_LLMOS_NR_STATS as usize];
    loop {
        let started = Instant::now();
        let mut sched = Scheduler::init(
            opts,
            &settings,
            &file,
            &control,
            &stats_server,
            earlier_counters,
            &mut open_object,
        )?;
        // uei_report! has printed the kernel's reason for the exit.
        let exit_info = sched.run(&shutdown)?;
        if !exit_info.should_restart() || shutdown.load(Ordering::Relaxed) {
            return Ok(());
        }
        // A restart keeps what `ctl` changed, and the counts so far.
        settings = sched.settings.clone();
        earlier_counters = sched.counters()?;
        drop(sched);
        let wait = restarts.next(started.elapsed())?;
        info!(
            "restarting {SCHEDULER_NAME} in {} ms (restart {} in a row)",
            wait.as_millis(),
            restarts.in_a_row
        );
        std::thread::sleep(wait);
    }
}

/// Restarts the kernel asked for, one after another: each waits twice as
/// long as the one before, and a scheduler that keeps exiting gives up.
#[derive(Debug, Default)]
struct Restarts {
    in_a_row: u32,
}

impl Restarts {
    /// A run this long resets the count: it was not a restart loop.
    const STABLE_RUN: Duration = Duration::from_secs(60);
    const FIRST_WAIT: Duration = Duration::from_millis(100);
    const MAX_IN_A_ROW: u32 = 8;

    /// How long to wait before the next restart, after a run of `ran`.
    fn next(&mut self, ran: Duration) -> Result<Duration> {
        if ran >= Self::STABLE_RUN {
            self.in_a_row = 0;
        }
        self.in_a_row += 1;
        if self.in_a_row > Self::MAX_IN_A_ROW {
            bail!(
                "the kernel asked for {} restarts in a row, each within {} s of the last: giving up",
                self.in_a_row - 1,
                Self::STABLE_RUN.as_secs()
            );
        }
        Ok(Self::FIRST_WAIT * 2u32.pow(self.in_a_row - 1))
    }
}

/// Squeezes a clap error into one line: what is wrong, and the valid values.
fn one_line_clap_error(err: &clap::Error) -> String {
    err.to_string()
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with("For more information"))
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let opts = match Opts::try_parse() {
        Ok(opts) => opts,
        Err(err) if err.use_stderr() => {
            eprintln!("{SCHEDULER_NAME}: {}", one_line_clap_error(&err));
            return ExitCode::from(2);
        }
        Err(err) => err.exit(),
    };
    match run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{SCHEDULER_NAME}: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Opts, String> {
        Opts::try_parse_from(std::iter::once(SCHEDULER_NAME).chain(args.iter().copied()))
            .map_err(|e| one_line_clap_error(&e))
    }

    fn settings(args: &[&str], file: &str) -> Result<Settings> {
        resolve_settings(&parse(args).unwrap(), &config::parse(file)?)
    }

    #[test]
    fn defaults() {
        let opts = parse(&[]).unwrap();
        assert_eq!(
            (opts.stats, opts.monitor, opts.help_stats),
            (None, None, false)
        );
        assert_eq!(opts.ctl_socket, PathBuf::from("/run/scx_llmos/ctl.sock"));
        assert_eq!(opts.stats_socket, PathBuf::from("/var/run/scx/root/stats"));
        assert_eq!(
            settings(&[], "").unwrap(),
            Settings {
                policy: Policy::Mlfq,
                tunables: settings::Tunables::default(),
            }
        );
    }

    #[test]
    fn command_line_overrides_the_config_file() {
        let file = "policy = \"prio\"\nslice_us = 5000\nmlfq_levels = 2\nboost_ms = 100\n";
        assert_eq!(
            settings(&[], file).unwrap().describe(),
            "policy prio\nslice_us 5000\nmlfq_levels 2\nmlfq_slices_us 1000,2000\nboost_ms 100\nprio_aging_ms 10"
        );
        assert_eq!(
            settings(&["--policy", "rr", "--slice-us", "700"], file)
                .unwrap()
                .describe(),
            "policy rr\nslice_us 700\nmlfq_levels 2\nmlfq_slices_us 1000,2000\nboost_ms 100\nprio_aging_ms 10"
        );
        assert_eq!(
            settings(&["--mlfq-slices-us", "100,200,300"], "mlfq_levels = 2")
                .unwrap_err()
                .to_string(),
            "mlfq_slices_us has 3 values but mlfq_levels is 2; they must match"
        );
    }

    #[test]
    fn ctl_requests() {
        let request = |args: &[&str]| match parse(args).unwrap().command {
            Some(Command::Ctl(command)) => command.request(),
            other => panic!("not a ctl command: {other:?}"),
        };
        assert_eq!(request(&["ctl", "policy", "fifo"]), "policy fifo");
        assert_eq!(request(&["ctl", "set", "boost_ms=500"]), "set boost_ms=500");
        assert_eq!(request(&["ctl", "status"]), "status");
        assert_eq!(request(&["ctl", "status", "--json"]), "status json");
        assert_eq!(
            request(&["ctl", "inject-fault", "restart"]),
            "inject-fault restart"
        );
        assert!(parse(&["ctl", "policy", "lottery"]).is_err());
        for args in [
            &["ctl", "policy", "fifo"][..],
            &["ctl", "set", "boost_ms=500"],
            &["ctl", "status"],
            &["ctl", "status", "--json"],
            &["ctl", "inject-fault", "error"],
            &["ctl", "inject-fault", "stray"],
        ] {
            assert!(ControlRequest::parse(&request(args)).is_ok(), "{args:?}");
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever a client sends, the reply is a request carried out or
        /// one line saying why not.
        #[test]
        fn hostile_control_requests(
            verb in "policy|set|status|inject-fault|[a-z]{0,8}|\\PC{0,8}",
            arg in "[a-z_=0-9,]{0,24}|[\\x00-\\x1f a-z]{0,12}|\\PC{0,24}",
        ) {
            let line = format!("{verb} {arg}");
            match ControlRequest::parse(&line) {
                Ok(ControlRequest::Policy(policy)) => proptest::prop_assert_eq!(policy.name(), arg.trim()),
                Ok(ControlRequest::Set(tunable)) => proptest::prop_assert!(arg.trim().starts_with(tunable.key())),
                Ok(ControlRequest::Status { .. }) => proptest::prop_assert_eq!(verb.as_str(), "status"),
                Ok(ControlRequest::InjectFault(_)) => proptest::prop_assert_eq!(verb.as_str(), "inject-fault"),
                Err(err) => {
                    let text = err.to_string();
                    proptest::prop_assert!(!text.is_empty() && !text.contains(['\n', '\r']), "{text:?}");
                }
            }
        }
    }

    #[test]
    fn status_lists_every_setting() {
        assert_eq!(
            settings(&[], "").unwrap().describe(),
            "policy mlfq\nslice_us 20000\nmlfq_levels 4\nmlfq_slices_us 1000,2000,4000,8000\nboost_ms 1000\nprio_aging_ms 10"
        );
    }

    #[test]
    fn completions_and_man_page_come_from_the_cli() {
        let mut bash = Vec::new();
        clap_complete::generate(
            clap_complete::Shell::Bash,
            &mut Opts::command(),
            SCHEDULER_NAME,
            &mut bash,
        );
        let bash = String::from_utf8(bash).unwrap();
        let mut man = Vec::new();
        clap_mangen::Man::new(Opts::command())
            .section("8")
            .render(&mut man)
            .unwrap();
        let man = String::from_utf8(man).unwrap();
        assert!(man.contains(".TH scx_llmos 8"), "{man}");
        // Every option and subcommand of --help is in both.
        let cli = Opts::command();
        for arg in cli.get_arguments().filter_map(|a| a.get_long()) {
            assert!(bash.contains(&format!("--{arg}")), "bash lacks --{arg}");
            assert!(
                man.contains(&arg.replace('-', "\\-")),
                "man page lacks --{arg}"
            );
        }
        for sub in cli.get_subcommands().map(|c| c.get_name()) {
            assert!(bash.contains(sub) && man.contains(sub), "{sub} missing");
        }
    }

    #[test]
    fn status_json_keys_every_setting() {
        let json = serde_json::to_value(settings(&["--policy", "prio"], "").unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "policy": "prio", "slice_us": 20000, "mlfq_levels": 4,
                "mlfq_slices_us": [1000, 2000, 4000, 8000], "boost_ms": 1000, "prio_aging_ms": 10
            })
        );
        assert_eq!(
            ControlRequest::parse("status json").unwrap(),
            ControlRequest::Status { json: true }
        );
    }

    #[test]
    fn unknown_policy_is_one_line_naming_it() {
        let err = parse(&["--policy", "lottery"]).unwrap_err();
        assert_eq!(
            err,
            "error: invalid value 'lottery' for '--policy <POLICY>' [possible values: mlfq, vtime, prio, affinity, fifo, rr]"
        );
    }

    #[test]
    fn slice_bounds() {
        let slice =
            |arg: &str| parse(&["--slice-us", arg]).unwrap().tunables.given["slice_us"].clone();
        assert_eq!(slice("100"), settings::Value::One(100));
        assert_eq!(slice("100000"), settings::Value::One(100_000));
        assert_eq!(
            parse(&["--slice-us", "99"]).unwrap_err(),
            "error: invalid value '99' for '--slice-us <SLICE_US>': 99 is not in 100..=100000"
        );
        assert!(parse(&["--slice-us", "100001"]).is_err());
    }

    #[test]
    fn stats_interval_bounds() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(
            parse_interval("0"),
            Err("0 is not in 0.1..=3600 seconds".into())
        );
        assert_eq!(
            parse_interval("soon"),
            Err("'soon' is not a number of seconds".into())
        );
        assert!(parse(&["--stats", "7200"]).is_err());
        assert_eq!(
            parse(&["--monitor", "0.5"]).unwrap().monitor,
            Some(Duration::from_millis(500))
        );
        // --monitor loads nothing, --stats runs the scheduler: not both.
        assert!(parse(&["--monitor", "1", "--stats", "1"])
            .unwrap_err()
            .contains("cannot be used with"));
    }

    #[test]
    fn tunable_options_come_from_the_table() {
        let opts = parse(&["--mlfq-levels", "3", "--mlfq-slices-us", "500,1500,9000"]).unwrap();
        assert_eq!(
            settings::Tunables::resolve(&opts.tunables.given, &settings::Given::new())
                .unwrap()
                .describe(" "),
            "slice_us 20000 mlfq_levels 3 mlfq_slices_us 500,1500,9000 boost_ms 1000 prio_aging_ms 10"
        );
        assert_eq!(
            parse(&["--mlfq-slices-us", "1000,50,2000,4000"]).unwrap_err(),
            "error: invalid value '50' for '--mlfq-slices-us <US,US,...>': 50 is not in 100..=100000"
        );
        assert!(parse(&["--mlfq-levels", "9"]).is_err());
        assert!(parse(&["--boost-ms", "5000"]).is_err());
        let help = Opts::command().render_long_help().to_string();
        for tunable in &settings::TUNABLES {
            let option = format!("--{}", tunable.name.replace('_', "-"));
            assert!(help.contains(&option), "--help lacks {option}");
        }
        assert!(help.contains("(100 to 100000 us; default 20000)"), "{help}");
    }

    #[test]
    fn threads_subcommand() {
        let opts = parse(&[
            "threads",
            "--pid",
            "42",
            "--interval",
            "0.5",
            "--count",
            "3",
        ])
        .unwrap();
        let Some(Command::Threads(t)) = opts.command else {
            panic!("no threads command")
        };
        assert_eq!(
            (t.pid, t.interval, t.count, t.json),
            (Some(42), Some(Duration::from_millis(500)), Some(3), false)
        );
        let Some(Command::Threads(t)) = parse(&["threads", "--json"]).unwrap().command else {
            panic!("no threads command")
        };
        assert!(t.json);
        assert!(parse(&["threads", "--count", "3"]).is_err());
    }

    #[test]
    fn top_subcommand() {
        let top = |args: &[&str]| match parse(args).map(|opts| (opts.command, opts.stats_socket)) {
            Ok((Some(Command::Top(top)), socket)) => Ok((top.interval, socket)),
            Ok((other, _)) => panic!("not a top command: {other:?}"),
            Err(err) => Err(err),
        };
        assert_eq!(
            top(&["top"]),
            Ok((Duration::from_secs(1), PathBuf::from(stats::DEFAULT_SOCKET)))
        );
        // The socket may come before or after the subcommand.
        let custom = Ok((Duration::from_millis(500), PathBuf::from("/tmp/s")));
        assert_eq!(
            top(&["top", "--interval", "0.5", "--stats-socket", "/tmp/s"]),
            custom
        );
        assert_eq!(
            top(&["--stats-socket", "/tmp/s", "top", "--interval", "0.5"]),
            custom
        );
        assert_eq!(
            top(&["top", "--interval", "0"]),
            Err(
                "error: invalid value '0' for '--interval <SEC>': 0 is not in 0.1..=3600 seconds"
                    .into()
            )
        );
    }

    #[test]
    fn restarts_back_off_and_give_up() {
        let mut restarts = Restarts::default();
        let quick = Duration::from_secs(1);
        let waits: Vec<u128> = (0..8)
            .map(|_| restarts.next(quick).unwrap().as_millis())
            .collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 3200, 6400, 12800]);
        assert_eq!(
            restarts.next(quick).unwrap_err().to_string(),
            "the kernel asked for 8 restarts in a row, each within 60 s of the last: giving up"
        );
        // A run of a minute was not part of a loop.
        let mut restarts = Restarts::default();
        restarts.next(quick).unwrap();
        restarts.next(quick).unwrap();
        assert_eq!(
            restarts.next(Duration::from_secs(60)).unwrap(),
            Duration::from_millis(100)
        );
    }

    #[test]
    fn llcs_are_numbered_densely_and_list_their_cpus() {
        let cpus = BTreeMap::from([
            (0, (7, 0)),
            (1, (7, 0)),
            (2, (3, 1)),
            (3, (3, 1)),
            (5, (9, 1)),
        ]);
        assert_eq!(
            llc_layout(&cpus),
            LlcLayout {
                cpu_llc: vec![0, 0, 1, 1, 0, 2],
                llc_node: vec![0, 1, 1],
                llc_cpus: vec![0, 1, 2, 3, 5],
                llc_first: vec![0, 2, 4],
                llc_nr_cpus: vec![2, 2, 1],
                cpu_pos: vec![0, 1, 0, 1, 0, 0],
            }
        );
        assert!(llc_layout(&BTreeMap::new()).llc_cpus.is_empty());
    }
}
