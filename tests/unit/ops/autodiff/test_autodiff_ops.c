/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/autodiff: the finite-difference check (gradcheck.h) of the
 * differentiable ops added for exported models — the activations and math
 * functions, Clip, Where, the variadic and legacy-broadcast ops, the
 * indexing and layout ops (Resize among them), the reductions, TopK — the
 * gradient of a Div by a constant (a Mul by its reciprocal), and the
 * gradient autodiff refuses (a Scatter reducing by mul, max or min),
 * naming the node. The layers
 * (ConvTranspose, Einsum, NLL loss, pooling, the normalisations,
 * GridSample) are in test_autodiff_layers.c.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

/* ---- unary ------------------------------------------------------------------ */
static void unary(ty_op op, double lo, double hi, bool away) {
  gb b;
  gb_init(&b, 18);
  int x = gb_float(&b, true, 2, D(3, 4), lo, hi, away), y;
  gb_node(&b, op, &x, 1, 1, &y);
  check(&b, y, EPS, TOL);
}

static void unary_attr(ty_op op, const char *name, float v, double lo, double hi, bool away) {
  gb b;
  gb_init(&b, 18);
  int x = gb_float(&b, true, 2, D(3, 4), lo, hi, away), y;
  size_t nd = gb_node(&b, op, &x, 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_float(b.g, nd, name, v), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, abs) {
  unary(TY_OP_ABS, -1, 1, true);
}
Test(grad_ops, reciprocal) {
  unary(TY_OP_RECIPROCAL, 0.5, 2, false);
}
Test(grad_ops, elu) {
  unary_attr(TY_OP_ELU, "alpha", 0.7f, -2, 2, true);
}
Test(grad_ops, selu) {
  unary(TY_OP_SELU, -2, 2, true);
}
Test(grad_ops, celu) {
  unary_attr(TY_OP_CELU, "alpha", 1.5f, -2, 2, true);
}
Test(grad_ops, hard_sigmoid) {
  unary(TY_OP_HARD_SIGMOID, -2, 2, false);
}
Test(grad_ops, hard_swish) {
  unary(TY_OP_HARD_SWISH, -2.5, 2.5, false);
}
Test(grad_ops, gelu) {
  unary(TY_OP_GELU, -2, 2, false);
}
Test(grad_ops, softplus) {
  unary(TY_OP_SOFTPLUS, -3, 3, false);
}
Test(grad_ops, softsign) {
  unary(TY_OP_SOFTSIGN, -2, 2, true);
}
Test(grad_ops, thresholded_relu) {
  unary_attr(TY_OP_THRESHOLDED_RELU, "alpha", 0.0f, -1, 1, true);
}
Test(grad_ops, shrink) {
  unary_attr(TY_OP_SHRINK, "lambd", 0.05f, -1, 1, true);
}
Test(grad_ops, mish) {
  unary(TY_OP_MISH, -2, 2, false);
}
Test(grad_ops, sin) {
  unary(TY_OP_SIN, -2, 2, false);
}
Test(grad_ops, cos) {
  unary(TY_OP_COS, -2, 2, false);
}
Test(grad_ops, tan) {
  unary(TY_OP_TAN, -1, 1, false);
}
Test(grad_ops, asin) {
  unary(TY_OP_ASIN, -0.8, 0.8, false);
}
Test(grad_ops, acos) {
  unary(TY_OP_ACOS, -0.8, 0.8, false);
}
Test(grad_ops, atan) {
  unary(TY_OP_ATAN, -2, 2, false);
}
Test(grad_ops, sinh) {
  unary(TY_OP_SINH, -2, 2, false);
}
Test(grad_ops, cosh) {
  unary(TY_OP_COSH, -2, 2, false);
}
Test(grad_ops, asinh) {
  unary(TY_OP_ASINH, -2, 2, false);
}
Test(grad_ops, acosh) {
  unary(TY_OP_ACOSH, 1.2, 3, false);
}
Test(grad_ops, atanh) {
  unary(TY_OP_ATANH, -0.8, 0.8, false);
}
Test(grad_ops, floor_is_flat) {
  unary(TY_OP_FLOOR, 0.1, 0.9, false);
}
Test(grad_ops, sign_is_flat) {
  unary(TY_OP_SIGN, -1, 1, true);
}

Test(grad_ops, gelu_tanh) {
  gb b;
  gb_init(&b, 20);
  int x = gb_float(&b, true, 2, D(3, 4), -2, 2, false), y;
  size_t nd = gb_node(&b, TY_OP_GELU, &x, 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "approximate", "tanh"), 0);
  check(&b, y, EPS, TOL);
}

