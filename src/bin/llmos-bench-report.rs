// SPDX-License-Identifier: GPL-2.0
//! llmos-bench-report: turns the raw rows of tests/vm/guest/bench.sh into
//! the benchmark report (Markdown, every figure as a ratio to EEVDF from the
//! same boot with the raw median beside it) and a data file for the chart.
//!
//!   usage: llmos-bench-report RAW_ROWS REPORT_MD CHART_DAT SCALE_DAT MATRIX_DAT

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{bail, Context, Result};

/// One measurement: `row bench=probe round=1 sched=mlfq p99_us=812 ...`.
type Row = BTreeMap<String, String>;

fn parse_rows(text: &str) -> Vec<Row> {
    text.lines()
        .filter_map(|line| line.strip_prefix("row "))
        .map(|rest| {
            rest.split_whitespace()
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        })
        .collect()
}

fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(|a, b| a.total_cmp(b));
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// Median of `field` over the rows of `bench` for `sched` (and, when given,
/// `threads`), ignoring values that are not numbers.
fn median_of(
    rows: &[Row],
    bench: &str,
    sched: &str,
    threads: Option<&str>,
    field: &str,
) -> Option<f64> {
    let mut values: Vec<f64> = rows
        .iter()
        .filter(|r| r.get("bench").map(String::as_str) == Some(bench))
        .filter(|r| r.get("sched").map(String::as_str) == Some(sched))
        .filter(|r| threads.is_none_or(|t| r.get("threads").map(String::as_str) == Some(t)))
        .filter_map(|r| r.get(field)?.parse::<f64>().ok())
        .filter(|v| v.is_finite())
        .collect();
    median(&mut values)
}

/// "0.42x (812)": the ratio to the baseline, then the raw value.
fn cell(value: Option<f64>, base: Option<f64>) -> String {
    match (value, base) {
        (Some(v), Some(b)) if b > 0.0 => format!("{:.2}x ({})", v / b, number(v)),
        (Some(v), _) => number(v),
        (None, _) => "-".to_string(),
    }
}

