/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Indexing kernels: GatherElements, GatherND, ScatterND and
 * ScatterElements (with their add/mul/max/min reductions). Indices may be
 * negative (counted from the end) and are checked against the dims: an
 * index out of range fails the kernel with TY_EINVAL, it never reads or
 * writes outside a tensor.
 *
 * The scatters are also the backward of the gathers (ops/autodiff uses the
 * same walks with reduction "add").
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

/* Normalises index v against a dim; false when out of range. */
static bool fix_index(int64_t *v, int64_t dim) {
  if (*v < 0) *v += dim;
  return *v >= 0 && *v < dim;
}

/* For element i of indices (same rank as data), its offset in data: the
 * index's coordinates with axis replaced by the index value. */
static bool elements_offset(const ty_shape *data, const ty_shape *idx, int axis, int64_t i,
                            int64_t v, int64_t *out) {
  int64_t off = 0, mul = 1;
  if (!fix_index(&v, data->dims[axis])) return false;
  for (int d = data->rank - 1; d >= 0; d--) {
    int64_t c = i % idx->dims[d];
    i /= idx->dims[d];
    off += (d == axis ? v : c) * mul;
    mul *= data->dims[d];
  }
  *out = off;
  return true;
}

int ty__k_gather_elements(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                          ty__kctx *ctx) {
  (void)ctx;
  int axis;
  if (!out[0]) return 0;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), in[0]->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  return ty__gather_elements_from(in[0], in[1], axis, out[0]);
}

int ty__gather_elements_from(const ty_tensor *x, const ty_tensor *ind, int axis, ty_tensor *y) {
  for (int d = 0; d < x->shape.rank; d++)
    if (d != axis && ind->shape.dims[d] > x->shape.dims[d]) return TY_EINVAL;
  size_t es = ty_dtype_size(x->dtype);
  for (int64_t i = 0; i < ty_tensor_numel(ind); i++) {
    int64_t off;
    if (!elements_offset(&x->shape, &ind->shape, axis, i, ty__geti(ind->dtype, ind->data, i), &off))
      return TY_EINVAL;
    memcpy((char *)y->data + (size_t)i * es, (const char *)x->data + (size_t)off * es, es);
  }
  return 0;
}

/* ---- GatherND / ScatterND ----------------------------------------------------- */
/* The layout of an ND index: b batch dims, tuples of m coordinates, each
 * selecting a slice of `slice` elements of data. */
typedef struct ndidx {
  int64_t batch, per_batch, m, slice, data_batch_stride;
  int64_t strides[TY_MAX_RANK]; /* data strides of the m indexed dims */
} ndidx;

static void ndidx_init(ndidx *p, const ty_shape *data, const ty_shape *idx, int b) {
  p->m = idx->dims[idx->rank - 1];
  p->batch = ty_shape_span(idx, 0, b);
  p->per_batch = ty_shape_span(idx, b, idx->rank - 1);
  p->slice = ty_shape_span(data, b + (int)p->m, data->rank);
  p->data_batch_stride = ty_shape_span(data, b, data->rank);
  for (int64_t k = p->m - 1, st = p->slice; k >= 0; k--) {
    p->strides[k] = st;
    st *= data->dims[b + k];
  }
}

/* Offset in data of tuple t (counted across batches); -1 if out of range. */
static int64_t nd_offset(const ndidx *p, const ty_tensor *ind, const ty_shape *data, int b,
                         int64_t t) {
  int64_t off = (t / p->per_batch) * p->data_batch_stride;
  for (int64_t k = 0; k < p->m; k++) {
    int64_t v = ty__geti(ind->dtype, ind->data, t * p->m + k);
    if (!fix_index(&v, data->dims[b + k])) return -1;
    off += v * p->strides[k];
  }
  return off;
}

int ty__k_gather_nd(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                    ty__kctx *ctx) {
  (void)ctx;
  if (!out[0]) return 0;
  return ty__gather_nd_from(in[0], in[1], (int)ty_graph_node_attr_int(n, "batch_dims", 0), out[0]);
}

int ty__gather_nd_from(const ty_tensor *x, const ty_tensor *ind, int b, ty_tensor *y) {
  ndidx p;
  ndidx_init(&p, &x->shape, &ind->shape, b);
  size_t es = ty_dtype_size(x->dtype), slice = (size_t)p.slice * es;
  for (int64_t t = 0; t < p.batch * p.per_batch; t++) {
    int64_t off = nd_offset(&p, ind, &x->shape, b, t);
    if (off < 0) return TY_EINVAL;
    memcpy((char *)y->data + (size_t)t * slice, (const char *)x->data + (size_t)off * es, slice);
  }
  return 0;
}

