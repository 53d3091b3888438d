/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_gemm_shapes: the GEMMs of one training step of examples/models'
 * GPT (batch 32, context 64, width 128, 4 heads, 2 layers, vocabulary
 * 256) replayed through ty__sgemm on the calling thread by three engine
 * rules, interleaved: OpenBLAS only; oneDNN's sgemm where kernels/gemm.c
 * picks it, else OpenBLAS (the rule before the kernel of small products);
 * and that with kernels/gemm_small.c's kernel for the small products (the
 * default). Prints CPU milliseconds per step's set, min, quartile and
 * median, and with `-v` each shape's best time by each rule.
 *
 *   taskset -c 1 bench_gemm_shapes [reps] [-v]
 */
#include "ops/gemm_dnnl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct shp {
  bool ta, tb;
  int64_t m, n, k, batch, lda, ldb, ldc;
} shp;

enum { MAX_SHAPES = 48, ROWS = 2048, WIDTH = 128 };
static shp shapes[MAX_SHAPES];
static int n_shapes;
static float *buf_a, *buf_b, *buf_c;

static void add(bool ta, bool tb, int64_t m, int64_t n, int64_t k, int64_t batch, int64_t lda,
                int64_t ldb, int64_t ldc) {
  shapes[n_shapes++] = (shp){ta, tb, m, n, k, batch, lda, ldb, ldc};
}

/* A Linear [ROWS, k] -> [ROWS, n] with its weight stored [n, k] (as the
 * step runs it, TY_GEMM shapes of trainrun): Y = X W^T, dX = dY W and
 * dW = dY^T X. */
static void add_linear(int64_t k, int64_t n) {
  add(false, true, ROWS, n, k, 1, k, k, n);
  add(false, false, ROWS, k, n, 1, n, k, k);
  add(true, false, n, k, ROWS, 1, n, k, k);
}

/* The step's GEMMs, leading dims included: the attention's read Q, K and
 * V in place from the QKV projection's [N, T, H, D] (rows 128 apart). */
static void gpt_shapes(void) {
  for (int layer = 0; layer < 2; layer++) {
    add_linear(WIDTH, 3 * WIDTH); /* c_attn */
    add_linear(WIDTH, WIDTH);     /* c_proj */
    add_linear(WIDTH, 4 * WIDTH); /* mlp_fc */
    add_linear(4 * WIDTH, WIDTH); /* mlp_proj */
    /* 128 (batch x heads) entries: Q K^T, att V and their gradients. */
    add(false, true, 64, 64, 32, 128, 128, 128, 64);
    add(false, false, 64, 32, 64, 128, 64, 128, 128);
    add(false, true, 64, 64, 32, 128, 32, 128, 64);
    add(true, false, 64, 32, 64, 128, 64, 128, 128);
    add(false, false, 64, 32, 64, 128, 64, 128, 32);
    add(true, false, 64, 32, 64, 128, 64, 32, 128);
  }
  /* The output layer tied to the embedding [256, 128]. */
  add(false, true, ROWS, 256, WIDTH, 1, WIDTH, WIDTH, 256);
  add(false, false, ROWS, WIDTH, 256, 1, 256, WIDTH, WIDTH);
  add(true, false, 256, WIDTH, ROWS, 1, 256, WIDTH, WIDTH);
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Runs shape `only` (or every shape when -1); returns CPU seconds. */
static double run(int only) {
  double t0 = cpu_s();
  for (int s = 0; s < n_shapes; s++) {
    if (only >= 0 && s != only) continue;
    const shp *p = &shapes[s];
    for (int64_t e = 0; e < p->batch; e++)
      ty__sgemm(NULL, p->ta, p->tb, p->m, p->n, p->k, 1.0f, buf_a + e * p->m * p->k, p->lda,
                buf_b + e * p->k * p->n, p->ldb, 0.0f, buf_c + e * p->m * p->n, p->ldc);
  }
  return cpu_s() - t0;
}

static int cmp_double(const void *x, const void *y) {
  double a = *(const double *)x, b = *(const double *)y;
  return a < b ? -1 : a > b;
}

enum { N_RULES = 3 };

/* 0: OpenBLAS only; 1: oneDNN where picked, else OpenBLAS; 2: 1 with the
 * kernel of small products. */
static void use_rule(int e) {
  ty__sgemm_dnnl_enable(e >= 1);
  ty__sgemm_small_enable(e == 2);
}

static void per_shape(int reps) {
  printf(
      "shape                         openblas   onednn    small (best ms; the default's rate)\n");
  for (int s = 0; s < n_shapes; s++) {
    double best[N_RULES] = {INFINITY, INFINITY, INFINITY};
    for (int r = 0; r < reps; r++)
      for (int e = 0; e < N_RULES; e++) {
        use_rule(e);
        double t = run(s);
        best[e] = t < best[e] ? t : best[e];
      }
    const shp *p = &shapes[s];
    double gflop = 2e-9 * (double)(p->m * p->n * p->k * p->batch);
    printf("%c%c %5ld x %5ld x %5ld x %3ld  %8.3f %8.3f %8.3f  (%5.1f GFLOP/s)\n",
           p->ta ? 'T' : 'N', p->tb ? 'T' : 'N', (long)p->m, (long)p->n, (long)p->k, (long)p->batch,
           best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, gflop / best[2]);
  }
}

int main(int argc, char **argv) {
  int reps = argc > 1 ? atoi(argv[1]) : 21;
  bool verbose = argc > 2 && strcmp(argv[2], "-v") == 0;
  if (reps < 1) {
    fprintf(stderr, "bench_gemm_shapes: reps must be a positive integer, got %s\n", argv[1]);
    return 2;
  }
  gpt_shapes();
  size_t n = (size_t)4 << 20;
  buf_a = malloc(n * sizeof(float));
  buf_b = malloc(n * sizeof(float));
  buf_c = malloc(n * sizeof(float));
  if (!buf_a || !buf_b || !buf_c) return 1;
  for (size_t i = 0; i < n; i++) {
    buf_a[i] = sinf((float)i * 0.37f);
    buf_b[i] = cosf((float)i * 0.11f);
  }
  if (verbose) per_shape(reps);
  double *t[N_RULES];
  for (int e = 0; e < N_RULES; e++)
    if (!(t[e] = calloc((size_t)reps, sizeof(double)))) return 1;
  for (int r = -1; r < reps; r++) /* r = -1 warms both up */
    for (int e = 0; e < N_RULES; e++) {
      use_rule(e);
      double s = run(-1);
      if (r >= 0) t[e][r] = s;
    }
  const char *names[N_RULES] = {"openblas", "onednn", "small"};
  for (int e = 0; e < N_RULES; e++) {
    qsort(t[e], (size_t)reps, sizeof(double), cmp_double);
    printf("%-9s min %7.2f  quartile %7.2f  median %7.2f ms per step's GEMMs\n", names[e],
           t[e][0] * 1e3, t[e][reps / 4] * 1e3, t[e][reps / 2] * 1e3);
  }
  return 0;
}
