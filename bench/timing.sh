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
