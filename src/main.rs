// SPDX-License-Identifier: GPL-2.0
//! scx_llmos: a sched_ext CPU scheduler. This is the loader: it checks that
//! the scheduler can run, configures and attaches the BPF program, reports
//! statistics while it runs, and detaches it cleanly on exit.

mod bpf_intf;
mod bpf_skel;
mod kconfig;
mod preflight;
mod stats;
mod threads;

use std::collections::BTreeMap;
use std::mem::MaybeUninit;
use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bpf_skel::*;
use clap::{Args, Parser, Subcommand, ValueEnum};
use libbpf_rs::OpenObject;
use log::info;
use scx_utils::{
    scx_ops_attach, scx_ops_load, scx_ops_open, uei_exited, uei_report, Topology, UserExitInfo,
};

const SCHEDULER_NAME: &str = "scx_llmos";

/// How often the run loop wakes to check for exit, signals and statistics.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Policy {
    /// Multi-level feedback queue: threads that sleep often stay on top and
    /// preempt CPU hogs, which sink to levels with longer slices; every
    /// --boost-ms everything returns to the top.
    Mlfq,
    /// Weighted fair virtual time: each thread gets CPU in proportion to its
    /// nice weight, and a waking thread gets at most one slice of credit.
    Vtime,
}

impl Policy {
    fn bpf_id(self) -> u32 {
        match self {
            Policy::Mlfq => bpf_intf::llmos_policy_LLMOS_POLICY_MLFQ,
            Policy::Vtime => bpf_intf::llmos_policy_LLMOS_POLICY_VTIME,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Policy::Mlfq => "mlfq",
            Policy::Vtime => "vtime",
        }
    }
}

/// scx_llmos: a sched_ext CPU scheduler that keeps interactive threads
/// responsive under load.
///
/// Runs until interrupted (Ctrl-C or SIGTERM); the kernel then returns every
/// thread to its default scheduler.
#[derive(Debug, Parser)]
#[command(name = SCHEDULER_NAME, version)]
struct Opts {
    #[command(subcommand)]
    command: Option<Command>,

    /// Scheduling policy.
    #[arg(long, value_enum, default_value_t = Policy::Mlfq)]
    policy: Policy,

    /// vtime policy: time slice in microseconds, how long a thread may run
    /// before others waiting for its CPU get a turn (100 to 100000; the
    /// default is the kernel's default sched_ext slice).
    #[arg(long, default_value_t = 20_000, value_parser = clap::value_parser!(u64).range(100..=100_000))]
    slice_us: u64,

    /// mlfq policy: number of priority levels (2 to 8).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(2..=8))]
    mlfq_levels: u32,

    /// mlfq policy: each level's time slice in microseconds, top level first,
    /// comma-separated, one per level (each 100 to 100000). A thread that
    /// uses a level's slice, counted across turns, drops a level. Default:
    /// 1000 at the top, doubling per level.
    #[arg(long, value_name = "US,US,...", value_delimiter = ',', value_parser = clap::value_parser!(u64).range(100..=100_000))]
    mlfq_slices_us: Vec<u64>,

    /// mlfq policy: every this many milliseconds every thread returns to the
    /// top level, so nothing starves (10 to 2000).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(10..=2000))]
    boost_ms: u64,

    /// Print dispatch statistics every SEC seconds (0.1 to 3600).
    #[arg(long, value_name = "SEC", value_parser = parse_interval)]
    stats: Option<Duration>,

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
    /// level, CPU time, time waiting, runs, switches, migrations, demotions
    /// and boosts of every thread.
    Threads(ThreadsOpts),
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
}

