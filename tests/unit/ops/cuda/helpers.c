/* SPDX-License-Identifier: Apache-2.0 */
/* See helpers.h. */
#include "tests/unit/ops/cuda/helpers.h"

#include "ops/autodiff/autodiff.h"
#include "ops/train/train.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

ty_graph *training_graph(const char *dir, const char *name) {
  char path[512], err[512] = "";
  ty_graph *model = NULL, *g = NULL;
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &model), 0, "%s: %s", path, err);
  ty_train_config c;
  snprintf(path, sizeof path, "%s/%s.config.pb", dir, name);
  cr_assert_eq(ty_train_config_load(path, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_plan_graph(model, &c, false, &g, err, sizeof err), 0, "%s: %s", name, err);
  ty_train_config_close(&c);
  ty_graph_destroy(model);
  int loss = TY_NO_VALUE;
  for (size_t i = 0; i < ty_graph_n_outputs(g); i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_output(g, i));
    if (v->dtype == TY_DTYPE_F32 && ty_shape_numel(&v->shape) == 1) loss = ty_graph_output(g, i);
  }
  cr_assert_neq(loss, TY_NO_VALUE, "%s: no scalar loss output", name);
  size_t n_init = ty_graph_n_initializers(g), np = 0;
  int *params = calloc(n_init + 1, sizeof *params), *grads = calloc(n_init + 1, sizeof *grads);
  for (size_t i = 0; i < n_init; i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_initializer(g, i));
    if (v->dtype == TY_DTYPE_F32 && v->shape.rank > 0) params[np++] = ty_graph_initializer(g, i);
  }
  cr_assert_eq(ty_autodiff(g, loss, params, np, grads, err, sizeof err), 0, "%s: %s", name, err);
  free(params);
  free(grads);
  return g;
}

int add_value(ty_graph *g, const char *name, ty_dtype dt, int rank, const int64_t *dims) {
  int id;
  ty_shape s = ty_shape_make(rank, dims);
  cr_assert_eq(ty_graph_add_value(g, name, dt, rank < 0 ? NULL : &s, &id), 0);
  return id;
}
