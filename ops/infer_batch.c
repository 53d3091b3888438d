/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every value's shape at one concrete batch size (ty__graph_shapes_at), for
 * the planner and the shard builder, which both need concrete shapes.
 *
 * Import infers shapes with the batch symbolic, so a shape computed at run
 * time from Shape nodes (PyTorch's attention head split: Reshape(x,
 * Concat(Shape(x)[0], Shape(x)[1] * H, D)), slices with bounds from Shape)
 * can leave dims unknown. At a concrete batch every such chain is constant:
 * a copy of the graph with the batch in every batch dim is inferred, its
 * shape arithmetic folded (ops/fold.c: Shape of a static shape, then the
 * nodes reading only constants), and inferred again, until no dim is
 * unknown or a round changes nothing. Float initializers become inputs of
 * their shape in the copy: they are never folded (and their data is not
 * copied); the other initializers are cloned, as shapes and axes are read
 * from them. Node and value ids of the copy are the graph's.
 */
#include "ops/ops_internal.h"

#include <stdio.h>
#include <stdlib.h>

#define MAX_ROUNDS 4

int ty__graph_copy_attr(ty_graph *g, size_t idx, const ty_graph_attr *a) {
  ty_tensor *t;
  int rc;
  switch (a->type) {
  case TY_ATTR_INT:
    return ty_graph_node_set_int(g, idx, a->name, a->i);
  case TY_ATTR_FLOAT:
    return ty_graph_node_set_float(g, idx, a->name, a->f);
  case TY_ATTR_STRING:
    return ty_graph_node_set_string(g, idx, a->name, a->s);
  case TY_ATTR_INTS:
    return ty_graph_node_set_ints(g, idx, a->name, a->ints, a->n);
  case TY_ATTR_FLOATS:
    return ty_graph_node_set_floats(g, idx, a->name, a->floats, a->n);
  case TY_ATTR_STRINGS:
    return ty_graph_node_copy_strings(g, idx, a);
  case TY_ATTR_TENSOR:
    if (!a->t) return 0;
    if ((rc = ty_tensor_clone(a->t, &t)) != 0) return rc;
    return ty_graph_node_set_tensor(g, idx, a->name, t);
  }
  return 0;
}

static ty_shape with_batch(const ty_shape *sh, int64_t batch) {
  ty_shape s = *sh;
  for (int d = 0; d < s.rank; d++)
    if (s.dims[d] == TY_DIM_BATCH) s.dims[d] = batch;
  return s;
}

/* The copy of src for inference described above (ops_internal.h). */
int ty__graph_shape_copy(const ty_graph *src, int64_t batch, ty_graph **out) {
  ty_graph *g = NULL;
  int rc = ty_graph_create(&g);
  for (size_t i = 0; rc == 0 && i < ty_graph_n_values(src); i++) {
    const ty_graph_value *v = ty_graph_value_at(src, (int)i);
    /* a dropped initializer's shape is its value's (ty_graph_drop_init_data) */
    ty_shape sh = v->init && !v->init_dropped ? v->init->shape
                  : v->init                   ? v->shape
                                              : with_batch(&v->shape, batch);
    bool known = v->init || v->is_input;
    int id;
    ty_tensor *t = NULL;
    rc = ty_graph_add_value(g, v->name, v->dtype, known ? &sh : NULL, &id);
    if (rc == 0 && v->init && !ty_dtype_is_float(v->dtype) &&
        (rc = ty_tensor_clone(v->init, &t)) == 0)
      rc = ty_graph_set_initializer(g, id, t);
    else if (rc == 0 && (v->is_input || v->init))
      rc = ty_graph_mark_input(g, id);
  }
  for (size_t i = 0; rc == 0 && i < ty_graph_n_nodes(src); i++) {
    const ty_graph_node *n = ty_graph_node_at(src, i);
    int idx;
    ty_graph_set_opset(g, n->opset);
    rc = ty_graph_add_node(g, n->op, n->name, n->inputs, n->n_inputs, n->outputs, n->n_outputs,
                           &idx);
    for (int k = 0; rc == 0 && k < n->n_attrs; k++)
      rc = ty__graph_copy_attr(g, (size_t)idx, &n->attrs[k]);
  }
  if (rc != 0) {
    ty_graph_destroy(g);
    return rc;
  }
  *out = g;
  return 0;
}

/* Values of g with a dim still unknown. */
static size_t unknown_values(const ty_graph *g) {
  size_t n = 0;
  for (size_t i = 0; i < ty_graph_n_values(g); i++)
    n += !ty_shape_is_concrete(&ty_graph_value_at(g, (int)i)->shape);
  return n;
}

int ty__graph_fold_shapes(ty_graph *g, char *err, size_t err_len) {
  int rc = ty_graph_infer_shapes(g, err, err_len);
  size_t left = rc == 0 ? unknown_values(g) : 0, before = left + 1;
  for (int r = 0; rc == 0 && left > 0 && left < before && r < MAX_ROUNDS; r++) {
    before = left;
    if ((rc = ty__graph_fold(g, err, err_len)) == 0 &&
        (rc = ty_graph_infer_shapes(g, err, err_len)) == 0)
      left = unknown_values(g);
  }
  return rc;
}

int ty__graph_shapes_at(const ty_graph *src, int64_t batch, ty_shape *out, char *err,
                        size_t err_len) {
  ty_graph *g = NULL;
  int rc = ty__graph_shape_copy(src, batch, &g);
  if (rc == 0) rc = ty__graph_fold_shapes(g, err, err_len);
  for (size_t i = 0; rc == 0 && i < ty_graph_n_values(src); i++)
    out[i] = ty_graph_value_at(g, (int)i)->shape;
  ty_graph_destroy(g);
  return rc;
}
