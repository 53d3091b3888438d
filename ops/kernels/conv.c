/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conv (1-D and 2-D) as im2col + cblas_sgemm, per image and per group.
 * 1-D convs run as 2-D with a height of one. The column buffer holds one
 * group of one image: (C/group * kh * kw) x (oh * ow) floats. The fast path
 * for 1x1 kernels without padding or stride skips im2col entirely.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

static void im2col(const float *x, const ty__conv_geom *g, float *col) {
  int64_t osz = g->oh * g->ow;
  for (int64_t c = 0; c < g->c; c++) {
    for (int64_t ki = 0; ki < g->kh; ki++) {
      for (int64_t kj = 0; kj < g->kw; kj++) {
        float *row = col + ((c * g->kh + ki) * g->kw + kj) * osz;
        for (int64_t oy = 0; oy < g->oh; oy++) {
          int64_t iy = oy * g->sh - g->ph + ki * g->dh;
          float *dst = row + oy * g->ow;
          if (iy < 0 || iy >= g->h) {
            memset(dst, 0, (size_t)g->ow * sizeof *dst);
            continue;
          }
          const float *src = x + (c * g->h + iy) * g->w;
          for (int64_t ox = 0; ox < g->ow; ox++) {
            int64_t ix = ox * g->sw - g->pw + kj * g->dw;
            dst[ox] = ix >= 0 && ix < g->w ? src[ix] : 0.0f;
          }
        }
      }
    }
  }
}

int ty__conv_geom_init(const ty_graph_node *n, const ty_shape *x, const ty_shape *w, const ty_shape *y,
                       ty__conv_geom *g) {
  ty__window win;
  int nsp = x->rank - 2;
  if (nsp < 1 || nsp > 2) return TY_EUNSUPPORTED;
  if (ty__window_read(n, nsp, w->dims + 2, x->dims + 2, &win, NULL, 0) != 0) return TY_EINTERNAL;
  bool one = nsp == 1;
  int64_t group = ty_graph_node_attr_int(n, "group", 1);
  g->c = x->dims[1] / group;
  g->h = one ? 1 : x->dims[2];
  g->w = x->dims[one ? 2 : 3];
  g->oh = one ? 1 : y->dims[2];
  g->ow = y->dims[one ? 2 : 3];
  g->kh = one ? 1 : win.kernel[0];
  g->kw = win.kernel[one ? 0 : 1];
  g->sh = one ? 1 : win.stride[0];
  g->sw = win.stride[one ? 0 : 1];
  g->dh = one ? 1 : win.dilation[0];
  g->dw = win.dilation[one ? 0 : 1];
  g->ph = one ? 0 : win.pad_begin[0];
  g->pw = win.pad_begin[one ? 0 : 1];
  return 0;
}

int ty__k_conv(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0], *wt = in[1], *bias = in[2];
  ty_tensor *y = out[0];
  if (!y) return 0;
  ty__conv_geom g;
  if (ty__conv_geom_init(n, &x->shape, &wt->shape, &y->shape, &g) != 0) return TY_EINTERNAL;
  int64_t group = ty_graph_node_attr_int(n, "group", 1);
  int64_t batch = x->shape.dims[0], m = wt->shape.dims[0], mg = m / group;
  int64_t kdim = g.c * g.kh * g.kw, osz = g.oh * g.ow;
  bool direct = g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 &&
                g.oh == g.h && g.ow == g.w;
  float *col = NULL;
  size_t ncol; /* the column buffer is larger than any tensor here: checked */
  if (ty_mul_overflow((size_t)kdim, (size_t)osz, &ncol) ||
      ty_mul_overflow(ncol, sizeof *col, &ncol))
    return TY_ETOOBIG;
  if (!direct && ncol > 0 && !(col = malloc(ncol))) return TY_ENOMEM;
  const float *xd = x->data, *wd = wt->data;
  float *yd = y->data;
  for (int64_t b = 0; b < batch && osz > 0; b++) {
    for (int64_t gi = 0; gi < group; gi++) {
      const float *xg = xd + (b * group + gi) * g.c * g.h * g.w;
      float *yg = yd + (b * m + gi * mg) * osz;
      if (!direct) im2col(xg, &g, col);
      if (kdim == 0) continue;
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)mg, (blasint)osz, (blasint)kdim, 1.0f,
                  wd + gi * mg * kdim, (blasint)kdim, direct ? xg : col, (blasint)osz, 0.0f, yg, (blasint)osz);
    }
    if (!bias) continue;
    const float *bd = bias->data;
    for (int64_t oc = 0; oc < m; oc++)
      for (int64_t i = 0; i < osz; i++) yd[(b * m + oc) * osz + i] += bd[oc];
  }
  free(col);
  return 0;
}
