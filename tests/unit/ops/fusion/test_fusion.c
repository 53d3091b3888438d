/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/fusion: fused regions give the unfused results bit for bit (JIT and
 * interpreter), with broadcasting; kernels are compiled once per structure
 * whatever the batch size and reused from the disk cache by other
 * executors and processes; without a compiler the interpreter takes over;
 * the fused optimizer updates equal ops/optim's.
 */
#include "ops/fusion/fusion.h"
#include "ops/optim/optim.h"
#include "tests/unit/ops/fusion/gtest.h"

#include <math.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#define D 37 /* odd, so vector loops have tails */

static float f_w(int64_t i) {
  return 0.5f + 0.03f * (float)(i % 11);
}
static float f_b(int64_t i) {
  return -0.2f + 0.01f * (float)i;
}
static float f_half(int64_t i) {
  (void)i;
  return 0.5f;
}
static float f_x(int64_t i) {
  return sinf((float)i * 0.37f) * 3.0f;
}
static float f_pos(int64_t i) {
  return 0.1f + (float)(i % 13) * 0.25f;
}

static char cache_dir[256];

static void fresh_cache(void) {
  snprintf(cache_dir, sizeof cache_dir, "/tmp/ty_fusion_test.XXXXXX");
  cr_assert_not_null(mkdtemp(cache_dir));
}

/* y = relu(x*w + b) * 0.5; z = sigmoid(y) - tanh(x) + leaky(x) / sqrt(p) + erf(-y);
 * q = pow(p, w) exp-log'd; outputs y (read outside) and z, q. */
static ty_graph *chain_graph(void) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, D}, wd[1] = {D};
  int x = gt_input(g, "x", 2, xd), p = gt_input(g, "p", 2, xd);
  int w = gt_init(g, "w", 1, wd, f_w), b = gt_init(g, "b", 1, wd, f_b),
      h = gt_init(g, "half", 0, NULL, f_half);
  int y = gt_op(g, TY_OP_MUL,
                gt_op(g, TY_OP_RELU, gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_MUL, x, w), b), -1), h);
  int lk = gt_op(g, TY_OP_LEAKY_RELU, x, -1);
  cr_assert_eq(ty_graph_node_set_float(g, ty_graph_n_nodes(g) - 1, "alpha", 0.2f), 0);
  int s = gt_op(g, TY_OP_SUB, gt_op(g, TY_OP_SIGMOID, y, -1), gt_op(g, TY_OP_TANH, x, -1));
  int z = gt_op(g, TY_OP_ADD, s, gt_op(g, TY_OP_DIV, lk, gt_op(g, TY_OP_SQRT, p, -1)));
  z = gt_op(g, TY_OP_ADD, z, gt_op(g, TY_OP_ERF, gt_op(g, TY_OP_NEG, y, -1), -1));
  z = gt_op(g, TY_OP_IDENTITY, z, -1);
  int q = gt_op(g, TY_OP_LOG, gt_op(g, TY_OP_EXP, gt_op(g, TY_OP_POW, p, w), -1), -1);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  cr_assert_eq(ty_graph_mark_output(g, z), 0);
  cr_assert_eq(ty_graph_mark_output(g, q), 0);
  gt_infer(g);
  return g;
}

static ty_exec *run_chain(const ty_graph *g, const ty_exec_opts *o, int64_t batch) {
  int64_t dims[2] = {batch, D};
  ty_tensor *ts[2] = {gt_tensor(2, dims, f_x), gt_tensor(2, dims, f_pos)};
  const char *names[2] = {"x", "p"};
  ty_exec *e = gt_run(g, o, 2, names, ts);
  /* Outputs are owned by e; the inputs may go once the run is over. */
  ty_tensor_destroy(ts[0]);
  ty_tensor_destroy(ts[1]);
  return e;
}

static void assert_outputs_equal(const ty_graph *g, const ty_exec *a, const ty_exec *b) {
  for (size_t i = 0; i < ty_graph_n_outputs(g); i++)
    gt_assert_same(ty_exec_value(a, ty_graph_output(g, i)),
                   ty_exec_value(b, ty_graph_output(g, i)));
}

