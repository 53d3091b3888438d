#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Jobs at scale, Trainyard against Slurm on the same machine, side by side in
# one run (issue 15, "Measure"):
#   1. a 1,000-element array of `true`: the submit, and the time until every
#      element has completed (`trainctl submit --array 0-999` vs
#      `sbatch --array=0-999`), both from the submission's start
#   2. 8 concurrent client loops submitting N jobs in all (one process per
#      job on both sides): submit wall time and time until all completed
#   3. listing N pending jobs (an array behind a job holding every CPU):
#      `trainctl ls` vs `squeue` (folded, one line for the array) and
#      `trainctl ls --array` vs `squeue -r` (a line per element), median of RUNS
#   4. accounting over H finished jobs: `trainctl history --all-users --limit H`
#      on a controller whose store history_fill wrote, vs `sacct` when this
#      Slurm has accounting storage (slurmdbd); otherwise said so in the table
#   and, first, the loops' floor: the same 8 loops running /bin/true
# Both systems advertise the same CPUs (64: slurm-local.sh's tuned profile)
# and authenticate every request with MUNGE (Trainyard's half with a munged
# of its own, started before Slurm's), one node, fresh state, stopped by PID
# afterwards. Ratios are Slurm time /
# Trainyard time (above 1: Trainyard is faster); the goal is >= 10 for the
# submit and completion of cases 1 and 2.
#
# TY_SOCKET=1: trainctl reaches traind on its local Unix socket (the kernel
# identifies the caller: no MUNGE round trips; issue 20); else TCP + MUNGE.
#
#   TY_BUILDDIR=build [TY_SOCKET=1] bench/cluster/slurm_scale.sh [N] [H] [RUNS] [HISTORY_RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-1000}
hist=${2:-100000}
runs=${3:-10}
hruns=${4:-3} # history runs: each prints every finished job
loops=8
cpus=64
build=$(cd "${TY_BUILDDIR:-$root/build}" && pwd) # absolute: the script cds to $work
work=$(mktemp -d /tmp/trainyard-scale-XXXXXX)
ctl="$build/cli/trainctl"
port=${TRAINYARD_PORT:-17850}
hpid=
export TRAINYARD_CONTROLLER=127.0.0.1:$port
export TRAINYARD_SOCKET=none
[ "${TY_SOCKET:-}" = 1 ] && TRAINYARD_SOCKET=$work/ty/traind/traind.sock
export TY_BENCH_DRAIN_CAP_S=${TY_BENCH_DRAIN_CAP_S:-300}

