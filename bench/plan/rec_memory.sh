#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A planned rank's memory between steps, per plan: a recommendation model
# (nn.Embedding(200000, 64), Linear(64, 256), ReLU, Linear(256, 2); 12.8M
# parameters; Adam, batch 64, one epoch of 20,000 random samples) on a
# local cluster of 2 workers, submitted with --nodes 2 --mem MEM. The
# controller's kept CPU rate (STATEDIR/traind/cpu-flops-1) is written
# first, so FLOPS picks the plan: on 2 shared cores 1e10 gives the plan that
# splits the batch after the embedding, 4e10 the tensor-parallel one (both
# predicted at 97.9 MiB per device). Every 0.1 s it samples RssAnon of each
# trainrun rank and prints the job's state and plan, each rank's peak and
# its level at the 40th sample (between steps).
#
#   bench/plan/rec_memory.sh BUILDDIR FLOPS [MEM] [WORKDIR] [PORT]
#
# See bench/RESULTS.md, "The executor's buffers across steps".
set -eu
build=$(realpath "$1") flops=$2 mem=${3:-400M} work=${4:-/tmp/ty-rec-memory} port=${5:-8060}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work" && chmod 777 "$work" && cd "$work"
[ -f rec.onnx ] || /usr/bin/python3 - <<'PY'
import numpy as np, torch
torch.manual_seed(0)
class Rec(torch.nn.Module):
    def __init__(s):
        super().__init__()
        s.emb = torch.nn.Embedding(200000, 64)
        s.l1, s.l2 = torch.nn.Linear(64, 256), torch.nn.Linear(256, 2)
    def forward(s, x):
        return s.l2(torch.relu(s.l1(s.emb(x))))
torch.onnx.export(Rec(), (torch.zeros(64, dtype=torch.int64),), "rec.onnx", input_names=["x"],
                  output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
                  opset_version=17)
rng = np.random.default_rng(0)
np.save("train_x.npy", rng.integers(0, 200000, size=20000).astype(np.int64))
np.save("train_y.npy", rng.integers(0, 2, size=20000).astype(np.int64))
PY
protoc --proto_path="$here/proto" --encode=trainyard.TrainConfig train_config.proto >rec.config.pb <<PB
softmax_cross_entropy { logits_output: "logits" } label_input: "labels"
adam { lr: 0.001 } batch_size: 64 epochs: 1 seed: 1 log_interval: 20
dataset { dir: "$work" train { path: "train_x.npy" input: "x" } train { path: "train_y.npy" input: "labels" } }
PB
state=$work/cluster-$flops
export TRAINYARD_PORT=$port
"$here/deploy/cluster.sh" stop -s "$state" >/dev/null 2>&1 || true
rm -rf "$state"
"$here/deploy/cluster.sh" start -n 2 -b "$build" -s "$state" >/dev/null
trap '"$here/deploy/cluster.sh" stop -s "$state" >/dev/null 2>&1' EXIT
model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
echo "trainyard-cpu-flops 1 threads=1 flops=$flops cpu=$model" >"$state/traind/cpu-flops-1"
ctl=$build/cli/trainctl
id=$("$ctl" submit --quiet --model "$work/rec.onnx" --config "$work/rec.config.pb" --nodes 2 --mem "$mem")
declare -A peak at40
for i in $(seq 1 3000); do
  st=$("$ctl" show "$id" | awk '$1 == "state:" {print $2}')
  for pid in $(pgrep -f "trainrun --model $work/rec.onnx" || true); do
    r=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | awk -F= '$1 == "RANK" {print $2}')
    a=$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)
    if [ -z "$r" ] || [ -z "$a" ]; then continue; fi
    [ "$a" -gt "${peak[$r]:-0}" ] && peak[$r]=$a
    [ "$i" = 40 ] && at40[$r]=$a
  done
  case "$st" in COMPLETED | FAILED | OUT_OF_MEMORY | CANCELLED | TIMEOUT) break ;; esac
  sleep 0.1
done
"$ctl" show "$id" | grep -E "^ *state:|^Plan:"
for r in 0 1; do
  echo "rank $r: RssAnon at sample 40 $((${at40[$r]:-0} / 1024)) MiB, peak $((${peak[$r]:-0} / 1024)) MiB"
done