fn number(v: f64) -> String {
    if v.abs() >= 100.0 || v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// `sched`'s median of each (bench, field) as a cell against EEVDF's.
fn cells_vs_eevdf(rows: &[Row], sched: &str, columns: &[(&str, &str)]) -> Vec<String> {
    columns
        .iter()
        .map(|(bench, field)| {
            cell(
                median_of(rows, bench, sched, None, field),
                median_of(rows, bench, "eevdf", None, field),
            )
        })
        .collect()
}

/// Whether `value <= limit * base` (or `>=` for `at_least`), as a sentence.
fn target(what: &str, value: Option<f64>, base: Option<f64>, limit: f64, at_least: bool) -> String {
    let (Some(v), Some(b)) = (value, base) else {
        return format!("- {what}: not measured");
    };
    if b <= 0.0 {
        return format!("- {what}: baseline is zero");
    }
    let ratio = v / b;
    let met = if at_least {
        ratio >= limit
    } else {
        ratio <= limit
    };
    let verdict = if met {
        "met".to_string()
    } else {
        format!(
            "**missed** by {:.2}x",
            if at_least {
                limit / ratio
            } else {
                ratio / limit
            }
        )
    };
    format!(
        "- {what}: {ratio:.2}x (target {} {limit}x): {verdict}",
        if at_least { ">=" } else { "<=" }
    )
}

fn report(rows: &[Row], header: &str) -> (String, String) {
    let mut scheds: Vec<String> = Vec::new();
    for r in rows {
        if let Some(s) = r.get("sched") {
            if r.get("bench").map(String::as_str) != Some("error") && !scheds.contains(s) {
                scheds.push(s.clone());
            }
        }
    }
    let base = |bench: &str, field: &str| median_of(rows, bench, "eevdf", None, field);
    let mut md = String::new();
    let _ = writeln!(md, "# scx_llmos benchmark\n\n{header}\n");
    let _ = writeln!(
        md,
        "Medians over the rounds; each cell is the ratio to EEVDF from the same boot, raw value in \
         brackets (BPF cost: ratio to scx_bpfland).\n"
    );
    let _ = writeln!(
        md,
        "| scheduler | probe p50 µs | probe p99 µs | probe max µs | wakeups >1 ms late | batch iters/s | \
         slowest spinner | fastest spinner | messaging s | BPF ns/op |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|");
    let bpf_base = median_of(rows, "bpf", "bpfland", None, "ns_per_op");
    let mut chart = String::from("# scheduler p50_us p99_us\n");
    for s in &scheds {
        let m = |bench: &str, field: &str| median_of(rows, bench, s, None, field);
        let mut cells = cells_vs_eevdf(
            rows,
            s,
            &[
                ("probe", "p50_us"),
                ("probe", "p99_us"),
                ("probe", "max_us"),
                ("probe", "late_frac"),
                ("probe", "iters_per_s"),
                ("probe", "spinner_min"),
                ("probe", "spinner_max"),
                ("messaging", "secs"),
            ],
        );
        cells.push(cell(m("bpf", "ns_per_op"), bpf_base));
        let _ = writeln!(md, "| {s} | {} |", cells.join(" | "));
        let _ = writeln!(
            chart,
            "{s} {} {}",
            m("probe", "p50_us").unwrap_or(0.0),
            m("probe", "p99_us").unwrap_or(0.0)
        );
    }

    if rows
        .iter()
        .any(|r| r.get("bench").map(String::as_str) == Some("pipe"))
    {
        let _ = writeln!(
            md,
            "\n## Workloads from outside the project\n\n\
             perf bench sched pipe (s), cyclictest as SCHED_OTHER every 1 ms beside 2 CPU hogs \
             per CPU (µs), llmos-pool (a barrier every step: steps/s), make -j NCPU of \
             generated C files (s).\n\n\
             | scheduler | pipe s | cyclictest p99 µs | cyclictest max µs | pool steps/s | build s |\n\
             |---|---|---|---|---|---|"
        );
        for s in &scheds {
            if median_of(rows, "pipe", s, None, "secs").is_none() {
                continue;
            }
            let cells = cells_vs_eevdf(
                rows,
                s,
                &[
                    ("pipe", "secs"),
                    ("cyclictest", "p99_us"),
                    ("cyclictest", "max_us"),
                    ("pool", "steps_per_s"),
                    ("build", "secs"),
                ],
            );
            let _ = writeln!(md, "| {s} | {} |", cells.join(" | "));
        }
    }

    if rows
        .iter()
        .any(|r| r.get("bench").map(String::as_str) == Some("deadlines"))
    {
        let _ = writeln!(
            md,
            "\n## Deadlines\n\n\
             Three periodic threads (0.5 ms of work every 5 ms, 1 every 10, 2 every 20) beside \
             2 CPU hogs per CPU: periods whose work ended after the deadline (the period's end), \
             and of those the ones that waited in a run queue at least as long as they were late \
             and as their timer was, in a period that cost no more than its reservation (the \
             rest were late for a late timer or an overrun). edf reserves them 1, 2 and 4 ms by \
             `[[deadline]]` rules; rms finds their periods itself, in their first periods \
             (until then each waits as an aperiodic thread, which preempts one further ahead \
             in vtime); to the others they are threads like any.\n\n\
             | scheduler | late periods | late for waiting | periods | worst µs late |\n\
             |---|---|---|---|---|"
        );
        for s in &scheds {
            if median_of(rows, "deadlines", s, None, "periods").is_none() {
                continue;
            }
            let cells = cells_vs_eevdf(
                rows,
                s,
                &[
                    ("deadlines", "late"),
                    ("deadlines", "queued"),
                    ("deadlines", "periods"),
                    ("deadlines", "worst_late_us"),
                ],
            );
            let _ = writeln!(md, "| {s} | {} |", cells.join(" | "));
        }
    }

    let mut sizes: Vec<u64> = rows
        .iter()
        .filter(|r| r.get("bench").map(String::as_str) == Some("scale"))
        .filter_map(|r| r.get("threads")?.parse().ok())
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    if !sizes.is_empty() {
        let _ = writeln!(
            md,
            "\n## Scale: probe p99 µs and BPF ns/op by number of spinning threads\n"
        );
        let heads: Vec<String> = sizes.iter().map(|n| format!("{n} threads")).collect();
        let _ = writeln!(md, "| scheduler | {} |", heads.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(sizes.len()));
        for s in &scheds {
            let cells: Vec<String> = sizes
                .iter()
                .map(|n| {
                    let t = n.to_string();
                    let p99 = median_of(rows, "scale", s, Some(&t), "p99_us");
                    let base = median_of(rows, "scale", "eevdf", Some(&t), "p99_us");
                    match median_of(rows, "scale", s, Some(&t), "ns_per_op") {
                        Some(ns) => format!("{} / {} ns", cell(p99, base), number(ns)),
                        None => cell(p99, base),
                    }
                })
                .collect();
            let _ = writeln!(md, "| {s} | {} |", cells.join(" | "));
        }
    }

    let mlfq = |bench: &str, field: &str| median_of(rows, bench, "mlfq", None, field);
    let bpfland = |bench: &str, field: &str| median_of(rows, bench, "bpfland", None, field);
    let _ = writeln!(md, "\n## Targets (mlfq)\n");
    let lines = [
        target(
            "probe p99 vs EEVDF",
            mlfq("probe", "p99_us"),
            base("probe", "p99_us"),
            0.25,
            false,
        ),
        target(
            "probe p99 vs scx_bpfland",
            mlfq("probe", "p99_us"),
            bpfland("probe", "p99_us"),
            0.5,
            false,
        ),
        target(
            "batch throughput vs EEVDF",
            mlfq("probe", "iters_per_s"),
            base("probe", "iters_per_s"),
            0.98,
            true,
        ),
        target(
            "messaging time vs EEVDF",
            mlfq("messaging", "secs"),
            base("messaging", "secs"),
            1.0,
            false,
        ),
        target(
            "pipe ping-pong time vs EEVDF",
            mlfq("pipe", "secs"),
            base("pipe", "secs"),
            1.0,
            false,
        ),
        target(
            "worker pool steps/s vs EEVDF",
            mlfq("pool", "steps_per_s"),
            base("pool", "steps_per_s"),
            0.98,
            true,
        ),
        // A speed: EEVDF's build time over mlfq's.
        target(
            "batch build speed vs EEVDF",
            base("build", "secs"),
            mlfq("build", "secs"),
            0.98,
            true,
        ),
        target(
            "BPF ns/op vs scx_bpfland",
            mlfq("bpf", "ns_per_op"),
            bpfland("bpf", "ns_per_op"),
            0.8,
            false,
        ),
    ];
    for line in lines {
        let _ = writeln!(md, "{line}");
    }
    if let Some(grew) = growth(&mlfq_by_size(rows, &sizes, "ns_per_op")) {
        let _ = writeln!(
            md,
            "- BPF ns/op across {} to {} threads: {grew:.2}x from lowest to highest (target: flat)",
            sizes.first().unwrap(),
            sizes.last().unwrap(),
        );
    }
    if let Some(line) = boost_cost_line(&mlfq_by_size(rows, &sizes, "boost_ns")) {
        let _ = writeln!(md, "{line}");
    }
    md.push_str(&callback_report(rows, &scheds));
    md.push_str(&matrix_report(rows, &scheds));
    let errors: Vec<&Row> = rows
        .iter()
        .filter(|r| r.get("bench").map(String::as_str) == Some("error"))
        .collect();
    if !errors.is_empty() {
        let _ = writeln!(md, "\n## Errors\n");
        for e in errors {
            let _ = writeln!(md, "- {e:?}");
        }
    }
    (md, chart)
}

/// The BPF cost of each sched_ext callback, per scheduler: the median over
/// the rounds of its ns per call, as a ratio to scx_bpfland's, callbacks
/// ordered by mlfq's time in them (calls x ns), then mlfq's target: every
/// callback both run at most 0.8x scx_bpfland's.
fn callback_report(rows: &[Row], scheds: &[String]) -> String {
    let of = |cb: &str| -> Vec<Row> {
        rows.iter()
            .filter(|r| r.get("bench").map(String::as_str) == Some("callback"))
            .filter(|r| r.get("callback").map(String::as_str) == Some(cb))
            .cloned()
            .collect()
    };
    let mut callbacks: Vec<String> = Vec::new();
    for r in rows {
        if let (Some("callback"), Some(cb)) =
            (r.get("bench").map(String::as_str), r.get("callback"))
        {
            if !callbacks.contains(cb) {
                callbacks.push(cb.clone());
            }
        }
    }
    let ran: Vec<&String> = scheds
        .iter()
        .filter(|s| {
            rows.iter().any(|r| {
                r.get("bench").map(String::as_str) == Some("callback") && r.get("sched") == Some(s)
            })
        })
        .collect();
    let mut md = String::new();
    if callbacks.is_empty() {
        return md;
    }
    let mlfq_calls = |cb: &str| median_of(&of(cb), "callback", "mlfq", None, "calls");
    let mlfq_time = |cb: &str| {
        median_of(&of(cb), "callback", "mlfq", None, "ns_per_call").unwrap_or(0.0)
            * mlfq_calls(cb).unwrap_or(0.0)
    };
    // The target judges the hot callbacks: init, once per attach, is not one.
    let all_calls: f64 = callbacks.iter().filter_map(|cb| mlfq_calls(cb)).sum();
    let hot = |cb: &str| mlfq_calls(cb).is_some_and(|c| c >= all_calls / 100.0);
    callbacks.sort_by(|a, b| mlfq_time(b).total_cmp(&mlfq_time(a)).then(a.cmp(b)));
    let names: Vec<&str> = ran.iter().map(|s| s.as_str()).collect();
    let _ = writeln!(
        md,
        "\n## BPF cost per callback\n\n\
         ns per call during the main rounds' probe, ratio to scx_bpfland, the raw median in \
         brackets; callbacks by mlfq's time in them.\n\n| callback | {} |\n|---|{}",
        names.join(" | "),
        "---|".repeat(names.len())
    );
    let mut ratios: Vec<(String, f64)> = Vec::new();
    for cb in &callbacks {
        let cb_rows = of(cb);
        let base = median_of(&cb_rows, "callback", "bpfland", None, "ns_per_call");
        let cells: Vec<String> = ran
            .iter()
            .map(|s| {
                cell(
                    median_of(&cb_rows, "callback", s, None, "ns_per_call"),
                    base,
                )
            })
            .collect();
        let _ = writeln!(md, "| {cb} | {} |", cells.join(" | "));
        if let (Some(v), Some(b)) = (
            median_of(&cb_rows, "callback", "mlfq", None, "ns_per_call"),
            base,
        ) {
            if b > 0.0 && hot(cb) {
                ratios.push((cb.clone(), v / b));
            }
        }
    }
    if let Some((worst_cb, worst)) = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1)) {
        let over = ratios.iter().filter(|(_, r)| *r > 0.8).count();
        let _ = writeln!(
            md,
            "\n{}, its worst hot callback; {over} of the {} hot ones (1% or more of mlfq's calls) \
             both run are over 0.8x",
            target(
                &format!("BPF ns per callback vs scx_bpfland: {worst_cb}"),
                Some(*worst),
                Some(1.0),
                0.8,
                false
            ),
            ratios.len()
        );
    }
    md
}

