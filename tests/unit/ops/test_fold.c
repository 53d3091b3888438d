/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape arithmetic at import (ops/fold.c): PyTorch's x.view(x.size(0), -1)
 * exported as Shape -> Gather -> Unsqueeze -> Concat -> Reshape folds into a
 * Constant when the shape is static, and infers [N, 784] from the symbolic
 * batch when it is not, while the nodes run at run time. Models go through
 * export and import, as a submitted model does.
 */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static int const_i64(ty_graph *g, int rank, const int64_t *dims, const int64_t *v) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  int id, idx;
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_I64, &s, v, (size_t)ty_shape_numel(&s) * 8, &t), 0);
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &id), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONSTANT, NULL, NULL, 0, &id, 1, &idx), 0);
  cr_assert_eq(ty_graph_node_set_tensor(g, (size_t)idx, "value", t), 0);
  return id;
}

static int node(ty_graph *g, ty_op op, const int *in, int n_in, int *out_index) {
  int y, idx;
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, op, NULL, in, n_in, &y, 1, &idx), 0);
  if (out_index) *out_index = idx;
  return y;
}

/* Ends g with y = Reshape(x, shape) as its output, then exports and
 * imports it as a submitted model goes (g is consumed; the import is
 * returned). */
static ty_graph *reshaped_and_reimported(ty_graph *g, int x, int shape) {
  int y, k;
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RESHAPE, NULL, (int[]){x, shape}, 2, &y, 1, &k), 0);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  uint8_t *bytes;
  size_t len;
  cr_assert_eq(ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &bytes, &len), 0, "%s", err);
  ty_graph_destroy(g);
  cr_assert_eq(ty_graph_load_bytes(bytes, len, err, sizeof err, &g), 0, "%s", err);
  free(bytes);
  return g;
}

/* x [d0, 1, 4, 4] -> x.view(x.size(0), -1) named "y"; returns the model
 * after export and import. */
static ty_graph *view_model(int64_t d0) {
  ty_graph *g;
  int x, k;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = ty_shape_make(4, (int64_t[]){d0, 1, 4, 4});
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  int shape = node(g, TY_OP_SHAPE, &x, 1, NULL);
  int n = node(g, TY_OP_GATHER, (int[]){shape, const_i64(g, 0, NULL, (int64_t[]){0})}, 2, &k);
  int u = node(g, TY_OP_UNSQUEEZE, (int[]){n, const_i64(g, 1, (int64_t[]){1}, (int64_t[]){0})}, 2,
               NULL);
  int cat =
      node(g, TY_OP_CONCAT, (int[]){u, const_i64(g, 1, (int64_t[]){1}, (int64_t[]){-1})}, 2, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "axis", 0), 0);
  return reshaped_and_reimported(g, x, cat);
}

static size_t count_op(const ty_graph *g, ty_op op) {
  size_t c = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++)
    c += ty_graph_node_at(g, i)->op == op;
  return c;
}

Test(fold, view_on_the_batch_infers_statically_and_runs) {
  ty_graph *g = view_model(TY_DIM_BATCH);
  const ty_graph_value *y = ty_graph_value_at(g, ty_graph_find_value(g, "y"));
  ty_shape want = SHAPE(TY_DIM_BATCH, 16);
  cr_assert(ty_shape_equal(&y->shape, &want), "y is not [N,16]");
  cr_assert_eq(count_op(g, TY_OP_SHAPE), 1, "the batch is only known at run time");
  float v[3 * 16];
  for (int i = 0; i < 48; i++)
    v[i] = (float)i;
  ty_tensor *x = tensor_f32(SHAPE(3, 1, 4, 4), v);
  ty_exec *e;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_exec_create(g, NULL, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x", x, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  const ty_tensor *out = ty_exec_output(e, "y");
  ty_shape got = SHAPE(3, 16);
  cr_assert(ty_shape_equal(&out->shape, &got));
  cr_assert_eq(memcmp(out->data, v, sizeof v), 0);
  ty_exec_destroy(e);
  ty_tensor_destroy(x);
  ty_graph_destroy(g);
}

Test(fold, view_of_a_static_shape_folds_to_a_constant) {
  ty_graph *g = view_model(2);
  cr_assert_eq(count_op(g, TY_OP_SHAPE), 0);
  cr_assert_eq(count_op(g, TY_OP_GATHER), 0);
  cr_assert_eq(count_op(g, TY_OP_CONCAT), 0);
  cr_assert_eq(count_op(g, TY_OP_CONSTANT), 1,
               "one Constant feeds the Reshape; the others were dropped");
  cr_assert_eq(ty_graph_n_nodes(g), 2);
  ty_shape want = SHAPE(2, 16);
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, ty_graph_find_value(g, "y"))->shape, &want));
  ty_graph_destroy(g);
}

