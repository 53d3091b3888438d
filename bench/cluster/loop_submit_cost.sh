#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The controller's cost per job in issue 15's loop case: 8 concurrent
# client loops submitting N `true` jobs in all (one trainctl process per
# job), one worker advertising 64 CPUs, until every job ended. For each
# build, two runs on fresh state:
#   - plain: the wall time of the submits and of the whole case, and the
#     group commits the controller made for it (trainyard_store_commits_total
#     on its metrics port, before and after): fewer commits than jobs means
#     concurrent submits, starts and ends shared one transaction and fsync;
#   - traind under callgrind, its counters zeroed before the loops and
#     dumped once every job ended: instructions per job (its submit, its
#     start and its end, plus the 1 s ticks of the window), which the
#     machine's load does not change (callgrind slows traind, so this run's
#     times are not reported).
# Prints one markdown row per build and run.
#
# BUILD_A `-` runs B alone.
#
#   bench/cluster/loop_submit_cost.sh BUILD_A BUILD_B [N]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BUILD_A BUILD_B [N]" >&2; exit 2; }
a=-
[ "$1" = - ] || a=$(cd "$1" && pwd)
b=$(cd "$2" && pwd)
n=${3:-1000}
loops=8
# shellcheck source=bench/cluster/lib.sh
. "$(dirname "$0")/lib.sh"
bench_init loop-cost 17990
command -v curl >/dev/null || { echo "curl is needed"; exit 77; }

# one BUILD LABEL [WRAPPER...]: prints "submit_s total_s commits instructions"
one() {
  local build=$1 ctl="$1/cli/trainctl" s="$work/$2" t0 sub tot c0 c1 ir=-
  shift 2
  start_cluster "$build" "$s" "$@"
  [ $# -gt 0 ] && callgrind_control -z "$tpid" >/dev/null 2>&1
  c0=$(metric trainyard_store_commits_total)
  t0=$EPOCHREALTIME
  local per=$((n / loops)) lp=()
  for _ in $(seq 1 "$loops"); do
    (for _ in $(seq 1 "$per"); do "$ctl" submit --quiet --command -- true >/dev/null; done) &
    lp+=($!)
  done
  for p in "${lp[@]}"; do wait "$p"; done
  sub=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  until [ "$("$ctl" ls --array --noheader | wc -l)" = 0 ]; do sleep 0.05; done
  tot=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
  c1=$(metric trainyard_store_commits_total)
  [ $# -gt 0 ] && ir=$(callgrind_count "$tpid" "$s" "/tmp/loop-cost.$label.callgrind")
  stop_cluster
  echo "$sub $tot $((c1 - c0)) $ir"
}

echo "| build | run | jobs | submit (s) | all ended (s) | group commits | commits per job | traind instructions | per job |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for label in A B; do
  [ "$label" = A ] && [ "$a" = - ] && continue
  build=$a
  [ "$label" = B ] && build=$b
  one "$build" "$label-plain" >"$work/row"
  read -r sub tot cm _ <"$work/row"
  echo "| $label | plain | $n | $sub | $tot | $cm | $(awk -v c="$cm" -v n="$n" 'BEGIN { printf "%.2f", c / n }') | - | - |"
  one "$build" "$label-cg" valgrind --tool=callgrind --callgrind-out-file="$work/$label-cg/cg.%p" >"$work/row"
  read -r _ _ cm ir <"$work/row"
  echo "| $label | callgrind | $n | - | - | $cm | $(awk -v c="$cm" -v n="$n" 'BEGIN { printf "%.2f", c / n }') | $ir | $((ir / n)) |"
done
