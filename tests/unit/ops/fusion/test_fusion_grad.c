/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/fusion, backward: TyGrad nodes of elementwise ops join fused regions,
 * and the gradients (and the loss) equal the unfused backward kernels' bit
 * for bit, through the JIT and through the interpreter. Gradients of
 * broadcast inputs (a reduction) stay plain steps and still agree.
 */
#include "ops/autodiff/autodiff.h"
#include "ops/fusion/fusion.h"
#include "tests/unit/ops/fusion/gtest.h"

#include <math.h>
#include <stdio.h>

#define GD 29 /* odd, so vector loops have tails */

static float g_w(int64_t i) {
  return 0.4f + 0.05f * (float)(i % 7);
}
static float g_b(int64_t i) {
  return -0.3f + 0.02f * (float)i;
}
static float g_x(int64_t i) {
  return sinf((float)i * 0.41f) * 2.5f;
}
static float g_pos(int64_t i) {
  return 0.2f + (float)(i % 11) * 0.3f;
}

static char grad_cache[256];

/* Every elementwise op with a gradient, forward and backward:
 *   h = sigmoid(x*w + b); t = tanh(h) * h; l = log(exp(leaky(t)) + h)
 *   s = sqrt(p * w2); d = l / s; q = pow(s, h); r = erf(q) - neg(d) * relu(x)
 *   loss = mean(r) */
static ty_graph *grad_graph(int *out_loss, int params[3]) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, GD}, wd[1] = {GD};
  int x = gt_input(g, "x", 2, xd), p = gt_input(g, "p", 2, xd);
  int w = gt_init(g, "w", 1, wd, g_w), b = gt_init(g, "b", 1, wd, g_b),
      w2 = gt_init(g, "w2", 1, wd, g_pos);
  int h = gt_op(g, TY_OP_SIGMOID, gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_MUL, x, w), b), -1);
  int t = gt_op(g, TY_OP_MUL, gt_op(g, TY_OP_TANH, h, -1), h);
  int lk = gt_op(g, TY_OP_LEAKY_RELU, t, -1);
  cr_assert_eq(ty_graph_node_set_float(g, ty_graph_n_nodes(g) - 1, "alpha", 0.2f), 0);
  int l = gt_op(g, TY_OP_LOG, gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_EXP, lk, -1), h), -1);
  int s = gt_op(g, TY_OP_SQRT, gt_op(g, TY_OP_MUL, p, w2), -1);
  int d = gt_op(g, TY_OP_DIV, l, s), q = gt_op(g, TY_OP_POW, s, h);
  int nd = gt_op(g, TY_OP_MUL, gt_op(g, TY_OP_NEG, d, -1), gt_op(g, TY_OP_RELU, x, -1));
  int r = gt_op(g, TY_OP_SUB, gt_op(g, TY_OP_ERF, q, -1), nd);
  *out_loss = gt_op(g, TY_OP_REDUCE_MEAN, r, -1);
  cr_assert_eq(ty_graph_mark_output(g, *out_loss), 0);
  params[0] = w;
  params[1] = b;
  params[2] = w2;
  gt_infer(g);
  return g;
}

static ty_exec *grad_run(const ty_graph *g, const ty_exec_opts *o, int64_t batch) {
  int64_t dims[2] = {batch, GD};
  ty_tensor *ts[2] = {gt_tensor(2, dims, g_x), gt_tensor(2, dims, g_pos)};
  const char *names[2] = {"x", "p"};
  ty_exec *e = gt_run(g, o, 2, names, ts);
  ty_tensor_destroy(ts[0]);
  ty_tensor_destroy(ts[1]);
  return e;
}

static size_t fused_nodes(const ty_graph *g) {
  ty_exec_opts o = {.kernel_cache = grad_cache};
  ty_exec *e = grad_run(g, &o, 3);
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  ty_exec_destroy(e);
  return st.fused_nodes;
}

static void assert_same_outputs(const ty_graph *g, const ty_exec *a, const ty_exec *b) {
  for (size_t i = 0; i < ty_graph_n_outputs(g); i++)
    gt_assert_same(ty_exec_value(a, ty_graph_output(g, i)),
                   ty_exec_value(b, ty_graph_output(g, i)));
}

