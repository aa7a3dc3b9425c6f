#!/usr/bin/env bash
# Runs inside the VM, as root: the benchmark rounds, interleaved across
# schedulers, printing one "row ..." line per measurement (the raw data that
# llmos-bench-report turns into tables).
#   usage: bench.sh LLMOS_BIN KERNEL_CONFIG ROUNDS PROBE_SECS SCALE_THREADS MSG_LOOPS SCALE_SCHEDS
#                   MATRIX_SECS MATRIX_SCHEDS [MATRIX_SPINNERS [MAIN_SCHEDS]]
#     KERNEL_CONFIG  the booted kernel's config, for schedulers that read
#                    kconfig (scx_bpfland) when /boot has none ("" if not needed)
#     SCALE_THREADS  comma-separated spinner counts for the scale runs
#     SCALE_SCHEDS   space-separated names of the schedulers that run them
#     MATRIX_SECS    seconds per cell of the latency matrix (0: no matrix)
#     MATRIX_SCHEDS  space-separated names of the schedulers that run it
#     MATRIX_SPINNERS  space-separated spinners per CPU of its cells ("1 2 4")
#     MAIN_SCHEDS    space-separated names of the schedulers that run the
#                    main rounds ("": all)
set -u
BIN=$1 KCONFIG=$2 ROUNDS=$3 PROBE_SECS=$4 SCALE_THREADS=$5 MSG_LOOPS=$6 SCALE_SCHEDS=$7
MATRIX_SECS=$8 MATRIX_SCHEDS=$9 MATRIX_SPINNERS=${10:-1 2 4} MAIN_SCHEDS=${11:-}
PROBE=$(dirname "$BIN")/llmos-probe
PERIODIC=$(dirname "$BIN")/llmos-periodic
NCPU=$(nproc)
export PATH=/opt/scx/bin:$PATH

. "$(dirname "$0")/checks.sh"

provide_kernel_config "$KCONFIG"
# Scratch space off virtiofs: host I/O stalls the emulated CPU.
TMP=$(mktemp -d -p /dev/shm)
sysctl -qw kernel.bpf_stats_enabled=1

# Schedulers as "name command..." lines; eevdf attaches nothing.
schedulers=("eevdf")
for policy in mlfq vtime prio affinity fifo rr; do
  schedulers+=("$policy $BIN --policy $policy")
done
# edf with reservations for the deadline run's threads (deadline_row()), twice
# their work, as tests/vm/guest/edf.sh leaves: the rules name only them, so
# in every other run edf shares the CPUs as vtime does.
{
  echo 'policy = "edf"'
  for rule in edf-a:1000:5000 edf-b:2000:10000 edf-c:4000:20000; do
    IFS=: read -r comm runtime period <<<"$rule"
    printf '\n[[deadline]]\ncomm = "%s"\nruntime_us = %s\nperiod_us = %s\n' "$comm" "$runtime" "$period"
  done
} >"$TMP/deadlines.toml"
schedulers+=("edf $BIN --config $TMP/deadlines.toml")
# rms needs no rules: it finds the periods itself.
schedulers+=("rms $BIN --policy rms")
command -v scx_bpfland >/dev/null && schedulers+=("bpfland scx_bpfland")
command -v scx_lavd >/dev/null && schedulers+=("lavd scx_lavd")
echo "# bench: kernel $(uname -r), $NCPU CPUs, rounds $ROUNDS, probe ${PROBE_SECS}s," \
  "scale ${SCALE_THREADS}, schedulers: ${schedulers[*]%% *}"

# Mean BPF cost per call over the attached scheduler's callbacks, since it
# attached.
bpf_cost() {
  struct_ops_runs | awk '{ t += $2; c += $3 }
    END { if (c > 0) printf "ns_per_op=%d calls=%d", t / c, c; else print "ns_per_op=0 calls=0" }'
}

# The same per callback of struct sched_ext_ops, one row each. bpftool
# shows program names cut to 15 characters ("bpfland_select_"), so a
# program is the callback its name after the scheduler's prefix names
# exactly, else the one it begins.
CALLBACKS="select_cpu enqueue dequeue dispatch tick runnable running stopping quiescent
  yield core_sched_before set_weight set_cpumask update_idle cpu_acquire cpu_release
  init_task exit_task enable disable dump dump_cpu dump_task cgroup_init cgroup_exit
  cgroup_prep_move cgroup_move cgroup_cancel_move cgroup_set_weight cpu_online
  cpu_offline init exit"
