/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Test and benchmark graphs for the planner (see models.h). A small builder
 * keeps the first error and turns every later call into a no-op, so a model
 * reads as a list of layers; the model functions return NULL on any error.
 */
#include "tests/unit/ops/plan/models.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct gb {
  ty_graph *g;
  int rc;
} gb;

static int value(gb *b, const char *name, ty_dtype dt, const ty_shape *s) {
  int id = TY_NO_VALUE;
  if (b->rc == 0) b->rc = ty_graph_add_value(b->g, name, dt, s, &id);
  return id;
}

static int input(gb *b, const char *name, ty_dtype dt, int rank, const int64_t *dims) {
  ty_shape s = ty_shape_make(rank, dims);
  int id = value(b, name, dt, &s);
  if (b->rc == 0) b->rc = ty_graph_mark_input(b->g, id);
  return id;
}

static int param(gb *b, const char *name, int rank, const int64_t *dims) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t = NULL;
  int id = value(b, name, TY_DTYPE_F32, &s);
  if (b->rc == 0) b->rc = ty_tensor_create(TY_DTYPE_F32, &s, &t);
  if (b->rc == 0) b->rc = ty_graph_set_initializer(b->g, id, t);
  return id;
}

static int ints(gb *b, const char *name, int n, const int64_t *v) {
  ty_shape s = ty_shape_make(1, (int64_t[]){n});
  ty_tensor *t = NULL;
  int id = value(b, name, TY_DTYPE_I64, &s);
  if (b->rc == 0) b->rc = ty_tensor_create_from(TY_DTYPE_I64, &s, v, (size_t)n * sizeof *v, &t);
  if (b->rc == 0) b->rc = ty_graph_set_initializer(b->g, id, t);
  return id;
}

/* A scalar float from a Constant node: not a trainable initializer. */
static int constant(gb *b, const char *name, float v) {
  ty_shape s = ty_shape_make(0, NULL);
  ty_tensor *t = NULL;
  int id = value(b, name, TY_DTYPE_F32, NULL), idx;
  if (b->rc == 0) b->rc = ty_tensor_create_from(TY_DTYPE_F32, &s, &v, sizeof v, &t);
  if (b->rc == 0) b->rc = ty_graph_add_node(b->g, TY_OP_CONSTANT, name, NULL, 0, &id, 1, &idx);
  if (b->rc == 0)
    b->rc = ty_graph_node_set_tensor(b->g, (size_t)idx, "value", t);
  else
    ty_tensor_destroy(t);
  return id;
}

static int node(gb *b, ty_op op, const char *name, int n_in, const int *in, int *out_idx) {
  int y = value(b, name, TY_DTYPE_F32, NULL), idx = -1;
  if (b->rc == 0) b->rc = ty_graph_add_node(b->g, op, name, in, n_in, &y, 1, &idx);
  if (out_idx) *out_idx = idx;
  return y;
}
#define NODE(b, op, name, ...)                                                                     \
  node(b, op, name, (int)TY_ARRAY_LEN(((int[]){__VA_ARGS__})), (int[]){__VA_ARGS__}, NULL)

static int set_int(gb *b, int idx, const char *attr, int64_t v) {
  if (b->rc == 0) b->rc = ty_graph_node_set_int(b->g, (size_t)idx, attr, v);
  return idx;
}

static int set_ints(gb *b, int idx, const char *attr, int n, const int64_t *v) {
  if (b->rc == 0) b->rc = ty_graph_node_set_ints(b->g, (size_t)idx, attr, v, n);
  return idx;
}

/* Mean of squares of x: the loss of every model here. */
/* The graph with loss as its output, its shapes inferred; NULL on error. */
static ty_graph *finish_output(gb *b, int loss) {
  if (b->rc == 0) b->rc = ty_graph_mark_output(b->g, loss);
  char err[TY_ERR_LEN];
  if (b->rc == 0) b->rc = ty_graph_infer_shapes(b->g, err, sizeof err);
  if (b->rc != 0) {
    fprintf(stderr, "model: %s (%s)\n", ty_strerror(b->rc), err);
    ty_graph_destroy(b->g);
    return NULL;
  }
  return b->g;
}

/* The mean squared value of x as the loss. */
static ty_graph *finish(gb *b, int x) {
  int sq = NODE(b, TY_OP_MUL, "loss.sq", x, x), idx;
  int loss = node(b, TY_OP_REDUCE_MEAN, "loss", 1, (int[]){sq}, &idx);
  set_int(b, idx, "keepdims", 0);
  return finish_output(b, loss);
}

