/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BatchNormalization in a pipelined plan (pipe.c), the ranks threads of
 * this process (pipe_ranks.c): GPipe's statistics per micro-batch, whole
 * stages or split over their devices by rows or by channels, against a
 * hand-written reference (one process accumulating gradients over the
 * same micro-batches, then plain SGD), and the checkpoint of channel-split
 * statistics resuming on other stages.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline_bn, .init = pr_setup, .fini = pr_cleanup);

/* x -> fc1 -> bn -> fc3 .. fc5 -> fc2. */
static ty_graph *bn_model(void) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .bn = true};
  ty_graph *g = synth_mlp_build(&mo);
  cr_assert_not_null(g);
  return g;
}

/* A job on plain SGD over the data in file order, which the reference
 * reproduces. */
static pipe_job bn_job(int per_node, int stages, uint64_t steps, const char *ckpt,
                       ty_plan_mode mode) {
  pipe_job j = pipe_job_make(1, per_node, stages, 4, steps, ckpt);
  j.plain_sgd = true;
  j.mode = mode;
  return j;
}

/* The reference of a pipeline with BatchNormalization: one process
 * accumulating gradients over the same M micro-batches of each global
 * batch (each normalised with its own statistics, the running statistics
 * folded in micro-batch order), then one SGD step on their mean. Returns
 * the forward + loss graph with the trained weights and statistics. */
typedef struct ref_bn {
  int x, stat[2];
  float momentum;
} ref_bn;

static void fold(const ref_bn *b, const ty_tensor *x, float *rm, float *rv) {
  int64_t n = x->shape.dims[0], c = x->shape.dims[1];
  for (int64_t ch = 0; ch < c; ch++) {
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < n; r++)
      s += ty_tensor_f32(x)[r * c + ch];
    double m = s / (double)n;
    for (int64_t r = 0; r < n; r++)
      s2 += (ty_tensor_f32(x)[r * c + ch] - m) * (ty_tensor_f32(x)[r * c + ch] - m);
    rm[ch] = rm[ch] * b->momentum + (float)m * (1 - b->momentum);
    rv[ch] = rv[ch] * b->momentum + (float)(s2 / (double)(n - 1)) * (1 - b->momentum);
  }
}