callback_costs() { # ROUND NAME: prints the rows
  struct_ops_runs | awk -v round="$1" -v sched="$2" -v names="$CALLBACKS" '
    BEGIN { n = split(names, cb, /[ \n]+/) }
    { stem = substr($1, index($1, "_") + 1); name = ""
      for (i = 1; i <= n; i++) if (cb[i] == stem) name = stem
      for (i = 1; i <= n && name == ""; i++) if (index(cb[i], stem) == 1) name = cb[i]
      if (name != "" && $3 > 0)
        printf "row bench=callback round=%s sched=%s callback=%s ns_per_call=%d calls=%d\n",
          round, sched, name, $2 / $3, $3 }'
}

# An awk action that files the fields of an llmos-probe line "KIND key=value
# ..." as v[KIND, key], for probe() and matrix_cell().
PROBE_FIELDS='{ for (i = 2; i <= NF; i++) { split($i, kv, "="); v[$1, kv[1]] = kv[2] } }'
probe() { # SPINNERS -> "p50_us=.. p99_us=.. ..."
  "$PROBE" --duration-s "$PROBE_SECS" --warmup-ms 500 --spinners "$1" >"$TMP/probe.txt" 2>&1
  awk "/^(latency_us|batch) / $PROBE_FIELDS"'
       END { # No sample: the sleeper never had a period to measure; no latency then.
             if (v["latency_us", "samples"] > 0)
               printf "p50_us=%s p99_us=%s max_us=%s late_frac=%s ", v["latency_us", "p50"],
                 v["latency_us", "p99"], v["latency_us", "max"], v["latency_us", "late_over_1ms"]
             printf "samples=%s start_us=%s iters_per_s=%s spinner_min=%s spinner_max=%s",
               v["latency_us", "samples"], v["latency_us", "start_us"], v["batch", "iters_per_s"],
               v["batch", "spinner_min"], v["batch", "spinner_max"] }' "$TMP/probe.txt"
}

# Runs FN NAME with each scheduler named in WHO ("" for all) attached in
# turn; TAGS (e.g. "round=1") go into its error rows.
under_each() { # WHO TAGS FN
  local who=$1 tags=$2 fn=$3 entry cmd
  for entry in "${schedulers[@]}"; do
    read -r -a cmd <<<"$entry"
    [[ -z $who || " $who " == *" ${cmd[0]} "* ]] || continue
    if ! attach "$TMP/sched.log" "${cmd[@]:1}"; then
      echo "row bench=error $tags sched=${cmd[0]} what=attach log=$(tail -n 3 "$TMP/sched.log" | tr '\n ' '|_')"
      detach
      continue
    fi
    "$fn" "${cmd[0]}"
    detach || echo "row bench=error $tags sched=${cmd[0]} what=detach"
  done
}

# Three periodic threads, 0.5 ms of work every 5 ms, 1 every 10 and 2 every 20,
# beside 2 CPU hogs per CPU for PROBE_SECS: the periods whose work ended
# after their deadline, and of those the ones that waited in a run queue at
# least as long as they were late (llmos-periodic), as a row.
deadline_row() { # NAME; $round
  local spin=() i
  for ((i = 1; i <= 2 * NCPU; i++)); do spin+=(--spin "hog-$i"); done
  "$PERIODIC" --duration-s "$PROBE_SECS" --task edf-a:500:5000:5000:1000 \
    --task edf-b:1000:10000:10000:2000 --task edf-c:2000:20000:20000:4000 "${spin[@]}" >"$TMP/periodic.txt" 2>&1
  awk -v round="$round" -v sched="$1" '$1 == "task" {
      for (i = 2; i <= NF; i++) { split($i, kv, "=")
        if (kv[1] == "periods") p += kv[2]
        if (kv[1] == "late") l += kv[2]
        if (kv[1] == "queued") q += kv[2]
        if (kv[1] == "worst_late_us" && kv[2] > w) w = kv[2] } }
    END { printf "row bench=deadlines round=%s sched=%s periods=%d late=%d queued=%d worst_late_us=%d\n", round, sched, p, l, q, w }' \
    "$TMP/periodic.txt"
}

