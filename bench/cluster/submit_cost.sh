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
# shellcheck source=bench/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init submit-cost 17890

# one BUILD LABEL: prints "instructions seconds" (LABEL names its state dir).
one() {
  local build=$1 ctl="$1/cli/trainctl" s="$work/$2" t0 secs
  start_cluster "$build" "$s" valgrind --tool=callgrind --callgrind-out-file="$s/cg.%p"
  "$ctl" submit --quiet --command --cpus 64 -- sleep 600 >/dev/null
  until "$ctl" ls --state RUNNING --json | grep -q '"id"'; do sleep 0.2; done
  "$ctl" submit --quiet --array "0-$((pending - 1))" --command -- true >/dev/null
  sleep 3 # the passes over the new backlog
  callgrind_control -z "$tpid" >/dev/null 2>&1
  t0=$EPOCHREALTIME
  for _ in $(seq 1 "$k"); do "$ctl" submit --quiet --command -- true >/dev/null; done
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  local ir
  ir=$(callgrind_count "$tpid" "$s" "/tmp/submit-cost.$2.callgrind")
  stop_cluster
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
