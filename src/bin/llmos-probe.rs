// SPDX-License-Identifier: GPL-2.0
//! llmos-probe: measures what a scheduler does to an interactive thread
//! while CPU hogs compete with it.
//!
//! One "sleeper" thread wakes on an absolute deadline every period
//! (clock_nanosleep with TIMER_ABSTIME, timer slack 1 ns), records how late
//! it woke, and works for a short burst. Spinner threads count loop
//! iterations; their counts per interval show who got CPU and who starved.
//! A deadline missed entirely counts as a late sample of its own, so a long
//! stall cannot hide as one bad sample.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Parser;

#[path = "shared/clock.rs"]
mod clock;
use clock::{now_ns, sleep_until_ns, NSEC_PER_SEC};

/// Run an interactive thread against CPU hogs and report its wakeup
/// lateness and the hogs' progress.
#[derive(Debug, Parser)]
#[command(name = "llmos-probe")]
struct Opts {
    /// How long to measure, in seconds.
    #[arg(long, default_value_t = 6)]
    duration_s: u64,

    /// Leave the sleeper's first wakeups of this many milliseconds out of the
    /// figures: they measure thread start-up, not scheduling.
    #[arg(long, default_value_t = 1000)]
    warmup_ms: u64,

    /// Spinning threads (default: twice the number of CPUs).
    #[arg(long)]
    spinners: Option<usize>,

    /// The sleeper's wakeup period in microseconds.
    #[arg(long, default_value_t = 10_000)]
    period_us: u64,

    /// How long the sleeper works after each wakeup, in microseconds.
    #[arg(long, default_value_t = 100)]
    run_us: u64,

    /// Length of a progress interval for the spinners, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    interval_ms: u64,

    /// Write every lateness sample to this file, one "<deadline ms> <µs late>"
    /// line per period (sample i belongs to the i-th deadline).
    #[arg(long)]
    samples_out: Option<std::path::PathBuf>,

    /// After measuring, keep every thread alive but asleep this many seconds
    /// (after printing HOLD), so that others can inspect them.
    #[arg(long, default_value_t = 0)]
    hold_s: u64,

    /// Sleep in the process's main thread, the one that exec'd and created
    /// the spinners, which spin from their creation on (no start gate), as a
    /// program would; by default the sleeper is a thread of its own that
    /// starts with the spinners at a gate. Incompatible with --hold-s.
    #[arg(long, conflicts_with = "hold_s")]
    main_thread_sleeper: bool,

    /// With --main-thread-sleeper: first work this many milliseconds in the
    /// main thread, before creating the spinners, as a program starting up
    /// would (loading, parsing). A scheduler that judges a thread by its
    /// past sees a CPU hog in it.
    #[arg(long, default_value_t = 0, requires = "main_thread_sleeper")]
    startup_work_ms: u64,
}

fn gettid() -> i32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() }
}

/// A start gate: threads sleep on it until it opens, then all run at once.
/// A futex rather than std's Barrier: a Barrier's waiters each retake one
/// mutex on release, and with thousands of runnable spinners a preempted
/// holder convoys the rest for minutes.
#[derive(Default)]
struct Gate(AtomicU32);

impl Gate {
    /// Waits for open(), then wakes every thread still waiting: the opener
    /// wakes thousands of waiters one after another in one system call,
    /// and a scheduler may preempt it halfway and make it wait behind the
    /// very CPU hogs it has woken. Every woken thread finishing the job
    /// keeps the start of a run from hanging on one thread.
    fn wait(&self) {
        while self.0.load(Ordering::Acquire) == 0 {
            // SAFETY: FUTEX_WAIT on a live, aligned u32 that stays 0 until
            // open(); a spurious or interrupted return just loops.
            unsafe {
                libc::syscall(
                    libc::SYS_futex,
                    self.0.as_ptr(),
                    libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                    0,
                    std::ptr::null::<libc::timespec>(),
                )
            };
        }
        self.wake_all();
    }