main_round() { # NAME; $round
  local secs
  echo "row bench=probe round=$round sched=$1 threads=$((2 * NCPU)) $(probe $((2 * NCPU)))"
  if [[ $1 != eevdf ]]; then
    echo "row bench=bpf round=$round sched=$1 $(bpf_cost)"
    callback_costs "$round" "$1"
  fi
  secs=$(hackbench -g 4 -l "$MSG_LOOPS" 2>&1 | awk '/^Time:/ {print $2}')
  echo "row bench=messaging round=$round sched=$1 secs=${secs:-nan}"
  deadline_row "$1"
}
for ((round = 1; round <= ROUNDS; round++)); do
  under_each "$MAIN_SCHEDS" "round=$round" main_round
done

# The latency matrix: every shape of interactive thread beside CPU hogs that
# no single probe covers. The sleeper is the process's main thread (which
# created the spinners, spinning from their creation) or a thread of its own
# started with them at a gate; 1, 2 and 4 spinners per CPU; 0, 0.1 and 2 ms
# of work per period of 1, 10 and 16.6 ms (a 60 Hz frame; 2 ms of work does
# not fit a 1 ms period). No warm-up cut: a program's first second counts.
# The schedulers take turns round by round, each attached once per round.
# Beside the lateness, the p99 of the sleeper's queue wait per period (its
# schedstat run_delay: runnable, not running): lateness adds the timer's
# delay, which on 2+ vCPUs under TCG is mostly the emulator's; the wait is
# the scheduler's part.
matrix_cell() { # SLEEPER SPINNERS WORK_US PERIOD_US -> "p99_us=.. ..."
  local mode=()
  [[ $1 == main ]] && mode=(--main-thread-sleeper)
  "$PROBE" "${mode[@]}" --duration-s "$MATRIX_SECS" --warmup-ms 0 --spinners "$2" \
    --run-us "$3" --period-us "$4" >"$TMP/probe.txt" 2>&1
  awk "/^(latency_us|queue_wait_us) / $PROBE_FIELDS"'
       /^frames_missed/ { missed = $2; frames = $4 }
       END { printf "p50_us=%s p99_us=%s max_us=%s wait_p99_us=%s frames_missed=%s frames=%s",
             v["latency_us", "p50"], v["latency_us", "p99"], v["latency_us", "max"],
             v["queue_wait_us", "p99"], missed, frames }' "$TMP/probe.txt"
}
# Workloads written outside the project, beside the matrix: perf's pipe
# ping-pong (seconds), cyclictest as a SCHED_OTHER thread waking every 1 ms
# beside 2 CPU hogs per CPU (p99 and max µs, from its histogram), a
# barrier-synchronised worker pool (llmos-pool: steps per second) and a
# batch build (make -j NCPU of generated C files: seconds).
# Sized by MATRIX_SECS, so that the smoke run stays short.
PIPE_LOOPS=$((MATRIX_SECS * 5000)) CYCLIC_LOOPS=$((MATRIX_SECS * 1000)) POOL_SECS=$MATRIX_SECS
POOL=$(dirname "$BIN")/llmos-pool
BUILD_DIR=$TMP/build
mkdir -p "$BUILD_DIR"
for i in $(seq $((MATRIX_SECS * 4))); do
  { echo "int f$i(int n) { int s = 0;"
    for j in $(seq 40); do echo "  for (int k$j = 0; k$j < n; k$j++) s += (k$j * $j) ^ (s >> $((j % 7)));"; done
    echo "  return s; }"; } >"$BUILD_DIR/f$i.c"
done
printf 'objs := $(patsubst %%.c,%%.o,$(wildcard *.c))\nall: $(objs)\n%%.o: %%.c\n\tgcc -O2 -c $< -o $@\n' \
  >"$BUILD_DIR/Makefile"
