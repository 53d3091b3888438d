/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of the reductions beyond Sum/Mean, ConvTranspose,
 * Einsum, NegativeLogLikelihoodLoss, GlobalMaxPool and
 * InstanceNormalization.
 *
 * ReduceMax/Min share dY evenly among the elements tied for the result
 * (PyTorch's amax rule); ReduceProd handles zeros exactly (the product of
 * the others, not y / x). Einsum's gradient for an operand is another
 * einsum of dY with the other operands, broadcast over the labels only that
 * operand had. ConvTranspose reuses its forward geometry: the data gradient
 * is W_g times dY gathered into columns, the filter gradient X_g times
 * their transpose.
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- reductions ----------------------------------------------------------------- */
/* Per output slot: ties with y (Max/Min) or zeros and the product of the
 * nonzero elements (Prod). */
static void slot_stats(ty__gctx *c, const int64_t *ys, double *cnt, double *prod) {
  const ty_tensor *x = c->x[0];
  const float *y = c->y[0]->data;
  for (int64_t i = 0; i < ty_tensor_numel(c->y[0]); i++)
    prod[i] = 1;
  ty__odo w;
  ty__odo_init_strided(&w, &x->shape, ys, 0);
  for (int64_t i = 0; i < ty_tensor_numel(x); i++, ty__odo_next(&w)) {
    float v = ty_tensor_f32(x)[i];
    int64_t o = w.off[0];
    if (c->op == TY_OP_REDUCE_PROD) {
      if (v == 0)
        cnt[o]++;
      else
        prod[o] *= v;
    } else if (v == y[o]) {
      cnt[o]++;
    }
  }
}

static double reduce_partial(ty_op op, double x, double y, double cnt, double prod) {
  switch (op) {
  case TY_OP_REDUCE_MAX:
  case TY_OP_REDUCE_MIN:
    return x == y ? 1.0 / cnt : 0.0;
  case TY_OP_REDUCE_PROD:
    return cnt == 0 ? prod / x : cnt == 1 && x == 0 ? prod : 0.0;
  case TY_OP_REDUCE_L1:
    return (x > 0) - (x < 0);
  case TY_OP_REDUCE_L2:
    return y > 0 ? x / y : 0.0;
  case TY_OP_REDUCE_SUM_SQUARE:
    return 2.0 * x;
  case TY_OP_REDUCE_LOG_SUM:
    return exp(-y);
  default:
    return exp(x - y); /* LogSumExp */
  }
}

int ty__g_reduce_ext(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *yt = c->ny > 0 ? c->y[0] : NULL;
  if (!yt) return TY_EINVAL;
  ty_graph_node f = *c->n; /* the forward node: its op and opset say where axes are */
  f.op = c->op;
  f.n_inputs = c->nx;
  bool red[TY_MAX_RANK], noop;
  if (ty__reduce_mask(&f, c->x, x->shape.rank, red, &noop) != 0) return TY_EINTERNAL;
  if (noop)
    for (int d = 0; d < TY_MAX_RANK; d++)
      red[d] = false;
  int64_t ys[TY_MAX_RANK], ny = ty_tensor_numel(yt);
  ty__reduce_slots(&x->shape, red, ys);
  double *cnt = calloc(2 * (size_t)(ny ? ny : 1), sizeof *cnt), *prod = cnt + (ny ? ny : 1);
  if (!cnt) return TY_ENOMEM;
  slot_stats(c, ys, cnt, prod);
  const float *y = yt->data, *dy = c->dy->data;
  ty__odo w;
  ty__odo_init_strided(&w, &x->shape, ys, 0);
  for (int64_t i = 0; i < ty_tensor_numel(x); i++, ty__odo_next(&w)) {
    int64_t o = w.off[0];
    ty_tensor_f32(c->dx)[i] =
        (float)(dy[o] * reduce_partial(c->op, ty_tensor_f32(x)[i], y[o], cnt[o], prod[o]));
  }
  free(cnt);
  return 0;
}