    fn open(&self) {
        self.0.store(1, Ordering::Release);
        self.wake_all();
    }

    fn wake_all(&self) {
        // SAFETY: FUTEX_WAKE on a live, aligned u32.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                self.0.as_ptr(),
                libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG,
                i32::MAX,
            )
        };
    }
}

/// A spinner's iteration count, on a cache line of its own so that
/// spinners on different CPUs do not slow each other down.
#[derive(Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

/// Threads need little stack; 10,000 of them at the default 2 MiB would
/// reserve 20 GiB of address space.
const THREAD_STACK: usize = 256 * 1024;

/// The sleeper's time waiting in a run queue, from the kernel's schedstat
/// (its second field, run_delay, counts every nanosecond the thread was
/// runnable but not running). Lateness is the timer's delay plus this wait;
/// only the wait is the scheduler's choice.
struct QueueWait {
    file: std::fs::File,
    last_ns: Option<u64>,
}

impl QueueWait {
    /// None where the kernel has no schedstat (CONFIG_SCHED_INFO off).
    fn open() -> Option<Self> {
        let file = std::fs::File::open("/proc/thread-self/schedstat").ok()?;
        Some(Self {
            file,
            last_ns: None,
        })
    }

    /// The time spent queued since the previous call (None the first time).
    fn since_last(&mut self) -> Option<u64> {
        use std::os::unix::fs::FileExt;
        let mut buf = [0u8; 96];
        let len = self.file.read_at(&mut buf, 0).ok()?;
        let now = run_delay_ns(std::str::from_utf8(&buf[..len]).ok()?)?;
        self.last_ns
            .replace(now)
            .map(|last| now.saturating_sub(last))
    }
}

/// The run_delay field of a schedstat line: "<on cpu> <run_delay> <slices>".
fn run_delay_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().nth(1)?.parse().ok()
}

/// Records the lateness of a wakeup at `woke` for `deadline`, plus one
/// sample for every later deadline that also passed before `woke`. Returns
/// the next deadline still in the future.
fn record_wakeup(samples: &mut Vec<u64>, deadline: u64, woke: u64, period: u64) -> u64 {
    let mut missed = deadline;
    loop {
        samples.push(woke.saturating_sub(missed));
        missed += period;
        if missed > woke {
            return missed;
        }
    }
}

