#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The Debian package's documentation stands alone: every page of docs/ (a
# NAME.md or an image) that an installed page or a man page names is
# installed too (debian/trainyard.docs), since /usr/share/doc/trainyard is
# all a host that installed the package has to read.
# Usage: package_docs.sh SRCROOT [MANPAGE...]
set -u
root=$1
shift
list=$root/debian/trainyard.docs
status=0
installed=" "
while read -r f; do
  f=${f%%#*}
  [ -n "$f" ] || continue
  if [ ! -f "$root/$f" ]; then
    echo "package_docs.sh: debian/trainyard.docs lists $f, which does not exist" >&2
    status=1
  fi
  installed+="$(basename "$f") "
done <"$list"

# The docs/ pages FILE names: docs/NAME.md, or NAME.md as the pages name
# each other; troff's \- read as -.
named() {
  sed 's/\\-/-/g' "$1" | grep -oE '(^|[^A-Za-z0-9_./-])(docs/)?[a-z][a-z0-9_-]*\.(md|png)' |
    sed -E 's/^[^a-z]*//; s/^docs\///' | sort -u
}

check() { # FILE SHOWN-AS
  local name
  for name in $(named "$1"); do
    [ -e "$root/docs/$name" ] || continue # not a page of docs/
    case $installed in
    *" $name "*) ;;
    *)
      echo "package_docs.sh: $2 names $name, which the package does not install" \
        "(add docs/$name to debian/trainyard.docs)" >&2
      status=1
      ;;
    esac
  done
}

for f in $installed; do
  for p in "$root/$f" "$root/docs/$f"; do
    if [ -f "$p" ]; then
      check "$p" "/usr/share/doc/trainyard/$f"
      break
    fi
  done
done
for m in "$@"; do
  check "$m" "the man page $(basename "$m")"
done
[ $status -eq 0 ] && echo "package_docs.sh: every docs/ page the installed docs and man pages name is installed"
exit $status
