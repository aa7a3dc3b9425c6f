#!/usr/bin/env bash
# The whole scx_llmos test suite: installs what it needs (tests/vm/setup.sh),
# checks formatting and lints, then runs the unit tests and the VM tests in a
# sched_ext kernel (SCX_LLMOS_KERNEL; unset: the running kernel via vng -r).
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/vm/setup.sh
export PATH=/opt/vng/bin:/opt/virtiofsd/bin:$PATH
echo "run-all: kernel for the VM tests: ${SCX_LLMOS_KERNEL:-the running kernel}"

start=$(date +%s)
cargo build --release --all-targets
echo "run-all: build took $(($(date +%s) - start)) s"
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
# --nocapture: the log shows the VM booting and every check in the guest.
cargo test --release -- --nocapture
# A short run of the benchmark, so that it cannot rot.
tests/vm/bench.sh --smoke
