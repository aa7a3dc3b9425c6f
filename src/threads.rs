// SPDX-License-Identifier: GPL-2.0
//! `scx_llmos threads`: the per-thread table, read from the running
//! scheduler's `dump_threads` BPF iterator by any root process.

use std::fs::File;
use std::io::Read;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::libbpf_sys;
use libbpf_rs::query::ProgInfoIter;
use libbpf_rs::ProgramType;

use crate::bpf_intf::llmos_thread_stats as ThreadStats;

// SAFETY: a C struct of integers and a char array: every bit pattern is valid.
unsafe impl plain::Plain for ThreadStats {}

/// An all-zero record.
fn zeroed() -> ThreadStats {
    // SAFETY: ThreadStats is plain old data (see above); all zeros is valid.
    unsafe { std::mem::zeroed() }
}

/// The iterator program's name as the kernel reports it.
const PROG_NAME: &str = "dump_threads";

/// Takes ownership of a file descriptor a libbpf call returned, or of its error.
fn owned_fd(ret: i32, what: &str) -> Result<OwnedFd> {
    if ret < 0 {
        bail!("{what}: {}", std::io::Error::from_raw_os_error(-ret));
    }
    // SAFETY: libbpf returned a new descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(ret) })
}

/// Links the dump_threads iterator of the attached scx_llmos (the newest
/// program with that name) for reading: over every task, or, given `tgid`,
/// over that process's threads only (the kernel walks just those, so watching
/// one process costs the same on a machine with thousands of tasks).
pub fn open_iterator(tgid: Option<u32>) -> Result<OwnedFd> {
    let id = ProgInfoIter::default()
        .filter(|info| info.name.to_str() == Some(PROG_NAME) && info.ty == ProgramType::Tracing)
        .map(|info| info.id)
        .max();
    let Some(id) = id else {
        bail!("scx_llmos is not running (no {PROG_NAME} iterator is loaded)");
    };
    // SAFETY: plain libbpf calls on integers; the results are checked.
    let prog = owned_fd(
        unsafe { libbpf_sys::bpf_prog_get_fd_by_id(id) },
        "cannot open the thread iterator",
    )?;
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
    // SAFETY: as above; `prog`, `only` and `opts` outlive the call.
    let link = unsafe {
        libbpf_sys::bpf_link_create(prog.as_raw_fd(), 0, libbpf_sys::BPF_TRACE_ITER, &opts)
    };
    owned_fd(link, "cannot link the thread iterator")
}

/// Every thread the scheduler knows of those the iterator walks.
pub fn read_all(link: &OwnedFd) -> Result<Vec<ThreadStats>> {
    // SAFETY: a plain libbpf call on a link descriptor we own; the result is checked.
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
    let mut threads = Vec::with_capacity(bytes.len() / size);
    for chunk in bytes.chunks_exact(size) {
        let mut stats = zeroed();
        plain::copy_from_bytes(&mut stats, chunk)
            .map_err(|e| anyhow::anyhow!("malformed thread row: {e:?}"))?;
        threads.push(stats);
    }
    threads.sort_by_key(|t| (std::cmp::Reverse(t.counters.runtime_ns), t.tid));
    Ok(threads)
}

/// The table's header line; `format_row` fills the same columns.
pub const HEADER: &str =
    "    TID    TGID LVL CPU      RUN_MS     WAIT_MS     RUNS      VOL    INVOL   MIGR DEMOTE  BOOST PRIO GRP COMM";

fn comm(stats: &ThreadStats) -> String {
    let bytes: Vec<u8> = stats
        .comm
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// One thread as a table row. The name comes last: it may contain spaces.
pub fn format_row(t: &ThreadStats) -> String {
    let c = &t.counters;
    format!(
        "{:>7} {:>7} {:>3} {:>3} {:>11.3} {:>11.3} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>4} {:>3} {}",
        t.tid,
        t.tgid,
        t.level,
        c.last_cpu,
        c.runtime_ns as f64 / 1e6,
        c.wait_ns as f64 / 1e6,
        c.nr_runs,
        c.nr_voluntary,
        c.nr_involuntary,
        c.nr_migrations,
        c.nr_demotions,
        c.nr_boosts,
        t.priority,
        t.group,
        comm(t)
    )
}

/// Prints the table once, or every `interval` up to `count` times.
pub fn show(tgid: Option<u32>, interval: Option<Duration>, count: Option<u64>) -> Result<()> {
    let link = open_iterator(tgid)?;
    let start = Instant::now();
    let mut printed = 0u64;
    loop {
        let threads = read_all(&link)?;
        println!(
            "# t_ms={} threads={}",
            start.elapsed().as_millis(),
            threads.len()
        );
        println!("{HEADER}");
        for t in &threads {
            println!("{}", format_row(t));
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
    fn row_has_every_column_and_the_name_last() {
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
                ..zeroed().counters
            },
            priority: 19,
            group: -1,
            ..zeroed()
        };
        for (dst, src) in t.comm.iter_mut().zip(b"Web Content") {
            *dst = *src as _;
        }
        let row = format_row(&t);
        assert_eq!(
            row,
            "   4242    4200   3   1    1234.567       0.005       10        4        6      2      3      1   19  -1 Web Content"
        );
        assert_eq!(HEADER.split_whitespace().count(), 15);
        assert_eq!(row.split_whitespace().count(), 16);
    }
}
