/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Vectorisable float exp and erf: the one definition that the CPU kernels
 * (Exp, Erf and Erf's gradient), the fusion interpreter and the fusion
 * JIT's generated C all evaluate, so fused, JIT-compiled, interpreted and
 * unfused results stay bitwise equal.
 *
 * glibc's expf and erff are scalar calls; GELU's erf and its gradient's exp
 * were most of the GPT's elementwise time. These are branch-free (every
 * case is computed and selected), use only IEEE +, -, *, / and bit
 * moves, and no libm call, so gcc vectorises a loop over them at any SIMD
 * width, and every width gives the same bits (the library and the JIT
 * compile with -ffp-contract=off: no fused multiply-adds). Below AVX-512
 * gcc if-converts the selects only under -fno-trapping-math, which the
 * library (ops/meson.build) and the JIT (fusion/jit.c) pass.
 *
 * Accuracy (tests/unit/ops/test_vmath.c sweeps them against libm): exp
 * within 1 ulp for normal results (Cody-Waite reduction by ln 2, a
 * degree-7 polynomial, the scale 2^n applied in two halves so subnormal
 * results and overflow to +inf round as a multiply does); erf within 2
 * ulp: x * P(x^2) for |x| < 0.875, 1 - exp(R(|x|) - x^2) up to 4 with R
 * fitted to log(erfc(t)) + t^2 on [0.875, 4] (a slowly varying function:
 * fitting log(erfc) itself left terms that cancel), and +-1 beyond 4
 * (erf(4) rounds to 1 in float).
 * NaN propagates; +-inf give +inf/0 (exp) and +-1 (erf).
 *
 * TY_VMATH_DEFS is the C text of the two static inline functions; this
 * header expands it for the library, the JIT stringifies it into the
 * prelude of every generated kernel (TY_VMATH_SOURCE). The array functions
 * below are compiled for AVX-512, AVX2 and baseline x86-64, the widest the
 * CPU has chosen at load time (gcc's target_clones).
 */
#ifndef TY_OPS_VMATH_H
#define TY_OPS_VMATH_H

#include <stdint.h>

/* clang-format off */
#define TY_VMATH_DEFS                                                          \
  static inline float ty_vexpf(float x) {                                     \
    union { float f; uint32_t u; } s1, s2;                                    \
    float xc = x == x ? x : 0.0f;                                             \
    xc = xc < -104.0f ? -104.0f : xc;                                         \
    xc = xc > 89.0f ? 89.0f : xc;                                             \
    float n = (xc * 0x1.715476p+0f + 0x1.8p23f) - 0x1.8p23f;                  \
    float r = (xc - n * 0x1.63p-1f) - n * -0x1.bd0106p-13f;                   \
    float z = r * r;                                                          \
    float p = 0x1.a072acp-13f;                                                \
    p = p * r + 0x1.6d42d6p-10f;                                              \
    p = p * r + 0x1.11114cp-7f;                                               \
    p = p * r + 0x1.5554eap-5f;                                               \
    p = p * r + 0x1.555556p-3f;                                               \
    p = p * r + 0x1p-1f;                                                      \
    float y = (p * z + r) + 1.0f;                                             \
    int32_t k = (int32_t)n, k1 = k >> 1, k2 = k - k1;                         \
    s1.u = (uint32_t)(k1 + 127) << 23;                                        \
    s2.u = (uint32_t)(k2 + 127) << 23;                                        \
    y = (y * s1.f) * s2.f;                                                    \
    return x == x ? y : x;                                                    \
  }                                                                           \
  static inline float ty_verff(float x) {                                     \
    float t = x < 0 ? -x : x, s = x * x;                                      \
    float p = -0x1.661d06p-17f;                                               \
    p = p * s + 0x1.e4a22ap-14f;                                              \
    p = p * s + -0x1.be843ap-11f;                                             \
    p = p * s + 0x1.5648e2p-8f;                                               \
    p = p * s + -0x1.b82bf8p-6f;                                              \
    p = p * s + 0x1.ce2f1cp-4f;                                               \
    p = p * s + -0x1.812746p-2f;                                              \
    p = p * s + 0x1.20dd76p+0f;                                               \
    float lo = x * p;                                                         \
    float u = (t < 0.875f ? 0.875f : t > 4.0f ? 4.0f : t) - 2.4375f;          \
    float q = 0x1.ae2afep-20f;                                                \
    q = q * u + -0x1.d951e8p-17f;                                             \
    q = q * u + 0x1.5dfb08p-14f;                                              \
    q = q * u + -0x1.d83194p-12f;                                             \
    q = q * u + 0x1.2d9a42p-9f;                                               \
    q = q * u + -0x1.76191ap-7f;                                              \
    q = q * u + 0x1.dcb9f8p-5f;                                               \
    q = q * u + -0x1.70758ap-2f;                                              \
    q = q * u + -0x1.88d854p+0f;                                              \
    float hi = 1.0f - ty_vexpf(q - s);                                        \
    hi = x < 0 ? -hi : hi;                                                    \
    float y = t < 0.875f ? lo : hi;                                           \
    return x == x ? y : x;                                                    \
  }
/* clang-format on */

/* ty_vexpf and ty_verff for the library: one element, inlined. */
TY_VMATH_DEFS

#define TY_VMATH_STR_(...) #__VA_ARGS__
#define TY_VMATH_STR(x) TY_VMATH_STR_(x)
/* TY_VMATH_DEFS as a string literal, for generated C. */
#define TY_VMATH_SOURCE TY_VMATH_STR(TY_VMATH_DEFS)

/* Clones a loop for AVX-512, AVX2 and baseline x86-64; the loader picks
 * the widest the CPU runs (an ifunc). Without -ffp-contract (ISO C here)
 * every clone computes the same bits, so the choice changes speed only.
 * Not under ThreadSanitizer: the clones' resolver runs while the loader
 * relocates, before TSan's runtime exists, and TSan instruments it. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) &&       \
    !defined(__SANITIZE_THREAD__)
#define TY_VMATH_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TY_VMATH_CLONES
#endif

/* Four doubles as one value (gcc and clang vector extensions): the
 * four-lane sums of the row kernels written so that each lane is one
 * element of a vector, which the compilers do not find in a lane array.
 * Every lane computes what the array's element did, so the bits are the
 * same. */
typedef double ty_v4d __attribute__((vector_size(32)));
typedef float ty_v4f_u __attribute__((vector_size(16), aligned(4), may_alias));

/* p[0..4) widened to double (a macro: a function returning a 32-byte
 * vector would change the ABI between the clones). */
#define ty_v4d_load(p) __builtin_convertvector(*(const ty_v4f_u *)(const void *)(p), ty_v4d)

/* y[i] = exp(x[i]) for i < n; y may be x. */
void ty_vmath_exp(const float *x, float *y, int64_t n);
/* y[i] = erf(x[i]) for i < n; y may be x. */
void ty_vmath_erf(const float *x, float *y, int64_t n);
/* Erf's gradient: dx[i] = dy[i] * 2/sqrt(pi) * exp(-x[i]^2); dx may be dy or x. */
void ty_vmath_erf_grad(const float *dy, const float *x, float *dx, int64_t n);

#endif
