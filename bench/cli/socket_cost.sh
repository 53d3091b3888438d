#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What a client request costs the controller, over TCP with MUNGE against
# the local Unix socket (issue 20): one traind under callgrind, --auth
# munge with a private munged (bench/slurm-local.sh munged), an array of
# 1,000 pending (no worker), then N `trainctl ls` and N `trainctl submit
# --command -- true` each way. traind's counters are zeroed before each
# batch and dumped after it (callgrind_control), so the count is the
# batch's plus the 1 s ticks that fell in its window (their number is
# about the window's seconds, printed). munged's CPU time for the batch
# comes from /proc (utime + stime, in clock ticks): the decode the socket
# saves is munged's work too, not only traind's. An idle window first
# measures the ticks' instructions per second, taken out in a column of
# their own. Instruction counts do not
# move with the machine's load; the CPU times do, coarsely.
#   TY_BUILDDIR=build bench/cli/socket_cost.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${TY_BUILDDIR:-$root/build}" && pwd)
n=${1:-100}
command -v callgrind_control >/dev/null || { echo "socket_cost: valgrind is needed" >&2; exit 77; }
work=$(mktemp -d /tmp/trainyard-sockcost-XXXXXX)
tpid=
cleanup() {
  [ -n "$tpid" ] && kill "$tpid" 2>/dev/null
  "$root/bench/slurm-local.sh" stop "$work/m" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
ctl=$build/cli/trainctl

"$root/bench/slurm-local.sh" munged "$work/m" >/dev/null
export TRAINYARD_MUNGE_SOCKET=$work/m/munge/munge.socket
mpid=$(cat "$work/m/munge/munged.pid")
valgrind --tool=callgrind --callgrind-out-file="$work/cg.%p" "$build/daemon/traind" \
  --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$work/ty" \
  --port-file "$work/ty.ports" --auth munge --munge-socket "$TRAINYARD_MUNGE_SOCKET" \
  --log-level warn 2>"$work/traind.log" &
tpid=$!
for _ in $(seq 1 3000); do [ -s "$work/ty.ports" ] && break; sleep 0.02; done
[ -s "$work/ty.ports" ] || { echo "socket_cost: traind did not start" >&2; exit 1; }
export TRAINYARD_CONTROLLER=127.0.0.1:$(sed -n 's/^rpc=//p' "$work/ty.ports")
sock=$work/ty/traind.sock
TRAINYARD_SOCKET=none "$ctl" submit --quiet --array 0-999 --command -- true >/dev/null
sleep 2

ticks() { awk '{ print $14 + $15 }' "/proc/$mpid/stat"; }
# batch LABEL SOCKET ARGS... -> one table row
batch() {
  local label=$1 s=$2 t0 m0 dump ir secs; shift 2
  callgrind_control -z "$tpid" >/dev/null 2>&1
  m0=$(ticks) t0=$EPOCHREALTIME
  for _ in $(seq 1 "$n"); do TRAINYARD_SOCKET=$s "$ctl" "$@" >/dev/null; done
  secs=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
  local m1; m1=$(ticks)
  callgrind_control -d "$tpid" >/dev/null 2>&1
  dump=$(find "$work" -name "cg.$tpid*" -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
  ir=$(awk '/^summary:|^totals:/ { print $2; exit }' "$dump")
  local hz; hz=$(getconf CLK_TCK)
  echo "| $label | $n | $((ir / n)) | $(awk -v ir="$ir" -v s="$secs" -v p="$per_s" -v n="$n" 'BEGIN { printf "%d", (ir - s * p) / n }') | $(awk -v t=$((m1 - m0)) -v hz="$hz" -v n="$n" 'BEGIN { printf "%.3f", t * 1000 / hz / n }') | $secs |"
}
# idle SECONDS -> traind's instructions per second with no request (its
# ticks: a pass over the 1,000 pending each), to take out of the rows.
idle() {
  callgrind_control -z "$tpid" >/dev/null 2>&1
  sleep "$1"
  callgrind_control -d "$tpid" >/dev/null 2>&1
  local dump
  dump=$(find "$work" -name "cg.$tpid*" -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
  echo $(($(awk '/^summary:|^totals:/ { print $2; exit }' "$dump") / $1))
}
per_s=$(idle 5)
echo "| requests | count | traind instructions per request | the same less the ticks' ($per_s/s) | munged CPU ms per request | window (s) |"
echo "| --- | --- | --- | --- | --- | --- |"
batch "ls, TCP + MUNGE" none ls
batch "ls, local socket" "$sock" ls
batch "submit, TCP + MUNGE" none submit --quiet --command -- true
batch "submit, local socket" "$sock" submit --quiet --command -- true
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
