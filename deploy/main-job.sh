# SPDX-License-Identifier: Apache-2.0
# The main job of the quick start, sourced by deploy/quickstart.sh with $ctl
# set: a two-node command job that prints its rank variables on each node.
id=$($ctl submit --quiet --command --nodes 2 --name hello -- \
  sh -c 'echo "rank $RANK of $WORLD_SIZE on $TRAINYARD_NODE (master $MASTER_ADDR:$MASTER_PORT)"')
echo "submitted job $id"
while :; do
  state=$($ctl show "$id" --json | sed -n 's/.*"state": *"\([A-Z_]*\)".*/\1/p' | head -1)
  case $state in COMPLETED|FAILED|CANCELLED|TIMEOUT) break ;; esac
  sleep 0.2
done
$ctl ls --all
$ctl logs "$id"
[ "$state" = COMPLETED ]
