#!/usr/bin/env bash
# Runs inside the VM, as root, on 2 CPUs: the prio and affinity policies, the
# config file, and live policy switching, in one boot.
#   usage: policies.sh SCX_LLMOS_BINARY OUT_DIR
# Prints one line per check, "ok NAME: detail" or "FAIL NAME: detail"; exits
# non-zero if any check failed.
set -u
BIN=$(realpath "$1")
OUT=$2
PROBE=$(dirname "$BIN")/llmos-probe
NCPU=$(nproc)
SWITCH_SECS=${SWITCH_SECS:-20}
SPIN=/dev/shm/spin
. "$(dirname "$0")/checks.sh"

# A CPU hog whose thread name (comm) is $1, so config rules can match it:
# exec names a thread after the file it runs, here a link to bash. Further
# arguments go before it (taskset, nice). Sets SPIN_PID.
spin() {
  local name=$1
  shift
  mkdir -p $SPIN
  ln -sf "$(command -v bash)" "$SPIN/$name"
  "$@" "$SPIN/$name" -c 'while :; do :; done' &
  SPIN_PID=$!
}

echo "guest: $(uname -r), $NCPU CPUs"
((NCPU >= 2)) || fail vm_shape "needs at least 2 CPUs, has $NCPU"
dmesg -C

# --- Config errors: refused with the line, before anything attaches ----------
printf 'policy = "prio"\nslice_us = 5\n' >"$OUT/bad.toml"
err=$("$BIN" --config "$OUT/bad.toml" 2>&1)
status=$?
verdict config_error_names_line "exit $status: $err" \
  test $status -ne 0 -a "$(state)" = disabled -a -n "$(grep -F 'line 2' <<<"$err")"

# --- prio ---------------------------------------------------------------------
# A cgroup for a cgroup rule; it must exist before the scheduler resolves it.
grep -q ' cgroup2 ' /proc/mounts || mount -t cgroup2 none /sys/fs/cgroup
CG=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
mkdir -p "$CG/llmos-test/inner"
cat >"$OUT/llmos.toml" <<'EOF'
policy = "prio"

[[priority]]
comm = "prio-top"
priority = 39

[[priority]]
cgroup = "/llmos-test"
priority = 35

[[priority]]
uid = 4242
priority = 3

[[group]]
comm = "grp-spin"
cpus = "1"
EOF
"$BIN" --config "$OUT/llmos.toml" --stats 1 >"$OUT/sched.log" 2>&1 &
SCHED=$!
wait_state enabled 30 >/dev/null
verdict attach_prio "state $(state)" test "$(state)" = enabled
SEQ=$(cat $SYS/enable_seq)

# nice -10 against nice 10 on one CPU: 20 steps of aging apart.
spin prio-hi taskset -c 1 nice -n -10
hi=$SPIN_PID
spin prio-lo taskset -c 1 nice -n 10
lo=$SPIN_PID
sleep 0.5
hi0=$(cpu_ns $hi) lo0=$(cpu_ns $lo) lo_prev=$lo0 stalled=0 trace="" t0=$(now_ms)
for _ in 1 2 3 4 5 6; do
  sleep 1
  lo_now=$(cpu_ns $lo)
  ((lo_now > lo_prev)) || stalled=$((stalled + 1))
  trace+="$(((lo_now - lo_prev) / 1000000)) "
  lo_prev=$lo_now
done
hi_ms=$((($(cpu_ns $hi) - hi0) / 1000000)) lo_ms=$(((lo_prev - lo0) / 1000000))
kill $hi $lo
verdict prio_nice_share "nice -10: $hi_ms ms, nice 10: $lo_ms ms of CPU in $(($(now_ms) - t0)) ms (need >= 3:1)" \
  test $((hi_ms)) -ge $((3 * lo_ms)) -a $lo_ms -gt 0
verdict prio_low_progresses "nice 10 ms per second: $trace(need > 0 every second)" test $stalled = 0

