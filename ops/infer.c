/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape and dtype inference for the compute ops (elementwise, GEMM,
 * softmax, conv, pooling, normalisation, loss), plus the graph-wide pass.
 * The same functions run at import (shapes may hold TY_DIM_BATCH) and in the
 * executor before every kernel (all shapes concrete), so a rule written
 * here is the single definition of an op's output shape.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

#define DT_F32 (1u << TY_DTYPE_F32)
#define DT_I64 (1u << TY_DTYPE_I64)
#define DT_BOOL (1u << TY_DTYPE_BOOL)

/* Checks that input i is present (unless optional) with a dtype in mask. */
static int need(ty__infer *ic, int i, unsigned mask, bool optional) {
  if (i >= ic->n_in || ic->in_dt[i] == TY_DTYPE_INVALID) {
    if (optional) return 0;
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "input %d is missing", i);
  }
  if (!(mask & (1u << ic->in_dt[i])))
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EUNSUPPORTED, "input %d: dtype %s is not supported",
                        i, ty_dtype_name(ic->in_dt[i]));
  return 0;
}

static bool has_in(const ty__infer *ic, int i) { return i < ic->n_in && ic->in_dt[i] != TY_DTYPE_INVALID; }
static const ty_shape *in_shape(const ty__infer *ic, int i) { return &ic->in_shape[i]; }

static int need_rank(ty__infer *ic, int i, int lo, int hi) {
  int r = ic->in_shape[i].rank;
  if (r == TY_RANK_UNKNOWN) return 0;
  if (r < lo || r > hi)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EUNSUPPORTED,
                        "input %d has rank %d, expected %d..%d", i, r, lo, hi);
  return 0;
}

static void set_out(ty__infer *ic, int i, ty_dtype dt, const ty_shape *s) {
  if (i >= ic->n_out) return;
  ic->out_dt[i] = dt;
  ic->out_shape[i] = *s;
}

static int infer_binary(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = need(ic, 0, DT_F32 | DT_I64, false);
  if (rc == 0) rc = need(ic, 1, DT_F32 | DT_I64, false);
  if (rc != 0) return rc;
  if (n->op != TY_OP_POW && ic->in_dt[0] != ic->in_dt[1])
    return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "inputs have dtypes %s and %s",
                        ty_dtype_name(ic->in_dt[0]), ty_dtype_name(ic->in_dt[1]));
  ty_shape out;
  if (ty_shape_broadcast(in_shape(ic, 0), in_shape(ic, 1), &out) != 0) {
    char a[96], b[96];
    ty_shape_format(in_shape(ic, 0), a, sizeof a);
    ty_shape_format(in_shape(ic, 1), b, sizeof b);
    return ty__node_err(ic->err, ic->err_len, n, TY_EINVAL, "shapes %s and %s do not broadcast", a, b);
  }
  set_out(ic, 0, ic->in_dt[0], &out);
  return 0;
}

static int infer_unary(ty__infer *ic) {
  unsigned mask = DT_F32;
  ty_op op = ic->node->op;
  if (op == TY_OP_NEG) mask |= DT_I64;
  if (op == TY_OP_IDENTITY) mask |= DT_I64 | DT_BOOL;
  int rc = need(ic, 0, mask, false);
  if (rc != 0) return rc;
  set_out(ic, 0, ic->in_dt[0], in_shape(ic, 0));
  return 0;
}

static int dims_mismatch(ty__infer *ic, const char *what, int64_t a, int64_t b) {
  if (a >= 0 && b >= 0 && a != b)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "%s: %lld vs %lld", what, (long long)a,
                        (long long)b);
  return 0;
}

