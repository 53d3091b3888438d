#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Launch latency, Trainyard's rlaunch against Slurm's srun on the same
# machine, side by side in one run (issues 3 and 20): the time from process
# start to exit of `rlaunch -- true` on an idle local cluster and of
# `srun -n1 true` on a local Slurm (bench/slurm-local.sh, its tuned profile
# unless SLURM_BENCH_PROFILE=stock), with both up at once and the samples
# interleaved (one rlaunch, one srun, ...) so load from elsewhere hits both
# alike: RUNS sequential launches each (median, p90, max), then CONC
# launches started at once (the wall time until all have exited, and the
# median and p90 of each one's own start-to-exit time). Then BREAKDOWN
# interleaved launches with their stages: `rlaunch --timing` (the client's
# timeline and the controller's and worker's own accounts) and `srun -v`
# (its progress lines, time-stamped as they arrive). Both get one node with
# the machine's CPU count (the tuned Slurm advertises 64). Times come from
# bash's $EPOCHREALTIME (no extra process per sample). Prints markdown
# tables with the load average before and after; ratios are Slurm /
# Trainyard (above 1: Trainyard is faster).
#
#   TY_BENCH_DEPS=1 deploy/install-deps.sh && \
#     nice bench/launch/launch_vs_srun.sh [RUNS] [CONC] [BREAKDOWN]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-50}
conc=${2:-10}
breakdown=${3:-20}
cpus=$(nproc)
build=${TY_BUILDDIR:-$root/build}
work=$(mktemp -d /tmp/trainyard-launch-XXXXXX)
port=${TRAINYARD_PORT:-17830}
export SLURM_BENCH_PORT=${SLURM_BENCH_PORT:-16847}
export TRAINYARD_CONTROLLER=127.0.0.1:$port
rlaunch="$build/cli/rlaunch"
trainctl="$build/cli/trainctl"

log() { echo "launch-bench: $*" >&2; }
cleanup() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/ty" >/dev/null 2>&1 || true
  "$root/bench/slurm-local.sh" stop "$work/slurm" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# stats, elapsed
. "$root/bench/timing.sh"

# sample OUTFILE CMD... : one launch, its duration appended to OUTFILE.
sample() {
  local out=$1; shift
  local t0=$EPOCHREALTIME
  "$@" >/dev/null || { log "failed: $*"; exit 1; }
  elapsed "$t0" >>"$out"
}

# conc_runs OUTFILE CMD... : CONC launches at once; per-launch durations in
# OUTFILE, the wall time of the burst on stdout.
conc_runs() {
  local out=$1; shift
  : >"$out"
  local t0=$EPOCHREALTIME
  for _ in $(seq 1 "$conc"); do
    (
      s=$EPOCHREALTIME
      "$@" >/dev/null || { log "failed: $*"; exit 1; }
      elapsed "$s" >>"$out"
    ) &
  done
  wait
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'
}

# rlaunch --timing's stage lines -> "KEY|MS" (KEY: side and stage as printed).
ty_stages() {
  awk '/^rlaunch:   / && / ms / {
    k = substr($0, 12, 25); sub(/ +$/, "", k); v = substr($0, 38, 9) + 0
    printf "%s|%.3f\n", k, v }' "$1"
}