Test(fusion_grad, backward_fused_equals_unfused_bitwise) {
  snprintf(grad_cache, sizeof grad_cache, "/tmp/ty_fusion_grad.XXXXXX");
  cr_assert_not_null(mkdtemp(grad_cache));
  int loss, params[3], grads[3];
  ty_graph *g = grad_graph(&loss, params);
  size_t forward_fused = fused_nodes(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, params, 3, grads, err, sizeof err), 0, "%s", err);
  for (int i = 0; i < 3; i++)
    cr_assert_neq(grads[i], TY_NO_VALUE);
  size_t total_fused = fused_nodes(g);
  cr_assert_geq(total_fused, forward_fused + 10, "backward nodes fused: %zu with, %zu forward only",
                total_fused, forward_fused);

  ty_exec_opts plain = {.no_fusion = true, .no_memplan = true, .training = true};
  ty_exec_opts jit = {.kernel_cache = grad_cache, .training = true};
  ty_exec_opts interp = {.kernel_cache = grad_cache, .training = true, .no_jit = true};
  ty_exec *a = grad_run(g, &plain, 33), *b = grad_run(g, &jit, 33), *c = grad_run(g, &interp, 300);
  assert_same_outputs(g, a, b);
  ty_exec *a300 = grad_run(g, &plain, 300);
  assert_same_outputs(g, a300, c);
  ty_exec_stats st;
  ty_exec_get_stats(b, &st);
  cr_assert_geq(st.jit_compiles + st.jit_disk_loads, 1);
  cr_assert_eq(st.interp_runs, 0);
  ty_exec_get_stats(c, &st);
  cr_assert_gt(st.interp_runs, 0);
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_exec_destroy(c);
  ty_exec_destroy(a300);
  ty_graph_destroy(g);
}

/* A gradient that undoes a broadcast (w's, shaped [D] under dY [N, D]) is a
 * reduction: it must stay out of regions, and still agree. */
Test(fusion_grad, broadcast_gradients_stay_unfused) {
  snprintf(grad_cache, sizeof grad_cache, "/tmp/ty_fusion_grad.XXXXXX");
  cr_assert_not_null(mkdtemp(grad_cache));
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, GD}, wd[1] = {GD};
  int x = gt_input(g, "x", 2, xd), w = gt_init(g, "w", 1, wd, g_w);
  int loss = gt_op(g, TY_OP_REDUCE_SUM, gt_op(g, TY_OP_MUL, x, w), -1), grad;
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, &w, 1, &grad, err, sizeof err), 0, "%s", err);
  ty_exec_opts plain = {.no_fusion = true}, fused = {.kernel_cache = grad_cache};
  int64_t dims[2] = {7, GD};
  ty_tensor *xt = gt_tensor(2, dims, g_x);
  const char *name = "x";
  ty_exec *a = gt_run(g, &plain, 1, &name, &xt), *b = gt_run(g, &fused, 1, &name, &xt);
  gt_assert_same(ty_exec_value(a, grad), ty_exec_value(b, grad));
  ty_exec_stats st;
  ty_exec_get_stats(b, &st);
  cr_assert_eq(st.fused_nodes, 0);
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_tensor_destroy(xt);
  ty_graph_destroy(g);
}

static float g_nan_every_third(int64_t i) {
  return i % 3 == 0 ? NAN : g_x(i);
}

/* Relu's gradient at a NaN input is dY, as torch's threshold_backward
 * (x <= 0 ? 0 : dY), in the plain kernel, the JIT and the interpreter:
 * loss = ReduceSum(-(-Relu(x + w))) (the Negs give the backward a region to
 * fuse), so w's gradient is Relu'(x + w). */
Test(fusion_grad, relu_gradient_passes_at_nan) {
  snprintf(grad_cache, sizeof grad_cache, "/tmp/ty_fusion_grad.XXXXXX");
  cr_assert_not_null(mkdtemp(grad_cache));
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t d[1] = {GD};
  int x = gt_input(g, "x", 1, d), w = gt_init(g, "w", 1, d, g_b), grad;
  int r = gt_op(g, TY_OP_RELU, gt_op(g, TY_OP_ADD, x, w), -1);
  int loss = gt_op(g, TY_OP_REDUCE_SUM, gt_op(g, TY_OP_NEG, gt_op(g, TY_OP_NEG, r, -1), -1), -1);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, &w, 1, &grad, err, sizeof err), 0, "%s", err);
  ty_exec_opts how[3] = {{.no_fusion = true, .no_memplan = true, .training = true},
                         {.kernel_cache = grad_cache, .training = true},
                         {.kernel_cache = grad_cache, .training = true, .no_jit = true}};
  ty_tensor *xt = gt_tensor(1, d, g_nan_every_third);
  const char *name = "x";
  for (int h = 0; h < 3; h++) {
    ty_exec *e = gt_run(g, &how[h], 1, &name, &xt);
    const float *got = ty_tensor_f32(ty_exec_value(e, grad));
    for (int64_t i = 0; i < GD; i++) {
      float want = i % 3 == 0 || g_x(i) + g_b(i) > 0 ? 1.0f : 0.0f;
      cr_assert_eq(got[i], want, "way %d: element %lld: %g, want %g", h, (long long)i,
                   (double)got[i], (double)want);
    }
    ty_exec_destroy(e);
  }
  ty_tensor_destroy(xt);
  ty_graph_destroy(g);
}

