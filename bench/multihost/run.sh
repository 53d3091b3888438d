#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A cluster across virtual hosts (issue 19): traind and 3 workers, each in
# its own network and UTS namespace with a veth on a bridge (the test
# harness's layout, tests/integration/netns.h), measured with tc netem
# delays of 0, 1 and 10 ms on every host's link (one way, so a round trip
# between two hosts pays twice the delay), side by side with the same
# cluster on loopback (one host; the ratios are against it):
#   - launch latency: `rlaunch -- true` from the bridge's side, submit to
#     exit, on 1 node and on 3 (median and p90 of RUNS);
#   - scheduling latency: submit to start of `trainctl submit --command
#     true`, from the job's own times (median of RUNS);
#   - the data-parallel MLP (3 ranks, one per host, batch 48): mean step
#     time from rank 0's progress lines, STEPS steps;
# then, at delay 0 and the daemons' default timeouts (heartbeat 2 s, node
# timeout 15 s, so a lease of 10 s), the time from cutting a running
# worker's link to the fenced kill (the worker's log) and to the requeue
# (the job's NODE_FAIL event).
# A delay the kernel cannot add (no sch_netem) is reported as such.
# Needs root, iproute2, protoc and a build (BUILDDIR, default build).
#   bench/multihost/run.sh [BUILDDIR] [RUNS] [STEPS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=$(cd "${1:-$root/build}" && pwd) runs=${2:-20} steps=${3:-60}
[ "$(id -u)" -eq 0 ] || { echo "$0: needs root (network namespaces)" >&2; exit 77; }
. "$root/bench/timing.sh"
log() { echo "$*" >&2; }
tmp=$(mktemp -d /tmp/trainyard-mh-XXXXXX)
chmod 755 "$tmp"
tag=$$ subnet=$((20 + $$ % 200))
hosts=(ctl w1 w2 w3)
addr() { echo "10.$subnet.0.$(($1 + 1))"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for i in "${!hosts[@]}"; do ip netns del "tyns${tag}h$i" 2>/dev/null || true; done
  ip link del "tyb$tag" 2>/dev/null || true
}
trap cleanup EXIT

# ---- the hosts -------------------------------------------------------------------------
ip link add "tyb$tag" type bridge
ip addr add "10.$subnet.0.254/24" dev "tyb$tag"
ip link set "tyb$tag" up
for i in "${!hosts[@]}"; do
  ns=tyns${tag}h$i
  ip netns add "$ns"
  ip netns exec "$ns" ip link set lo up
  ip link add "tyv${tag}h$i" type veth peer name "typ${tag}h$i"
  ip link set "typ${tag}h$i" netns "$ns"
  ip netns exec "$ns" ip link set "typ${tag}h$i" name eth0
  ip netns exec "$ns" ip addr add "$(addr "$i")/24" dev eth0
  ip netns exec "$ns" ip link set eth0 up
  ip link set "tyv${tag}h$i" master "tyb$tag"
  ip link set "tyv${tag}h$i" up
done
# on_host HOST CMD...: CMD in host HOST's namespaces, named after it (with
# loopback=1: here, as the single-host baseline).
loopback=0
on_host() {
  local i=$1; shift
  if [ "$loopback" = 1 ]; then "$@"; return; fi
  ip netns exec "tyns${tag}h$i" unshare --uts sh -c 'hostname "$0"; exec "$@"' "${hosts[$i]}" "$@"
}
host_addr() { if [ "$loopback" = 1 ]; then echo 127.0.0.1; else addr "$1"; fi; }

# ---- the daemons ----------------------------------------------------------------------
start_cluster() { # state in $tmp/$1
  local d=$tmp/$1
  mkdir -p "$d"
  on_host 0 "$b/daemon/traind" --auth none --listen "$(host_addr 0):0" \
    --metrics-listen "$(host_addr 0):0" --state-dir "$d/traind" --port-file "$d/traind.ports" \
    >"$d/traind.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 200); do [ -s "$d/traind.ports" ] && break; sleep 0.05; done
  ctl=$(host_addr 0):$(sed -n 's/^rpc=//p' "$d/traind.ports")
  export TRAINYARD_CONTROLLER=$ctl
  for i in 1 2 3; do
    on_host "$i" "$b/worker/trainworkerd" --auth none --no-cgroups --controller "$ctl" \
      --name "${hosts[$i]}" --state-dir "$d/${hosts[$i]}" \
      --io-listen "$([ "$loopback" = 1 ] && echo 127.0.0.1 || echo 0.0.0.0):0" \
      --metrics-listen "$(host_addr "$i"):0" --cpus 1 --gpus 0 >"$d/${hosts[$i]}.log" 2>&1 &
    pids+=($!)
  done
  for _ in $(seq 200); do [ "$(up)" -ge 3 ] && break; sleep 0.05; done
  [ "$(up)" -ge 3 ] || { log "workers did not register: $d"; exit 1; }
}
stop_cluster() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  pids=()
}
up() { "$b/cli/trainctl" nodes 2>/dev/null | grep -c ' UP' || true; }

