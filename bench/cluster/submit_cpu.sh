#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The controller's CPU per submit and per array element (issue 15's submit
# goals), builds side by side: for each build and round, a local cluster
# (deploy/cluster.sh, one worker, --auth none, trainctl on traind's local
# socket), then traind's task-clock (perf stat -p: user and system CPU of
# all its threads, not wall time) over
#   - K held submits from one loop (`trainctl submit --hold`, so nothing
#     runs and no task start or end is counted),
#   - K held submits from 8 concurrent loops (the group commit shares
#     syncs), and
#   - one held array of N elements (counted until 0.3 s after its answer).
# CPU time, not wall time, is the measure on a shared machine; it still
# moves with the load (caches, the other sessions), so run several rounds
# and compare medians. Prints one markdown row per build and round.
#
#   TRAINYARD_PORT=P bench/cluster/submit_cpu.sh BUILD [BUILD...] [-- K N ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
builds=()
while [ $# -gt 0 ] && [ "$1" != -- ]; do builds+=("$(cd "$1" && pwd)"); shift; done
[ "${1:-}" = -- ] && shift
k=${1:-400} n=${2:-10000} rounds=${3:-3}
[ ${#builds[@]} -ge 1 ] || { echo "usage: $0 BUILD [BUILD...] [-- K N ROUNDS]" >&2; exit 2; }
command -v perf >/dev/null || { echo "perf is needed"; exit 77; }
port=${TRAINYARD_PORT:-17960}
work=$(mktemp -d "/tmp/trainyard-submit-cpu-XXXXXX")
s=$work/state
trap 'TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$s" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

# task_clock_us FILE: perf stat -x, output's task-clock in microseconds.
task_clock_us() { awk -F, '/task-clock/ { printf "%.0f", $1 * 1000 }' "$1"; }

# submits CTL LOOPS: K held submits from LOOPS concurrent loops.
submits() {
  local pids=()
  for _ in $(seq 1 "$2"); do
    (for _ in $(seq 1 $((k / $2))); do "$1" submit --quiet --hold --command -- true >/dev/null; done) &
    pids+=($!)
  done
  wait "${pids[@]}" # not perf stat, which runs until told
}

# one BUILD: prints "seq_us loops_us element_ns" of traind's CPU.
one() {
  local ctl="$1/cli/trainctl" tp out=() loops p
  rm -rf "$s"
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$1" -s "$s" -a none >/dev/null
  tp=$(cat "$s/pids/traind.pid")
  export TRAINYARD_SOCKET=$s/traind/traind.sock TRAINYARD_CONTROLLER=127.0.0.1:$port
  "$ctl" submit --quiet --hold --command -- true >/dev/null
  sleep 1
  for loops in 1 8; do
    perf stat -e task-clock -x, -p "$tp" -o "$work/p" & p=$!
    sleep 0.3
    submits "$ctl" "$loops"
    kill -INT "$p"; wait "$p" || true
    out+=($(($(task_clock_us "$work/p") / k)))
  done
  perf stat -e task-clock -x, -p "$tp" -o "$work/p" & p=$!
  sleep 0.3
  "$ctl" submit --quiet --hold --array "0-$((n - 1))" --command -- true >/dev/null
  sleep 0.3
  kill -INT "$p"; wait "$p" || true
  out+=($(($(task_clock_us "$work/p") * 1000 / n)))
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$s" >/dev/null
  echo "${out[@]}"
}

echo "| round | build | load (1 min) | traind CPU per submit, 1 loop (us) | per submit, 8 loops (us) | per array element (ns) |"
echo "| --- | --- | --- | --- | --- | --- |"
for r in $(seq 1 "$rounds"); do
  for b in "${builds[@]}"; do
    read -r seq loops elem < <(one "$b")
    echo "| $r | $b | $(cut -d' ' -f1 /proc/loadavg) | $seq | $loops | $elem |"
  done
done
