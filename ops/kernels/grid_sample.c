/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GridSample (ONNX opset 16, and opset 20's names for the same 2-D modes;
 * F.grid_sample): Y[n, c, h, w] samples X[n, c] at the point grid[n, h,
 * w] = (x, y) in [-1, 1] (x along the width), as PyTorch computes it:
 *   ix = align_corners ? (x + 1) / 2 * (W - 1) : ((x + 1) * W - 1) / 2
 *   padding: zeros (a tap outside the image reads 0), border (clipped to
 *   [0, W - 1]) or reflection (mirrored at the image's edges: its pixel
 *   centres with align_corners, else its outer borders, then clipped);
 *   bilinear and nearest pad the point (ix, iy) and take the four taps
 *   around it or the one at rint (half to even); bicubic takes the 4 x 4
 *   taps around the unpadded point with Keys' cubic convolution weights
 *   (A = -0.75) and pads each tap's position, so its grid gradient does
 *   not pass through the padding.
 * The gradient of a padded coordinate is 0 where clipping held it and
 * flips sign where reflection mirrored it. Float only. The geometry and
 * the weights are shared with the backward kernel
 * (ops/autodiff/kernels_grad_sample.c), so both read the same taps.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include <math.h>
#include <string.h>

#define CUBIC_A (-0.75)

int ty__gs_read(const ty_graph_node *n, ty__gs *p) {
  static const char *const modes[] = {"bilinear", "nearest", "bicubic"};
  static const char *const pads[] = {"zeros", "border", "reflection"};
  const char *mode = ty_graph_node_attr_string(n, "mode", "bilinear");
  const char *pad = ty_graph_node_attr_string(n, "padding_mode", "zeros");
  memset(p, 0, sizeof *p);
  int m = strcmp(mode, "linear") == 0 ? 0 : strcmp(mode, "cubic") == 0 ? 2 : -1;
  for (int i = 0; m < 0 && i < 3; i++)
    if (strcmp(mode, modes[i]) == 0) m = i;
  int q = -1;
  for (int i = 0; q < 0 && i < 3; i++)
    if (strcmp(pad, pads[i]) == 0) q = i;
  if (m < 0) return 1;
  if (q < 0) return 2;
  p->mode = (ty__gs_mode)m;
  p->pad = (ty__gs_pad)q;
  p->align = ty_graph_node_attr_int(n, "align_corners", 0) != 0;
  return 0;
}

/* c clipped to [0, size - 1], *grad times 0 where clipped (NaN clips to 0,
 * as PyTorch). */
static double clip(double c, int64_t size, double *grad) {
  double hi = (double)(size - 1);
  if (c <= 0.0 || !(c < hi)) {
    *grad = 0.0;
    return c >= hi ? hi : 0.0;
  }
  return c;
}

/* c mirrored into [lo2 / 2, hi2 / 2], *grad negated at each odd mirror. */
static double reflect(double c, double lo2, double hi2, double *grad) {
  if (lo2 == hi2) {
    *grad = 0.0;
    return 0.0;
  }
  double lo = lo2 / 2.0, span = (hi2 - lo2) / 2.0, in = c - lo;
  if (in < 0.0) in = -in, *grad = -*grad;
  double extra = fmod(in, span);
  if (fmod(floor(in / span), 2.0) == 0.0) return extra + lo;
  *grad = -*grad;
  return span - extra + lo;
}

/* A pixel coordinate through the padding (PyTorch's compute_coordinates);
 * *grad is multiplied by its derivative. */
static double pad_coord(const ty__gs *p, double c, int64_t size, double *grad) {
  if (p->pad == TY__GS_ZEROS) return c;
  if (p->pad == TY__GS_REFLECTION)
    c = p->align ? reflect(c, 0.0, 2.0 * (double)(size - 1), grad)
                 : reflect(c, -1.0, 2.0 * (double)size - 1.0, grad);
  return clip(c, size, grad);
}

/* A grid coordinate in pixels; *scale = d(pixel)/d(grid). */
static double unnorm(const ty__gs *p, double v, int64_t size, double *scale) {
  *scale = p->align ? (double)(size - 1) / 2.0 : (double)size / 2.0;
  return p->align ? (v + 1.0) * *scale : ((v + 1.0) * (double)size - 1.0) / 2.0;
}

static int64_t offset(double x, double y, int64_t h, int64_t w) {
  if (!(x >= 0.0 && x < (double)w && y >= 0.0 && y < (double)h)) return -1;
  return (int64_t)y * w + (int64_t)x;
}

