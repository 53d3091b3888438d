#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every program of one build prints the same version on --version: a first
# line "NAME VERSION" (NAME the program's own) and a "features: ..." line,
# VERSION the build's git describe or release version, never empty.
# Usage: versions.sh PROGRAM...
set -u
status=0 first=
for prog in "$@"; do
  name=$(basename "$prog")
  out=$("$prog" --version 2>&1)
  rc=$?
  line1=$(head -n1 <<<"$out")
  version=${line1#"$name "}
  if [ $rc -ne 0 ] || [ "$version" = "$line1" ] || [ -z "$version" ] ||
    ! grep -q '^features: ' <<<"$out"; then
    echo "versions.sh: $name --version (exit $rc) printed: $out" >&2
    status=1
    continue
  fi
  if [ -z "$first" ]; then
    first=$version
  elif [ "$version" != "$first" ]; then
    echo "versions.sh: $name is version $version, $(basename "$1") $first" >&2
    status=1
  fi
  echo "$name $version"
done
exit $status
