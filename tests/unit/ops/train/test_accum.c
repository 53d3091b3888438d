/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gradient accumulation without a plan (ops/train/accum.c;
 * docs/training.md, "Gradient accumulation"): config.micro_batches = N
 * on one process or on data-parallel ranks (threads of this process,
 * their all-reduce through shared memory) makes the update of one pass
 * over the whole batch, Dropout masks, a weighted ignore_index mean,
 * losses summed over the batch by hand and a metric output beside the
 * loss included; data-parallel ranks of one micro-batch train a weighted
 * mean or a summed loss as one process (2 and 4 ranks); BatchNormalization
 * normalises each micro-batch (trains, no equality); counts that do not
 * divide the rank's batch are refused naming the field, and a loss
 * neither summed nor averaged over the batch naming the node.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

TestSuite(accum, .init = pr_setup, .fini = pr_cleanup);

static void weighted(ty_train_config *c) {
  synth_weighted_config(c);
}
static void weighted_micro4(ty_train_config *c) {
  synth_weighted_config(c);
  c->micro_batches = 4;
}
static void micro4(ty_train_config *c) {
  c->micro_batches = 4;
}

/* One process, `steps` steps of synth_config changed by tweak,
 * checkpointed to ckpt: the log says it accumulates over 4 micro-batches
 * of 8 rows. */
static void run_micro(const ty_graph *g, const char *ckpt, uint64_t steps,
                      void (*tweak)(ty_train_config *)) {
  ty_train_config c;
  synth_config(&c, steps, false);
  tweak(&c);
  c.checkpoint_path = ty_strdup(ckpt);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, steps, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "gradient accumulation: 4 micro-batches of 8 rows per optimizer step"),
            "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
}

/* An MLP with Dropout after every hidden layer and a weighted,
 * ignore_index mean loss: 6 steps of 4 micro-batches are one pass's. */
Test(accum, micro_batches_train_like_one_pass, .timeout = 120) {
  synth_mlp o = {.in = 8,
                 .hidden = 32,
                 .out = 4,
                 .seed = 5,
                 .deep = 2,
                 .dropout = true,
                 .dropout_deep = true,
                 .weighted_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  synth_ignored_labels();
  const char *ref = synth_path("accum_ref.onnx"), *out = synth_path("accum_micro.onnx");
  char a[512], b[512];
  snprintf(a, sizeof a, "%s", ref);
  snprintf(b, sizeof b, "%s", out);
  pr_run_single_with(g, 6, a, weighted);
  run_micro(g, b, 6, weighted_micro4);
  double d = pr_diff(a, b);
  cr_assert(d < 1e-5, "4 micro-batches: weights differ from one pass by %g", d);
  ty_graph_destroy(g);
}

/* A checkpoint of 3 steps of 4 micro-batches resumes without them: 6
 * steps of one pass, the Dropout masks of the uninterrupted run. */
Test(accum, a_checkpoint_resumes_with_another_micro_batch_count, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 13, .deep = 1, .dropout = true};
  ty_graph *g = synth_mlp_build(&o);
  char a[512], b[512];
  snprintf(a, sizeof a, "%s", synth_path("resume_ref.onnx"));
  snprintf(b, sizeof b, "%s", synth_path("resume_micro.onnx"));
  pr_run_single(g, 6, a, false);
  run_micro(g, b, 3, micro4);
  pr_run_single(g, 6, b, true);
  double d = pr_diff(a, b);
  cr_assert(d < 1e-5, "resumed: weights differ from one pass by %g", d);
  ty_graph_destroy(g);
}

static void clipped_micro4(ty_train_config *c) {
  c->micro_batches = 4;
  c->max_grad_norm = 0.05f;
}

/* config.max_grad_norm clips the summed gradients of the whole batch once,
 * after the last micro-batch: one pass's clipped weights. */
