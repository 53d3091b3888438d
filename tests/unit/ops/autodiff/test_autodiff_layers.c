/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/autodiff: the finite-difference check (gradcheck.h) of the layers
 * added for exported models — ConvTranspose, Einsum, the NLL loss,
 * GlobalMaxPool, InstanceNormalization, LRN, MeanVarianceNormalization and
 * GridSample. The activations, elementwise, indexing, layout and reduction
 * ops and the refusals are in test_autodiff_ops.c.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <stdlib.h>

/* ---- layers ------------------------------------------------------------------------- */
Test(grad_ops, conv_transpose_2d) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 4, D(2, 4, 3, 3), -1, 1, false),
      w = gb_float(&b, true, 4, D(4, 3, 3, 2), -1, 1, false);
  int c = gb_float(&b, true, 1, D(6), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_CONV_TRANSPOSE, (int[]){x, w, c}, 3, 1, &y);
  ty_graph_node_set_int(b.g, nd, "group", 2);
  ty_graph_node_set_ints(b.g, nd, "strides", D(2, 1), 2);
  ty_graph_node_set_ints(b.g, nd, "pads", D(1, 0, 0, 1), 4);
  ty_graph_node_set_ints(b.g, nd, "output_padding", D(1, 0), 2);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, conv_transpose_1d_dilated) {
  gb b;
  gb_init(&b, 17);
  int x = gb_float(&b, true, 3, D(1, 2, 5), -1, 1, false),
      w = gb_float(&b, true, 3, D(2, 3, 3), -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_CONV_TRANSPOSE, (int[]){x, w}, 2, 1, &y);
  ty_graph_node_set_ints(b.g, nd, "dilations", D(2), 1);
  check(&b, y, EPS, TOL);
}

static void einsum_case(const char *eq, int ra, const int64_t *da, int rb, const int64_t *db) {
  gb b;
  gb_init(&b, 12);
  int a = gb_float(&b, true, ra, da, -1, 1, false), y;
  int in[2] = {a, rb ? gb_float(&b, true, rb, db, -1, 1, false) : TY_NO_VALUE};
  size_t nd = gb_node(&b, TY_OP_EINSUM, in, rb ? 2 : 1, 1, &y);
  cr_assert_eq(ty_graph_node_set_string(b.g, nd, "equation", eq), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, einsum_attention_scores) {
  einsum_case("bhqd,bhkd->bhqk", 4, D(1, 2, 3, 2), 4, D(1, 2, 4, 2));
}
Test(grad_ops, einsum_attention_values) {
  einsum_case("bhqk,bhkd->bhqd", 4, D(1, 2, 3, 4), 4, D(1, 2, 4, 2));
}
Test(grad_ops, einsum_batched_matmul) {
  einsum_case("bij,bjk->bik", 3, D(2, 2, 3), 3, D(2, 3, 2));
}
Test(grad_ops, einsum_sum_and_broadcast) {
  einsum_case("ij,jk->i", 2, D(2, 3), 2, D(3, 4));
}
Test(grad_ops, einsum_ellipsis_transpose) {
  einsum_case("...ij->...ji", 3, D(2, 2, 3), 0, NULL);
}
/* A repeated label is a diagonal: its gradient is dY there, 0 off it. */
Test(grad_ops, einsum_diagonal) {
  einsum_case("ii->i", 2, D(3, 3), 0, NULL);
}
Test(grad_ops, einsum_trace) {
  einsum_case("ii", 2, D(3, 3), 0, NULL);
}
Test(grad_ops, einsum_batched_diagonal_of_two_operands) {
  einsum_case("bjii,bi->bj", 4, D(2, 2, 3, 3), 2, D(2, 3));
}

Test(grad_ops, nll_loss_weighted_ignore) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 3, D(3, 4, 2), -2, 0, false),
      t = gb_ints(&b, 2, D(3, 2), D(0, 3, 1, -1, 2, 2));
  int w = gb_float(&b, false, 1, D(4), 0.5, 1.5, false), y;
  size_t nd = gb_node(&b, TY_OP_NLL_LOSS, (int[]){x, t, w}, 3, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, nd, "ignore_index", -1), 0);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, global_max_pool) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 4, D(2, 2, 3, 3), -1, 1, false), y;
  gb_node(&b, TY_OP_GLOBAL_MAX_POOL, &x, 1, 1, &y);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, instance_norm) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, 3, D(2, 3, 5), -1, 1, false),
      s = gb_float(&b, true, 1, D(3), 0.5, 1.5, false);
  int c = gb_float(&b, true, 1, D(3), -1, 1, false), y;
  gb_node(&b, TY_OP_INSTANCE_NORM, (int[]){x, s, c}, 3, 1, &y);
  check(&b, y, EPS, TOL);
}

