/* SPDX-License-Identifier: Apache-2.0 */
/* SoftmaxCrossEntropyLoss with float labels (class probabilities, as
 * PyTorch exports them), lowered at import (ops/import_soft.c): the loss
 * equals PyTorch's, and labels whose dtype import cannot tell are refused
 * by name. */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* x, y: float inputs of shape s; w: optional [C] initializer; y is fed to
 * the loss through a Hardmax when hide_dtype (an op import does not type). */
static ty_graph *build(ty_shape s, const float *w, const char *reduction, bool hide_dtype) {
  ty_graph *g;
  int x, y, wid = TY_NO_VALUE, loss, lp, idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 17);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &s, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_F32, &s, &y), 0);
  cr_assert_eq(ty_graph_mark_input(g, y), 0);
  if (hide_dtype) {
    int h;
    cr_assert_eq(ty_graph_add_value(g, "y_hard", TY_DTYPE_INVALID, NULL, &h), 0);
    cr_assert_eq(ty_graph_add_node(g, TY_OP_HARDMAX, "hard", &y, 1, &h, 1, &idx), 0);
    cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 1), 0);
    y = h;
  }
  if (w) {
    cr_assert_eq(ty_graph_add_value(g, "w", TY_DTYPE_F32, NULL, &wid), 0);
    cr_assert_eq(ty_graph_set_initializer(g, wid, tensor_f32(SHAPE(s.dims[1]), w)), 0);
  }
  cr_assert_eq(ty_graph_add_value(g, "loss", TY_DTYPE_INVALID, NULL, &loss), 0);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  cr_assert_eq(ty_graph_add_value(g, "log_prob", TY_DTYPE_INVALID, NULL, &lp), 0);
  cr_assert_eq(ty_graph_mark_output(g, lp), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SOFTMAX_CE_LOSS, "ce", (int[]){x, y, wid}, w ? 3 : 2,
                                 (int[]){loss, lp}, 2, &idx),
               0);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)idx, "reduction", reduction), 0);
  /* A reader of the loss, which the lowered nodes must come before. */
  int twice;
  cr_assert_eq(ty_graph_add_value(g, "twice", TY_DTYPE_INVALID, NULL, &twice), 0);
  cr_assert_eq(ty_graph_mark_output(g, twice), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_ADD, "twice", (int[]){loss, loss}, 2, &twice, 1, &idx),
               0);
  return g;
}

/* g written as ONNX and imported again: what a model file goes through. */
static int reimport(ty_graph *g, char *err, size_t err_len, ty_graph **out) {
  uint8_t *data;
  size_t len;
  int rc = ty_graph_to_onnx(g, NULL, 0, err, err_len, &data, &len);
  cr_assert_eq(rc, 0, "%s", err);
  ty_graph_destroy(g);
  rc = ty_graph_load_bytes(data, len, err, err_len, out);
  free(data);
  return rc;
}

/* PyTorch's F.cross_entropy(x, y, weight=w, reduction=...) for probability
 * targets y, x and y [n, c, inner] in C order; per is [n, inner]. */
static float reference(const float *x, const float *y, const float *w, int n, int c, int inner,
                       float *per) {
  float total = 0;
  for (int i = 0; i < n; i++)
    for (int k = 0; k < inner; k++) {
      double mx = -INFINITY, se = 0, l = 0;
      for (int j = 0; j < c; j++)
        mx = fmax(mx, x[(i * c + j) * inner + k]);
      for (int j = 0; j < c; j++)
        se += exp(x[(i * c + j) * inner + k] - mx);
      for (int j = 0; j < c; j++) {
        int at = (i * c + j) * inner + k;
        l -= (w ? w[j] : 1.0) * y[at] * (x[at] - mx - log(se));
      }
      per[i * inner + k] = (float)l;
      total += (float)l;
    }
  return total;
}

static void check(ty_shape s, const float *w, const char *reduction) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g;
  cr_assert_eq(reimport(build(s, w, reduction, false), err, sizeof err, &g), 0, "%s", err);
  for (size_t k = 0; k < ty_graph_n_nodes(g); k++) {
    const ty_graph_node *nd = ty_graph_node_at(g, k);
    cr_assert_neq(nd->op, TY_OP_SOFTMAX_CE_LOSS, "the loss was not lowered");
    for (int i = 0; i < nd->n_inputs; i++)
      if (nd->inputs[i] != TY_NO_VALUE)
        cr_assert_lt(ty_graph_value_at(g, nd->inputs[i])->producer, (int)k, "node %s: out of order",
                     nd->name);
  }
  int n = (int)s.dims[0], c = (int)s.dims[1], inner = s.rank > 2 ? (int)s.dims[2] : 1;
  float xv[24], yv[24], per[8];
  for (int i = 0; i < n * c * inner; i++) {
    xv[i] = (float)sin(1.0 + i) * 2.0f;
    yv[i] = 0.1f + (float)((i * 7) % 5) / 5.0f;
  }
  float total = reference(xv, yv, w, n, c, inner, per);
  ty_tensor *xt = tensor_f32(s, xv), *yt = tensor_f32(s, yv);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(g, NULL, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x", xt, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_bind(e, "y", yt, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  const ty_tensor *loss = ty_exec_output(e, "loss");
  if (strcmp(reduction, "none") == 0) {
    cr_assert_eq(ty_shape_numel(&loss->shape), (int64_t)n * inner);
    for (int i = 0; i < n * inner; i++)
      cr_assert_float_eq(ty_tensor_f32(loss)[i], per[i], 1e-5, "item %d", i);
  } else {
    float want = strcmp(reduction, "sum") == 0 ? total : total / (float)(n * inner);
    cr_assert_eq(loss->shape.rank, 0);
    cr_assert_float_eq(ty_tensor_f32(loss)[0], want, 1e-5);
  }
  /* The node's second output, log_softmax(x) over the classes, stays. */
  const float *lp = ty_tensor_f32(ty_exec_output(e, "log_prob"));
  double se = 0;
  for (int j = 0; j < c; j++)
    se += exp(xv[j * inner]);
  cr_assert_float_eq(lp[0], xv[0] - log(se), 1e-5);
  ty_exec_destroy(e);
  ty_tensor_destroy(xt);
  ty_tensor_destroy(yt);
  ty_graph_destroy(g);
}

Test(import_soft, probability_labels_mean_as_pytorch) {
  check(SHAPE(4, 3), NULL, "mean");
}

Test(import_soft, probability_labels_weighted_sum_per_pixel) {
  check(SHAPE(2, 3, 4), (float[]){0.5f, 1.0f, 2.0f}, "sum");
}

Test(import_soft, probability_labels_none_keeps_the_items) {
  check(SHAPE(2, 4, 3), (float[]){1.5f, 1.0f, 0.25f, 2.0f}, "none");
}

Test(import_soft, untyped_float_labels_are_refused_by_name) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g;
  cr_assert_eq(reimport(build(SHAPE(2, 3), NULL, "mean", true), err, sizeof err, &g),
               TY_EUNSUPPORTED);
  cr_assert(strstr(err, "node \"ce\" (SoftmaxCrossEntropyLoss): labels (input 1) are FLOAT class "
                        "probabilities"),
            "%s", err);
}

Test(import_soft, bad_reduction_is_named) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g;
  cr_assert_eq(reimport(build(SHAPE(2, 3), NULL, "avg", false), err, sizeof err, &g), TY_EINVAL);
  cr_assert(strstr(err, "attribute reduction=avg is not valid"), "%s", err);
}
