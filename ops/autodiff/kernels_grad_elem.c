/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Backward kernels of the elementwise ops added for exported models: the
 * unary activations and math functions (one derivative per op, in double),
 * Clip, Where and the variadic Max, Min, Sum and Mean. Gradients of
 * broadcast inputs are summed back over the stretched dims
 * (ty__g_unbroadcast), in double.
 *
 * Conventions at kinks follow PyTorch: Abs has derivative 0 at 0, Clip
 * passes the gradient where min <= x <= max, Max/Min split it evenly
 * among the inputs that tie for the result; Sign, Floor, Ceil and Round
 * have zero derivative.
 */
#include "ops/autodiff/grad_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int ty__g_unbroadcast(const ty_tensor *g, const ty_shape *x_shape, ty_tensor *dx) {
  int64_t n = ty_tensor_numel(g), nd = ty_tensor_numel(dx);
  double *acc = calloc((size_t)(nd ? nd : 1), sizeof *acc);
  if (!acc) return TY_ENOMEM;
  ty__odo w;
  ty__odo_init(&w, &g->shape, 1, (const ty_shape *[]){x_shape});
  const float *gd = g->data;
  int64_t len = ty__odo_rows(&w), st = w.st[0][w.rank];
  for (int64_t i = 0; i < n && len > 0; i += len, ty__odo_next(&w))
    for (int64_t k = 0; k < len; k++)
      acc[w.off[0] + k * st] += gd[i + k];
  for (int64_t i = 0; i < nd; i++)
    ty_tensor_f32(dx)[i] = (float)acc[i];
  free(acc);
  return 0;
}

static double sigmoid(double x) {
  return 1.0 / (1.0 + exp(-x));
}

static double gelu_df(const ty__uparams *p, double x) {
  if (!p->tanh_gelu)
    return 0.5 * (1.0 + erf(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x);
  const double k = 0.7978845608028654, u = k * (x + 0.044715 * x * x * x), t = tanh(u);
  return 0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * k * (1.0 + 3 * 0.044715 * x * x);
}

/* d op(x) / dx of the unary ops without a float32 rule in kernels_grad.c. */
static double unary_df(const ty__uparams *p, double x) {
  switch (p->op) {
  case TY_OP_ABS:
    return (x > 0) - (x < 0);
  case TY_OP_RECIPROCAL:
    return -1.0 / (x * x);
  case TY_OP_ELU:
    return x < 0 ? p->alpha * exp(x) : 1.0;
  case TY_OP_SELU:
    return p->gamma * (x <= 0 ? p->alpha * exp(x) : 1.0);
  case TY_OP_CELU:
    return x > 0 ? 1.0 : exp(x / p->alpha);
  case TY_OP_HARD_SIGMOID: {
    double v = p->alpha * x + p->beta;
    return v > 0 && v < 1 ? p->alpha : 0.0;
  }
  case TY_OP_HARD_SWISH:
    return x < -3 ? 0.0 : x > 3 ? 1.0 : x / 3.0 + 0.5;
  case TY_OP_GELU:
    return gelu_df(p, x);
  case TY_OP_SOFTPLUS:
    return sigmoid(x);
  case TY_OP_SOFTSIGN:
    return 1.0 / ((1.0 + fabs(x)) * (1.0 + fabs(x)));
  case TY_OP_THRESHOLDED_RELU:
    return x > p->alpha ? 1.0 : 0.0;
  case TY_OP_SHRINK:
    return x < -p->lambd || x > p->lambd ? 1.0 : 0.0;
  case TY_OP_MISH: {
    double sp = x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)), t = tanh(sp);
    return t + x * (1.0 - t * t) * sigmoid(x);
  }
  case TY_OP_SIN:
    return cos(x);
  case TY_OP_COS:
    return -sin(x);
  case TY_OP_TAN:
    return 1.0 + tan(x) * tan(x);
  case TY_OP_ASIN:
    return 1.0 / sqrt(1.0 - x * x);
  case TY_OP_ACOS:
    return -1.0 / sqrt(1.0 - x * x);
  case TY_OP_ATAN:
    return 1.0 / (1.0 + x * x);
  case TY_OP_SINH:
    return cosh(x);
  case TY_OP_COSH:
    return sinh(x);
  case TY_OP_ASINH:
    return 1.0 / sqrt(x * x + 1.0);
  case TY_OP_ACOSH:
    return 1.0 / sqrt(x * x - 1.0);
  case TY_OP_ATANH:
    return 1.0 / (1.0 - x * x);
  default:
    return 0.0; /* Sign, Floor, Ceil, Round: piecewise constant */
  }
}