log() { echo "scale-bench: $*" >&2; }
cleanup() {
  [ -n "$hpid" ] && kill "$hpid" 2>/dev/null
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/ty" >/dev/null 2>&1 || true
  "$root/bench/slurm-local.sh" stop "$work/slurm" >/dev/null 2>&1 || true
  "$root/bench/slurm-local.sh" stop "$work/tymunge" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
cd "$work" # sbatch writes nothing here (-o /dev/null), but never into the checkout

# stats, elapsed, seq_runs, drain_wait
. "$root/bench/timing.sh"
median() { stats "$1" | cut -d' ' -f1; }

# loops_submit CMD... : $loops background loops run CMD n/loops times each;
# fails when one of them did.
loops_submit() {
  local per=$((n / loops)) pids=() p
  for _ in $(seq 1 "$loops"); do
    ( for _ in $(seq 1 "$per"); do "$@" >/dev/null || { log "failed: $*"; exit 1; }; done ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

# The drain poll (every 50 ms while a case runs) counts table lines on both
# sides: `ls --array` lists pending and running jobs as `squeue -r` does.
# (It was `ls --array --state PENDING,RUNNING --json | grep -c '"id"'`,
# whose JSON rendering of every job cost the machine more CPU per poll
# than squeue's table while the case it measured ran.)
ty_active() { "$ctl" ls --array --noheader | wc -l; }
sl_active() { squeue -h -r | wc -l; }

# case_run ACTIVE SUBMIT... -> sets c_submit, c_complete (both from the
# submission's start) and c_left (jobs unfinished at the drain cap)
case_run() {
  local active=$1 t0; shift
  t0=$EPOCHREALTIME
  "$@"
  c_submit=$(elapsed "$t0")
  c_left=$(drain_wait "$active")
  c_complete=$(elapsed "$t0")
}
ty_array() { "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null; }
sl_array() { sbatch --array="0-$((n - 1))" -o /dev/null --wrap=true >/dev/null; }
ty_loops() { loops_submit "$ctl" submit --quiet --command -- true; }
sl_loops() { loops_submit sbatch -o /dev/null --wrap=true; }

bench_trainyard() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$build" -s "$work/ty" -c "$cpus" \
    -a munge >/dev/null
  until "$ctl" nodes --json | grep -q '"UP"'; do sleep 0.1; done
  log "trainyard: array of $n"
  case_run ty_active ty_array
  ty_arr=("$c_submit" "$c_complete" "$c_left")
  log "trainyard: $loops loops, $n jobs"
  case_run ty_active ty_loops
  ty_loop=("$c_submit" "$c_complete" "$c_left")
  # A job that failed to start (a missing helper) would "complete" at once.
  [ "$("$ctl" ls --array --state FAILED --json | grep -c '"id"')" -eq 0 ] ||
    { log "trainyard: jobs failed; see $work/ty/logs"; exit 1; }
  log "trainyard: listing $n pending"
  "$ctl" submit --quiet --command --cpus "$cpus" -- sleep 600 >/dev/null
  "$ctl" submit --quiet --array "0-$((n - 1))" --command -- true >/dev/null
  seq_runs "$work/ty.ls" "$ctl" ls
  seq_runs "$work/ty.lsr" "$ctl" ls --array
  [ "$("$ctl" ls --array --noheader | wc -l)" -ge "$n" ] || { log "trainyard: pending jobs missing"; exit 1; }
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/ty" >/dev/null
}

# A controller alone on a store with $hist finished jobs (as growth.sh does).
bench_trainyard_history() {
  log "trainyard: filling $hist finished jobs"
  nice "$build/bench/history/history_fill" "$work/hist" "$hist" 0
  "$build/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$work/hist" \
    --port-file "$work/hist.ports" --auth munge --munge-socket "$TRAINYARD_MUNGE_SOCKET" --log-level warn 2>"$work/hist.log" &
  hpid=$!
  while [ ! -s "$work/hist.ports" ]; do
    kill -0 "$hpid" 2>/dev/null || { log "traind did not start: $(tail -1 "$work/hist.log")"; exit 1; }
    sleep 0.05
  done
  local c
  c=127.0.0.1:$(sed -n 's/^rpc=//p' "$work/hist.ports")
  [ "$TRAINYARD_SOCKET" = none ] || local -x TRAINYARD_SOCKET=$work/hist/traind.sock
  local got
  got=$(TRAINYARD_CONTROLLER=$c "$ctl" history --all-users --limit "$hist" --noheader | wc -l)
  [ "$got" -ge "$hist" ] || { log "trainyard: history gave $got lines, not $hist"; exit 1; }
  TRAINYARD_CONTROLLER=$c runs=$hruns seq_runs "$work/ty.hist" "$ctl" history --all-users --limit "$hist"
  kill "$hpid"; wait "$hpid" 2>/dev/null || true; hpid=
}

bench_slurm() {
  "$root/bench/slurm-local.sh" start "$work/slurm" "$cpus"
  export SLURM_CONF="$work/slurm/slurm.conf"
  log "slurm: array of $n"
  case_run sl_active sl_array
  sl_arr=("$c_submit" "$c_complete" "$c_left")
  [ "$c_left" -gt 0 ] && scancel --quiet --state=PENDING || true
  log "slurm: $loops loops, $n jobs"
  case_run sl_active sl_loops
  sl_loop=("$c_submit" "$c_complete" "$c_left")
  [ "$c_left" -gt 0 ] && scancel --quiet --state=PENDING || true
  log "slurm: listing $n pending"
  sbatch -c "$cpus" -o /dev/null --wrap="sleep 600" >/dev/null
  sbatch --array="0-$((n - 1))" -o /dev/null --wrap=true >/dev/null
  seq_runs "$work/sl.ls" squeue
  seq_runs "$work/sl.lsr" squeue -r
  # sacct needs AccountingStorageType=accounting_storage/slurmdbd (and a
  # MySQL behind slurmdbd); without it, it answers with an error.
  if sacct_err=$(sacct -a -X -n 2>&1 >/dev/null) && [ -z "$sacct_err" ]; then
    sacct_note="measured only with slurmdbd"
  else
    sacct_note="not measured: ${sacct_err//$'\n'/ }"
  fi
  scancel --quiet --user="$(id -un)" || true
  unset SLURM_CONF
}

# The floor of the loops case: the same loops running /bin/true, one
# process per job and nothing else (no daemon running yet). No client that
# is a process started by a shell loop can submit faster than this, so
# Slurm's loop time over it bounds the loops' ratio.
t0=$EPOCHREALTIME
loops_submit /bin/true
floor=$(elapsed "$t0")
"$root/bench/slurm-local.sh" munged "$work/tymunge"
export TRAINYARD_MUNGE_SOCKET=$work/tymunge/munge/munge.socket
bench_trainyard
bench_trainyard_history
bench_slurm

ratio() { awk -v s="$1" -v t="$2" 'BEGIN { printf "%.2f", s / t }'; }
rate() { awk -v n="$n" -v t="$1" 'BEGIN { printf "%.0f", n / t }'; }
cell() { printf '%.3f (%s jobs/s)' "$1" "$(rate "$1")"; [ "${2:-0}" -gt 0 ] && printf ' (%s unfinished at cap)' "$2"; true; }
row() { # LABEL TY SL [TY_LEFT SL_LEFT]
  echo "| $1 | $(cell "$2" "${4:-0}") | $(cell "$3" "${5:-0}") | $(ratio "$3" "$2") |"
}
lrow() { echo "| $1 | $2 | $3 | $(ratio "$3" "$2") |"; }
cat <<TABLE
| measure ($n jobs, $cpus CPUs advertised, one node) | Trainyard ($([ "$TRAINYARD_SOCKET" = none ] && echo "TCP+MUNGE" || echo "local socket")) | Slurm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null) | Slurm / Trainyard |
| --- | --- | --- | --- |
$(row "array 0-$((n - 1)): submit (s)" "${ty_arr[0]}" "${sl_arr[0]}")
$(row "array 0-$((n - 1)): all completed (s)" "${ty_arr[1]}" "${sl_arr[1]}" "${ty_arr[2]}" "${sl_arr[2]}")
$(row "$loops loops, $n jobs: submit (s)" "${ty_loop[0]}" "${sl_loop[0]}")
$(row "$loops loops, $n jobs: all completed (s)" "${ty_loop[1]}" "${sl_loop[1]}" "${ty_loop[2]}" "${sl_loop[2]}")
$(lrow "ls / squeue, $n pending (array folded), median of $runs (s)" "$(median "$work/ty.ls")" "$(median "$work/sl.ls")")
$(lrow "ls --array / squeue -r, $n pending, median of $runs (s)" "$(median "$work/ty.lsr")" "$(median "$work/sl.lsr")")
| history --all-users --limit $hist / sacct, $hist finished, median of $hruns (s) | $(median "$work/ty.hist") | $sacct_note | - |
TABLE
echo
echo "The loops' floor: $loops loops running /bin/true $n times in all took $(printf '%.3f' "$floor") s;" \
  "Slurm's loop submit is $(ratio "${sl_loop[0]}" "$floor")x that, the most any process-per-job client can reach."