/// A cell of the latency matrix: sleeper, spinners, work and period.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct MatrixCell {
    sleeper: String,
    spinners: u64,
    work_us: u64,
    period_us: u64,
}

impl MatrixCell {
    fn of(row: &Row) -> Option<Self> {
        Some(Self {
            sleeper: row.get("sleeper")?.clone(),
            spinners: row.get("spinners")?.parse().ok()?,
            work_us: row.get("work_us")?.parse().ok()?,
            period_us: row.get("period_us")?.parse().ok()?,
        })
    }

    /// "main 4sp 100us/16.6ms".
    fn label(&self) -> String {
        let period_ms = self.period_us as f64 / 1000.0;
        format!(
            "{} {}sp {}us/{period_ms}ms",
            self.sleeper, self.spinners, self.work_us
        )
    }
}

/// A matrix row's p99 lateness (µs): how late the sleeper woke.
const LATENESS_P99: &str = "p99_us";
/// A matrix row's p99 queue wait (µs) per period: how long the sleeper was
/// runnable but not running, the scheduler's part of its lateness.
const QUEUE_WAIT_P99: &str = "wait_p99_us";

/// The latency matrix's cells, in order, and for each scheduler that ran
/// them its rows per cell.
struct Matrix<'a> {
    cells: Vec<MatrixCell>,
    rows: Vec<(MatrixCell, &'a Row)>,
}

