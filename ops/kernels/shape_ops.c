/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data movement: Flatten, Reshape, Squeeze, Unsqueeze (a copy: the output
 * shape was computed by inference), Constant, Transpose, Concat, Gather,
 * Shape and Size, Slice, Split, Expand and Tile. All are dtype-agnostic
 * and move whole elements with memcpy; Transpose, Slice and Tile walk the
 * output and gather through computed input strides.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

int ty__k_copy(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  /* Memory planning may hand a Reshape the buffer of its input (a view). */
  if (out[0] && out[0]->data != in[0]->data) memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
  return 0;
}

int ty__k_constant(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                   ty__kctx *ctx) {
  (void)in;
  (void)ctx;
  const ty_graph_attr *a = ty_graph_node_attr(n, "value");
  if (out[0]) memcpy(out[0]->data, a->t->data, a->t->nbytes);
  return 0;
}

/* One output row of a transpose: len elements read with stride st. */
static void gather_row(char *dst, const char *src, int64_t len, int64_t st, size_t es) {
  if (st == 1) {
    memcpy(dst, src, (size_t)len * es);
  } else if (es == 4) {
    uint32_t *d = (uint32_t *)dst;
    const uint32_t *s = (const uint32_t *)src;
    for (int64_t i = 0; i < len; i++)
      d[i] = s[i * st];
  } else {
    for (int64_t i = 0; i < len; i++)
      memcpy(dst + (size_t)i * es, src + (size_t)(i * st) * es, es);
  }
}

int ty__k_transpose(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                    ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int r = x->shape.rank, cnt;
  int64_t perm[TY_MAX_RANK], xs[TY_MAX_RANK], ps[TY_MAX_RANK], idx[TY_MAX_RANK] = {0};
  if (ty__attr_ints(n, "perm", perm, TY_MAX_RANK, &cnt) != 0) return TY_EINTERNAL;
  if (cnt < 0)
    for (int d = 0; d < r; d++)
      perm[d] = r - 1 - d;
  ty_shape_strides(&x->shape, xs);
  for (int d = 0; d < r; d++)
    ps[d] = xs[perm[d]];
  size_t es = ty_dtype_size(x->dtype);
  int64_t total = ty_tensor_numel(y), off = 0, len = r ? y->shape.dims[r - 1] : 1,
          st = r ? ps[r - 1] : 1;
  const char *src = x->data;
  char *dst = y->data;
  for (int64_t i = 0; i < total && len > 0; i += len) { /* a row of the output at a time */
    gather_row(dst + (size_t)i * es, src + (size_t)off * es, len, st, es);
    for (int d = r - 2; d >= 0; d--) {
      idx[d]++;
      off += ps[d];
      if (idx[d] < y->shape.dims[d]) break;
      off -= ps[d] * idx[d];
      idx[d] = 0;
    }
  }
  return 0;
}

int ty__k_concat(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  (void)ctx;
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), y->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
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

int ty__k_gather(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0], *ind = in[1];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), x->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  size_t es = ty_dtype_size(x->dtype);
  int64_t outer = ty_shape_span(&x->shape, 0, axis), dim = x->shape.dims[axis];
  size_t inner = (size_t)ty_shape_span(&x->shape, axis + 1, x->shape.rank) * es;
  int64_t ni = ty_tensor_numel(ind);
  for (int64_t k = 0; k < ni; k++) {
    int64_t j = ty__geti(ind->dtype, ind->data, k);
    if (j < -dim || j >= dim) return TY_EINVAL;
  }
  for (int64_t o = 0; o < outer; o++) {
    for (int64_t k = 0; k < ni; k++) {
      int64_t j = ty__geti(ind->dtype, ind->data, k);
      if (j < 0) j += dim;
      memcpy((char *)y->data + ((size_t)(o * ni + k)) * inner,
             (const char *)x->data + (size_t)(o * dim + j) * inner, inner);
    }
  }
  return 0;
}

int ty__k_shape(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)ctx;
  const ty_shape *x = &in[0]->shape;
  if (!out[0]) return 0;
  if (n->op == TY_OP_SIZE) {
    ty_tensor_i64(out[0])[0] = ty_shape_numel(x);
    return 0;
  }
  int st, en;
  ty__shape_window(n, x->rank, &st, &en);
  for (int d = st; d < en; d++)
    ty_tensor_i64(out[0])[d - st] = x->dims[d];
  return 0;
}

