/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Device compute rates for the cost model. GPUs come from a table of peak
 * FP32 rates and memory sizes (the planner trains in FP32), matched by the
 * CUDA device name; callers override it with the user's numbers. CPUs are
 * measured: the runtime's own MatMul (ops/exec over OpenBLAS) on 512 x 512
 * matrices for about a quarter second, cached in a one-line file keyed by
 * the CPU model and the thread count, so a controller measures once.
 * The cache is input from disk: a line that does not parse or does not
 * match is measured again, never trusted.
 */
#include "ops/plan/plan.h"

#include "lib/base/base.h"
#include "ops/exec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

void openblas_set_num_threads(int num_threads); /* OpenBLAS; cblas.h would pull in all of BLAS */

/* First match wins: more specific names come before their prefixes
 * ("GH200" before "H200", "A100" before "A10", "L40S" before "L4"). */
static const struct {
  const char *key;
  double tflops; /* peak FP32 */
  double gib;
  bool sized; /* variants differ in memory and the name says it: "A100-SXM4-80GB" */
} gpus[] = {
    {"GH200", 67, 96, false},       {"H200", 67, 141, false},
    {"H100 PCIe", 51, 80, true},    {"H100", 67, 80, true},
    {"H800", 67, 80, true},         {"B200", 80, 180, false},
    {"A100", 19.5, 40, true},       {"A800", 19.5, 80, true},
    {"L40S", 91.6, 48, false},      {"L40", 90.5, 48, false},
    {"L4", 30.3, 24, false},        {"A10G", 31.2, 24, false},
    {"A10", 31.2, 24, false},       {"A40", 37.4, 48, false},
    {"A30", 10.3, 24, false},       {"RTX 6000 Ada", 91.1, 48, false},
    {"RTX A6000", 38.7, 48, false}, {"RTX 4090", 82.6, 24, false},
    {"RTX 3090", 35.6, 24, false},  {"V100", 15.7, 16, true},
    {"T4", 8.1, 16, false},         {"P100", 9.3, 16, true},
};

int ty_plan_gpu_lookup(const char *device_name, double *out_flops, uint64_t *out_mem_bytes) {
  if (!device_name) return TY_ENOTFOUND;
  for (size_t i = 0; i < TY_ARRAY_LEN(gpus); i++) {
    if (!strcasestr(device_name, gpus[i].key)) continue;
    double gib = gpus[i].gib;
    const char *gb = gpus[i].sized ? strstr(device_name, "GB") : NULL;
    if (gb) { /* "A100-SXM4-80GB": the name says its memory */
      const char *d = gb;
      while (d > device_name && d[-1] >= '0' && d[-1] <= '9')
        d--;
      if (d < gb) gib = atof(d);
    }
    if (out_flops) *out_flops = gpus[i].tflops * 1e12;
    if (out_mem_bytes) *out_mem_bytes = (uint64_t)(gib * (double)(1ull << 30));
    return 0;
  }
  return TY_ENOTFOUND;
}

/* ---- CPU ----------------------------------------------------------------------------- */

#define BENCH_N 512

static void cpu_model(char *buf, size_t len) {
  snprintf(buf, len, "unknown");
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[256];
  while (f && fgets(line, sizeof line, f)) {
    char *colon = strchr(line, ':');
    if (strncmp(line, "model name", 10) != 0 || !colon) continue;
    colon += colon[1] == ' ' ? 2 : 1;
    colon[strcspn(colon, "\n")] = '\0';
    snprintf(buf, len, "%s", colon);
    break;
  }
  if (f) fclose(f);
}

/* The CPU model is read only once a cache file parsed: the controller
 * asks on every graph check until its first measurement is kept. */
static int read_cache(const char *path, int threads, double *out) {
  FILE *f = fopen(path, "r");
  char line[512];
  if (!f) return TY_ENOTFOUND;
  bool ok = fgets(line, sizeof line, f) != NULL;
  fclose(f);
  int th, used = 0;
  double flops;
  if (!ok ||
      sscanf(line, "trainyard-cpu-flops 1 threads=%d flops=%lf cpu=%n", &th, &flops, &used) != 2 ||
      !used)
    return TY_EINVAL;
  line[strcspn(line, "\n")] = '\0';
  char model[160];
  cpu_model(model, sizeof model);
  if (th != threads || strcmp(line + used, model) != 0 || !(flops > 1e6) || !isfinite(flops))
    return TY_EINVAL;
  *out = flops;
  return 0;
}

