/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU suite: ops/cuda's cuBLAS GEMM against a double-precision host loop,
 * row-major, every transpose combination, batched with strides and odd
 * sizes, exact float32 (no tf32) to 1e-4 relative; and Gemm with a bias
 * vector through cuBLASLt's epilogue. Exits 77 (skipped)
 * where no GPU is visible.
 */
#include "lib/base/base.h"
#include "ops/cuda/cuda.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

enum { M = 37, N = 29, K = 53, B = 3 };

static float *upload(const float *h, size_t n) {
  float *d = NULL;
  if (cudaMalloc((void **)&d, n * 4) != cudaSuccess) return NULL;
  if (h) cudaMemcpy(d, h, n * 4, cudaMemcpyHostToDevice);
  return d;
}

/* op(X)[i][j] of a row-major matrix stored rows x cols (ld = cols). */
static double at(const float *x, bool t, int64_t ld, int64_t i, int64_t j) {
  return t ? x[j * ld + i] : x[i * ld + j];
}

static int run(ty_cuda_blas *bl, bool ta, bool tb, const float *ha, const float *hb) {
  char err[TY_ERR_LEN];
  ty_cuda_gemm_args g = {.trans_a = ta,
                         .trans_b = tb,
                         .m = M,
                         .n = N,
                         .k = K,
                         .batch = B,
                         .alpha = 1.0f,
                         .beta = 0.0f,
                         .lda = ta ? M : K,
                         .ldb = tb ? K : N,
                         .ldc = N,
                         .stride_a = M * K,
                         .stride_b = K * N,
                         .stride_c = M * N};
  float *da = upload(ha, B * M * K), *db = upload(hb, B * K * N), *dc = upload(NULL, B * M * N);
  float *hc = malloc(sizeof(float) * B * M * N);
  g.a = da, g.b = db, g.c = dc;
  int bad = !da || !db || !dc || !hc;
  if (!bad && ty_cuda_gemm(bl, &g, err, sizeof err) != 0) {
    fprintf(stderr, "FAIL: %s\n", err);
    bad = 1;
  }
  if (!bad) bad = cudaMemcpy(hc, dc, sizeof(float) * B * M * N, cudaMemcpyDeviceToHost) != 0;
  for (int64_t b = 0; !bad && b < B; b++)
    for (int64_t i = 0; i < M; i++)
      for (int64_t j = 0; j < N; j++) {
        double want = 0;
        for (int64_t p = 0; p < K; p++)
          want += at(ha + b * M * K, ta, g.lda, i, p) * at(hb + b * K * N, tb, g.ldb, p, j);
        double got = hc[b * M * N + i * N + j];
        if (fabs(got - want) > 1e-4 * (1 + fabs(want))) {
          fprintf(stderr, "FAIL: ta %d tb %d [%lld][%lld][%lld]: gpu %g want %g\n", ta, tb,
                  (long long)b, (long long)i, (long long)j, got, want);
          bad = 1;
          break;
        }
      }
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
  free(hc);
  return bad;
}

/* Gemm + bias through cuBLASLt's epilogue: C = A B + bias per column. */
static int run_bias(ty_cuda_blas *bl, const float *ha, const float *hb) {
  char err[TY_ERR_LEN];
  float bias[N];
  for (int j = 0; j < N; j++)
    bias[j] = (float)j * 0.25f - 3.0f;
  ty_cuda_gemm_args g = {
      .m = M, .n = N, .k = K, .batch = 1, .alpha = 1.0f, .lda = K, .ldb = N, .ldc = N};
  float *da = upload(ha, M * K), *db = upload(hb, K * N), *dc = upload(NULL, M * N);
  float *dbias = upload(bias, N), *hc = malloc(sizeof(float) * M * N);
  g.a = da, g.b = db, g.c = dc;
  int bad = !da || !db || !dc || !dbias || !hc;
  if (!bad && ty_cuda_gemm_bias(bl, &g, dbias, err, sizeof err) != 0) {
    fprintf(stderr, "FAIL: %s\n", err);
    bad = 1;
  }
  if (!bad) bad = cudaMemcpy(hc, dc, sizeof(float) * M * N, cudaMemcpyDeviceToHost) != 0;
  for (int64_t i = 0; !bad && i < M; i++)
    for (int64_t j = 0; j < N; j++) {
      double want = bias[j];
      for (int64_t p = 0; p < K; p++)
        want += (double)ha[i * K + p] * hb[p * N + j];
      if (fabs(hc[i * N + j] - want) > 1e-4 * (1 + fabs(want))) {
        fprintf(stderr, "FAIL: gemm+bias [%lld][%lld]: gpu %g want %g\n", (long long)i,
                (long long)j, hc[i * N + j], want);
        bad = 1;
        break;
      }
    }
  cudaFree(da), cudaFree(db), cudaFree(dc), cudaFree(dbias);
  free(hc);
  return bad;
}

int main(void) {
  if (ty_cuda_device_count() == 0) {
    printf("no CUDA device on this machine: skipped\n");
    return 77;
  }
  float *ha = malloc(sizeof(float) * B * M * K), *hb = malloc(sizeof(float) * B * K * N);
  ty_rng r = ty_rng_make(5);
  for (int i = 0; i < B * M * K; i++)
    ha[i] = ty_rng_uniform(&r) - 0.5f;
  for (int i = 0; i < B * K * N; i++)
    hb[i] = ty_rng_uniform(&r) - 0.5f;
  ty_cuda_blas *bl = NULL;
  char err[TY_ERR_LEN];
  if (ty_cuda_blas_create(NULL, false, &bl, err, sizeof err) != 0) {
    fprintf(stderr, "FAIL: %s\n", err);
    return 1;
  }
  int bad = 0;
  for (int t = 0; t < 4; t++)
    bad |= run(bl, t & 1, t & 2, ha, hb);
  bad |= run_bias(bl, ha, hb);
  ty_cuda_blas_destroy(bl);
  free(ha);
  free(hb);
  if (!bad) printf("cuBLAS gemm == host, 4 transpose cases, batch %d; cuBLASLt bias too\n", B);
  return bad;
}
