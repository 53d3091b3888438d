#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A pending array as one stored record (issue 15): two builds of traind side
# by side in one run, alternating ROUNDS times (A, B, A, B, ...) so load from
# other work on the machine falls on both. Per build and round, a fresh
# traind with no worker (every element stays pending), then
#   1. an array of N elements of `true`: the submit's wall time (trainctl,
#      one RPC answered once durable) and traind's CPU time for it
#      (utime + stime from /proc, which load changes less than wall time)
#   2. an array of BIG elements the same way, then after 3 s of scheduling
#      passes traind's resident memory (VmRSS) and its mean pass time
#      (trainyard_scheduler_pass_duration_seconds: sum / count)
#   3. the state database's size (traind.db plus its WAL)
# Prints one markdown row per round and build, with the load average.
# A build directory needs daemon/traind and cli/trainctl.
#
#   bench/cluster/array_record.sh BUILD_A BUILD_B [N] [BIG] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [N] [BIG] [ROUNDS]" >&2; exit 2; }
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
n=${3:-1000}
big=${4:-100000}
rounds=${5:-3}
port=${TRAINYARD_PORT:-17890}
work=$(mktemp -d /tmp/trainyard-arr-XXXXXX)
export TRAINYARD_CONTROLLER=127.0.0.1:$port
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
. "$root/bench/timing.sh" # elapsed
log() { echo "array-record: $*" >&2; }

hz=$(getconf CLK_TCK)
cpu_ms() { awk -v hz="$hz" '{ printf "%d\n", ($14 + $15) * 1000 / hz }' "/proc/$1/stat"; }
rss_mb() { awk '/VmRSS/ { printf "%.1f\n", $2 / 1024 }' "/proc/$1/status"; }
pass_ms() {
  curl -s "http://127.0.0.1:$((port + 1))/metrics" | awk '
    /^trainyard_scheduler_pass_duration_seconds_sum/ { s = $2 }
    /^trainyard_scheduler_pass_duration_seconds_count/ { c = $2 }
    END { if (c > 0) printf "%.3f (%d passes)\n", s / c * 1000, c; else print "-" }'
}

# submit BUILD COUNT -> "wall_s cpu_ms" of one array submit of COUNT elements.
submit() {
  local c0 t0
  c0=$(cpu_ms "$pid")
  t0=$EPOCHREALTIME
  "$1/cli/trainctl" submit --quiet --array "0-$(($2 - 1))" --command -- true >/dev/null
  echo "$(elapsed "$t0") $(($(cpu_ms "$pid") - c0))"
}

# one BUILD LABEL: one round on a fresh traind of BUILD.
one() {
  local build=$1 label=$2 state small large load
  state="$work/$label.$RANDOM"
  mkdir -p "$state"
  load=$(cut -d' ' -f1 /proc/loadavg)
  # Both arrays are one user's: past the default --max-user-jobs, where a
  # build has the flag.
  local cap=()
  "$build/daemon/traind" --help | grep -q -- --max-user-jobs && cap=(--max-user-jobs none)
  "$build/daemon/traind" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
    --state-dir "$state" --port-file "$state/ports" --auth none "${cap[@]}" >"$state/log" 2>&1 &
  pid=$!
  until [ -s "$state/ports" ]; do sleep 0.05; done
  small=$(submit "$build" "$n")
  large=$(submit "$build" "$big")
  sleep 3
  local db
  db=$(du -cb "$state"/traind.db* | tail -1 | awk '{ printf "%.1f", $1 / 1048576 }')
  echo "| $label | $load | ${small% *} | ${small#* } | ${large% *} | ${large#* } | $(rss_mb "$pid") | $(pass_ms) | $db |"
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=
}

echo "| build | load avg (1 min) | submit $n (s) | traind CPU for it (ms) | submit $big (s) | traind CPU for it (ms) | traind RSS after (MiB) | mean pass (ms) | state db + WAL (MiB) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for r in $(seq 1 "$rounds"); do
  log "round $r"
  one "$a" A
  one "$b" B
done