/* Gelu written as PyTorch exports it before opset 20: x * (erf(x / sqrt 2) + 1) / 2. */
Test(grad_ops, gelu_erf_pattern) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(3, 4), -2, 2, false), d, e, a, m, y;
  int k = gb_float(&b, false, 0, NULL, 1.41421356, 1.41421357, false),
      one = gb_float(&b, false, 0, NULL, 1, 1.0000001, false);
  int half = gb_float(&b, false, 0, NULL, 0.5, 0.5000001, false);
  gb_node(&b, TY_OP_DIV, (int[]){x, k}, 2, 1, &d);
  gb_node(&b, TY_OP_ERF, &d, 1, 1, &e);
  gb_node(&b, TY_OP_ADD, (int[]){e, one}, 2, 1, &a);
  gb_node(&b, TY_OP_MUL, (int[]){x, a}, 2, 1, &m);
  gb_node(&b, TY_OP_MUL, (int[]){m, half}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

/* Div by a one-element float constant: dX is dY times the constant's
 * reciprocal (a Mul), bitwise the gradient of Mul(x, 1 / c). */
static void div_or_mul_grads(float c, bool div, float **out_v, int64_t *out_n) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 2, D(3, 4), -2, 2, false), y;
  int k = gb_float(&b, false, 0, NULL, div ? c : 1.0f / c, div ? c : 1.0f / c, false);
  gb_node(&b, div ? TY_OP_DIV : TY_OP_MUL, (int[]){x, k}, 2, 1, &y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0, "%s", err);
  run_and_copy(&b, y, 1, 1, out_v, out_n);
}

Test(grad_ops, div_by_a_constant_is_the_gradient_of_mul_by_its_reciprocal) {
  const float cs[] = {1.41421353816986083984375f, 3.0f, -0.1f};
  for (size_t i = 0; i < sizeof cs / sizeof cs[0]; i++) {
    float *vd[2], *vm[2];
    int64_t nd[2], nm[2];
    div_or_mul_grads(cs[i], true, vd, nd);
    div_or_mul_grads(cs[i], false, vm, nm);
    cr_assert_eq(nd[1], nm[1]);
    cr_expect_eq(memcmp(vd[1], vm[1], sizeof(float) * (size_t)nd[1]), 0, "c = %g", cs[i]);
    for (int j = 0; j < 2; j++) {
      free(vd[j]);
      free(vm[j]);
    }
  }
}

/* Which node autodiff emits for dX of Div(x, k), the loss Div's output. */
static ty_op div_grad_op(bool k_param, float kv, int x_rank, int k_rank) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, x_rank, D(1), 0.5, 1.5, false);
  int k = gb_float(&b, k_param, k_rank, D(1), kv, kv, false), y, grads[2];
  gb_node(&b, TY_OP_DIV, (int[]){x, k}, 2, 1, &y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_autodiff(b.g, y, b.params, (size_t)b.np, grads, err, sizeof err), 0, "%s", err);
  const ty_graph_value *g = ty_graph_value_at(b.g, grads[0]);
  ty_op op = g->producer >= 0 ? ty_graph_node_at(b.g, (size_t)g->producer)->op : TY_OP_IDENTITY;
  ty_graph_destroy(b.g);
  return op;
}

