/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pipelined plan's evaluation (ops/train/pipe_eval.c), the ranks threads
 * of this process (pipe_ranks.c): the stages evaluate together, each with
 * the weights it trains, each test batch crossing the stages, and the
 * accuracy and loss rank 0 reports are one process's for the same trained
 * weights: 4 and 2 stages, the test split in batches of 32 (its last one
 * shorter) and in one batch, BatchNormalization on its running
 * statistics, a model's own loss. No rank gathers the whole weights, so a
 * model whose whole weights do not fit beside the stage the plan put on
 * rank 0 evaluates too (before, it was skipped). A random op other than
 * Dropout, and stages of several devices, are evaluated as before: rank 0
 * gathers the weights, and the log says why.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/parallel_jobs.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline_eval, .init = pr_setup, .fini = pr_cleanup);

/* The job's test split (tx.npy, ty.npy). */
static void with_test_data(ty_train_config *c) {
  synth_add_array(c, true, synth_path("tx.npy"), "x");
  synth_add_array(c, true, synth_path("ty.npy"), "labels");
}

/* ... in batches of 32 rows. */
static void in_batches_of_32(ty_train_config *c) {
  with_test_data(c);
  c->eval_batch_size = 32;
}

/* ... evaluated every 2 steps. */
static void every_2_steps(ty_train_config *c) {
  with_test_data(c);
  c->eval_interval = 2;
}

/* One process: j's config without stages (its micro-batches accumulated),
 * the same steps, then evaluated. */
static void score_single(const ty_graph *g, const pipe_job *j, double *acc, double *loss) {
  ty_train_config c;
  pipe_config(&c, j);
  c.pipeline_stages = 0;
  FILE *log = tmpfile();
  ty_train_opts o = {.log = log};
  ty_train *t = synth_trainer(g, &c, &o);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, j->steps, err, sizeof err), 0, "one process: %s", err);
  cr_assert_eq(ty_train_evaluate(t, acc, loss, err, sizeof err), 0, "one process: %s", err);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
}

/* j's ranks train and evaluate like one process; none gathers. Their
 * logs, owned. */
static char *expect_like(const ty_graph *g, const pipe_job *j) {
  double acc, loss;
  score_single(g, j, &acc, &loss);
  cr_assert(acc < 0 || (acc > 0.3 && acc < 0.9), "accuracy %f, loss %f", acc, loss);
  pipe_rank rr[MT_MAX_RANKS];
  memset(rr, 0, sizeof rr);
  char *logs = NULL;
  pipe_run(g, j, rr, &logs);
  cr_assert_float_eq(rr[0].acc, acc, 1e-12, "%d stages: accuracy %f, one process %f", j->stages,
                     rr[0].acc, acc);
  cr_assert(fabs(rr[0].loss - loss) <= 1e-5 * fmax(1.0, fabs(loss)),
            "%d stages: loss %.9f, one process %.9f", j->stages, rr[0].loss, loss);
  for (int r = 0; r < j->nodes * j->per_node; r++)
    cr_assert_eq(rr[r].full_after_eval, 0u, "rank %d kept %zu bytes of whole weights", r,
                 rr[r].full_after_eval);
  cr_assert_null(strstr(logs, "gathers"), "%s", logs);
  return logs;
}

/* 70 test rows: batches of 32, 32 and 6 on 4 stages (the rows said once),
 * one of 70 on 2, recomputing activations or not. */
Test(pipeline_eval, the_stages_evaluate_together_like_one_process, .timeout = 240) {
  synth_test_files("t", 70, 9);
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .deep = 2};
  ty_graph *g = synth_mlp_build(&o);
  pipe_job four = pipe_job_make(1, 4, 4, 4, 6, NULL), two = pipe_job_make(1, 2, 2, 2, 6, NULL);
  four.tweak = in_batches_of_32;
  two.tweak = with_test_data;
  four.evaluate = two.evaluate = true;
  char *logs = expect_like(g, &four);
  cr_assert_eq(synth_count(logs, "evaluation: the stages evaluate batches of 32 rows "
                                 "(config.eval_batch_size)"),
               1, "%s", logs);
  free(logs);
  free(expect_like(g, &two));
  two.all_recompute = true; /* the stages' forward graphs run in training too */
  free(expect_like(g, &two));
  ty_graph_destroy(g);
}

