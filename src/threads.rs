// SPDX-License-Identifier: GPL-2.0
//! The per-thread view: the scheduler reads its `dump_threads` BPF iterator
//! to answer the stats socket's `threads` target, and `scx_llmos threads`
//! asks for it and prints it as a table or as JSON.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::libbpf_sys;

use crate::bpf_intf::llmos_thread_stats as ThreadStats;
use crate::stats::{self, ThreadRow, Threads};

// SAFETY: a C struct of integers and a char array: every bit pattern is valid.
unsafe impl plain::Plain for ThreadStats {}

/// An all-zero record.
fn zeroed() -> ThreadStats {
    // SAFETY: ThreadStats is plain old data (see above); all zeros is valid.
    unsafe { std::mem::zeroed() }
}

/// Takes ownership of a file descriptor a libbpf call returned, or of its error.
fn owned_fd(ret: i32, what: &str) -> Result<OwnedFd> {
    if ret < 0 {
        bail!("{what}: {}", std::io::Error::from_raw_os_error(-ret));
    }
    // SAFETY: libbpf returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Every thread the `dump_threads` iterator program `prog` walks: all of
/// them, or, given `tgid`, that process's only (the kernel walks just those,
/// so watching one process costs the same on a machine with thousands of
/// tasks). Most CPU time first.
pub fn read(prog: impl AsFd, tgid: Option<u32>) -> Result<Vec<ThreadRow>> {
    let mut only = libbpf_sys::bpf_iter_link_info::default();
    let mut opts = libbpf_sys::bpf_link_create_opts {
        sz: std::mem::size_of::<libbpf_sys::bpf_link_create_opts>() as _,
        ..Default::default()
    };
    if let Some(tgid) = tgid {
        only.task.pid = tgid;
        opts.iter_info = &mut only;
        opts.iter_info_len = std::mem::size_of::<libbpf_sys::bpf_iter_link_info>() as u32;
    }
    // SAFETY: plain libbpf calls on descriptors we hold; `only` and `opts`
    // outlive them, and the results are checked.
    let link = owned_fd(
        unsafe {
            libbpf_sys::bpf_link_create(
                prog.as_fd().as_raw_fd(),
                0,
                libbpf_sys::BPF_TRACE_ITER,
                &opts,
            )
        },
        "cannot link the thread iterator",
    )?;
    // SAFETY: as above.
    let iter = owned_fd(
        unsafe { libbpf_sys::bpf_iter_create(link.as_raw_fd()) },
        "cannot read the thread iterator",
    )?;
    let mut bytes = Vec::new();
    File::from(iter)
        .read_to_end(&mut bytes)
        .context("cannot read the thread iterator")?;
    let size = std::mem::size_of::<ThreadStats>();
    if bytes.len() % size != 0 {
        bail!(
            "the thread iterator returned {} bytes, not a whole number of {size}-byte rows",
            bytes.len()
        );
    }
    let mut rows = Vec::with_capacity(bytes.len() / size);
    for chunk in bytes.chunks_exact(size) {
        let mut record = zeroed();
        plain::copy_from_bytes(&mut record, chunk)
            .map_err(|e| anyhow::anyhow!("malformed thread row: {e:?}"))?;
        rows.push(row(&record));
    }
    rows.sort_by_key(|t| (std::cmp::Reverse(t.runtime_ns), t.tid));
    Ok(rows)
}

/// An iterator record as a stats row.
fn row(t: &ThreadStats) -> ThreadRow {
    let c = &t.counters;
    let comm: Vec<u8> = t
        .comm
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    ThreadRow {
        tid: t.tid.into(),
        tgid: t.tgid.into(),
        comm: String::from_utf8_lossy(&comm).into_owned(),
        level: t.level.into(),
        priority: t.priority.into(),
        group: t.group.into(),
        waiting: t.waiting.into(),
        cpu: c.last_cpu.into(),
        runtime_ns: c.runtime_ns,
        wait_ns: c.wait_ns,
        runs: c.nr_runs,
        voluntary: c.nr_voluntary,
        involuntary: c.nr_involuntary,
        migrations: c.nr_migrations,
        demotions: c.nr_demotions,
        boosts: c.nr_boosts,
        period_ns: t.period_ns,
        deadline_misses: c.nr_deadline_misses,
    }
}

/// The table's header line; `format_row` fills the same columns.
pub const HEADER: &str =
    "    TID    TGID LVL CPU      RUN_MS     WAIT_MS     RUNS      VOL    INVOL   MIGR DEMOTE  BOOST PERIOD_MS   MISS PRIO GRP COMM";

/// One thread as a table row. The name comes last: it may contain spaces.
pub fn format_row(t: &ThreadRow) -> String {
    format!(
        "{:>7} {:>7} {:>3} {:>3} {:>11.3} {:>11.3} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>9} {:>6} {:>4} {:>3} {}",
        t.tid,
        t.tgid,
        t.level,
        t.cpu,
        t.runtime_ns as f64 / 1e6,
        t.wait_ns as f64 / 1e6,
        t.runs,
        t.voluntary,
        t.involuntary,
        t.migrations,
        t.demotions,
        t.boosts,
        period_ms(t.period_ns),
        t.deadline_misses,
        t.priority,
        t.group,
        t.comm
    )
}

/// A detected period in ms, or `-` for a thread that is not periodic.
fn period_ms(period_ns: u64) -> String {
    match period_ns {
        0 => "-".into(),
        ns => format!("{:.3}", ns as f64 / 1e6),
    }
}

/// `scx_llmos threads`: asks the scheduler at `socket` for its threads (of
/// process `tgid` only, if given) and prints them once, or every `interval`
/// up to `count` times: as a table, or as one JSON object per line.
pub fn show(
    socket: &Path,
    tgid: Option<u32>,
    interval: Option<Duration>,
    count: Option<u64>,
    json: bool,
) -> Result<()> {
    let mut client = stats::connect(socket)?;
    let args = stats::threads_args(tgid);
    let start = Instant::now();
    let mut printed = 0u64;
    loop {
        let threads: Threads = client.request("stats", args.clone())?;
        if json {
            println!("{}", serde_json::to_string(&threads)?);
        } else {
            println!(
                "# t_ms={} threads={}",
                start.elapsed().as_millis(),
                threads.threads.len()
            );
            println!("{HEADER}");
            for t in &threads.threads {
                println!("{}", format_row(t));
            }
        }
        printed += 1;
        match interval {
            Some(interval) if count.is_none_or(|count| printed < count) => {
                std::thread::sleep(interval)
            }
            _ => return Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf_intf::llmos_thread_counters as ThreadCounters;

    #[test]
    fn record_becomes_a_row_with_every_field() {
        let mut t = ThreadStats {
            tid: 4242,
            tgid: 4200,
            level: 3,
            counters: ThreadCounters {
                last_cpu: 1,
                runtime_ns: 1_234_567_000,
                wait_ns: 5_000,
                nr_runs: 10,
                nr_voluntary: 4,
                nr_involuntary: 6,
                nr_migrations: 2,
                nr_demotions: 3,
                nr_boosts: 1,
                nr_deadline_misses: 7,
                ..zeroed().counters
            },
            priority: 19,
            group: -1,
            waiting: 1,
            period_ns: 16_666_667,
            ..zeroed()
        };
        for (dst, src) in t.comm.iter_mut().zip(b"Web Content") {
            *dst = *src as _;
        }
        let row = row(&t);
        assert_eq!(
            row,
            ThreadRow {
                tid: 4242,
                tgid: 4200,
                comm: "Web Content".into(),
                level: 3,
                priority: 19,
                group: -1,
                waiting: 1,
                cpu: 1,
                runtime_ns: 1_234_567_000,
                wait_ns: 5_000,
                runs: 10,
                voluntary: 4,
                involuntary: 6,
                migrations: 2,
                demotions: 3,
                boosts: 1,
                period_ns: 16_666_667,
                deadline_misses: 7,
            }
        );
        let line = format_row(&row);
        assert_eq!(
            line,
            "   4242    4200   3   1    1234.567       0.005       10        4        6      2      3      1    16.667      7   19  -1 Web Content"
        );
        assert_eq!(HEADER.split_whitespace().count(), 17);
        assert_eq!(line.split_whitespace().count(), 18);
        assert_eq!(
            format_row(&ThreadRow {
                period_ns: 0,
                ..row
            })
            .split_whitespace()
            .nth(12),
            Some("-")
        );
    }
}
