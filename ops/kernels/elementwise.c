/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Binary elementwise kernels with ONNX (numpy) broadcasting: Add, Sub, Mul,
 * Div, Pow on float32 and int64. The common cases, equal shapes and a
 * scalar operand, take straight loops the compiler vectorises; the general
 * case walks the output with an odometer over broadcast strides, innermost
 * dim as a tight loop. (The fusion JIT replaces chains of these in training;
 * these stay the reference and the fallback.)
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <string.h>

typedef struct bcast {
  int rank;
  int64_t dims[TY_MAX_RANK];
  int64_t sa[TY_MAX_RANK], sb[TY_MAX_RANK];
} bcast;

/* Runs the body once per run of the innermost dim, with oa_/ob_/oo_ the
 * offsets of the run in a, b and out, inner_ its length and as_/bs_ the
 * steps of a and b along it. */
#define BCAST_WALK(bc, ...)                                                         \
  do {                                                                               \
    int64_t idx_[TY_MAX_RANK] = {0};                                                 \
    int r_ = (bc)->rank;                                                             \
    int64_t inner_ = r_ ? (bc)->dims[r_ - 1] : 1;                                    \
    int64_t as_ = r_ ? (bc)->sa[r_ - 1] : 0, bs_ = r_ ? (bc)->sb[r_ - 1] : 0;        \
    int64_t oa_ = 0, ob_ = 0, oo_ = 0, total_ = 1;                                   \
    for (int d_ = 0; d_ < r_; d_++) total_ *= (bc)->dims[d_];                        \
    while (oo_ < total_) {                                                           \
      __VA_ARGS__;                                                                   \
      oo_ += inner_;                                                                 \
      for (int d_ = r_ - 2; d_ >= 0; d_--) {                                         \
        idx_[d_]++;                                                                  \
        oa_ += (bc)->sa[d_];                                                         \
        ob_ += (bc)->sb[d_];                                                         \
        if (idx_[d_] < (bc)->dims[d_]) break;                                        \
        oa_ -= (bc)->sa[d_] * idx_[d_];                                              \
        ob_ -= (bc)->sb[d_] * idx_[d_];                                              \
        idx_[d_] = 0;                                                                \
      }                                                                              \
    }                                                                                \
  } while (0)

static double ipow(double a, double b) { return pow(a, b); }

#define DEFINE_BINARY(NAME, T, EXPR)                                                   \
  static void NAME(const bcast *bc, const T *a, const T *b, T *o) {                    \
    BCAST_WALK(bc, {                                                                   \
      for (int64_t i_ = 0; i_ < inner_; i_++) {                                        \
        T x = a[oa_ + i_ * as_], y = b[ob_ + i_ * bs_];                                \
        o[oo_ + i_] = (EXPR);                                                          \
      }                                                                                \
    });                                                                                \
  }

DEFINE_BINARY(add_f32, float, x + y)
DEFINE_BINARY(sub_f32, float, x - y)
DEFINE_BINARY(mul_f32, float, x * y)
DEFINE_BINARY(div_f32, float, x / y)
DEFINE_BINARY(pow_f32, float, (float)ipow(x, y))
DEFINE_BINARY(add_i64, int64_t, (int64_t)((uint64_t)x + (uint64_t)y))
DEFINE_BINARY(sub_i64, int64_t, (int64_t)((uint64_t)x - (uint64_t)y))
DEFINE_BINARY(mul_i64, int64_t, (int64_t)((uint64_t)x * (uint64_t)y))
/* Integer division by zero yields 0 instead of trapping: bad data must not
 * take the worker down. */
DEFINE_BINARY(div_i64, int64_t, y == 0 || (y == -1 && x == INT64_MIN) ? 0 : x / y)
DEFINE_BINARY(pow_i64, int64_t, (int64_t)ipow((double)x, (double)y))

/* Pow with an exponent of the other dtype (allowed by ONNX). */
static void pow_f32_i64(const bcast *bc, const float *a, const int64_t *b, float *o) {
  BCAST_WALK(bc, {
    for (int64_t i_ = 0; i_ < inner_; i_++) o[oo_ + i_] = (float)pow(a[oa_ + i_ * as_], (double)b[ob_ + i_ * bs_]);
  });
}

static void pow_i64_f32(const bcast *bc, const int64_t *a, const float *b, int64_t *o) {
  BCAST_WALK(bc, {
    for (int64_t i_ = 0; i_ < inner_; i_++) o[oo_ + i_] = (int64_t)pow((double)a[oa_ + i_ * as_], b[ob_ + i_ * bs_]);
  });
}

/* Collapses the broadcast into the smallest rank: adjacent dims merge when
 * both operands are either contiguous or broadcast across them. */
static void bcast_init(bcast *bc, const ty_shape *a, const ty_shape *b, const ty_shape *out) {
  int64_t sa[TY_MAX_RANK], sb[TY_MAX_RANK];
  ty_broadcast_strides(a, out, sa);
  ty_broadcast_strides(b, out, sb);
  bc->rank = 0;
  for (int d = 0; d < out->rank; d++) {
    if (out->dims[d] == 1) continue;
    int r = bc->rank;
    if (r > 0 && sa[d] * out->dims[d] == bc->sa[r - 1] && sb[d] * out->dims[d] == bc->sb[r - 1]) {
      bc->dims[r - 1] *= out->dims[d];
      bc->sa[r - 1] = sa[d];
      bc->sb[r - 1] = sb[d];
      continue;
    }
    bc->dims[r] = out->dims[d];
    bc->sa[r] = sa[d];
    bc->sb[r] = sb[d];
    bc->rank++;
  }
}

int ty__k_binary(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *a = in[0], *b = in[1];
  ty_tensor *o = out[0];
  if (!o) return 0;
  bcast bc;
  bcast_init(&bc, &a->shape, &b->shape, &o->shape);
  if (ty_tensor_numel(o) == 0) return 0;
  bool f = a->dtype == TY_DTYPE_F32, fb = b->dtype == TY_DTYPE_F32;
  switch (n->op) {
  case TY_OP_ADD: f ? add_f32(&bc, a->data, b->data, o->data) : add_i64(&bc, a->data, b->data, o->data); break;
  case TY_OP_SUB: f ? sub_f32(&bc, a->data, b->data, o->data) : sub_i64(&bc, a->data, b->data, o->data); break;
  case TY_OP_MUL: f ? mul_f32(&bc, a->data, b->data, o->data) : mul_i64(&bc, a->data, b->data, o->data); break;
  case TY_OP_DIV: f ? div_f32(&bc, a->data, b->data, o->data) : div_i64(&bc, a->data, b->data, o->data); break;
  case TY_OP_POW:
    if (f && fb) pow_f32(&bc, a->data, b->data, o->data);
    else if (f) pow_f32_i64(&bc, a->data, b->data, o->data);
    else if (fb) pow_i64_f32(&bc, a->data, b->data, o->data);
    else pow_i64(&bc, a->data, b->data, o->data);
    break;
  default: return TY_EINTERNAL;
  }
  return 0;
}
