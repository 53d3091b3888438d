/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train, the builtin loss's ignore_index: labels equal to it (torch's
 * -100 unless the config gives one) are left out of the loss, its mean,
 * the label-smoothing term and evaluation's loss and accuracy, as
 * F.cross_entropy(..., ignore_index=-100) leaves them out; any other
 * label outside the classes stays refused. The numbers are PyTorch's
 * (torch 1.13, float64) for logits x * w of one trained scale per class.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/data/npy_file.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const float xs[8][4] = {{0.5f, -1.0f, 2.0f, 0.1f},  {1.5f, 0.2f, -0.3f, 0.7f},
                               {-0.4f, 0.9f, 0.3f, -1.2f}, {0.0f, 0.6f, -0.8f, 1.1f},
                               {2.1f, -0.5f, 0.4f, 0.3f},  {-1.1f, 1.3f, 0.2f, 0.5f},
                               {0.7f, 0.7f, -0.6f, -0.2f}, {0.3f, -0.9f, 1.4f, 0.8f}};

/* x.npy and labels: ig.npy with -100 (torch's default ignore_index) at
 * rows 1, 4 and 7, ig3.npy with 3 there instead, bad.npy with a -5. */
static void setup(void) {
  npy_write(synth_path("x.npy"), "<f4", "(8, 4)", xs, sizeof xs);
  int64_t y[8] = {2, -100, 1, 1, -100, 1, 0, -100};
  npy_write(synth_path("ig.npy"), "<i8", "(8,)", y, sizeof y);
  y[1] = y[4] = y[7] = 3;
  npy_write(synth_path("ig3.npy"), "<i8", "(8,)", y, sizeof y);
  y[2] = -5;
  npy_write(synth_path("bad.npy"), "<i8", "(8,)", y, sizeof y);
  int64_t all[8] = {-100, -100, -100, -100, -100, -100, -100, -100};
  npy_write(synth_path("all.npy"), "<i8", "(8,)", all, sizeof all);
}

TestSuite(ignore_index, .init = setup, .fini = synth_cleanup);

/* logits = x * w, w [4] = (1, 0.5, 2, 1.5) trained. */
static ty_graph *scaled_logits(void) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 15);
  ty_shape s = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 4}),
           ws = ty_shape_make(1, (int64_t[]){4});
  int x, w, y, idx;
  ty_tensor *wt;
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &s, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &ws, &wt), 0);
  memcpy(wt->data, (float[]){1.0f, 0.5f, 2.0f, 1.5f}, 4 * sizeof(float));
  cr_assert_eq(ty_graph_add_value(g, "w", TY_DTYPE_F32, &ws, &w), 0);
  cr_assert_eq(ty_graph_set_initializer(g, w, wt), 0);
  cr_assert_eq(ty_graph_add_value(g, "logits", TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MUL, "scale", (int[]){x, w}, 2, &y, 1, &idx), 0);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* One plain SGD step (lr 1) over the 8 rows, test split the same rows. */
static void config(ty_train_config *c, const char *labels, float smoothing) {
  synth_config(c, 1, false);
  for (size_t i = 0; i < c->n_train_arrays; i++) {
    free(c->train_arrays[i].path);
    c->train_arrays[i].path = ty_strdup(synth_path(i == 0 ? "x.npy" : labels));
  }
  synth_add_array(c, true, synth_path("x.npy"), "x");
  synth_add_array(c, true, synth_path(labels), "labels");
  c->optim.momentum = 0;
  c->schedule.base_lr = 1;
  c->batch_size = 8;
  c->shuffle = false;
  c->label_smoothing = smoothing;
}

