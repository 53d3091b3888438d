/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of the layers: MatMul, Conv (1-D and 2-D, groups,
 * strides, pads, dilations), MaxPool/AveragePool (1-D to 3-D),
 * GlobalAveragePool, BatchNormalization and LayerNormalization.
 *
 * Conv follows the forward kernel's im2col layout: the filter gradient is
 * dY x col^T per image and group (one cblas_sgemm, accumulated over the
 * batch), the data gradient is W^T x dY scattered back with col2im.
 * MaxPool routes dY to the first maximum of each window, the element the
 * forward kernel picked.
 */
#include "ops/autodiff/grad_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- MatMul -------------------------------------------------------------- */
int ty__g_matmul(ty__gctx *c) {
  const ty_tensor *a = c->x[0], *b = c->x[1];
  /* 1-D operands as the forward kernel takes them: [K] is [1, K] on the
   * left and [K, 1] on the right; dY has the same elements either way. */
  ty_shape pa = a->shape.rank == 1 ? ty_shape_make(2, (int64_t[]){1, a->shape.dims[0]}) : a->shape;
  ty_shape pb = b->shape.rank == 1 ? ty_shape_make(2, (int64_t[]){b->shape.dims[0], 1}) : b->shape;
  const ty_shape *as = &pa, *bs = &pb;
  int64_t m = as->dims[as->rank - 2], k = as->dims[as->rank - 1], n = bs->dims[bs->rank - 1];
  ty_shape ab = ty_shape_make(as->rank - 2, as->dims), bb = ty_shape_make(bs->rank - 2, bs->dims),
           batch;
  if (ty_shape_broadcast(&ab, &bb, &batch) != 0) return TY_EINTERNAL;
  int64_t sa[TY_MAX_RANK], sb[TY_MAX_RANK], idx[TY_MAX_RANK] = {0}, oa = 0, ob = 0;
  ty_broadcast_strides(&ab, &batch, sa);
  ty_broadcast_strides(&bb, &batch, sb);
  int64_t nbatch = ty_shape_numel(&batch);
  const float *ad = a->data, *bd = b->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t i = 0; i < nbatch; i++) {
    const float *g = dy + i * m * n;
    if (c->wrt == 0) /* dA = dY B^T */
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)m, (blasint)k, (blasint)n, 1.0f, g,
                  (blasint)n, bd + ob * k * n, (blasint)n, 1.0f, dx + oa * m * k, (blasint)k);
    else /* dB = A^T dY */
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)k, (blasint)n, (blasint)m, 1.0f,
                  ad + oa * m * k, (blasint)k, g, (blasint)n, 1.0f, dx + ob * k * n, (blasint)n);
    for (int d = batch.rank - 1; d >= 0; d--) {
      idx[d]++;
      oa += sa[d];
      ob += sb[d];
      if (idx[d] < batch.dims[d]) break;
      oa -= sa[d] * idx[d];
      ob -= sb[d] * idx[d];
      idx[d] = 0;
    }
  }
  return 0;
}

/* ---- Conv ---------------------------------------------------------------- */
/* im2col (to_col) or its adjoint col2im accumulating into x (!to_col). */
static void col_xfer(float *x, const ty__conv_geom *g, float *col, bool to_col) {
  int64_t osz = g->oh * g->ow;
  for (int64_t ch = 0; ch < g->c; ch++)
    for (int64_t ki = 0; ki < g->kh; ki++)
      for (int64_t kj = 0; kj < g->kw; kj++) {
        float *row = col + ((ch * g->kh + ki) * g->kw + kj) * osz;
        for (int64_t oy = 0; oy < g->oh; oy++) {
          int64_t iy = oy * g->sh - g->ph + ki * g->dh;
          for (int64_t ox = 0; ox < g->ow; ox++) {
            int64_t ix = ox * g->sw - g->pw + kj * g->dw;
            if (iy < 0 || iy >= g->h || ix < 0 || ix >= g->w) {
              if (to_col) row[oy * g->ow + ox] = 0.0f;
              continue;
            }
            float *px = x + (ch * g->h + iy) * g->w + ix;
            if (to_col) row[oy * g->ow + ox] = *px;
            else *px += row[oy * g->ow + ox];
          }
        }
      }
}

static void conv_bias_grad(const ty__gctx *c, int64_t batch, int64_t m, int64_t osz) {
  const float *dy = c->dy->data;
  float *db = c->dx->data;
  for (int64_t oc = 0; oc < m; oc++) {
    double s = 0;
    for (int64_t b = 0; b < batch; b++)
      for (int64_t i = 0; i < osz; i++) s += dy[(b * m + oc) * osz + i];
    db[oc] = (float)s;
  }
}

