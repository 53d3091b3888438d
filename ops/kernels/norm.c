/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BatchNormalization and LayerNormalization (Dropout, which draws as the
 * random ops do, is in kernels/random.c).
 *
 * BatchNormalization in inference mode uses the running statistics; in
 * training mode (attribute training_mode=1, or the executor's training
 * flag) it normalises with the batch statistics (population variance) and
 * writes the updated running statistics, mean*momentum + batch*(1-momentum),
 * to its optional outputs, as ONNX opset 15 specifies. Channels are split
 * over the executor's threads; the statistics come from one sweep in
 * double over fixed lanes (kernels/bn_sweep.c, shared with the backward
 * and the trainer), so they do not depend on the split.
 */
#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"
#include "ops/vmath.h"

#include <math.h>
#include <string.h>

/* Sixteen lanes in four vectors: one running vector waits on each add (the
 * GPT's 128-wide LayerNorm rows were bound by that chain); four pipeline.
 * The lanes are added in a fixed order, so the sum depends on n only. */
TY_VMATH_CLONES double ty__sum4(const float *x, int64_t n, double shift) {
  ty_v4d a = {0, 0, 0, 0}, b = a, c = a, d = a;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    a += ty_v4d_load(x + i) - shift;
    b += ty_v4d_load(x + i + 4) - shift;
    c += ty_v4d_load(x + i + 8) - shift;
    d += ty_v4d_load(x + i + 12) - shift;
  }
  for (; i + 4 <= n; i += 4)
    a += ty_v4d_load(x + i) - shift;
  a = (a + b) + (c + d);
  double a0 = a[0];
  for (; i < n; i++)
    a0 += x[i] - shift;
  return (a0 + a[1]) + (a[2] + a[3]);
}

TY_VMATH_CLONES double ty__sqdev4(const float *x, int64_t n, double m) {
  ty_v4d a = {0, 0, 0, 0}, b = a, c = a, d = a;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    ty_v4d da = ty_v4d_load(x + i) - m, db = ty_v4d_load(x + i + 4) - m,
           dc = ty_v4d_load(x + i + 8) - m, dd = ty_v4d_load(x + i + 12) - m;
    a += da * da;
    b += db * db;
    c += dc * dc;
    d += dd * dd;
  }
  for (; i + 4 <= n; i += 4) {
    ty_v4d da = ty_v4d_load(x + i) - m;
    a += da * da;
  }
  a = (a + b) + (c + d);
  double a0 = a[0];
  for (; i < n; i++)
    a0 += (x[i] - m) * (x[i] - m);
  return (a0 + a[1]) + (a[2] + a[3]);
}

typedef struct bn_job {
  const float *x, *scale, *bias, *rmean, *rvar;
  float *y, *mean, *var;
  int64_t nb, c, sp;
  float eps;
  bool training;
} bn_job;

/* Channels [lo, hi): batch statistics in one sweep (training), then
 * y = x * k + b0 (kernels/bn_sweep.c). */
static void bn_channels(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const bn_job *j = arg;
  int64_t nb = j->nb, c = j->c, sp = j->sp;
  for (int64_t ch = lo; ch < hi; ch++) {
    if (j->training) {
      ty__bn_sums s;
      ty__bn_sweep(j->x, NULL, nb, c, sp, ch, TY__BN_STATS, &s);
      j->mean[ch] = (float)s.mean;
      j->var[ch] = (float)s.var;
    } else {
      j->mean[ch] = j->rmean[ch];
      j->var[ch] = j->rvar[ch];
    }
    if (!j->y) continue;
    float k = j->scale[ch] / sqrtf(j->var[ch] + j->eps), b0 = j->bias[ch] - j->mean[ch] * k;
    for (int64_t b = 0; b < nb; b++)
      ty__bn_affine(j->x + (b * c + ch) * sp, j->y + (b * c + ch) * sp, sp, k, b0);
  }
}

int ty__k_batch_norm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                     ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  const float *rmean = in[3]->data, *rvar = in[4]->data;
  int64_t c = x->shape.dims[1];
  float mom = ty_graph_node_attr_float(n, "momentum", 0.9f);
  bn_job j = {.x = x->data,
              .scale = in[1]->data,
              .bias = in[2]->data,
              .rmean = rmean,
              .rvar = rvar,
              .y = out[0] ? out[0]->data : NULL,
              .nb = x->shape.dims[0],
              .c = c,
              .sp = ty_shape_span(&x->shape, 2, x->shape.rank),
              .eps = ty_graph_node_attr_float(n, "epsilon", 1e-5f),
              .training = ty_graph_node_attr_int(n, "training_mode", 0) != 0 || ctx->training};
  ty_shape cs = ty_shape_make(1, &c);
  ty_tensor *bm = NULL, *bv = NULL;
  int rc = ty_tensor_create(TY_DTYPE_F32, &cs, &bm);
  if (rc == 0) rc = ty_tensor_create(TY_DTYPE_F32, &cs, &bv);
  if (rc != 0) goto done;
  j.mean = bm->data;
  j.var = bv->data;
  ty__parallel_for(ctx->workers, c, TY__PAR_GRAIN / (j.nb * j.sp + 1) + 1, bn_channels, &j);
  /* Outputs 1 and 2 are the running mean and variance; opsets before 14
   * also had saved mean and variance as outputs 3 and 4. */
  for (int64_t ch = 0; ch < c; ch++) {
    float um = j.training ? rmean[ch] * mom + j.mean[ch] * (1 - mom) : rmean[ch];
    float uv = j.training ? rvar[ch] * mom + j.var[ch] * (1 - mom) : rvar[ch];
    if (n->n_outputs > 1 && out[1]) ty_tensor_f32(out[1])[ch] = um;
    if (n->n_outputs > 2 && out[2]) ty_tensor_f32(out[2])[ch] = uv;
    if (n->n_outputs > 3 && out[3]) ty_tensor_f32(out[3])[ch] = j.mean[ch];
    if (n->n_outputs > 4 && out[4]) ty_tensor_f32(out[4])[ch] = j.var[ch];
  }
