#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `trainctl ls` against `squeue` with 1,000 pending jobs, the samples
# interleaved so that load from other work falls on every side alike
# (issue 20 item 3: ls at <= 1/5 of squeue's time). Two trainctl binaries
# (A and B, e.g. before and after a change) and squeue take turns, ROUNDS
# samples each, every sample one process from start to exit ($EPOCHREALTIME).
# Slurm: bench/slurm-local.sh's tuned profile, a job holding all 64 CPUs and
# an array of 1,000 behind it. Trainyard: one traind holding an array of
# 1,000 pending (no worker: nothing starts). Both authenticate every request
# with MUNGE through the same munged (Slurm's). Prints the medians and the ratios, with the load average,
# then the same three through hyperfine -N when it is installed.
# MODE `folded` (the default): `trainctl ls` vs `squeue` (the array on one
# line); `array`: `trainctl ls --array` vs `squeue -r` (a line per element).
# TY_B_SOCKET=1: B reaches traind on its local Unix socket (no MUNGE: the
# kernel says who it is; issue 20), A over TCP with MUNGE (TRAINYARD_SOCKET
# =none), so one binary can be both sides.
#   TY_BUILDDIR=build [TY_B_SOCKET=1] bench/cli/ls_vs_squeue.sh A_TRAINCTL B_TRAINCTL [ROUNDS] [MODE]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${TY_BUILDDIR:-$root/build}" && pwd)
a=$(realpath "$1") b=$(realpath "$2")
rounds=${3:-50}
case ${4:-folded} in
folded) ls_args=(ls) sq_args=() ;;
array) ls_args=(ls --array) sq_args=(-r) ;;
*) echo "ls_vs_squeue: MODE is folded or array, not $4" >&2; exit 2 ;;
esac
work=$(mktemp -d /tmp/trainyard-lsq-XXXXXX)
tpid=
log() { echo "ls_vs_squeue: $*" >&2; }
cleanup() {
  [ -n "$tpid" ] && kill "$tpid" 2>/dev/null
  "$root/bench/slurm-local.sh" stop "$work/slurm" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work"
. "$root/bench/timing.sh"

"$root/bench/slurm-local.sh" start "$work/slurm" 64
export SLURM_CONF="$work/slurm/slurm.conf"
export TRAINYARD_MUNGE_SOCKET=$work/slurm/munge/munge.socket
"$build/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$work/ty" \
  --port-file "$work/ty.ports" --auth munge --munge-socket "$TRAINYARD_MUNGE_SOCKET" --log-level warn 2>"$work/traind.log" &
tpid=$!
while [ ! -s "$work/ty.ports" ]; do
  kill -0 "$tpid" 2>/dev/null || { log "traind did not start: $(tail -1 "$work/traind.log")"; exit 1; }
  sleep 0.05
done
export TRAINYARD_CONTROLLER=127.0.0.1:$(sed -n 's/^rpc=//p' "$work/ty.ports")
"$b" submit --quiet --array 0-999 --command -- true >/dev/null

sbatch -c 64 -o /dev/null --wrap="sleep 600" >/dev/null
sbatch --array=0-999 -o /dev/null --wrap=true >/dev/null
[ "$(squeue -h -r | wc -l)" -ge 1000 ] || { log "slurm: pending jobs missing"; exit 1; }

sock_a=none sock_b=none
[ "${TY_B_SOCKET:-}" = 1 ] && sock_b=$work/ty/traind.sock
sample() { # OUT CMD...
  local out=$1 t0 sock=none; shift
  [ "$out" = b.t ] && sock=$sock_b
  [ "$out" = a.t ] && sock=$sock_a
  t0=$EPOCHREALTIME
  TRAINYARD_SOCKET=$sock "$@" >/dev/null || { log "failed: $*"; exit 1; }
  elapsed "$t0" >>"$out"
}
: >a.t; : >b.t; : >s.t
load0=$(cut -d' ' -f1-3 /proc/loadavg)
for i in $(seq 1 "$rounds"); do
  case $((i % 3)) in # rotate the order, so no side always follows another
  0) sample a.t "$a" "${ls_args[@]}"; sample b.t "$b" "${ls_args[@]}"; sample s.t squeue "${sq_args[@]}" ;;
  1) sample b.t "$b" "${ls_args[@]}"; sample s.t squeue "${sq_args[@]}"; sample a.t "$a" "${ls_args[@]}" ;;
  2) sample s.t squeue "${sq_args[@]}"; sample a.t "$a" "${ls_args[@]}"; sample b.t "$b" "${ls_args[@]}" ;;
  esac
done
ma=$(stats a.t | cut -d' ' -f1) mb=$(stats b.t | cut -d' ' -f1) ms=$(stats s.t | cut -d' ' -f1)
ratio() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.2f", s / t }'; }
echo "| 1,000 pending, $rounds interleaved samples each | median (s) | p90 (s) | squeue / this |"
echo "| --- | --- | --- | --- |"
echo "| trainctl ${ls_args[*]}, A (TCP+MUNGE) | $ma | $(stats a.t | cut -d' ' -f2) | $(ratio "$ms" "$ma") |"
label_b="TCP+MUNGE"; [ "$sock_b" = none ] || label_b="local socket"
echo "| trainctl ${ls_args[*]}, B ($label_b) | $mb | $(stats b.t | cut -d' ' -f2) | $(ratio "$ms" "$mb") |"
echo "| squeue ${sq_args[*]} (Slurm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null)) | $ms | $(stats s.t | cut -d' ' -f2) | 1.00 |"
echo "load average: $load0 before, $(cut -d' ' -f1-3 /proc/loadavg) after"
# The same three again through hyperfine -N (no shell; its spawn costs each
# side less than bash's fork, which belongs to neither command): medians.
command -v hyperfine >/dev/null || exit 0
hyperfine -N --style none --warmup 5 --runs "$rounds" --export-json hf.json \
  "$a --socket $sock_a ${ls_args[*]}" "$b --socket $sock_b ${ls_args[*]}" \
  "squeue ${sq_args[*]}" >/dev/null
/usr/bin/python3 - hf.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"]
sq = r[2]["median"]
print("| hyperfine -N, %d runs each | median (s) | squeue / this |" % len(r[0]["times"]))
print("| --- | --- | --- |")
for label, x in zip(("trainctl ls, A", "trainctl ls, B", "squeue"), r):
    print("| %s | %.6f | %.2f |" % (label, x["median"], sq / x["median"]))
PY
