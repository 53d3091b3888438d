/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train running a parallel plan: every rank a trainer in a thread of
 * this process (parallel_jobs.c), their collectives through tests'
 * in-process mesh (tests/unit/ops/shard/mesh_threads.c; the real MPI
 * transport is covered by tests/integration/test_plan.c). Tensor, data x
 * tensor, data and searched plans train to the weights of one process on
 * the same global batch (on 3 ranks too, whose blocks of 64 rows are 22,
 * 21 and 21: the data and the loss's scale follow each rank's rows), with
 * weighted means, computed class weights, local norms, recurrent layers
 * (LSTM, GRU), shapes computed at run time; a token stream's windows split
 * whole between ranks.
 * Checkpoints, Dropout, BatchNormalization and clipping under plans are
 * test_parallel_ckpt.c's.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/data/npy_file.h"
#include "tests/unit/ops/shard/mesh_threads.h"
#include "tests/unit/ops/train/parallel_jobs.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

TestSuite(parallel, .init = pr_setup, .fini = pr_cleanup);

Test(parallel, plans_train_like_one_process, .timeout = 240) {
  ty_graph *g = pj_model();
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("plan.onnx"));
  pr_run_single(g, 6, ref, false);
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_TENSOR, 6, out, false}, {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
      {1, 4, TY_PLAN_MODE_TENSOR, 6, out, false}, {1, 2, TY_PLAN_MODE_DATA, 6, out, false},
      {2, 2, TY_PLAN_MODE_AUTO, 6, out, false},   {1, 1, TY_PLAN_MODE_AUTO, 6, out, false},
      {1, 3, TY_PLAN_MODE_DATA, 6, out, false}, /* 64 rows as 22, 21, 21 */
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  ty_graph_destroy(g);
}

/* A weighted mean loss (class weights and ignore_index, as the zoo's
 * weighted_nll and a language model's padding have) over a split batch:
 * each rank's loss is its rows' sum(w l) over the global batch's sum(w),
 * so the weights after six steps are one process's on data 1x2 (rank 1's
 * rows all ignored in step 1), grid 2x2, auto 2x2 and data 1x4, with a
 * plain mean and a replicated NegativeLogLikelihoodLoss beside it and a
 * third step whose labels are all ignored (a NaN loss, zero gradients, as
 * one process). */
