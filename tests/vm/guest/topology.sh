#!/usr/bin/env bash
# Runs inside a VM whose CPUs sit in two LLCs (4 vCPUs: 0-1 and 2-3), as root:
# scx_llmos across LLCs, each policy against the kernel's default (EEVDF) in
# the same boot.
#   usage: topology.sh SCX_LLMOS_BINARY OUT_DIR [SCHEDULER...]
# SCHEDULER: eevdf or a policy, in the order to run (default: eevdf, then
# every policy; eevdf first, as the others are measured against it).
# For each scheduler:
# - spread: NCPU+2 CPU hogs start on LLC 0's CPUs and are then allowed
#   everywhere while LLC 1's CPUs are busy, so that they reach LLC 1 by
#   stealing. Work conservation is judged by the guest's idle time over the
#   measurement (/proc/stat), which is 0 while every CPU has a hog; the hogs'
#   CPU time per CPU-second of the machine is reported beside it (under
#   single-threaded TCG iterations say little: the emulator's thread is
#   shared by the vCPUs). Steals and the hogs' split between LLCs are checked.
# - balanced: NCPU hogs, one per CPU: how often tasks start on another LLC
#   than they last ran on (the xllc counter, per second).
# - wakeup (mlfq and prio, the policies that preempt, and vtime to compare):
#   NCPU hogs and a 10 ms periodic sleeper at nice -10; its wakeups preempt
#   hogs of its own LLC.
# Prints "ok/FAIL NAME: detail" lines and "metric" lines; exits non-zero if a
# check failed.
set -u
BIN=$(realpath "$1")
OUT=$2
PROBE=$(dirname "$BIN")/llmos-probe
NCPU=$(nproc)
MEASURE_SECS=${MEASURE_SECS:-4}
SCHEDULERS=("${@:3}")
((${#SCHEDULERS[@]})) || SCHEDULERS=(eevdf vtime mlfq prio affinity fifo rr)
. "$(dirname "$0")/checks.sh"
# Sets CPU to the CPU task $1 (a /proc path below /proc) last ran on, or "".
# Builtins only: with every vCPU busy, each fork costs the sampler ~0.1 s.
cpu_of() {
  local f
  CPU=""
  read -ra f <"/proc/$1/stat" 2>/dev/null && CPU=${f[38]}
}
# Sets HOG_NS to the hogs' CPU time so far, the kernel's account.
hog_ns() {
  local pid f
  HOG_NS=0
  for pid in "${HOGS[@]}"; do
    read -ra f <"/proc/$pid/schedstat" && HOG_NS=$((HOG_NS + f[0]))
  done
}
now_us() { echo "${EPOCHREALTIME/./}"; }
# A sleep without a fork: a read that times out on a pipe nobody writes.
exec {NAP_FD}<> <(:)
nap() { read -rt "$1" -u "$NAP_FD"; }

echo "guest: $(uname -r), $NCPU CPUs"
dmesg -C
# This script is a real-time thread, outside sched_ext: under fifo every fork
# of the sampler would wait out 100 ms turns of the hogs, and the boot would
# take many minutes. What it starts runs as SCHED_OTHER ("${ext[@]}").
chrt -f -p 1 $$
# An array, not a function: "$!" of a backgrounded function is a subshell,
# which ignores SIGINT and outlives a kill.
ext=(chrt -o 0)
# --- The topology, as the guest kernel and as scx_utils see it ----------------
declare -A LLC_ID=()
LLC_OF=() nr_llcs=0
for dir in /sys/devices/system/cpu/cpu[0-9]*; do
  cpu=${dir##*cpu}
  shared=$(cat "$dir/cache/index3/shared_cpu_list" 2>/dev/null || echo none)
  echo "  cpu$cpu: L3 shared_cpu_list $shared"
  if [[ -z ${LLC_ID[$shared]:-} ]]; then
    LLC_ID[$shared]=$nr_llcs
    nr_llcs=$((nr_llcs + 1))
  fi
  LLC_OF[cpu]=${LLC_ID[$shared]}
done
verdict guest_has_two_llcs "L3 groups: ${!LLC_ID[*]}" test $nr_llcs = 2 -a "$NCPU" -ge 4
nodes=(/sys/devices/system/node/node[0-9]*)
echo "  NUMA nodes: ${#nodes[@]} ($(cat /sys/devices/system/node/node*/cpulist | paste -sd' '))"
if ((${#nodes[@]} > 1)); then
  verdict guest_has_two_numa_nodes "CPUs by node: $(cat /sys/devices/system/node/node*/cpulist | paste -sd' ')" \
    test ${#nodes[@]} = 2
fi
"${ext[@]}" "$BIN" --policy vtime >"$OUT/shape.log" 2>&1 &
sched=$!
wait_state enabled 30 >/dev/null
sleep 0.5
kill -INT $sched
wait $sched
seen=$(grep -o '[0-9]* CPUs in [0-9]* LLCs' "$OUT/shape.log")
echo "  scx_utils Topology (scx_llmos): $seen"
verdict loader_sees_two_llcs "scx_llmos: '$seen'" test "$seen" = "$NCPU CPUs in 2 LLCs"
LLC0_CPUS=() LLC1_CPUS=()
for ((cpu = 0; cpu < NCPU; cpu++)); do
  if ((LLC_OF[cpu] == 0)); then LLC0_CPUS+=("$cpu"); else LLC1_CPUS+=("$cpu"); fi
done
LLC0_LIST=$(IFS=,; echo "${LLC0_CPUS[*]}")

# The scheduler's counter FIELD since it attached (0 under EEVDF), read
# outside the measurements: the client is a fork.
counter() { if [[ $name == eevdf ]]; then echo 0; else stats_get "$1"; fi; }
# Sets MIGRATIONS to the hogs' migrations between CPUs so far.
hog_migrations() {
  local pid key colon value
  MIGRATIONS=0
  for pid in "${HOGS[@]}"; do
    while read -r key colon value; do
      [[ $key == se.nr_migrations ]] && MIGRATIONS=$((MIGRATIONS + value))
    done <"/proc/$pid/sched"
  done
}

# Sets IDLE_TICKS to the guest's idle time so far, all CPUs, in USER_HZ
# ticks (/proc/stat's fourth and fifth columns: idle and iowait).
CLK_TCK=$(getconf CLK_TCK)
idle_ticks() {
  local name user nice system idle iowait rest
  IDLE_TICKS=0
  while read -r name user nice system idle iowait rest; do
    [[ $name == cpu[0-9]* ]] && IDLE_TICKS=$((IDLE_TICKS + idle + iowait))
  done </proc/stat
}
# Measures the hogs for MEASURE_SECS: sets WORK (permille of the machine's
# CPU time that went to hogs), IDLE (permille of it the CPUs sat idle),
# OCCUPIED (permille of CPU samples with a hog on them) and LLC_SPLIT ("hog
# samples on LLC 0:LLC 1").
measure_hogs() {
  local before idle_before pid i samples=0 busy=0 on=(0 0) t0 t1 busy_cpu
  hog_ns
  idle_ticks
  before=$HOG_NS idle_before=$IDLE_TICKS t0=$(now_us)
  for ((i = 0; i < MEASURE_SECS * 10; i++)); do
    nap 0.1
    busy_cpu=()
    for pid in "${HOGS[@]}"; do
      cpu_of "$pid"
      [[ -n $CPU ]] || continue
      busy_cpu[CPU]=1
      on[LLC_OF[CPU]]=$((on[LLC_OF[CPU]] + 1))
    done
    busy=$((busy + ${#busy_cpu[@]}))
    samples=$((samples + NCPU))
  done
  hog_ns
  idle_ticks
  t1=$(now_us)
  WORK=$(((HOG_NS - before) / ((t1 - t0) * NCPU)))
  IDLE=$(((IDLE_TICKS - idle_before) * 1000000000 / (CLK_TCK * (t1 - t0) * NCPU)))
  OCCUPIED=$((busy * 1000 / samples))
  LLC_SPLIT="${on[0]}:${on[1]}"
}

declare -A WORK_OF
for name in "${SCHEDULERS[@]}"; do
  log=$OUT/topo-$name.log
  : >"$log"
  if [[ $name != eevdf ]]; then
    "${ext[@]}" "$BIN" --policy "$name" --stats 1 >"$log" 2>&1 &
    sched=$!
    wait_state enabled 30 >/dev/null || fail "attach_$name" "state $(state)"
  fi

  # Spread: hogs start on LLC 0, then may run anywhere. When they may, LLC
  # 1's CPUs are busy with a pinned blocker each, so the hogs waiting on LLC
  # 0 can reach LLC 1 only by being stolen; the blockers go after 1 s.
  start_hogs $((NCPU + 2)) "$LLC0_LIST"
  hogs=("${HOGS[@]}") HOGS=()
  for cpu in "${LLC1_CPUS[@]}"; do start_hogs 1 "$cpu"; done
  blockers=("${HOGS[@]}") HOGS=("${hogs[@]}")
  sleep 1
  steals0=$(counter steals)
  for pid in "${HOGS[@]}"; do taskset -a -p -c "0-$((NCPU - 1))" "$pid" >/dev/null; done
  sleep 1
  kill "${blockers[@]}"
  wait "${blockers[@]}" 2>/dev/null
  nap 0.5
  measure_hogs
  steals=$(($(counter steals) - steals0))
  stop_hogs
  WORK_OF[$name]=$WORK
  echo "metric work_permille_$name $WORK"
  echo "metric idle_permille_$name $IDLE"
  echo "  $name spread: work $WORK permille of the CPUs, idle $IDLE, CPUs with a hog $OCCUPIED permille, hog samples LLC0:LLC1 $LLC_SPLIT, steals $steals"
  if [[ $name != eevdf ]]; then
    # Judged by the CPUs' idle time, which is the scheduler's alone: the
    # hogs' share also loses what other tasks and the emulator take. 7.2,
    # two boots, every policy and EEVDF: idle 0 permille, hogs 0.97-1.01 of
    # EEVDF's work; but CI once saw prio's hogs at 0.88 of EEVDF (834
    # permille, idle not recorded then), below the 0.9 this check asked.
    # Six hogs pinned to 3 of the 4 CPUs under EEVDF: idle 216 permille.
    verdict "work_conserved_$name" \
      "CPUs idle $IDLE permille of the time beside $((NCPU + 2)) hogs (need <= 50); hogs got $WORK permille, EEVDF ${WORK_OF[eevdf]}; CPUs with a hog $OCCUPIED permille" \
      test "$IDLE" -le 50
    lo=${LLC_SPLIT%:*} hi=${LLC_SPLIT#*:}
    verdict "llcs_share_hogs_$name" \
      "hog samples on LLC 0:LLC 1 $LLC_SPLIT (need LLC 1 >= 1/3), $steals steals (need > 0)" \
      test $((hi * 3)) -ge $((lo + hi)) -a "$steals" -gt 0
  fi

  # Balanced: one hog per CPU, already spread; tasks should stay in their LLC.
  start_hogs "$NCPU" "0-$((NCPU - 1))"
  sleep 1
  xllc0=$(counter llc_migrations)
  hog_migrations
  migr_before=$MIGRATIONS
  nap "$MEASURE_SECS"
  hog_migrations
  migr_after=$MIGRATIONS
  xllc=$(($(counter llc_migrations) - xllc0))
  stop_hogs
  migr=$(((migr_after - migr_before) * 10 / MEASURE_SECS))
  echo "  $name balanced: hog migrations $((migr / 10)).$((migr % 10))/s (all CPUs)"
  if [[ $name != eevdf ]]; then
    echo "metric xllc_per_s_$name $((xllc / MEASURE_SECS))"
    # Measured over four runs: 0-7/s per policy (13/s once for mlfq, before
    # the idle re-placement preferred the task's LLC). A task bounced at
    # every 20 ms slice would make 4 x 50 = 200/s.
    verdict "llc_locality_$name" \
      "tasks started on another LLC: $xllc in $MEASURE_SECS s ($((xllc / MEASURE_SECS))/s, need <= 20/s; hogs migrated $((migr / 10)).$((migr % 10))/s)" \
      test "$xllc" -le $((MEASURE_SECS * 20))
  fi
  if [[ $name == affinity ]]; then
    # Measured over 4 boots of the 2-node shape, once the sampler stopped
    # forking (each fork of this RT script took a hog's CPU for longer than
    # RT_HOLD_NS, and CI saw 4.7/s): 0.2-0.5/s under affinity, 1.2-3.2/s
    # under mlfq, 0.0-0.5/s under EEVDF. Earlier, forking boots: 0.0-1.5/s
    # under affinity, 8.7-31/s under the policies that share an LLC queue.
    verdict affinity_stays_on_cpu "hogs migrated $((migr / 10)).$((migr % 10))/s with one per CPU (need < 2.5/s)" \
      test "$migr" -lt 25
  fi

  # Wakeup preemption: a 10 ms sleeper among hogs on every CPU. vtime, which
  # does not preempt, runs it too, for comparison.
  if [[ $name == mlfq || $name == prio || $name == vtime ]]; then
    start_hogs "$NCPU" "0-$((NCPU - 1))"
    sleep 1
    preempts0=$(counter preemptions)
    # nice -10: under prio a waking thread preempts only a lower priority.
    "${ext[@]}" nice -n -10 "$PROBE" --duration-s "$MEASURE_SECS" --warmup-ms 0 --spinners 0 >"$OUT/probe-$name.txt" 2>&1
    stop_hogs
    sleep 1.2
    preempts=$(($(counter preemptions) - preempts0))
    wakeups=0 same_llc=0
    for move in $(grep '^sleeper_cpus' "$OUT/probe-$name.txt" | cut -d' ' -f2-); do
      pair=${move%:*} n=${move##*:}
      wakeups=$((wakeups + n))
      ((LLC_OF[${pair%>*}] == LLC_OF[${pair#*>}])) && same_llc=$((same_llc + n))
    done
    p99=$(grep -o 'p99=[0-9]*' "$OUT/probe-$name.txt" | cut -d= -f2)
    echo "metric wakeup_p99_us_$name $p99"
    echo "  $name wakeup: $(grep latency_us "$OUT/probe-$name.txt"); $(grep sleeper_cpus "$OUT/probe-$name.txt"); $preempts preemptions"
    if [[ $name != vtime ]]; then
      # Measured over three runs: preemptions 48-53% of the wakeups under
      # mlfq, 16-18% under prio; every wakeup in the LLC it slept in. The
      # p99 beside vtime's (0.41-0.76 of it) is reported, not judged: with
      # four busy vCPUs on one emulator thread it is mostly the emulator's.
      verdict "wakeup_preempts_in_llc_$name" \
        "$preempts preemptions for $wakeups sleeper wakeups, $same_llc woke in the LLC they slept in (need >= 10% and >= 90%); p99 ${p99} us, vtime ${VTIME_P99:-?} us" \
        test $((preempts * 10)) -ge "$wakeups" -a "$wakeups" -gt 0 -a $((same_llc * 10)) -ge $((wakeups * 9))
    else
      VTIME_P99=$p99
    fi
  fi

  if [[ $name != eevdf ]]; then
    verdict "stayed_attached_$name" "state $(state)" test "$(state)" = enabled
    kill -INT $sched
    wait $sched
    verdict "detached_$name" "exit $?, state disabled after $(wait_state disabled 10 || echo never) ms" \
      test "$(state)" = disabled
  fi
done

dmesg | grep sched_ext | sed 's/^/  dmesg: /'
check_no_stall
echo "guest: $failures failed"
exit $((failures > 0))
