// SPDX-License-Identifier: GPL-2.0
//! Checks that run before anything is loaded, so that a user who cannot run
//! the scheduler learns why in one line and their system is left untouched.

use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use anyhow::{bail, Context, Result};

/// Where the kernel publishes sched_ext's state.
pub const SCHED_EXT_SYSFS: &str = "/sys/kernel/sched_ext";

/// Fails unless the effective user is root: loading a scheduler needs
/// CAP_SYS_ADMIN and CAP_BPF, which only root has by default.
pub fn require_root(euid: u32) -> Result<()> {
    if euid != 0 {
        bail!("must be run as root (effective uid is {euid}); try sudo");
    }
    Ok(())
}

/// Fails if the kernel lacks sched_ext or another sched_ext scheduler is
/// attached. `sysfs` is normally [`SCHED_EXT_SYSFS`].
pub fn require_sched_ext_free(sysfs: &Path) -> Result<()> {
    let state = match fs::read_to_string(sysfs.join("state")) {
        Ok(state) => state,
        Err(e) if e.kind() == ErrorKind::NotFound => bail!(
            "this kernel has no sched_ext ({} is missing): boot a kernel built with \
             CONFIG_SCHED_CLASS_EXT=y (6.12 or later)",
            sysfs.display()
        ),
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read {}", sysfs.join("state").display()))
        }
    };
    match state.trim() {
        "disabled" => Ok(()),
        other => {
            let ops = fs::read_to_string(sysfs.join("root/ops")).unwrap_or_default();
            let name = ops.trim();
            if name.is_empty() {
                bail!("another sched_ext scheduler is already running (sched_ext state: {other})");
            }
            bail!("another sched_ext scheduler is already running: {name} (stop it first)");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    /// A throw-away directory shaped like /sys/kernel/sched_ext.
    fn fake_sysfs(name: &str, state: Option<&str>, ops: Option<&str>) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("llmos-preflight-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("root")).unwrap();
        if let Some(state) = state {
            fs::write(dir.join("state"), state).unwrap();
        }
        if let Some(ops) = ops {
            fs::write(dir.join("root/ops"), ops).unwrap();
        }
        dir
    }

    #[test]
    fn root_is_required() {
        assert!(require_root(0).is_ok());
        let err = require_root(1000).unwrap_err().to_string();
        assert_eq!(err, "must be run as root (effective uid is 1000); try sudo");
    }

    #[test]
    fn disabled_sched_ext_is_free() {
        let dir = fake_sysfs("free", Some("disabled\n"), None);
        assert!(require_sched_ext_free(&dir).is_ok());
    }

    #[test]
    fn missing_sched_ext_is_named() {
        let dir = fake_sysfs("missing", None, None);
        let err = require_sched_ext_free(&dir).unwrap_err().to_string();
        assert!(err.starts_with("this kernel has no sched_ext ("), "{err}");
        assert!(err.contains("CONFIG_SCHED_CLASS_EXT=y"), "{err}");
    }

    #[test]
    fn running_scheduler_is_named() {
        let dir = fake_sysfs("busy", Some("enabled\n"), Some("bpfland_1.1.4\n"));
        let err = require_sched_ext_free(&dir).unwrap_err().to_string();
        assert_eq!(
            err,
            "another sched_ext scheduler is already running: bpfland_1.1.4 (stop it first)"
        );
    }

    #[test]
    fn enabling_scheduler_without_name_is_still_refused() {
        let dir = fake_sysfs("enabling", Some("enabling\n"), None);
        let err = require_sched_ext_free(&dir).unwrap_err().to_string();
        assert_eq!(
            err,
            "another sched_ext scheduler is already running (sched_ext state: enabling)"
        );
    }
}
