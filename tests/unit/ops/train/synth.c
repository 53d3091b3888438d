/* SPDX-License-Identifier: Apache-2.0 */
/* The ops/train tests' synthetic data, small models and configs, and the
 * temporary directory that holds them (see synth.h). */
#include "tests/unit/ops/train/synth.h"

#include "lib/base/base.h"
#include "tests/support/tree.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

static char synth_dir[TY_TEST_DIR_LEN];
static pthread_mutex_t synth_dir_mu = PTHREAD_MUTEX_INITIALIZER;

/* The buffers are per thread: a plan's ranks are threads that each build
 * their config at once (pipe_config, plan_ranks.c), and with one shared
 * ring a rank's "x.npy" could be overwritten by another rank's "y.npy"
 * before it was copied -- that rank then failed at start and left its
 * peers waiting in their first collective. */
const char *synth_path(const char *name) {
  static _Thread_local char paths[8][256];
  static _Thread_local unsigned next;
  pthread_mutex_lock(&synth_dir_mu);
  if (!synth_dir[0]) cr_assert_eq(ty_test_make_dir(synth_dir, "synth"), 0);
  pthread_mutex_unlock(&synth_dir_mu);
  char *p = paths[next++ % 8];
  snprintf(p, 256, "%s%s%s", synth_dir, name[0] ? "/" : "", name);
  return p;
}

void synth_cleanup(void) {
  if (synth_dir[0]) cr_assert_eq(ty_test_remove_tree(synth_dir), 0, "%s stayed", synth_dir);
}

static double uniform(uint64_t *s) {
  *s = *s * 6364136223846793005ull + 1442695040888963407ull;
  return (double)(*s >> 11) / 9007199254740992.0;
}

void synth_blobs(uint32_t n, uint32_t d, uint32_t k, uint64_t seed, float *x, int64_t *y) {
  uint64_t s = seed;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t c = (uint32_t)(uniform(&s) * k) % k;
    y[i] = c;
    for (uint32_t j = 0; j < d; j++)
      x[i * d + j] = (float)((j % k == c ? 2.0 : 0.0) + (uniform(&s) - 0.5));
  }
}

static void blob_files(const char *prefix, uint32_t n, uint64_t seed, bool wrong) {
  float *x = malloc(sizeof(float) * 8 * n);
  int64_t *y = malloc(sizeof(int64_t) * n);
  synth_blobs(n, 8, 4, seed, x, y);
  for (uint32_t i = 0; wrong && i < n; i += 3)
    y[i] = (y[i] + 1) % 4;
  char name[64], shape[64];
  snprintf(name, sizeof name, "%sx.npy", prefix);
  snprintf(shape, sizeof shape, "(%u, 8)", n);
  npy_write(synth_path(name), "<f4", shape, x, sizeof(float) * 8 * n);
  snprintf(name, sizeof name, "%sy.npy", prefix);
  snprintf(shape, sizeof shape, "(%u,)", n);
  npy_write(synth_path(name), "<i8", shape, y, sizeof(int64_t) * n);
  free(x);
  free(y);
}

void synth_blob_files(const char *prefix, uint32_t n, uint64_t seed) {
  blob_files(prefix, n, seed, false);
}

void synth_test_files(const char *prefix, uint32_t n, uint64_t seed) {
  blob_files(prefix, n, seed, true);
}

void synth_ignored_labels(void) {
  float *x = malloc(sizeof(float) * 8 * 256);
  int64_t y[256];
  synth_blobs(256, 8, 4, 1, x, y);
  for (int i = 0; i < 256; i++)
    if (i <= 2 || (i >= 8 && i <= 15) || i == 41 || (i >= 48 && i <= 95) || (i >= 96 && i % 7 == 0))
      y[i] = -100;
  npy_write(synth_path("wy.npy"), "<i8", "(256,)", y, sizeof y);
  free(x);
}

void synth_ignored_test_labels(uint32_t n, uint64_t seed) {
  float *x = malloc(sizeof(float) * 8 * n);
  int64_t *y = malloc(sizeof(int64_t) * n);
  synth_blobs(n, 8, 4, seed, x, y);
  for (uint32_t i = 0; i < n; i += 3)
    y[i] = -100;
  char shape[64];
  snprintf(shape, sizeof shape, "(%u,)", n);
  npy_write(synth_path("tiy.npy"), "<i8", shape, y, sizeof(int64_t) * n);
  free(x);
  free(y);
}

void synth_own_loss(ty_train_config *c) {
  free(c->logits_output);
  c->logits_output = NULL;
  free(c->loss_output);
  c->loss_output = ty_strdup("loss");
}

void synth_ignored_builtin_config(ty_train_config *c) {
  for (size_t i = 0; i < c->n_train_arrays; i++)
    if (strcmp(c->train_arrays[i].input, "labels") == 0) {
      free(c->train_arrays[i].path);
      c->train_arrays[i].path = ty_strdup(synth_path("wy.npy"));
    }
  c->label_smoothing = 0.1f;
  c->shuffle = false;
}

void synth_weighted_config(ty_train_config *c) {
  for (size_t i = 0; i < c->n_train_arrays; i++)
    if (strcmp(c->train_arrays[i].input, "labels") == 0) {
      free(c->train_arrays[i].path);
      c->train_arrays[i].path = ty_strdup(synth_path("wy.npy"));
    }
  synth_own_loss(c);
  c->shuffle = false;
}

/* ---- models ------------------------------------------------------------------ */
static int init(ty_graph *g, const char *name, ty_dtype dt, int rank, const int64_t *dims,
                double bound, uint64_t *rng) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create(dt, &s, &t), 0);
  for (int64_t i = 0; dt == TY_DTYPE_F32 && i < ty_tensor_numel(t); i++)
    ty_tensor_f32(t)[i] = bound ? (float)((2 * uniform(rng) - 1) * bound) : 1.0f;
  if (dt == TY_DTYPE_BOOL) ((uint8_t *)t->data)[0] = 1;
  cr_assert_eq(ty_graph_add_value(g, name, dt, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(g, id, t), 0);
  return id;
}

static int node(ty_graph *g, ty_op op, const char *name, const int *in, int n, const char *out) {
  int y, idx;
  cr_assert_eq(ty_graph_add_value(g, out, TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, op, name, in, n, &y, 1, &idx), 0);
  if (op == TY_OP_GEMM) ty_graph_node_set_int(g, (size_t)idx, "transB", 1);
  return y;
}

