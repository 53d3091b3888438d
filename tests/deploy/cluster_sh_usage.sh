#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# deploy/cluster.sh's answers to a user's mistakes, without starting a
# daemon: a bad subcommand prints the whole usage (TRAINYARD_PORT too), start without a build
# names the missing binary and what to run, status of a cluster never
# started says so. State goes to a folder of our own.
set -uo pipefail
root=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/ty-cluster-sh-XXXXXX")
trap 'rm -rf "$dir"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
out=$("$root/deploy/cluster.sh" frob 2>&1); rc=$?
[ "$rc" = 2 ] || fail "frob: exit $rc, not 2: $out"
for want in "-a none|munge" "-w" "stop|status" "TRAINYARD_PORT=PORT"; do
  [[ $out == *"$want"* ]] || fail "frob: the usage lacks $want: $out"
done
out=$("$root/deploy/cluster.sh" start -b "$dir/nobuild" -s "$dir/state" 2>&1); rc=$?
[ "$rc" = 1 ] || fail "start without a build: exit $rc, not 1: $out"
[[ $out == *"$dir/nobuild/daemon/traind not found"*"ninja -C build"* ]] ||
  fail "start without a build: $out"
out=$("$root/deploy/cluster.sh" status -s "$dir/state" 2>&1); rc=$?
[ "$rc" = 0 ] || fail "status: exit $rc: $out"
[[ $out == *"not running"* ]] || fail "status of no cluster says nothing useful: [$out]"
echo ok
