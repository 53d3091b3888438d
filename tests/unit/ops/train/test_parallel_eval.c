/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A flat plan's evaluation (ops/train/eval_shard.c), the ranks threads of
 * this process: every rank evaluates its block of the model together with
 * the others, none gathers the whole weights, and the accuracy and loss
 * rank 0 reports are one process's for the same trained weights: tensor,
 * data x tensor and data plans (three ranks splitting each batch 11, 11,
 * 10), a test split whose last batch is shorter than the plan's batch
 * (padded, the padding not counted), BatchNormalization over a split
 * batch on its running statistics (not the batch's), and a model's own
 * loss (every row where its node has an ignore_index to pad with; else,
 * or beside a plain mean term that padding would change, whole batches
 * only, and rank 0 says how many rows it leaves out).
 * A model the plan cannot shard for evaluation is evaluated on rank 0
 * with the weights gathered there, as before, and the log says why.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/shard/mesh_threads.h"
#include "tests/unit/ops/train/parallel_jobs.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(parallel_eval, .init = pr_setup, .fini = pr_cleanup);

#define STEPS 3

/* What one evaluation gave. */
typedef struct scored {
  double acc, loss;
  size_t full_bytes; /* whole-model copies the rank held after it */
  int rc;
  char err[TY_ERR_LEN];
  char log[4096]; /* rank 0's */
} scored;

/* The plan every rank runs, or NULL: each searches pj_request's. */
static const ty_plan *given_plan;

typedef struct eval_rank {
  mt_rank r;
  const pj_job *j;
  const ty_graph *g;
  scored s;
} eval_rank;

/* Writes the test split px.npy, py.npy: n blobs, every third label
 * wrong. */
static void test_split(uint32_t n) {
  synth_test_files("p", n, 9);
}

/* The test split on every config. */
static void with_test(ty_train_config *c) {
  if (pj_tweak) pj_tweak(c);
  synth_add_array(c, true, synth_path("px.npy"), "x");
  synth_add_array(c, true, synth_path("py.npy"), "labels");
}

/* The ranks run ty_train_run (its final evaluation) rather than steps
 * and ty_train_evaluate: the gathering path gathers there. */
static bool whole_run;

/* s->log from log; after a whole run, the final scores it printed. */
static void read_log(FILE *log, scored *s) {
  rewind(log);
  size_t n = fread(s->log, 1, sizeof s->log - 1, log);
  s->log[n] = '\0';
  const char *final = strstr(s->log, "final test_accuracy");
  if (whole_run && final) sscanf(final, "final test_accuracy %lf test_loss %lf", &s->acc, &s->loss);
}

static void train_and_score(ty_train *t, scored *s) {
  bool stopped;
  if (whole_run) {
    s->rc = ty_train_run(t, &stopped, s->err, sizeof s->err);
  } else {
    s->rc = ty_train_steps(t, STEPS, s->err, sizeof s->err);
    if (s->rc == 0) s->rc = ty_train_evaluate(t, &s->acc, &s->loss, s->err, sizeof s->err);
  }
  if (s->rc == 0) s->full_bytes = ty_train_full_bytes(t);
}

static void *rank_main(void *arg) {
  eval_rank *er = arg;
  ty_train_config c;
  synth_config(&c, STEPS, false);
  with_test(&c);
  ty_plan_request req = pj_request(er->j);
  ty_train_parallel par = pr_parallel(&er->r);
  par.request = &req;
  par.plan = given_plan;
  FILE *log = tmpfile();
  ty_train_opts o = pr_opts(&er->r, &par, false, log);
  ty_train *t = NULL;
  er->s.rc = ty_train_create(er->g, &c, &o, &t, er->s.err, sizeof er->s.err);
  if (er->s.rc == 0) train_and_score(t, &er->s);
  read_log(log, &er->s);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return NULL;
}

/* One process: the same steps on the same batches, then evaluated. */
static scored score_single(const ty_graph *g) {
  ty_train_config c;
  synth_config(&c, STEPS, false);
  with_test(&c);
  FILE *log = tmpfile();
  ty_train_opts o = {.log = log};
  scored s = {0};
  ty_train *t = synth_trainer(g, &c, &o);
  train_and_score(t, &s);
  cr_assert_eq(s.rc, 0, "one process: %s", s.err);
  read_log(log, &s);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return s;
}

/* Job j's ranks train and evaluate; rank 0's scores, every rank checked. */
static scored score_plan(const ty_graph *g, const pj_job *j) {
  ty_train_config c;
  synth_config(&c, STEPS, false);
  with_test(&c);
  ty_plan_request req = pj_request(j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  ty_train_config_close(&c);
  if (given_plan) ty_plan_destroy(p), p = (ty_plan *)given_plan;
  mt_mesh m;
  int world = j->nodes * j->per_node;
  mt_mesh_init(&m, p->mesh[0], p->mesh[1]);
  eval_rank rr[MT_MAX_RANKS];
  memset(rr, 0, sizeof rr);
  for (int r = 0; r < world; r++)
    rr[r] = (eval_rank){.r = {&m, r, NULL}, .j = j, .g = g};
  pr_threads(world, rank_main, rr, sizeof *rr);
  for (int r = 0; r < world; r++) {
    cr_assert_eq(rr[r].s.rc, 0, "mesh %dx%d rank %d: %s", p->mesh[0], p->mesh[1], r, rr[r].s.err);
    cr_assert_eq(rr[r].s.full_bytes, 0u, "rank %d kept %zu bytes of whole weights", r,
                 rr[r].s.full_bytes);
  }
  cr_assert((strstr(rr[0].s.log, "rank 0 gathers") != NULL) == (given_plan != NULL), "%s",
            rr[0].s.log);
  mt_mesh_close(&m);
  if (!given_plan) ty_plan_destroy(p);
  return rr[0].s;
}

static void expect_like(const ty_graph *g, const pj_job *jobs, size_t n) {
  scored one = score_single(g);
  for (size_t i = 0; i < n; i++) {
    scored s = score_plan(g, &jobs[i]);
    cr_assert_float_eq(s.acc, one.acc, 1e-12, "job %zu: accuracy %f, one process %f", i, s.acc,
                       one.acc);
    cr_assert(one.acc < 0 || (one.acc > 0.3 && one.acc < 0.9), "accuracy %f", one.acc);
    cr_assert(fabs(s.loss - one.loss) <= 1e-5 * fmax(1.0, fabs(one.loss)),
              "job %zu: loss %.9f, one process %.9f", i, s.loss, one.loss);
  }
}

static const pj_job jobs[] = {
    {1, 2, TY_PLAN_MODE_TENSOR, STEPS, NULL, false},
    {2, 2, TY_PLAN_MODE_GRID, STEPS, NULL, false},
    {1, 3, TY_PLAN_MODE_DATA, STEPS, NULL, false},
    {1, 4, TY_PLAN_MODE_TENSOR, STEPS, NULL, false},
};

/* 70 test rows: batches of 32, 32 and 6 (padded to 32). */
Test(parallel_eval, ranks_evaluate_their_blocks_like_one_process, .timeout = 240) {
  test_split(70);
  ty_graph *g = pj_model();
  expect_like(g, jobs, TY_ARRAY_LEN(jobs));
  ty_graph_destroy(g);
}

/* BatchNormalization, also as a training-mode export: a data plan splits
 * its batch, and evaluation must use the running statistics, not the
 * padded batch's. */
Test(parallel_eval, batch_norm_evaluates_on_its_running_statistics, .timeout = 240) {
  test_split(70);
  ty_graph *g = pj_model_with(true), *tm = pj_model_bn_train_mode();
  const pj_job bn_jobs[] = {jobs[1], jobs[2]};
  expect_like(g, bn_jobs, TY_ARRAY_LEN(bn_jobs));
  expect_like(tm, bn_jobs, 1);
  ty_graph_destroy(g);
  ty_graph_destroy(tm);
}

/* A model's own loss: whole batches evaluate like one process (64 rows,
 * two batches of the plan's against one; also a class-weighted mean,
 * whose batches' means weigh by their own weights); with 70, rank 0 says
 * that the last 6 are left out. */
Test(parallel_eval, a_models_own_loss_evaluates_whole_batches, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .own_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  pj_tweak = synth_own_loss;
  test_split(64);
  expect_like(g, jobs, 2);
  o.own_weights = true;
  ty_graph *w = synth_mlp_build(&o);
  expect_like(w, jobs, 2);
  ty_graph_destroy(w);
  test_split(70);
  scored s = score_plan(g, &jobs[0]);
  cr_assert(strstr(s.log, "evaluation: the last 6 of the test split's 70 rows are not evaluated: "
                          "the plan's ranks evaluate whole batches of 32 rows, and the model's "
                          "loss \"loss\" is a mean over its batch"),
            "%s", s.log);
  test_split(20); /* fewer than one batch: nothing is evaluated, and the loss says so */
  s = score_plan(g, &jobs[0]);
  cr_assert(isnan(s.loss) && s.acc == -1, "loss %g, accuracy %g", s.loss, s.acc);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* A model's own summed, or weighted ignore_index, loss evaluates every
 * row, the last, shorter batch padded with rows labelled with its
 * ignore_index (70 rows: 32, 32 and 6): one process's total and mean. A
 * sum without an ignore_index evaluates whole batches, and rank 0 names
 * it a sum. */
Test(parallel_eval, a_models_own_ignore_index_loss_evaluates_every_row, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .own_loss = true, .own_sum = true};
  pj_tweak = synth_own_loss;
  test_split(70);
  ty_graph *plain_sum = synth_mlp_build(&o);
  o.own_ignore = true;
  ty_graph *sum = synth_mlp_build(&o);
  o.own_sum = false, o.own_weights = true;
  ty_graph *wii = synth_mlp_build(&o);
  expect_like(sum, jobs, 2);
  expect_like(wii, jobs, 2);
  scored s = score_plan(sum, &jobs[0]);
  cr_assert(!strstr(s.log, "not evaluated"), "%s", s.log);
  s = score_plan(plain_sum, &jobs[0]);
  cr_assert(strstr(s.log, "the last 6 of the test split's 70 rows are not evaluated: the plan's "
                          "ranks evaluate whole batches of 32 rows, and the model's loss \"loss\" "
                          "is a sum over its batch"),
            "%s", s.log);
  pj_tweak = NULL;
  ty_graph_destroy(plain_sum);
  ty_graph_destroy(sum);
  ty_graph_destroy(wii);
}

/* A cross-entropy with ignore_index plus a plain mean term (an
 * autoencoder's 0.01 x mse beside it, recon_loss; a regulariser's
 * (b ** 2).mean()): padding rows labelled with the ignore_index would
 * leave the cross-entropy as it is but count in the mean term, so the
 * plan evaluates whole batches and rank 0 says so (70 rows: the last 6
 * left out); 64 rows evaluate like one process. */
Test(parallel_eval, an_ignore_index_loss_beside_a_plain_mean_is_not_padded, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 9, .recon_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  pj_tweak = synth_own_loss;
  test_split(64);
  expect_like(g, jobs, 1);
  test_split(70);
  scored s = score_plan(g, &jobs[0]);
  cr_assert(strstr(s.log, "evaluation: the last 6 of the test split's 70 rows are not evaluated: "
                          "the plan's ranks evaluate whole batches of 32 rows, and the model's "
                          "loss \"loss\" is a mean over its batch"),
            "%s", s.log);
  pj_tweak = NULL;
  ty_graph_destroy(g);
}

/* A running statistic the plan has a reader take in another layout than
 * the one it is held in (a data plan edited so: an output "peek" of the
 * running mean split) cannot be sharded for evaluation: rank 0 says why
 * and evaluates the weights gathered on it, like one process. */
Test(parallel_eval, a_model_it_cannot_shard_is_evaluated_on_rank_0, .timeout = 240) {
  test_split(70);
  ty_graph *g = pj_model_with(true);
  int idx, mean = ty_graph_find_value(g, "bn.running_mean"), peek;
  cr_assert_eq(ty_graph_add_value(g, "peek", TY_DTYPE_F32, NULL, &peek), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_IDENTITY, "peek", &mean, 1, &peek, 1, &idx), 0);
  cr_assert_eq(ty_graph_mark_output(g, peek), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_train_config c;
  synth_config(&c, STEPS, false);
  with_test(&c);
  const pj_job data = {1, 2, TY_PLAN_MODE_DATA, STEPS, NULL, false};
  ty_plan_request req = pj_request(&data);
  ty_plan *p = NULL;
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  ty_train_config_close(&c);
  /* the batch split, the running mean whole for the BatchNormalization
   * (held whole: its readers differ), split for "peek" */
  ty_plan_layout *in = &p->ops[idx].inputs[0], *out = &p->ops[idx].outputs[0];
  cr_assert_eq(in->dim_axes[0], 0);
  in->dim_axes[0] = out->dim_axes[0] = p->mesh[0] > 1 ? 1 : 2;
  given_plan = p;
  whole_run = true;
  scored one = score_single(g), s = score_plan(g, &data);
  given_plan = NULL;
  whole_run = false;
  cr_assert(strstr(s.log, "evaluation: rank 0 gathers the whole weights to evaluate, where they "
                          "fit; the plan's ranks cannot evaluate their blocks together: shard: "
                          "node \"peek\" reads \"bn.running_mean\" in another layout"),
            "%s", s.log);
  cr_assert(strstr(s.log, "final test_accuracy"), "%s", s.log); /* as printed: 4 decimals */
  cr_assert(fabs(s.acc - one.acc) < 6e-5 && fabs(s.loss - one.loss) < 6e-5, "%f %f, %f %f", s.acc,
            one.acc, s.loss, one.loss);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}