/* ---- ConvTranspose ---------------------------------------------------------------- */
int ty__g_conv_transpose(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *wt = c->x[1];
  ty__tconv t;
  if (ty__tconv_read(c->n, &x->shape, &wt->shape, &t, NULL, 0) != 0) return TY_EINTERNAL;
  int64_t group = ty_graph_node_attr_int(c->n, "group", 1), batch = x->shape.dims[0];
  int64_t cg = x->shape.dims[1] / group, mg = wt->shape.dims[1], m = mg * group;
  int64_t kv = t.k[0] * t.k[1] * t.k[2], li = t.in[0] * t.in[1] * t.in[2],
          lo = t.out[0] * t.out[1] * t.out[2];
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  if (c->wrt == 2) {
    for (int64_t oc = 0; oc < m; oc++) {
      double s = 0;
      for (int64_t b = 0; b < batch; b++)
        for (int64_t i = 0; i < lo; i++)
          s += dy[(b * m + oc) * lo + i];
      dx[oc] = (float)s;
    }
    return 0;
  }
  size_t ncol;
  if (ty_mul_overflow((size_t)(mg * kv), (size_t)li, &ncol) || ncol > ((size_t)1 << 34))
    return TY_ETOOBIG;
  if (ncol == 0 || cg == 0) return 0;
  float *col = malloc(ncol * sizeof *col);
  if (!col) return TY_ENOMEM;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t g = 0; g < group; g++) {
      ty__tconv_col(&t, mg, (float *)dy + (b * m + g * mg) * lo, col,
                    false); /* gathers, dY is only read */
      const float *xg = ty_tensor_f32(x) + (b * group + g) * cg * li,
                  *wg = ty_tensor_f32(wt) + g * cg * mg * kv;
      if (c->wrt == 0) /* dX_g = W_g col */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)cg, (blasint)li,
                    (blasint)(mg * kv), 1.0f, wg, (blasint)(mg * kv), col, (blasint)li, 0.0f,
                    dx + (b * group + g) * cg * li, (blasint)li);
      else /* dW_g += X_g col^T */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)cg, (blasint)(mg * kv),
                    (blasint)li, 1.0f, xg, (blasint)li, col, (blasint)li, 1.0f,
                    dx + g * cg * mg * kv, (blasint)(mg * kv));
    }
  free(col);
  return 0;
}

/* ---- Einsum ---------------------------------------------------------------------- */
/* dx (an operand with repeated labels) from r over its distinct labels:
 * dim d of dx is label slot[d] of r; an element whose dims of one label
 * differ is off the diagonal and gets 0. A dim of size 1 in r broadcasts. */
static void einsum_diag_copy(const ty_tensor *r, const int *slot, ty_tensor *dx) {
  const ty_shape *xs = &dx->shape, *rs = &r->shape;
  int64_t idx[TY_MAX_RANK] = {0}, rst[TY_MAX_RANK], n = ty_tensor_numel(dx);
  for (int k = rs->rank - 1, st = 1; k >= 0; k--) {
    rst[k] = st;
    st *= (int)rs->dims[k];
  }
  for (int64_t i = 0; i < n; i++) {
    int64_t at[TY_MAX_RANK], off = 0;
    bool diag = true;
    for (int k = 0; k < rs->rank; k++)
      at[k] = -1;
    for (int d = 0; d < xs->rank && diag; d++) {
      int k = slot[d];
      diag = at[k] < 0 || at[k] == idx[d];
      at[k] = idx[d];
    }
    for (int k = 0; k < rs->rank && diag; k++)
      off += (rs->dims[k] == 1 ? 0 : at[k]) * rst[k];
    ty_tensor_f32(dx)[i] = diag ? ty_tensor_f32(r)[off] : 0.0f;
    for (int d = xs->rank - 1; d >= 0 && ++idx[d] == xs->dims[d]; d--)
      idx[d] = 0;
  }
}

int ty__g_einsum(ty__gctx *c) {
  ty_shape shapes[TY__EINSUM_MAX_IN];
  for (int i = 0; i < c->nx; i++)
    shapes[i] = c->x[i]->shape;
  ty__einsum es, ge;
  char why[160];
  if (ty__einsum_parse(ty_graph_node_attr_string(c->n, "equation", ""), shapes, c->nx, &es, why,
                       sizeof why) != 0)
    return TY_EINTERNAL;
  /* d operand w = einsum(dY, the others -> w's labels they carry); w's
   * other labels were summed over, so the result is broadcast over them. */
  ge = es;
  ge.n_in = 0;
  const ty_tensor *gin[TY__EINSUM_MAX_IN];
  bool have[TY__EINSUM_MAX_LABELS] = {false};
  gin[ge.n_in] = c->dy;
  ge.in_rank[ge.n_in] = es.out_rank;
  memcpy(ge.in_lab[ge.n_in++], es.out_lab, sizeof es.out_lab);
  for (int d = 0; d < es.out_rank; d++)
    have[es.out_lab[d]] = true;
  for (int i = 0; i < c->nx; i++) {
    if (i == c->wrt) continue;
    gin[ge.n_in] = c->x[i];
    ge.in_rank[ge.n_in] = es.in_rank[i];
    memcpy(ge.in_lab[ge.n_in++], es.in_lab[i], sizeof es.in_lab[i]);
    for (int d = 0; d < es.in_rank[i]; d++)
      have[es.in_lab[i][d]] = true;
  }
  /* The gradient over w's distinct labels (a repeated one, "ii->i", is a
   * diagonal: it gets dY there and zero off it). */
  const int8_t *wl = es.in_lab[c->wrt];
  int wr = es.in_rank[c->wrt], slot[TY_MAX_RANK];
  ge.out_rank = 0;
  for (int d = 0; d < wr; d++) {
    slot[d] = ge.out_rank;
    for (int e = 0; e < d; e++)
      if (wl[e] == wl[d]) slot[d] = slot[e];
    if (slot[d] == ge.out_rank) ge.out_lab[ge.out_rank++] = wl[d];
  }
  ty_shape part = ty_shape_make(0, NULL);
  part.rank = ge.out_rank;
  for (int d = 0; d < ge.out_rank; d++) {
    /* A label summed away by the forward pass, or of size 1 in the
     * operand (broadcast), gets its sum: the result is broadcast over it. */
    part.dims[d] = have[ge.out_lab[d]] ? es.dim[ge.out_lab[d]] : 1;
    if (!have[ge.out_lab[d]]) ge.dim[ge.out_lab[d]] = 1;
  }
  for (int d = 0; d < wr; d++)
    if (c->dx->shape.dims[d] == 1) part.dims[slot[d]] = 1;
  ge.out_shape = part;
  ty_tensor *r;
  int rc = ty_tensor_create(TY_DTYPE_F32, &part, &r);
  if (rc != 0) return rc;
  rc = ty__einsum_run(&ge, gin, r);
  if (rc == 0 && ge.out_rank == wr)
    ty__broadcast_copy(r, c->dx);
  else if (rc == 0)
    einsum_diag_copy(r, slot, c->dx);
  ty_tensor_destroy(r);
  return rc;
}

