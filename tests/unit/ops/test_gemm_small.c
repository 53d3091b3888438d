/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/kernels/gemm_small.c's kernel of small products, alone and under
 * MatMul's batched driver (ty__mm_batched, through its test hook): odd shapes around its 6 x 16
 * tiles, every transpose, alpha and beta, leading dimensions wider than
 * the matrices, C holding NaNs where beta is 0, batch entries broadcast
 * (stride 0) on A or B and C summed over the batch. Each result is held
 * to a double-precision reference and to the libraries' (the kernel
 * switched off, one library call per matrix), is bit-identical for 1, 2
 * and 3 threads, and the kernel really ran where the CPU has AVX2 + FMA;
 * a k past the kernel's limit goes to the libraries.
 */
#include "ops/exec.h"
#include "ops/gemm_dnnl.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool cpu_ok(void) {
#if defined(__x86_64__)
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
  return false;
#endif
}

static float *filled(int64_t n, float f, float phase) {
  float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
  cr_assert(x);
  for (int64_t i = 0; i < n; i++)
    x[i] = sinf((float)i * f + phase);
  return x;
}

/* ---- one product through ty__sgemm ---- */

typedef struct gshape {
  bool ta, tb;
  int64_t m, n, k;
  float alpha, beta;
} gshape;

typedef struct operands {
  int64_t lda, ldb, ldc;
  float *a, *b, *c0;
} operands;

static operands make(const gshape *s) {
  operands o = {
      .lda = (s->ta ? s->m : s->k) + 3, .ldb = (s->tb ? s->k : s->n) + 5, .ldc = s->n + 2};
  o.a = filled((s->ta ? s->k : s->m) * o.lda, 0.37f, 0.1f);
  o.b = filled((s->tb ? s->n : s->k) * o.ldb, 0.11f, 0.7f);
  o.c0 = filled(s->m * o.ldc, 1.0f, 0.0f);
  if (s->beta == 0.0f)
    for (int64_t i = 0; i < s->m * o.ldc; i++)
      o.c0[i] = NAN;
  return o;
}

static double ref(const gshape *s, const operands *o, int64_t i, int64_t j) {
  double acc = 0;
  for (int64_t p = 0; p < s->k; p++)
    acc += (double)(s->ta ? o->a[p * o->lda + i] : o->a[i * o->lda + p]) *
           (double)(s->tb ? o->b[j * o->ldb + p] : o->b[p * o->ldb + j]);
  return s->alpha * acc + (s->beta != 0.0f ? (double)s->beta * o->c0[i * o->ldc + j] : 0.0);
}

static float *run(const gshape *s, const operands *o, int threads, bool small) {
  ty_workers *w = NULL;
  cr_assert_eq(ty_workers_create(threads, &w), 0);
  size_t nc = sizeof(float) * (size_t)(s->m * o->ldc);
  float *c = malloc(nc);
  cr_assert(c);
  memcpy(c, o->c0, nc);
  ty__sgemm_small_enable(small);
  ty__sgemm(w, s->ta, s->tb, s->m, s->n, s->k, s->alpha, o->a, o->lda, o->b, o->ldb, s->beta, c,
            o->ldc);
  ty__sgemm_small_enable(true);
  ty_workers_destroy(w);
  return c;
}

