/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unary elementwise kernels: activations, math, rounding, trigonometry,
 * Not, IsNaN/IsInf and Identity, plus Clip and Cast.
 *
 * Relu, LeakyRelu, Sigmoid, Tanh, Erf, Sqrt, Exp, Log and Neg on float32
 * keep one flat loop each over libm's float functions, Exp and Erf over
 * ops/vmath.h's vectorised ones (the ops the fusion JIT also compiles; its
 * results must match these). Every other op, and
 * every other dtype, computes one element at a time in double (ty__unary_f,
 * also used by the backward kernels' checks) or in its integer domain.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"
#include "ops/vmath.h"

#include <math.h>
#include <string.h>

static float sigmoid(float x) {
  /* Split by sign so exp never overflows. */
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

ty__uparams ty__uparams_of(const ty_graph_node *n, ty_op op) {
  bool hs = op == TY_OP_HARD_SIGMOID;
  float alpha_dflt = op == TY_OP_LEAKY_RELU ? 0.01f
                     : op == TY_OP_SELU     ? 1.67326319217681884765625f
                     : hs                   ? 0.2f
                                            : 1.0f;
  return (ty__uparams){
      .op = op,
      .alpha = ty_graph_node_attr_float(n, "alpha", alpha_dflt),
      .beta = ty_graph_node_attr_float(n, "beta", 0.5f),
      .gamma = ty_graph_node_attr_float(n, "gamma", 1.05070102214813232421875f),
      .bias = ty_graph_node_attr_float(n, "bias", 0.0f),
      .lambd = ty_graph_node_attr_float(n, "lambd", 0.5f),
      .tanh_gelu = strcmp(ty_graph_node_attr_string(n, "approximate", "none"), "tanh") == 0,
      .neg_inf = ty_graph_node_attr_int(n, "detect_negative", 1) != 0,
      .pos_inf = ty_graph_node_attr_int(n, "detect_positive", 1) != 0,
  };
}

static double softplus(double x) {
  return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double gelu(const ty__uparams *p, double x) {
  if (p->tanh_gelu) return 0.5 * x * (1.0 + tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
  return 0.5 * x * (1.0 + erf(x * 0.7071067811865476));
}

static double act(const ty__uparams *p, double x) {
  switch (p->op) {
  case TY_OP_ELU:
    return x < 0 ? p->alpha * expm1(x) : x;
  case TY_OP_SELU:
    return p->gamma * (x <= 0 ? p->alpha * expm1(x) : x);
  case TY_OP_CELU:
    return isnan(x)
               ? x
               : (x > 0 ? x : 0) + fmin(0.0, p->alpha * expm1(x / p->alpha)); /* fmin drops a NaN */
  case TY_OP_HARD_SIGMOID:
    return isnan(x) ? x : fmax(0.0, fmin(1.0, p->alpha * x + p->beta)); /* NaN stays NaN */
  case TY_OP_HARD_SWISH:
    return x * fmax(0.0, fmin(1.0, x / 6.0 + 0.5));
  case TY_OP_GELU:
    return gelu(p, x);
  case TY_OP_SOFTPLUS:
    return softplus(x);
  case TY_OP_SOFTSIGN:
    return x / (1.0 + fabs(x));
  case TY_OP_THRESHOLDED_RELU:
    return x > p->alpha ? x : 0.0;
  case TY_OP_MISH:
    return x * tanh(softplus(x));
  default:
    return NAN;
  }
}

double ty__unary_f(const ty__uparams *p, double x) {
  switch (p->op) {
  case TY_OP_RELU: /* NaN stays NaN, as torch.relu and ONNX's max(0, x) */
    return x < 0 ? 0.0 : x;
  case TY_OP_LEAKY_RELU:
    return x >= 0 ? x : p->alpha * x;
  case TY_OP_SIGMOID:
    return 1.0 / (1.0 + exp(-x));
  case TY_OP_TANH:
    return tanh(x);
  case TY_OP_ERF:
    return erf(x);
  case TY_OP_SQRT:
    return sqrt(x);
  case TY_OP_EXP:
    return exp(x);
  case TY_OP_LOG:
    return log(x);
  case TY_OP_NEG:
    return -x;
  case TY_OP_IDENTITY:
    return x;
  case TY_OP_ABS:
    return fabs(x);
  case TY_OP_SIGN:
    return isnan(x) ? x : (x > 0) - (x < 0);
  case TY_OP_RECIPROCAL:
    return 1.0 / x;
  case TY_OP_SHRINK:
    return x < -p->lambd ? x + p->bias : x > p->lambd ? x - p->bias : 0.0;
  case TY_OP_FLOOR:
    return floor(x);
  case TY_OP_CEIL:
    return ceil(x);
  case TY_OP_ROUND:
    return nearbyint(x); /* half to even, the default rounding mode */
  case TY_OP_SIN:
    return sin(x);
  case TY_OP_COS:
    return cos(x);
  case TY_OP_TAN:
    return tan(x);
  case TY_OP_ASIN:
    return asin(x);
  case TY_OP_ACOS:
    return acos(x);
  case TY_OP_ATAN:
    return atan(x);
  case TY_OP_SINH:
    return sinh(x);
  case TY_OP_COSH:
    return cosh(x);
  case TY_OP_ASINH:
    return asinh(x);
  case TY_OP_ACOSH:
    return acosh(x);
  case TY_OP_ATANH:
    return atanh(x);
  case TY_OP_IS_NAN:
    return isnan(x);
  case TY_OP_IS_INF:
    return isinf(x) && ((x > 0 && p->pos_inf) || (x < 0 && p->neg_inf));
  default:
    return act(p, x);
  }
}

/* Integer elements: Relu, Neg, Abs, Sign (wrapping like numpy), Shrink
 * through double, Identity and Not. */
static ty__num unary_int(const ty__uparams *p, ty__dkind k, ty__num v) {
  ty__num r = v;
  bool s = k == TY__DK_SINT;
  switch (p->op) {
  case TY_OP_RELU:
    r.i = v.i > 0 ? v.i : 0;
    break;
  case TY_OP_NEG:
    r.i = (int64_t)(0u - (uint64_t)v.i);
    break;
  case TY_OP_ABS:
    if (s && v.i < 0) r.i = (int64_t)(0u - (uint64_t)v.i);
    break;
  case TY_OP_SIGN:
    if (s)
      r.i = (v.i > 0) - (v.i < 0);
    else
      r.u = v.u > 0;
    break;
  case TY_OP_NOT:
    r.u = !v.u;
    break;
  case TY_OP_SHRINK: {
    double x = s ? (double)v.i : (double)v.u, y = ty__unary_f(p, x);
    if (s)
      r.i = ty__geti(TY_DTYPE_F64, &y, 0);
    else
      r.u = ty__getu(TY_DTYPE_F64, &y, 0);
    break;
  }
  default:
    break;
  }
  return r;
}

/* True for the ops unary_f32 has a loop for. */
static bool unary_f32_has(ty_op op) {
  switch (op) {
  case TY_OP_RELU:
  case TY_OP_LEAKY_RELU:
  case TY_OP_SIGMOID:
  case TY_OP_TANH:
  case TY_OP_ERF:
  case TY_OP_SQRT:
  case TY_OP_EXP:
  case TY_OP_LOG:
  case TY_OP_NEG:
    return true;
  default:
    return false;
  }
}

/* The float32 loops of the ops the fusion JIT shares; false for others. */
static bool unary_f32(const ty__uparams *p, const float *a, float *b, int64_t cnt) {
  float alpha = p->alpha;
  switch (p->op) {
  case TY_OP_RELU:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = a[i] < 0 ? 0.0f : a[i];
    return true;
  case TY_OP_LEAKY_RELU:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = a[i] >= 0 ? a[i] : alpha * a[i];
    return true;
  case TY_OP_SIGMOID:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = sigmoid(a[i]);
    return true;
  case TY_OP_TANH:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = tanhf(a[i]);
    return true;
  case TY_OP_ERF:
    ty_vmath_erf(a, b, cnt);
    return true;
  case TY_OP_SQRT:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = sqrtf(a[i]);
    return true;
  case TY_OP_EXP:
    ty_vmath_exp(a, b, cnt);
    return true;
  case TY_OP_LOG:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = logf(a[i]);
    return true;
  case TY_OP_NEG:
    for (int64_t i = 0; i < cnt; i++)
      b[i] = -a[i];
    return true;
  default:
    return false;
  }
}

typedef struct unary_job {
  const ty__uparams *p;
  const float *x;
  float *y;
} unary_job;

static void unary_range(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const unary_job *j = arg;
  unary_f32(j->p, j->x + lo, j->y + lo, hi - lo);
}

int ty__k_unary(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int64_t cnt = ty_tensor_numel(x);
  if (n->op == TY_OP_IDENTITY) {
    memcpy(y->data, x->data, x->nbytes);
    return 0;
  }
  ty__uparams p = ty__uparams_of(n, n->op);
  if (x->dtype == TY_DTYPE_F32 && unary_f32_has(n->op)) {
    ty__parallel_for(ctx->workers, cnt, TY__PAR_GRAIN, unary_range,
                     &(unary_job){&p, x->data, y->data});
    return 0;
  }
  ty__dkind k = ty__dkind_of(x->dtype);
  for (int64_t i = 0; i < cnt; i++) {
    if (k == TY__DK_FLOAT)
      ty__putf(y->dtype, y->data, i, ty__unary_f(&p, ty__getf(x->dtype, x->data, i)));
    else
      ty__put(y->dtype, y->data, i, unary_int(&p, k, ty__get(x->dtype, x->data, i)));
  }
  return 0;
}

/* ---- Clip ------------------------------------------------------------------- */
int ty__clip_bounds(const ty_graph_node *n, const ty_tensor *const *in, double *lo, double *hi) {
  *lo = -INFINITY;
  *hi = INFINITY;
  if (n->opset < 11) {
    *lo = ty_graph_node_attr_float(n, "min", -INFINITY);
    *hi = ty_graph_node_attr_float(n, "max", INFINITY);
    return 0;
  }
  if (n->n_inputs > 1 && in[1]) *lo = ty__getf(in[1]->dtype, in[1]->data, 0);
  if (n->n_inputs > 2 && in[2]) *hi = ty__getf(in[2]->dtype, in[2]->data, 0);
  return 0;
}

int ty__k_clip(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int64_t cnt = ty_tensor_numel(x);
  double lo, hi;
  ty__clip_bounds(n, in, &lo, &hi);
  if (x->dtype == TY_DTYPE_F32) {
    const float *a = x->data;
    float *b = y->data, l = (float)lo, h = (float)hi;
    for (int64_t i = 0; i < cnt; i++)
      b[i] = a[i] < l ? l : a[i] > h ? h : a[i];
    return 0;
  }
  if (ty__dkind_of(x->dtype) == TY__DK_FLOAT) {
    for (int64_t i = 0; i < cnt; i++) {
      double v = ty__getf(x->dtype, x->data, i);
      ty__putf(y->dtype, y->data, i, v < lo ? lo : v > hi ? hi : v);
    }
    return 0;
  }
  /* Integer bounds read exactly (a double would round int64 extremes). */
  bool s = ty__dkind_of(x->dtype) == TY__DK_SINT;
  const ty_tensor *tl = n->opset >= 11 && n->n_inputs > 1 ? in[1] : NULL,
                  *th = n->opset >= 11 && n->n_inputs > 2 ? in[2] : NULL;
  for (int64_t i = 0; i < cnt; i++) {
    ty__num v = ty__get(x->dtype, x->data, i);
    if (s) {
      if (tl && v.i < ty__geti(tl->dtype, tl->data, 0)) v.i = ty__geti(tl->dtype, tl->data, 0);
      if (th && v.i > ty__geti(th->dtype, th->data, 0)) v.i = ty__geti(th->dtype, th->data, 0);
    } else {
      if (tl && v.u < ty__getu(tl->dtype, tl->data, 0)) v.u = ty__getu(tl->dtype, tl->data, 0);
      if (th && v.u > ty__getu(th->dtype, th->data, 0)) v.u = ty__getu(th->dtype, th->data, 0);
    }
    ty__put(y->dtype, y->data, i, v);
  }
  return 0;
}

/* ---- Cast, CastLike ---------------------------------------------------------- */
int ty__k_cast(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  if (out[0])
    ty__cast_elems(in[0]->dtype, in[0]->data, out[0]->dtype, out[0]->data, ty_tensor_numel(in[0]));
  return 0;
}
