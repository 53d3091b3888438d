# SPDX-License-Identifier: Apache-2.0
# The main job of the quick start, sourced by deploy/quickstart.sh with $ctl
# set: the Fashion-MNIST MLP (examples/models) trained across the two
# workers -- one trainrun rank on each, in the parallelism the controller's
# planner chooses (parallelism auto: data, tensor or both; `trainctl show`
# prints the plan and the alternatives it compared), the ranks wired up
# through the controller and exchanging over Open MPI -- to >= 0.88 test
# accuracy, with progress on screen.
models=${builddir:-build}/examples/models
./deploy/graph-job.sh "$models/mlp.onnx" "$models/mlp.config.pb" 2 1 fashion-mnist-mlp > var/mlp-job.pb
id=$($ctl submit --quiet var/mlp-job.pb)
echo "submitted job $id: the Fashion-MNIST MLP on 2 workers, parallelism chosen by the planner (shown at the end)"
$ctl watch "$id" || true
$ctl show "$id"
$ctl checkpoint ls "$id"
acc=$($ctl logs "$id" | sed -n 's/.*test_accuracy \([0-9.]*\).*/\1/p' | tail -1)
echo "final test accuracy: ${acc:-none}"
awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 0.88) }'