static float g_half(int64_t i) {
  (void)i;
  return 0.5f;
}
static float g_one(int64_t i) {
  (void)i;
  return 1.0f;
}
static float g_sqrt2(int64_t i) {
  (void)i;
  return 1.4142135f;
}

/* GELU as PyTorch exports it, y = (h * (erf(h / sqrt 2) + 1)) * 0.5 with
 * h = x * w + b, under loss = mean(y): the backward region reads h, h /
 * sqrt 2 and erf + 1, not erf's output nor the product before * 0.5 (their
 * TyGrad nodes list them, their formulas do not), so the forward region
 * does not write those two; and the gradients still equal the unfused
 * kernels' bit for bit. */
Test(fusion_grad, forward_region_writes_only_what_a_formula_reads) {
  snprintf(grad_cache, sizeof grad_cache, "/tmp/ty_fusion_grad.XXXXXX");
  cr_assert_not_null(mkdtemp(grad_cache));
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, GD}, wd[1] = {GD}, sd[1] = {1};
  int x = gt_input(g, "x", 2, xd),
      params[2] = {gt_init(g, "w", 1, wd, g_w), gt_init(g, "b", 1, wd, g_b)};
  int h = gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_MUL, x, params[0]), params[1]);
  int e = gt_op(g, TY_OP_ERF, gt_op(g, TY_OP_DIV, h, gt_init(g, "c", 1, sd, g_sqrt2)), -1);
  int m = gt_op(g, TY_OP_MUL, h, gt_op(g, TY_OP_ADD, e, gt_init(g, "one", 1, sd, g_one)));
  int y = gt_op(g, TY_OP_MUL, m, gt_init(g, "half", 1, sd, g_half));
  int loss = gt_op(g, TY_OP_REDUCE_MEAN, y, -1), grads[2];
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, params, 2, grads, err, sizeof err), 0, "%s", err);
  ty_exec_opts plain = {.no_fusion = true, .no_memplan = true, .training = true};
  ty_exec_opts fused = {.kernel_cache = grad_cache, .no_memplan = true, .training = true};
  int64_t dims[2] = {5, GD};
  ty_tensor *xt = gt_tensor(2, dims, g_x);
  const char *name = "x";
  ty_exec *a = gt_run(g, &plain, 1, &name, &xt), *b = gt_run(g, &fused, 1, &name, &xt);
  assert_same_outputs(g, a, b);
  cr_assert_not_null(ty_exec_value(a, e));
  cr_assert_not_null(ty_exec_value(a, m));
  cr_assert_null(ty_exec_value(b, e), "erf's output was written, and nothing reads it");
  cr_assert_null(ty_exec_value(b, m), "the product before * 0.5 was written, and nothing reads it");
  cr_assert_not_null(ty_exec_value(b, h));
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_tensor_destroy(xt);
  ty_graph_destroy(g);
}

/* ---- the float forms of the double partials ------------------------------
 * The regions compute Mul's and Div's partials (and Add's and Sub's
 * pass-through) in float, where ops/autodiff's kernels write (float)(0.0 +
 * partial) of a double partial: the same bits for every pair of floats,
 * signed zeros included, through the JIT and through the interpreter.
 * loss = ReduceSum(op(w, x) * y) with w a parameter of x's shape: the
 * backward region computes dV = 1 * y and then w's gradient dV * x, dV / x
 * or (x - w) -dV. (Add's dV is dY itself, no node.) Pairs (y, x): every combination of signed
 * zeros, subnormals, the extremes, infinities and ordinary values (products and quotients that
 * underflow to -0 or to a subnormal, overflow, exact zeros from an infinite divisor), then random
 * bit patterns. NaN results must be NaN in both (their payload is not part of the rule). */
#define PAIRS_SPECIAL 24
#define PAIRS_N (PAIRS_SPECIAL * PAIRS_SPECIAL + 4096)

static float pair_y[PAIRS_N], pair_x[PAIRS_N];

static float p_y(int64_t i) {
  return pair_y[i];
}
static float p_x(int64_t i) {
  return pair_x[i];
}
static float p_w(int64_t i) {
  return 0.25f + (float)(i % 5);
}

