#!/usr/bin/env bash
# Runs inside the VM, as root: the edf and rms policies, in one boot.
#   usage: edf.sh SCX_LLMOS_BINARY OUT_DIR [SECS]
# - Admission: a config reserving more than 90% of the CPUs is refused
#   before anything attaches, naming its rules' lines.
# - Deadlines: three periodic threads reserved 1 ms every 5 ms, 2 every 10
#   and 4 every 20 (0.6 of a CPU in all), beside 2 x NCPU CPU hogs, SECS
#   (24) seconds each under EEVDF, mlfq and edf, in that order: edf must
#   make nearly every deadline that a run queue could have made it miss (see
#   llmos-periodic's `queued`, and the bound below) in a period that kept to
#   its reservation
#   (`overran` counts those that did not: the guest stopped while the thread
#   ran, and its CPU time took the stop; `in_debt` those that kept to it but
#   not to what an earlier overrun's debt left of it, as SCHED_DEADLINE
#   takes the debt off the next periods' budgets); EEVDF's and mlfq's misses
#   are reported. Each
#   works half its reservation per period: a period costs more CPU time
#   than its work (the thread's sleep and wakeup, the timers' interrupts on
#   its CPU), and several times more under emulation, where 1 ms of work
#   cost up to 1.5 ms (each task's mean and worst cost are printed); a
#   reservation that ran out before the work was done would leave the rest
#   to finish as a shared thread.
# - rms: the same threads and hogs with no config: from their first second
#   on, at most 1% of periods late for waiting in a queue, and a quarter of
#   EEVDF's share at most; fresh threads at most 1% in their first 3 s,
#   while rms finds them; `threads` shows the three periods (and none for
#   the hogs); of three threads that each claim half the CPU, one is
#   ranked by its period (claims stop at 90% of the CPUs online) and the
#   hogs run; a thread past its budget loses its rank between ticks.
# - Budget: a thread reserved 2 ms every 4 ms that never sleeps, beside the
#   hogs under edf: it gets its reservation, and shares the rest with the
#   hogs as one of them.
# Prints one line per check, "ok NAME: detail" or "FAIL NAME: detail"; exits
# non-zero if any check failed.
set -u
BIN=$(realpath "$1")
OUT=$2
SECS=${3:-24}
PERIODIC=$(dirname "$BIN")/llmos-periodic
NCPU=$(nproc)
. "$(dirname "$0")/checks.sh"

echo "guest: $(uname -r), $NCPU CPUs"
become_rt_driver
dmesg -C

# A [[deadline]] rule: COMM RUNTIME_US PERIOD_US.
deadline_rule() { printf '\n[[deadline]]\ncomm = "%s"\nruntime_us = %s\nperiod_us = %s\n' "$@"; }

# --- Admission ----------------------------------------------------------------
{
  echo 'policy = "edf"'
  for i in $(seq $((NCPU + 1))); do deadline_rule "over-$i" 9000 10000; done
} >"$OUT/overcommit.toml"
err=$("$BIN" --config "$OUT/overcommit.toml" 2>&1)
status=$?
verdict edf_admission_refused "exit $status: $err" \
  test $status -ne 0 -a "$(state)" = disabled -a "$(wc -l <<<"$err")" = 1 -a -n "$(grep -F 'lines 3, 8' <<<"$err")"

# --- Deadlines ----------------------------------------------------------------
{
  echo 'policy = "edf"'
  deadline_rule edf-a 1000 5000
  deadline_rule edf-b 2000 10000
  deadline_rule edf-c 4000 20000
} >"$OUT/edf.toml"
hogs=()
for i in $(seq $((2 * NCPU))); do hogs+=(--spin "hog-$i"); done
# The three periodic threads (work 0.5, 1 and 2 ms; reserved twice that).
periodic_tasks=(--task edf-a:500:5000:5000:1000 --task edf-b:1000:10000:10000:2000
  --task edf-c:2000:20000:20000:4000)
