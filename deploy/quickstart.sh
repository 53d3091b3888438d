#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The README's first command: installs what Trainyard needs, builds it, starts
# a local cluster (a controller and two workers, SQLite state under var/ in
# this checkout, the web console on PORT+2), runs the main job on it, shows
# its progress and output, and stops the cluster by PID. The cluster runs
# with --auth none, a single-user development cluster (cluster.sh says so):
# no munged needed, every job runs as you. docs/security.md sets up an
# authenticated one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
./deploy/install-deps.sh
[ -f build/build.ninja ] || meson setup build
ninja -C build
export TRAINYARD_CONTROLLER=127.0.0.1:${TRAINYARD_PORT:-7810}
ctl=build/cli/trainctl

./deploy/cluster.sh start -n 2 -b build -s var -w
trap './deploy/cluster.sh stop -s var' EXIT
for _ in $(seq 1 100); do
  [ "$($ctl nodes --json | grep -c '"UP"')" -ge 2 ] && break; sleep 0.1
done
$ctl nodes
echo "quickstart: the web console is at http://127.0.0.1:$((${TRAINYARD_PORT:-7810} + 2))/ (open it to watch the job train)"

. ./deploy/main-job.sh