impl<'a> Matrix<'a> {
    fn of(rows: &'a [Row]) -> Self {
        let rows: Vec<(MatrixCell, &Row)> = rows
            .iter()
            .filter(|r| r.get("bench").map(String::as_str) == Some("matrix"))
            .filter_map(|r| Some((MatrixCell::of(r)?, r)))
            .collect();
        let mut cells: Vec<MatrixCell> = rows.iter().map(|(c, _)| c.clone()).collect();
        cells.sort();
        cells.dedup();
        Self { cells, rows }
    }

    fn values(&self, sched: &str, cell: &MatrixCell, field: &str) -> Vec<f64> {
        self.rows
            .iter()
            .filter(|(c, r)| c == cell && r.get("sched").map(String::as_str) == Some(sched))
            .filter_map(|(_, r)| r.get(field)?.parse::<f64>().ok())
            .filter(|v| v.is_finite())
            .collect()
    }

    /// The median of `field` of `sched` in `cell` over the rounds.
    fn median(&self, sched: &str, cell: &MatrixCell, field: &str) -> Option<f64> {
        median(&mut self.values(sched, cell, field))
    }

    /// The median p99 lateness of `sched` in `cell` over the rounds.
    fn p99(&self, sched: &str, cell: &MatrixCell) -> Option<f64> {
        self.median(sched, cell, LATENESS_P99)
    }

    /// `field` of `sched` over `base`'s per cell, for the cells both ran.
    fn ratios(&self, sched: &str, base: &str, field: &str) -> Vec<(&MatrixCell, f64)> {
        self.cells
            .iter()
            .filter_map(|c| {
                let value = self.median(sched, c, field)?;
                Some((c, value / self.median(base, c, field)?.max(1.0)))
            })
            .collect()
    }

    /// Frames missed over frames, summed over the rounds and the 16.6 ms
    /// cells.
    fn frames_missed(&self, sched: &str) -> Option<f64> {
        let frame_cells = self.cells.iter().filter(|c| c.period_us == 16_600);
        let (mut missed, mut frames) = (0.0, 0.0);
        for cell in frame_cells {
            missed += self
                .values(sched, cell, "frames_missed")
                .iter()
                .sum::<f64>();
            frames += self.values(sched, cell, "frames").iter().sum::<f64>();
        }
        (frames > 0.0).then(|| missed / frames)
    }
}

/// The median and the worst (highest) of per-cell ratios, with the worst
/// cell's label.
fn median_and_worst(ratios: &[(&MatrixCell, f64)]) -> Option<(f64, f64, String)> {
    let (worst_cell, worst) = ratios.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let mut values: Vec<f64> = ratios.iter().map(|(_, r)| *r).collect();
    Some((median(&mut values)?, *worst, worst_cell.label()))
}

