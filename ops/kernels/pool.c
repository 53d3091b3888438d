/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MaxPool, AveragePool (1-D to 3-D), GlobalAveragePool and GlobalMaxPool. Spatial dims are
 * padded to three (leading sizes of one) so one loop nest serves every
 * rank. Windows are clipped to the input; AveragePool divides by the
 * clipped window, or with count_include_pad by the window clipped to the
 * padded extent (what ONNX's reference and PyTorch do). MaxPool's Indices
 * output is the flat row-major index into the whole input tensor.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>

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

void ty__pool3_window(const ty__pool3 *p, const int64_t *o, int64_t *lo, int64_t *hi, int64_t *out_padded) {
  int64_t padded = 1;
  for (int i = 0; i < 3; i++) {
    lo[i] = o[i] * p->s[i] - p->pb[i];
    hi[i] = lo[i] + (p->k[i] - 1) * p->d[i] + 1;
    int64_t lim = p->in[i] + p->pe[i];
    padded *= ((hi[i] < lim ? hi[i] : lim) - lo[i] + p->d[i] - 1) / p->d[i];
  }
  *out_padded = padded;
}

/* One output element of one channel plane. */
static void pool_one(const ty__pool3 *p, const float *x, const int64_t *o, bool is_max, bool incl_pad, float *out_v,
                     int64_t *out_idx) {
  float best = -INFINITY;
  int64_t best_i = -1, cnt = 0, padded;
  double sum = 0;
  int64_t lo[3], hi[3];
  ty__pool3_window(p, o, lo, hi, &padded);
  for (int64_t a = lo[0]; a < hi[0]; a += p->d[0]) {
    if (a < 0 || a >= p->in[0]) continue;
    for (int64_t b = lo[1]; b < hi[1]; b += p->d[1]) {
      if (b < 0 || b >= p->in[1]) continue;
      for (int64_t c = lo[2]; c < hi[2]; c += p->d[2]) {
        if (c < 0 || c >= p->in[2]) continue;
        int64_t at = (a * p->in[1] + b) * p->in[2] + c;
        float v = x[at];
        if (v > best || best_i < 0) {
          best = v;
          best_i = at;
        }
        sum += v;
        cnt++;
      }
    }
  }
  if (is_max) {
    *out_v = best;
    *out_idx = best_i;
  } else {
    int64_t div = incl_pad ? padded : cnt;
    *out_v = div > 0 ? (float)(sum / (double)div) : 0.0f;
  }
}

int ty__k_pool(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0], *idx = n->n_outputs > 1 ? out[1] : NULL;
  if (!y && !idx) return 0;
  ty__window w;
  int rc = ty__window_read(n, x->shape.rank - 2, NULL, x->shape.dims + 2, &w, NULL, 0);
  if (rc != 0) return rc;
  const ty_shape *ys = y ? &y->shape : &idx->shape;
  ty__pool3 p;
  ty__pool3_init(&w, &x->shape, ys, &p);
  bool is_max = n->op == TY_OP_MAX_POOL;
  int64_t planes = x->shape.dims[0] * x->shape.dims[1];
  int64_t isz = p.in[0] * p.in[1] * p.in[2], osz = p.out[0] * p.out[1] * p.out[2];
  for (int64_t pl = 0; pl < planes; pl++) {
    const float *xp = ty_tensor_f32(x) + pl * isz;
    int64_t o[3], at = pl * osz;
    for (o[0] = 0; o[0] < p.out[0]; o[0]++)
      for (o[1] = 0; o[1] < p.out[1]; o[1]++)
        for (o[2] = 0; o[2] < p.out[2]; o[2]++, at++) {
          float v;
          int64_t bi = 0;
          pool_one(&p, xp, o, is_max, w.count_include_pad, &v, &bi);
          if (y) ty_tensor_f32(y)[at] = v;
          if (idx) ty_tensor_i64(idx)[at] = pl * isz + bi;
        }
  }
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
    for (int64_t i = 0; i < sz; i++) s = is_max ? fmax(s, xd[pl * sz + i]) : s + xd[pl * sz + i];
    yd[pl] = is_max ? (float)s : sz ? (float)(s / (double)sz) : 0.0f;
  }
  return 0;
}
