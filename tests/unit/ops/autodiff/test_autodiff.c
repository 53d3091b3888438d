/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/autodiff: a central-difference gradient check (gradcheck.h) for every
 * differentiable op of the original set, plus the rejections. Inputs stay
 * away from kinks (Relu at 0, ties in MaxPool) by construction. The ops
 * added for exported models are in test_autodiff_ops.c.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static void binary_case(ty_op op, double lo_b, double hi_b) {
  gb b;
  gb_init(&b, 17);
  int a = gb_float(&b, true, 2, D(3, 4), 0.5, 1.5, false),
      c = gb_float(&b, true, 1, D(4), lo_b, hi_b, false), y;
  gb_node(&b, op, (int[]){a, c}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, add) {
  binary_case(TY_OP_ADD, -1, 1);
}
Test(grad, sub) {
  binary_case(TY_OP_SUB, -1, 1);
}
Test(grad, mul) {
  binary_case(TY_OP_MUL, -1, 1);
}
Test(grad, div) {
  binary_case(TY_OP_DIV, 0.5, 1.5);
}
Test(grad, pow) {
  binary_case(TY_OP_POW, 0.5, 2.0);
}

Test(grad, pow_int_exponent) {
  gb b;
  gb_init(&b, 17);
  int a = gb_float(&b, true, 2, D(3, 4), -1.5, 1.5, false), e = gb_ints(&b, 0, NULL, D(3)), y;
  gb_node(&b, TY_OP_POW, (int[]){a, e}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

static void unary_case(ty_op op, double lo, double hi, bool away) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(3, 5), lo, hi, away), y;
  size_t nd = gb_node(&b, op, &x, 1, 1, &y);
  if (op == TY_OP_LEAKY_RELU) cr_assert_eq(ty_graph_node_set_float(b.g, nd, "alpha", 0.2f), 0);
  check(&b, y, EPS, TOL);
}

Test(grad, relu) {
  unary_case(TY_OP_RELU, -1, 1, true);
}
Test(grad, leaky_relu) {
  unary_case(TY_OP_LEAKY_RELU, -1, 1, true);
}
Test(grad, sigmoid) {
  unary_case(TY_OP_SIGMOID, -2, 2, false);
}
Test(grad, tanh) {
  unary_case(TY_OP_TANH, -2, 2, false);
}
Test(grad, erf) {
  unary_case(TY_OP_ERF, -1.5, 1.5, false);
}
Test(grad, sqrt) {
  unary_case(TY_OP_SQRT, 0.5, 2, false);
}
Test(grad, exp) {
  unary_case(TY_OP_EXP, -1, 1, false);
}
Test(grad, log) {
  unary_case(TY_OP_LOG, 0.5, 2, false);
}
Test(grad, neg) {
  unary_case(TY_OP_NEG, -1, 1, false);
}
Test(grad, identity) {
  unary_case(TY_OP_IDENTITY, -1, 1, false);
}

static void gemm_case(bool ta, bool tb, float alpha, float beta) {
  gb b;
  gb_init(&b, 17);
  int a = ta ? gb_float(&b, true, 2, D(4, 3), -1, 1, false)
             : gb_float(&b, true, 2, D(3, 4), -1, 1, false);
  int w = tb ? gb_float(&b, true, 2, D(5, 4), -1, 1, false)
             : gb_float(&b, true, 2, D(4, 5), -1, 1, false);
  int c = gb_float(&b, true, 1, D(5), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_GEMM, (int[]){a, w, c}, 3, 1, &y);
  ty_graph_node_set_int(b.g, nd, "transA", ta);
  ty_graph_node_set_int(b.g, nd, "transB", tb);
  ty_graph_node_set_float(b.g, nd, "alpha", alpha);
  ty_graph_node_set_float(b.g, nd, "beta", beta);
  check(&b, y, EPS, TOL);
}

Test(grad, gemm) {
  gemm_case(false, false, 1, 1);
}
Test(grad, gemm_trans_b) {
  gemm_case(false, true, 0.5f, 2);
}
Test(grad, gemm_trans_a) {
  gemm_case(true, false, 1, 1);
}
Test(grad, gemm_trans_ab) {
  gemm_case(true, true, 1.5f, 0.5f);
}

Test(grad, matmul_batched_broadcast) {
  gb b;
  gb_init(&b, 17);
  int a = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false),
      w = gb_float(&b, true, 2, D(4, 2), -1, 1, false), y;
  gb_node(&b, TY_OP_MATMUL, (int[]){a, w}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

static void softmax_case(ty_op op, int opset, int axis) {
  gb b;
  gb_init(&b, opset);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -2, 2, false), y;
  size_t nd = gb_node(&b, op, &x, 1, 1, &y);
  ty_graph_node_set_int(b.g, nd, "axis", axis);
  check(&b, y, EPS, TOL);
}

Test(grad, softmax) {
  softmax_case(TY_OP_SOFTMAX, 17, 1);
}
Test(grad, softmax_legacy) {
  softmax_case(TY_OP_SOFTMAX, 11, 1);
}
Test(grad, log_softmax) {
  softmax_case(TY_OP_LOG_SOFTMAX, 17, -1);
}

static void conv_case(int64_t group, int64_t stride, int64_t pad, int64_t dil) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 4, D(2, 4, 6, 5), -1, 1, false);
  int w = gb_float(&b, true, 4, D(4, 4 / group, 3, 2), -1, 1, false),
      c = gb_float(&b, true, 1, D(4), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_CONV, (int[]){x, w, c}, 3, 1, &y);
  ty_graph_node_set_int(b.g, nd, "group", group);
  ty_graph_node_set_ints(b.g, nd, "strides", D(stride, stride), 2);
  ty_graph_node_set_ints(b.g, nd, "pads", D(pad, pad, pad, pad), 4);
  ty_graph_node_set_ints(b.g, nd, "dilations", D(dil, 1), 2);
  check(&b, y, EPS, TOL);
}

