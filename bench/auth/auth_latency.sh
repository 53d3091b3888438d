#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What authentication costs a user (issue 12), side by side in one run:
# submit and rlaunch latency on a local Trainyard cluster with MUNGE
# (`deploy/cluster.sh -a munge`, a private munged with its own key) against
# the same cluster with `--auth none`, and sbatch and srun on a local Slurm
# that authenticates with MUNGE too (bench/slurm-local.sh, its tuned
# profile). Each sample is one client process from start to exit: `trainctl
# submit --command -q -- true` (acknowledged once the job is committed),
# `rlaunch -- true` (submit, placement, spawn as the submitting user in its
# cgroup, attach, exit code back), `sbatch --wrap true`, `srun -n1 true`.
# RUNS sequential samples each, median and p90. Prints a markdown table;
# ratios compare with MUNGE against without, and Slurm against Trainyard.
# Then bench_auth: the cost of one credential against the same munged.
#
#   TY_BENCH_DEPS=1 deploy/install-deps.sh && bench/auth/auth_latency.sh [RUNS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
runs=${1:-50}
cpus=$(nproc)
build=${TY_BUILDDIR:-$root/build}
work=$(mktemp -d /tmp/trainyard-auth-bench-XXXXXX)
port=${TRAINYARD_PORT:-17850}
trainctl="$build/cli/trainctl"
rlaunch="$build/cli/rlaunch"

log() { echo "auth-bench: $*" >&2; }
cleanup() {
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$work/none" >/dev/null 2>&1 || true
  TRAINYARD_PORT=$((port + 100)) "$root/deploy/cluster.sh" stop -s "$work/munge" >/dev/null 2>&1 || true
  [ -f "$work/munged/munged.pid" ] && kill "$(cat "$work/munged/munged.pid")" 2>/dev/null || true
  "$root/bench/slurm-local.sh" stop "$work/slurm" >/dev/null 2>&1 || true
}
trap cleanup EXIT

# stats, elapsed, seq_runs
. "$root/bench/timing.sh"

start_munged() {
  mkdir -p "$work/munged" && chmod 0755 "$work/munged"
  dd if=/dev/urandom of="$work/munged/munge.key" bs=1024 count=1 status=none
  chmod 0400 "$work/munged/munge.key"
  munged --key-file "$work/munged/munge.key" --socket "$work/munged/munge.socket" \
    --pid-file "$work/munged/munged.pid" --log-file "$work/munged/munged.log" \
    --seed-file "$work/munged/seed" --num-threads 4 -f
  export TRAINYARD_MUNGE_SOCKET="$work/munged/munge.socket"
}

# start_cluster AUTH PORT: a cluster of one worker in $work/AUTH.
start_cluster() {
  TRAINYARD_PORT=$2 "$root/deploy/cluster.sh" start -n 1 -b "$build" -s "$work/$1" -c "$cpus" \
    -a "$1" >/dev/null
  until TRAINYARD_CONTROLLER=127.0.0.1:$2 "$trainctl" nodes --json 2>/dev/null | grep -q '"UP"'; do
    sleep 0.1
  done
  TRAINYARD_CONTROLLER=127.0.0.1:$2 "$rlaunch" -- true # warm-up: first connection, page cache
}

# One sample of CMD... against the cluster of AUTH, appended to $work/AUTH.KIND.
sample() {
  local auth=$1 kind=$2 port=$3; shift 3
  local t0=$EPOCHREALTIME
  TRAINYARD_CONTROLLER=127.0.0.1:$port "$@" >/dev/null || { log "failed: $*"; exit 1; }
  elapsed "$t0" >>"$work/$auth.$kind"
}

# Both clusters run at once and their samples alternate, so a busy moment
# of the machine weighs on both columns alike. The --auth none cluster's
# clients find no munged (the development setup) and send no credential.
bench_trainyard() {
  local none_port=$port munge_port=$((port + 100))
  start_cluster none "$none_port"
  start_munged
  start_cluster munge "$munge_port"
  log "trainyard: $runs submits and $runs rlaunches each, --auth none and MUNGE alternating"
  for _ in $(seq 1 "$runs"); do
    (unset TRAINYARD_MUNGE_SOCKET; sample none submit "$none_port" "$trainctl" submit --command -q -- true)
    sample munge submit "$munge_port" "$trainctl" submit --command -q -- true
  done
  for _ in $(seq 1 "$runs"); do
    (unset TRAINYARD_MUNGE_SOCKET; sample none rlaunch "$none_port" "$rlaunch" -- true)
    sample munge rlaunch "$munge_port" "$rlaunch" -- true
  done
  TRAINYARD_PORT=$none_port "$root/deploy/cluster.sh" stop -s "$work/none" >/dev/null
  TRAINYARD_PORT=$munge_port "$root/deploy/cluster.sh" stop -s "$work/munge" >/dev/null
}

bench_slurm() {
  "$root/bench/slurm-local.sh" start "$work/slurm" "$cpus"
  export SLURM_CONF="$work/slurm/slurm.conf"
  srun -n1 true # warm-up
  log "slurm: $runs sbatch, $runs srun"
  seq_runs "$work/slurm.submit" sbatch -Q -o /dev/null --wrap true
  seq_runs "$work/slurm.rlaunch" srun -n1 true
  unset SLURM_CONF
}

bench_trainyard
bench_slurm
log "one credential: $build/bench/auth/bench_auth 2000"
"$build/bench/auth/bench_auth" 2000
echo

ms() { awk -v s="$1" 'BEGIN { printf "%.1f", s * 1000 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
row() { # row LABEL KIND PERCENTILE(1|2)
  local n m s
  n=$(stats "$work/none.$2" | cut -d' ' -f"$3")
  m=$(stats "$work/munge.$2" | cut -d' ' -f"$3")
  s=$(stats "$work/slurm.$2" | cut -d' ' -f"$3")
  echo "| $1 | $(ms "$n") | $(ms "$m") | $(ratio "$m" "$n") | $(ms "$s") | $(ratio "$s" "$m") |"
}
cat <<TABLE
| $runs sequential, start to exit ($cpus CPUs, one node) | --auth none (ms) | MUNGE (ms) | MUNGE / none | Slurm $(dpkg-query -W -f='${Version}' slurm-wlm 2>/dev/null), MUNGE (ms) | Slurm / Trainyard MUNGE |
| --- | --- | --- | --- | --- | --- |
$(row "submit (\`trainctl submit\` / \`sbatch --wrap\`), median" submit 1)
$(row "submit, p90" submit 2)
$(row "interactive launch (\`rlaunch\` / \`srun -n1\`), median" rlaunch 1)
$(row "interactive launch, p90" rlaunch 2)
TABLE
