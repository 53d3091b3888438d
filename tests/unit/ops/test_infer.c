/* SPDX-License-Identifier: Apache-2.0 */
/* Shape inference per op family; the batch dim N stays symbolic. */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <string.h>

#define N TY_DIM_BATCH
#define F TY_DTYPE_F32
#define I TY_DTYPE_I64

static ty_shape infer1(ty_op op, int n_in, const ty_dtype *dts, const ty_shape *shapes, int n_out,
                       void (*attrs)(one_node *), int out_index) {
  one_node b;
  one_node_build(&b, op, n_in, dts, shapes, n_out);
  if (attrs) attrs(&b);
  char err[256] = "";
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0, "%s", err);
  ty_shape s = ty_graph_value_at(b.g, b.out[out_index])->shape;
  ty_graph_destroy(b.g);
  return s;
}

static void assert_shape(ty_shape got, ty_shape want) {
  char g[64], w[64];
  ty_shape_format(&got, g, sizeof g);
  ty_shape_format(&want, w, sizeof w);
  cr_assert(ty_shape_equal(&got, &want), "got %s, want %s", g, w);
}

Test(infer, elementwise_broadcasts_with_batch) {
  assert_shape(
      infer1(TY_OP_ADD, 2, (ty_dtype[]){F, F}, (ty_shape[]){SHAPE(N, 3, 1), SHAPE(4)}, 1, NULL, 0),
      SHAPE(N, 3, 4));
  assert_shape(infer1(TY_OP_RELU, 1, (ty_dtype[]){F}, (ty_shape[]){SHAPE(N, 7)}, 1, NULL, 0),
               SHAPE(N, 7));
}

Test(infer, elementwise_rejects_incompatible_shapes) {
  one_node b;
  one_node_build(&b, TY_OP_MUL, 2, (ty_dtype[]){F, F}, (ty_shape[]){SHAPE(2, 3), SHAPE(4)}, 1);
  char err[256];
  cr_assert_eq(one_node_infer(&b, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "node \"n\" (Mul): shapes [2,3] and [4] do not broadcast");
  ty_graph_destroy(b.g);
}

static void trans_b(one_node *b) {
  ty_graph_node_set_int(b->g, (size_t)b->node, "transB", 1);
}

Test(infer, gemm_and_matmul) {
  assert_shape(infer1(TY_OP_GEMM, 3, (ty_dtype[]){F, F, F},
                      (ty_shape[]){SHAPE(N, 784), SHAPE(10, 784), SHAPE(10)}, 1, trans_b, 0),
               SHAPE(N, 10));
  assert_shape(infer1(TY_OP_MATMUL, 2, (ty_dtype[]){F, F},
                      (ty_shape[]){SHAPE(N, 5, 3, 4), SHAPE(4, 6)}, 1, NULL, 0),
               SHAPE(N, 5, 3, 6));
  assert_shape(
      infer1(TY_OP_MATMUL, 2, (ty_dtype[]){F, F}, (ty_shape[]){SHAPE(3, 4), SHAPE(4)}, 1, NULL, 0),
      SHAPE(3));
}

static void conv_attrs(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "strides", (int64_t[]){2, 2}, 2);
  ty_graph_node_set_ints(b->g, (size_t)b->node, "pads", (int64_t[]){1, 1, 1, 1}, 4);
}

static void pool_attrs(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "kernel_shape", (int64_t[]){3, 3}, 2);
  ty_graph_node_set_ints(b->g, (size_t)b->node, "strides", (int64_t[]){2, 2}, 2);
  ty_graph_node_set_int(b->g, (size_t)b->node, "ceil_mode", 1);
}

