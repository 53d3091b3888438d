/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/vmath.c's erf: its ulp error against libm's double erf rounded to
 * float on every positive float below 4.5 (erf is odd, and 1 beyond), as a
 * histogram; then the CPU time per element of ty_vmath_erf over 2^20
 * values in [-4, 4], the median of 9 runs of 50 passes.
 *
 *   taskset -c 1 build/bench/ops/bench_erf [--no-sweep]
 */
#include "ops/vmath.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t ordinal(float f) {
  int32_t i;
  memcpy(&i, &f, sizeof i);
  return i < 0 ? -(int64_t)(i & 0x7fffffff) : i;
}

static double cpu_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static void sweep(void) {
  enum { CHUNK = 1 << 20 };
  float *x = malloc(CHUNK * sizeof *x), *y = malloc(CHUNK * sizeof *y), top = 4.5f;
  if (!x || !y) exit(1);
  uint32_t end;
  memcpy(&end, &top, sizeof end);
  int64_t hist[4] = {0}, worst = 0;
  float at = 0;
  for (uint32_t base = 0; base < end; base += CHUNK) {
    int64_t n = end - base < CHUNK ? end - base : CHUNK;
    for (int64_t i = 0; i < n; i++) {
      uint32_t b = base + (uint32_t)i;
      memcpy(&x[i], &b, sizeof b);
    }
    ty_vmath_erf(x, y, n);
    for (int64_t i = 0; i < n; i++) {
      int64_t d = llabs(ordinal(y[i]) - ordinal((float)erf((double)x[i])));
      hist[d > 3 ? 3 : d]++;
      if (d > worst) {
        worst = d;
        at = x[i];
      }
    }
  }
  printf("erf on every float in [0, 4.5): worst %lld ulp at %a; 0 ulp %lld, 1 ulp %lld, 2 ulp "
         "%lld, 3+ ulp %lld\n",
         (long long)worst, (double)at, (long long)hist[0], (long long)hist[1], (long long)hist[2],
         (long long)hist[3]);
  free(x);
  free(y);
}

int main(int argc, char **argv) {
  if (!(argc > 1 && strcmp(argv[1], "--no-sweep") == 0)) sweep();
  enum { N = 1 << 20, PASSES = 50, RUNS = 9 };
  float *x = malloc(N * sizeof *x), *y = malloc(N * sizeof *y);
  if (!x || !y) return 1;
  for (int64_t i = 0; i < N; i++)
    x[i] = (float)((uint32_t)(i * 2654435761u) % 100000) / 100000.0f * 8 - 4;
  double t[RUNS];
  for (int r = 0; r < RUNS; r++) {
    double t0 = cpu_s();
    for (int p = 0; p < PASSES; p++)
      ty_vmath_erf(x, y, N);
    t[r] = (cpu_s() - t0) / PASSES / N * 1e9;
  }
  qsort(t, RUNS, sizeof *t, cmp_double);
  printf("ty_vmath_erf: %.3f ns per element (median of %d; min %.3f, max %.3f)\n", t[RUNS / 2],
         RUNS, t[0], t[RUNS - 1]);
  free(x);
  free(y);
  return 0;
}