Test(accum, clipping_takes_the_whole_batchs_norm, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 17, .deep = 1};
  ty_graph *g = synth_mlp_build(&o);
  char a[512], b[512];
  double norms[PR_MAX_STEPS];
  snprintf(a, sizeof a, "%s", synth_path("clip_ref.onnx"));
  snprintf(b, sizeof b, "%s", synth_path("clip_micro.onnx"));
  pr_run_single_clipped(g, 6, a, 0.05f, norms);
  for (int s = 0; s < 6; s++)
    cr_assert_gt(norms[s], 0.1, "step %d's norm %g: clipping would not act", s, norms[s]);
  run_micro(g, b, 6, clipped_micro4);
  double d = pr_diff(a, b);
  cr_assert(d < 1e-5, "clipped, 4 micro-batches: weights differ from one pass by %g", d);
  ty_graph_destroy(g);
}

/* ---- data-parallel ranks as threads ----------------------------------------------- */

typedef struct ring {
  pthread_barrier_t bar;
  uint32_t n;
  float *buf[4];
} ring;

typedef struct dp_rank {
  ring *r;
  const ty_graph *g;
  uint32_t rank;
  int micro;
  void (*tweak)(ty_train_config *); /* NULL: synth_config's */
  const char *want;                 /* a line the log must hold */
  bool said;                        /* it does */
  char ckpt[512];
  char err[TY_ERR_LEN];
  int rc;
  double weights;   /* the sum of every trained weight, in order */
  double losses[6]; /* the logged loss of each step */
} dp_rank;

/* Every rank's buffer summed in rank order: the same bits on each. */
static int ring_sum(float *buf, size_t n, uint64_t seq, void *user) {
  (void)seq;
  dp_rank *d = user;
  ring *r = d->r;
  float *sum = malloc(n * sizeof *sum + 1);
  r->buf[d->rank] = buf;
  pthread_barrier_wait(&r->bar);
  for (size_t i = 0; sum && i < n; i++) {
    sum[i] = r->buf[0][i];
    for (uint32_t k = 1; k < r->n; k++)
      sum[i] += r->buf[k][i];
  }
  pthread_barrier_wait(&r->bar);
  if (sum) memcpy(buf, sum, n * sizeof *sum);
  free(sum);
  return sum ? 0 : TY_ENOMEM;
}

static int ring_sum_named(float *buf, size_t n, const char *what, void *user) {
  (void)what;
  return ring_sum(buf, n, 0, user);
}

/* The loss of each "step N/M loss X" line of text, in order; how many. */
static int logged_losses(const char *text, double *out, int most) {
  int n = 0;
  for (const char *p = text; n < most && (p = strstr(p, " loss ")); p += 6)
    out[n++] = strtod(p + 6, NULL);
  return n;
}

/* One process's logged loss at each of 6 steps (every step logs) of
 * synth_config changed by tweak (NULL: as it is). */
static void single_losses(const ty_graph *g, void (*tweak)(ty_train_config *), double *out) {
  ty_train_config c;
  synth_config(&c, 6, false);
  if (tweak) tweak(&c);
  c.log_interval = 1;
  FILE *log = tmpfile();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err), 0, "%s",
               err);
  cr_assert_eq(ty_train_steps(t, 6, err, sizeof err), 0, "%s", err);
  char *text = synth_log_text(log);
  cr_assert_eq(logged_losses(text, out, 6), 6, "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
}

