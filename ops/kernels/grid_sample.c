/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GridSample (ONNX opset 16, and opset 20's names for the same 2-D modes;
 * F.grid_sample): Y[n, c, h, w] samples X[n, c] at the point grid[n, h,
 * w] = (x, y) in [-1, 1] (x along the width), bilinear or nearest, with
 * zeros or border padding and align_corners, as PyTorch computes it:
 *   ix = align_corners ? (x + 1) / 2 * (W - 1) : ((x + 1) * W - 1) / 2
 *   border: ix clipped to [0, W - 1] (its gradient 0 outside (0, W - 1));
 *   bilinear: the four taps around (ix, iy), a tap outside the image
 *   reads 0; nearest: the tap at rint (half to even), 0 outside.
 * Float only. The geometry and the tap weights are shared with the
 * backward kernel (ops/autodiff/kernels_grad_sample.c), so both read the
 * same taps.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include <math.h>
#include <string.h>

int ty__gs_read(const ty_graph_node *n, ty__gs *p) {
  const char *mode = ty_graph_node_attr_string(n, "mode", "bilinear");
  const char *pad = ty_graph_node_attr_string(n, "padding_mode", "zeros");
  memset(p, 0, sizeof *p);
  if (strcmp(mode, "bilinear") == 0 || strcmp(mode, "linear") == 0)
    p->nearest = false;
  else if (strcmp(mode, "nearest") == 0)
    p->nearest = true;
  else
    return 1;
  if (strcmp(pad, "zeros") == 0)
    p->border = false;
  else if (strcmp(pad, "border") == 0)
    p->border = true;
  else
    return 2;
  p->align = ty_graph_node_attr_int(n, "align_corners", 0) != 0;
  return 0;
}

/* One coordinate of the grid in pixels, and d(pixel)/d(grid) in *scale. */
static double gs_unnorm(const ty__gs *p, double v, int64_t size, double *scale) {
  double s = p->align ? (double)(size - 1) / 2.0 : (double)size / 2.0;
  double c = p->align ? (v + 1.0) * s : ((v + 1.0) * (double)size - 1.0) / 2.0;
  *scale = s;
  if (!p->border) return c;
  double hi = (double)(size - 1);
  if (c <= 0.0 || !(c < hi)) { /* NaN clips to 0, as PyTorch */
    *scale = 0.0;
    return c >= hi ? hi : 0.0;
  }
  return c;
}

void ty__gs_taps(const ty__gs *p, const float *g, int64_t h, int64_t w, ty__gs_tap *t) {
  double sx, sy, ix = gs_unnorm(p, g[0], w, &sx), iy = gs_unnorm(p, g[1], h, &sy);
  t->sx = sx;
  t->sy = sy;
  for (int k = 0; k < 4; k++) {
    t->at[k] = -1;
    t->wt[k] = 0.0;
  }
  if (!isfinite(ix) || !isfinite(iy)) return;
  if (p->nearest) {
    double rx = nearbyint(ix), ry = nearbyint(iy);
    if (rx >= 0 && rx < (double)w && ry >= 0 && ry < (double)h) {
      t->at[0] = (int64_t)ry * w + (int64_t)rx;
      t->wt[0] = 1.0;
    }
    return;
  }
  double fx = floor(ix), fy = floor(iy), ax = ix - fx, ay = iy - fy;
  t->ax = ax;
  t->ay = ay;
  for (int k = 0; k < 4; k++) {
    double xx = fx + (k & 1), yy = fy + (k >> 1);
    if (xx < 0 || xx >= (double)w || yy < 0 || yy >= (double)h) continue;
    t->at[k] = (int64_t)yy * w + (int64_t)xx;
    t->wt[k] = ((k & 1) ? ax : 1.0 - ax) * ((k >> 1) ? ay : 1.0 - ay);
  }
}

int ty__k_grid_sample(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                      ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0], *grid = in[1];
  if (!out[0]) return 0;
  ty__gs p;
  if (ty__gs_read(n, &p) != 0) return TY_EINTERNAL; /* inference refused the others */
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1], h = x->shape.dims[2], w = x->shape.dims[3],
          ho = grid->shape.dims[1], wo = grid->shape.dims[2];
  const float *xd = x->data, *gd = grid->data;
  float *yd = out[0]->data;
  for (int64_t b = 0; b < nb; b++)
    for (int64_t i = 0; i < ho * wo; i++) {
      ty__gs_tap t;
      ty__gs_taps(&p, gd + (b * ho * wo + i) * 2, h, w, &t);
      for (int64_t c = 0; c < ch; c++) {
        const float *xp = xd + (b * ch + c) * h * w;
        double v = 0.0;
        for (int k = 0; k < 4; k++)
          if (t.at[k] >= 0) v += t.wt[k] * xp[t.at[k]];
        yd[(b * ch + c) * ho * wo + i] = (float)v;
      }
    }
  return 0;
}
