/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Small single-precision GEMMs (the attention's 64 x 64 x 32 products and
 * alike, under kernels/gemm.c's PAR_MIN_MACS) on a kernel of our own:
 * AVX2 + FMA register tiles of 6 rows x 16 columns of C, compiled per
 * function with target attributes and chosen at run time by a CPU check.
 * A library call pays its set-up and packs both operands for every such
 * product; here B is read in place where its rows are contiguous (packed
 * one 16-column panel at a time, on the stack, only where B is transposed,
 * by 8 x 8 register transposes, or the panel is C's ragged edge) and A's
 * elements are broadcast from where they are stored.
 *
 * Each element of C is sum_p A[i,p] B[p,j] accumulated in order p = 0..k-1
 * by fused multiply-adds from 0, then alpha * sum (+ beta * C): the result
 * depends on the operands and the shape only, never on the thread count or
 * on where the element falls in the tiles. Where the CPU lacks AVX2 or FMA,
 * or k is too long for the panel buffer, ty__sgemm_small returns false and
 * the caller runs the library (kernels/gemm.c), as before this kernel.
 */
#include "ops/ops_internal.h"

#include <stdatomic.h>
#include <string.h>

#define MR 6       /* rows of C per register tile */
#define NR 16      /* columns of C per register tile: two 8-float vectors */
#define K_MAX 1024 /* longest k a stack panel (K_MAX x NR floats) takes */

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define TY_SMALL_TARGET __attribute__((target("avx2,fma")))

/* The 8 x 8 block of B^T at src (rows of stride lds) to dst (rows of NR):
 * dst[p * NR + j] = src[j * lds + p]. */
TY_SMALL_TARGET static void transpose8(const float *src, int64_t lds, float *dst) {
  __m256 r0 = _mm256_loadu_ps(src), r1 = _mm256_loadu_ps(src + lds),
         r2 = _mm256_loadu_ps(src + 2 * lds), r3 = _mm256_loadu_ps(src + 3 * lds),
         r4 = _mm256_loadu_ps(src + 4 * lds), r5 = _mm256_loadu_ps(src + 5 * lds),
         r6 = _mm256_loadu_ps(src + 6 * lds), r7 = _mm256_loadu_ps(src + 7 * lds);
  __m256 t0 = _mm256_unpacklo_ps(r0, r1), t1 = _mm256_unpackhi_ps(r0, r1),
         t2 = _mm256_unpacklo_ps(r2, r3), t3 = _mm256_unpackhi_ps(r2, r3),
         t4 = _mm256_unpacklo_ps(r4, r5), t5 = _mm256_unpackhi_ps(r4, r5),
         t6 = _mm256_unpacklo_ps(r6, r7), t7 = _mm256_unpackhi_ps(r6, r7);
  __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
         u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
         u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
         u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
  _mm256_storeu_ps(dst, _mm256_permute2f128_ps(u0, u4, 0x20));
  _mm256_storeu_ps(dst + NR, _mm256_permute2f128_ps(u1, u5, 0x20));
  _mm256_storeu_ps(dst + 2 * NR, _mm256_permute2f128_ps(u2, u6, 0x20));
  _mm256_storeu_ps(dst + 3 * NR, _mm256_permute2f128_ps(u3, u7, 0x20));
  _mm256_storeu_ps(dst + 4 * NR, _mm256_permute2f128_ps(u0, u4, 0x31));
  _mm256_storeu_ps(dst + 5 * NR, _mm256_permute2f128_ps(u1, u5, 0x31));
  _mm256_storeu_ps(dst + 6 * NR, _mm256_permute2f128_ps(u2, u6, 0x31));
  _mm256_storeu_ps(dst + 7 * NR, _mm256_permute2f128_ps(u3, u7, 0x31));
}

/* B's panel of columns [j0, j0 + nr) as k rows of NR floats, zero past nr.
 * Where B is transposed, whole 8 x 8 blocks go through transpose8. */
TY_SMALL_TARGET static void pack_panel(bool tb, const float *b, int64_t ldb, int64_t k, int64_t j0,
                                       int64_t nr, float *panel) {
  int64_t p0 = 0;
  if (tb && nr == NR)
    for (; p0 + 8 <= k; p0 += 8) {
      transpose8(b + j0 * ldb + p0, ldb, panel + p0 * NR);
      transpose8(b + (j0 + 8) * ldb + p0, ldb, panel + p0 * NR + 8);
    }
  for (int64_t p = p0; p < k; p++) {
    float *dst = panel + p * NR;
    if (tb)
      for (int64_t j = 0; j < nr; j++)
        dst[j] = b[(j0 + j) * ldb + p];
    else
      memcpy(dst, b + p * ldb + j0, sizeof(float) * (size_t)nr);
    for (int64_t j = nr; j < NR; j++)
      dst[j] = 0.0f;
  }
}

/* Row r of a tile to C's row cr: alpha * acc (+ beta * C), nr columns. */
TY_SMALL_TARGET static inline void store_row(float *cr, __m256 lo, __m256 hi, float alpha,
                                             float beta, int64_t nr) {
  __m256 va = _mm256_set1_ps(alpha);
  lo = _mm256_mul_ps(va, lo);
  hi = _mm256_mul_ps(va, hi);
  if (nr == NR) {
    if (beta != 0.0f) { /* beta 0 never reads C, which may hold NaNs */
      __m256 vb = _mm256_set1_ps(beta);
      lo = _mm256_add_ps(lo, _mm256_mul_ps(vb, _mm256_loadu_ps(cr)));
      hi = _mm256_add_ps(hi, _mm256_mul_ps(vb, _mm256_loadu_ps(cr + 8)));
    }
    _mm256_storeu_ps(cr, lo);
    _mm256_storeu_ps(cr + 8, hi);
    return;
  }
  float out[NR];
  _mm256_storeu_ps(out, lo);
  _mm256_storeu_ps(out + 8, hi);
  for (int64_t j = 0; j < nr; j++) /* C's ragged edge */
    cr[j] = beta != 0.0f ? out[j] + beta * cr[j] : out[j];
}

/* One tile: rows ap[0..MR) (element p of row r at ap[r] + p * ak) times
 * the panel (row p at bp + p * bk, NR floats), written to the first mr rows
 * and nr columns of C at c. Rows past mr repeat row 0 and are not stored.
 * The twelve accumulators are named so that they stay in registers. */
TY_SMALL_TARGET static void tile(const float *const *ap, int64_t ak, const float *bp, int64_t bk,
                                 int64_t k, float alpha, float beta, float *c, int64_t ldc,
                                 int64_t mr, int64_t nr) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
         c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float *a0 = ap[0], *a1 = ap[1], *a2 = ap[2], *a3 = ap[3], *a4 = ap[4], *a5 = ap[5];
  for (int64_t p = 0; p < k; p++) {
    __m256 b0 = _mm256_loadu_ps(bp), b1 = _mm256_loadu_ps(bp + 8), x;
#define TY_ROW(r, ar)                                                                              \
  x = _mm256_broadcast_ss(ar);                                                                     \
  c##r##0 = _mm256_fmadd_ps(x, b0, c##r##0);                                                       \
  c##r##1 = _mm256_fmadd_ps(x, b1, c##r##1);                                                       \
  ar += ak
    TY_ROW(0, a0);
    TY_ROW(1, a1);
    TY_ROW(2, a2);
    TY_ROW(3, a3);
    TY_ROW(4, a4);
    TY_ROW(5, a5);
#undef TY_ROW
    bp += bk;
  }
  store_row(c, c00, c01, alpha, beta, nr);
  if (mr > 1) store_row(c + ldc, c10, c11, alpha, beta, nr);
  if (mr > 2) store_row(c + 2 * ldc, c20, c21, alpha, beta, nr);
  if (mr > 3) store_row(c + 3 * ldc, c30, c31, alpha, beta, nr);
  if (mr > 4) store_row(c + 4 * ldc, c40, c41, alpha, beta, nr);
  if (mr > 5) store_row(c + 5 * ldc, c50, c51, alpha, beta, nr);
}

TY_SMALL_TARGET static void sgemm_avx2(bool ta, bool tb, int64_t m, int64_t n, int64_t k,
                                       float alpha, const float *a, int64_t lda, const float *b,
                                       int64_t ldb, float beta, float *c, int64_t ldc) {
  float panel[K_MAX * NR];
  /* A[i, p] at a + i * ar + p * ak. */
  int64_t ar = ta ? 1 : lda, ak = ta ? lda : 1;
  for (int64_t j0 = 0; j0 < n; j0 += NR) {
    int64_t nr = n - j0 < NR ? n - j0 : NR;
    const float *bp = b + j0;
    int64_t bk = ldb;
    if (tb || nr < NR) {
      pack_panel(tb, b, ldb, k, j0, nr, panel);
      bp = panel;
      bk = NR;
    }
    for (int64_t i0 = 0; i0 < m; i0 += MR) {
      int64_t mr = m - i0 < MR ? m - i0 : MR;
      const float *ap[MR];
      for (int r = 0; r < MR; r++)
        ap[r] = a + (i0 + (r < mr ? r : 0)) * ar;
      tile(ap, ak, bp, bk, k, alpha, beta, c + i0 * ldc + j0, ldc, mr, nr);
    }
  }
}

static bool cpu_has_avx2_fma(void) {
  static atomic_int known; /* 0 not yet asked, 1 yes, 2 no */
  int v = atomic_load_explicit(&known, memory_order_relaxed);
  if (v == 0) {
    __builtin_cpu_init();
    v = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 2;
    atomic_store_explicit(&known, v, memory_order_relaxed);
  }
  return v == 1;
}
#endif

bool ty__sgemm_small(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                     int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  if (m <= 0 || n <= 0 || k <= 0 || k > K_MAX || !cpu_has_avx2_fma()) return false;
  sgemm_avx2(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  return true;
#else
  (void)ta, (void)tb, (void)m, (void)n, (void)k, (void)alpha, (void)a, (void)lda, (void)b,
      (void)ldb, (void)beta, (void)c, (void)ldc;
  return false;
#endif
}
