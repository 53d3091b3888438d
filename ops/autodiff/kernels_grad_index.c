/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of the indexing and layout ops: every one routes dY
 * back to the input element each output element came from, adding where
 * several outputs read one input (Tile, Expand, reflect/edge Pad, the
 * gathers with repeated indices). Index arithmetic is the forward
 * kernels' own (ty__slice_params, ty__pad_src, the gather/scatter walks),
 * so the two cannot disagree on where an element went.
 */
#include "ops/autodiff/grad_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* The forward node as its own helpers expect it: TyGrad carries the
 * forward attributes and opset, but more inputs. */
static ty_graph_node fwd_node(const ty__gctx *c) {
  ty_graph_node f = *c->n;
  f.op = c->op;
  f.n_inputs = c->nx;
  f.n_outputs = c->ny;
  return f;
}

/* dx[first + i * step] += dy[i] for every index i of dy, a row of dy's
 * last dim at a time (a unit last step, the usual case, adds contiguous
 * runs that vectorise). */
static void strided_add(const ty_tensor *dy, const int64_t *first, const int64_t *step,
                        ty_tensor *dx) {
  int r = dx->shape.rank;
  int64_t xs[TY_MAX_RANK], st[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, off = 0,
                                            n = ty_tensor_numel(dy);
  ty_shape_strides(&dx->shape, xs);
  for (int d = 0; d < r; d++) {
    st[d] = step[d] * xs[d];
    off += first[d] * xs[d];
  }
  int64_t len = r ? dy->shape.dims[r - 1] : 1, ls = r ? st[r - 1] : 1;
  const float *g = dy->data;
  float *x = dx->data;
  for (int64_t i = 0; i < n && len > 0; i += len) {
    float *px = x + off;
    if (ls == 1)
      for (int64_t k = 0; k < len; k++)
        px[k] += g[i + k];
    else
      for (int64_t k = 0; k < len; k++)
        px[k * ls] += g[i + k];
    for (int d = r - 2; d >= 0; d--) {
      idx[d]++;
      off += st[d];
      if (idx[d] < dy->shape.dims[d]) break;
      off -= st[d] * idx[d];
      idx[d] = 0;
    }
  }
}

int ty__g_slice(ty__gctx *c) {
  ty_graph_node f = fwd_node(c);
  const ty_shape *xs = &c->x[0]->shape;
  ty__slice s;
  if (ty__slice_params(&f, c->x, xs->rank, &s) != 0) return TY_EINTERNAL;
  int64_t first[TY_MAX_RANK], len;
  for (int d = 0; d < xs->rank; d++)
    ty__slice_axis(xs->dims[d], s.start[d], s.end[d], s.step[d], &first[d], &len);
  strided_add(c->dy, first, s.step, c->dx);
  return 0;
}

int ty__g_split(ty__gctx *c) {
  ty_graph_node f = fwd_node(c);
  const ty_shape *xs = &c->x[0]->shape;
  int axis;
  int64_t sizes[64], first[TY_MAX_RANK] = {0}, step[TY_MAX_RANK];
  if (ty_axis_normalize(ty_graph_node_attr_int(&f, "axis", 0), xs->rank, &axis) != 0)
    return TY_EINTERNAL;
  if (ty__split_sizes(&f, c->nx > 1 ? c->x[1] : NULL, xs->dims[axis], c->ny, sizes) != 0)
    return TY_EINTERNAL;
  for (int i = 0; i < c->out; i++)
    first[axis] += sizes[i];
  for (int d = 0; d < xs->rank; d++)
    step[d] = 1;
  strided_add(c->dy, first, step, c->dx);
  return 0;
}

int ty__g_expand(ty__gctx *c) {
  return ty__g_unbroadcast(c->dy, &c->dx->shape, c->dx);
}

int ty__g_tile(ty__gctx *c) {
  const ty_shape *xs = &c->dx->shape, *ys = &c->dy->shape;
  int r = xs->rank;
  int64_t st[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, n = ty_tensor_numel(c->dy);
  ty_shape_strides(xs, st);
  for (int64_t i = 0; i < n; i++) {
    int64_t off = 0;
    for (int d = 0; d < r; d++)
      off += (idx[d] % xs->dims[d]) * st[d];
    ty_tensor_f32(c->dx)[off] += ty_tensor_f32(c->dy)[i];
    for (int d = r - 1; d >= 0 && ++idx[d] == ys->dims[d]; d--)
      idx[d] = 0;
  }
  return 0;
}

int ty__g_pad(ty__gctx *c) {
  ty_graph_node f = fwd_node(c);
  const ty_shape *xs = &c->dx->shape, *ys = &c->dy->shape;
  int r = xs->rank, mode = ty__pad_mode(&f);
  int64_t pads[2 * TY_MAX_RANK], st[TY_MAX_RANK], idx[TY_MAX_RANK] = {0},
                                                  n = ty_tensor_numel(c->dy);
  if (ty__pad_params(&f, c->x, r, pads) != 0) return TY_EINTERNAL;
  ty_shape_strides(xs, st);
  for (int64_t i = 0; i < n; i++) {
    int64_t off = 0;
    bool cell = true;
    for (int d = 0; d < r && cell; d++) {
      int64_t s = ty__pad_src(idx[d], pads[d], xs->dims[d], mode);
      cell = s >= 0;
      off += s * st[d];
    }
    if (cell) ty_tensor_f32(c->dx)[off] += ty_tensor_f32(c->dy)[i];
    for (int d = r - 1; d >= 0 && ++idx[d] == ys->dims[d]; d--)
      idx[d] = 0;
  }
  return 0;
}

int ty__g_trilu(ty__gctx *c) {
  const ty_shape *s = &c->dx->shape;
  int r = s->rank;
  int64_t rows = s->dims[r - 2], cols = s->dims[r - 1], mats = ty_shape_span(s, 0, r - 2);
  int64_t k = c->nx > 1 && c->x[1] ? ty__geti(c->x[1]->dtype, c->x[1]->data, 0) : 0;
  bool upper = ty_graph_node_attr_int(c->n, "upper", 1) != 0;
  for (int64_t m = 0; m < mats; m++)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) {
        int64_t at = (m * rows + i) * cols + j;
        if (!(upper ? j - i < k : j - i > k)) ty_tensor_f32(c->dx)[at] = ty_tensor_f32(c->dy)[at];
      }
  return 0;
}

int ty__g_gather_elements(ty__gctx *c) {
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", 0), c->dx->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  return ty__scatter_elements_into(c->dx, c->x[1], c->dy, axis, NULL);
}

/* TopK: dValues lands where the values came from (the indices output, or
 * the forward run again when the graph left it unnamed); the rest of dX
 * stays zero. Indices along the axis are distinct, so writing is adding. */
int ty__g_top_k(ty__gctx *c) {
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", -1), c->dx->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  if (c->ny > 1 && c->y[1]) return ty__scatter_elements_into(c->dx, c->y[1], c->dy, axis, NULL);
  ty_tensor *idx;
  int rc = ty_tensor_create(TY_DTYPE_I64, &c->dy->shape, &idx);
  if (rc != 0) return rc;
  ty_graph_node f = fwd_node(c);
  rc = ty__k_top_k(&f, c->x, (ty_tensor *const[]){NULL, idx}, &(ty__kctx){0});
  if (rc == 0) rc = ty__scatter_elements_into(c->dx, idx, c->dy, axis, NULL);
  ty_tensor_destroy(idx);
  return rc;
}

int ty__g_gather_nd(ty__gctx *c) {
  return ty__gather_nd_add(c->dx, c->x[1], c->dy,
                           (int)ty_graph_node_attr_int(c->n, "batch_dims", 0));
}

/* ScatterND / ScatterElements: data gets dY where no update landed
 * (everywhere with reduction add); updates get dY gathered at their
 * indices. */
int ty__g_scatter(ty__gctx *c) {
  bool nd = c->op == TY_OP_SCATTER_ND;
  int axis = 0;
  if (!nd &&
      ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", 0), c->dy->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  if (c->wrt == 2)
    return nd ? ty__gather_nd_from(c->dy, c->x[1], 0, c->dx)
              : ty__gather_elements_from(c->dy, c->x[1], axis, c->dx);
  memcpy(c->dx->data, c->dy->data, c->dx->nbytes);
  if (strcmp(ty_graph_node_attr_string(c->n, "reduction", "none"), "none") != 0) return 0;
  ty_tensor *zeros;
  int rc = ty_tensor_create(TY_DTYPE_F32, &c->x[2]->shape, &zeros);
  if (rc != 0) return rc;
  ty_graph_node f = fwd_node(c); /* reduction none: the zeros overwrite */
  rc = nd ? ty__scatter_nd_into(c->dx, c->x[1], zeros, &f)
          : ty__scatter_elements_into(c->dx, c->x[1], zeros, axis, &f);
  ty_tensor_destroy(zeros);
  return rc;
}

int ty__g_depth_space(ty__gctx *c) {
  ty__depth_space_move(c->n, c->op, c->dx, (ty_tensor *)c->dy, true);
  return 0;
}

/* The gradient of a cumulative sum is the cumulative sum of dY the other
 * way, with the same exclusivity. */
int ty__g_cumsum(ty__gctx *c) {
  const ty_shape *s = &c->dx->shape;
  int axis;
  if (ty_axis_normalize(ty__geti(c->x[1]->dtype, c->x[1]->data, 0), s->rank, &axis) != 0)
    return TY_EINTERNAL;
  bool excl = ty_graph_node_attr_int(c->n, "exclusive", 0) != 0,
       rev = ty_graph_node_attr_int(c->n, "reverse", 0) == 0;
  int64_t outer = ty_shape_span(s, 0, axis), dim = s->dims[axis],
          inner = ty_shape_span(s, axis + 1, s->rank);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      double acc = 0;
      for (int64_t k = 0; k < dim; k++) {
        int64_t j = rev ? dim - 1 - k : k, at = (o * dim + j) * inner + i;
        double v = ty_tensor_f32(c->dy)[at];
        if (!excl) acc += v;
        ty_tensor_f32(c->dx)[at] = (float)acc;
        if (excl) acc += v;
      }
    }
  return 0;
}

/* ---- Resize / Upsample: the adjoint of each axis's taps ------------------ */

typedef struct resize_back {
  const ty__resize_axis *ax;
  int64_t inner;
  const float *dy; /* [outer, ax->out, inner] */
  float *dx;       /* [outer, ax->in, inner], zeroed */
} resize_back;

static void resize_back_rows(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const resize_back *b = arg;
  const ty__resize_axis *ax = b->ax;
  int64_t inner = b->inner;
  for (int64_t o = begin; o < end; o++)
    for (int64_t j = 0; j < ax->out; j++) {
      if (ax->outside && ax->outside[j]) continue; /* the extrapolation value is constant */
      const float *g = b->dy + (o * ax->out + j) * inner;
      for (int t = 0; t < ax->taps; t++) {
        float w = ax->w[j * ax->taps + t],
              *d = b->dx + (o * ax->in + ax->idx[j * ax->taps + t]) * inner;
        for (int64_t i = 0; i < inner; i++)
          d[i] += w * g[i];
      }
    }
}

/* The forward ran one pass per resized axis, innermost first; the
 * gradient runs their adjoints outermost first, each scattering dY of its
 * pass into a zeroed buffer shaped like the pass's input. */
int ty__g_resize(ty__gctx *c) {
  ty_graph_node f = fwd_node(c);
  ty__resize_plan p;
  char err[160];
  int rc = ty__resize_plan_make(&f, c->x, c->nx, &p, err, sizeof err);
  if (rc != 0) return rc;
  int r = p.geom.rank, last = -1;
  for (int d = 0; d < r; d++)
    if (p.active[d]) last = d; /* the last adjoint is the innermost resized axis */
  int64_t dims[TY_MAX_RANK];
  memcpy(dims, p.geom.out, (size_t)r * sizeof *dims);
  const float *src = ty_tensor_f32(c->dy);
  float *tmp = NULL;
  if (last < 0) memcpy(c->dx->data, src, (size_t)ty_tensor_numel(c->dx) * sizeof *src);
  for (int d = 0; d < r; d++) {
    if (!p.active[d]) continue;
    int64_t outer = 1, inner = 1;
    for (int e = 0; e < d; e++)
      outer *= dims[e];
    for (int e = d + 1; e < r; e++)
      inner *= dims[e];
    dims[d] = p.geom.in[d];
    int64_t cnt = outer * dims[d] * inner;
    float *dst = d == last ? ty_tensor_f32(c->dx) : ty_xcalloc((size_t)cnt, sizeof *dst);
    resize_back b = {.ax = &p.ax[d], .inner = inner, .dy = src, .dx = dst};
    int64_t row = p.ax[d].out * inner;
    ty__parallel_for(c->workers, outer, row >= TY__PAR_GRAIN ? 1 : TY__PAR_GRAIN / (row ? row : 1),
                     resize_back_rows, &b);
    free(tmp);
    tmp = d == last ? NULL : dst;
    src = dst;
  }
  ty__resize_plan_free(&p);
  return 0;
}