static ty_graph *accumulated(const ty_graph *model, const ty_train_config *c, int M, int steps) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = NULL;
  cr_assert_eq(ty_train_plan_graph(model, c, true, &g, err, sizeof err), 0, "%s", err);
  ref_bn bns[4];
  int nb = 0, wrt[64], grads[64], keep[4];
  size_t np = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    if (n->op != TY_OP_BATCH_NORM) continue;
    bns[nb] = (ref_bn){
        n->inputs[0], {n->inputs[3], n->inputs[4]}, ty_graph_node_attr_float(n, "momentum", 0.9f)};
    keep[nb] = n->inputs[0];
    nb++;
  }
  for (size_t i = 0; i < ty_graph_n_initializers(g); i++) {
    int v = ty_graph_initializer(g, i);
    bool stat = false;
    for (int b = 0; b < nb; b++)
      stat = stat || v == bns[b].stat[0] || v == bns[b].stat[1];
    if (ty_graph_value_at(g, v)->dtype == TY_DTYPE_F32 && !stat) wrt[np++] = v;
  }
  int loss = ty_graph_find_value(g, "trainyard.loss");
  cr_assert_eq(ty_autodiff(g, loss, wrt, np, grads, err, sizeof err), 0, "%s", err);
  ty_exec *ex = NULL;
  ty_exec_opts o = {.training = true, .keep_values = keep, .n_keep_values = (size_t)nb};
  cr_assert_eq(ty_exec_create(g, &o, &ex), 0);
  float *x = malloc(sizeof(float) * 8 * 256), *acc[64];
  int64_t *y = malloc(sizeof(int64_t) * 256), B = c->batch_size / M;
  synth_blobs(256, 8, 4, 1, x, y); /* the suite's x.npy and y.npy */
  for (size_t k = 0; k < np; k++)
    acc[k] = malloc(ty_graph_value_at(g, wrt[k])->init->nbytes);
  for (int s = 0; s < steps; s++) {
    for (size_t k = 0; k < np; k++)
      memset(acc[k], 0, ty_graph_value_at(g, wrt[k])->init->nbytes);
    for (int i = 0; i < M; i++) {
      int64_t first = (int64_t)s * c->batch_size + i * B;
      ty_shape xs = ty_shape_make(2, (int64_t[]){B, 8}), ys = ty_shape_make(1, (int64_t[]){B});
      ty_tensor *xt, *yt;
      cr_assert_eq(ty_tensor_create_from(TY_DTYPE_F32, &xs, x + first * 8,
                                         sizeof(float) * 8 * (size_t)B, &xt),
                   0);
      cr_assert_eq(
          ty_tensor_create_from(TY_DTYPE_I64, &ys, y + first, sizeof(int64_t) * (size_t)B, &yt), 0);
      cr_assert_eq(ty_exec_bind(ex, "x", xt, err, sizeof err), 0, "%s", err);
      cr_assert_eq(ty_exec_bind(ex, "labels", yt, err, sizeof err), 0, "%s", err);
      cr_assert_eq(ty_exec_run(ex, err, sizeof err), 0, "%s", err);
      for (int b = 0; b < nb; b++)
        fold(&bns[b], ty_exec_value(ex, bns[b].x),
             ty_tensor_f32(ty_graph_value_at(g, bns[b].stat[0])->init),
             ty_tensor_f32(ty_graph_value_at(g, bns[b].stat[1])->init));
      for (size_t k = 0; k < np; k++) {
        const ty_tensor *gr = ty_exec_value(ex, grads[k]);
        for (int64_t e = 0; e < ty_tensor_numel(gr); e++)
          acc[k][e] += ty_tensor_f32(gr)[e];
      }
      ty_tensor_destroy(xt);
      ty_tensor_destroy(yt);
    }
    for (size_t k = 0; k < np; k++) { /* SGD on the mean gradient; the executor reads in place */
      ty_tensor *w = ty_graph_value_at(g, wrt[k])->init;
      for (int64_t e = 0; e < ty_tensor_numel(w); e++)
        ty_tensor_f32(w)[e] -= (float)(c->schedule.base_lr * acc[k][e] / M);
    }
  }
  for (size_t k = 0; k < np; k++)
    free(acc[k]);
  free(x);
  free(y);
  ty_exec_destroy(ex);
  return g;
}

/* Largest difference between a checkpoint's float initializers and ref's. */
static double diff_graph(const char *path, const ty_graph *ref) {
  char err[TY_ERR_LEN] = "";
  ty_graph *ga;
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &ga), 0, "%s", err);
  double worst = 0;
  for (size_t i = 0; i < ty_graph_n_initializers(ga); i++) {
    const ty_graph_value *va = ty_graph_value_at(ga, ty_graph_initializer(ga, i));
    int r = ty_graph_find_value(ref, va->name);
    if (va->dtype != TY_DTYPE_F32 || r == TY_NO_VALUE) continue;
    const ty_tensor *tb = ty_graph_value_at(ref, r)->init;
    cr_assert_eq(va->init->nbytes, tb->nbytes, "%s", va->name);
    for (int64_t k = 0; k < ty_tensor_numel(va->init); k++)
      worst = fmax(worst, fabs((double)ty_tensor_f32(va->init)[k] - ty_tensor_f32(tb)[k]));
  }
  ty_graph_destroy(ga);
  return worst;
}

/* How far checkpoint `path` is from the accumulating process over M
 * micro-batches for `steps` steps under j's config. */
static double from_accumulating(const ty_graph *g, const pipe_job *j, int M, int steps,
                                const char *path) {
  ty_train_config c;
  pipe_config(&c, j);
  ty_graph *ref = accumulated(g, &c, M, steps);
  double d = diff_graph(path, ref);
  ty_graph_destroy(ref);
  ty_train_config_close(&c);
  return d;
}

/* The plan's strategy for op `name`. */
static const char *strategy_of(const ty_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_ops; i++)
    if (strcmp(p->ops[i].name, name) == 0) return p->ops[i].strategy;
  cr_assert_fail("the plan has no op %s", name);
  return NULL;
}

/* Asserts that j's plan puts 2 devices in each stage and splits bn as
 * `how` says ("batch split", "channel split"). */
