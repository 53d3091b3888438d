/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Losses under pipelined plans (pipe.c, pipe_wmean.c, ops/shard's
 * wmean.c and summed.c), every rank a trainer in a thread as in
 * test_pipeline.c: weighted and ignore_index means, class weights
 * computed from initializers and losses summed over the batch by hand end
 * with one process's weights on the same global batch, over stages,
 * replicas, tensor-parallel stages and micro-batches without stages; so
 * does an autoencoder's loss, which reads the input again, under plans
 * that feed that input whole and reshard it late (the zoo's failure).
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

TestSuite(pipeline_loss, .init = pr_setup, .fini = pr_cleanup);

/* One pipeline shape: nodes x per_node ranks, stages, micro-batches; the
 * plan's mode (auto when not given) and grid mesh side (0: none). */
typedef struct run {
  int nodes, per_node, stages, micro;
  const char *what;
  ty_plan_mode mode;
  int grid;
  bool split_all; /* pipe_job.split_all (zoo_sweep.py's rates) */
} run;

/* r's job on the weighted config, `steps` steps, checkpointed to out. */
static pipe_job job_of(const run *r, uint64_t steps, const char *out) {
  pipe_job j = pipe_job_make(r->nodes, r->per_node, r->stages, r->micro, steps, out);
  j.mode = r->mode;
  j.grid[0] = j.grid[1] = r->grid;
  j.split_all = r->split_all;
  j.weighted = true;
  return j;
}

/* o's model trained `steps` steps on the weighted config by one process,
 * then by each of runs[], ends with the same weights; tag names the files. */
static void expect_like_one_process(const synth_mlp *o, const char *tag, uint64_t steps,
                                    const run *runs, size_t n) {
  ty_graph *g = synth_mlp_build(o);
  char ref[PIPE_PATH], out[PIPE_PATH], name[64];
  snprintf(name, sizeof name, "ref_%s.onnx", tag);
  pipe_path(ref, name);
  snprintf(name, sizeof name, "pipe_%s.onnx", tag);
  pipe_path(out, name);
  synth_ignored_labels();
  pr_run_single_with(g, steps, ref, synth_weighted_config);
  for (size_t i = 0; i < n; i++) {
    pipe_job j = job_of(&runs[i], steps, out);
    pipe_expect_like(g, &j, ref, runs[i].what, NULL);
  }
  ty_graph_destroy(g);
}

/* Weighted mean losses (class weights and ignore_index, the zoo's
 * weighted_nll beside a plain mean) over micro-batches: each
 * micro-batch's loss is its sum(w l) over the global batch's sum(w),
 * computed before the step, so the weights are one process's on 4
 * stages x 4 micro-batches (micro-batch 1 of step 0 all ignored, others
 * in part or not at all), data x pipeline 2 x 2 (a rank's rows all
 * ignored), 2 stages x 2-way tensor parallel and 2 stages of a 2x2 data x
 * tensor mesh; step 2's labels are all ignored (a NaN loss and zero
 * gradients, as one process). */
Test(pipeline_loss, weighted_and_ignore_index_means_train_like_one_process, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .weighted_loss = true};
  const run runs[] = {
      {2, 2, 4, 4, "4 stages x 4 micro-batches", TY_PLAN_MODE_AUTO, 0, false},
      {2, 2, 2, 4, "data x pipeline, 2 x 2", TY_PLAN_MODE_DATA, 0, false},
      {1, 4, 2, 2, "2 stages x 2-way tensor parallel", TY_PLAN_MODE_TENSOR, 0, false},
      {1, 8, 2, 2, "2 stages of 2x2 data x tensor", TY_PLAN_MODE_GRID, 2, false},
      {1, 2, 1, 4, "4 micro-batches without stages, auto on 1x2", TY_PLAN_MODE_AUTO, 0, false},
  };
  expect_like_one_process(&o, "weighted", 6, runs, TY_ARRAY_LEN(runs));
}

/* The builtin loss ignoring -100 labels, with label smoothing, over
 * stages and micro-batches (micro-batches and a replica whose labels
 * are all ignored among them): both terms' means are over the kept
 * labels of the global batch, so the weights are one process's. */
