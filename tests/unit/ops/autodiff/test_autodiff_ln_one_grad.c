/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LayerNormalization's dX, dScale and dB from one TyGrad node
 * (ty_autodiff_one_grad_layer_norm, kernels_grad_nn.c's ln_grad_one):
 * gradients against finite differences (odd sizes, a leading and an inner
 * axis, no bias, scalar scale and bias, X without a gradient); against the
 * node-per-input graph (dX bit for bit, dScale and dB to 1e-6) and
 * bit-identical for 1, 2 and 3 threads over several row blocks; the node
 * counts autodiff emits, unmarked and with one input wanting a gradient
 * (left a node per input); a TyGrad node of the wrong output count refused.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct spec {
  int rank;
  int64_t dims[3];
  int axis;
  int64_t sdims; /* scale's (and bias') element count: cols or 1 */
  bool bias, x_param, sb_param;
} spec;

typedef struct net {
  gb b;
  int x, s, bias, y;
} net;

/* The columns of x from axis on. */
static int64_t cols_of(const spec *s) {
  int64_t c = 1;
  for (int d = s->axis < 0 ? s->rank + s->axis : s->axis; d < s->rank; d++)
    c *= s->dims[d];
  return c;
}

/* Y = LayerNormalization(X, scale, bias), marked for one gradient node
 * when mark. */
static void build(net *a, const spec *s, bool mark) {
  gb_init(&a->b, 17);
  a->x = gb_float(&a->b, s->x_param, s->rank, s->dims, -2, 2, false);
  int64_t n = s->sdims == 1 ? 1 : cols_of(s);
  a->s = gb_float(&a->b, s->sb_param, 1, &n, 0.5, 1.5, false);
  a->bias = s->bias ? gb_float(&a->b, s->sb_param, 1, &n, -1, 1, false) : TY_NO_VALUE;
  size_t k =
      gb_node(&a->b, TY_OP_LAYER_NORM, (int[]){a->x, a->s, a->bias}, s->bias ? 3 : 2, 1, &a->y);
  cr_assert_eq(ty_graph_node_set_int(a->b.g, k, "axis", s->axis), 0);
  if (mark) {
    size_t marked = 0;
    cr_assert_eq(ty_autodiff_one_grad_layer_norm(a->b.g, &marked), 0);
    cr_assert_eq(marked, 1);
  }
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a->b.g, err, sizeof err), 0, "%s", err);
}

static const spec fd_cases[] = {
    {3, {2, 3, 5}, -1, 0, true, true, true},
    {3, {2, 3, 5}, 1, 0, true, true, true},   /* the last two axes: 15 columns */
    {2, {3, 7}, -1, 0, false, true, true},    /* no bias */
    {2, {3, 6}, -1, 1, true, true, true},     /* scalar scale and bias */
    {3, {2, 2, 5}, -1, 0, true, false, true}, /* X without a gradient */
    {3, {1, 3, 4}, -1, 0, true, true, false}, /* only X: a node per input */
};

Test(grad_ln_one, matches_finite_differences) {
  for (size_t c = 0; c < sizeof fd_cases / sizeof *fd_cases; c++) {
    net a;
    build(&a, &fd_cases[c], true);
    check(&a.b, a.y, EPS, TOL);
  }
}

/* The TyGrad nodes of LayerNormalization autodiff appends: how many, and
 * the most outputs one has. */
static void grad_nodes(const spec *s, bool mark, size_t *count, int *max_out) {
  net a;
  build(&a, s, mark);
  int r = gb_float(&a.b, false, s->rank, s->dims, -1, 1, false), m, loss;
  gb_node(&a.b, TY_OP_MUL, (int[]){a.y, r}, 2, 1, &m);
  size_t rs = gb_node(&a.b, TY_OP_REDUCE_SUM, &m, 1, 1, &loss);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, rs, "keepdims", 0), 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a.b.g, err, sizeof err), 0, "%s", err);
  int grads[3];
  cr_assert_eq(ty_autodiff(a.b.g, loss, a.b.params, (size_t)a.b.np, grads, err, sizeof err), 0,
               "%s", err);
  *count = 0;
  *max_out = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(a.b.g); i++) {
    const ty_graph_node *n = ty_graph_node_at(a.b.g, i);
    if (ty_autodiff_grad_forward_op(n) != TY_OP_LAYER_NORM) continue;
    ++*count;
    if (n->n_outputs > *max_out) *max_out = n->n_outputs;
  }
  ty_graph_destroy(a.b.g);
}

Test(grad_ln_one, one_node_only_when_marked_and_wanted) {
  size_t count;
  int outs;
  spec s = {3, {2, 3, 5}, -1, 0, true, true, true};
  grad_nodes(&s, true, &count, &outs);
  cr_assert(count == 1 && outs == 3, "marked: %zu nodes, %d outputs", count, outs);
  grad_nodes(&s, false, &count, &outs);
  cr_assert(count == 3 && outs == 1, "unmarked: %zu nodes, %d outputs", count, outs);
  s.sb_param = false; /* only X wants a gradient: nothing to share */
  grad_nodes(&s, true, &count, &outs);
  cr_assert(count == 1 && outs == 1, "X only: %zu nodes, %d outputs", count, outs);
  s.sb_param = true;
  s.x_param = false;
  grad_nodes(&s, true, &count, &outs);
  cr_assert(count == 1 && outs == 3, "scale and bias: %zu nodes, %d outputs", count, outs);
}

