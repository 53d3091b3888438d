#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Evaluation's memory (docs/training.md, "Evaluation"): one process trains
# the example GPT (examples/models/gpt.onnx on the fortunes streams, batch
# 32) for STEPS steps and evaluates once at the end, with
# eval_batch_size 0 (the trainer's choice by memory), 1000 (every
# evaluation before the rule) and without a test split (training alone);
# per run the peak RSS, the wall time and the final test loss, ROUNDS
# times interleaved. From the checkout (protoc encodes the config):
#   bench/train/eval_memory.sh BUILD_DIR [STEPS] [ROUNDS]
set -eu
build=$1 steps=${2:-20} rounds=${3:-2}
models=$(cd "$build/examples/models" && pwd)
dir=$(mktemp -d /tmp/ty-eval-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
config() { # $1: eval_batch_size, or "none" for no test split
  sed -e "s/^max_steps: .*/max_steps: $steps/" -e '/^checkpoint_/d' \
    -e "s|\"fortunes-|\"$models/fortunes-|" examples/models/gpt.config.txtpb > "$dir/c.txtpb"
  if [ "$1" = none ]; then
    sed -i '/test_path/d' "$dir/c.txtpb"
  else
    echo "eval_batch_size: $1" >> "$dir/c.txtpb"
  fi
  protoc --proto_path=proto --encode=trainyard.TrainConfig train_config.proto \
    < "$dir/c.txtpb" > "$dir/c.pb"
}
printf 'round eval_batch_size rows_used rss_MiB wall_s final\n'
r=1
while [ "$r" -le "$rounds" ]; do
  for e in 0 1000 none; do
    config "$e"
    /usr/bin/time -f '%M %e' -o "$dir/time" "$build/ops/trainrun/trainrun" \
      --model "$models/gpt.onnx" --config "$dir/c.pb" > "$dir/log" 2>&1
    rows=$(sed -n 's/^evaluation: batches of \([0-9]*\) rows.*/\1/p' "$dir/log")
    [ "$e" = none ] && rows=- || rows=${rows:-1000}
    final=$(sed -n 's/^final test_accuracy [0-9.]* test_loss \([0-9.]*\)/\1/p' "$dir/log")
    read -r kb wall < "$dir/time"
    printf '%s %s %s %s %s %s\n' "$r" "$e" "$rows" "$((kb / 1024))" "$wall" "${final:--}"
  done
  r=$((r + 1))
done