static int linear(ty_graph *g, const char *name, int x, int in, int out, const char *out_name,
                  uint64_t *rng) {
  char wn[64], bn[64];
  snprintf(wn, sizeof wn, "%s.weight", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  double b = 1.0 / sqrt((double)in);
  int w = init(g, wn, TY_DTYPE_F32, 2, (int64_t[]){out, in}, b, rng);
  int bias = init(g, bn, TY_DTYPE_F32, 1, (int64_t[]){out}, b, rng);
  return node(g, TY_OP_GEMM, name, (int[]){x, w, bias}, 3, out_name);
}

/* A Constant node "<name>" whose value is the one-element int64 tensor {v}. */
static int constant_i64(ty_graph *g, const char *name, int64_t v) {
  ty_shape s = ty_shape_make(1, (int64_t[]){1});
  ty_tensor *t;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &s, &t), 0);
  ((int64_t *)t->data)[0] = v;
  int y = node(g, TY_OP_CONSTANT, name, NULL, 0, name);
  cr_assert_eq(ty_graph_node_set_tensor(g, ty_graph_n_nodes(g) - 1, "value", t), 0);
  return y;
}

/* linear whose weight is rows [0, out) of "<name>.weight" [2 out, in],
 * taken by Slice "<name>.slice" with Constant starts, ends and axes. */
static int sliced_linear(ty_graph *g, const char *name, int x, int in, int out,
                         const char *out_name, uint64_t *rng) {
  char wn[64], bn[64], cn[3][64], sn[64], wsn[64];
  snprintf(wn, sizeof wn, "%s.weight", name);
  snprintf(bn, sizeof bn, "%s.bias", name);
  snprintf(sn, sizeof sn, "%s.slice", name);
  snprintf(wsn, sizeof wsn, "%s.rows", name);
  double b = 1.0 / sqrt((double)in);
  int w = init(g, wn, TY_DTYPE_F32, 2, (int64_t[]){2 * out, in}, b, rng);
  int bias = init(g, bn, TY_DTYPE_F32, 1, (int64_t[]){out}, b, rng);
  const char *what[3] = {"starts", "ends", "axes"};
  const int64_t v[3] = {0, out, 0};
  int c[3];
  for (int i = 0; i < 3; i++) {
    snprintf(cn[i], sizeof cn[i], "%s.%s", name, what[i]);
    c[i] = constant_i64(g, cn[i], v[i]);
  }
  int ws = node(g, TY_OP_SLICE, sn, (int[]){w, c[0], c[1], c[2]}, 4, wsn);
  return node(g, TY_OP_GEMM, name, (int[]){x, ws, bias}, 3, out_name);
}

/* A Gemm reading the existing weight `weight` and a bias of its own, or
 * the existing `shared_bias` when not NULL. */
static int tied_linear(ty_graph *g, const char *name, int x, const char *weight,
                       const char *shared_bias, int out, const char *out_name, uint64_t *rng) {
  char bn[64];
  snprintf(bn, sizeof bn, "%s.bias", name);
  int w = ty_graph_find_value(g, weight);
  cr_assert_neq(w, TY_NO_VALUE, "%s", weight);
  int bias = shared_bias
                 ? ty_graph_find_value(g, shared_bias)
                 : init(g, bn, TY_DTYPE_F32, 1, (int64_t[]){out}, 1.0 / sqrt((double)out), rng);
  cr_assert_neq(bias, TY_NO_VALUE, "%s", shared_bias);
  return node(g, TY_OP_GEMM, name, (int[]){x, w, bias}, 3, out_name);
}

/* tied_linear as constant folding exports it: MatMul by a copy of `weight`
 * transposed, "onnx::MatMul_99", then Add of a bias of its own. */
static int folded_linear(ty_graph *g, const char *name, int x, const char *weight, int out,
                         const char *out_name, uint64_t *rng) {
  const ty_tensor *w = ty_graph_value_at(g, ty_graph_find_value(g, weight))->init;
  int64_t r = w->shape.dims[0], c = w->shape.dims[1];
  int wt = init(g, "onnx::MatMul_99", TY_DTYPE_F32, 2, (int64_t[]){c, r}, 1, rng);
  float *d = ty_tensor_f32(ty_graph_value_at(g, wt)->init);
  for (int64_t i = 0; i < r; i++)
    for (int64_t j = 0; j < c; j++)
      d[j * r + i] = ty_tensor_f32(w)[i * c + j];
  char bn[64], mm[64];
  snprintf(bn, sizeof bn, "%s.bias", name);
  snprintf(mm, sizeof mm, "%s.mm", name);
  int bias = init(g, bn, TY_DTYPE_F32, 1, (int64_t[]){out}, 1.0 / sqrt((double)out), rng);
  int y = node(g, TY_OP_MATMUL, mm, (int[]){x, wt}, 2, mm);
  return node(g, TY_OP_ADD, name, (int[]){y, bias}, 2, out_name);
}

/* train_mode: training_mode=1 and, as PyTorch exports it, the updated
 * running statistics as outputs 1 and 2 that nothing reads. */
static int batch_norm(ty_graph *g, int h, int c, bool train_mode, uint64_t *rng) {
  int sc = init(g, "bn.weight", TY_DTYPE_F32, 1, (int64_t[]){c}, 0, rng);
  int bb = init(g, "bn.bias", TY_DTYPE_F32, 1, (int64_t[]){c}, 0.1, rng);
  int rm = init(g, "bn.running_mean", TY_DTYPE_F32, 1, (int64_t[]){c}, 0.5, rng);
  int rv = init(g, "bn.running_var", TY_DTYPE_F32, 1, (int64_t[]){c}, 0, rng);
  if (!train_mode) return node(g, TY_OP_BATCH_NORM, "bn", (int[]){h, sc, bb, rm, rv}, 5, "bn.out");
  int out[3], idx;
  const char *names[3] = {"bn.out", "bn.running_mean_out", "bn.running_var_out"};
  for (int k = 0; k < 3; k++)
    cr_assert_eq(ty_graph_add_value(g, names[k], TY_DTYPE_INVALID, NULL, &out[k]), 0);
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_BATCH_NORM, "bn", (int[]){h, sc, bb, rm, rv}, 5, out, 3, &idx), 0);
  ty_graph_node_set_int(g, (size_t)idx, "training_mode", 1);
  return out[0];
}

static int const_i64(ty_graph *g, const char *name, int rank, int64_t n, const int64_t *v) {
  ty_shape s = ty_shape_make(rank, (int64_t[]){n});
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &s, &t), 0);
  memcpy(ty_tensor_i64(t), v, (size_t)n * sizeof *v);
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_I64, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(g, id, t), 0);
  return id;
}

/* A node with one int attribute. */
static int node_attr(ty_graph *g, ty_op op, const char *name, const int *in, int n, const char *out,
                     const char *attr, int64_t v) {
  int y = node(g, op, name, in, n, out);
  ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, attr, v);
  return y;
}

/* synth_mlp.shape_arith: h [N, C] -> the same values, through shapes only
 * known at run time. */