# A config rule lifts a nice-0 thread to the top priority: it beats another nice-0.
spin prio-top taskset -c 1
top=$SPIN_PID
spin prio-plain taskset -c 1
plain=$SPIN_PID
sleep 0.5
top0=$(cpu_ns $top) plain0=$(cpu_ns $plain)
sleep 4
top_ms=$((($(cpu_ns $top) - top0) / 1000000)) plain_ms=$((($(cpu_ns $plain) - plain0) / 1000000))
read -r top_prio top_comm < <(thread_get $top -- priority comm)
kill $top $plain
verdict prio_rule_by_comm "rule-matched (priority 39): $top_ms ms, plain nice 0: $plain_ms ms in 4 s (need >= 3:1 and > 0); its stats row: priority $top_prio, $top_comm" \
  test $top_ms -ge $((3 * plain_ms)) -a $plain_ms -gt 0 -a "$top_prio" = 39

# Rules by cgroup (a thread in a cgroup below the named one) and by uid; the
# rules apply when the thread execs, after it joined the cgroup or took the uid.
spin prio-cg bash -c "echo \$\$ >$CG/llmos-test/inner/cgroup.procs && exec \"\$0\" \"\$@\""
cg=$SPIN_PID
spin prio-uid setpriv --reuid 4242 --regid 4242 --clear-groups
uid=$SPIN_PID
sleep 1
read -r cg_prio uid_prio < <(thread_get $cg $uid -- priority)
kill $cg $uid
verdict prio_rule_by_cgroup "thread in /llmos-test/inner: priority $cg_prio (need 35)" test "$cg_prio" = 35
verdict prio_rule_by_uid "thread of uid 4242: priority $uid_prio (need 3)" test "$uid_prio" = 3

# `ctl reload`: changed rules reach a thread that neither execs nor sleeps (a
# hog), without a restart; a file with a mistake is refused and changes nothing.
spin prio-top taskset -c 1
top=$SPIN_PID
sleep 0.5
read -r prio_before < <(thread_get $top -- priority)
sed -i 's/^priority = 39$/priority = 20/' "$OUT/llmos.toml"
reload_reply=$("$BIN" ctl reload 2>&1)
prio_is() { [[ $(thread_get $top -- priority) == "$1" ]]; }
wait_for 5 prio_is 20
read -r prio_after < <(thread_get $top -- priority)
verdict ctl_reload_applies "prio-top's priority $prio_before, then after \"$reload_reply\": $prio_after (need 39, then 20; enable_seq $SEQ -> $(cat $SYS/enable_seq))" \
  test "$prio_before" = 39 -a "$prio_after" = 20 -a "$(cat $SYS/enable_seq)" = "$SEQ" -a "$(state)" = enabled
printf '[[priority]]\ncomm = "prio-top"\npriority = 99\n' >"$OUT/broken.toml"
cp "$OUT/llmos.toml" "$OUT/llmos.good.toml"
cp "$OUT/broken.toml" "$OUT/llmos.toml"
broken_reply=$("$BIN" ctl reload 2>&1)
sleep 0.5
read -r prio_kept < <(thread_get $top -- priority)
cp "$OUT/llmos.good.toml" "$OUT/llmos.toml"
kill $top
verdict ctl_reload_refuses_mistakes "reply: $broken_reply; prio-top's priority then: $prio_kept (need 20)" \
  test -n "$(grep -F 'line 3: priority = 99 is not in 0..=39' <<<"$broken_reply")" -a "$prio_kept" = 20