Test(grad_ops, div_gradient_multiplies_only_by_a_fixed_nonzero_constant) {
  cr_expect_eq(div_grad_op(false, 1.5f, 1, 0), TY_OP_MUL);
  cr_expect_eq(div_grad_op(false, 1.5f, 1, 1), TY_OP_MUL);
  cr_expect_eq(div_grad_op(true, 1.5f, 1, 0), TY_OP_GRAD, "a trained divisor");
  cr_expect_eq(div_grad_op(false, 0.0f, 1, 0), TY_OP_GRAD, "a zero divisor");
  cr_expect_eq(div_grad_op(false, NAN, 1, 0), TY_OP_GRAD, "a NaN divisor");
  cr_expect_eq(div_grad_op(false, 1.5f, 0, 1), TY_OP_GRAD, "x broadcast");
}

/* ---- elementwise with several inputs ------------------------------------------ */
Test(grad_ops, clip) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(3, 4), -2, 2, false), y;
  int lo = gb_float(&b, false, 0, NULL, -0.9, -0.9 + 1e-7, false),
      hi = gb_float(&b, false, 0, NULL, 0.8, 0.8 + 1e-7, false);
  gb_node(&b, TY_OP_CLIP, (int[]){x, lo, hi}, 3, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, cast_float_to_float) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(2, 3), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_CAST, &x, 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "to", TY_DTYPE_F32), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, where_broadcast) {
  gb b;
  gb_init(&b, 16);
  ty_tensor *ct;
  ty_shape cs = ty_shape_make(2, D(3, 1));
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_BOOL, &cs, (uint8_t[]){1, 0, 1}, 3, &ct), 0);
  int c, y;
  cr_assert_eq(ty_graph_add_value(b.g, NULL, TY_DTYPE_BOOL, &cs, &c), 0);
  cr_assert_eq(ty_graph_set_initializer(b.g, c, ct), 0);
  int x = gb_float(&b, true, 2, D(3, 4), -1, 1, false),
      z = gb_float(&b, true, 1, D(4), -1, 1, false);
  gb_node(&b, TY_OP_WHERE, (int[]){c, x, z}, 3, 1, &y);
  check(&b, y, EPS, TOL);
}

static void variadic(ty_op op) {
  gb b;
  gb_init(&b, 13);
  int a = gb_float(&b, true, 2, D(3, 4), -1, 1, false),
      c = gb_float(&b, true, 1, D(4), -1, 1, false);
  int d = gb_float(&b, true, 2, D(3, 1), -1, 1, false), y;
  gb_node(&b, op, (int[]){a, c, d}, 3, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, max) {
  variadic(TY_OP_MAX);
}
Test(grad_ops, min) {
  variadic(TY_OP_MIN);
}
Test(grad_ops, sum) {
  variadic(TY_OP_SUM);
}
Test(grad_ops, mean) {
  variadic(TY_OP_MEAN);
}

Test(grad_ops, prelu_per_channel) {
  gb b;
  gb_init(&b, 16);
  int x = gb_float(&b, true, 4, D(2, 3, 2, 2), -1, 1, true),
      s = gb_float(&b, true, 3, D(3, 1, 1), 0.1, 0.5, false), y;
  gb_node(&b, TY_OP_PRELU, (int[]){x, s}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, prelu_legacy_slope) {
  gb b;
  gb_init(&b, 6);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, true),
      s = gb_float(&b, true, 1, D(3), 0.1, 0.5, false), y;
  gb_node(&b, TY_OP_PRELU, (int[]){x, s}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, fmod) {
  gb b;
  gb_init(&b, 13);
  int a = gb_float(&b, true, 2, D(2, 3), 0.2, 0.9, false),
      c = gb_float(&b, true, 1, D(3), 0.3, 0.35, false), y;
  size_t nd = gb_node(&b, TY_OP_MOD, (int[]){a, c}, 2, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "fmod", 1), 0);
  check(&b, y, 1e-4, TOL);
}

/* ---- indexing and layout -------------------------------------------------------- */
Test(grad_ops, slice_steps_and_negative_axes) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 3, D(2, 5, 4), -1, 1, false), y;
  int st = gb_ints(&b, 1, D(2), D(4, 1)), en = gb_ints(&b, 1, D(2), D(INT64_MIN, 4)),
      ax = gb_ints(&b, 1, D(2), D(1, -1));
  int sp = gb_ints(&b, 1, D(2), D(-2, 2));
  gb_node(&b, TY_OP_SLICE, (int[]){x, st, en, ax, sp}, 5, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, split_every_output) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(3, 6), -1, 1, false), sz = gb_ints(&b, 1, D(3), D(1, 2, 3)),
      outs[3], idx;
  cr_assert_eq(ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[0]), 0);
  cr_assert_eq(ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[1]), 0);
  cr_assert_eq(ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[2]), 0);
  cr_assert_eq(ty_graph_add_node(b.g, TY_OP_SPLIT, NULL, (int[]){x, sz}, 2, outs, 3, &idx), 0);
  cr_assert_eq(ty_graph_node_set_int(b.g, (size_t)idx, "axis", 1), 0);
  check_outputs(&b, (int[]){outs[0], outs[2]}, 2, EPS,
                TOL); /* output 1 unused: no gradient flows from it */
}

