#!/usr/bin/env bash
# Runs inside a VM of 4 vCPUs in two LLCs (0-1 and 2-3), as root: everything
# at once, for SECONDS (600 by default): the stress recipe, a fork/exit
# storm, a policy switch every 100 ms, threads with deadline reservations
# (one that overruns its budget), CPUs 3, 2 and 1 going offline and
# back, `scx_llmos threads` every second, and a CPU hog per CPU watched every
# second. Checks that scx_llmos stayed attached without a restart, nothing
# stalled, every hog progressed every second, and the loader's memory,
# descriptors and threads did not grow; prints a "soak ..." line of figures
# for the soak table (bench/SOAK.md).
#   usage: soak.sh SCX_LLMOS_BINARY OUT_DIR [SECONDS]
set -u
BIN=$(realpath "$1")
OUT=$2
NCPU=$(nproc)
PERIODIC=$(dirname "$BIN")/llmos-periodic
SOAK_SECS=${3:-600}
. "$(dirname "$0")/checks.sh"

echo "guest: $(uname -r), $NCPU CPUs, $SOAK_SECS s"
((NCPU == 4)) || fail vm_shape "needs 4 CPUs, has $NCPU"
dmesg -C
become_rt_driver
loader_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$SCHED/status"; }

# Reservations for edf's turns in the switch cycle: soak-a keeps to its
# budget, soak-b works 3 ms of its 2 and is throttled every period, so
# switches land on reserved threads queued, running, out of budget and
# waiting for their replenishment timers.
printf '[[deadline]]\ncomm = "%s"\nruntime_us = %s\nperiod_us = %s\n\n' \
  soak-a 1000 5000 soak-b 2000 10000 >"$OUT/soak.toml"
"${ext[@]}" "$BIN" --config "$OUT/soak.toml" --stats 1 >"$OUT/sched.log" 2>&1 &
SCHED=$!
wait_state enabled 30 >/dev/null || fail attach "state $(state)"
SEQ=$(cat $SYS/enable_seq)
sleep 2
FDS=$(fds_of $SCHED) THREADS=$(threads_of $SCHED)

"${ext[@]}" stress-ng -c "$NCPU" -f "$NCPU" --affinity 1 --affinity-delay 1 --affinity-pin \
  --temp-path "$OUT" --timeout 1h >"$OUT/stress.log" 2>&1 &
stress=$!
# The fork/exit storm: short-lived processes, as a build or a shell script makes.
storm=()
for _ in 1 2; do
  "${ext[@]}" bash -c 'while :; do /bin/true; done' &
  storm+=($!)
done
start_hogs "$NCPU"
"${ext[@]}" "$PERIODIC" --duration-s "$SOAK_SECS" --task soak-a:500:5000 --task soak-b:3000:10000 \
  >"$OUT/periodic.txt" 2>&1 &
periodic=$!
watch_progress "${HOGS[@]}" &
watcher=$!
python3 "$(dirname "$0")/switch-driver.py" /run/scx_llmos/ctl.sock "$SOAK_SECS" "$OUT/ctl.log" \
  >"$OUT/switches.txt" &
switcher=$!
# Hotplug, a step every 2 s: CPUs 3, 2, 1 offline, then back.
(
  steps=0 refused=0
  until [[ -e $OUT/stop ]]; do
    for step in 3:0 2:0 1:0 1:1 2:1 3:1; do
      echo "${step#*:}" >"/sys/devices/system/cpu/cpu${step%:*}/online" || refused=$((refused + 1))
      steps=$((steps + 1))
      nap 2
    done
  done
  echo "$steps $refused" >"$OUT/hotplug.txt"
) &
hotplugger=$!
# The loader serves `threads` itself (its stats server): the first reads
# grow it by a working set, as large as the JSON of every thread, that then
# stays. Measured, 7.2, 2 vCPUs, 600 threads, 800 reads: RSS 7.8 MB before
# the first, 9.0 MB after 100 (anon 1.8 -> 3.0 MB), 9.1 MB from the 400th to
# the 800th. So the baseline is taken under the full load, after 10 reads:
# growth past it is a leak.
for _ in {1..10}; do "${ext[@]}" "$BIN" threads >/dev/null 2>&1; done
KB=$(loader_kb)
# `threads` every second, as a user's would run, and the loader's size every
# 10 s; the polls do not fork (see nap()).
reads=0 read_failed=0 max_kb=$KB max_fds=$FDS lost=""
t0=$SECONDS
while ((SECONDS - t0 < SOAK_SECS)); do
  nap 1
  "${ext[@]}" "$BIN" threads >/dev/null 2>&1 || read_failed=$((read_failed + 1))
  reads=$((reads + 1))
  if ((reads % 10 == 0)); then
    kb=$(loader_kb) fds=$(fds_of $SCHED)
    ((kb > max_kb)) && max_kb=$kb
    ((fds > max_fds)) && max_fds=$fds
  fi
  note_if_lost "at $((SECONDS - t0)) s"
