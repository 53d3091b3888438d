/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elementwise kernels with ONNX (numpy) broadcasting: the binary
 * arithmetic, comparison and logic ops, PRelu, the variadic Max, Min, Sum
 * and Mean, and Where.
 *
 * Add, Sub, Mul, Div and Pow on float32 and int64 take typed loops over a
 * broadcast collapsed to the fewest dims, innermost dim as a tight loop
 * the compiler vectorises (the fusion JIT replaces chains of them in
 * training; these stay the reference and the fallback). Every other op and
 * dtype goes through one generic path that reads each element into its
 * kind's domain (double, int64 or uint64, see kernels/dtype.c), computes
 * there and writes back: integers wrap as numpy's do, floats round once.
 */
#include "ops/exec.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"
#include "ops/vmath.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct bcast {
  int rank;
  int64_t dims[TY_MAX_RANK];
  int64_t sa[TY_MAX_RANK], sb[TY_MAX_RANK];
} bcast;

/* Runs the body once per run of the innermost dim, with oa_/ob_/oo_ the
 * offsets of the run in a, b and out, inner_ its length and as_/bs_ the
 * steps of a and b along it. */
#define BCAST_WALK(bc, ...)                                                                        \
  do {                                                                                             \
    int64_t idx_[TY_MAX_RANK] = {0};                                                               \
    int r_ = (bc)->rank;                                                                           \
    int64_t inner_ = r_ ? (bc)->dims[r_ - 1] : 1;                                                  \
    int64_t as_ = r_ ? (bc)->sa[r_ - 1] : 0, bs_ = r_ ? (bc)->sb[r_ - 1] : 0;                      \
    int64_t oa_ = 0, ob_ = 0, oo_ = 0, total_ = 1;                                                 \
    for (int d_ = 0; d_ < r_; d_++)                                                                \
      total_ *= (bc)->dims[d_];                                                                    \
    while (oo_ < total_) {                                                                         \
      __VA_ARGS__;                                                                                 \
      oo_ += inner_;                                                                               \
      for (int d_ = r_ - 2; d_ >= 0; d_--) {                                                       \
        idx_[d_]++;                                                                                \
        oa_ += (bc)->sa[d_];                                                                       \
        ob_ += (bc)->sb[d_];                                                                       \
        if (idx_[d_] < (bc)->dims[d_]) break;                                                      \
        oa_ -= (bc)->sa[d_] * idx_[d_];                                                            \
        ob_ -= (bc)->sb[d_] * idx_[d_];                                                            \
        idx_[d_] = 0;                                                                              \
      }                                                                                            \
    }                                                                                              \
  } while (0)

static double ipow(double a, double b) {
  return pow(a, b);
}

/* The inner loop split by strides, so the contiguous and the broadcast
 * row vectorise; cloned for AVX-512, AVX2 and baseline (TY_VMATH_CLONES:
 * the same bits from each). */
#define DEFINE_BINARY(NAME, T, EXPR)                                                               \
  TY_VMATH_CLONES static void NAME(const bcast *bc, const T *a, const T *b, T *o) {                \
    BCAST_WALK(bc, {                                                                               \
      const T *pa_ = a + oa_, *pb_ = b + ob_;                                                      \
      T *po_ = o + oo_;                                                                            \
      if (as_ == 1 && bs_ == 1) {                                                                  \
        for (int64_t i_ = 0; i_ < inner_; i_++) {                                                  \
          T x = pa_[i_], y = pb_[i_];                                                              \
          po_[i_] = (EXPR);                                                                        \
        }                                                                                          \
      } else if (as_ == 1 && bs_ == 0) {                                                           \
        T y = pb_[0];                                                                              \
        for (int64_t i_ = 0; i_ < inner_; i_++) {                                                  \
          T x = pa_[i_];                                                                           \
          po_[i_] = (EXPR);                                                                        \
        }                                                                                          \
      } else {                                                                                     \
        for (int64_t i_ = 0; i_ < inner_; i_++) {                                                  \
          T x = pa_[i_ * as_], y = pb_[i_ * bs_];                                                  \
          po_[i_] = (EXPR);                                                                        \
        }                                                                                          \
      }                                                                                            \
    });                                                                                            \
  }