# --- Priority inheritance -------------------------------------------------------
# A holder of a PI mutex (PTHREAD_PRIO_INHERIT) burns PI_CRITICAL_US of CPU
# inside it, a waiter of higher priority asks for it, hogs of a priority in
# between spin on every CPU: pi-wait times the waiter's wait, PI_ROUNDS
# times. With inheritance the holder runs at the waiter's priority and the
# wait is about the critical section; without (priority_inheritance=0, in
# the same boot) it waits behind the hogs: the run without is the control
# that shows the shape needs inheritance, judged against the run with (how
# long the holder waits without varies with the host: see mlfq's below).
# The bound with inheritance is on the wait beyond the holder's time on a
# CPU in its critical section (pi-wait's extra_us): under TCG 2 ms of CPU
# time took 2.5 ms of wall time in most rounds but 4.3-10.8 ms in a quarter
# of them, the holder on its CPU all along (no context switch), and CI's
# 7.1 ms median wait failed a bound of 3x the critical section on that (a
# run here had 7.2 ms, extra 0.8 ms).
# max_extra_us is reported, not bounded: in 8-17% of rounds it is 2.5-6 ms
# under single-threaded TCG, whose one host thread runs the vCPUs in turn
# (traced: the stall fell where no scheduling decision is made, e.g. 3.2 ms
# between the holder's unlock and the kernel's deboost, 4.3 ms between the
# waiter's switch-in and its return from the lock); with multi-threaded TCG
# 2 of 160 rounds went over 2 ms, both a run's first round.
PI_ROUNDS=20 PI_CRITICAL_US=2000
gcc -O2 -pthread -o "$OUT/pi-wait" "$(dirname "$0")/pi-wait.c" || fail pi_wait_build "gcc failed"
pi_wait() { # HOGS HOLDER_NICE WAITER_NICE HOG_NICE: prints pi-wait's line
  "$OUT/pi-wait" $PI_ROUNDS $PI_CRITICAL_US "$@" 2>&1
}
field() { sed -n "s/.* $1=\([0-9-]*\).*/\1/p" <<<"$2"; }
pi_check() { # NAME FACTOR HOGS HOLDER_NICE WAITER_NICE HOG_NICE
  local name=$1 factor=$2 with without extra_with extra_without good=no
  shift 2
  "$BIN" ctl set priority_inheritance=1 >/dev/null
  with=$(pi_wait "$@")
  "$BIN" ctl set priority_inheritance=0 >/dev/null
  without=$(pi_wait "$@")
  "$BIN" ctl set priority_inheritance=1 >/dev/null
  extra_with=$(field p50_extra_us "$with") extra_without=$(field p50_extra_us "$without")
  [[ -n $extra_with && -n $extra_without && $(state) == enabled ]] &&
    ((extra_with <= PI_CRITICAL_US && extra_without >= factor * extra_with &&
      extra_without >= PI_CRITICAL_US)) && good=yes
  verdict "$name" "with: $with; without: $without (need p50_extra <= the critical section with; without, >= ${factor}x that and >= the critical section)" \
    test $good = yes
}
# prio: nice 19 holds, nice -20 waits, 2 nice-0 hogs per CPU. Without
# inheritance the holder waits out prio's aging, 19 steps of 10 ms. Measured
# on 7.2, p50 extra: 0.60-0.92 ms with (8 runs), 215 and 217 ms without.
pi_check priority_inheritance_prio 5 $((2 * NCPU)) 19 -20 0
# mlfq: levels as priorities. All nice 0: the kernel's chain sees nothing to
# pass on; the holder, CPU-bound, sinks to the bottom among 4 hogs per CPU,
# the waiter, which sleeps, stays on top. Without inheritance the holder
# waits its vtime turn among the hogs' 8 ms slices. Measured on 7.2, p50
# extra (5 runs each): 0.62-0.74 ms with, 12.5-20.6 ms without; 2026-12-07
# 0.99 and 20.3 ms here, and in a fresh-clone CI run 0.69 and 4.4 ms, which
# failed a bound of 3x the critical section without (6 ms).
"$BIN" ctl policy mlfq >/dev/null
pi_check priority_inheritance_mlfq 3 $((4 * NCPU)) 0 0 0

# A wakeup is no more urgent than its waker (wakeup_rank()): a CPU hog
# that wakes a reader every 1 ms of spinning, beside two hogs per CPU, all
# on mlfq's bottom level, does not have the reader take another hog's CPU.
# The reader is still first in line for the next CPU that comes free. The
# same hog writing to /dev/null first counts the preemptions that are not
# the reader's (timer-woken kthreads, python's start).
start_hogs $((2 * NCPU))
sleep 1
preempts0=$(stats_get preemptions)
python3 -S "$(dirname "$0")/hog-wakes.py" 3 --no-reader >/dev/null
preempts1=$(stats_get preemptions)
writes=$(python3 -S "$(dirname "$0")/hog-wakes.py" 3)
preempts2=$(stats_get preemptions)
stop_hogs
caused=$((preempts2 - preempts1 - (preempts1 - preempts0)))
verdict hog_wakeups_do_not_preempt "$writes wakeups of a reader by a CPU hog beside $((2 * NCPU)) hogs: $((preempts2 - preempts1)) preemptions, $((preempts1 - preempts0)) without the reader (need fewer than 1 more per 4 wakeups)" \
  test "${writes:-0}" -gt 0 -a $((caused * 4)) -lt "${writes:-0}"

