// SPDX-License-Identifier: GPL-2.0
//! Boots a sched_ext kernel in a VM (tests/vm/run.sh) and proves scx_llmos's
//! behaviour there. One boot runs many checks; every expected check must
//! report "ok", so a check that silently did not run fails the test.
//!
//! The kernel comes from SCX_LLMOS_KERNEL (unset: the running kernel). If the
//! VM cannot start, the test fails: it never passes by skipping.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What tests/vm/guest/basic.sh must report as passed.
const BASIC_CHECKS: &[&str] = &[
    "vm_has_sched_ext",
    "unknown_policy",
    "slice_too_small",
    "slice_too_large",
    "stats_out_of_range",
    "not_root",
    "no_sched_ext",
    "attach",
    "ops_name",
    "enabled_in_dmesg",
    "another_scheduler",
    "stress_completed",
    "stayed_attached",
    "pinned_cpu0_stays",
    "pinned_cpu1_stays",
    "stats_reported",
    "sigint_detaches",
    "reattach",
    "sigterm_detaches",
    "sigkill_falls_back",
    "no_stall",
    "clean_exits",
];

/// Runs a guest script in a fresh VM and returns its output, after printing
/// it so the test log shows what happened in the guest.
fn run_in_vm(script: &str, out_name: &str) -> (bool, String) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out: PathBuf = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out_name);
    std::fs::create_dir_all(&out).unwrap();
    let output = Command::new(root.join("tests/vm/run.sh"))
        .arg(root.join(script))
        .arg(env!("CARGO_BIN_EXE_scx_llmos"))
        .arg(&out)
        .current_dir(root)
        .env("VM_OUT", &out)
        .output()
        .expect("failed to start tests/vm/run.sh");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    println!(
        "--- {script} in the VM (exit {:?}) ---",
        output.status.code()
    );
    print!("{stdout}");
    print!("{}", String::from_utf8_lossy(&output.stderr));
    (output.status.success(), stdout)
}

/// The expected checks that did not report "ok", with the guest's words.
fn missing_or_failed(expected: &[&str], output: &str) -> Vec<String> {
    expected
        .iter()
        .filter(|name| {
            !output
                .lines()
                .any(|l| l.starts_with(&format!("ok {name}:")))
        })
        .map(|name| {
            output
                .lines()
                .find(|l| l.starts_with(&format!("FAIL {name}:")))
                .map_or(format!("{name}: never reported"), str::to_string)
        })
        .collect()
}

#[test]
fn vm_attach_stress_pinning_detach_and_bad_input() {
    let (success, output) = run_in_vm("tests/vm/guest/basic.sh", "vm-basic");
    let problems = missing_or_failed(BASIC_CHECKS, &output);
    assert!(
        problems.is_empty(),
        "VM checks failed:\n{}",
        problems.join("\n")
    );
    let unexpected: Vec<&str> = output.lines().filter(|l| l.starts_with("FAIL ")).collect();
    assert!(
        unexpected.is_empty(),
        "unlisted checks failed: {unexpected:?}"
    );
    assert!(success, "the guest script or the VM exited non-zero");
}

#[test]
fn missing_checks_are_failures() {
    let output = "ok a: fine\nFAIL b: broke\n";
    assert_eq!(
        missing_or_failed(&["a", "b", "c"], output),
        vec!["FAIL b: broke".to_string(), "c: never reported".to_string()]
    );
}
