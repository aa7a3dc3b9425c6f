# Sourced by a guest script after checks.sh (ok, fail, verdict, wait_for,
# stats_get): check_top BIN runs `BIN top` against the running scheduler in
# a pseudo-terminal that tmux provides, with the TERM tmux sets, and reads
# the screen as a user would: the header names the active policy, the CPU %
# key puts the caller's CPU hog first, and q quits. The hog is a thread
# named spin-top, started beforehand, e.g.
#   cp /bin/bash "$OUT/spin-top" && "$OUT/spin-top" -c 'while :; do :; done' &
# One verdict, top_in_a_pty; on a failure the screen is kept in
# $OUT/top-screen.txt. STATS_SOCKET moves the stats socket, as for stats_get.

# A tmux server of the check's own (not the user's), whose one session is top.
# Its socket goes to /dev/shm: the guest's /tmp is not writable.
TOP_SESSION=scx_llmos-top
export TMUX_TMPDIR=/dev/shm
top_tmux() { tmux -L "$TOP_SESSION" "$@"; }
# The screen as last read, into $top_screen.
top_read_screen() { top_screen=$(top_tmux capture-pane -p -t "$TOP_SESSION"); }
# The first row of the thread table on $top_screen: the thread's name and
# its CPU % (the 2nd and 6th columns, borders aside).
top_first_row() {
  awk '/ TID +COMM / { getline; gsub(/│/, " "); print $2, $6; exit }' <<<"$top_screen"
}
top_shows_header() { # POLICY
  top_read_screen
  [[ $top_screen == *"scx_llmos top: policy $1 "* && $top_screen == *tunables* ]]
}
top_first_row_is() { # NAME
  top_read_screen
  [[ $(top_first_row) == "$1 "* ]]
}
top_gone() { ! top_tmux has-session -t "$TOP_SESSION" 2>/dev/null; }
top_fail() { # DETAIL
  printf '%s\n' "$top_screen" >"${OUT:-/tmp}/top-screen.txt"
  fail top_in_a_pty "$1 (screen in ${OUT:-/tmp}/top-screen.txt)"
}

check_top() { # BIN
  local bin=$1 policy start header_ms first quit_ms
  policy=$(stats_get policy)
  top_screen=""
  start=$(now_ms)
  # SCHED_OTHER in the real-time drivers, as the scheduler's other clients.
  if ! "${ext[@]}" tmux -L "$TOP_SESSION" -f /dev/null new-session -d -s "$TOP_SESSION" -x 100 -y 30 \
    "$bin top --stats-socket ${STATS_SOCKET:-/var/run/scx/root/stats}" 2>"${OUT:-/dev/shm}/top-tmux.err"; then
    top_fail "tmux could not start: $(head -c 300 "${OUT:-/dev/shm}/top-tmux.err")"
  elif ! wait_for 10 top_shows_header "$policy"; then
    top_fail "no header naming policy $policy within 10 s"
  else
    header_ms=$(($(now_ms) - start))
    top_tmux send-keys -t "$TOP_SESSION" c
    # CPU % comes with the second poll, a second after the first.
    if ! wait_for 10 top_first_row_is spin-top; then
      top_fail "sorted by CPU %, the first row is '$(top_first_row)', not spin-top"
    else
      first=$(top_first_row)
      start=$(now_ms)
      top_tmux send-keys -t "$TOP_SESSION" q
      if wait_for 5 top_gone; then
        quit_ms=$(($(now_ms) - start))
        ok top_in_a_pty "header with policy $policy after $header_ms ms; first by CPU %: $first %; q ended top in $quit_ms ms"
      else
        top_read_screen
        top_fail "top still runs 5 s after q"
      fi
    fi
  fi
  top_tmux kill-server 2>/dev/null || true
}