static void *dp_main(void *arg) {
  dp_rank *d = arg;
  ty_train_config c;
  synth_config(&c, 6, false);
  if (d->tweak) d->tweak(&c);
  c.micro_batches = d->micro;
  c.checkpoint_path = ty_strdup(d->ckpt);
  c.log_interval = 1;
  FILE *log = tmpfile();
  ty_train_opts o = {.rank = d->rank,
                     .world_size = d->r->n,
                     .allreduce = ring_sum,
                     .sum = ring_sum_named,
                     .allreduce_user = d,
                     .log = log};
  ty_train *t = NULL;
  d->rc = ty_train_create(d->g, &c, &o, &t, d->err, sizeof d->err);
  if (d->rc == 0) d->rc = ty_train_steps(t, 6, d->err, sizeof d->err);
  char *text = synth_log_text(log);
  d->said = strstr(text, d->want) != NULL;
  if (d->rc == 0 && logged_losses(text, d->losses, 6) != 6) {
    snprintf(d->err, sizeof d->err, "not 6 logged losses: %.400s", text);
    d->rc = -1;
  }
  free(text);
  if (d->rc == 0) d->rc = ty_train_checkpoint(t, d->err, sizeof d->err);
  for (size_t p = 0; d->rc == 0 && p < ty_train_n_params(t); p++)
    for (int64_t i = 0; i < ty_tensor_numel(ty_train_param(t, p)); i++)
      d->weights += ty_tensor_f32(ty_train_param(t, p))[i];
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  return NULL;
}

/* `world` data-parallel rank threads of g training synth_config changed
 * by tweak (NULL: as it is) for 6 steps in `micro` micro-batches, each
 * log holding want: one process's weights (ref, trained alike), the same
 * on every rank, and each rank logs one process's loss (the global
 * batch's, not its shard's; NaN where every label of the batch is
 * ignored, as PyTorch's). */
static void expect_ranks_like_one_process(const ty_graph *g, uint32_t world, int micro,
                                          void (*tweak)(ty_train_config *), const char *ref,
                                          const char *want) {
  ring r = {.n = world};
  pthread_barrier_init(&r.bar, NULL, world);
  dp_rank d[4];
  memset(d, 0, sizeof d);
  for (uint32_t k = 0; k < world; k++) {
    d[k] = (dp_rank){.r = &r, .g = g, .rank = k, .micro = micro, .tweak = tweak, .want = want};
    char name[64];
    snprintf(name, sizeof name, "dp_ranks%u_%d.onnx", world, micro);
    snprintf(d[k].ckpt, sizeof d[k].ckpt, "%s", synth_path(name));
  }
  pthread_t th[4];
  for (uint32_t k = 0; k < world; k++)
    cr_assert_eq(pthread_create(&th[k], NULL, dp_main, &d[k]), 0);
  for (uint32_t k = 0; k < world; k++)
    pthread_join(th[k], NULL);
  pthread_barrier_destroy(&r.bar);
  for (uint32_t k = 0; k < world; k++) {
    cr_assert_eq(d[k].rc, 0, "rank %u: %s", k, d[k].err);
    cr_assert(d[k].weights == d[0].weights, "the ranks' weights differ: %.17g, %.17g", d[0].weights,
              d[k].weights);
  }
  double diff = pr_diff(ref, d[0].ckpt); /* rank 0 alone writes */
  cr_assert(diff < 1e-5, "%u ranks: weights differ from one process by %g", world, diff);
  double one[6];
  single_losses(g, tweak, one);
  for (int s = 0; s < 6; s++)
    for (uint32_t k = 0; k < world; k++)
      if (!isnan(one[s]) || !isnan(d[k].losses[s])) /* a batch of ignored labels only */
        cr_assert_float_eq(d[k].losses[s], one[s], 1e-4,
                           "%u ranks: step %d: rank %u logs %.4f, one process %.4f", world, s + 1,
                           k, d[k].losses[s], one[s]);
  for (uint32_t k = 0; k < world; k++)
    cr_assert(d[k].said, "%u ranks: rank %u does not log \"%s\"", world, k, want);
}

/* Two data-parallel ranks of 16 rows, each in 4 micro-batches of 4, the
 * gradients all-reduced once per step. */
Test(accum, data_parallel_ranks_train_like_one_process, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 7, .deep = 1};
  ty_graph *g = synth_mlp_build(&o);
  char ref[512];
  snprintf(ref, sizeof ref, "%s", synth_path("dp_ref.onnx"));
  pr_run_single(g, 6, ref, false);
  expect_ranks_like_one_process(g, 2, 4, NULL, ref,
                                "gradient accumulation: 4 micro-batches of 4 rows");
  ty_graph_destroy(g);
}