# ---- measures ---------------------------------------------------------------------------
job_json() { "$b/cli/trainctl" show "$1" --json; }
field() { python3 -c 'import json,sys; j=json.load(sys.stdin); print(eval(sys.argv[1]))' "$1"; }
wait_end() {
  while :; do
    s=$(job_json "$1" | field 'j["state"]')
    case $s in COMPLETED|FAILED|CANCELLED|TIMEOUT|OUT_OF_MEMORY) echo "$s"; return ;; esac
    sleep 0.05
  done
}
sched_latency() { # median submit -> start (s) of $runs `true` jobs
  : >"$tmp/sched"
  for _ in $(seq "$runs"); do
    id=$("$b/cli/trainctl" submit --quiet --command --cwd /tmp -- true)
    wait_end "$id" >/dev/null
    job_json "$id" | field '(j["start_time_ms"] - j["submit_time_ms"]) / 1000' >>"$tmp/sched"
  done
  stats "$tmp/sched" | cut -d' ' -f1
}
protoc --decode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto \
    <"$b/examples/models/mlp.config.pb" |
  sed -e 's/^epochs:.*/epochs: 1/' -e 's/^checkpoint_path:.*//' -e 's/^log_interval:.*/log_interval: 10/' \
      -e 's/^eval_each_epoch:.*/eval_each_epoch: TOGGLE_OFF/' -e 's/^batch_size:.*/batch_size: 48/' \
      -e '/^max_steps:/d' |
  { cat; echo "max_steps: $steps"; } |
  protoc --encode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto >"$tmp/cfg.pb"
"$root/deploy/graph-job.sh" "$b/examples/models/mlp.onnx" "$tmp/cfg.pb" 3 1 mlp-dp3 data >"$tmp/dp.pb"
dp_step_ms() { # mean ms per step over rank 0's progress lines after the first
  local id log
  id=$("$b/cli/trainctl" submit --quiet "$tmp/dp.pb")
  [ "$(wait_end "$id")" = COMPLETED ] || { log "DP job $id failed: $tmp"; exit 1; }
  log=$(ls "$cur"/w*/jobs/"$id"/rank0.log)
  awk -v b=48 '/^step /{ n++; if (n > 1) { s += $8; k++ } } END { printf "%.2f", k ? 1000 * b / (s / k) : 0 }' "$log"
}
netem() { # DELAY_MS on every host's link (0: none)
  for i in "${!hosts[@]}"; do
    ip netns exec "tyns${tag}h$i" tc qdisc del dev eth0 root 2>/dev/null || true
    [ "$1" = 0 ] || ip netns exec "tyns${tag}h$i" tc qdisc add dev eth0 root netem delay "$1ms" || return 1
  done
}

row() { # LABEL: one table row, ratios against the loopback row
  seq_runs "$tmp/rl1" "$b/cli/rlaunch" -- true
  seq_runs "$tmp/rl3" "$b/cli/rlaunch" --nodes 3 -- true
  local s step m1 m3
  s=$(sched_latency) step=$(dp_step_ms)
  m1=$(stats "$tmp/rl1" | cut -d' ' -f1) m3=$(stats "$tmp/rl3" | cut -d' ' -f1)
  [ -n "$base" ] || base="$m1 $m3 $step"
  set -- $base
  printf '| %s | %s (%.2fx) | %s (%.2fx) | %s | %s (%.2fx) |\n' "$label" \
    "$(stats "$tmp/rl1" | cut -d' ' -f1,2 | tr ' ' /)" "$(awk -v a="$m1" -v b="$1" 'BEGIN { print a / b }')" \
    "$(stats "$tmp/rl3" | cut -d' ' -f1,2 | tr ' ' /)" "$(awk -v a="$m3" -v b="$2" 'BEGIN { print a / b }')" \
    "$s" "$step" "$(awk -v a="$step" -v b="$3" 'BEGIN { print a / b }')"
}

echo "traind + 3 workers (1 CPU each), on loopback, then each in its own network namespace;"
echo "$(nproc) cores, $runs runs per latency, DP MLP 3 ranks x 1 thread, batch 48, $steps steps;"
echo "ratios against the loopback row"
printf '| hosts, netem delay per link | rlaunch 1 node, median / p90 (s) | rlaunch 3 nodes, median / p90 (s) | submit to start, median (s) | DP step (ms) |\n'
printf '| --- | --- | --- | --- | --- |\n'
base=
loopback=1 cur=$tmp/loopback label="one host, loopback"
start_cluster loopback
row
stop_cluster
loopback=0 cur=$tmp/netns
start_cluster netns
for d in 0 1 10; do
  label="4 namespaces, $d ms"
  if ! netem "$d" 2>"$tmp/netem.err"; then
    printf '| %s | not measured: %s | | | |\n' "$label" "$(head -1 "$tmp/netem.err")"
    continue
  fi
  row
done
netem 0

# ---- a cut link: fencing and requeue ---------------------------------------------------
id=$("$b/cli/trainctl" submit --quiet --command --cwd /tmp -- sleep 600)
while [ "$(job_json "$id" | field 'j["state"]')" != RUNNING ]; do sleep 0.05; done
node=$(job_json "$id" | field 'j["nodes"][0]')
i=${node#w}
t_cut=$(date +%s%3N)
ip link set "tyv${tag}h$i" down
while ! job_json "$id" | field '[e for e in j["events"] if e["to_state"] == "NODE_FAIL"][0]["time_ms"]' \
    >"$tmp/fail" 2>/dev/null; do sleep 0.1; done
fence=$(grep -m1 'fenced: node' "$cur/$node.log" | cut -d' ' -f1)
t_fence=$(date -d "$fence" +%s%3N)
echo
echo "Link of $node cut at delay 0 (heartbeat 2 s, node timeout 15 s, lease 10 s):"
awk -v c="$t_cut" -v f="$t_fence" -v r="$(cat "$tmp/fail")" 'BEGIN {
  printf "| cut to fenced kill (worker) | %.2f s |\n| cut to requeue (NODE_FAIL) | %.2f s |\n| kill before requeue by | %.2f s |\n",
    (f - c) / 1000, (r - c) / 1000, (r - f) / 1000 }'
ip link set "tyv${tag}h$i" up
"$b/cli/trainctl" cancel "$id" >/dev/null || true
