// SPDX-License-Identifier: GPL-2.0
//! llmos-periodic: periodic threads, as a control loop or an audio callback
//! runs, and whether each meets its deadlines beside CPU hogs.
//!
//! Each `--task NAME:RUNTIME_US:PERIOD_US[:DEADLINE_US[:BUDGET_US]]` is a thread named
//! NAME that, from a common start, wakes at the start of every period
//! (clock_nanosleep with TIMER_ABSTIME) and works RUNTIME_US of its own CPU
//! time. A period's work is late when it ends after the period's start plus
//! DEADLINE_US (default: the period). A period that began while the last
//! one's work was still running is late too: its work never started in it.
//! A late period whose work waited in a run queue at least as long as it was
//! late, and at least as long as its timer was late, counts as late for
//! waiting too (`queued`): the scheduler could have made it on time, and its
//! wait, not the timer, was the larger delay. A timer is late by the time
//! from the period's start to the work's end that the thread neither waited
//! nor ran; under emulation that can be milliseconds (`worst_timer_us`).
//! Given the CPU time a scheduler reserves a task per period (BUDGET_US), a
//! late period that cost more is its own (`overran`), and so is one that cost
//! more than an earlier overrun's debt left of its budget (`in_debt`).
//! Each `--spin NAME` is a thread that never sleeps; its CPU time shows
//! whether it was held to a budget and whether hogs still ran.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use anyhow::{bail, Context, Result};
use clap::Parser;

#[path = "shared/clock.rs"]
mod clock;
use clock::{clock_ns, now_ns, sleep_until_ns, NSEC_PER_SEC};

/// Run periodic threads (and CPU hogs) and report each one's missed
/// deadlines.
#[derive(Debug, Parser)]
#[command(name = "llmos-periodic")]
struct Opts {
    /// A periodic thread, NAME:RUNTIME_US:PERIOD_US[:DEADLINE_US[:BUDGET_US]]; repeat
    /// for more. NAME becomes the thread's name (at most 15 bytes), which
    /// config rules match.
    #[arg(long = "task", value_parser = parse_task)]
    tasks: Vec<Task>,

    /// NAME:EVERY:RUNTIME_US: every EVERY-th period of the thread NAME,
    /// from its first, works RUNTIME_US instead (it may take more than its
    /// period): a thread that overruns now and then. Repeat for more.
    #[arg(long = "overrun", value_parser = parse_overrun)]
    overruns: Vec<Overrun>,

    /// A thread that spins for the whole run, named NAME; repeat for more.
    #[arg(long = "spin")]
    spinners: Vec<String>,

    /// How long to run, in seconds.
    #[arg(long, default_value_t = 10)]
    duration_s: u64,

