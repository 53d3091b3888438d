#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The long fuzzing run of issue 13: every libFuzzer target of tests/fuzz for
# RUNS executions (default 10^7) or MAX_S seconds, whichever ends first, one
# after the other at nice 19, over a working corpus in BUILDDIR/tests/fuzz/
# corpus/NAME plus the seeds. Prints a markdown table: executions, seconds,
# executions/s, crashes (artifacts are written to BUILDDIR/tests/fuzz/long/;
# copy each into tests/fuzz/corpus/NAME/ as a regression input).
#   bench/fuzz/long_run.sh [BUILDDIR] [RUNS] [MAX_S] [TARGET...]
set -uo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
runs=${2:-10000000}
max_s=${3:-7200}
shift $(( $# > 3 ? 3 : $# ))
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(sched_config train_config envelope import daemon npy http worker check frame idx plan)
out=$build/tests/fuzz/long
mkdir -p "$out"
echo "| target | executions | seconds | executions/s | crashes |"
echo "| --- | --- | --- | --- | --- |"
total=0
for t in "${targets[@]}"; do
  exe=$build/tests/fuzz/fuzz_$t
  [ -x "$exe" ] || { echo "| $t | (not built: clang's fuzzer runtime missing?) | | | |"; continue; }
  mkdir -p "$build/tests/fuzz/corpus/$t" "$out/$t"
  maxlen=65536; [ "$t" = import ] && maxlen=262144
  start=$(date +%s)
  ASAN_OPTIONS=detect_leaks=1 nice -n 19 "$exe" -runs="$runs" -max_total_time="$max_s" \
    -artifact_prefix="$out/$t/" -rss_limit_mb=2048 -timeout=10 -max_len=$maxlen -print_final_stats=1 \
    "$build/tests/fuzz/corpus/$t" "tests/fuzz/corpus/$t" > "$out/$t.log" 2>&1
  secs=$(( $(date +%s) - start ))
  n=$(awk '/stat::number_of_executed_units/ {print $2}' "$out/$t.log")
  crashes=$(find "$out/$t" -type f | wc -l)
  total=$((total + ${n:-0}))
  echo "| $t | ${n:-?} | $secs | $(( ${n:-0} / (secs > 0 ? secs : 1) )) | $crashes |"
done
echo "| all | $total | | | |"