"$BIN" ctl policy prio >/dev/null

# --- affinity -----------------------------------------------------------------
"$BIN" ctl policy affinity >"$OUT/ctl-affinity.txt" 2>&1
verdict switch_to_affinity "$(cat "$OUT/ctl-affinity.txt")" grep -q "ok: policy affinity" "$OUT/ctl-affinity.txt"

# Samples where each thread last ran, every 50 ms for 3 s: prints "cpu0 cpu1"
# counts. The sampler keeps to CPU 0, so that CPU 1 is free when the test says
# so, and it forks nothing while it samples (bash builtins only, read -t as
# its sleep): each fork would take CPU 0 from the hog it counts and send that
# hog to its group's queue on CPU 1, and a slow machine would count fewer
# samples on CPU 0 for its own sake.
where() {
  local on0=0 on1=0 pid stat fields nap
  taskset -pc 0 $BASHPID >/dev/null
  exec {nap}<> <(:)
  for _ in {1..60}; do
    for pid in "$@"; do
      read -r stat <"/proc/$pid/stat"
      # Field 39 (processor) is the 37th after "pid (comm) ".
      read -ra fields <<<"${stat##*) }"
      if [[ ${fields[36]} == 0 ]]; then on0=$((on0 + 1)); else on1=$((on1 + 1)); fi
    done
    read -rt 0.05 -u $nap
  done
  echo "$on0 $on1"
}

# One group thread on an idle machine runs on its group's CPU. A task
# other than a per-CPU kthread woken on CPU 1 may cut it short and send it
# to idle CPU 0 for a slice: 0 of 60 samples on CPU 0 in two boots of
# 2026-12-07, 4 in a third (a fresh-clone CI run, which failed the bound of
# 3 it had then; what woke on CPU 1 is not known). The bound is 50 of 60 on
# CPU 1 (what a placement blind to the group gives was not measured).
spin grp-spin
g1=$SPIN_PID
sleep 0.5
read on0 on1 < <(where $g1)
verdict affinity_group_cpu_when_free "grp-spin (group CPU 1) sampled on CPU 0: $on0, CPU 1: $on1 (need >= 50 on CPU 1)" \
  test $on1 -ge 50
# A per-CPU kworker woken on its group's CPU cuts it short for microseconds:
# it waits there for the kworker, not a slice on idle CPU 0. Each write to
# stat_refresh runs a kworker on every CPU and waits for them all; the
# writer keeps to CPU 0 and sleeps 20 ms between writes. Measured on 7.2:
# 2 moves per kworker run when each cut sent it to CPU 0 (136 for 64 runs in
# 3 s; 146-172 per 3 s in 10 rounds of two diagnostic boots); since, 3-11 in
# 4 s beside 154-159 runs (4 boots, 7.2 and 6.16), 4-11 per 3 s in 5
# diagnostic rounds, about what it makes with no writer (8-9 per 3 s; 18-22
# before).
taskset -c 0 bash -c 'n=0; trap "echo \$n >/dev/shm/refreshes; exit" TERM
  exec {nap}<> <(:)
  while echo 1 >/proc/sys/vm/stat_refresh; do n=$((n + 1)); read -rt 0.02 -u $nap; done' &
refresher=$!
moved=$(migrations $g1)
sleep 4
moved=$(($(migrations $g1) - moved))
kill $refresher
wait $refresher
refreshes=$(cat /dev/shm/refreshes)
verdict affinity_group_waits_out_kworkers "grp-spin moved $moved times in 4 s beside $refreshes kworker runs on its CPU (need at most 1 per 2 runs, and >= 20 runs)" \
  test $((2 * moved)) -le "$refreshes" -a "$refreshes" -ge 20
# Three group threads spill to the other CPU: the set is a preference.
spin grp-spin
g2=$SPIN_PID
spin grp-spin
g3=$SPIN_PID
sleep 0.5
read on0 on1 < <(where $g1 $g2 $g3)
verdict affinity_group_spills "3 grp-spin on 2 CPUs sampled on CPU 0: $on0, CPU 1: $on1 (need CPU 0 in >= 1/4)" \
  test $on0 -ge 45
