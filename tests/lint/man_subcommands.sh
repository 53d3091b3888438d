#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# trainctl's man page documents every subcommand `trainctl help` lists, as
# an entry of its own in the Commands list and in its own subsection, and names every option that `trainctl help COMMAND`
# prints, so the page cannot fall behind the program.
# Usage: man_subcommands.sh PAGE TRAINCTL
set -u
page=$1 trainctl=$2
# The page as text: roff's escaped hyphens and font changes undone.
text=$(sed -e 's/\\-/-/g' -e 's/\\f[BIRP]//g' "$page")
status=0
commands=$("$trainctl" help | awk '/^Commands:$/ {on = 1; next} on && /^$/ {exit} on {print $1}')
if [ -z "$commands" ]; then
  echo "man_subcommands.sh: \`$trainctl help\` lists no commands" >&2
  exit 1
fi
for cmd in $commands; do
  # The Commands list: help2man split the name from its summary (it needs
  # two spaces between them) and made it a tagged paragraph of its own.
  if ! awk -v c="$cmd" 'prev == ".TP" && $0 == c {found = 1} {prev = $0} END {exit !found}' \
    <<<"$text"; then
    echo "man_subcommands.sh: $page: the Commands list runs $cmd into its summary" >&2
    status=1
  fi
  if ! grep -qxF ".SS \"trainctl $cmd\"" <<<"$text"; then
    echo "man_subcommands.sh: $page: no section for trainctl $cmd" >&2
    status=1
    continue
  fi
  # Long options (--name) and short ones (-x) as the usage prints them.
  options=$("$trainctl" help "$cmd" | grep -oE -- '(^|[ ,[(])--?[A-Za-z][A-Za-z0-9-]*' |
    sed -E 's/^[ ,[(]//' | sort -u)
  for opt in $options; do
    if ! grep -qE -- "(^|[^A-Za-z0-9-])$opt([^A-Za-z0-9-]|\$)" <<<"$text"; then
      echo "man_subcommands.sh: $page: trainctl $cmd's option $opt is missing" >&2
      status=1
    fi
  done
done
exit $status
