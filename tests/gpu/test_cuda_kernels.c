/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU suite: the hand-written kernels (ops/cuda/kernels) against host
 * references in double: softmax and log-softmax forward and backward,
 * layer normalisation, cross-entropy forward and backward (with a label
 * out of range reported), embedding gather (negative indices) and
 * scatter-add, a transpose through the strided copy and a sum
 * over two of three dims. Odd sizes, so block tails are exercised.
 * Exits 77 (skipped) where no GPU is visible.
 */
#include "lib/base/base.h"
#include "ops/cuda/cuda.h"
#include "tests/gpu/check.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char err[TY_ERR_LEN];

static void *dev(const void *h, size_t bytes) {
  void *d = NULL;
  CHECK(cudaMalloc(&d, bytes ? bytes : 1) == cudaSuccess, "cudaMalloc");
  CHECK(cudaMemset(d, 0, bytes ? bytes : 1) == cudaSuccess, "cudaMemset");
  if (h) CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "H2D");
  return d;
}

static float *host(const void *d, size_t n) {
  float *h = malloc(n * sizeof *h);
  CHECK(cudaDeviceSynchronize() == cudaSuccess, "%s", cudaGetErrorString(cudaGetLastError()));
  CHECK(cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost) == cudaSuccess, "D2H");
  return h;
}

static float *randoms(size_t n, uint64_t seed) {
  float *x = malloc(n * sizeof *x);
  ty_rng r = ty_rng_make(seed);
  for (size_t i = 0; i < n; i++)
    x[i] = ty_rng_uniform(&r) * 6.0f - 3.0f;
  return x;
}

static void near(const char *what, const float *got, const double *want, size_t n) {
  for (size_t i = 0; i < n; i++)
    CHECK(fabs(got[i] - want[i]) <= 1e-4 * (1 + fabs(want[i])), "%s[%zu]: gpu %g want %g", what, i,
          got[i], want[i]);
  printf("%s: %zu values match\n", what, n);
}

static void softmax(ty_cuda_kernels *k, bool lg) {
  enum { R = 37, C = 1000 };
  float *x = randoms(R * C, 1), *g = randoms(R * C, 2);
  float *dx = dev(x, sizeof(float) * R * C), *dy = dev(NULL, sizeof(float) * R * C);
  float *dg = dev(g, sizeof(float) * R * C), *dd = dev(NULL, sizeof(float) * R * C);
  ty_cuda_rows r = {R, C, NULL};
  CHECK(ty_cuda_softmax(k, &r, dx, dy, lg, err, sizeof err) == 0, "%s", err);
  CHECK(ty_cuda_softmax_bwd(k, &r, dy, dg, dd, lg, err, sizeof err) == 0, "%s", err);
  float *y = host(dy, R * C), *d = host(dd, R * C);
  double *wy = malloc(sizeof(double) * R * C), *wd = malloc(sizeof(double) * R * C);
  for (int i = 0; i < R; i++) {
    double m = -INFINITY, s = 0, dot = 0, gs = 0;
    for (int j = 0; j < C; j++)
      m = fmax(m, x[i * C + j]);
    for (int j = 0; j < C; j++)
      s += exp(x[i * C + j] - m);
    for (int j = 0; j < C; j++) {
      double p = exp(x[i * C + j] - m) / s;
      wy[i * C + j] = lg ? x[i * C + j] - m - log(s) : p;
      dot += g[i * C + j] * p;
      gs += g[i * C + j];
    }
    for (int j = 0; j < C; j++) {
      double p = exp(x[i * C + j] - m) / s;
      wd[i * C + j] = lg ? g[i * C + j] - p * gs : p * (g[i * C + j] - dot);
    }
  }
  near(lg ? "log-softmax" : "softmax", y, wy, R * C);
  near(lg ? "log-softmax backward" : "softmax backward", d, wd, R * C);
  free(x), free(g), free(y), free(d), free(wy), free(wd);
  cudaFree(dx), cudaFree(dy), cudaFree(dg), cudaFree(dd);
}

