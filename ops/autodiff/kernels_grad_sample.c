/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernel of GridSample (forward and the shared taps:
 * ops/kernels/grid_sample.c), for its input X and its grid.
 *
 * dX: every output element adds dY times each tap's weight into the tap
 * (taps outside the image are none; with border or reflection padding
 * several taps may be one pixel). dgrid: the sum over the channels of dY
 * times the sum over the taps of the tap's value (0 outside) times its
 * weight's derivative by the grid's x and y; the taps carry those
 * derivatives with the padding's (0 where clipping held the point, a sign
 * flip where reflection mirrored it). Nearest is piecewise constant: its
 * grid gradient is zero.
 */
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include <string.h>

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
          for (int k = 0; k < t.n; k++)
            if (t.at[k] >= 0) dp[t.at[k]] += (float)(g * t.wt[k]);
          continue;
        }
        if (p.mode == TY__GS_NEAREST) continue;
        const float *xp = xd + (b * ch + ci) * h * w;
        for (int k = 0; k < t.n; k++)
          if (t.at[k] >= 0) {
            gx += g * xp[t.at[k]] * t.dgx[k];
            gy += g * xp[t.at[k]] * t.dgy[k];
          }
      }
      if (c->wrt == 1) {
        dx[(b * ho * wo + i) * 2] = (float)gx;
        dx[(b * ho * wo + i) * 2 + 1] = (float)gy;
      }
    }
  return 0;
}
