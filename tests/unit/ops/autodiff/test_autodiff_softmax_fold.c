/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attention's scale and mask folded into Softmax (ops/fold_softmax.c,
 * kernels/softmax_fused.c): Mul or Div by a scalar, then Where(cond, -inf,
 * .), Where(cond, ., fill) or Add(float mask), masks of several shapes
 * (causal [T, T], padding [N, 1, 1, T], [1, H, T, T], full), odd sizes.
 * The folded graph's gradients against finite differences; its output and
 * gradient against the unfolded graph's, and bit-identical for 1, 2 and 3
 * threads; patterns that must not fold left alone; bad attributes refused
 * by shape inference.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"
#include "ops/fold_softmax.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { CAUSAL, PADDING, HEADS, FULL }; /* mask shapes */

typedef struct spec {
  int mask_kind;  /* TY__SM_MASK_* */
  int mask_shape; /* CAUSAL ... FULL */
  int scale_op;   /* TY__SM_SCALE_* */
  int64_t n, h, t;
} spec;

typedef struct net {
  gb b;
  int x, y;
} net;

static int scalar(gb *b, float v) {
  int id = gb_float(b, false, 0, NULL, 0, 1, false);
  ty_tensor_f32(ty_graph_value_at(b->g, id)->init)[0] = v;
  return id;
}

/* Whether mask element (b, h, i, j) is "on": the future (j > i) for the
 * causal mask, the last b + 1 positions for padding, a pattern per head
 * or element that keeps j == i, so no row is all masked. */
static bool on(int shape, int64_t b, int64_t h, int64_t i, int64_t j, int64_t t) {
  switch (shape) {
  case CAUSAL:
    return j > i;
  case PADDING:
    return j >= t - 1 - b;
  case HEADS:
    return j != i && (i + j + h) % 3 == 0;
  default:
    return j != i && (i * 7 + j * 3 + h + b) % 4 == 0;
  }
}

/* The mask as its shape says: bool (Where) or float 0 / -1e4 (Add). */
static int mask_value(gb *b, const spec *s) {
  int64_t dims[4][4] = {
      {s->t, s->t}, {s->n, 1, 1, s->t}, {1, s->h, s->t, s->t}, {s->n, s->h, s->t, s->t}};
  int rank = s->mask_shape == CAUSAL ? 2 : 4;
  ty_shape sh = ty_shape_make(rank, dims[s->mask_shape]);
  bool add = s->mask_kind == TY__SM_MASK_ADD;
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create(add ? TY_DTYPE_F32 : TY_DTYPE_BOOL, &sh, &t), 0);
  int64_t nb = s->mask_shape == PADDING || s->mask_shape == FULL ? s->n : 1,
          nh = s->mask_shape >= HEADS ? s->h : 1, ni = s->mask_shape == PADDING ? 1 : s->t, at = 0;
  for (int64_t bb = 0; bb < nb; bb++)
    for (int64_t hh = 0; hh < nh; hh++)
      for (int64_t i = 0; i < ni; i++)
        for (int64_t j = 0; j < s->t; j++, at++) {
          bool m = on(s->mask_shape, bb, hh, s->mask_shape == PADDING ? s->t - 1 : i, j, s->t);
          if (s->mask_kind == TY__SM_MASK_FILL_FALSE) m = !m;
          if (add)
            ty_tensor_f32(t)[at] = m ? -1e4f : 0.0f;
          else
            ((uint8_t *)t->data)[at] = m;
        }
  cr_assert_eq(ty_graph_add_value(b->g, NULL, t->dtype, &sh, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(b->g, id, t), 0);
  return id;
}

/* Y = Softmax(mask(scale(X))) over the last axis, X [N, H, T, T]. */
static void build(net *a, const spec *s) {
  gb_init(&a->b, 17);
  a->x = gb_float(&a->b, true, 4, D(s->n, s->h, s->t, s->t), -3, 3, false);
  int v = a->x;
  if (s->scale_op != TY__SM_SCALE_NONE) {
    int c = scalar(&a->b, s->scale_op == TY__SM_SCALE_MUL ? 0.35f : 2.8f);
    ty_op op = s->scale_op == TY__SM_SCALE_MUL ? TY_OP_MUL : TY_OP_DIV;
    gb_node(&a->b, op, (int[]){v, c}, 2, 1, &v);
  }
  if (s->mask_kind == TY__SM_MASK_ADD) {
    int m = mask_value(&a->b, s);
    gb_node(&a->b, TY_OP_ADD, (int[]){m, v}, 2, 1, &v);
  } else if (s->mask_kind != TY__SM_MASK_NONE) {
    int m = mask_value(&a->b, s), fill = scalar(&a->b, -INFINITY);
    bool fill_true = s->mask_kind == TY__SM_MASK_FILL_TRUE;
    gb_node(&a->b, TY_OP_WHERE, (int[]){m, fill_true ? fill : v, fill_true ? v : fill}, 3, 1, &v);
  }
  gb_node(&a->b, TY_OP_SOFTMAX, &v, 1, 1, &a->y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a->b.g, err, sizeof err), 0, "%s", err);
}

