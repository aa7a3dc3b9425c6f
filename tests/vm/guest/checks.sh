# Sourced by the guest scripts: how a check reports. Each prints
# "ok NAME: detail [at N s]" or "FAIL NAME: detail [at N s]", N the seconds
# since the script started (where a slow run spent its time); tests/vm.rs
# reads those lines.
failures=0

ok() { echo "ok $1: $2 [at ${SECONDS} s]"; }
fail() { echo "FAIL $1: $2 [at ${SECONDS} s]"; failures=$((failures + 1)); }
verdict() { # NAME DETAIL CONDITION...
  local name=$1 detail=$2
  shift 2
  if "$@"; then ok "$name" "$detail"; else fail "$name" "$detail"; fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
# sched_ext's state: enabled, disabled, ...
state() { cat /sys/kernel/sched_ext/state; }
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
