#!/usr/bin/env bash
# The whole scx_llmos test suite: installs what it needs (tests/vm/setup.sh),
# checks formatting and lints, then runs the unit tests and the VM tests in
# sched_ext kernels: the portability test on every kernel tests/vm/kernels.sh
# lists (SCX_LLMOS_KERNEL, else the matrix in ../shared/vm/kernel, else the
# running kernel via vng -r), the behaviour tests on the newest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash tests/vm/setup.sh
export PATH=/opt/vng/bin:/opt/virtiofsd/bin:$PATH
kernels=$(tests/vm/kernels.sh)
echo "run-all: kernels for the VM tests: ${kernels:-the running kernel}" | paste -sd' '

start=$(date +%s)
cargo build --release --all-targets
echo "run-all: build took $(($(date +%s) - start)) s"
cargo fmt --check
cargo clippy --release --all-targets -- -D warnings
# --nocapture: the log shows the VM booting and every check in the guest.
# A CI log may be cut in the middle, so the failed checks are repeated at
# the end, where it is read.
log=$(mktemp)
if ! cargo test --release -- --nocapture 2>&1 | tee "$log"; then
  echo "run-all: the tests failed; their failed checks:"
  grep -aE '^(FAIL |test .* FAILED$|.*panicked at )' "$log" | cut -c1-500
  exit 1
fi
rm -f "$log"
echo "run-all: tests done $(($(date +%s) - start)) s after the build started"
# A short run of the benchmark, so that it cannot rot.
tests/vm/bench.sh --smoke