static size_t fold_count(net *a) {
  size_t folded = 99;
  cr_assert_eq(ty__fold_softmax(a->b.g, a->b.params, (size_t)a->b.np, &folded), 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a->b.g, err, sizeof err), 0, "%s", err);
  return folded;
}

/* Folds and checks that only the Softmax is left. */
static void fold(net *a) {
  cr_assert_eq(fold_count(a), 1);
  cr_assert_eq(ty_graph_n_nodes(a->b.g), 1, "%zu nodes left", ty_graph_n_nodes(a->b.g));
  cr_assert_eq(ty_graph_node_at(a->b.g, 0)->op, TY_OP_SOFTMAX);
}

static const spec cases[] = {
    {TY__SM_MASK_FILL_TRUE, CAUSAL, TY__SM_SCALE_MUL, 2, 3, 5},
    {TY__SM_MASK_FILL_FALSE, PADDING, TY__SM_SCALE_DIV, 2, 3, 5},
    {TY__SM_MASK_ADD, HEADS, TY__SM_SCALE_NONE, 2, 3, 5},
    {TY__SM_MASK_FILL_TRUE, FULL, TY__SM_SCALE_NONE, 2, 3, 5},
    {TY__SM_MASK_NONE, CAUSAL, TY__SM_SCALE_MUL, 1, 2, 7},
};

Test(grad_fold, softmax_folds_match_finite_differences) {
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    net a;
    build(&a, &cases[c]);
    fold(&a);
    check(&a.b, a.y, EPS, TOL);
  }
}

/* Y and dX of loss = sum(Y * R), on `threads` threads. */
typedef struct result {
  float *v[2];
  int64_t n[2];
} result;

static result run(const spec *s, bool folded, int threads) {
  net a;
  build(&a, s);
  if (folded) fold(&a);
  result res;
  run_and_copy(&a.b, a.y, 1, threads, res.v, res.n);
  return res;
}

static void result_free(result *r) {
  free(r->v[0]);
  free(r->v[1]);
}

static void same_as_unfolded_and_threads(const spec *s) {
  static const char *what[2] = {"Y", "dX"};
  result plain = run(s, false, 1), one = run(s, true, 1);
  for (int i = 0; i < 2; i++) {
    cr_assert_eq(plain.n[i], one.n[i], "%s: sizes differ", what[i]);
    for (int64_t j = 0; j < one.n[i]; j++)
      cr_assert(fabsf(plain.v[i][j] - one.v[i][j]) <= 1e-6f * (1 + fabsf(plain.v[i][j])),
                "%s[%lld]: folded %.9g, unfolded %.9g (mask %d shape %d scale %d)", what[i],
                (long long)j, one.v[i][j], plain.v[i][j], s->mask_kind, s->mask_shape, s->scale_op);
  }
  for (int threads = 2; threads <= 3; threads++) {
    result more = run(s, true, threads);
    for (int i = 0; i < 2; i++)
      cr_assert(memcmp(one.v[i], more.v[i], (size_t)one.n[i] * sizeof(float)) == 0,
                "%s differs with %d threads", what[i], threads);
    result_free(&more);
  }
  result_free(&plain);
  result_free(&one);
}

Test(grad_fold, softmax_folded_matches_unfolded_and_threads) {
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    spec s = cases[c];
    s.n = 3;
    s.h = 5;
    s.t = 67;
    same_as_unfolded_and_threads(&s);
  }
}

/* A graph whose Softmax must keep its one input, and the nodes before it. */
static void left_alone(net *a, size_t nodes) {
  cr_assert_eq(fold_count(a), 0);
  cr_assert_eq(ty_graph_n_nodes(a->b.g), nodes);
  for (size_t i = 0; i < nodes; i++) {
    const ty_graph_node *n = ty_graph_node_at(a->b.g, i);
    if (n->op == TY_OP_SOFTMAX) cr_assert_eq(n->n_inputs, 1);
  }
  ty_graph_destroy(a->b.g);
}