read -r g1_group g1_comm < <(thread_get $g1 -- group comm)
verdict affinity_group_in_map "$g1_comm's stats row: group $g1_group (need 0)" test "$g1_group" = 0
kill $g1 $g2 $g3
# The thread's own cpumask beats the group: pinned to CPU 0, it never runs on CPU 1.
spin grp-spin taskset -c 0
gp=$SPIN_PID
sleep 0.5
read on0 on1 < <(where $gp)
kill $gp
verdict affinity_never_outside_cpumask "grp-spin pinned to CPU 0 (group CPU 1) sampled on CPU 0: $on0, CPU 1: $on1" \
  test $on1 = 0

# --- RT coexistence -------------------------------------------------------------
# A SCHED_FIFO hog takes CPU 0 for 20 s. Tasks that may run elsewhere must not
# wait behind it in CPU 0's queues: three hogs that may run anywhere (on 2
# CPUs, one of them is running on CPU 0 when the RT hog takes it, and the
# kernel puts it at the head of CPU 0's local queue) each get CPU on the other
# CPU every second. A hog pinned to CPU 0 gets what the kernel gives it beside
# an RT hog, which is reported. Measured on 7.2, ms in the worst second:
# without ops.cpu_release, affinity 28 (4 in another run, whose sampling shell
# was stuck for seconds too) and mlfq 128 (RT throttling lends CPU 0 back
# 50 ms a second, where the stuck hog's slice ends and mlfq requeues it on the
# LLC, while affinity requeues it on CPU 0); with it, 245 and 249.
rt_hog_beside() { # POLICY
  local start free=() pid rt worst="" trace="" prev=() now ms pinned pinned0 pinned_ms t0 t wall i
  for i in 0 1 2; do
    spin rt-free
    free+=($SPIN_PID)
  done
  sleep 0.5
  chrt -f 50 taskset -c 0 bash -c 'while :; do :; done' &
  rt=$! start=$SECONDS
  spin rt-pinned taskset -c 0
  pinned=$SPIN_PID
  for i in 0 1 2; do prev[i]=$(cpu_ns ${free[i]}); done
  pinned0=$(cpu_ns $pinned) t0=$(now_ms)
  while ((SECONDS - start < 20)); do
    sleep 1
    t=$(now_ms)
    # Per second of wall time: this shell may itself be kept waiting.
    wall=$((t - t0)) t0=$t
    for i in 0 1 2; do
      now=$(cpu_ns ${free[i]})
      ms=$(((now - prev[i]) / (wall * 1000)))
      prev[i]=$now
      [[ -z $worst ]] || ((ms < worst)) && worst=$ms
      trace+="$ms "
    done
    trace+="| "
  done
  kill $rt
  pinned_ms=$((($(cpu_ns $pinned) - pinned0) / 1000000))
  kill "${free[@]}" $pinned
  verdict rt_hog_others_progress_$1 "three hogs that may leave CPU 0, beside an RT hog on it, ms of CPU per second: ${trace}(need >= 100 every second); a hog pinned to CPU 0 got $pinned_ms ms in $((SECONDS - start)) s" \
    test "$worst" -ge 100
}
rt_hog_beside affinity
"$BIN" ctl policy mlfq >/dev/null
rt_hog_beside mlfq
verdict rt_hog_stays_attached "state $(state), enable_seq $SEQ -> $(cat $SYS/enable_seq)" \
  test "$(state)" = enabled -a "$(cat $SYS/enable_seq)" = "$SEQ"

