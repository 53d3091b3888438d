/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Transposes folded into MatMul (ops/fold_matmul.c, kernels/matmul.c):
 * attention's Q (heads split, [0, 2, 1, 3]) broadcast over the batch, K^T
 * ([0, 2, 3, 1]) and a Linear layer's W^T ([1, 0]). The folded graph's
 * gradients against finite differences; its output and gradients against
 * the unfolded graph's, and bit-identical for 1, 2 and 3 threads; a bad
 * permutation attribute refused by shape inference.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"
#include "ops/fold_matmul.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

typedef struct attn {
  gb b;
  int y;
} attn;

static int transposed(gb *b, int x, const int64_t *perm, size_t n) {
  int y;
  size_t nd = gb_node(b, TY_OP_TRANSPOSE, &x, 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_ints(b->g, nd, "perm", perm, n), 0);
  return y;
}

/* Y = ((Q^T-heads) (K-heads)^T) W^T: Q [1, T, H, D] (broadcast over the
 * batch), K [N, T, H, D], W [O, T]. */
static void build(attn *a, int64_t n, int64_t t, int64_t h, int64_t d, int64_t o) {
  gb_init(&a->b, 17);
  int q = gb_float(&a->b, true, 4, D(1, t, h, d), -1, 1, false),
      k = gb_float(&a->b, true, 4, D(n, t, h, d), -1, 1, false),
      w = gb_float(&a->b, true, 2, D(o, t), -1, 1, false), s;
  int qh = transposed(&a->b, q, D(0, 2, 1, 3), 4), kt = transposed(&a->b, k, D(0, 2, 3, 1), 4);
  gb_node(&a->b, TY_OP_MATMUL, (int[]){qh, kt}, 2, 1, &s);
  int wt = transposed(&a->b, w, D(1, 0), 2);
  gb_node(&a->b, TY_OP_MATMUL, (int[]){s, wt}, 2, 1, &a->y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a->b.g, err, sizeof err), 0, "%s", err);
}

static void fold(attn *a) {
  size_t folded = 0;
  cr_assert_eq(ty__fold_transpose_matmul(a->b.g, &folded), 0);
  cr_assert_eq(folded, 3, "folded %zu operands, want 3", folded);
  for (size_t i = 0; i < ty_graph_n_nodes(a->b.g); i++)
    cr_assert_neq(ty_graph_node_at(a->b.g, i)->op, TY_OP_TRANSPOSE, "a Transpose is left");
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a->b.g, err, sizeof err), 0, "%s", err);
}

Test(grad_fold, matmul_transposes_folded_match_finite_differences) {
  attn a;
  build(&a, 2, 5, 3, 4, 3);
  fold(&a);
  check(&a.b, a.y, EPS, TOL);
}

/* Y and every gradient of loss = sum(Y * R), on `threads` threads. */
typedef struct result {
  float *v[4];
  int64_t n[4];
} result;

static result run(bool folded, int threads) {
  attn a;
  build(&a, 2, 67, 3, 33, 130);
  if (folded) fold(&a);
  result res;
  run_and_copy(&a.b, a.y, 3, threads, res.v, res.n);
  return res;
}

static void result_free(result *r) {
  for (int i = 0; i < 4; i++)
    free(r->v[i]);
}

Test(grad_fold, matmul_folded_matches_unfolded_and_threads) {
  static const char *what[4] = {"Y", "dQ", "dK", "dW"};
  result plain = run(false, 1), one = run(true, 1);
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(plain.n[i], one.n[i], "%s: sizes differ", what[i]);
    for (int64_t j = 0; j < one.n[i]; j++)
      cr_assert(fabsf(plain.v[i][j] - one.v[i][j]) <= 1e-4f * (1 + fabsf(plain.v[i][j])),
                "%s[%lld]: folded %.7g, unfolded %.7g", what[i], (long long)j, one.v[i][j],
                plain.v[i][j]);
  }
  for (int threads = 2; threads <= 3; threads++) {
    result more = run(true, threads);
    for (int i = 0; i < 4; i++)
      cr_assert(memcmp(one.v[i], more.v[i], (size_t)one.n[i] * sizeof(float)) == 0,
                "%s differs with %d threads", what[i], threads);
    result_free(&more);
  }
  result_free(&plain);
  result_free(&one);
}

Test(grad_fold, bad_permutation_attribute_is_refused) {
  attn a;
  build(&a, 2, 5, 3, 4, 3);
  fold(&a);
  size_t mm = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(a.b.g); i++)
    if (ty_graph_node_at(a.b.g, i)->op == TY_OP_MATMUL) mm = i;
  cr_assert_eq(ty_graph_node_set_ints(a.b.g, mm, TY__MM_PERM_B, D(0, 0), 2), 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(a.b.g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "ty_perm_b is not a permutation"), "%s", err);
  ty_graph_destroy(a.b.g);
}