/// The latency matrix section: per scheduler the median and worst cell as
/// ratios to EEVDF, the share of 16.6 ms frames missed, mlfq's targets,
/// then every cell.
fn matrix_report(rows: &[Row], scheds: &[String]) -> String {
    let matrix = Matrix::of(rows);
    let mut md = String::new();
    if matrix.cells.is_empty() {
        return md;
    }
    let ran: Vec<&String> = scheds
        .iter()
        .filter(|s| matrix.cells.iter().any(|c| matrix.p99(s, c).is_some()))
        .collect();
    let _ = writeln!(
        md,
        "\n## Latency matrix: sleeper p99 lateness per shape, ratio to EEVDF\n\n\
         {} cells (sleeper main thread or own thread; spinners; work per period). Medians over \
         the rounds per cell; no warm-up cut. Beside the lateness, the same for the p99 of the \
         sleeper's queue wait per period (schedstat run_delay: runnable, not running): \
         lateness adds the timer's delay, which under TCG on 2+ vCPUs is mostly the \
         emulator's; the wait is the scheduler's part.\n",
        matrix.cells.len()
    );
    let _ = writeln!(
        md,
        "| scheduler | median cell | worst cell | 16.6 ms frames missed | queue wait: median \
         cell | queue wait: worst cell |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|");
    for s in &ran {
        let [(median, worst), (wait_median, wait_worst)] =
            [LATENESS_P99, QUEUE_WAIT_P99].map(|field| {
                match median_and_worst(&matrix.ratios(s, "eevdf", field)) {
                    Some((m, w, label)) => (format!("{m:.2}x"), format!("{w:.2}x ({label})")),
                    None => ("-".into(), "-".into()),
                }
            });
        let missed = matrix
            .frames_missed(s)
            .map_or("-".into(), |f| format!("{:.1}%", f * 100.0));
        let _ = writeln!(
            md,
            "| {s} | {median} | {worst} | {missed} | {wait_median} | {wait_worst} |"
        );
    }
    let waits = matrix
        .rows
        .iter()
        .any(|(_, r)| r.contains_key(QUEUE_WAIT_P99));
    let _ = writeln!(md, "\nTargets (mlfq):\n");
    // The targets are for the lateness; the same for the queue wait
    // show the scheduler's part on its own.
    let mut figures = vec![(LATENESS_P99, "")];
    if waits {
        figures.push((QUEUE_WAIT_P99, "queue wait: "));
    }
    for (field, prefix) in figures {
        let vs_eevdf = median_and_worst(&matrix.ratios("mlfq", "eevdf", field));
        let vs_bpfland = median_and_worst(&matrix.ratios("mlfq", "bpfland", field));
        // The values are ratios already: a base of 1.
        let one = Some(1.0);
        let lines = [
            ("worst cell vs EEVDF", vs_eevdf.as_ref().map(|v| v.1), 1.0),
            ("median cell vs EEVDF", vs_eevdf.as_ref().map(|v| v.0), 0.2),
            (
                "median cell vs scx_bpfland",
                vs_bpfland.as_ref().map(|v| v.0),
                0.3,
            ),
        ];
        for (what, value, limit) in lines {
            let _ = writeln!(
                md,
                "{}",
                target(&format!("{prefix}{what}"), value, one, limit, false)
            );
        }
    }
    match (matrix.frames_missed("mlfq"), matrix.frames_missed("eevdf")) {
        (Some(m), Some(e)) if e >= 0.05 => {
            let _ = writeln!(
                md,
                "- 16.6 ms frames missed: {:.1}% where EEVDF misses {:.1}% (target <= 1%): {}",
                m * 100.0,
                e * 100.0,
                if m <= 0.01 { "met" } else { "**missed**" }
            );
        }
        (Some(m), Some(e)) => {
            let _ = writeln!(
                md,
                "- 16.6 ms frames missed: {:.1}%; EEVDF misses {:.1}%, under the 5% the target \
                 applies from",
                m * 100.0,
                e * 100.0
            );
        }
        _ => {
            let _ = writeln!(md, "- 16.6 ms frames missed: not measured");
        }
    }
    let others: Vec<&str> = ran
        .iter()
        .map(|s| s.as_str())
        .filter(|s| *s != "eevdf")
        .collect();
    md.push_str(&cell_table(&matrix, &others, LATENESS_P99, "p99 µs"));
    if waits {
        let _ = writeln!(md, "\nQueue wait per cell:");
        md.push_str(&cell_table(&matrix, &others, QUEUE_WAIT_P99, "wait p99 µs"));
    }
    md
}

/// A row per matrix cell: EEVDF's median `field` (headed `what`), then each
/// of `others`' as a ratio to it.
fn cell_table(matrix: &Matrix, others: &[&str], field: &str, what: &str) -> String {
    let mut md = format!(
        "\n| cell | eevdf {what} | {} |\n|---|---|{}\n",
        others.join(" | "),
        "---|".repeat(others.len())
    );
    for c in &matrix.cells {
        let base = matrix.median("eevdf", c, field);
        let cells: Vec<String> = others
            .iter()
            .map(|s| cell(matrix.median(s, c, field), base))
            .collect();
        let _ = writeln!(
            md,
            "| {} | {} | {} |",
            c.label(),
            base.map_or("-".into(), number),
            cells.join(" | ")
        );
    }
    md
}

/// The heat map's data: "x y log2(ratio to EEVDF) scheduler cell" per
/// scheduler (x) and cell (y), for gnuplot's image style.
fn matrix_chart(rows: &[Row]) -> String {
    let matrix = Matrix::of(rows);
    let mut scheds: Vec<&str> = Vec::new();
    for (_, r) in &matrix.rows {
        if let Some(s) = r.get("sched") {
            if s != "eevdf" && !scheds.contains(&s.as_str()) {
                scheds.push(s);
            }
        }
    }
    let mut chart = String::new();
    for (x, s) in scheds.iter().enumerate() {
        for (y, c) in matrix.cells.iter().enumerate() {
            let ratio = matrix
                .p99(s, c)
                .zip(matrix.p99("eevdf", c))
                .map(|(v, b)| v.max(1.0) / b.max(1.0));
            if let Some(ratio) = ratio {
                let _ = writeln!(chart, "{x} {y} {:.3} {s} \"{}\"", ratio.log2(), c.label());
            }
        }
    }
    chart
}