/* ---- NegativeLogLikelihoodLoss ----------------------------------------------------- */
int ty__g_nll(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *lab = c->x[1], *wt = c->nx > 2 ? c->x[2] : NULL;
  int64_t nb = x->shape.dims[0], cl = x->shape.dims[1],
          inner = ty_shape_span(&x->shape, 2, x->shape.rank);
  const char *red = ty_graph_node_attr_string(c->n, "reduction", "mean");
  const ty_graph_attr *ig = ty_graph_node_attr(c->n, "ignore_index");
  bool none = strcmp(red, "none") == 0, mean = strcmp(red, "mean") == 0;
  const float *w = wt ? wt->data : NULL, *dy = c->dy->data;
  double wsum = 0;
  for (int64_t i = 0; i < nb * inner; i++) {
    int64_t y = ty__geti(lab->dtype, lab->data, i);
    if (ig && y == ig->i) continue;
    if (y < 0 || y >= cl) return TY_EINVAL;
    wsum += w ? w[y] : 1.0;
  }
  for (int64_t b = 0; b < nb; b++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t at = b * inner + i, y = ty__geti(lab->dtype, lab->data, at);
      if (ig && y == ig->i) continue;
      double g = (none ? dy[at] : dy[0]) * (w ? w[y] : 1.0) / (mean && wsum != 0 ? wsum : 1.0);
      ty_tensor_f32(c->dx)[(b * cl + y) * inner + i] = (float)-g;
    }
  return 0;
}

/* ---- GlobalMaxPool, InstanceNormalization -------------------------------------------- */
int ty__g_global_max_pool(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  int64_t planes = x->shape.dims[0] * x->shape.dims[1],
          sz = ty_shape_span(&x->shape, 2, x->shape.rank);
  for (int64_t p = 0; p < planes && sz; p++) {
    const float *px = ty_tensor_f32(x) + p * sz;
    int64_t best = 0;
    for (int64_t i = 1; i < sz; i++)
      if (px[i] > px[best]) best = i;
    ty_tensor_f32(c->dx)[p * sz + best] = ty_tensor_f32(c->dy)[p];
  }
  return 0;
}

/* Per plane: xhat = (x - mean) * inv, g = dY * scale[c];
 * dX = inv / M * (M g - sum g - xhat sum(g xhat)). */
int ty__g_instance_norm(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1],
          sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  double eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f);
  const float *xd = x->data, *sc = c->x[1]->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t p = 0; p < nb * ch; p++) {
    const float *px = xd + p * sp, *pg = dy + p * sp;
    int64_t k = p % ch;
    double mean, inv, sg = 0, sgx = 0;
    ty__moments(px, sp, eps, &mean, &inv);
    for (int64_t i = 0; i < sp; i++) {
      double xh = (px[i] - mean) * inv;
      sg += pg[i];
      sgx += pg[i] * xh;
    }
    if (c->wrt == 1) dx[k] += (float)sgx;
    if (c->wrt == 2) dx[k] += (float)sg;
    for (int64_t i = 0; c->wrt == 0 && i < sp; i++) {
      double xh = (px[i] - mean) * inv;
      dx[p * sp + i] = (float)(sc[k] * inv / (double)sp * ((double)sp * pg[i] - sg - xh * sgx));
    }
  }
  return 0;
}