/* Arithmetic on the batch: Mul by 1 keeps it, Mul by 2 makes it unknown;
 * Where and Equal on known entries (the exporter's Expand pattern) pick. */
Test(fold, partly_known_vectors_follow_the_batch) {
  ty_graph *g;
  int x;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = SHAPE(TY_DIM_BATCH, 1);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  int shape = node(g, TY_OP_SHAPE, &x, 1, NULL);
  int keep = node(g, TY_OP_MUL, (int[]){shape, const_i64(g, 1, (int64_t[]){2}, (int64_t[]){1, 3})},
                  2, NULL);
  int lose = node(g, TY_OP_MUL, (int[]){shape, const_i64(g, 1, (int64_t[]){2}, (int64_t[]){2, 1})},
                  2, NULL);
  int eq = node(g, TY_OP_EQUAL,
                (int[]){const_i64(g, 1, (int64_t[]){2}, (int64_t[]){-1, 0}),
                        const_i64(g, 0, NULL, (int64_t[]){-1})},
                2, NULL);
  int pick = node(g, TY_OP_WHERE,
                  (int[]){eq, shape, const_i64(g, 1, (int64_t[]){2}, (int64_t[]){7, 5})}, 3, NULL);
  int a = node(g, TY_OP_CONSTANT_OF_SHAPE, &keep, 1, NULL),
      b = node(g, TY_OP_CONSTANT_OF_SHAPE, &lose, 1, NULL);
  int c = node(g, TY_OP_EXPAND, (int[]){x, pick}, 2, NULL);
  /* x.expand(-1, 3) exports its sizes through Reshape(..., [-1]). */
  int flat = node(g, TY_OP_RESHAPE, (int[]){keep, const_i64(g, 1, (int64_t[]){1}, (int64_t[]){-1})},
                  2, NULL);
  int d = node(g, TY_OP_EXPAND, (int[]){x, flat}, 2, NULL);
  /* The exporter's own test of those sizes: Where(Equal(sizes, -1), 1,
   * sizes) asks whether the batch is -1; it never is. */
  int minus = node(g, TY_OP_EQUAL, (int[]){flat, const_i64(g, 0, NULL, (int64_t[]){-1})}, 2, NULL);
  int sizes =
      node(g, TY_OP_WHERE, (int[]){minus, const_i64(g, 1, (int64_t[]){2}, (int64_t[]){1, 1}), flat},
           3, NULL);
  int e = node(g, TY_OP_EXPAND, (int[]){x, sizes}, 2, NULL);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_shape wd = SHAPE(TY_DIM_BATCH, 3);
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, d)->shape, &wd),
            "Reshape to [-1] kept the vector");
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, e)->shape, &wd), "the batch is not -1");
  ty_shape wa = SHAPE(TY_DIM_BATCH, 3), wb = SHAPE(TY_DIM_UNKNOWN, 1), wc = SHAPE(TY_DIM_BATCH, 5);
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, a)->shape, &wa), "batch * 1 stays the batch");
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, b)->shape, &wb), "batch * 2 is unknown");
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, c)->shape, &wc), "Where picked the batch and 5");
  ty_graph_destroy(g);
}

/* A node of several outputs folds into one Constant per output (the Split
 * of repeat_interleave's repeats, whose parts build an Expand's shape):
 * the Reshape they feed infers [N, 6] at import, the model still runs,
 * and the part nobody reads is dropped. */
Test(fold, a_split_of_constants_folds_into_constants) {
  ty_graph *g;
  int x, k;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = SHAPE(TY_DIM_BATCH, 6);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  int parts[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &parts[i]), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SPLIT, "split",
                                 (int[]){const_i64(g, 1, (int64_t[]){2}, (int64_t[]){4, 6})}, 1,
                                 parts, 2, &k),
               0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "axis", 0), 0);
  int cat = node(g, TY_OP_CONCAT,
                 (int[]){const_i64(g, 1, (int64_t[]){1}, (int64_t[]){-1}), parts[1]}, 2, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "axis", 0), 0);
  g = reshaped_and_reimported(g, x, cat);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(count_op(g, TY_OP_SPLIT), 0);
  cr_assert_eq(count_op(g, TY_OP_CONSTANT), 1, "the unread part was not dropped");
  ty_shape want = SHAPE(TY_DIM_BATCH, 6);
  cr_assert(ty_shape_equal(&ty_graph_value_at(g, ty_graph_find_value(g, "y"))->shape, &want),
            "y is not [N,6]");
  float v[12];
  for (int i = 0; i < 12; i++)
    v[i] = (float)i;
  ty_tensor *in = tensor_f32(SHAPE(2, 6), v);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(g, NULL, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x", in, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  cr_assert_eq(memcmp(ty_exec_output(e, "y")->data, v, sizeof v), 0);
  ty_exec_destroy(e);
  ty_tensor_destroy(in);
  ty_graph_destroy(g);
}