static int start(gb *b) {
  b->rc = ty_graph_create(&b->g);
  return b->rc;
}

static int linear(gb *b, const char *name, int x, int64_t in, int64_t out) {
  char n[96];
  snprintf(n, sizeof n, "%s.w", name);
  int w = param(b, n, 2, (int64_t[]){in, out});
  snprintf(n, sizeof n, "%s.b", name);
  int bias = param(b, n, 1, (int64_t[]){out});
  snprintf(n, sizeof n, "%s.mm", name);
  int y = NODE(b, TY_OP_MATMUL, n, x, w);
  snprintf(n, sizeof n, "%s.add", name);
  return NODE(b, TY_OP_ADD, n, y, bias);
}

/* n_layers x (linear "l<i>" + Relu "l<i>.relu") on x, hidden wide. */
static int relu_layers(gb *b, int x, int n_layers, int64_t hidden) {
  char n[32];
  for (int l = 0; l < n_layers; l++) {
    snprintf(n, sizeof n, "l%d", l);
    x = linear(b, n, x, hidden, hidden);
    snprintf(n, sizeof n, "l%d.relu", l);
    x = NODE(b, TY_OP_RELU, n, x);
  }
  return x;
}

ty_graph *model_mlp(int n_layers, int64_t hidden) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden});
  int y = input(&b, "y", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden});
  x = relu_layers(&b, x, n_layers, hidden);
  return finish(&b, NODE(&b, TY_OP_SUB, "loss.diff", x, y));
}

/* (x - x.mean(0)) / sqrt(((x - x.mean(0)) ** 2).mean(0) + eps): batch
 * statistics by hand. */
static int hand_norm(gb *b, int x) {
  int idx;
  int mu = node(b, TY_OP_REDUCE_MEAN, "norm.mu", 1, (int[]){x}, &idx);
  set_ints(b, idx, "axes", 1, (int64_t[]){0});
  int d = NODE(b, TY_OP_SUB, "norm.d", x, mu), sq = NODE(b, TY_OP_MUL, "norm.sq", d, d);
  int var = node(b, TY_OP_REDUCE_MEAN, "norm.var", 1, (int[]){sq}, &idx);
  set_ints(b, idx, "axes", 1, (int64_t[]){0});
  int sd = NODE(b, TY_OP_SQRT, "norm.sd",
                NODE(b, TY_OP_ADD, "norm.veps", var, constant(b, "eps", 1e-5f)));
  return NODE(b, TY_OP_DIV, "norm.out", d, sd);
}

ty_graph *model_mlp_batch_stat(int n_layers, int64_t hidden, model_stat kind) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden});
  int y = input(&b, "y", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden});
  x = relu_layers(&b, x, n_layers, hidden);
  if (kind == MODEL_STAT_HAND_NORM)
    return finish(&b, NODE(&b, TY_OP_SUB, "loss.diff", hand_norm(&b, x), y));
  int d = NODE(&b, TY_OP_SUB, "loss.diff", x, y), idx;
  int sq = NODE(&b, TY_OP_MUL, "loss.sq", d, d);
  if (kind == MODEL_STAT_METRIC || kind == MODEL_STAT_SUM_METRIC ||
      kind == MODEL_STAT_SUM_HALF_METRIC || kind == MODEL_STAT_SUM_TERM_METRIC) {
    ty_op op = kind == MODEL_STAT_METRIC ? TY_OP_REDUCE_MEAN : TY_OP_REDUCE_SUM;
    bool term = kind == MODEL_STAT_SUM_TERM_METRIC;
    int loss = node(&b, op, term ? "loss.sum" : "loss", 1, (int[]){sq}, &idx);
    set_int(&b, idx, "keepdims", 0);
    if (term) loss = NODE(&b, TY_OP_MUL, "loss", loss, constant(&b, "one_half", 0.5f));
    int m = kind == MODEL_STAT_SUM_HALF_METRIC
                ? NODE(&b, TY_OP_MUL, "half", loss, constant(&b, "one_half", 0.5f))
                : NODE(&b, TY_OP_SQRT, "rmse", loss);
    if (b.rc == 0) b.rc = ty_graph_mark_output(b.g, m);
    return finish_output(&b, loss);
  }
  bool mean = kind == MODEL_STAT_ROOT_MEAN;
  int red = node(&b, mean ? TY_OP_REDUCE_MEAN : TY_OP_REDUCE_SUM, mean ? "loss.mean" : "loss.sum",
                 1, (int[]){sq}, &idx);
  set_int(&b, idx, "keepdims", 0);
  return finish_output(&b, NODE(&b, TY_OP_SQRT, "loss", red));
}

