#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The scheduler places fixed traces exactly as the recorded build did: each
# line below is a bench/sched/sched_sim trace and the digest of every
# placement (time, job, nodes, GPUs) of its multifactor and FIFO runs. A
# change that makes the pass faster must leave these unchanged; a change
# that means to alter the policy updates them and says why in its commit.
set -euo pipefail
sim=$1
status=0
while read -r want_mf want_fifo args; do
  [ -z "$want_mf" ] && continue
  # shellcheck disable=SC2086
  out=$("$sim" $args)
  got_mf=$(awk '$1 == "multifactor" {print $NF}' <<<"$out")
  got_fifo=$(awk '$1 == "fifo" {print $NF}' <<<"$out")
  if [ "$got_mf" != "$want_mf" ] || [ "$got_fifo" != "$want_fifo" ]; then
    echo "sched_sim $args: digests $got_mf $got_fifo, expected $want_mf $want_fifo" >&2
    status=1
  fi
done <<'TRACES'
6ee629a68c076fcf 6663526d78c69806 --jobs 3000 --nodes 300
ea2cb1b3d4f3308d 0ce65282ccd511eb --jobs 3000 --nodes 300 --user-gpus 256 --seed 7
b95fd9280147bf61 226fe592d0fe0162 --jobs 2000 --nodes 100 --gpus 4 --seed 3
TRACES
# --policy runs one policy only, placing as the run of both does; a policy
# it does not know is refused by name.
out=$("$sim" --jobs 3000 --nodes 300 --policy fifo)
if awk '$1 == "multifactor"' <<<"$out" | grep -q . ||
  [ "$(awk '$1 == "fifo" {print $NF}' <<<"$out")" != 6663526d78c69806 ]; then
  echo "sched_sim --policy fifo: expected only the fifo row, digest 6663526d78c69806" >&2
  status=1
fi
if err=$("$sim" --policy lottery 2>&1); then
  echo "sched_sim --policy lottery: accepted" >&2
  status=1
elif ! grep -q '"lottery" is not multifactor or fifo' <<<"$err"; then
  echo "sched_sim --policy lottery: unclear error: $err" >&2
  status=1
fi
exit $status