/// The `pct` percentile by the nearest-rank method; `sorted` ascending.
fn percentile(sorted: &[u64], pct: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = ((pct / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Lateness summary: (p50, p99, max, fraction of samples over `late_ns`).
fn summarize(samples: &[u64], late_ns: u64) -> (u64, u64, u64, f64) {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let late = sorted.iter().filter(|&&s| s > late_ns).count();
    let frac = if sorted.is_empty() {
        0.0
    } else {
        late as f64 / sorted.len() as f64
    };
    (
        percentile(&sorted, 50.0),
        percentile(&sorted, 99.0),
        sorted.last().copied().unwrap_or(0),
        frac,
    )
}

/// How many of the sleeper's wakeups went from the CPU it slept on to the
/// CPU it woke on, by (from, to).
type CpuMoves = BTreeMap<(i32, i32), u64>;

/// "from>to:count" for each pair, e.g. "2>2:390 2>3:8".
fn format_moves(moves: &CpuMoves) -> String {
    let pairs: Vec<String> = moves
        .iter()
        .map(|((from, to), n)| format!("{from}>{to}:{n}"))
        .collect();
    pairs.join(" ")
}

fn current_cpu() -> i32 {
    // SAFETY: sched_getcpu takes no arguments.
    unsafe { libc::sched_getcpu() }
}

fn spin_for_ns(ns: u64) {
    let end = now_ns() + ns;
    while now_ns() < end {
        std::hint::spin_loop();
    }
}

/// How many periods the sleeper finished its work in after the period had
/// ended (lateness + work > period), as a frame of a game or a video would
/// be dropped. Every missed deadline is a sample of its own (see
/// record_wakeup()).
fn frames_missed(samples: &[u64], period: u64, run_ns: u64) -> usize {
    samples
        .iter()
        .filter(|&&late| late + run_ns > period)
        .count()
}

/// What the sleeper saw: lateness and queue-wait samples, when it first ran,
/// and which CPUs it slept and woke on.
type SleeperRun = (Vec<u64>, Vec<u64>, u64, CpuMoves);

/// The sleeper's loop, until `stop`: wake on each deadline, record how late,
/// work `run_ns`.
fn sleep_loop(period: u64, run_ns: u64, stop: &AtomicBool) -> SleeperRun {
    // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut samples = Vec::new();
    // Deadlines count from the sleeper's first turn; how long that took
    // after the start is reported on its own (start_us), so a slow start
    // shows without swamping the steady state.
    let first_run = now_ns();
    let mut deadline = first_run + period;
    let mut moves = CpuMoves::new();
    let mut waits = Vec::new();
    let mut queue_wait = QueueWait::open();
    while !stop.load(Ordering::Relaxed) {
        let slept_on = current_cpu();
        sleep_until_ns(deadline);
        deadline = record_wakeup(&mut samples, deadline, now_ns(), period);
        *moves.entry((slept_on, current_cpu())).or_default() += 1;
        waits.extend(queue_wait.as_mut().and_then(QueueWait::since_last));
        spin_for_ns(run_ns);
    }
    (samples, waits, first_run, moves)
}

/// Spinner progress per interval over `duration_s` from `start`, sampled on
/// absolute deadlines; then sets `stop`. Returns the progress and the
/// seconds it took.
fn watch_spinners(
    counters: &[Arc<Counter>],
    start: u64,
    interval_ms: u64,
    duration_s: u64,
    stop: &AtomicBool,
) -> (Vec<Vec<u64>>, f64) {
    let interval = interval_ms * 1_000_000;
    let intervals = (duration_s * NSEC_PER_SEC).div_ceil(interval);
    let mut last: Vec<u64> = vec![0; counters.len()];
    let mut progress: Vec<Vec<u64>> = vec![Vec::new(); counters.len()];
    for i in 1..=intervals {
        sleep_until_ns(start + i * interval);
        for (idx, counter) in counters.iter().enumerate() {
            let now = counter.0.load(Ordering::Relaxed);
            progress[idx].push(now - last[idx]);
            last[idx] = now;
        }
    }
    let elapsed_s = (now_ns() - start) as f64 / NSEC_PER_SEC as f64;
    stop.store(true, Ordering::Relaxed);
    (progress, elapsed_s)
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    let nr_spinners = opts
        .spinners
        .unwrap_or_else(|| 2 * thread::available_parallelism().map_or(1, |n| n.get()));
    let period = opts.period_us * 1000;
    let stop = Arc::new(AtomicBool::new(false));
    let release = Arc::new(AtomicBool::new(false));
    let (tid_tx, tid_rx) = mpsc::channel();
    // Every thread waits (asleep) until all exist: with thousands of
    // spinners, creating threads while the first ones already spin would
    // take the creator minutes of contended CPU. A main-thread sleeper's
    // spinners spin from their creation on, as a program's threads would.
    let go = Arc::new(Gate::default());
    if opts.main_thread_sleeper {
        go.open();
        spin_for_ns(opts.startup_work_ms * 1_000_000);
    }

    let counters: Vec<Arc<Counter>> = (0..nr_spinners).map(|_| Arc::default()).collect();
    let mut handles = Vec::new();
    for (idx, counter) in counters.iter().enumerate() {
        let (counter, stop, release, tid_tx, go) = (
            counter.clone(),
            stop.clone(),
            release.clone(),
            tid_tx.clone(),
            go.clone(),
        );
        let spinner = thread::Builder::new()
            .stack_size(THREAD_STACK)
            .spawn(move || {
                tid_tx.send((format!("spinner{idx}"), gettid())).unwrap();
                go.wait();
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..1024 {
                        counter.0.fetch_add(1, Ordering::Relaxed);
                    }
                }
                while !release.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                }
            })
            .context("cannot start a spinner thread")?;
        handles.push(spinner);
    }

    let run_ns = opts.run_us * 1000;
    let (mut samples, mut waits, first_run, moves, start, progress, elapsed_s) = if opts
        .main_thread_sleeper
    {
        drop(tid_tx);
        let tids: Vec<(String, i32)> = tid_rx.iter().take(nr_spinners).collect();
        println!("thread sleeper tid={} (the main thread)", gettid());
        for (name, tid) in &tids {
            println!("thread {name} tid={tid}");
        }
        let start = now_ns();
        let watcher = {
            let (counters, stop) = (counters.clone(), stop.clone());
            let (interval_ms, duration_s) = (opts.interval_ms, opts.duration_s);
            thread::spawn(move || watch_spinners(&counters, start, interval_ms, duration_s, &stop))
        };
        let (samples, waits, first_run, moves) = sleep_loop(period, run_ns, &stop);
        let (progress, elapsed_s) = watcher.join().ok().context("the watcher panicked")?;
        release.store(true, Ordering::Relaxed);
        for handle in handles {
            handle.join().ok().context("a spinner panicked")?;
        }
        (samples, waits, first_run, moves, start, progress, elapsed_s)
    } else {
        let sleeper = {
            let (stop, release, tid_tx, go) =
                (stop.clone(), release.clone(), tid_tx.clone(), go.clone());
            thread::spawn(move || {
                tid_tx.send(("sleeper".to_string(), gettid())).unwrap();
                go.wait();
                let run = sleep_loop(period, run_ns, &stop);
                while !release.load(Ordering::Relaxed) {
                    thread::sleep(Duration::from_millis(50));
                }
                run
            })
        };
        drop(tid_tx);
        let mut tids: Vec<(String, i32)> = tid_rx.iter().take(nr_spinners + 1).collect();
        tids.sort();
        for (name, tid) in &tids {
            println!("thread {name} tid={tid}");
        }
        // Every thread has reported its tid, so every thread is at the gate.
        let start = now_ns();
        go.open();
        let (progress, elapsed_s) =
            watch_spinners(&counters, start, opts.interval_ms, opts.duration_s, &stop);
        // Let the sleeper finish its last period before collecting.
        thread::sleep(Duration::from_nanos(2 * period));
        if opts.hold_s > 0 {
            println!("HOLD");
            use std::io::Write;
            std::io::stdout().flush()?;
            thread::sleep(Duration::from_secs(opts.hold_s));
        }
        release.store(true, Ordering::Relaxed);
        for handle in handles {
            handle.join().ok().context("a spinner panicked")?;
        }
        let (samples, waits, first_run, moves) =
            sleeper.join().ok().context("the sleeper panicked")?;
        (samples, waits, first_run, moves, start, progress, elapsed_s)
    };
    let warmup = (opts.warmup_ms * 1000 / opts.period_us) as usize;
    samples.drain(..warmup.min(samples.len()));
    waits.drain(..warmup.min(waits.len()));

    if let Some(path) = &opts.samples_out {
        let lines: String = samples
            .iter()
            .enumerate()
            .map(|(i, late)| {
                let deadline_ms = (warmup + i + 1) as u64 * opts.period_us / 1000;
                format!("{deadline_ms} {}\n", late / 1000)
            })
            .collect();
        std::fs::write(path, lines).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!(
        "frames_missed {} of {} (the work ended after the period)",
        frames_missed(&samples, period, run_ns),
        samples.len()
    );
    let (p50, p99, max, late) = summarize(&samples, 1_000_000);
    println!(
        "latency_us p50={} p99={} max={} samples={} late_over_1ms={:.4} start_us={}",
        p50 / 1000,
        p99 / 1000,
        max / 1000,
        samples.len(),
        late,
        first_run.saturating_sub(start) / 1000
    );
    let (p50, p99, max, _) = summarize(&waits, 1_000_000);
    println!(
        "queue_wait_us p50={} p99={} max={} wakeups={}",
        p50 / 1000,
        p99 / 1000,
        max / 1000,
        waits.len()
    );
    println!("sleeper_cpus {}", format_moves(&moves));
    let totals: Vec<u64> = progress.iter().map(|p| p.iter().sum()).collect();
    for (idx, p) in progress.iter().enumerate() {
        let list: Vec<String> = p.iter().map(u64::to_string).collect();
        println!("progress spinner{idx} {}", list.join(","));
    }
    println!(
        "batch iters_per_s={:.0} spinner_min={} spinner_max={}",
        totals.iter().sum::<u64>() as f64 / elapsed_s,
        totals.iter().min().unwrap_or(&0),
        totals.iter().max().unwrap_or(&0)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_delay_is_the_second_schedstat_field() {
        assert_eq!(run_delay_ns("5342512 96210 57\n"), Some(96210));
        assert_eq!(run_delay_ns("5342512\n"), None);
        assert_eq!(run_delay_ns(""), None);
    }

    #[test]
    fn on_time_wakeup_is_one_sample() {
        let mut samples = Vec::new();
        assert_eq!(record_wakeup(&mut samples, 1000, 1003, 100), 1100);
        assert_eq!(samples, vec![3]);
    }

    #[test]
    fn missed_periods_each_count() {
        let mut samples = Vec::new();
        // Deadline 1000, period 100, woke at 1350: deadlines 1000, 1100,
        // 1200 and 1300 all passed; the next one is 1400.
        assert_eq!(record_wakeup(&mut samples, 1000, 1350, 100), 1400);
        assert_eq!(samples, vec![350, 250, 150, 50]);
        // Waking exactly on a later deadline counts it with lateness 0.
        samples.clear();
        assert_eq!(record_wakeup(&mut samples, 1000, 1100, 100), 1200);
        assert_eq!(samples, vec![100, 0]);
    }

    #[test]
    fn early_wakeup_is_not_negative() {
        let mut samples = Vec::new();
        assert_eq!(record_wakeup(&mut samples, 1000, 990, 100), 1100);
        assert_eq!(samples, vec![0]);
    }

    #[test]
    fn nearest_rank_percentiles() {
        let sorted: Vec<u64> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 50.0), 50);
        assert_eq!(percentile(&sorted, 99.0), 99);
        assert_eq!(percentile(&sorted, 100.0), 100);
        assert_eq!(percentile(&[7], 99.0), 7);
        assert_eq!(percentile(&[], 99.0), 0);
        assert_eq!(percentile(&[1, 2, 3], 0.0), 1);
    }

    #[test]
    fn cpu_moves_format_in_order() {
        let moves = CpuMoves::from([((2, 3), 8), ((2, 2), 390), ((0, 2), 1)]);
        assert_eq!(format_moves(&moves), "0>2:1 2>2:390 2>3:8");
        assert_eq!(format_moves(&CpuMoves::new()), "");
    }

    #[test]
    fn a_frame_is_missed_when_the_work_ends_after_the_period() {
        // Period 100, work 30: lateness up to 70 still ends in time.
        assert_eq!(frames_missed(&[0, 70, 71, 500], 100, 30), 2);
        assert_eq!(frames_missed(&[], 100, 30), 0);
        assert_eq!(frames_missed(&[100], 100, 0), 0);
    }

    #[test]
    fn summary_counts_late_fraction() {
        let samples = [5, 1_500_000, 10, 2_000_001, 20];
        assert_eq!(
            summarize(&samples, 1_000_000),
            (20, 2_000_001, 2_000_001, 0.4)
        );
        assert_eq!(summarize(&[], 1), (0, 0, 0, 0.0));
    }
}