Test(fusion, fused_jit_equals_unfused_bitwise) {
  fresh_cache();
  ty_graph *g = chain_graph();
  ty_exec_opts plain = {.no_fusion = true, .no_memplan = true}, fused = {.kernel_cache = cache_dir};
  ty_exec *a = run_chain(g, &plain, 5), *b = run_chain(g, &fused, 5);
  assert_outputs_equal(g, a, b);
  ty_exec_stats st;
  ty_exec_get_stats(b, &st);
  cr_assert_geq(st.fused_regions, 1);
  cr_assert_eq(st.fused_nodes, ty_graph_n_nodes(g), "every node is elementwise: %zu of %zu fused",
               st.fused_nodes, ty_graph_n_nodes(g));
  cr_assert_geq(st.jit_compiles, 1);
  cr_assert_eq(st.interp_runs, 0);
  ty_exec_get_stats(a, &st);
  cr_assert_eq(st.fused_regions, 0);
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_graph_destroy(g);
}

Test(fusion, interpreter_equals_jit_bitwise) {
  fresh_cache();
  ty_graph *g = chain_graph();
  ty_exec_opts jit = {.kernel_cache = cache_dir},
               interp = {.kernel_cache = cache_dir, .no_jit = true};
  ty_exec *a = run_chain(g, &jit, 300),
          *b = run_chain(g, &interp, 300); /* rows longer than a block */
  assert_outputs_equal(g, a, b);
  ty_exec_stats st;
  ty_exec_get_stats(b, &st);
  cr_assert_gt(st.interp_runs, 0);
  cr_assert_eq(st.jit_compiles + st.jit_disk_loads, 0);
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_graph_destroy(g);
}

static float f_nan_every_third(int64_t i) {
  return i % 3 == 0 ? NAN : f_x(i);
}

/* A NaN stays NaN through the clamping activations, in the plain kernels,
 * the JIT and the interpreter, as in PyTorch: NaN weights must not give a
 * healthy-looking loss (Relu as x > 0 ? x : 0 turned them into zeros). */
Test(fusion, clamping_activations_keep_nan) {
  fresh_cache();
  const ty_op ops[] = {TY_OP_RELU, TY_OP_CELU, TY_OP_HARD_SIGMOID, TY_OP_HARD_SWISH};
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, D};
  int x = gt_input(g, "x", 2, xd);
  for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++)
    cr_assert_eq(ty_graph_mark_output(g, gt_op(g, ops[k], gt_op(g, TY_OP_NEG, x, -1), -1)), 0);
  gt_infer(g);
  ty_exec_opts how[3] = {{.no_fusion = true, .no_memplan = true},
                         {.kernel_cache = cache_dir},
                         {.kernel_cache = cache_dir, .no_jit = true}};
  int64_t dims[2] = {4, D};
  for (int h = 0; h < 3; h++) {
    ty_tensor *in = gt_tensor(2, dims, f_nan_every_third);
    const char *name = "x";
    ty_exec *e = gt_run(g, &how[h], 1, &name, &in);
    for (size_t k = 0; k < sizeof ops / sizeof ops[0]; k++) {
      const float *y = ty_tensor_f32(ty_exec_value(e, ty_graph_output(g, k)));
      for (int64_t i = 0; i < 4 * D; i++)
        cr_assert_eq(isnan(y[i]) != 0, i % 3 == 0, "%s (way %d): element %lld is %g",
                     ty_op_name(ops[k]), h, (long long)i, y[i]);
    }
    ty_exec_destroy(e);
    ty_tensor_destroy(in);
  }
  ty_graph_destroy(g);
}