int ty__g_conv(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *wt = c->x[1];
  ty__conv_geom g;
  int rc = ty__conv_geom_init(c->n, &x->shape, &wt->shape, &c->dy->shape, &g);
  if (rc != 0) return rc;
  int64_t group = ty_graph_node_attr_int(c->n, "group", 1);
  int64_t batch = x->shape.dims[0], m = wt->shape.dims[0], mg = m / group;
  int64_t kdim = g.c * g.kh * g.kw, osz = g.oh * g.ow, isz = g.c * g.h * g.w;
  if (c->wrt == 2) {
    conv_bias_grad(c, batch, m, osz);
    return 0;
  }
  size_t ncol; /* the column buffer is larger than any tensor here: checked */
  if (ty_mul_overflow((size_t)kdim, (size_t)osz, &ncol) ||
      ty_mul_overflow(ncol, sizeof(float), &ncol))
    return TY_ETOOBIG;
  if (ncol == 0) return 0;
  float *col = malloc(ncol);
  if (!col) return TY_ENOMEM;
  const float *dy = c->dy->data, *wd = wt->data;
  float *xd = x->data, *dx = c->dx->data;
  for (int64_t b = 0; b < batch; b++)
    for (int64_t gi = 0; gi < group; gi++) {
      const float *gy = dy + (b * m + gi * mg) * osz;
      if (c->wrt == 1) { /* dW[g] += dY[b,g] col^T */
        col_xfer(xd + (b * group + gi) * isz, &g, col, true);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (blasint)mg, (blasint)kdim, (blasint)osz, 1.0f, gy,
                    (blasint)osz, col, (blasint)osz, 1.0f, dx + gi * mg * kdim, (blasint)kdim);
      } else { /* col = W[g]^T dY[b,g]; dX += col2im(col) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)kdim, (blasint)osz, (blasint)mg, 1.0f,
                    wd + gi * mg * kdim, (blasint)kdim, gy, (blasint)osz, 0.0f, col, (blasint)osz);
        col_xfer(dx + (b * group + gi) * isz, &g, col, false);
      }
    }
  free(col);
  return 0;
}

/* ---- pooling ------------------------------------------------------------- */
/* Routes g to the window of output o: to its first maximum (max) or evenly
 * over the window's elements (average, with the forward kernel's divisor). */
static void pool_back(const ty__pool3 *p, const float *x, float *dx, const int64_t *o, bool is_max, bool incl_pad,
                      float g) {
  int64_t lo[3], hi[3], padded, cnt = 0, best_i = -1;
  float best = -INFINITY;
  ty__pool3_window(p, o, lo, hi, &padded);
  for (int pass = 0; pass < 2; pass++) {
    float share = pass == 1 && !is_max ? g / (float)(incl_pad ? padded : (cnt ? cnt : 1)) : 0.0f;
    for (int64_t a = lo[0]; a < hi[0]; a += p->d[0])
      for (int64_t b = lo[1]; b < hi[1]; b += p->d[1])
        for (int64_t cc = lo[2]; cc < hi[2]; cc += p->d[2]) {
          if (a < 0 || a >= p->in[0] || b < 0 || b >= p->in[1] || cc < 0 || cc >= p->in[2]) continue;
          int64_t at = (a * p->in[1] + b) * p->in[2] + cc;
          if (pass == 0) {
            cnt++;
            if (x[at] > best || best_i < 0) {
              best = x[at];
              best_i = at;
            }
          } else if (!is_max) {
            dx[at] += share;
          }
        }
    if (pass == 0 && is_max) {
      if (best_i >= 0) dx[best_i] += g;
      return;
    }
  }
}

int ty__g_pool(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  ty__window w;
  if (ty__window_read(c->n, x->shape.rank - 2, NULL, x->shape.dims + 2, &w, NULL, 0) != 0) return TY_EINTERNAL;
  ty__pool3 p;
  ty__pool3_init(&w, &x->shape, &c->dy->shape, &p);
  bool is_max = c->op == TY_OP_MAX_POOL;
  int64_t planes = x->shape.dims[0] * x->shape.dims[1];
  int64_t isz = p.in[0] * p.in[1] * p.in[2], osz = p.out[0] * p.out[1] * p.out[2];
  const float *dy = c->dy->data;
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = ty_tensor_f32(x) + pl * isz;
    float *dxp = ty_tensor_f32(c->dx) + pl * isz;
    int64_t o[3], at = pl * osz;
    for (o[0] = 0; o[0] < p.out[0]; o[0]++)
      for (o[1] = 0; o[1] < p.out[1]; o[1]++)
        for (o[2] = 0; o[2] < p.out[2]; o[2]++, at++)
          pool_back(&p, xp, dxp, o, is_max, w.count_include_pad, dy[at]);
  }
  return 0;
}

int ty__g_global_pool(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  int64_t planes = x->shape.dims[0] * x->shape.dims[1], sz = ty_shape_span(&x->shape, 2, x->shape.rank);
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t pl = 0; pl < planes; pl++)
    for (int64_t i = 0; i < sz; i++) dx[pl * sz + i] = dy[pl] / (float)sz;
  return 0;
}

