#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every TRAINYARD_* environment variable the programs read (getenv, or a
# helper env_*("NAME", ...)) is named in README.md, docs/ or a program's
# --help (which the man pages are made from): a variable that changes what
# a program does and that no page names is a behaviour nobody can find.
# Test hooks (TRAINYARD_TEST_*) are left out.
# Usage: env_documented.sh SRCROOT PROGRAM...
set -u
root=$1
shift
status=0
helps=$(for p in "$@"; do "$p" --help 2>&1; done)
read_vars=$(cd "$root" && grep -rhoE '(getenv|env_[a-z0-9_]+)\("TRAINYARD_[A-Z0-9_]+"' \
  --include=*.c lib cli daemon worker ops scheduler |
  sed -E 's/.*"(TRAINYARD_[A-Z0-9_]+)"/\1/' | grep -v '^TRAINYARD_TEST_' | sort -u)
if [ -z "$read_vars" ]; then
  echo "env_documented.sh: found no TRAINYARD_* variable read under $root" >&2
  exit 1
fi
for v in $read_vars; do
  if ! grep -qw "$v" "$root/README.md" "$root"/docs/*.md && ! grep -qw "$v" <<<"$helps"; then
    where=$(cd "$root" && grep -rlE "\(\"$v\"" --include=*.c lib cli daemon worker ops scheduler |
      tr '\n' ' ')
    echo "env_documented.sh: $v (read in ${where% }) is named in no doc and no --help" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "env_documented.sh: every TRAINYARD_* variable read is documented:" $read_vars
exit $status