Test(infer, conv_and_pools) {
  assert_shape(infer1(TY_OP_CONV, 2, (ty_dtype[]){F, F},
                      (ty_shape[]){SHAPE(N, 3, 28, 28), SHAPE(8, 3, 3, 3)}, 1, conv_attrs, 0),
               SHAPE(N, 8, 14, 14));
  assert_shape(
      infer1(TY_OP_MAX_POOL, 1, (ty_dtype[]){F}, (ty_shape[]){SHAPE(N, 8, 6, 6)}, 1, pool_attrs, 0),
      SHAPE(N, 8, 3, 3));
  assert_shape(infer1(TY_OP_GLOBAL_AVERAGE_POOL, 1, (ty_dtype[]){F},
                      (ty_shape[]){SHAPE(N, 8, 6, 6)}, 1, NULL, 0),
               SHAPE(N, 8, 1, 1));
}

Test(infer, conv_rejects_channel_mismatch) {
  one_node b;
  one_node_build(&b, TY_OP_CONV, 2, (ty_dtype[]){F, F},
                 (ty_shape[]){SHAPE(1, 3, 8, 8), SHAPE(4, 2, 3, 3)}, 1);
  char err[256];
  cr_assert_eq(one_node_infer(&b, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "node \"n\" (Conv): channels do not match"), "%s", err);
  ty_graph_destroy(b.g);
}

static void axis1(one_node *b) {
  ty_graph_node_set_int(b->g, (size_t)b->node, "axis", 1);
}

Test(infer, normalisation_softmax_loss) {
  ty_shape c = SHAPE(4);
  assert_shape(infer1(TY_OP_BATCH_NORM, 5, (ty_dtype[]){F, F, F, F, F},
                      (ty_shape[]){SHAPE(N, 4, 2, 2), c, c, c, c}, 1, NULL, 0),
               SHAPE(N, 4, 2, 2));
  assert_shape(infer1(TY_OP_LAYER_NORM, 2, (ty_dtype[]){F, F},
                      (ty_shape[]){SHAPE(N, 5, 6), SHAPE(5, 6)}, 3, axis1, 1),
               SHAPE(N, 1, 1));
  assert_shape(infer1(TY_OP_SOFTMAX, 1, (ty_dtype[]){F}, (ty_shape[]){SHAPE(N, 10)}, 1, NULL, 0),
               SHAPE(N, 10));
  assert_shape(infer1(TY_OP_SOFTMAX_CE_LOSS, 2, (ty_dtype[]){F, I},
                      (ty_shape[]){SHAPE(N, 10), SHAPE(N)}, 2, NULL, 0),
               SCALAR_SHAPE);
  assert_shape(infer1(TY_OP_DROPOUT, 1, (ty_dtype[]){F}, (ty_shape[]){SHAPE(N, 10)}, 2, NULL, 1),
               SHAPE(N, 10));
}

static void perm(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "perm", (int64_t[]){0, 2, 1}, 3);
}

Test(infer, flatten_transpose_concat_gather) {
  assert_shape(
      infer1(TY_OP_FLATTEN, 1, (ty_dtype[]){F}, (ty_shape[]){SHAPE(N, 1, 28, 28)}, 1, NULL, 0),
      SHAPE(N, 784));
  assert_shape(
      infer1(TY_OP_TRANSPOSE, 1, (ty_dtype[]){F}, (ty_shape[]){SHAPE(N, 2, 3)}, 1, perm, 0),
      SHAPE(N, 3, 2));
  assert_shape(infer1(TY_OP_CONCAT, 2, (ty_dtype[]){F, F}, (ty_shape[]){SHAPE(N, 2), SHAPE(N, 3)},
                      1, axis1, 0),
               SHAPE(N, 5));
  assert_shape(infer1(TY_OP_GATHER, 2, (ty_dtype[]){F, I},
                      (ty_shape[]){SHAPE(100, 16), SHAPE(N, 7)}, 1, NULL, 0),
               SHAPE(N, 7, 16));
}