/* Losses that are not a plain mean over the batch, on 2 and 4
 * data-parallel ranks of one micro-batch each: a weighted ignore_index
 * mean (class weights, and shards whose labels are all ignored: rows
 * 8-15 and 48-63 of synth_ignored_labels, ranks of 8 rows) and sums over
 * the batch. Averaging the ranks' gradients would train another model
 * (each rank's mean over its own weights, a sum halved): they train as
 * one process. */
static void expect_not_a_mean_like_one_process(const synth_mlp *o, const char *tag) {
  ty_graph *g = synth_mlp_build(o);
  synth_ignored_labels();
  char ref[512], name[64];
  snprintf(name, sizeof name, "%s_dp_ref.onnx", tag);
  snprintf(ref, sizeof ref, "%s", synth_path(name));
  pr_run_single_with(g, 6, ref, weighted);
  for (uint32_t world = 2; world <= 4; world += 2)
    expect_ranks_like_one_process(g, world, 1, weighted, ref, "data parallelism: each of the ");
  ty_graph_destroy(g);
}

Test(accum, data_parallel_ranks_train_a_weighted_mean_like_one_process, .timeout = 120) {
  expect_not_a_mean_like_one_process(
      &(synth_mlp){.in = 8, .hidden = 32, .out = 4, .seed = 7, .weighted_loss = true}, "wmean");
}

static int timed_out(float *buf, size_t n, uint64_t seq, void *user) {
  (void)buf, (void)n, (void)seq, (void)user;
  return TY_ETIMEDOUT;
}

/* The error of rank 0 of 2 training a weighted mean in `micro`
 * micro-batches when its all-reduce times out. */
static void expect_reduce_error(const ty_graph *g, int micro, const char *want) {
  ty_train_config c;
  synth_config(&c, 2, false);
  weighted(&c);
  c.micro_batches = micro;
  FILE *log = tmpfile();
  ty_train_opts o = {.world_size = 2, .allreduce = timed_out, .log = log};
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &o, &t, err, sizeof err), 0, "%s", err);
  cr_assert_neq(ty_train_steps(t, 1, err, sizeof err), 0);
  cr_assert(strncmp(err, want, strlen(want)) == 0, "%d micro-batches: \"%s\", want \"%s...\"",
            micro, err, want);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
}

/* A failed all-reduce names what took the path: data parallelism for
 * ranks of one micro-batch (a weighted mean), not gradient accumulation. */
Test(accum, a_failed_all_reduce_names_what_reduces, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .weighted_loss = true};
  ty_graph *g = synth_mlp_build(&o);
  synth_ignored_labels();
  expect_reduce_error(g, 1, "data parallelism: the all-reduce of the weighted mean losses' ");
  expect_reduce_error(g, 4, "gradient accumulation: the all-reduce of the weighted mean losses' ");
  ty_graph_destroy(g);
}

/* The builtin loss with labels its ignore_index (-100) leaves out, and
 * label smoothing: its mean is over the kept labels of the global batch,
 * on 2 and 4 data-parallel ranks (ranks whose labels are all ignored
 * among them) and 2 ranks of 4 accumulated micro-batches, as one process
 * (PyTorch's F.cross_entropy over the whole batch). */
static void ignored_micro4(ty_train_config *c) {
  synth_ignored_builtin_config(c);
  c->micro_batches = 4;
}

Test(accum, data_parallel_builtin_loss_ignores_labels_as_one_process, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 7};
  ty_graph *g = synth_mlp_build(&o);
  synth_ignored_labels();
  char ref[512];
  snprintf(ref, sizeof ref, "%s", synth_path("ignored_dp_ref.onnx"));
  pr_run_single_with(g, 6, ref, synth_ignored_builtin_config);
  for (uint32_t world = 2; world <= 4; world += 2)
    expect_ranks_like_one_process(g, world, 1, synth_ignored_builtin_config, ref,
                                  "data parallelism: each of the ");
  expect_ranks_like_one_process(g, 2, 4, ignored_micro4, ref, "gradient accumulation: ");
  ty_graph_destroy(g);
}

