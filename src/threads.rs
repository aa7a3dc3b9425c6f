// SPDX-License-Identifier: GPL-2.0
//! `scx_llmos threads`: the per-thread table, read from the running
//! scheduler's `thread_stats` BPF map by any root process.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use libbpf_rs::query::MapInfoIter;
use libbpf_rs::{MapCore, MapFlags, MapHandle};

use crate::bpf_intf::llmos_thread_stats as ThreadStats;

// SAFETY: a C struct of integers and a char array: every bit pattern is valid.
unsafe impl plain::Plain for ThreadStats {}

/// An all-zero record.
fn zeroed() -> ThreadStats {
    // SAFETY: ThreadStats is plain old data (see above); all zeros is valid.
    unsafe { std::mem::zeroed() }
}

/// The map's name as the kernel reports it (BPF object names are cut at 15 bytes).
const MAP_NAME: &str = "thread_stats";

/// Finds the thread_stats map of the attached scx_llmos: the newest map
/// with that name and the value layout of this build.
pub fn open_map() -> Result<MapHandle> {
    let value_size = std::mem::size_of::<ThreadStats>() as u32;
    let id = MapInfoIter::default()
        .filter(|info| info.name.to_str() == Some(MAP_NAME) && info.value_size == value_size)
        .map(|info| info.id)
        .max();
    match id {
        Some(id) => MapHandle::from_map_id(id).context("cannot open the thread_stats map"),
        None => bail!("scx_llmos is not running (no thread_stats map is loaded)"),
    }
}

/// Every thread in the map, optionally only those of process `tgid`.
pub fn read_all(map: &impl MapCore, tgid: Option<u32>) -> Result<Vec<ThreadStats>> {
    let mut threads = Vec::new();
    for key in map.keys() {
        // A thread can exit between listing its key and reading it.
        let Some(bytes) = map.lookup(&key, MapFlags::ANY)? else {
            continue;
        };
        let mut stats = zeroed();
        plain::copy_from_bytes(&mut stats, &bytes)
            .map_err(|e| anyhow::anyhow!("malformed thread_stats value: {e:?}"))?;
        if tgid.is_none_or(|tgid| stats.tgid == tgid) {
            threads.push(stats);
        }
    }
    threads.sort_by_key(|t| (std::cmp::Reverse(t.runtime_ns), t.tid));
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
    format!(
        "{:>7} {:>7} {:>3} {:>3} {:>11.3} {:>11.3} {:>8} {:>8} {:>8} {:>6} {:>6} {:>6} {:>4} {:>3} {}",
        t.tid,
        t.tgid,
        t.level,
        t.last_cpu,
        t.runtime_ns as f64 / 1e6,
        t.wait_ns as f64 / 1e6,
        t.nr_runs,
        t.nr_voluntary,
        t.nr_involuntary,
        t.nr_migrations,
        t.nr_demotions,
        t.nr_boosts,
        t.priority,
        t.group,
        comm(t)
    )
}

/// Prints the table once, or every `interval` up to `count` times.
pub fn show(tgid: Option<u32>, interval: Option<Duration>, count: Option<u64>) -> Result<()> {
    let map = open_map()?;
    let start = Instant::now();
    let mut printed = 0u64;
    loop {
        let threads = read_all(&map, tgid)?;
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

    #[test]
    fn row_has_every_column_and_the_name_last() {
        let mut t = ThreadStats {
            tid: 4242,
            tgid: 4200,
            level: 3,
            last_cpu: 1,
            runtime_ns: 1_234_567_000,
            wait_ns: 5_000,
            nr_runs: 10,
            nr_voluntary: 4,
            nr_involuntary: 6,
            nr_migrations: 2,
            nr_demotions: 3,
            nr_boosts: 1,
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
