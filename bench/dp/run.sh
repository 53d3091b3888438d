#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Data-parallel benchmark: the Fashion-MNIST MLP for STEPS steps on 1 rank
# and on 2 ranks (one OpenBLAS thread each, same global batch 64), the
# collective's time split, and all-reduce bandwidth of the checked path
# against a raw MPI_Allreduce. Starts its own traind (for the rendezvous)
# on an ephemeral port and stops it by PID. BUCKET_KB (default: trainrun's
# 25 MiB) sets the gradient bucket size of the 2-rank run; the MLP's 0.9 MiB
# of gradients need buckets below that to overlap the all-reduce with backward.
#   bench/dp/run.sh [BUILDDIR] [STEPS] [BUCKET_KB]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=$(cd "${1:-$root/build}" && pwd) steps=${2:-1500} bucket=${3:-}
tmp=$(mktemp -d /tmp/trainyard-dp-XXXXXX)
"$b/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$tmp/st" \
  --port-file "$tmp/ports" > "$tmp/traind.log" 2>&1 &
ctl_pid=$!
trap 'kill $ctl_pid 2>/dev/null; wait $ctl_pid 2>/dev/null || true' EXIT
for _ in $(seq 200); do [ -s "$tmp/ports" ] && [ -s "$tmp/st/attach.key" ] && break; sleep 0.05; done
export TRAINYARD_CONTROLLER=127.0.0.1:$(sed -n 's/^rpc=//p' "$tmp/ports")
protoc --decode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto \
    < "$b/examples/models/mlp.config.pb" |
  sed -e 's/^epochs:.*/epochs: 2/' -e 's/^checkpoint_path:.*//' -e 's/^log_interval:.*/log_interval: 100/' \
      -e 's/^eval_each_epoch:.*/eval_each_epoch: TOGGLE_OFF/' |
  protoc --encode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto > "$tmp/cfg.pb"
model=$b/examples/models/mlp.onnx
# The rendezvous admits a job's ranks only with the token a worker would
# give them (signed with the job's key): bench/plan/rdv_token makes it.
token() { "$b/bench/plan/rdv_token" "$tmp/st" "$1" "$2"; }
# Mean samples/s over the progress lines after the first (warm-up).
sps() { awk '/^step /{ n++; if (n > 1) { s += $8; k++ } } END { printf "%.0f", k ? s / k : 0 }' "$1"; }
run() { # world threads tag
  local w=$1 t=$2 tag=$3 pids=()
  local job=$((RANDOM + 1000 * w))
  for r in $(seq 0 $((w - 1))); do
    RANK=$r WORLD_SIZE=$w TRAINYARD_JOB_ID=$job TRAINYARD_RENDEZVOUS_TOKEN=$(token "$job" "$r") \
      "$b/ops/trainrun/trainrun" --model "$model" --config "$tmp/cfg.pb" --steps "$steps" \
      --threads "$t" > "$tmp/$tag.rank$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}
job=$RANDOM
run 1 1 one
run 1 2 one2
pids=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 TRAINYARD_JOB_ID=$((job + 1)) TRAINYARD_RENDEZVOUS_TOKEN=$(token $((job + 1)) "$r") \
    "$b/ops/trainrun/trainrun" --model "$model" \
    --config "$tmp/cfg.pb" --steps "$steps" --threads 1 ${bucket:+--bucket-kb "$bucket"} > "$tmp/two.rank$r.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
s1=$(sps "$tmp/one.rank0.log") s12=$(sps "$tmp/one2.rank0.log") s2=$(sps "$tmp/two.rank0.log")
echo "MLP, global batch 64, $steps steps, $(nproc) cores ($(uname -m)), buckets $([ -n "$bucket" ] && echo "$bucket KiB" || echo "25 MiB")"
echo "1 rank x 1 thread:  $s1 samples/s"
echo "1 rank x 2 threads: $s12 samples/s"
echo "2 ranks x 1 thread: $s2 samples/s"
awk -v a="$s1" -v b="$s2" 'BEGIN { printf "scaling efficiency (2 ranks vs 2 x 1 rank): %.2f\n", b / (2 * a) }'
grep '^collective: [0-9]' "$tmp/two.rank0.log" || true
grep '^collective: [0-9]' "$tmp/two.rank0.log" |
  awk '{ for (i = 1; i <= NF; i++) { if ($i == "reductions") r = $(i + 1); if ($i == "blocked") w = $(i + 1) } }
       END { if (r > 0) printf "all-reduce hidden behind other work: %.0f%% (blocked %s s of %s s in flight)\n", 100 * (1 - w / r), w, r }'
echo "all-reduce bandwidth, 2 ranks (checked = shape check + MPI_Iallreduce polled; raw = MPI_Allreduce):"
pids=()
for r in 0 1; do
  RANK=$r WORLD_SIZE=2 TRAINYARD_JOB_ID=$((job + 2)) TRAINYARD_RENDEZVOUS_TOKEN=$(token $((job + 2)) "$r") \
    "$b/bench/dp/allreduce_bench" > "$tmp/ar.$r.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || { cat "$tmp/ar.$r.log" >&2; exit 1; }; done
cat "$tmp/ar.0.log"
rm -rf "$tmp"