/* BatchNormalization (also exported in training mode): the stage that
 * runs it evaluates on its running statistics, not the batch's. */
Test(pipeline_eval, batch_norm_evaluates_on_its_running_statistics, .timeout = 240) {
  synth_test_files("t", 70, 9);
  pipe_job two = pipe_job_make(1, 2, 2, 2, 4, NULL);
  two.tweak = with_test_data;
  two.evaluate = true;
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 2, .bn = true};
  ty_graph *g = synth_mlp_build(&o);
  free(expect_like(g, &two));
  ty_graph_destroy(g);
  o.bn_train_mode = true;
  g = synth_mlp_build(&o);
  free(expect_like(g, &two));
  ty_graph_destroy(g);
}

/* A device memory that holds the largest stage and nothing more: the
 * whole weights could not be gathered on rank 0 (the evaluation was
 * skipped), and the stages evaluate at every interval. */
Test(pipeline_eval, a_model_whose_whole_weights_do_not_fit_evaluates, .timeout = 240) {
  synth_test_files("t", 64, 2);
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3};
  ty_graph *g = synth_mlp_build(&o);
  pipe_job tight = pipe_job_make(1, 4, 4, 4, 6, NULL);
  tight.tweak = every_2_steps;
  tight.mem = pipe_plain_memory(g, &tight);
  char *logs = NULL;
  pipe_run(g, &tight, NULL, &logs);
  cr_assert_null(strstr(logs, "evaluation skipped"), "%s", logs);
  cr_assert_eq(synth_count(logs, "eval at step"), 2, "steps 2 and 4 evaluate: %s", logs);
  free(logs);
  ty_graph_destroy(g);
}

static void own_loss(ty_train_config *c) {
  with_test_data(c);
  synth_own_loss(c);
}

/* A model's own loss (a mean over the batch): the last stage reports it
 * for each test batch, as one process does. */
Test(pipeline_eval, a_models_own_loss_evaluates_like_one_process, .timeout = 240) {
  synth_test_files("t", 70, 9);
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .deep = 2, .own_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  pipe_job j = pipe_job_make(1, 2, 2, 2, 6, NULL);
  j.tweak = own_loss;
  j.evaluate = true;
  free(expect_like(g, &j));
  ty_graph_destroy(g);
}

/* Job j (6 steps, evaluating every 2) of the MLP o: rank 0 says why the
 * stages cannot evaluate together, gathers the whole weights and
 * evaluates them at steps 2 and 4. The logs, owned. */
static char *expect_gathered(const synth_mlp *o, pipe_job *j, const char *why) {
  synth_test_files("t", 64, 2);
  ty_graph *g = synth_mlp_build(o);
  j->tweak = every_2_steps;
  char *logs = NULL;
  pipe_run(g, j, NULL, &logs);
  char line[300];
  snprintf(line, sizeof line,
           "evaluation: rank 0 gathers the whole weights to evaluate, where they fit; the "
           "pipeline's stages cannot evaluate together: %s",
           why);
  cr_assert(strstr(logs, line), "%s", logs);
  cr_assert_eq(synth_count(logs, "eval at step"), 2, "%s", logs);
  ty_graph_destroy(g);
  return logs;
}

/* A random op (RandomNormalLike) draws over the whole batch in one
 * process. */
Test(pipeline_eval, a_random_op_is_evaluated_on_rank_0, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .noise = true};
  pipe_job j = pipe_job_make(1, 2, 2, 2, 6, NULL);
  free(expect_gathered(&o, &j, "a random op draws over the whole batch in one process"));
}

/* Stages of two devices each shard their prediction (their intra-stage
 * plan). */
Test(pipeline_eval, stages_of_several_devices_are_evaluated_on_rank_0, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3};
  pipe_job j = pipe_job_make(1, 4, 2, 2, 6, NULL);
  char *logs = expect_gathered(&o, &j, "a stage of several devices shards its prediction");
  cr_assert(strstr(logs, "pipeline: rank 1 runs stage 0 of 2 (rank 1 of its "), "%s", logs);
  free(logs);
}