static int shape_arith(ty_graph *g, int h) {
  int s = node(g, TY_OP_SHAPE, "sa.shape", &h, 1, "sa.shape.out");
  int i0 = const_i64(g, "sa.i0", 0, 1, (int64_t[]){0}),
      i1 = const_i64(g, "sa.i1", 0, 1, (int64_t[]){1});
  int two = const_i64(g, "sa.two", 0, 1, (int64_t[]){2}),
      axes = const_i64(g, "sa.axes", 1, 1, (int64_t[]){0});
  int n = node_attr(g, TY_OP_GATHER, "sa.n", (int[]){s, i0}, 2, "sa.n.out", "axis", 0);
  int c = node_attr(g, TY_OP_GATHER, "sa.c", (int[]){s, i1}, 2, "sa.c.out", "axis", 0);
  int n2 = node(g, TY_OP_MUL, "sa.n2", (int[]){n, two}, 2, "sa.n2.out");
  int c2 = node(g, TY_OP_DIV, "sa.c2", (int[]){c, two}, 2, "sa.c2.out");
  int a = node(g, TY_OP_UNSQUEEZE, "sa.a", (int[]){n2, axes}, 2, "sa.a.out");
  int b = node(g, TY_OP_UNSQUEEZE, "sa.b", (int[]){c2, axes}, 2, "sa.b.out");
  int to = node_attr(g, TY_OP_CONCAT, "sa.to", (int[]){a, b}, 2, "sa.to.out", "axis", 0);
  int r = node(g, TY_OP_RESHAPE, "sa.split", (int[]){h, to}, 2, "sa.split.out");
  r = node(g, TY_OP_RELU, "sa.relu", &r, 1, "sa.relu.out");
  int nn = node(g, TY_OP_UNSQUEEZE, "sa.nn", (int[]){n, axes}, 2, "sa.nn.out");
  int rest = const_i64(g, "sa.rest", 1, 1, (int64_t[]){-1});
  int back = node_attr(g, TY_OP_CONCAT, "sa.back", (int[]){nn, rest}, 2, "sa.back.out", "axis", 0);
  r = node(g, TY_OP_RESHAPE, "sa.merge", (int[]){r, back}, 2, "sa.merge.out");
  int end = node(g, TY_OP_UNSQUEEZE, "sa.end", (int[]){c, axes}, 2, "sa.end.out");
  int start = const_i64(g, "sa.start", 1, 1, (int64_t[]){0}),
      axis1 = const_i64(g, "sa.axis1", 1, 1, (int64_t[]){1});
  return node(g, TY_OP_SLICE, "sa.slice", (int[]){r, start, end, axis1}, 4, "sa.slice.out");
}

/* synth_mlp.input_mask: the bool [N, 1] mask x[:, 0:1] > x[:, 1:2]. */
static int input_mask(ty_graph *g, int x) {
  int axes = const_i64(g, "mask.axes", 1, 1, (int64_t[]){1}), col[3];
  for (int k = 0; k < 3; k++) {
    char name[32];
    snprintf(name, sizeof name, "mask.col%d", k);
    col[k] = const_i64(g, name, 1, 1, (int64_t[]){k});
  }
  int a = node(g, TY_OP_SLICE, "mask.a", (int[]){x, col[0], col[1], axes}, 4, "mask.a.out");
  int b = node(g, TY_OP_SLICE, "mask.b", (int[]){x, col[1], col[2], axes}, 4, "mask.b.out");
  return node(g, TY_OP_GREATER, "mask", (int[]){a, b}, 2, "mask.out");
}

/* synth_mlp.expand: h [N, C] expanded to [N, |-1|], the same values. */
static int expand(ty_graph *g, int h) {
  int s = node(g, TY_OP_SHAPE, "ex.shape", &h, 1, "ex.shape.out");
  int i0 = const_i64(g, "ex.i0", 0, 1, (int64_t[]){0}),
      axes = const_i64(g, "ex.axes", 1, 1, (int64_t[]){0});
  int rest = const_i64(g, "ex.rest", 1, 1, (int64_t[]){-1}),
      minus = const_i64(g, "ex.minus", 1, 2, (int64_t[]){-1, -1}),
      ones = const_i64(g, "ex.ones", 1, 2, (int64_t[]){1, 1});
  int n = node_attr(g, TY_OP_GATHER, "ex.n", (int[]){s, i0}, 2, "ex.n.out", "axis", 0);
  n = node(g, TY_OP_UNSQUEEZE, "ex.n1", (int[]){n, axes}, 2, "ex.n1.out");
  int to = node_attr(g, TY_OP_CONCAT, "ex.to", (int[]){n, rest}, 2, "ex.to.out", "axis", 0);
  to = node(g, TY_OP_RESHAPE, "ex.flat", (int[]){to, rest}, 2, "ex.flat.out");
  /* Import follows the export's idiom through to [N, 64] (ops/fold.c);
   * an Abs, which its shape arithmetic does not follow, keeps the shape
   * one that only the run time knows, what this model is for. */
  to = node(g, TY_OP_ABS, "ex.abs", &to, 1, "ex.abs.out");
  int eq = node(g, TY_OP_EQUAL, "ex.eq", (int[]){to, minus}, 2, "ex.eq.out");
  to = node(g, TY_OP_WHERE, "ex.where", (int[]){eq, ones, to}, 3, "ex.where.out");
  return node(g, TY_OP_EXPAND, "ex.expand", (int[]){h, to}, 2, "ex.expand.out");
}

/* synth_mlp.local_norms: h [N, 64] -> LRN, MVN, GridSample -> [N, 64]. */
static int local_norms(ty_graph *g, int x, int in, int h, uint64_t *rng) {
  int img = const_i64(g, "ln.img", 1, 4, (int64_t[]){-1, 4, 4, 4}),
      at = const_i64(g, "ln.at", 1, 4, (int64_t[]){-1, 4, 4, 2}),
      flat = const_i64(g, "ln.flat", 1, 2, (int64_t[]){-1, 64});
  h = node(g, TY_OP_RESHAPE, "ln.to_img", (int[]){h, img}, 2, "ln.to_img.out");
  h = node_attr(g, TY_OP_LRN, "lrn", &h, 1, "lrn.out", "size", 3);
  h = node(g, TY_OP_MVN, "mvn", &h, 1, "mvn.out");
  ty_graph_node_set_ints(g, ty_graph_n_nodes(g) - 1, "axes", (int64_t[]){2, 3}, 2);
  int grid = linear(g, "grid", x, in, 32, "grid.out", rng);
  grid = node(g, TY_OP_TANH, "grid.tanh", &grid, 1, "grid.tanh.out");
  grid = node(g, TY_OP_RESHAPE, "grid.at", (int[]){grid, at}, 2, "grid.at.out");
  h = node(g, TY_OP_GRID_SAMPLE, "gs", (int[]){h, grid}, 2, "gs.out");
  return node(g, TY_OP_RESHAPE, "ln.back", (int[]){h, flat}, 2, "ln.back.out");
}

