/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape and dtype inference of the layers: Gemm, MatMul, Softmax and
 * friends, Conv, ConvTranspose, pooling, normalisation, the losses and
 * Einsum. (The elementwise ops are in infer_elem.c, data movement in
 * infer_shape.c and infer_index.c.) As everywhere, the same rule runs at
 * import with symbolic dims and before every kernel with concrete ones.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"
#include "ops/fold_softmax.h"

#include <math.h>
#include <string.h>

static const ty_shape *in_shape(const ty__infer *ic, int i) {
  return &ic->in_shape[i];
}

static int need_rank(ty__infer *ic, int i, int lo, int hi) {
  int r = ic->in_shape[i].rank;
  if (r == TY_RANK_UNKNOWN) return 0;
  if (r < lo || r > hi)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EUNSUPPORTED,
                        "input %d has rank %d, expected %d..%d", i, r, lo, hi);
  return 0;
}

static int dims_mismatch(ty__infer *ic, const char *what, int64_t a, int64_t b) {
  if (a >= 0 && b >= 0 && a != b)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL, "%s: %lld vs %lld", what,
                        (long long)a, (long long)b);
  return 0;
}

int ty__infer_gemm(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT(F32), true);
  if (rc == 0) rc = need_rank(ic, 0, 2, 2);
  if (rc == 0) rc = need_rank(ic, 1, 2, 2);
  if (rc != 0) return rc;
  const ty_shape *a = in_shape(ic, 0), *b = in_shape(ic, 1);
  if (a->rank < 0 || b->rank < 0) {
    ty_shape u = ty_shape_unknown();
    ty__infer_set(ic, 0, TY_DTYPE_F32, &u);
    return 0;
  }
  bool ta = ty_graph_node_attr_int(ic->node, "transA", 0),
       tb = ty_graph_node_attr_int(ic->node, "transB", 0);
  int64_t m = a->dims[ta ? 1 : 0], k = a->dims[ta ? 0 : 1];
  int64_t kb = b->dims[tb ? 1 : 0], nn = b->dims[tb ? 0 : 1];
  if ((rc = dims_mismatch(ic, "inner dimensions differ", k, kb)) != 0) return rc;
  ty_shape out = ty_shape_make(2, (int64_t[]){m, nn}), bc;
  if (ty__infer_has(ic, 2)) {
    if (ty_shape_broadcast(&out, in_shape(ic, 2), &bc) != 0 || bc.rank != 2)
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                          "C does not broadcast to [M,N]");
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

/* Operand i of a MatMul as the product reads it: through the permutation
 * a fold of a Transpose recorded (kernels/matmul.c), if any. */
static int permuted(ty__infer *ic, int i, ty_shape *s) {
  const char *name = i == 0 ? TY__MM_PERM_A : TY__MM_PERM_B;
  if (!ty_graph_node_attr(ic->node, name)) return 0;
  ty__mm_view v;
  if (ty__mm_view_of(ic->node, i, s, &v) != 0)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "attribute %s is not a permutation of input %d's %d dims that "
                        "leaves one of the last two at stride 1",
                        name, i, s->rank);
  *s = v.dims;
  return 0;
}

/* numpy matmul: 1-D operands are promoted and the added dim removed after;
 * leading dims broadcast. */