Test(parallel, weighted_and_ignore_index_means_train_like_one_process, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .weighted_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref_weighted.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("plan_weighted.onnx"));
  synth_ignored_labels();
  pr_run_single_with(g, 6, ref, synth_weighted_config);
  pj_tweak = synth_weighted_config;
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_DATA, 6, out, false},
      {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
      {2, 2, TY_PLAN_MODE_AUTO, 6, out, false},
      {1, 4, TY_PLAN_MODE_DATA, 6, out, false},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* The builtin loss ignoring -100 labels, with label smoothing, over a
 * split batch (data 1x2 and 1x4, grid 2x2, auto 2x2): the mean is over
 * the kept labels of the global batch, so the weights are one process's. */
Test(parallel, builtin_loss_ignores_labels_as_one_process, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11};
  ty_graph *g = synth_mlp_build(&o);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref_ignored.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("plan_ignored.onnx"));
  synth_ignored_labels();
  pr_run_single_with(g, 6, ref, synth_ignored_builtin_config);
  pj_tweak = synth_ignored_builtin_config;
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_DATA, 6, out, false},
      {1, 4, TY_PLAN_MODE_DATA, 6, out, false},
      {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
      {2, 2, TY_PLAN_MODE_AUTO, 6, out, false},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* synth_config as a token stream lm.bin (token i = 5i mod 16) cut into
 * windows of 9 ids that synth_shifting_lm(9, NONE) shifts itself. */
static void tokens_none(ty_train_config *c) {
  synth_own_loss(c);
  synth_tokens_config(c, &(ty_train_tokens){.train_path = ty_strdup(synth_path("lm.bin")),
                                            .type = TY_DATA_U16,
                                            .context = 9,
                                            .labels = TY_TRAIN_TOKENS_NONE});
}

/* A token stream whose model shifts the window itself (labels NONE: one
 * column, no labels feed) splits whole windows between ranks: the
 * weights are one process's on data 1x2 and 1x4 and grid 2x2. */
Test(parallel, token_windows_a_model_shifts_split_per_sample, .timeout = 240) {
  uint16_t ids[2000];
  for (size_t i = 0; i < TY_ARRAY_LEN(ids); i++)
    ids[i] = (uint16_t)(i * 5 % SYNTH_LM_V);
  FILE *f = fopen(synth_path("lm.bin"), "wb");
  cr_assert_eq(fwrite(ids, sizeof ids, 1, f), 1);
  fclose(f);
  ty_graph *g = synth_shifting_lm(9, TY_TRAIN_TOKENS_NONE);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref_tokens.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("plan_tokens.onnx"));
  pr_run_single_with(g, 4, ref, tokens_none);
  pj_tweak = tokens_none;
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_DATA, 4, out, false},
      {1, 4, TY_PLAN_MODE_DATA, 4, out, false},
      {2, 2, TY_PLAN_MODE_GRID, 4, out, false},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* Class weights computed at run time (weight=self.w * 2: a Mul of two
 * initializers, read by the cross-entropy and by an NLL with
 * ignore_index, both now split on the batch): the denominator sums them
 * through the loss op, whose weight input has no gradient, so neither
 * initializer becomes a trained parameter (the plan was refused: "no
 * layout for it") and the weights are one process's on data 1x2 and grid
 * 2x2. */
Test(parallel, computed_class_weights_train_like_one_process, .timeout = 240) {
  synth_mlp o = {
      .in = 8, .hidden = 64, .out = 4, .seed = 11, .weighted_loss = true, .computed_weights = true};
  ty_graph *g = synth_mlp_build(&o);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref_computed.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("plan_computed.onnx"));
  synth_ignored_labels();
  pr_run_single_with(g, 4, ref, synth_weighted_config);
  pj_tweak = synth_weighted_config;
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_DATA, 4, out, false},
      {2, 2, TY_PLAN_MODE_GRID, 4, out, false},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* The plan the runs of job j trained with (6 steps of synth_config), to
 * look at how each op was split. */
static ty_plan *plan_of(const ty_graph *g, const pj_job *j) {
  ty_train_config c;
  synth_config(&c, 6, false);
  if (pj_tweak) pj_tweak(&c);
  ty_plan_request req = pj_request(j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  ty_train_config_close(&c);
  return p;
}

/* LRN (split on the batch or a spatial dim), MVN (on what it keeps) and
 * GridSample (on the batch of the image and the grid together) in a
 * planned run: the weights after six steps are one process's. */
Test(parallel, local_norms_and_grid_sample_train_like_one_process, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .local_norms = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("plan.onnx"));
  pr_run_single(g, 6, ref, false);
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_TENSOR, 6, out, false},
      {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
      {1, 2, TY_PLAN_MODE_DATA, 6, out, false},
      {2, 2, TY_PLAN_MODE_AUTO, 6, out, false},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++) {
    pj_expect_like(g, &jobs[i], ref, 1e-5);
    ty_plan *p = plan_of(g, &jobs[i]);
    for (size_t k = 0; k < p->n_ops; k++) { /* the runs above exercised the splits */
      const ty_plan_op *op = &p->ops[k];
      bool norm = !strcmp(op->name, "lrn") || !strcmp(op->name, "mvn");
      cr_assert(!op->fallback, "%s: %s", op->name, op->note);
      cr_assert(!norm || !strstr(op->strategy, "replicated"), "%s: %s", op->name, op->strategy);
      cr_assert(strcmp(op->name, "gs") || jobs[i].mode == TY_PLAN_MODE_TENSOR ||
                    strstr(op->strategy, "batch split"),
                "gs: %s", op->strategy);
    }
    ty_plan_destroy(p);
  }
  ty_graph_destroy(g);
}