Test(fusion, batch_size_change_does_not_recompile) {
  fresh_cache();
  ty_graph *g = chain_graph();
  ty_exec_opts o = {.kernel_cache = cache_dir};
  ty_exec *e = run_chain(g, &o, 4);
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  uint64_t compiles = st.jit_compiles;
  cr_assert_geq(compiles, 1);
  int64_t dims[2] = {9, D};
  ty_tensor *x = gt_tensor(2, dims, f_x), *p = gt_tensor(2, dims, f_pos);
  char err[256] = "";
  cr_assert_eq(ty_exec_bind(e, "x", x, err, sizeof err), 0);
  cr_assert_eq(ty_exec_bind(e, "p", p, err, sizeof err), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  ty_exec_get_stats(e, &st);
  cr_assert_eq(st.jit_compiles, compiles, "batch 9 recompiled: %llu -> %llu",
               (unsigned long long)compiles, (unsigned long long)st.jit_compiles);
  cr_assert_eq(ty_exec_value(e, ty_graph_output(g, 0))->shape.dims[0], 9);
  ty_exec_destroy(e);
  ty_tensor_destroy(x);
  ty_tensor_destroy(p);
  ty_graph_destroy(g);
}

Test(fusion, disk_cache_reused_by_other_executors_and_processes) {
  fresh_cache();
  ty_graph *g = chain_graph();
  ty_exec_opts o = {.kernel_cache = cache_dir};
  ty_exec *a = run_chain(g, &o, 3);
  ty_exec_stats st;
  ty_exec_get_stats(a, &st);
  cr_assert_geq(st.jit_compiles, 1);
  ty_exec_destroy(a);
  ty_exec *b = run_chain(g, &o, 6);
  ty_exec_get_stats(b, &st);
  cr_assert_eq(st.jit_compiles, 0);
  cr_assert_geq(st.jit_disk_loads, 1);
  ty_exec_destroy(b);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) { /* another process with the same cache: exit status = compiles */
    ty_exec *c = run_chain(g, &o, 2);
    ty_exec_get_stats(c, &st);
    _exit(st.jit_compiles == 0 && st.jit_disk_loads >= 1 ? 0 : 1);
  }
  int status = 0;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the child process recompiled");
  ty_graph_destroy(g);
}

Test(fusion, no_compiler_falls_back_to_interpreter) {
  fresh_cache();
  ty_graph *g = chain_graph();
  ty_exec_opts plain = {.no_fusion = true}, o = {.kernel_cache = cache_dir};
  setenv("CC", "/nonexistent/cc", 1);
  ty_exec *b = run_chain(g, &o, 7);
  unsetenv("CC");
  ty_exec *a = run_chain(g, &plain, 7);
  assert_outputs_equal(g, a, b);
  ty_exec_stats st;
  ty_exec_get_stats(b, &st);
  cr_assert_eq(st.jit_compiles, 0);
  cr_assert_eq(st.jit_failures, 1, "one failed try, then the jit stops trying");
  cr_assert_gt(st.interp_runs, 0);
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_graph_destroy(g);
}

Test(fusion, env_no_jit_interprets) {
  fresh_cache();
  ty_graph *g = chain_graph();
  ty_exec_opts o = {.kernel_cache = cache_dir};
  setenv("TRAINYARD_NO_JIT", "1", 1);
  ty_exec *e = run_chain(g, &o, 2);
  unsetenv("TRAINYARD_NO_JIT");
  ty_exec_stats st;
  ty_exec_get_stats(e, &st);
  cr_assert_eq(st.jit_compiles + st.jit_failures + st.jit_disk_loads, 0);
  cr_assert_gt(st.interp_runs, 0);
  ty_exec_destroy(e);
  ty_graph_destroy(g);
}

static float f_c(int64_t i) {
  return 1.0f + 0.5f * (float)i;
}

/* NCHW with per-channel scale and shift, a [N,1,1,1] per-sample factor and a
 * [1,1,H,W] map: four broadcast patterns in one region. */
