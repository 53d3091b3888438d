#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 17's device check, for one H100/H200 machine, in under 8 minutes:
#   1. configure and build a release tree with CUDA required (-Dcuda=enabled),
#   2. NVRTC compile time per fused kernel of the example models and the
#      kernel cache over 100 steps (needs no GPU),
#   3. the gpu test suite (fused regions vs the CPU executor, cuBLAS GEMM,
#      the GPU inventory),
#   4. fused elementwise bandwidth vs cudaMemcpy D2D, GEMM vs cuBLAS alone,
#   5. the MLP / CNN / GPT training step on the GPU executor vs the CPU
#      executor (bench/gpu/step.c), and vs PyTorch CUDA when $PYTHON
#      (default /usr/bin/python3, which sees Debian's torch) imports torch
#      (bench/gpu/torch_step.py),
# and prints one markdown table (paste it into bench/RESULTS.md with the
# date). Without a GPU it prints what it could measure, says "no GPU" and
# exits 77.
#   bench/gpu/run.sh [BUILDDIR]     (default: build-gpu in the repository)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
b=${1:-$root/build-gpu}
jobs=$(nproc 2>/dev/null || echo 4)
log=$(mktemp /tmp/trainyard-gpu-XXXXXX.log)
start=$(date +%s)

step() { printf '[%3ds] %s\n' $(($(date +%s) - start)) "$*" >&2; }

step "build ($b, -j$jobs; log $log)"
if [ ! -f "$b/build.ninja" ]; then
  meson setup "$b" "$root" -Dcuda=enabled -Dbuildtype=release >> "$log" 2>&1
fi
ninja -C "$b" -j"$jobs" >> "$log" 2>&1 || { echo "build failed; see $log" >&2; exit 1; }

rows=()
add() { while IFS= read -r line; do rows+=("$line"); done; }

step "NVRTC compile time and kernel cache"
add < <("$b/bench/gpu/gpu_bench" nvrtc "$b/examples/models")

gpu=yes
if ! command -v nvidia-smi > /dev/null || ! nvidia-smi -L > /dev/null 2>&1; then gpu=; fi
if [ -n "$gpu" ]; then
  step "gpu test suite"
  if meson test -C "$b" --suite gpu --print-errorlogs >> "$log" 2>&1; then suite=pass; else suite=FAIL; fi
  rows+=("| gpu test suite (meson test --suite gpu) | $suite | - | - |")
  step "fused bandwidth"
  add < <("$b/bench/gpu/gpu_bench" fused)
  step "GEMM"
  add < <("$b/bench/gpu/gpu_bench" gemm)
  step "training steps: GPU executor vs CPU executor"
  add < <("$b/bench/gpu/gpu_step" "$b/examples/models" 20 2>> "$log" ||
          echo "| training steps | FAILED | - | see $log |")
  step "training steps: PyTorch CUDA"
  py=${PYTHON:-/usr/bin/python3}
  [ -x "$py" ] || py=python3
  add < <("$py" "$root/bench/gpu/torch_step.py" "$b/examples/models" 20 2>> "$log" ||
          echo "| PyTorch CUDA training steps | FAILED | - | see $log |")
  device=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)
else
  device="no GPU"
fi

echo
echo "bench/gpu/run.sh, $(date -u +%Y-%m-%d), device: $device, $(($(date +%s) - start)) s"
echo
echo "| metric | value | reference | ratio |"
echo "|---|---|---|---|"
printf '%s\n' "${rows[@]}"
if [ -z "$gpu" ]; then
  echo
  echo "no GPU: the device measurements and the gpu suite were not run"
  exit 77
fi
[ "${suite:-}" = pass ]
