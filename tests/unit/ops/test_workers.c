/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/workers.c through the executor: a pool's size limits, and the
 * promise that results do not depend on the thread count. A small CNN and
 * an attention block, forward and backward (training mode: BatchNorm on
 * batch statistics), run on the caller alone and on pools of 2 and 3
 * threads, must give the same loss and gradients bit for bit, with fusion
 * and memory planning on (the parallel fused loops) and off (the plain
 * kernels). Sizes are odd and large enough to pass every kernel's grain,
 * so the split paths really run. A third model chains the copies and the
 * float binary ops that split by ranges of their output (Transpose, Concat,
 * Split, Flatten, Add, Sub, Mul with broadcast biases).
 */
#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "tests/unit/ops/fusion/gtest.h"

#include <math.h>
#include <stdio.h>

static float w_small(int64_t i) {
  return sinf((float)i * 0.37f) * 0.3f;
}
static float w_one(int64_t i) {
  return 1.0f + 0.01f * (float)(i % 5);
}
static float w_zero(int64_t i) {
  return 0.02f * (float)(i % 3);
}
static float in_x(int64_t i) {
  return sinf((float)i * 0.013f) * 1.7f + cosf((float)i * 0.29f);
}

static size_t last_node(const ty_graph *g) {
  return ty_graph_n_nodes(g) - 1;
}

static int conv(ty_graph *g, int x, int w, int b, int64_t k, int64_t stride) {
  int in[3] = {x, w, b}, out;
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &out), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONV, NULL, in, b < 0 ? 2 : 3, &out, 1, NULL), 0);
  int64_t ks[2] = {k, k}, st[2] = {stride, stride}, pads[4] = {k / 2, k / 2, k / 2, k / 2};
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "kernel_shape", ks, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "strides", st, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "pads", pads, 4), 0);
  return out;
}

static int batch_norm(ty_graph *g, int x, int64_t c, const char *name) {
  char n[4][32];
  float (*fill[4])(int64_t) = {w_one, w_zero, w_zero, w_one};
  int in[5] = {x}, out;
  for (int k = 0; k < 4; k++) {
    snprintf(n[k], sizeof n[k], "%s.%d", name, k);
    in[k + 1] = gt_init(g, n[k], 1, (int64_t[]){c}, fill[k]);
  }
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &out), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_BATCH_NORM, NULL, in, 5, &out, 1, NULL), 0);
  return out;
}

/* x [N,3,13,13] -> conv 3x3 -> relu -> maxpool 2 -> BN -> conv 3x3 stride 2 -> avgpool 3 pad 1 ->
 * flatten -> matmul -> softmax. */
static int cnn(ty_graph *g, int *params, int *n_params) {
  int x = gt_input(g, "x", 4, (int64_t[]){TY_DIM_BATCH, 3, 13, 13});
  int w1 = gt_init(g, "w1", 4, (int64_t[]){8, 3, 3, 3}, w_small),
      b1 = gt_init(g, "b1", 1, (int64_t[]){8}, w_zero);
  int h = gt_op(g, TY_OP_RELU, conv(g, x, w1, b1, 3, 1), -1);
  h = gt_op(g, TY_OP_MAX_POOL, h, -1);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "kernel_shape", (int64_t[]){2, 2}, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "strides", (int64_t[]){2, 2}, 2), 0);
  h = batch_norm(g, h, 8, "bn");
  int w2 = gt_init(g, "w2", 4, (int64_t[]){5, 8, 3, 3}, w_small);
  h = gt_op(g, TY_OP_AVERAGE_POOL, conv(g, h, w2, -1, 3, 2), -1);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "kernel_shape", (int64_t[]){3, 3}, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "pads", (int64_t[]){1, 1, 1, 1}, 4), 0);
  h = gt_op(g, TY_OP_FLATTEN, h, -1);
  int w3 = gt_init(g, "w3", 2, (int64_t[]){45, 7}, w_small);
  int logits = gt_op(g, TY_OP_MATMUL, h, w3);
  int rows[] = {w1, b1, w2, w3};
  memcpy(params, rows, sizeof rows);
  *n_params = 4;
  return gt_op(g, TY_OP_SOFTMAX, logits, -1);
}

/* x [N,17,24] -> LayerNorm -> q, k (MatMul by [24,24]) -> q k^T [N,17,17] -> softmax -> @ v. */
static int attention(ty_graph *g, int *params, int *n_params) {
  int x = gt_input(g, "x", 3, (int64_t[]){TY_DIM_BATCH, 17, 24});
  int s = gt_init(g, "ln.s", 1, (int64_t[]){24}, w_one),
      b = gt_init(g, "ln.b", 1, (int64_t[]){24}, w_zero);
  int in[3] = {x, s, b}, h;
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &h), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_LAYER_NORM, NULL, in, 3, &h, 1, NULL), 0);
  int wq = gt_init(g, "wq", 2, (int64_t[]){24, 24}, w_small),
      wk = gt_init(g, "wk", 2, (int64_t[]){24, 24}, w_one);
  int q = gt_op(g, TY_OP_MATMUL, h, wq), k = gt_op(g, TY_OP_MATMUL, h, wk);
  int kt = gt_op(g, TY_OP_TRANSPOSE, k, -1);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "perm", (int64_t[]){0, 2, 1}, 3), 0);
  int att = gt_op(g, TY_OP_SOFTMAX, gt_op(g, TY_OP_MATMUL, q, kt), -1);
  int rows[] = {s, b, wq, wk};
  memcpy(params, rows, sizeof rows);
  *n_params = 4;
  return gt_op(g, TY_OP_MATMUL, att, q);
}

