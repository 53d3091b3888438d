/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernels that make or rearrange tensors: Pad (constant, reflect, edge),
 * Trilu, Range, ConstantOfShape, EyeLike, OneHot, DepthToSpace and
 * SpaceToDepth, and CumSum. All but Range and CumSum are dtype-agnostic
 * element moves; their output shapes were fixed by inference.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

int64_t ty__pad_src(int64_t o, int64_t begin, int64_t dim, int mode) {
  int64_t i = o - begin;
  if (i >= 0 && i < dim) return i;
  if (mode == 0) return -1;
  if (mode == 2) return i < 0 ? 0 : dim - 1; /* edge */
  if (dim == 1) return 0;
  int64_t period = 2 * (dim - 1); /* reflect, without repeating the edge */
  i %= period;
  if (i < 0) i += period;
  return i < dim ? i : period - i;
}

int ty__pad_mode(const ty_graph_node *n) {
  const char *m = ty_graph_node_attr_string(n, "mode", "constant");
  return !strcmp(m, "reflect") ? 1 : !strcmp(m, "edge") ? 2 : 0;
}

int ty__k_pad(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
              ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int r = x->shape.rank;
  int64_t pads[2 * TY_MAX_RANK], xs[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, cnt = ty_tensor_numel(y);
  if (ty__pad_params(n, in, r, pads) != 0) return TY_EINTERNAL;
  int mode = ty__pad_mode(n);
  size_t es = ty_dtype_size(x->dtype);
  char fill[8] = {0};
  if (n->opset >= 11 && n->n_inputs > 2 && in[2])
    memcpy(fill, in[2]->data, es);
  else if (n->opset < 11)
    ty__putf(x->dtype, fill, 0, ty_graph_node_attr_float(n, "value", 0.0f));
  ty_shape_strides(&x->shape, xs);
  for (int64_t i = 0; i < cnt; i++) {
    int64_t off = 0;
    bool cell = true;
    for (int d = 0; d < r && cell; d++) {
      int64_t s = ty__pad_src(idx[d], pads[d], x->shape.dims[d], mode);
      cell = s >= 0;
      off += s * xs[d];
    }
    memcpy((char *)y->data + (size_t)i * es, cell ? (const char *)x->data + (size_t)off * es : fill,
           es);
    for (int d = r - 1; d >= 0 && ++idx[d] == y->shape.dims[d]; d--)
      idx[d] = 0;
  }
  return 0;
}

int ty__k_trilu(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int r = x->shape.rank;
  int64_t rows = x->shape.dims[r - 2], cols = x->shape.dims[r - 1],
          mats = ty_shape_span(&x->shape, 0, r - 2);
  int64_t k = n->n_inputs > 1 && in[1] ? ty__geti(in[1]->dtype, in[1]->data, 0) : 0;
  bool upper = ty_graph_node_attr_int(n, "upper", 1) != 0;
  size_t es = ty_dtype_size(x->dtype);
  memset(y->data, 0, y->nbytes);
  for (int64_t m = 0; m < mats; m++)
    for (int64_t i = 0; i < rows; i++)
      for (int64_t j = 0; j < cols; j++) {
        if (upper ? j - i < k : j - i > k) continue;
        size_t at = (size_t)((m * rows + i) * cols + j) * es;
        memcpy((char *)y->data + at, (const char *)x->data + at, es);
      }
  return 0;
}

int ty__k_range(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  ty_tensor *y = out[0];
  if (!y) return 0;
  ty_dtype dt = y->dtype;
  int64_t cnt = ty_tensor_numel(y);
  if (ty__dkind_of(dt) == TY__DK_FLOAT) {
    double s = ty__getf(dt, in[0]->data, 0), d = ty__getf(dt, in[2]->data, 0);
    for (int64_t i = 0; i < cnt; i++)
      ty__putf(dt, y->data, i, s + (double)i * d);
    return 0;
  }
  int64_t s = ty__geti(dt, in[0]->data, 0), d = ty__geti(dt, in[2]->data, 0);
  for (int64_t i = 0; i < cnt; i++)
    ty__puti(dt, y->data, i, (int64_t)((uint64_t)s + (uint64_t)i * (uint64_t)d));
  return 0;
}

int ty__k_constant_of_shape(const ty_graph_node *n, const ty_tensor *const *in,
                            ty_tensor *const *out, ty__kctx *ctx) {
  (void)in;
  (void)ctx;
  ty_tensor *y = out[0];
  const ty_graph_attr *v = ty_graph_node_attr(n, "value");
  if (!y || !v) return 0; /* no value: zeros, as allocated */
  size_t es = ty_dtype_size(y->dtype);
  for (int64_t i = 0; i < ty_tensor_numel(y); i++)
    memcpy((char *)y->data + (size_t)i * es, v->t->data, es);
  return 0;
}

int ty__k_eye_like(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                   ty__kctx *ctx) {
  (void)in;
  (void)ctx;
  ty_tensor *y = out[0];
  if (!y) return 0;
  int64_t rows = y->shape.dims[0], cols = y->shape.dims[1], k = ty_graph_node_attr_int(n, "k", 0);
  for (int64_t i = 0; i < rows; i++)
    if (i + k >= 0 && i + k < cols) ty__puti(y->dtype, y->data, i * cols + i + k, 1);
  return 0;
}

int ty__k_one_hot(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                  ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *ind = in[0], *vals = in[2];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", -1), y->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  int64_t depth = y->shape.dims[axis], outer = ty_shape_span(&y->shape, 0, axis);
  int64_t inner = ty_shape_span(&y->shape, axis + 1, y->shape.rank);
  size_t es = ty_dtype_size(y->dtype);
  const char *off = vals->data, *on = (const char *)vals->data + es;
  for (int64_t o = 0; o < outer; o++)
    for (int64_t c = 0; c < depth; c++)
      for (int64_t i = 0; i < inner; i++) {
        int64_t k = (int64_t)ty__getf(ind->dtype, ind->data, o * inner + i);
        if (k < 0) k += depth;
        memcpy((char *)y->data + (size_t)((o * depth + c) * inner + i) * es, k == c ? on : off, es);
      }
  return 0;
}

void ty__depth_space_move(const ty_graph_node *n, ty_op op, const ty_tensor *x, ty_tensor *y,
                          bool back) {
  bool to_space = op == TY_OP_DEPTH_TO_SPACE;
  bool crd = strcmp(ty_graph_node_attr_string(n, "mode", "DCR"), "CRD") == 0;
  int64_t b = ty_graph_node_attr_int(n, "blocksize", 1);
  const int64_t *yd = y->shape.dims, *xd = x->shape.dims;
  size_t es = ty_dtype_size(x->dtype);
  int64_t at = 0;
  for (int64_t nn = 0; nn < yd[0]; nn++)
    for (int64_t c = 0; c < yd[1]; c++)
      for (int64_t h = 0; h < yd[2]; h++)
        for (int64_t w = 0; w < yd[3]; w++, at++) {
          int64_t xc, xh, xw;
          if (to_space) { /* y[c, h, w] reads channel block (h % b, w % b) */
            int64_t by = h % b, bx = w % b;
            xc = crd ? c * b * b + by * b + bx : (by * b + bx) * yd[1] + c;
            xh = h / b;
            xw = w / b;
          } else { /* y channel c = (by * b + bx) * C + xc */
            int64_t blk = c / xd[1];
            xc = c % xd[1];
            xh = h * b + blk / b;
            xw = w * b + blk % b;
          }
          size_t src = (size_t)(((nn * xd[1] + xc) * xd[2] + xh) * xd[3] + xw) * es,
                 dst = (size_t)at * es;
          if (back)
            memcpy((char *)x->data + src, (const char *)y->data + dst, es);
          else
            memcpy((char *)y->data + dst, (const char *)x->data + src, es);
        }
}

int ty__k_depth_space(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                      ty__kctx *ctx) {
  (void)ctx;
  if (out[0]) ty__depth_space_move(n, n->op, in[0], out[0], false);
  return 0;
}

int ty__k_cumsum(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis;
  if (ty_axis_normalize(ty__geti(in[1]->dtype, in[1]->data, 0), x->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  bool excl = ty_graph_node_attr_int(n, "exclusive", 0) != 0,
       rev = ty_graph_node_attr_int(n, "reverse", 0) != 0;
  int64_t outer = ty_shape_span(&x->shape, 0, axis), dim = x->shape.dims[axis];
  int64_t inner = ty_shape_span(&x->shape, axis + 1, x->shape.rank);
  ty__dkind k = ty__dkind_of(x->dtype);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      ty__num acc = {.u = 0};
      for (int64_t s = 0; s < dim; s++) {
        int64_t j = rev ? dim - 1 - s : s, at = (o * dim + j) * inner + i;
        ty__num v = ty__get(x->dtype, x->data, at);
        ty__num next = acc; /* signed sums wrap like unsigned ones */
        if (k == TY__DK_FLOAT)
          next.f += v.f;
        else
          next.u += v.u;
        ty__put(y->dtype, y->data, at, excl ? acc : next);
        acc = next;
      }
    }
  return 0;
}
