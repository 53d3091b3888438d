/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MaxPool, AveragePool (1-D to 3-D), GlobalAveragePool and GlobalMaxPool. Spatial dims are
 * padded to three (leading sizes of one) so one loop nest serves every
 * rank. Windows are clipped to the input; AveragePool divides by the
 * clipped window, or with count_include_pad by the window clipped to the
 * padded extent (what ONNX's reference and PyTorch do). MaxPool's Indices
 * output is the flat row-major index into the whole input tensor. The
 * clipped window of every output coordinate is computed once per call and
 * per axis (ty__pool3_spans), so the loops over taps test no bounds; the
 * planes (image x channel) are split over the executor's threads.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"
#include "ops/vmath.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void ty__pool3_init(const ty__window *w, const ty_shape *x, const ty_shape *y, ty__pool3 *p) {
  int off = 3 - w->nsp;
  for (int i = 0; i < 3; i++) {
    int j = i - off;
    bool real = j >= 0;
    p->in[i] = real ? x->dims[2 + j] : 1;
    p->out[i] = real ? y->dims[2 + j] : 1;
    p->k[i] = real ? w->kernel[j] : 1;
    p->s[i] = real ? w->stride[j] : 1;
    p->d[i] = real ? w->dilation[j] : 1;
    p->pb[i] = real ? w->pad_begin[j] : 0;
    p->pe[i] = real ? w->pad_end[j] : 0;
  }
}

int ty__pool3_spans(const ty__pool3 *p, ty__pool3_span **out) {
  size_t n = (size_t)(p->out[0] + p->out[1] + p->out[2]);
  ty__pool3_span *sp = malloc((n ? n : 1) * sizeof *sp);
  if (!sp) return TY_ENOMEM;
  ty__pool3_span *at = sp;
  for (int i = 0; i < 3; i++)
    for (int64_t o = 0; o < p->out[i]; o++, at++) {
      int64_t lo = o * p->s[i] - p->pb[i], hi = lo + (p->k[i] - 1) * p->d[i] + 1;
      int64_t lim = p->in[i] + p->pe[i];
      at->padded = ((hi < lim ? hi : lim) - lo + p->d[i] - 1) / p->d[i];
      if (lo < 0) lo += (-lo + p->d[i] - 1) / p->d[i] * p->d[i]; /* first tap inside */
      if (hi > p->in[i]) hi = p->in[i];
      at->lo = lo;
      at->hi = hi > lo ? hi : lo;
      at->n = (at->hi - lo + p->d[i] - 1) / p->d[i];
    }
  *out = sp;
  return 0;
}

/* Visits the taps of output position (s0, s1, s2) as flat plane indices. */
#define FOR_TAPS(p, s0, s1, s2, at)                                                                \
  for (int64_t a_ = (s0)->lo; a_ < (s0)->hi; a_ += (p)->d[0])                                      \
    for (int64_t b_ = (s1)->lo; b_ < (s1)->hi; b_ += (p)->d[1])                                    \
      for (int64_t c_ = (s2)->lo, at = (a_ * (p)->in[1] + b_) * (p)->in[2] + c_; c_ < (s2)->hi;    \
           c_ += (p)->d[2], at += (p)->d[2])

/* The first maximum of 2-D window (r, c) of a plane of width w: its plane
 * index, or -1 for an empty window. Branch-free selection: a max pool's
 * comparisons are coin flips the branch predictor cannot learn. */
static inline int64_t max2d(const float *x, int64_t w, const ty__pool3_span *r,
                            const ty__pool3_span *c) {
  if (r->n == 0 || c->n == 0) return -1;
  int64_t bi = r->lo * w + c->lo;
  float best = x[bi];
  for (int64_t a = r->lo; a < r->hi; a++)
    for (int64_t at = a * w + c->lo, end = a * w + c->hi; at < end; at++) {
      bool gt = x[at] > best;
      best = gt ? x[at] : best;
      bi = gt ? at : bi;
    }
  return bi;
}

/* The 2x2, stride 2, unpadded MaxPool of most CNNs: the first maximum of
 * four (its index 0..3 in row-major window order) without loops. */
