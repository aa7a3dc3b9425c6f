// SPDX-License-Identifier: GPL-2.0
//! What the integration tests share.

use std::path::PathBuf;

/// A directory of this test's own under the system's temporary directory.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("scx_llmos-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
