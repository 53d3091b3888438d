#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Two builds of Trainyard side by side in one run (issues 15 and 20): for
# each build, a fresh one-node cluster advertising 64 CPUs (as
# slurm_scale.sh), then
#   1. an array 0-(N-1) of `true`: the submit, and the time until every
#      element has completed (from the submission's start)
#   2. `trainctl ls` with the N elements pending behind a job holding every
#      CPU: median wall time of RUNS, and trainctl's CPU time and page faults
#      (perf stat -r RUNS)
# The builds alternate ROUNDS times (A, B, A, B, ...), so load from other
# work on the machine falls on both. Prints one markdown row per round and
# build. A build directory needs daemon/traind, worker/trainworkerd,
# worker/trainyard-exec and cli/trainctl.
#
#   bench/cluster/before_after.sh BUILD_A BUILD_B [N] [ROUNDS] [RUNS]
set -euo pipefail
. "$(dirname "$0")/ab_cluster.sh"
ab_setup before-after 17870 "$0 BUILD_A BUILD_B [N] [ROUNDS] [RUNS]" "$@"
n=${3:-1000}
rounds=${4:-2}
runs=${5:-20}
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)"; exit 77; }

# one BUILD LABEL: one round of both measures on a fresh cluster of BUILD.
one() {
  local label=$2 ctl="$1/cli/trainctl" t0 submit complete left
  ab_start "$1" "$label"
  t0=$EPOCHREALTIME
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  submit=$(elapsed "$t0")
  left=$(drain_wait ab_active)
  complete=$(elapsed "$t0")
  "$ctl" submit --quiet --command --cpus 64 -- sleep 600 >/dev/null
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  seq_runs "$work/ls" "$ctl" ls
  local ps cpu faults
  ps=$(perf stat -r "$runs" "$ctl" ls 2>&1 >/dev/null)
  cpu=$(awk '/task-clock/ { print $1 }' <<<"$ps")
  faults=$(awk '/page-faults/ { print $1 }' <<<"$ps")
  ab_stop
  printf '| %s | %.3f | %.3f%s | %.2f | %s | %s |\n' "$label" "$submit" "$complete" \
    "$([ "$left" -gt 0 ] && echo " ($left unfinished at cap)")" \
    "$(awk '{ print $1 * 1000 }' <<<"$(stats "$work/ls" | cut -d' ' -f1)")" "$cpu" "$faults"
}

echo "| build | array 0-$((n - 1)) submit (s) | all completed (s) | ls, $n pending: median ms of $runs | ls CPU ms (perf stat) | ls page faults |"
echo "| --- | --- | --- | --- | --- | --- |"
ab_rounds "$rounds"
