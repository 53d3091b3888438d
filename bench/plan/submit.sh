#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What checking graph jobs out of the controller's process costs a submit:
# the wall time of `trainctl submit` (process start, RPC, the controller's
# work, its group commit) for
#   command   a command job: no model check (the baseline)
#   data      a graph job with parallelism data: the check child imports
#             the model and checks the config, no plan
#   planned   the same job, parallelism tensor on 1 x 2 devices: the child
#             also searches the plan (a different batch each time, so every
#             submit misses the plan cache)
#   cached    the same tensor job again and again: the child imports and
#             checks, the plan comes from the controller's cache
# each REPEAT times (default 20), round robin, median and ratio to command.
# The model is the Fashion-MNIST MLP by path; the cost model's rates are
# fixed (--plan-device-flops) so no CPU is measured. Starts its own traind
# (no workers: the jobs stay pending) and stops it by PID.
#   [REPEAT=20] bench/plan/submit.sh [BUILDDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=$(cd "${1:-$root/build}" && pwd)
repeat=${REPEAT:-20}
tmp=$(mktemp -d /tmp/trainyard-submit-XXXXXX)
"$b/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$tmp/st" \
  --port-file "$tmp/ports" --plan-device-flops 1e11 --auth none --log-level warn \
  > "$tmp/traind.log" 2>&1 &
ctl_pid=$!
trap 'kill $ctl_pid 2>/dev/null; wait $ctl_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 200); do [ -s "$tmp/ports" ] && break; sleep 0.05; done
ctl="$b/cli/trainctl --controller 127.0.0.1:$(sed -n 's/^rpc=//p' "$tmp/ports")"
models=$b/examples/models
# A config with batch B (the planned jobs change it so each one is a new search).
config() {
  protoc --decode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto \
      < "$models/mlp.config.pb" | sed "s/^batch_size:.*/batch_size: $1/" |
    protoc --encode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto > "$tmp/cfg$1.pb"
}
config 64
"$root/deploy/graph-job.sh" "$models/mlp.onnx" "$tmp/cfg64.pb" 1 2 data data > "$tmp/data.pb"
"$root/deploy/graph-job.sh" "$models/mlp.onnx" "$tmp/cfg64.pb" 1 2 cached tensor > "$tmp/cached.pb"
for i in $(seq "$repeat"); do
  config $((64 + 2 * i))
  "$root/deploy/graph-job.sh" "$models/mlp.onnx" "$tmp/cfg$((64 + 2 * i)).pb" 1 2 planned tensor \
    > "$tmp/planned$i.pb"
done
$ctl submit --quiet "$tmp/cached.pb" > /dev/null # fills the cache

ms() { # the wall time of one command, in ms
  local t0 t1
  t0=$(date +%s%N)
  "$@" > /dev/null
  t1=$(date +%s%N)
  echo $(((t1 - t0) / 1000))
}
: > "$tmp/times"
for i in $(seq "$repeat"); do
  echo "command $(ms $ctl submit --quiet --command -- true)" >> "$tmp/times"
  echo "data $(ms $ctl submit --quiet "$tmp/data.pb")" >> "$tmp/times"
  echo "planned $(ms $ctl submit --quiet "$tmp/planned$i.pb")" >> "$tmp/times"
  echo "cached $(ms $ctl submit --quiet "$tmp/cached.pb")" >> "$tmp/times"
done
median() { awk -v k="$1" '$1 == k { print $2 }' "$tmp/times" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
base=$(median command)
echo "trainctl submit, median of $repeat (ms), this machine ($(nproc) cores):"
printf '%-8s %10s %8s\n' KIND MS RATIO
for k in command data planned cached; do
  m=$(median $k)
  printf '%-8s %10.1f %8.2f\n' "$k" "$(echo "$m / 1000" | bc -l)" "$(echo "$m / $base" | bc -l)"
done
curl -s "127.0.0.1:$(sed -n 's/^metrics=//p' "$tmp/ports")/metrics" |
  grep -E '^trainyard_(model_checks|plan_cache_lookups)_total' || true