/// The MLFQ level slices in microseconds: the user's list, which must have
/// one value per level, or 1000 doubling per level.
fn mlfq_slices_us(levels: u32, given: &[u64]) -> Result<Vec<u64>> {
    if given.is_empty() {
        return Ok((0..levels).map(|level| 1000 << level).collect());
    }
    if given.len() != levels as usize {
        bail!(
            "--mlfq-slices-us has {} values but --mlfq-levels is {levels}",
            given.len()
        );
    }
    Ok(given.to_vec())
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

/// Numbers each CPU's LLC densely from 0, in the order LLCs first appear.
/// Returns the LLC index of every CPU id (0 for ids that have no CPU) and the
/// number of LLCs.
fn llc_table(cpu_llcs: &BTreeMap<usize, usize>) -> (Vec<u32>, u32) {
    let nr_cpu_ids = cpu_llcs.keys().next_back().map_or(0, |max| max + 1);
    let mut table = vec![0u32; nr_cpu_ids];
    let mut dense: BTreeMap<usize, u32> = BTreeMap::new();
    for (&cpu, &llc) in cpu_llcs {
        let next = dense.len() as u32;
        table[cpu] = *dense.entry(llc).or_insert(next);
    }
    (table, dense.len() as u32)
}

struct Scheduler<'a> {
    skel: BpfSkel<'a>,
    struct_ops: Option<libbpf_rs::Link>,
    stats_interval: Option<Duration>,
    levels: usize,
}

impl<'a> Scheduler<'a> {
    fn init(opts: &Opts, open_object: &'a mut MaybeUninit<OpenObject>) -> Result<Self> {
        let slices_us = mlfq_slices_us(opts.mlfq_levels, &opts.mlfq_slices_us)?;
        let topo = Topology::new().context("failed to read the CPU topology")?;
        let cpu_llcs: BTreeMap<usize, usize> = topo
            .all_cpus
            .values()
            .map(|cpu| (cpu.id, cpu.llc_id))
            .collect();
        let (cpu_llc, nr_llcs) = llc_table(&cpu_llcs);
        if cpu_llc.len() > bpf_intf::llmos_consts_LLMOS_MAX_CPUS as usize
            || nr_llcs > bpf_intf::llmos_consts_LLMOS_MAX_LLCS
        {
            bail!(
                "{} CPUs in {nr_llcs} LLCs is more than scx_llmos supports ({} CPUs, {} LLCs)",
                cpu_llc.len(),
                bpf_intf::llmos_consts_LLMOS_MAX_CPUS,
                bpf_intf::llmos_consts_LLMOS_MAX_LLCS
            );
        }

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

        let rodata = skel.maps.rodata_data.as_mut().unwrap();
        rodata.slice_ns = opts.slice_us * 1000;
        rodata.nr_llcs = nr_llcs;
        rodata.cpu_llc[..cpu_llc.len()].copy_from_slice(&cpu_llc);
        rodata.nr_levels = opts.mlfq_levels;
        for (dst, us) in rodata.level_slice_ns.iter_mut().zip(&slices_us) {
            *dst = us * 1000;
        }
        rodata.boost_interval_ns = opts.boost_ms * 1_000_000;
        skel.maps.data_data.as_mut().unwrap().active_policy = opts.policy.bpf_id();

        let mut skel = scx_ops_load!(skel, llmos_ops, uei)?;
        let struct_ops = Some(scx_ops_attach!(skel, llmos_ops)?);
        let tuning = match opts.policy {
            Policy::Mlfq => format!(
                "level slices {slices_us:?} us, boost every {} ms",
                opts.boost_ms
            ),
            Policy::Vtime => format!("slice {} us", opts.slice_us),
        };
        info!(
            "{SCHEDULER_NAME} {} attached: policy {}, {tuning}, {} CPUs in {nr_llcs} LLCs",
            env!("CARGO_PKG_VERSION"),
            opts.policy.name(),
            cpu_llcs.len(),
        );

        Ok(Self {
            skel,
            struct_ops,
            stats_interval: opts.stats,
            levels: match opts.policy {
                Policy::Mlfq => opts.mlfq_levels as usize,
                Policy::Vtime => 1,
            },
        })
    }