Test(pipeline_loss, builtin_loss_ignores_labels_as_one_process, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3};
  const run runs[] = {
      {2, 2, 4, 4, "4 stages x 4 micro-batches", TY_PLAN_MODE_AUTO, 0, false},
      {2, 2, 2, 4, "data x pipeline, 2 x 2", TY_PLAN_MODE_DATA, 0, false},
      {1, 4, 2, 2, "2 stages x 2-way tensor parallel", TY_PLAN_MODE_TENSOR, 0, false},
  };
  ty_graph *g = synth_mlp_build(&o);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_path(ref, "ref_ignored.onnx");
  pipe_path(out, "pipe_ignored.onnx");
  synth_ignored_labels();
  pr_run_single_with(g, 6, ref, synth_ignored_builtin_config);
  for (size_t i = 0; i < TY_ARRAY_LEN(runs); i++) {
    pipe_job j = job_of(&runs[i], 6, out);
    j.weighted = false;
    j.tweak = synth_ignored_builtin_config;
    pipe_expect_like(g, &j, ref, runs[i].what, NULL);
  }
  ty_graph_destroy(g);
}

/* A rank frees each whole copy of the weights it was given: the model's,
 * the training graph's and the one its weighted means were rewritten in
 * (each holds every parameter; the floats beside them, the class weights,
 * are a few bytes). The tests above train like one process after it. */
Test(pipeline_loss, a_rank_frees_the_weighted_means_copy_of_the_weights, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .weighted_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  size_t floats = 0; /* of every float initializer */
  for (size_t v = 0; v < ty_graph_n_values(g); v++) {
    const ty_graph_value *gv = ty_graph_value_at(g, (int)v);
    if (gv->init && gv->dtype == TY_DTYPE_F32) floats += gv->init->nbytes;
  }
  char out[PIPE_PATH];
  pipe_path(out, "pipe_weighted_drop.onnx");
  synth_ignored_labels();
  run r = {1, 2, 2, 2, "2 stages", TY_PLAN_MODE_AUTO, 0, false};
  pipe_job j = job_of(&r, 1, out);
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run(g, &j, rr, NULL);
  for (int k = 0; k < 2; k++)
    cr_assert_gt(rr[k].dropped, 2 * floats,
                 "rank %d freed %zu bytes; three copies of %zu float bytes were there", k,
                 rr[k].dropped, floats);
  ty_graph_destroy(g);
}

/* Class weights computed from initializers alone (weights_x2, which the
 * plan may run on an earlier stage than the losses): the denominator's
 * graph recomputes them on the loss's stage, so 4 stages x 4
 * micro-batches and one stage of 2 ranks x 4 micro-batches end with one
 * process's weights (the first was refused naming the node). */
Test(pipeline_loss, computed_class_weights_train_like_one_process, .timeout = 240) {
  synth_mlp o = {.in = 8,
                 .hidden = 32,
                 .out = 4,
                 .seed = 5,
                 .deep = 3,
                 .weighted_loss = true,
                 .computed_weights = true};
  const run runs[] = {{2, 2, 4, 4, "4 stages x 4", TY_PLAN_MODE_AUTO, 0, false},
                      {1, 2, 1, 4, "one stage x 4 micro-batches", TY_PLAN_MODE_AUTO, 0, false}};
  expect_like_one_process(&o, "computed", 4, runs, TY_ARRAY_LEN(runs));
}

/* Losses summed over the batch by hand (synth_mlp.summed_losses: x.sum(),
 * mse_loss(reduction="sum"), a sum over the batch axis, a sum / numel):
 * 2 stages x 4 micro-batches, and one stage of 2 ranks (its local graph
 * through ops/shard) x 4, end with one process's weights, also with a
 * metric output that roots one of the sums. */
Test(pipeline_loss, losses_summed_over_the_batch_by_hand_train_like_one_process, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 7, .deep = 1, .summed_losses = true};
  const run runs[] = {{2, 1, 2, 4, "2 stages x 4", TY_PLAN_MODE_AUTO, 0, false},
                      {1, 2, 1, 4, "one stage of 2 ranks x 4", TY_PLAN_MODE_AUTO, 0, false}};
  expect_like_one_process(&o, "summed", 4, runs, TY_ARRAY_LEN(runs));
  /* a metric output that roots the sum "ce_sum" the loss reads: the sum
   * is scaled for the loss only (the metric reads it unscaled: ops/shard's
   * local graph, or the copy), and the weights are one process's */
  o.root_metric = true;
  const run rooted[] = {{2, 1, 2, 2, "2 stages x 2", TY_PLAN_MODE_AUTO, 0, false},
                        {1, 2, 1, 4, "one stage of 2 ranks x 4", TY_PLAN_MODE_AUTO, 0, false}};
  expect_like_one_process(&o, "rooted", 4, rooted, TY_ARRAY_LEN(rooted));
}

