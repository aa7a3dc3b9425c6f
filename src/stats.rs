// SPDX-License-Identifier: GPL-2.0
//! The scheduler's global event counters: per-CPU in BPF, summed here.

use anyhow::{Context, Result};
use libbpf_rs::{MapCore, MapFlags};

use crate::bpf_intf;

/// Counter names, in the order of `enum llmos_stat` in bpf/intf.h.
pub const STAT_NAMES: [&str; bpf_intf::llmos_stat_LLMOS_NR_STATS as usize] =
    ["idle", "kthread", "pinned", "shared", "steal", "refill"];

pub type Counters = [u64; STAT_NAMES.len()];

/// Reads every counter of the per-CPU `stats` map, summed over CPUs.
pub fn read(map: &impl MapCore) -> Result<Counters> {
    let mut totals = [0u64; STAT_NAMES.len()];
    for (idx, total) in totals.iter_mut().enumerate() {
        let key = (idx as u32).to_ne_bytes();
        let per_cpu = map
            .lookup_percpu(&key, MapFlags::ANY)
            .context("failed to read the stats map")?
            .unwrap_or_default();
        *total = per_cpu.iter().map(|bytes| sum_u64(bytes)).sum();
    }
    Ok(totals)
}

fn sum_u64(bytes: &[u8]) -> u64 {
    bytes
        .get(..8)
        .map(|b| u64::from_ne_bytes(b.try_into().unwrap()))
        .unwrap_or(0)
}

/// One line of `--stats` output: what happened since `prev`, as counts.
pub fn format_delta(prev: &Counters, now: &Counters) -> String {
    let fields: Vec<String> = STAT_NAMES
        .iter()
        .zip(prev.iter().zip(now.iter()))
        .map(|(name, (p, n))| format!("{name}={}", n.wrapping_sub(*p)))
        .collect();
    format!("dispatch: {}", fields.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_the_bpf_enum() {
        assert_eq!(
            STAT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_IDLE_DISPATCH as usize],
            "idle"
        );
        assert_eq!(
            STAT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_STEAL as usize],
            "steal"
        );
        assert_eq!(
            STAT_NAMES[bpf_intf::llmos_stat_LLMOS_STAT_SLICE_REFILL as usize],
            "refill"
        );
    }

    #[test]
    fn delta_line_counts_since_previous() {
        let prev = [1, 2, 3, 4, 5, 6];
        let now = [11, 2, 4, 104, 5, 7];
        assert_eq!(
            format_delta(&prev, &now),
            "dispatch: idle=10 kthread=0 pinned=1 shared=100 steal=0 refill=1"
        );
    }

    #[test]
    fn per_cpu_values_are_read_as_u64() {
        assert_eq!(sum_u64(&42u64.to_ne_bytes()), 42);
        assert_eq!(sum_u64(&[]), 0);
    }
}