Test(accum, data_parallel_ranks_train_a_summed_loss_like_one_process, .timeout = 120) {
  expect_not_a_mean_like_one_process(
      &(synth_mlp){.in = 8, .hidden = 32, .out = 4, .seed = 7, .summed_losses = true}, "summed");
}

/* BatchNormalization normalises each micro-batch on its own (as PyTorch's
 * accumulation does): no equality with one pass, but it trains and its
 * running statistics move once per micro-batch. */
Test(accum, a_batchnorm_model_trains, .timeout = 120) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 9, .bn = true};
  ty_graph *g = synth_mlp_build(&o);
  char a[512], b[512];
  snprintf(a, sizeof a, "%s", synth_path("bn_ref.onnx"));
  snprintf(b, sizeof b, "%s", synth_path("bn_micro.onnx"));
  pr_run_single(g, 6, a, false);
  run_micro(g, b, 6, micro4);
  double d = pr_diff(a, b);
  cr_assert(isfinite(d), "4 micro-batches with BatchNormalization: %g", d);
  ty_graph_destroy(g);
}

/* ---- refusals --------------------------------------------------------------------- */

static void expect_refused(const ty_graph *g, int micro, uint32_t world, const char *want) {
  ty_train_config c;
  synth_config(&c, 2, false);
  c.micro_batches = micro;
  FILE *log = tmpfile();
  ty_train_opts o = {.world_size = world, .allreduce = world > 1 ? ring_sum : NULL, .log = log};
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &o, &t, err, sizeof err), TY_EINVAL, "%d: %s", micro, err);
  cr_assert(strstr(err, want), "%d micro-batches: \"%s\", want \"%s\"", micro, err, want);
  fclose(log);
  ty_train_config_close(&c);
}

Test(accum, counts_that_do_not_divide_the_ranks_batch_are_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  expect_refused(g, 3, 1, "config.micro_batches: 3 does not divide config.batch_size 32");
  expect_refused(g, 32, 2,
                 "config.micro_batches: 32 does not divide the batch of each of the 2 "
                 "data-parallel ranks (config.batch_size 32 / 2 = 16)");
  ty_graph_destroy(g);
}

/* ---- losses summed over the batch by hand ------------------------------------------ */

/* The model o builds, trained on one pass over the batch and on 4
 * micro-batches (files TAG_ref.onnx and TAG_micro.onnx): the same weights. */
static void expect_like_one_pass(const synth_mlp *o, const char *tag) {
  ty_graph *g = synth_mlp_build(o);
  synth_ignored_labels();
  char a[512], b[512], name[64];
  snprintf(name, sizeof name, "%s_ref.onnx", tag);
  snprintf(a, sizeof a, "%s", synth_path(name));
  snprintf(name, sizeof name, "%s_micro.onnx", tag);
  snprintf(b, sizeof b, "%s", synth_path(name));
  pr_run_single_with(g, 4, a, weighted);
  run_micro(g, b, 4, weighted_micro4);
  double d = pr_diff(a, b);
  cr_assert(d < 1e-5, "%s, 4 micro-batches: weights differ from one pass by %g", tag, d);
  ty_graph_destroy(g);
}

/* x.sum() of per-row losses, mse_loss(reduction="sum"), a sum over the
 * batch axis of the rows' means, and a sum / x.numel(): 4 micro-batches
 * add the sums and average the mean, as one pass over the batch. */
Test(accum, losses_summed_over_the_batch_by_hand_train_like_one_pass, .timeout = 120) {
  expect_like_one_pass(
      &(synth_mlp){.in = 8, .hidden = 32, .out = 4, .seed = 7, .summed_losses = true}, "summed");
}

/* A perplexity output beside the loss (synth_mlp.metric: exp of a batch
 * mean, which the micro-batches' mean is not) is a metric: only the loss
 * the config names counts, and 4 micro-batches train as one pass. */
