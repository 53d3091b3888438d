/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gemm and MatMul on OpenBLAS's cblas_sgemm, split over the executor's
 * threads (ty__sgemm): a large product by blocks of C's rows or columns,
 * one contiguous block per thread and a spare per thread for balance (each
 * block repacks the other operand, so more blocks cost more). MatMul
 * itself, batched and strided, is kernels/matmul.c.
 *
 * Each call (ty__sgemm1) runs on oneDNN's dnnl_sgemm where meson found
 * oneDNN and the shape is one it runs faster (kernels/gemm_dnnl.c), else
 * on OpenBLAS: the choice depends on the call's shape only, so results
 * stay the same whatever the thread count. A weight gradient X^T dY (A
 * transposed, K the batch's rows and at least 4 times M and N) runs on
 * OpenBLAS in at most two blocks: oneDNN's sgemm reads such an A at
 * 60-80% of OpenBLAS' speed, and each block repacks the other operand
 * (bench/train/RESULTS.md, gpt11j). Products under PAR_MIN_MACS
 * (the attention's per-head GEMMs) run first on kernels/gemm_small.c's
 * AVX2 + FMA kernel where the CPU has it: a library call's set-up and
 * packing cost as much as the arithmetic there.
 */
#include "ops/exec.h"
#include "ops/gemm_dnnl.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <cblas.h>
#include <stdatomic.h>
#include <string.h>

/* Multiply-adds below which one call on the caller beats waking a thread. */
#define PAR_MIN_MACS (1 << 18)
#define GEMM_BLOCK_MIN 128 /* rows or columns of C per block, a multiple of 16 */
#define GEMM_BLOCKS_MAX 64

static atomic_bool dnnl_off, small_off;
static atomic_llong dnnl_calls, small_calls;

void ty__sgemm_small_enable(bool on) {
  atomic_store(&small_off, !on);
}

int64_t ty__sgemm_small_calls(void) {
  return atomic_load(&small_calls);
}

void ty__sgemm_dnnl_enable(bool on) {
  atomic_store(&dnnl_off, !on);
}

int64_t ty__sgemm_dnnl_calls(void) {
  return atomic_load(&dnnl_calls);
}

/* A weight gradient's product: C = A^T B with a long K (the rows of a
 * batch), M and N the layer's widths. */
static bool long_k_tn(bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
  return ta && !tb && k >= 4 * (m > n ? m : n);
}

/* oneDNN's sgemm beats OpenBLAS' on the GPT's products of at least
 * PAR_MIN_MACS (15-35%) but the weight gradients (long_k_tn, where
 * OpenBLAS is 5-40% faster), and on the attention's small ones with B
 * transposed; OpenBLAS wins the small ones with B as stored (by ~20%). */
static bool use_dnnl(bool wgrad, bool ta, bool tb, int64_t m, int64_t n, int64_t k) {
#if TY_HAVE_DNNL
  if (atomic_load_explicit(&dnnl_off, memory_order_relaxed) || wgrad) return false;
  return (double)m * (double)n * (double)k >= PAR_MIN_MACS || (tb && !ta);
#else
  (void)wgrad, (void)ta, (void)tb, (void)m, (void)n, (void)k;
  return false;
#endif
}

/* One call; wgrad: long_k_tn of the whole product this call is a block of. */
static void sgemm_one(bool wgrad, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float *a, int64_t lda, const float *b, int64_t ldb, float beta,
                      float *c, int64_t ldc) {
  if ((double)m * (double)n * (double)k < PAR_MIN_MACS &&
      !atomic_load_explicit(&small_off, memory_order_relaxed) &&
      ty__sgemm_small(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) {
    atomic_fetch_add_explicit(&small_calls, 1, memory_order_relaxed);
    return;
  }
#if TY_HAVE_DNNL
  if (use_dnnl(wgrad, ta, tb, m, n, k) &&
      ty__sgemm_dnnl(ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)) {
    atomic_fetch_add_explicit(&dnnl_calls, 1, memory_order_relaxed);
    return;
  }
#else
  (void)use_dnnl;
#endif
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              (blasint)m, (blasint)n, (blasint)k, alpha, a, (blasint)lda, b, (blasint)ldb, beta, c,
              (blasint)ldc);
}

void ty__sgemm1(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
  sgemm_one(long_k_tn(ta, tb, m, n, k), ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

typedef struct sgemm_job {
  bool ta, tb, by_cols, wgrad;
  int64_t m, n, k, lda, ldb, ldc, block;
  float alpha, beta;
  const float *a, *b;
  float *c;
} sgemm_job;

/* One cblas call per block, also where a chunk holds several: the calls,
 * and so the sums, are the same however the blocks are shared out. */
static void sgemm_blocks(void *arg, int64_t begin, int64_t end, int slot) {
  (void)slot;
  const sgemm_job *j = arg;
  int64_t lim = j->by_cols ? j->n : j->m;
  for (int64_t blk = begin; blk < end; blk++) {
    int64_t lo = blk * j->block, hi = lo + j->block > lim ? lim : lo + j->block;
    const float *a = j->a, *b = j->b;
    float *c = j->c;
    int64_t m = j->m, n = j->n;
    if (j->by_cols) {
      b += j->tb ? lo * j->ldb : lo;
      c += lo;
      n = hi - lo;
    } else {
      a += j->ta ? lo : lo * j->lda;
      c += lo * j->ldc;
      m = hi - lo;
    }
    sgemm_one(j->wgrad, j->ta, j->tb, m, n, j->k, j->alpha, a, j->lda, b, j->ldb, j->beta, c,
              j->ldc);
  }
}

void ty__sgemm(ty_workers *w, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  sgemm_job j = {.ta = ta,
                 .tb = tb,
                 .by_cols = n >= m,
                 .wgrad = long_k_tn(ta, tb, m, n, k),
                 .m = m,
                 .n = n,
                 .k = k,
                 .lda = lda,
                 .ldb = ldb,
                 .ldc = ldc,
                 .alpha = alpha,
                 .beta = beta,
                 .a = a,
                 .b = b,
                 .c = c};
  int64_t len = j.by_cols ? n : m, blocks = (len + GEMM_BLOCK_MIN - 1) / GEMM_BLOCK_MIN;
  if ((double)m * (double)n * (double)k < PAR_MIN_MACS) blocks = 1;
  if (blocks > GEMM_BLOCKS_MAX) blocks = GEMM_BLOCKS_MAX;
  /* A weight gradient: each block repacks the long other operand. */
  if (j.wgrad && blocks > 2) blocks = 2;
  /* Blocks of a multiple of 16 (the width of OpenBLAS' AVX-512 micro-kernel). */
  j.block = ((len + blocks - 1) / blocks + 15) / 16 * 16;
  blocks = (len + j.block - 1) / j.block;
  ty__parallel_for(blocks > 1 && ty_workers_count(w) > 1 ? w : NULL, blocks, 1, sgemm_blocks, &j);
}

int ty__k_gemm(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
               ty__kctx *ctx) {
  const ty_tensor *a = in[0], *b = in[1], *c = in[2];
  ty_tensor *y = out[0];
  if (!y) return 0;
  bool ta = ty_graph_node_attr_int(n, "transA", 0) != 0,
       tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
  float alpha = ty_graph_node_attr_float(n, "alpha", 1.0f),
        beta = ty_graph_node_attr_float(n, "beta", 1.0f);
  int64_t m = y->shape.dims[0], nn = y->shape.dims[1];
  int64_t k = a->shape.dims[ta ? 0 : 1];
  float *yd = y->data;
  if (c && beta != 0.0f) {
    /* Broadcast C into Y, then let sgemm accumulate with beta. */
    int64_t st[TY_MAX_RANK];
    ty_broadcast_strides(&c->shape, &y->shape, st);
    const float *cd = c->data;
    for (int64_t i = 0; i < m; i++)
      for (int64_t j = 0; j < nn; j++)
        yd[i * nn + j] = cd[i * st[0] + j * st[1]];
  } else {
    beta = 0.0f;
  }
  if (m == 0 || nn == 0) return 0;
  if (k == 0) { /* Y = beta C, or zeros without C (Y is not zero-filled) */
    for (int64_t i = 0; i < m * nn; i++)
      yd[i] = beta != 0.0f ? yd[i] * beta : 0.0f;
    return 0;
  }
  ty__sgemm(ctx->workers, ta, tb, m, nn, k, alpha, a->data, a->shape.dims[1], b->data,
            b->shape.dims[1], beta, yd, nn);
  return 0;
}