/* An autoencoder's loss reads the input x again at the end (recon_loss):
 * the weights are one process's on one stage of 2 ranks (tensor parallel
 * and auto) and over 2 stages. A stage differentiates what it receives
 * and its parameters only, not its data feeds (under micro-batches, 9 zoo
 * models whose plan fed x whole and resharded it for the loss failed in
 * that reshard's backward, which ops/shard builds for no input: bench/plan/
 * zoo_sweep.py --plans accum; these plans move recon.out instead, the
 * next test's reshard x). */
Test(pipeline_loss, a_loss_that_reads_the_input_again_trains_like_one_process, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 9, .deep = 1, .recon_loss = true};
  const run runs[] = {
      {1, 2, 1, 4, "one tensor-parallel stage of 2 ranks x 4", TY_PLAN_MODE_TENSOR, 0, false},
      {1, 2, 1, 4, "one stage of 2 ranks x 4", TY_PLAN_MODE_AUTO, 0, false},
      {1, 2, 2, 4, "2 stages x 4", TY_PLAN_MODE_AUTO, 0, false}};
  expect_like_one_process(&o, "recon", 4, runs, TY_ARRAY_LEN(runs));
}

/* The layout op `name` reads its input `slot` in under plan p. */
static const ty_plan_layout *read_as(const ty_plan *p, const char *name, int slot) {
  for (size_t i = 0; i < p->n_ops; i++)
    if (strcmp(p->ops[i].name, name) == 0 && slot < p->ops[i].n_inputs)
      return &p->ops[i].inputs[slot];
  cr_assert_fail("the plan has no op %s with an input %d", name, slot);
  return NULL;
}

static bool split(const ty_plan_layout *l) {
  for (int d = 0; d < l->rank; d++)
    if (l->dim_axes[d]) return true;
  return false;
}

/* The shape 9 zoo models failed in under micro-batches (bench/plan/
 * zoo_sweep.py --plans accum,pipe; fixed by "pipe: a stage differentiates
 * what it receives, not its data feeds"): the plan feeds the data input x
 * whole to a replicated (column split) first layer and reshards it late,
 * for the reconstruction loss's batch- or dim-1-split Sub. A stage that
 * differentiated its data feeds ran that reshard backward, which ops/shard
 * builds for no input ("x at recon_diff input 1: the input holds 32
 * floats, its layout 64"). ops/shard feeds an input its readers read in
 * different layouts whole, so x enters each stage whole. zoo_sweep.py's
 * rates (split_all) make both plans: 4 micro-batches without stages on
 * 1x2, and 2 stages of 1x2 x 2 micro-batches. Each must have that shape,
 * then train like one process. */
Test(pipeline_loss, a_data_input_fed_whole_and_resharded_late_trains_like_one_process,
     .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 9, .deep = 1, .recon_loss = true};
  const run runs[] = {
      {1, 2, 1, 4, "accumulation: 4 micro-batches on one stage of 1x2", TY_PLAN_MODE_AUTO, 0, true},
      {1, 4, 2, 2, "2 stages of 1x2 x 2 micro-batches", TY_PLAN_MODE_AUTO, 0, true}};
  ty_graph *g = synth_mlp_build(&o);
  synth_ignored_labels();
  for (size_t i = 0; i < TY_ARRAY_LEN(runs); i++) {
    pipe_job j = job_of(&runs[i], 4, NULL);
    ty_train_config c;
    pipe_config(&c, &j);
    ty_plan *p = pipe_plan_for(g, &c, &j);
    cr_assert(!split(read_as(p, "fc1", 0)), "%s: fc1 reads x split", runs[i].what);
    cr_assert(split(read_as(p, "recon_diff", 1)), "%s: recon_diff reads x whole", runs[i].what);
    ty_plan_destroy(p);
    ty_train_config_close(&c);
  }
  ty_graph_destroy(g);
  expect_like_one_process(&o, "fed_whole", 4, runs, TY_ARRAY_LEN(runs));
}
