/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers the planner's test files share (Criterion assertions, so they
 * are linked into the test binary only, not into bench/plan).
 */
#ifndef TY_TESTS_UNIT_OPS_PLAN_PLAN_HELPERS_H
#define TY_TESTS_UNIT_OPS_PLAN_PLAN_HELPERS_H

#include "ops/plan/plan.h"

#include <stdbool.h>
#include <stdint.h>

/* The documented defaults on nodes x per_node devices for a global batch;
 * fixed_mesh plans on the physical mesh only. */
ty_plan_request plan_test_request(int nodes, int per_node, int64_t batch, bool fixed_mesh);
/* ty_plan_search, asserting success (the error in the failure message).
 * The caller frees the plan. */
ty_plan *plan_test_ok(const ty_graph *g, const ty_plan_request *r);
/* ty_plan_search, asserting a refusal without a plan; its status, its
 * message in err (TY_ERR_LEN bytes). */
int plan_test_refused(const ty_graph *g, const ty_plan_request *r, char *err);
/* The plan's op of that node name, failing the test where there is none. */
const ty_plan_op *plan_test_op_named(const ty_plan *p, const char *name);

/* ---- building small graphs ---------------------------------------------------------------- */

/* Adds the inputs "x" (F32, shape xs) and "labels" (I64, [batch]). */
void plan_test_add_inputs(ty_graph *g, const ty_shape *xs, int *x, int *labels);
/* One initializer: zeros, or `values` (its elements, of its dtype, in order). */
typedef struct plan_test_init {
  const char *name;
  ty_dtype dt;
  int rank;
  int64_t dims[5];
  int *id; /* gets the value's id */
  const void *values;
} plan_test_init;
/* Adds each initializer as a value of the graph. */
void plan_test_add_inits(ty_graph *g, const plan_test_init *inits, size_t n);
/* Adds F32 values of shapes yet to be inferred, names[i] getting ids[i]. */
void plan_test_add_values(ty_graph *g, const char *const *names, size_t n, int *ids);

#endif
