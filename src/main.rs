// SPDX-License-Identifier: GPL-2.0
//! scx_llmos: a sched_ext CPU scheduler. This is the loader: it checks that
//! the scheduler can run, configures and attaches the BPF program, reports
//! statistics while it runs, and detaches it cleanly on exit.

mod bpf_intf;
mod bpf_skel;
mod config;
mod ctl;
mod kconfig;
mod ksym;
mod preflight;
mod rules;
mod scheduler;
mod settings;
mod stats;
mod threads;
mod top;

use std::mem::MaybeUninit;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, CommandFactory, Parser, Subcommand};
use log::{info, warn};
use scheduler::{Restarts, Scheduler};
use settings::{Policy, Settings};

const SCHEDULER_NAME: &str = "scx_llmos";

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
    /// Re-read the --config file's [[priority]] rules and [[group]]s and
    /// apply them without a restart: each thread takes them when it next
    /// runs. The file's policy and tunables are checked but not applied
    /// (`ctl policy` and `ctl set` change those); a file with a mistake
    /// changes nothing.
    Reload,
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
        fault: ctl::Fault,
    },
}

impl CtlCommand {
    /// The request to send; an assignment is checked here first, so that a
    /// mistake is told without asking the scheduler.
    fn request(&self) -> Result<ctl::ControlRequest> {
        Ok(match self {
            CtlCommand::Policy { policy } => ctl::ControlRequest::Policy(*policy),
            CtlCommand::Set { assignment } => {
                ctl::ControlRequest::Set(settings::Assignment::parse(assignment)?)
            }
            CtlCommand::Reload => ctl::ControlRequest::Reload,
            CtlCommand::Status { json } => ctl::ControlRequest::Status { json: *json },
            CtlCommand::InjectFault { fault } => ctl::ControlRequest::InjectFault(*fault),
        })
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
            let reply = ctl::send(&opts.ctl_socket, &command.request()?.line())?;
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
    let mut file = match &opts.config {
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
        file = sched.config.clone();
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
            "policy prio\nslice_us 5000\nmlfq_levels 2\nmlfq_slices_us 1000,2000\nboost_ms 100\nprio_aging_ms 10\npriority_inheritance 1"
        );
        assert_eq!(
            settings(&["--policy", "rr", "--slice-us", "700"], file)
                .unwrap()
                .describe(),
            "policy rr\nslice_us 700\nmlfq_levels 2\nmlfq_slices_us 1000,2000\nboost_ms 100\nprio_aging_ms 10\npriority_inheritance 1"
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
            Some(Command::Ctl(command)) => command
                .request()
                .map(|r| r.line())
                .map_err(|e| e.to_string()),
            other => panic!("not a ctl command: {other:?}"),
        };
        assert_eq!(request(&["ctl", "policy", "fifo"]).unwrap(), "policy fifo");
        assert_eq!(
            request(&["ctl", "set", " boost_ms = 500"]).unwrap(),
            "set boost_ms=500"
        );
        assert_eq!(request(&["ctl", "status"]).unwrap(), "status");
        assert_eq!(
            request(&["ctl", "status", "--json"]).unwrap(),
            "status json"
        );
        assert_eq!(
            request(&["ctl", "inject-fault", "restart"]).unwrap(),
            "inject-fault restart"
        );
        assert!(parse(&["ctl", "policy", "lottery"]).is_err());
        // A bad assignment is told before asking the scheduler.
        assert_eq!(
            request(&["ctl", "set", "boost_ms=5"]).unwrap_err(),
            "boost_ms = 5 is not in 10..=2000"
        );
    }

    #[test]
    fn status_lists_every_setting() {
        assert_eq!(
            settings(&[], "").unwrap().describe(),
            "policy mlfq\nslice_us 20000\nmlfq_levels 4\nmlfq_slices_us 1000,2000,4000,8000\nboost_ms 1000\nprio_aging_ms 10\npriority_inheritance 1"
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
                "mlfq_slices_us": [1000, 2000, 4000, 8000], "boost_ms": 1000, "prio_aging_ms": 10,
                "priority_inheritance": 1
            })
        );
    }

    #[test]
    fn unknown_policy_is_one_line_naming_it() {
        let err = parse(&["--policy", "lottery"]).unwrap_err();
        assert_eq!(
            err,
            "error: invalid value 'lottery' for '--policy <POLICY>' [possible values: mlfq, vtime, prio, affinity, fifo, rr, edf, rms]"
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
            "slice_us 20000 mlfq_levels 3 mlfq_slices_us 500,1500,9000 boost_ms 1000 prio_aging_ms 10 priority_inheritance 1"
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
}
