#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The controller's instructions per array element run to completion
# (issue 15's completion case), two builds side by side: for each build,
# traind under callgrind (valgrind) with one worker advertising 64 CPUs;
# traind's counters are zeroed, an array 0-(N-1) of `true` is submitted
# (one RPC) and, once every element has ended, the counters are dumped
# (callgrind_control). So the count is one array submit plus N placements,
# N launches and N task ends with the scheduling passes they cause, plus the
# 1 s ticks that fell in the window (printed) and a metrics scrape every
# 0.5 s (how the end is seen). Also prints the passes run
# and the jobs they visited (traind's metrics). Instruction counts do not
# move with the machine's load, unlike times. One markdown row per build.
#
#   bench/cluster/task_end_cost.sh BUILD_A BUILD_B [N]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [N]" >&2; exit 2; }
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
n=${3:-1000}
# shellcheck source=bench/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init task-end-cost 17930

# ends: runs ended so far, all queues and states.
ends() {
  curl -s "http://127.0.0.1:$((port + 1))/metrics" |
    awk '/^trainyard_job_ends_total[{ ]/ { v += $2 } END { print v + 0 }'
}

# one BUILD LABEL: prints "instructions seconds passes".
one() {
  local build=$1 ctl="$1/cli/trainctl" s="$work/$2" t0 secs p0
  start_cluster "$build" "$s" valgrind --tool=callgrind --callgrind-out-file="$s/cg.%p"
  sleep 2 # the start's passes
  p0=$(metric trainyard_scheduler_pass_duration_seconds_count)
  callgrind_control -z "$tpid" >/dev/null 2>&1
  t0=$EPOCHREALTIME
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  # (the ends counter, not `ls`: listing 1,000 changing jobs twice a
  # second would be a tenth of the count)
  until [ "$(ends)" -ge "$n" ]; do sleep 0.5; done
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  local ir passes
  ir=$(callgrind_count "$tpid" "$s" "/tmp/task-end-cost.$2.callgrind")
  passes=$(($(metric trainyard_scheduler_pass_duration_seconds_count) - p0))
  stop_cluster
  echo "$ir $secs $passes"
}

echo "| build | elements | traind instructions | per element | passes | window (s, ~1 tick pass each) |"
echo "| --- | --- | --- | --- | --- | --- |"
for label in A B; do
  build=$a
  [ "$label" = B ] && build=$b
  read -r ir secs passes < <(one "$build" "$label")
  echo "| $label | $n | $ir | $((ir / n)) | $passes | $secs |"
done