/// The mlfq boost's cost per boost at each number of spinning threads, and
/// how far it grows from the lowest to the highest (target: flat).
fn boost_cost_line(costs: &[(u64, f64)]) -> Option<String> {
    let grew = growth(costs)?;
    let each: Vec<String> = costs
        .iter()
        .map(|(n, ns)| format!("{} ns at {n} threads", number(*ns)))
        .collect();
    Some(format!(
        "- mlfq boost cost (tick ns per boost): {}; {grew:.2}x from lowest to highest (target: flat)",
        each.join(", "),
    ))
}

/// mlfq's median of `field` in the scale runs, at each of `sizes` that has one.
fn mlfq_by_size(rows: &[Row], sizes: &[u64], field: &str) -> Vec<(u64, f64)> {
    sizes
        .iter()
        .filter_map(|n| {
            Some((
                *n,
                median_of(rows, "scale", "mlfq", Some(&n.to_string()), field)?,
            ))
        })
        .collect()
}

/// How far per-size figures grow from the lowest to the highest.
fn growth(values: &[(u64, f64)]) -> Option<f64> {
    let lo = values.iter().map(|v| v.1).reduce(f64::min)?;
    let hi = values.iter().map(|v| v.1).reduce(f64::max)?;
    Some(hi / lo.max(1.0))
}