static int infer_gemm(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need(ic, 1, DT_F32, false);
  if (rc == 0) rc = need(ic, 2, DT_F32, true);
  if (rc == 0) rc = need_rank(ic, 0, 2, 2);
  if (rc == 0) rc = need_rank(ic, 1, 2, 2);
  if (rc != 0) return rc;
  const ty_shape *a = in_shape(ic, 0), *b = in_shape(ic, 1);
  if (a->rank < 0 || b->rank < 0) {
    ty_shape u = ty_shape_unknown();
    set_out(ic, 0, TY_DTYPE_F32, &u);
    return 0;
  }
  bool ta = ty_graph_node_attr_int(ic->node, "transA", 0), tb = ty_graph_node_attr_int(ic->node, "transB", 0);
  int64_t m = a->dims[ta ? 1 : 0], k = a->dims[ta ? 0 : 1];
  int64_t kb = b->dims[tb ? 1 : 0], nn = b->dims[tb ? 0 : 1];
  if ((rc = dims_mismatch(ic, "inner dimensions differ", k, kb)) != 0) return rc;
  ty_shape out = ty_shape_make(2, (int64_t[]){m, nn}), bc;
  if (has_in(ic, 2)) {
    if (ty_shape_broadcast(&out, in_shape(ic, 2), &bc) != 0 || bc.rank != 2)
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "C does not broadcast to [M,N]");
  }
  set_out(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

/* numpy matmul: 1-D operands are promoted and the added dim removed after;
 * leading dims broadcast. */
static int infer_matmul(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need(ic, 1, DT_F32, false);
  if (rc == 0) rc = need_rank(ic, 0, 1, TY_MAX_RANK);
  if (rc == 0) rc = need_rank(ic, 1, 1, TY_MAX_RANK);
  if (rc != 0) return rc;
  ty_shape a = *in_shape(ic, 0), b = *in_shape(ic, 1), out;
  if (a.rank < 0 || b.rank < 0) {
    out = ty_shape_unknown();
    set_out(ic, 0, TY_DTYPE_F32, &out);
    return 0;
  }
  bool a1 = a.rank == 1, b1 = b.rank == 1;
  if (a1) a = ty_shape_make(2, (int64_t[]){1, a.dims[0]});
  if (b1) b = ty_shape_make(2, (int64_t[]){b.dims[0], 1});
  if ((rc = dims_mismatch(ic, "inner dimensions differ", a.dims[a.rank - 1], b.dims[b.rank - 2])) != 0) return rc;
  ty_shape ba = ty_shape_make(a.rank - 2, a.dims), bb = ty_shape_make(b.rank - 2, b.dims);
  if (ty_shape_broadcast(&ba, &bb, &out) != 0 || out.rank + 2 > TY_MAX_RANK)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "batch dimensions do not broadcast");
  if (!a1) out.dims[out.rank++] = a.dims[a.rank - 2];
  if (!b1) out.dims[out.rank++] = b.dims[b.rank - 1];
  set_out(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

static int infer_softmax(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc != 0) return rc;
  const ty_shape *s = in_shape(ic, 0);
  int64_t dflt = ic->node->opset >= 13 ? -1 : 1;
  int axis;
  if (s->rank >= 0 && ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", dflt), s->rank ? s->rank : 1, &axis) != 0)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "axis %lld is out of range for rank %d",
                        (long long)ty_graph_node_attr_int(ic->node, "axis", dflt), s->rank);
  set_out(ic, 0, TY_DTYPE_F32, s);
  return 0;
}

int ty__window_read(const ty_graph_node *n, int nsp, const int64_t *weight_spatial, const int64_t *in_spatial,
                    ty__window *w, char *err, size_t err_len) {
  memset(w, 0, sizeof *w);
  w->nsp = nsp;
  int64_t v[2 * 3];
  int cnt;
  const char *ap = ty_graph_node_attr_string(n, "auto_pad", "NOTSET");
  bool same = strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0;
  if (!same && strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "attribute auto_pad=%s is not supported", ap);
  if (ty__attr_ints(n, "kernel_shape", v, 3, &cnt) != 0 || (cnt >= 0 && cnt != nsp) || (cnt < 0 && !weight_spatial))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute kernel_shape must have %d values", nsp);
  for (int d = 0; d < nsp; d++) {
    w->kernel[d] = cnt >= 0 ? v[d] : weight_spatial[d];
    w->stride[d] = w->dilation[d] = 1;
  }
  if (ty__attr_ints(n, "strides", v, 3, &cnt) != 0 || (cnt >= 0 && cnt != nsp))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute strides must have %d values", nsp);
  for (int d = 0; d < cnt; d++) w->stride[d] = v[d];
  if (ty__attr_ints(n, "dilations", v, 3, &cnt) != 0 || (cnt >= 0 && cnt != nsp))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute dilations must have %d values", nsp);
  for (int d = 0; d < cnt; d++) w->dilation[d] = v[d];
  if (ty__attr_ints(n, "pads", v, 6, &cnt) != 0 || (cnt >= 0 && cnt != 2 * nsp))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute pads must have %d values", 2 * nsp);
  for (int d = 0; d < nsp && cnt > 0 && !same; d++) {
    w->pad_begin[d] = v[d];
    w->pad_end[d] = v[nsp + d];
  }
  for (int d = 0; d < nsp; d++) {
    if (w->kernel[d] < 1 || w->stride[d] < 1 || w->dilation[d] < 1 || w->pad_begin[d] < 0 || w->pad_end[d] < 0)
      return ty__node_err(err, err_len, n, TY_EINVAL, "kernel, strides, dilations and pads must be positive");
    if (!same || in_spatial[d] < 0) continue;
    int64_t out = (in_spatial[d] + w->stride[d] - 1) / w->stride[d];
    int64_t total = (out - 1) * w->stride[d] + (w->kernel[d] - 1) * w->dilation[d] + 1 - in_spatial[d];
    if (total < 0) total = 0;
    w->pad_begin[d] = strcmp(ap, "SAME_UPPER") == 0 ? total / 2 : total - total / 2;
    w->pad_end[d] = total - w->pad_begin[d];
  }
  w->ceil_mode = ty_graph_node_attr_int(n, "ceil_mode", 0) != 0;
  w->count_include_pad = ty_graph_node_attr_int(n, "count_include_pad", 0) != 0;
  return 0;
}

int64_t ty__window_out(const ty__window *w, int d, int64_t in) {
  if (in < 0) return TY_DIM_UNKNOWN;
  int64_t span = in + w->pad_begin[d] + w->pad_end[d] - ((w->kernel[d] - 1) * w->dilation[d] + 1);
  if (span < 0) return 0;
  int64_t q = w->ceil_mode ? (span + w->stride[d] - 1) / w->stride[d] : span / w->stride[d];
  return q + 1;
}

static int infer_conv(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need(ic, 1, DT_F32, false);
  if (rc == 0) rc = need(ic, 2, DT_F32, true);
  if (rc == 0) rc = need_rank(ic, 0, 3, 4);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0), *wt = in_shape(ic, 1);
  if (x->rank < 0 || wt->rank < 0) {
    ty_shape u = ty_shape_unknown();
    set_out(ic, 0, TY_DTYPE_F32, &u);
    return 0;
  }
  if (wt->rank != x->rank)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "weight rank %d differs from input rank %d",
                        wt->rank, x->rank);
  int nsp = x->rank - 2;
  int64_t group = ty_graph_node_attr_int(ic->node, "group", 1);
  if (group < 1 || (x->dims[1] >= 0 && wt->dims[1] >= 0 && x->dims[1] != wt->dims[1] * group) ||
      (wt->dims[0] >= 0 && wt->dims[0] % group != 0))
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "channels do not match: input %lld, weight %lld x group %lld", (long long)x->dims[1],
                        (long long)wt->dims[1], (long long)group);
  if (has_in(ic, 2) && in_shape(ic, 2)->rank >= 0 &&
      (in_shape(ic, 2)->rank != 1 || dims_mismatch(ic, "bias size", in_shape(ic, 2)->dims[0], wt->dims[0])))
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "bias must be a vector of M values");
  ty__window w;
  if ((rc = ty__window_read(ic->node, nsp, wt->dims + 2, x->dims + 2, &w, ic->err, ic->err_len)) != 0) return rc;
  ty_shape out = *x;
  out.dims[1] = wt->dims[0];
  for (int d = 0; d < nsp; d++) out.dims[2 + d] = ty__window_out(&w, d, x->dims[2 + d]);
  set_out(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

static int infer_pool(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need_rank(ic, 0, 3, 5);
  if (rc != 0) return rc;
  if (ty_graph_node_attr_int(n, "storage_order", 0) != 0)
    return ty__node_err(ic->err, ic->err_len, n, TY_EUNSUPPORTED, "attribute storage_order=%lld is not supported",
                        (long long)ty_graph_node_attr_int(n, "storage_order", 0));
  if (n->op == TY_OP_AVERAGE_POOL && ty_graph_node_attr(n, "dilations"))
    return ty__node_err(ic->err, ic->err_len, n, TY_EUNSUPPORTED, "attribute dilations is not supported");
  const ty_shape *x = in_shape(ic, 0);
  ty_shape out = *x;
  if (x->rank >= 0) {
    ty__window w;
    if ((rc = ty__window_read(n, x->rank - 2, NULL, x->dims + 2, &w, ic->err, ic->err_len)) != 0) return rc;
    for (int d = 0; d < x->rank - 2; d++) out.dims[2 + d] = ty__window_out(&w, d, x->dims[2 + d]);
  }
  set_out(ic, 0, TY_DTYPE_F32, &out);
  if (n->op == TY_OP_MAX_POOL) set_out(ic, 1, TY_DTYPE_I64, &out);
  return 0;
}

static int infer_global_pool(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need_rank(ic, 0, 3, TY_MAX_RANK);
  if (rc != 0) return rc;
  ty_shape out = *in_shape(ic, 0);
  for (int d = 2; d < out.rank; d++) out.dims[d] = 1;
  set_out(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

static int infer_batch_norm(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  for (int i = 1; rc == 0 && i < 5; i++) rc = need(ic, i, DT_F32, false);
  if (rc == 0) rc = need_rank(ic, 0, 2, TY_MAX_RANK);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0);
  for (int i = 1; i < 5; i++) {
    const ty_shape *p = in_shape(ic, i);
    if (p->rank >= 0 && x->rank >= 0 && (p->rank != 1 || dims_mismatch(ic, "channels", p->dims[0], x->dims[1])))
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "input %d must be a vector of C values", i);
  }
  set_out(ic, 0, TY_DTYPE_F32, x);
  for (int i = 1; i < ic->n_out; i++) set_out(ic, i, TY_DTYPE_F32, in_shape(ic, 3));
  return 0;
}

static int infer_layer_norm(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need(ic, 1, DT_F32, false);
  if (rc == 0) rc = need(ic, 2, DT_F32, true);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0);
  ty_shape stat = *x;
  if (x->rank >= 0) {
    int axis;
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", -1), x->rank, &axis) != 0)
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "axis is out of range for rank %d", x->rank);
    for (int d = axis; d < x->rank; d++) stat.dims[d] = 1;
  }
  set_out(ic, 0, TY_DTYPE_F32, x);
  set_out(ic, 1, TY_DTYPE_F32, &stat);
  set_out(ic, 2, TY_DTYPE_F32, &stat);
  return 0;
}

