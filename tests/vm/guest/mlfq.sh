#!/usr/bin/env bash
# Runs inside the VM, as root: the MLFQ evidence, in one boot.
#   usage: mlfq.sh SCX_LLMOS_BINARY OUT_DIR
# Boot it with one CPU: under TCG a lone vCPU is never descheduled by the
# emulator, so the wakeup latencies measured are the scheduler's. (Pinning
# and multi-CPU behaviour are proven in basic.sh, whose default policy is mlfq.)
# For each of the vtime and mlfq policies: attach scx_llmos, run llmos-probe
# (one 10 ms sleeper, 2 x NCPU spinners) while sampling the per-thread map
# every 100 ms; under mlfq, snapshot the map beside /proc's schedstat once the
# probe's threads are parked. tests/vm.rs judges the files; this script
# reports "ok"/"FAIL" for what only the guest can see.
set -u
BIN=$1
OUT=$2
PROBE=$(dirname "$BIN")/llmos-probe
SYS=/sys/kernel/sched_ext
NCPU=$(nproc)
PROBE_SECS=12
. "$(dirname "$0")/checks.sh"
wait_for() { # SECONDS CONDITION...: polls every 50 ms
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.05
  done
}
is_state() { [[ $(cat $SYS/state) == "$1" ]]; }

echo "guest: $(uname -r), $NCPU CPUs"
dmesg -C
# Results go to a tmpfs while measuring and are copied out afterwards: file
# I/O to the host through virtiofs stalls the emulated CPU.
RESULTS=$OUT
OUT=$(mktemp -d -p /dev/shm)
for policy in vtime mlfq; do
  "$BIN" --policy $policy >"$OUT/sched-$policy.log" 2>&1 &
  sched=$!
  verdict "attach_$policy" "scx_llmos --policy $policy attached" wait_for 30 is_state enabled

  "$PROBE" --duration-s $PROBE_SECS --spinners $((2 * NCPU)) --hold-s 3 \
    --samples-out "$OUT/latency-$policy.txt" >"$OUT/probe-$policy.txt" 2>&1 &
  probe=$!
  # Sampled under both policies, so both latency runs carry the same load.
  "$BIN" threads --pid $probe --interval 0.1 --count $((PROBE_SECS * 10)) >"$OUT/threads-$policy.txt" 2>&1 &
  sampler=$!
  # One sleep, not a polling loop: every process started while measuring
  # runs kernel code that cannot be preempted (Debian's kernels default to
  # voluntary preemption) and shows up in the latencies.
  sleep $PROBE_SECS
  verdict "probe_ran_$policy" "llmos-probe reached its hold point" \
    wait_for 60 grep -q '^HOLD' "$OUT/probe-$policy.txt"
  if [[ $policy == mlfq ]]; then
    # The probe's threads are parked: the map and schedstat stand still.
    "$BIN" threads --pid $probe >"$OUT/threads-final.txt" 2>&1
    for task in /proc/$probe/task/*; do
      echo "${task##*/} $(cat "$task/schedstat")"
    done >"$OUT/schedstat.txt"
  fi
  wait $sampler
  wait $probe
  if [[ $policy == mlfq ]]; then
    # Inside a level the queue is ordered by weighted vtime: nice 0 (weight
    # 1024) should get about 9x the CPU of nice 10 (weight 110).
    nice -n 0 bash -c 'while :; do :; done' &
    heavy=$!
    nice -n 10 bash -c 'while :; do :; done' &
    light=$!
    sleep 5
    heavy_ns=$(cut -d' ' -f1 /proc/$heavy/schedstat)
    light_ns=$(cut -d' ' -f1 /proc/$light/schedstat)
    kill $heavy $light
    wait $heavy $light 2>/dev/null
    verdict nice_weights_within_level \
      "nice 0: $((heavy_ns / 1000000)) ms, nice 10: $((light_ns / 1000000)) ms of CPU in 5 s" \
      test "$light_ns" -gt 0 -a "$heavy_ns" -ge $((3 * light_ns))
  fi
  verdict "stayed_attached_$policy" "state $(cat $SYS/state) after the probe" is_state enabled
  kill -INT $sched
  wait $sched
  status=$?
  wait_for 10 is_state disabled
  gone=$?
  verdict "detached_$policy" "exit $status after SIGINT, state $(cat $SYS/state)" \
    test "$status" = 0 -a "$gone" = 0
done

cp "$OUT"/* "$RESULTS"/
dmesg | grep sched_ext | sed 's/^/  dmesg: /'
verdict no_stall "no runnable-task stall or watchdog in dmesg" \
  bash -c '! dmesg | grep -qiE "stall|watchdog"'
echo "guest: $failures failed"
exit $((failures > 0))