ty_graph *model_grouped_convs(int n_layers, int64_t channels, bool root_mean) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  const int64_t dims[] = {TY_DIM_BATCH, channels, 1, 1};
  int x = input(&b, "x", TY_DTYPE_F32, 4, dims), y = input(&b, "y", TY_DTYPE_F32, 4, dims), idx;
  char n[32];
  for (int l = 0; l < n_layers; l++) {
    snprintf(n, sizeof n, "l%d.w", l);
    int w = param(&b, n, 4, (int64_t[]){channels, channels / 2, 1, 1});
    snprintf(n, sizeof n, "l%d.conv", l);
    x = node(&b, TY_OP_CONV, n, 2, (int[]){x, w}, &idx);
    set_int(&b, idx, "group", 2);
    snprintf(n, sizeof n, "l%d.relu", l);
    x = NODE(&b, TY_OP_RELU, n, x);
  }
  int d = NODE(&b, TY_OP_SUB, "loss.diff", x, y);
  if (!root_mean) return finish(&b, d);
  int red = node(&b, TY_OP_REDUCE_MEAN, "loss.mean", 1,
                 (int[]){NODE(&b, TY_OP_MUL, "loss.sq", d, d)}, &idx);
  set_int(&b, idx, "keepdims", 0);
  return finish_output(&b, NODE(&b, TY_OP_SQRT, "loss", red));
}

ty_graph *model_mlp_out(int n_layers, int64_t hidden, int tied) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden});
  int y = input(&b, "y", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden});
  x = relu_layers(&b, x, n_layers - 1, hidden);
  int last = n_layers - 1, bias = param(&b, "out.b", 1, (int64_t[]){hidden});
  int w = tied && last > 0 ? ty_graph_find_value(b.g, "l0.w")
                           : param(&b, "out.w", 2, (int64_t[]){hidden, hidden});
  x = NODE(&b, TY_OP_MATMUL, "out.mm", x, w);
  x = NODE(&b, TY_OP_ADD, "out.add", x, bias);
  return finish(&b, NODE(&b, TY_OP_SUB, "loss.diff", x, y));
}

ty_graph *model_mlp_shape_link(int n_layers, int64_t hidden) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, hidden}), shape = -1;
  char n[32];
  for (int l = 0; l < n_layers; l++) {
    snprintf(n, sizeof n, "l%d", l);
    x = linear(&b, n, x, hidden, hidden);
    snprintf(n, sizeof n, "l%d.relu", l);
    x = NODE(&b, TY_OP_RELU, n, x);
    if (l == 1) shape = NODE(&b, TY_OP_SHAPE, "l1.shape", x);
    if (l == 2) x = NODE(&b, TY_OP_RESHAPE, "l2.reshape", x, shape);
  }
  return finish(&b, x);
}

/* Constants every block shares. */
typedef struct tconst {
  int heads_shape, merge_shape, scale, sqrt2, one, half, mask;
} tconst;

static int layer_norm(gb *b, const char *name, int x, int64_t hidden) {
  char n[96];
  snprintf(n, sizeof n, "%s.g", name);
  int g = param(b, n, 1, (int64_t[]){hidden});
  snprintf(n, sizeof n, "%s.b", name);
  int beta = param(b, n, 1, (int64_t[]){hidden});
  return NODE(b, TY_OP_LAYER_NORM, name, x, g, beta);
}

/* [B, S, H] -> [B, heads, S, hd] (perm 0,2,1,3) or, for keys, [B, heads, hd, S]. */
static int split_heads(gb *b, const char *name, int x, const tconst *c, bool keys) {
  char n[96];
  snprintf(n, sizeof n, "%s.heads", name);
  int r = NODE(b, TY_OP_RESHAPE, n, x, c->heads_shape), idx;
  snprintf(n, sizeof n, "%s.perm", name);
  int y = node(b, TY_OP_TRANSPOSE, n, 1, (int[]){r}, &idx);
  int64_t perm[4] = {0, 2, keys ? 3 : 1, keys ? 1 : 3};
  if (b->rc == 0) b->rc = ty_graph_node_set_ints(b->g, (size_t)idx, "perm", perm, 4);
  return y;
}

