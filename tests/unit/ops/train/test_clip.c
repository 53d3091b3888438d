/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train: gradient clipping (config.max_grad_norm, torch's
 * clip_grad_norm_) on one process and on data-parallel ranks, the
 * gradient norm in the progress line, and the refusals of what cannot
 * clip yet (DEVICE_GPU); plus the loss_output, logits_output and label
 * shape refusals that tell a model's author what to set or save instead.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void setup(void) {
  synth_blob_files("", 128, 1);
}

TestSuite(clip, .init = setup, .fini = synth_cleanup);

/* Every trained value, back to back (malloc'd; *out_n values). */
static float *weights(const ty_train *t, size_t *out_n) {
  size_t n = 0;
  for (size_t p = 0; p < ty_train_n_params(t); p++)
    n += (size_t)ty_tensor_numel(ty_train_param(t, p));
  float *w = malloc(n * sizeof *w), *at = w;
  for (size_t p = 0; p < ty_train_n_params(t); p++) {
    const ty_tensor *x = ty_train_param(t, p);
    memcpy(at, x->data, x->nbytes);
    at += ty_tensor_numel(x);
  }
  *out_n = n;
  return w;
}

/* One SGD step (lr 0.1, no momentum) with max_grad_norm `clip` on a
 * trainer of opts o: the update's global L2 norm. */
static double one_step_update_norm(float clip, const ty_train_opts *o, char **out_log) {
  synth_mlp m = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&m);
  ty_train_config c;
  synth_config(&c, 4, false);
  c.optim.momentum = 0;
  c.log_interval = 1;
  c.max_grad_norm = clip;
  FILE *log = tmpfile();
  ty_train_opts opts = *o;
  opts.log = log;
  ty_train *t = synth_trainer(g, &c, &opts);
  size_t n, n2;
  float *before = weights(t, &n);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
  float *after = weights(t, &n2);
  cr_assert_eq(n, n2);
  double sq = 0;
  for (size_t i = 0; i < n; i++)
    sq += ((double)after[i] - before[i]) * ((double)after[i] - before[i]);
  if (out_log) *out_log = synth_log_text(log);
  free(before);
  free(after);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  return sqrt(sq);
}

/* Clipped, an SGD step without momentum moves the weights by exactly
 * lr x max_grad_norm (torch: p -= lr * g * max / (|g| + 1e-6)); the log
 * says clipping is on and each progress line carries the norm before
 * clipping, which is above the limit. */
Test(clip, a_clipped_sgd_step_moves_the_weights_by_lr_times_the_norm, .timeout = 60) {
  char *text = NULL;
  double free_norm = one_step_update_norm(0, &(ty_train_opts){0}, NULL);
  cr_assert_gt(free_norm, 0.1 * 0.01, "the unclipped step must be larger than the clipped one");
  double d = one_step_update_norm(0.01f, &(ty_train_opts){0}, &text);
  cr_assert_float_eq(d, 0.1 * 0.01, 1e-6, "update norm %g, want lr x max_grad_norm 0.001", d);
  cr_assert(strstr(text, "gradient clipping: global L2 norm to 0.01"), "%s", text);
  const char *gn = strstr(text, " grad_norm ");
  cr_assert(gn, "no grad_norm in the progress line: %s", text);
  double norm = strtod(gn + 11, NULL);
  cr_assert_float_eq(norm, free_norm / 0.1, 1e-3 * norm, "grad_norm %g, the step says %g", norm,
                     free_norm / 0.1);
  free(text);
}

/* A limit above the norm changes nothing: the same bits as no clipping,
 * and no grad_norm without clipping. */
Test(clip, a_limit_above_the_norm_changes_no_bit, .timeout = 60) {
  char *text = NULL;
  double a = one_step_update_norm(0, &(ty_train_opts){0}, &text);
  double b = one_step_update_norm(1e9f, &(ty_train_opts){0}, NULL);
  cr_assert_eq(a, b, "update norm %.17g unclipped, %.17g under a limit of 1e9", a, b);
  cr_assert_null(strstr(text, "grad_norm"), "%s", text);
  free(text);
}

/* The other rank's gradient, as the all-reduce would sum it: equal to
 * this rank's, so the average is this rank's own. */
static int twice(float *buf, size_t n, uint64_t seq, void *user) {
  (void)seq;
  (void)user;
  for (size_t i = 0; i < n; i++)
    buf[i] *= 2;
  return 0;
}