DEFINE_BINARY(add_f32, float, x + y)
DEFINE_BINARY(sub_f32, float, x - y)
DEFINE_BINARY(mul_f32, float, x *y)
DEFINE_BINARY(div_f32, float, x / y)
DEFINE_BINARY(pow_f32, float, (float)ipow(x, y))
DEFINE_BINARY(add_i64, int64_t, (int64_t)((uint64_t)x + (uint64_t)y))
DEFINE_BINARY(sub_i64, int64_t, (int64_t)((uint64_t)x - (uint64_t)y))
DEFINE_BINARY(mul_i64, int64_t, (int64_t)((uint64_t)x *(uint64_t)y))
/* Integer division by zero yields 0 instead of trapping: bad data must not
 * take the worker down. */
DEFINE_BINARY(div_i64, int64_t, y == 0 || (y == -1 && x == INT64_MIN) ? 0 : x / y)
DEFINE_BINARY(pow_i64, int64_t, (int64_t)ipow((double)x, (double)y))

/* Pow with an exponent of the other dtype (allowed by ONNX). */
static void pow_f32_i64(const bcast *bc, const float *a, const int64_t *b, float *o) {
  BCAST_WALK(bc, {
    for (int64_t i_ = 0; i_ < inner_; i_++)
      o[oo_ + i_] = (float)pow(a[oa_ + i_ * as_], (double)b[ob_ + i_ * bs_]);
  });
}

