// SPDX-License-Identifier: GPL-2.0
//! The scheduler's global event counters: per-CPU in BPF, summed here.

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};

use crate::bpf_intf;

const NR_STATS: usize = bpf_intf::llmos_stat_LLMOS_NR_STATS as usize;
const FIRST_LEVEL: usize = bpf_intf::llmos_stat_LLMOS_STAT_LEVEL_RUN as usize;

/// Names of the event counters, in the order of `enum llmos_stat` in
/// bpf/intf.h; the per-level run counters follow them.
pub const EVENT_NAMES: [&str; FIRST_LEVEL] = [
    "idle", "kthread", "pinned", "shared", "steal", "refill", "preempt", "boost", "cpuq", "switch",
    "carried", "xllc", "pushed", "boost_ns",
];

pub type Counters = [u64; NR_STATS];

/// Reads every counter of the per-CPU `stats` map, summed over CPUs.
pub fn read(map: &impl MapCore) -> Result<Counters> {
    let mut totals = [0u64; NR_STATS];
    for (idx, total) in totals.iter_mut().enumerate() {
        let key = (idx as u32).to_ne_bytes();
        let per_cpu = map
            .lookup_percpu(&key, MapFlags::ANY)
            .context("failed to read the stats map")?
            .unwrap_or_default();
        *total = per_cpu.iter().map(|bytes| as_u64(bytes)).sum();
    }
    Ok(totals)
}

fn as_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

/// One line of `--stats` output: the events since `prev`, then how many
/// times a task started running at each of the first `levels` levels.
pub fn format_delta(prev: &Counters, now: &Counters, levels: usize) -> String {
    let delta = |idx: usize| now[idx].wrapping_sub(prev[idx]);
    let events: Vec<String> = EVENT_NAMES
        .iter()
        .enumerate()
        .map(|(idx, name)| format!("{name}={}", delta(idx)))
        .collect();
    let runs: Vec<String> = (0..levels)
        .map(|level| format!("l{level}={}", delta(FIRST_LEVEL + level)))
        .collect();
    format!("events: {} | runs: {}", events.join(" "), runs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_bpf_enum() {
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_IDLE_DISPATCH as usize],
            "idle"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_STEAL as usize],
            "steal"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_PREEMPT as usize],
            "preempt"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_BOOST as usize],
            "boost"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_CARRIED as usize],
            "carried"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_LLC_MIGRATION as usize],
            "xllc"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_PUSHED as usize],
            "pushed"
        );
        assert_eq!(
            EVENT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_BOOST_NS as usize],
            "boost_ns"
        );
        assert_eq!(
            NR_STATS,
            FIRST_LEVEL + bpf_intf::llmos_consts_LLMOS_MAX_LEVELS as usize
        );
    }

    #[test]
    fn delta_line_counts_since_previous() {
        let prev: Counters = [
            1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 0, 0, 0, 0, 0, 0, 0,
        ];
        let mut now = prev;
        now[0] += 10;
        now[3] += 100;
        now[7] += 1;
        now[11] += 3;
        now[13] += 2500;
        now[FIRST_LEVEL] += 50;
        now[FIRST_LEVEL + 1] += 5;
        assert_eq!(
            format_delta(&prev, &now, 2),
            "events: idle=10 kthread=0 pinned=0 shared=100 steal=0 refill=0 preempt=0 boost=1 cpuq=0 switch=0 carried=0 xllc=3 pushed=0 boost_ns=2500 | runs: l0=50 l1=5"
        );
    }

    #[test]
    fn per_cpu_values_are_read_as_u64() {
        assert_eq!(as_u64(&42u64.to_ne_bytes()), 42);
        assert_eq!(as_u64(&[]), 0);
    }
}
