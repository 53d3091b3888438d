/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TyExtern (ops/exec.h): an op the executor's caller computes. The hook
 * runs forward with the node's id and shape; autodiff turns the node into
 * a backward TyExtern the hook runs too; a graph with one fails to run
 * without a hook, and inference refuses a malformed node, naming it.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "ops/graph.h"

typedef struct calls {
  int forward, backward;
  int64_t id;
} calls;

/* Forward: y = 2x (as a [2,3] -> [3,2] reshape); backward: dx = 2 dy. */
static int hook(int64_t id, bool backward, const ty_tensor *in, ty_tensor *out, void *user) {
  calls *c = user;
  c->id = id;
  if (backward)
    c->backward++;
  else
    c->forward++;
  for (int64_t i = 0; i < ty_tensor_numel(out); i++)
    ty_tensor_f32(out)[i] = 2 * ty_tensor_f32(in)[i];
  return 0;
}

/* x [2,3] -> TyExtern(id 7, shape [3,2]) -> ReduceSum -> loss. */
static ty_graph *graph(int *x, int *loss, int64_t shape_n) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = ty_shape_make(2, (int64_t[]){2, 3});
  int y, idx;
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &xs, x), 0);
  cr_assert_eq(ty_graph_mark_input(g, *x), 0);
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_EXTERN, "ext", x, 1, &y, 1, &idx), 0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "id", 7), 0);
  if (shape_n)
    cr_assert_eq(
        ty_graph_node_set_ints(g, (size_t)idx, "shape", (int64_t[]){3, 2}, (size_t)shape_n), 0);
  cr_assert_eq(ty_graph_add_value(g, "loss", TY_DTYPE_INVALID, NULL, loss), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_REDUCE_SUM, "sum", &y, 1, loss, 1, &idx), 0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0), 0);
  cr_assert_eq(ty_graph_mark_output(g, *loss), 0);
  return g;
}

Test(extern_op, forward_and_backward_run_through_the_hook) {
  int x, loss, gx;
  char err[TY_ERR_LEN] = "";
  ty_graph *g = graph(&x, &loss, 2);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  const ty_shape *ys = &ty_graph_value_at(g, ty_graph_find_value(g, "y"))->shape;
  cr_assert(ys->rank == 2 && ys->dims[0] == 3 && ys->dims[1] == 2);
  cr_assert_eq(ty_autodiff(g, loss, &x, 1, &gx, err, sizeof err), 0, "%s", err);
  cr_assert_neq(gx, TY_NO_VALUE);
  calls c = {0};
  ty_exec *e;
  cr_assert_eq(ty_exec_create(
                   g, &(ty_exec_opts){.training = true, .extern_op = hook, .extern_user = &c}, &e),
               0);
  ty_tensor *in;
  ty_shape xs = ty_shape_make(2, (int64_t[]){2, 3});
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &xs, &in), 0);
  for (int i = 0; i < 6; i++)
    ty_tensor_f32(in)[i] = (float)i;
  cr_assert_eq(ty_exec_bind_id(e, x, in, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  cr_assert_float_eq(ty_tensor_f32(ty_exec_value(e, loss))[0], 30.0f, 1e-6);
  cr_assert_eq(c.forward, 1);
  cr_assert_eq(c.backward, 1);
  cr_assert_eq(c.id, 7);
  const ty_tensor *dx = ty_exec_value(e, gx);
  cr_assert(dx && dx->shape.rank == 2 && dx->shape.dims[0] == 2 && dx->shape.dims[1] == 3);
  for (int i = 0; i < 6; i++)
    cr_assert_float_eq(ty_tensor_f32(dx)[i], 2.0f, 1e-6);
  ty_exec_destroy(e);
  ty_tensor_destroy(in);
  ty_graph_destroy(g);
}

Test(extern_op, no_hook_fails_naming_the_node) {
  int x, loss;
  char err[TY_ERR_LEN] = "";
  ty_graph *g = graph(&x, &loss, 2);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(g, NULL, &e), 0);
  ty_tensor *in;
  ty_shape xs = ty_shape_make(2, (int64_t[]){2, 3});
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &xs, &in), 0);
  cr_assert_eq(ty_exec_bind_id(e, x, in, err, sizeof err), 0, "%s", err);
  cr_assert_neq(ty_exec_run(e, err, sizeof err), 0);
  cr_assert(strstr(err, "node \"ext\" (TyExtern): no extern hook given"), "%s", err);
  ty_exec_destroy(e);
  ty_tensor_destroy(in);
  ty_graph_destroy(g);
}

static int failing(int64_t id, bool backward, const ty_tensor *in, ty_tensor *out, void *user) {
  (void)id, (void)backward, (void)in, (void)out, (void)user;
  return TY_EINTERNAL;
}

static const char *failing_why(const void *user) {
  return user;
}

/* A failing hook's reason (extern_error) ends the run's error. */
Test(extern_op, a_failing_hook_says_why) {
  int x, loss;
  char err[TY_ERR_LEN] = "";
  ty_graph *g = graph(&x, &loss, 2);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(g,
                              &(ty_exec_opts){.extern_op = failing,
                                              .extern_user = "the route ends with 8 floats",
                                              .extern_error = failing_why},
                              &e),
               0);
  ty_tensor *in;
  ty_shape xs = ty_shape_make(2, (int64_t[]){2, 3});
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &xs, &in), 0);
  cr_assert_eq(ty_exec_bind_id(e, x, in, err, sizeof err), 0, "%s", err);
  cr_assert_neq(ty_exec_run(e, err, sizeof err), 0);
  cr_assert(strstr(err, "node \"ext\" (TyExtern): the extern op failed: the route ends with 8 "
                        "floats"),
            "%s", err);
  ty_exec_destroy(e);
  ty_tensor_destroy(in);
  ty_graph_destroy(g);
}

Test(extern_op, malformed_node_refused_by_inference) {
  int x, loss;
  char err[TY_ERR_LEN] = "";
  ty_graph *g = graph(&x, &loss, 0);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "node \"ext\" (TyExtern): attribute shape: missing"), "%s", err);
  ty_graph_destroy(g);
}