/* Copies from x the elements at first[d] + i[d] * step[d] for every index i
 * of y (Slice, and Split as slices with step 1). A unit innermost step moves
 * whole rows with one memcpy (the common case: heads and q/k/v splits). */
static void strided_copy(const ty_tensor *x, const int64_t *first, const int64_t *step,
                         ty_tensor *y) {
  int r = x->shape.rank;
  int64_t xs[TY_MAX_RANK], st[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, off = 0, n = ty_tensor_numel(y);
  size_t es = ty_dtype_size(x->dtype);
  ty_shape_strides(&x->shape, xs);
  for (int d = 0; d < r; d++) {
    st[d] = step[d] * xs[d];
    off += first[d] * xs[d];
  }
  int64_t row = r && step[r - 1] == 1 ? y->shape.dims[r - 1] : 1; /* elements per copy */
  int last = r && row > 1 ? r - 2 : r - 1;                        /* the dims the odometer walks */
  for (int64_t i = 0; i < n; i += row) {
    memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)off * es,
           (size_t)row * es);
    for (int d = last; d >= 0; d--) {
      idx[d]++;
      off += st[d];
      if (idx[d] < y->shape.dims[d]) break;
      off -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
}

int ty__k_slice(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  ty__slice s;
  int r = x->shape.rank;
  if (ty__slice_params(n, in, r, &s) != 0) return TY_EINTERNAL;
  int64_t first[TY_MAX_RANK], len;
  for (int d = 0; d < r; d++)
    ty__slice_axis(x->shape.dims[d], s.start[d], s.end[d], s.step[d], &first[d], &len);
  strided_copy(x, first, s.step, out[0]);
  return 0;
}

int ty__k_split(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  int axis, r = x->shape.rank;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), r, &axis) != 0) return TY_EINTERNAL;
  int64_t first[TY_MAX_RANK] = {0}, step[TY_MAX_RANK];
  for (int d = 0; d < r; d++)
    step[d] = 1;
  for (int i = 0; i < n->n_outputs; i++) {
    int64_t part = 0;
    if (out[i]) {
      strided_copy(x, first, step, out[i]);
      part = out[i]->shape.dims[axis];
    } else {
      int64_t sizes[64];
      if (ty__split_sizes(n, n->n_inputs > 1 ? in[1] : NULL, x->shape.dims[axis], n->n_outputs,
                          sizes) != 0)
        return TY_EINTERNAL;
      part = sizes[i];
    }
    first[axis] += part;
  }
  return 0;
}

void ty__broadcast_copy(const ty_tensor *x, ty_tensor *y) {
  int64_t n = ty_tensor_numel(y);
  size_t es = ty_dtype_size(y->dtype);
  ty__odo w;
  ty__odo_init(&w, &y->shape, 1, (const ty_shape *[]){&x->shape});
  for (int64_t i = 0; i < n; i++, ty__odo_next(&w))
    memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)w.off[0] * es, es);
}

int ty__k_expand(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  if (out[0]) ty__broadcast_copy(in[0], out[0]);
  return 0;
}

int ty__k_tile(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y || ty_tensor_numel(y) == 0) return 0;
  int r = x->shape.rank;
  int64_t xs[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, xi[TY_MAX_RANK] = {0}, off = 0,
                           cnt = ty_tensor_numel(y);
  size_t es = ty_dtype_size(x->dtype);
  ty_shape_strides(&x->shape, xs);
  for (int64_t i = 0; i < cnt; i++) {
    memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
    for (int d = r - 1; d >= 0; d--) { /* xi is idx modulo the input dim */
      idx[d]++;
      xi[d]++;
      off += xs[d];
      if (xi[d] == x->shape.dims[d]) {
        xi[d] = 0;
        off -= x->shape.dims[d] * xs[d];
      }
      if (idx[d] < y->shape.dims[d]) break;
      idx[d] = 0; /* y's dim is a multiple of x's, so xi is 0 again */
    }
  }
  return 0;
}