static void make_pairs(void) {
  const float sp[PAIRS_SPECIAL] = {0.0f,
                                   -0.0f,
                                   0x1p-149f,
                                   -0x1p-149f,
                                   0x1p-126f,
                                   -0x1p-126f,
                                   0x1p-70f,
                                   -0x1p-70f,
                                   0x1.8p-80f,
                                   1.0f,
                                   -1.0f,
                                   3.0f,
                                   -3.0f,
                                   0x1p+70f,
                                   -0x1p+70f,
                                   0x1.fffffep+127f,
                                   -0x1.fffffep+127f,
                                   INFINITY,
                                   -INFINITY,
                                   0.1f,
                                   -0.7f,
                                   1.4142135f,
                                   0x1.123456p-140f,
                                   NAN};
  int k = 0;
  for (int i = 0; i < PAIRS_SPECIAL; i++)
    for (int j = 0; j < PAIRS_SPECIAL; j++, k++) {
      pair_y[k] = sp[i];
      pair_x[k] = sp[j];
    }
  uint64_t s = 0x9e3779b97f4a7c15ull;
  for (; k < PAIRS_N; k++) {
    s = s * 6364136223846793005ull + 1442695040888963407ull;
    uint32_t hi = (uint32_t)(s >> 32), lo = (uint32_t)s;
    memcpy(&pair_y[k], &hi, sizeof hi);
    memcpy(&pair_x[k], &lo, sizeof lo);
  }
}

/* (float)(0.0 + partial) of the kernels' double partial for w. */
static float double_partial(ty_op op, float y, float x) {
  float dv = (float)(0.0 + 1.0 * (double)y);
  switch (op) {
  case TY_OP_MUL:
    return (float)(0.0 + (double)dv * (double)x);
  case TY_OP_DIV:
    return (float)(0.0 + (double)dv / (double)x);
  case TY_OP_SUB:
    return (float)(0.0 + -(double)dv);
  default:
    return (float)(0.0 + (double)dv);
  }
}

static void partials_case(ty_op op, bool w_second) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t d[1] = {PAIRS_N};
  int x = gt_input(g, "x", 1, d), y = gt_input(g, "y", 1, d), w = gt_init(g, "w", 1, d, p_w);
  int v = w_second ? gt_op(g, op, x, w) : gt_op(g, op, w, x);
  int loss = gt_op(g, TY_OP_REDUCE_SUM, gt_op(g, TY_OP_MUL, v, y), -1), grad;
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, &w, 1, &grad, err, sizeof err), 0, "%s", err);
  ty_tensor *ts[2] = {gt_tensor(1, d, p_x), gt_tensor(1, d, p_y)};
  const char *names[2] = {"x", "y"};
  for (int interp = 0; interp < 2; interp++) {
    ty_exec_opts o = {.kernel_cache = grad_cache, .training = true, .no_jit = interp};
    ty_exec *e = gt_run(g, &o, 2, names, ts);
    ty_exec_stats st;
    ty_exec_get_stats(e, &st);
    cr_assert_geq(st.fused_nodes, 4, "op %d: the backward did not fuse (%zu fused nodes)", (int)op,
                  st.fused_nodes);
    cr_assert(interp ? st.interp_runs > 0 : st.jit_compiles + st.jit_disk_loads > 0);
    const float *got = ty_tensor_f32(ty_exec_value(e, grad));
    for (int k = 0; k < PAIRS_N; k++) {
      float want = double_partial(w_second ? TY_OP_SUB : op, pair_y[k], pair_x[k]);
      if (isnan(want)) {
        cr_assert(isnan(got[k]), "op %d %s: %a, %a: %a, want NaN", (int)op,
                  interp ? "interpreted" : "jit", (double)pair_y[k], (double)pair_x[k],
                  (double)got[k]);
        continue;
      }
      cr_assert(memcmp(&got[k], &want, sizeof want) == 0, "op %d %s: %a, %a: %a, want %a", (int)op,
                interp ? "interpreted" : "jit", (double)pair_y[k], (double)pair_x[k],
                (double)got[k], (double)want);
    }
    ty_exec_destroy(e);
  }
  ty_tensor_destroy(ts[0]);
  ty_tensor_destroy(ts[1]);
  ty_graph_destroy(g);
}

Test(fusion_grad, float_partials_equal_the_double_formula_bitwise) {
  snprintf(grad_cache, sizeof grad_cache, "/tmp/ty_fusion_grad.XXXXXX");
  cr_assert_not_null(mkdtemp(grad_cache));
  make_pairs();
  partials_case(TY_OP_MUL, false); /* dV * x */
  partials_case(TY_OP_DIV, false); /* dV / x */
  partials_case(TY_OP_SUB, true);  /* x - w: -dV */
}
