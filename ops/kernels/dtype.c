/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Elements of any dtype: reading and writing one element in the domain of
 * its kind (double for floats, int64 for signed, uint64 for unsigned and
 * bool), conversions between kinds with ONNX Cast's rules, and IEEE half
 * and bfloat16 conversions.
 *
 * The generic kernels (comparisons, Min/Max, Mod, Where, reductions of
 * integers, Cast) go through these one element at a time: a switch per
 * element costs a few nanoseconds, which is nothing for masks and indices
 * and would be too much for float training tensors, which keep their own
 * loops. Half and bfloat16 round to nearest even from double directly, so
 * a DOUBLE -> FLOAT16 cast is not rounded twice.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <string.h>

ty__dkind ty__dkind_of(ty_dtype dt) {
  switch (dt) {
  case TY_DTYPE_F32:
  case TY_DTYPE_F64:
  case TY_DTYPE_F16:
  case TY_DTYPE_BF16:
    return TY__DK_FLOAT;
  case TY_DTYPE_I8:
  case TY_DTYPE_I16:
  case TY_DTYPE_I32:
  case TY_DTYPE_I64:
    return TY__DK_SINT;
  default:
    return TY__DK_UINT;
  }
}

/* ---- half and bfloat16 -------------------------------------------------- */
float ty__f16_to_f32(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  float v;
  if (e == 0)
    v = ldexpf((float)m, -24); /* zero or subnormal */
  else if (e == 31)
    v = m ? NAN : INFINITY;
  else
    v = ldexpf((float)(m | 0x400), (int)e - 25);
  return sign ? -v : v;
}

uint16_t ty__f64_to_f16(double x) {
  uint16_t sign = signbit(x) ? 0x8000 : 0;
  double a = fabs(x);
  if (isnan(x)) return sign | 0x7e00;
  if (a >= 65520.0) return sign | 0x7c00; /* 65520 rounds (to even) past the largest half, 65504 */
  if (a < 0x1p-14)
    return sign | (uint16_t)rint(a * 0x1p24); /* subnormal; 1024 is the least normal */
  int k;
  double f = frexp(a, &k); /* a = f * 2^k, f in [0.5, 1) */
  int e = k - 1;
  double m = rint((f * 2.0 - 1.0) * 1024.0); /* exact scaling, then round to nearest even */
  if (m == 1024.0) {
    m = 0;
    e++;
  }
  return sign | (uint16_t)((e + 15) << 10) | (uint16_t)m;
}

float ty__bf16_to_f32(uint16_t h) {
  uint32_t b = (uint32_t)h << 16;
  float f;
  memcpy(&f, &b, 4);
  return f;
}

uint16_t ty__f32_to_bf16(float x) {
  uint32_t b;
  memcpy(&b, &x, 4);
  if (isnan(x)) return (uint16_t)((b >> 16) | 0x40);
  b += 0x7fff + ((b >> 16) & 1); /* round to nearest even */
  return (uint16_t)(b >> 16);
}

/* ---- reading ------------------------------------------------------------ */
double ty__getf(ty_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case TY_DTYPE_F32:
    return ((const float *)p)[i];
  case TY_DTYPE_F64:
    return ((const double *)p)[i];
  case TY_DTYPE_F16:
    return ty__f16_to_f32(((const uint16_t *)p)[i]);
  case TY_DTYPE_BF16:
    return ty__bf16_to_f32(((const uint16_t *)p)[i]);
  case TY_DTYPE_I8:
  case TY_DTYPE_I16:
  case TY_DTYPE_I32:
  case TY_DTYPE_I64:
    return (double)ty__geti(dt, p, i);
  default:
    return (double)ty__getu(dt, p, i);
  }
}

/* Saturating truncation toward zero (NaN to 0): C leaves out-of-range
 * float-to-integer conversions undefined, ONNX leaves the value open. */
static int64_t f_to_i64(double v) {
  if (isnan(v)) return 0;
  if (v >= 0x1p63) return INT64_MAX;
  if (v < -0x1p63) return INT64_MIN;
  return (int64_t)v;
}

static uint64_t f_to_u64(double v) {
  if (isnan(v) || v <= -1.0)
    return v <= -1.0 ? (uint64_t)f_to_i64(v) : 0; /* negative: two's complement */
  if (v >= 0x1p64) return UINT64_MAX;
  return (uint64_t)v;
}

int64_t ty__geti(ty_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case TY_DTYPE_I8:
    return ((const int8_t *)p)[i];
  case TY_DTYPE_I16:
    return ((const int16_t *)p)[i];
  case TY_DTYPE_I32:
    return ((const int32_t *)p)[i];
  case TY_DTYPE_I64:
    return ((const int64_t *)p)[i];
  case TY_DTYPE_F32:
  case TY_DTYPE_F64:
  case TY_DTYPE_F16:
  case TY_DTYPE_BF16:
    return f_to_i64(ty__getf(dt, p, i));
  default:
    return (int64_t)ty__getu(dt, p, i);
  }
}

