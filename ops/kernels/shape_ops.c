/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data movement: Flatten, Reshape, Squeeze, Unsqueeze (a copy: the output
 * shape was computed by inference), Constant, Transpose, Concat, Gather.
 * All are dtype-agnostic and move whole elements with memcpy; Transpose
 * walks the output and gathers through permuted input strides.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

int ty__k_copy(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  if (out[0]) memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
  return 0;
}

int ty__k_constant(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)in;
  (void)ctx;
  const ty_graph_attr *a = ty_graph_node_attr(n, "value");
  if (out[0]) memcpy(out[0]->data, a->t->data, a->t->nbytes);
  return 0;
}

int ty__k_transpose(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int r = x->shape.rank, cnt;
  int64_t perm[TY_MAX_RANK], xs[TY_MAX_RANK], ps[TY_MAX_RANK], idx[TY_MAX_RANK] = {0};
  if (ty__attr_ints(n, "perm", perm, TY_MAX_RANK, &cnt) != 0) return TY_EINTERNAL;
  if (cnt < 0)
    for (int d = 0; d < r; d++) perm[d] = r - 1 - d;
  ty_shape_strides(&x->shape, xs);
  for (int d = 0; d < r; d++) ps[d] = xs[perm[d]];
  size_t es = ty_dtype_size(x->dtype);
  int64_t total = ty_tensor_numel(y), off = 0;
  const char *src = x->data;
  char *dst = y->data;
  for (int64_t i = 0; i < total; i++) {
    memcpy(dst + (size_t)i * es, src + (size_t)off * es, es);
    for (int d = r - 1; d >= 0; d--) {
      idx[d]++;
      off += ps[d];
      if (idx[d] < y->shape.dims[d]) break;
      off -= ps[d] * idx[d];
      idx[d] = 0;
    }
  }
  return 0;
}

int ty__k_concat(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), y->shape.rank, &axis) != 0) return TY_EINTERNAL;
  size_t es = ty_dtype_size(y->dtype);
  int64_t outer = ty_shape_span(&y->shape, 0, axis);
  size_t yrow = (size_t)ty_shape_span(&y->shape, axis, y->shape.rank) * es, at = 0;
  for (int i = 0; i < n->n_inputs; i++) {
    const ty_tensor *x = in[i];
    size_t row = (size_t)ty_shape_span(&x->shape, axis, x->shape.rank) * es;
    for (int64_t o = 0; o < outer && row; o++)
      memcpy((char *)y->data + (size_t)o * yrow + at, (const char *)x->data + (size_t)o * row, row);
    at += row;
  }
  return 0;
}

int ty__k_gather(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0], *ind = in[1];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), x->shape.rank, &axis) != 0) return TY_EINTERNAL;
  size_t es = ty_dtype_size(x->dtype);
  int64_t outer = ty_shape_span(&x->shape, 0, axis), dim = x->shape.dims[axis];
  size_t inner = (size_t)ty_shape_span(&x->shape, axis + 1, x->shape.rank) * es;
  int64_t ni = ty_tensor_numel(ind);
  const int64_t *id = ind->data;
  for (int64_t k = 0; k < ni; k++)
    if (id[k] < -dim || id[k] >= dim) return TY_EINVAL;
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t k = 0; k < ni; k++) {
      int64_t j = id[k] < 0 ? id[k] + dim : id[k];
      memcpy((char *)y->data + ((size_t)(o * ni + k)) * inner, (const char *)x->data + (size_t)(o * dim + j) * inner,
             inner);
    }
  }
  return 0;
}
