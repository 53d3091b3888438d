/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/vmath.c: the vectorised exp and erf against libm's double exp and
 * erf rounded to float (the correctly rounded result in all but rare
 * ties), over dense sweeps of their ranges; their special values; the
 * in-place forms; and Erf's gradient as exactly the formula it replaces,
 * evaluated with the same exp. That fused, JIT and interpreted regions
 * give the unfused kernels' bits is tests/unit/ops/fusion's check.
 */
#include "ops/vmath.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define SWEEP (1 << 20)

/* Floats mapped to integers that are ordered like the floats, so the
 * difference of two is their distance in ulps. */
static int64_t ordinal(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i < 0 ? -(int64_t)(i & 0x7fffffff) : i;
}

static int64_t ulps(float a, float b) {
  int64_t d = ordinal(a) - ordinal(b);
  return d < 0 ? -d : d;
}

/* The largest ulp error of fn over SWEEP evenly spaced points in [lo, hi]. */
static int64_t max_ulps(void (*fn)(const float *, float *, int64_t), double (*ref)(double),
                        float lo, float hi, float *out_at) {
  float *x = malloc(SWEEP * sizeof *x), *y = malloc(SWEEP * sizeof *y);
  cr_assert(x && y);
  for (int64_t i = 0; i < SWEEP; i++)
    x[i] = lo + (hi - lo) * (float)((double)i / (SWEEP - 1));
  fn(x, y, SWEEP);
  int64_t worst = 0;
  for (int64_t i = 0; i < SWEEP; i++) {
    int64_t u = ulps(y[i], (float)ref((double)x[i]));
    if (u > worst) {
      worst = u;
      *out_at = x[i];
    }
  }
  free(x);
  free(y);
  return worst;
}

Test(vmath, exp_within_one_ulp_over_its_normal_range) {
  float at = 0;
  int64_t u = max_ulps(ty_vmath_exp, exp, -87.3f, 88.7f, &at);
  cr_assert_leq(u, 1, "exp: %lld ulp at %a", (long long)u, (double)at);
  u = max_ulps(ty_vmath_exp, exp, -1.0f, 1.0f, &at);
  cr_assert_leq(u, 1, "exp: %lld ulp at %a", (long long)u, (double)at);
}

Test(vmath, exp_rounds_subnormal_results) {
  float at = 0;
  int64_t u = max_ulps(ty_vmath_exp, exp, -103.9f, -87.4f, &at);
  cr_assert_leq(u, 1, "exp: %lld ulp at %a", (long long)u, (double)at);
}

/* One rational over the whole range, evaluated in double (ops/vmath.h):
 * within 1 ulp everywhere, including where the old two pieces met. */
Test(vmath, erf_within_one_ulp) {
  float at = 0;
  int64_t u = max_ulps(ty_vmath_erf, erf, -5.0f, 5.0f, &at);
  cr_assert_leq(u, 1, "erf: %lld ulp at %a", (long long)u, (double)at);
  u = max_ulps(ty_vmath_erf, erf, -1e-3f, 1e-3f, &at);
  cr_assert_leq(u, 1, "erf near 0: %lld ulp at %a", (long long)u, (double)at);
  u = max_ulps(ty_vmath_erf, erf, 0.8f, 0.95f, &at);
  cr_assert_leq(u, 1, "erf near 0.875: %lld ulp at %a", (long long)u, (double)at);
  u = max_ulps(ty_vmath_erf, erf, 3.5f, 4.5f, &at); /* the clamp at 4 */
  cr_assert_leq(u, 1, "erf near 4: %lld ulp at %a", (long long)u, (double)at);
  u = max_ulps(ty_vmath_erf, erf, 1e-37f, 1e-30f, &at);
  cr_assert_leq(u, 1, "erf of tiny x: %lld ulp at %a", (long long)u, (double)at);
}

/* Every float between 0.25 and 4 (a quarter of them: 2^23 points in each
 * binade of [0.25, 4)), where erf's value is not x * 2/sqrt(pi) rounded,
 * and their negatives: odd symmetry is exact. */
Test(vmath, erf_within_one_ulp_on_every_fourth_float_to_4) {
  enum { STEP = 4 };
  int64_t worst = 0;
  float at = 0, lo = 0.25f, hi = 4.0f;
  uint32_t ulo, uhi;
  memcpy(&ulo, &lo, 4);
  memcpy(&uhi, &hi, 4);
  int64_t n = (uhi - ulo) / STEP;
  float *x = malloc((size_t)n * sizeof *x), *y = malloc((size_t)n * sizeof *y),
        *z = malloc((size_t)n * sizeof *z);
  cr_assert(x && y && z);
  for (int64_t i = 0; i < n; i++) {
    uint32_t b = ulo + (uint32_t)(i * STEP);
    memcpy(&x[i], &b, 4);
  }
  ty_vmath_erf(x, y, n);
  for (int64_t i = 0; i < n; i++)
    x[i] = -x[i];
  ty_vmath_erf(x, z, n);
  for (int64_t i = 0; i < n; i++) {
    cr_assert_eq(z[i], -y[i], "erf(-x) = -erf(x) at %a", (double)x[i]);
    int64_t u = ulps(y[i], (float)erf(-(double)x[i]));
    if (u > worst) {
      worst = u;
      at = -x[i];
    }
  }
  free(x);
  free(y);
  free(z);
  cr_assert_leq(worst, 1, "erf: %lld ulp at %a", (long long)worst, (double)at);
}

