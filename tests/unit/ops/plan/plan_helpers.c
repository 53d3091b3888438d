/* SPDX-License-Identifier: Apache-2.0 */
/* The planner tests' shared helpers (plan_helpers.h). */
#include "tests/unit/ops/plan/plan_helpers.h"

#include <criterion/criterion.h>
#include <string.h>

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

int plan_test_refused(const ty_graph *g, const ty_plan_request *r, char *err) {
  ty_plan *p = NULL;
  int rc = ty_plan_search(g, r, err, TY_ERR_LEN, &p);
  cr_assert_neq(rc, 0, "expected a refusal");
  cr_assert_null(p);
  return rc;
}

const ty_plan_op *plan_test_op_named(const ty_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_ops; i++)
    if (strcmp(p->ops[i].name, name) == 0) return &p->ops[i];
  cr_assert_fail("no op %s", name);
  return NULL;
}

void plan_test_add_inputs(ty_graph *g, const ty_shape *xs, int *x, int *labels) {
  ty_shape ls = ty_shape_make(1, (int64_t[]){TY_DIM_BATCH});
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, xs, x), 0);
  cr_assert_eq(ty_graph_add_value(g, "labels", TY_DTYPE_I64, &ls, labels), 0);
  ty_graph_mark_input(g, *x);
  ty_graph_mark_input(g, *labels);
}

void plan_test_add_inits(ty_graph *g, const plan_test_init *inits, size_t n) {
  for (size_t i = 0; i < n; i++) {
    ty_shape sh = ty_shape_make(inits[i].rank, inits[i].dims);
    ty_tensor *t = NULL;
    cr_assert_eq(ty_tensor_create(inits[i].dt, &sh, &t), 0);
    if (inits[i].values)
      memcpy(t->data, inits[i].values, (size_t)ty_shape_numel(&sh) * ty_dtype_size(inits[i].dt));
    cr_assert_eq(ty_graph_add_value(g, inits[i].name, inits[i].dt, &sh, inits[i].id), 0);
    cr_assert_eq(ty_graph_set_initializer(g, *inits[i].id, t), 0);
  }
}

void plan_test_add_values(ty_graph *g, const char *const *names, size_t n, int *ids) {
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(ty_graph_add_value(g, names[i], TY_DTYPE_F32, NULL, &ids[i]), 0);
}
