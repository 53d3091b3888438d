/* SPDX-License-Identifier: Apache-2.0 */
/* The planner tests' shared helpers (plan_helpers.h). */
#include "tests/unit/ops/plan/plan_helpers.h"

#include <criterion/criterion.h>

ty_plan_request plan_test_request(int nodes, int per_node, int64_t batch, bool fixed_mesh) {
  ty_plan_request r;
  ty_plan_request_init(&r);
  r.batch = batch;
  r.cluster.nodes = nodes;
  r.cluster.devices_per_node = per_node;
  r.fixed_mesh = fixed_mesh;
  return r;
}

ty_plan *plan_test_ok(const ty_graph *g, const ty_plan_request *r) {
  char err[TY_ERR_LEN] = "";
  ty_plan *p = NULL;
  int rc = ty_plan_search(g, r, err, sizeof err, &p);
  cr_assert_eq(rc, 0, "ty_plan_search: %s: %s", ty_strerror(rc), err);
  cr_assert_not_null(p);
  return p;
}