/* A node "rnn" of op on x with W, R, B for hidden units in `dirs`
 * directions, attributes layout and direction; its n_out outputs. */
static void rnn_node(ty_graph *g, ty_op op, int x, int64_t hidden, int dirs, int layout, int n_out,
                     int *out, uint64_t *rng) {
  int64_t gates = op == TY_OP_LSTM ? 4 : 3;
  double b = 1.0 / sqrt((double)hidden);
  int w = init(g, "rnn.W", TY_DTYPE_F32, 3, (int64_t[]){dirs, gates * hidden, 16}, b, rng);
  int r = init(g, "rnn.R", TY_DTYPE_F32, 3, (int64_t[]){dirs, gates * hidden, hidden}, b, rng);
  int bias = init(g, "rnn.B", TY_DTYPE_F32, 2, (int64_t[]){dirs, 2 * gates * hidden}, b, rng);
  const char *names[3] = {"rnn.Y", "rnn.Y_h", "rnn.Y_c"};
  for (int k = 0; k < n_out; k++)
    cr_assert_eq(ty_graph_add_value(g, names[k], TY_DTYPE_INVALID, NULL, &out[k]), 0);
  int idx;
  cr_assert_eq(ty_graph_add_node(g, op, "rnn", (int[]){x, w, r, bias}, 4, out, n_out, &idx), 0);
  ty_graph_node_set_int(g, (size_t)idx, "hidden_size", hidden);
  ty_graph_node_set_int(g, (size_t)idx, "layout", layout);
  if (dirs == 2) ty_graph_node_set_string(g, (size_t)idx, "direction", "bidirectional");
}

/* A Transpose node by perm. */
static int transpose(ty_graph *g, const char *name, int x, int rank, const int64_t *perm) {
  char out[48];
  snprintf(out, sizeof out, "%s.out", name);
  int y = node(g, TY_OP_TRANSPOSE, name, &x, 1, out);
  ty_graph_node_set_ints(g, ty_graph_n_nodes(g) - 1, "perm", perm, rank);
  return y;
}

/* synth_mlp.rnn: h [N, 64] -> 4 steps of 16 through "rnn" -> [N, 64]. */
static int recurrent(ty_graph *g, synth_rnn kind, int h, uint64_t *rng) {
  int steps = const_i64(g, "rnn.steps", 1, 3, (int64_t[]){-1, 4, 16}),
      flat = const_i64(g, "rnn.flat", 1, 2, (int64_t[]){-1, 64});
  h = node(g, TY_OP_RESHAPE, "rnn.in", (int[]){h, steps}, 2, "rnn.in.out");
  int out[3];
  if (kind == SYNTH_RNN_GRU) { /* [N, 4, 16] -> Y [N, 4, 2, 8] */
    rnn_node(g, TY_OP_GRU, h, 8, 2, 1, 1, out, rng);
    return node(g, TY_OP_RESHAPE, "rnn.back", (int[]){out[0], flat}, 2, "rnn.back.out");
  }
  h = transpose(g, "rnn.to_time", h, 3, (int64_t[]){1, 0, 2}); /* [4, N, 16] */
  rnn_node(g, TY_OP_LSTM, h, 16, 1, 0, 3, out, rng);           /* Y [4, 1, N, 16] */
  int y = transpose(g, "rnn.to_batch", out[0], 4, (int64_t[]){2, 0, 1, 3});
  y = node(g, TY_OP_RESHAPE, "rnn.y", (int[]){y, steps}, 2, "rnn.y.out");
  int hc = node(g, TY_OP_ADD, "rnn.hc", (int[]){out[1], out[2]}, 2, "rnn.hc.out"); /* [1, N, 16] */
  hc = transpose(g, "rnn.hc_batch", hc, 3, (int64_t[]){1, 0, 2});
  y = node(g, TY_OP_ADD, "rnn.sum", (int[]){y, hc}, 2, "rnn.sum.out");
  return node(g, TY_OP_RESHAPE, "rnn.back", (int[]){y, flat}, 2, "rnn.back.out");
}

/* Dropout(0.5) of h in training mode, node `name` (output "<name>.out"),
 * the ratio and training_mode initializers made once. */
static int dropout(ty_graph *g, const char *name, int h, uint64_t *rng) {
  int ratio = ty_graph_find_value(g, "drop.ratio"),
      mode = ty_graph_find_value(g, "drop.training_mode");
  if (ratio == TY_NO_VALUE) {
    ratio = init(g, "drop.ratio", TY_DTYPE_F32, 0, NULL, 0, rng);
    ty_tensor_f32(ty_graph_value_at(g, ratio)->init)[0] = 0.5f;
    mode = init(g, "drop.training_mode", TY_DTYPE_BOOL, 0, NULL, 0, rng);
  }
  char out[48];
  snprintf(out, sizeof out, "%s.out", name);
  return node(g, TY_OP_DROPOUT, name, (int[]){h, ratio, mode}, 3, out);
}

/* synth_mlp.batch_mix: h [N, H] -> Dropout(h h^T) h, each row a mix of
 * every row's. */
static int batch_mix(ty_graph *g, int h, uint64_t *rng) {
  int t = node(g, TY_OP_TRANSPOSE, "mix.t", &h, 1, "mix.t.out");
  int s = node(g, TY_OP_MATMUL, "mix.scores", (int[]){h, t}, 2, "mix.scores.out");
  s = dropout(g, "mix.drop", s, rng);
  return node(g, TY_OP_MATMUL, "mix", (int[]){s, h}, 2, "mix.out");
}

/* synth_mlp.weighted_loss's class weights: the initializer, or
 * (computed_weights) its Mul by "two", made first so that the node comes
 * first in the graph's order (a pipeline's stage 0, as PyTorch's export
 * puts a forward's weight arithmetic before the layers). */
static int class_weights(ty_graph *g, const synth_mlp *o) {
  ty_shape ws = ty_shape_make(1, (int64_t[]){o->out}), ss = ty_shape_make(0, NULL);
  int w, t;
  ty_tensor *wt, *two;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &ws, &wt), 0);
  for (int c = 0; c < o->out; c++)
    ty_tensor_f32(wt)[c] = 0.5f + 1.5f * (float)c / (float)(o->out > 1 ? o->out - 1 : 1);
  cr_assert_eq(ty_graph_add_value(g, "class_weights", TY_DTYPE_F32, &ws, &w), 0);
  cr_assert_eq(ty_graph_set_initializer(g, w, wt), 0);
  if (!o->computed_weights) return w;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &ss, &two), 0);
  ty_tensor_f32(two)[0] = 2.0f;
  cr_assert_eq(ty_graph_add_value(g, "two", TY_DTYPE_F32, &ss, &t), 0);
  cr_assert_eq(ty_graph_set_initializer(g, t, two), 0);
  return node(g, TY_OP_MUL, "weights_x2", (int[]){w, t}, 2, "weights_x2.out");
}