int ty__infer_matmul(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 1, TY_MAX_RANK);
  if (rc == 0) rc = need_rank(ic, 1, 1, TY_MAX_RANK);
  if (rc != 0) return rc;
  ty_shape a = *in_shape(ic, 0), b = *in_shape(ic, 1), out;
  if (a.rank < 0 || b.rank < 0) {
    out = ty_shape_unknown();
    ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
    return 0;
  }
  if ((rc = permuted(ic, 0, &a)) != 0 || (rc = permuted(ic, 1, &b)) != 0) return rc;
  bool a1 = a.rank == 1, b1 = b.rank == 1;
  if (a1) a = ty_shape_make(2, (int64_t[]){1, a.dims[0]});
  if (b1) b = ty_shape_make(2, (int64_t[]){b.dims[0], 1});
  if ((rc = dims_mismatch(ic, "inner dimensions differ", a.dims[a.rank - 1], b.dims[b.rank - 2])) !=
      0)
    return rc;
  ty_shape ba = ty_shape_make(a.rank - 2, a.dims), bb = ty_shape_make(b.rank - 2, b.dims);
  if (ty_shape_broadcast(&ba, &bb, &out) != 0 || out.rank + 2 > TY_MAX_RANK)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "batch dimensions do not broadcast");
  if (!a1) out.dims[out.rank++] = a.dims[a.rank - 2];
  if (!b1) out.dims[out.rank++] = b.dims[b.rank - 1];
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

/* The mask of a folded Softmax (input 1) broadcasts into x: right-aligned,
 * each dim 1 or x's (checked where both are known; when the step runs,
 * all are). */
static bool mask_fits(const ty_shape *m, const ty_shape *x) {
  if (m->rank < 0 || x->rank < 0) return true;
  if (m->rank > x->rank) return false;
  for (int d = 0; d < m->rank; d++) {
    int64_t md = m->dims[d], xd = x->dims[x->rank - m->rank + d];
    if (md >= 0 && xd >= 0 && md != 1 && md != xd) return false;
  }
  return true;
}

/* A Softmax with attention's scale and mask folded in (ops/fold_softmax.h):
 * a Softmax over the last axis; input 1 is the mask its kind names. */
static int infer_softmax_fold(ty__infer *ic, const ty_shape *s, int axis) {
  const ty_graph_node *n = ic->node;
  int64_t sop = ty_graph_node_attr_int(n, TY__SM_SCALE_OP, TY__SM_SCALE_NONE),
          mask = ty_graph_node_attr_int(n, TY__SM_MASK, TY__SM_MASK_NONE);
  if (n->op != TY_OP_SOFTMAX)
    return ty__infer_fail(ic, TY_EINVAL, "the fold's attributes on a %s", ty_op_name(n->op));
  if (sop < TY__SM_SCALE_NONE || sop > TY__SM_SCALE_DIV)
    return ty__infer_fail(ic, TY_EINVAL, "attribute %s=%lld is not a scale op", TY__SM_SCALE_OP,
                          (long long)sop);
  if (mask < TY__SM_MASK_NONE || mask > TY__SM_MASK_ADD)
    return ty__infer_fail(ic, TY_EINVAL, "attribute %s=%lld is not a mask kind", TY__SM_MASK,
                          (long long)mask);
  if (s->rank >= 0 && (s->rank < 1 || axis != s->rank - 1))
    return ty__infer_fail(ic, TY_EINVAL, "a folded scale or mask needs the last axis of rank >= 1");
  bool want = mask != TY__SM_MASK_NONE;
  if (ty__infer_has(ic, 1) != want || ic->n_in > 2)
    return ty__infer_fail(ic, TY_EINVAL, "%s: %s", TY__SM_MASK,
                          want ? "input 1 (the mask) is missing"
                               : "an input 1 without a mask kind");
  if (!want) return 0;
  int rc = ty__infer_need(ic, 1, mask == TY__SM_MASK_ADD ? TY__DT(F32) : TY__DT(BOOL), false);
  if (rc != 0) return rc;
  if (!mask_fits(&ic->in_shape[1], s))
    return ty__infer_fail(ic, TY_EINVAL, "input 1 (the mask) does not broadcast into input 0");
  return 0;
}

