#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The worker's cost per short task, two builds side by side in one run
# (issue 15): for each build, a fresh one-node cluster advertising 64 CPUs
# (as slurm_scale.sh), an array 0-(N-1) of `true`, and
#   - the time from the submission's start until every element completed;
#   - the CPU seconds trainworkerd used meanwhile, its reaped children
#     (trainyard-exec and the tasks it became) included, and traind's;
#   - the load average at the start of the round.
# CPU seconds come from /proc/PID/stat (user + system, + children waited
# for), which load on the machine changes far less than the wall time. The
# builds alternate ROUNDS times (A, B, A, B, ...). A build directory needs
# daemon/traind, worker/trainworkerd, worker/trainyard-exec, cli/trainctl
# (links are fine: trainworkerd finds its helper next to its real path).
#
#   bench/cluster/worker_cost.sh BUILD_A BUILD_B [N] [ROUNDS]
set -euo pipefail
. "$(dirname "$0")/ab_cluster.sh"
ab_setup worker-cost 17890 "$0 BUILD_A BUILD_B [N] [ROUNDS]" "$@"
n=${3:-1000}
rounds=${4:-2}

# cpu_s PID -> seconds of CPU of PID and its reaped children (utime, stime,
# cutime, cstime: fields 14-17 of /proc/PID/stat; comm has no spaces here).
cpu_s() {
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15 + $16 + $17) / hz }' "/proc/$1/stat"
}

# one BUILD LABEL: one round on a fresh cluster of BUILD.
one() {
  local label=$2 ctl="$1/cli/trainctl" t0 complete left wpid dpid w0 d0 load
  ab_start "$1" "$label"
  wpid=$(cat "$state/pids/worker1.pid") dpid=$(cat "$state/pids/traind.pid")
  load=$(cut -d' ' -f1 /proc/loadavg)
  w0=$(cpu_s "$wpid") d0=$(cpu_s "$dpid")
  t0=$EPOCHREALTIME
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  left=$(drain_wait ab_active)
  complete=$(elapsed "$t0")
  local w1 d1
  w1=$(cpu_s "$wpid") d1=$(cpu_s "$dpid")
  ab_stop
  printf '| %s | %s | %.3f%s | %.3f | %.3f |\n' "$label" "$load" "$complete" \
    "$([ "$left" -gt 0 ] && echo " ($left unfinished at cap)")" \
    "$(awk -v a="$w0" -v b="$w1" 'BEGIN { print b - a }')" \
    "$(awk -v a="$d0" -v b="$d1" 'BEGIN { print b - a }')"
}

echo "| build | load average (1 min) | array 0-$((n - 1)) all completed (s) | trainworkerd CPU s (with children) | traind CPU s |"
echo "| --- | --- | --- | --- | --- |"
ab_rounds "$rounds"
