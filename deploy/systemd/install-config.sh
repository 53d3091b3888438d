#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# meson's install step for the configuration an operator edits (the units'
# env files and traind.conf): each file is copied into DIR under $DESTDIR,
# mode 0644, only when it is not there yet, so reinstalling over an edited
# configuration keeps the edits.
# Usage: install-config.sh DIR FILE...
set -eu
dir=${DESTDIR:-}$1
shift
mkdir -p "$dir"
for f in "$@"; do
  target=$dir/$(basename "$f")
  if [ -e "$target" ]; then
    echo "Keeping $target (already there; the new one is $f)"
  else
    install -m 0644 "$f" "$target"
    echo "Installing $f to $target"
  fi
done
