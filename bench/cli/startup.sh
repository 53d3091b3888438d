#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# What trainctl does before its command runs (issue 20 item 3): shared
# libraries mapped, system calls, threads started, page faults and CPU time
# of `trainctl --version`, which does no work of its own.
# Usage: TY_BUILDDIR=build bench/cli/startup.sh [RUNS]
set -eu
B=${TY_BUILDDIR:-build}
T=$B/cli/trainctl
RUNS=${1:-50}
command -v strace >/dev/null || { echo "strace is needed (apt-get install strace)"; exit 77; }
command -v perf >/dev/null || { echo "perf is needed (apt-get install linux-perf)"; exit 77; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "shared libraries: $(ldd "$T" 2>/dev/null | grep -c '=>' || true)"
strace -f -o "$tmp/trace" "$T" --version >/dev/null
echo "system calls: $(wc -l < "$tmp/trace"), openat: $(grep -c openat "$tmp/trace" || true), threads started: $(grep -c -E 'clone|clone3' "$tmp/trace" || true)"
perf stat -r "$RUNS" "$T" --version 2>&1 >/dev/null | grep -E 'task-clock|page-faults|elapsed'
