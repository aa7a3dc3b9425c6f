// SPDX-License-Identifier: GPL-2.0
//! llmos-verifier-stats: how many instructions the kernel's verifier walked
//! for each BPF program of the attached scx_llmos, as veristat reports them.
//!
//! The verifier walks every path of a program, so a change that multiplies
//! paths (an inlined loop body, a branch on a value it cannot bound) shows as
//! a jump here long before a program hits the kernel's 1M-instruction limit
//! or makes an attach slow under emulation. Each kernel counts its own way,
//! so the portability test records the counts per kernel of the matrix, and
//! bench/verifier.md keeps them.
//!
//! Prints `PROGRAM VERIFIED_INSNS XLATED_BYTES` per program, sorted by name,
//! then `total N`. Run as root while scx_llmos is attached; exits 1 if none
//! of its programs is loaded.

use std::process::ExitCode;

use libbpf_rs::query::{ProgInfoIter, ProgInfoQueryOptions};

/// A program every scx_llmos object loads; its BTF object names the rest.
const ANCHOR_PROGRAM: &str = "llmos_enqueue";

fn main() -> ExitCode {
    let query = ProgInfoQueryOptions::default().include_xlated_prog_insns(true);
    let programs: Vec<_> = ProgInfoIter::with_query_opts(query).collect();
    let Some(btf_id) = programs
        .iter()
        .find(|p| p.name.to_string_lossy() == ANCHOR_PROGRAM)
        .map(|p| p.btf_id)
    else {
        eprintln!("llmos-verifier-stats: no program named {ANCHOR_PROGRAM} is loaded (is scx_llmos attached?)");
        return ExitCode::FAILURE;
    };
    let mut ours: Vec<_> = programs
        .iter()
        .filter(|p| p.btf_id == btf_id)
        .map(|p| {
            (
                p.name.to_string_lossy().into_owned(),
                p.verified_insns,
                p.xlated_prog_insns.len(),
            )
        })
        .collect();
    ours.sort();
    for (name, verified, xlated) in &ours {
        println!("{name} {verified} {xlated}");
    }
    println!(
        "total {}",
        ours.iter().map(|(_, v, _)| u64::from(*v)).sum::<u64>()
    );
    ExitCode::SUCCESS
}