/* Shapes computed at run time from Shape nodes (PyTorch's attention head
 * split): import leaves dims unknown, the planner and each rank's local
 * graph run that arithmetic at the plan's batch, and the ranks train like
 * one process. */
Test(parallel, shapes_from_run_time_shape_arithmetic_plan_and_train, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .shape_arith = true};
  ty_graph *g = synth_mlp_build(&o);
  const ty_graph_value *split = ty_graph_value_at(g, ty_graph_find_value(g, "sa.split.out"));
  cr_assert(split->shape.rank == 2 && split->shape.dims[0] < 0 && split->shape.dims[1] == 32,
            "import no longer leaves the split's batch dim unknown: the test tests nothing");
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("sa_ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("sa_plan.onnx"));
  pr_run_single(g, 6, ref, false);
  const pj_job jobs[] = {{1, 2, TY_PLAN_MODE_TENSOR, 6, out, false},
                         {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
                         {1, 2, TY_PLAN_MODE_AUTO, 6, out, false}};
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  ty_graph_destroy(g);
}

/* Logits whose class dim only the batch makes known (a ViT's class token
 * expanded to the batch): the controller, which plans without the data,
 * derives the labels from the logits at the config's batch. */
Test(parallel, logits_shaped_at_run_time_plan_without_data, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .expand = true};
  ty_graph *g = synth_mlp_build(&o);
  const ty_graph_value *logits = ty_graph_value_at(g, ty_graph_find_value(g, "logits"));
  const ty_graph_value *ex = ty_graph_value_at(g, ty_graph_find_value(g, "ex.expand.out"));
  char ls[96], es[96];
  ty_shape_format(&logits->shape, ls, sizeof ls);
  ty_shape_format(&ex->shape, es, sizeof es);
  cr_assert(logits->shape.rank != 2 || logits->shape.dims[1] < 0,
            "import now knows the logits' class dim (%s; expand %s): the test tests nothing", ls,
            es);
  ty_train_config c;
  synth_config(&c, 4, false);
  pj_job j = {1, 2, TY_PLAN_MODE_AUTO, 4, NULL, false};
  ty_plan_request req = pj_request(&j);
  ty_plan *with = NULL, *without = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &with, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_make_plan(g, &c, false, &req, &without, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_plan_hash(with), ty_plan_hash(without), "the plans differ");
  ty_plan_destroy(with);
  ty_plan_destroy(without);
  ty_train_config_close(&c);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("eb_ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("eb_plan.onnx"));
  pr_run_single(g, 4, ref, false);
  pj_expect_like(g, &(pj_job){1, 2, TY_PLAN_MODE_AUTO, 4, out, false}, ref, 1e-5);
  ty_graph_destroy(g);
}

/* Recurrent layers in a planned run (synth_mlp.rnn): an LSTM, time-major,
 * its Y, Y_h and Y_c all read, and a bidirectional batch-major GRU split
 * on the batch, each rank running its rows' sequences, W, R and B
 * replicated with their gradients all-reduced: the weights after six
 * steps are one process's on data 1x2, auto 1x2 (which splits the
 * recurrent node's batch too) and grid 2x2. */
Test(parallel, recurrent_layers_train_like_one_process, .timeout = 240) {
  const synth_rnn kinds[] = {SYNTH_RNN_LSTM, SYNTH_RNN_GRU};
  for (size_t k = 0; k < TY_ARRAY_LEN(kinds); k++) {
    synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .rnn = kinds[k]};
    ty_graph *g = synth_mlp_build(&o);
    char ref[300], out[300];
    snprintf(ref, sizeof ref, "%s", synth_path(k ? "gru_ref.onnx" : "lstm_ref.onnx"));
    snprintf(out, sizeof out, "%s", synth_path(k ? "gru_plan.onnx" : "lstm_plan.onnx"));
    pr_run_single(g, 6, ref, false);
    const pj_job jobs[] = {
        {1, 2, TY_PLAN_MODE_DATA, 6, out, false},
        {1, 2, TY_PLAN_MODE_AUTO, 6, out, false},
        {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
    };
    for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++) {
      pj_expect_like(g, &jobs[i], ref, 1e-5);
      ty_plan *p = plan_of(g, &jobs[i]);
      for (size_t n = 0; n < p->n_ops; n++) {
        const ty_plan_op *op = &p->ops[n];
        cr_assert(!op->fallback, "%s: %s", op->name, op->note);
        cr_assert(strcmp(op->name, "rnn") || strstr(op->strategy, "batch split"), "rnn: %s",
                  op->strategy);
      }
      ty_plan_destroy(p);
    }
    ty_graph_destroy(g);
  }
}