int ty__g_unary_ext(ty__gctx *c) {
  if (c->wrt != 0 || c->x[0]->dtype != TY_DTYPE_F32) return TY_EUNSUPPORTED;
  ty__uparams p = ty__uparams_of(c->n, c->op); /* the TyGrad node carries the forward attributes */
  const float *x = c->x[0]->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t i = 0; i < ty_tensor_numel(c->dx); i++)
    dx[i] = (float)(dy[i] * unary_df(&p, x[i]));
  return 0;
}

int ty__g_clip(ty__gctx *c) {
  double lo, hi;
  ty_graph_node fwd = *c->n;
  fwd.n_inputs = c->nx;
  ty__clip_bounds(&fwd, c->x, &lo, &hi);
  const float *x = c->x[0]->data, *dy = c->dy->data;
  float *dx = c->dx->data;
  for (int64_t i = 0; i < ty_tensor_numel(c->dx); i++)
    dx[i] = x[i] >= lo && x[i] <= hi ? dy[i] : 0.0f;
  return 0;
}

/* dY where the condition picks this input, 0 elsewhere, summed back to the
 * input's shape. */
int ty__g_where(ty__gctx *c) {
  /* dX shaped like dY (nothing to sum): the masked dY is written straight
   * into it; else into a temporary that is then summed down to dX. */
  bool direct = ty_shape_equal(&c->dx->shape, &c->dy->shape);
  ty_tensor *masked = c->dx;
  int rc = direct ? 0 : ty_tensor_create(TY_DTYPE_F32, &c->dy->shape, &masked);
  if (rc != 0) return rc;
  ty__odo w;
  ty__odo_init(&w, &c->dy->shape, 1, (const ty_shape *[]){&c->x[0]->shape});
  const uint8_t *cond = c->x[0]->data;
  const float *dy = c->dy->data;
  bool want = c->wrt == 1;
  float *md = masked->data;
  int64_t len = ty__odo_rows(&w), sc = w.st[0][w.rank], n = ty_tensor_numel(masked);
  for (int64_t i = 0; i < n && len > 0; i += len, ty__odo_next(&w))
    for (int64_t k = 0; k < len; k++)
      md[i + k] = (cond[w.off[0] + k * sc] != 0) == want ? dy[i + k] : 0.0f;
  if (direct) return 0;
  rc = ty__g_unbroadcast(masked, &c->dx->shape, c->dx);
  ty_tensor_destroy(masked);
  return rc;
}

/* Sum: dY; Mean: dY / n; Max/Min: dY shared among the inputs equal to the
 * output at that position. */
int ty__g_variadic(ty__gctx *c) {
  ty_tensor *share;
  int rc = ty_tensor_create(TY_DTYPE_F32, &c->dy->shape, &share);
  if (rc != 0) return rc;
  int n = c->nx;
  const float *dy = c->dy->data, *y = c->ny > 0 && c->y[0] ? c->y[0]->data : NULL;
  bool pick = c->op == TY_OP_MAX || c->op == TY_OP_MIN;
  if (pick && !y) {
    ty_tensor_destroy(share);
    return TY_EINVAL;
  }
  const ty_shape *shapes[TY__ODO_MAX];
  ty__odo w;
  for (int i = 0; i < n && i < TY__ODO_MAX; i++)
    shapes[i] = &c->x[i]->shape;
  if (pick && n > TY__ODO_MAX) rc = TY_EUNSUPPORTED;
  ty__odo_init(&w, &c->dy->shape, pick ? n : 0, shapes);
  for (int64_t i = 0; rc == 0 && i < ty_tensor_numel(share); i++, ty__odo_next(&w)) {
    double g = c->op == TY_OP_MEAN ? dy[i] / n : dy[i];
    if (pick) {
      int ties = 0;
      for (int k = 0; k < n; k++)
        ties += ty_tensor_f32(c->x[k])[w.off[k]] == y[i];
      g = ty_tensor_f32(c->x[c->wrt])[w.off[c->wrt]] == y[i] ? g / (ties ? ties : 1) : 0.0;
    }
    ty_tensor_f32(share)[i] = (float)g;
  }
  if (rc == 0) rc = ty__g_unbroadcast(share, &c->dx->shape, c->dx);
  ty_tensor_destroy(share);
  return rc;
}