# The sum of field $1 (late, queued, periods) over the task lines of file $2.
total() { awk -v f="$1" '$1 == "task" { for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == f) n += kv[2] } } END { print n + 0 }' "$2"; }
late() { total late "$1"; }
summary() { awk '$1 == "task" { printf "%s ", $0 }' "$1"; }
for sched in eevdf mlfq edf; do
  cmd=()
  [[ $sched == eevdf ]] || cmd=("${ext[@]}" "$BIN" --config "$OUT/edf.toml" --policy "$sched")
  attach "$OUT/sched-$sched.log" "${cmd[@]}" || fail "attach_$sched" "$(tail -n 2 "$OUT/sched-$sched.log")"
  "${ext[@]}" "$PERIODIC" --duration-s "$SECS" "${periodic_tasks[@]}" "${hogs[@]}" >"$OUT/periodic-$sched.txt" 2>&1
  [[ $sched == eevdf ]] || verdict "stayed_attached_$sched" "state $(state)" test "$(state)" = enabled
  detach
done
for sched in eevdf mlfq edf; do
  echo "metric late_periods_$sched $(late "$OUT/periodic-$sched.txt")"
  echo "metric late_queued_$sched $(total queued "$OUT/periodic-$sched.txt")"
done
counts() { echo "$(late "$1") ($(total queued "$1"), $(total overran "$1"), $(total in_debt "$1"))"; }
# At most 1 in 1,000 periods late for a queue, and fewer than EEVDF's. A
# guest stop while a woken thread waits counts as waiting, and nothing in
# the guest tells it apart. Measured (7.2, 1 vCPU, 30 s, 10,500 periods):
# edf 0 in 9 runs on a quiet host, where EEVDF had 32-131; with both host
# cores busy 30 ms every 1.5 s, edf 0-6 (mean 2) in 11 runs while a period
# began at a late wakeup (the 2 traced with every period logged each
# followed a wakeup 3.9-7.9 ms late; see edf_period_start()), 0 in 5 runs
# since; EEVDF 105-276.
queued_edf=$(total queued "$OUT/periodic-edf.txt")
periods_edf=$(total periods "$OUT/periodic-edf.txt")
verdict edf_meets_deadlines "late periods (of them late for waiting in a queue, for overrunning their reservation, in debt for an earlier overrun): EEVDF $(counts "$OUT/periodic-eevdf.txt"), mlfq $(counts "$OUT/periodic-mlfq.txt"), edf $(counts "$OUT/periodic-edf.txt") of $periods_edf; need edf's queued <= $((periods_edf / 1000)) and < EEVDF's ($(summary "$OUT/periodic-edf.txt"))" \
  test "$periods_edf" -gt 0 -a "$queued_edf" -le $((periods_edf / 1000)) -a "$queued_edf" -lt "$(total queued "$OUT/periodic-eevdf.txt")"

# --- rms -----------------------------------------------------------------------
# The same threads and hogs under rms, with no config: it must find the
# three periods itself (in their first second, which this run does not
# count and the next checks), and the threads must then make their
# deadlines. Nothing reads the scheduler meanwhile: the
# loader's threads run ahead of every other (see llmos_enqueue()), and a
# `threads` read 10 s in cost the 5 ms thread 9 late periods of 5,800 (0
# without it).
attach "$OUT/sched-rms.log" "${ext[@]}" "$BIN" --policy rms || fail attach_rms "$(tail -n 2 "$OUT/sched-rms.log")"
"${ext[@]}" "$PERIODIC" --duration-s "$SECS" --warmup-s 1 "${periodic_tasks[@]}" "${hogs[@]}" >"$OUT/periodic-rms.txt" 2>&1
verdict stayed_attached_rms "state $(state)" test "$(state)" = enabled
echo "metric late_periods_rms $(late "$OUT/periodic-rms.txt")"
echo "metric late_queued_rms $(total queued "$OUT/periodic-rms.txt")"
queued_rms=$(total queued "$OUT/periodic-rms.txt")
periods_rms=$(total periods "$OUT/periodic-rms.txt")
queued_eevdf=$(total queued "$OUT/periodic-eevdf.txt")
periods_eevdf=$(total periods "$OUT/periodic-eevdf.txt")
# Measured (7.2, 1 vCPU, over 30 s): rms 0 queued of 10,150 in 4 runs, where
# EEVDF had 50, 107, 129 and 112 of 10,500 in the same boots (the last three
# with the budget's 0.5 ms slack; without it, 0 and 26 in two runs).
verdict rms_meets_deadlines "late periods (queued, overran, in debt): EEVDF $(counts "$OUT/periodic-eevdf.txt") of $periods_eevdf, rms $(counts "$OUT/periodic-rms.txt") of $periods_rms from 1 s on; need rms's queued <= 1% of its periods and its share <= a quarter of EEVDF's ($(summary "$OUT/periodic-rms.txt"))" \
  test "$periods_rms" -gt 0 -a $((queued_rms * 100)) -le "$periods_rms" -a $((queued_rms * periods_eevdf * 4)) -le $((queued_eevdf * periods_rms))