# --- Migration disabled -----------------------------------------------------------
# A task preempted inside a BPF program, here a seccomp filter (browsers and
# sandboxed services run them at every syscall), has migration disabled. The
# kernel enqueues it before it narrows its cpumask: sent to another CPU's
# local queue, it gets a scheduler ejected ("cannot move migration
# disabled"). From 6.15 the kernel keeps it on its CPU without asking
# ops.enqueue() (scx_llmos does not set SCX_OPS_ENQ_MIGRATION_DISABLED), and
# counts it (SCX_EV_ENQ_SKIP_MIGRATION_DISABLED); ops.dispatch() still sees it
# as the task that ran (affinity_should_move()). Per CPU, a spinner in seccomp
# filters (see seccomp-spin.py) and a thread waking every 2 ms to preempt it,
# with full preemption, 8 s under affinity, whose group (CPU 1) the spinners
# are in, and under mlfq.
mountpoint -q /sys/kernel/debug || mount -t debugfs none /sys/kernel/debug
PREEMPT=/sys/kernel/debug/sched/preempt
preempt_mode() { grep -o '([a-z]*)' $PREEMPT | tr -d '()'; }
preempt_was=$(preempt_mode)
echo full >$PREEMPT
skipped_migration_disabled() {
  awk '$1 == "SCX_EV_ENQ_SKIP_MIGRATION_DISABLED" { print $2 }' $SYS/root/events
}
migration_disabled_under() { # POLICY
  local pids=() i skipped0 skipped
  "$BIN" ctl policy "$1" >/dev/null
  skipped0=$(skipped_migration_disabled)
  ln -sf "$(command -v python3)" "$SPIN/grp-spin"
  for ((i = 0; i < NCPU; i++)); do
    "$SPIN/grp-spin" "$(dirname "$0")/seccomp-spin.py" &
    pids+=($!)
    python3 -c 'import time
while True: time.sleep(0.002)' &
    pids+=($!)
  done
  sleep 8
  skipped=$(($(skipped_migration_disabled) - skipped0))
  kill "${pids[@]}"
  wait "${pids[@]}" 2>/dev/null
  verdict migration_disabled_$1 "preemption $(preempt_mode): $skipped preempted with migration disabled, kept on their CPU by the kernel; state $(state), enable_seq $SEQ -> $(cat $SYS/enable_seq) $(dmesg | grep -m1 'migration disabled')" \
    test "$skipped" -gt 0 -a "$(state)" = enabled -a "$(cat $SYS/enable_seq)" = "$SEQ"
}
migration_disabled_under affinity
migration_disabled_under mlfq
echo "$preempt_was" >$PREEMPT

# --- cgroup cpu.weight ----------------------------------------------------------
# Two cgroups of cpu.weight 100 and 400, 2 spinners per CPU in each: under
# the policies ordered by vtime they share the CPUs 1:4 (bpf/cgweight.bpf.h).
# EEVDF gave 4.00-4.03 in this shape (7.2, 2 runs).
echo +cpu >"$CG/cgroup.subtree_control"
mkdir -p "$CG/cw-lo" "$CG/cw-hi"
echo 100 >"$CG/cw-lo/cpu.weight"
echo 400 >"$CG/cw-hi/cpu.weight"
cw_lo=() cw_hi=() cw_moved=""
for _ in $(seq $((2 * NCPU))); do
  spin cw-lo
  echo $SPIN_PID >"$CG/cw-lo/cgroup.procs"
  cw_lo+=($SPIN_PID)
  spin cw-hi
  echo $SPIN_PID >"$CG/cw-hi/cgroup.procs"
  cw_hi+=($SPIN_PID)
done
cpu_sum() { local total=0 pid; for pid in "$@"; do total=$((total + $(cpu_ns $pid))); done; echo $total; }
# The CPU ms the spinners in cw_lo, cw_hi and cw_moved (one or none) got in
# about 5 s: "lo_ms hi_ms moved_ms". Each is read just after the one before,
# in the same order at both ends, so that the windows are alike.
cw_shares() {
  local lo0 hi0 moved0 lo hi moved
  lo0=$(cpu_sum "${cw_lo[@]}") hi0=$(cpu_sum "${cw_hi[@]}") moved0=$(cpu_sum $cw_moved)
  sleep 5
  lo=$(cpu_sum "${cw_lo[@]}") hi=$(cpu_sum "${cw_hi[@]}") moved=$(cpu_sum $cw_moved)
  echo $(((lo - lo0) / 1000000)) $(((hi - hi0) / 1000000)) $(((moved - moved0) / 1000000))
}
# 1:4 within 15%. Measured on 7.2 (2 runs each): vtime 3.98-4.06, mlfq
# 3.70-3.88; while a turn's charge beyond one slice was let off (see
# entry_key()), vtime 3.65-3.80, affinity 3.59-3.75 and mlfq 3.13-3.32.
# mlfq honours weights within a level: its boost (every second) lifts every
# thread alike, and each spends its allotments above the bottom level as
# any other does.
for policy in vtime affinity mlfq; do
  low=340
  "$BIN" ctl policy $policy >/dev/null
  sleep 1
  read -r lo_ms hi_ms _ < <(cw_shares)
  ratio=$((hi_ms * 100 / (lo_ms > 0 ? lo_ms : 1)))
  verdict cgroup_weight_$policy "cpu.weight 100: $lo_ms ms, 400: $hi_ms ms in 5 s, ${ratio}% (need $low-460%)" \
    test $ratio -ge $low -a $ratio -le 460