static bool max22_ok(const ty__pool3 *p) {
  return p->in[0] == 1 && p->k[0] == 1 && p->k[1] == 2 && p->k[2] == 2 && p->s[1] == 2 &&
         p->s[2] == 2 && p->d[1] == 1 && p->d[2] == 1 && p->pb[1] == 0 && p->pb[2] == 0 &&
         p->out[1] == p->in[1] / 2 && p->out[2] == p->in[2] / 2;
}

static inline int max4(const float *r0, const float *r1, float *out_v) {
  float m = r0[0];
  int i = 0;
  i = r0[1] > m ? 1 : i;
  m = r0[1] > m ? r0[1] : m;
  i = r1[0] > m ? 2 : i;
  m = r1[0] > m ? r1[0] : m;
  i = r1[1] > m ? 3 : i;
  m = r1[1] > m ? r1[1] : m;
  *out_v = m;
  return i;
}

/* 2x2 max pooling by eight windows at a time: the same comparisons in
 * the same order as max4, as selects, over a fixed count of eight so gcc
 * turns the eight into vector code even where a row has only 7 or 14
 * windows (a loop over the row vectorised 16 at a time and left such
 * rows to branchy scalar code). A row's last partial eight runs through
 * zero-padded copies. Cloned like ops/vmath.c's loops; selects give the
 * same bits at every width. */
static inline void max22_fwd8(const float *r0, const float *r1, float *y) {
  for (int k = 0; k < 8; k++) {
    float a = r0[2 * k], b = r0[2 * k + 1], c = r1[2 * k], d = r1[2 * k + 1];
    float m = b > a ? b : a;
    m = c > m ? c : m;
    y[k] = d > m ? d : m;
  }
}

/* dy[k] to the first maximum of window k (max4's choice), zeros to the
 * other three cells. */
static inline void max22_back8(const float *r0, const float *r1, const float *dy, float *d0,
                               float *d1) {
  for (int k = 0; k < 8; k++) {
    float a = r0[2 * k], b = r0[2 * k + 1], c = r1[2 * k], d = r1[2 * k + 1], g = dy[k];
    float m1 = b > a ? b : a, m2 = c > m1 ? c : m1;
    d1[2 * k + 1] = d > m2 ? g : 0.0f;
    float rest = d > m2 ? 0.0f : g;
    d1[2 * k] = c > m1 ? rest : 0.0f;
    rest = c > m1 ? 0.0f : rest;
    d0[2 * k + 1] = b > a ? rest : 0.0f;
    d0[2 * k] = b > a ? 0.0f : rest;
  }
}

/* One output row: y[k] for the ow windows of rows r0 and r1. */
TY_VMATH_CLONES static void max22_row(const float *r0, const float *r1, int64_t ow, float *y) {
  int64_t k = 0;
  for (; k + 8 <= ow; k += 8)
    max22_fwd8(r0 + 2 * k, r1 + 2 * k, y + k);
  if (k == ow) return;
  float t0[16] = {0}, t1[16] = {0}, ty[8];
  size_t n = (size_t)(ow - k);
  memcpy(t0, r0 + 2 * k, 2 * n * sizeof *t0);
  memcpy(t1, r1 + 2 * k, 2 * n * sizeof *t1);
  max22_fwd8(t0, t1, ty);
  memcpy(y + k, ty, n * sizeof *ty);
}

/* The backward of one row: writes rows d0 and d1 of dx whole. */
TY_VMATH_CLONES static void max22_row_back(const float *r0, const float *r1, const float *dy,
                                           int64_t ow, float *d0, float *d1) {
  int64_t k = 0;
  for (; k + 8 <= ow; k += 8)
    max22_back8(r0 + 2 * k, r1 + 2 * k, dy + k, d0 + 2 * k, d1 + 2 * k);
  if (k == ow) return;
  float t0[16] = {0}, t1[16] = {0}, tg[8] = {0}, o0[16], o1[16];
  size_t n = (size_t)(ow - k);
  memcpy(t0, r0 + 2 * k, 2 * n * sizeof *t0);
  memcpy(t1, r1 + 2 * k, 2 * n * sizeof *t1);
  memcpy(tg, dy + k, n * sizeof *tg);
  max22_back8(t0, t1, tg, o0, o1);
  memcpy(d0 + 2 * k, o0, 2 * n * sizeof *o0);
  memcpy(d1 + 2 * k, o1, 2 * n * sizeof *o1);
}