Test(grad, conv) {
  conv_case(1, 1, 1, 1);
}
Test(grad, conv_strided_grouped_dilated) {
  conv_case(2, 2, 1, 2);
}

/* A "same" convolution (3x3, pad 1, stride 1) on planes wider than eight
 * lanes: im2col's and col2im's one-run-per-tap paths (kernels/conv.c),
 * with a bias and without one (the GEMM then writes y itself). */
static void conv_same_case(bool bias) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 4, D(2, 3, 5, 11), -1, 1, false);
  int w = gb_float(&b, true, 4, D(4, 3, 3, 3), -1, 1, false), y;
  int c = bias ? gb_float(&b, true, 1, D(4), -1, 1, false) : TY_NO_VALUE;
  size_t nd = gb_node(&b, TY_OP_CONV, (int[]){x, w, c}, bias ? 3 : 2, 1, &y);
  ty_graph_node_set_ints(b.g, nd, "pads", D(1, 1, 1, 1), 4);
  check(&b, y, EPS, TOL);
}

Test(grad, conv_same) {
  conv_same_case(true);
}
Test(grad, conv_same_no_bias) {
  conv_same_case(false);
}

Test(grad, conv_1d) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 2, 7), -1, 1, false),
      w = gb_float(&b, true, 3, D(3, 2, 3), -1, 1, false), y;
  gb_node(&b, TY_OP_CONV, (int[]){x, w}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

/* 3-D (nn.Conv3d): data, weight and bias gradients; one group (oneDNN
 * where built) and groups with strides, asymmetric pads and a depth
 * dilation (im2col's per-depth-tap rows, kernels/conv.c). */
static void conv_3d_case(int64_t group, int64_t stride, int64_t dil) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 5, D(2, 4, 5, 4, 3), -1, 1, false);
  int w = gb_float(&b, true, 5, D(4, 4 / group, 2, 3, 2), -1, 1, false),
      c = gb_float(&b, true, 1, D(4), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_CONV, (int[]){x, w, c}, 3, 1, &y);
  ty_graph_node_set_int(b.g, nd, "group", group);
  ty_graph_node_set_ints(b.g, nd, "strides", D(stride, 1, stride), 3);
  ty_graph_node_set_ints(b.g, nd, "pads", D(1, 1, 0, 0, 1, 1), 6);
  ty_graph_node_set_ints(b.g, nd, "dilations", D(dil, 1, 1), 3);
  check(&b, y, EPS, TOL);
}

