/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_gemm_blocks: the GPT's Linear-layer GEMMs of one training step (the
 * shapes and leading dims of bench_gemm_shapes) through each library
 * directly, OpenBLAS' cblas_sgemm and oneDNN's dnnl_sgemm (one OpenMP
 * thread), split as kernels/gemm.c splits a product into 1, 2, 4, 8 or 16
 * equal blocks of C's rows or columns (each block one call, which packs
 * the other operand again). Prints GFLOP/s per shape and split (best of
 * `reps` runs, CPU time of the calling thread), the figures behind
 * kernels/gemm.c's rule for weight gradients (bench/train/RESULTS.md,
 * gpt11j).
 *
 *   taskset -c 1 bench_gemm_blocks [reps]
 */
#include <cblas.h>
#include <oneapi/dnnl/dnnl.h>
#include <omp.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct shp {
  bool ta, tb;
  long m, n, k, lda, ldb, ldc;
} shp;

/* A Linear [2048, k] -> [2048, n], weight stored [n, k]: Y = X W^T,
 * dX = dY W, dW = dY^T X. */
#define LINEAR(k, n)                                                                               \
  {false, true, 2048, n, k, k, k, n}, {false, false, 2048, k, n, n, k, k}, {                       \
    true, false, n, k, 2048, n, k, k                                                               \
  }

static const shp shapes[] = {LINEAR(128, 384), LINEAR(128, 128), LINEAR(128, 512), LINEAR(512, 128),
                             LINEAR(128, 256)};
static const int splits[] = {1, 2, 4, 8, 16};
enum { N_SPLITS = sizeof splits / sizeof splits[0] };

static float *buf_a, *buf_b, *buf_c;

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void one(bool dnnl, const shp *p, long m, long n, const float *a, const float *b, float *c) {
  if (dnnl)
    dnnl_sgemm(p->ta ? 'T' : 'N', p->tb ? 'T' : 'N', m, n, p->k, 1.0f, a, p->lda, b, p->ldb, 0.0f,
               c, p->ldc);
  else
    cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans, p->tb ? CblasTrans : CblasNoTrans,
                (blasint)m, (blasint)n, (blasint)p->k, 1.0f, a, (blasint)p->lda, b, (blasint)p->ldb,
                0.0f, c, (blasint)p->ldc);
}

/* The product in `blocks` blocks of 16-multiple length, as kernels/gemm.c. */
static void split_call(bool dnnl, const shp *p, int blocks) {
  bool by_cols = p->n >= p->m;
  long len = by_cols ? p->n : p->m, blk = ((len + blocks - 1) / blocks + 15) / 16 * 16;
  for (long lo = 0; lo < len; lo += blk) {
    long hi = lo + blk > len ? len : lo + blk, m = p->m, n = p->n;
    const float *a = buf_a, *b = buf_b;
    float *c = buf_c;
    if (by_cols) {
      b += p->tb ? lo * p->ldb : lo;
      c += lo;
      n = hi - lo;
    } else {
      a += p->ta ? lo : lo * p->lda;
      c += lo * p->ldc;
      m = hi - lo;
    }
    one(dnnl, p, m, n, a, b, c);
  }
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 7;
  if (reps < 1) {
    fprintf(stderr, "bench_gemm_blocks: reps must be a positive integer, got %s\n", argv[1]);
    return 2;
  }
  omp_set_num_threads(1);
  size_t nf = (size_t)4 << 20;
  buf_a = malloc(nf * sizeof(float));
  buf_b = malloc(nf * sizeof(float));
  buf_c = calloc(nf, sizeof(float));
  if (!buf_a || !buf_b || !buf_c) return 1;
  for (size_t i = 0; i < nf; i++) {
    buf_a[i] = sinf((float)i * 0.37f);
    buf_b[i] = cosf((float)i * 0.11f);
  }
  printf(
      "GFLOP/s by blocks     OpenBLAS: 1     2     4     8    16 | oneDNN: 1     2     4     8    "
      "16\n");
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    const shp *p = &shapes[s];
    double best[2][N_SPLITS];
    for (int e = 0; e < 2; e++)
      for (int b = 0; b < N_SPLITS; b++)
        best[e][b] = INFINITY;
    for (int r = 0; r < reps; r++) /* interleaved: every variant once per repetition */
      for (int e = 0; e < 2; e++)
        for (int b = 0; b < N_SPLITS; b++) {
          double t = cpu_s();
          for (int i = 0; i < 3; i++)
            split_call(e == 1, p, splits[b]);
          t = (cpu_s() - t) / 3;
          best[e][b] = t < best[e][b] ? t : best[e][b];
        }
    double gflop = 2e-9 * (double)p->m * (double)p->n * (double)p->k;
    printf("%c%c %4ld x %4ld x %4ld   ", p->ta ? 'T' : 'N', p->tb ? 'T' : 'N', p->m, p->n, p->k);
    for (int e = 0; e < 2; e++) {
      for (int b = 0; b < N_SPLITS; b++)
        printf(" %5.1f", gflop / best[e][b]);
      printf(e == 0 ? " |        " : "\n");
    }
  }
  free(buf_a);
  free(buf_b);
  free(buf_c);
  return 0;
}