/* synth_mlp.weighted_loss over logits y and class weights w. */
static void weighted_loss(ty_graph *g, int y, int w, const synth_mlp *o) {
  ty_shape ls = ty_shape_make(1, (int64_t[]){o->batch ? o->batch : TY_DIM_BATCH});
  int labels;
  cr_assert_eq(ty_graph_add_value(g, "labels", TY_DTYPE_I64, &ls, &labels), 0);
  cr_assert_eq(ty_graph_mark_input(g, labels), 0);
  if (o->argmax_labels) {
    int zero, am = node(g, TY_OP_ARG_MAX, "pick", (int[]){ty_graph_find_value(g, "fc1.out")}, 1,
                        "pick.out");
    cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "axis", 1), 0);
    cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "keepdims", 0), 0);
    ty_tensor *z;
    ty_shape zs = ty_shape_make(0, NULL);
    cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &zs, &z), 0);
    cr_assert_eq(ty_graph_add_value(g, "pick_zero", TY_DTYPE_I64, &zs, &zero), 0);
    cr_assert_eq(ty_graph_set_initializer(g, zero, z), 0);
    am = node(g, TY_OP_MUL, "pick_times_zero", (int[]){am, zero}, 2, "pick_times_zero.out");
    labels = node(g, TY_OP_ADD, "picked_labels", (int[]){labels, am}, 2, "picked_labels.out");
  }
  int ce = node(g, TY_OP_SOFTMAX_CE_LOSS, "ce", (int[]){y, labels, w}, 3, "ce.out");
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "ignore_index", -100), 0);
  int lp = node(g, TY_OP_LOG_SOFTMAX, "logp", &y, 1, "logp.out");
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "axis", 1), 0);
  int nll = node(g, TY_OP_NLL_LOSS, "nll", (int[]){lp, labels, w}, o->computed_weights ? 3 : 2,
                 "nll.out");
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "ignore_index", -100), 0);
  int sq = node(g, TY_OP_MUL, "square", (int[]){y, y}, 2, "square.out");
  int l2 = node(g, TY_OP_REDUCE_MEAN, "l2", &sq, 1, "l2.out");
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "keepdims", 0), 0);
  int both = node(g, TY_OP_ADD, "ce_nll", (int[]){ce, nll}, 2, "ce_nll.out");
  if (o->computed_weights) { /* + 0.01 x the NLL summed over the batch */
    int sum = node(g, TY_OP_NLL_LOSS, "nll_sum", (int[]){lp, labels}, 2, "nll_sum.out");
    cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "ignore_index", -100), 0);
    cr_assert_eq(ty_graph_node_set_string(g, ty_graph_n_nodes(g) - 1, "reduction", "sum"), 0);
    int k = init(g, "sum_scale", TY_DTYPE_F32, 0, NULL, 0, NULL);
    ty_tensor_f32(ty_graph_value_at(g, k)->init)[0] = 0.01f;
    sum = node(g, TY_OP_MUL, "nll_sum_scaled", (int[]){sum, k}, 2, "nll_sum_scaled.out");
    both = node(g, TY_OP_ADD, "ce_nll_sum", (int[]){both, sum}, 2, "ce_nll_sum.out");
  }
  ty_graph_mark_output(g, node(g, TY_OP_ADD, "loss", (int[]){both, l2}, 2, "loss"));
}

/* A ReduceSum-like node over x, keepdims 0, its axes (opset 13's input 1)
 * an initializer when axis >= 0, every axis otherwise. */
static int reduce(ty_graph *g, ty_op op, const char *name, int x, int axis) {
  char out[48], an[48];
  snprintf(out, sizeof out, "%s.out", name);
  snprintf(an, sizeof an, "%s.axes", name);
  int in[2] = {x, TY_NO_VALUE}, n = 1;
  if (axis >= 0 && op == TY_OP_REDUCE_SUM) {
    in[1] = init(g, an, TY_DTYPE_I64, 1, (int64_t[]){1}, 0, NULL);
    ty_tensor_i64(ty_graph_value_at(g, in[1])->init)[0] = axis;
    n = 2;
  }
  int y = node(g, op, name, in, n, out);
  size_t idx = ty_graph_n_nodes(g) - 1;
  cr_assert_eq(ty_graph_node_set_int(g, idx, "keepdims", 0), 0);
  if (axis >= 0 && op != TY_OP_REDUCE_SUM)
    cr_assert_eq(ty_graph_node_set_ints(g, idx, "axes", (int64_t[]){axis}, 1), 0);
  return y;
}

/* k x v, k a rank-0 initializer named "<name>.k". */
static int scaled(ty_graph *g, const char *name, int v, float k) {
  char kn[48];
  snprintf(kn, sizeof kn, "%s.k", name);
  int kv = init(g, kn, TY_DTYPE_F32, 0, NULL, 0, NULL);
  ty_tensor_f32(ty_graph_value_at(g, kv)->init)[0] = k;
  snprintf(kn, sizeof kn, "%s.scaled", name);
  return node(g, TY_OP_MUL, kn, (int[]){v, kv}, 2, kn);
}

/* synth_mlp.summed_losses over logits y. */
static void summed_losses(ty_graph *g, int y, const synth_mlp *o) {
  ty_shape ls = ty_shape_make(1, (int64_t[]){o->batch ? o->batch : TY_DIM_BATCH});
  int labels;
  cr_assert_eq(ty_graph_add_value(g, "labels", TY_DTYPE_I64, &ls, &labels), 0);
  cr_assert_eq(ty_graph_mark_input(g, labels), 0);
  int ce = node(g, TY_OP_SOFTMAX_CE_LOSS, "ce_rows", (int[]){y, labels}, 2, "ce_rows.out");
  cr_assert_eq(ty_graph_node_set_string(g, ty_graph_n_nodes(g) - 1, "reduction", "none"), 0);
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "ignore_index", -100), 0);
  int ce_sum = reduce(g, TY_OP_REDUCE_SUM, "ce_sum", ce, -1);
  int s1 = scaled(g, "ce_sum", ce_sum, 0.05f);
  int s2 = scaled(g, "sq_sum", reduce(g, TY_OP_REDUCE_SUM_SQUARE, "sq_sum", y, -1), 0.01f);
  int sq = node(g, TY_OP_MUL, "sq", (int[]){y, y}, 2, "sq.out");
  int rows = reduce(g, TY_OP_REDUCE_MEAN, "row_mean", sq, 1);
  int s3 = reduce(g, o->max_rows ? TY_OP_REDUCE_MAX : TY_OP_REDUCE_SUM, "row_sum", rows, 0);
  if (o->sqrt_sum) s3 = node(g, TY_OP_SQRT, "row_sqrt", &s3, 1, "row_sqrt.out");
  s3 = scaled(g, "row_sum", s3, 0.01f);
  int size = node(g, TY_OP_SIZE, "size", &y, 1, "size.out");
  size = node(g, TY_OP_CAST, "size_f", &size, 1, "size_f.out");
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "to", 1), 0);
  int m = reduce(g, TY_OP_REDUCE_SUM, "mean_sum", sq, -1);
  m = node(g, TY_OP_DIV, "mean", (int[]){m, size}, 2, "mean.out");
  int a = node(g, TY_OP_ADD, "s12", (int[]){s1, s2}, 2, "s12.out");
  a = node(g, TY_OP_ADD, "s123", (int[]){a, s3}, 2, "s123.out");
  ty_graph_mark_output(g, node(g, TY_OP_ADD, "loss", (int[]){a, m}, 2, "loss"));
  if (o->metric) {
    int cm = reduce(g, TY_OP_REDUCE_MEAN, "ce_mean", ce, -1);
    ty_graph_mark_output(g, node(g, TY_OP_EXP, "ppl", &cm, 1, "ppl"));
  }
  if (o->root_metric)
    ty_graph_mark_output(
        g, node(g, TY_OP_SQRT, "ce_root", o->root_of_term ? &s1 : &ce_sum, 1, "ce_root"));
}

