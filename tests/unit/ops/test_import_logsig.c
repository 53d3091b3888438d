/* SPDX-License-Identifier: Apache-2.0 */
/* Log of a sigmoid made stable at import (ops/import_logsig.c): PyTorch
 * 1.13's export of F.binary_cross_entropy_with_logits, -(y Log(Sigmoid(z))
 * + (1 - y) Log(Sub(1, Sigmoid(z)))), and of F.logsigmoid, Log(Sigmoid(z)),
 * are rewritten with Softplus (the graph before and after), and at logits
 * of +-100, where float32's Sigmoid is 0 or 1, the loss and its gradient
 * are the finite values computed by hand, not inf or NaN. */
#include "ops/autodiff/autodiff.h"
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* A value "name" computed by op from in[0..n) in g. */
static int op(ty_graph *g, ty_op o, const char *name, const int *in, int n) {
  int v, idx;
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_INVALID, NULL, &v), 0);
  cr_assert_eq(ty_graph_add_node(g, o, name, in, n, &v, 1, &idx), 0);
  return v;
}

/* A Constant node "name" of float ones of shape s. */
static int ones(ty_graph *g, const char *name, ty_shape s) {
  int v, idx;
  float one[8] = {1, 1, 1, 1, 1, 1, 1, 1};
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_INVALID, NULL, &v), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONSTANT, name, NULL, 0, &v, 1, &idx), 0);
  cr_assert_eq(ty_graph_node_set_tensor(g, (size_t)idx, "value", tensor_f32(s, one)), 0);
  return v;
}

/* z = x * w (x [2, 3] input, w [3] initializer) and, as PyTorch 1.13
 * exports it, loss = mean(-(y Log(Sigmoid(z)) + (1 - y) Log(1 - Sigmoid(z))))
 * with the ones [1] Constants it writes; prob: Sigmoid(z) is also the
 * output "prob" (a prediction read beside the loss). */
static ty_graph *bce(const float w[3], bool prob) {
  ty_graph *g;
  int x, y, wv;
  ty_shape s = SHAPE(2, 3);
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 17);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &s, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_F32, &s, &y), 0);
  cr_assert_eq(ty_graph_mark_input(g, y), 0);
  cr_assert_eq(ty_graph_add_value(g, "w", TY_DTYPE_F32, NULL, &wv), 0);
  cr_assert_eq(ty_graph_set_initializer(g, wv, tensor_f32(SHAPE(3), w)), 0);
  int z = op(g, TY_OP_MUL, "z", (int[]){x, wv}, 2);
  int sg = op(g, TY_OP_SIGMOID, "sigmoid", &z, 1);
  int l1 = op(g, TY_OP_LOG, "log", &sg, 1);
  int c0 = ones(g, "one", SHAPE(1));
  int oms = op(g, TY_OP_SUB, "sub", (int[]){c0, sg}, 2);
  int c1 = ones(g, "one_1", SHAPE(1));
  int omy = op(g, TY_OP_SUB, "sub_1", (int[]){c1, y}, 2);
  int l2 = op(g, TY_OP_LOG, "log_1", &oms, 1);
  int t1 = op(g, TY_OP_MUL, "mul_1", (int[]){y, l1}, 2);
  int t2 = op(g, TY_OP_MUL, "mul_2", (int[]){omy, l2}, 2);
  int sum = op(g, TY_OP_ADD, "add", (int[]){t1, t2}, 2);
  int neg = op(g, TY_OP_NEG, "neg", &sum, 1);
  int loss = op(g, TY_OP_REDUCE_MEAN, "loss", &neg, 1);
  cr_assert_eq(ty_graph_node_set_int(g, ty_graph_n_nodes(g) - 1, "keepdims", 0), 0);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  if (prob) cr_assert_eq(ty_graph_mark_output(g, sg), 0);
  return g;
}

/* g written as ONNX and imported again: what a model file goes through. */
static ty_graph *reimport(ty_graph *g) {
  char err[TY_ERR_LEN] = "";
  uint8_t *data;
  size_t len;
  cr_assert_eq(ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &data, &len), 0, "%s", err);
  ty_graph_destroy(g);
  ty_graph *out = NULL;
  cr_assert_eq(ty_graph_load_bytes(data, len, err, sizeof err, &out), 0, "%s", err);
  free(data);
  return out;
}

static int count(const ty_graph *g, ty_op o) {
  int n = 0;
  for (size_t k = 0; k < ty_graph_n_nodes(g); k++)
    n += ty_graph_node_at(g, k)->op == o;
  return n;
}

/* The node producing value `name` of g. */
static const ty_graph_node *producer(const ty_graph *g, const char *name) {
  int v = ty_graph_find_value(g, name);
  cr_assert_neq(v, TY_NO_VALUE, "no value %s", name);
  int p = ty_graph_value_at(g, v)->producer;
  cr_assert_geq(p, 0, "%s has no producer", name);
  return ty_graph_node_at(g, (size_t)p);
}

/* The input i of node n is made by op o; its value. */
static int input_by(const ty_graph *g, const ty_graph_node *n, int i, ty_op o) {
  const ty_graph_value *v = ty_graph_value_at(g, n->inputs[i]);
  cr_assert_geq(v->producer, 0, "%s reads %s, which no node makes", n->name, v->name);
  cr_assert_eq(ty_graph_node_at(g, (size_t)v->producer)->op, o, "%s reads %s, made by op %d",
               n->name, v->name, ty_graph_node_at(g, (size_t)v->producer)->op);
  return n->inputs[i];
}