/* Data-parallel ranks clip the averaged gradient (every bucket reduced
 * before the norm): the step is again lr x max_grad_norm. */
Test(clip, data_parallel_ranks_clip_the_averaged_gradient, .timeout = 60) {
  ty_train_opts o = {.rank = 0, .world_size = 2, .allreduce = twice, .bucket_bytes = 256};
  double d = one_step_update_norm(0.01f, &o, NULL);
  cr_assert_float_eq(d, 0.1 * 0.01, 1e-6, "update norm %g, want 0.001", d);
}

/* DEVICE_GPU cannot clip yet: refused before training, naming the field. */
Test(clip, device_gpu_is_refused, .timeout = 60) {
  synth_mlp m = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&m);
  ty_train_config c;
  synth_config(&c, 4, false);
  c.max_grad_norm = 1;
  c.gpu = true;
  FILE *log = tmpfile();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "config.max_grad_norm") && strstr(err, "DEVICE_GPU"), "%s", err);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* ---- the loss the config names ---------------------------------------------------------- */
static void expect_refused(const synth_mlp *m, const char *loss_output, const char *logits_output,
                           const char *want1, const char *want2) {
  ty_graph *g = synth_mlp_build(m);
  ty_train_config c;
  synth_config(&c, 4, false);
  free(c.logits_output);
  c.logits_output = logits_output ? ty_strdup(logits_output) : NULL;
  c.loss_output = loss_output ? ty_strdup(loss_output) : NULL;
  if (loss_output) { /* the model's own loss: no labels array */
    free(c.train_arrays[1].path);
    free(c.train_arrays[1].input);
    c.n_train_arrays = 1;
  }
  FILE *log = tmpfile();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err), TY_EINVAL,
               "accepted");
  cr_assert(strstr(err, want1) && strstr(err, want2), "%s", err);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* loss_output naming the logits (a model that returns its scores, not its
 * loss) is told to use the builtin loss; a name that is no output gets the
 * model's outputs. */
Test(clip, a_loss_output_that_is_no_loss_names_the_builtin_loss, .timeout = 60) {
  synth_mlp m = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  expect_refused(&m, "logits", NULL, "config.loss_output: \"logits\" is FLOAT [N,4], not a loss",
                 "softmax_cross_entropy { logits_output: \"logits\" }");
  expect_refused(&m, "logit", NULL, "config.loss_output: \"logit\" is not an output",
                 "(its outputs: logits)");
  expect_refused(&m, NULL, "logit", "config.softmax_cross_entropy.logits_output: \"logit\"",
                 "(its outputs: logits)");
}

/* Labels saved as [N, 1] (a column) or in the logits' shape (one-hot)
 * are refused with what to save instead. */
Test(clip, labels_of_the_logits_rank_say_how_to_save_class_indices, .timeout = 60) {
  int64_t col[128], hot[128 * 4] = {0};
  float x[128 * 8];
  int64_t y[128];
  synth_blobs(128, 8, 4, 1, x, y);
  for (int i = 0; i < 128; i++)
    col[i] = y[i], hot[i * 4 + y[i]] = 1;
  npy_write(synth_path("ycol.npy"), "<i8", "(128, 1)", col, sizeof col);
  npy_write(synth_path("yhot.npy"), "<i8", "(128, 4)", hot, sizeof hot);
  const char *files[] = {"ycol.npy", "yhot.npy"};
  const char *want[] = {"labels \"labels\" [N,1] do not fit the logits \"logits\" [N,4]",
                        "labels \"labels\" [N,4] do not fit the logits \"logits\" [N,4]"};
  const char *hint[] = {"a trailing dim of 1: save the class indices without it",
                        "the logits' shape (one-hot or probabilities?)"};
  synth_mlp m = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&m);
  for (int k = 0; k < 2; k++) {
    ty_train_config c;
    synth_config(&c, 4, false);
    free(c.train_arrays[1].path);
    c.train_arrays[1].path = ty_strdup(synth_path(files[k]));
    FILE *log = tmpfile();
    ty_train *t = NULL;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
                 TY_EINVAL, "%s accepted", files[k]);
    cr_assert(strstr(err, want[k]) && strstr(err, hint[k]), "%s", err);
    fclose(log);
    ty_train_config_close(&c);
  }
  ty_graph_destroy(g);
}
