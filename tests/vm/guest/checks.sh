# Sourced by the guest scripts: how a check reports. Each prints
# "ok NAME: detail [at N s]" or "FAIL NAME: detail [at N s]", N the seconds
# since the script started (where a slow run spent its time); tests/vm.rs
# reads those lines.
failures=0
SYS=/sys/kernel/sched_ext

# What a script starts runs through "${ext[@]}": as SCHED_OTHER in the
# real-time drivers (become_rt_driver()), as is otherwise.
ext=()

ok() { echo "ok $1: $2 [at ${SECONDS} s]"; }
fail() { echo "FAIL $1: $2 [at ${SECONDS} s]"; failures=$((failures + 1)); }
verdict() { # NAME DETAIL CONDITION...
  local name=$1 detail=$2
  shift 2
  if "$@"; then ok "$name" "$detail"; else fail "$name" "$detail"; fi
}
# The kernel's complaints that fail a boot: sched_ext errors and its
# watchdog ("runnable task stall"), RCU stalls, soft and hard lockups, hung
# tasks, a WARN in sched_ext's code and list corruption. Not the clocksource watchdog: under TCG it marks the TSC unstable
# when the host is slow ("clocksource: timekeeping watchdog on CPU1: ..." in a
# fresh-clone run on 6.17, "tsc: Marking TSC unstable due to clocksource
# watchdog" in CI on 6.16), which is the emulator's clock, not the scheduler.
complaints_in() { # reads kernel log lines on stdin
  grep -iE 'stall|lockup|blocked for more than|watchdog|sched_ext.*error|runnable task|WARNING:.*sched/ext|list_(add|del) corruption' |
    grep -iv 'clocksource'
}
kernel_complaints() { dmesg | complaints_in; }
# The no_stall verdict, naming what the kernel said.
check_no_stall() {
  local found
  found=$(kernel_complaints | head -3)
  verdict no_stall "${found:-no sched_ext error, stall, lockup or watchdog in dmesg}" test -z "$found"
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# The CPU time a task has had, in ns (schedstat).
cpu_ns() { awk '{print $1}' "/proc/$1/schedstat"; }
# sched_ext's state: enabled, disabled, ...
state() { cat $SYS/state; }
# Waits up to $2 seconds for sched_ext state $1; prints the milliseconds taken.
wait_state() {
  local want=$1 deadline=$(($(now_ms) + $2 * 1000)) start
  start=$(now_ms)
  while [[ $(state) != "$want" ]]; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.05
  done
  echo $(($(now_ms) - start))
}
# Runs CONDITION... every 50 ms until it succeeds, for at most SECONDS.
wait_for() { # SECONDS CONDITION...
  local deadline=$(($(now_ms) + $1 * 1000))
  shift
  until "$@"; do
    (($(now_ms) < deadline)) || return 1
    sleep 0.05
  done
}
# Sets $lost to "WHERE: state S, enable_seq N" the first time sched_ext is
# found not enabled with enable_seq $SEQ (a detach or a restart since the
# start); later calls keep the first. Builtins only, as nap().
note_if_lost() { # WHERE
  local st seq
  read -r st <$SYS/state
  read -r seq <$SYS/enable_seq
  [[ -n $lost || ($st == enabled && $seq == "$SEQ") ]] || lost="$1: state $st, enable_seq $seq"
}
# Sleeps $1 seconds without a fork. The real-time driver of hotplug.sh and
# soak.sh (become_rt_driver()) polls with it: with one CPU online under TCG,
# a fork of `sleep` every 100 ms at real-time priority took that CPU from
# the hogs it watches. A 7.2 hotplug.sh with the host's 2 cores kept busy
# by 2 other spinners: 26 looks without progress, each with the hog on
# CPU 0 and CPUs 0 or 0-1 online; with nap(), 0 of 328 looks. (A CI run
# had 57, where nothing recorded which.)
nap() {
  [[ -n ${NAP_FD-} ]] || exec {NAP_FD}<> <(:)
  read -rt "$1" -u "$NAP_FD"
}
# Until $OUT/stop exists, checks about once a second that each task PID... has
# had CPU time since the last look; then writes "SECONDS LOOKS MISSES
# LONGEST NONE" to $OUT/progress.txt, LONGEST being the most looks in a row
# that one task missed while another had CPU time, and NONE the looks at
# which none of them had any. Such a look neither counts as a miss nor ends
# a run of them: a task left where no CPU serves it misses while the others
# run, and a look at which all miss is the CPUs held from all of them (by
# an RT task, such as hotplug.sh's real-time writer, or by the host, which
# did not run the VM). A CI run on 6.16 had 3 such looks in 181, two in a
# row, in the first hotplug cycles, with every hog on CPU 0 and CPUs 0 or
# 0-1 online (what held them is not known). Each miss is a line of
# $OUT/misses.txt: the clock ($EPOCHREALTIME, as in hotplug.sh's
# steps.txt), the PID, its state and last CPU (/proc/PID/stat), and the
# CPUs online. Under TCG with hotplug a look took 1.1-1.9 s on average
# (hotplug.sh: 109 in 125 s, 173 in ~200 s; soak.sh: 78 in 149 s, 345 in
# 617 s): the callers need one per 4 s.
# Builtins only: it runs as the calling shell does (a real-time one, in
# hotplug.sh and soak.sh), and forks would take CPUs from the tasks it
# watches.
watch_progress() {
  local pids=("$@") last=() now=() run=() i f st online start=$SECONDS looks=0 misses=0 longest=0 none=0 ran
  for i in "${!pids[@]}"; do
    read -ra f <"/proc/${pids[i]}/schedstat"
    last[i]=${f[0]} run[i]=0
  done
  until [[ -e $OUT/stop ]]; do
    nap 1
    looks=$((looks + 1)) ran=0
    for i in "${!pids[@]}"; do
      read -ra f <"/proc/${pids[i]}/schedstat"
      now[i]=${f[0]}
      ((now[i] > last[i])) && ran=$((ran + 1))
    done
    if ((ran == 0)); then
      none=$((none + 1))
      read -r online </sys/devices/system/cpu/online
      echo "$EPOCHREALTIME none of ${#pids[@]} ran, online $online" >>"$OUT/none-ran.txt"
      continue
    fi
    for i in "${!pids[@]}"; do
      run[i]=$((now[i] > last[i] ? 0 : run[i] + 1))
      ((run[i] > longest)) && longest=${run[i]}
      if ((run[i])); then
        misses=$((misses + 1))
        read -r st </proc/${pids[i]}/stat
        read -r online </sys/devices/system/cpu/online
        st=(${st##*) })
        echo "$EPOCHREALTIME pid ${pids[i]} state ${st[0]} cpu ${st[36]} online $online" >>"$OUT/misses.txt"
      fi
      last[i]=${now[i]}
    done
  done
  echo "$((SECONDS - start)) $looks $misses $longest $none" >"$OUT/progress.txt"
}
# Where watch_progress() saw misses, per task: how many, each one's state,
# CPU and CPUs online, and with $1 (hotplug.sh's steps.txt) the steps under
# way. Empty without a miss.
misses_summary() {
  [[ -s $OUT/misses.txt ]] || return 0
  awk -v steps="${1-}" '
    FILENAME == steps { split($0, a, "done at "); done[++n] = a[2]; next }
    { s = 1; while (s <= n && done[s] < $1) s++
      k = $3; c[k]++; if (!(k in first)) first[k] = s; last[k] = s
      seen[k] = seen[k] " " $5 "@" $7 "/" $9 }
    END { for (k in c) {
      printf "; pid %s: %d", k, c[k]
      if (n) printf " in steps %d-%d", first[k], last[k]
      printf " (state@cpu/online:%s)", substr(seen[k], 1, 120) } }
  ' ${1+"$1"} "$OUT/misses.txt"
}
# The driver of hotplug.sh and soak.sh: this shell becomes a real-time
# thread, outside sched_ext, so that what is tested is the scheduler, not how
# long the driver waits for a CPU among the hogs; what it starts runs as
# SCHED_OTHER through "${ext[@]}". No transparent huge pages: khugepaged
# (nice 19) copies 2 MB with rcu_read_lock() held (pte_offset_map), which a
# machine does in about 100 us, but TCG's emulated copy_mc string copy took
# so long beside the stress recipe that RCU stalled for 21 s in two boots of
# hotplug.sh, and an RCU stall ejects any sched_ext scheduler.
become_rt_driver() {
  chrt -f -p 1 $$
  ext=(chrt -o 0)
  echo never >/sys/kernel/mm/transparent_hugepage/enabled
}
# Starts $1 CPU hogs, on the CPUs of list $2 if given, through "${ext[@]}";
# their pids are added to HOGS. stop_hogs ends them all.
HOGS=()
start_hogs() { # N [CPULIST]
  local i pin=()
  [[ -n ${2:-} ]] && pin=(taskset -c "$2")
  for ((i = 0; i < $1; i++)); do
    "${ext[@]}" "${pin[@]}" bash -c 'while :; do :; done' &
    HOGS+=($!)
  done
}
# rms's admission (period.bpf.h): three threads that each work 3.6 ms every
# 10 ms beside the CPU hogs that @spin_options start, under rms. Each claims
# nearly half a CPU (its mean run, 3.6 ms and what emulation adds, and a
# quarter over its period), and the claims may take 90% of the CPUs online:
# on one CPU, one is ranked by its period and the other two wait with the
# hogs, which still get their share (with two hogs, about a seventh of the
# CPU each: 1,200 ms in 8 s). `threads` is read 3, 5 and 7 s in, by a caller
# that runs as a real-time driver so that the reads answer among the hogs,
# and the reads are parsed after the run: python3 starting as a real-time
# task took the one CPU from the ranked thread for long enough to cost it
# its period (7.2, 1 vCPU, reads at 3, 4, 5, 6 and 7 s: ranked 1 1 0 0 0 or
# 1 1 1 0 0 in 4 of 4 runs; parsed after, 1 1 1 1 1 once, 1 1 1 1 0 twice).
check_claims_capped() { # NAME SCX_LLMOS_BINARY SPIN_OPTIONS...
  local name=$1 bin=$2 periodic at ranked=() hog_ms least
  shift 2
  "${ext[@]}" "$(dirname "$bin")/llmos-periodic" --duration-s 8 --task cap-1:3600:10000 \
    --task cap-2:3600:10000 --task cap-3:3600:10000 "$@" >"$OUT/periodic-$name.txt" 2>&1 &
  periodic=$!
  for at in 3 5 7; do
    sleep $((at == 3 ? 3 : 2))
    "$bin" threads --json >"$OUT/threads-$name-$at.json" 2>&1
  done
  wait $periodic
  for at in 3 5 7; do
    ranked+=("$(python3 -c '
import json, sys
print(sum(1 for r in json.load(sys.stdin)["threads"] if r["comm"].startswith("cap-") and r["period_ns"]))' \
      <"$OUT/threads-$name-$at.json" 2>&1)")
  done
  hog_ms=$(awk '$1 == "spin" { split($3, kv, "="); printf "%s%s", sep, kv[2]; sep = "," }' "$OUT/periodic-$name.txt")
  least=$(tr , '\n' <<<"$hog_ms" | sort -n | head -n 1)
  verdict "$name" "periodic threads ranked at 3, 5 and 7 s: ${ranked[*]} (need 1 at most, 1 at least once); hogs ${hog_ms} ms in 8 s (need each >= 500)" \
    test "$(printf '%s\n' "${ranked[@]}" | sort -n | tail -n 1)" = 1 -a "${least:-0}" -ge 500
}
stop_hogs() {
  kill "${HOGS[@]}" 2>/dev/null
  wait "${HOGS[@]}" 2>/dev/null
  HOGS=()
}
# Descriptors and threads of process $1.
fds_of() { ls "/proc/$1/fd" | wc -l; }
threads_of() { awk '/^Threads:/ {print $2}' "/proc/$1/status"; }
# libbpf reads the kernel's config from /boot (scx_bpfland needs it): give it
# the booted kernel's, $1, a file from the host, when /boot has none.
provide_kernel_config() { # CONFIG_FILE (may be "")
  [[ -n $1 && ! -e /boot/config-$(uname -r) ]] || return 0
  mount -t tmpfs tmpfs /boot && cp "$1" "/boot/config-$(uname -r)"
}
# Starts the scheduler COMMAND... (none: EEVDF stays) with its output in LOG
# and waits up to 60 s for it to attach; sets SCHED_PID. detach() stops it.
SCHED_PID=""
attach() { # LOG COMMAND...
  local log=$1
  shift
  (($#)) || return 0
  "$@" >"$log" 2>&1 &
  SCHED_PID=$!
  wait_state enabled 60 >/dev/null
}
detach() {
  [[ -n $SCHED_PID ]] || return 0
  kill -INT "$SCHED_PID"
  wait "$SCHED_PID"
  SCHED_PID=""
  wait_state disabled 30 >/dev/null
}
# Seconds perf's pipe ping-pong takes for $1 round trips.
pipe_secs() { perf bench sched pipe -l "$1" 2>&1 | awk '/Total time:/ {print $3}'; }
# "NAME RUN_TIME_NS RUN_CNT" per loaded struct_ops program (the attached
# scheduler's callbacks), counted while kernel.bpf_stats_enabled is 1.
struct_ops_runs() {
  bpftool prog show 2>/dev/null | awk '/ struct_ops / { t = 0; c = 0
    for (i = 1; i <= NF; i++) { if ($i == "run_time_ns") t = $(i + 1); if ($i == "run_cnt") c = $(i + 1) }
    print $4, t, c }'
}
# The CPU task PID is on (field 39 of stat), and those it may use (a list).
task_cpu() { awk '{print $39}' "/proc/$1/stat"; }
allowed_cpus() { awk '$1 == "Cpus_allowed_list:" {print $2}' "/proc/$1/status"; }
# Times the kernel moved task PID to another CPU.
migrations() { awk '/^se.nr_migrations/ {print $3}' "/proc/$1/sched"; }
# Fields of the running scheduler's statistics, read through its scx_stats
# socket by a client that is not scx_llmos (stats-client.py), space-separated:
#   stats_get FIELD...           the "top" target: counters since scx_llmos
#                                started, the policy and tunables
#                                (level_runs.3: a list index)
#   thread_get TID... -- FIELD...  each thread's row of the "threads" target,
#                                the fields of the first thread first
# A figure that cannot be read fails check stats_read, on the script's
# output even from a $(...), and reads as 0, so that the arithmetic on it
# stays valid. Run as SCHED_OTHER in the real-time drivers ("${ext[@]}").
STATS_CLIENT=$(dirname "${BASH_SOURCE[0]}")/stats-client.py
exec {VERDICT_FD}>&1
stats_query() { # TARGET -- PATH...
  local out
  if ! out=$("${ext[@]}" python3 "$STATS_CLIENT" "$@" 2>&1); then
    echo "FAIL stats_read: stats-client.py $*: $out [at ${SECONDS} s]" >&"$VERDICT_FD"
    out=$(printf '0 %.0s' "${@:3}")
  fi
  echo "$out"
}
stats_get() { stats_query top -- "$@"; }
thread_get() {
  local tids=() paths=() tid path
  while [[ $1 != -- ]]; do tids+=("$1"); shift; done
  shift
  for tid in "${tids[@]}"; do
    for path in "$@"; do paths+=("threads[tid=$tid].$path"); done
  done
  stats_query threads -- "${paths[@]}"
}
