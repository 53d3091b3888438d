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

#endif