done:
  ty_tensor_destroy(bm);
  ty_tensor_destroy(bv);
  return rc;
}

void ty__moments(const float *x, int64_t n, double eps, double *out_mean, double *out_inv) {
  double mean = n ? ty__sum4(x, n, 0.0) / (double)n : 0;
  *out_mean = mean;
  *out_inv = 1.0 / sqrt((n ? ty__sqdev4(x, n, mean) / (double)n : 0) + eps);
}

typedef struct ln_job {
  const float *x, *scale, *bias;
  float *y, *mean_out, *inv_out;
  int64_t cols, ns, nbias;
  float eps;
} ln_job;

/* Row py of Y from row px of X and its moments. The usual case (a scale
 * and a bias per column) has a loop of its own, the job's fields in locals
 * and the rows restrict: with the loads of j's fields and the index
 * choices in the loop, gcc left it scalar. Both compute the same. */
TY_VMATH_CLONES static void ln_row_out(const ln_job *j, const float *restrict px,
                                       float *restrict py, double mean, double inv) {
  int64_t cols = j->cols;
  const float *restrict sc = j->scale, *restrict bi = j->bias;
  if (j->ns == cols && bi && j->nbias == cols) {
    for (int64_t i = 0; i < cols; i++)
      py[i] = (float)((px[i] - mean) * inv) * sc[i] + bi[i];
    return;
  }
  for (int64_t i = 0; i < cols; i++) {
    float v = (float)((px[i] - mean) * inv) * sc[j->ns == 1 ? 0 : i];
    py[i] = bi ? v + bi[j->nbias == 1 ? 0 : i] : v;
  }
}

static void ln_rows(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const ln_job *j = arg;
  int64_t cols = j->cols;
  for (int64_t r = lo; r < hi; r++) {
    const float *px = j->x + r * cols;
    double mean, inv;
    ty__moments(px, cols, j->eps, &mean, &inv);
    if (j->y) ln_row_out(j, px, j->y + r * cols, mean, inv);
    if (j->mean_out) j->mean_out[r] = (float)mean;
    if (j->inv_out) j->inv_out[r] = (float)inv;
  }
}

int ty__k_layer_norm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                     ty__kctx *ctx) {
  const ty_tensor *x = in[0], *sc = in[1], *bi = in[2];
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", -1), x->shape.rank, &axis) != 0)
    return TY_EINTERNAL;
  int64_t rows = ty_shape_span(&x->shape, 0, axis),
          cols = ty_shape_span(&x->shape, axis, x->shape.rank);
  ln_job j = {.x = x->data,
              .scale = sc->data,
              .bias = bi ? bi->data : NULL,
              .y = out[0] ? out[0]->data : NULL,
              .mean_out = n->n_outputs > 1 && out[1] ? out[1]->data : NULL,
              .inv_out = n->n_outputs > 2 && out[2] ? out[2]->data : NULL,
              .cols = cols,
              .ns = ty_tensor_numel(sc),
              .nbias = bi ? ty_tensor_numel(bi) : 0,
              .eps = ty_graph_node_attr_float(n, "epsilon", 1e-5f)};
  /* Scale and B broadcast over the normalised dims: full size or scalar. */
  if ((j.ns != cols && j.ns != 1) || (bi && j.nbias != cols && j.nbias != 1)) return TY_EINVAL;
  ty__parallel_for(ctx->workers, rows, TY__PAR_GRAIN / (4 * cols + 1) + 1, ln_rows, &j);
  return 0;
}

/* InstanceNormalization: per image and channel, statistics over the
 * spatial dims (biased variance), then scale and bias of the channel. */
int ty__k_instance_norm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                        ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  if (!out[0]) return 0;
  int64_t nb = x->shape.dims[0], ch = x->shape.dims[1],
          sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  double eps = ty_graph_node_attr_float(n, "epsilon", 1e-5f);
  const float *xd = x->data, *sc = in[1]->data, *bd = in[2]->data;
  float *yd = out[0]->data;
  for (int64_t p = 0; p < nb * ch; p++) {
    const float *px = xd + p * sp;
    double mean, inv;
    ty__moments(px, sp, eps, &mean, &inv);
    int64_t c = p % ch;
    for (int64_t i = 0; i < sp; i++)
      yd[p * sp + i] = (float)((px[i] - mean) * inv * sc[c] + bd[c]);
  }
  return 0;
}
