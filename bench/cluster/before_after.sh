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
root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [N] [ROUNDS] [RUNS]" >&2; exit 2; }
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
n=${3:-1000}
rounds=${4:-2}
runs=${5:-20}
port=${TRAINYARD_PORT:-17870}
work=$(mktemp -d /tmp/trainyard-ab-XXXXXX)
export TRAINYARD_CONTROLLER=127.0.0.1:$port
export TY_BENCH_DRAIN_CAP_S=${TY_BENCH_DRAIN_CAP_S:-600}
state=

log() { echo "before-after: $*" >&2; }
stop() {
  [ -n "$state" ] && TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$state" >/dev/null 2>&1
  state=
}
cleanup() {
  stop || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$root/bench/timing.sh" # stats, elapsed, seq_runs, drain_wait
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)"; exit 77; }

# one BUILD LABEL: one round of both measures on a fresh cluster of BUILD.
one() {
  local build=$1 label=$2 ctl="$1/cli/trainctl" t0 submit complete left
  state="$work/$label.$RANDOM"
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$build" -s "$state" -c 64 >/dev/null
  until "$ctl" nodes --json | grep -q '"UP"'; do sleep 0.1; done
  active() { "$ctl" ls --array --state PENDING,RUNNING --json | grep -c '"id"' || true; }
  t0=$EPOCHREALTIME
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  submit=$(elapsed "$t0")
  left=$(drain_wait active)
  complete=$(elapsed "$t0")
  "$ctl" submit --quiet --command --cpus 64 -- sleep 600 >/dev/null
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  seq_runs "$work/ls" "$ctl" ls
  local ps cpu faults
  ps=$(perf stat -r "$runs" "$ctl" ls 2>&1 >/dev/null)
  cpu=$(awk '/task-clock/ { print $1 }' <<<"$ps")
  faults=$(awk '/page-faults/ { print $1 }' <<<"$ps")
  stop
  printf '| %s | %.3f | %.3f%s | %.2f | %s | %s |\n' "$label" "$submit" "$complete" \
    "$([ "$left" -gt 0 ] && echo " ($left unfinished at cap)")" \
    "$(awk '{ print $1 * 1000 }' <<<"$(stats "$work/ls" | cut -d' ' -f1)")" "$cpu" "$faults"
}

echo "| build | array 0-$((n - 1)) submit (s) | all completed (s) | ls, $n pending: median ms of $runs | ls CPU ms (perf stat) | ls page faults |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in $(seq 1 "$rounds"); do
  log "round $r"
  one "$a" A
  one "$b" B
done