# Fresh threads, counted from their start: until rms finds a thread it waits
# as an aperiodic one, and must not wait out a hog's slice at each wakeup
# (preempts_within_rank()). Measured (7.2, 1 vCPU; the three threads'
# periods late for waiting, from their start): while it did, 18-78 in 5
# runs of 3 s (EEVDF 18-44) and 92 of 1,050 here; since, 0 of 1,050 here,
# 0-2 in 5 runs of 3 s (before bounded_sample()), and 2-5 in 3 runs of 8 s
# with a host core kept busy (EEVDF 362-498, the old code 176-387).
"${ext[@]}" "$PERIODIC" --duration-s 3 "${periodic_tasks[@]}" "${hogs[@]}" >"$OUT/periodic-rms-start.txt" 2>&1
queued_start=$(total queued "$OUT/periodic-rms-start.txt")
periods_start=$(total periods "$OUT/periodic-rms-start.txt")
verdict rms_finds_new_threads "late periods (queued, overran, in debt) of fresh threads in 3 s: $(counts "$OUT/periodic-rms-start.txt") of $periods_start; need queued <= 1% ($(summary "$OUT/periodic-rms-start.txt"))" \
  test "$periods_start" -gt 0 -a $((queued_start * 100)) -le "$periods_start"

# What `threads` shows of them, 3 s into a run of the same shape.
"${ext[@]}" "$PERIODIC" --duration-s 4 "${periodic_tasks[@]}" "${hogs[@]}" >"$OUT/periodic-shown.txt" 2>&1 &
periodic=$!
sleep 3
"$BIN" threads --json >"$OUT/threads-rms.json" 2>&1
wait $periodic
detach
# The periods it showed for the three threads, in us, and for the hogs.
periods=$(python3 -c '
import json, sys
rows = json.load(sys.stdin)["threads"]
shown = {r["comm"]: r["period_ns"] // 1000 for r in rows}
print(" ".join(f"{n}={shown.get(n)}" for n in ("edf-a", "edf-b", "edf-c")),
      "hogs=" + ",".join(str(r["period_ns"]) for r in rows if r["comm"].startswith("hog-")))
' <"$OUT/threads-rms.json" 2>&1)
near() { awk -v got="$1" -v want="$2" 'BEGIN { exit !(got >= want * 0.95 && got <= want * 1.05) }'; }
periods_found() {
  local a b c h
  read -r a b c h <<<"$periods"
  near "${a#*=}" 5000 && near "${b#*=}" 10000 && near "${c#*=}" 20000 && [[ -n ${h#hogs=} && ${h#hogs=} =~ ^[0,]+$ ]]
}
verdict rms_detects_periods "threads --json 3 s in: $periods (need 5000, 10000 and 20000 us within 5%, hogs 0)" periods_found

# Admission: of three threads that each claim nearly half the CPU, one is
# ranked by its period (check_claims_capped()).
attach "$OUT/sched-cap.log" "${ext[@]}" "$BIN" --policy rms
check_claims_capped rms_claims_capped "$BIN" "${hogs[@]}"

# A periodic thread past its budget loses its rank then, not at the next
# tick: one that works 0.3 ms every 8.5 ms and 7 ms every sixth period (its
# budget is ~2 ms: twice its mean activation and 0.5 ms) wakes with one of a
# 17 ms period every third of that one's periods, which works 0.2 ms and
# must be done 4.5 ms after its start. Measured (7.2, 1 vCPU, 8 s, 411
# periods of the 17 ms thread, late for waiting; one boot, 3 interleaved
# rounds, 2026-12-07): 0, 4 and 4; 59, 104 and 89 without the budget timer
# (rms.bpf.h), when the 8.5 ms thread kept its rank until the next tick,
# 2.1-5.4 ms in. The bound, 5%, is 20. The 17 ms thread worked 0.5 ms
# when the check was written, and measured 0 and 2 (75 and 79 without the
# timer) on that day's host; on a slower one its run cost 0.83-0.88 ms,
# not 0.5-0.7, the budget and the timer's delay left no room, and it was
# late 20-46 times (two fresh-clone CI runs, an edf test and the 3 rounds
# above), where 0.2 ms of work, costing 0.4-0.5 ms, left it room again.
"${ext[@]}" "$PERIODIC" --duration-s 8 --warmup-s 1 --task rms-over:300:8500 \
  --overrun rms-over:6:7000 --task rms-next:200:17000:4500 "${hogs[@]}" >"$OUT/periodic-rms-over.txt" 2>&1
detach
next_late=$(awk '$2 == "name=rms-next" { for (i = 3; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] } print f["queued"] + 0, f["periods"] + 0 }' "$OUT/periodic-rms-over.txt")
read -r next_queued next_periods <<<"$next_late"
verdict rms_budget_ends_between_ticks "the 17 ms thread beside one that overruns its budget every sixth period: $next_queued of $next_periods periods late for waiting; need <= 5% ($(summary "$OUT/periodic-rms-over.txt"))" \
  test "${next_periods:-0}" -gt 0 -a $((next_queued * 20)) -le "${next_periods:-0}"

# --- Budget -------------------------------------------------------------------
{
  echo 'policy = "edf"'
  deadline_rule edf-over 2000 4000
} >"$OUT/over.toml"
attach "$OUT/sched-over.log" "${ext[@]}" "$BIN" --config "$OUT/over.toml"
# A third of SECS: 2,000 of its periods in 8 s, and each hog's share of as long.
BUDGET_SECS=$((SECS / 3))
"${ext[@]}" "$PERIODIC" --duration-s "$BUDGET_SECS" --spin edf-over "${hogs[@]}" >"$OUT/periodic-over.txt" 2>&1
detach
# It is owed 2 ms in 4 (0.5 of a CPU), and while its budget is spent it
# shares the rest as one of 2 x NCPU + 1 shared threads; each hog's share is
# that rest's. Unreserved it would get a hog's share (a third of the CPU on
# one); without a budget it would hold its CPU, and a hog on one CPU none.
read -r over_ms hog_ms least < <(awk '$1 == "spin" { split($3, kv, "=")
    if ($2 == "name=edf-over") o = kv[2]; else { h = h (h == "" ? "" : ",") kv[2]; if (m == "" || kv[2] < m) m = kv[2] } }
  END { printf "%s %s %s\n", o + 0, h, m + 0 }' "$OUT/periodic-over.txt")
owed_ms=$((BUDGET_SECS * 1000 / 2))
hog_share_ms=$((BUDGET_SECS * 1000 * (2 * NCPU - 1) / (2 * (2 * NCPU + 1))))
verdict edf_budget_holds_overrun "the thread reserved 2 ms in 4 that never sleeps ran $over_ms ms in $BUDGET_SECS s (owed $owed_ms; need >= 80%), the hogs $hog_ms ms (a hog's share of the rest $hog_share_ms; need each >= half)" \
  test $((over_ms * 10)) -ge $((owed_ms * 8)) -a $((least * 2)) -ge "$hog_share_ms"

check_no_stall
echo "guest: $failures failed"
exit $((failures > 0))
