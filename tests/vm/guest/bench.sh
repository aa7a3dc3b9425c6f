#!/usr/bin/env bash
# Runs inside the VM, as root: the benchmark rounds, interleaved across
# schedulers, printing one "row ..." line per measurement (the raw data that
# llmos-bench-report turns into tables).
#   usage: bench.sh LLMOS_BIN KERNEL_CONFIG ROUNDS PROBE_SECS SCALE_THREADS MSG_LOOPS SCALE_SCHEDS
#     KERNEL_CONFIG  the booted kernel's config, for schedulers that read
#                    kconfig (scx_bpfland) when /boot has none ("" if not needed)
#     SCALE_THREADS  comma-separated spinner counts for the scale runs
#     SCALE_SCHEDS   space-separated names of the schedulers that run them
set -u
BIN=$1 KCONFIG=$2 ROUNDS=$3 PROBE_SECS=$4 SCALE_THREADS=$5 MSG_LOOPS=$6 SCALE_SCHEDS=$7
PROBE=$(dirname "$BIN")/llmos-probe
SYS=/sys/kernel/sched_ext
NCPU=$(nproc)
export PATH=/opt/scx/bin:$PATH

now_ms() { echo $(($(date +%s%N) / 1000000)); }
wait_state() { # STATE SECONDS
  local deadline=$(($(now_ms) + $2 * 1000))
  until [[ $(cat $SYS/state) == "$1" ]]; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.1
  done
}

# libbpf reads kconfig from /boot; give it the booted kernel's config.
if [[ -n $KCONFIG && ! -e /boot/config-$(uname -r) ]]; then
  mount -t tmpfs tmpfs /boot && cp "$KCONFIG" "/boot/config-$(uname -r)"
fi
# Scratch space off virtiofs: host I/O stalls the emulated CPU.
TMP=$(mktemp -d -p /dev/shm)
sysctl -qw kernel.bpf_stats_enabled=1

# Schedulers as "name command..." lines; eevdf attaches nothing.
schedulers=("eevdf")
for policy in mlfq vtime prio affinity fifo rr; do
  schedulers+=("$policy $BIN --policy $policy")
done
command -v scx_bpfland >/dev/null && schedulers+=("bpfland scx_bpfland")
command -v scx_lavd >/dev/null && schedulers+=("lavd scx_lavd")
echo "# bench: kernel $(uname -r), $NCPU CPUs, rounds $ROUNDS, probe ${PROBE_SECS}s," \
  "scale ${SCALE_THREADS}, schedulers: ${schedulers[*]%% *}"

SCHED_PID=""
attach() { # NAME COMMAND...
  shift
  (($#)) || return 0
  "$@" >"$TMP/sched.log" 2>&1 &
  SCHED_PID=$!
  wait_state enabled 60
}
detach() {
  [[ -n $SCHED_PID ]] || return 0
  kill -INT "$SCHED_PID"
  wait "$SCHED_PID"
  SCHED_PID=""
  wait_state disabled 30
}

# Mean BPF cost per call over all loaded struct_ops programs (the attached
# scheduler's callbacks), since it attached.
bpf_cost() {
  bpftool prog show 2>/dev/null | awk '
    / struct_ops / { for (i = 1; i <= NF; i++) {
        if ($i == "run_time_ns") t += $(i + 1)
        if ($i == "run_cnt") c += $(i + 1) } }
    END { if (c > 0) printf "ns_per_op=%d calls=%d", t / c, c; else print "ns_per_op=0 calls=0" }'
}

probe() { # SPINNERS -> "p50_us=.. p99_us=.. ..."
  "$PROBE" --duration-s "$PROBE_SECS" --warmup-ms 500 --spinners "$1" >"$TMP/probe.txt" 2>&1
  awk '/^latency_us/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); lat[kv[1]] = kv[2] } }
       /^batch/ { for (i = 2; i <= NF; i++) { split($i, kv, "="); b[kv[1]] = kv[2] } }
       END { # No sample: the sleeper never had a period to measure; no latency then.
             if (lat["samples"] > 0)
               printf "p50_us=%s p99_us=%s max_us=%s late_frac=%s ", lat["p50"], lat["p99"], lat["max"], lat["late_over_1ms"]
             printf "samples=%s start_us=%s iters_per_s=%s spinner_min=%s spinner_max=%s",
             lat["samples"], lat["start_us"], b["iters_per_s"], b["spinner_min"], b["spinner_max"] }' "$TMP/probe.txt"
}

for ((round = 1; round <= ROUNDS; round++)); do
  for entry in "${schedulers[@]}"; do
    read -r -a cmd <<<"$entry"
    name=${cmd[0]}
    if ! attach "${cmd[@]}"; then
      echo "row bench=error round=$round sched=$name what=attach log=$(tail -n 3 "$TMP/sched.log" | tr '\n ' '|_')"
      detach
      continue
    fi
    echo "row bench=probe round=$round sched=$name threads=$((2 * NCPU)) $(probe $((2 * NCPU)))"
    [[ $name == eevdf ]] || echo "row bench=bpf round=$round sched=$name $(bpf_cost)"
    secs=$(hackbench -g 4 -l "$MSG_LOOPS" 2>&1 | awk '/^Time:/ {print $2}')
    echo "row bench=messaging round=$round sched=$name secs=${secs:-nan}"
    detach || echo "row bench=error round=$round sched=$name what=detach"
  done
done

IFS=, read -r -a sizes <<<"$SCALE_THREADS"
for threads in "${sizes[@]}"; do
  for entry in "${schedulers[@]}"; do
    read -r -a cmd <<<"$entry"
    name=${cmd[0]}
    [[ " $SCALE_SCHEDS " == *" $name "* ]] || continue
    attach "${cmd[@]}" || { echo "row bench=error sched=$name what=attach"; detach; continue; }
    line="row bench=scale sched=$name threads=$threads $(probe "$threads")"
    [[ $name == eevdf ]] || line+=" $(bpf_cost)"
    echo "$line"
    detach || echo "row bench=error sched=$name what=detach"
  done
done
dmesg | grep -E 'sched_ext: .*(stall|error)' | sed 's/^/# dmesg: /'
echo "# bench: done"
