#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Issue 13's measurement: traind's and a worker's resident memory and the
# latency of `trainctl nodes` (p50, p99 over PROBES runs), first idle, then
# while bench/hostile/hostile holds CONNS hostile connections (slowloris,
# oversized frames, pipelining without reading; reconnecting whatever the
# server closes) against traind's RPC port and as many against the worker's
# task I/O port. Prints a markdown table with the ratios.
#   bench/hostile/run.sh [BUILDDIR] [CONNS] [PROBES] [HOLD_S]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
conns=${2:-1000}
probes=${3:-200}
hold=${4:-40}
dir=$(mktemp -d /tmp/ty-hostile.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$build/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --state-dir "$dir/traind" \
  --port-file "$dir/traind.ports" 2> "$dir/traind.log" &
traind=$!; pids+=("$traind")
while ! grep -q metrics= "$dir/traind.ports" 2>/dev/null; do sleep 0.05; done
rpc=$(sed -n 's/^rpc=//p' "$dir/traind.ports"); metrics=$(sed -n 's/^metrics=//p' "$dir/traind.ports")
"$build/worker/trainworkerd" --controller "127.0.0.1:$rpc" --name w1 --state-dir "$dir/w1" \
  --io-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --port-file "$dir/w1.ports" --cpus 2 2> "$dir/w1.log" &
worker=$!; pids+=("$worker")
while ! grep -q metrics= "$dir/w1.ports" 2>/dev/null; do sleep 0.05; done
io=$(sed -n 's/^io=//p' "$dir/w1.ports")
ctl=("$build/cli/trainctl" --controller "127.0.0.1:$rpc")
until "${ctl[@]}" nodes 2>/dev/null | grep -q UP; do sleep 0.1; done

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
# PROBES runs of `trainctl nodes`: "p50_ms p99_ms failures"
probe() {
  local t0 t1 fails=0
  : > "$dir/lat"
  for _ in $(seq "$probes"); do
    t0=$(date +%s%N)
    "${ctl[@]}" nodes > /dev/null 2>&1 || fails=$((fails + 1))
    t1=$(date +%s%N)
    echo $(( (t1 - t0) / 1000 )) >> "$dir/lat"
  done
  sort -n "$dir/lat" | awk -v f="$fails" '{v[NR] = $1} END {
    p50 = v[int(NR * 0.50 + 0.5)]; p99 = v[int(NR * 0.99 + 0.5)];
    printf "%.2f %.2f %d\n", p50 / 1000, p99 / 1000, f }'
}
# The largest RSS of both daemons over a few seconds: "traind_kb worker_kb"
peak_rss() {
  local a=0 b=0 x y
  for _ in $(seq 10); do
    x=$(rss_kb "$traind"); y=$(rss_kb "$worker")
    [ "$x" -gt "$a" ] && a=$x; [ "$y" -gt "$b" ] && b=$y
    sleep 0.5
  done
  echo "$a $b"
}

read -r base_t base_w <<< "$(peak_rss)"
read -r base_p50 base_p99 base_fail <<< "$(probe)"

"$build/bench/hostile/hostile" --port "$rpc" --conns "$conns" --seconds "$hold" > "$dir/hostile-rpc.log" &
pids+=("$!")
"$build/bench/hostile/hostile" --port "$io" --conns "$conns" --seconds "$hold" > "$dir/hostile-io.log" &
pids+=("$!")
sleep 10 # every connection open, the first deadlines passed
read -r hot_t hot_w <<< "$(peak_rss)"
open_rpc=$(curl -s "http://127.0.0.1:$metrics/metrics" | awk '/^trainyard_connections\{listener="rpc"\}/ {print $2}')
read -r hot_p50 hot_p99 hot_fail <<< "$(probe)"
curl -s "http://127.0.0.1:$metrics/metrics" | grep '^trainyard_connections' > "$dir/conn-metrics.txt" || true
wait "${pids[2]}" "${pids[3]}" || true

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b / a }'; }
echo "| measure ($conns hostile connections per port, $probes probes) | idle | hostile | hostile / idle |"
echo "| --- | --- | --- | --- |"
echo "| traind RSS (MiB) | $((base_t / 1024)) | $((hot_t / 1024)) | $(ratio "$base_t" "$hot_t") |"
echo "| trainworkerd RSS (MiB) | $((base_w / 1024)) | $((hot_w / 1024)) | $(ratio "$base_w" "$hot_w") |"
echo "| trainctl nodes p50 (ms) | $base_p50 | $hot_p50 | $(ratio "$base_p50" "$hot_p50") |"
echo "| trainctl nodes p99 (ms) | $base_p99 | $hot_p99 | $(ratio "$base_p99" "$hot_p99") |"
echo "| trainctl nodes failures | $base_fail | $hot_fail | |"
echo
echo "traind's open RPC connections while the RSS was sampled: ${open_rpc:-?}"
sed 's/^/traind: /' "$dir/conn-metrics.txt"
tail -1 "$dir/hostile-rpc.log" | sed 's/^/rpc port: /'
tail -1 "$dir/hostile-io.log" | sed 's/^/io port: /'
echo "logs in $dir"
