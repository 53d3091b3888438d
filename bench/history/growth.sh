#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# The controller's cost as history grows (issue 15): for each size, a state
# directory with that many finished jobs and 1,000 pending ones (written by
# history_fill through the store's code), then traind on it alone: its RSS
# after start, the mean scheduling pass (from /metrics), `trainctl ls`
# (the 1,000 pending, median of 10) and `trainctl history --all-users
# --state completed --limit 1000` (median of 5). Goal: flat in history.
# Usage: TY_BUILDDIR=build bench/history/growth.sh [SIZES...]
set -eu
B=${TY_BUILDDIR:-build}
SIZES=${*:-0 10000 100000 1000000}
PENDING=1000
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

ms() { date +%s%N | cut -c1-13; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
timed() { # N CMD...: the median wall clock of N runs, in ms
  n=$1; shift
  for _ in $(seq "$n"); do t0=$(ms); "$@" >/dev/null; echo $(( $(ms) - t0 )); done | median
}
metric() { curl -s "http://127.0.0.1:$mport/metrics" | awk -v m="$1" '$1 == m {print $2}'; }

printf '| finished jobs | fill (s) | traind RSS (MiB) | start (ms) | pass mean (ms) | ls 1000 pending (ms) | history of 1000 ended (ms) |\n'
printf '| --- | --- | --- | --- | --- | --- | --- |\n'
for n in $SIZES; do
  dir=$tmp/state-$n
  t0=$(ms); nice "$B/bench/history/history_fill" "$dir" "$n" "$PENDING"; fill=$(( $(ms) - t0 ))
  rm -f "$tmp/ports"
  t0=$(ms)
  "$B/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$dir" \
    --port-file "$tmp/ports" --log-level warn 2>"$tmp/traind-$n.log" &
  pid=$!
  while [ ! -s "$tmp/ports" ]; do sleep 0.05; done
  start=$(( $(ms) - t0 ))
  port=$(sed -n 's/^rpc=//p' "$tmp/ports"); mport=$(sed -n 's/^metrics=//p' "$tmp/ports")
  export TRAINYARD_CONTROLLER=127.0.0.1:$port
  sleep 3 # a few ticks and passes
  rss=$(awk '/VmRSS/ {printf "%.1f", $2 / 1024}' /proc/$pid/status)
  sum=$(metric trainyard_scheduler_pass_duration_seconds_sum)
  cnt=$(metric trainyard_scheduler_pass_duration_seconds_count)
  pass=$(awk -v s="$sum" -v c="$cnt" 'BEGIN {printf "%.3f", c ? s / c * 1000 : 0}')
  ls=$(timed 10 "$B/cli/trainctl" ls)
  hist=$(timed 5 "$B/cli/trainctl" history --all-users --state completed --limit 1000)
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
  printf '| %s | %.1f | %s | %s | %s (%s passes) | %s | %s |\n' "$n" "$(echo "$fill / 1000" | bc -l)" \
    "$rss" "$start" "$pass" "$cnt" "$ls" "$hist"
  rm -rf "$dir"
done
