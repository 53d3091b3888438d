/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dropout in a pipelined plan (pipe.c, pipe_random.c), the ranks threads
 * of this process (pipe_ranks.c): each micro-batch draws its rows of the
 * mask one process draws for the global batch, so 2 and 4 stages, 2 to 8
 * micro-batches and 2 stages x 2 data-parallel replicas train to one
 * process's weights; a stage recomputing its activations (forced by a
 * memory budget, or by the plan's stage.recompute) draws its first
 * forward's masks again, so recomputation changes no weight; the random
 * ops (RandomNormalLike) draw their one-process tensors likewise; a mask
 * that is no block of rows is refused.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline_dropout, .init = pr_setup, .fini = pr_cleanup);

/* x -> fc1 -> fc3, drop3 .. fc5, drop5 -> drop -> fc2: Dropout(0.5) in
 * training mode after every hidden layer but the first, so every stage
 * of 2 and all but the first of 4 draw masks. */
static ty_graph *drop_model(void) {
  synth_mlp o = {
      .in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .dropout = true, .dropout_deep = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  return g;
}

static const struct {
  int nodes, per_node, stages, micro;
  const char *what;
} shapes[] = {
    {1, 2, 2, 2, "2 stages, 2 micro-batches"},
    {1, 4, 4, 4, "4 stages, 4 micro-batches"},
    {2, 2, 2, 4, "data x pipeline, 2 x 2"},
    {1, 4, 4, 8, "4 stages, 8 micro-batches"},
};

Test(pipeline_dropout, stages_draw_one_process_masks, .timeout = 240) {
  ty_graph *g = drop_model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "dropout", 5, ref, out);
  for (size_t i = 0; i < TY_ARRAY_LEN(shapes); i++) {
    pipe_job j = pipe_job_make(shapes[i].nodes, shapes[i].per_node, shapes[i].stages,
                               shapes[i].micro, 5, out);
    pipe_expect_like(g, &j, ref, shapes[i].what, NULL);
  }
  ty_graph_destroy(g);
}

/* A stage mesh's device draws its block of its micro-batch's rows: the
 * intra-stage slice ops/shard gives a Dropout (hidden units split in
 * tensor mode, rows and units on a 2x2 grid) composed with the
 * micro-batch's place. */
Test(pipeline_dropout, tensor_and_grid_stages_draw_one_process_masks, .timeout = 240) {
  ty_graph *g = drop_model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "dropout_tp", 5, ref, out);
  pipe_job tp = pipe_job_make(1, 4, 2, 4, 5, out), grid = pipe_job_make(1, 8, 2, 2, 5, out);
  tp.mode = TY_PLAN_MODE_TENSOR;
  grid.mode = TY_PLAN_MODE_GRID;
  grid.grid[0] = grid.grid[1] = 2;
  char *logs = NULL;
  pipe_expect_like(g, &tp, ref, "2 tensor-parallel stages x 2 devices", &logs);
  cr_assert(strstr(logs, "its intra-stage plan through ops/shard"), "%s", logs);
  free(logs);
  pipe_expect_like(g, &grid, ref, "2 stages of 2x2 (data x tensor)", &logs);
  cr_assert(strstr(logs, "of its 2x2 mesh, its intra-stage plan through ops/shard"), "%s", logs);
  free(logs);
  ty_graph_destroy(g);
}

/* The random ops draw as Dropout does: Gaussian noise added before the
 * last layer, on 2 stages and on 2 stages x 2 replicas. */
Test(pipeline_dropout, random_ops_draw_one_process_tensors, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .noise = true};
  ty_graph *g = synth_mlp_build(&o);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "noise", 5, ref, out);
  pipe_job two = pipe_job_make(1, 2, 2, 2, 5, out), dp = pipe_job_make(2, 2, 2, 4, 5, out);
  pipe_expect_like(g, &two, ref, "RandomNormalLike on 2 stages", NULL);
  pipe_expect_like(g, &dp, ref, "RandomNormalLike, data x pipeline", NULL);
  ty_graph_destroy(g);
}

/* A memory budget one byte under the largest stage's makes the planner
 * recompute; every stage the plan says recomputes does (none keeps its
 * activations because it draws), and the weights are those without
 * recomputation, and one process's. */