/// The scale chart's data: one line per thread count, probe p99 µs per
/// scheduler that ran the scale runs ("?" where one has no result).
fn scale_chart(rows: &[Row]) -> String {
    let scale: Vec<&Row> = rows
        .iter()
        .filter(|r| r.get("bench").map(String::as_str) == Some("scale"))
        .collect();
    let mut scheds: Vec<&str> = Vec::new();
    let mut sizes: Vec<u64> = Vec::new();
    for r in &scale {
        if let Some(s) = r.get("sched") {
            if !scheds.contains(&s.as_str()) {
                scheds.push(s);
            }
        }
        sizes.extend(r.get("threads").and_then(|t| t.parse::<u64>().ok()));
    }
    sizes.sort_unstable();
    sizes.dedup();
    // A plain header line: gnuplot titles each column from it.
    let mut chart = format!("threads {}\n", scheds.join(" "));
    for n in sizes {
        let cells: Vec<String> = scheds
            .iter()
            .map(|s| {
                median_of(rows, "scale", s, Some(&n.to_string()), "p99_us")
                    .map_or("?".into(), number)
            })
            .collect();
        let _ = writeln!(chart, "{n} {}", cells.join(" "));
    }
    chart
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, raw, md_out, chart_out, scale_out, matrix_out] = &args[..] else {
        bail!("usage: llmos-bench-report RAW_ROWS REPORT_MD CHART_DAT SCALE_DAT MATRIX_DAT");
    };
    let text = std::fs::read_to_string(raw).with_context(|| format!("cannot read {raw}"))?;
    let rows = parse_rows(&text);
    if rows.is_empty() {
        bail!("{raw} has no result rows");
    }
    let header: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# bench: "))
        .filter(|l| *l != "done")
        .collect();
    let (md, chart) = report(&rows, &header.join("\n"));
    std::fs::write(md_out, &md).with_context(|| format!("cannot write {md_out}"))?;
    std::fs::write(chart_out, chart).with_context(|| format!("cannot write {chart_out}"))?;
    std::fs::write(scale_out, scale_chart(&rows))
        .with_context(|| format!("cannot write {scale_out}"))?;
    std::fs::write(matrix_out, matrix_chart(&rows))
        .with_context(|| format!("cannot write {matrix_out}"))?;
    print!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAW: &str = "\
# bench: kernel 7.2, 1 CPUs
row bench=probe round=1 sched=eevdf threads=2 p50_us=300 p99_us=4000 iters_per_s=100
row bench=probe round=2 sched=eevdf threads=2 p50_us=200 p99_us=6000 iters_per_s=120
row bench=probe round=1 sched=mlfq threads=2 p50_us=400 p99_us=1000 iters_per_s=110
row bench=bpf round=1 sched=mlfq ns_per_op=300 calls=10
row bench=bpf round=1 sched=bpfland ns_per_op=200 calls=10
row bench=messaging round=1 sched=eevdf secs=nan
row bench=error round=1 sched=lavd what=attach
";

    #[test]
    fn rows_parse_into_fields() {
        let rows = parse_rows(RAW);
        assert_eq!(rows.len(), 7);
        assert_eq!(rows[2]["sched"], "mlfq");
        assert_eq!(rows[2]["p99_us"], "1000");
    }

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
        let rows = parse_rows(RAW);
        assert_eq!(
            median_of(&rows, "probe", "eevdf", None, "p99_us"),
            Some(5000.0)
        );
        assert_eq!(median_of(&rows, "messaging", "eevdf", None, "secs"), None);
    }

    #[test]
    fn cells_and_targets() {
        assert_eq!(cell(Some(1000.0), Some(5000.0)), "0.20x (1000)");
        assert_eq!(cell(Some(0.25), None), "0.250");
        assert_eq!(cell(None, Some(1.0)), "-");
        assert_eq!(
            target("p99", Some(1000.0), Some(5000.0), 0.25, false),
            "- p99: 0.20x (target <= 0.25x): met"
        );
        assert_eq!(
            target("ns/op", Some(300.0), Some(100.0), 1.5, false),
            "- ns/op: 3.00x (target <= 1.5x): **missed** by 2.00x"
        );
        assert_eq!(
            target("batch", Some(90.0), Some(100.0), 0.95, true),
            "- batch: 0.90x (target >= 0.95x): **missed** by 1.06x"
        );
        assert_eq!(target("x", None, Some(1.0), 1.0, true), "- x: not measured");
    }

    #[test]
    fn boost_cost_line_gives_each_size_and_the_growth() {
        assert_eq!(boost_cost_line(&[]), None);
        assert_eq!(
            boost_cost_line(&[(10, 2000.0), (100, 2500.0), (1000, 5000.0)]).unwrap(),
            "- mlfq boost cost (tick ns per boost): 2000 ns at 10 threads, 2500 ns at 100 threads, \
             5000 ns at 1000 threads; 2.50x from lowest to highest (target: flat)"
        );
    }

    #[test]
    fn scale_chart_has_a_column_per_scheduler() {
        let rows = parse_rows(
            "row bench=scale sched=eevdf threads=100 p99_us=9000\n\
             row bench=scale sched=mlfq threads=10 p99_us=700\n\
             row bench=scale sched=eevdf threads=10 p99_us=3000\n\
             row bench=probe round=1 sched=rr p99_us=5\n",
        );
        assert_eq!(
            scale_chart(&rows),
            "threads eevdf mlfq\n10 3000 700\n100 9000 ?\n"
        );
    }

    const MATRIX: &str = "\
row bench=matrix round=1 sched=eevdf sleeper=main spinners=2 work_us=0 period_us=1000 p99_us=1000 wait_p99_us=800 frames_missed=10 frames=100
row bench=matrix round=1 sched=eevdf sleeper=main spinners=2 work_us=0 period_us=16600 p99_us=4000 wait_p99_us=2000 frames_missed=10 frames=100
row bench=matrix round=1 sched=mlfq sleeper=main spinners=2 work_us=0 period_us=1000 p99_us=3000 wait_p99_us=100 frames_missed=50 frames=100
row bench=matrix round=2 sched=mlfq sleeper=main spinners=2 work_us=0 period_us=1000 p99_us=5000 wait_p99_us=300 frames_missed=50 frames=100
row bench=matrix round=1 sched=mlfq sleeper=main spinners=2 work_us=0 period_us=16600 p99_us=400 wait_p99_us=100 frames_missed=0 frames=100
row bench=matrix round=1 sched=bpfland sleeper=main spinners=2 work_us=0 period_us=16600 p99_us=800 frames_missed=1 frames=100
";

    #[test]
    fn callback_costs_against_bpfland() {
        let rows = parse_rows(
            "\
row bench=callback round=1 sched=mlfq callback=enqueue ns_per_call=400 calls=100
row bench=callback round=2 sched=mlfq callback=enqueue ns_per_call=600 calls=100
row bench=callback round=1 sched=mlfq callback=running ns_per_call=100 calls=1000
row bench=callback round=1 sched=bpfland callback=enqueue ns_per_call=1000 calls=90
row bench=callback round=1 sched=bpfland callback=running ns_per_call=50 calls=900
row bench=callback round=1 sched=lavd callback=tick ns_per_call=70 calls=9
row bench=callback round=1 sched=mlfq callback=init ns_per_call=900000 calls=1
row bench=callback round=1 sched=bpfland callback=init ns_per_call=300000 calls=1
",
        );
        let scheds = ["eevdf", "mlfq", "bpfland", "lavd"].map(String::from);
        let md = callback_report(&rows, &scheds);
        // mlfq's time: init 900,000 ns, running 100,000, enqueue 50,000
        // (median 500 x 100); init, 1 call of 1,101, is not judged.
        let table = "| callback | mlfq | bpfland | lavd |\n|---|---|---|---|\n\
                     | init | 3.00x (900000) | 1.00x (300000) | - |\n\
                     | running | 2.00x (100) | 1.00x (50) | - |\n\
                     | enqueue | 0.50x (500) | 1.00x (1000) | - |\n\
                     | tick | - | - | 70 |\n";
        assert!(md.contains(table), "{md}");
        assert!(
            md.contains(
                "- BPF ns per callback vs scx_bpfland: running: 2.00x (target <= 0.8x): \
                 **missed** by 2.50x, its worst hot callback; 1 of the 2 hot ones (1% or more \
                 of mlfq's calls) both run are over 0.8x"
            ),
            "{md}"
        );
        assert_eq!(callback_report(&parse_rows(RAW), &scheds), "");
    }

    #[test]
    fn matrix_reports_median_and_worst_cell_and_frames() {
        let rows = parse_rows(MATRIX);
        let scheds = ["eevdf", "mlfq", "bpfland"].map(String::from);
        let md = matrix_report(&rows, &scheds);
        // mlfq: 4000/1000 in the 1 ms cell (median of rounds), 400/4000 in
        // the 16.6 ms one; median of the two ratios 2.05x.
        // Queue waits: 200/800 (median of rounds) and 100/2000, median
        // 0.15x; scx_bpfland's rows have none (its one cell: 800/4000).
        assert!(
            md.contains(
                "| mlfq | 2.05x | 4.00x (main 2sp 0us/1ms) | 0.0% | 0.15x | 0.25x (main 2sp \
                 0us/1ms) |\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| bpfland | 0.20x | 0.20x (main 2sp 0us/16.6ms) | 1.0% | - | - |\n"),
            "{md}"
        );
        assert!(md.contains("| eevdf | 1.00x | 1.00x"), "{md}");
        assert!(
            md.contains("- worst cell vs EEVDF: 4.00x (target <= 1x): **missed** by 4.00x"),
            "{md}"
        );
        // Only the 16.6 ms cell ran under both: 400/800.
        assert!(
            md.contains(
                "- median cell vs scx_bpfland: 0.50x (target <= 0.3x): **missed** by 1.67x"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "- queue wait: worst cell vs EEVDF: 0.25x (target <= 1x): met\n\
                 - queue wait: median cell vs EEVDF: 0.15x (target <= 0.2x): met\n\
                 - queue wait: median cell vs scx_bpfland: not measured\n"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "- 16.6 ms frames missed: 0.0% where EEVDF misses 10.0% (target <= 1%): met"
            ),
            "{md}"
        );
        assert!(
            md.contains("| main 2sp 0us/16.6ms | 4000 | 0.10x (400) | 0.20x (800) |"),
            "{md}"
        );
        assert!(
            md.contains("| main 2sp 0us/1ms | 1000 | 4.00x (4000) | - |"),
            "{md}"
        );
        assert!(
            md.contains(
                "Queue wait per cell:\n\n| cell | eevdf wait p99 µs | mlfq | bpfland |\n\
                 |---|---|---|---|\n| main 2sp 0us/1ms | 800 | 0.25x (200) | - |\n\
                 | main 2sp 0us/16.6ms | 2000 | 0.05x (100) | - |\n"
            ),
            "{md}"
        );
        assert_eq!(
            matrix_chart(&rows),
            "0 0 2.000 mlfq \"main 2sp 0us/1ms\"\n\
             0 1 -3.322 mlfq \"main 2sp 0us/16.6ms\"\n\
             1 1 -2.322 bpfland \"main 2sp 0us/16.6ms\"\n"
        );
        assert_eq!(matrix_report(&parse_rows(RAW), &scheds), "");
    }

    #[test]
    fn outside_workloads_have_a_table_and_targets() {
        let (md, _) = report(
            &parse_rows(
                "row bench=pipe round=1 sched=eevdf secs=2.0\n\
                 row bench=pipe round=1 sched=mlfq secs=1.0\n\
                 row bench=cyclictest round=1 sched=eevdf p99_us=4000 max_us=9000\n\
                 row bench=cyclictest round=1 sched=mlfq p99_us=400 max_us=900\n\
                 row bench=pool round=1 sched=eevdf steps_per_s=100\n\
                 row bench=pool round=1 sched=mlfq steps_per_s=97\n\
                 row bench=build round=1 sched=eevdf secs=10\n\
                 row bench=build round=1 sched=mlfq secs=10.1\n",
            ),
            "",
        );
        assert!(
            md.contains(
                "| mlfq | 0.50x (1) | 0.10x (400) | 0.10x (900) | 0.97x (97) | 1.01x (10.100) |"
            ),
            "{md}"
        );
        assert!(
            md.contains("- pipe ping-pong time vs EEVDF: 0.50x (target <= 1x): met"),
            "{md}"
        );
        assert!(
            md.contains(
                "- worker pool steps/s vs EEVDF: 0.97x (target >= 0.98x): **missed** by 1.01x"
            ),
            "{md}"
        );
        assert!(
            md.contains("- batch build speed vs EEVDF: 0.99x (target >= 0.98x): met"),
            "{md}"
        );
    }

    #[test]
    fn deadlines_have_a_table() {
        let (md, _) = report(
            &parse_rows(
                "row bench=deadlines round=1 sched=eevdf periods=1400 late=700 queued=600 worst_late_us=30000\n\
                 row bench=deadlines round=2 sched=eevdf periods=1400 late=500 queued=400 worst_late_us=20000\n\
                 row bench=deadlines round=1 sched=edf periods=1400 late=2 queued=0 worst_late_us=3000\n",
            ),
            "",
        );
        assert!(
            md.contains("| eevdf | 1.00x (600) | 1.00x (500) | 1.00x (1400) | 1.00x (25000) |"),
            "{md}"
        );
        assert!(
            md.contains("| edf | 0.00x (2) | 0.00x (0) | 1.00x (1400) | 0.12x (3000) |"),
            "{md}"
        );
    }

    #[test]
    fn report_has_ratios_targets_and_errors() {
        let (md, chart) = report(&parse_rows(RAW), "kernel 7.2");
        assert!(md.contains("| mlfq | 1.60x (400) | 0.20x (1000) |"), "{md}");
        assert!(
            md.contains("- probe p99 vs EEVDF: 0.20x (target <= 0.25x): met"),
            "{md}"
        );
        assert!(
            md.contains("- BPF ns/op vs scx_bpfland: 1.50x (target <= 0.8x): **missed** by 1.88x"),
            "{md}"
        );
        assert!(md.contains("## Errors"), "{md}");
        assert_eq!(
            chart,
            "# scheduler p50_us p99_us\neevdf 250 5000\nmlfq 400 1000\nbpfland 0 0\n"
        );
    }
}
