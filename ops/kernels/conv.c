/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Conv (1-D to 3-D) as im2col + cblas_sgemm, one GEMM per image and
 * group, the images split over the executor's threads (each thread owns a
 * column buffer: (C/group * kd * kh * kw) x (od * oh * ow) floats, one
 * image's worth, which stays in the core's L2 for the GEMM that reads it).
 * 1-D convs run as 2-D with a height of one; 3-D convs run the 2-D row
 * copies once per (channel, depth tap, output depth), the planes that fall
 * in the depth padding zeros. The fast path for 1x1 kernels without
 * padding or stride skips im2col entirely. The bias is written into the
 * output first and the GEMM accumulates onto it.
 *
 * Where meson found oneDNN, one-group convs run through it instead
 * (kernels/conv_dnnl.c); this path stays the fallback and the reference.
 *
 * im2col copies the in-bounds run of each row in one loop and fills only
 * the padded ends with zeros; its adjoint adds runs back. Both
 * serve the backward kernels (ops/autodiff).
 */
#include "ops/exec.h"
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* The output columns [lo, hi) whose input column ox * sw - pw + kj * dw
 * lies inside [0, w). */
static void valid_cols(const ty__conv_geom *g, int64_t kj, int64_t *lo, int64_t *hi) {
  int64_t shift = kj * g->dw - g->pw; /* ix = ox * sw + shift */
  int64_t a = shift >= 0 ? 0 : (-shift + g->sw - 1) / g->sw;
  int64_t b = g->w - shift <= 0 ? 0 : (g->w - shift + g->sw - 1) / g->sw;
  *lo = a < g->ow ? a : g->ow;
  *hi = b < g->ow ? b : g->ow;
  if (*hi < *lo) *hi = *lo;
}

/* Zeroes the columns of rows rows x w that a copy shifted by s
 * columns wrapped around a row's end: the first -s columns of each row
 * (s < 0) or the last s (s > 0). Column by column down the rows: a loop
 * along a row of one or two floats becomes a memset call per row. */
static void zero_wrapped(float *p, int64_t w, int64_t rows, int64_t s) {
  for (int64_t ox = s < 0 ? 0 : w - s; ox < (s < 0 ? -s : w); ox++)
    for (int64_t r = 0; r < rows; r++)
      p[r * w + ox] = 0.0f;
}

/* im2col of a "same" convolution (strides and dilations 1, output width =
 * input width): tap (ki, kj)'s row of col is the plane shifted by
 * (ki - ph) rows and kj - pw columns, so it is one copy of the rows that
 * stay inside, with the columns that wrapped around a row's end zeroed. */
static void im2col_same(const float *x, const ty__conv_geom *g, bool again, float *col) {
  int64_t w = g->w, osz = g->oh * w;
  for (int64_t c = 0; c < g->c; c++)
    for (int64_t ki = 0; ki < g->kh; ki++)
      for (int64_t kj = 0; kj < g->kw; kj++) {
        float *row = col + ((c * g->kh + ki) * g->kw + kj) * osz;
        int64_t s = kj - g->pw, dy = ki - g->ph;
        int64_t y0 = dy < 0 ? -dy : 0, y1 = g->h - dy < g->oh ? g->h - dy : g->oh;
        if (y1 < y0) y1 = y0;
        if (!again) {
          memset(row, 0, (size_t)(y0 * w) * sizeof *row);
          memset(row + y1 * w, 0, (size_t)((g->oh - y1) * w) * sizeof *row);
        }
        if (y1 == y0) continue;
        const float *src = x + (c * g->h + y0 + dy) * w; /* input row of output row y0 */
        float *dst = row + y0 * w;
        int64_t n = (y1 - y0) * w, t0 = s < 0 ? -s : 0, t1 = s > 0 ? n - s : n;
        if (t1 > t0) memcpy(dst + t0, src + t0 + s, (size_t)(t1 - t0) * sizeof *dst);
        zero_wrapped(dst, w, y1 - y0, s);
      }
}

/* A "same" convolution: strides and dilations 1, output width = input
 * width, padding narrower than the plane. */
static bool same_conv(const ty__conv_geom *g) {
  return g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 && g->ow == g->w && g->pw < g->w &&
         g->kw - 1 - g->pw < g->w;
}

/* The kh x kw rows of one input plane xc (h x w) into col, row (ki, kj)
 * at col + (ki * kw + kj) * rstride, each oh x ow long. */
