/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Data movement: Flatten, Reshape, Squeeze, Unsqueeze (a copy: the output
 * shape was computed by inference), Constant, Transpose, Concat, Gather,
 * Shape and Size, Slice, Split, Expand and Tile. All are dtype-agnostic
 * and move whole elements with memcpy; Transpose, Slice and Tile walk the
 * output and gather through computed input strides. The copies of a
 * training step (a Flatten's or Reshape's copy, Transpose, Concat, Slice
 * and Split) split over the executor's threads by ranges of the output's
 * first dim (bytes for a plain copy): each element is moved once either
 * way, so the result does not depend on the thread count.
 */
#include "ops/exec.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

/* Bytes a copy moves per thread at least: waking a thread for less costs
 * more than it saves. */
#define COPY_GRAIN_BYTES ((int64_t)TY__PAR_GRAIN * 4)
#define COPY_BLOCK 4096 /* bytes per item of a plain copy */

typedef struct copy_job {
  char *dst;
  const char *src;
  int64_t nbytes;
} copy_job;

static void copy_blocks(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const copy_job *j = arg;
  int64_t end = hi * COPY_BLOCK < j->nbytes ? hi * COPY_BLOCK : j->nbytes;
  memcpy(j->dst + lo * COPY_BLOCK, j->src + lo * COPY_BLOCK, (size_t)(end - lo * COPY_BLOCK));
}

int ty__k_copy(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  (void)n;
  /* Memory planning may hand a Reshape the buffer of its input (a view). */
  if (!out[0] || out[0]->data == in[0]->data) return 0;
  copy_job j = {out[0]->data, in[0]->data, (int64_t)in[0]->nbytes};
  ty__parallel_for(ctx->workers, (j.nbytes + COPY_BLOCK - 1) / COPY_BLOCK,
                   COPY_GRAIN_BYTES / COPY_BLOCK, copy_blocks, &j);
  return 0;
}

/* Items of the output's first dim per chunk: at least COPY_GRAIN_BYTES. */
static int64_t rows_grain(const ty_tensor *y) {
  int64_t row = y->shape.rank ? ty_shape_span(&y->shape, 1, y->shape.rank) : 1;
  return COPY_GRAIN_BYTES / ((int64_t)ty_dtype_size(y->dtype) * row + 1) + 1;
}

/* A rank-0 output is one item; otherwise the first dim's size. */
static int64_t rows_of(const ty_tensor *y) {
  return y->shape.rank ? y->shape.dims[0] : 1;
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

typedef struct transpose_job {
  const ty_tensor *x;
  ty_tensor *y;
  int64_t ps[TY_MAX_RANK]; /* the input's stride along each output dim */
} transpose_job;

/* Output rows [lo, hi) of the first dim (all of it for rank 0). */
static void transpose_range(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const transpose_job *j = arg;
  const ty_shape *ys = &j->y->shape;
  int r = ys->rank;
  int64_t idx[TY_MAX_RANK] = {0}, dims[TY_MAX_RANK];
  for (int d = 0; d < r; d++)
    dims[d] = ys->dims[d];
  if (r) dims[0] = hi - lo;
  size_t es = ty_dtype_size(j->x->dtype);
  int64_t per = r ? ty_shape_span(ys, 1, r) : 1, total = (hi - lo) * per,
          off = r ? lo * j->ps[0] : 0, len = r ? dims[r - 1] : 1, st = r ? j->ps[r - 1] : 1;
  const char *src = j->x->data;
  char *dst = (char *)j->y->data + (size_t)(lo * per) * es;
  for (int64_t i = 0; i < total && len > 0; i += len) { /* a row of the output at a time */
    gather_row(dst + (size_t)i * es, src + (size_t)off * es, len, st, es);
    for (int d = r - 2; d >= 0; d--) {
      idx[d]++;
      off += j->ps[d];
      if (idx[d] < dims[d]) break;
      off -= j->ps[d] * idx[d];
      idx[d] = 0;
    }
  }
}

int ty__k_transpose(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                    ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int r = x->shape.rank, cnt;
  int64_t perm[TY_MAX_RANK], xs[TY_MAX_RANK];
  if (ty__attr_ints(n, "perm", perm, TY_MAX_RANK, &cnt) != 0) return TY_EINTERNAL;
  if (cnt < 0)
    for (int d = 0; d < r; d++)
      perm[d] = r - 1 - d;
  ty_shape_strides(&x->shape, xs);
  transpose_job j = {.x = x, .y = y};
  for (int d = 0; d < r; d++)
    j.ps[d] = xs[perm[d]];
  if (ty_tensor_numel(y) == 0) return 0;
  ty__parallel_for(ctx->workers, rows_of(y), rows_grain(y), transpose_range, &j);
  return 0;
}

typedef struct concat_job {
  const ty_tensor *const *in;
  int n_in;
  ty_tensor *y;
  int axis;
} concat_job;

/* Rows [lo, hi) of the dims before the axis, from every input. */
static void concat_rows(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const concat_job *j = arg;
  size_t es = ty_dtype_size(j->y->dtype);
  int r = j->y->shape.rank;
  size_t yrow = (size_t)ty_shape_span(&j->y->shape, j->axis, r) * es, at = 0;
  for (int i = 0; i < j->n_in; i++) {
    const ty_tensor *x = j->in[i];
    size_t row = (size_t)ty_shape_span(&x->shape, j->axis, x->shape.rank) * es;
    for (int64_t o = lo; o < hi && row; o++)
      memcpy((char *)j->y->data + (size_t)o * yrow + at, (const char *)x->data + (size_t)o * row,
             row);
    at += row;
  }
}

int ty__k_concat(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  ty_tensor *y = out[0];
  if (!y) return 0;
  concat_job j = {.in = in, .n_in = n->n_inputs, .y = y};
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), y->shape.rank, &j.axis) != 0)
    return TY_EINTERNAL;
  int64_t outer = ty_shape_span(&y->shape, 0, j.axis),
          row = (int64_t)ty_dtype_size(y->dtype) * ty_shape_span(&y->shape, j.axis, y->shape.rank);
  if (row == 0) return 0;
  ty__parallel_for(ctx->workers, outer, COPY_GRAIN_BYTES / row + 1, concat_rows, &j);
  return 0;
}

