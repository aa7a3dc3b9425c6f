// SPDX-License-Identifier: GPL-2.0
//! Kernel config for libbpf when the kernel does not publish its own.
//!
//! The scx headers read `CONFIG_PREEMPT_RCU` (in is_migration_disabled()).
//! libbpf resolves it from /boot/config-$(uname -r) or /proc/config.gz and
//! refuses to load the scheduler when neither exists, which is common for
//! self-built and VM kernels. For those, the option is derived from the
//! kernel's version string instead.

use std::ffi::CString;
use std::fs;
use std::path::Path;

/// The kernel config libbpf should use, or `None` when libbpf can find the
/// kernel's own.
pub fn fallback() -> Option<CString> {
    let release = fs::read_to_string("/proc/sys/kernel/osrelease").ok()?;
    let boot_config = format!("/boot/config-{}", release.trim());
    if Path::new(&boot_config).exists() || Path::new("/proc/config.gz").exists() {
        return None;
    }
    let version = fs::read_to_string("/proc/sys/kernel/version").ok()?;
    Some(CString::new(derive_from_version(&version)).expect("no NUL in generated config"))
}

/// `uname -v` names the preemption model ("PREEMPT", "PREEMPT_DYNAMIC",
/// "PREEMPT_RT", "PREEMPT_LAZY") exactly when the kernel is preemptible, and
/// tree RCU is preemptible exactly then. When in doubt say `n`: the scx
/// helper then over-reports migration-disabled tasks, which only keeps them
/// on their CPU, whereas under-reporting could crash the scheduler.
pub fn derive_from_version(version: &str) -> String {
    let preemptible = version
        .split_whitespace()
        .any(|word| word.starts_with("PREEMPT"));
    format!(
        "CONFIG_PREEMPT_RCU={}\n",
        if preemptible { 'y' } else { 'n' }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preemptible_kernels_have_preempt_rcu() {
        let debian = "#1 SMP PREEMPT_DYNAMIC Debian 7.2.13-1 (2026-10-02)";
        assert_eq!(derive_from_version(debian), "CONFIG_PREEMPT_RCU=y\n");
        assert_eq!(
            derive_from_version("#3 SMP PREEMPT_RT Tue"),
            "CONFIG_PREEMPT_RCU=y\n"
        );
    }

    #[test]
    fn other_kernels_say_no() {
        assert_eq!(
            derive_from_version("#1 SMP Mon Jan 1"),
            "CONFIG_PREEMPT_RCU=n\n"
        );
        assert_eq!(
            derive_from_version("#1 SMP NOPREEMPTION"),
            "CONFIG_PREEMPT_RCU=n\n"
        );
    }
}
