/* SPDX-License-Identifier: Apache-2.0 */
/*
 * bench_fusion: y = relu(x*w + b) * 0.5 over 10M float32 elements (x is
 * [10000, 1000], w and b broadcast rows), unfused (four library kernels,
 * four passes over memory) against fused (one JIT-compiled loop) and the
 * fused interpreter. Prints the best of several runs and the ratios.
 *
 *   bench_fusion [rows] [reps]
 */
#include "ops/fusion/fusion.h"
#include "ops/ops.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define COLS 1000

static int add_value(ty_graph *g, const char *name, int rank, const int64_t *dims) {
  ty_shape s = ty_shape_make(rank, dims);
  int id = -1;
  if (ty_graph_add_value(g, name, rank < 0 ? TY_DTYPE_INVALID : TY_DTYPE_F32, rank < 0 ? NULL : &s,
                         &id) != 0)
    exit(1);
  return id;
}

static int add_init(ty_graph *g, const char *name, int rank, const int64_t *dims, float base) {
  int id = add_value(g, name, rank, dims);
  ty_shape s = ty_shape_make(rank, dims);
  ty_tensor *t;
  if (ty_tensor_create(TY_DTYPE_F32, &s, &t) != 0) exit(1);
  for (int64_t i = 0; i < ty_tensor_numel(t); i++)
    ty_tensor_f32(t)[i] = base + 0.001f * (float)(i % 97);
  ty_graph_set_initializer(g, id, t);
  return id;
}

static int op(ty_graph *g, ty_op o, int a, int b) {
  int in[2] = {a, b}, out = add_value(g, NULL, -1, NULL);
  if (ty_graph_add_node(g, o, NULL, in, b < 0 ? 1 : 2, &out, 1, NULL) != 0) exit(1);
  return out;
}

static ty_graph *build(void) {
  ty_graph *g;
  int64_t xd[2] = {TY_DIM_BATCH, COLS}, wd[1] = {COLS};
  char err[256];
  if (ty_graph_create(&g) != 0) exit(1);
  int x = add_value(g, "x", 2, xd);
  ty_graph_mark_input(g, x);
  int w = add_init(g, "w", 1, wd, 0.5f), b = add_init(g, "b", 1, wd, -0.1f),
      h = add_init(g, "half", 0, NULL, 0.5f);
  int y = op(g, TY_OP_MUL, op(g, TY_OP_RELU, op(g, TY_OP_ADD, op(g, TY_OP_MUL, x, w), b), -1), h);
  ty_graph_mark_output(g, y);
  if (ty_graph_infer_shapes(g, err, sizeof err) != 0) {
    fprintf(stderr, "bench_fusion: %s\n", err);
    exit(1);
  }
  return g;
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Best wall time of reps runs (after one warm-up run that compiles). */
static double time_runs(const ty_graph *g, const ty_exec_opts *o, const ty_tensor *x, int reps) {
  ty_exec *e;
  char err[256] = "";
  if (ty_exec_create(g, o, &e) != 0 || ty_exec_bind(e, "x", x, err, sizeof err) != 0 ||
      ty_exec_run(e, err, sizeof err) != 0) {
    fprintf(stderr, "bench_fusion: %s\n", err);
    exit(1);
  }
  double best = 1e30;
  for (int r = 0; r < reps; r++) {
    double t0 = now();
    if (ty_exec_run(e, err, sizeof err) != 0) exit(1);
    double dt = now() - t0;
    if (dt < best) best = dt;
  }
  ty_exec_destroy(e);
  return best;
}

int main(int argc, char **argv) {
  int64_t rows = argc > 1 ? atoll(argv[1]) : 10000;
  int reps = argc > 2 ? atoi(argv[2]) : 5;
  if (rows < 1 || reps < 1) {
    fprintf(stderr, "usage: bench_fusion [rows >= 1] [reps >= 1]\n");
    return 2;
  }
  ty_graph *g = build();
  int64_t dims[2] = {rows, COLS};
  ty_shape s = ty_shape_make(2, dims);
  ty_tensor *x;
  if (ty_tensor_create(TY_DTYPE_F32, &s, &x) != 0) return 1;
  for (int64_t i = 0; i < rows * COLS; i++)
    ty_tensor_f32(x)[i] = (float)(i % 1013) * 0.002f - 1.0f;
  ty_exec_opts unfused = {.no_fusion = true}, fused = {0}, interp = {.no_jit = true};
  double tu = time_runs(g, &unfused, x, reps), tf = time_runs(g, &fused, x, reps);
  double ti = time_runs(g, &interp, x, reps);
  double n = (double)rows * COLS;
  printf("y = relu(x*w + b) * 0.5 over %.0f elements, best of %d\n", n, reps);
  printf("  unfused (4 kernels)   %8.2f ms  %6.2f GB/s moved\n", tu * 1e3, n * 4 * 8 / tu * 1e-9);
  printf("  fused, JIT            %8.2f ms  %6.2f GB/s moved\n", tf * 1e3, n * 4 * 2 / tf * 1e-9);
  printf("  fused, interpreter    %8.2f ms\n", ti * 1e3);
  printf("  speedup fused JIT / unfused: %.2fx; interpreter / unfused: %.2fx\n", tu / tf, tu / ti);
  ty_tensor_destroy(x);
  ty_graph_destroy(g);
  return 0;
}
