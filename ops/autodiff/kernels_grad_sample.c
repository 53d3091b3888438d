/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernel of GridSample (forward and the shared taps:
 * ops/kernels/grid_sample.c), for its input X and its grid.
 *
 * dX: every output element adds dY times each tap's weight into the tap
 * (taps outside the image are none). dgrid: bilinear only (nearest is
 * piecewise constant: zero), with the taps' values v00 v01 v10 v11 (0
 * outside) and the fractions ax, ay,
 *   dL/dix = sum over c of dY ((1 - ay)(v01 - v00) + ay (v11 - v10)),
 *   dL/diy = sum over c of dY ((1 - ax)(v10 - v00) + ax (v11 - v01)),
 * times d(pixel)/d(grid) (0 where border padding clipped the point).
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include <string.h>

static double tap(const float *xp, const ty__gs_tap *t, int k) {
  return t->at[k] >= 0 ? xp[t->at[k]] : 0.0;
}

int ty__g_grid_sample(ty__gctx *c) {
  const ty_tensor *x = c->x[0], *grid = c->x[1];
  ty__gs p;
  if (ty__gs_read(c->n, &p) != 0) return TY_EINTERNAL; /* inference refused the others */
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1], h = x->shape.dims[2], w = x->shape.dims[3],
          ho = grid->shape.dims[1], wo = grid->shape.dims[2];
  const float *xd = x->data, *gd = grid->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  memset(dx, 0, c->dx->nbytes);
  for (int64_t b = 0; b < nb; b++)
    for (int64_t i = 0; i < ho * wo; i++) {
      ty__gs_tap t;
      ty__gs_taps(&p, gd + (b * ho * wo + i) * 2, h, w, &t);
      double gx = 0.0, gy = 0.0;
      for (int64_t ci = 0; ci < ch; ci++) {
        double g = dy[(b * ch + ci) * ho * wo + i];
        if (c->wrt == 0) {
          float *dp = dx + (b * ch + ci) * h * w;
          for (int k = 0; k < 4; k++)
            if (t.at[k] >= 0) dp[t.at[k]] += (float)(g * t.wt[k]);
          continue;
        }
        if (p.nearest) continue;
        const float *xp = xd + (b * ch + ci) * h * w;
        double v00 = tap(xp, &t, 0), v01 = tap(xp, &t, 1), v10 = tap(xp, &t, 2),
               v11 = tap(xp, &t, 3);
        gx += g * ((1.0 - t.ay) * (v01 - v00) + t.ay * (v11 - v10));
        gy += g * ((1.0 - t.ax) * (v10 - v00) + t.ax * (v11 - v01));
      }
      if (c->wrt == 1) {
        dx[(b * ho * wo + i) * 2] = (float)(gx * t.sx);
        dx[(b * ho * wo + i) * 2 + 1] = (float)(gy * t.sy);
      }
    }
  return 0;
}