/* Trains one step; the trained w and the evaluation after it. */
static void train_one(const ty_train_config *c, float w[4], double *acc, double *loss) {
  ty_graph *g = scaled_logits();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, c, &(ty_train_opts){0}, &t, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
  memcpy(w, ty_train_param(t, 0)->data, 4 * sizeof(float));
  cr_assert_eq(ty_train_evaluate(t, acc, loss, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  ty_graph_destroy(g);
}

static void expect_w(const float w[4], const double want[4]) {
  for (int k = 0; k < 4; k++)
    cr_assert_float_eq(w[k], want[k], 2e-6, "w[%d] %.7f, torch %.7f", k, w[k], want[k]);
}

/* torch: F.cross_entropy(x * w, y) with y's -100 ignored, its gradient
 * step, then F.cross_entropy over the same rows and the argmax accuracy
 * over the 5 kept rows (4 right). */
Test(ignore_index, default_minus_100_is_ignored_as_torch, .timeout = 60) {
  ty_train_config c;
  config(&c, "ig.npy", 0);
  float w[4];
  double acc, loss;
  train_one(&c, w, &acc, &loss);
  expect_w(w, (double[]){1.0993477, 0.8449873, 1.9997427, 1.3318210});
  cr_assert_float_eq(loss, 0.797928478, 1e-5, "eval loss %.9f", loss);
  cr_assert_float_eq(acc, 0.8, 1e-9, "accuracy %g over the kept labels", acc);
  ty_train_config_close(&c);
}

/* label_smoothing 0.2: both terms are means over the kept labels, as
 * F.cross_entropy(x * w, y, label_smoothing=0.2). */
Test(ignore_index, label_smoothing_averages_the_kept_labels, .timeout = 60) {
  ty_train_config c;
  config(&c, "ig.npy", 0.2f);
  float w[4];
  double acc, loss;
  train_one(&c, w, &acc, &loss);
  expect_w(w, (double[]){1.0683477, 0.7579873, 1.9307427, 1.3348210});
  cr_assert_float_eq(loss, 0.827311431, 1e-5, "eval loss %.9f", loss);
  ty_train_config_close(&c);
}

/* An explicit ignore_index (3, a class) ignores that class's labels and
 * no longer -100. */
Test(ignore_index, explicit_ignore_index_is_used, .timeout = 60) {
  ty_train_config c;
  config(&c, "ig3.npy", 0);
  c.ignore_index_set = true;
  c.ignore_index = 3;
  float w[4];
  double acc, loss;
  train_one(&c, w, &acc, &loss);
  expect_w(w, (double[]){1.0993477, 0.8449873, 1.9997427, 1.3318210});
  cr_assert_float_eq(acc, 0.8, 1e-9, "accuracy %g over the kept labels", acc);
  ty_train_config_close(&c);
  config(&c, "ig.npy", 0); /* -100 is now a label outside the classes */
  c.ignore_index_set = true;
  c.ignore_index = 3;
  ty_graph *g = scaled_logits();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){0}, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "value -100 of sample 1 is outside [0, 4)"), "%s", err);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A label outside the classes that is not the ignore_index is refused
 * before the first step, naming the value and the sample. */
Test(ignore_index, other_labels_outside_the_classes_stay_refused, .timeout = 60) {
  ty_train_config c;
  config(&c, "bad.npy", 0);
  ty_graph *g = scaled_logits();
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){0}, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.label_input (the logits \"logits\" have 4 classes): ") &&
                strstr(err, "value -5 of sample 2 is outside [0, 4) for \"labels\""),
            "%s", err);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A batch of ignored labels only: torch's NaN loss, and no gradient, so
 * plain SGD leaves w as it was. */
Test(ignore_index, a_batch_of_ignored_labels_moves_nothing, .timeout = 60) {
  ty_train_config c;
  config(&c, "all.npy", 0.1f);
  float w[4];
  double acc, loss;
  train_one(&c, w, &acc, &loss);
  expect_w(w, (double[]){1.0, 0.5, 2.0, 1.5});
  cr_assert(isnan(loss), "eval loss %g of no label", loss);
  ty_train_config_close(&c);
}