/* ---- normalisation ------------------------------------------------------- */
/* Per channel: xhat = (x - mean) * inv; with batch statistics
 * dX = scale * inv / M * (M * dy - sum dy - xhat * sum(dy * xhat)). */
int ty__g_batch_norm(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  const float *xd = x->data, *scale = c->x[1]->data, *rmean = c->x[3]->data, *rvar = c->x[4]->data;
  const float *dy = c->dy->data;
  float *dx = c->dx->data;
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1], sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  float eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f);
  bool training = ty_graph_node_attr_int(c->n, "training_mode", 0) != 0 || c->training;
  double cnt = (double)(nb * sp);
  for (int64_t k = 0; k < ch; k++) {
    double s = 0, s2 = 0, mean = rmean[k], var = rvar[k];
    if (training && cnt > 0) {
      for (int64_t b = 0; b < nb; b++)
        for (int64_t i = 0; i < sp; i++) s += xd[(b * ch + k) * sp + i];
      mean = s / cnt;
      for (int64_t b = 0; b < nb; b++)
        for (int64_t i = 0; i < sp; i++) s2 += (xd[(b * ch + k) * sp + i] - mean) * (xd[(b * ch + k) * sp + i] - mean);
      var = (float)(s2 / cnt);
    }
    double inv = 1.0 / sqrt((double)(float)var + eps), sdy = 0, sdyx = 0;
    for (int64_t b = 0; b < nb; b++)
      for (int64_t i = 0; i < sp; i++) {
        int64_t at = (b * ch + k) * sp + i;
        sdy += dy[at];
        sdyx += dy[at] * (xd[at] - mean) * inv;
      }
    if (c->wrt == 1) dx[k] = (float)sdyx;
    if (c->wrt == 2) dx[k] = (float)sdy;
    if (c->wrt != 0) continue;
    for (int64_t b = 0; b < nb; b++)
      for (int64_t i = 0; i < sp; i++) {
        int64_t at = (b * ch + k) * sp + i;
        double xh = (xd[at] - mean) * inv;
        dx[at] = training ? (float)(scale[k] * inv / cnt * (cnt * dy[at] - sdy - xh * sdyx))
                          : (float)(scale[k] * inv * dy[at]);
      }
  }
  return 0;
}

int ty__g_layer_norm(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *sc = c->x[1];
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(c->n, "axis", -1), x->shape.rank, &axis) != 0) return TY_EINTERNAL;
  int64_t rows = ty_shape_span(&x->shape, 0, axis), cols = ty_shape_span(&x->shape, axis, x->shape.rank);
  int64_t ns = ty_tensor_numel(sc);
  float eps = ty_graph_node_attr_float(c->n, "epsilon", 1e-5f);
  const float *xd = x->data, *sd = sc->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  int64_t nd = ty_tensor_numel(c->dx);
  double *acc = c->wrt != 0 ? calloc((size_t)(nd ? nd : 1), sizeof *acc) : NULL;
  if (c->wrt != 0 && !acc) return TY_ENOMEM;
  for (int64_t r = 0; r < rows; r++) {
    const float *px = xd + r * cols, *pg = dy + r * cols;
    double mean, inv, sg = 0, sgx = 0;
    ty__moments(px, cols, eps, &mean, &inv);
    for (int64_t i = 0; i < cols; i++) {
      double xh = (px[i] - mean) * inv, gi = pg[i] * (double)sd[ns == 1 ? 0 : i];
      if (c->wrt == 1) acc[nd == 1 ? 0 : i] += pg[i] * xh;
      if (c->wrt == 2) acc[nd == 1 ? 0 : i] += pg[i];
      sg += gi;
      sgx += gi * xh;
    }
    for (int64_t i = 0; i < cols && c->wrt == 0; i++) {
      double xh = (px[i] - mean) * inv, gi = pg[i] * (double)sd[ns == 1 ? 0 : i];
      dx[r * cols + i] = (float)(inv / (double)cols * ((double)cols * gi - sg - xh * sgx));
    }
  }
  for (int64_t i = 0; acc && i < nd; i++) dx[i] = (float)acc[i];
  free(acc);
  return 0;
}