/* GELU as exported models spell it: x * 0.5 * (1 + erf(x / sqrt(2))). */
static int gelu(gb *b, const char *name, int x, const tconst *c) {
  char n[5][128];
  const char *part[5] = {"div", "erf", "add", "mul", "half"};
  for (int i = 0; i < 5; i++)
    snprintf(n[i], sizeof n[i], "%s.gelu.%s", name, part[i]);
  int d = NODE(b, TY_OP_DIV, n[0], x, c->sqrt2);
  int e = NODE(b, TY_OP_ERF, n[1], d);
  int a = NODE(b, TY_OP_ADD, n[2], e, c->one);
  int m = NODE(b, TY_OP_MUL, n[3], x, a);
  return NODE(b, TY_OP_MUL, n[4], m, c->half);
}

static int attention(gb *b, const char *L, int x, int64_t hidden, const tconst *c) {
  char n[96];
  snprintf(n, sizeof n, "%s.q", L);
  int q = split_heads(b, n, linear(b, n, x, hidden, hidden), c, false);
  snprintf(n, sizeof n, "%s.k", L);
  int k = split_heads(b, n, linear(b, n, x, hidden, hidden), c, true);
  snprintf(n, sizeof n, "%s.v", L);
  int v = split_heads(b, n, linear(b, n, x, hidden, hidden), c, false);
  snprintf(n, sizeof n, "%s.scores", L);
  int s = NODE(b, TY_OP_MATMUL, n, q, k);
  snprintf(n, sizeof n, "%s.scale", L);
  s = NODE(b, TY_OP_DIV, n, s, c->scale);
  if (c->mask != TY_NO_VALUE) {
    snprintf(n, sizeof n, "%s.mask", L);
    s = NODE(b, TY_OP_ADD, n, s, c->mask);
  }
  snprintf(n, sizeof n, "%s.softmax", L);
  int idx, p = node(b, TY_OP_SOFTMAX, n, 1, (int[]){s}, &idx);
  set_int(b, idx, "axis", -1);
  snprintf(n, sizeof n, "%s.context", L);
  int ctx = NODE(b, TY_OP_MATMUL, n, p, v);
  snprintf(n, sizeof n, "%s.context.perm", L);
  ctx = node(b, TY_OP_TRANSPOSE, n, 1, (int[]){ctx}, &idx);
  if (b->rc == 0)
    b->rc = ty_graph_node_set_ints(b->g, (size_t)idx, "perm", (int64_t[]){0, 2, 1, 3}, 4);
  snprintf(n, sizeof n, "%s.context.merge", L);
  ctx = NODE(b, TY_OP_RESHAPE, n, ctx, c->merge_shape);
  snprintf(n, sizeof n, "%s.o", L);
  return linear(b, n, ctx, hidden, hidden);
}

static int block(gb *b, int l, int x, int64_t hidden, int64_t ffn, const tconst *c) {
  char L[16], n[96];
  snprintf(L, sizeof L, "%d", l);
  int o = attention(b, L, x, hidden, c);
  snprintf(n, sizeof n, "%s.res1", L);
  int r1 = NODE(b, TY_OP_ADD, n, x, o);
  snprintf(n, sizeof n, "%s.ln1", L);
  int h = layer_norm(b, n, r1, hidden);
  snprintf(n, sizeof n, "%s.ffn_in", L);
  int f = gelu(b, n, linear(b, n, h, hidden, ffn), c);
  snprintf(n, sizeof n, "%s.ffn_out", L);
  f = linear(b, n, f, ffn, hidden);
  snprintf(n, sizeof n, "%s.res2", L);
  int r2 = NODE(b, TY_OP_ADD, n, h, f);
  snprintf(n, sizeof n, "%s.ln2", L);
  return layer_norm(b, n, r2, hidden);
}

