/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/kernels/conv_dnnl.c against the im2col path, its reference: Conv
 * graphs of several geometries (strides, pads, asymmetric pads,
 * dilations, 1x1, one input channel, 1-D, 3-D, with and without a bias, batches
 * that leave a partial block of images) give the same output and the same
 * gradients of every input, to float tolerance, with oneDNN on and off,
 * and oneDNN really ran. Built only where meson found oneDNN.
 */
#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "ops/conv_dnnl.h"
#include "tests/unit/ops/fusion/gtest.h"

#include <math.h>
#include <string.h>

typedef struct geom {
  int64_t n, c, h, w, m, kh, kw, stride, dil;
  int64_t pads[4]; /* begin h, begin w, end h, end w */
  bool bias, one_d;
  int64_t d, kd, pd; /* a 3-D conv when d > 0: depth, kernel depth, depth pads (both ends) */
} geom;

static float f_x(int64_t i) {
  return sinf((float)i * 0.013f) * 1.7f + cosf((float)i * 0.29f);
}
static float f_w(int64_t i) {
  return sinf((float)i * 0.37f) * 0.3f;
}
static float f_b(int64_t i) {
  return 0.1f * (float)(i % 7) - 0.3f;
}
static float f_r(int64_t i) {
  return cosf((float)i * 0.071f);
}

/* loss = mean(conv(x) * r) with x, w (and b) initializers; outs: loss, y
 * and the gradients of x, w (and b). */
static ty_graph *conv_graph(const geom *t, int *outs, int *n_outs) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  int nsp = t->one_d ? 1 : t->d > 0 ? 3 : 2, rank = nsp + 2;
  int64_t xd[5] = {t->n, t->c, t->one_d ? t->w : t->h, t->w};
  int64_t wd[5] = {t->m, t->c, t->one_d ? t->kw : t->kh, t->kw};
  int64_t ks[3] = {t->kh, t->kw}, st[3] = {t->stride, t->stride, t->stride},
          dl[3] = {t->dil, t->dil, t->dil};
  int64_t pads[6] = {t->pads[0], t->pads[1], t->pads[2], t->pads[3]};
  if (nsp == 1) {
    ks[0] = t->kw;
    pads[0] = t->pads[1], pads[1] = t->pads[3];
  } else if (nsp == 3) { /* depth first */
    xd[2] = t->d, xd[3] = t->h, xd[4] = t->w;
    wd[2] = t->kd, wd[3] = t->kh, wd[4] = t->kw;
    ks[0] = t->kd, ks[1] = t->kh, ks[2] = t->kw;
    int64_t p6[6] = {t->pd, t->pads[0], t->pads[1], t->pd, t->pads[2], t->pads[3]};
    memcpy(pads, p6, sizeof p6);
  }
  int in[3] = {gt_init(g, "x", rank, xd, f_x), gt_init(g, "w", rank, wd, f_w),
               t->bias ? gt_init(g, "b", 1, (int64_t[]){t->m}, f_b) : -1};
  int y;
  cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONV, NULL, in, t->bias ? 3 : 2, &y, 1, NULL), 0);
  size_t node = ty_graph_n_nodes(g) - 1;
  cr_assert_eq(ty_graph_node_set_ints(g, node, "kernel_shape", ks, nsp), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, node, "strides", st, nsp), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, node, "dilations", dl, nsp), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, node, "pads", pads, 2 * nsp), 0);
  gt_infer(g);
  const ty_shape *ys = &ty_graph_value_at(g, y)->shape;
  int r = gt_init(g, "r", ys->rank, ys->dims, f_r);
  int loss = gt_op(g, TY_OP_REDUCE_MEAN, gt_op(g, TY_OP_MUL, y, r), -1);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  gt_infer(g);
  int np = t->bias ? 3 : 2, grads[3];
  char err[256] = "";
  cr_assert_eq(ty_autodiff(g, loss, in, (size_t)np, grads, err, sizeof err), 0, "%s", err);
  outs[0] = loss;
  outs[1] = y;
  for (int i = 0; i < np; i++) {
    cr_assert_eq(ty_graph_mark_output(g, grads[i]), 0);
    outs[i + 2] = grads[i];
  }
  *n_outs = np + 2;
  gt_infer(g);
  return g;
}

