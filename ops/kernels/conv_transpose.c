/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ConvTranspose (1-D to 3-D, groups, strides, dilations, pads,
 * output_padding, output_shape, auto_pad) as a GEMM and a col2im: per
 * image and group, col = W_g^T X_g ([M/g * kernel, input positions]), then
 * every column entry is added at its output position
 * in * stride - pad_begin + k * dilation. The backward reuses the same
 * geometry: the data gradient is W_g times the gathered dY columns, the
 * filter gradient X_g times their transpose (ops/autodiff).
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#define GEOM_MAX ((int64_t)1 << 20)

/* Reads up to 3 ints of attribute name into v (dflt when absent). */
static int attr3(const ty_graph_node *n, const char *name, int nsp, int64_t dflt, int64_t *v,
                 int want) {
  int64_t a[6];
  int cnt;
  for (int d = 0; d < want; d++)
    v[d] = dflt;
  if (ty__attr_ints(n, name, a, 6, &cnt) != 0) return TY_EINVAL;
  if (cnt < 0) return 0;
  if (cnt != want && !(want == nsp && cnt == nsp + 2 && !strcmp(name, "output_shape")))
    return TY_EINVAL;
  for (int d = 0; d < want; d++)
    v[d] = a[cnt - want + d];
  return 0;
}

int ty__tconv_read(const ty_graph_node *n, const ty_shape *x, const ty_shape *w, ty__tconv *t,
                   char *err, size_t err_len) {
  memset(t, 0, sizeof *t);
  int nsp = t->nsp = x->rank - 2;
  int64_t pads[6], oshape[3] = {-1, -1, -1};
  const char *ap = ty_graph_node_attr_string(n, "auto_pad", "NOTSET");
  bool upper = !strcmp(ap, "SAME_UPPER"), same = upper || !strcmp(ap, "SAME_LOWER");
  if (!same && strcmp(ap, "NOTSET") && strcmp(ap, "VALID"))
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "attribute auto_pad=%s is not supported",
                        ap);
  if (attr3(n, "kernel_shape", nsp, -1, t->k, nsp) || attr3(n, "strides", nsp, 1, t->s, nsp) ||
      attr3(n, "dilations", nsp, 1, t->d, nsp) ||
      attr3(n, "output_padding", nsp, 0, t->opad, nsp) || attr3(n, "pads", nsp, 0, pads, 2 * nsp) ||
      attr3(n, "output_shape", nsp, -1, oshape, nsp))
    return ty__node_err(
        err, err_len, n, TY_EINVAL,
        "kernel_shape, strides, dilations, output_padding and output_shape need %d values, pads %d",
        nsp, 2 * nsp);
  for (int d = 0; d < nsp; d++) {
    if (t->k[d] < 0) t->k[d] = w->dims[2 + d];
    t->in[d] = x->dims[2 + d];
    t->pb[d] = pads[d];
    t->pe[d] = pads[nsp + d];
    if (t->k[d] < 1 || t->s[d] < 1 || t->d[d] < 1 || t->opad[d] < 0 ||
        (t->opad[d] >= t->s[d] && t->opad[d] >= t->d[d]))
      return ty__node_err(err, err_len, n, TY_EINVAL,
                          "kernel, strides and dilations must be positive, output_padding "
                          "below the stride or dilation");
    /* Bounds that keep the geometry's arithmetic far from overflow. */
    if (t->k[d] > GEOM_MAX || t->s[d] > GEOM_MAX || t->d[d] > GEOM_MAX ||
        llabs(t->pb[d]) > GEOM_MAX || llabs(t->pe[d]) > GEOM_MAX || oshape[d] > TY__DIM_MAX ||
        t->in[d] > TY__DIM_MAX)
      return ty__node_err(err, err_len, n, TY_EINVAL,
                          "kernel, strides, dilations and pads must be at most %lld",
                          (long long)GEOM_MAX);
    int64_t ext = (t->k[d] - 1) * t->d[d] + 1;
    if (t->in[d] < 0) {
      t->out[d] = oshape[d] >= 0 ? oshape[d] : TY_DIM_UNKNOWN;
      continue;
    }
    int64_t full = t->s[d] * (t->in[d] - 1) + t->opad[d] + ext;
    if (oshape[d] >= 0 ||
        same) { /* pads follow from the requested size; floor division, as ONNX's reference */
      int64_t want = oshape[d] >= 0 ? oshape[d] : t->in[d] * t->s[d], total = full - want;
      int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      t->pb[d] = upper ? half : total - half;
      t->pe[d] = total - t->pb[d];
    }
    t->out[d] = full - t->pb[d] - t->pe[d];
    if (t->out[d] < 0)
      return ty__node_err(err, err_len, n, TY_EINVAL, "pads remove more than the output holds");
  }
  for (int d = nsp; d < 3; d++)
    t->in[d] = t->out[d] = t->k[d] = t->s[d] = t->d[d] = 1;
  return 0;
}

