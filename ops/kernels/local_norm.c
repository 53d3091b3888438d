/* SPDX-License-Identifier: Apache-2.0 */
/*
 * LRN (local response normalisation across channels, nn.LocalResponseNorm)
 * and MeanVarianceNormalization (ONNX's, over the axes attribute), forward
 * kernels and the geometry their backward kernels (ops/autodiff/
 * kernels_grad_norm.c) share. Float only; statistics in double.
 *
 * LRN, as ONNX's reference: for channel c the window is
 * [c - floor((size-1)/2), c + ceil((size-1)/2)] clipped to the channels,
 *   s[c] = bias + alpha / size * sum over the window of x^2,
 *   y[c] = x[c] * s[c]^-beta.
 * MeanVarianceNormalization, as ONNX's function body: per slice of the
 * axes (every index of the other dims), y = (x - mean) / (std + 1e-9),
 * std the biased standard deviation over the slice.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ty__lrn_read(const ty_graph_node *n, ty__lrn *p) {
  p->size = ty_graph_node_attr_int(n, "size", 0);
  p->alpha = ty_graph_node_attr_float(n, "alpha", 1e-4f);
  p->beta = ty_graph_node_attr_float(n, "beta", 0.75f);
  p->bias = ty_graph_node_attr_float(n, "bias", 1.0f);
  p->lo = (p->size - 1) / 2;
  p->hi = p->size - 1 - p->lo;
}

void ty__lrn_scale(const ty__lrn *p, const float *x, int64_t ch, int64_t sp, double *s) {
  double k = p->alpha / (double)p->size;
  for (int64_t c = 0; c < ch; c++) {
    double *sc = s + c * sp;
    for (int64_t i = 0; i < sp; i++)
      sc[i] = 0.0;
    int64_t a = c - p->lo < 0 ? 0 : c - p->lo, b = c + p->hi >= ch ? ch - 1 : c + p->hi;
    for (int64_t q = a; q <= b; q++)
      for (int64_t i = 0; i < sp; i++)
        sc[i] += (double)x[q * sp + i] * x[q * sp + i];
    for (int64_t i = 0; i < sp; i++)
      sc[i] = p->bias + k * sc[i];
  }
}

int ty__k_lrn(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
              ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  ty__lrn p;
  ty__lrn_read(n, &p);
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1],
          sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  size_t bytes;
  if (ty_mul_overflow((size_t)(ch * sp), sizeof(double), &bytes)) return TY_ETOOBIG;
  double *s = bytes ? malloc(bytes) : NULL; /* one image's s, owned here */
  if (bytes && !s) return TY_ENOMEM;
  const float *xd = x->data;
  float *yd = out[0]->data;
  for (int64_t b = 0; b < nb; b++) {
    const float *xb = xd + b * ch * sp;
    ty__lrn_scale(&p, xb, ch, sp, s);
    for (int64_t i = 0; i < ch * sp; i++)
      yd[b * ch * sp + i] = (float)(xb[i] * pow(s[i], -p.beta));
  }
  free(s);
  return 0;
}

int ty__mvn_geom(const ty_graph_node *n, const ty_shape *x, ty__mvn *m) {
  bool red[TY_MAX_RANK] = {false};
  int64_t axes[TY_MAX_RANK];
  int cnt;
  memset(m, 0, sizeof *m);
  if (ty__attr_ints(n, "axes", axes, TY_MAX_RANK, &cnt) != 0) return TY_EINVAL;
  if (cnt < 0) { /* the default: [0, 2, 3] */
    axes[0] = 0, axes[1] = 2, axes[2] = 3;
    cnt = 3;
  }
  for (int i = 0; i < cnt; i++) {
    int a;
    if (ty_axis_normalize(axes[i], x->rank, &a) != 0 || red[a]) return TY_EINVAL;
    red[a] = true;
  }
  m->groups = m->count = 1;
  for (int d = 0; d < x->rank; d++)
    *(red[d] ? &m->count : &m->groups) *= x->dims[d];
  size_t bytes;
  if (ty_mul_overflow((size_t)(m->groups + m->count), sizeof(int64_t), &bytes)) return TY_ETOOBIG;
  if (!(m->goff = malloc(bytes ? bytes : 1))) return TY_ENOMEM;
  m->roff = m->goff + m->groups;
  /* Offsets of the kept and of the reduced dims' indices, each in row-major order. */
  int64_t stride[TY_MAX_RANK], acc = 1;
  for (int d = x->rank - 1; d >= 0; d--) {
    stride[d] = acc;
    acc *= x->dims[d];
  }
  for (int which = 0; which < 2; which++) {
    int64_t *off = which ? m->roff : m->goff, total = which ? m->count : m->groups;
    for (int64_t i = 0; i < total; i++) {
      int64_t rest = i, o = 0;
      for (int d = x->rank - 1; d >= 0; d--) {
        if (red[d] != (which == 1)) continue;
        o += rest % x->dims[d] * stride[d];
        rest /= x->dims[d];
      }
      off[i] = o;
    }
  }
  return 0;
}

void ty__mvn_stats(const ty__mvn *m, const float *x, int64_t g, double *mean, double *sd) {
  const float *xg = x + m->goff[g];
  double s = 0.0, v = 0.0;
  for (int64_t j = 0; j < m->count; j++)
    s += xg[m->roff[j]];
  *mean = m->count ? s / (double)m->count : 0.0;
  for (int64_t j = 0; j < m->count; j++) {
    double d = xg[m->roff[j]] - *mean;
    v += d * d;
  }
  *sd = m->count ? sqrt(v / (double)m->count) : 0.0;
}

int ty__k_mvn(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
              ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  ty__mvn m;
  int rc = ty__mvn_geom(n, &x->shape, &m);
  if (rc != 0) return rc == TY_EINVAL ? TY_EINTERNAL : rc; /* inference checked the axes */
  const float *xd = x->data;
  float *yd = out[0]->data;
  for (int64_t g = 0; g < m.groups; g++) {
    double mean, sd;
    ty__mvn_stats(&m, xd, g, &mean, &sd);
    for (int64_t j = 0; j < m.count; j++) {
      int64_t at = m.goff[g] + m.roff[j];
      yd[at] = (float)((xd[at] - mean) / (sd + TY__MVN_EPS));
    }
  }
  free(m.goff);
  return 0;
}
