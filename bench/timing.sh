# SPDX-License-Identifier: Apache-2.0
# Timing helpers of the side-by-side benchmarks (sourced, not run): each
# sample is one command from start to exit, timed with bash's
# $EPOCHREALTIME (no extra process per sample). The sourcing script defines
# `runs` (how many samples) and `log` (a message on stderr).

# stats FILE -> "median p90 max" (seconds, 6 decimals)
stats() {
  sort -g "$1" | awk '{ v[NR] = $1 } END {
    m = v[int((NR + 1) / 2)]; p = v[int(NR * 0.9 + 0.999999)]; if (p == "") p = v[NR];
    printf "%.6f %.6f %.6f\n", m, p, v[NR] }'
}

# elapsed T0 -> seconds since T0 (an $EPOCHREALTIME), one line.
elapsed() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f\n", b - a }'; }

# seq_runs OUTFILE CMD... : $runs sequential runs, one duration per line.
seq_runs() {
  local out=$1; shift
  : >"$out"
  for _ in $(seq 1 "$runs"); do
    local t0=$EPOCHREALTIME
    "$@" >/dev/null || { log "failed: $*"; exit 1; }
    elapsed "$t0" >>"$out"
  done
}

# drain_wait CMD -> waits until CMD (printing the number of unfinished jobs)
# prints 0 or TY_BENCH_DRAIN_CAP_S (default 1800) runs out; prints how many
# were left (0 = all done).
drain_wait() {
  local cap=${TY_BENCH_DRAIN_CAP_S:-1800} start left
  start=$(date +%s)
  while left=$($1); [ "$left" -gt 0 ]; do
    [ $(( $(date +%s) - start )) -ge "$cap" ] && break
    sleep 0.05
  done
  echo "$left"
}
