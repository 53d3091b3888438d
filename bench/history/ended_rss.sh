#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# What ended jobs cost traind's memory: rounds of a large array (ELEMENTS
# elements of a 60 KB batch script, each `true`) on a local cluster of two
# workers; after each round has ended, traind's RssAnon, the jobs it holds
# (trainyard_jobs) and its cache of ended jobs (trainyard_job_cache_jobs,
# _bytes). Goal: bounded by the cache (docs/metrics.md), not by history.
# Usage: TY_BUILDDIR=build bench/history/ended_rss.sh [ELEMENTS] [ROUNDS]
set -eu
B=${TY_BUILDDIR:-build}
N=${1:-600}
ROUNDS=${2:-3}
PORT=${TY_BENCH_PORT:-27950}
tmp=$(mktemp -d)
cleanup() { ./deploy/cluster.sh stop -s "$tmp/state" >/dev/null 2>&1 || true; rm -rf "$tmp"; }
trap cleanup EXIT
TRAINYARD_PORT=$PORT ./deploy/cluster.sh start -n 2 -c 2 -b "$B" -s "$tmp/state" -a none >/dev/null
export TRAINYARD_CONTROLLER=127.0.0.1:$PORT TRAINYARD_SOCKET=$tmp/state/traind/traind.sock
tc="$B/cli/trainctl"
{ echo '#!/bin/sh'; i=0; while [ $i -lt 600 ]; do printf '# %096d\n' 0; i=$((i + 1)); done; echo true; } \
  > "$tmp/big.sh"
chmod 755 "$tmp/big.sh"
pid=$(cat "$tmp/state/pids/traind.pid")
rss() { awk '/RssAnon/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status"; }
metric() {
  curl -s "http://127.0.0.1:$((PORT + 1))/metrics" | awk -v m="$1" 'index($1, m) == 1 {s += $2} END {print s + 0}'
}
printf '| after | traind RssAnon (MiB) | jobs in memory | ended jobs cached | cache bytes (MiB) |\n'
printf '| --- | --- | --- | --- | --- |\n'
printf '| start | %s | - | - | - |\n' "$(rss)"
r=1
while [ $r -le "$ROUNDS" ]; do
  $tc submit --parsable --array "0-$((N - 1))" --output /dev/null "$tmp/big.sh" >/dev/null
  while [ -n "$($tc ls --noheader)" ]; do sleep 1; done
  sleep 2
  printf '| round %d (%d elements) | %s | %s | %s | %.1f |\n' "$r" "$N" "$(rss)" "$(metric 'trainyard_jobs{')" \
    "$(metric trainyard_job_cache_jobs)" "$(echo "$(metric trainyard_job_cache_bytes) / 1048576" | bc -l)"
  r=$((r + 1))
done
