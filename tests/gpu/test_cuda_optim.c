/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU suite: the optimizer on the device (ops/cuda's ty_cuda_optim, what a
 * DEVICE_GPU trainer runs) against ops/optim's host step: SGD plain with
 * weight decay, with momentum, with Nesterov momentum, Adam and AdamW,
 * three steps each from the same weights and gradients; the weights and
 * the state stored back into ops/optim agree to 1e-6 relative. Exits 77
 * (skipped) where no GPU is visible.
 */
#include "lib/base/base.h"
#include "ops/cuda/cuda.h"
#include "ops/optim/optim.h"
#include "tests/gpu/check.h"

#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 1000
#define STEPS 3

static void close_to(const char *what, const float *want, const float *got, size_t n) {
  for (size_t i = 0; i < n; i++)
    CHECK(fabsf(want[i] - got[i]) <= 1e-6f * (1.0f + fabsf(want[i])), "%s[%zu]: gpu %g host %g",
          what, i, got[i], want[i]);
}

static void run_case(const char *name, const ty_optim_opts *oo, ty_cuda_rtc *rtc) {
  char err[TY_ERR_LEN];
  size_t numel = N;
  ty_optim *ref = NULL, *dev_state = NULL;
  CHECK(ty_optim_create(oo, 1, &numel, &ref, err, sizeof err) == 0, "%s: %s", name, err);
  CHECK(ty_optim_create(oo, 1, &numel, &dev_state, err, sizeof err) == 0, "%s: %s", name, err);
  ty_cuda_optim *o = NULL;
  CHECK(ty_cuda_optim_create(rtc, NULL, 1, &o) == 0, "optim");
  float *w = malloc(N * 4), *g = malloc(N * 4), *got = malloc(N * 4), *dw = NULL, *dg = NULL;
  ty_rng rng = ty_rng_make(5);
  for (size_t i = 0; i < N; i++)
    w[i] = ty_rng_uniform(&rng) - 0.5f;
  CHECK(cudaMalloc((void **)&dw, N * 4) == cudaSuccess && cudaMalloc((void **)&dg, N * 4) == 0,
        "cudaMalloc");
  CHECK(cudaMemcpy(dw, w, N * 4, cudaMemcpyHostToDevice) == cudaSuccess, "H2D");
  int n_bufs = oo->kind == TY_OPTIM_SGD ? (oo->momentum != 0.0f ? 1 : 0) : 2;
  for (int s = 0; s < STEPS; s++) {
    for (size_t i = 0; i < N; i++)
      g[i] = ty_rng_uniform(&rng) * 2.0f - 1.0f;
    CHECK(cudaMemcpy(dg, g, N * 4, cudaMemcpyHostToDevice) == cudaSuccess, "H2D");
    float *buf[2] = {NULL, NULL};
    uint64_t steps = 0;
    CHECK(ty_optim_param_state(dev_state, 0, buf, &steps) == 0, "state");
    if (s == 0) CHECK(ty_cuda_optim_load(o, 0, N, n_bufs, buf, err, sizeof err) == 0, "%s", err);
    float lr = 0.01f * (float)(s + 1);
    if (oo->kind == TY_OPTIM_SGD) {
      ty_fused_sgd h = {lr,           oo->weight_decay, oo->momentum, oo->dampening,
                        oo->nesterov, steps == 0};
      CHECK(ty_cuda_optim_sgd(o, 0, &h, dw, dg, err, sizeof err) == 0, "%s: %s", name, err);
    } else {
      ty_fused_adam h = {lr,      oo->weight_decay,           oo->beta1, oo->beta2,
                         oo->eps, oo->kind == TY_OPTIM_ADAMW, steps + 1};
      CHECK(ty_cuda_optim_adam(o, 0, &h, dw, dg, err, sizeof err) == 0, "%s: %s", name, err);
    }
    CHECK(ty_optim_param_advance(dev_state, 0) == 0, "advance");
    CHECK(ty_optim_step_param(ref, 0, lr, w, g) == 0, "host step");
  }
  CHECK(cudaMemcpy(got, dw, N * 4, cudaMemcpyDeviceToHost) == cudaSuccess, "D2H");
  close_to(name, w, got, N);
  float *buf[2] = {NULL, NULL};
  uint64_t steps = 0;
  const float *want[2] = {NULL, NULL};
  CHECK(ty_optim_param_state(dev_state, 0, buf, &steps) == 0, "state");
  CHECK(ty_cuda_optim_store(o, 0, buf, err, sizeof err) == 0, "%s", err);
  CHECK(ty_optim_param_peek(ref, 0, want, &steps) == 0 && steps == STEPS, "steps");
  for (int b = 0; b < n_bufs; b++)
    close_to(b ? "second moment" : "first buffer", want[b], buf[b], N);
  printf("%s: %d steps, weights and state gpu == host\n", name, STEPS);
  cudaFree(dw);
  cudaFree(dg);
  free(w);
  free(g);
  free(got);
  ty_cuda_optim_destroy(o);
  ty_optim_destroy(ref);
  ty_optim_destroy(dev_state);
}

int main(void) {
  int arch = 0;
  if (ty_cuda_device_count() == 0 || ty_cuda_device_arch(0, &arch) != 0) {
    printf("no CUDA device on this machine: skipped\n");
    return 77;
  }
  char err[TY_ERR_LEN];
  ty_cuda_rtc *rtc = NULL;
  ty_cuda_rtc_opts ro = {.arch = arch};
  CHECK(ty_cuda_rtc_create(&ro, &rtc, err, sizeof err) == 0, "%s", err);
  ty_optim_opts o;
  ty_optim_opts_default(TY_OPTIM_SGD, &o);
  o.weight_decay = 1e-4f;
  run_case("SGD", &o, rtc);
  o.momentum = 0.9f;
  run_case("SGD momentum", &o, rtc);
  o.nesterov = true;
  run_case("SGD Nesterov", &o, rtc);
  ty_optim_opts_default(TY_OPTIM_ADAM, &o);
  o.weight_decay = 1e-4f;
  run_case("Adam", &o, rtc);
  ty_optim_opts_default(TY_OPTIM_ADAMW, &o);
  run_case("AdamW", &o, rtc);
  ty_cuda_rtc_destroy(rtc);
  return 0;
}
