#!/bin/bash
# SPDX-License-Identifier: Apache-2.0
# A planned job's memory per rank, fresh and resumed: a 2-stage pipeline
# (pipeline_stages "2", 2 workers; PLAN=tensor: the tensor-parallel plan
# instead, trainctl submit --parallelism tensor) of a 14.2M-parameter MLP (784-2048x4-10,
# torch-exported) with Adam on Fashion-MNIST, 30 steps with checkpoints at
# 10, 20 and 30 and the final evaluation; then the same job resumed from
# step 30 to 40. Every 0.1 s it samples RssAnon (and VmHWM) of each
# trainrun rank of the job's local cluster and prints the peaks; with
# SERIES=1 also rank 0's RssAnon over time (MiB), which shows the saves and
# the evaluation against the level between steps. PLAN=auto: the
# controller's choice (parallelism auto, no stages); MEM: the job's --mem
# (default 4G); EVAL=N: an evaluation every N steps too. It also prints
# each job's time from submit to its end.
#
#   bench/plan/ckpt_memory.sh BUILDDIR [WORKDIR] [PORT]
#
# Run it with two builds (before / after) on a quiet machine; see
# bench/RESULTS.md, "A pipeline's checkpoints and evaluation on rank 0".
set -eu
build=$(realpath "$1") work=${2:-/tmp/ty-ckpt-memory} port=${3:-8050}
here=$(cd "$(dirname "$0")/../.." && pwd)
mkdir -p "$work" && chmod 777 "$work" && cd "$work"
[ -f big.onnx ] || /usr/bin/python3 - <<'PY'
import torch, torch.nn as nn
torch.manual_seed(0)
layers = [nn.Linear(784, 2048)] + [nn.Linear(2048, 2048) for _ in range(3)]
class M(nn.Module):
    def __init__(s):
        super().__init__()
        s.hidden, s.out = nn.ModuleList(layers), nn.Linear(2048, 10)
    def forward(s, x):
        x = x.reshape(x.shape[0], 784)
        for l in s.hidden:
            x = torch.relu(l(x))
        return s.out(x)
torch.onnx.export(M(), (torch.zeros(64, 1, 28, 28),), "big.onnx", input_names=["x"],
                  output_names=["logits"], dynamic_axes={"x": {0: "N"}, "logits": {0: "N"}},
                  opset_version=17)
PY
config() { # STEPS -> NAME.pb
  protoc --proto_path="$here/proto" --encode=trainyard.TrainConfig train_config.proto >"$2" <<PB
softmax_cross_entropy { logits_output: "logits" } label_input: "labels" data_input: "x"
adam { lr: 0.001 } batch_size: 64 max_steps: $1 seed: 1 log_interval: 10
dataset { name: "fashion-mnist" dir: "/usr/share/datasets/fashion-mnist" mean: 0.2860 std: 0.3530 }
checkpoint_path: "$work/ck/big.onnx" checkpoint_interval: 10 $stages $every
PB
}
plan=${PLAN:-pipeline} stages='pipeline_stages: "2"' every=
[ "$plan" = pipeline ] || stages=
[ -n "${EVAL:-}" ] && every="eval_interval: $EVAL"
config 30 fresh.pb
config 40 resumed.pb
export TRAINYARD_PORT=$port
ctl=$build/cli/trainctl
run() { # LABEL CONFIG
  local state=$work/state-$1 st=
  rm -rf "$state" "$work/$1.series"
  "$here/deploy/cluster.sh" start -n 2 -b "$build" -s "$state" >/dev/null
  local id t0
  t0=$(date +%s.%N)
  id=$("$ctl" submit --quiet --model "$work/big.onnx" --config "$work/$2" --nodes 2 \
    --mem "${MEM:-4G}" --parallelism "$([ "$plan" = tensor ] && echo tensor || echo auto)")
  declare -A anon hwm
  while :; do
    st=$("$ctl" show "$id" | awk '/^ *state/ {print $2; exit}')
    for pid in $(pgrep -x trainrun); do
      grep -qa "TRAINYARD_CONTROLLER=127.0.0.1:$port" "/proc/$pid/environ" 2>/dev/null || continue
      local r a h
      r=$(tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | awk -F= '$1 == "RANK" {print $2}')
      [ -n "$r" ] || continue # it ended between the two reads
      a=$(awk '/RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
      h=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status" 2>/dev/null) || continue
      [ "${a:-0}" -gt "${anon[$r]:-0}" ] && anon[$r]=$a
      [ "${h:-0}" -gt "${hwm[$r]:-0}" ] && hwm[$r]=$h
      [ "$r" = 0 ] && echo "$(date +%s.%N) $((a / 1024))" >>"$work/$1.series"
    done
    case "$st" in COMPLETED | FAILED | CANCELLED | OUT_OF_MEMORY | TIMEOUT | NODE_FAIL) break ;; esac
    sleep 0.1
  done
  awk -v l="$1" -v st="$st" -v a="$(date +%s.%N)" -v b="$t0" \
    'BEGIN {printf "%s: %s %.1f s from submit to its end (0.1 s polls)\n", l, st, a - b}'
  for r in $(printf '%s\n' "${!anon[@]}" | sort); do
    echo "$1: $st; rank $r RssAnon peak $((anon[$r] / 1024)) MiB, VmHWM $((hwm[$r] / 1024)) MiB"
  done
  grep -h 'resumed from\|final test\|eval at\|^evaluation\|^plan:' \
    "$state"/worker*/jobs/"$id"/rank0.log || true
  if [ "${SERIES:-0}" = 1 ]; then
    awk 'NR == 1 {t0 = $1} {printf "%.1f:%d ", $1 - t0, $2} END {print ""}' "$work/$1.series"
  fi
  "$here/deploy/cluster.sh" stop -s "$state" >/dev/null
}
rm -rf "$work/ck"
run fresh fresh.pb
run resumed resumed.pb
