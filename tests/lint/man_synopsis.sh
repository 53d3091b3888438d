#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Each generated man page's SYNOPSIS names more than the program: help2man
# reads an .h2m line that starts with `[` and ends with `]` as a section
# header, which would leave the synopsis with only the program's name.
# Usage: man_synopsis.sh PAGE...
set -u
status=0
for page in "$@"; do
  # The SYNOPSIS section's text, up to the next section header.
  synopsis=$(awk '/^\.SH /{on = ($2 == "SYNOPSIS"); next} on' "$page")
  if ! grep -q OPTIONS <<<"$synopsis"; then
    echo "man_synopsis.sh: $page: the SYNOPSIS has no [OPTIONS]:" >&2
    echo "$synopsis" >&2
    status=1
  fi
done
exit $status