static void im2col_plane(const float *xc, const ty__conv_geom *g, bool again, float *col,
                         int64_t rstride) {
  for (int64_t ki = 0; ki < g->kh; ki++)
    for (int64_t kj = 0; kj < g->kw; kj++) {
      float *row = col + (ki * g->kw + kj) * rstride;
      int64_t lo, hi, shift = kj * g->dw - g->pw;
      valid_cols(g, kj, &lo, &hi);
      for (int64_t oy = 0; oy < g->oh; oy++) {
        int64_t iy = oy * g->sh - g->ph + ki * g->dh;
        float *dst = row + oy * g->ow;
        if (iy < 0 || iy >= g->h || lo == hi) {
          if (!again) memset(dst, 0, (size_t)g->ow * sizeof *dst);
          continue;
        }
        const float *src = xc + iy * g->w; /* input column ox * sw + shift */
        /* Loops, not memcpy: rows are short (7 to 28 floats) in small CNNs. */
        for (int64_t ox = 0; !again && ox < lo; ox++)
          dst[ox] = 0.0f;
        if (g->sw == 1)
          for (int64_t ox = lo; ox < hi; ox++)
            dst[ox] = src[ox + shift];
        else
          for (int64_t ox = lo; ox < hi; ox++)
            dst[ox] = src[ox * g->sw + shift];
        for (int64_t ox = hi; !again && ox < g->ow; ox++)
          dst[ox] = 0.0f;
      }
    }
}

/* True when g has a depth (a 3-D conv whose depth is not trivially one). */
static bool has_depth(const ty__conv_geom *g) {
  return g->id != 1 || g->od != 1 || g->kd != 1 || g->pd != 0;
}

/* The input depth of output depth oz and kernel tap kz; -1 when it lies in
 * the padding. */
static int64_t depth_in(const ty__conv_geom *g, int64_t oz, int64_t kz) {
  int64_t iz = oz * g->sd - g->pd + kz * g->dd;
  return iz >= 0 && iz < g->id ? iz : -1;
}

/* im2col of a 3-D conv: for each channel, depth tap and output depth, the
 * input plane it reads goes through im2col_plane (rows od*oh*ow long, this
 * output depth's slice of each); planes in the padding are zeros. */
static void im2col_3d(const float *x, const ty__conv_geom *g, bool again, float *col) {
  int64_t plane = g->oh * g->ow, osz = g->od * plane, taps = g->kh * g->kw;
  for (int64_t c = 0; c < g->c; c++)
    for (int64_t kz = 0; kz < g->kd; kz++)
      for (int64_t oz = 0; oz < g->od; oz++) {
        float *rows = col + (c * g->kd + kz) * taps * osz + oz * plane;
        int64_t iz = depth_in(g, oz, kz);
        if (iz >= 0)
          im2col_plane(x + (c * g->id + iz) * g->h * g->w, g, again, rows, osz);
        else
          for (int64_t t = 0; !again && t < taps; t++)
            memset(rows + t * osz, 0, (size_t)plane * sizeof *rows);
      }
}

void ty__im2col(const float *x, const ty__conv_geom *g, bool again, float *col) {
  int64_t osz = g->oh * g->ow;
  if (has_depth(g)) {
    im2col_3d(x, g, again, col);
    return;
  }
  if (same_conv(g)) {
    im2col_same(x, g, again, col);
    return;
  }
  for (int64_t c = 0; c < g->c; c++)
    im2col_plane(x + c * g->h * g->w, g, again, col + c * g->kh * g->kw * osz, osz);
}

/* The adjoint of im2col_same: tap (ki, kj)'s row, its wrapped columns
 * zeroed first (they are no input's; col is the caller's scratch), adds
 * onto the plane shifted back as one contiguous run, which vectorises
 * where the row-by-row adds of 7 or 14 floats did not. */
static void col2im_same(float *col, const ty__conv_geom *g, float *x) {
  int64_t w = g->w, osz = g->oh * w;
  for (int64_t c = 0; c < g->c; c++)
    for (int64_t ki = 0; ki < g->kh; ki++)
      for (int64_t kj = 0; kj < g->kw; kj++) {
        float *row = col + ((c * g->kh + ki) * g->kw + kj) * osz;
        int64_t s = kj - g->pw, dy = ki - g->ph;
        int64_t y0 = dy < 0 ? -dy : 0, y1 = g->h - dy < g->oh ? g->h - dy : g->oh;
        if (y1 <= y0) continue;
        float *src = row + y0 * w, *dst = x + (c * g->h + y0 + dy) * w;
        zero_wrapped(src, w, y1 - y0, s);
        int64_t n = (y1 - y0) * w, t0 = s < 0 ? -s : 0, t1 = s > 0 ? n - s : n;
        for (int64_t t = t0; t < t1; t++)
          dst[t + s] += src[t];
      }
}