/* Softmax, LogSoftmax and Hardmax. */
int ty__infer_softmax(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc != 0) return rc;
  const ty_shape *s = in_shape(ic, 0);
  int64_t dflt = ic->node->opset >= 13 ? -1 : 1;
  int axis = -1;
  if (s->rank >= 0 && ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", dflt),
                                        s->rank ? s->rank : 1, &axis) != 0)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "axis %lld is out of range for rank %d",
                        (long long)ty_graph_node_attr_int(ic->node, "axis", dflt), s->rank);
  if (ty__smf_folded(ic->node) && (rc = infer_softmax_fold(ic, s, axis)) != 0) return rc;
  ty__infer_set(ic, 0, TY_DTYPE_F32, s);
  return 0;
}

/* Window attributes beyond this are refused, so window arithmetic on dims
 * up to TY__DIM_MAX cannot overflow. */
#define WINDOW_MAX ((int64_t)1 << 20)

int ty__window_read(const ty_graph_node *n, int nsp, const int64_t *weight_spatial,
                    const int64_t *in_spatial, ty__window *w, char *err, size_t err_len) {
  memset(w, 0, sizeof *w);
  w->nsp = nsp;
  int64_t v[2 * 3];
  int cnt;
  const char *ap = ty_graph_node_attr_string(n, "auto_pad", "NOTSET");
  bool same = strcmp(ap, "SAME_UPPER") == 0 || strcmp(ap, "SAME_LOWER") == 0;
  if (!same && strcmp(ap, "NOTSET") != 0 && strcmp(ap, "VALID") != 0)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "attribute auto_pad=%s is not supported",
                        ap);
  if (ty__attr_ints(n, "kernel_shape", v, 3, &cnt) != 0 || (cnt >= 0 && cnt != nsp) ||
      (cnt < 0 && !weight_spatial))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute kernel_shape must have %d values",
                        nsp);
  for (int d = 0; d < nsp; d++) {
    w->kernel[d] = cnt >= 0 ? v[d] : weight_spatial[d];
    w->stride[d] = w->dilation[d] = 1;
  }
  if (ty__attr_ints(n, "strides", v, 3, &cnt) != 0 || (cnt >= 0 && cnt != nsp))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute strides must have %d values", nsp);
  for (int d = 0; d < cnt; d++)
    w->stride[d] = v[d];
  if (ty__attr_ints(n, "dilations", v, 3, &cnt) != 0 || (cnt >= 0 && cnt != nsp))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute dilations must have %d values", nsp);
  for (int d = 0; d < cnt; d++)
    w->dilation[d] = v[d];
  if (ty__attr_ints(n, "pads", v, 6, &cnt) != 0 || (cnt >= 0 && cnt != 2 * nsp))
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute pads must have %d values", 2 * nsp);
  for (int d = 0; d < nsp && cnt > 0 && !same; d++) {
    w->pad_begin[d] = v[d];
    w->pad_end[d] = v[nsp + d];
  }
  for (int d = 0; d < nsp; d++) {
    if (w->kernel[d] < 1 || w->stride[d] < 1 || w->dilation[d] < 1 || w->pad_begin[d] < 0 ||
        w->pad_end[d] < 0)
      return ty__node_err(err, err_len, n, TY_EINVAL,
                          "kernel, strides, dilations and pads must be positive");
    if (w->kernel[d] > WINDOW_MAX || w->stride[d] > WINDOW_MAX || w->dilation[d] > WINDOW_MAX ||
        w->pad_begin[d] > WINDOW_MAX || w->pad_end[d] > WINDOW_MAX || in_spatial[d] > TY__DIM_MAX)
      return ty__node_err(err, err_len, n, TY_EINVAL,
                          "kernel, strides, dilations and pads must be at most %lld",
                          (long long)WINDOW_MAX);
    if (!same || in_spatial[d] < 0) continue;
    int64_t out = (in_spatial[d] + w->stride[d] - 1) / w->stride[d];
    int64_t total =
        (out - 1) * w->stride[d] + (w->kernel[d] - 1) * w->dilation[d] + 1 - in_spatial[d];
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

int ty__infer_conv(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT(F32), true);
  if (rc == 0) rc = need_rank(ic, 0, 3, 5); /* 1-D to 3-D (nn.Conv3d: rank 5) */
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0), *wt = in_shape(ic, 1);
  if (x->rank < 0 || wt->rank < 0) {
    ty_shape u = ty_shape_unknown();
    ty__infer_set(ic, 0, TY_DTYPE_F32, &u);
    return 0;
  }
  if (wt->rank != x->rank)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "weight rank %d differs from input rank %d", wt->rank, x->rank);
  int nsp = x->rank - 2;
  int64_t group = ty_graph_node_attr_int(ic->node, "group", 1);
  if (group < 1 || (x->dims[1] >= 0 && wt->dims[1] >= 0 && x->dims[1] != wt->dims[1] * group) ||
      (wt->dims[0] >= 0 && wt->dims[0] % group != 0))
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "channels do not match: input %lld, weight %lld x group %lld",
                        (long long)x->dims[1], (long long)wt->dims[1], (long long)group);
  if (ty__infer_has(ic, 2) && in_shape(ic, 2)->rank >= 0 &&
      (in_shape(ic, 2)->rank != 1 ||
       dims_mismatch(ic, "bias size", in_shape(ic, 2)->dims[0], wt->dims[0])))
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "bias must be a vector of M values");
  ty__window w;
  if ((rc = ty__window_read(ic->node, nsp, wt->dims + 2, x->dims + 2, &w, ic->err, ic->err_len)) !=
      0)
    return rc;
  ty_shape out = *x;
  out.dims[1] = wt->dims[0];
  for (int d = 0; d < nsp; d++)
    out.dims[2 + d] = ty__window_out(&w, d, x->dims[2 + d]);
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

