/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BatchNormalization running statistics under ops/train: x -> Gemm(16) ->
 * BatchNormalization -> Relu -> Gemm(10). Training updates running_mean /
 * running_var (momentum 0.9, unbiased variance), the first step matches a
 * reference computed here from the first batch, checkpoints carry them and
 * resume stays bit-identical.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/unit/ops/train/helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HID 16
#define BATCH 64

static int init(ty_graph *g, const char *name, int n, const int64_t *dims, float fill,
                uint64_t *rng) {
  ty_shape s = ty_shape_make(n, dims);
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), 0);
  for (int64_t i = 0; i < ty_tensor_numel(t); i++) {
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    ty_tensor_f32(t)[i] =
        isnan(fill) ? (float)((double)(*rng >> 11) / 9007199254740992.0 - 0.5) * 0.07f : fill;
  }
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_F32, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(g, id, t), 0);
  return id;
}

static int node(ty_graph *g, ty_op op, const char *name, const int *in, int n_in, const char *out) {
  int y, idx;
  cr_assert_eq(ty_graph_add_value(g, out, TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, op, name, in, n_in, &y, 1, &idx), 0);
  if (op == TY_OP_GEMM) ty_graph_node_set_int(g, (size_t)idx, "transB", 1);
  return y;
}

static ty_graph *make_bn_model(void) {
  ty_graph *g;
  uint64_t rng = 11;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 15);
  ty_shape xs = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 784});
  int x;
  ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x);
  ty_graph_mark_input(g, x);
  int w1 = init(g, "fc1.weight", 2, (int64_t[]){HID, 784}, NAN, &rng);
  int b1 = init(g, "fc1.bias", 1, (int64_t[]){HID}, NAN, &rng);
  int h = node(g, TY_OP_GEMM, "fc1", (int[]){x, w1, b1}, 3, "fc1.out");
  int sc = init(g, "bn.weight", 1, (int64_t[]){HID}, 1.0f, &rng),
      bb = init(g, "bn.bias", 1, (int64_t[]){HID}, 0.0f, &rng);
  int rm = init(g, "bn.running_mean", 1, (int64_t[]){HID}, 0.0f, &rng);
  int rv = init(g, "bn.running_var", 1, (int64_t[]){HID}, 1.0f, &rng);
  int n = node(g, TY_OP_BATCH_NORM, "bn", (int[]){h, sc, bb, rm, rv}, 5, "bn.out");
  int r = node(g, TY_OP_RELU, "relu", &n, 1, "relu.out");
  int w2 = init(g, "fc2.weight", 2, (int64_t[]){10, HID}, NAN, &rng);
  int b2 = init(g, "fc2.bias", 1, (int64_t[]){10}, NAN, &rng);
  int logits = node(g, TY_OP_GEMM, "fc2", (int[]){r, w2, b2}, 3, "logits");
  ty_graph_mark_output(g, logits);
  char err[256];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

static const float *init_of(const ty_graph *g, const char *name) {
  int id = ty_graph_find_value(g, name);
  cr_assert_neq(id, TY_NO_VALUE, "%s", name);
  cr_assert_not_null(ty_graph_value_at(g, id)->init, "%s", name);
  return ty_graph_value_at(g, id)->init->data;
}

static ty_train *trainer(const ty_graph *g, const ty_train_config *c, const ty_train_opts *o) {
  char err[512] = "";
  ty_train *t = NULL;
  cr_assert_eq(ty_train_create(g, c, o, &t, err, sizeof err), 0, "%s", err);
  return t;
}

static void config(ty_train_config *c, const char *ckpt) {
  make_config(c, 6, ckpt);
  c->shuffle = false; /* the first batch is samples 0..63 */
  c->eval_each_epoch = false;
}

/* The running stats after one step from the first batch, in double. */
static void reference(const ty_graph *g, const ty_train_config *c, double *mean, double *var) {
  ty_dataset *ds;
  char err[256];
  ty_data_opts d = {.mean = c->mean, .std = c->std};
  cr_assert_eq(ty_data_load_fashion_mnist(&d, TY_DATA_TRAIN, &ds, err, sizeof err), 0, "%s", err);
  const float *w = init_of(g, "fc1.weight"), *b = init_of(g, "fc1.bias");
  static float x[784];
  static double h[BATCH][HID];
  for (int n = 0; n < BATCH; n++) {
    ty_dataset_sample(ds, (size_t)n, x);
    for (int j = 0; j < HID; j++) {
      double s = b[j];
      for (int k = 0; k < 784; k++)
        s += (double)x[k] * w[j * 784 + k];
      h[n][j] = s;
    }
  }
  for (int j = 0; j < HID; j++) {
    double m = 0, s2 = 0;
    for (int n = 0; n < BATCH; n++)
      m += h[n][j] / BATCH;
    for (int n = 0; n < BATCH; n++)
      s2 += (h[n][j] - m) * (h[n][j] - m);
    mean[j] = 0.9 * 0.0 + 0.1 * m;
    var[j] = 0.9 * 1.0 + 0.1 * s2 / (BATCH - 1); /* unbiased, as PyTorch */
  }
  ty_dataset_destroy(ds);
}

