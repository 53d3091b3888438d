#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Writes a graph job file (a binary trainyard.Job) for `trainctl submit`:
#   deploy/graph-job.sh MODEL.onnx CONFIG.pb NODES TASKS_PER_NODE NAME [PARALLELISM] > job.pb
# The model goes by absolute path (it must be readable on every node: the
# shared filesystem); the encoded TrainConfig is embedded. PARALLELISM is
# auto (the default: the controller plans it), data, tensor or grid.
# Needs protoc.
set -euo pipefail
[ $# -eq 5 ] || [ $# -eq 6 ] ||
  { echo "usage: $0 MODEL.onnx CONFIG.pb NODES TASKS_PER_NODE NAME [auto|data|tensor|grid]" >&2; exit 2; }
case "${6:-auto}" in
  auto|data|tensor|grid) parallelism=PARALLELISM_$(tr a-z A-Z <<<"${6:-auto}") ;;
  *) echo "$0: PARALLELISM must be auto, data, tensor or grid, not \"$6\"" >&2; exit 2 ;;
esac
root=$(cd "$(dirname "$0")/.." && pwd)
model=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
# protobuf text format takes bytes as octal escapes: \010\022...
config=$(od -An -v -to1 "$2" | tr -s ' \n' ' ' | sed 's/^ //; s/ $//; s/ /\\/g; s/^/\\/')
printf 'name: "%s"\nresources { nodes: %s tasks_per_node: %s }\ngraph {\n  model_path: "%s"\n  train_config: "%s"\n  parallelism: %s\n}\n' \
  "$5" "$3" "$4" "$model" "$config" "$parallelism" |
  protoc --encode=trainyard.Job --proto_path="$root/proto" "$root/proto/trainyard.proto"