static int infer_sce_loss(ty__infer *ic) {
  int rc = need(ic, 0, DT_F32, false);
  if (rc == 0) rc = need(ic, 1, DT_I64, false);
  if (rc == 0) rc = need(ic, 2, DT_F32, true);
  if (rc == 0) rc = need_rank(ic, 0, 2, TY_MAX_RANK);
  if (rc != 0) return rc;
  const char *red = ty_graph_node_attr_string(ic->node, "reduction", "mean");
  if (strcmp(red, "mean") != 0 && strcmp(red, "sum") != 0 && strcmp(red, "none") != 0)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "attribute reduction=%s is not valid", red);
  const ty_shape *x = in_shape(ic, 0), *y = in_shape(ic, 1);
  if (x->rank >= 0 && y->rank >= 0) {
    bool ok = y->rank == x->rank - 1 && dims_mismatch(ic, "batch", x->dims[0], y->dims[0]) == 0;
    for (int d = 2; ok && d < x->rank; d++) ok = dims_mismatch(ic, "labels", x->dims[d], y->dims[d - 1]) == 0;
    if (!ok) return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "labels must have shape [N,d1,...]");
  }
  ty_shape scalar = ty_shape_make(0, NULL);
  set_out(ic, 0, TY_DTYPE_F32, strcmp(red, "none") == 0 ? y : &scalar);
  set_out(ic, 1, TY_DTYPE_F32, x);
  return 0;
}