/* Graph with an int64 initializer as input 1 (Reshape's shape, axes). */
static ty_shape infer_with_const(ty_op op, ty_shape x, ty_shape cs, const int64_t *cv) {
  ty_graph *g;
  int in, c, out, node;
  cr_assert_eq(ty_graph_create(&g), 0);
  cr_assert_eq(ty_graph_add_value(g, "x", F, &x, &in), 0);
  cr_assert_eq(ty_graph_mark_input(g, in), 0);
  cr_assert_eq(ty_graph_add_value(g, "c", I, NULL, &c), 0);
  cr_assert_eq(ty_graph_set_initializer(g, c, tensor_i64(cs, cv)), 0);
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_INVALID, NULL, &out), 0);
  cr_assert_eq(ty_graph_add_node(g, op, "n", (int[]){in, c}, 2, &out, 1, &node), 0);
  if (op == TY_OP_REDUCE_SUM) ty_graph_node_set_int(g, (size_t)node, "keepdims", 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_shape s = ty_graph_value_at(g, out)->shape;
  ty_graph_destroy(g);
  return s;
}

Test(infer, reshape_keeps_batch_symbolic) {
  assert_shape(infer_with_const(TY_OP_RESHAPE, SHAPE(N, 1, 28, 28), SHAPE(2), (int64_t[]){-1, 784}),
               SHAPE(N, 784));
  assert_shape(infer_with_const(TY_OP_RESHAPE, SHAPE(N, 6), SHAPE(3), (int64_t[]){0, 2, -1}),
               SHAPE(N, 2, 3));
  assert_shape(infer_with_const(TY_OP_RESHAPE, SHAPE(2, 6), SHAPE(2), (int64_t[]){-1, 4}),
               SHAPE(3, 4));
}

/* An input of unknown rank (a pipeline stage's received activation,
 * Reshape'd from shape arithmetic): the output's rank is the target's
 * length, its given dims known, 0 and -1 unknown; so a ReduceSum of it is
 * a scalar (a stage's seeded loss). */
Test(infer, reshape_of_an_unknown_rank_has_the_targets_rank) {
  assert_shape(infer_with_const(TY_OP_RESHAPE, ty_shape_unknown(), SHAPE(3), (int64_t[]){0, 4, -1}),
               SHAPE(TY_DIM_UNKNOWN, 4, TY_DIM_UNKNOWN));
  assert_shape(infer_with_const(TY_OP_RESHAPE, ty_shape_unknown(), SHAPE(1), (int64_t[]){-1}),
               SHAPE(TY_DIM_UNKNOWN));
}

Test(infer, squeeze_unsqueeze_reduce_axes_inputs) {
  assert_shape(infer_with_const(TY_OP_SQUEEZE, SHAPE(N, 1, 5), SHAPE(1), (int64_t[]){1}),
               SHAPE(N, 5));
  assert_shape(infer_with_const(TY_OP_UNSQUEEZE, SHAPE(N, 5), SHAPE(2), (int64_t[]){1, -1}),
               SHAPE(N, 1, 5, 1));
  assert_shape(infer_with_const(TY_OP_REDUCE_SUM, SHAPE(N, 5, 6), SHAPE(1), (int64_t[]){-1}),
               SHAPE(N, 5));
}

Test(infer, reshape_rejects_wrong_element_count) {
  ty_graph *g;
  int in, c, out;
  ty_shape x = SHAPE(2, 6);
  cr_assert_eq(ty_graph_create(&g), 0);
  cr_assert_eq(ty_graph_add_value(g, "x", F, &x, &in), 0);
  cr_assert_eq(ty_graph_mark_input(g, in), 0);
  cr_assert_eq(ty_graph_add_value(g, "c", I, NULL, &c), 0);
  cr_assert_eq(ty_graph_set_initializer(g, c, tensor_i64(SHAPE(2), (int64_t[]){5, 5})), 0);
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_INVALID, NULL, &out), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RESHAPE, "rs", (int[]){in, c}, 2, &out, 1, NULL), 0);
  char err[256];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "node \"rs\" (Reshape): shape does not hold the same number of elements");
  ty_graph_destroy(g);
}