uint64_t ty__getu(ty_dtype dt, const void *p, int64_t i) {
  switch (dt) {
  case TY_DTYPE_U8:
    return ((const uint8_t *)p)[i];
  case TY_DTYPE_BOOL:
    return ((const uint8_t *)p)[i] != 0;
  case TY_DTYPE_U16:
    return ((const uint16_t *)p)[i];
  case TY_DTYPE_U32:
    return ((const uint32_t *)p)[i];
  case TY_DTYPE_U64:
    return ((const uint64_t *)p)[i];
  case TY_DTYPE_F32:
  case TY_DTYPE_F64:
  case TY_DTYPE_F16:
  case TY_DTYPE_BF16:
    return f_to_u64(ty__getf(dt, p, i));
  default:
    return (uint64_t)ty__geti(dt, p, i);
  }
}

/* ---- writing ------------------------------------------------------------ */
void ty__putf(ty_dtype dt, void *p, int64_t i, double v) {
  switch (dt) {
  case TY_DTYPE_F32:
    ((float *)p)[i] = (float)v;
    return;
  case TY_DTYPE_F64:
    ((double *)p)[i] = v;
    return;
  case TY_DTYPE_F16:
    ((uint16_t *)p)[i] = ty__f64_to_f16(v);
    return;
  case TY_DTYPE_BF16:
    ((uint16_t *)p)[i] = ty__f32_to_bf16((float)v);
    return;
  case TY_DTYPE_BOOL:
    ((uint8_t *)p)[i] = v != 0;
    return;
  case TY_DTYPE_I8:
  case TY_DTYPE_I16:
  case TY_DTYPE_I32:
  case TY_DTYPE_I64:
    ty__puti(dt, p, i, f_to_i64(v));
    return;
  default:
    ty__putu(dt, p, i, f_to_u64(v));
    return;
  }
}

void ty__puti(ty_dtype dt, void *p, int64_t i, int64_t v) {
  switch (dt) {
  case TY_DTYPE_I8:
    ((int8_t *)p)[i] = (int8_t)v;
    return; /* wraps, as numpy's astype */
  case TY_DTYPE_I16:
    ((int16_t *)p)[i] = (int16_t)v;
    return;
  case TY_DTYPE_I32:
    ((int32_t *)p)[i] = (int32_t)v;
    return;
  case TY_DTYPE_I64:
    ((int64_t *)p)[i] = v;
    return;
  case TY_DTYPE_F32:
  case TY_DTYPE_F64:
  case TY_DTYPE_F16:
  case TY_DTYPE_BF16:
    ty__putf(dt, p, i, (double)v);
    return;
  default:
    ty__putu(dt, p, i, (uint64_t)v);
    return;
  }
}

void ty__putu(ty_dtype dt, void *p, int64_t i, uint64_t v) {
  switch (dt) {
  case TY_DTYPE_U8:
    ((uint8_t *)p)[i] = (uint8_t)v;
    return;
  case TY_DTYPE_BOOL:
    ((uint8_t *)p)[i] = v != 0;
    return;
  case TY_DTYPE_U16:
    ((uint16_t *)p)[i] = (uint16_t)v;
    return;
  case TY_DTYPE_U32:
    ((uint32_t *)p)[i] = (uint32_t)v;
    return;
  case TY_DTYPE_U64:
    ((uint64_t *)p)[i] = v;
    return;
  case TY_DTYPE_F32:
  case TY_DTYPE_F64:
  case TY_DTYPE_F16:
  case TY_DTYPE_BF16:
    ty__putf(dt, p, i, (double)v);
    return;
  default:
    ty__puti(dt, p, i, (int64_t)v);
    return;
  }
}

ty__num ty__get(ty_dtype dt, const void *p, int64_t i) {
  ty__num v;
  switch (ty__dkind_of(dt)) {
  case TY__DK_FLOAT:
    v.f = ty__getf(dt, p, i);
    break;
  case TY__DK_SINT:
    v.i = ty__geti(dt, p, i);
    break;
  default:
    v.u = ty__getu(dt, p, i);
    break;
  }
  return v;
}

void ty__put(ty_dtype dt, void *p, int64_t i, ty__num v) {
  switch (ty__dkind_of(dt)) {
  case TY__DK_FLOAT:
    ty__putf(dt, p, i, v.f);
    break;
  case TY__DK_SINT:
    ty__puti(dt, p, i, v.i);
    break;
  default:
    ty__putu(dt, p, i, v.u);
    break;
  }
}

/* ---- casting ------------------------------------------------------------- */
void ty__cast_elems(ty_dtype from, const void *src, ty_dtype to, void *dst, int64_t n) {
  if (from == to) {
    memcpy(dst, src, (size_t)n * ty_dtype_size(from));
    return;
  }
  ty__dkind k = ty__dkind_of(from);
  for (int64_t i = 0; i < n; i++) {
    if (k == TY__DK_FLOAT)
      ty__putf(to, dst, i, ty__getf(from, src, i));
    else if (k == TY__DK_SINT)
      ty__puti(to, dst, i, ty__geti(from, src, i));
    else
      ty__putu(to, dst, i, ty__getu(from, src, i));
  }
}

int ty_tensor_cast(const ty_tensor *t, ty_dtype to, ty_tensor **out_tensor) {
  ty_tensor *o;
  int rc = ty_tensor_create(to, &t->shape, &o);
  if (rc != 0) return rc;
  ty__cast_elems(t->dtype, t->data, to, o->data, ty_tensor_numel(t));
  *out_tensor = o;
  return 0;
}

double ty_tensor_get_f64(const ty_tensor *t, int64_t i) {
  return ty__getf(t->dtype, t->data, i);
}
