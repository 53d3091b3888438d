/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The measurements of issue 17 (bench/gpu/run.sh runs them and prints one
 * table). Each prints markdown table rows: | metric | value | reference |
 * ratio |.
 *
 *   gpu_bench nvrtc MODELS_DIR   NVRTC compile time per fused kernel of the
 *                                example models' training graphs, and the
 *                                cache over an epoch (no GPU needed)
 *   gpu_bench fused              a fused elementwise chain's bandwidth
 *                                against cudaMemcpy device to device
 *   gpu_bench gemm               ops/cuda's GEMM against cuBLAS called alone
 *
 * The GPU subcommands exit 77 without a device. Timing uses CUDA events
 * over repeated launches after a warm-up.
 */
#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/cuda/cuda.h"
#include "ops/fusion/fusion.h"
#include "ops/graph.h"
#include "ops/train/train.h"

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void die(const char *what, const char *err) {
  fprintf(stderr, "gpu_bench: %s: %s\n", what, err);
  exit(1);
}

/* ---- nvrtc ----------------------------------------------------------------- */

/* model + builtin loss + backward of its rank > 0 float initializers. */
static ty_graph *grad_graph(const char *dir, const char *name) {
  char path[512], err[TY_ERR_LEN];
  ty_graph *model = NULL, *g = NULL;
  ty_train_config c;
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  if (access(path, R_OK) != 0) return NULL;
  if (ty_graph_load_file(path, err, sizeof err, &model) != 0) die(path, err);
  snprintf(path, sizeof path, "%s/%s.config.pb", dir, name);
  if (ty_train_config_load(path, &c, err, sizeof err) != 0) die(path, err);
  if (ty_train_plan_graph(model, &c, false, &g, err, sizeof err) != 0) die(name, err);
  ty_train_config_close(&c);
  ty_graph_destroy(model);
  int loss = TY_NO_VALUE;
  size_t ni = ty_graph_n_initializers(g), np = 0;
  for (size_t i = 0; i < ty_graph_n_outputs(g); i++)
    if (ty_shape_numel(&ty_graph_value_at(g, ty_graph_output(g, i))->shape) == 1)
      loss = ty_graph_output(g, i);
  int *params = calloc(ni + 1, sizeof *params), *grads = calloc(ni + 1, sizeof *grads);
  for (size_t i = 0; i < ni; i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_initializer(g, i));
    if (v->dtype == TY_DTYPE_F32 && v->shape.rank > 0) params[np++] = ty_graph_initializer(g, i);
  }
  if (ty_autodiff(g, loss, params, np, grads, err, sizeof err) != 0) die(name, err);
  free(params);
  free(grads);
  return g;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Every kernel of a model once per step for steps steps through one cache. */
static void nvrtc_model(const char *dir, const char *name, const char *cache) {
  ty_graph *g = grad_graph(dir, name);
  if (!g) return;
  ty_fused_src *k = NULL;
  size_t nk = 0;
  if (ty_fusion_cuda_sources(g, NULL, 0, TY_DTYPE_F32, &k, &nk) != 0) die(name, "codegen");
  if (nk == 0) {
    printf("| NVRTC %s: fused regions in its training graph | 0 | - | - |\n", name);
    ty_graph_destroy(g);
    return;
  }
  char err[TY_ERR_LEN];
  ty_cuda_rtc *r = NULL;
  ty_cuda_rtc_opts o = {.arch = 90, .cache_dir = cache};
  if (ty_cuda_rtc_create(&o, &r, err, sizeof err) != 0) die("rtc", err);
  double worst = 0;
  uint64_t after_first = 0, hits_first = 0;
  ty_cuda_rtc_stats st;
  const int steps = 100;
  for (int s = 0; s < steps; s++) {
    for (size_t i = 0; i < nk; i++) {
      void *img = NULL;
      size_t len = 0;
      double t0 = now_s();
      if (ty_cuda_rtc_compile(r, k[i].src, k[i].name, &img, &len, err, sizeof err) != 0)
        die(k[i].name, err);
      if (s == 0 && now_s() - t0 > worst) worst = now_s() - t0;
      free(img);
    }
    if (s == 0) ty_cuda_rtc_get_stats(r, &st), after_first = st.compiles, hits_first = st.disk_hits;
  }
  ty_cuda_rtc_get_stats(r, &st);
  double lookups = (double)nk * (steps - 1);
  printf("| NVRTC %s: %zu fused kernels, %llu compiled (one per structure, across the models); "
         "sm_90 cubin ms mean / max | %.1f / %.1f | - | - |\n",
         name, nk, (unsigned long long)st.compiles,
         st.compiles ? st.compile_s * 1e3 / (double)st.compiles : 0.0, worst * 1e3);
  printf("| NVRTC %s: compiles after step 1 over %d steps; cache hit rate after step 1 | %llu; "
         "%.1f%% | goal 0 "
         "| - |\n",
         name, steps, (unsigned long long)(st.compiles - after_first),
         lookups > 0 ? 100.0 * (double)(st.disk_hits - hits_first) / lookups : 0.0);
  ty_cuda_rtc_destroy(r);
  ty_fused_srcs_free(k, nk);
  ty_graph_destroy(g);
}