# srun -v, each line prefixed with its arrival time, plus start and end
# stamps -> "STAGE|MS" for the stages between its progress lines.
sl_stages() {
  awk -v t0="$2" -v t9="$3" '
    / jobid [0-9]+: nodes\(/ { a = $1 }
    / launching StepId=/ { l = $1 }
    /_task_start:/ { s = $1 }
    /_task_finish: Received/ { f = $1 }
    END {
      printf "start -> allocation granted (submit, schedule)|%.3f\n", (a - t0) * 1000
      printf "allocation -> step launching (step create)|%.3f\n", (l - a) * 1000
      printf "launching -> task started (slurmd, slurmstepd, spawn)|%.3f\n", (s - l) * 1000
      printf "task started -> exit reported|%.3f\n", (f - s) * 1000
      printf "exit reported -> srun exited|%.3f\n", (t9 - f) * 1000
      printf "total|%.3f\n", (t9 - t0) * 1000 }' "$1"
}

# median_by_key FILE -> "KEY|MEDIAN" in first-seen order.
median_by_key() {
  awk -F'|' '{ if (!($1 in n)) order[++k] = $1; v[$1, ++n[$1]] = $2 }
    END { for (i = 1; i <= k; i++) { key = order[i]; m = n[key]
      for (a = 1; a <= m; a++) x[a] = v[key, a]
      for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (x[b] < x[a]) { t = x[a]; x[a] = x[b]; x[b] = t }
      printf "%s|%.3f\n", key, x[int((m + 1) / 2)] } }' "$1"
}

# Both authenticate every request with MUNGE through the same munged (Slurm's).
start_clusters() {
  "$root/bench/slurm-local.sh" start "$work/slurm" "$cpus"
  export SLURM_CONF="$work/slurm/slurm.conf"
  export TRAINYARD_MUNGE_SOCKET=$work/slurm/munge/munge.socket
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$build" -s "$work/ty" -c "$cpus" \
    -a munge >/dev/null
  until "$trainctl" nodes --json 2>/dev/null | grep -q '"UP"'; do sleep 0.1; done
  "$rlaunch" -- true # warm-ups: first connection, page cache
  srun -n1 true
}

load0=$(cut -d' ' -f1-3 /proc/loadavg)
start_clusters
log "$runs interleaved sequential launches each"
: >"$work/ty.seq"
: >"$work/sl.seq"
for _ in $(seq 1 "$runs"); do
  sample "$work/ty.seq" "$rlaunch" -- true
  sample "$work/sl.seq" srun -n1 true
done
log "$breakdown interleaved launches with their stages"
: >"$work/ty.stages"
: >"$work/sl.stages"
for i in $(seq 1 "$breakdown"); do
  "$rlaunch" --timing -- true 2>"$work/ty.timing"
  ty_stages "$work/ty.timing" >>"$work/ty.stages"
  t0=$EPOCHREALTIME
  srun -v -n1 true 2>&1 | while IFS= read -r line; do echo "$EPOCHREALTIME $line"; done >"$work/sl.timing"
  sl_stages "$work/sl.timing" "$t0" "$EPOCHREALTIME" >>"$work/sl.stages"
done
log "$conc concurrent launches each"
ty_wall=$(conc_runs "$work/ty.conc" "$rlaunch" -- true)
sl_wall=$(conc_runs "$work/sl.conc" srun -n1 true)
load1=$(cut -d' ' -f1-3 /proc/loadavg)

read -r ty_med ty_p90 ty_max < <(stats "$work/ty.seq")
read -r sl_med sl_p90 sl_max < <(stats "$work/sl.seq")
read -r tyc_med tyc_p90 tyc_max < <(stats "$work/ty.conc")
read -r slc_med slc_p90 slc_max < <(stats "$work/sl.conc")
ratio() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.1f", s / t }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
cat <<TABLE
Load average (1, 5, 15 min): $load0 before, $load1 after; Slurm profile ${SLURM_BENCH_PROFILE:-tuned}.

| launch of \`true\`, start to exit ($cpus CPUs, one node) | rlaunch (ms) | srun $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null) (ms) | srun / rlaunch |
| --- | --- | --- | --- |
| $runs sequential, median | $(ms "$ty_med") | $(ms "$sl_med") | $(ratio "$sl_med" "$ty_med") |
| $runs sequential, p90 | $(ms "$ty_p90") | $(ms "$sl_p90") | $(ratio "$sl_p90" "$ty_p90") |
| $runs sequential, max | $(ms "$ty_max") | $(ms "$sl_max") | $(ratio "$sl_max" "$ty_max") |
| $conc concurrent, each: median | $(ms "$tyc_med") | $(ms "$slc_med") | $(ratio "$slc_med" "$tyc_med") |
| $conc concurrent, each: p90 | $(ms "$tyc_p90") | $(ms "$slc_p90") | $(ratio "$slc_p90" "$tyc_p90") |
| $conc concurrent, all done (wall) | $(ms "$ty_wall") | $(ms "$sl_wall") | $(ratio "$sl_wall" "$ty_wall") |

Stages, medians of $breakdown launches (rlaunch --timing; indented: the controller's and worker's own clocks):

| rlaunch stage | ms |
| --- | --- |
$(median_by_key "$work/ty.stages" | awk -F'|' '{ k = $1; gsub(/  +/, " ", k); printf "| %s | %s |\n", k, $2 }')

| srun stage (srun -v lines, time-stamped on arrival) | ms |
| --- | --- |
$(median_by_key "$work/sl.stages" | awk -F'|' '{ printf "| %s | %s |\n", $1, $2 }')
TABLE

# The sequential launches again through hyperfine -N (no shell; its spawn
# costs each side less than bash's fork, which belongs to neither): medians.
command -v hyperfine >/dev/null || exit 0
hyperfine -N --style none --warmup 3 --runs "$runs" --export-json "$work/hf.json" \
  "$rlaunch -- true" "srun -n1 true" >/dev/null 2>&1 || exit 0
/usr/bin/python3 - "$work/hf.json" "$runs" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print()
print("| hyperfine -N, %s sequential each | rlaunch (ms) | srun (ms) | srun / rlaunch |" % sys.argv[2])
print("| --- | --- | --- | --- |")
a, b = r[0]["median"], r[1]["median"]
print("| median | %.1f | %.1f | %.1f |" % (a * 1000, b * 1000, b / a))
PY