    /// Seconds of the run whose periods are not counted: a scheduler that
    /// must first find the periods (rms) has them to do it in.
    #[arg(long, default_value_t = 0)]
    warmup_s: u64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Task {
    name: String,
    runtime_ns: u64,
    period_ns: u64,
    deadline_ns: u64,
    /// The CPU time a scheduler reserves it per period, if any: a period
    /// that cost more overran its reservation, which then owes it no
    /// deadline (as under SCHED_DEADLINE).
    budget_ns: Option<u64>,
}

fn parse_task(s: &str) -> Result<Task> {
    let fields: Vec<&str> = s.split(':').collect();
    if !(3..=5).contains(&fields.len()) {
        bail!("{s:?}: want NAME:RUNTIME_US:PERIOD_US[:DEADLINE_US[:BUDGET_US]]");
    }
    let us = |i: usize, what: &str| -> Result<u64> {
        let v: u64 = fields[i]
            .parse()
            .with_context(|| format!("{s:?}: {what} {:?} is not a number", fields[i]))?;
        Ok(v * 1000)
    };
    let name = fields[0].to_string();
    if name.is_empty() || name.len() > 15 {
        bail!("{s:?}: a thread name has 1 to 15 bytes");
    }
    let runtime_ns = us(1, "runtime")?;
    let period_ns = us(2, "period")?;
    let deadline_ns = if fields.len() >= 4 {
        us(3, "deadline")?
    } else {
        period_ns
    };
    if runtime_ns == 0 || runtime_ns > deadline_ns || deadline_ns > period_ns {
        bail!("{s:?}: want 0 < runtime <= deadline <= period");
    }
    Ok(Task {
        name,
        runtime_ns,
        period_ns,
        deadline_ns,
        budget_ns: if fields.len() == 5 {
            Some(us(4, "budget")?)
        } else {
            None
        },
    })
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Overrun {
    name: String,
    every: u64,
    runtime_ns: u64,
}

fn parse_overrun(s: &str) -> Result<Overrun> {
    let fields: Vec<&str> = s.split(':').collect();
    let [name, every, runtime_us] = fields[..] else {
        bail!("{s:?}: want NAME:EVERY:RUNTIME_US");
    };
    let number = |v: &str, what: &str| -> Result<u64> {
        v.parse()
            .with_context(|| format!("{s:?}: {what} {v:?} is not a number"))
    };
    let every = number(every, "every")?;
    let runtime_ns = number(runtime_us, "runtime")? * 1000;
    if every == 0 || runtime_ns == 0 {
        bail!("{s:?}: want EVERY and RUNTIME_US above 0");
    }
    Ok(Overrun {
        name: name.to_string(),
        every,
        runtime_ns,
    })
}

/// CPU time the calling thread has used.
fn thread_cpu_ns() -> u64 {
    clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
}

/// The calling thread's schedstat, opened once: an open per period cost the
/// periodic thread enough CPU time under emulation to overrun its budget.
fn own_schedstat() -> Option<std::fs::File> {
    std::fs::File::open("/proc/thread-self/schedstat").ok()
}

/// How long the thread whose schedstat @file is has waited in run queues so
/// far (run_delay; 0 where the kernel keeps none).
fn run_delay_ns(file: Option<&std::fs::File>) -> u64 {
    use std::os::unix::fs::FileExt;
    let mut buf = [0u8; 96];
    file.and_then(|f| f.read_at(&mut buf, 0).ok())
        .and_then(|len| {
            std::str::from_utf8(&buf[..len])
                .ok()?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

/// Works until the calling thread has used @ns more CPU time than @from.
fn work_ns(from: u64, ns: u64) {
    let end = from + ns;
    while thread_cpu_ns() < end {
        std::hint::spin_loop();
    }
}

/// One period's work, as its thread saw it.
struct Period {
    index: u64,
    /// When the work ended.
    end: u64,
    /// How long the thread waited in a run queue from its wakeup to then.
    waited: u64,
    /// CPU time it used from its return from sleep to then.
    ran: u64,
    /// CPU time it cost from the end of the last period's work to then.
    cost: u64,
}

/// What one periodic thread saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct Outcome {
    periods: u64,
    late: u64,
    /// Late periods that waited in a run queue at least as long as they
    /// were late, and as long as their timer was: the scheduler's.
    queued: u64,
    /// Late periods that cost more than the task's budget.
    overran: u64,
    /// Late periods that cost no more than the task's budget but more than
    /// an earlier overrun's debt left of it (see `debt_ns`).
    in_debt: u64,
    /// CPU time the task owes its reservation: what periods cost beyond
    /// the budget they had. As under SCHED_DEADLINE, a scheduler takes it
    /// off the budgets of the periods that follow, a budget each, so those
    /// periods are owed no deadline either (7.2, 1 vCPU, host loaded: a
    /// period that cost 3.7 ms for a 1 ms budget, the guest stopped
    /// meanwhile, left the next with none; it waited 8.3 ms as a shared
    /// thread).
    debt_ns: u64,
    worst_late_ns: u64,
    /// How late the thread's timer woke it at worst: the time from its
    /// period's start to its end that it neither waited nor ran. Under
    /// emulation the whole guest may stop for milliseconds (a trace showed
    /// 11.6 ms with no event, then the three periodic threads woken
    /// together 7.8 ms late); the one that ran second then waited behind
    /// the first, whose deadline was no later.
    worst_timer_ns: u64,
    /// CPU time the periods took, from the end of one period's work to the
    /// end of the next's: the work, the thread's sleep and wakeup, and what
    /// the CPU did meanwhile in its name. Its reservation pays all of it.
    cost_ns: u64,
    worst_cost_ns: u64,
}

impl Outcome {
    /// Records the work of @period of @task, whose periods began at @t0,
    /// and answers the index of the next period whose start is after its
    /// end (the periods skipped are late: their work never began in them).
    fn record(&mut self, task: &Task, t0: u64, period: &Period) -> u64 {
        let start = t0 + period.index * task.period_ns;
        let due = start + task.deadline_ns;
        let next = (period.end - t0) / task.period_ns + 1;
        let skipped = next - period.index - 1;
        let timer = (period.end.saturating_sub(start))
            .saturating_sub(period.waited)
            .saturating_sub(period.ran);
        self.worst_timer_ns = self.worst_timer_ns.max(timer);
        self.periods += 1 + skipped;
        if period.end > due {
            let late_by = period.end - due;
            self.late += 1 + skipped;
            self.worst_late_ns = self.worst_late_ns.max(late_by);
            match task.budget_ns {
                Some(budget) if period.cost > budget => self.overran += 1 + skipped,
                Some(budget) if period.cost > budget.saturating_sub(self.debt_ns) => {
                    self.in_debt += 1 + skipped
                }
                _ if period.waited >= late_by && period.waited >= timer => {
                    self.queued += 1 + skipped
                }
                _ => {}
            }
        }
        if let Some(budget) = task.budget_ns {
            self.owe(budget, period.cost, skipped);
        }
        next
    }

    /// Carries the debt of a period that had @budget and cost @cost, and
    /// during whose work @skipped more periods began: a period whose budget
    /// the debt took all of ran on none (its thread shared the CPU with the
    /// rest, and paid nothing); otherwise it paid its cost from what the
    /// debt left. Each further period repays a budget.
    fn owe(&mut self, budget: u64, cost: u64, skipped: u64) {
        self.debt_ns = if self.debt_ns >= budget {
            self.debt_ns - budget
        } else {
            (self.debt_ns + cost).saturating_sub(budget)
        };
        self.debt_ns = self.debt_ns.saturating_sub(skipped * budget);
    }

    /// Records that a period's work took @cost ns of CPU time.
    fn charge(&mut self, cost: u64) {
        self.cost_ns += cost;
        self.worst_cost_ns = self.worst_cost_ns.max(cost);
    }
}

/// Runs @task's periods from @t0 to @until, every @overrun-th working as
/// long as it says; those that begin before @count_from are not counted.
fn periodic(
    task: &Task,
    overrun: Option<&Overrun>,
    t0: u64,
    count_from: u64,
    until: u64,
) -> Outcome {
    // SAFETY: prctl with PR_SET_TIMERSLACK takes a plain integer.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
    let mut outcome = Outcome::default();
    let mut index = 0;
    let schedstat = own_schedstat();
    let mut waited = run_delay_ns(schedstat.as_ref());
    let mut cpu = thread_cpu_ns();
    let mut counting = false;
    while t0 + index * task.period_ns + task.period_ns <= until {
        if !counting && t0 + index * task.period_ns >= count_from {
            outcome = Outcome::default();
            counting = true;
        }
        sleep_until_ns(t0 + index * task.period_ns);
        let resumed = thread_cpu_ns();
        let runtime_ns = match overrun {
            Some(o) if index % o.every == 0 => o.runtime_ns,
            _ => task.runtime_ns,
        };
        work_ns(resumed, runtime_ns);
        let end = now_ns();
        let so_far = run_delay_ns(schedstat.as_ref());
        let cpu_now = thread_cpu_ns();
        let period = Period {
            index,
            end,
            waited: so_far.saturating_sub(waited),
            ran: cpu_now - resumed,
            cost: cpu_now - cpu,
        };
        index = outcome.record(task, t0, &period);
        waited = so_far;
        outcome.charge(period.cost);
        cpu = cpu_now;
    }
    outcome
}

fn spin(stop: &AtomicBool) -> u64 {
    while !stop.load(Ordering::Relaxed) {
        std::hint::spin_loop();
    }
    thread_cpu_ns()
}

fn main() -> Result<()> {
    let opts = Opts::parse();
    if opts.tasks.is_empty() && opts.spinners.is_empty() {
        bail!("nothing to run: give --task or --spin");
    }
    if let Some(o) = opts
        .overruns
        .iter()
        .find(|o| !opts.tasks.iter().any(|t| t.name == o.name))
    {
        bail!("--overrun {}: no --task of that name", o.name);
    }
    // Every thread starts at one instant, a little ahead, so that all
    // periods begin together: the hardest case for a scheduler.
    let t0 = now_ns() + NSEC_PER_SEC / 10;
    let until = t0 + opts.duration_s * NSEC_PER_SEC;
    let count_from = t0 + opts.warmup_s * NSEC_PER_SEC;
    let stop = Arc::new(AtomicBool::new(false));
    let mut spinners = Vec::new();
    for name in &opts.spinners {
        let stop = stop.clone();
        spinners.push((
            name.clone(),
            thread::Builder::new()
                .name(name.clone())
                .spawn(move || spin(&stop))?,
        ));
    }
    let mut periodics = Vec::new();
    for task in &opts.tasks {
        let task = task.clone();
        let overrun = opts.overruns.iter().find(|o| o.name == task.name).cloned();
        periodics.push(
            thread::Builder::new()
                .name(task.name.clone())
                .spawn(move || {
                    let outcome = periodic(&task, overrun.as_ref(), t0, count_from, until);
                    (outcome, task)
                })?,
        );
    }
    for handle in periodics {
        let (o, task) = handle.join().expect("a periodic thread panicked");
        println!(
            "task name={} runtime_us={} period_us={} deadline_us={} periods={} late={} queued={} \
             overran={} in_debt={} worst_late_us={} worst_timer_us={} mean_cost_us={} \
             worst_cost_us={}",
            task.name,
            task.runtime_ns / 1000,
            task.period_ns / 1000,
            task.deadline_ns / 1000,
            o.periods,
            o.late,
            o.queued,
            o.overran,
            o.in_debt,
            o.worst_late_ns / 1000,
            o.worst_timer_ns / 1000,
            o.cost_ns / o.periods.max(1) / 1000,
            o.worst_cost_ns / 1000
        );
    }
    sleep_until_ns(until);
    stop.store(true, Ordering::Relaxed);
    for (name, handle) in spinners {
        let cpu_ns = handle.join().expect("a spinner panicked");
        println!("spin name={name} cpu_ms={}", cpu_ns / 1_000_000);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(runtime_us: u64, period_us: u64, deadline_us: u64) -> Task {
        Task {
            name: "t".into(),
            runtime_ns: runtime_us * 1000,
            period_ns: period_us * 1000,
            deadline_ns: deadline_us * 1000,
            budget_ns: None,
        }
    }

    #[test]
    fn task_spec_parses_with_and_without_deadline() {
        assert_eq!(parse_task("t:1000:5000").unwrap(), task(1000, 5000, 5000));
        let mut named = task(1000, 5000, 4000);
        named.name = "ctl-loop".into();
        assert_eq!(parse_task("ctl-loop:1000:5000:4000").unwrap(), named);
        named.budget_ns = Some(2_000_000);
        assert_eq!(parse_task("ctl-loop:1000:5000:4000:2000").unwrap(), named);
    }

    #[test]
    fn overrun_spec_parses_and_refuses_nonsense() {
        assert_eq!(
            parse_overrun("ctl:6:7000").unwrap(),
            Overrun {
                name: "ctl".into(),
                every: 6,
                runtime_ns: 7_000_000
            }
        );
        for bad in [
            "ctl:0:7000",
            "ctl:6:0",
            "ctl:6",
            "ctl:x:7000",
            "ctl:6:7000:1",
        ] {
            assert!(parse_overrun(bad).is_err(), "{bad} was accepted");
        }
    }

    #[test]
    fn task_spec_refuses_impossible_reservations() {
        for bad in [
            "a:0:5000",
            "a:6000:5000",
            "a:1000:5000:6000",
            "a:3000:5000:2000",
            "a:1",
            ":1:2",
            "a:x:5000",
        ] {
            assert!(parse_task(bad).is_err(), "{bad} was accepted");
        }
    }

    fn period(index: u64, end: u64, waited: u64, ran: u64) -> Period {
        Period {
            index,
            end,
            waited,
            ran,
            cost: ran,
        }
    }

    #[test]
    fn work_done_by_its_deadline_is_on_time() {
        let t = task(1000, 5000, 4000);
        let mut o = Outcome::default();
        // Period 2 starts at 10 ms; done at 13.9 ms, before 14 ms.
        assert_eq!(
            o.record(&t, 0, &period(2, 13_900_000, 2_000_000, 1_000_000)),
            3
        );
        assert_eq!(
            o,
            Outcome {
                periods: 1,
                late: 0,
                queued: 0,
                worst_late_ns: 0,
                // 3.9 ms from its start, 2 of them waiting and 1 running.
                worst_timer_ns: 900_000,
                ..Outcome::default()
            }
        );
    }

    #[test]
    fn work_past_its_deadline_is_late_by_the_difference() {
        let t = task(1000, 5000, 4000);
        let mut o = Outcome::default();
        assert_eq!(o.record(&t, 0, &period(0, 4_500_000, 0, 1_000_000)), 1);
        assert_eq!(
            o,
            Outcome {
                periods: 1,
                late: 1,
                queued: 0,
                worst_late_ns: 500_000,
                worst_timer_ns: 3_500_000,
                ..Outcome::default()
            }
        );
    }

    #[test]
    fn lateness_a_queue_wait_covers_is_queued() {
        let t = task(1000, 5000, 4000);
        let mut o = Outcome::default();
        // 0.5 ms late after 0.5 ms in a queue: queued; after 0.4 ms: not.
        o.record(&t, 0, &period(0, 4_500_000, 500_000, 3_500_000));
        o.record(&t, 0, &period(1, 9_500_000, 400_000, 3_500_000));
        assert_eq!(
            o,
            Outcome {
                periods: 2,
                late: 2,
                queued: 1,
                worst_late_ns: 500_000,
                worst_timer_ns: 600_000,
                ..Outcome::default()
            }
        );
    }

    #[test]
    fn lateness_a_later_timer_covers_is_not_queued() {
        let t = task(1000, 20_000, 10_000);
        let mut o = Outcome::default();
        // Woken 7.8 ms late (the guest stopped), then 1.26 ms in a queue
        // behind a thread due no later: 0.345 ms late, the timer's.
        o.record(&t, 0, &period(0, 10_345_000, 1_260_000, 1_290_000));
        assert_eq!(
            o,
            Outcome {
                periods: 1,
                late: 1,
                queued: 0,
                worst_late_ns: 345_000,
                worst_timer_ns: 7_795_000,
                ..Outcome::default()
            }
        );
    }

    #[test]
    fn a_period_that_cost_more_than_its_budget_overran() {
        let mut t = task(1000, 10_000, 10_000);
        t.budget_ns = Some(2_000_000);
        let mut o = Outcome::default();
        // 3.4 ms late after 8 ms in a queue: the scheduler's within its
        // budget (1.5 ms), its own past it (9.6 ms: the guest stopped).
        let mut p = period(0, 13_400_000, 8_000_000, 1_500_000);
        o.record(&t, 0, &p);
        p.index = 2;
        p.end = 33_400_000;
        p.cost = 9_600_000;
        o.record(&t, 0, &p);
        assert_eq!((o.late, o.queued, o.overran), (4, 2, 2));
    }

    #[test]
    fn periods_an_overrun_left_in_debt_are_owed_no_deadline() {
        let mut t = task(500, 5000, 4000);
        t.budget_ns = Some(1_000_000);
        let mut o = Outcome::default();
        // Period 0 cost 6.5 ms for a 1 ms budget: 5.5 ms of debt. Periods
        // 1-5 have no budget left and 6 has 0.5 ms for its 0.65 ms; all
        // waited 2 ms and ended 0.5 ms late. Period 7 has 0.85 ms: it is
        // owed its deadline again. (edf gives the 0.5 ms to period 1 and
        // none to 2-6: as many periods owed nothing.)
        let late = |index| Period {
            index,
            end: index * 5_000_000 + 4_500_000,
            waited: 2_000_000,
            ran: 500_000,
            cost: 650_000,
        };
        let mut p = late(0);
        p.end = 4_000_000;
        p.cost = 6_500_000;
        o.record(&t, 0, &p);
        for index in 1..8 {
            o.record(&t, 0, &late(index));
        }
        assert_eq!((o.late, o.overran, o.in_debt, o.queued), (7, 0, 6, 1));
        assert_eq!(o.debt_ns, 0);
    }

    #[test]
    fn costs_add_up_and_keep_the_worst() {
        let mut o = Outcome::default();
        o.charge(1_200_000);
        o.charge(1_500_000);
        o.charge(1_100_000);
        assert_eq!((o.cost_ns, o.worst_cost_ns), (3_800_000, 1_500_000));
    }

    #[test]
    fn periods_that_began_during_the_work_are_late() {
        let t = task(1000, 5000, 5000);
        let mut o = Outcome::default();
        // Period 0's work ended at 16 ms: periods 1, 2 and 3 began meanwhile.
        assert_eq!(
            o.record(&t, 0, &period(0, 16_000_000, 12_000_000, 1_000_000)),
            4
        );
        assert_eq!(
            o,
            Outcome {
                periods: 4,
                late: 4,
                queued: 4,
                worst_late_ns: 11_000_000,
                worst_timer_ns: 3_000_000,
                ..Outcome::default()
            }
        );
    }
}