/* The adjoint of im2col_plane: adds the kh x kw rows back into plane xc. */
static void col2im_plane(const float *col, const ty__conv_geom *g, float *xc, int64_t rstride) {
  for (int64_t ki = 0; ki < g->kh; ki++)
    for (int64_t kj = 0; kj < g->kw; kj++) {
      const float *row = col + (ki * g->kw + kj) * rstride;
      int64_t lo, hi, shift = kj * g->dw - g->pw;
      valid_cols(g, kj, &lo, &hi);
      for (int64_t oy = 0; oy < g->oh; oy++) {
        int64_t iy = oy * g->sh - g->ph + ki * g->dh;
        if (iy < 0 || iy >= g->h) continue;
        const float *src = row + oy * g->ow;
        float *dst = xc + iy * g->w;
        for (int64_t ox = lo; ox < hi; ox++)
          dst[ox * g->sw + shift] += src[ox];
      }
    }
}

void ty__col2im_add(float *col, const ty__conv_geom *g, float *x) {
  int64_t osz = g->oh * g->ow;
  if (has_depth(g)) {
    int64_t plane = osz, osz3 = g->od * plane, taps = g->kh * g->kw;
    for (int64_t c = 0; c < g->c; c++)
      for (int64_t kz = 0; kz < g->kd; kz++)
        for (int64_t oz = 0; oz < g->od; oz++) {
          int64_t iz = depth_in(g, oz, kz);
          if (iz >= 0)
            col2im_plane(col + (c * g->kd + kz) * taps * osz3 + oz * plane, g,
                         x + (c * g->id + iz) * g->h * g->w, osz3);
        }
    return;
  }
  if (same_conv(g)) {
    col2im_same(col, g, x);
    return;
  }
  for (int64_t c = 0; c < g->c; c++)
    col2im_plane(col + c * g->kh * g->kw * osz, g, x + c * g->h * g->w, osz);
}

int ty__conv_geom_init(const ty_graph_node *n, const ty_shape *x, const ty_shape *w,
                       const ty_shape *y, ty__conv_geom *g) {
  ty__window win;
  int nsp = x->rank - 2;
  if (nsp < 1 || nsp > 3) return TY_EUNSUPPORTED;
  if (ty__window_read(n, nsp, w->dims + 2, x->dims + 2, &win, NULL, 0) != 0) return TY_EINTERNAL;
  int64_t group = ty_graph_node_attr_int(n, "group", 1);
  /* The spatial dims as (depth, height, width), missing leading ones 1. */
  int64_t in[3] = {1, 1, 1}, out[3] = {1, 1, 1}, k[3] = {1, 1, 1}, s[3] = {1, 1, 1},
          dl[3] = {1, 1, 1}, p[3] = {0, 0, 0};
  for (int d = 0; d < nsp; d++) {
    int e = 3 - nsp + d;
    in[e] = x->dims[2 + d];
    out[e] = y->dims[2 + d];
    k[e] = win.kernel[d];
    s[e] = win.stride[d];
    dl[e] = win.dilation[d];
    p[e] = win.pad_begin[d];
  }
  *g = (ty__conv_geom){.c = x->dims[1] / group,
                       .id = in[0],
                       .h = in[1],
                       .w = in[2],
                       .od = out[0],
                       .oh = out[1],
                       .ow = out[2],
                       .kd = k[0],
                       .kh = k[1],
                       .kw = k[2],
                       .sd = s[0],
                       .sh = s[1],
                       .sw = s[2],
                       .dd = dl[0],
                       .dh = dl[1],
                       .dw = dl[2],
                       .pd = p[0],
                       .ph = p[1],
                       .pw = p[2]};
  return 0;
}

int64_t ty__conv_isz(const ty__conv_geom *g) {
  return g->c * g->id * g->h * g->w;
}

int64_t ty__conv_osz(const ty__conv_geom *g) {
  return g->od * g->oh * g->ow;
}

int64_t ty__conv_kdim(const ty__conv_geom *g) {
  return g->c * g->kd * g->kh * g->kw;
}