Test(accum, a_metric_output_beside_the_loss_trains_like_one_pass, .timeout = 120) {
  expect_like_one_pass(
      &(synth_mlp){
          .in = 8, .hidden = 32, .out = 4, .seed = 11, .summed_losses = true, .metric = true},
      "metric");
}

/* A metric output that roots a sum the loss reads (synth_mlp.root_metric:
 * sqrt(s) beside a loss 0.05 s + ...): the sum is scaled by the
 * micro-batch count for the loss, the metric reads it unscaled, and 4
 * micro-batches train as one pass. */
Test(accum, a_metric_rooting_a_summed_loss_trains_like_one_pass, .timeout = 120) {
  expect_like_one_pass(
      &(synth_mlp){
          .in = 8, .hidden = 32, .out = 4, .seed = 13, .summed_losses = true, .root_metric = true},
      "root");
}

/* g under 1 and 4 micro-batches with loss_output `loss` (NULL: "loss"):
 * 1 trains, 4 are refused with `want`. */
static void expect_micro_refused(const ty_graph *g, const char *loss, const char *want) {
  for (int micro = 1; micro <= 4; micro += 3) {
    ty_train_config c;
    synth_config(&c, 2, false);
    synth_weighted_config(&c);
    if (loss) {
      free(c.loss_output);
      c.loss_output = ty_strdup(loss);
    }
    c.micro_batches = micro;
    FILE *log = tmpfile();
    ty_train *t = NULL;
    char err[TY_ERR_LEN] = "";
    int rc = ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err);
    if (micro == 1) {
      cr_assert_eq(rc, 0, "%s", err);
    } else {
      cr_assert_eq(rc, TY_EUNSUPPORTED, "%d: %s", rc, err);
      cr_assert(strstr(err, want), "\"%s\", want \"%s\"", err, want);
    }
    ty_train_destroy(t);
    fclose(log);
    ty_train_config_close(&c);
  }
}

/* sqrt(x.sum()) and x.max(0) as terms of the loss are neither the
 * micro-batches' sum nor their mean: several micro-batches are refused
 * naming the node; one is not. */
Test(accum, a_loss_neither_summed_nor_averaged_over_the_batch_is_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3, .summed_losses = true};
  synth_ignored_labels();
  o.sqrt_sum = true;
  ty_graph *g = synth_mlp_build(&o);
  expect_micro_refused(g, NULL,
                       "node \"row_sum\" (ReduceSum) sums over the batch and reaches the loss "
                       "through \"row_sqrt\" (Sqrt)");
  ty_graph_destroy(g);
  o.sqrt_sum = false;
  o.max_rows = true;
  g = synth_mlp_build(&o);
  expect_micro_refused(g, NULL,
                       "node \"row_sum\" (ReduceMax) reduces the batch dim into the loss "
                       "neither as a sum nor as a mean");
  ty_graph_destroy(g);
  /* the perplexity of a_metric_output_beside_the_loss_trains_like_one_pass
   * named the loss is one */
  o.max_rows = false;
  o.metric = true;
  g = synth_mlp_build(&o);
  expect_micro_refused(g, "ppl",
                       "node \"ce_mean\" (ReduceMean) averages over the batch and reaches the "
                       "loss through \"ppl\" (Exp)");
  ty_graph_destroy(g);
  /* a sum the loss reads through a term, 0.05 x it, that a metric roots:
   * scaling the sum by M would take the metric's root of M times a
   * micro-batch's term, not scaling it would give the loss 1 / M of its
   * gradient (the check and the scaling decide by one function,
   * ty_plan_summed_loss's) */
  o.metric = false;
  o.root_metric = o.root_of_term = true;
  g = synth_mlp_build(&o);
  expect_micro_refused(g, NULL,
                       "node \"ce_sum\" (ReduceSum) sums over the batch into the loss and also "
                       "into another output through \"ce_root\" (Sqrt), so the micro-batches "
                       "cannot scale it for the loss alone");
  ty_graph_destroy(g);
}
