# SPDX-License-Identifier: Apache-2.0
# What the side-by-side benches (before_after.sh, worker_cost.sh) share,
# sourced by them: two build directories from the command line, a work
# directory removed at exit, a fresh one-node cluster advertising 64 CPUs
# per round (as slurm_scale.sh) on one port, and the rounds alternating
# the builds (A, B, A, B, ...) so that load from other work on the machine
# falls on both. The bench defines one BUILD LABEL (one round of its
# measures on a cluster ab_start made, then ab_stop).
#
# Sets: root, a, b (the builds' absolute paths), port, work, state.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
. "$root/bench/timing.sh" # stats, elapsed, seq_runs, drain_wait

# ab_setup TAG DEFAULT_PORT USAGE "$@": checks for two builds, makes
# /tmp/trainyard-TAG-XXXXXX and points trainctl at the port.
ab_setup() {
  local usage=$3
  ab_tag=$1
  port=${TRAINYARD_PORT:-$2}
  shift 3
  [ $# -ge 2 ] || { echo "usage: $usage" >&2; exit 2; }
  a=$(cd "$1" && pwd)
  b=$(cd "$2" && pwd)
  work=$(mktemp -d "/tmp/trainyard-$ab_tag-XXXXXX")
  export TRAINYARD_CONTROLLER=127.0.0.1:$port
  export TY_BENCH_DRAIN_CAP_S=${TY_BENCH_DRAIN_CAP_S:-600}
  state=
  trap ab_cleanup EXIT
}

log() { echo "$ab_tag: $*" >&2; }

ab_stop() {
  [ -n "$state" ] && TRAINYARD_PORT=$port "$root/deploy/cluster.sh" stop -s "$state" >/dev/null 2>&1
  state=
}

ab_cleanup() {
  ab_stop || true
  rm -rf "$work"
}

# ab_start BUILD LABEL: a fresh cluster of BUILD, once its node is UP.
ab_start() {
  state="$work/$2.$RANDOM"
  TRAINYARD_PORT=$port "$root/deploy/cluster.sh" start -n 1 -b "$1" -s "$state" -c 64 >/dev/null
  until "$1/cli/trainctl" nodes --json | grep -q '"UP"'; do sleep 0.1; done
}

# ab_active: how many array elements are pending or running (for
# drain_wait); $ctl is the calling round's trainctl.
ab_active() { "$ctl" ls --array --state PENDING,RUNNING --json | grep -c '"id"' || true; }

# ab_rounds ROUNDS: runs `one` for A and B, ROUNDS times.
ab_rounds() {
  for r in $(seq 1 "$1"); do
    log "round $r"
    one "$a" A
    one "$b" B
  done
}
