/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of LRN and MeanVarianceNormalization (forward and their
 * shared geometry: ops/kernels/local_norm.c). Statistics in double.
 *
 * LRN: with s[c] = bias + alpha / size * (window sum of x^2) and
 * y[c] = x[c] s[c]^-beta,
 *   dX[k] = dY[k] s[k]^-beta
 *           - 2 beta alpha / size * x[k] * sum over the c whose window
 *             holds k (c in [k - hi, k + lo]) of dY[c] x[c] s[c]^(-beta-1).
 * MeanVarianceNormalization: per slice, with d = std + eps, M elements,
 *   dX = (dY - mean(dY)) / d - (x - mean) * sum(dY (x - mean)) / (M std d^2),
 * the second term dropped where std is 0 (a constant slice).
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>

int ty__g_lrn(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  ty__lrn p;
  ty__lrn_read(c->n, &p);
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1],
          sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  size_t bytes;
  if (ty_mul_overflow((size_t)(ch * sp), 2 * sizeof(double), &bytes)) return TY_ETOOBIG;
  double *s = bytes ? malloc(bytes) : NULL; /* s, then dY x s^(-beta-1); owned here */
  if (bytes && !s) return TY_ENOMEM;
  double *t = s + ch * sp, k = 2.0 * p.beta * p.alpha / (double)p.size;
  const float *xd = x->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t b = 0; b < nb; b++) {
    const float *xb = xd + b * ch * sp, *gb = dy + b * ch * sp;
    float *db = dx + b * ch * sp;
    ty__lrn_scale(&p, xb, ch, sp, s);
    for (int64_t i = 0; i < ch * sp; i++)
      t[i] = (double)gb[i] * xb[i] * pow(s[i], -p.beta - 1.0);
    for (int64_t q = 0; q < ch; q++) {
      int64_t a = q - p.hi < 0 ? 0 : q - p.hi, e = q + p.lo >= ch ? ch - 1 : q + p.lo;
      for (int64_t i = 0; i < sp; i++) {
        double acc = 0.0;
        for (int64_t cc = a; cc <= e; cc++)
          acc += t[cc * sp + i];
        int64_t at = q * sp + i;
        db[at] = (float)(gb[at] * pow(s[at], -p.beta) - k * xb[at] * acc);
      }
    }
  }
  free(s);
  return 0;
}

int ty__g_mvn(ty__gctx *c) {
  const ty_tensor *x = c->x[0];
  ty__mvn m;
  int rc = ty__mvn_geom(c->n, &x->shape, &m);
  if (rc != 0) return rc == TY_EINVAL ? TY_EINTERNAL : rc; /* inference checked the axes */
  const float *xd = x->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  double cnt = (double)m.count;
  for (int64_t g = 0; g < m.groups; g++) {
    double mean, sd, sg = 0.0, sgx = 0.0;
    ty__mvn_stats(&m, xd, g, &mean, &sd);
    for (int64_t j = 0; j < m.count; j++) {
      int64_t at = m.goff[g] + m.roff[j];
      sg += dy[at];
      sgx += dy[at] * (xd[at] - mean);
    }
    double d = sd + TY__MVN_EPS, gm = sg / cnt, k = sd > 0.0 ? sgx / (cnt * sd * d * d) : 0.0;
    for (int64_t j = 0; j < m.count; j++) {
      int64_t at = m.goff[g] + m.roff[j];
      dx[at] = (float)((dy[at] - gm) / d - (xd[at] - mean) * k);
    }
  }
  free(m.goff);
  return 0;
}