int ty__infer_node(ty__infer *ic) {
  for (int i = 0; i < ic->n_out; i++) {
    ic->out_dt[i] = TY_DTYPE_INVALID;
    ic->out_shape[i] = ty_shape_unknown();
  }
  switch (ic->node->op) {
  case TY_OP_ADD: case TY_OP_SUB: case TY_OP_MUL: case TY_OP_DIV: case TY_OP_POW: return infer_binary(ic);
  case TY_OP_RELU: case TY_OP_LEAKY_RELU: case TY_OP_SIGMOID: case TY_OP_TANH: case TY_OP_ERF:
  case TY_OP_SQRT: case TY_OP_EXP: case TY_OP_LOG: case TY_OP_NEG: case TY_OP_IDENTITY: return infer_unary(ic);
  case TY_OP_GEMM: return infer_gemm(ic);
  case TY_OP_MATMUL: return infer_matmul(ic);
  case TY_OP_SOFTMAX: case TY_OP_LOG_SOFTMAX: return infer_softmax(ic);
  case TY_OP_CONV: return infer_conv(ic);
  case TY_OP_MAX_POOL: case TY_OP_AVERAGE_POOL: return infer_pool(ic);
  case TY_OP_GLOBAL_AVERAGE_POOL: return infer_global_pool(ic);
  case TY_OP_BATCH_NORM: return infer_batch_norm(ic);
  case TY_OP_LAYER_NORM: return infer_layer_norm(ic);
  case TY_OP_SOFTMAX_CE_LOSS: return infer_sce_loss(ic);
  case TY_OP_GRAD: return ty__infer_grad(ic);
  default: return ty__infer_shape_op(ic);
  }
}