int ty__infer_pool(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 3, 5);
  if (rc != 0) return rc;
  if (ty_graph_node_attr_int(n, "storage_order", 0) != 0)
    return ty__node_err(ic->err, ic->err_len, n, TY_EUNSUPPORTED,
                        "attribute storage_order=%lld is not supported",
                        (long long)ty_graph_node_attr_int(n, "storage_order", 0));
  if (n->op == TY_OP_AVERAGE_POOL && ty_graph_node_attr(n, "dilations"))
    return ty__node_err(ic->err, ic->err_len, n, TY_EUNSUPPORTED,
                        "attribute dilations is not supported");
  const ty_shape *x = in_shape(ic, 0);
  ty_shape out = *x;
  if (x->rank >= 0) {
    ty__window w;
    if ((rc = ty__window_read(n, x->rank - 2, NULL, x->dims + 2, &w, ic->err, ic->err_len)) != 0)
      return rc;
    for (int d = 0; d < x->rank - 2; d++)
      out.dims[2 + d] = ty__window_out(&w, d, x->dims[2 + d]);
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  if (n->op == TY_OP_MAX_POOL) ty__infer_set(ic, 1, TY_DTYPE_I64, &out);
  return 0;
}

int ty__infer_global_pool(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 3, TY_MAX_RANK);
  if (rc != 0) return rc;
  ty_shape out = *in_shape(ic, 0);
  for (int d = 2; d < out.rank; d++)
    out.dims[d] = 1;
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

int ty__infer_batch_norm(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  for (int i = 1; rc == 0 && i < 5; i++)
    rc = ty__infer_need(ic, i, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 2, TY_MAX_RANK);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0);
  for (int i = 1; i < 5; i++) {
    const ty_shape *p = in_shape(ic, i);
    if (p->rank >= 0 && x->rank >= 0 &&
        (p->rank != 1 || dims_mismatch(ic, "channels", p->dims[0], x->dims[1])))
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                          "input %d must be a vector of C values", i);
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, x);
  /* Y, then the running and the saved mean and variance (opsets 6-9 name
   * all five; later ones the first three): the kernel writes no sixth. */
  for (int i = 1; i < ic->n_out && i < 5; i++)
    ty__infer_set(ic, i, TY_DTYPE_F32, in_shape(ic, 3));
  return 0;
}