/* Every output used: the gradient is one Concat of the outputs' gradients
 * (autodiff's Split path), checked against finite differences. */
Test(grad_ops, split_all_outputs_negative_axis) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(3, 6), -1, 1, false), sz = gb_ints(&b, 1, D(3), D(1, 2, 3)),
      outs[3], idx;
  for (int i = 0; i < 3; i++)
    cr_assert_eq(ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[i]), 0);
  cr_assert_eq(ty_graph_add_node(b.g, TY_OP_SPLIT, NULL, (int[]){x, sz}, 2, outs, 3, &idx), 0);
  cr_assert_eq(ty_graph_node_set_int(b.g, (size_t)idx, "axis", -1), 0);
  check_outputs(&b, outs, 3, EPS, TOL);
}

/* The Concat path against the per-output TyGrad path it replaces: dX of
 * loss = sum_k ReduceSum(y_k * R_k) is R_k laid back where y_k came from,
 * exactly, and the graph holds one Concat and no Split TyGrad. */
Test(grad_ops, split_all_outputs_is_one_concat) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false), outs[2], idx, loss = TY_NO_VALUE;
  int r[2] = {gb_float(&b, false, 3, D(2, 1, 4), -1, 1, false),
              gb_float(&b, false, 3, D(2, 2, 4), -1, 1, false)};
  for (int i = 0; i < 2; i++)
    cr_assert_eq(ty_graph_add_value(b.g, NULL, TY_DTYPE_INVALID, NULL, &outs[i]), 0);
  cr_assert_eq(ty_graph_add_node(b.g, TY_OP_SPLIT, NULL, (int[]){x, gb_ints(&b, 1, D(2), D(1, 2))},
                                 2, outs, 2, &idx),
               0);
  cr_assert_eq(ty_graph_node_set_int(b.g, (size_t)idx, "axis", 1), 0);
  for (int k = 0; k < 2; k++) {
    int m, part;
    gb_node(&b, TY_OP_MUL, (int[]){outs[k], r[k]}, 2, 1, &m);
    size_t rs = gb_node(&b, TY_OP_REDUCE_SUM, &m, 1, 1, &part);
    cr_assert_eq(ty_graph_node_set_int(b.g, rs, "keepdims", 0), 0);
    if (loss != TY_NO_VALUE) gb_node(&b, TY_OP_ADD, (int[]){loss, part}, 2, 1, &part);
    loss = part;
  }
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_graph_mark_output(b.g, loss), 0);
  int grad;
  cr_assert_eq(ty_autodiff(b.g, loss, &x, 1, &grad, err, sizeof err), 0, "%s", err);
  int concats = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(b.g); i++) {
    const ty_graph_node *n = ty_graph_node_at(b.g, i);
    concats += n->op == TY_OP_CONCAT;
    cr_assert(n->op != TY_OP_GRAD || ty_autodiff_grad_forward_op(n) != TY_OP_SPLIT,
              "a Split TyGrad is left");
  }
  cr_assert_eq(concats, 1);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b.g, &(ty_exec_opts){.training = true}, &e), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  const float *dx = ty_tensor_f32(ty_exec_value(e, grad));
  const float *r0 = ty_graph_value_at(b.g, r[0])->init->data,
              *r1 = ty_graph_value_at(b.g, r[1])->init->data;
  for (int n = 0; n < 2; n++)
    for (int c = 0; c < 3; c++)
      for (int w = 0; w < 4; w++) {
        float want = c == 0 ? r0[n * 4 + w] : r1[(n * 2 + c - 1) * 4 + w];
        cr_assert_eq(dx[(n * 3 + c) * 4 + w], want, "dX[%d,%d,%d]", n, c, w);
      }
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
}