/* A causal mask [seq, seq]: 0 on and below the diagonal, -1e9 above. */
static int causal_mask(gb *b, int64_t seq) {
  ty_shape s = ty_shape_make(2, (int64_t[]){seq, seq});
  ty_tensor *t = NULL;
  int id = value(b, "mask", TY_DTYPE_F32, NULL), idx;
  if (b->rc == 0) b->rc = ty_tensor_create(TY_DTYPE_F32, &s, &t);
  for (int64_t i = 0; b->rc == 0 && i < seq; i++)
    for (int64_t j = i + 1; j < seq; j++)
      ty_tensor_f32(t)[i * seq + j] = -1e9f;
  if (b->rc == 0) b->rc = ty_graph_add_node(b->g, TY_OP_CONSTANT, "mask", NULL, 0, &id, 1, &idx);
  if (b->rc == 0)
    b->rc = ty_graph_node_set_tensor(b->g, (size_t)idx, "value", t);
  else
    ty_tensor_destroy(t);
  return id;
}

ty_graph *model_transformer(int n_layers, int64_t seq, int64_t hidden, int64_t heads, int64_t ffn,
                            int causal) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 3, (int64_t[]){TY_DIM_BATCH, seq, hidden});
  tconst c = {
      .heads_shape = ints(&b, "heads_shape", 4, (int64_t[]){0, 0, heads, hidden / heads}),
      .merge_shape = ints(&b, "merge_shape", 3, (int64_t[]){0, 0, hidden}),
      .scale = constant(&b, "scale", sqrtf((float)(hidden / heads))),
      .sqrt2 = constant(&b, "sqrt2", 1.41421356f),
      .one = constant(&b, "one", 1.0f),
      .half = constant(&b, "half", 0.5f),
      .mask = causal ? causal_mask(&b, seq) : TY_NO_VALUE,
  };
  for (int l = 0; l < n_layers; l++)
    x = block(&b, l, x, hidden, ffn, &c);
  return finish(&b, x);
}

/* Gemm y = x w + b, as torch exports nn.Linear on a 2-D input. */
static int gemm(gb *b, const char *name, int x, int64_t in, int64_t out) {
  char n[96];
  snprintf(n, sizeof n, "%s.w", name);
  int w = param(b, n, 2, (int64_t[]){in, out});
  snprintf(n, sizeof n, "%s.b", name);
  int bias = param(b, n, 1, (int64_t[]){out});
  return NODE(b, TY_OP_GEMM, name, x, w, bias);
}

ty_graph *model_gelu_mlp(int64_t in, int64_t hidden, int64_t out, int shaped) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, in});
  tconst c = {.sqrt2 = constant(&b, "sqrt2", 1.41421356f),
              .one = constant(&b, "one", 1.0f),
              .half = constant(&b, "half", 0.5f)};
  int h = gemm(&b, "fc1", x, in, hidden),
      shape = shaped ? NODE(&b, TY_OP_SHAPE, "fc1.shape", h) : -1;
  x = gelu(&b, "fc1", h, &c);
  if (shaped) x = NODE(&b, TY_OP_RESHAPE, "fc1.reshape", x, shape);
  return finish(&b, gemm(&b, "fc2", x, hidden, out));
}

/* ---- local normalisations and sampling -------------------------------------------------- */

ty_graph *model_local_norms(int64_t channels, int mvn_batch) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  ty_graph_set_opset(b.g, 16); /* GridSample */
  int x = input(&b, "x", TY_DTYPE_F32, 4, (int64_t[]){TY_DIM_BATCH, 2, 8, 8});
  int grid = input(&b, "grid", TY_DTYPE_F32, 4, (int64_t[]){TY_DIM_BATCH, 4, 4, 2});
  int y = input(&b, "y", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, 4});
  int w = param(&b, "conv.w", 4, (int64_t[]){channels, 2, 3, 3}), idx = -1;
  int c = node(&b, TY_OP_CONV, "conv", 2, (int[]){x, w}, &idx);
  if (b.rc == 0)
    b.rc = ty_graph_node_set_ints(b.g, (size_t)idx, "pads", (int64_t[]){1, 1, 1, 1}, 4);
  int l = node(&b, TY_OP_LRN, "lrn", 1, &c, &idx);
  set_int(&b, idx, "size", 3);
  int m = node(&b, TY_OP_MVN, "mvn", 1, &l, &idx);
  if (b.rc == 0 && !mvn_batch)
    b.rc = ty_graph_node_set_ints(b.g, (size_t)idx, "axes", (int64_t[]){2, 3}, 2);
  int s = NODE(&b, TY_OP_GRID_SAMPLE, "gs", m, grid);
  int f = NODE(&b, TY_OP_FLATTEN, "flat", s);
  return finish(&b, NODE(&b, TY_OP_SUB, "loss.diff", linear(&b, "fc", f, channels * 16, 4), y));
}

