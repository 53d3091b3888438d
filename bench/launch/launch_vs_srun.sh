#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Launch latency, Trainyard's rlaunch against Slurm's srun on the same
# machine, side by side in one run (issue 3): the time from process start
# to exit of `rlaunch -- true` on an idle local cluster and of
# `srun -n1 true` on a local Slurm (bench/slurm-local.sh), RUNS sequential
# launches each (median and p90), then CONC launches started at once (the
# wall time until all have exited, and the median and p90 of each one's own
# start-to-exit time). Both get one node with the machine's CPU count, so
# concurrent launches beyond it queue on both. Times come from bash's
# $EPOCHREALTIME (no extra process per sample). Prints a markdown table;
# ratios are Slurm / Trainyard (above 1: Trainyard is faster).
#
#   TY_BENCH_DEPS=1 deploy/install-deps.sh && bench/launch/launch_vs_srun.sh [RUNS] [CONC]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-50}
conc=${2:-10}
cpus=$(nproc)
build=${TY_BUILDDIR:-$root/build}
work=$(mktemp -d /tmp/trainyard-launch-XXXXXX)
port=${TRAINYARD_PORT:-17830}
export TRAINYARD_CONTROLLER=127.0.0.1:$port
rlaunch="$build/cli/rlaunch"
trainctl="$build/cli/trainctl"

log() { echo "launch-bench: $*" >&2; }
cleanup() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/ty" >/dev/null 2>&1 || true
  "$root/bench/slurm-local.sh" stop "$work/slurm" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# stats, seq_runs
. "$root/bench/timing.sh"

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
      awk -v a="$s" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.6f\n", b - a }' >>"$out"
    ) &
  done
  wait
  awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.4f", b - a }'
}

bench_trainyard() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$build" -s "$work/ty" -c "$cpus" >/dev/null
  until "$trainctl" nodes --json 2>/dev/null | grep -q '"UP"'; do sleep 0.1; done
  "$rlaunch" -- true # warm-up: first connection, page cache
  log "trainyard: $runs sequential launches"
  seq_runs "$work/ty.seq" "$rlaunch" -- true
  log "trainyard: $conc concurrent launches"
  ty_wall=$(conc_runs "$work/ty.conc" "$rlaunch" -- true)
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/ty" >/dev/null
}

bench_slurm() {
  "$root/bench/slurm-local.sh" start "$work/slurm" "$cpus"
  export SLURM_CONF="$work/slurm/slurm.conf"
  srun -n1 true # warm-up
  log "slurm: $runs sequential launches"
  seq_runs "$work/sl.seq" srun -n1 true
  log "slurm: $conc concurrent launches"
  sl_wall=$(conc_runs "$work/sl.conc" srun -n1 true)
  unset SLURM_CONF
}

bench_trainyard
bench_slurm

read -r ty_med ty_p90 ty_max < <(stats "$work/ty.seq")
read -r sl_med sl_p90 sl_max < <(stats "$work/sl.seq")
read -r tyc_med tyc_p90 tyc_max < <(stats "$work/ty.conc")
read -r slc_med slc_p90 slc_max < <(stats "$work/sl.conc")
ratio() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.1f", s / t }'; }
ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
cat <<TABLE
| launch of \`true\`, start to exit ($cpus CPUs, one node) | rlaunch (ms) | srun $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null) (ms) | srun / rlaunch |
| --- | --- | --- | --- |
| $runs sequential, median | $(ms "$ty_med") | $(ms "$sl_med") | $(ratio "$sl_med" "$ty_med") |
| $runs sequential, p90 | $(ms "$ty_p90") | $(ms "$sl_p90") | $(ratio "$sl_p90" "$ty_p90") |
| $runs sequential, max | $(ms "$ty_max") | $(ms "$sl_max") | $(ratio "$sl_max" "$ty_max") |
| $conc concurrent, each: median | $(ms "$tyc_med") | $(ms "$slc_med") | $(ratio "$slc_med" "$tyc_med") |
| $conc concurrent, each: p90 | $(ms "$tyc_p90") | $(ms "$slc_p90") | $(ratio "$slc_p90" "$tyc_p90") |
| $conc concurrent, all done (wall) | $(ms "$ty_wall") | $(ms "$sl_wall") | $(ratio "$sl_wall" "$ty_wall") |
TABLE