Test(grad_ops, expand) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(3, 1), -1, 1, false), s = gb_ints(&b, 1, D(3), D(2, 3, 4)), y;
  gb_node(&b, TY_OP_EXPAND, (int[]){x, s}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, tile) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(2, 3), -1, 1, false), r = gb_ints(&b, 1, D(2), D(2, 3)), y;
  gb_node(&b, TY_OP_TILE, (int[]){x, r}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

static void pad_case(const char *mode) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(3, 4), -1, 1, false), p = gb_ints(&b, 1, D(4), D(1, 2, 2, -1)), y;
  size_t nd = gb_node(&b, TY_OP_PAD, (int[]){x, p}, 2, 1, &y);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "mode", mode), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, pad_constant) {
  pad_case("constant");
}
Test(grad_ops, pad_reflect) {
  pad_case("reflect");
}
Test(grad_ops, pad_edge) {
  pad_case("edge");
}

Test(grad_ops, trilu) {
  gb b;
  gb_init(&b, 14);
  int x = gb_float(&b, true, 3, D(2, 3, 4), -1, 1, false), k = gb_ints(&b, 0, NULL, D(-1)), y;
  size_t nd = gb_node(&b, TY_OP_TRILU, (int[]){x, k}, 2, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "upper", 0), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, gather_elements_repeated_indices) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(3, 3), -1, 1, false),
      i = gb_ints(&b, 2, D(2, 3), D(0, 2, 2, -1, 0, 0)), y;
  size_t nd = gb_node(&b, TY_OP_GATHER_ELEMENTS, (int[]){x, i}, 2, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "axis", 1), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, gather_nd) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 3, D(2, 3, 2), -1, 1, false),
      i = gb_ints(&b, 2, D(3, 2), D(1, 2, 0, 0, 1, 2)), y;
  gb_node(&b, TY_OP_GATHER_ND, (int[]){x, i}, 2, 1, &y);
  check(&b, y, EPS, TOL);
}

/* torch.diagonal's export: GatherND with batch_dims 1; per batch entry
 * its own rows, one of them read twice (the gradients add up). */
Test(grad_ops, gather_nd_batch_dims) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 3, D(2, 3, 2), -1, 1, false),
      i = gb_ints(&b, 3, D(2, 2, 1), D(1, 1, 2, 0)), y;
  size_t nd = gb_node(&b, TY_OP_GATHER_ND, (int[]){x, i}, 2, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "batch_dims", 1), 0);
  check(&b, y, EPS, TOL);
}

