#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Predicted against measured step time of executed plans: a model (default
# the Fashion-MNIST MLP, global batch 64) on RANKS ranks of this machine
# (default 4, one OpenBLAS thread each) as pure data parallel, tensor
# parallel and data x tensor, each planned with the planner's CPU cost
# model and run by trainrun --plan; then the plan the planner chooses
# itself (--parallelism auto). The cost model's rates are measured here:
# the device rate is trainrun's GEMM benchmark (--device-flops cpu, one
# thread) scaled by cores / ranks when the ranks outnumber the cores (they
# share them), the link bandwidth and per-step latency come from
# link_bench (ops/collective's checked all-reduce over the same ranks,
# fitted to the planner's ring formula). Measured step time: the median
# over the progress lines after the first (warm-up) of batch / samples/s.
# Each plan runs REPEAT times (default 3), round robin with the starting
# plan rotating, and its median is reported: other work on a shared
# machine only ever slows a run down.
# Starts its own traind (for the rendezvous) and stops it by PID.
#   [RANKS=4] [REPEAT=3] bench/plan/exec.sh [BUILDDIR] [STEPS] [MODEL]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=$(cd "${1:-$root/build}" && pwd) steps=${2:-300}
model=${3:-$b/examples/models/mlp.onnx}
ranks=${RANKS:-4}
tmp=$(mktemp -d /tmp/trainyard-planexec-XXXXXX)
"$b/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$tmp/st" \
  --port-file "$tmp/ports" > "$tmp/traind.log" 2>&1 &
ctl_pid=$!
trap 'kill $ctl_pid 2>/dev/null; wait $ctl_pid 2>/dev/null || true; rm -rf "$tmp"' EXIT
for _ in $(seq 200); do [ -s "$tmp/ports" ] && [ -s "$tmp/st/attach.key" ] && break; sleep 0.05; done
export TRAINYARD_CONTROLLER=127.0.0.1:$(sed -n 's/^rpc=//p' "$tmp/ports")
protoc --decode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto \
    < "$b/examples/models/mlp.config.pb" |
  sed -e 's/^checkpoint_path:.*//' -e 's/^log_interval:.*/log_interval: 25/' \
      -e 's/^eval_each_epoch:.*/eval_each_epoch: TOGGLE_OFF/' |
  protoc --encode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto > "$tmp/cfg.pb"
batch=$(protoc --decode=trainyard.TrainConfig --proto_path="$root/proto" train_config.proto < "$tmp/cfg.pb" |
  sed -n 's/^batch_size: //p')
job=$((RANDOM * 8))
start_ranks() { # world tag bin args...: starts the ranks of one job, waits for them
  local w=$1 tag=$2 pids=() r
  shift 2
  job=$((job + 1))
  for r in $(seq 0 $((w - 1))); do
    RANK=$r WORLD_SIZE=$w TRAINYARD_JOB_ID=$job \
      TRAINYARD_RENDEZVOUS_TOKEN=$("$b/bench/plan/rdv_token" "$tmp/st" "$job" "$r") \
      "$@" > "$tmp/$tag.rank$r.log" 2>&1 &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { echo "exec.sh: $tag failed:" >&2; cat "$tmp/$tag.rank0.log" >&2; exit 1; }; done
}
# The rates: the GEMM rate of one thread, the links of $ranks ranks.
"$b/ops/trainrun/trainrun" --model "$model" --config "$tmp/cfg.pb" --threads 1 --device-flops cpu \
  --parallelism data --mesh 1x1 --write-plan "$tmp/probe.plan" > "$tmp/probe.log"