static void check(const gshape *s, bool expect_small) {
  operands o = make(s);
  int64_t calls = ty__sgemm_small_calls();
  float *c1 = run(s, &o, 1, true);
  bool ran = ty__sgemm_small_calls() > calls;
  cr_expect_eq(ran, expect_small, "%c%c %ldx%ldx%ld: small kernel ran: %d", s->ta ? 'T' : 'N',
               s->tb ? 'T' : 'N', (long)s->m, (long)s->n, (long)s->k, ran);
  float *lib = run(s, &o, 1, false);
  for (int64_t i = 0; i < s->m; i++) {
    for (int64_t j = 0; j < s->n; j++) {
      double r = ref(s, &o, i, j), got = c1[i * o.ldc + j], l = lib[i * o.ldc + j];
      double tol = 1e-5 * (fabs(r) + (double)s->k);
      cr_assert(fabs(got - r) <= tol && fabs(got - l) <= 2 * tol,
                "%c%c %ldx%ldx%ld C[%ld,%ld] %g, reference %g, library %g", s->ta ? 'T' : 'N',
                s->tb ? 'T' : 'N', (long)s->m, (long)s->n, (long)s->k, (long)i, (long)j, got, r, l);
    }
    /* Past C's columns the padding of ldc is left as it was. */
    for (int64_t j = s->n; j < o.ldc; j++)
      cr_assert(memcmp(&c1[i * o.ldc + j], &o.c0[i * o.ldc + j], sizeof(float)) == 0,
                "C's padding [%ld,%ld] written", (long)i, (long)j);
  }
  for (int t = 2; t <= 3; t++) {
    float *ct = run(s, &o, t, true);
    cr_assert_eq(memcmp(c1, ct, sizeof(float) * (size_t)(s->m * o.ldc)), 0,
                 "%ldx%ldx%ld differs with %d threads", (long)s->m, (long)s->n, (long)s->k, t);
    free(ct);
  }
  free(c1);
  free(lib);
  free(o.a);
  free(o.b);
  free(o.c0);
}

Test(gemm_small, odd_shapes_of_every_transpose) {
  static const int64_t dims[][3] = {{1, 1, 1},    {5, 7, 3},    {6, 16, 9},   {7, 17, 33},
                                    {13, 31, 2},  {64, 64, 32}, {64, 32, 64}, {37, 45, 61},
                                    {1, 200, 50}, {90, 1, 70}};
  for (size_t d = 0; d < sizeof dims / sizeof dims[0]; d++)
    for (int t = 0; t < 4; t++) {
      gshape s = {.ta = t & 1,
                  .tb = t & 2,
                  .m = dims[d][0],
                  .n = dims[d][1],
                  .k = dims[d][2],
                  .alpha = 1,
                  .beta = 0};
      check(&s, cpu_ok());
      s.alpha = 0.5f;
      s.beta = 1.5f;
      check(&s, cpu_ok());
    }
}

Test(gemm_small, long_k_and_large_products_go_to_the_libraries) {
  gshape long_k = {.m = 3, .n = 5, .k = 2000, .alpha = 1, .beta = 0};
  check(&long_k, false);
  gshape large = {.tb = true, .m = 70, .n = 70, .k = 70, .alpha = 1, .beta = 0};
  check(&large, false);
}

Test(gemm_small, switched_off_runs_the_libraries) {
  gshape s = {.m = 64, .n = 64, .k = 32, .alpha = 1, .beta = 0};
  operands o = make(&s);
  int64_t calls = ty__sgemm_small_calls();
  free(run(&s, &o, 1, false));
  cr_expect_eq(ty__sgemm_small_calls(), calls);
  free(o.a);
  free(o.b);
  free(o.c0);
}

/* ---- MatMul's batched driver over batch [2, 3] ---- */

typedef struct bcase {
  const char *what;
  int64_t m, n, k;
  bool ta, tb;           /* A or B stored transposed (read with sr 1) */
  bool a_bcast, b_bcast; /* A or B the same matrix for every entry (stride 0) */
  int b_bcast_dim;       /* with b_bcast: -1 both batch dims, else only this one */
  bool c_sum;            /* C one matrix summed over the entries */
} bcase;

enum { NB0 = 2, NB1 = 3, NB = NB0 * NB1 };

static ty__mm_test_mat mat_of(float *p, int64_t rows, int64_t cols, bool trans, bool bcast,
                              int dim) {
  ty__mm_test_mat x = {.p = p};
  x.sr = trans ? 1 : cols;
  x.sc = trans ? rows : 1;
  int64_t e = rows * cols;
  x.st[1] = bcast && dim != 0 ? 0 : e;
  x.st[0] = bcast && dim == -1 ? 0 : (bcast && dim == 1 ? e : e * NB1);
  if (bcast && dim == 0) x.st[0] = 0;
  return x;
}