/* LRN: odd and even windows (ONNX's asymmetric window for an even size),
 * on 4-D and 3-D inputs. */
static void lrn_case(int rank, const int64_t *dims, int64_t size, float alpha, float beta,
                     float bias) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, rank, dims, -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_LRN, &x, 1, 1, &y);
  ty_graph_node_set_int(b.g, nd, "size", size);
  ty_graph_node_set_float(b.g, nd, "alpha", alpha);
  ty_graph_node_set_float(b.g, nd, "beta", beta);
  ty_graph_node_set_float(b.g, nd, "bias", bias);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, lrn) {
  lrn_case(4, D(2, 5, 3, 2), 3, 0.5f, 0.75f, 1.0f);
}
Test(grad_ops, lrn_even_size_3d_input) {
  lrn_case(3, D(2, 6, 4), 4, 0.8f, 1.3f, 2.0f);
}

/* MeanVarianceNormalization over its default axes and over given ones
 * (negative, not in order). */
static void mvn_case(int rank, const int64_t *dims, const int64_t *axes, size_t n_axes) {
  gb b;
  gb_init(&b, 13);
  int x = gb_float(&b, true, rank, dims, -1, 1, false), y;
  size_t nd = gb_node(&b, TY_OP_MVN, &x, 1, 1, &y);
  if (axes) ty_graph_node_set_ints(b.g, nd, "axes", axes, n_axes);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, mvn_default_axes) {
  mvn_case(4, D(2, 3, 2, 3), NULL, 0);
}
Test(grad_ops, mvn_given_axes) {
  mvn_case(3, D(3, 4, 5), D(-1, 1), 2);
}

/* GridSample: input and grid gradients, bilinear and bicubic with zeros,
 * border and reflection padding, align_corners both ways, the grid
 * reaching past the image; nearest for the input only (its grid gradient
 * is zero). Reflection's kinks are at the mirrors (pixel centres with
 * align_corners, where the points below never fall; half-pixels without,
 * where some do), so its grid gradient is checked with align_corners. */
static void grid_sample_case(const char *mode, const char *pad, int64_t align) {
  gb b;
  gb_init(&b, 16);
  bool bilinear = strcmp(mode, "nearest") != 0;
  int x = gb_float(&b, true, 4, D(2, 3, 4, 5), -1, 1, false),
      g = gb_float(&b, bilinear, 4, D(2, 3, 4, 2), -1, 1, false), y;
  /* Points at pixel k + 0.2 .. k + 0.8 for k from -1 to the size: off the
   * integer pixels, where bilinear's derivative jumps, and reaching
   * outside the 4 x 5 image. */
  ty_tensor *gt = ty_graph_value_at(b.g, g)->init;
  for (int64_t i = 0; i < ty_tensor_numel(gt); i++) {
    int64_t size = i % 2 ? 4 : 5; /* x along the width (5), then y */
    double px = (double)((i / 2 * 3) % (size + 2) - 1) + 0.2 + 0.6 * (double)((i * 5) % 11) / 10.0;
    ty_tensor_f32(gt)[i] = (float)(align ? 2.0 * px / (double)(size - 1) - 1.0
                                         : (2.0 * px + 1.0) / (double)size - 1.0);
  }
  size_t nd = gb_node(&b, TY_OP_GRID_SAMPLE, (int[]){x, g}, 2, 1, &y);
  ty_graph_node_set_string(b.g, nd, "mode", mode);
  ty_graph_node_set_string(b.g, nd, "padding_mode", pad);
  ty_graph_node_set_int(b.g, nd, "align_corners", align);
  check(&b, y, EPS, TOL);
}

Test(grad_ops, grid_sample_bilinear_zeros) {
  grid_sample_case("bilinear", "zeros", 0);
}
Test(grad_ops, grid_sample_bilinear_border_align_corners) {
  grid_sample_case("bilinear", "border", 1);
}
Test(grad_ops, grid_sample_nearest) {
  grid_sample_case("nearest", "zeros", 1);
}
Test(grad_ops, grid_sample_bilinear_reflection_align_corners) {
  grid_sample_case("bilinear", "reflection", 1);
}
Test(grad_ops, grid_sample_nearest_reflection) {
  grid_sample_case("nearest", "reflection", 0);
}
Test(grad_ops, grid_sample_bicubic_zeros) {
  grid_sample_case("bicubic", "zeros", 0);
}
Test(grad_ops, grid_sample_bicubic_border_align_corners) {
  grid_sample_case("bicubic", "border", 1);
}
Test(grad_ops, grid_sample_bicubic_reflection) {
  grid_sample_case("bicubic", "reflection", 0);
}
