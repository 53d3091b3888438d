#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Trainyard vs PyTorch on examples/models (MLP, CNN, ResNet-style CNN, GPT):
# time per step at 1 and 2 cores, PyTorch at its best thread setting on the
# same cores, interleaved runs, medians, load average noted. See
# bench_vs_pytorch.py for the method.
#
#   bench/train/bench_vs_pytorch.sh [BUILD_DIR] [-- options of the .py]
#   e.g. bench/train/bench_vs_pytorch.sh build -- --reps 5 --models cnn gpt
#   CPU time per step on one core, a second trainrun binary side by side:
#   taskset -c 1 bench/train/bench_vs_pytorch.sh build -- --cpu-time --baseline OLD/trainrun
#
# Needs python3-torch, python3-onnx, protoc, dataset-fashion-mnist and, for
# the GPT, the fortunes package (deploy/install-deps.sh installs them). The
# system python is used on purpose: a pyenv or virtualenv python does not
# see Debian's torch.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
ninja -C "$build" ops/trainrun/trainrun examples/models/mlp.onnx >/dev/null
ninja -C "$build" examples/models/gpt.onnx examples/models/fortunes-train.bin >/dev/null 2>&1 ||
  echo "bench_vs_pytorch: no GPT example in this build (python3-torch or fortunes missing)" >&2
work=$(mktemp -d /tmp/ty_bench_train.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$root/bench/train/bench_vs_pytorch.py" --build "$build" --proto "$root/proto" \
  --work "$work" "$@"