static void write_cache(const char *path, const char *model, int threads, double flops) {
  char tmp[4096];
  if (snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= (int)sizeof tmp) return;
  FILE *f = fopen(tmp, "w");
  if (!f) return;
  bool ok = fprintf(f, "trainyard-cpu-flops 1 threads=%d flops=%.17g cpu=%s\n", threads, flops,
                    model) > 0;
  ok &= fclose(f) == 0;
  if (!ok || rename(tmp, path) != 0) unlink(tmp);
}

/* A one-MatMul graph, run on the runtime's executor. */
static int measure(char *err, size_t err_len, double *out_flops) {
  ty_graph *g = NULL;
  ty_exec *e = NULL;
  ty_tensor *a = NULL, *b = NULL;
  ty_shape sq = ty_shape_make(2, (int64_t[]){BENCH_N, BENCH_N});
  int ia, ib, iy, node;
  int rc = ty_graph_create(&g);
  if (rc == 0) rc = ty_graph_add_value(g, "a", TY_DTYPE_F32, &sq, &ia);
  if (rc == 0) rc = ty_graph_add_value(g, "b", TY_DTYPE_F32, &sq, &ib);
  if (rc == 0) rc = ty_graph_add_value(g, "y", TY_DTYPE_F32, NULL, &iy);
  if (rc == 0) rc = ty_graph_mark_input(g, ia);
  if (rc == 0) rc = ty_graph_mark_input(g, ib);
  if (rc == 0) rc = ty_graph_add_node(g, TY_OP_MATMUL, "bench", (int[]){ia, ib}, 2, &iy, 1, &node);
  if (rc == 0) rc = ty_graph_mark_output(g, iy);
  if (rc == 0) rc = ty_graph_infer_shapes(g, err, err_len);
  if (rc == 0) rc = ty_tensor_create(TY_DTYPE_F32, &sq, &a);
  if (rc == 0) rc = ty_tensor_create(TY_DTYPE_F32, &sq, &b);
  for (int64_t i = 0; rc == 0 && i < BENCH_N * BENCH_N; i++) {
    ty_tensor_f32(a)[i] = (float)(i % 7) * 0.125f;
    ty_tensor_f32(b)[i] = (float)(i % 5) * 0.25f;
  }
  ty_exec_opts opts = {.no_fusion = true};
  if (rc == 0) rc = ty_exec_create(g, &opts, &e);
  if (rc == 0) rc = ty_exec_bind(e, "a", a, err, err_len);
  if (rc == 0) rc = ty_exec_bind(e, "b", b, err, err_len);
  if (rc == 0) rc = ty_exec_run(e, err, err_len); /* warm-up: threads, pages */
  double t0 = ty_mono_s(), t = 0;
  int runs = 0;
  while (rc == 0 && (runs < 3 || t < 0.25)) {
    rc = ty_exec_run(e, err, err_len);
    runs++;
    t = ty_mono_s() - t0;
  }
  if (rc == 0) *out_flops = 2.0 * BENCH_N * BENCH_N * BENCH_N * runs / fmax(t, 1e-9);
  ty_exec_destroy(e);
  ty_tensor_destroy(a);
  ty_tensor_destroy(b);
  ty_graph_destroy(g);
  return rc;
}

int ty_plan_cpu_flops_load(const char *cache_path, int threads, double *out_flops) {
  return read_cache(cache_path, threads, out_flops);
}

void ty_plan_cpu_flops_store(const char *cache_path, int threads, double flops) {
  char model[160];
  cpu_model(model, sizeof model);
  write_cache(cache_path, model, threads, flops);
}

int ty_plan_cpu_flops(const char *cache_path, int threads, char *err, size_t err_len,
                      double *out_flops) {
  if (threads < 0)
    return ty_errf(err, err_len, TY_EINVAL, "threads: must not be negative (got %d)", threads);
  if (cache_path && ty_plan_cpu_flops_load(cache_path, threads, out_flops) == 0) return 0;
  if (threads > 0) openblas_set_num_threads(threads);
  int rc = measure(err, err_len, out_flops);
  if (rc == 0 && cache_path) ty_plan_cpu_flops_store(cache_path, threads, *out_flops);
  return rc;
}