static void scatter_nd_case(const char *red) {
  gb b;
  gb_init(&b, 16);
  int x = gb_float(&b, true, 2, D(4, 3), -1, 1, false), i = gb_ints(&b, 2, D(2, 1), D(2, 0));
  int u = gb_float(&b, true, 2, D(2, 3), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_SCATTER_ND, (int[]){x, i, u}, 3, 1, &y);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "reduction", red), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, scatter_nd) {
  scatter_nd_case("none");
}
Test(grad_ops, scatter_nd_add) {
  scatter_nd_case("add");
}

Test(grad_ops, scatter_elements) {
  gb b;
  gb_init(&b, 16);
  int x = gb_float(&b, true, 2, D(3, 3), -1, 1, false),
      i = gb_ints(&b, 2, D(2, 3), D(1, 0, 2, 0, 2, 1));
  int u = gb_float(&b, true, 2, D(2, 3), -1, 1, false), y;
  gb_node(&b, TY_OP_SCATTER_ELEMENTS, (int[]){x, i, u}, 3, 1, &y);
  check(&b, y, EPS, TOL);
}

static void depth_space_case(ty_op op, const char *mode) {
  gb b;
  gb_init(&b, 13);
  int x = op == TY_OP_DEPTH_TO_SPACE ? gb_float(&b, true, 4, D(1, 8, 2, 3), -1, 1, false)
                                     : gb_float(&b, true, 4, D(1, 2, 4, 6), -1, 1, false),
      y;
  size_t nd = gb_node(&b, op, &x, 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "blocksize", 2), 0);
  if (mode) cr_assert_eq(ty_graph_node_set_string(b.g, nd, "mode", mode), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, depth_to_space_dcr) {
  depth_space_case(TY_OP_DEPTH_TO_SPACE, "DCR");
}
Test(grad_ops, depth_to_space_crd) {
  depth_space_case(TY_OP_DEPTH_TO_SPACE, "CRD");
}
Test(grad_ops, space_to_depth) {
  depth_space_case(TY_OP_SPACE_TO_DEPTH, NULL);
}

/* A float32 vector initializer with exact values (Resize's roi). */
static int f32_vec(gb *b, int n, const float *v) {
  ty_shape s = ty_shape_make(1, (int64_t[]){n});
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_F32, &s, v, (size_t)n * sizeof *v, &t), 0);
  cr_assert_eq(ty_graph_add_value(b->g, NULL, TY_DTYPE_F32, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(b->g, id, t), 0);
  return id;
}

/* Resize of x [1, 2, h, w] to sizes [1, 2, oh, ow] (opset 13), roi given
 * for tf_crop_and_resize. */
static void resize_case(int64_t h, int64_t w, int64_t oh, int64_t ow, const char *mode,
                        const char *coord, const char *nearest, const float *roi) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 4, D(1, 2, h, w), -1, 1, false), y;
  int r = roi ? f32_vec(&b, 8, roi) : TY_NO_VALUE, sz = gb_ints(&b, 1, D(4), D(1, 2, oh, ow));
  size_t nd = gb_node(&b, TY_OP_RESIZE, (int[]){x, r, TY_NO_VALUE, sz}, 4, 1, &y);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "mode", mode), 0);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "coordinate_transformation_mode", coord), 0);
  if (nearest) cr_assert_eq(ty_graph_node_set_string(b.g, nd, "nearest_mode", nearest), 0);
  if (roi) cr_assert_eq(ty_graph_node_set_float(b.g, nd, "extrapolation_value", 0.25f), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, resize_linear_up_half_pixel) {
  resize_case(3, 4, 5, 7, "linear", "half_pixel", NULL, NULL);
}
Test(grad_ops, resize_linear_down_align_corners) {
  resize_case(5, 6, 3, 4, "linear", "align_corners", NULL, NULL);
}
Test(grad_ops, resize_cubic_pytorch_half_pixel) {
  resize_case(4, 5, 6, 3, "cubic", "pytorch_half_pixel", NULL, NULL);
}
Test(grad_ops, resize_nearest_round_prefer_ceil) {
  resize_case(3, 3, 5, 4, "nearest", "asymmetric", "round_prefer_ceil", NULL);
}
/* Some outputs fall outside the crop box and take the extrapolation
 * value: they pass no gradient. */