static int drop_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)flag, (void)ftw;
  return remove(path);
}

/* The cache starts empty and is removed at the end. */
static int cmd_nvrtc(const char *dir) {
  char cache[] = "/tmp/ty_gpu_bench_cache.XXXXXX";
  if (!mkdtemp(cache)) die("mkdtemp", "failed");
  const char *names[] = {"mlp", "cnn", "resnet", "gpt"};
  for (size_t m = 0; m < sizeof names / sizeof *names; m++)
    nvrtc_model(dir, names[m], cache);
  return nftw(cache, drop_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : 1;
}

/* ---- fused bandwidth ---------------------------------------------------------- */

static float time_ms(cudaEvent_t a, cudaEvent_t b) {
  float ms = 0;
  cudaEventSynchronize(b);
  cudaEventElapsedTime(&ms, a, b);
  return ms;
}

/* y = relu(x * s + b) over n floats: two full inputs, a scalar, one output. */
static ty_graph *chain_graph(int64_t n) {
  ty_graph *g = NULL;
  ty_shape full = ty_shape_make(1, &n), scalar = ty_shape_make(0, NULL);
  int x, s, b, t, u, y;
  ty_graph_create(&g);
  ty_graph_add_value(g, "x", TY_DTYPE_F32, &full, &x);
  ty_graph_add_value(g, "s", TY_DTYPE_F32, &scalar, &s);
  ty_graph_add_value(g, "b", TY_DTYPE_F32, &full, &b);
  ty_graph_add_value(g, "t", TY_DTYPE_F32, NULL, &t);
  ty_graph_add_value(g, "u", TY_DTYPE_F32, NULL, &u);
  ty_graph_add_value(g, "y", TY_DTYPE_F32, NULL, &y);
  ty_graph_mark_input(g, x);
  ty_graph_mark_input(g, s);
  ty_graph_mark_input(g, b);
  ty_graph_add_node(g, TY_OP_MUL, NULL, (int[]){x, s}, 2, &t, 1, NULL);
  ty_graph_add_node(g, TY_OP_ADD, NULL, (int[]){t, b}, 2, &u, 1, NULL);
  ty_graph_add_node(g, TY_OP_RELU, NULL, &u, 1, &y, 1, NULL);
  ty_graph_mark_output(g, y);
  char err[TY_ERR_LEN];
  if (ty_graph_infer_shapes(g, err, sizeof err) != 0) die("chain graph", err);
  return g;
}

static int cmd_fused(int arch) {
  const int64_t n = (int64_t)64 << 20; /* 256 MiB per buffer */
  ty_graph *g = chain_graph(n);
  ty_fused_src *k = NULL;
  size_t nk = 0;
  char err[TY_ERR_LEN];
  if (ty_fusion_cuda_sources(g, NULL, 0, TY_DTYPE_F32, &k, &nk) != 0 || nk != 1)
    die("fused", "not one region");
  ty_cuda_rtc *r = NULL;
  ty_cuda_rtc_opts o = {.arch = arch};
  void *img = NULL;
  size_t len = 0;
  ty_cuda_module *m = NULL;
  if (ty_cuda_rtc_create(&o, &r, err, sizeof err) != 0 ||
      ty_cuda_rtc_compile(r, k->src, k->name, &img, &len, err, sizeof err) != 0 ||
      ty_cuda_module_load(img, &m, err, sizeof err) != 0)
    die("fused", err);
  float *d[4];
  for (int i = 0; i < 4; i++)
    if (cudaMalloc((void **)&d[i], (size_t)n * 4) != cudaSuccess) die("cudaMalloc", "failed");
  for (int i = 0; i < 3; i++)
    cudaMemset(d[i], 0, (size_t)n * 4);
  ty_shape shapes[3];
  const float *din[3];
  for (int i = 0; i < k->n_in; i++) {
    shapes[i] = ty_graph_value_at(g, k->in_ids[i])->shape;
    din[i] = d[k->cls[i] == TY_FUSE_CUDA_SCALAR ? 1 : i == 0 ? 0 : 2];
  }
  float *dout[1] = {d[3]};
  const ty_shape *loop = &ty_graph_value_at(g, k->out_ids[0])->shape;
  ty_cuda_fused_call c = {k->name, k->n_in, k->n_out, k->n_params, k->cls, shapes,
                          loop,    din,     dout,     k->params,   NULL};
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  const int iters = 20;
  ty_cuda_fused_launch(m, &c, err, sizeof err); /* warm-up */
  cudaEventRecord(a, NULL);
  for (int i = 0; i < iters; i++)
    if (ty_cuda_fused_launch(m, &c, err, sizeof err) != 0) die("launch", err);
  cudaEventRecord(b, NULL);
  double fused = 3.0 * (double)n * 4 * iters / (time_ms(a, b) / 1e3) / 1e9;
  cudaMemcpy(d[3], d[0], (size_t)n * 4, cudaMemcpyDeviceToDevice);
  cudaEventRecord(a, NULL);
  for (int i = 0; i < iters; i++)
    cudaMemcpyAsync(d[3], d[0], (size_t)n * 4, cudaMemcpyDeviceToDevice, NULL);
  cudaEventRecord(b, NULL);
  double copy = 2.0 * (double)n * 4 * iters / (time_ms(a, b) / 1e3) / 1e9;
  printf("| fused chain relu(x*s+b), %lld floats: GB/s vs cudaMemcpy D2D GB/s | %.0f | %.0f | "
         "%.2f (goal >= 0.90) |\n",
         (long long)n, fused, copy, fused / copy);
  for (int i = 0; i < 4; i++)
    cudaFree(d[i]);
  ty_cuda_module_unload(m);
  free(img);
  ty_cuda_rtc_destroy(r);
  ty_fused_srcs_free(k, nk);
  ty_graph_destroy(g);
  return 0;
}

/* ---- GEMM ------------------------------------------------------------------- */

static double gemm_tflops(bool tf32, int64_t s, float *x, float *y, float *z, bool direct) {
  char err[TY_ERR_LEN];
  ty_cuda_blas *bl = NULL;
  cublasHandle_t h = NULL;
  if (direct) {
    cublasCreate(&h);
    if (tf32) cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH);
  } else if (ty_cuda_blas_create(NULL, tf32, &bl, err, sizeof err) != 0) {
    die("blas", err);
  }
  ty_cuda_gemm_args g = {.m = s,
                         .n = s,
                         .k = s,
                         .batch = 1,
                         .alpha = 1,
                         .a = x,
                         .b = y,
                         .c = z,
                         .lda = s,
                         .ldb = s,
                         .ldc = s};
  const float one = 1, zero = 0;
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  const int iters = 10;
  for (int i = -1; i < iters; i++) { /* i = -1: warm-up */
    if (i == 0) cudaEventRecord(a, NULL);
    if (direct)
      cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, (int)s, (int)s, (int)s, &one, y, (int)s, x, (int)s,
                  &zero, z, (int)s);
    else if (ty_cuda_gemm(bl, &g, err, sizeof err) != 0)
      die("gemm", err);
  }
  cudaEventRecord(b, NULL);
  double t = time_ms(a, b) / 1e3 / iters;
  if (h) cublasDestroy(h);
  ty_cuda_blas_destroy(bl);
  return 2.0 * (double)s * (double)s * (double)s / t / 1e12;
}

