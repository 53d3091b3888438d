#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The worker's instructions and system calls per short task (issue 15), two
# builds one after the other: for each build, traind and one worker
# advertising 64 CPUs (--auth none), then an array 0-(N-1) of `true`.
#   - instructions: trainworkerd under callgrind (--trace-children=no: the
#     worker's own user-space work, not the tasks'), the count zeroed before
#     the submit and dumped once every element completed;
#   - system calls: a second run with `strace -c -f` attached to the worker
#     (its children included: the start of each task up to its exec, and
#     the task itself).
# Prints one markdown row per build. TY_BENCH_KEEP=PREFIX keeps each
# build's callgrind file as PREFIX.A.callgrind, PREFIX.B.callgrind.
#
#   bench/cluster/worker_instr.sh BUILD_A BUILD_B [N]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [N]" >&2; exit 2; }
a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
n=${3:-300}
# shellcheck source=bench/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init worker-instr 17950
command -v strace >/dev/null || { echo "strace is needed"; exit 77; }

# start BUILD DIR [WRAPPER...]: traind and the worker (under WRAPPER); sets tpid, wpid.
start() {
  start_traind "$1" "$2"
  start_worker "$@"
}

# The worker first: traind must not see it lost.
stop() {
  kill "$wpid" 2>/dev/null || true
  wait "$wpid" 2>/dev/null || true
  kill "$tpid" 2>/dev/null || true
  wait "$tpid" 2>/dev/null || true
}

# run_array BUILD: the array, until no element is pending or running.
run_array() {
  local ctl="$1/cli/trainctl"
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  until [ "$("$ctl" ls --array --state PENDING,RUNNING --json | grep -c '"id"' || true)" = 0 ]; do
    sleep 0.5
  done
}

# instructions BUILD LABEL: the worker's instructions for the array, into $work/LABEL.ir.
instructions() {
  local s="$work/$2-cg"
  start "$1" "$s" valgrind --tool=callgrind --trace-children=no --callgrind-out-file="$s/cg.%p"
  sleep 2
  callgrind_control -z "$wpid" >/dev/null 2>&1
  run_array "$1"
  local keep=
  if [ -n "${TY_BENCH_KEEP:-}" ]; then keep=$TY_BENCH_KEEP.$2.callgrind; fi
  callgrind_count "$wpid" "$s" "$keep" >"$work/$2.ir"
  stop
}

# syscalls BUILD LABEL: the system calls of the worker and its children, into $work/LABEL.sc.
syscalls() {
  local s="$work/$2-st"
  start "$1" "$s"
  strace -c -f -p "$wpid" -o "$s/strace.txt" 2>/dev/null &
  local spid=$!
  sleep 1
  run_array "$1"
  sleep 1
  kill -INT "$spid"
  wait "$spid" 2>/dev/null || true
  stop
  awk '$NF == "total" { print $(NF - 2) }' "$s/strace.txt" >"$work/$2.sc"
}

echo "| build | tasks | worker instructions (callgrind) | per task | system calls, children included (strace -c -f) | per task |"
echo "| --- | --- | --- | --- | --- | --- |"
for label in A B; do
  build=$a
  [ "$label" = B ] && build=$b
  instructions "$build" "$label"
  syscalls "$build" "$label"
  ir=$(cat "$work/$label.ir") sc=$(cat "$work/$label.sc")
  echo "| $label | $n | $ir | $((ir / n)) | $sc | $((sc / n)) |"
done