/* Max pooling of a plane with one window along axis 0 and no dilation
 * (every 1-D and 2-D MaxPool without dilations). */
static bool max2d_ok(const ty__pool3 *p, bool is_max) {
  return is_max && p->in[0] == 1 && p->out[0] == 1 && p->k[0] == 1 && p->d[1] == 1 && p->d[2] == 1;
}

void ty__pool3_plane(const ty__pool3 *p, const ty__pool3_span *sp, const float *x, bool is_max,
                     bool incl_pad, float *y, int64_t *idx, int64_t idx_base) {
  const ty__pool3_span *s0 = sp, *s1 = sp + p->out[0], *s2 = s1 + p->out[1];
  if (is_max && max22_ok(p) && !idx && y) {
    for (int64_t j = 0; j < p->out[1]; j++)
      max22_row(x + 2 * j * p->in[2], x + (2 * j + 1) * p->in[2], p->out[2], y + j * p->out[2]);
    return;
  }
  if (is_max && max22_ok(p)) {
    int64_t w = p->in[2];
    for (int64_t j = 0, o = 0; j < p->out[1]; j++)
      for (int64_t k = 0; k < p->out[2]; k++, o++) {
        const float *r0 = x + 2 * j * w + 2 * k;
        float v;
        int i = max4(r0, r0 + w, &v);
        if (y) y[o] = v;
        if (idx) idx[o] = idx_base + (2 * j + (i >> 1)) * w + 2 * k + (i & 1);
      }
    return;
  }
  if (max2d_ok(p, is_max) && s0->n == 1) {
    for (int64_t j = 0, o = 0; j < p->out[1]; j++)
      for (int64_t k = 0; k < p->out[2]; k++, o++) {
        int64_t bi = max2d(x, p->in[2], s1 + j, s2 + k);
        if (y) y[o] = bi >= 0 ? x[bi] : -INFINITY;
        if (idx) idx[o] = idx_base + bi;
      }
    return;
  }
  int64_t o = 0;
  for (int64_t i = 0; i < p->out[0]; i++)
    for (int64_t j = 0; j < p->out[1]; j++)
      for (int64_t k = 0; k < p->out[2]; k++, o++) {
        float best = -INFINITY;
        int64_t best_i = -1;
        double sum = 0;
        FOR_TAPS(p, s0 + i, s1 + j, s2 + k, at) {
          float v = x[at];
          if (v > best || best_i < 0) {
            best = v;
            best_i = at;
          }
          sum += v;
        }
        if (is_max) {
          if (y) y[o] = best;
          if (idx) idx[o] = idx_base + best_i;
          continue;
        }
        int64_t div =
            incl_pad ? s0[i].padded * s1[j].padded * s2[k].padded : s0[i].n * s1[j].n * s2[k].n;
        y[o] = div > 0 ? (float)(sum / (double)div) : 0.0f;
      }
}

bool ty__pool3_back_overwrites(const ty__pool3 *p, bool is_max) {
  return is_max && max22_ok(p);
}

/* 2x2 windows with stride 2 tile the plane (but for an odd last row or
 * column, which no window reads): each window's four cells are written,
 * dy to the first maximum and zeros elsewhere, and the leftovers zeroed,
 * so the plane needs no zero-fill pass before. */
static void max22_back(const ty__pool3 *p, const float *x, const float *dy, float *dx) {
  int64_t w = p->in[2], h = p->in[1], ow = p->out[2];
  for (int64_t j = 0; j < p->out[1]; j++) {
    max22_row_back(x + 2 * j * w, x + (2 * j + 1) * w, dy + j * ow, ow, dx + 2 * j * w,
                   dx + (2 * j + 1) * w);
    for (int64_t c = 2 * ow; c < w; c++) /* an odd last column */
      dx[2 * j * w + c] = dx[(2 * j + 1) * w + c] = 0.0f;
  }
  for (int64_t r = 2 * p->out[1]; r < h; r++) /* an odd last row */
    memset(dx + r * w, 0, (size_t)w * sizeof *dx);
}