static float *batched(const bcase *bc, const ty__mm_test_mat *a, const ty__mm_test_mat *b,
                      int threads, bool small) {
  int64_t ne = bc->c_sum ? 1 : NB, numel = ne * bc->m * bc->n;
  float *c = filled(numel, 0.5f, 0.3f); /* overwritten, not added to */
  ty__mm_test_mat cm = {.p = c, .sr = bc->n, .sc = 1};
  cm.st[1] = bc->c_sum ? 0 : bc->m * bc->n;
  cm.st[0] = bc->c_sum ? 0 : bc->m * bc->n * NB1;
  const int64_t batch[2] = {NB0, NB1};
  ty_workers *w = NULL;
  cr_assert_eq(ty_workers_create(threads, &w), 0);
  ty__sgemm_small_enable(small);
  ty__mm_batched_2d(w, batch, a, b, &cm, bc->m, bc->n, bc->k, (size_t)numel);
  ty__sgemm_small_enable(true);
  ty_workers_destroy(w);
  return c;
}

static double at(const ty__mm_test_mat *x, int64_t e0, int64_t e1, int64_t i, int64_t j) {
  return x->p[e0 * x->st[0] + e1 * x->st[1] + i * x->sr + j * x->sc];
}

static void check_batched(const bcase *bc) {
  int64_t ea = bc->m * bc->k, eb = bc->k * bc->n;
  float *pa = filled(NB * ea, 0.29f, 0.2f), *pb = filled(NB * eb, 0.13f, 0.9f);
  ty__mm_test_mat a = mat_of(pa, bc->m, bc->k, bc->ta, bc->a_bcast, -1),
                  b = mat_of(pb, bc->k, bc->n, bc->tb, bc->b_bcast, bc->b_bcast_dim);
  int64_t calls = ty__sgemm_small_calls();
  float *c1 = batched(bc, &a, &b, 1, true);
  cr_expect_eq(ty__sgemm_small_calls() > calls, cpu_ok(), "%s: small kernel ran", bc->what);
  float *lib = batched(bc, &a, &b, 1, false);
  for (int64_t e = 0; e < (bc->c_sum ? 1 : NB); e++)
    for (int64_t i = 0; i < bc->m; i++)
      for (int64_t j = 0; j < bc->n; j++) {
        double r = 0;
        for (int64_t f = bc->c_sum ? 0 : e; f < (bc->c_sum ? NB : e + 1); f++)
          for (int64_t p = 0; p < bc->k; p++)
            r += at(&a, f / NB1, f % NB1, i, p) * at(&b, f / NB1, f % NB1, p, j);
        int64_t o = (e * bc->m + i) * bc->n + j;
        double tol = 1e-5 * (fabs(r) + (double)(bc->k * NB));
        cr_assert(fabs(c1[o] - r) <= tol && fabs(c1[o] - lib[o]) <= 2 * tol,
                  "%s: entry %ld C[%ld,%ld] %g, reference %g, library %g", bc->what, (long)e,
                  (long)i, (long)j, c1[o], r, lib[o]);
      }
  size_t bytes = sizeof(float) * (size_t)((bc->c_sum ? 1 : NB) * bc->m * bc->n);
  for (int t = 2; t <= 3; t++) {
    float *ct = batched(bc, &a, &b, t, true);
    cr_assert_eq(memcmp(c1, ct, bytes), 0, "%s differs with %d threads", bc->what, t);
    free(ct);
  }
  free(c1);
  free(lib);
  free(pa);
  free(pb);
}

Test(gemm_small, batched_matches_per_matrix_products) {
  static const bcase cases[] = {
      {"attention scores, B transposed", 64, 64, 32, false, true, false, false, 0, false},
      {"attention values", 64, 32, 64, false, false, false, false, 0, false},
      {"odd, A transposed", 7, 19, 5, true, false, false, false, 0, false},
      {"odd, both transposed", 13, 6, 11, true, true, false, false, 0, false},
      {"B broadcast over the batch", 9, 23, 17, false, false, false, true, -1, false},
      {"B broadcast over batch dim 0", 11, 17, 3, false, true, false, true, 0, false},
      {"A broadcast over the batch", 5, 33, 8, true, false, true, false, 0, false},
      {"C summed over the batch", 10, 18, 7, true, false, false, false, 0, true},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
    check_batched(&cases[i]);
}
