/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/kernels/gemm.c's engine choice where meson found oneDNN: products
 * that go to oneDNN's sgemm (large ones of every transpose, small ones
 * with B transposed) and those that stay on OpenBLAS give C to float
 * tolerance of a double-precision reference, with alpha, beta, leading
 * dimensions wider than the matrices and a C holding NaNs where beta is 0;
 * oneDNN really ran (or not: weight gradients with a long K stay on
 * OpenBLAS); the result is bit-identical for 1, 2 and 3 threads.
 * The small products are checked with the kernel of small products
 * (kernels/gemm_small.c, test_gemm_small.c) switched off: the rule tested
 * here is the one that applies where that kernel does not run.
 */
#include "ops/exec.h"
#include "ops/gemm_dnnl.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct gshape {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
} gshape;

/* Operands stored with a leading dimension 3 wider than needed. */
typedef struct operands {
  int64_t lda, ldb, ldc;
  float *a, *b, *c0;
} operands;

static operands make(const gshape *s) {
  operands o = {
      .lda = (s->ta ? s->m : s->k) + 3, .ldb = (s->tb ? s->k : s->n) + 3, .ldc = s->n + 3};
  int64_t ra = s->ta ? s->k : s->m, rb = s->tb ? s->n : s->k;
  o.a = malloc(sizeof(float) * (size_t)(ra * o.lda));
  o.b = malloc(sizeof(float) * (size_t)(rb * o.ldb));
  o.c0 = malloc(sizeof(float) * (size_t)(s->m * o.ldc));
  cr_assert(o.a && o.b && o.c0);
  for (int64_t i = 0; i < ra * o.lda; i++)
    o.a[i] = sinf((float)i * 0.37f);
  for (int64_t i = 0; i < rb * o.ldb; i++)
    o.b[i] = cosf((float)i * 0.11f);
  for (int64_t i = 0; i < s->m * o.ldc; i++)
    o.c0[i] = s->beta != 0.0f ? 0.5f * sinf((float)i) : NAN;
  return o;
}

static double ref(const gshape *s, const operands *o, int64_t i, int64_t j) {
  double acc = 0;
  for (int64_t p = 0; p < s->k; p++) {
    double av = s->ta ? o->a[p * o->lda + i] : o->a[i * o->lda + p];
    double bv = s->tb ? o->b[j * o->ldb + p] : o->b[p * o->ldb + j];
    acc += av * bv;
  }
  double c = s->beta != 0.0f ? (double)s->beta * o->c0[i * o->ldc + j] : 0.0;
  return s->alpha * acc + c;
}

static float *run(const gshape *s, const operands *o, int threads) {
  ty_workers *w = NULL;
  cr_assert_eq(ty_workers_create(threads, &w), 0);
  size_t nc = sizeof(float) * (size_t)(s->m * o->ldc);
  float *c = malloc(nc);
  cr_assert(c);
  memcpy(c, o->c0, nc);
  ty__sgemm(w, s->ta, s->tb, s->m, s->n, s->k, s->alpha, o->a, o->lda, o->b, o->ldb, s->beta, c,
            o->ldc);
  ty_workers_destroy(w);
  return c;
}

static void check(const gshape *s, bool expect_dnnl) {
  operands o = make(s);
  int64_t calls = ty__sgemm_dnnl_calls();
  float *c1 = run(s, &o, 1);
  cr_expect_eq(ty__sgemm_dnnl_calls() > calls, expect_dnnl, "%c%c %ldx%ldx%ld: oneDNN ran: %d",
               s->ta ? 'T' : 'N', s->tb ? 'T' : 'N', (long)s->m, (long)s->n, (long)s->k,
               ty__sgemm_dnnl_calls() > calls);
  for (int64_t i = 0; i < s->m; i++)
    for (int64_t j = 0; j < s->n; j++) {
      double r = ref(s, &o, i, j), got = c1[i * o.ldc + j];
      cr_assert(fabs(got - r) <= 1e-4 * (fabs(r) + (double)s->k),
                "%c%c %ldx%ldx%ld C[%ld,%ld] %g, reference %g", s->ta ? 'T' : 'N',
                s->tb ? 'T' : 'N', (long)s->m, (long)s->n, (long)s->k, (long)i, (long)j, got, r);
    }
  for (int t = 2; t <= 3; t++) {
    float *ct = run(s, &o, t);
    for (int64_t i = 0; i < s->m; i++)
      cr_assert_eq(memcmp(c1 + i * o.ldc, ct + i * o.ldc, sizeof(float) * (size_t)s->n), 0,
                   "row %ld differs with %d threads", (long)i, t);
    free(ct);
  }
  free(c1);
  free(o.a);
  free(o.b);
  free(o.c0);
}

Test(gemm_dnnl, large_products_of_every_transpose) {
  ty__sgemm_dnnl_enable(true);
  for (int t = 0; t < 4; t++) {
    gshape s = {.ta = t & 1, .tb = t & 2, .m = 300, .n = 97, .k = 129, .alpha = 1, .beta = 0};
    check(&s, true);
    gshape wide = {.ta = t & 1, .tb = t & 2, .m = 40, .n = 520, .k = 70, .alpha = 0.5f, .beta = 1};
    check(&wide, true);
  }
}

/* A weight gradient X^T dY (A transposed, K at least four times M and N)
 * runs on OpenBLAS, split in at most two blocks (300 rows of C: three
 * blocks by the general rule); one with a K shorter than that on oneDNN. */
Test(gemm_dnnl, weight_gradients_with_a_long_k_on_openblas) {
  ty__sgemm_dnnl_enable(true);
  gshape wg = {.ta = true, .m = 300, .n = 97, .k = 1200, .alpha = 1, .beta = 0};
  check(&wg, false);
  gshape wide = {.ta = true, .m = 40, .n = 260, .k = 1040, .alpha = 0.5f, .beta = 1};
  check(&wide, false);
  gshape short_k = {.ta = true, .m = 300, .n = 97, .k = 1199, .alpha = 1, .beta = 0};
  check(&short_k, true);
  gshape nn = {.m = 300, .n = 97, .k = 1200, .alpha = 1, .beta = 0};
  check(&nn, true);
}

Test(gemm_dnnl, small_products_by_their_transpose) {
  ty__sgemm_dnnl_enable(true);
  ty__sgemm_small_enable(false);
  gshape nt = {.tb = true, .m = 64, .n = 32, .k = 64, .alpha = 1, .beta = 0};
  check(&nt, true);
  gshape nn = {.m = 64, .n = 64, .k = 32, .alpha = 2, .beta = 0.25f};
  check(&nn, false);
  gshape tn = {.ta = true, .m = 32, .n = 64, .k = 64, .alpha = 1, .beta = 0};
  check(&tn, false);
  ty__sgemm_small_enable(true);
}

Test(gemm_dnnl, switched_off_runs_openblas) {
  ty__sgemm_dnnl_enable(false);
  gshape s = {.m = 300, .n = 97, .k = 129, .alpha = 1, .beta = 0};
  check(&s, false);
  ty__sgemm_dnnl_enable(true);
}