int ty__infer_layer_norm(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT(F32), true);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0);
  ty_shape stat = *x;
  if (x->rank >= 0) {
    int axis;
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", -1), x->rank, &axis) != 0)
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                          "axis is out of range for rank %d", x->rank);
    for (int d = axis; d < x->rank; d++)
      stat.dims[d] = 1;
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, x);
  ty__infer_set(ic, 1, TY_DTYPE_F32, &stat);
  ty__infer_set(ic, 2, TY_DTYPE_F32, &stat);
  return 0;
}

/* SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: scores [N, C,
 * d1...], labels [N, d1...], optional class weights [C]. */
static int loss_rule(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_INDEX, false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT(F32), true);
  if (rc == 0) rc = need_rank(ic, 0, 2, TY_MAX_RANK);
  if (rc != 0) return rc;
  const char *red = ty_graph_node_attr_string(ic->node, "reduction", "mean");
  if (strcmp(red, "mean") != 0 && strcmp(red, "sum") != 0 && strcmp(red, "none") != 0)
    return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                        "attribute reduction=%s is not valid", red);
  const ty_shape *x = in_shape(ic, 0), *y = in_shape(ic, 1);
  if (x->rank >= 0 && y->rank >= 0) {
    bool ok = y->rank == x->rank - 1 && dims_mismatch(ic, "batch", x->dims[0], y->dims[0]) == 0;
    for (int d = 2; ok && d < x->rank; d++)
      ok = dims_mismatch(ic, "labels", x->dims[d], y->dims[d - 1]) == 0;
    if (!ok)
      return ty__node_err(ic->err, ic->err_len, ic->node, TY_EINVAL,
                          "labels must have shape [N,d1,...]");
  }
  const ty_shape *w = in_shape(ic, 2);
  if (ty__infer_has(ic, 2) && w->rank >= 0 &&
      (w->rank != 1 || dims_mismatch(ic, "weights", w->dims[0], x->dims[1])))
    return ty__infer_fail(ic, TY_EINVAL, "weights must be a vector of C values");
  ty_shape scalar = ty_shape_make(0, NULL);
  ty__infer_set(ic, 0, TY_DTYPE_F32, strcmp(red, "none") == 0 ? y : &scalar);
  return 0;
}

int ty__infer_sce_loss(ty__infer *ic) {
  /* Float labels reach here only when import could not tell their dtype
   * before inference (import_soft.c lowers the others). */
  if (ic->n_in > 1 && ty_dtype_is_float(ic->in_dt[1]))
    return ty__infer_fail(ic, TY_EUNSUPPORTED,
                          "labels (input 1) are %s class probabilities computed by ops import "
                          "cannot type before inference; take them from a graph input or end "
                          "their computation with a Cast to float",
                          ty_dtype_name(ic->in_dt[1]));
  int rc = loss_rule(ic);
  if (rc == 0) ty__infer_set(ic, 1, TY_DTYPE_F32, in_shape(ic, 0));
  return rc;
}

int ty__infer_nll_loss(ty__infer *ic) {
  return loss_rule(ic);
}

int ty__infer_instance_norm(ty__infer *ic) {
  int rc = 0;
  for (int i = 0; rc == 0 && i < 3; i++)
    rc = ty__infer_need(ic, i, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 3, TY_MAX_RANK);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0);
  for (int i = 1; i < 3; i++) {
    const ty_shape *p = in_shape(ic, i);
    if (p->rank >= 0 && x->rank >= 0 &&
        (p->rank != 1 || dims_mismatch(ic, "channels", p->dims[0], x->dims[1])))
      return ty__infer_fail(ic, TY_EINVAL, "input %d must be a vector of C values", i);
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, x);
  return 0;
}