Test(grad_ops, resize_crop_and_resize) {
  resize_case(4, 4, 3, 5, "linear", "tf_crop_and_resize", NULL,
              (const float[]){0, 0, 0.2f, -0.3f, 1, 1, 0.9f, 1.2f});
}

static void cumsum_case(int exclusive, int reverse) {
  gb b;
  gb_init(&b, 14);
  int x = gb_float(&b, true, 2, D(3, 4), -1, 1, false), a = gb_ints(&b, 0, NULL, D(1)), y;
  size_t nd = gb_node(&b, TY_OP_CUMSUM, (int[]){x, a}, 2, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "exclusive", exclusive), 0);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "reverse", reverse), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, cumsum) {
  cumsum_case(0, 0);
}
Test(grad_ops, cumsum_exclusive_reverse) {
  cumsum_case(1, 1);
}

/* ---- reductions --------------------------------------------------------------------- */
static void reduce_at(ty_op op, int opset, double lo, double hi, bool away) {
  gb b;
  gb_init(&b, opset);
  int x = gb_float(&b, true, 3, D(2, 3, 4), lo, hi, away), ax = gb_ints(&b, 1, D(2), D(0, -1)), y;
  bool as_input = op == TY_OP_REDUCE_SUM ? opset >= 13 : opset >= 18;
  size_t nd = gb_node(&b, op, (int[]){x, ax}, as_input ? 2 : 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "keepdims", 0), 0);
  if (!as_input) cr_assert_eq(ty_graph_node_set_ints(b.g, nd, "axes", (int64_t[]){0, -1}, 2), 0);
  check(&b, y, EPS, TOL);
}

static void reduce_case(ty_op op, double lo, double hi, bool away) {
  reduce_at(op, 18, lo, hi, away);
}

/* Where axes live by opset: ReduceSum's an input from 13, the others' an
 * attribute before 18 (what PyTorch's opset 17 exports). */
Test(grad_ops, reduce_axes_by_opset) {
  reduce_at(TY_OP_REDUCE_SUM, 13, -1, 1, false);
  reduce_at(TY_OP_REDUCE_SUM, 11, -1, 1, false);
  reduce_at(TY_OP_REDUCE_MEAN, 17, -1, 1, false);
  reduce_at(TY_OP_REDUCE_MAX, 17, -1, 1, false);
}

Test(grad_ops, reduce_max) {
  reduce_case(TY_OP_REDUCE_MAX, -1, 1, false);
}
Test(grad_ops, reduce_min) {
  reduce_case(TY_OP_REDUCE_MIN, -1, 1, false);
}
Test(grad_ops, reduce_prod) {
  reduce_case(TY_OP_REDUCE_PROD, 0.5, 1.5, false);
}
Test(grad_ops, reduce_l1) {
  reduce_case(TY_OP_REDUCE_L1, -1, 1, true);
}
Test(grad_ops, reduce_l2) {
  reduce_case(TY_OP_REDUCE_L2, -1, 1, false);
}
Test(grad_ops, reduce_sum_square) {
  reduce_case(TY_OP_REDUCE_SUM_SQUARE, -1, 1, false);
}
Test(grad_ops, reduce_log_sum) {
  reduce_case(TY_OP_REDUCE_LOG_SUM, 0.5, 1.5, false);
}
Test(grad_ops, reduce_log_sum_exp) {
  reduce_case(TY_OP_REDUCE_LOG_SUM_EXP, -2, 2, false);
}

