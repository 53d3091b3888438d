#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every C source and header of the repository is as clang-format (the
# .clang-format at the root, Debian 12's clang-format 14) writes it, so a
# diff shows only what changed. Fails listing the files that differ; fix
# them with: clang-format -i FILE...
# Usage: format.sh [ROOT]
set -u
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
cd "$root" || exit 1
fmt=$(command -v clang-format-14 || command -v clang-format) || {
  echo "format.sh: clang-format not found (deploy/install-deps.sh installs it)" >&2
  exit 1
}
if [ -d .git ] || [ -f .git ]; then
  mapfile -t files < <(git ls-files '*.c' '*.h')
else
  mapfile -t files < <(find . -path ./build\* -prune -o \( -name '*.c' -o -name '*.h' \) -print)
fi
# Batches of files per clang-format process, two at a time: one process per
# file cost three times the CPU (about 35 s for 500 files), past the test's
# timeout on a loaded machine. Files that differ are named in the warnings.
out=$(printf '%s\0' "${files[@]}" |
  xargs -0 -n 64 -P 2 "$fmt" --dry-run --Werror 2>&1 > /dev/null)
rc=$?
mapfile -t bad < <(sed -n 's/^\(.*\):[0-9]*:[0-9]*: error: code should be clang-formatted.*/\1/p' \
  <<< "$out" | sort -u)
if [ "$rc" != 0 ] && [ ${#bad[@]} -eq 0 ]; then
  echo "format.sh: $fmt failed (exit status $rc):" >&2
  printf '%s\n' "$out" >&2
  exit 1
fi
if [ ${#bad[@]} -gt 0 ]; then
  echo "format.sh: ${#bad[@]} of ${#files[@]} files are not clang-format clean:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: $fmt -i ${bad[*]:0:3}..." >&2
  exit 1
fi
echo "format.sh: ${#files[@]} files clang-format clean"