Test(vmath, special_values) {
  float x[] = {0.0f,    -0.0f, INFINITY, -INFINITY, NAN,   89.0f,
               -110.0f, 4.0f,  -1e-30f,  0x1p-149f, -3.9f, 1e30f};
  enum { N = sizeof x / sizeof x[0] };
  float e[N], f[N];
  ty_vmath_exp(x, e, N);
  ty_vmath_erf(x, f, N);
  cr_assert_eq(e[0], 1.0f);
  cr_assert_eq(e[1], 1.0f);
  cr_assert(isinf(e[2]) && e[2] > 0);
  cr_assert_eq(e[3], 0.0f);
  cr_assert(isnan(e[4]));
  cr_assert(isinf(e[5]), "exp(89) overflows to inf");
  cr_assert_eq(e[6], 0.0f);
  cr_assert(f[0] == 0.0f && !signbit(f[0]));
  cr_assert(f[1] == 0.0f && signbit(f[1]), "erf(-0) is -0");
  cr_assert_eq(f[2], 1.0f);
  cr_assert_eq(f[3], -1.0f);
  cr_assert(isnan(f[4]));
  cr_assert_eq(f[7], 1.0f);
  cr_assert_eq(f[8], (float)(-1e-30 * 1.1283791670955126),
               "erf of a tiny x is x * 2/sqrt(pi), rounded once");
  cr_assert_eq(f[9], 0x1p-149f, "the least subnormal's erf rounds back to it");
  cr_assert_eq(f[10], -0x1.fffffep-1f, "erf(-3.9) rounds to -(1 - 2^-24), not to -1");
  cr_assert_eq(f[11], 1.0f);
}

/* Kernels run in place when memory planning lets them. */
Test(vmath, in_place_gives_the_same_bits) {
  enum { N = 1003 };
  float x[N], a[N], b[N];
  for (int i = 0; i < N; i++)
    x[i] = (float)(i - N / 2) * 0.0137f;
  ty_vmath_exp(x, a, N);
  memcpy(b, x, sizeof b);
  ty_vmath_exp(b, b, N);
  cr_assert(memcmp(a, b, sizeof a) == 0, "exp in place");
  ty_vmath_erf(x, a, N);
  memcpy(b, x, sizeof b);
  ty_vmath_erf(b, b, N);
  cr_assert(memcmp(a, b, sizeof a) == 0, "erf in place");
}

Test(vmath, erf_grad_is_its_formula) {
  enum { N = 517 };
  float x[N], dy[N], nx2[N], e[N], dx[N];
  for (int i = 0; i < N; i++) {
    x[i] = (float)(i - N / 2) * 0.017f;
    dy[i] = 1.0f + (float)(i % 7) * 0.25f;
    nx2[i] = -x[i] * x[i];
  }
  ty_vmath_exp(nx2, e, N);
  ty_vmath_erf_grad(dy, x, dx, N);
  for (int i = 0; i < N; i++)
    cr_assert_eq(dx[i], dy[i] * 1.1283791670955126f * e[i], "element %d", i);
  ty_vmath_erf_grad(dy, x, dy, N); /* in place over dY */
  cr_assert(memcmp(dx, dy, sizeof dx) == 0);
}

/* The JIT's prelude is the library's definitions as text. */
Test(vmath, source_text_defines_both_functions) {
  const char *src = TY_VMATH_SOURCE;
  cr_assert(strstr(src, "ty_vexpf(float x)") && strstr(src, "ty_verff(float x)"));
}

/* The array functions run the CPU's widest clone, vectorised (AVX2 needs
 * -fno-trapping-math to if-convert the selects: ops/meson.build); each
 * element must be the bits of the scalar definition, called one at a time
 * through a volatile pointer so that this loop stays scalar. */
static float scalar_exp(float x) {
  return ty_vexpf(x);
}

static float scalar_erf(float x) {
  return ty_verff(x);
}

Test(vmath, vectorised_arrays_give_the_scalar_bits) {
  enum { N = 4099 };
  static float x[N], a[N];
  float (*volatile fe)(float) = scalar_exp, (*volatile ff)(float) = scalar_erf;
  for (int i = 0; i < N; i++)
    x[i] = (float)(i - N / 2) * 0.0491f; /* -100.6 .. 100.6: every piece of both */
  x[7] = NAN;
  x[11] = -INFINITY;
  ty_vmath_exp(x, a, N);
  for (int i = 0; i < N; i++) {
    float s = fe(x[i]);
    cr_assert(memcmp(&a[i], &s, sizeof s) == 0, "exp(%a): array %a, scalar %a", (double)x[i],
              (double)a[i], (double)s);
  }
  ty_vmath_erf(x, a, N);
  for (int i = 0; i < N; i++) {
    float s = ff(x[i]);
    cr_assert(memcmp(&a[i], &s, sizeof s) == 0, "erf(%a): array %a, scalar %a", (double)x[i],
              (double)a[i], (double)s);
  }
}
