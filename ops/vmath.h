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
 * results and overflow to +inf round as a multiply does); erf within 1
 * ulp of the correctly rounded value over every float (checked
 * exhaustively when it was fitted; 99.94% of positive floats exact):
 * x * P(x^2) / Q(x^2) on x clamped to [-4, 4] (erf(4) rounds to 1 in
 * float), P of degree 6 and Q of degree 5 fitted for relative error
 * 2e-9 (bench/ops/fit_erf.py), evaluated in double (Estrin's scheme) and
 * rounded once. One rational in double costs half the previous two float
 * pieces (an odd polynomial below 0.875, 1 - exp(R(|x|) - x^2) above,
 * both computed for every element), which were off by up to 3 ulp; in
 * float arithmetic the same rational is off by up to 7 ulp.
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
    float xc = x < -4.0f ? -4.0f : x > 4.0f ? 4.0f : x;                       \
    double d = xc, s = d * d, s2 = s * s, s4 = s2 * s2;                       \
    double p01 = 0x1.7b4bb1a314fefp-3 * s + 0x1.20dd750429b6dp+0;             \
    double p23 = 0x1.f8935ee3c3a7ep-9 * s + 0x1.bcf6d7048cd71p-5;             \
    double p45 = 0x1.3a64b9c6ab50fp-18 * s + 0x1.8e0cebff40860p-12;           \
    double p = (p45 - 0x1.c5a22d28ed071p-27 * s2) * s4 + (p23 * s2 + p01);    \
    double q01 = 0x1.fd678939bc5afp-2 * s + 1.0;                              \
    double q23 = 0x1.faa961145e47bp-7 * s + 0x1.d2c5fd9db6971p-4;             \
    double q45 = 0x1.08b4f9fc5e53ap-14 * s + 0x1.56c59cf22297ap-10;           \
    double q = q45 * s4 + (q23 * s2 + q01);                                   \
    return (float)(d * p / q);                                                \
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
