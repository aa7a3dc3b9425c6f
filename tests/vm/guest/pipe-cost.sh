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
provide_kernel_config "$KCONFIG"
schedulers=("eevdf" "mlfq $BIN --policy mlfq" "vtime $BIN --policy vtime" "fifo $BIN --policy fifo")
command -v scx_bpfland >/dev/null && schedulers+=("bpfland scx_bpfland")
for round in $(seq "$ROUNDS"); do
  for entry in "${schedulers[@]}"; do
    read -ra cmd <<<"$entry"
    name=${cmd[0]}
    attach "/dev/shm/pipe-cost-$name.log" "${cmd[@]:1}" || echo "attach of $name failed"
    sleep 1
    sysctl -qw kernel.bpf_stats_enabled=0
    secs=$(pipe_secs "$LOOPS")
    sysctl -qw kernel.bpf_stats_enabled=1
    secs_with_stats=$(pipe_secs "$LOOPS")
    per_call=$(struct_ops_runs | awk -v loops="$LOOPS" '
      { total += $2; if ($3) printf "%s=%dns*%.2f ", $1, $2 / $3, $3 / loops }
      END { printf "bpf_ns_per_loop=%.0f", total / loops }')
    sysctl -qw kernel.bpf_stats_enabled=0
    echo "row round=$round sched=$name secs=$secs secs_with_stats=$secs_with_stats $per_call"
    detach
  done
done | tee "$OUT/pipe-cost.txt"
