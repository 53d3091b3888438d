# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# What the cost benchmarks (submit_cost.sh, task_end_cost.sh,
# loop_submit_cost.sh, worker_instr.sh) share: a work folder removed on
# exit together with every daemon they started, one traind and one worker
# advertising 64 CPUs on loopback (either under valgrind or strace),
# traind's metrics, and callgrind's instruction count. Sourced, not run;
# `bench_init` first. The state they set (port, work, pids, tpid, wpid) is
# global, as the scripts read it.
# (ab_cluster.sh starts its clusters with deploy/cluster.sh, which cannot
# run one daemon under valgrind or strace; these benches need to.)
#
#   . "$(dirname "$0")/lib.sh"
#   bench_init NAME DEFAULT_PORT   # NAME names the work folder and messages

# bench_init NAME DEFAULT_PORT: port (TRAINYARD_PORT overrides), work,
# TRAINYARD_CONTROLLER, the exit trap; exits 77 (skipped) without valgrind.
bench_init() {
  bench=$1
  port=${TRAINYARD_PORT:-$2}
  work=$(mktemp -d "/tmp/trainyard-$bench-XXXXXX")
  export TRAINYARD_CONTROLLER=127.0.0.1:$port
  pids=()
  command -v callgrind_control >/dev/null || { echo "valgrind is needed"; exit 77; }
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}

wait_file() {
  for _ in $(seq 1 3000); do [ -s "$1" ] && return 0; sleep 0.02; done
  echo "$bench: $1 did not appear" >&2; return 1
}

# start_traind BUILD DIR [WRAPPER...]: traind (run under WRAPPER, e.g.
# valgrind) with its state in DIR, until it listens; its pid in tpid.
start_traind() {
  local build=$1 s=$2
  shift 2
  mkdir -p "$s"
  echo "auth.nodes = worker1" >"$s/traind.conf"
  "$@" "$build/daemon/traind" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
    --state-dir "$s/traind" --port-file "$s/traind.ports" --config "$s/traind.conf" \
    --auth none >"$s/traind.log" 2>&1 &
  tpid=$!
  pids+=("$tpid")
  wait_file "$s/traind.ports" || { cat "$s/traind.log" >&2; exit 1; }
}

# start_worker BUILD DIR [WRAPPER...]: worker1 with 64 CPUs (under
# WRAPPER), its state in DIR, until traind sees it UP; its pid in wpid.
start_worker() {
  local build=$1 s=$2
  shift 2
  "$@" "$build/worker/trainworkerd" --controller "127.0.0.1:$port" --name worker1 \
    --cgroup-name "trainyard-$port-worker1" --state-dir "$s/worker1" --io-listen 127.0.0.1:0 \
    --metrics-listen "127.0.0.1:$((port + 21))" --port-file "$s/worker1.ports" --auth none \
    --cpus 64 >"$s/worker1.log" 2>&1 &
  wpid=$!
  pids+=("$wpid")
  until "$build/cli/trainctl" nodes --json 2>/dev/null | grep -q '"UP"'; do sleep 0.2; done
}

# start_cluster BUILD DIR [WRAPPER...]: both, traind under WRAPPER.
start_cluster() {
  start_traind "$@"
  start_worker "$1" "$2"
}

stop_cluster() {
  kill "$wpid" "$tpid" 2>/dev/null || true
  wait "$wpid" "$tpid" 2>/dev/null || true
}

# callgrind_count PID DIR [COPY]: dumps the counters of PID, a daemon under
# callgrind (callgrind_control), and prints the instructions counted since
# they were zeroed; the dump, from DIR, is copied to COPY for
# callgrind_annotate.
callgrind_count() {
  callgrind_control -d "$1" >/dev/null 2>&1
  local dump
  dump=$(find "$2" -name "cg.$1*" -printf '%T@ %p\n' | sort -rn | head -1 | cut -d' ' -f2)
  if [ -n "${3:-}" ]; then cp "$dump" "$3" 2>/dev/null || true; fi
  awk '/^summary:|^totals:/ { print $2; exit }' "$dump"
}

# metric NAME: its value on traind's metrics port (0 when absent).
metric() {
  curl -s "http://127.0.0.1:$((port + 1))/metrics" | awk -v m="$1" '$1 == m { v = $2 } END { print v + 0 }'
}