/* ---- the graph-wide pass ------------------------------------------------ */

static int infer_one(ty_graph *g, size_t idx, const ty_tensor **known, char *err, size_t err_len) {
  const ty_graph_node *n = &g->nodes[idx];
  int ni = n->n_inputs, no = n->n_outputs;
  ty_dtype *dts = calloc((size_t)(ni + no) + 1, sizeof *dts);
  ty_shape *shs = calloc((size_t)(ni + no) + 1, sizeof *shs);
  const ty_tensor **vals = calloc((size_t)ni + 1, sizeof *vals);
  int rc = TY_ENOMEM;
  if (!dts || !shs || !vals) goto fail;
  for (int i = 0; i < ni; i++) {
    int id = n->inputs[i];
    shs[i] = ty_shape_unknown();
    if (id == TY_NO_VALUE) continue;
    dts[i] = g->values[id].dtype;
    shs[i] = g->values[id].shape;
    vals[i] = known[id];
    if (dts[i] == TY_DTYPE_INVALID) {
      rc = ty__node_err(err, err_len, n, TY_EINVAL, "input \"%s\" has no known dtype", g->values[id].name);
      goto fail;
    }
  }
  ty__infer ic = {.node = n, .n_in = ni, .in_dt = dts, .in_shape = shs, .in_val = vals,
                  .n_out = no, .out_dt = dts + ni, .out_shape = shs + ni, .err = err, .err_len = err_len};
  if ((rc = ty__infer_node(&ic)) != 0) goto fail;
  for (int i = 0; i < no; i++) {
    int id = n->outputs[i];
    if (id == TY_NO_VALUE) continue;
    g->values[id].dtype = dts[ni + i];
    g->values[id].shape = shs[ni + i];
  }
  if (n->op == TY_OP_CONSTANT && n->outputs[0] != TY_NO_VALUE)
    known[n->outputs[0]] = ty_graph_node_attr(n, "value")->t;
fail:
  free(dts);
  free(shs);
  free(vals);
  return rc;
}

int ty_graph_infer_shapes(ty_graph *g, char *err, size_t err_len) {
  size_t *order = malloc((g->n_nodes + 1) * sizeof *order);
  const ty_tensor **known = calloc(g->n_values + 1, sizeof *known);
  int rc = TY_ENOMEM;
  if (!order || !known) goto fail;
  if ((rc = ty_graph_topo_order(g, order)) != 0) {
    rc = ty_errf(err, err_len, TY_EINVAL, "graph: has a cycle or reads a value nobody produces");
    goto fail;
  }
  for (size_t i = 0; i < g->n_values; i++) known[i] = g->values[i].init;
  for (size_t i = 0; i < g->n_nodes && rc == 0; i++) rc = infer_one(g, order[i], known, err, err_len);
fail:
  free(order);
  free(known);
  return rc;
}
