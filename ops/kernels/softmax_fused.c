/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The rows of a folded Softmax (ops/fold_softmax.h): its attributes and
 * mask read once per call (ty__smf_init), then per row the scale and the
 * mask applied to x (forward) and their gradients applied to Softmax's
 * (backward). Each step is the float operation the unfolded Mul or Div,
 * Where or Add computed, in the same order, so a folded graph gives the
 * unfolded one's results. The mask broadcasts into x: its offset for a row
 * comes from the row's index in x's leading dims.
 */
#include "ops/fold_softmax.h"
#include "ops/ops_internal.h"

#include <string.h>

bool ty__smf_folded(const ty_graph_node *n) {
  return ty_graph_node_attr(n, TY__SM_SCALE_OP) || ty_graph_node_attr(n, TY__SM_MASK);
}

/* The mask's strides per dim of x (rank r), right-aligned; -1 when the
 * mask does not broadcast into x without growing it. */
static int mask_strides(const ty_shape *m, const ty_shape *x, int64_t *st) {
  int r = x->rank;
  if (m->rank > r) return -1;
  int64_t s = 1;
  for (int d = r - 1; d >= 0; d--) {
    int md = d - (r - m->rank);
    int64_t len = md >= 0 ? m->dims[md] : 1;
    if (len != 1 && len != x->dims[d]) return -1;
    st[d] = len == 1 ? 0 : s;
    s *= len;
  }
  return 0;
}

int ty__smf_init(const ty_graph_node *n, const ty_shape *x, const ty_tensor *m, ty__smf *out) {
  memset(out, 0, sizeof *out);
  out->scale_op = (int)ty_graph_node_attr_int(n, TY__SM_SCALE_OP, TY__SM_SCALE_NONE);
  out->mask = (int)ty_graph_node_attr_int(n, TY__SM_MASK, TY__SM_MASK_NONE);
  out->scale = ty_graph_node_attr_float(n, TY__SM_SCALE, 1.0f);
  out->fill = ty_graph_node_attr_float(n, TY__SM_FILL, 0.0f);
  if (out->scale_op < TY__SM_SCALE_NONE || out->scale_op > TY__SM_SCALE_DIV) return TY_EINVAL;
  if (out->mask < TY__SM_MASK_NONE || out->mask > TY__SM_MASK_ADD) return TY_EINVAL;
  if (x->rank < 1 || x->rank > TY_MAX_RANK) return TY_EINVAL;
  out->lead = x->rank - 1;
  memcpy(out->dims, x->dims, (size_t)x->rank * sizeof *x->dims);
  if (out->mask == TY__SM_MASK_NONE) return m ? TY_EINVAL : 0;
  ty_dtype want = out->mask == TY__SM_MASK_ADD ? TY_DTYPE_F32 : TY_DTYPE_BOOL;
  if (!m || m->dtype != want || mask_strides(&m->shape, x, out->mstride) != 0) return TY_EINVAL;
  out->m = m->data;
  return 0;
}

/* The mask's offset of row r. */
static int64_t mask_offset(const ty__smf *f, int64_t r) {
  int64_t off = 0;
  for (int d = f->lead - 1; d >= 0 && r > 0; d--) {
    off += (r % f->dims[d]) * f->mstride[d];
    r /= f->dims[d];
  }
  return off;
}

/* row[d] = x scaled (in place when row is px). */
static void scale_row(const ty__smf *f, const float *px, float *row, int64_t dim) {
  float s = f->scale;
  if (f->scale_op == TY__SM_SCALE_DIV)
    for (int64_t d = 0; d < dim; d++)
      row[d] = px[d] / s;
  else if (f->scale_op == TY__SM_SCALE_MUL)
    for (int64_t d = 0; d < dim; d++)
      row[d] = px[d] * s;
  else if (row != px)
    memcpy(row, px, (size_t)dim * sizeof *row);
}

/* The fill where the bool mask c (stride ms: 1, or 0 broadcast along the
 * row) says so; the contiguous case as its own loop, which vectorises. */
static void fill_row(const uint8_t *c, int64_t ms, bool fill_on, float fill, float *row,
                     int64_t dim) {
  if (ms == 0) {
    if ((c[0] != 0) == fill_on)
      for (int64_t d = 0; d < dim; d++)
        row[d] = fill;
    return;
  }
  if (fill_on)
    for (int64_t d = 0; d < dim; d++)
      row[d] = c[d] ? fill : row[d];
  else
    for (int64_t d = 0; d < dim; d++)
      row[d] = c[d] ? row[d] : fill;
}

void ty__smf_row(const ty__smf *f, int64_t r, const float *px, float *row) {
  int64_t dim = f->dims[f->lead];
  scale_row(f, px, row, dim);
  if (f->mask == TY__SM_MASK_NONE) return;
  int64_t off = mask_offset(f, r), ms = f->mstride[f->lead];
  if (f->mask == TY__SM_MASK_ADD) {
    const float *m = (const float *)f->m + off;
    if (ms == 1)
      for (int64_t d = 0; d < dim; d++)
        row[d] = row[d] + m[d];
    else
      for (int64_t d = 0; d < dim; d++)
        row[d] = row[d] + m[0];
    return;
  }
  fill_row((const uint8_t *)f->m + off, ms, f->mask == TY__SM_MASK_FILL_TRUE, f->fill, row, dim);
}

void ty__smf_row_grad(const ty__smf *f, int64_t r, float *g) {
  int64_t dim = f->dims[f->lead];
  if (f->mask == TY__SM_MASK_FILL_TRUE || f->mask == TY__SM_MASK_FILL_FALSE)
    fill_row((const uint8_t *)f->m + mask_offset(f, r), f->mstride[f->lead],
             f->mask == TY__SM_MASK_FILL_TRUE, 0.0f, g, dim);
  scale_row(f, g, g, dim);
}
