#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# A whole run's checkpoint save and resume (docs/training.md, "Length,
# schedule and checkpoints"): one process trains MODEL (a GPT from
# examples/models/gen_gpt.py, e.g. --layers 4 --width 512 --heads 8 for
# 12.8M parameters) on the fortunes stream in batches of 4 with Adam:
# 2 steps without a checkpoint, 2 steps saving one at the end, then a run
# to step 3 resuming it; per run the peak RSS and the wall time, ROUNDS
# times. From the checkout (protoc encodes the config):
#   bench/train/save_memory.sh BUILD_DIR MODEL [ROUNDS]
set -eu
build=$1 model=$2 rounds=${3:-2}
models=$(cd "$build/examples/models" && pwd)
dir=$(mktemp -d /tmp/ty-save-bench-XXXXXX)
trap 'rm -rf "$dir"' EXIT
config() { # $1: name, $2: max_steps, $3: with a checkpoint (1) or not (0)
  sed -e "s/^max_steps: .*/max_steps: $2/" -e 's/^batch_size: .*/batch_size: 4/' \
    -e '/^checkpoint_/d' -e '/test_path/d' -e "s|\"fortunes-|\"$models/fortunes-|" \
    examples/models/gpt.config.txtpb > "$dir/$1.txtpb"
  [ "$3" = 1 ] && echo "checkpoint_path: \"$dir/ck/m.onnx\"" >> "$dir/$1.txtpb"
  protoc --proto_path=proto --encode=trainyard.TrainConfig train_config.proto \
    < "$dir/$1.txtpb" > "$dir/$1.pb"
}
config plain 2 0
config save 2 1
config resume 3 1
printf 'round run rss_MiB wall_s\n'
r=1
while [ "$r" -le "$rounds" ]; do
  rm -rf "$dir/ck" && mkdir "$dir/ck"
  for run in plain save resume; do
    /usr/bin/time -f '%M %e' -o "$dir/time" "$build/ops/trainrun/trainrun" --model "$model" \
      --config "$dir/$run.pb" > "$dir/log" 2>&1
    read -r kb wall < "$dir/time"
    printf '%s %s %s %s\n' "$r" "$run" "$((kb / 1024))" "$wall"
  done
  r=$((r + 1))
done