int ty__infer_conv_transpose(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT(F32), true);
  if (rc == 0) rc = need_rank(ic, 0, 3, 5);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0), *wt = in_shape(ic, 1);
  ty_shape out = ty_shape_unknown();
  if (x->rank >= 0 && wt->rank >= 0) {
    if (wt->rank != x->rank)
      return ty__infer_fail(ic, TY_EINVAL, "weight rank %d differs from input rank %d", wt->rank,
                            x->rank);
    int64_t group = ty_graph_node_attr_int(ic->node, "group", 1);
    if (group < 1 || (x->dims[1] >= 0 && wt->dims[0] >= 0 && x->dims[1] != wt->dims[0]) ||
        (x->dims[1] >= 0 && x->dims[1] % group != 0))
      return ty__infer_fail(ic, TY_EINVAL,
                            "channels do not match: input %lld, weight %lld, group %lld",
                            (long long)x->dims[1], (long long)wt->dims[0], (long long)group);
    ty__tconv t;
    if ((rc = ty__tconv_read(ic->node, x, wt, &t, ic->err, ic->err_len)) != 0) return rc;
    out = *x;
    out.dims[1] = wt->dims[1] >= 0 ? wt->dims[1] * group : TY_DIM_UNKNOWN;
    for (int d = 0; d < t.nsp; d++)
      out.dims[2 + d] = t.out[d];
    if (ty__infer_has(ic, 2) && in_shape(ic, 2)->rank >= 0 &&
        (in_shape(ic, 2)->rank != 1 ||
         dims_mismatch(ic, "bias size", in_shape(ic, 2)->dims[0], out.dims[1])))
      return ty__infer_fail(ic, TY_EINVAL, "bias must be a vector of M values");
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}

int ty__infer_einsum(ty__infer *ic) {
  if (ic->n_in < 1 || ic->n_in > TY__EINSUM_MAX_IN)
    return ty__infer_fail(ic, TY_EUNSUPPORTED, "takes 1 to %d inputs", TY__EINSUM_MAX_IN);
  int rc = 0;
  for (int i = 0; rc == 0 && i < ic->n_in; i++)
    rc = ty__infer_need(ic, i, TY__DT(F32) | TY__DT(F64), false);
  for (int i = 1; rc == 0 && i < ic->n_in; i++)
    if (ic->in_dt[i] != ic->in_dt[0])
      rc = ty__infer_fail(ic, TY_EINVAL, "inputs have different dtypes");
  if (rc != 0) return rc;
  const char *eq = ty_graph_node_attr_string(ic->node, "equation", NULL);
  if (!eq) return ty__infer_fail(ic, TY_EINVAL, "attribute equation is missing");
  ty_shape out = ty_shape_unknown();
  bool known = true;
  for (int i = 0; i < ic->n_in; i++)
    known &= ic->in_shape[i].rank >= 0;
  if (known) {
    ty__einsum es;
    char why[160];
    if (ty__einsum_parse(eq, ic->in_shape, ic->n_in, &es, why, sizeof why) != 0)
      return ty__infer_fail(ic, TY_EINVAL, "equation \"%s\": %s", eq, why);
    out = es.out_shape;
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

/* LRN: a float [N, C, D1...] input; size is required and positive, and
 * bias + alpha / size * (sum of squares) must stay positive for x^-beta,
 * so bias must be positive and alpha not negative. */
int ty__infer_lrn(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 3, TY_MAX_RANK);
  if (rc != 0) return rc;
  const ty_graph_attr *size = ty_graph_node_attr(n, "size");
  if (!size || size->type != TY_ATTR_INT)
    return ty__infer_fail(ic, TY_EINVAL, "attribute size (an int) is required");
  if (size->i <= 0 || size->i > WINDOW_MAX)
    return ty__infer_fail(ic, TY_EINVAL, "attribute size=%lld must be in 1..%lld",
                          (long long)size->i, (long long)WINDOW_MAX);
  ty__lrn p;
  ty__lrn_read(n, &p);
  if (!(p.bias > 0.0) || !(p.alpha >= 0.0) || !isfinite(p.bias) || !isfinite(p.alpha) ||
      !isfinite(p.beta))
    return ty__infer_fail(ic, TY_EINVAL,
                          "attributes bias=%g and alpha=%g: bias must be positive and alpha not "
                          "negative (and beta=%g finite)",
                          p.bias, p.alpha, p.beta);
  ty__infer_set(ic, 0, TY_DTYPE_F32, in_shape(ic, 0));
  return 0;
}

/* MeanVarianceNormalization: a float input of any rank; axes (default
 * [0, 2, 3], which needs rank 4) in range and distinct. */
int ty__infer_mvn(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 1, TY_MAX_RANK);
  if (rc != 0) return rc;
  const ty_shape *x = in_shape(ic, 0);
  int64_t axes[TY_MAX_RANK + 1];
  int cnt;
  if (ty__attr_ints(n, "axes", axes, TY_MAX_RANK + 1, &cnt) != 0 || cnt > TY_MAX_RANK)
    return ty__infer_fail(ic, TY_EINVAL, "attribute axes must be at most %d ints", TY_MAX_RANK);
  if (x->rank >= 0) {
    bool seen[TY_MAX_RANK] = {false};
    if (cnt < 0) {
      axes[0] = 0, axes[1] = 2, axes[2] = 3;
      cnt = 3;
    }
    for (int i = 0; i < cnt; i++) {
      int a;
      if (ty_axis_normalize(axes[i], x->rank, &a) != 0)
        return ty__infer_fail(ic, TY_EINVAL, "axis %lld is out of range for rank %d%s",
                              (long long)axes[i], x->rank,
                              ty_graph_node_attr(n, "axes") ? "" : " (default axes [0, 2, 3])");
      if (seen[a])
        return ty__infer_fail(ic, TY_EINVAL, "axis %lld is repeated", (long long)axes[i]);
      seen[a] = true;
    }
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, x);
  return 0;
}

