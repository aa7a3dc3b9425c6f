#!/usr/bin/env bash
# The benchmark: boots the sched_ext VM once and, interleaved over rounds,
# measures the kernel default (EEVDF), scx_llmos (every policy) and, where
# installed in /opt/scx/bin, scx_bpfland and scx_lavd; then writes the report
# (RESULTS.md), the raw rows (raw.txt) and charts of probe latency per
# scheduler (latency.png), per number of spinning threads (scale.png) and
# per shape of the latency matrix (matrix.png, a heat map).
#
#   usage: tests/vm/bench.sh [--smoke]
#
# --smoke: one round, short runs, small sizes, the main round under EEVDF,
#   mlfq and scx_bpfland only (scx_lavd runs as scx_bpfland does: another
#   binary from /opt/scx/bin), the scale runs under EEVDF and mlfq
#   only, the matrix's cells with one spinner per CPU only, into
#   target/bench-smoke (CI): every kind of row and every kind of scheduler,
#   once.
# SCX_LLMOS_KERNEL  kernel image, as for tests/vm/run.sh (default: the newest of
#                   the matrix); its kernel config is taken from "config"
#                   beside it, when there is one.
# BENCH_OUT (bench)  BENCH_ROUNDS (5)  BENCH_PROBE_SECS (8)
# BENCH_SCALE (10,100,1000; 10,000 hogs on one CPU outlast the 30 s watchdog)  BENCH_MSG_LOOPS (100)  BENCH_CPUS (1)
# BENCH_SCHEDS (all): who runs the main rounds (probe, BPF cost, messaging)
# BENCH_SCALE_SCHEDS ("eevdf mlfq bpfland lavd"): who runs the scale runs
# BENCH_MATRIX_SECS (4; 0 for none)  BENCH_MATRIX_SCHEDS ("eevdf mlfq bpfland lavd"): the latency matrix
# BENCH_MATRIX_SPINNERS ("1 2 4"): its cells' spinners per CPU
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ${1:-} == --smoke ]]; then
  : "${BENCH_OUT:=target/bench-smoke}" "${BENCH_ROUNDS:=1}" "${BENCH_PROBE_SECS:=2}"
  : "${BENCH_SCALE:=10,100}" "${BENCH_MSG_LOOPS:=10}" "${BENCH_MATRIX_SECS:=1}"
  : "${BENCH_MATRIX_SCHEDS:=eevdf mlfq}" "${BENCH_MATRIX_SPINNERS:=1}"
  : "${BENCH_SCHEDS:=eevdf mlfq bpfland}" "${BENCH_SCALE_SCHEDS:=eevdf mlfq}"
fi
# A full run compares with scx_lavd too, which only --bench installs.
[[ ${1:-} == --smoke ]] || bash tests/vm/setup.sh --bench
OUT=${BENCH_OUT:-bench}
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
kconfig=""
kernel=$(tests/vm/kernels.sh | tail -n 1)
if [[ -n $kernel && -f $(dirname "$kernel")/config ]]; then
  kconfig=$(dirname "$kernel")/config
fi

# The test suite's targets, not --bins alone: without the dev-dependencies
# the build-dependencies' features differ (getrandom's), and after
# tests/run-all.sh's build scx_llmos would be built again (89 s in a
# fresh-clone run of it).
cargo build --release --all-targets
started=$(date -u '+%Y-%m-%d %H:%M UTC')
# One vCPU by default: under TCG a lone vCPU is never descheduled by the
# emulator, so latencies are the schedulers' own. More vCPUs get a host
# thread each (multi-threaded TCG): a timing-only boot with few attaches.
cpus=${BENCH_CPUS:-1}
tcg_thread=single
((cpus == 1)) || tcg_thread=multi
VM_OUT=$OUT VM_CPUS=$cpus VM_TCG_THREAD=${VM_TCG_THREAD:-$tcg_thread} VM_MEM=4G VM_TIMEOUT=14400 tests/vm/run.sh \
  tests/vm/guest/bench.sh "$PWD/target/release/scx_llmos" "$kconfig" "${BENCH_ROUNDS:-5}" \
  "${BENCH_PROBE_SECS:-8}" "${BENCH_SCALE:-10,100,1000}" "${BENCH_MSG_LOOPS:-100}" \
  "${BENCH_SCALE_SCHEDS:-eevdf mlfq bpfland lavd}" "${BENCH_MATRIX_SECS:-4}" \
  "${BENCH_MATRIX_SCHEDS:-eevdf mlfq bpfland lavd}" "${BENCH_MATRIX_SPINNERS:-1 2 4}" \
  "${BENCH_SCHEDS:-}" |
  sed -u "1i # bench: run $started under TCG ($(nproc) host cores, $cpus vCPUs, thread=${VM_TCG_THREAD:-$tcg_thread})" | tee "$OUT/raw.txt"

target/release/llmos-bench-report "$OUT/raw.txt" "$OUT/RESULTS.md" "$OUT/latency.dat" \
  "$OUT/scale.dat" "$OUT/matrix.dat" >/dev/null
gnuplot <<GNUPLOT
set terminal pngcairo size 900,500
set output "$OUT/latency.png"
set title "Wakeup lateness of a 10 ms periodic thread among CPU hogs (median of rounds)"
set ylabel "lateness (µs, log scale)"
set logscale y
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set key top left
plot "$OUT/latency.dat" using 2:xtic(1) title "p50", "" using 3 title "p99"

set output "$OUT/scale.png"
set title "p99 wakeup lateness of a 10 ms periodic thread by number of CPU hogs"
set xlabel "spinning threads"
set ylabel "p99 lateness (µs)"
set style data linespoints
set logscale xy
unset xtics
set xtics
set datafile missing "?"
set key autotitle columnheader
plot for [i=2:*] "$OUT/scale.dat" using 1:i
GNUPLOT
# The latency matrix as a heat map: a column per scheduler, a row per cell,
# coloured by log2 of the p99 ratio to EEVDF, the ratio written in.
if [[ -s $OUT/matrix.dat ]]; then
  gnuplot <<GNUPLOT
set terminal pngcairo size 800,$((200 + 18 * $(awk '{print $2}' "$OUT/matrix.dat" | sort -u | wc -l)))
set output "$OUT/matrix.png"
set title "Sleeper p99 lateness per shape, ratio to EEVDF (blue: better, red: worse)"
set palette defined (-4 "#2166ac", 0 "#f7f7f7", 4 "#b2182b")
set cbrange [-4:4]
set cblabel "log2(p99 / EEVDF p99)"
set offsets 0.5, 0.5, 0.5, 0.5
set yrange [*:*] reverse
set tics nomirror
set ytics font ",8"
set style fill solid 1.0 noborder
plot "$OUT/matrix.dat" using 1:2:(0.5):(0.5):3:xtic(4):ytic(5) with boxxyerror lc palette notitle, \
  "" using 1:2:(sprintf("%.2f", 2**\$3)) with labels font ",7" notitle
GNUPLOT
fi
echo "bench: report in $OUT/RESULTS.md, charts in $OUT/latency.png, $OUT/scale.png and $OUT/matrix.png"
# scx_llmos failing fails the run, and so does the harness itself: every
# error but a peer scheduler that would not attach or detach on this kernel.
if grep '^row bench=error' "$OUT/raw.txt" | grep -vqE ' sched=(bpfland|lavd) what=(attach|detach)'; then
  echo "bench: errors during the benchmark (see the error rows of $OUT/raw.txt)" >&2
  exit 1
fi