Test(pipeline_dropout, recomputation_forced_by_memory_draws_the_same_masks, .timeout = 240) {
  ty_graph *g = drop_model();
  char ref[PIPE_PATH], plain_out[PIPE_PATH], tight_out[PIPE_PATH];
  pipe_reference(g, "dropout_rc", 4, ref, plain_out);
  pipe_path(tight_out, "pipe_dropout_rc_tight.onnx");
  pipe_job plain = pipe_job_make(1, 4, 4, 4, 4, plain_out);
  pipe_rank rr[MT_MAX_RANKS];
  pr_remove_checkpoint(plain_out);
  pipe_run(g, &plain, rr, NULL);
  cr_assert(!rr[0].recompute, "recomputation without a memory limit");
  pipe_job tight = plain;
  tight.ckpt = tight_out;
  tight.mem = pipe_plain_memory(g, &plain) - 1;
  ty_train_config c;
  pipe_config(&c, &tight);
  ty_plan *p = pipe_plan_for(g, &c, &tight);
  int stages = 0;
  for (int s = 0; s < p->n_stages; s++)
    stages += p->stages[s].recompute && s < p->n_stages - 1; /* the last has one forward anyway */
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  cr_assert(stages > 0, "a budget of %llu bytes did not make the planner recompute a stage",
            (unsigned long long)tight.mem);
  char *logs = NULL;
  pr_remove_checkpoint(tight_out);
  pipe_run(g, &tight, rr, &logs);
  int said = synth_count(logs, "activations recomputed in backward") -
             synth_count(logs, "runs stage 3 of 4 (replica 0 of 1), 4 micro-batches of 8 rows, "
                               "activations recomputed");
  cr_assert_eq(said, stages, "%d stages recompute, the plan says %d:\n%s", said, stages, logs);
  free(logs);
  double d = pr_diff(plain_out, tight_out), d1 = pr_diff(ref, tight_out);
  cr_assert(d < 1e-6, "recomputation changed the weights by %g", d);
  cr_assert(d1 < 1e-5, "recomputed stages: %g from one process", d1);
  ty_graph_destroy(g);
}

/* Every stage recomputing (the plan's stage.recompute), 4 stages and
 * 2 stages x 2 replicas: one process's weights. */
Test(pipeline_dropout, recomputation_by_the_plan_draws_one_process_masks, .timeout = 240) {
  ty_graph *g = drop_model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "dropout_all_rc", 5, ref, out);
  pipe_job four = pipe_job_make(1, 4, 4, 4, 5, out), two = pipe_job_make(2, 2, 2, 4, 5, out);
  four.all_recompute = two.all_recompute = true;
  char *logs = NULL;
  pipe_expect_like(g, &four, ref, "every stage recomputed", &logs);
  cr_assert_eq(synth_count(logs, "activations recomputed in backward"), 4, "%s", logs);
  free(logs);
  pipe_expect_like(g, &two, ref, "every stage recomputed, data x pipeline", &logs);
  cr_assert_eq(synth_count(logs, "activations recomputed in backward"), 4, "%s", logs);
  free(logs);
  ty_graph_destroy(g);
}

/* h h^T ([N, N]) relates the batch's samples to each other (and a Dropout
 * of it draws a mask that is no block of rows of one process's): each
 * micro-batch would relate only its own rows and train another model, so
 * the rank refuses to start, naming the node and both shapes (before the
 * Dropout's own refusal, which this once reached). */
Test(pipeline_dropout, a_value_relating_the_batchs_samples_is_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .batch_mix = true};
  ty_graph *g = synth_mlp_build(&o);
  pipe_job j = pipe_job_make(1, 2, 2, 2, 1, NULL);
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan *p = pipe_plan_for(g, &c, &j);
  int stage = -1;
  for (size_t i = 0; i < p->n_ops; i++)
    if (strcmp(p->ops[i].name, "mix.drop") == 0) stage = p->ops[i].stage;
  cr_assert(stage >= 0, "no stage runs mix.drop");
  ty_train_parallel par = {.plan = p, .send = mt_send, .recv = mt_recv, .flush = mt_flush};
  ty_train *t = NULL;
  FILE *log = tmpfile();
  ty_train_opts to = {.rank = (uint32_t)stage, .world_size = 2, .parallel = &par, .log = log};
  char err[TY_ERR_LEN] = "", want[256];
  cr_assert_eq(ty_train_create(g, &c, &to, &t, err, sizeof err), TY_EUNSUPPORTED, "%s", err);
  snprintf(want, sizeof want,
           "plan: node \"mix.scores\" (MatMul) computes [16,16] at a micro-batch of 16 rows and "
           "[32,32] at the global batch: it relates the batch's samples to each other");
  cr_assert(strstr(err, want), "%s", err);
  fclose(log);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}