/* synth_mlp.recon_loss over logits y, x and the first hidden activations h. */
static void recon_loss(ty_graph *g, int y, int x, int h, const synth_mlp *o, uint64_t *rng) {
  ty_shape ls = ty_shape_make(1, (int64_t[]){o->batch ? o->batch : TY_DIM_BATCH});
  int labels;
  cr_assert_eq(ty_graph_add_value(g, "labels", TY_DTYPE_I64, &ls, &labels), 0);
  cr_assert_eq(ty_graph_mark_input(g, labels), 0);
  int ce = node(g, TY_OP_SOFTMAX_CE_LOSS, "ce", (int[]){y, labels}, 2, "ce.out");
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "ignore_index", -100), 0);
  int r = linear(g, "recon", h, o->hidden, o->in, "recon.out", rng);
  int d = node(g, TY_OP_SUB, "recon_diff", (int[]){r, x}, 2, "recon_diff.out");
  int sq = node(g, TY_OP_MUL, "recon_sq", (int[]){d, d}, 2, "recon_sq.out");
  int mse = scaled(g, "recon_mse", reduce(g, TY_OP_REDUCE_MEAN, "recon_mse", sq, -1), 0.01f);
  ty_graph_mark_output(g, node(g, TY_OP_ADD, "loss", (int[]){ce, mse}, 2, "loss"));
}

/* The reduction and ignore_index of own_loss's node, the graph's last. */
static void own_loss_attrs(ty_graph *g, const synth_mlp *o) {
  size_t last = ty_graph_n_nodes(g) - 1;
  if (o->own_sum) cr_assert_eq(ty_graph_node_set_string(g, last, "reduction", "sum"), 0);
  if (o->own_ignore) cr_assert_eq(ty_graph_node_set_int(g, last, "ignore_index", -100), 0);
}

ty_graph *synth_mlp_build(const synth_mlp *o) {
  ty_graph *g;
  uint64_t rng = o->seed;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, o->local_norms ? 16 : 15); /* GridSample from 16 */
  int64_t n = o->batch ? o->batch : TY_DIM_BATCH;
  ty_shape xs = o->chw[0] ? ty_shape_make(4, (int64_t[]){n, o->chw[0], o->chw[1], o->chw[2]})
                          : ty_shape_make(2, (int64_t[]){n, o->in});
  int x;
  ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x);
  ty_graph_mark_input(g, x);
  int cw = o->weighted_loss || o->own_weights ? class_weights(g, o) : TY_NO_VALUE;
  int mask = o->input_mask ? input_mask(g, x) : TY_NO_VALUE;
  int flat = o->chw[0] ? node(g, TY_OP_FLATTEN, "flat", &x, 1, "flat.out") : x;
  int h = linear(g, "fc1", flat, o->in, o->hidden, "fc1.out", &rng), h1 = h;
  if (o->neg_inf_mask) {
    int m = init(g, "mask", TY_DTYPE_F32, 1, (int64_t[]){o->hidden}, 0, &rng);
    float *v = ty_tensor_f32(ty_graph_value_at(g, m)->init);
    for (int i = 0; i < o->hidden; i++)
      v[i] = i == 0 ? -INFINITY : 0.0f;
    h = node(g, TY_OP_ADD, "masked_fc1", (int[]){h, m}, 2, "masked_fc1.out");
  }
  if (o->bn || o->bn_train_mode) h = batch_norm(g, h, o->hidden, o->bn_train_mode, &rng);
  if (o->shape_arith) h = shape_arith(g, h);
  if (o->local_norms) h = local_norms(g, x, o->in, h, &rng);
  if (o->rnn != SYNTH_RNN_NONE) h = recurrent(g, o->rnn, h, &rng);
  h = node(g, TY_OP_RELU, "relu", &h, 1, "relu.out");
  for (int k = 0; k < o->deep; k++) {
    char name[32], out[40], relu[40];
    snprintf(name, sizeof name, "fc%d", k + 3);
    snprintf(out, sizeof out, "fc%d.out", k + 3);
    snprintf(relu, sizeof relu, "relu%d.out", k + 3);
    if (o->tied && o->tied_folded && k > 0 && k == o->deep - 1)
      h = folded_linear(g, name, h, "fc3.weight", o->hidden, out, &rng);
    else if (o->tied && k > 0 && k == o->deep - 1)
      h = tied_linear(g, name, h, "fc3.weight", o->tied_bias ? "fc3.bias" : NULL, o->hidden, out,
                      &rng);
    else if (o->sliced)
      h = sliced_linear(g, name, h, o->hidden, o->hidden, out, &rng);
    else
      h = linear(g, name, h, o->hidden, o->hidden, out, &rng);
    h = node(g, TY_OP_RELU, NULL, &h, 1, relu);
    if (o->dropout_deep) {
      char drop[32];
      snprintf(drop, sizeof drop, "drop%d", k + 3);
      h = dropout(g, drop, h, &rng);
    }
  }
  if (o->dropout) h = dropout(g, "drop", h, &rng);
  if (o->batch_mix) h = batch_mix(g, h, &rng);
  if (o->noise) {
    int n = node(g, TY_OP_RANDOM_NORMAL_LIKE, "noise", &h, 1, "noise.out");
    ty_graph_node_set_float(g, ty_graph_n_nodes(g) - 1, "scale", 0.5f);
    h = node(g, TY_OP_ADD, "noisy", (int[]){h, n}, 2, "noisy.out");
  }
  if (o->merged) {
    int gain = init(g, "gain", TY_DTYPE_F32, 1, (int64_t[]){o->hidden}, 0, &rng);
    h = node(g, TY_OP_MUL, "gain1", (int[]){h, gain}, 2, "gain1.out");
    if (o->merged == 2) gain = node(g, TY_OP_IDENTITY, "gain.copy", &gain, 1, "gain.copy.out");
    h = node(g, TY_OP_MUL, "gain2", (int[]){h, gain}, 2, "gain2.out");
  }
  bool post = o->softmax || o->scale;
  if (o->expand) h = expand(g, h);
  if (o->input_mask) {
    int neg = node(g, TY_OP_NEG, "masked.neg", &h, 1, "masked.neg.out");
    h = node(g, TY_OP_WHERE, "masked", (int[]){mask, h, neg}, 3, "masked.out");
  }
  int y = linear(g, "fc2", h, o->hidden, o->out, post ? "fc2.out" : "logits", &rng);
  if (o->scale) {
    int s = init(g, "scale", TY_DTYPE_F32, 0, NULL, 0, &rng);
    y = node(g, TY_OP_MUL, "scale_mul", (int[]){y, s}, 2, o->softmax ? "scaled" : "logits");
  }
  if (o->softmax) y = node(g, TY_OP_SOFTMAX, "softmax", &y, 1, "logits");
  ty_graph_mark_output(g, y);
  if (o->own_loss) {
    ty_shape ls = ty_shape_make(1, (int64_t[]){o->batch ? o->batch : TY_DIM_BATCH});
    int labels;
    ty_graph_add_value(g, "labels", TY_DTYPE_I64, &ls, &labels);
    ty_graph_mark_input(g, labels);
    int loss = node(g, TY_OP_SOFTMAX_CE_LOSS, "loss", (int[]){y, labels, cw},
                    o->own_weights ? 3 : 2, "loss");
    own_loss_attrs(g, o);
    ty_graph_mark_output(g, loss);
  }
  if (o->weighted_loss) weighted_loss(g, y, cw, o);
  if (o->summed_losses) summed_losses(g, y, o);
  if (o->recon_loss) recon_loss(g, y, x, h1, o, &rng);
  if (o->unused) {
    int u = init(g, "unused", TY_DTYPE_F32, 1, (int64_t[]){o->hidden}, 0.5, &rng);
    int side = node(g, TY_OP_ADD, "side", (int[]){h, u}, 2, "side.out");
    ty_graph_mark_output(g, side);
  }
  char err[256];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