/* x [N,7,24] -> Transpose [N,24,7] -> Concat with itself on the last axis
 * [N,24,14] -> Split on axis 1 into two [N,12,14] -> s0 + b1 [14], s1 -
 * that, times s0 -> Flatten [N,168] -> + b2 [168] -> MatMul by [168,5].
 * b2's gradient sums 168 columns: three chunks of at least 64. */
static int copies(ty_graph *g, int *params, int *n_params) {
  int x = gt_input(g, "x", 3, (int64_t[]){TY_DIM_BATCH, 7, 24});
  int t = gt_op(g, TY_OP_TRANSPOSE, x, -1);
  cr_assert_eq(ty_graph_node_set_ints(g, last_node(g), "perm", (int64_t[]){0, 2, 1}, 3), 0);
  int c = gt_op(g, TY_OP_CONCAT, t, t);
  cr_assert_eq(ty_graph_node_set_int(g, last_node(g), "axis", 2), 0);
  int parts[2];
  for (int i = 0; i < 2; i++)
    cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &parts[i]), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SPLIT, NULL, &c, 1, parts, 2, NULL), 0);
  cr_assert_eq(ty_graph_node_set_int(g, last_node(g), "axis", 1), 0);
  int b1 = gt_init(g, "b1", 1, (int64_t[]){14}, w_small),
      b2 = gt_init(g, "b2", 1, (int64_t[]){168}, w_small),
      w = gt_init(g, "w", 2, (int64_t[]){168, 5}, w_small);
  int a = gt_op(g, TY_OP_ADD, parts[0], b1);
  int m = gt_op(g, TY_OP_MUL, gt_op(g, TY_OP_SUB, parts[1], a), parts[0]);
  int f = gt_op(g, TY_OP_ADD, gt_op(g, TY_OP_FLATTEN, m, -1), b2);
  int rows[] = {b1, b2, w};
  memcpy(params, rows, sizeof rows);
  *n_params = 3;
  return gt_op(g, TY_OP_MATMUL, f, w);
}

/* Builds model, a scalar loss (mean of squares) and its gradients. */
static ty_graph *with_grads(int (*model)(ty_graph *, int *, int *), int *outs, int *n_outs) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int params[8], np, grads[8];
  int y = model(g, params, &np);
  int loss = gt_op(g, TY_OP_REDUCE_MEAN, gt_op(g, TY_OP_MUL, y, y), -1);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  gt_infer(g);
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, params, (size_t)np, grads, err, sizeof err), 0, "%s", err);
  outs[0] = loss;
  for (int i = 0; i < np; i++) {
    cr_assert_eq(ty_graph_mark_output(g, grads[i]), 0);
    outs[i + 1] = grads[i];
  }
  *n_outs = np + 1;
  gt_infer(g);
  return g;
}

static void same_for_every_pool(int (*model)(ty_graph *, int *, int *), int rank,
                                const int64_t *dims) {
  int outs[9], n;
  ty_graph *g = with_grads(model, outs, &n);
  ty_tensor *x = gt_tensor(rank, dims, in_x);
  const char *names[1] = {"x"};
  for (int plain = 0; plain < 2; plain++) {
    ty_exec_opts o = {.training = true, .no_fusion = plain, .no_memplan = plain};
    ty_exec *ref = gt_run(g, &o, 1, names, &x);
    for (int threads = 2; threads <= 3; threads++) {
      ty_workers *w;
      cr_assert_eq(ty_workers_create(threads, &w), 0);
      cr_assert_eq(ty_workers_count(w), threads);
      o.workers = w;
      ty_exec *e = gt_run(g, &o, 1, names, &x);
      for (int i = 0; i < n; i++)
        gt_assert_same(ty_exec_value(ref, outs[i]), ty_exec_value(e, outs[i]));
      char err[256] = "";
      cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s",
                   err); /* a second run on the same pool */
      for (int i = 0; i < n; i++)
        gt_assert_same(ty_exec_value(ref, outs[i]), ty_exec_value(e, outs[i]));
      ty_exec_destroy(e);
      ty_workers_destroy(w);
    }
    ty_exec_destroy(ref);
  }
  ty_tensor_destroy(x);
  ty_graph_destroy(g);
}

Test(workers, cnn_gradients_do_not_depend_on_threads) {
  same_for_every_pool(cnn, 4, (int64_t[]){21, 3, 13, 13});
}

Test(workers, attention_gradients_do_not_depend_on_threads) {
  same_for_every_pool(attention, 3, (int64_t[]){45, 17, 24});
}

Test(workers, copy_and_binary_gradients_do_not_depend_on_threads) {
  same_for_every_pool(copies, 3, (int64_t[]){389, 7, 24});
}

Test(workers, pool_sizes) {
  ty_workers *w = NULL;
  cr_assert_eq(ty_workers_create(0, &w), TY_EINVAL);
  cr_assert_eq(ty_workers_create(1025, &w), TY_EINVAL);
  cr_assert_null(w);
  cr_assert_eq(ty_workers_create(1, &w), 0);
  cr_assert_eq(ty_workers_count(w), 1);
  ty_workers_destroy(w);
  cr_assert_eq(ty_workers_count(NULL), 1);
  ty_workers_destroy(NULL);
}
