#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Trainyard vs PyTorch on examples/models (MLP and CNN): per-epoch time with
# fusion on, fusion off and PyTorch at the same thread count and batch size,
# and the loss curves over the first 100 steps from the same weights with
# plain SGD and the same batch order. See bench_vs_pytorch.py for method.
#
#   bench/train/bench_vs_pytorch.sh [BUILD_DIR] [-- options of the .py]
#   e.g. bench/train/bench_vs_pytorch.sh build -- --threads 2 --cnn-steps 200
#
# Needs python3-torch (deploy/install-deps.sh with TY_BENCH_DEPS=1),
# python3-onnx, protoc and dataset-fashion-mnist. The system python is used
# on purpose: a pyenv or virtualenv python does not see Debian's torch.
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
[ $# -gt 0 ] && shift
[ "${1:-}" = "--" ] && shift
ninja -C "$build" ops/trainrun/trainrun examples/models/mlp.onnx examples/models/cnn.onnx >/dev/null
work=$(mktemp -d /tmp/ty_bench_train.XXXXXX)
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$root/bench/train/bench_vs_pytorch.py" --build "$build" --proto "$root/proto" \
  --work "$work" "$@"