static void pow_i64_f32(const bcast *bc, const int64_t *a, const float *b, int64_t *o) {
  BCAST_WALK(bc, {
    for (int64_t i_ = 0; i_ < inner_; i_++)
      o[oo_ + i_] = (int64_t)pow((double)a[oa_ + i_ * as_], b[ob_ + i_ * bs_]);
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

/* The attributes a generic binary op reads, looked up once per node. */
typedef struct bparams {
  ty_op op;
  ty__dkind kind;
  bool fmod, left;
} bparams;

/* The comparison ops, for operands of any one domain. */
#define COMPARE(op, x, y)                                                                          \
  ((op) == TY_OP_EQUAL        ? (x) == (y)                                                         \
   : (op) == TY_OP_LESS       ? (x) < (y)                                                          \
   : (op) == TY_OP_GREATER    ? (x) > (y)                                                          \
   : (op) == TY_OP_LESS_EQUAL ? (x) <= (y)                                                         \
                              : (x) >= (y))

static ty__num bin_float(const bparams *p, double x, double y) {
  ty__num r;
  switch (p->op) {
  case TY_OP_ADD:
  case TY_OP_SUM:
  case TY_OP_MEAN:
    r.f = x + y;
    break;
  case TY_OP_SUB:
    r.f = x - y;
    break;
  case TY_OP_MUL:
    r.f = x * y;
    break;
  case TY_OP_DIV:
    r.f = x / y;
    break;
  case TY_OP_POW:
    r.f = pow(x, y);
    break;
  case TY_OP_MOD:
    r.f = fmod(x, y);
    break;
  case TY_OP_PRELU:
    r.f = x < 0 ? x * y : x;
    break;
  case TY_OP_MAX:
    r.f = isnan(x) || isnan(y) ? NAN : x > y ? x : y;
    break;
  case TY_OP_MIN:
    r.f = isnan(x) || isnan(y) ? NAN : x < y ? x : y;
    break;
  default:
    r.u = COMPARE(p->op, x, y);
    break;
  }
  return r;
}

/* Integer division and modulo never trap: a zero divisor gives 0 (bad data
 * must not take the worker down). Mod follows the divisor's sign unless
 * fmod=1 asks for C's remainder. */
static int64_t imod(int64_t x, int64_t y, bool cmod) {
  if (y == 0 || (y == -1 && x == INT64_MIN)) return 0;
  int64_t r = x % y;
  if (!cmod && r != 0 && (r < 0) != (y < 0)) r += y;
  return r;
}

static ty__num bin_sint(const bparams *p, int64_t x, int64_t y) {
  ty__num r;
  switch (p->op) {
  case TY_OP_ADD:
    r.i = (int64_t)((uint64_t)x + (uint64_t)y);
    break;
  case TY_OP_SUB:
    r.i = (int64_t)((uint64_t)x - (uint64_t)y);
    break;
  case TY_OP_MUL:
    r.i = (int64_t)((uint64_t)x * (uint64_t)y);
    break;
  case TY_OP_DIV:
    r.i = y == 0 || (y == -1 && x == INT64_MIN) ? 0 : x / y;
    break;
  case TY_OP_POW:
    r.i = (int64_t)pow((double)x, (double)y);
    break;
  case TY_OP_MOD:
    r.i = imod(x, y, p->fmod);
    break;
  case TY_OP_PRELU:
    r.i = x < 0 ? (int64_t)((uint64_t)x * (uint64_t)y) : x;
    break;
  case TY_OP_MAX:
    r.i = x > y ? x : y;
    break;
  case TY_OP_MIN:
    r.i = x < y ? x : y;
    break;
  default:
    r.u = COMPARE(p->op, x, y);
    break;
  }
  return r;
}

static ty__num bin_uint(const bparams *p, uint64_t x, uint64_t y) {
  ty__num r;
  switch (p->op) {
  case TY_OP_ADD:
    r.u = x + y;
    break;
  case TY_OP_SUB:
    r.u = x - y;
    break;
  case TY_OP_MUL:
    r.u = x * y;
    break;
  case TY_OP_DIV:
    r.u = y ? x / y : 0;
    break;
  case TY_OP_POW:
    r.u = (uint64_t)pow((double)x, (double)y);
    break;
  case TY_OP_MOD:
    r.u = y ? x % y : 0;
    break;
  case TY_OP_BIT_SHIFT:
    r.u = y >= 64 ? 0 : p->left ? x << y : x >> y;
    break;
  case TY_OP_AND:
    r.u = x && y;
    break;
  case TY_OP_OR:
    r.u = x || y;
    break;
  case TY_OP_XOR:
    r.u = !x != !y;
    break;
  case TY_OP_MAX:
    r.u = x > y ? x : y;
    break;
  case TY_OP_MIN:
    r.u = x < y ? x : y;
    break;
  default:
    r.u = COMPARE(p->op, x, y);
    break;
  }
  return r;
}

/* One element of a generic binary op; Pow reads a float exponent of any
 * dtype. */
static ty__num bin_elem(const bparams *p, ty_dtype da, const void *a, int64_t ia, ty_dtype db,
                        const void *b, int64_t ib) {
  if (p->op == TY_OP_POW && (p->kind == TY__DK_FLOAT || ty__dkind_of(db) == TY__DK_FLOAT)) {
    ty__num r = {.f = pow(ty__getf(da, a, ia), ty__getf(db, b, ib))};
    if (p->kind == TY__DK_SINT)
      r.i = ty__geti(TY_DTYPE_F64, &r.f, 0);
    else if (p->kind == TY__DK_UINT)
      r.u = ty__getu(TY_DTYPE_F64, &r.f, 0);
    return r;
  }
  if (p->kind == TY__DK_FLOAT) return bin_float(p, ty__getf(da, a, ia), ty__getf(db, b, ib));
  if (p->kind == TY__DK_SINT) return bin_sint(p, ty__geti(da, a, ia), ty__geti(db, b, ib));
  return bin_uint(p, ty__getu(da, a, ia), ty__getu(db, b, ib));
}

static bool to_bool(ty_op op) {
  return op == TY_OP_EQUAL || op == TY_OP_LESS || op == TY_OP_GREATER || op == TY_OP_LESS_EQUAL ||
         op == TY_OP_GREATER_EQUAL;
}

/* o = a op b over the collapsed broadcast; o may alias a (same shape). */
static void binary_generic(const bparams *p, const bcast *bc, const ty_tensor *a,
                           const ty_tensor *b, ty_tensor *o) {
  ty_dtype da = a->dtype, db = b->dtype, dout = o->dtype;
  bool cmp = to_bool(p->op);
  BCAST_WALK(bc, {
    for (int64_t i_ = 0; i_ < inner_; i_++) {
      ty__num r = bin_elem(p, da, a->data, oa_ + i_ * as_, db, b->data, ob_ + i_ * bs_);
      if (cmp)
        ty__putu(dout, o->data, oo_ + i_, r.u);
      else
        ty__put(dout, o->data, oo_ + i_, r);
    }
  });
}

/* The typed float32 / int64 loops of the five arithmetic ops; false when
 * the op or dtypes are not theirs. */
static bool binary_fast(ty_op op, const bcast *bc, const ty_tensor *a, const ty_tensor *b,
                        ty_tensor *o) {
  bool f = a->dtype == TY_DTYPE_F32, fb = b->dtype == TY_DTYPE_F32;
  bool i = a->dtype == TY_DTYPE_I64, ib = b->dtype == TY_DTYPE_I64;
  if (!((f && fb) || (i && ib) || (op == TY_OP_POW && (f || i) && (fb || ib)))) return false;
  switch (op) {
  case TY_OP_ADD:
    f ? add_f32(bc, a->data, b->data, o->data) : add_i64(bc, a->data, b->data, o->data);
    return true;
  case TY_OP_SUB:
    f ? sub_f32(bc, a->data, b->data, o->data) : sub_i64(bc, a->data, b->data, o->data);
    return true;
  case TY_OP_MUL:
    f ? mul_f32(bc, a->data, b->data, o->data) : mul_i64(bc, a->data, b->data, o->data);
    return true;
  case TY_OP_DIV:
    f ? div_f32(bc, a->data, b->data, o->data) : div_i64(bc, a->data, b->data, o->data);
    return true;
  case TY_OP_POW:
    if (f && fb)
      pow_f32(bc, a->data, b->data, o->data);
    else if (f)
      pow_f32_i64(bc, a->data, b->data, o->data);
    else if (fb)
      pow_i64_f32(bc, a->data, b->data, o->data);
    else
      pow_i64(bc, a->data, b->data, o->data);
    return true;
  default:
    return false;
  }
}

static bparams params_of(const ty_graph_node *n, ty_dtype dt) {
  return (bparams){.op = n->op,
                   .kind = ty__dkind_of(dt),
                   .fmod = ty_graph_node_attr_int(n, "fmod", 0) != 0,
                   .left = strcmp(ty_graph_node_attr_string(n, "direction", ""), "LEFT") == 0};
}

/* A float32 Add, Sub, Mul or Div split over the threads by ranges of the
 * collapsed broadcast's outermost dim: each range is the same loop over a
 * smaller bcast, so every element is computed as on one thread. */
typedef struct bin_split {
  ty_op op;
  const bcast *bc;
  const float *a, *b;
  float *o;
  int64_t o_step; /* output elements per step of dim 0 */
} bin_split;

static void bin_split_range(void *arg, int64_t lo, int64_t hi, int slot) {
  (void)slot;
  const bin_split *j = arg;
  bcast sub = *j->bc;
  sub.dims[0] = hi - lo;
  const float *a = j->a + lo * sub.sa[0], *b = j->b + lo * sub.sb[0];
  float *o = j->o + lo * j->o_step;
  switch (j->op) {
  case TY_OP_ADD:
    add_f32(&sub, a, b, o);
    break;
  case TY_OP_SUB:
    sub_f32(&sub, a, b, o);
    break;
  case TY_OP_MUL:
    mul_f32(&sub, a, b, o);
    break;
  default:
    div_f32(&sub, a, b, o);
    break;
  }
}

/* True when the op ran split over the pool (float32 arithmetic large
 * enough to pay for it); false: the caller runs it alone. */
static bool binary_split(ty_workers *w, ty_op op, const bcast *bc, const ty_tensor *a,
                         const ty_tensor *b, ty_tensor *o) {
  int64_t total = ty_tensor_numel(o);
  if (ty_workers_count(w) < 2 || total < 2 * TY__PAR_GRAIN || bc->rank < 1 ||
      a->dtype != TY_DTYPE_F32 || b->dtype != TY_DTYPE_F32 ||
      !(op == TY_OP_ADD || op == TY_OP_SUB || op == TY_OP_MUL || op == TY_OP_DIV))
    return false;
  bin_split j = {.op = op, .bc = bc, .a = a->data, .b = b->data, .o = o->data};
  j.o_step = total / bc->dims[0];
  ty__parallel_for(w, bc->dims[0], TY__PAR_GRAIN / j.o_step + 1, bin_split_range, &j);
  return true;
}

int ty__k_binary(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  const ty_tensor *a = in[0], *b = in[1];
  ty_tensor *o = out[0];
  if (!o) return 0;
  ty_shape bs = ty__binary_bshape(n, n->op, &a->shape, &b->shape);
  bcast bc;
  bcast_init(&bc, &a->shape, &bs, &o->shape);
  if (ty_tensor_numel(o) == 0) return 0;
  if (binary_split(ctx->workers, n->op, &bc, a, b, o)) return 0;
  if (binary_fast(n->op, &bc, a, b, o)) return 0;
  bparams p = params_of(n, a->dtype);
  binary_generic(&p, &bc, a, b, o);
  return 0;
}

/* ---- Max, Min, Sum, Mean ------------------------------------------------- */
int ty__k_variadic(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                   ty__kctx *ctx) {
  (void)ctx;
  ty_tensor *o = out[0];
  if (!o) return 0;
  ty__broadcast_copy(in[0], o);
  bparams p = params_of(n, o->dtype);
  for (int i = 1; i < n->n_inputs; i++) {
    bcast bc;
    bcast_init(&bc, &o->shape, &in[i]->shape, &o->shape);
    binary_generic(&p, &bc, o, in[i], o);
  }
  if (n->op == TY_OP_MEAN)
    for (int64_t i = 0; i < ty_tensor_numel(o); i++)
      ty__putf(o->dtype, o->data, i, ty__getf(o->dtype, o->data, i) / n->n_inputs);
  return 0;
}

/* ---- Where ------------------------------------------------------------------- */
int ty__k_where(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)n;
  (void)ctx;
  ty_tensor *o = out[0];
  if (!o) return 0;
  const ty_tensor *c = in[0], *x = in[1], *y = in[2];
  int64_t cnt = ty_tensor_numel(o);
  size_t es = ty_dtype_size(o->dtype);
  const uint8_t *cd = c->data;
  const char *xd = x->data, *yd = y->data;
  char *od = o->data;
  ty__odo w;
  ty__odo_init(&w, &o->shape, 3, (const ty_shape *[]){&c->shape, &x->shape, &y->shape});
  if (es == 4) { /* float32 attention masks: a typed copy by rows, not memcpy */
    int64_t len = ty__odo_rows(&w), r = w.rank, sc = w.st[0][r], sx = w.st[1][r], sy = w.st[2][r];
    const uint32_t *xv = (const uint32_t *)xd, *yv = (const uint32_t *)yd;
    uint32_t *ov = (uint32_t *)od;
    for (int64_t i = 0; i < cnt && len > 0; i += len, ty__odo_next(&w))
      for (int64_t k = 0; k < len; k++)
        ov[i + k] = cd[w.off[0] + k * sc] ? xv[w.off[1] + k * sx] : yv[w.off[2] + k * sy];
    return 0;
  }
  for (int64_t i = 0; i < cnt; i++, ty__odo_next(&w))
    memcpy(od + (size_t)i * es,
           cd[w.off[0]] ? xd + (size_t)w.off[1] * es : yd + (size_t)w.off[2] * es, es);
  return 0;
}