void ty__tconv_col(const ty__tconv *t, int64_t m, float *y, float *col, bool to_y) {
  int64_t kv = t->k[0] * t->k[1] * t->k[2], li = t->in[0] * t->in[1] * t->in[2];
  int64_t lo = t->out[0] * t->out[1] * t->out[2];
  for (int64_t c = 0; c < m; c++)
    for (int64_t k = 0; k < kv; k++) {
      int64_t kk[3] = {k / (t->k[1] * t->k[2]), (k / t->k[2]) % t->k[1], k % t->k[2]};
      float *row = col + (c * kv + k) * li;
      for (int64_t i = 0; i < li; i++) {
        int64_t ii[3] = {i / (t->in[1] * t->in[2]), (i / t->in[2]) % t->in[1], i % t->in[2]},
                at = 0;
        bool inside = true;
        for (int d = 0; d < 3 && inside; d++) {
          int64_t p = d < t->nsp ? ii[d] * t->s[d] - t->pb[d] + kk[d] * t->d[d] : 0;
          inside = p >= 0 && p < t->out[d];
          at = at * t->out[d] + p;
        }
        if (to_y && inside)
          y[c * lo + at] += row[i];
        else if (!to_y)
          row[i] = inside ? y[c * lo + at] : 0.0f;
      }
    }
}

int ty__k_conv_transpose(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                         ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0], *wt = in[1], *bias = n->n_inputs > 2 ? in[2] : NULL;
  ty_tensor *y = out[0];
  if (!y) return 0;
  ty__tconv t;
  if (ty__tconv_read(n, &x->shape, &wt->shape, &t, NULL, 0) != 0) return TY_EINTERNAL;
  int64_t group = ty_graph_node_attr_int(n, "group", 1), batch = x->shape.dims[0];
  int64_t cg = x->shape.dims[1] / group, mg = wt->shape.dims[1], m = mg * group;
  int64_t kv = t.k[0] * t.k[1] * t.k[2], li = t.in[0] * t.in[1] * t.in[2],
          lo = t.out[0] * t.out[1] * t.out[2];
  size_t ncol;
  if (ty_mul_overflow((size_t)(mg * kv), (size_t)li, &ncol) || ncol > ((size_t)1 << 34))
    return TY_ETOOBIG;
  float *col = ncol ? malloc(ncol * sizeof *col) : NULL;
  if (ncol && !col) return TY_ENOMEM;
  const float *xd = x->data, *wd = wt->data;
  float *yd = y->data;
  for (int64_t b = 0; b < batch && ncol && cg; b++)
    for (int64_t g = 0; g < group; g++) {
      cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (blasint)(mg * kv), (blasint)li,
                  (blasint)cg, 1.0f, wd + g * cg * mg * kv, (blasint)(mg * kv),
                  xd + (b * group + g) * cg * li, (blasint)li, 0.0f, col, (blasint)li);
      ty__tconv_col(&t, mg, yd + (b * m + g * mg) * lo, col, true);
    }
  for (int64_t b = 0; bias && b < batch; b++)
    for (int64_t c = 0; c < m; c++)
      for (int64_t i = 0; i < lo; i++)
        yd[(b * m + c) * lo + i] += ty_tensor_f32(bias)[c];
  free(col);
  return 0;
}