done
wait $switcher
read -r switches switch_failed _ <"$OUT/switches.txt"
wait $periodic
periodic_status=$?
touch "$OUT/stop"
wait $hotplugger $watcher
for cpu in 1 2 3; do echo 1 >"/sys/devices/system/cpu/cpu$cpu/online"; done
read -r steps refused <"$OUT/hotplug.txt"
read -r watched looks misses longest none <"$OUT/progress.txt"
stress_alive=no
kill -0 $stress 2>/dev/null && stress_alive=yes
kill "${HOGS[@]}" "${storm[@]}" $stress 2>/dev/null
wait "${HOGS[@]}" "${storm[@]}" $stress 2>/dev/null
end_kb=$(loader_kb) end_fds=$(fds_of $SCHED) end_threads=$(threads_of $SCHED)

verdict soak_attached "$SOAK_SECS s: ${lost:-state enabled and enable_seq $SEQ throughout}" test -z "$lost"
# Each hotplug step holds the kernel's CPU hotplug lock for about a second
# under TCG, which the switches and `threads` (which links a BPF iterator)
# wait on: 146 switches and 10 reads in a 120 s run, against 5 switches a
# second without hotplug (policies.sh). The rates are reported; failures
# are not allowed.
verdict soak_switches "$switches switches ok, $switch_failed failed" \
  test "$switches" -ge $((SOAK_SECS / 2)) -a "$switch_failed" = 0
verdict soak_reserved_threads_ran "llmos-periodic exit $periodic_status: $(awk '$1 == "task" { printf "%s; ", $0 }' "$OUT/periodic.txt")" \
  test $periodic_status = 0 -a "$(grep -c '^task ' "$OUT/periodic.txt")" = 2
verdict soak_hotplug "$steps hotplug steps, $refused refused" test "$steps" -ge 6 -a "$refused" = 0
verdict soak_threads_reads "$reads reads of threads, $read_failed failed" test "$reads" -ge 5 -a "$read_failed" = 0
# As in hotplug.sh: a look missed while another hog ran, never two in a row,
# and at most 1 look in 10 at which none ran (see watch_progress()).
verdict soak_every_hog_progresses "$NCPU hogs watched for $watched s, $looks looks (need one per 4 s): $misses times one had no CPU time since the last, at most $longest in a row (need < 2), while another ran; $none looks at which none ran (need at most 1 in 10)$(misses_summary); stress-ng still running: $stress_alive" \
  test "$watched" -ge "$SOAK_SECS" -a $((looks * 4)) -ge "$watched" -a "$longest" -lt 2 -a $((none * 10)) -le "$looks" -a $stress_alive = yes
# RSS: the loader allocates per request and per threads read; 1 MB of growth
# over the run would be a leak of about 100 bytes per request. A descriptor
# may be open for a client at a sample (37 -> max 38 in a 120 s run): the
# count at the end is judged.
verdict soak_loader_flat "RSS $KB kB -> max $max_kb, end $end_kb kB; descriptors $FDS -> max $max_fds, end $end_fds; threads $THREADS -> $end_threads" \
  test $((max_kb - KB)) -lt 1024 -a "$end_fds" = "$FDS" -a "$end_threads" = "$THREADS"
echo "soak $(uname -r) ${SOAK_SECS}s switches=$switches hotplug_steps=$steps threads_reads=$reads hog_looks=$((looks * NCPU)) missed=$misses longest_miss=$longest rss_kb=$KB..$max_kb fds=$FDS..$max_fds threads=$THREADS..$end_threads enable_seq=$SEQ..$(cat $SYS/enable_seq)"

kill -INT $SCHED
wait $SCHED
verdict detached "exit $?, state $(state)" test "$(state)" = disabled
check_no_stall
exit $((failures > 0))