int ty__k_gather(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
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
    if (j < -dim || j >= dim)
      return ty__kctx_why(ctx, TY_EINVAL,
                          "index %lld (element %lld of the indices) is outside [-%lld, %lld), "
                          "axis %d's size",
                          (long long)j, (long long)k, (long long)dim, (long long)dim, axis);
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
typedef struct strided_job {
  const ty_tensor *x;
  const int64_t *first, *step;
  ty_tensor *y;
} strided_job;

/* The indices of y whose first index is in [lo, hi) (all for rank 0). */
static void strided_range(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const strided_job *j = arg;
  const ty_tensor *x = j->x;
  int r = x->shape.rank;
  int64_t xs[TY_MAX_RANK], st[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, dims[TY_MAX_RANK], off = 0;
  size_t es = ty_dtype_size(x->dtype);
  ty_shape_strides(&x->shape, xs);
  for (int d = 0; d < r; d++) {
    dims[d] = j->y->shape.dims[d];
    /* A dim taking one element never steps: its step may be as large as
     * INT64_MAX (Slice's "to the end"), whose product would overflow. */
    st[d] = dims[d] > 1 ? j->step[d] * xs[d] : 0;
    off += j->first[d] * xs[d];
  }
  int64_t per = r ? ty_shape_span(&j->y->shape, 1, r) : 1;
  if (r) {
    dims[0] = hi - lo;
    off += lo * st[0];
  }
  int64_t n = (hi - lo) * per;
  char *ydata = (char *)j->y->data + (size_t)(lo * per) * es;
  int64_t row = r && j->step[r - 1] == 1 ? dims[r - 1] : 1; /* elements per copy */
  int last = r && row > 1 ? r - 2 : r - 1;                  /* the dims the odometer walks */
  for (int64_t i = 0; i < n; i += row) {
    memcpy(ydata + (size_t)i * es, (const char *)x->data + (size_t)off * es, (size_t)row * es);
    for (int d = last; d >= 0; d--) {
      idx[d]++;
      off += st[d];
      if (idx[d] < dims[d]) break;
      off -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
}

static void strided_copy(ty_workers *w, const ty_tensor *x, const int64_t *first,
                         const int64_t *step, ty_tensor *y) {
  if (ty_tensor_numel(y) == 0) return;
  strided_job j = {x, first, step, y};
  ty__parallel_for(w, rows_of(y), rows_grain(y), strided_range, &j);
}

int ty__k_slice(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  ty__slice s;
  int r = x->shape.rank;
  if (ty__slice_params(n, in, r, &s) != 0) return TY_EINTERNAL;
  int64_t first[TY_MAX_RANK], len;
  for (int d = 0; d < r; d++)
    ty__slice_axis(x->shape.dims[d], s.start[d], s.end[d], s.step[d], &first[d], &len);
  strided_copy(ctx->workers, x, first, s.step, out[0]);
  return 0;
}

int ty__k_split(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  int axis, r = x->shape.rank;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), r, &axis) != 0) return TY_EINTERNAL;
  int64_t first[TY_MAX_RANK] = {0}, step[TY_MAX_RANK];
  for (int d = 0; d < r; d++)
    step[d] = 1;
  for (int i = 0; i < n->n_outputs; i++) {
    int64_t part = 0;
    if (out[i]) {
      strided_copy(ctx->workers, x, first, step, out[i]);
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