Test(grad, conv_3d) {
  conv_3d_case(1, 1, 1);
}
Test(grad, conv_3d_strided_grouped_dilated) {
  conv_3d_case(2, 2, 2);
}

/* Distinct values spaced 0.05 apart, so no window has a near-tie. */
static int spaced(gb *b, int rank, const int64_t *dims) {
  int id = gb_float(b, true, rank, dims, 0, 1, false);
  ty_tensor *t = ty_graph_value_at(b->g, id)->init;
  int64_t n = ty_tensor_numel(t);
  for (int64_t i = 0; i < n; i++)
    ty_tensor_f32(t)[i] = (float)(((i * 37) % n) * 0.05 - 1.0);
  return id;
}

static void pool_case(ty_op op, bool incl_pad) {
  gb b;
  gb_init(&b, 17);
  int x = spaced(&b, 4, D(1, 2, 5, 5)), y;
  size_t nd = gb_node(&b, op, &x, 1, 1, &y);
  ty_graph_node_set_ints(b.g, nd, "kernel_shape", D(3, 2), 2);
  ty_graph_node_set_ints(b.g, nd, "strides", D(2, 1), 2);
  ty_graph_node_set_ints(b.g, nd, "pads", D(1, 0, 1, 1), 4);
  if (incl_pad) ty_graph_node_set_int(b.g, nd, "count_include_pad", 1);
  check(&b, y, EPS, TOL);
}

Test(grad, max_pool) {
  pool_case(TY_OP_MAX_POOL, false);
}
/* 2x2 MaxPool with stride 2 (kernels/pool.c's vectorised rows; the
 * gradient writes every cell, zeros in an odd last row and column). */
static void max_pool_22_case(int64_t h, int64_t w) {
  gb b;
  gb_init(&b, 17);
  int x = spaced(&b, 4, D(2, 2, h, w)), y;
  size_t nd = gb_node(&b, TY_OP_MAX_POOL, &x, 1, 1, &y);
  ty_graph_node_set_ints(b.g, nd, "kernel_shape", D(2, 2), 2);
  ty_graph_node_set_ints(b.g, nd, "strides", D(2, 2), 2);
  check(&b, y, EPS, TOL);
}

Test(grad, max_pool_2x2) {
  max_pool_22_case(6, 20);
}
Test(grad, max_pool_2x2_odd_plane) {
  max_pool_22_case(5, 19);
}

Test(grad, average_pool) {
  pool_case(TY_OP_AVERAGE_POOL, false);
}
Test(grad, average_pool_count_pad) {
  pool_case(TY_OP_AVERAGE_POOL, true);
}

Test(grad, global_average_pool) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 4, D(2, 3, 2, 3), -1, 1, false), y;
  gb_node(&b, TY_OP_GLOBAL_AVERAGE_POOL, &x, 1, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, batch_norm_training) {
  gb b;
  gb_init(&b, 15);
  int x = gb_float(&b, true, 4, D(3, 2, 2, 2), -1, 1, false),
      sc = gb_float(&b, true, 1, D(2), 0.5, 1.5, false);
  int bi = gb_float(&b, true, 1, D(2), -1, 1, false),
      mn = gb_float(&b, false, 1, D(2), -0.1, 0.1, false);
  int vr = gb_float(&b, false, 1, D(2), 0.9, 1.1, false), y;
  gb_node(&b, TY_OP_BATCH_NORM, (int[]){x, sc, bi, mn, vr}, 5, 1, &y);
  check(&b, y, EPS, 2 * TOL);
}

/* Planes of 65 (eight full lanes and a tail, kernels/bn_sweep.c) and
 * values whose mean is large against their spread (the one-sweep
 * variance is taken about a shift). */
