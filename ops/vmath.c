/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The array forms of ops/vmath.h's exp and erf, the loops the kernels and
 * the fusion interpreter call. Each is cloned for AVX-512, AVX2 and
 * baseline x86-64 and the loader picks the widest the CPU runs (an ifunc);
 * without -ffp-contract (ISO C here, and the JIT passes it off) every
 * clone computes the same bits, so the choice changes speed only.
 */
#include "ops/vmath.h"

TY_VMATH_CLONES void ty_vmath_exp(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = ty_vexpf(x[i]);
}

TY_VMATH_CLONES void ty_vmath_erf(const float *x, float *y, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    y[i] = ty_verff(x[i]);
}

TY_VMATH_CLONES void ty_vmath_erf_grad(const float *dy, const float *x, float *dx, int64_t n) {
  for (int64_t i = 0; i < n; i++)
    dx[i] = dy[i] * 1.1283791670955126f * ty_vexpf(-x[i] * x[i]);
}