/* Y, dX, dScale, dB of loss = sum(Y * R) on `threads` threads. */
typedef struct result {
  float *v[4];
  int64_t n[4];
} result;

static result run(const spec *s, bool mark, int threads) {
  net a;
  build(&a, s, mark);
  cr_assert_eq(a.b.np, 3);
  result res;
  run_and_copy(&a.b, a.y, 3, threads, res.v, res.n);
  return res;
}

static void result_free(result *r) {
  for (int i = 0; i < 4; i++)
    free(r->v[i]);
}

static void same_as_per_input_and_threads(const spec *s) {
  static const char *what[4] = {"Y", "dX", "dScale", "dB"};
  result plain = run(s, false, 1), one = run(s, true, 1);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(plain.n[i], one.n[i], "%s: sizes differ", what[i]);
    for (int64_t j = 0; j < one.n[i]; j++) {
      float p = plain.v[i][j], o = one.v[i][j];
      if (i < 2) /* the same operations in the same order */
        cr_assert(p == o, "%s[%lld]: one node %.9g, a node per input %.9g", what[i], (long long)j,
                  o, p);
      else /* the same double sums, added in blocks */
        cr_assert(fabsf(p - o) <= 1e-6f * (1 + fabsf(p)), "%s[%lld]: one node %.9g, per input %.9g",
                  what[i], (long long)j, o, p);
    }
  }
  for (int threads = 2; threads <= 3; threads++) {
    result more = run(s, true, threads);
    for (int i = 0; i < 4; i++)
      cr_assert(memcmp(one.v[i], more.v[i], (size_t)one.n[i] * sizeof(float)) == 0,
                "%s differs with %d threads", what[i], threads);
    result_free(&more);
  }
  result_free(&plain);
  result_free(&one);
}

Test(grad_ln_one, matches_per_input_nodes_and_threads) {
  /* 300 rows of 67 (ten blocks of rows, the last short); 150 rows of 134
   * over the last two axes; a scalar scale and bias. */
  static const spec cases[] = {
      {3, {4, 75, 67}, -1, 0, true, true, true},
      {3, {5, 30, 134}, 1, 0, true, true, true},
      {2, {301, 33}, -1, 1, true, true, true},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++)
    same_as_per_input_and_threads(&cases[c]);
}

/* With dX wanted the row's dScale and dB terms and dX's two sums come
 * from one sweep (ln_partials_sums); without it, from ln_row_partials
 * alone: dScale and dB must be the same bits either way. Widths with an
 * 8-column body, a 4-column step and a scalar tail; the GPT's 128. */
Test(grad_ln_one, dscale_and_db_the_same_bits_with_and_without_dx) {
  static const spec cases[] = {
      {3, {4, 75, 67}, -1, 0, true, true, true},
      {2, {70, 128}, -1, 0, true, true, true},
      {2, {301, 13}, -1, 1, true, true, true},
  };
  for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
    spec with = cases[c], without = cases[c];
    without.x_param = false;
    net a, b;
    float *v[4], *w[3];
    int64_t n[4], m[3];
    build(&a, &with, true);
    cr_assert_eq(a.b.np, 3);
    run_and_copy(&a.b, a.y, 3, 1, v, n);
    build(&b, &without, true);
    cr_assert_eq(b.b.np, 2);
    run_and_copy(&b.b, b.y, 2, 1, w, m);
    for (int i = 0; i < 2; i++) {
      cr_assert_eq(n[2 + i], m[1 + i]);
      cr_assert(memcmp(v[2 + i], w[1 + i], (size_t)m[1 + i] * sizeof(float)) == 0,
                "case %zu: %s differs with dX wanted", c, i ? "dB" : "dScale");
    }
    for (int i = 0; i < 4; i++)
      free(v[i]);
    for (int i = 0; i < 3; i++)
      free(w[i]);
  }
}

/* A marked TyGrad node must have one output or one per forward input. */
Test(grad_ln_one, wrong_output_count_is_refused) {
  net a;
  spec s = {2, {3, 5}, -1, 0, true, true, true};
  build(&a, &s, true);
  size_t k = 0;
  int dy = gb_float(&a.b, false, 2, D(3, 5), -1, 1, false), d;
  k = gb_node(&a.b, TY_OP_GRAD, (int[]){dy, a.x, a.s, a.bias, a.y}, 5, 2, &d);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, k, "fwd_op", TY_OP_LAYER_NORM), 0);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, k, "wrt", 0), 0);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, k, "n_fwd_in", 3), 0);
  cr_assert_eq(ty_graph_node_set_int(a.b.g, k, TY_AUTODIFF_LN_ONE_GRAD, 1), 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a.b.g, err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert(strstr(err, "n_fwd_in=3 does not fit 5 inputs"), "%s", err);
  ty_graph_destroy(a.b.g);
}