done
# A spinner moved from the weight-100 cgroup to the weight-400 one takes a
# share of the new one's: with 5 spinners there and 3 left behind, 4/5 of
# the CPUs split 5 ways against 1/5 split 3 ways.
"$BIN" ctl policy vtime >/dev/null
cw_moved=${cw_lo[0]}
cw_lo=("${cw_lo[@]:1}")
read -r lo_ms _ before_ms < <(cw_shares)
echo $cw_moved >"$CG/cw-hi/cgroup.procs"
sleep 1
read -r lo_ms hi_ms moved_ms < <(cw_shares)
hi_each=$((hi_ms / ${#cw_hi[@]}))
verdict cgroup_weight_follows_a_move "a spinner got $before_ms ms in 5 s in cpu.weight 100, then $moved_ms ms in 400, whose others got $hi_each ms each (need within 25% of theirs)" \
  test $((moved_ms * 4)) -ge $((hi_each * 3)) -a $((moved_ms * 4)) -le $((hi_each * 5))
kill "${cw_lo[@]}" "${cw_hi[@]}" $cw_moved
wait "${cw_lo[@]}" "${cw_hi[@]}" $cw_moved 2>/dev/null
# A cgroup rule follows a thread that moves into its cgroup, under prio:
# priority 19 (nice 0) in the root, 35 (the llmos-test rule) once moved.
"$BIN" ctl policy prio >/dev/null
spin cw-rule
rule_spinner=$SPIN_PID
sleep 0.5
read -r rule_prio_before < <(thread_get $rule_spinner -- priority)
echo $rule_spinner >"$CG/llmos-test/inner/cgroup.procs"
wait_for 5 eval '[[ $(thread_get $rule_spinner -- priority) == 35 ]]'
read -r rule_prio_after < <(thread_get $rule_spinner -- priority)
kill $rule_spinner
verdict cgroup_rule_follows_a_move "priority $rule_prio_before in the root cgroup, $rule_prio_after after a move into /llmos-test/inner (need 19, then 35)" \
  test "$rule_prio_before" = 19 -a "$rule_prio_after" = 35

# --- Live switching under stress ---------------------------------------------
read -r settled_before < <(stats_get policy_switches)
stress-ng -c "$NCPU" -f "$NCPU" --affinity 1 --affinity-delay 1 --affinity-pin \
  --temp-path "$OUT" --timeout "$((SWITCH_SECS + 10))" >"$OUT/stress.log" 2>&1 &
stress=$!
"$PROBE" --duration-s "$((SWITCH_SECS + 4))" --warmup-ms 0 --spinners "$NCPU" >"$OUT/probe.txt" 2>&1 &
probe=$!
sleep 2
# The driver is a real-time thread, outside sched_ext: what is tested here
# is the switching under stress, not how long the driver waits for a CPU.
read switches failed elapsed < <(chrt -f 10 python3 "$(dirname "$0")/switch-driver.py" \
  /run/scx_llmos/ctl.sock "$SWITCH_SECS" "$OUT/ctl.log")
wait $probe
probe_status=$?
logged=$(grep -c "policy .* -> " "$OUT/sched.log")
# The driver asks 100 ms after each reply: 5.6-6.4 switches a second in
# CI runs and by hand, 4.5 in one CI run whose boots all ran slow (it failed
# the 5 a second asked before). At least 2 a second: enough switches to
# race the stress, and a switch that hung or took 400 ms would fail it.
verdict switch_cycle "$switches switches ok, $failed failed in $elapsed ms; the scheduler logged $logged" \
  test $switches -ge $((SWITCH_SECS * 2)) -a $failed = 0 -a $logged -ge $switches
verdict switch_stays_enabled "state $(state), enable_seq $SEQ -> $(cat $SYS/enable_seq)" \
  test "$(state)" = enabled -a "$(cat $SYS/enable_seq)" = "$SEQ"
stalled=$(awk '$1 == "progress" { n = split($3, a, ","); for (i = 1; i <= n; i++) if (a[i] == 0) z++ } END { print z + 0 }' "$OUT/probe.txt")
intervals=$(awk '$1 == "progress" { n = split($3, a, ","); t += n } END { print t + 0 }' "$OUT/probe.txt")
verdict switch_every_thread_progresses "probe exit $probe_status, $intervals spinner-seconds, $stalled without progress; $(grep latency_us "$OUT/probe.txt")" \
  test $probe_status = 0 -a $intervals -ge $((NCPU * SWITCH_SECS)) -a $stalled = 0
wait $stress
stress_status=$?
verdict switch_stress_completed "stress-ng exit $stress_status" test $stress_status = 0
sleep 1.5
read -r settled carried < <(stats_get policy_switches carried_over)
verdict switch_settled_in_bpf "BPF settled $settled switches (ctl made $switches, and $settled_before before), carrying $carried queued tasks over" \
  test $settled -eq $((switches + settled_before))

# Only root may switch.
err=$(setpriv --reuid 65534 --regid 65534 --clear-groups "$BIN" ctl policy fifo 2>&1)
status=$?
after=$("$BIN" ctl status | head -1)
verdict ctl_refused_unprivileged "exit $status: $err; then: $after" \
  test $status -ne 0 -a -n "$(grep -F 'permission denied' <<<"$err")" -a -n "$(grep -F "ok: policy" <<<"$after")"
# Read back by name from `ctl status --json`, as a script would.
set_reply=$("$BIN" ctl set boost_ms=250 2>&1)
status_json=$("$BIN" ctl status --json 2>&1)
verdict ctl_set_tunable "$set_reply; ctl status --json: $status_json" \
  test "$(python3 -c 'import json, sys; print(json.loads(sys.argv[1])["boost_ms"])' "$status_json" 2>&1)" = 250
verdict ctl_set_rejects "$("$BIN" ctl set slice_us=5 2>&1)" \
  test -n "$("$BIN" ctl set slice_us=5 2>&1 | grep -F 'not in 100..=100000')"

# The threads target says which threads wait for a CPU (top's per-level
# queue depths): of 3 hogs sharing CPU 1, 2 wait whenever one runs (3 when
# the loader's thread that reads them has CPU 1 itself); a sleeping thread
# never waits.
spin wait-a taskset -c 1
wa=$SPIN_PID
spin wait-b taskset -c 1
wb=$SPIN_PID
spin wait-c taskset -c 1
wc=$SPIN_PID
sleep 600 &
sleeper=$!
sleep 0.5
waits="" sleeper_waits=0 off=0
for _ in $(seq 10); do
  read -r a b c z < <(thread_get $wa $wb $wc $sleeper -- waiting)
  n=$((a + b + c))
  waits+="$n "
  ((n == 2 || n == 3)) || off=$((off + 1))
  sleeper_waits=$((sleeper_waits + z))
  sleep 0.2
done
kill $wa $wb $wc $sleeper
verdict threads_waiting "3 hogs on CPU 1, waiting per sample: $waits(need 2 or 3 in all 10); a sleeper waiting in $sleeper_waits samples (need 0)" \
  test $off = 0 -a $sleeper_waits = 0

# `scx_llmos top` in a pseudo-terminal, read as a user reads it.
. "$(dirname "$0")/top-check.sh"
cp "$(command -v bash)" /dev/shm/spin-top
/dev/shm/spin-top -c 'while :; do :; done' &
spin_top=$!
check_top "$BIN"
kill $spin_top

# rms's claims stop at 90% of the CPUs online, not of the CPU ids the kernel
# has: with CPU 1 offline, of three threads that each claim nearly half a
# CPU one is ranked by its period, and two hogs still run (edf.sh checks the
# same on one CPU in all). With the cap counted from the CPU ids (7.2, the
# same shape): all three ranked, the hogs 135 ms each in 8 s.
echo 0 >/sys/devices/system/cpu/cpu1/online
"$BIN" ctl policy rms >/dev/null
become_rt_driver
check_claims_capped rms_claims_fit_online_cpus "$BIN" --spin rms-hog-1 --spin rms-hog-2
echo 1 >/sys/devices/system/cpu/cpu1/online

kill -INT $SCHED
wait $SCHED
verdict detached "exit $?, state $(state)" test "$(state)" = disabled
check_no_stall
exit $((failures > 0))