static void expect_bn_split(const ty_graph *g, const pipe_job *j, const char *how) {
  ty_train_config c;
  pipe_config(&c, j);
  ty_plan *p = pipe_plan_for(g, &c, j);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  cr_assert(strstr(strategy_of(p, "bn"), how), "bn: %s", strategy_of(p, "bn"));
  ty_plan_destroy(p);
  ty_train_config_close(&c);
}

/* GPipe's BatchNormalization: statistics per micro-batch, running
 * statistics folded micro-batch by micro-batch in order; the weights and
 * the statistics match one process accumulating gradients over the same
 * micro-batches (and differ from one that normalises the whole batch). */
Test(pipeline_bn, batch_norm_uses_micro_batch_statistics, .timeout = 240) {
  ty_graph *g = bn_model();
  char out[PIPE_PATH];
  pipe_path(out, "pipe_bn.onnx");
  pipe_job j = bn_job(2, 2, 3, out, TY_PLAN_MODE_AUTO);
  pipe_run(g, &j, NULL, NULL);
  double d = from_accumulating(g, &j, 4, 3, out);
  cr_assert(d < 1e-5,
            "2 stages x 4 micro-batches with BatchNormalization: %g from the "
            "accumulating process",
            d);
  /* whole-batch statistics: another model */
  cr_assert(from_accumulating(g, &j, 1, 3, out) > 1e-4,
            "micro-batch statistics do not show in the weights");
  ty_graph_destroy(g);
}

/* BatchNormalization in stages of two devices: the stage's shard
 * normalises each micro-batch with statistics summed over the ranks that
 * split its rows, so the stage computes what one device would, and the
 * running statistics fold from those sums: the same weights and
 * statistics as the accumulating process. */
Test(pipeline_bn, batch_norm_in_data_parallel_stages, .timeout = 240) {
  ty_graph *g = bn_model();
  char out[PIPE_PATH];
  pipe_path(out, "pipe_bn_dp.onnx");
  pipe_job j = bn_job(4, 2, 3, out, TY_PLAN_MODE_DATA);
  expect_bn_split(g, &j, "batch split");
  pipe_run(g, &j, NULL, NULL);
  double d = from_accumulating(g, &j, 4, 3, out);
  cr_assert(d < 1e-5,
            "2 stages of 2 devices with BatchNormalization: %g from the accumulating process", d);
  ty_graph_destroy(g);
}

/* Issue 18: BatchNormalization with its channels split inside a stage
 * (tensor mode on 2 stages x 2 devices): each rank normalises its
 * channels, keeps its block of the running statistics and folds them from
 * its channels' micro-batch statistics; the checkpoint gathers the blocks
 * (the same weights and statistics as the accumulating process), and it
 * resumes on the same sharded stages (sliced into blocks again) and on 4
 * stages of one device. */
Test(pipeline_bn, batch_norm_with_its_channels_split_in_stages, .timeout = 240) {
  ty_graph *g = bn_model();
  char out[PIPE_PATH], again[PIPE_PATH], four[PIPE_PATH];
  pipe_path(out, "pipe_bn_tp.onnx");
  pipe_path(again, "pipe_bn_tp_again.onnx");
  pipe_path(four, "pipe_bn_tp_four.onnx");
  pipe_job j = bn_job(4, 2, 3, out, TY_PLAN_MODE_TENSOR);
  expect_bn_split(g, &j, "channel split");
  pipe_run(g, &j, NULL, NULL);
  double d = from_accumulating(g, &j, 4, 3, out);
  cr_assert(d < 1e-5, "BatchNormalization's channels split over 2 devices: %g from one process", d);
  pr_copy_checkpoint(out, again);
  pr_copy_checkpoint(out, four);
  pipe_job sharded = bn_job(4, 2, 6, again, TY_PLAN_MODE_TENSOR);
  sharded.resume = true;
  pipe_run(g, &sharded, NULL, NULL);
  pipe_job stages = bn_job(4, 4, 6, four, TY_PLAN_MODE_AUTO);
  stages.resume = true;
  pipe_run(g, &stages, NULL, NULL);
  double da = from_accumulating(g, &j, 4, 6, again), d4 = from_accumulating(g, &j, 4, 6, four);
  cr_assert(da < 1e-5, "resumed on the channel-split stages: %g from one process", da);
  cr_assert(d4 < 1e-5, "resumed on 4 stages of one device: %g from one process", d4);
  ty_graph_destroy(g);
}
