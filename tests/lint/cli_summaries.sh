#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# `trainctl --help` (and so trainctl(1)) lists, for each command made of
# actions (queue, node, job: "nodes: ls, show, drain, resume, delete"), every
# action its own `trainctl COMMAND --help` shows a usage line for, and no
# other: a summary that leaves one out hides it from whoever reads only the
# command list.
# Usage: cli_summaries.sh TRAINCTL
set -u
ctl=$1
status=0
for cmd in queue node job; do
  summary=$("$ctl" --help | sed -n "s/^  $cmd  *[^:]*: //p")
  listed=$(tr ',' '\n' <<<"$summary" | tr -d ' ' | sort -u)
  used=$("$ctl" "$cmd" --help | grep -oE "trainctl $cmd [a-z-]+" | awk '{print $3}' | sort -u)
  if [ -z "$listed" ] || [ "$listed" != "$used" ]; then
    echo "cli_summaries.sh: trainctl --help lists $cmd's actions as \"$summary\";" \
      "trainctl $cmd --help has $(echo $used | tr ' ' ',')" >&2
    status=1
  fi
done
[ $status -eq 0 ] && echo "cli_summaries.sh: queue, node and job list every action they take"
exit $status