Test(grad, batch_norm_training_long_planes) {
  gb b;
  gb_init(&b, 15);
  int x = gb_float(&b, true, 4, D(3, 2, 5, 13), 4, 6, false),
      sc = gb_float(&b, true, 1, D(2), 0.5, 1.5, false);
  int bi = gb_float(&b, true, 1, D(2), -1, 1, false),
      mn = gb_float(&b, false, 1, D(2), -0.1, 0.1, false);
  int vr = gb_float(&b, false, 1, D(2), 0.9, 1.1, false), y;
  gb_node(&b, TY_OP_BATCH_NORM, (int[]){x, sc, bi, mn, vr}, 5, 1, &y);
  check(&b, y, EPS, 2 * TOL);
}

Test(grad, layer_norm) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false),
      sc = gb_float(&b, true, 1, D(4), 0.5, 1.5, false);
  int bi = gb_float(&b, true, 1, D(4), -1, 1, false), y;
  gb_node(&b, TY_OP_LAYER_NORM, (int[]){x, sc, bi}, 3, 1, &y);
  check(&b, y, EPS, 2 * TOL);
}

Test(grad, dropout_training) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(4, 5), -1, 1, false),
      ratio = gb_float(&b, false, 0, NULL, 0.3, 0.3, false), y;
  gb_node(&b, TY_OP_DROPOUT, (int[]){x, ratio}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, flatten) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 3, 2), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_FLATTEN, &x, 1, 1, &y);
  ty_graph_node_set_int(b.g, nd, "axis", 1);
  check(&b, y, EPS, TOL);
}

Test(grad, reshape) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(3, 4), -1, 1, false), s = gb_ints(&b, 1, D(3), D(2, -1, 3)), y;
  gb_node(&b, TY_OP_RESHAPE, (int[]){x, s}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, transpose) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_TRANSPOSE, &x, 1, 1, &y);
  ty_graph_node_set_ints(b.g, nd, "perm", D(1, 2, 0), 3);
  check(&b, y, EPS, TOL);
}

Test(grad, concat) {
  gb b;
  gb_init(&b, 17);
  int p = gb_float(&b, true, 2, D(2, 3), -1, 1, false),
      q = gb_float(&b, true, 2, D(2, 2), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_CONCAT, (int[]){p, q, p}, 3, 1, &y);
  ty_graph_node_set_int(b.g, nd, "axis", -1);
  check(&b, y, EPS, TOL);
}

Test(grad, gather) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(4, 3), -1, 1, false),
      ind = gb_ints(&b, 2, D(2, 2), D(0, 3, -1, 1)), y;
  gb_node(&b, TY_OP_GATHER, (int[]){x, ind}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, squeeze_unsqueeze) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 1, 3), -1, 1, false), ax = gb_ints(&b, 1, D(1), D(1)), s, y;
  gb_node(&b, TY_OP_SQUEEZE, (int[]){x, ax}, 2, 1, &s);
  int ax2 = gb_ints(&b, 1, D(1), D(0));
  gb_node(&b, TY_OP_UNSQUEEZE, (int[]){s, ax2}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, reduce_mean_keepdims) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_REDUCE_MEAN, &x, 1, 1, &y);
  ty_graph_node_set_ints(b.g, nd, "axes", D(0, 2), 2);
  check(&b, y, EPS, TOL);
}

Test(grad, reduce_sum_axes_input) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false), ax = gb_ints(&b, 1, D(1), D(1)), y;
  size_t nd = gb_node(&b, TY_OP_REDUCE_SUM, (int[]){x, ax}, 2, 1, &y);
  ty_graph_node_set_int(b.g, nd, "keepdims", 0);
  check(&b, y, EPS, TOL);
}

static void sce_case(const char *reduction, bool weights, bool ignore) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(4, 3, 2), -2, 2, false),
      lab = gb_ints(&b, 2, D(4, 2), D(0, 2, 1, 1, 2, 0, 1, 2));
  int in[3] = {x, lab, weights ? gb_float(&b, false, 1, D(3), 0.5, 1.5, false) : TY_NO_VALUE}, y;
  size_t nd = gb_node(&b, TY_OP_SOFTMAX_CE_LOSS, in, weights ? 3 : 2, 1, &y);
  ty_graph_node_set_string(b.g, nd, "reduction", reduction);
  if (ignore) ty_graph_node_set_int(b.g, nd, "ignore_index", 1);
  check(&b, y, EPS, TOL);
}

