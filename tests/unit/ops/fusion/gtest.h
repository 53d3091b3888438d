/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small graph builders shared by the fusion and memplan tests: values,
 * initializers and nodes through the public ops/graph API.
 */
#ifndef TY_TESTS_UNIT_OPS_FUSION_GTEST_H
#define TY_TESTS_UNIT_OPS_FUSION_GTEST_H

#include "ops/ops.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

static inline int gt_value(ty_graph *g, const char *name, int rank, const int64_t *dims) {
  ty_shape s = ty_shape_make(rank, dims);
  int id;
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_F32, &s, &id), 0);
  return id;
}

static inline int gt_input(ty_graph *g, const char *name, int rank, const int64_t *dims) {
  int id = gt_value(g, name, rank, dims);
  cr_assert_eq(ty_graph_mark_input(g, id), 0);
  return id;
}

/* An initializer filled with f(i). */
static inline int gt_init(ty_graph *g, const char *name, int rank, const int64_t *dims,
                          float (*f)(int64_t)) {
  int id = gt_value(g, name, rank, dims);
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), 0);
  for (int64_t i = 0; i < ty_tensor_numel(t); i++)
    ty_tensor_f32(t)[i] = f(i);
  cr_assert_eq(ty_graph_set_initializer(g, id, t), 0);
  return id;
}

/* Adds node op(a[, b]) -> new value; returns the value id. */
static inline int gt_op(ty_graph *g, ty_op op, int a, int b) {
  int in[2] = {a, b}, out;
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &out), 0);
  cr_assert_eq(ty_graph_add_node(g, op, NULL, in, b < 0 ? 1 : 2, &out, 1, NULL), 0);
  return out;
}

static inline ty_tensor *gt_tensor(int rank, const int64_t *dims, float (*f)(int64_t)) {
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), 0);
  for (int64_t i = 0; i < ty_tensor_numel(t); i++)
    ty_tensor_f32(t)[i] = f(i);
  return t;
}

static inline void gt_infer(ty_graph *g) {
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
}

/* Creates an executor, binds (name, tensor) pairs, runs it. */
static inline ty_exec *gt_run(const ty_graph *g, const ty_exec_opts *o, int n,
                              const char *const *names, ty_tensor *const *ts) {
  ty_exec *e;
  char err[256] = "";
  cr_assert_eq(ty_exec_create(g, o, &e), 0);
  for (int i = 0; i < n; i++)
    cr_assert_eq(ty_exec_bind(e, names[i], ts[i], err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  return e;
}

static inline void gt_assert_same(const ty_tensor *a, const ty_tensor *b) {
  cr_assert(a && b);
  cr_assert(ty_shape_equal(&a->shape, &b->shape));
  cr_assert_eq(a->nbytes, b->nbytes);
  for (size_t i = 0; i < a->nbytes / 4; i++) {
    float x = ty_tensor_f32(a)[i], y = ty_tensor_f32(b)[i];
    cr_assert(memcmp(&x, &y, 4) == 0, "element %zu: %.9g vs %.9g", i, (double)x, (double)y);
  }
}

#endif