/* torch.diagonal's export decides an If on
 * Not(Equal(Max(Min(dim1, dim2 - 0), 0), 0)): Min, Max, the comparisons,
 * Not, And and Or follow the known entries of a shape whose batch is
 * symbolic; Min and Max of the batch with itself stay the batch, of the
 * batch and a number are unknown. */
static int pick_7_or_9(ty_graph *g, int cond) {
  int seven = const_i64(g, 1, (int64_t[]){1}, (int64_t[]){7}),
      nine = const_i64(g, 1, (int64_t[]){1}, (int64_t[]){9});
  int w = node(g, TY_OP_WHERE, (int[]){cond, seven, nine}, 3, NULL);
  return node(g, TY_OP_CONSTANT_OF_SHAPE, &w, 1, NULL);
}

static int64_t dim0(ty_graph *g, int v) {
  return ty_graph_value_at(g, v)->shape.dims[0];
}

Test(fold, min_max_comparisons_and_not_follow_the_shape) {
  ty_graph *g;
  int x;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = SHAPE(TY_DIM_BATCH, 4, 3);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  int shape = node(g, TY_OP_SHAPE, &x, 1, NULL);
  int d[3];
  for (int k = 0; k < 3; k++)
    d[k] = node(g, TY_OP_GATHER, (int[]){shape, const_i64(g, 1, (int64_t[]){1}, (int64_t[]){k})}, 2,
                NULL);
  int zero = const_i64(g, 1, (int64_t[]){1}, (int64_t[]){0});
  int sub = node(g, TY_OP_SUB, (int[]){d[2], zero}, 2, NULL);
  int mn = node(g, TY_OP_MIN, (int[]){d[1], sub}, 2, NULL);
  int mx = node(g, TY_OP_MAX, (int[]){mn, zero}, 2, NULL);
  int diag = node(g, TY_OP_CONSTANT_OF_SHAPE, &mx, 1, NULL);
  int nonempty =
      node(g, TY_OP_NOT, (int[]){node(g, TY_OP_EQUAL, (int[]){mx, zero}, 2, NULL)}, 1, NULL);
  int less = node(g, TY_OP_LESS, (int[]){d[2], d[1]}, 2, NULL);
  int ge = node(g, TY_OP_GREATER_EQUAL, (int[]){d[2], d[1]}, 2, NULL);
  int both = node(g, TY_OP_AND, (int[]){less, nonempty}, 2, NULL);
  int either = node(g, TY_OP_OR, (int[]){ge, less}, 2, NULL);
  int a = pick_7_or_9(g, nonempty), b = pick_7_or_9(g, ge), c = pick_7_or_9(g, both),
      e = pick_7_or_9(g, either);
  int bb = node(g, TY_OP_MAX, (int[]){d[0], d[0], d[0]}, 3, NULL);
  int bn = node(g, TY_OP_MIN, (int[]){d[0], d[1]}, 2, NULL);
  int keep = node(g, TY_OP_CONSTANT_OF_SHAPE, &bb, 1, NULL),
      lose = node(g, TY_OP_CONSTANT_OF_SHAPE, &bn, 1, NULL);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(dim0(g, diag), 3, "Max(Min(4, 3 - 0), 0) is 3");
  cr_assert_eq(dim0(g, a), 7, "Not(3 == 0) is true");
  cr_assert_eq(dim0(g, b), 9, "3 >= 4 is false");
  cr_assert_eq(dim0(g, c), 7, "3 < 4 and true");
  cr_assert_eq(dim0(g, e), 7, "false or true");
  cr_assert_eq(dim0(g, keep), TY_DIM_BATCH, "Max of the batch with itself is the batch");
  cr_assert_eq(dim0(g, lose), TY_DIM_UNKNOWN, "Min of the batch and 4 is unknown");
  ty_graph_destroy(g);
}