Test(grad, sce_loss_mean) {
  sce_case("mean", false, false);
}
Test(grad, sce_loss_sum_weighted) {
  sce_case("sum", true, false);
}
Test(grad, sce_loss_none_ignore) {
  sce_case("none", true, true);
}

/* A value read twice accumulates both contributions. */
Test(grad, shared_value_accumulates) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(3, 3), -1, 1, false), t, y;
  gb_node(&b, TY_OP_TANH, &x, 1, 1, &t);
  gb_node(&b, TY_OP_MUL, (int[]){t, x}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

/* ---- rejections ---------------------------------------------------------- */
Test(autodiff, rejects_non_scalar_loss) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(2, 2), -1, 1, false), y, gr;
  gb_node(&b, TY_OP_RELU, &x, 1, 1, &y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert_eq(ty_autodiff(b.g, y, b.params, 1, &gr, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "one element"), "%s", err);
  cr_assert_eq(ty_autodiff(b.g, 9999, b.params, 1, &gr, err, sizeof err), TY_EINVAL);
  ty_graph_destroy(b.g);
}

Test(autodiff, rejects_bad_param) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 1, D(1), -1, 1, false), y, gr, bad = 12345;
  gb_node(&b, TY_OP_RELU, &x, 1, 1, &y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert_eq(ty_autodiff(b.g, y, &bad, 1, &gr, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "param 0"), "%s", err);
  ty_graph_destroy(b.g);
}

/* 1-D operands are promoted as numpy's matmul does, forward and back. */
static void matmul_1d_case(int ra, int rb) {
  gb b;
  gb_init(&b, 17);
  int a = ra == 1 ? gb_float(&b, true, 1, D(3), -1, 1, false)
                  : gb_float(&b, true, 2, D(2, 3), -1, 1, false);
  int w = rb == 1 ? gb_float(&b, true, 1, D(3), -1, 1, false)
                  : gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false),
      y;
  gb_node(&b, TY_OP_MATMUL, (int[]){a, w}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad, matmul_vector_vector) {
  matmul_1d_case(1, 1);
}
Test(grad, matmul_vector_batched_matrix) {
  matmul_1d_case(1, 3);
}
Test(grad, matmul_matrix_vector) {
  matmul_1d_case(2, 1);
}

Test(autodiff, rejects_gradient_through_secondary_output) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(2, 3), -1, 1, false), lab = gb_ints(&b, 1, D(2), D(0, 1));
  int outs[2], idx, loss, gr;
  ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[0]);
  ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[1]);
  cr_assert_eq(
      ty_graph_add_node(b.g, TY_OP_SOFTMAX_CE_LOSS, NULL, (int[]){x, lab}, 2, outs, 2, &idx), 0);
  size_t rs = gb_node(&b, TY_OP_REDUCE_SUM, &outs[1], 1, 1, &loss);
  ty_graph_node_set_int(b.g, rs, "keepdims", 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_autodiff(b.g, loss, b.params, 1, &gr, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "output 1"), "%s", err);
  ty_graph_destroy(b.g);
}

Test(autodiff, unreached_param_has_no_gradient) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 1, D(1), -1, 1, false), z = gb_float(&b, true, 1, D(1), -1, 1, false),
      y, gr[2];
  gb_node(&b, TY_OP_EXP, &x, 1, 1, &y);
  (void)z;
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert_eq(ty_autodiff(b.g, y, b.params, 2, gr, err, sizeof err), 0, "%s", err);
  cr_assert_neq(gr[0], TY_NO_VALUE);
  cr_assert_eq(gr[1], TY_NO_VALUE);
  ty_graph_destroy(b.g);
}

/* A TyGrad node is validated like any node: a bad fwd_op is an error, not a crash. */
Test(autodiff, tygrad_node_is_validated) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, false, 1, D(2), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_GRAD, (int[]){x, x, x}, 3, 1, &y);
  ty_graph_node_set_int(b.g, nd, "fwd_op", 9999);
  ty_graph_node_set_int(b.g, nd, "n_fwd_in", 1);
  ty_graph_node_set_int(b.g, nd, "wrt", 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "fwd_op"), "%s", err);
  ty_graph_destroy(b.g);
}
