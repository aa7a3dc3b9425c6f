# Sourced by the guest scripts: how a check reports. Each prints
# "ok NAME: detail" or "FAIL NAME: detail"; tests/vm.rs reads those lines.
failures=0

ok() { echo "ok $1: $2"; }
fail() { echo "FAIL $1: $2"; failures=$((failures + 1)); }
verdict() { # NAME DETAIL CONDITION...
  local name=$1 detail=$2
  shift 2
  if "$@"; then ok "$name" "$detail"; else fail "$name" "$detail"; fi
}
now_ms() { echo $(($(date +%s%N) / 1000000)); }