    fn run(&mut self, shutdown: &AtomicBool) -> Result<UserExitInfo> {
        let mut last_counters = stats::read(&self.skel.maps.stats)?;
        let mut last_report = Instant::now();
        while !shutdown.load(Ordering::Relaxed) && !uei_exited!(&self.skel, uei) {
            std::thread::sleep(POLL_INTERVAL);
            if let Some(interval) = self.stats_interval {
                if last_report.elapsed() >= interval {
                    let counters = stats::read(&self.skel.maps.stats)?;
                    println!(
                        "{}",
                        stats::format_delta(&last_counters, &counters, self.levels)
                    );
                    last_counters = counters;
                    last_report = Instant::now();
                }
            }
        }
        // Dropping the link detaches the scheduler; the kernel then records why.
        self.struct_ops.take();
        uei_report!(&self.skel, uei)
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

fn run(opts: &Opts) -> Result<()> {
    if let Some(Command::Threads(threads)) = &opts.command {
        // SAFETY: geteuid() has no preconditions and cannot fail.
        preflight::require_root(unsafe { libc::geteuid() })?;
        return threads::show(threads.pid, threads.interval, threads.count);
    }
    mlfq_slices_us(opts.mlfq_levels, &opts.mlfq_slices_us)?;
    preflight::require_sched_ext_free(Path::new(preflight::SCHED_EXT_SYSFS))?;
    // SAFETY: geteuid() has no preconditions and cannot fail.
    preflight::require_root(unsafe { libc::geteuid() })?;
    init_logging()?;

    let shutdown = Arc::new(AtomicBool::new(false));
    let on_signal = shutdown.clone();
    ctrlc::set_handler(move || on_signal.store(true, Ordering::Relaxed))
        .context("failed to install the SIGINT/SIGTERM handler")?;

    let mut open_object = MaybeUninit::uninit();
    loop {
        let mut sched = Scheduler::init(opts, &mut open_object)?;
        let exit_info = sched.run(&shutdown)?;
        if !exit_info.should_restart() {
            return Ok(());
        }
        info!("the kernel asked {SCHEDULER_NAME} to restart");
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

    #[test]
    fn defaults() {
        let opts = parse(&[]).unwrap();
        assert_eq!(opts.policy, Policy::Mlfq);
        assert_eq!((opts.mlfq_levels, opts.boost_ms), (4, 1000));
        assert_eq!(opts.slice_us, 20_000);
        assert_eq!(opts.stats, None);
    }

    #[test]
    fn unknown_policy_is_one_line_naming_it() {
        let err = parse(&["--policy", "lottery"]).unwrap_err();
        assert_eq!(
            err,
            "error: invalid value 'lottery' for '--policy <POLICY>' [possible values: mlfq, vtime]"
        );
    }

    #[test]
    fn slice_bounds() {
        assert_eq!(parse(&["--slice-us", "100"]).unwrap().slice_us, 100);
        assert_eq!(parse(&["--slice-us", "100000"]).unwrap().slice_us, 100_000);
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
    }

    #[test]
    fn mlfq_slices_default_and_explicit() {
        assert_eq!(
            mlfq_slices_us(4, &[]).unwrap(),
            vec![1000, 2000, 4000, 8000]
        );
        assert_eq!(mlfq_slices_us(2, &[]).unwrap(), vec![1000, 2000]);
        let opts = parse(&["--mlfq-levels", "3", "--mlfq-slices-us", "500,1500,9000"]).unwrap();
        assert_eq!(
            mlfq_slices_us(opts.mlfq_levels, &opts.mlfq_slices_us).unwrap(),
            vec![500, 1500, 9000]
        );
        assert_eq!(
            mlfq_slices_us(4, &[1000, 2000]).unwrap_err().to_string(),
            "--mlfq-slices-us has 2 values but --mlfq-levels is 4"
        );
        assert!(parse(&["--mlfq-slices-us", "1000,50,2000,4000"]).is_err());
        assert!(parse(&["--mlfq-levels", "9"]).is_err());
        assert!(parse(&["--boost-ms", "5000"]).is_err());
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
            (t.pid, t.interval, t.count),
            (Some(42), Some(Duration::from_millis(500)), Some(3))
        );
        assert!(parse(&["threads", "--count", "3"]).is_err());
    }

    #[test]
    fn llcs_are_numbered_densely() {
        let cpus = BTreeMap::from([(0, 7), (1, 7), (2, 3), (3, 3), (5, 9)]);
        assert_eq!(llc_table(&cpus), (vec![0, 0, 1, 1, 0, 2], 3));
        assert_eq!(llc_table(&BTreeMap::new()), (vec![], 0));
    }
}