static int cmd_gemm(void) {
  const int64_t s = 8192;
  float *x, *y, *z;
  if (cudaMalloc((void **)&x, (size_t)(s * s * 4)) != cudaSuccess ||
      cudaMalloc((void **)&y, (size_t)(s * s * 4)) != cudaSuccess ||
      cudaMalloc((void **)&z, (size_t)(s * s * 4)) != cudaSuccess)
    die("cudaMalloc", "failed");
  cudaMemset(x, 0, (size_t)(s * s * 4));
  cudaMemset(y, 0, (size_t)(s * s * 4));
  for (int tf32 = 0; tf32 < 2; tf32++) {
    double ours = gemm_tflops(tf32, s, x, y, z, false), ref = gemm_tflops(tf32, s, x, y, z, true);
    printf("| GEMM %lld^3 %s: ops/cuda TFLOP/s vs cuBLAS alone | %.1f | %.1f | %.2f |\n",
           (long long)s, tf32 ? "tf32" : "fp32", ours, ref, ours / ref);
  }
  cudaFree(x);
  cudaFree(y);
  cudaFree(z);
  return 0;
}

int main(int argc, char **argv) {
  if (argc == 3 && !strcmp(argv[1], "nvrtc")) return cmd_nvrtc(argv[2]);
  int arch = 0;
  bool gpu = ty_cuda_device_count() > 0 && ty_cuda_device_arch(0, &arch) == 0;
  if (argc == 2 && (!strcmp(argv[1], "fused") || !strcmp(argv[1], "gemm"))) {
    if (!gpu) {
      printf("no GPU\n");
      return 77;
    }
    return !strcmp(argv[1], "fused") ? cmd_fused(arch) : cmd_gemm();
  }
  fprintf(stderr, "usage: gpu_bench nvrtc MODELS_DIR | fused | gemm\n");
  return 2;
}
