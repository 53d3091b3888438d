/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GEMM and batched MatMul on the device through cuBLAS, row-major like
 * ops/kernels/gemm.c. cuBLAS is column-major; a row-major C = op(A) op(B)
 * is the column-major C^T = op(B)^T op(A)^T, so the call swaps A and B and
 * m and n instead of transposing anything. One strided-batched call serves
 * both a single GEMM (batch 1) and ONNX MatMul's batch dims.
 *
 * Gemm with a bias vector (ONNX Gemm's C of shape [N], the common case in
 * MLPs) is one cuBLASLt call with the bias epilogue instead of a GEMM and
 * a broadcast add: column-major D^T's rows are the output features, which
 * is the bias the epilogue adds per row.
 *
 * Arithmetic: exact float32 by default (what the CPU path computes); tf32
 * is opt-in per handle, because it changes results at the 1e-3 level.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"

#include <cublasLt.h>
#include <cublas_v2.h>
#include <stdlib.h>

struct ty_cuda_blas {
  cublasHandle_t h;
  cublasLtHandle_t lt;
  cudaStream_t stream;
  bool tf32;
};

int ty_cuda_gemm_check(const ty_cuda_gemm_args *g, char *err, size_t err_len) {
  if (g->m < 0 || g->n < 0 || g->k < 0 || g->batch < 1)
    return ty_errf(err, err_len, TY_EINVAL, "gemm: m %lld, n %lld, k %lld, batch %lld: negative",
                   (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch);
  if (g->m > INT32_MAX || g->n > INT32_MAX || g->k > INT32_MAX || g->batch > INT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "gemm: a dimension above 2^31-1 (cuBLAS' int)");
  /* Row-major leading dims: the row length of each stored matrix. */
  int64_t a_cols = g->trans_a ? g->m : g->k, b_cols = g->trans_b ? g->k : g->n;
  if (g->lda < (a_cols ? a_cols : 1) || g->lda > INT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "gemm: lda %lld is below the row length %lld",
                   (long long)g->lda, (long long)a_cols);
  if (g->ldb < (b_cols ? b_cols : 1) || g->ldb > INT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "gemm: ldb %lld is below the row length %lld",
                   (long long)g->ldb, (long long)b_cols);
  if (g->ldc < (g->n ? g->n : 1) || g->ldc > INT32_MAX)
    return ty_errf(err, err_len, TY_EINVAL, "gemm: ldc %lld is below n %lld", (long long)g->ldc,
                   (long long)g->n);
  if (g->batch > 1 && (g->stride_a < 0 || g->stride_b < 0 || g->stride_c < g->m * g->ldc))
    return ty_errf(err, err_len, TY_EINVAL,
                   "gemm: stride_c %lld would overlap batches of %lld x %lld",
                   (long long)g->stride_c, (long long)g->m, (long long)g->ldc);
  return 0;
}

int ty_cuda_blas_create(void *stream, bool tf32, ty_cuda_blas **out_blas, char *err,
                        size_t err_len) {
  ty_cuda_blas *b = calloc(1, sizeof *b);
  if (!b) return TY_ENOMEM;
  cublasStatus_t s = cublasCreate(&b->h);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasLtCreate(&b->lt);
  if (s == CUBLAS_STATUS_SUCCESS) s = cublasSetStream(b->h, (cudaStream_t)stream);
  if (s == CUBLAS_STATUS_SUCCESS && tf32) s = cublasSetMathMode(b->h, CUBLAS_TF32_TENSOR_OP_MATH);
  if (s != CUBLAS_STATUS_SUCCESS) {
    if (b->lt) cublasLtDestroy(b->lt);
    if (b->h) cublasDestroy(b->h);
    free(b);
    return ty_errf(err, err_len, TY_EIO, "cuBLAS: %s", cublasGetStatusString(s));
  }
  b->tf32 = tf32;
  b->stream = (cudaStream_t)stream;
  *out_blas = b;
  return 0;
}

void ty_cuda_blas_destroy(ty_cuda_blas *b) {
  if (!b) return;
  cublasLtDestroy(b->lt);
  cublasDestroy(b->h);
  free(b);
}

int ty_cuda_gemm(ty_cuda_blas *b, const ty_cuda_gemm_args *g, char *err, size_t err_len) {
  int rc = ty_cuda_gemm_check(g, err, err_len);
  if (rc != 0 || g->m == 0 || g->n == 0) return rc;
  cublasOperation_t op_a = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasOperation_t op_b = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasComputeType_t ct = b->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
  cublasStatus_t s = cublasGemmStridedBatchedEx(
      b->h, op_b, op_a, (int)g->n, (int)g->m, (int)g->k, &g->alpha, g->b, CUDA_R_32F, (int)g->ldb,
      g->stride_b, g->a, CUDA_R_32F, (int)g->lda, g->stride_a, &g->beta, g->c, CUDA_R_32F,
      (int)g->ldc, g->stride_c, (int)g->batch, ct, CUBLAS_GEMM_DEFAULT);
  return s == CUBLAS_STATUS_SUCCESS
             ? 0
             : ty_errf(err, err_len, TY_EIO, "cuBLAS gemm %lldx%lldx%lld (batch %lld): %s",
                       (long long)g->m, (long long)g->n, (long long)g->k, (long long)g->batch,
                       cublasGetStatusString(s));
}

/* A column-major layout of rows x cols with leading dim ld. */
static cublasStatus_t layout(cublasLtMatrixLayout_t *l, int64_t rows, int64_t cols, int64_t ld) {
  return cublasLtMatrixLayoutCreate(l, CUDA_R_32F, (uint64_t)rows, (uint64_t)cols, ld);
}

static cublasStatus_t bias_desc(const ty_cuda_blas *b, const ty_cuda_gemm_args *g,
                                const float *bias, cublasLtMatmulDesc_t *d) {
  cublasOperation_t ta = g->trans_b ? CUBLAS_OP_T : CUBLAS_OP_N; /* swapped, as above */
  cublasOperation_t tb = g->trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
  cublasStatus_t s = cublasLtMatmulDescCreate(
      d, b->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmulDescSetAttribute(*d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof bias);
  return s;
}

int ty_cuda_gemm_bias(ty_cuda_blas *b, const ty_cuda_gemm_args *g, const float *bias, char *err,
                      size_t err_len) {
  int rc = ty_cuda_gemm_check(g, err, err_len);
  if (rc == 0 && (g->batch != 1 || !bias))
    rc = ty_errf(err, err_len, TY_EINVAL, "gemm with bias: batch %lld (must be 1), bias %s",
                 (long long)g->batch, bias ? "set" : "missing");
  if (rc != 0 || g->m == 0 || g->n == 0) return rc;
  cublasLtMatmulDesc_t d = NULL;
  cublasLtMatrixLayout_t la = NULL, lb = NULL, lc = NULL;
  cublasStatus_t s = bias_desc(b, g, bias, &d);
  /* Column-major views: op(B)^T is n x k, op(A)^T is k x m, D^T is n x m. */
  if (s == CUBLAS_STATUS_SUCCESS)
    s = layout(&la, g->trans_b ? g->k : g->n, g->trans_b ? g->n : g->k, g->ldb);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = layout(&lb, g->trans_a ? g->m : g->k, g->trans_a ? g->k : g->m, g->lda);
  if (s == CUBLAS_STATUS_SUCCESS) s = layout(&lc, g->n, g->m, g->ldc);
  if (s == CUBLAS_STATUS_SUCCESS)
    s = cublasLtMatmul(b->lt, d, &g->alpha, g->b, la, g->a, lb, &g->beta, g->c, lc, g->c, lc, NULL,
                       NULL, 0, b->stream);
  if (lc) cublasLtMatrixLayoutDestroy(lc);
  if (lb) cublasLtMatrixLayoutDestroy(lb);
  if (la) cublasLtMatrixLayoutDestroy(la);
  if (d) cublasLtMatmulDescDestroy(d);
  return s == CUBLAS_STATUS_SUCCESS
             ? 0
             : ty_errf(err, err_len, TY_EIO, "cuBLASLt gemm+bias %lldx%lldx%lld: %s",
                       (long long)g->m, (long long)g->n, (long long)g->k, cublasGetStatusString(s));
}