Test(fusion, broadcast_patterns_match_unfused) {
  fresh_cache();
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[4] = {TY_DIM_BATCH, 3, 5, 7}, cd[4] = {1, 3, 1, 1}, sd[4] = {TY_DIM_BATCH, 1, 1, 1},
          md[2] = {5, 7};
  int x = gt_input(g, "x", 4, xd), s = gt_input(g, "s", 4, sd);
  int c = gt_init(g, "c", 4, cd, f_c), m = gt_init(g, "m", 2, md, f_w);
  int y = gt_op(g, TY_OP_SIGMOID, gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_MUL, x, c), m), -1);
  y = gt_op(g, TY_OP_MUL, y, s);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  gt_infer(g);
  for (int64_t n = 1; n <= 4; n += 3) {
    int64_t xdims[4] = {n, 3, 5, 7}, sdims[4] = {n, 1, 1, 1};
    ty_tensor *ts[2] = {gt_tensor(4, xdims, f_x), gt_tensor(4, sdims, f_c)};
    const char *names[2] = {"x", "s"};
    ty_exec_opts plain = {.no_fusion = true}, jit = {.kernel_cache = cache_dir},
                 interp = {.no_jit = true};
    ty_exec *a = gt_run(g, &plain, 2, names, ts), *b = gt_run(g, &jit, 2, names, ts),
            *i = gt_run(g, &interp, 2, names, ts);
    gt_assert_same(ty_exec_value(a, y), ty_exec_value(b, y));
    gt_assert_same(ty_exec_value(a, y), ty_exec_value(i, y));
    ty_exec_stats st;
    ty_exec_get_stats(b, &st);
    cr_assert_eq(st.fused_regions, 1);
    ty_exec_destroy(a);
    ty_exec_destroy(b);
    ty_exec_destroy(i);
    ty_tensor_destroy(ts[0]);
    ty_tensor_destroy(ts[1]);
  }
  ty_graph_destroy(g);
}

/* a = x*w feeds a MatMul and a Relu whose result meets the MatMul's: the
 * Relu may not join a's region (the MatMul sits between), the schedule stays
 * topological and results match. Diamond relu/sigmoid -> mul fuses whole. */
Test(fusion, regions_respect_external_readers) {
  fresh_cache();
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int64_t xd[2] = {TY_DIM_BATCH, D}, wd[1] = {D}, md[2] = {D, D};
  int x = gt_input(g, "x", 2, xd);
  int w = gt_init(g, "w", 1, wd, f_w), W = gt_init(g, "W", 2, md, f_b);
  int a = gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_MUL, x, w), w);
  int mm = gt_op(g, TY_OP_MATMUL, a, W);
  int r = gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_RELU, a, -1), mm);
  int d = gt_op(g, TY_OP_MUL, gt_op(g, TY_OP_RELU, r, -1), gt_op(g, TY_OP_SIGMOID, r, -1));
  cr_assert_eq(ty_graph_mark_output(g, d), 0);
  gt_infer(g);
  int64_t dims[2] = {6, D};
  ty_tensor *t = gt_tensor(2, dims, f_x);
  const char *names[1] = {"x"};
  ty_exec_opts plain = {.no_fusion = true, .no_memplan = true}, fused = {.kernel_cache = cache_dir};
  ty_exec *ea = gt_run(g, &plain, 1, names, &t), *eb = gt_run(g, &fused, 1, names, &t);
  gt_assert_same(ty_exec_value(ea, d), ty_exec_value(eb, d));
  ty_exec_stats st;
  ty_exec_get_stats(eb, &st);
  cr_assert_eq(st.fused_regions, 2, "{mul, add} and {relu, add, relu, sigmoid, mul}");
  cr_assert_eq(st.fused_nodes, 7);
  cr_assert_eq(st.n_steps, 3);
  ty_exec_destroy(ea);
  ty_exec_destroy(eb);
  ty_tensor_destroy(t);
  ty_graph_destroy(g);
}