Test(train_bn, running_stats_follow_pytorch, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_bn_model();
  ty_train_config c;
  config(&c, NULL);
  FILE *log = tmpfile();
  ty_train_opts o = {.log = log};
  ty_train *t = trainer(g, &c, &o);
  cr_assert_eq(ty_train_n_stats(t), 2);
  cr_assert_str_eq(ty_train_stat_name(t, 0), "bn.running_mean");
  cr_assert_str_eq(ty_train_stat_name(t, 1), "bn.running_var");
  cr_assert_null(ty_train_stat(t, 2));
  for (size_t i = 0; i < ty_train_n_params(t); i++) /* not trainable */
    cr_assert(strstr(ty_train_param_name(t, i), "running") == NULL, "%s",
              ty_train_param_name(t, i));
  char err[512] = "";
  cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), 0, "%s", err);
  double mean[HID], var[HID];
  reference(g, &c, mean, var);
  const float *rm = ty_train_stat(t, 0)->data, *rv = ty_train_stat(t, 1)->data;
  for (int j = 0; j < HID; j++) {
    cr_assert(fabs(rm[j] - mean[j]) <= 1e-5 + 1e-4 * fabs(mean[j]), "mean[%d] %g, want %g", j,
              rm[j], mean[j]);
    cr_assert(fabs(rv[j] - var[j]) <= 1e-5 + 1e-4 * fabs(var[j]), "var[%d] %g, want %g", j, rv[j],
              var[j]);
    cr_assert(rv[j] != 1.0f, "running_var[%d] did not change", j);
  }
  float after1 = rm[0];
  cr_assert_eq(ty_train_steps(t, 2, err, sizeof err), 0, "%s", err);
  cr_assert(rm[0] != after1, "running_mean did not change on later steps");
  const float *orig = init_of(g, "bn.running_mean");
  cr_assert(orig[0] == 0.0f, "the caller's model must stay untouched");
  double acc, loss;
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert(isfinite(loss) && acc > 0.0);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static char *tmp_ckpt(void) {
  char *p = ty_xmalloc(64);
  snprintf(p, 64, "/tmp/ty_bn_%ld.onnx", (long)getpid());
  return p;
}

static void remove_ckpt(const char *p) {
  char s[80];
  snprintf(s, sizeof s, "%s.state", p);
  unlink(p);
  unlink(s);
}

/* Stats and params of t, concatenated (malloc'd). */
static uint8_t *snapshot(const ty_train *t, size_t *out_len) {
  ty_buf b;
  ty_buf_init(&b);
  for (size_t i = 0; i < ty_train_n_params(t); i++)
    ty_buf_append(&b, ty_train_param(t, i)->data, ty_train_param(t, i)->nbytes);
  for (size_t i = 0; i < ty_train_n_stats(t); i++)
    ty_buf_append(&b, ty_train_stat(t, i)->data, ty_train_stat(t, i)->nbytes);
  *out_len = b.len;
  return b.data;
}

Test(train_bn, checkpoint_and_resume, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_bn_model();
  char *ck = tmp_ckpt(), err[512] = "";
  remove_ckpt(ck);
  ty_train_config straight, split;
  config(&straight, NULL);
  config(&split, ck);
  FILE *log = tmpfile();
  ty_train_opts o = {.log = log};
  ty_train *t = trainer(g, &straight, &o);
  cr_assert_eq(ty_train_steps(t, 6, err, sizeof err), 0, "%s", err);
  size_t want_len, got_len;
  uint8_t *want = snapshot(t, &want_len);
  ty_train_destroy(t);

  t = trainer(g, &split, &o);
  cr_assert_eq(ty_train_steps(t, 3, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_graph *saved = NULL;
  cr_assert_eq(ty_graph_load_file(ck, err, sizeof err, &saved), 0, "%s", err);
  for (size_t i = 0; i < ty_train_n_stats(t); i++) {
    const ty_tensor *s = ty_train_stat(t, i);
    cr_assert(memcmp(init_of(saved, ty_train_stat_name(t, i)), s->data, s->nbytes) == 0,
              "%s not in the checkpoint", ty_train_stat_name(t, i));
  }
  ty_graph_destroy(saved);
  ty_train_destroy(t);
  o.resume = true;
  t = trainer(g, &split, &o);
  cr_assert_eq(ty_train_step(t), 3);
  cr_assert_eq(ty_train_steps(t, 3, err, sizeof err), 0, "%s", err);
  uint8_t *got = snapshot(t, &got_len);
  cr_assert_eq(got_len, want_len);
  cr_assert(memcmp(got, want, want_len) == 0,
            "resumed weights or running stats differ from the uninterrupted run");
  ty_train_destroy(t);
  remove_ckpt(ck);
  free(want);
  free(got);
  free(ck);
  fclose(log);
  ty_train_config_close(&straight);
  ty_train_config_close(&split);
  ty_graph_destroy(g);
}
