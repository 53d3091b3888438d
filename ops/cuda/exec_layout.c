/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor's data-movement launchers, forward and backward:
 * views (a device copy), Transpose, Slice, Split and Concat (blocks moved
 * by copy.cu's strided copy), Where (where.cu) and the Add/Sub gradients
 * of a broadcast input (dY summed to its shape by reduce.cu). Each declines
 * (TY__CX_DECLINED, nothing queued) what it does not handle.
 */
#include "ops/cuda/exec_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <cuda_runtime_api.h>
#include <string.h>

/* ---- views: a device copy of input 0 (forward: the data, backward: dY) ---- */
static int run_copy(ty__cx_node *c) {
  if (ty_shape_numel(&c->in_sh[0]) != ty_shape_numel(&c->out_sh[0]))
    return ty__cx_decline(c, "%s: input and output sizes differ", ty_op_name(c->n->op));
  size_t bytes = (size_t)ty_shape_numel(&c->out_sh[0]) * ty_dtype_size(c->out_dt[0]);
  const void *x = ty__cx_din(c, 0);
  void *y = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return bytes ? ty__cx_cuda_rc(c,
                                (int)cudaMemcpyAsync(y, x, bytes, cudaMemcpyDeviceToDevice,
                                                     (cudaStream_t)c->e->stream),
                                "a view's copy")
               : 0;
}

/* ---- Add / Sub gradients of a broadcast input: dY summed to its shape ---------- */
static int run_sum_to(ty__cx_node *c, float scale) {
  const ty_shape *dy = &c->in_sh[0], *x = &c->out_sh[0];
  if (c->n->opset < 7) return ty__cx_decline(c, "legacy broadcast attributes");
  if (dy->rank > 8 || x->rank > dy->rank) return ty__cx_decline(c, "a broadcast of rank above 8");
  int64_t st[TY_MAX_RANK];
  ty_shape_strides(dy, st);
  ty_cuda_reduce r = {0};
  for (int d = 0; d < dy->rank; d++) {
    int xd = d - (dy->rank - x->rank);
    int64_t xs = xd >= 0 ? x->dims[xd] : 1;
    if (xs == dy->dims[d]) {
      r.keep_dims[r.n_keep] = dy->dims[d];
      r.keep_strides[r.n_keep++] = st[d];
    } else if (xs == 1) {
      r.red_dims[r.n_red] = dy->dims[d];
      r.red_strides[r.n_red++] = st[d];
    } else {
      return ty__cx_decline(c, "a gradient shape that does not broadcast to dY");
    }
  }
  if (ty_shape_numel(dy) == 0) return ty__cx_decline(c, "an empty gradient");
  const float *g = ty__cx_din(c, 0);
  float *out = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_reduce_sum(c->e->kern, &r, scale, g, out, c->e->stream, c->err, c->err_len);
}

/* ---- Slice, Split, Concat: blocks copied by copy.cu ----------------------------- */
/* Copies the block of shape dims between in (strides is, from element
 * in_off) and out (strides os, from out_off); an empty block copies nothing. */
static int copy_block(ty__cx_node *c, const ty_shape *dims, const float *in, int64_t in_off,
                      const int64_t *is, float *out, int64_t out_off, const int64_t *os) {
  if (dims->rank > 8)
    return ty__cx_decline(c, "%s of rank %d (copy.cu takes 8)", ty_op_name(c->n->op), dims->rank);
  if (ty_shape_numel(dims) == 0) return 0;
  ty_cuda_copy cp = {.rank = dims->rank};
  for (int d = 0; d < dims->rank; d++) {
    cp.dims[d] = dims->dims[d];
    cp.in_strides[d] = is[d];
    cp.out_strides[d] = os[d];
  }
  return ty_cuda_strided_copy(c->e->kern, &cp, in + in_off, out + out_off, c->e->stream, c->err,
                              c->err_len);
}

static int zero_fill(ty__cx_node *c, float *p, const ty_shape *s) {
  return ty__cx_cuda_rc(
      c, (int)cudaMemsetAsync(p, 0, (size_t)ty_shape_numel(s) * 4, (cudaStream_t)c->e->stream),
      "zeroing a gradient");
}

/* Slice's first element and strides per dim over x; the forward node's
 * inputs start at input `base` (0 forward, 1 in its TyGrad). */
static int slice_geometry(ty__cx_node *c, int base, const ty_shape *x, int64_t *off, int64_t *st) {
  const ty_tensor *ins[8] = {NULL};
  int n_fwd =
      c->n->op == TY_OP_GRAD ? (int)ty_graph_node_attr_int(c->n, "n_fwd_in", 1) : c->n->n_inputs;
  for (int i = 1; i < n_fwd && i < 8 && base + i < c->n->n_inputs; i++) {
    if (!ty__cx_has_in(c, base + i)) continue;
    const ty__cx_val *v = &c->e->v[c->n->inputs[base + i]];
    if (!v->host_ok) return ty__cx_decline(c, "Slice with parameters on the device only");
    ins[i] = v->host;
  }
  ty__slice sl;
  if (x->rank > 8 || ty__slice_params(c->n, ins, x->rank, &sl) != 0)
    return ty__cx_decline(c, "Slice parameters the launcher cannot read");
  int64_t xs[TY_MAX_RANK], len;
  ty_shape_strides(x, xs);
  *off = 0;
  for (int d = 0; d < x->rank; d++) {
    int64_t first;
    if (sl.step[d] < 1) return ty__cx_decline(c, "Slice with a negative step");
    ty__slice_axis(x->dims[d], sl.start[d], sl.end[d], sl.step[d], &first, &len);
    *off += first * xs[d];
    st[d] = xs[d] * sl.step[d];
  }
  return 0;
}

/* Forward: the block of x; backward: dY into a zeroed dX. */
static int run_slice(ty__cx_node *c, bool grad) {
  const ty_shape *x = grad ? &c->out_sh[0] : &c->in_sh[0], *y = grad ? &c->in_sh[0] : &c->out_sh[0];
  int64_t off = 0, st[TY_MAX_RANK], ys[TY_MAX_RANK];
  int rc = slice_geometry(c, grad ? 1 : 0, x, &off, st);
  if (rc) return rc;
  ty_shape_strides(y, ys);
  const float *in = ty__cx_din(c, 0);
  float *out = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  if (!grad) return copy_block(c, y, in, off, st, out, 0, ys);
  rc = zero_fill(c, out, x);
  return rc ? rc : copy_block(c, y, in, 0, ys, out, off, st);
}

/* The offset along axis of part k of x: the sizes of the parts before it. */
static int axis_of_node(ty__cx_node *c, int rank, int *axis) {
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", 0), rank, axis) != 0)
    return ty__cx_decline(c, "%s: axis out of range", ty_op_name(c->n->op));
  return 0;
}

/* Split forward: each output the block of x at its offset along axis. */
static int run_split(ty__cx_node *c) {
  const ty_shape *x = &c->in_sh[0];
  int axis, rc = axis_of_node(c, x->rank, &axis);
  if (rc) return rc;
  int64_t xs[TY_MAX_RANK], ys[TY_MAX_RANK], at = 0;
  ty_shape_strides(x, xs);
  const float *in = ty__cx_din(c, 0);
  for (int i = 0; rc == 0 && i < c->n->n_outputs; i++) {
    if (c->n->outputs[i] == TY_NO_VALUE) return ty__cx_decline(c, "Split with an unused output");
    float *out = ty__cx_dout(c, i);
    if (c->rc) return c->rc;
    ty_shape_strides(&c->out_sh[i], ys);
    rc = copy_block(c, &c->out_sh[i], in, at * xs[axis], xs, out, 0, ys);
    at += c->out_sh[i].dims[axis];
  }
  return rc;
}

/* Split's TyGrad (attribute out: which output dY is): dY into its block of a
 * zeroed dX; the offset from the forward outputs' shapes (inputs after the
 * forward inputs). */
static int run_split_grad(ty__cx_node *c) {
  const ty_shape *x = &c->out_sh[0];
  int axis, rc = axis_of_node(c, x->rank, &axis);
  if (rc) return rc;
  int part = (int)ty_graph_node_attr_int(c->n, "out", 0);
  int first_out = 1 + (int)ty_graph_node_attr_int(c->n, "n_fwd_in", 1);
  int64_t at = 0, xs[TY_MAX_RANK], ys[TY_MAX_RANK];
  for (int k = 0; k < part; k++) {
    if (!ty__cx_has_in(c, first_out + k))
      return ty__cx_decline(c, "Split gradient without the part sizes");
    at += c->in_sh[first_out + k].dims[axis];
  }
  ty_shape_strides(x, xs);
  ty_shape_strides(&c->in_sh[0], ys);
  const float *dy = ty__cx_din(c, 0);
  float *dx = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  rc = zero_fill(c, dx, x);
  return rc ? rc : copy_block(c, &c->in_sh[0], dy, 0, ys, dx, at * xs[axis], xs);
}

/* Concat forward: each input into its block of the output. */
static int run_concat(ty__cx_node *c) {
  const ty_shape *y = &c->out_sh[0];
  int axis, rc = axis_of_node(c, y->rank, &axis);
  if (rc) return rc;
  int64_t ys[TY_MAX_RANK], xs[TY_MAX_RANK], at = 0;
  ty_shape_strides(y, ys);
  float *out = ty__cx_dout(c, 0);
  for (int i = 0; rc == 0 && i < c->n->n_inputs; i++) {
    if (!ty__cx_has_in(c, i)) continue;
    const float *in = ty__cx_din(c, i);
    if (c->rc) return c->rc;
    ty_shape_strides(&c->in_sh[i], xs);
    rc = copy_block(c, &c->in_sh[i], in, 0, xs, out, at * ys[axis], ys);
    at += c->in_sh[i].dims[axis];
  }
  return c->rc ? c->rc : rc;
}

/* Concat's TyGrad w.r.t. input wrt: its block of dY (the forward inputs
 * before it give the offset). */
static int run_concat_grad(ty__cx_node *c, int wrt) {
  const ty_shape *dy = &c->in_sh[0], *x = &c->out_sh[0];
  int axis, rc = axis_of_node(c, dy->rank, &axis);
  if (rc) return rc;
  int64_t at = 0, ys[TY_MAX_RANK], xs[TY_MAX_RANK];
  for (int k = 0; k < wrt; k++) {
    if (!ty__cx_has_in(c, 1 + k))
      return ty__cx_decline(c, "Concat gradient without the input sizes");
    at += c->in_sh[1 + k].dims[axis];
  }
  ty_shape_strides(dy, ys);
  ty_shape_strides(x, xs);
  const float *g = ty__cx_din(c, 0);
  float *dx = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return copy_block(c, x, g, at * ys[axis], ys, dx, 0, xs);
}

/* ---- Transpose -------------------------------------------------------------- */
static int perm_of(ty__cx_node *c, int rank, int64_t *perm) {
  int cnt = 0;
  if (rank > 8) return ty__cx_decline(c, "Transpose of rank %d (copy.cu takes 8)", rank);
  if (ty__attr_ints(c->n, "perm", perm, TY_MAX_RANK, &cnt) != 0 || (cnt >= 0 && cnt != rank))
    return ty__cx_decline(c, "Transpose: perm does not match the rank");
  for (int d = 0; cnt < 0 && d < rank; d++)
    perm[d] = rank - 1 - d;
  return 0;
}

/* Forward: out[i] = x[perm-strided i]; backward (dX from dY) the inverse. */
static int run_transpose(ty__cx_node *c, bool grad) {
  const ty_shape *x = grad ? &c->out_sh[0] : &c->in_sh[0];
  int64_t perm[TY_MAX_RANK], xs[TY_MAX_RANK], ys[TY_MAX_RANK];
  int rc = perm_of(c, x->rank, perm);
  if (rc) return rc;
  ty_shape y = *x;
  for (int d = 0; d < x->rank; d++)
    y.dims[d] = x->dims[perm[d]];
  ty_shape_strides(x, xs);
  ty_shape_strides(&y, ys);
  ty_cuda_copy cp = {.rank = x->rank};
  for (int d = 0; d < x->rank; d++) {
    if (!grad) { /* over Y's index space: Y dim d walks X dim perm[d] */
      cp.dims[d] = y.dims[d];
      cp.in_strides[d] = xs[perm[d]];
      cp.out_strides[d] = ys[d];
    } else { /* over dY's index space, writing dX */
      cp.dims[d] = y.dims[d];
      cp.in_strides[d] = ys[d];
      cp.out_strides[d] = xs[perm[d]];
    }
  }
  const float *in = ty__cx_din(c, 0);
  float *out = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_strided_copy(c->e->kern, &cp, in, out, c->e->stream, c->err, c->err_len);
}

/* ---- Where --------------------------------------------------------------------- */
/* The output's index space with each operand's broadcast strides. */
static int where_of(ty__cx_node *c, const ty_shape *out, const ty_shape *cond, const ty_shape *x,
                    const ty_shape *y, ty_cuda_where_shape *w) {
  if (out->rank > 8) return ty__cx_decline(c, "Where of rank %d (where.cu takes 8)", out->rank);
  if (ty_shape_numel(out) == 0) return ty__cx_decline(c, "an empty Where");
  *w = (ty_cuda_where_shape){.rank = out->rank};
  int64_t cs[TY_MAX_RANK], xs[TY_MAX_RANK], ys[TY_MAX_RANK];
  ty_broadcast_strides(cond, out, cs);
  ty_broadcast_strides(x, out, xs);
  ty_broadcast_strides(y, out, ys);
  for (int d = 0; d < out->rank; d++) {
    w->dims[d] = out->dims[d];
    w->cond_strides[d] = cs[d];
    w->x_strides[d] = xs[d];
    w->y_strides[d] = ys[d];
  }
  return 0;
}

/* Inputs cond (bool), X, Y. */
static int run_where(ty__cx_node *c) {
  ty_cuda_where_shape w;
  if (c->in_dt[0] != TY_DTYPE_BOOL) return ty__cx_decline(c, "Where on a condition not bool");
  int rc = where_of(c, &c->out_sh[0], &c->in_sh[0], &c->in_sh[1], &c->in_sh[2], &w);
  if (rc) return rc;
  const uint8_t *cond = ty__cx_din(c, 0);
  const float *x = ty__cx_din(c, 1), *y = ty__cx_din(c, 2);
  float *out = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_where(c->e->kern, &w, cond, x, y, out, c->e->stream, c->err, c->err_len);
}

/* TyGrad of Where w.r.t. X (wrt 1) or Y (wrt 2): inputs dY, cond, X, Y; the
 * operand must have dY's shape (a broadcast one would need a sum). */
static int run_where_grad(ty__cx_node *c, int wrt) {
  ty_cuda_where_shape w;
  const ty_shape *dy = &c->in_sh[0];
  if (wrt < 1 || wrt > 2 || !ty__cx_has_in(c, 1) || c->in_dt[1] != TY_DTYPE_BOOL)
    return ty__cx_decline(c, "Where gradient other than of X or Y");
  if (!ty_shape_equal(&c->out_sh[0], dy))
    return ty__cx_decline(c, "Where gradient of a broadcast operand");
  int rc = where_of(c, dy, &c->in_sh[1], dy, dy, &w);
  if (rc) return rc;
  const float *g = ty__cx_din(c, 0);
  const uint8_t *cond = ty__cx_din(c, 1);
  float *dx = ty__cx_dout(c, 0);
  if (c->rc) return c->rc;
  return ty_cuda_where_bwd(c->e->kern, &w, cond, g, wrt == 1, dx, c->e->stream, c->err, c->err_len);
}

static bool view_op(int op) {
  return op == TY_OP_RESHAPE || op == TY_OP_FLATTEN || op == TY_OP_SQUEEZE ||
         op == TY_OP_UNSQUEEZE || op == TY_OP_IDENTITY;
}

int ty__cx_launch_layout(ty__cx_node *c, int op, bool grad, int wrt) {
  if (view_op(op)) return run_copy(c);
  switch (op) {
  case TY_OP_TRANSPOSE:
    return run_transpose(c, grad);
  case TY_OP_SLICE:
    return run_slice(c, grad);
  case TY_OP_SPLIT:
    return grad ? run_split_grad(c) : run_split(c);
  case TY_OP_CONCAT:
    return grad ? run_concat_grad(c, wrt) : run_concat(c);
  case TY_OP_WHERE:
    return grad ? run_where_grad(c, wrt) : run_where(c);
  case TY_OP_ADD:
  case TY_OP_SUB:
    if (!grad) return ty__cx_decline(c, "%s outside a region", ty_op_name((ty_op)op));
    return run_sum_to(c, op == TY_OP_SUB && wrt == 1 ? -1.0f : 1.0f);
  default:
    return ty__cx_decline(c, "%s: no data-movement launcher", ty_op_name((ty_op)op));
  }
}