ty_graph *model_noise(void) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, 16}), idx = -1;
  int h = linear(&b, "fc", x, 16, 16);
  int eps = NODE(&b, TY_OP_RANDOM_NORMAL_LIKE, "eps", h);
  int noisy = NODE(&b, TY_OP_MUL, "noisy", h, eps);
  int fixed = node(&b, TY_OP_RANDOM_UNIFORM, "fixed", 0, NULL, &idx);
  if (b.rc == 0) b.rc = ty_graph_node_set_ints(b.g, (size_t)idx, "shape", (int64_t[]){1, 16}, 2);
  return finish(&b, NODE(&b, TY_OP_ADD, "shifted", noisy, fixed));
}

/* An int64 scalar initializer. */
static int scalar_i64(gb *b, const char *name, int64_t v) {
  ty_shape s = ty_shape_make(0, NULL);
  ty_tensor *t = NULL;
  int id = value(b, name, TY_DTYPE_I64, &s);
  if (b->rc == 0) b->rc = ty_tensor_create_from(TY_DTYPE_I64, &s, &v, sizeof v, &t);
  if (b->rc == 0) b->rc = ty_graph_set_initializer(b->g, id, t);
  return id;
}

/* Concat(Unsqueeze(Gather(Shape(x), 0)), [cols]): the shape [batch, cols]
 * as PyTorch computes it. */
static int batch_shape(gb *b, const char *name, int x, int64_t cols) {
  char n[96];
  int idx;
  snprintf(n, sizeof n, "%s.shape", name);
  int shp = NODE(b, TY_OP_SHAPE, n, x);
  snprintf(n, sizeof n, "%s.i0", name);
  int i0 = scalar_i64(b, n, 0);
  snprintf(n, sizeof n, "%s.batch", name);
  int bat = NODE(b, TY_OP_GATHER, n, shp, i0);
  snprintf(n, sizeof n, "%s.axes", name);
  int axes = ints(b, n, 1, (int64_t[]){0});
  snprintf(n, sizeof n, "%s.batch1", name);
  int b1 = NODE(b, TY_OP_UNSQUEEZE, n, bat, axes);
  snprintf(n, sizeof n, "%s.cols", name);
  int c = ints(b, n, 1, (int64_t[]){cols});
  snprintf(n, sizeof n, "%s.dims", name);
  int dims = node(b, TY_OP_CONCAT, n, 2, (int[]){b1, c}, &idx);
  set_int(b, idx, "axis", 0);
  return dims;
}

ty_graph *model_batch_shaped(void) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  ty_graph_set_opset(b.g, 13);
  int x = input(&b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, 8}), idx = -1;
  int h = linear(&b, "fc", x, 8, 8);
  ty_tensor *one = NULL;
  int mask =
      node(&b, TY_OP_CONSTANT_OF_SHAPE, "mask", 1, (int[]){batch_shape(&b, "mask", x, 1)}, &idx);
  if (b.rc == 0)
    b.rc = ty_tensor_create_from(TY_DTYPE_F32, &(ty_shape){.rank = 1, .dims = {1}}, &(float){1.0f},
                                 sizeof(float), &one);
  if (b.rc == 0) b.rc = ty_graph_node_set_tensor(b.g, (size_t)idx, "value", one);
  int draw = node(&b, TY_OP_RANDOM_UNIFORM_LIKE, "draw", 1, (int[]){mask}, &idx);
  if (b.rc == 0) b.rc = ty_graph_node_set_float(b.g, (size_t)idx, "seed", 3.0f);
  int keep = node(&b, TY_OP_CAST, "keep", 1,
                  (int[]){NODE(&b, TY_OP_LESS, "kept", draw, constant(&b, "keep.p", 0.7f))}, &idx);
  set_int(&b, idx, "to", TY_DTYPE_F32);
  int masked = NODE(&b, TY_OP_MUL, "masked", NODE(&b, TY_OP_MUL, "masked.ones", h, mask), keep);
  int bias = param(&b, "bias", 2, (int64_t[]){1, 8});
  int ex = NODE(&b, TY_OP_EXPAND, "expand", bias, batch_shape(&b, "expand", x, 8));
  int tp = param(&b, "tiled", 2, (int64_t[]){1, 8});
  int reps = batch_shape(&b, "tile", x, 1);
  int tile = NODE(&b, TY_OP_TILE, "tile", tp, reps);
  int sum = NODE(&b, TY_OP_ADD, "sum", NODE(&b, TY_OP_ADD, "plus_expand", masked, ex), tile);
  int bat = NODE(&b, TY_OP_GATHER, "range.batch", NODE(&b, TY_OP_SHAPE, "range.shape", x),
                 scalar_i64(&b, "range.i0", 0));
  int r = NODE(&b, TY_OP_RANGE, "range", scalar_i64(&b, "range.start", 0), bat,
               scalar_i64(&b, "range.delta", 1));
  int rf = node(&b, TY_OP_CAST, "range.float", 1, (int[]){r}, &idx);
  set_int(&b, idx, "to", TY_DTYPE_F32);
  int col = NODE(&b, TY_OP_UNSQUEEZE, "range.col", rf, ints(&b, "range.axes", 1, (int64_t[]){1}));
  int scale = NODE(&b, TY_OP_ADD, "range.scale", col, constant(&b, "range.one", 1.0f));
  return finish(&b, NODE(&b, TY_OP_MUL, "scaled", sum, scale));
}