static void freeze_fc1(ty_train_config *c) {
  c->frozen = calloc(2, sizeof *c->frozen);
  cr_assert_not_null(c->frozen);
  c->frozen[0] = ty_strdup("fc1.*");
  c->n_frozen = 1;
}

/* Whether p's grad-sync collectives move the gradient of `name`. */
static bool syncs(const ty_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_collectives; i++)
    if (p->collectives[i].phase == TY_PLAN_GRAD_SYNC && p->collectives[i].tensor &&
        strcmp(p->collectives[i].tensor, name) == 0)
      return true;
  return false;
}

/* The planner trains what the trainer trains: config.frozen's weights
 * and the rank-0 scalar "scale" are constants of the plan (no grad-sync,
 * no gradient or optimizer memory, not among its parameters), and the
 * plans made so train like one process with fc1 frozen. */
Test(parallel, frozen_weights_are_planned_as_constants, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .scale = true};
  ty_graph *g = synth_mlp_build(&o);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("frozen_ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("frozen_plan.onnx"));
  const pj_job data = {1, 2, TY_PLAN_MODE_DATA, 6, out, false};
  ty_plan *all = plan_of(g, &data);
  cr_assert(syncs(all, "fc1.weight") && syncs(all, "fc2.weight"));
  cr_assert(!syncs(all, "scale"), "the rank-0 scalar \"scale\" is not trained");
  pj_tweak = freeze_fc1;
  ty_plan *frozen = plan_of(g, &data);
  cr_assert(!syncs(frozen, "fc1.weight") && !syncs(frozen, "fc1.bias"));
  cr_assert(syncs(frozen, "fc2.weight") && syncs(frozen, "fc2.bias"));
  cr_assert_eq(frozen->n_params, all->n_params - 2, "%zu parameters, %zu without fc1",
               frozen->n_params, all->n_params);
  cr_assert_lt(frozen->memory_bytes, all->memory_bytes);
  ty_plan_destroy(all);
  ty_plan_destroy(frozen);
  pr_run_single_with(g, 6, ref, freeze_fc1);
  const pj_job jobs[] = {data, {2, 2, TY_PLAN_MODE_AUTO, 6, data.ckpt, false}};
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* A stop request (SIGTERM) stops a plan at the next step: a world of one
 * (a 1x1 mesh, the default auto plan on one device) reads its flag after
 * every step, and several ranks agree after their first step, and then as
 * often as their step time allows within a quarter of a second. A stop
 * that waited for every eighth step let slow steps run into the kill. */
Test(parallel, a_stop_ends_a_plan_at_the_next_step, .timeout = 240) {
  ty_graph *g = pj_model();
  char out[300];
  snprintf(out, sizeof out, "%s", synth_path("stopped.onnx"));
  const pj_job jobs[] = {
      {1, 1, TY_PLAN_MODE_AUTO, 20, out, false},
      {1, 2, TY_PLAN_MODE_TENSOR, 20, out, false},
  };
  pj_stop_first = true;
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++) {
    pr_remove_checkpoint(out);
    pj_rank rr[MT_MAX_RANKS];
    pj_run_ranks(g, &jobs[i], NULL, rr);
    for (int r = 0; r < jobs[i].nodes * jobs[i].per_node; r++)
      cr_assert_eq(rr[r].step, 1u, "%dx%d: rank %d stopped at step %llu", jobs[i].nodes,
                   jobs[i].per_node, r, (unsigned long long)rr[r].step);
  }
  pj_stop_first = false;
  ty_graph_destroy(g);
}
