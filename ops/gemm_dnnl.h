/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The test hooks of the GEMM engine choice (ops/kernels/gemm.c): a switch
 * that routes every product through OpenBLAS, the reference, and the count
 * of products run through oneDNN's sgemm so far (always 0 when built
 * without oneDNN); the like for kernels/gemm_small.c's kernel of small
 * products (its switch off: small products go to the libraries again); and the product itself,
 * ty__sgemm (declared for ops/ in ops/ops_internal.h; kernels/gemm.c includes both, so the compiler
 * holds them equal).
 */
#ifndef TY_OPS_GEMM_DNNL_H
#define TY_OPS_GEMM_DNNL_H

#include "ops/exec.h"

#include <stdbool.h>
#include <stdint.h>

void ty__sgemm_dnnl_enable(bool on);
int64_t ty__sgemm_dnnl_calls(void);
void ty__sgemm_small_enable(bool on);
int64_t ty__sgemm_small_calls(void);
/* MatMul's batched driver (kernels/matmul.c, ty__mm_batched) over a batch
 * of two dims, for tests: a matrix's entry (i, j) starts at p + i * st[0]
 * + j * st[1] (a stride 0 where broadcast), its rows and columns sr and sc
 * apart (one of them 1). */
typedef struct ty__mm_test_mat {
  float *p;
  int64_t st[2], sr, sc;
} ty__mm_test_mat;
void ty__mm_batched_2d(ty_workers *w, const int64_t batch[2], const ty__mm_test_mat *a,
                       const ty__mm_test_mat *b, const ty__mm_test_mat *c, int64_t m, int64_t n,
                       int64_t k, size_t c_numel);
void ty__sgemm(ty_workers *w, bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
               const float *a, int64_t lda, const float *b, int64_t ldb, float beta, float *c,
               int64_t ldc);

#endif
