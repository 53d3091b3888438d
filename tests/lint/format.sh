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
bad=()
for f in "${files[@]}"; do
  "$fmt" --dry-run --Werror "$f" > /dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
  echo "format.sh: ${#bad[@]} of ${#files[@]} files are not clang-format clean:" >&2
  printf '  %s\n' "${bad[@]}" >&2
  echo "fix with: $fmt -i ${bad[*]:0:3}..." >&2
  exit 1
fi
echo "format.sh: ${#files[@]} files clang-format clean"