/* A zero in the product: the gradient is the product of the others. */
Test(grad_ops, reduce_prod_with_a_zero) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 2, D(2, 3), 0.5, 1.5, false), y;
  ty_tensor_f32(ty_graph_value_at(b.g, x)->init)[1] = 0.0f;
  size_t nd = gb_node(&b, TY_OP_REDUCE_PROD, &x, 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_ints(b.g, nd, "axes", D(1), 1), 0);
  check(&b, y, EPS, TOL);
}

/* ---- refusals --------------------------------------------------------------------------- */
static void expect_refusal(gb *b, int y, const char *words) {
  char err[TY_ERR_LEN] = "";
  int gr[16], loss, m;
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  size_t rs = gb_node(b, TY_OP_REDUCE_SUM, &y, 1, 1, &m);
  cr_assert_eq(ty_graph_node_set_int(b->g, rs, "keepdims", 0), 0);
  loss = m;
  cr_assert_eq(ty_graph_infer_shapes(b->g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_autodiff(b->g, loss, b->params, (size_t)b->np, gr, err, sizeof err),
               TY_EUNSUPPORTED);
  cr_assert(strstr(err, words), "%s", err);
  ty_graph_destroy(b->g);
}

Test(grad_ops, refuses_scatter_with_mul_reduction) {
  gb b;
  gb_init(&b, 16);
  int x = gb_float(&b, true, 2, D(4, 3), -1, 1, false), i = gb_ints(&b, 2, D(1, 1), D(2));
  int u = gb_float(&b, true, 2, D(1, 3), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_SCATTER_ND, (int[]){x, i, u}, 3, 1, &y);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "reduction", "mul"), 0);
  expect_refusal(&b, y, "(ScatterND): input 0: no gradient for reduction mul, max or min");
}

/* TopK: dValues goes back to where the values came from, read from the
 * indices output or, when the graph leaves it unnamed, found again. */
static void top_k_case(int n_out, bool largest) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(2, 5, 3), -1, 1, false), k = gb_ints(&b, 1, D(1), D(3)), y;
  size_t nd = gb_node(&b, TY_OP_TOP_K, (int[]){x, k}, 2, n_out, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "axis", 1), 0);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "largest", largest), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, top_k_with_indices) {
  top_k_case(2, true);
}
Test(grad_ops, top_k_smallest_without_indices) {
  top_k_case(1, false);
}

/* A bias's gradient (Add's input broadcast along the rows) is the column
 * sums of dY in double, rows in order, rounded once: eight rows per pass
 * over the sums and the rows past a multiple of eight one at a time give
 * exactly that sum. 19 rows (two passes and three single rows) by 300
 * columns (two column chunks), on one thread and on two; dX is dY itself,
 * so the expected sums come from it. */
static void bias_sum_case(int threads) {
  enum { BR = 19, BC = 300 };
  gb b;
  gb_init(&b, 18);
  int x = gb_float(&b, true, 2, D(BR, BC), -1, 1, false),
      c = gb_float(&b, true, 1, D(BC), -1, 1, false), y;
  gb_node(&b, TY_OP_ADD, (int[]){x, c}, 2, 1, &y);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0, "%s", err);
  float *v[3];
  int64_t n[3];
  run_and_copy(&b, y, 2, threads, v, n);
  cr_assert_eq(n[1], BR * BC);
  cr_assert_eq(n[2], BC);
  for (int64_t j = 0; j < BC; j++) {
    double s = 0;
    for (int64_t i = 0; i < BR; i++)
      s += v[1][i * BC + j];
    float want = (float)s;
    cr_assert(memcmp(&want, &v[2][j], sizeof want) == 0, "column %lld: %a, want %a", (long long)j,
              (double)v[2][j], (double)want);
  }
  for (int i = 0; i < 3; i++)
    free(v[i]);
}

Test(grad_ops, bias_gradient_sums_rows_in_order) {
  bias_sum_case(1);
  bias_sum_case(2);
}