# cyclictest's p99 (from its histogram) and max, as a row.
cyclic_row() { # ROUND NAME
  awk '/^# Total:/ { total = $3 + 0 }
       /^# Max Latencies:/ { max = $4 + 0 }
       /^[0-9]/ { n[$1 + 0] = $2 + 0 }
       END { need = total * 0.99; seen = 0; p99 = "nan"
             for (us = 0; us < 100000; us++) { seen += n[us]; if (seen >= need) { p99 = us; break } }
             printf "row bench=cyclictest round='"$1"' sched='"$2"' p99_us=%s max_us=%s samples=%d\n", p99, max, total }' \
    "$TMP/cyclic.txt"
}
outside_workloads() { # ROUND NAME: prints the rows
  local secs
  secs=$(pipe_secs "$PIPE_LOOPS")
  echo "row bench=pipe round=$1 sched=$2 secs=${secs:-nan}"
  # stress-ng needs a writable working directory: without --temp-path it
  # aborted at once in the guest, and cyclictest ran beside no load at all.
  stress-ng -q --temp-path "$TMP" --cpu $((2 * NCPU)) --cpu-method int64 \
    --timeout $((CYCLIC_LOOPS / 1000 + 10)) &
  local hogs=$!
  sleep 0.5
  if kill -0 $hogs 2>/dev/null; then
    cyclictest --policy=other -q -m -t 1 -i 1000 -l "$CYCLIC_LOOPS" -h 100000 \
      --histfile="$TMP/cyclic.txt" >/dev/null 2>&1
    kill $hogs 2>/dev/null
    wait $hogs 2>/dev/null
    cyclic_row "$1" "$2"
  else
    echo "row bench=error round=$1 sched=$2 what=cyclictest_hogs_did_not_start"
  fi
  echo "row bench=pool round=$1 sched=$2 $("$POOL" --threads $((NCPU > 4 ? NCPU : 4)) --duration-s "$POOL_SECS" |
    awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^steps_per_s=/) print $i }')"
  rm -f "$BUILD_DIR"/*.o
  local t0 t1
  t0=$(date +%s%N)
  make -s -C "$BUILD_DIR" -j "$NCPU" >/dev/null 2>&1 || t0=""
  t1=$(date +%s%N)
  secs=nan
  [[ -z $t0 ]] || secs=$(awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.3f", ns / 1e9 }')
  echo "row bench=build round=$1 sched=$2 secs=$secs"
}

matrix_round() { # NAME; $round
  local sleeper per_cpu spinners work_us period_us
  for sleeper in main thread; do
    for per_cpu in $MATRIX_SPINNERS; do
      spinners=$((per_cpu * NCPU))
      for work_us in 0 100 2000; do
        for period_us in 1000 10000 16600; do
          ((work_us < period_us)) || continue
          echo "row bench=matrix round=$round sched=$1 sleeper=$sleeper spinners=$spinners" \
            "work_us=$work_us period_us=$period_us $(matrix_cell $sleeper $spinners $work_us $period_us)"
        done
      done
    done
  done
  outside_workloads "$round" "$1"
}
if ((MATRIX_SECS > 0)); then
  for ((round = 1; round <= ROUNDS; round++)); do
    under_each "$MATRIX_SCHEDS" "round=$round" matrix_round
  done
fi

# ns the housekeeping timer spent per mlfq boost since attach, from the
# scheduler's stats (the timer's callback is no BPF program that bpf_stats
# would count).
boost_cost() {
  local boosts boost_ns
  read -r boosts boost_ns < <(stats_get boosts boost_ns)
  ((boosts > 0)) && echo "boost_ns=$((boost_ns / boosts)) boosts=$boosts"
}

scale_step() { # NAME; $threads
  local line
  line="row bench=scale sched=$1 threads=$threads $(probe "$threads")"
  [[ $1 == eevdf ]] || line+=" $(bpf_cost)"
  [[ $1 == mlfq ]] && line+=" $(boost_cost)"
  echo "$line"
}
IFS=, read -r -a sizes <<<"$SCALE_THREADS"
for threads in "${sizes[@]}"; do
  under_each "$SCALE_SCHEDS" "threads=$threads" scale_step
done
dmesg | grep -E 'sched_ext: .*(stall|error)' | sed 's/^/# dmesg: /'
echo "# bench: done"