/* Nearest and bilinear read the padded point (ix, iy); sx, sy its
 * derivatives by the grid. */
static void taps_nearest(double ix, double iy, int64_t h, int64_t w, ty__gs_tap *t) {
  t->n = 1;
  t->at[0] = offset(nearbyint(ix), nearbyint(iy), h, w);
  t->wt[0] = t->at[0] >= 0 ? 1.0 : 0.0;
}

static void taps_bilinear(double ix, double iy, double sx, double sy, int64_t h, int64_t w,
                          ty__gs_tap *t) {
  double fx = floor(ix), fy = floor(iy), ax = ix - fx, ay = iy - fy;
  t->n = 4;
  for (int k = 0; k < 4; k++) { /* (y0, x0), (y0, x1), (y1, x0), (y1, x1) */
    double wx = (k & 1) ? ax : 1.0 - ax, wy = (k >> 1) ? ay : 1.0 - ay;
    double dwx = (k & 1) ? 1.0 : -1.0, dwy = (k >> 1) ? 1.0 : -1.0;
    t->at[k] = offset(fx + (k & 1), fy + (k >> 1), h, w);
    t->wt[k] = wx * wy;
    t->dgx[k] = dwx * wy * sx;
    t->dgy[k] = wx * dwy * sy;
  }
}

/* Keys' cubic convolution weights of the taps at -1, 0, 1, 2 from the
 * point's floor, t its fraction, and their derivatives by t. */
static void cubic(double t, double c[4], double dc[4]) {
  const double a = CUBIC_A;
#define NEAR_(x) ((((a + 2.0) * (x) - (a + 3.0)) * (x)) * (x) + 1.0)
#define FAR_(x) ((((a * (x)-5.0 * a) * (x) + 8.0 * a) * (x)) - 4.0 * a)
#define DNEAR_(x) ((3.0 * (a + 2.0) * (x)-2.0 * (a + 3.0)) * (x))
#define DFAR_(x) ((3.0 * a * (x)-10.0 * a) * (x) + 8.0 * a)
  c[0] = FAR_(t + 1.0), dc[0] = DFAR_(t + 1.0);
  c[1] = NEAR_(t), dc[1] = DNEAR_(t);
  c[2] = NEAR_(1.0 - t), dc[2] = -DNEAR_(1.0 - t);
  c[3] = FAR_(2.0 - t), dc[3] = -DFAR_(2.0 - t);
#undef NEAR_
#undef FAR_
#undef DNEAR_
#undef DFAR_
}

static void taps_bicubic(const ty__gs *p, double ix, double iy, double sx, double sy, int64_t h,
                         int64_t w, ty__gs_tap *t) {
  double fx = floor(ix), fy = floor(iy), cx[4], dcx[4], cy[4], dcy[4], unused = 1.0;
  cubic(ix - fx, cx, dcx);
  cubic(iy - fy, cy, dcy);
  t->n = 16;
  for (int j = 0; j < 4; j++)
    for (int i = 0; i < 4; i++) {
      int k = j * 4 + i;
      double x = pad_coord(p, fx - 1.0 + i, w, &unused), y = pad_coord(p, fy - 1.0 + j, h, &unused);
      t->at[k] = offset(trunc(x), trunc(y), h, w);
      t->wt[k] = cx[i] * cy[j];
      t->dgx[k] = dcx[i] * cy[j] * sx;
      t->dgy[k] = cx[i] * dcy[j] * sy;
    }
}

void ty__gs_taps(const ty__gs *p, const float *g, int64_t h, int64_t w, ty__gs_tap *t) {
  double sx, sy, ix = unnorm(p, g[0], w, &sx), iy = unnorm(p, g[1], h, &sy);
  t->n = 0;                        /* each mode fills the taps it has */
  if (p->mode != TY__GS_BICUBIC) { /* the point itself is padded (NaN clips to 0) */
    ix = pad_coord(p, ix, w, &sx);
    iy = pad_coord(p, iy, h, &sy);
  }
  if (!isfinite(ix) || !isfinite(iy)) return; /* no taps: reads 0 */
  if (p->mode == TY__GS_NEAREST)
    taps_nearest(ix, iy, h, w, t);
  else if (p->mode == TY__GS_BILINEAR)
    taps_bilinear(ix, iy, sx, sy, h, w, t);
  else
    taps_bicubic(p, ix, iy, sx, sy, h, w, t);
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
        for (int k = 0; k < t.n; k++)
          if (t.at[k] >= 0) v += t.wt[k] * xp[t.at[k]];
        yd[(b * ch + c) * ho * wo + i] = (float)v;
      }
    }
  return 0;
}
