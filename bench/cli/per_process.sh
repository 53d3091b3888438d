#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What one trainctl process costs (issue 20 item 3; issue 15's submit loop):
# `trainctl ls` with 1,000 pending jobs (one folded array) and `trainctl
# submit --command -- true`, for two trainctl binaries side by side (A, B;
# e.g. before and after a change), against one traind (--auth none, no
# workers, so every job stays pending), and `true` for the floor. Per
# command: shared libraries, system calls (strace -f), instructions in user
# space (valgrind's callgrind, dynamic loader included: insensitive to
# load), and CPU time and page faults (perf stat -r RUNS, the sides
# interleaved ROUNDS times, on one CPU with taskset). The load average is
# printed beside the table.
# TY_B_SOCKET=1: B reaches each traind on its local Unix socket (issue 20),
# A over TCP ($TRAINYARD_SOCKET=none), so one binary can be both sides.
#   TY_BUILDDIR=build [TY_B_SOCKET=1] bench/cli/per_process.sh A_TRAINCTL B_TRAINCTL [RUNS] [ROUNDS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${TY_BUILDDIR:-$root/build}" && pwd)
a=$(realpath "$1") b=$(realpath "$2")
runs=${3:-200}
rounds=${4:-2}
for tool in strace perf valgrind taskset; do
  command -v $tool >/dev/null || { echo "per_process: $tool is needed" >&2; exit 77; }
done
work=$(mktemp -d /tmp/trainyard-ctlcost-XXXXXX)
tpids=()
cleanup() { for p in "${tpids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

# start_traind NAME: a traind in $work/NAME, its address in $work/NAME.addr;
# one for the listing, one for the submits (whose jobs would otherwise grow
# what ls lists from round to round).
start_traind() {
  "$build/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$work/$1" \
    --port-file "$work/$1.ports" --auth none --log-level warn 2>"$work/$1.log" &
  tpids+=($!)
  while [ ! -s "$work/$1.ports" ]; do
    kill -0 "$!" 2>/dev/null || { echo "traind did not start: $(tail -1 "$work/$1.log")" >&2; exit 1; }
    sleep 0.05
  done
  echo "127.0.0.1:$(sed -n 's/^rpc=//p' "$work/$1.ports")" >"$work/$1.addr"
}
start_traind ls
start_traind submit
ls_ctl=$(cat "$work/ls.addr") sub_ctl=$(cat "$work/submit.addr")
"$b" --controller "$ls_ctl" submit --quiet --array 0-999 --command -- true >/dev/null
[ "$("$b" --controller "$ls_ctl" ls --array --noheader | wc -l)" -ge 1000 ] ||
  { echo "per_process: 1,000 pending missing" >&2; exit 1; }

syscalls() { strace -f -o "$work/trace" "$@" >/dev/null; wc -l <"$work/trace"; }
instructions() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 >/dev/null |
    sed -n 's/.*Collected : \([0-9]*\).*/\1/p'
}
cpu() { # -> "CPU_MS PAGE_FAULTS"
  taskset -c 1 perf stat -x, -r "$runs" -e task-clock,page-faults "$@" 2>&1 >/dev/null |
    awk -F, '$3 == "task-clock" { t = $1 } $3 == "page-faults" { p = $1 } END { printf "%.3f %d", t, p }'
}
cases=("--controller $ls_ctl ls" "--controller $sub_ctl submit --quiet --command -- true")
names=(ls submit) # the traind of each case, for its socket
sock() { # CASE_INDEX SIDE -> the TRAINYARD_SOCKET for it
  if [ "$2" = B ] && [ "${TY_B_SOCKET:-}" = 1 ]; then echo "$work/${names[$1]}/traind.sock"; else echo none; fi
}
echo "| trainctl | command | shared libraries | system calls | instructions (callgrind) | CPU ms (perf stat -r $runs) | page faults |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
for i in "${!cases[@]}"; do
  c=${cases[$i]}
  read -ra args <<<"$c"
  for side in A B; do
    bin=$a; [ $side = B ] && bin=$b
    export TRAINYARD_SOCKET; TRAINYARD_SOCKET=$(sock "$i" $side)
    echo "| $side$([ "$TRAINYARD_SOCKET" = none ] || echo ' (socket)') | ${c#--controller * } | $(ldd "$bin" 2>/dev/null | grep -c '=>' || true) | $(syscalls "$bin" "${args[@]}") | $(instructions "$bin" "${args[@]}") | - | - |"
  done
done
echo "| - | true (the floor) | $(ldd /bin/true | grep -c '=>') | $(syscalls true) | $(instructions /bin/true) | - | - |"
for r in $(seq 1 "$rounds"); do
  for i in "${!cases[@]}"; do
    c=${cases[$i]}
    read -ra args <<<"$c"
    for side in A B; do
      bin=$a; [ $side = B ] && bin=$b
      export TRAINYARD_SOCKET; TRAINYARD_SOCKET=$(sock "$i" $side)
      read -r ms pf <<<"$(cpu "$bin" "${args[@]}")"
      echo "| $side, round $r | ${c#--controller * } | - | - | - | $ms | $pf |"
    done
  done
  read -r ms pf <<<"$(cpu /bin/true)"
  echo "| -, round $r | true (the floor) | - | - | - | $ms | $pf |"
done
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
