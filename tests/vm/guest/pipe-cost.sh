#!/usr/bin/env bash
# Runs inside the VM, as root: where perf's pipe ping-pong spends its time
# under each scheduler (bench/pipe-cost.md). For each, in interleaved rounds:
# attach, `perf bench sched pipe` with BPF statistics off (its time), again
# with them on (each struct_ops program's ns per call and calls per round
# trip), detach. Prints one "row" line per scheduler and round.
#   usage: pipe-cost.sh SCX_LLMOS_BINARY OUT_DIR [LOOPS [ROUNDS [KERNEL_CONFIG]]]
# KERNEL_CONFIG: the booted kernel's config, for scx_bpfland when /boot has none.
set -u
BIN=$1 OUT=$2 LOOPS=${3:-20000} ROUNDS=${4:-3} KCONFIG=${5:-}
export PATH=/opt/scx/bin:$PATH
. "$(dirname "$0")/checks.sh"
if [[ -n $KCONFIG && ! -e /boot/config-$(uname -r) ]]; then
  mount -t tmpfs tmpfs /boot && cp "$KCONFIG" "/boot/config-$(uname -r)"
fi
schedulers=("eevdf" "mlfq $BIN --policy mlfq" "vtime $BIN --policy vtime" "fifo $BIN --policy fifo")
command -v scx_bpfland >/dev/null && schedulers+=("bpfland scx_bpfland")
pipe_secs() { perf bench sched pipe -l "$LOOPS" 2>&1 | awk '/Total time:/ {print $3}'; }
for round in $(seq "$ROUNDS"); do
  for entry in "${schedulers[@]}"; do
    read -ra cmd <<<"$entry"
    name=${cmd[0]} pid=""
    if ((${#cmd[@]} > 1)); then
      "${cmd[@]:1}" >"/dev/shm/pipe-cost-$name.log" 2>&1 &
      pid=$!
      wait_state enabled 30 >/dev/null || echo "attach of $name failed"
    fi
    sleep 1
    sysctl -qw kernel.bpf_stats_enabled=0
    secs=$(pipe_secs)
    sysctl -qw kernel.bpf_stats_enabled=1
    secs_with_stats=$(pipe_secs)
    per_call=$(bpftool prog show 2>/dev/null | awk -v loops="$LOOPS" '
      / struct_ops / { t = 0; c = 0
        for (i = 1; i <= NF; i++) { if ($i == "run_time_ns") t = $(i + 1); if ($i == "run_cnt") c = $(i + 1) }
        total += t; if (c) printf "%s=%dns*%.2f ", $4, t / c, c / loops }
      END { printf "bpf_ns_per_loop=%.0f", total / loops }')
    sysctl -qw kernel.bpf_stats_enabled=0
    echo "row round=$round sched=$name secs=$secs secs_with_stats=$secs_with_stats $per_call"
    if [[ -n $pid ]]; then
      kill -INT "$pid"
      wait "$pid"
      wait_state disabled 30 >/dev/null
    fi
  done
done | tee "$OUT/pipe-cost.txt"
