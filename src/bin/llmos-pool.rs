// SPDX-License-Identifier: GPL-2.0
//! llmos-pool: a barrier-synchronised worker pool, the shape of CPU LLM
//! inference: every step each worker computes its share of a layer, then all
//! wait for the slowest before the next step. A scheduler that delays one
//! worker's wakeup or slices a worker mid-share delays every worker: the
//! pool's steps per second measure that. Each share is a fixed amount of
//! computation (calibrated once, before the workers start), not a length of
//! time, so time spent off the CPU is not counted as work.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;

/// Run a barrier-synchronised worker pool and report its steps per second.
#[derive(Parser, Debug)]
#[command(version)]
struct Opts {
    /// Worker threads (default: the number of CPUs).
    #[arg(long)]
    threads: Option<usize>,

    /// Each worker's share of a step, in microseconds of computation on an
    /// idle CPU.
    #[arg(long, default_value_t = 500)]
    work_us: u64,

    /// How long to run, in seconds.
    #[arg(long, default_value_t = 5)]
    duration_s: u64,
}

/// `rounds` rounds of a cheap integer mix the compiler cannot fold away.
fn compute(rounds: u64) -> u64 {
    let mut x = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..rounds {
        x = black_box(x.rotate_left(7) ^ i).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    }
    x
}

/// Rounds of compute() per microsecond on this CPU, measured over ~50 ms.
fn rounds_per_us() -> u64 {
    let mut rounds = 1_000;
    loop {
        let start = Instant::now();
        black_box(compute(rounds));
        let took = start.elapsed();
        if took >= Duration::from_millis(50) {
            return (rounds / took.as_micros().max(1) as u64).max(1);
        }
        rounds *= 2;
    }
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    let nr_threads = opts
        .threads
        .unwrap_or_else(|| thread::available_parallelism().map_or(1, |n| n.get()));
    let share = opts.work_us * rounds_per_us();
    // Two barriers a step: after the first, the last worker in (the leader)
    // decides whether the run is over; after the second, every worker reads
    // that same decision, so no worker waits at a barrier the others left.
    let computed = Arc::new(Barrier::new(nr_threads));
    let decided = Arc::new(Barrier::new(nr_threads));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let end = start + Duration::from_secs(opts.duration_s);
    let workers: Vec<_> = (0..nr_threads)
        .map(|_| {
            let (computed, decided, stop) = (computed.clone(), decided.clone(), stop.clone());
            thread::spawn(move || {
                let mut steps = 0_u64;
                loop {
                    black_box(compute(share));
                    if computed.wait().is_leader() && Instant::now() >= end {
                        stop.store(true, Ordering::Relaxed);
                    }
                    decided.wait();
                    steps += 1;
                    if stop.load(Ordering::Relaxed) {
                        return steps;
                    }
                }
            })
        })
        .collect();
    let mut steps = 0;
    for worker in workers {
        steps = worker.join().ok().context("a worker panicked")?;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "pool threads={nr_threads} work_us={} steps={steps} secs={secs:.3} steps_per_s={:.1}",
        opts.work_us,
        steps as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compute_depends_on_its_rounds() {
        assert_eq!(compute(0), 0x9e37_79b9_7f4a_7c15);
        assert_ne!(compute(1), compute(2));
    }
}
