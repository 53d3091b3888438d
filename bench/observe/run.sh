#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The observability surfaces under load (issue 16): a controller with 1,000
# running and 10,000 pending jobs (4 workers claiming 250 CPUs each, every
# job `sleep` on 1 CPU), then
#   - latency and size of traind's /metrics and of the web console's JSON
#     documents (curl, N requests each, median and p95),
#   - a worker's /metrics with 250 running tasks (its per-task CPU and
#     memory come from one walk of /proc per scrape),
#   - the console's first load in headless Chromium (first_load.py, over
#     the DevTools protocol): the time from navigation to the first view's
#     data on screen (the page records it in body[data-first-render-ms]),
#     for the overview, the job list and a job.
# Everything runs on loopback with --auth none (a development cluster: the
# console's loopback clients need no token) and is stopped by PID at the end.
#
#   bench/observe/run.sh [BUILDDIR] [RUNNING] [PENDING] [REQUESTS]
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build}
running=${2:-1000}
pending=${3:-10000}
reqs=${4:-20}
work=$(mktemp -d /tmp/trainyard-observe-XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port_of() { # FILE KEY
  for _ in $(seq 1 500); do
    [ -s "$1" ] && grep -q "^$2=" "$1" && { grep "^$2=" "$1" | cut -d= -f2; return; }
    sleep 0.02
  done
  echo "no $2 in $1" >&2; exit 1
}

"$build/daemon/traind" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 --web-listen 127.0.0.1:0 \
  --state-dir "$work/traind" --port-file "$work/traind.ports" --log-level warn --auth none \
  >"$work/traind.log" 2>&1 &
pids+=($!)
rpc=$(port_of "$work/traind.ports" rpc)
metrics=$(port_of "$work/traind.ports" metrics)
web=$(port_of "$work/traind.ports" web)
workers=4 per=$(( (running + 3) / 4 ))
for i in $(seq 1 $workers); do
  "$build/worker/trainworkerd" --controller "127.0.0.1:$rpc" --name "w$i" --cpus "$per" \
    --state-dir "$work/w$i" --io-listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    --port-file "$work/w$i.ports" --log-level warn --auth none >"$work/w$i.log" 2>&1 &
  pids+=($!)
done
wmetrics=$(port_of "$work/w1.ports" metrics)
export TRAINYARD_CONTROLLER=127.0.0.1:$rpc
ctl=$build/cli/trainctl
for _ in $(seq 1 200); do
  [ "$($ctl nodes --json | grep -c '"UP"')" -ge $workers ] && break; sleep 0.1
done

t0=$(date +%s.%N)
seq 1 $((running + pending)) | xargs -P 4 -I{} "$ctl" submit --quiet --command --cpus 1 --name "job{}" -- sleep 7200 >/dev/null
t1=$(date +%s.%N)
for _ in $(seq 1 600); do
  n=$(curl -s "http://127.0.0.1:$web/api/cluster" | grep -o '"RUNNING":[0-9]*' | cut -d: -f2)
  [ "${n:-0}" -ge "$running" ] && break; sleep 0.5
done
echo "submitted $((running + pending)) jobs in $(echo "$t1 - $t0" | bc) s; running: $n"

measure() { # NAME URL
  local times sizes
  times=$(for _ in $(seq 1 "$reqs"); do curl -s -o /dev/null -w '%{time_total}\n' "$2"; done | sort -n)
  sizes=$(curl -s -o /dev/null -w '%{size_download}' "$2")
  local med p95
  med=$(echo "$times" | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]*1000}')
  p95=$(echo "$times" | awk '{a[NR]=$1} END {i=int(NR*0.95+0.5); if(i<1)i=1; print a[i]*1000}')
  printf '| %s | %s | %.1f | %.1f |\n' "$1" "$sizes" "$med" "$p95"
}
first=$(curl -s "http://127.0.0.1:$web/api/jobs?state=RUNNING&limit=1" | grep -o '"id":[0-9]*' | head -1 | cut -d: -f2)
echo
echo "| endpoint | bytes | median ms | p95 ms |"
echo "| --- | ---: | ---: | ---: |"
measure "traind /metrics" "http://127.0.0.1:$metrics/metrics"
measure "worker /metrics ($per tasks)" "http://127.0.0.1:$wmetrics/metrics"
measure "/api/cluster" "http://127.0.0.1:$web/api/cluster"
measure "/api/jobs (default: newest 500)" "http://127.0.0.1:$web/api/jobs"
measure "/api/jobs?state=RUNNING&limit=10000" "http://127.0.0.1:$web/api/jobs?state=RUNNING&limit=10000"
measure "/api/jobs?limit=10000" "http://127.0.0.1:$web/api/jobs?limit=10000"
measure "/api/jobs/ID" "http://127.0.0.1:$web/api/jobs/$first"

if command -v chromium >/dev/null && /usr/bin/python3 -c 'import websockets' 2>/dev/null; then
  echo
  echo "first data on screen, ms since navigation (3 loads, each a fresh browser):"
  /usr/bin/python3 "$root/bench/observe/first_load.py" 3 "http://127.0.0.1:$web/#/" \
    "http://127.0.0.1:$web/#/jobs" "http://127.0.0.1:$web/#/job/$first"
fi