ty_graph *synth_with_weights(const ty_graph *g, const ty_train *t) {
  size_t np = ty_train_n_params(t), n = np + ty_train_n_stats(t);
  ty_init_override *ov = calloc(n + 1, sizeof *ov);
  for (size_t i = 0; i < np; i++)
    ov[i] = (ty_init_override){ty_train_param_name(t, i), ty_train_param(t, i)};
  for (size_t i = np; i < n; i++)
    ov[i] = (ty_init_override){ty_train_stat_name(t, i - np), ty_train_stat(t, i - np)};
  uint8_t *bytes;
  size_t len;
  char err[256];
  ty_graph *out;
  cr_assert_eq(ty_graph_to_onnx(g, ov, n, err, sizeof err, &bytes, &len), 0, "%s", err);
  cr_assert_eq(ty_graph_load_bytes(bytes, len, err, sizeof err, &out), 0, "%s", err);
  free(bytes);
  free(ov);
  return out;
}

/* ---- configs ------------------------------------------------------------------ */
void synth_add_array(ty_train_config *c, bool test, const char *path, const char *input) {
  ty_train_array **a = test ? &c->test_arrays : &c->train_arrays;
  size_t *n = test ? &c->n_test_arrays : &c->n_train_arrays;
  *a = realloc(*a, (*n + 1) * sizeof **a);
  (*a)[*n] = (ty_train_array){.path = ty_strdup(path), .input = ty_strdup(input)};
  (*n)++;
  c->data_kind = TY_TRAIN_DATA_ARRAYS;
}

void synth_config(ty_train_config *c, uint64_t max_steps, bool with_test) {
  memset(c, 0, sizeof *c);
  c->logits_output = ty_strdup("logits");
  c->label_input = ty_strdup("labels");
  ty_optim_opts_default(TY_OPTIM_SGD, &c->optim);
  c->optim.momentum = 0.9f;
  c->schedule = (ty_lr_schedule){.kind = TY_LR_CONSTANT, .base_lr = 0.1};
  c->batch_size = 32;
  c->max_steps = max_steps;
  c->shuffle = true;
  c->seed = 5;
  c->log_interval = 1000000;
  c->fusion = true;
  c->eval_each_epoch = false;
  synth_add_array(c, false, synth_path("x.npy"), "x");
  synth_add_array(c, false, synth_path("y.npy"), "labels");
  if (with_test) {
    synth_add_array(c, true, synth_path("tx.npy"), "x");
    synth_add_array(c, true, synth_path("ty.npy"), "labels");
  }
}

void synth_tokens_config(ty_train_config *c, const ty_train_tokens *tokens) {
  for (size_t i = 0; i < c->n_train_arrays; i++) {
    free(c->train_arrays[i].path);
    free(c->train_arrays[i].input);
  }
  free(c->train_arrays);
  c->train_arrays = NULL;
  c->n_train_arrays = 0;
  c->data_kind = TY_TRAIN_DATA_TOKENS;
  c->data_input = ty_strdup("ids");
  c->tokens = *tokens;
}

ty_train *synth_trainer(const ty_graph *g, const ty_train_config *c, const ty_train_opts *o) {
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, c, o, &t, err, sizeof err), 0, "ty_train_create: %s", err);
  return t;
}

char *synth_log_text(FILE *log) {
  fflush(log);
  long n = ftell(log);
  char *s = calloc((size_t)n + 1, 1);
  rewind(log);
  if (n > 0) cr_assert_eq(fread(s, 1, (size_t)n, log), (size_t)n);
  fseek(log, 0, SEEK_END);
  return s;
}

int synth_count(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)); p += strlen(what))
    n++;
  return n;
}

void synth_assert_same_params(const ty_train *a, const ty_train *b) {
  cr_assert_eq(ty_train_n_params(a), ty_train_n_params(b));
  for (size_t i = 0; i < ty_train_n_params(a); i++)
    cr_assert_eq(memcmp(ty_train_param(a, i)->data, ty_train_param(b, i)->data,
                        ty_train_param(a, i)->nbytes),
                 0, "parameter %s differs", ty_train_param_name(a, i));
}

