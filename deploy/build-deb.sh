#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the trainyard .deb from this checkout (committed or not) with
# dpkg-buildpackage, in a scratch copy so the tree and its parent stay
# clean, then runs lintian on it. debian/rules builds only the installed
# programs and their man pages (no tests, fuzzers or benchmarks), so the
# time is the programs' compile time: a few minutes on 2 cores.
# Usage: deploy/build-deb.sh OUTDIR   (OUTDIR gets the .deb, .buildinfo,
# .changes and lintian.txt; exit status 1 when lintian reports any tag,
# pedantic and info ones included, that debian/*.lintian-overrides does
# not explain). Environment: JOBS (default 2).
set -euo pipefail
out=${1:?usage: deploy/build-deb.sh OUTDIR}
src=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
for tool in dpkg-buildpackage dh help2man; do
  command -v "$tool" > /dev/null || { echo "build-deb: $tool is missing (deploy/install-deps.sh)" >&2; exit 2; }
done
version=$(dpkg-parsechangelog -l "$src/debian/changelog" -S Version)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
tree="$scratch/trainyard-$version"
mkdir "$tree"
# Tracked and new files (those still present), not what git ignores.
(cd "$src" && git ls-files -z --cached --others --exclude-standard --deduplicate |
  while IFS= read -r -d '' f; do [ -e "$f" ] || [ -L "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - -cf -) | tar -xf - -C "$tree"
(cd "$tree" && DEB_BUILD_OPTIONS="nocheck parallel=${JOBS:-2}" \
  dpkg-buildpackage -b -us -uc > "$scratch/build.log" 2>&1) || {
  tail -60 "$scratch/build.log" >&2
  echo "build-deb: dpkg-buildpackage failed (log above)" >&2
  exit 1
}
rm -f "$out"/trainyard_*.deb "$out"/trainyard-dbgsym_*.deb
cp "$scratch"/*.deb "$scratch"/*.changes "$scratch"/*.buildinfo "$out"/
cp "$scratch/build.log" "$out/build.log"
echo "build-deb: $(cd "$out" && ls ./*.deb)"
if command -v lintian > /dev/null; then
  changes=$(ls "$out"/*.changes)
  lintian --info --display-info --pedantic --tag-display-limit 0 "$changes" > "$out/lintian.txt" 2>&1 || true
  cat "$out/lintian.txt"
  if grep -qE '^(E|W|I|P):' "$out/lintian.txt"; then
    echo "build-deb: lintian reports tags without an override (above, and $out/lintian.txt)" >&2
    exit 1
  fi
fi