/* ScatterND/ScatterElements' reduction of an existing and a new element. */
typedef enum { RED_NONE, RED_ADD, RED_MUL, RED_MAX, RED_MIN } red_kind;

static red_kind red_of(const ty_graph_node *n) {
  const char *r = ty_graph_node_attr_string(n, "reduction", "none");
  return !strcmp(r, "add")   ? RED_ADD
         : !strcmp(r, "mul") ? RED_MUL
         : !strcmp(r, "max") ? RED_MAX
         : !strcmp(r, "min") ? RED_MIN
                             : RED_NONE;
}

static void scatter_elem(ty_dtype dt, red_kind red, void *dst, int64_t at, const void *src,
                         int64_t from) {
  if (red == RED_NONE) {
    size_t es = ty_dtype_size(dt);
    memcpy((char *)dst + (size_t)at * es, (const char *)src + (size_t)from * es, es);
    return;
  }
  ty__dkind k = ty__dkind_of(dt);
  ty__num a = ty__get(dt, dst, at), b = ty__get(dt, src, from);
  if (k == TY__DK_FLOAT) {
    a.f = red == RED_ADD   ? a.f + b.f
          : red == RED_MUL ? a.f * b.f
          : red == RED_MAX ? (a.f > b.f ? a.f : b.f)
                           : (a.f < b.f ? a.f : b.f);
  } else if (k == TY__DK_SINT) {
    a.i = red == RED_ADD   ? (int64_t)((uint64_t)a.i + (uint64_t)b.i)
          : red == RED_MUL ? (int64_t)((uint64_t)a.i * (uint64_t)b.i)
          : red == RED_MAX ? (a.i > b.i ? a.i : b.i)
                           : (a.i < b.i ? a.i : b.i);
  } else {
    a.u = red == RED_ADD   ? a.u + b.u
          : red == RED_MUL ? a.u * b.u
          : red == RED_MAX ? (a.u > b.u ? a.u : b.u)
                           : (a.u < b.u ? a.u : b.u);
  }
  ty__put(dt, dst, at, a);
}

int ty__scatter_nd_into(ty_tensor *y, const ty_tensor *ind, const ty_tensor *up,
                        const ty_graph_node *n) {
  ndidx p;
  ndidx_init(&p, &y->shape, &ind->shape, 0);
  red_kind red = n ? red_of(n) : RED_ADD;
  for (int64_t t = 0; t < p.per_batch; t++) {
    int64_t off = nd_offset(&p, ind, &y->shape, 0, t);
    if (off < 0) return TY_EINVAL;
    for (int64_t e = 0; e < p.slice; e++)
      scatter_elem(y->dtype, red, y->data, off + e, up->data, t * p.slice + e);
  }
  return 0;
}

int ty__gather_nd_add(ty_tensor *dx, const ty_tensor *ind, const ty_tensor *dy, int b) {
  ndidx p;
  ndidx_init(&p, &dx->shape, &ind->shape, b);
  for (int64_t t = 0; t < p.batch * p.per_batch; t++) {
    int64_t off = nd_offset(&p, ind, &dx->shape, b, t);
    if (off < 0) return TY_EINVAL;
    for (int64_t e = 0; e < p.slice; e++)
      scatter_elem(dx->dtype, RED_ADD, dx->data, off + e, dy->data, t * p.slice + e);
  }
  return 0;
}

int ty__k_scatter_nd(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                     ty__kctx *ctx) {
  (void)ctx;
  if (!out[0]) return 0;
  memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
  return ty__scatter_nd_into(out[0], in[1], in[2], n);
}

int ty__scatter_elements_into(ty_tensor *y, const ty_tensor *ind, const ty_tensor *up, int axis,
                              const ty_graph_node *n) {
  red_kind red = n ? red_of(n) : RED_ADD;
  for (int d = 0; d < y->shape.rank; d++)
    if (d != axis && ind->shape.dims[d] > y->shape.dims[d]) return TY_EINVAL;
  for (int64_t i = 0; i < ty_tensor_numel(ind); i++) {
    int64_t off;
    if (!elements_offset(&y->shape, &ind->shape, axis, i, ty__geti(ind->dtype, ind->data, i), &off))
      return TY_EINVAL;
    scatter_elem(y->dtype, red, y->data, off, up->data, i);
  }
  return 0;
}

int ty__k_scatter_elements(const ty_graph_node *n, const ty_tensor *const *in,
                           ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  if (!out[0]) return 0;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), in[0]->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  memcpy(out[0]->data, in[0]->data, in[0]->nbytes);
  return ty__scatter_elements_into(out[0], in[1], in[2], axis, n);
}