void synth_refused(const ty_graph *g, const ty_train_config *c, const ty_train_opts *o, int code,
                   const char *const *want) {
  ty_train *t = NULL;
  char err[TY_ERR_LEN] = "";
  FILE *log = tmpfile();
  ty_train_opts oo = o ? *o : (ty_train_opts){0};
  oo.log = log;
  int rc = ty_train_create(g, c, &oo, &t, err, sizeof err);
  fclose(log);
  cr_assert_eq(rc, code, "got %d: %s", rc, err);
  cr_assert_null(t);
  for (int i = 0; want[i]; i++)
    cr_assert(strstr(err, want[i]), "error \"%s\" lacks \"%s\"", err, want[i]);
}

/* ---- token language models ------------------------------------------------ */

/* synth_bigram_lm: ids [N, T] -> Gather(embed [SYNTH_LM_V, SYNTH_LM_D]) -> MatMul(head [SYNTH_LM_D,
 * SYNTH_LM_V]) -> logits [N, T, SYNTH_LM_V]. */
ty_graph *synth_bigram_lm(int64_t t_dim) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 15);
  ty_shape is = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, t_dim});
  int ids, h, emb, head, out, idx;
  ty_graph_add_value(g, "ids", TY_DTYPE_I64, &is, &ids);
  ty_graph_mark_input(g, ids);
  uint64_t rng = 17;
  ty_tensor *we, *wh;
  ty_shape es = ty_shape_make(2, (int64_t[]){SYNTH_LM_V, SYNTH_LM_D}),
           hs = ty_shape_make(2, (int64_t[]){SYNTH_LM_D, SYNTH_LM_V});
  ty_tensor_create(TY_DTYPE_F32, &es, &we);
  ty_tensor_create(TY_DTYPE_F32, &hs, &wh);
  for (int i = 0; i < SYNTH_LM_V * SYNTH_LM_D; i++) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    ty_tensor_f32(we)[i] = (float)((double)(rng >> 11) / 9007199254740992.0 - 0.5);
    ty_tensor_f32(wh)[i] = (float)((double)(rng >> 20 & 0xffff) / 65536.0 - 0.5) * 0.3f;
  }
  ty_graph_add_value(g, "embed.weight", TY_DTYPE_F32, &es, &emb);
  ty_graph_set_initializer(g, emb, we);
  ty_graph_add_value(g, "head.weight", TY_DTYPE_F32, &hs, &head);
  ty_graph_set_initializer(g, head, wh);
  ty_graph_add_value(g, "h", TY_DTYPE_INVALID, NULL, &h);
  ty_graph_add_node(g, TY_OP_GATHER, "embed", (int[]){emb, ids}, 2, &h, 1, &idx);
  ty_graph_add_value(g, "logits", TY_DTYPE_INVALID, NULL, &out);
  ty_graph_add_node(g, TY_OP_MATMUL, "head", (int[]){h, head}, 2, &out, 1, &idx);
  ty_graph_mark_output(g, out);
  char err[256];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* x[:, from:to] of an [N, t] value. */
static int lm_cut(ty_graph *g, const char *name, int x, int64_t from, int64_t to) {
  char s[64], e[64], a[64];
  snprintf(s, sizeof s, "%s.start", name);
  snprintf(e, sizeof e, "%s.end", name);
  snprintf(a, sizeof a, "%s.axes", name);
  int in[4] = {x, const_i64(g, s, 1, 1, &from), const_i64(g, e, 1, 1, &to),
               const_i64(g, a, 1, 1, (int64_t[]){1})};
  return node(g, TY_OP_SLICE, name, in, 4, name);
}

/* synth_bigram_lm(t_dim) computing its own mean cross-entropy "loss" as each
 * form of labels expects: NEXT takes the next tokens in "labels" [N, t];
 * SAME takes the window itself there and scores logits[:, :-1] against
 * labels[:, 1:] (Hugging Face's shift); NONE has no labels input and
 * scores logits[:, :-1] against ids[:, 1:]. All three are one
 * computation over a window of t_dim (+ 1 for NEXT) tokens. */
ty_graph *synth_shifting_lm(int64_t t_dim, ty_train_token_labels form) {
  ty_graph *g = synth_bigram_lm(t_dim);
  int logits = ty_graph_find_value(g, "logits"), labels = ty_graph_find_value(g, "ids");
  if (form != TY_TRAIN_TOKENS_NONE) {
    ty_shape ls = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, t_dim});
    cr_assert_eq(ty_graph_add_value(g, "labels", TY_DTYPE_I64, &ls, &labels), 0);
    ty_graph_mark_input(g, labels);
  }
  if (form != TY_TRAIN_TOKENS_NEXT) {
    logits = lm_cut(g, "logits_head", logits, 0, -1);
    labels = lm_cut(g, "labels_tail", labels, 1, INT64_MAX);
  }
  int rows = const_i64(g, "rows", 1, 2, (int64_t[]){-1, SYNTH_LM_V}),
      flat = const_i64(g, "flat", 1, 1, (int64_t[]){-1});
  logits = node(g, TY_OP_RESHAPE, "scores", (int[]){logits, rows}, 2, "scores");
  labels = node(g, TY_OP_RESHAPE, "targets", (int[]){labels, flat}, 2, "targets");
  int loss = node(g, TY_OP_SOFTMAX_CE_LOSS, "loss", (int[]){logits, labels}, 2, "loss");
  ty_graph_mark_output(g, loss);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

uint8_t *synth_read_all(const char *path, size_t *out_len) {
  uint8_t *b = ty_test_read_file(path, out_len);
  cr_assert_not_null(b, "cannot read %s", path);
  return b;
}

static void put_le32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

void synth_rename_init(const char *path, const char *name) {
  size_t n, ns, nl = strlen(name);
  uint8_t *m = synth_read_all(path, &n), *hit = NULL;
  for (size_t i = 0; !hit && i + 2 + nl <= n; i++) /* TensorProto.name: field 8, bytes */
    if (m[i] == 0x42 && m[i + 1] == nl && memcmp(m + i + 2, name, nl) == 0) hit = m + i + 2;
  cr_assert_not_null(hit, "%s: no initializer named %s", path, name);
  hit[nl - 1] ^= 0x20;
  char spath[320];
  snprintf(spath, sizeof spath, "%s.state", path);
  uint8_t *s = synth_read_all(spath, &ns);
  put_le32(s + 48, (uint32_t)crc32_z(0L, m, n)); /* the model's CRC (train.h's layout) */
  put_le32(s + ns - 4, (uint32_t)crc32_z(0L, s, ns - 4));
  FILE *f = fopen(path, "wb");
  cr_assert(f && fwrite(m, 1, n, f) == n && fclose(f) == 0);
  f = fopen(spath, "wb");
  cr_assert(f && fwrite(s, 1, ns, f) == ns && fclose(f) == 0);
  free(m);
  free(s);
}