Test(fusion, mismatched_batch_inputs_rejected_with_node_name) {
  ty_graph *g = chain_graph();
  int64_t d1[2] = {3, D}, d2[2] = {4, D};
  ty_tensor *x = gt_tensor(2, d1, f_x), *p = gt_tensor(2, d2, f_pos);
  ty_exec *e;
  char err[256] = "";
  ty_exec_opts o = {.no_jit = true};
  cr_assert_eq(ty_exec_create(g, &o, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x", x, err, sizeof err), 0);
  cr_assert_eq(ty_exec_bind(e, "p", p, err, sizeof err), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "fused region") && strstr(err, "broadcast"), "%s", err);
  ty_exec_destroy(e);
  ty_tensor_destroy(x);
  ty_tensor_destroy(p);
  ty_graph_destroy(g);
}

/* ---- fused optimizer updates ------------------------------------------ */

static void optim_compare(const ty_optim_opts *oo, bool no_jit) {
  enum { N = 1001 };
  static float p_ref[N], p_jit[N], g[N], buf[N], m[N], v[N];
  for (int i = 0; i < N; i++) {
    p_ref[i] = p_jit[i] = f_x(i);
    buf[i] = m[i] = v[i] = 0.0f;
  }
  ty_optim *o;
  size_t numel = N;
  cr_assert_eq(ty_optim_create(oo, 1, &numel, &o, NULL, 0), 0);
  ty_jit *j;
  ty_jit_opts jo = {.no_jit = no_jit, .cache_dir = cache_dir};
  cr_assert_eq(ty_jit_create(&jo, &j), 0);
  for (int step = 0; step < 4; step++) {
    float lr = 0.1f / (float)(step + 1);
    for (int i = 0; i < N; i++)
      g[i] = f_pos(i + step) - 1.0f;
    cr_assert_eq(ty_optim_step_param(o, 0, lr, p_ref, g), 0);
    if (oo->kind == TY_OPTIM_SGD) {
      ty_fused_sgd h = {lr, oo->weight_decay, oo->momentum, oo->dampening, oo->nesterov, step == 0};
      cr_assert_eq(ty_jit_sgd_step(j, &h, N, p_jit, g, buf), 0);
    } else {
      ty_fused_adam h = {lr,      oo->weight_decay,           oo->beta1,         oo->beta2,
                         oo->eps, oo->kind == TY_OPTIM_ADAMW, (uint64_t)step + 1};
      cr_assert_eq(ty_jit_adam_step(j, &h, N, p_jit, g, m, v), 0);
    }
    cr_assert(memcmp(p_ref, p_jit, sizeof p_ref) == 0, "step %d differs from ops/optim", step);
  }
  ty_jit_stats st;
  ty_jit_get_stats(j, &st);
  cr_assert(no_jit ? st.interp_runs == 4 : st.compiles + st.disk_loads >= 1);
  ty_jit_destroy(j);
  ty_optim_destroy(o);
}

Test(fusion, optimizer_updates_equal_ops_optim) {
  fresh_cache();
  ty_optim_opts o;
  for (int no_jit = 0; no_jit < 2; no_jit++) {
    ty_optim_opts_default(TY_OPTIM_SGD, &o);
    o.momentum = 0.9f;
    o.weight_decay = 1e-3f;
    optim_compare(&o, no_jit);
    o.nesterov = true;
    optim_compare(&o, no_jit);
    ty_optim_opts_default(TY_OPTIM_ADAM, &o);
    o.weight_decay = 1e-2f;
    optim_compare(&o, no_jit);
    ty_optim_opts_default(TY_OPTIM_ADAMW, &o);
    optim_compare(&o, no_jit);
  }
}

Test(fusion, optimizer_rejects_bad_arguments) {
  ty_jit *j;
  cr_assert_eq(ty_jit_create(&(ty_jit_opts){.no_jit = true}, &j), 0);
  float p[2] = {0}, g[2] = {0};
  ty_fused_sgd s = {.lr = 0.1f, .momentum = 0.9f};
  cr_assert_eq(ty_jit_sgd_step(j, &s, 2, p, g, NULL), TY_EINVAL, "momentum without a buffer");
  cr_assert_eq(ty_jit_sgd_step(j, NULL, 2, p, g, NULL), TY_EINVAL);
  ty_fused_adam a = {.lr = 0.1f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .step = 0};
  cr_assert_eq(ty_jit_adam_step(j, &a, 2, p, g, p, g), TY_EINVAL, "step 0");
  a.step = 1;
  cr_assert_eq(ty_jit_adam_step(j, &a, 2, p, g, NULL, g), TY_EINVAL, "no first moment");
  ty_jit_destroy(j);
}
