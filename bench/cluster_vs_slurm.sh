#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Control-plane benchmark, Trainyard against Slurm on the same machine, side
# by side in one run (issue: cluster core):
#   1. submit throughput: N jobs from a client loop
#      (`trainctl submit --command -- true` vs `sbatch --wrap=true`)
#   2. time until all N have completed (from the first submission)
#   3. listing latency with N pending jobs (`trainctl ls` vs `squeue`), median of 20
#   4. cancelling N pending jobs (one `trainctl cancel` vs one `scancel`)
# Both systems get one node with the same CPU count and authenticate every
# request with MUNGE (Trainyard's half with a munged of its own); both run a
# fresh state directory and are stopped by PID afterwards. Prints a markdown table with
# the ratios (Slurm time / Trainyard time: above 1 means Trainyard is faster).
#
#   TY_BENCH_DEPS=1 deploy/install-deps.sh && bench/cluster_vs_slurm.sh [N]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
n=${1:-1000}
cpus=$(nproc)
build=${TY_BUILDDIR:-$root/build}
work=$(mktemp -d /tmp/trainyard-bench-XXXXXX)
ctl="$build/cli/trainctl"
port=${TRAINYARD_PORT:-17810}
export TRAINYARD_CONTROLLER=127.0.0.1:$port

now() { date +%s.%N; }
log() { echo "bench: $*" >&2; }
# drain_wait (its elapsed is redefined below, with two arguments)
. "$root/bench/timing.sh"
sl_active() { squeue -h | wc -l; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

cleanup() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/ty" >/dev/null 2>&1 || true
  "$root/bench/slurm-local.sh" stop "$work/slurm" >/dev/null 2>&1 || true
  "$root/bench/slurm-local.sh" stop "$work/tymunge" >/dev/null 2>&1 || true
}
trap cleanup EXIT

ty_active() { "$ctl" ls --state PENDING,RUNNING --json | grep -c '"id"' || true; }

bench_trainyard() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$build" -s "$work/ty" -c "$cpus" \
    -a munge >/dev/null
  until "$ctl" nodes --json | grep -q '"UP"'; do sleep 0.1; done
  local t0 t1 t2
  t0=$(now)
  for _ in $(seq 1 "$n"); do "$ctl" submit --quiet --command -- true >/dev/null; done
  t1=$(now)
  log "trainyard: $n submitted, waiting for completion"
  ty_left=$(drain_wait ty_active)
  t2=$(now)
  ty_submit=$(elapsed "$t0" "$t1"); ty_complete=$(elapsed "$t0" "$t2")
  log "trainyard: done ($ty_left left); listing and cancel"
  # N pending behind a job that holds every CPU.
  "$ctl" submit --quiet --command --cpus "$cpus" -- sleep 600 >/dev/null
  ids=()
  for _ in $(seq 1 "$n"); do ids+=("$("$ctl" submit --quiet --command -- true)"); done
  ty_ls=$(for _ in $(seq 1 20); do t0=$(now); "$ctl" ls >/dev/null; elapsed "$t0" "$(now)"; echo; done | median)
  t0=$(now); "$ctl" cancel "${ids[@]}" >/dev/null; ty_cancel=$(elapsed "$t0" "$(now)")
}

bench_slurm() {
  "$root/bench/slurm-local.sh" start "$work/slurm" "$cpus"
  export SLURM_CONF="$work/slurm/slurm.conf"
  local t0 t1 t2
  t0=$(now)
  for _ in $(seq 1 "$n"); do sbatch --wrap=true -o /dev/null >/dev/null; done
  t1=$(now)
  log "slurm: $n submitted, waiting for completion"
  sl_left=$(drain_wait sl_active)
  t2=$(now)
  sl_submit=$(elapsed "$t0" "$t1"); sl_complete=$(elapsed "$t0" "$t2")
  log "slurm: done ($sl_left left); listing and cancel"
  [ "$sl_left" -gt 0 ] && scancel --state=PENDING --quiet || true
  sbatch -c "$cpus" -o /dev/null --wrap="sleep 600" >/dev/null
  ids=()
  for _ in $(seq 1 "$n"); do ids+=("$(sbatch --parsable --wrap=true -o /dev/null)"); done
  sl_ls=$(for _ in $(seq 1 20); do t0=$(now); squeue >/dev/null; elapsed "$t0" "$(now)"; echo; done | median)
  t0=$(now); scancel "${ids[@]}"; sl_cancel=$(elapsed "$t0" "$(now)")
  unset SLURM_CONF
}

"$root/bench/slurm-local.sh" munged "$work/tymunge"
export TRAINYARD_MUNGE_SOCKET=$work/tymunge/munge/munge.socket
bench_trainyard
bench_slurm

ratio() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.2f", s / t }'; }
rate() { awk -v n="$n" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
cat <<TABLE
| measure ($n jobs, $cpus CPUs, one node) | Trainyard | Slurm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null) | Slurm / Trainyard |
| --- | --- | --- | --- |
| submit loop (s) | $ty_submit ($(rate "$ty_submit") jobs/s) | $sl_submit ($(rate "$sl_submit") jobs/s) | $(ratio "$sl_submit" "$ty_submit") |
| all completed (s) | $ty_complete$( [ "$ty_left" -gt 0 ] && echo " ($ty_left unfinished at cap)") | $sl_complete$( [ "$sl_left" -gt 0 ] && echo " ($sl_left unfinished at cap)") | $(ratio "$sl_complete" "$ty_complete") |
| list with $n pending, median of 20 (s) | $ty_ls | $sl_ls | $(ratio "$sl_ls" "$ty_ls") |
| cancel $n pending (s) | $ty_cancel | $sl_cancel | $(ratio "$sl_cancel" "$ty_cancel") |
TABLE
