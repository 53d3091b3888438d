/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BatchNormalization, LayerNormalization and Dropout.
 *
 * BatchNormalization in inference mode uses the running statistics; in
 * training mode (attribute training_mode=1, or the executor's training
 * flag) it normalises with the batch statistics (population variance) and
 * writes the updated running statistics, mean*momentum + batch*(1-momentum),
 * to its optional outputs, as ONNX opset 15 specifies.
 *
 * Dropout is the identity with an all-true mask unless training; then each
 * element is kept with probability 1-ratio and scaled by 1/(1-ratio). The
 * random stream is lib/base's SplitMix64 (ty_rng), seeded from the node's
 * seed attribute or the executor, so a run is reproducible.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <string.h>

static void bn_stats(const float *x, int64_t n, int64_t c, int64_t sp, float *mean, float *var) {
  for (int64_t ch = 0; ch < c; ch++) {
    double s = 0, s2 = 0;
    for (int64_t b = 0; b < n; b++)
      for (int64_t i = 0; i < sp; i++) s += x[(b * c + ch) * sp + i];
    double cnt = (double)(n * sp), m = cnt > 0 ? s / cnt : 0;
    for (int64_t b = 0; b < n; b++)
      for (int64_t i = 0; i < sp; i++) {
        double dlt = x[(b * c + ch) * sp + i] - m;
        s2 += dlt * dlt;
      }
    mean[ch] = (float)m;
    var[ch] = cnt > 0 ? (float)(s2 / cnt) : 0.0f;
  }
}

int ty__k_batch_norm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  const float *scale = in[1]->data, *bias = in[2]->data, *rmean = in[3]->data, *rvar = in[4]->data;
  int64_t nb = x->shape.dims[0], c = x->shape.dims[1], sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  float eps = ty_graph_node_attr_float(n, "epsilon", 1e-5f), mom = ty_graph_node_attr_float(n, "momentum", 0.9f);
  bool training = ty_graph_node_attr_int(n, "training_mode", 0) != 0 || ctx->training;
  ty_shape cs = ty_shape_make(1, &c);
  ty_tensor *bm = NULL, *bv = NULL;
  int rc = ty_tensor_create(TY_DTYPE_F32, &cs, &bm);
  if (rc == 0) rc = ty_tensor_create(TY_DTYPE_F32, &cs, &bv);
  if (rc != 0) goto done;
  float *mean = bm->data, *var = bv->data;
  if (training) bn_stats(x->data, nb, c, sp, mean, var);
  else {
    memcpy(mean, rmean, (size_t)c * sizeof *mean);
    memcpy(var, rvar, (size_t)c * sizeof *var);
  }
  const float *xd = x->data;
  float *yd = out[0] ? out[0]->data : NULL;
  for (int64_t ch = 0; ch < c && yd; ch++) {
    float k = scale[ch] / sqrtf(var[ch] + eps), b0 = bias[ch] - mean[ch] * k;
    for (int64_t b = 0; b < nb; b++)
      for (int64_t i = 0; i < sp; i++) yd[(b * c + ch) * sp + i] = xd[(b * c + ch) * sp + i] * k + b0;
  }
  /* Outputs 1 and 2 are the running mean and variance; opsets before 14
   * also had saved mean and variance as outputs 3 and 4. */
  for (int64_t ch = 0; ch < c; ch++) {
    float um = training ? rmean[ch] * mom + mean[ch] * (1 - mom) : rmean[ch];
    float uv = training ? rvar[ch] * mom + var[ch] * (1 - mom) : rvar[ch];
    if (n->n_outputs > 1 && out[1]) ty_tensor_f32(out[1])[ch] = um;
    if (n->n_outputs > 2 && out[2]) ty_tensor_f32(out[2])[ch] = uv;
    if (n->n_outputs > 3 && out[3]) ty_tensor_f32(out[3])[ch] = mean[ch];
    if (n->n_outputs > 4 && out[4]) ty_tensor_f32(out[4])[ch] = var[ch];
  }
done:
  ty_tensor_destroy(bm);
  ty_tensor_destroy(bv);
  return rc;
}

void ty__moments(const float *x, int64_t n, double eps, double *out_mean, double *out_inv) {
  double s = 0, s2 = 0;
  for (int64_t i = 0; i < n; i++) s += x[i];
  double mean = n ? s / (double)n : 0;
  for (int64_t i = 0; i < n; i++) s2 += (x[i] - mean) * (x[i] - mean);
  *out_mean = mean;
  *out_inv = 1.0 / sqrt((n ? s2 / (double)n : 0) + eps);
}

int ty__k_layer_norm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0], *sc = in[1], *bi = in[2];
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", -1), x->shape.rank, &axis) != 0) return TY_EINTERNAL;
  int64_t rows = ty_shape_span(&x->shape, 0, axis), cols = ty_shape_span(&x->shape, axis, x->shape.rank);
  int64_t ns = ty_tensor_numel(sc), nbias = bi ? ty_tensor_numel(bi) : 0;
  /* Scale and B broadcast over the normalised dims: full size or scalar. */
  if ((ns != cols && ns != 1) || (bi && nbias != cols && nbias != 1)) return TY_EINVAL;
  float eps = ty_graph_node_attr_float(n, "epsilon", 1e-5f);
  const float *xd = x->data, *sd = sc->data, *bd = bi ? bi->data : NULL;
  for (int64_t r = 0; r < rows; r++) {
    const float *px = xd + r * cols;
    double mean, inv;
    ty__moments(px, cols, eps, &mean, &inv);
    if (out[0]) {
      float *py = ty_tensor_f32(out[0]) + r * cols;
      for (int64_t i = 0; i < cols; i++) {
        float v = (float)((px[i] - mean) * inv) * sd[ns == 1 ? 0 : i];
        py[i] = bd ? v + bd[nbias == 1 ? 0 : i] : v;
      }
    }
    if (n->n_outputs > 1 && out[1]) ty_tensor_f32(out[1])[r] = (float)mean;
    if (n->n_outputs > 2 && out[2]) ty_tensor_f32(out[2])[r] = (float)inv;
  }
  return 0;
}

int ty__k_dropout(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  const ty_tensor *rt = n->n_inputs > 1 ? in[1] : NULL, *tm = n->n_inputs > 2 ? in[2] : NULL;
  float ratio = rt ? ty_tensor_f32(rt)[0] : ty_graph_node_attr_float(n, "ratio", 0.5f);
  bool training = ctx->training || (tm && ty_tensor_bool(tm)[0]);
  int64_t cnt = ty_tensor_numel(x);
  const float *xd = x->data;
  float *yd = out[0] ? out[0]->data : NULL;
  uint8_t *mask = n->n_outputs > 1 && out[1] ? out[1]->data : NULL;
  if (!training || ratio == 0.0f) {
    if (yd) memcpy(yd, xd, x->nbytes);
    if (mask) memset(mask, 1, (size_t)cnt);
    return 0;
  }
  const ty_graph_attr *seed = ty_graph_node_attr(n, "seed");
  ty_rng st = seed ? ty_rng_make((uint64_t)seed->i) : ctx->rng;
  float keep_scale = 1.0f / (1.0f - ratio);
  for (int64_t i = 0; i < cnt; i++) {
    bool keep = ty_rng_uniform(&st) >= ratio;
    if (yd) yd[i] = keep ? xd[i] * keep_scale : 0.0f;
    if (mask) mask[i] = keep;
  }
  if (!seed) ctx->rng = st;
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
    for (int64_t i = 0; i < sp; i++) yd[p * sp + i] = (float)((px[i] - mean) * inv * sc[c] + bd[c]);
  }
  return 0;
}