static void layer_norm(ty_cuda_kernels *k) {
  enum { R = 19, C = 771 };
  float *x = randoms(R * C, 3), *ga = randoms(C, 4), *be = randoms(C, 5);
  float *dx = dev(x, sizeof(float) * R * C), *dga = dev(ga, sizeof(float) * C);
  float *dbe = dev(be, sizeof(float) * C), *dy = dev(NULL, sizeof(float) * R * C);
  ty_cuda_rows r = {R, C, NULL};
  CHECK(ty_cuda_layer_norm(k, &r, dx, dga, dbe, 1e-5f, dy, NULL, NULL, err, sizeof err) == 0, "%s",
        err);
  CHECK(ty_cuda_layer_norm(k, &r, dx, dga, dbe, 0.0f, dy, NULL, NULL, err, sizeof err) == TY_EINVAL,
        "epsilon 0 accepted");
  float *y = host(dy, R * C);
  double *w = malloc(sizeof(double) * R * C);
  for (int i = 0; i < R; i++) {
    double mu = 0, var = 0;
    for (int j = 0; j < C; j++)
      mu += x[i * C + j] / (double)C;
    for (int j = 0; j < C; j++)
      var += (x[i * C + j] - mu) * (x[i * C + j] - mu) / C;
    for (int j = 0; j < C; j++)
      w[i * C + j] = (x[i * C + j] - mu) / sqrt(var + 1e-5) * ga[j] + be[j];
  }
  near("layer norm", y, w, R * C);
  free(x), free(ga), free(be), free(y), free(w);
  cudaFree(dx), cudaFree(dga), cudaFree(dbe), cudaFree(dy);
}

static void cross_entropy(ty_cuda_kernels *k) {
  enum { R = 33, C = 10 };
  float *x = randoms(R * C, 6);
  int64_t lab[R];
  for (int i = 0; i < R; i++)
    lab[i] = (i * 7) % C;
  float *dx = dev(x, sizeof(float) * R * C), *dl = dev(NULL, sizeof(float) * R);
  float *dp = dev(NULL, sizeof(float) * R * C), *dg = dev(NULL, sizeof(float) * R * C);
  int64_t *dlab = dev(lab, sizeof lab), *dbad = dev(NULL, sizeof(int64_t));
  ty_cuda_rows r = {R, C, NULL};
  CHECK(ty_cuda_xent(k, &r, dx, dlab, dl, dp, dbad, err, sizeof err) == 0, "%s", err);
  CHECK(ty_cuda_xent_bwd(k, &r, dp, dlab, 1.0f / R, dg, err, sizeof err) == 0, "%s", err);
  float *loss = host(dl, R), *g = host(dg, R * C);
  double wl[R], *wg = malloc(sizeof(double) * R * C);
  for (int i = 0; i < R; i++) {
    double m = -INFINITY, s = 0;
    for (int j = 0; j < C; j++)
      m = fmax(m, x[i * C + j]);
    for (int j = 0; j < C; j++)
      s += exp(x[i * C + j] - m);
    wl[i] = -(x[i * C + lab[i]] - m - log(s));
    for (int j = 0; j < C; j++)
      wg[i * C + j] = (exp(x[i * C + j] - m) / s - (j == lab[i])) / R;
  }
  near("cross-entropy", loss, wl, R);
  near("cross-entropy backward", g, wg, R * C);
  lab[5] = C; /* out of range: reported as row 5 + 1 */
  cudaMemcpy(dlab, lab, sizeof lab, cudaMemcpyHostToDevice);
  CHECK(ty_cuda_xent(k, &r, dx, dlab, dl, dp, dbad, err, sizeof err) == 0, "%s", err);
  int64_t bad = 0;
  cudaDeviceSynchronize();
  cudaMemcpy(&bad, dbad, sizeof bad, cudaMemcpyDeviceToHost);
  CHECK(bad == 6, "bad label reported as %lld, want 6", (long long)bad);
  free(x), free(loss), free(g), free(wg);
  cudaFree(dx), cudaFree(dl), cudaFree(dp), cudaFree(dg), cudaFree(dlab), cudaFree(dbad);
}

