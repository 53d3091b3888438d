/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unary elementwise kernels: activations (Relu, LeakyRelu, Sigmoid, Tanh)
 * and math (Erf, Sqrt, Exp, Log, Neg), plus Identity. Each is one flat loop
 * over contiguous memory; float math goes through libm's float variants.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <string.h>

static float sigmoid(float x) {
  /* Split by sign so exp never overflows. */
  if (x >= 0) return 1.0f / (1.0f + expf(-x));
  float e = expf(x);
  return e / (1.0f + e);
}

int ty__k_unary(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int64_t cnt = ty_tensor_numel(x);
  if (n->op == TY_OP_IDENTITY || (n->op == TY_OP_NEG && x->dtype == TY_DTYPE_I64)) {
    if (n->op == TY_OP_IDENTITY) {
      memcpy(y->data, x->data, x->nbytes);
      return 0;
    }
    const int64_t *a = x->data;
    int64_t *b = y->data;
    for (int64_t i = 0; i < cnt; i++) b[i] = (int64_t)(0u - (uint64_t)a[i]);
    return 0;
  }
  const float *a = x->data;
  float *b = y->data;
  float alpha = ty_graph_node_attr_float(n, "alpha", 0.01f);
  switch (n->op) {
  case TY_OP_RELU: for (int64_t i = 0; i < cnt; i++) b[i] = a[i] > 0 ? a[i] : 0.0f; break;
  case TY_OP_LEAKY_RELU: for (int64_t i = 0; i < cnt; i++) b[i] = a[i] >= 0 ? a[i] : alpha * a[i]; break;
  case TY_OP_SIGMOID: for (int64_t i = 0; i < cnt; i++) b[i] = sigmoid(a[i]); break;
  case TY_OP_TANH: for (int64_t i = 0; i < cnt; i++) b[i] = tanhf(a[i]); break;
  case TY_OP_ERF: for (int64_t i = 0; i < cnt; i++) b[i] = erff(a[i]); break;
  case TY_OP_SQRT: for (int64_t i = 0; i < cnt; i++) b[i] = sqrtf(a[i]); break;
  case TY_OP_EXP: for (int64_t i = 0; i < cnt; i++) b[i] = expf(a[i]); break;
  case TY_OP_LOG: for (int64_t i = 0; i < cnt; i++) b[i] = logf(a[i]); break;
  case TY_OP_NEG: for (int64_t i = 0; i < cnt; i++) b[i] = -a[i]; break;
  default: return TY_EINTERNAL;
  }
  return 0;
}