cpu=$(sed -n 's/^cost model: 1 x 1 devices of \([^ ]*\) FLOP\/s.*/\1/p' "$tmp/probe.log")
flops=$(awk -v f="$cpu" -v c="$(nproc)" -v r="$ranks" 'BEGIN { s = c < r ? c / r : 1; printf "%.4g", f * s }')
start_ranks "$ranks" link "$b/bench/plan/link_bench"
link=$(cat "$tmp/link.rank0.log")
gbps=$(sed -n 's/.*intra_gbps=\([^ ]*\).*/\1/p' <<< "$link")
lat=$(sed -n 's/.*latency_us=\([^ ]*\).*/\1/p' <<< "$link")
rates=(--device-flops "$flops" --intra-gbps "$gbps" --latency-us "$lat" --launch-us 0)
echo "model $(basename "$model"), global batch $batch, $ranks ranks x 1 thread on $(nproc) cores ($(uname -m)), $steps steps"
echo "cost model: GEMM $cpu FLOP/s per thread -> $flops per rank; links: $link"
median() { sort -g | awk '{ v[NR] = $1 } END { printf "%.3f", NR ? (NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2) : 0 }'; }
# Measured ms per step: the median of batch / samples/s over the log lines
# after the first (the median, because other work on a shared machine
# slows some intervals down, never speeds one up).
measured() { awk -v b="$batch" '/^step /{ n++; if (n > 1) print b / $8 * 1000 }' "$1" | median; }
declare -A pred meas mesh why runs
modes=(data tensor grid auto)
for mode in "${modes[@]}"; do
  "$b/ops/trainrun/trainrun" --model "$model" --config "$tmp/cfg.pb" --parallelism "$mode" --mesh "1x$ranks" \
    "${rates[@]}" --write-plan "$tmp/$mode.plan" > "$tmp/$mode.write.log"
  pred[$mode]=$(sed -n 's/^predicted step: \([^ ]*\) ms.*/\1/p' "$tmp/$mode.write.log")
  mesh[$mode]=$(sed -n 's/^plan: mesh \([^ ]*\) .*/\1/p' "$tmp/$mode.write.log")
  why[$mode]=$(awk '$1 == "chosen" { for (i = 1; i <= 6; i++) $i = ""; sub(/^ +/, ""); print }' "$tmp/$mode.write.log")
done
# Round robin, REPEAT times, each round starting one plan later: a busy
# spell on a shared machine, or a position in the round, hits every plan alike.
for rep in $(seq "${REPEAT:-3}"); do
  for k in 0 1 2 3; do
    mode=${modes[$(((rep + k) % 4))]}
    start_ranks "$ranks" "$mode" "$b/ops/trainrun/trainrun" --model "$model" --config "$tmp/cfg.pb" --threads 1 \
      --steps "$steps" --plan "$tmp/$mode.plan"
    runs[$mode]+="$(measured "$tmp/$mode.rank0.log") "
  done
done
printf "%-8s %-5s %-30s %12s %12s %9s  %s\n" plan mesh why predicted_ms measured_ms meas/pred "runs (ms)"
for mode in "${modes[@]}"; do
  meas[$mode]=$(tr ' ' '\n' <<< "${runs[$mode]}" | grep . | median)
  printf "%-8s %-5s %-30s %12s %12s %9s  %s\n" "$mode" "${mesh[$mode]}" "${why[$mode]:0:30}" "${pred[$mode]}" \
    "${meas[$mode]}" "$(awk -v m="${meas[$mode]}" -v p="${pred[$mode]}" 'BEGIN { printf "%.2f", (p > 0) ? m / p : 0 }')" \
    "${runs[$mode]}"
done
po=$(for m in data tensor grid; do echo "${pred[$m]} $m"; done | sort -g | awk '{ printf "%s ", $2 }')
mo=$(for m in data tensor grid; do echo "${meas[$m]} $m"; done | sort -g | awk '{ printf "%s ", $2 }')
echo "rank order, predicted (fastest first): $po"
echo "rank order, measured  (fastest first): $mo"
[ "$po" = "$mo" ] && echo "rank orders agree" || echo "rank orders DIFFER"
best=${mo%% *} same=
for m in data tensor grid; do # the chosen plan is one of them when its ops and collectives are
  if cmp -s <(sed -n '/^OP /,$p' "$tmp/$m.write.log" | grep -v '^plan: written') \
            <(sed -n '/^OP /,$p' "$tmp/auto.write.log" | grep -v '^plan: written'); then same=$m; fi
done
echo "the chosen plan (auto) is ${same:-none of the three}${same:+ (the same ops and collectives)}; the best measured is $best"
awk -v a="${meas[auto]}" -v b="${meas[$best]}" -v n="$best" \
  'BEGIN { printf "chosen measured %.3f ms against the best measured (%s) %.3f ms: ratio %.2f\n", a, n, b, a / b }'
