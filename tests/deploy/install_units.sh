#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# A source install with -Dsystemd_units=true: a scratch build of the
# source tree, configured under an unusual prefix and sysconfdir, installs
# (tag `systemd` alone, so nothing is compiled) into a temporary DESTDIR the
# units naming that prefix's traind, trainworkerd and trainrun and that
# sysconfdir's env files and traind.conf, those files, and the sysusers.d
# and tmpfiles.d files; a second install keeps an edited traind.conf.
# Usage: install_units.sh SOURCE_ROOT
set -euo pipefail
src=${1:?usage: install_units.sh SOURCE_ROOT}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
meson setup "$tmp/build" "$src" --prefix=/opt/ty --sysconfdir=/etc/tyconf \
  -Dsystemd_units=true -Dtests=disabled -Dfuzz=disabled -Dcuda=disabled > "$tmp/setup.log" 2>&1 ||
  { cat "$tmp/setup.log"; fail "meson setup"; }
install() {
  meson install -C "$tmp/build" --no-rebuild --tags systemd --destdir "$tmp/root" \
    > "$tmp/install.log" 2>&1 || { cat "$tmp/install.log"; fail "meson install"; }
}
install
root=$tmp/root
units=$root/opt/ty/lib/systemd/system
for f in "$units/traind.service" "$units/trainworkerd.service" \
  "$root/opt/ty/lib/sysusers.d/trainyard.conf" "$root/opt/ty/lib/tmpfiles.d/trainyard.conf" \
  "$root/etc/tyconf/trainyard/traind.env" "$root/etc/tyconf/trainyard/trainworkerd.env" \
  "$root/etc/tyconf/trainyard/traind.conf"; do
  [ -f "$f" ] || fail "${f#"$root"} was not installed"
done
if grep -n '@[a-z]*@\|/usr/s\?bin/\|-/etc/trainyard\| /etc/trainyard' "$units"/*.service; then
  fail "a unit names a path of another install"
fi
grep -q '^ExecStart=/opt/ty/sbin/traind .*--config /etc/tyconf/trainyard/traind.conf ' \
  "$units/traind.service" || fail "traind.service's ExecStart: $(grep ExecStart "$units/traind.service")"
grep -q '^ExecStart=/opt/ty/sbin/trainworkerd .*--trainrun /opt/ty/bin/trainrun ' \
  "$units/trainworkerd.service" ||
  fail "trainworkerd.service's ExecStart: $(grep ExecStart "$units/trainworkerd.service")"
for name in traind trainworkerd; do
  grep -q "^EnvironmentFile=-/etc/tyconf/trainyard/$name.env$" "$units/$name.service" ||
    fail "$name.service's EnvironmentFile: $(grep EnvironmentFile "$units/$name.service")"
done
cmp -s "$root/opt/ty/lib/sysusers.d/trainyard.conf" "$src/deploy/systemd/trainyard.sysusers" ||
  fail "sysusers.d/trainyard.conf differs from deploy/systemd/trainyard.sysusers"
echo "# the operator's line" >> "$root/etc/tyconf/trainyard/traind.conf"
install
grep -q "^# the operator's line$" "$root/etc/tyconf/trainyard/traind.conf" ||
  fail "a second install overwrote an edited traind.conf"
echo "ok: units, env files, traind.conf, sysusers.d and tmpfiles.d under /opt/ty and /etc/tyconf"