/* |a - b| within 1e-4 of the larger of 1 and b's largest magnitude. */
static void assert_close(const ty_tensor *a, const ty_tensor *b, int which) {
  cr_assert(a && b);
  cr_assert(ty_shape_equal(&a->shape, &b->shape));
  size_t n = a->nbytes / 4;
  float big = 1.0f;
  for (size_t i = 0; i < n; i++)
    big = fmaxf(big, fabsf(ty_tensor_f32(b)[i]));
  for (size_t i = 0; i < n; i++) {
    float x = ty_tensor_f32(a)[i], y = ty_tensor_f32(b)[i];
    cr_assert(fabsf(x - y) <= 1e-4f * big, "output %d [%zu]: oneDNN %g, im2col %g", which, i,
              (double)x, (double)y);
  }
}

static void same_as_im2col(const geom *t) {
  int outs[5], n;
  ty_graph *g = conv_graph(t, outs, &n);
  ty_workers *w;
  cr_assert_eq(ty_workers_create(2, &w), 0);
  ty_exec_opts o = {.training = true, .workers = w};
  ty__conv_dnnl_enable(false);
  int64_t calls = ty__conv_dnnl_calls();
  ty_exec *ref = gt_run(g, &o, 0, NULL, NULL);
  cr_assert_eq(ty__conv_dnnl_calls(), calls, "oneDNN ran while switched off");
  ty__conv_dnnl_enable(true);
  ty_exec *e = gt_run(g, &o, 0, NULL, NULL);
  /* forward, dX and dW (the bias gradient is a plain sum either way) */
  cr_assert_eq(ty__conv_dnnl_calls(), calls + 3, "oneDNN did not run every conv");
  for (int i = 0; i < n; i++)
    assert_close(ty_exec_value(e, outs[i]), ty_exec_value(ref, outs[i]), i);
  ty_exec_destroy(e);
  ty_exec_destroy(ref);
  ty_workers_destroy(w);
  ty_graph_destroy(g);
}

Test(conv_dnnl, same_padding_with_bias_and_a_partial_block) {
  same_as_im2col(&(geom){21, 5, 9, 9, 7, 3, 3, 1, 1, {1, 1, 1, 1}, true, false, 0, 0, 0});
}

Test(conv_dnnl, stride_two_without_bias) {
  same_as_im2col(&(geom){3, 4, 10, 11, 6, 3, 3, 2, 1, {1, 1, 1, 1}, false, false, 0, 0, 0});
}

Test(conv_dnnl, one_by_one_stride_two) {
  same_as_im2col(&(geom){17, 8, 14, 14, 16, 1, 1, 2, 1, {0, 0, 0, 0}, false, false, 0, 0, 0});
}

Test(conv_dnnl, dilated_with_asymmetric_pads) {
  same_as_im2col(&(geom){5, 3, 12, 10, 4, 3, 2, 1, 2, {1, 0, 2, 1}, true, false, 0, 0, 0});
}

Test(conv_dnnl, one_input_channel) {
  same_as_im2col(&(geom){33, 1, 28, 28, 32, 3, 3, 1, 1, {1, 1, 1, 1}, false, false, 0, 0, 0});
}

Test(conv_dnnl, one_d) {
  same_as_im2col(&(geom){6, 3, 1, 20, 5, 1, 5, 1, 1, {0, 2, 0, 2}, true, true, 0, 0, 0});
}

Test(conv_dnnl, three_d_same_padding_with_bias) {
  same_as_im2col(&(geom){18, 3, 6, 7, 4, 3, 3, 1, 1, {1, 1, 1, 1}, true, false, 5, 3, 1});
}

Test(conv_dnnl, three_d_strided_dilated_without_bias) {
  same_as_im2col(&(geom){3, 2, 9, 8, 5, 2, 3, 2, 2, {1, 0, 0, 1}, false, false, 7, 2, 1});
}
