#!/usr/bin/env bash
# Installs everything scx_llmos needs to build and to run its VM tests on a fresh Debian 12
# (bookworm) machine, as root; with --bench, also what the full benchmark compares with.
# Idempotent: each step is skipped when its result is present.
set -euo pipefail

# tmux: the pseudo-terminal `scx_llmos top` is tested in (tests/top_pty.rs, guest/top-check.sh).
apt_packages=(python3-venv clang-19 libelf-dev zlib1g-dev pkg-config qemu-system-x86 kmod udev bpftool
  stress-ng rt-tests linux-perf libseccomp-dev libcap-ng-dev util-linux procps gnuplot-nox tmux systemd)
missing=()
for pkg in "${apt_packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# QEMU from bookworm-backports: bookworm's 7.2 gets the flags of an emulated
# cmpxchg16b wrong (fixed in 8.0), and guest kernels crash of it at random
# (src/bin/llmos-cpu-check.rs). Hiding cx16 is no way out: from 6.18 the
# kernel's BPF timers need it.
qemu_version() { dpkg-query -W -f='${Version}' qemu-system-x86 2>/dev/null | sed 's/^[0-9]*://'; }
if dpkg --compare-versions "$(qemu_version)" lt 8.0; then
  echo "setup: installing qemu-system-x86 from bookworm-backports (have $(qemu_version))"
  echo "deb http://deb.debian.org/debian bookworm-backports main" >/etc/apt/sources.list.d/bookworm-backports.list
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    -t bookworm-backports qemu-system-x86 >/dev/null
fi

# virtme-ng boots the test kernel; pinned to the version the VM recipe was tested with.
if ! /opt/vng/bin/vng --version >/dev/null 2>&1; then
  echo "setup: installing virtme-ng into /opt/vng"
  python3 -m venv /opt/vng
  /opt/vng/bin/pip install -q virtme-ng==1.42
fi

# vng needs a virtiofsd newer than bookworm's; without it vng falls back to 9p, which panics.
if ! [ -x /opt/virtiofsd/bin/virtiofsd ]; then
  echo "setup: building virtiofsd into /opt/virtiofsd (~2 min)"
  cargo install -q --locked --root /opt/virtiofsd virtiofsd@1.14.0
fi
# The comparison schedulers for the benchmark; scx_utils' build script needs
# a clang, hence BPF_CLANG. The bench smoke (tests/run-all.sh) runs
# scx_bpfland only; scx_lavd comes with --bench (tests/vm/bench.sh's full
# runs), and saves CI its 55 s build. One target directory for both: their
# locked dependencies are the same, so the second builds only itself
# (scx_lavd: 55 s after scx_bpfland's 159 s, 173 s alone).
comparators=(scx_bpfland)
[[ ${1:-} == --bench ]] && comparators+=(scx_lavd)
scx_target=$(mktemp -d)
for sched in "${comparators[@]}"; do
  if ! [ -x /opt/scx/bin/$sched ]; then
    echo "setup: building $sched into /opt/scx (~3 min, the second ~1 min)"
    BPF_CLANG=clang-19 CARGO_TARGET_DIR=$scx_target cargo install -q --locked --root /opt/scx $sched@1.1.4
  fi
done
rm -rf "$scx_target"
echo "setup: done (add /opt/vng/bin:/opt/virtiofsd/bin to PATH; tests/vm/run.sh does)"