void ty__pool3_plane_back(const ty__pool3 *p, const ty__pool3_span *sp, const float *x,
                          const float *dy, bool is_max, bool incl_pad, float *dx) {
  const ty__pool3_span *s0 = sp, *s1 = sp + p->out[0], *s2 = s1 + p->out[1];
  if (is_max && max22_ok(p)) {
    max22_back(p, x, dy, dx);
    return;
  }
  if (max2d_ok(p, is_max) && s0->n == 1) {
    for (int64_t j = 0, o = 0; j < p->out[1]; j++)
      for (int64_t k = 0; k < p->out[2]; k++, o++) {
        int64_t bi = max2d(x, p->in[2], s1 + j, s2 + k);
        if (bi >= 0) dx[bi] += dy[o];
      }
    return;
  }
  int64_t o = 0;
  for (int64_t i = 0; i < p->out[0]; i++)
    for (int64_t j = 0; j < p->out[1]; j++)
      for (int64_t k = 0; k < p->out[2]; k++, o++) {
        if (is_max) { /* to the first maximum, the element the forward kernel picked */
          float best = -INFINITY;
          int64_t best_i = -1;
          FOR_TAPS(p, s0 + i, s1 + j, s2 + k, at) {
            if (x[at] > best || best_i < 0) {
              best = x[at];
              best_i = at;
            }
          }
          if (best_i >= 0) dx[best_i] += dy[o];
          continue;
        }
        int64_t div =
            incl_pad ? s0[i].padded * s1[j].padded * s2[k].padded : s0[i].n * s1[j].n * s2[k].n;
        float share = dy[o] / (float)(div ? div : 1);
        FOR_TAPS(p, s0 + i, s1 + j, s2 + k, at) dx[at] += share;
      }
}

typedef struct pool_job {
  const ty__pool3 *p;
  const ty__pool3_span *sp;
  bool is_max, incl_pad;
  const float *x;
  float *y;
  int64_t *idx;
  int64_t isz, osz;
} pool_job;

static void pool_planes(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const pool_job *j = arg;
  for (int64_t pl = begin; pl < end; pl++)
    ty__pool3_plane(j->p, j->sp, j->x + pl * j->isz, j->is_max, j->incl_pad,
                    j->y ? j->y + pl * j->osz : NULL, j->idx ? j->idx + pl * j->osz : NULL,
                    pl * j->isz);
}

int ty__k_pool(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0], *idx = n->n_outputs > 1 ? out[1] : NULL;
  if (!y && !idx) return 0;
  ty__window w;
  int rc = ty__window_read(n, x->shape.rank - 2, NULL, x->shape.dims + 2, &w, NULL, 0);
  if (rc != 0) return rc;
  ty__pool3 p;
  ty__pool3_init(&w, &x->shape, y ? &y->shape : &idx->shape, &p);
  pool_job j = {.p = &p,
                .is_max = n->op == TY_OP_MAX_POOL,
                .incl_pad = w.count_include_pad,
                .x = x->data,
                .y = y ? y->data : NULL,
                .idx = idx ? idx->data : NULL,
                .isz = p.in[0] * p.in[1] * p.in[2],
                .osz = p.out[0] * p.out[1] * p.out[2]};
  ty__pool3_span *sp;
  if ((rc = ty__pool3_spans(&p, &sp)) != 0) return rc;
  j.sp = sp;
  int64_t planes = x->shape.dims[0] * x->shape.dims[1];
  ty__parallel_for(ctx->workers, planes, 16384 / (j.isz + 1) + 1, pool_planes, &j);
  free(sp);
  return 0;
}

int ty__k_global_pool(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                      ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  int64_t planes = x->shape.dims[0] * x->shape.dims[1];
  int64_t sz = ty_shape_span(&x->shape, 2, x->shape.rank);
  const float *xd = x->data;
  float *yd = out[0]->data;
  bool is_max = n->op == TY_OP_GLOBAL_MAX_POOL;
  for (int64_t pl = 0; pl < planes; pl++) {
    double s = is_max ? -INFINITY : 0;
    for (int64_t i = 0; i < sz; i++)
      s = is_max ? fmax(s, xd[pl * sz + i]) : s + xd[pl * sz + i];
    yd[pl] = is_max ? (float)s : sz ? (float)(s / (double)sz) : 0.0f;
  }
  return 0;
}
