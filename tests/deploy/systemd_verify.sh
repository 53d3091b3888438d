#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The units made from deploy/systemd's *.service.in (in UNIT_DIR, the build's
# deploy/systemd) pass `systemd-analyze verify`: every key known in
# its section, every value parsed, the dependencies resolvable. verify
# accepts warnings with exit status 0, so any line it prints fails the test.
# It runs against a scratch root (--root) that holds systemd's own units and
# stand-ins for the ExecStart binaries, so it needs neither an installed
# Trainyard nor a running systemd. Skips (77) without systemd-analyze.
# With the built daemons it also checks deploy/systemd's env files: each
# sets its variable once (systemd takes the last of two lines, so an
# operator's edit of the first would do nothing), and every flag there and
# in ExecStart is one the daemon's --help lists.
# Usage: systemd_verify.sh SOURCE_ROOT UNIT_DIR [TRAIND TRAINWORKERD]
set -euo pipefail
src=${1:?usage: systemd_verify.sh SOURCE_ROOT UNIT_DIR [TRAIND TRAINWORKERD]}
unit_dir=${2:?usage: systemd_verify.sh SOURCE_ROOT UNIT_DIR [TRAIND TRAINWORKERD]}
traind=${3:-} trainworkerd=${4:-}
if ! command -v systemd-analyze > /dev/null; then
  echo "SKIP: systemd-analyze not found (Debian's systemd package)"
  exit 77
fi
sysunits=/usr/lib/systemd/system
[ -d "$sysunits" ] || sysunits=/lib/systemd/system
if [ ! -e "$sysunits/sysinit.target" ]; then
  echo "SKIP: systemd's own units (sysinit.target) are not installed here"
  exit 77
fi
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/usr/lib/systemd" "$root/etc/systemd/system"
cp -r "$sysunits" "$root/usr/lib/systemd/system"
units=()
for u in "$unit_dir"/*.service; do
  cp "$u" "$root/etc/systemd/system/"
  units+=("$(basename "$u")")
  # A stand-in for each ExecStart binary: verify checks that it is executable.
  for exe in $(sed -n 's/^Exec[A-Za-z]*=[-@+!:]*\([^ ]*\).*/\1/p' "$u"); do
    mkdir -p "$root$(dirname "$exe")"
    printf '#!/bin/sh\nexit 0\n' > "$root$exe"
    chmod +x "$root$exe"
  done
done
out=$(systemd-analyze verify --man=no --root="$root" "${units[@]}" 2>&1) || {
  echo "FAIL: systemd-analyze verify exited $?:"
  echo "$out"
  exit 1
}
if [ -n "$out" ]; then
  echo "FAIL: systemd-analyze verify complained:"
  echo "$out"
  exit 1
fi
# What the units promise in docs/deploy.md, checked where a typo would not
# be a verify error: readiness by sd_notify, restarts, the journal.
for u in "${units[@]}"; do
  f="$root/etc/systemd/system/$u"
  for want in '^Type=notify$' '^Restart=on-failure$' '^StateDirectory=trainyard/' \
    '^EnvironmentFile=-/.*/trainyard/'; do
    grep -q "$want" "$f" || { echo "FAIL: $u lacks $want"; exit 1; }
  done
  if grep -qE '^Standard(Output|Error)=' "$f"; then
    echo "FAIL: $u redirects its output away from the journal"
    exit 1
  fi
done
grep -q '^User=trainyard$' "$root/etc/systemd/system/traind.service" ||
  { echo "FAIL: traind.service does not run as the trainyard user"; exit 1; }
# systemctl reload traind: SIGHUP reads traind.conf again (README).
grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$root/etc/systemd/system/traind.service" ||
  { echo "FAIL: traind.service has no ExecReload sending SIGHUP"; exit 1; }
# traind's sandbox stays tight: systemd's own exposure score (0 = fully
# locked down, 10 = nothing) must not creep up when the unit changes.
# trainworkerd has no such bound: its tasks need what it keeps.
score=$(systemd-analyze security --offline=true --root="$root" traind.service 2>&1 |
  sed -n 's/.*Overall exposure level for traind.service: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
  echo "note: systemd-analyze security --offline gave no score here; not checked"
elif ! awk -v s="$score" 'BEGIN { exit !(s <= 4.0) }'; then
  echo "FAIL: traind.service's exposure score is $score, above 4.0"
  exit 1
else
  echo "traind.service: exposure $score (at most 4.0)"
fi
# The env files (conffiles an operator edits) and the flags the units pass.
check_flags() { # NAME BINARY FILE VAR
  local name=$1 bin=$2 file=$3 var=$4 n help flag
  n=$(grep -c "^$var=" "$file" || true)
  if [ "$n" != 1 ]; then
    echo "FAIL: $(basename "$file") sets $var $n times, not once (systemd takes the last)"
    exit 1
  fi
  [ -n "$bin" ] || return 0
  help=$("$bin" --help 2>&1 || true)
  for flag in $(sed -n "s/^$var=//p" "$file" | grep -oE -- '--[a-z][a-z-]*') \
    $(sed -n "s/^ExecStart=.*$name //p" "$unit_dir/$name.service" |
      grep -oE -- '--[a-z][a-z-]*'); do
    grep -qE -- "(^|[ ,])$flag( |,|$)" <<< "$help" ||
      { echo "FAIL: $name --help has no $flag (in $(basename "$file") or $name.service)"; exit 1; }
  done
}
check_flags traind "$traind" "$src/deploy/systemd/traind.env" TRAIND_OPTS
check_flags trainworkerd "$trainworkerd" "$src/deploy/systemd/trainworkerd.env" TRAINWORKERD_OPTS
echo "ok: ${units[*]} verified"
