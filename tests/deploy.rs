// SPDX-License-Identifier: GPL-2.0
//! What deploy/ installs: systemd checks the unit as it would load it, and
//! the flags of the environment file are ones scx_llmos accepts.

use std::process::Command;

use common::scratch_dir;

mod common;

const UNIT: &str = "deploy/scx_llmos.service";
const DEFAULTS: &str = "deploy/scx_llmos.default";
/// Where the unit expects the binary.
const INSTALLED_BINARY: &str = "/usr/local/bin/scx_llmos";

#[test]
fn systemd_accepts_the_unit() {
    let unit = std::fs::read_to_string(UNIT).unwrap();
    for line in [
        "ConditionPathIsDirectory=/sys/kernel/sched_ext",
        "Restart=on-failure",
        "EnvironmentFile=-/etc/default/scx_llmos",
    ] {
        assert!(unit.lines().any(|l| l == line), "{UNIT} lacks {line}");
    }
    // systemd-analyze checks that ExecStart's binary exists: the built one.
    assert!(
        unit.contains(INSTALLED_BINARY),
        "{UNIT} does not start {INSTALLED_BINARY}"
    );
    let dir = scratch_dir("unit");
    let path = dir.join("scx_llmos.service");
    std::fs::write(
        &path,
        unit.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_scx_llmos")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) runs");
    std::fs::remove_dir_all(&dir).unwrap();
    // A directive systemd cannot parse is a warning on stderr, not an exit code.
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "systemd-analyze verify {UNIT}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn default_flags_are_accepted() {
    let defaults = std::fs::read_to_string(DEFAULTS).unwrap();
    let flags = defaults
        .lines()
        .find_map(|l| l.strip_prefix("SCX_LLMOS_FLAGS="))
        .expect("an SCX_LLMOS_FLAGS= line")
        .trim_matches('"');
    // --help-stats: parsed and range-checked like a start, and nothing loaded.
    let out = Command::new(env!("CARGO_BIN_EXE_scx_llmos"))
        .args(flags.split_whitespace())
        .arg("--help-stats")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scx_llmos {flags}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