Test(import_logsig, bce_with_logits_becomes_softplus) {
  ty_graph *g = bce((float[]){1, 1, 1}, false);
  cr_assert_eq(count(g, TY_OP_LOG), 2);
  g = reimport(g);
  cr_assert_eq(count(g, TY_OP_LOG), 0);
  cr_assert_eq(count(g, TY_OP_SIGMOID), 0, "the Sigmoid nobody else reads stays");
  cr_assert_eq(count(g, TY_OP_SUB), 1, "only 1 - y stays");
  cr_assert_eq(count(g, TY_OP_SOFTPLUS), 2);
  /* log: -softplus(-z); log_1: -softplus(z); their outputs kept */
  const ty_graph_node *l1 = producer(g, "log"), *l2 = producer(g, "log_1");
  cr_assert_eq(l1->op, TY_OP_NEG);
  cr_assert_eq(l2->op, TY_OP_NEG);
  const ty_graph_node *sp1 = ty_graph_node_at(
      g, (size_t)ty_graph_value_at(g, input_by(g, l1, 0, TY_OP_SOFTPLUS))->producer);
  const ty_graph_node *nx =
      ty_graph_node_at(g, (size_t)ty_graph_value_at(g, input_by(g, sp1, 0, TY_OP_NEG))->producer);
  cr_assert_eq(nx->inputs[0], ty_graph_find_value(g, "z"));
  const ty_graph_node *sp2 = ty_graph_node_at(
      g, (size_t)ty_graph_value_at(g, input_by(g, l2, 0, TY_OP_SOFTPLUS))->producer);
  cr_assert_eq(sp2->inputs[0], ty_graph_find_value(g, "z"));
  for (size_t k = 0; k < ty_graph_n_nodes(g); k++) { /* in topological order */
    const ty_graph_node *n = ty_graph_node_at(g, k);
    for (int i = 0; i < n->n_inputs; i++)
      if (n->inputs[i] != TY_NO_VALUE)
        cr_assert_lt(ty_graph_value_at(g, n->inputs[i])->producer, (int)k, "%s: out of order",
                     n->name);
  }
  ty_graph_destroy(g);
}

Test(import_logsig, a_sigmoid_read_elsewhere_stays) {
  ty_graph *g = reimport(bce((float[]){1, 1, 1}, true));
  cr_assert_eq(count(g, TY_OP_LOG), 0);
  cr_assert_eq(count(g, TY_OP_SIGMOID), 1, "the prediction output keeps its Sigmoid");
  cr_assert_eq(producer(g, "sigmoid")->op, TY_OP_SIGMOID);
  ty_graph_destroy(g);
}

/* A Sub from something other than ones is no log(1 - sigmoid): left. */
Test(import_logsig, log_of_two_minus_sigmoid_is_left_alone) {
  ty_graph *g;
  int x, idx;
  ty_shape s = SHAPE(2, 3);
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 17);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &s, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  int sg = op(g, TY_OP_SIGMOID, "sigmoid", &x, 1);
  int two, out;
  cr_assert_eq(ty_graph_add_value(g, "two", TY_DTYPE_INVALID, NULL, &two), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONSTANT, "two", NULL, 0, &two, 1, &idx), 0);
  cr_assert_eq(
      ty_graph_node_set_tensor(g, (size_t)idx, "value", tensor_f32(SHAPE(1), (float[]){2})), 0);
  int d = op(g, TY_OP_SUB, "sub", (int[]){two, sg}, 2);
  out = op(g, TY_OP_LOG, "log", &d, 1);
  cr_assert_eq(ty_graph_mark_output(g, out), 0);
  g = reimport(g);
  cr_assert_eq(count(g, TY_OP_LOG), 1);
  cr_assert_eq(count(g, TY_OP_SIGMOID), 1);
  cr_assert_eq(count(g, TY_OP_SOFTPLUS), 0);
  ty_graph_destroy(g);
}

/* BCE with logits z = 100, -100, 3 against y = 1: per element
 * softplus(z) - y z, that is 3.7e-44 (0 in float), 100 and
 * log1p(exp(-3)); d loss / d w_j = sum_i x_ij (sigmoid(z_ij) - y_ij) / 6:
 * 0, -2/6 and 2 (sigmoid(3) - 1) / 6. Without the rewrite the loss is
 * inf or NaN. */
Test(import_logsig, bce_at_logits_of_100_is_finite_as_by_hand) {
  ty_graph *g = reimport(bce((float[]){100, -100, 3}, false));
  char err[TY_ERR_LEN] = "";
  int w = ty_graph_find_value(g, "w"), grad;
  cr_assert_eq(ty_autodiff(g, ty_graph_find_value(g, "loss"), &w, 1, &grad, err, sizeof err), 0,
               "%s", err);
  float xv[6] = {1, 1, 1, 1, 1, 1}, yv[6] = {1, 1, 1, 1, 1, 1};
  ty_tensor *xt = tensor_f32(SHAPE(2, 3), xv), *yt = tensor_f32(SHAPE(2, 3), yv);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(g, NULL, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x", xt, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_bind(e, "y", yt, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  double l3 = log1p(exp(-3.0)), s3 = 1.0 / (1.0 + exp(-3.0));
  float loss = ty_tensor_f32(ty_exec_output(e, "loss"))[0];
  cr_assert_float_eq(loss, (2 * 0.0 + 2 * 100.0 + 2 * l3) / 6, 1e-4, "loss %g", loss);
  const float *dw = ty_tensor_f32(ty_exec_value(e, grad));
  double want[3] = {0.0, -2.0 / 6, 2 * (s3 - 1) / 6};
  for (int j = 0; j < 3; j++)
    cr_assert_float_eq(dw[j], want[j], 1e-6, "d loss / d w[%d]: %g, by hand %g", j, dw[j], want[j]);
  ty_exec_destroy(e);
  ty_tensor_destroy(xt);
  ty_tensor_destroy(yt);
  ty_graph_destroy(g);
}