/* ---- random graphs -------------------------------------------------------------------- */

typedef struct rnd {
  gb b;
  ty_rng rng;
  int vals[64];
  int64_t width[64];
  int n;
  int ops;
} rnd;

static int64_t pick_width(rnd *r) {
  return (int64_t[]){4, 8, 16}[ty_rng_next(&r->rng) % 3];
}

static int push(rnd *r, int v, int64_t w) {
  if (r->n < 64) r->vals[r->n] = v, r->width[r->n++] = w;
  return v;
}

static int rnd_matmul(rnd *r, int x, int64_t in, int64_t out) {
  char n[32];
  snprintf(n, sizeof n, "w%d", r->ops);
  int w = param(&r->b, n, 2, (int64_t[]){in, out});
  snprintf(n, sizeof n, "mm%d", r->ops++);
  return push(r, NODE(&r->b, TY_OP_MATMUL, n, x, w), out);
}

static int rnd_unary(rnd *r, int x, int64_t w) {
  char n[32];
  snprintf(n, sizeof n, "relu%d", r->ops++);
  return push(r, NODE(&r->b, TY_OP_RELU, n, x), w);
}

static int rnd_add(rnd *r, int x, int y, int64_t w) {
  char n[32];
  snprintf(n, sizeof n, "add%d", r->ops++);
  return push(r, NODE(&r->b, TY_OP_ADD, n, x, y), w);
}

/* One step of shape `shape` from the newest value; returns the new one. */
static int rnd_step(rnd *r, int shape) {
  int x = r->vals[r->n - 1];
  int64_t w = r->width[r->n - 1], w2 = pick_width(r);
  switch (shape) {
  case 0:
    return ty_rng_next(&r->rng) % 2 ? rnd_matmul(r, x, w, w2) : rnd_unary(r, x, w);
  case 1: { /* diamond */
    int a = rnd_matmul(r, x, w, w2), c = rnd_matmul(r, x, w, w2);
    return rnd_add(r, rnd_unary(r, a, w2), c, w2);
  }
  case 2: { /* residual block */
    int h = rnd_unary(r, rnd_matmul(r, x, w, w2), w2);
    return rnd_add(r, x, rnd_matmul(r, h, w2, w), w);
  }
  default: { /* any DAG: read one or two earlier values */
    int i = (int)(ty_rng_next(&r->rng) % (uint64_t)r->n);
    for (int j = 0; j < r->n; j++)
      if (j != i && r->width[j] == r->width[i] && ty_rng_next(&r->rng) % 2)
        return rnd_add(r, r->vals[i], r->vals[j], r->width[i]);
    return ty_rng_next(&r->rng) % 2 ? rnd_matmul(r, r->vals[i], r->width[i], w2)
                                    : rnd_unary(r, r->vals[i], r->width[i]);
  }
  }
}

