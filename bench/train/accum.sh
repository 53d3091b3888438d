#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Gradient accumulation (docs/training.md, "Gradient accumulation"): one
# process trains the Fashion-MNIST MLP (examples/models/mlp.onnx) at batch
# BATCH with micro_batches 1, 4 and 8, interleaved ROUNDS times; per run:
# trainrun --report's planned peak activation memory (one micro-batch's),
# the peak RSS, CPU seconds and the last logged samples/s.
# From the checkout (protoc encodes the config):
#   bench/train/accum.sh BUILD_DIR MLP_ONNX [BATCH] [STEPS] [ROUNDS]
set -eu
build=$1 model=$2 batch=${3:-2048} steps=${4:-40} rounds=${5:-3}
dir=$(mktemp -d /tmp/ty-accum-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
printf 'round micro planned_MiB rss_MiB cpu_s samples_per_s\n'
r=1
while [ "$r" -le "$rounds" ]; do
  for m in 1 4 8; do
    cat > "$dir/c.txtpb" <<CFG
softmax_cross_entropy { logits_output: "logits" }
label_input: "labels"
data_input: "x"
sgd { lr: 0.05 momentum: 0.9 }
batch_size: $batch
max_steps: $steps
micro_batches: "$m"
dataset { name: "fashion-mnist" dir: "/usr/share/datasets/fashion-mnist" mean: 0.2860 std: 0.3530 }
seed: 1
log_interval: 10
fusion: TOGGLE_ON
CFG
    protoc --encode=trainyard.TrainConfig --proto_path=proto proto/train_config.proto \
      < "$dir/c.txtpb" > "$dir/c.pb"
    /usr/bin/time -f 'TIME %U %S %M' "$build/ops/trainrun/trainrun" --model "$model" \
      --config "$dir/c.pb" --report --threads 1 > "$dir/out" 2>&1
    planned=$(sed -n 's/.*with planning \([0-9.]*\) MiB.*/\1/p' "$dir/out" | head -1)
    sps=$(sed -n 's/.*samples\/s \([0-9]*\).*/\1/p' "$dir/out" | tail -1)
    set -- $(sed -n 's/^TIME //p' "$dir/out")
    printf '%s %s %s %s %s %s\n' "$r" "$m" "$planned" "$(($3 / 1024))" \
      "$(echo "$1 + $2" | bc)" "$sps"
  done
  r=$((r + 1))
done
