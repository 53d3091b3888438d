#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A planned job made of many small plan collectives, under two builds one
# after the other: a 12.8M-parameter GPT (examples/models/gen_gpt.py: 4
# layers, width 512, 8 heads) on the fortunes token stream, 2 workers,
# --mem 400M, so the planner picks gradient accumulation over 32
# micro-batches of 1 row on a 2x1 mesh (some 1,100 plan collectives a
# step), 10 steps without evaluation or checkpoints. Prints each build's
# job time and rank 0's collective line (time in the checks, plan
# collectives and their time) and the ratios B / A.
#
#   bench/plan/mesh_checks.sh BUILD_A BUILD_B [WORKDIR] [PORT]
#
# BUILD_* are build folders (their traind, trainworkerd, trainctl and
# trainrun run the job); see bench/RESULTS.md, "Plan collectives: the
# check travels with the collective".
set -eu
here=$(cd "$(dirname "$0")/../.." && pwd)
a=$(realpath "$1") b=$(realpath "$2") work=${3:-/tmp/ty-mesh-checks} port=${4:-8075}
mkdir -p "$work" && chmod 777 "$work" && cd "$work"
[ -f gpt_big.onnx ] || /usr/bin/python3 "$here/examples/models/gen_gpt.py" gpt_big.onnx \
  --layers 4 --width 512 --heads 8 2>/dev/null
cp "$a/examples/models/fortunes-train.bin" "$a/examples/models/fortunes-val.bin" .
protoc --proto_path="$here/proto" --encode=trainyard.TrainConfig train_config.proto >g10.pb <<PB
softmax_cross_entropy { logits_output: "logits" } data_input: "idx" label_input: "labels"
adam { lr: 0.001 beta1: 0.9 beta2: 0.99 weight_decay: 0.01 decoupled_weight_decay: true }
batch_size: 32 max_steps: 10 seed: 1 log_interval: 5 eval_each_epoch: TOGGLE_OFF
dataset { tokens { train_path: "$work/fortunes-train.bin" test_path: "$work/fortunes-val.bin"
  dtype: UINT16 context: 64 stride: 0 vocab_size: 256 labels: NEXT } shuffle: TOGGLE_ON }
PB

# run BUILD TAG: the job on a fresh cluster of BUILD; sets secs[TAG], coll[TAG]
declare -A secs coll
run() {
  local build=$1 tag=$2 state=$work/state-$2
  rm -rf "$state"
  TRAINYARD_PORT=$port "$here/deploy/cluster.sh" start -n 2 -b "$build" -s "$state" >/dev/null
  local ctl=$build/cli/trainctl t0 id
  export TRAINYARD_CONTROLLER=127.0.0.1:$port
  id=$("$ctl" submit --quiet --model "$work/gpt_big.onnx" --config "$work/g10.pb" --nodes 2 \
    --mem 400M --name g10)
  t0=$(date +%s.%N)
  while "$ctl" ls | grep -q " g10 "; do sleep 0.5; done
  secs[$tag]=$(echo "$(date +%s.%N) - $t0" | bc)
  "$ctl" show "$id" | grep -E "^ *state:"
  coll[$tag]=$("$ctl" logs "$id" | grep "^0: collective: .*plan collectives")
  echo "$tag ($build): job ${secs[$tag]} s; ${coll[$tag]}"
  TRAINYARD_PORT=$port "$here/deploy/cluster.sh" stop -s "$state" >/dev/null
}
run "$a" A
run "$b" B
# plan collectives' seconds: the last number of the collective line
pa=$(echo "${coll[A]}" | awk '{print $(NF-1)}') pb=$(echo "${coll[B]}" | awk '{print $(NF-1)}')
echo "B / A: job $(echo "scale=3; ${secs[B]} / ${secs[A]}" | bc), plan collectives" \
  "$(echo "scale=3; $pb / $pa" | bc)"