static void embedding(ty_cuda_kernels *k) {
  enum { V = 50, D = 67, N = 41 };
  float *t = randoms(V * D, 7);
  int64_t idx[N];
  for (int i = 0; i < N; i++)
    idx[i] = i % 3 == 0 ? -(int64_t)(i % V) - 1 : (i * 13) % V;
  float *dt = dev(t, sizeof(float) * V * D), *dout = dev(NULL, sizeof(float) * N * D);
  float *dgt = dev(NULL, sizeof(float) * V * D);
  int64_t *di = dev(idx, sizeof idx), *dbad = dev(NULL, sizeof(int64_t));
  ty_cuda_rows r = {N, D, NULL};
  CHECK(ty_cuda_embedding(k, &r, V, dt, di, dout, dbad, err, sizeof err) == 0, "%s", err);
  CHECK(ty_cuda_embedding_bwd(k, &r, V, dout, di, dgt, err, sizeof err) == 0, "%s", err);
  float *out = host(dout, N * D), *gt = host(dgt, V * D);
  double *w = malloc(sizeof(double) * N * D), *wg = calloc(V * D, sizeof(double));
  for (int i = 0; i < N; i++) {
    int64_t row = idx[i] < 0 ? idx[i] + V : idx[i];
    for (int j = 0; j < D; j++) {
      w[i * D + j] = t[row * D + j];
      wg[row * D + j] += t[row * D + j];
    }
  }
  near("embedding gather", out, w, N * D);
  near("embedding scatter-add", gt, wg, V * D);
  free(t), free(out), free(gt), free(w), free(wg);
  cudaFree(dt), cudaFree(dout), cudaFree(dgt), cudaFree(di), cudaFree(dbad);
}

/* [5, 7, 9] -> [9, 5, 7] (perm 2, 0, 1), then the sum over dims 0 and 2
 * of the original, [7]. */
static void copy_and_reduce(ty_cuda_kernels *k) {
  enum { A = 5, B = 7, C = 9 };
  float *x = randoms(A * B * C, 8);
  float *dx = dev(x, sizeof(float) * A * B * C), *dy = dev(NULL, sizeof(float) * A * B * C);
  float *ds = dev(NULL, sizeof(float) * B);
  /* Index space of the output [C, A, B]; strides into x and into y. */
  ty_cuda_copy c = {3, {C, A, B}, {1, B * C, C}, {A * B, B, 1}};
  CHECK(ty_cuda_strided_copy(k, &c, dx, dy, NULL, err, sizeof err) == 0, "%s", err);
  ty_cuda_reduce red = {1, 2, {B}, {C}, {A, C}, {B * C, 1}};
  CHECK(ty_cuda_reduce_sum(k, &red, 1.0f, dx, ds, NULL, err, sizeof err) == 0, "%s", err);
  float *y = host(dy, A * B * C), *s = host(ds, B);
  double *w = malloc(sizeof(double) * A * B * C), ws[B] = {0};
  for (int a = 0; a < A; a++)
    for (int b = 0; b < B; b++)
      for (int cc = 0; cc < C; cc++) {
        w[(cc * A + a) * B + b] = x[(a * B + b) * C + cc];
        ws[b] += x[(a * B + b) * C + cc];
      }
  near("transpose (strided copy)", y, w, A * B * C);
  near("reduce sum", s, ws, B);
  c.dims[0] = 0;
  CHECK(ty_cuda_strided_copy(k, &c, dx, dy, NULL, err, sizeof err) == TY_EINVAL,
        "a 0 dim accepted");
  free(x), free(y), free(s), free(w);
  cudaFree(dx), cudaFree(dy), cudaFree(ds);
}

int main(void) {
  int arch = 0;
  if (ty_cuda_device_count() == 0 || ty_cuda_device_arch(0, &arch) != 0) {
    printf("no CUDA device on this machine: skipped\n");
    return 77;
  }
  ty_cuda_rtc *rtc = NULL;
  ty_cuda_kernels *k = NULL;
  ty_cuda_rtc_opts o = {.arch = arch};
  CHECK(ty_cuda_rtc_create(&o, &rtc, err, sizeof err) == 0, "%s", err);
  CHECK(ty_cuda_kernels_create(rtc, &k, err, sizeof err) == 0, "%s", err);
  softmax(k, false);
  softmax(k, true);
  layer_norm(k);
  cross_entropy(k);
  embedding(k);
  copy_and_reduce(k);
  ty_cuda_kernels_destroy(k);
  ty_cuda_rtc_destroy(rtc);
  return 0;
}
