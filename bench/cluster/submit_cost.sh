#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The controller's instructions per submit with a backlog (issue 15's loop
# case), two builds side by side: for each build, traind under callgrind
# (valgrind) with one worker advertising 64 CPUs, a job holding all 64,
# an array of PENDING elements behind it, then K single `trainctl submit`s
# one after the other. traind's counters are zeroed before the submits and
# dumped after them (callgrind_control), so the count is what K submits
# cost, plus the 1 s ticks that fell in that window (each a pass over the
# backlog; their number is printed). Instruction counts do not move with
# the machine's load, unlike times. Prints one markdown row per build.
#
#   bench/cluster/submit_cost.sh BUILD_A BUILD_B [PENDING] [K]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [PENDING] [K]" >&2; exit 2; }
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
pending=${3:-1000}
k=${4:-100}
port=${TRAINYARD_PORT:-17890}
work=$(mktemp -d /tmp/trainyard-submit-cost-XXXXXX)
export TRAINYARD_CONTROLLER=127.0.0.1:$port
pids=()
command -v callgrind_control >/dev/null || { echo "valgrind is needed"; exit 77; }

cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

wait_file() {
  for _ in $(seq 1 3000); do [ -s "$1" ] && return 0; sleep 0.02; done
  echo "submit-cost: $1 did not appear" >&2; return 1
}

# one BUILD LABEL: prints "instructions seconds" (LABEL names its state dir).
one() {
  local build=$1 ctl="$1/cli/trainctl" s="$work/$2" t0 secs
  mkdir -p "$s"
  echo "auth.nodes = worker1" >"$s/traind.conf"
  valgrind --tool=callgrind --callgrind-out-file="$s/cg.%p" \
    "$build/daemon/traind" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
    --state-dir "$s/traind" --port-file "$s/traind.ports" --config "$s/traind.conf" \
    --auth none >"$s/traind.log" 2>&1 &
  local tpid=$!
  pids+=("$tpid")
  wait_file "$s/traind.ports"
  "$build/worker/trainworkerd" --controller "127.0.0.1:$port" --name worker1 \
    --cgroup-name "trainyard-$port-worker1" --state-dir "$s/worker1" --io-listen 127.0.0.1:0 \
    --metrics-listen "127.0.0.1:$((port + 21))" --port-file "$s/worker1.ports" --auth none \
    --cpus 64 >"$s/worker1.log" 2>&1 &
  local wpid=$!
  pids+=("$wpid")
  until "$ctl" nodes --json | grep -q '"UP"'; do sleep 0.2; done
  "$ctl" submit --quiet --command --cpus 64 -- sleep 600 >/dev/null
  until "$ctl" ls --state RUNNING --json | grep -q '"id"'; do sleep 0.2; done
  "$ctl" submit --quiet --array "0-$((pending - 1))" --command -- true >/dev/null
  sleep 3 # the passes over the new backlog
  callgrind_control -z "$tpid" >/dev/null 2>&1
  t0=$EPOCHREALTIME
  for _ in $(seq 1 "$k"); do "$ctl" submit --quiet --command -- true >/dev/null; done
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  callgrind_control -d "$tpid" >/dev/null 2>&1
  local dump
  dump=$(find "$s" -name "cg.$tpid*" -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
  cp "$dump" "/tmp/submit-cost.$2.callgrind" 2>/dev/null || true # for callgrind_annotate
  local ir
  ir=$(awk '/^summary:|^totals:/ { print $2; exit }' "$dump")
  kill "$wpid" "$tpid" 2>/dev/null || true
  wait "$wpid" "$tpid" 2>/dev/null || true
  echo "$ir $secs"
}

echo "| build | pending | submits | traind instructions | per submit | window (s, ~1 tick pass each) |"
echo "| --- | --- | --- | --- | --- | --- |"
for label in A B; do
  build=$a
  [ "$label" = B ] && build=$b
  read -r ir secs < <(one "$build" "$label")
  echo "| $label | $pending | $k | $ir | $((ir / k)) | $secs |"
done
