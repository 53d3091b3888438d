#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Starts and stops a local Trainyard cluster: one traind and N trainworkerd
# processes on loopback, state under a folder of the checkout (var/ by
# default). Processes are tracked by PID files and stopped by PID.
# Authentication (docs/security.md): -a none (the default here) starts a
# single-user development cluster whose requests carry no credential, and
# says so; -a munge authenticates every request with munged (its default
# socket, or $TRAINYARD_MUNGE_SOCKET). Either way traind's config
# (STATEDIR/traind.conf) lists the workers in auth.nodes.
# Ports: traind PORT (default 7810, or $TRAINYARD_PORT), its /metrics PORT+1,
# its web console PORT+2 (with -w), worker i's /metrics PORT+20+i (deploy/prometheus.yml scrapes these); task
# I/O ports are ephemeral (workers report them to the controller).
#
#   deploy/cluster.sh start [-n WORKERS] [-b BUILDDIR] [-s STATEDIR] [-c CPUS] [-a none|munge] [-w]
#   deploy/cluster.sh stop  [-s STATEDIR]
#   deploy/cluster.sh status [-s STATEDIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}; shift || true
workers=2 builddir="$root/build" state="$root/var" cpus="" auth=none web=0
port=${TRAINYARD_PORT:-7810}
usage() {
  echo "usage: $0 start [-n WORKERS] [-b BUILDDIR] [-s STATEDIR] [-c CPUS] [-a none|munge] [-w]" >&2
  echo "       $0 stop|status [-s STATEDIR]" >&2
  echo "  TRAINYARD_PORT=PORT (default 7810) moves traind to PORT and the metrics ports after it" >&2
  echo "  (PORT+1, PORT+2, PORT+21..): set it when another cluster on this host holds them" >&2
  exit 2
}
case $cmd in start | stop | status) ;; *) usage ;; esac
while getopts "n:b:s:c:a:w" o; do
  case $o in
    n) workers=$OPTARG ;; b) builddir=$OPTARG ;; s) state=$OPTARG ;; c) cpus=$OPTARG ;;
    a) auth=$OPTARG ;; w) web=1 ;;
    *) usage ;;
  esac
done
case $auth in none | munge) ;; *) echo "cluster: -a must be none or munge, not $auth" >&2; exit 2 ;; esac
auth_flags=(--auth "$auth")
[ -n "${TRAINYARD_MUNGE_SOCKET:-}" ] && auth_flags+=(--munge-socket "$TRAINYARD_MUNGE_SOCKET")
mkdir -p "$state"
state=$(cd "$state" && pwd) # daemons get absolute paths
piddir="$state/pids"

alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# wait_file PORTFILE LOG: the daemon's port file, or its last error and
# what to do about a port another cluster holds.
wait_file() {
  for _ in $(seq 1 500); do [ -s "$1" ] && return 0; sleep 0.02; done
  echo "cluster: $1 did not appear; see $2" >&2
  local why
  why=$(grep -E "ERROR|FATAL" "$2" 2>/dev/null | tail -n 1)
  [ -n "$why" ] && echo "cluster: $why" >&2
  case $why in *"address already in use"*)
    echo "cluster: another process holds port $port or one after it: stop it, or start" \
      "with TRAINYARD_PORT=PORT $0 start ..." >&2 ;;
  esac
  return 1
}

start() {
  for b in daemon/traind worker/trainworkerd; do
    if [ ! -x "$builddir/$b" ]; then
      echo "cluster: $builddir/$b not found: build first (meson setup build && ninja -C build)," \
        "or name the build folder with -b BUILDDIR" >&2
      exit 1
    fi
  done
  mkdir -p "$piddir" "$state/logs" "$state/tmp"
  chmod 1777 "$state/tmp" # the tasks' private TMPDIRs, sticky as /tmp
  if alive "$piddir/traind.pid"; then
    echo "cluster: already running (traind pid $(cat "$piddir/traind.pid"))" >&2; exit 1
  fi
  rm -f "$state"/*.ports
  echo "auth.nodes = worker[1-$workers]" >"$state/traind.conf"
  webflag=()
  [ "$web" = 1 ] && webflag=(--web-listen "127.0.0.1:$((port + 2))")
  "$builddir/daemon/traind" --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$((port + 1))" \
    --state-dir "$state/traind" --port-file "$state/traind.ports" --config "$state/traind.conf" \
    "${auth_flags[@]}" "${webflag[@]}" >>"$state/logs/traind.log" 2>&1 &
  echo $! >"$piddir/traind.pid"
  wait_file "$state/traind.ports" "$state/logs/traind.log"
  for i in $(seq 1 "$workers"); do
    extra=()
    [ -n "$cpus" ] && extra=(--cpus "$cpus")
    # The cgroup subtree carries the port: two clusters on one machine (a
    # bench beside a user's) must not share, and remove, each other's.
    # Every rank is on this host: Open MPI stays on lo, never on a bridge
    # that a container or a test makes and removes while a job runs. The
    # tasks' TMPDIRs are the cluster's too: job ids repeat across clusters.
    "$builddir/worker/trainworkerd" --controller "127.0.0.1:$port" --name "worker$i" \
      --cgroup-name "trainyard-$port-worker$i" --mpi-if-include lo --tmp-base "$state/tmp" \
      --state-dir "$state/worker$i" --io-listen 127.0.0.1:0 \
      --metrics-listen "127.0.0.1:$((port + 20 + i))" \
      --port-file "$state/worker$i.ports" "${auth_flags[@]}" "${extra[@]}" \
      >>"$state/logs/worker$i.log" 2>&1 &
    echo $! >"$piddir/worker$i.pid"
    wait_file "$state/worker$i.ports" "$state/logs/worker$i.log"
  done
  echo "cluster: traind on 127.0.0.1:$port (metrics :$((port + 1))), $workers workers" \
    "(metrics :$((port + 21))..:$((port + 20 + workers))); logs in $state/logs"
  echo "cluster: local clients skip MUNGE on its socket:" \
    "export TRAINYARD_SOCKET=$(cd "$state/traind" && pwd)/traind.sock"
  if [ "$auth" = none ]; then
    echo "cluster: --auth none: requests are NOT authenticated and every job runs as" \
      "$(id -un); a single-user development cluster only (docs/security.md)"
  else
    echo "cluster: requests are authenticated with MUNGE (docs/security.md)"
  fi
  [ "$web" = 1 ] && echo "cluster: web console at http://127.0.0.1:$((port + 2))/"
  return 0
}

stop() {
  [ -d "$piddir" ] || { echo "cluster: not running"; return 0; }
  for f in "$piddir"/worker*.pid "$piddir"/traind.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    fi
    rm -f "$f"
  done
  echo "cluster: stopped"
}

status() {
  ls "$piddir"/*.pid >/dev/null 2>&1 || { echo "cluster: not running (no PID files in $piddir)"; return 0; }
  for f in "$piddir"/*.pid; do
    [ -f "$f" ] || continue
    n=$(basename "$f" .pid)
    if alive "$f"; then echo "$n: running (pid $(cat "$f"))"; else echo "$n: dead"; fi
  done
}

case $cmd in
  start) start ;; stop) stop ;; status) status ;;
esac
