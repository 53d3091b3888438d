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
# README's note on a port taken names the ports cluster.sh uses by default:
# traind's 7810, its metrics 7811, its console 7812, worker i's metrics 7830+i.
readme=$(tr '\n' ' ' <"$root/README.md")
want="Port 7810 (and its metrics' 7811, the web console's 7812, the workers' metrics 7831 on)"
[[ $readme == *"$want"* ]] || fail "README.md's ports differ from cluster.sh's: want [$want]"
grep -q 'metrics-listen "127.0.0.1:$((port + 20 + i))"' "$root/deploy/cluster.sh" ||
  fail "cluster.sh no longer puts worker i's metrics on PORT+20+i: update README.md and this test"
echo ok