ty_graph *model_random(uint64_t seed, int shape, int ops) {
  rnd r = {.rng = ty_rng_make(seed)};
  if (start(&r.b) != 0) return NULL;
  int64_t w = pick_width(&r);
  push(&r, input(&r.b, "x", TY_DTYPE_F32, 2, (int64_t[]){TY_DIM_BATCH, w}), w);
  int last = r.vals[0];
  while (r.ops < ops && r.b.rc == 0)
    last = rnd_step(&r, shape);
  return finish(&r.b, last);
}

/* One recurrent layer "<name>" of op on x (input features in), its
 * outputs Y and Y_h (time-major with layout 0); *y_h gets Y_h. */
static int rnn_layer(gb *b, ty_op op, const char *name, int x, int layout, int64_t in,
                     int64_t hidden, int *y_h) {
  int64_t gates = op == TY_OP_LSTM ? 4 : op == TY_OP_GRU ? 3 : 1;
  char n[64], yn[64], hn[64];
  snprintf(n, sizeof n, "%s.W", name);
  int w = param(b, n, 3, (int64_t[]){1, gates * hidden, in});
  snprintf(n, sizeof n, "%s.R", name);
  int r = param(b, n, 3, (int64_t[]){1, gates * hidden, hidden});
  snprintf(n, sizeof n, "%s.B", name);
  int bias = param(b, n, 2, (int64_t[]){1, 2 * gates * hidden});
  snprintf(yn, sizeof yn, "%s.Y", name);
  snprintf(hn, sizeof hn, "%s.Y_h", name);
  int out[2] = {value(b, yn, TY_DTYPE_F32, NULL), value(b, hn, TY_DTYPE_F32, NULL)}, idx = -1;
  if (b->rc == 0)
    b->rc = ty_graph_add_node(b->g, op, name, (int[]){x, w, r, bias}, 4, out, 2, &idx);
  set_int(b, idx, "hidden_size", hidden);
  set_int(b, idx, "layout", layout);
  *y_h = out[1];
  return out[0];
}

ty_graph *model_rnn(ty_op op, int layout, int64_t seq, int64_t hidden) {
  gb b;
  if (start(&b) != 0) return NULL;
  ty_graph_set_opset(b.g, 14); /* the layout attribute */
  int x = input(&b, "x", TY_DTYPE_F32, 3, (int64_t[]){TY_DIM_BATCH, seq, 64});
  int labels = input(&b, "labels", TY_DTYPE_I64, 1, (int64_t[]){TY_DIM_BATCH});
  if (layout == 0) {
    int idx;
    x = node(&b, TY_OP_TRANSPOSE, "to_time", 1, &x, &idx);
    set_ints(&b, idx, "perm", 3, (int64_t[]){1, 0, 2});
  }
  int dir_axis = ints(&b, "dir_axis", 1, (int64_t[]){layout == 0 ? 1 : 2});
  int h_axis = ints(&b, "h_axis", 1, (int64_t[]){layout == 0 ? 0 : 1});
  int h;
  x = rnn_layer(&b, op, "rnn0", x, layout, 64, hidden, &h);
  x = NODE(&b, TY_OP_SQUEEZE, "rnn0.y", x, dir_axis);
  rnn_layer(&b, op, "rnn1", x, layout, hidden, hidden, &h);
  h = NODE(&b, TY_OP_SQUEEZE, "rnn1.h", h, h_axis);
  int logits = linear(&b, "fc", h, hidden, 10);
  return finish_output(&b, NODE(&b, TY_OP_SOFTMAX_CE_LOSS, "loss", logits, labels));
}

ty_graph *model_nll(int64_t classes, bool init_weights) {
  gb b = {0};
  if (start(&b) != 0) return NULL;
  int x = input(&b, "x", TY_DTYPE_F32, 2,
                (int64_t[]){TY_DIM_BATCH, classes ? classes : TY_DIM_UNKNOWN});
  int labels = input(&b, "labels", TY_DTYPE_I64, 1, (int64_t[]){TY_DIM_BATCH});
  int w = init_weights ? param(&b, "w", 1, (int64_t[]){4})
                       : input(&b, "w", TY_DTYPE_F32, 1, (int64_t[]){TY_DIM_UNKNOWN});
  int idx, loss = node(&b, TY_OP_NLL_LOSS, "nll", 3, (int[]){x, labels, w}, &idx);
  set_int(&b, idx, "ignore_index", -1);
  if (b.rc == 0) b.rc = ty_graph_mark_output(b.g, loss);
  return b.rc == 0 ? b.g : (ty_graph_destroy(b.g), NULL);
}