/* True when the column matrix of an image is the image itself. */
static bool conv_direct(const ty__conv_geom *g) {
  return !has_depth(g) && g->kh == 1 && g->kw == 1 && g->sh == 1 && g->sw == 1 && g->ph == 0 &&
         g->pw == 0 && g->oh == g->h && g->ow == g->w;
}

typedef struct conv_job {
  ty__conv_geom g;
  int64_t group, m, mg, kdim, osz;
  const float *x, *w, *bias;
  float *y, *cols; /* cols: one column buffer per thread */
  size_t ncol;     /* floats per column buffer */
} conv_job;

/* Items are (image, group) pairs. */
static void conv_items(void *arg, int64_t begin, int64_t end, int slot) {
  const conv_job *j = arg;
  const ty__conv_geom *g = &j->g;
  bool direct = conv_direct(g);
  float *col = j->cols ? j->cols + (size_t)slot * j->ncol : NULL;
  bool again = false; /* col holds an earlier image's columns (and their zeros) */
  for (int64_t it = begin; it < end; it++) {
    int64_t b = it / j->group, gi = it % j->group;
    const float *xg = j->x + (b * j->group + gi) * ty__conv_isz(g);
    float *yg = j->y + (b * j->m + gi * j->mg) * j->osz;
    for (int64_t oc = 0; (j->bias || j->kdim == 0) && oc < j->mg; oc++) {
      float v = j->bias ? j->bias[gi * j->mg + oc] : 0.0f;
      for (int64_t i = 0; i < j->osz; i++)
        yg[oc * j->osz + i] = v;
    }
    if (j->kdim == 0) continue;
    if (!direct) ty__im2col(xg, g, again, col);
    again = true;
    /* Without a bias (convs before a BatchNorm) the GEMM writes y itself. */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (blasint)j->mg, (blasint)j->osz,
                (blasint)j->kdim, 1.0f, j->w + gi * j->mg * j->kdim, (blasint)j->kdim,
                direct ? xg : col, (blasint)j->osz, j->bias ? 1.0f : 0.0f, yg, (blasint)j->osz);
  }
}

/* Column buffers for every thread of w (*out NULL when none is needed). */
int ty__conv_cols(const ty__conv_geom *g, ty_workers *w, bool needed, float **out, size_t *out_n) {
  size_t ncol, total;
  *out = NULL;
  *out_n = 0;
  /* The column buffer is larger than any tensor here: checked. */
  if (ty_mul_overflow((size_t)ty__conv_kdim(g), (size_t)ty__conv_osz(g), &ncol) ||
      ty_mul_overflow(ncol, (size_t)ty_workers_count(w) * sizeof(float), &total))
    return TY_ETOOBIG;
  if (!needed || total == 0) return 0;
  if (!(*out = malloc(total))) return TY_ENOMEM;
  *out_n = ncol;
  return 0;
}

int ty__k_conv(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  const ty_tensor *x = in[0], *wt = in[1], *bias = in[2];
  ty_tensor *y = out[0];
  if (!y) return 0;
  conv_job j = {.group = ty_graph_node_attr_int(n, "group", 1),
                .m = wt->shape.dims[0],
                .x = x->data,
                .w = wt->data,
                .bias = bias ? bias->data : NULL,
                .y = y->data};
  if (ty__conv_geom_init(n, &x->shape, &wt->shape, &y->shape, &j.g) != 0) return TY_EINTERNAL;
  j.mg = j.m / j.group;
  j.kdim = ty__conv_kdim(&j.g);
  j.osz = ty__conv_osz(&j.g);
  if (j.osz == 0) return 0;
#if TY_HAVE_DNNL
  if (j.group == 1 && j.kdim > 0) {
    ty__conv_dnnl_call c = {.kind = TY__DNNL_FWD,
                            .g = j.g,
                            .batch = x->shape.dims[0],
                            .m = j.m,
                            .x = j.x,
                            .w = j.w,
                            .bias = j.bias,
                            .out = j.y};
    int drc = ty__conv_dnnl_run(&c, ctx->workers);
    if (drc != TY_EUNSUPPORTED) return drc;
  }
#endif
  int rc = ty__conv_cols(&j.g, ctx->workers, !conv_direct(&j.g), &j.cols, &j.ncol);
  if (rc != 0) return rc;
  ty__parallel_for(ctx->workers, x->shape.dims[0] * j.group, 1, conv_items, &j);
  free(j.cols);
  return 0;
}