Test(grad_fold, softmax_non_matching_patterns_are_left_unfused) {
  net a;
  /* Mul by a vector, not a scalar. */
  gb_init(&a.b, 17);
  int x = gb_float(&a.b, true, 2, D(3, 5), -1, 1, false),
      c = gb_float(&a.b, false, 1, D(5), 0, 1, false), v;
  gb_node(&a.b, TY_OP_MUL, (int[]){x, c}, 2, 1, &v);
  gb_node(&a.b, TY_OP_SOFTMAX, &v, 1, 1, &a.y);
  left_alone(&a, 2);
  /* Mul by a trained scalar. */
  gb_init(&a.b, 17);
  x = gb_float(&a.b, true, 2, D(3, 5), -1, 1, false);
  c = gb_float(&a.b, true, 0, NULL, 0, 1, false);
  gb_node(&a.b, TY_OP_MUL, (int[]){x, c}, 2, 1, &v);
  gb_node(&a.b, TY_OP_SOFTMAX, &v, 1, 1, &a.y);
  left_alone(&a, 2);
  /* The scaled scores read by another node too. */
  gb_init(&a.b, 17);
  x = gb_float(&a.b, true, 2, D(3, 5), -1, 1, false);
  c = scalar(&a.b, 0.5f);
  int other;
  gb_node(&a.b, TY_OP_MUL, (int[]){x, c}, 2, 1, &v);
  gb_node(&a.b, TY_OP_SOFTMAX, &v, 1, 1, &a.y);
  gb_node(&a.b, TY_OP_NEG, &v, 1, 1, &other);
  left_alone(&a, 3);
  /* Softmax over a leading axis. */
  gb_init(&a.b, 17);
  x = gb_float(&a.b, true, 2, D(3, 5), -1, 1, false);
  c = scalar(&a.b, 0.5f);
  gb_node(&a.b, TY_OP_MUL, (int[]){x, c}, 2, 1, &v);
  size_t sm = gb_node(&a.b, TY_OP_SOFTMAX, &v, 1, 1, &a.y);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, sm, "axis", 0), 0);
  left_alone(&a, 2);
  /* Where whose fill is trained, and an additive mask that is trained. */
  spec s = {TY__SM_MASK_FILL_TRUE, CAUSAL, TY__SM_SCALE_NONE, 1, 1, 4};
  gb_init(&a.b, 17);
  x = gb_float(&a.b, true, 4, D(1, 1, 4, 4), -1, 1, false);
  int m = mask_value(&a.b, &s), f = gb_float(&a.b, true, 0, NULL, -2, -1, false);
  gb_node(&a.b, TY_OP_WHERE, (int[]){m, f, x}, 3, 1, &v);
  gb_node(&a.b, TY_OP_SOFTMAX, &v, 1, 1, &a.y);
  left_alone(&a, 2);
  gb_init(&a.b, 17);
  x = gb_float(&a.b, true, 4, D(1, 1, 4, 4), -1, 1, false);
  m = gb_float(&a.b, true, 2, D(4, 4), -1, 1, false);
  gb_node(&a.b, TY_OP_ADD, (int[]){x, m}, 2, 1, &v);
  gb_node(&a.b, TY_OP_SOFTMAX, &v, 1, 1, &a.y);
  left_alone(&a, 2);
}

/* Shape inference of the folded Softmax refuses what its kernels cannot run. */
static void refused(const char *attr, int64_t v, int code, const char *want) {
  net a;
  spec s = {TY__SM_MASK_FILL_TRUE, CAUSAL, TY__SM_SCALE_MUL, 1, 2, 4};
  build(&a, &s);
  fold(&a);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, 0, attr, v), 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a.b.g, err, sizeof err), code, "%s", err);
  cr_assert(strstr(err, want), "%s", err);
  ty_graph_destroy(a.b.g);
}

Test(grad_fold, softmax_bad_fold_attributes_are_refused) {
  refused(TY__SM_MASK, 9, TY_EINVAL, "ty_sm_mask=9 is not a mask kind");
  refused(TY__SM_SCALE_OP, -1, TY_EINVAL, "ty_sm_scale_op=-1 is not a scale op");
  refused(TY__SM_MASK, TY__SM_MASK_ADD, TY_EUNSUPPORTED, "input 1: dtype BOOL is not supported");
  refused(TY__SM_MASK, TY__SM_MASK_NONE, TY_EINVAL, "an input 1 without a mask kind");
  refused("axis", 1, TY_EINVAL, "needs the last axis");
}