/* GridSample: X float [N, C, H, W], grid float [N, Ho, Wo, 2] ->
 * [N, C, Ho, Wo]; bilinear (linear), nearest or bicubic (cubic), zeros,
 * border or reflection padding. */
int ty__infer_grid_sample(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(F32), false);
  if (rc == 0) rc = need_rank(ic, 0, 4, 4);
  if (rc == 0) rc = need_rank(ic, 1, 4, 4);
  if (rc != 0) return rc;
  ty__gs p;
  int bad = ty__gs_read(n, &p);
  if (bad == 1)
    return ty__infer_fail(ic, TY_EUNSUPPORTED,
                          "attribute mode=%s is not supported (bilinear, linear, nearest, "
                          "bicubic or cubic)",
                          ty_graph_node_attr_string(n, "mode", ""));
  if (bad == 2)
    return ty__infer_fail(ic, TY_EUNSUPPORTED,
                          "attribute padding_mode=%s is not supported (zeros, border or "
                          "reflection)",
                          ty_graph_node_attr_string(n, "padding_mode", ""));
  const ty_shape *x = in_shape(ic, 0), *g = in_shape(ic, 1);
  ty_shape out = ty_shape_unknown();
  if (x->rank >= 0 && g->rank >= 0) {
    if ((rc = dims_mismatch(ic, "batch", x->dims[0], g->dims[0])) != 0) return rc;
    if (g->dims[3] >= 0 && g->dims[3] != 2)
      return ty__infer_fail(ic, TY_EINVAL, "grid's last dim is %lld, expected 2 (x, y)",
                            (long long)g->dims[3]);
    out = ty_shape_make(4, (int64_t[]){x->dims[0], x->dims[1], g->dims[1], g->dims[2]});
  }
  ty__infer_set(ic, 0, TY_DTYPE_F32, &out);
  return 0;
}
