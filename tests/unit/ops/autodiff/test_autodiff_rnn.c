/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/autodiff: the finite-difference check (gradcheck.h) of LSTM, GRU and
 * RNN in every direction and layout, with the optional inputs (B,
 * sequence_lens, initial_h, initial_c, P), clip, linear_before_reset and
 * other activations, the loss reading Y, Y_h and Y_c; and the shapes and
 * attributes their inference refuses, each naming the node.
 */
#include "tests/unit/ops/autodiff/gradcheck.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

enum { SEQ = 3, BATCH = 2, IN = 3, HID = 2 };

typedef struct rnn_case {
  ty_op op;
  const char *direction;
  int layout;
  bool bias, lens, h0, peephole;
  float clip;
  bool lbr;
  const char *acts[6];
  int n_acts;
} rnn_case;

static int gates(ty_op op) {
  return op == TY_OP_LSTM ? 4 : op == TY_OP_GRU ? 3 : 1;
}

/* Builds the node with every parameter a random initializer and checks the
 * gradient of a loss over all its outputs. */
static void rnn_check(const rnn_case *c) {
  gb b;
  gb_init(&b, 14);
  int nd = strcmp(c->direction, "bidirectional") == 0 ? 2 : 1, g = gates(c->op);
  int64_t xd[3] = {SEQ, BATCH, IN}, hd[3] = {nd, BATCH, HID};
  if (c->layout) {
    xd[0] = BATCH;
    xd[1] = SEQ;
    hd[0] = BATCH;
    hd[1] = nd;
  }
  int in[8] = {TY_NO_VALUE, TY_NO_VALUE, TY_NO_VALUE, TY_NO_VALUE,
               TY_NO_VALUE, TY_NO_VALUE, TY_NO_VALUE, TY_NO_VALUE};
  in[0] = gb_float(&b, true, 3, xd, -1, 1, false);
  in[1] = gb_float(&b, true, 3, D(nd, g * HID, IN), -0.8, 0.8, false);
  in[2] = gb_float(&b, true, 3, D(nd, g * HID, HID), -0.8, 0.8, false);
  if (c->bias) in[3] = gb_float(&b, true, 2, D(nd, 2 * g * HID), -0.5, 0.5, false);
  if (c->lens) in[4] = gb_ints(&b, 1, D(BATCH), D(SEQ, SEQ - 1));
  if (c->h0) in[5] = gb_float(&b, true, 3, hd, -0.5, 0.5, false);
  if (c->h0 && c->op == TY_OP_LSTM) in[6] = gb_float(&b, true, 3, hd, -0.5, 0.5, false);
  if (c->peephole) in[7] = gb_float(&b, true, 2, D(nd, 3 * HID), -0.5, 0.5, false);
  int n_in = c->op == TY_OP_LSTM ? 8 : 6, n_out = c->op == TY_OP_LSTM ? 3 : 2, y;
  size_t k = gb_node(&b, c->op, in, n_in, n_out, &y);
  const ty_graph_node *n = ty_graph_node_at(b.g, k);
  int outs[3] = {n->outputs[0], n->outputs[1], n_out > 2 ? n->outputs[2] : TY_NO_VALUE};
  cr_assert_eq(ty_graph_node_set_string(b.g, k, "direction", c->direction), 0);
  cr_assert_eq(ty_graph_node_set_int(b.g, k, "hidden_size", HID), 0);
  if (c->layout) cr_assert_eq(ty_graph_node_set_int(b.g, k, "layout", 1), 0);
  if (c->clip > 0) cr_assert_eq(ty_graph_node_set_float(b.g, k, "clip", c->clip), 0);
  if (c->lbr) cr_assert_eq(ty_graph_node_set_int(b.g, k, "linear_before_reset", 1), 0);
  if (c->n_acts) {
    size_t lens[6];
    for (int i = 0; i < c->n_acts; i++)
      lens[i] = strlen(c->acts[i]);
    cr_assert_eq(ty_graph_node_set_strings(b.g, k, "activations", c->acts, lens, (size_t)c->n_acts),
                 0);
  }
  check_outputs(&b, outs, n_out, EPS, TOL);
}

Test(grad_rnn, lstm_forward_all_inputs) {
  rnn_check(&(rnn_case){TY_OP_LSTM, "forward", 0, true, false, true, true, 0, false, {0}, 0});
}
Test(grad_rnn, lstm_reverse_seq_lens) {
  rnn_check(&(rnn_case){TY_OP_LSTM, "reverse", 0, true, true, true, false, 0, false, {0}, 0});
}
Test(grad_rnn, lstm_bidirectional_layout1_peepholes) {
  rnn_check(&(rnn_case){TY_OP_LSTM, "bidirectional", 1, true, true, true, true, 0, false, {0}, 0});
}
Test(grad_rnn, lstm_defaults_no_optional_inputs) {
  rnn_check(&(rnn_case){TY_OP_LSTM, "forward", 0, false, false, false, false, 0, false, {0}, 0});
}
Test(grad_rnn, lstm_clip_and_activations) {
  rnn_check(&(rnn_case){TY_OP_LSTM,
                        "forward",
                        0,
                        true,
                        false,
                        true,
                        false,
                        0.7f,
                        false,
                        {"HardSigmoid", "Softsign", "ScaledTanh"},
                        3});
}
Test(grad_rnn, gru_forward) {
  rnn_check(&(rnn_case){TY_OP_GRU, "forward", 0, true, false, true, false, 0, false, {0}, 0});
}
Test(grad_rnn, gru_reverse_linear_before_reset) {
  rnn_check(&(rnn_case){TY_OP_GRU, "reverse", 0, true, true, true, false, 0, true, {0}, 0});
}
Test(grad_rnn, gru_bidirectional_layout1) {
  rnn_check(&(rnn_case){TY_OP_GRU, "bidirectional", 1, true, true, true, false, 0, false, {0}, 0});
}
Test(grad_rnn, gru_bidirectional_linear_before_reset) {
  rnn_check(&(rnn_case){TY_OP_GRU, "bidirectional", 0, true, false, false, false, 0, true, {0}, 0});
}
Test(grad_rnn, rnn_forward) {
  rnn_check(&(rnn_case){TY_OP_RNN, "forward", 0, true, false, true, false, 0, false, {0}, 0});
}
Test(grad_rnn, rnn_reverse_seq_lens) {
  rnn_check(&(rnn_case){TY_OP_RNN, "reverse", 0, true, true, true, false, 0, false, {0}, 0});
}
Test(grad_rnn, rnn_bidirectional_layout1_activations) {
  rnn_check(&(rnn_case){
      TY_OP_RNN, "bidirectional", 1, true, true, true, false, 0, false, {"Sigmoid", "elu"}, 2});
}

/* ---- refusals ------------------------------------------------------------------------ */
static void refused(ty_op op, const int64_t *wdims, int64_t hidden, const char *act,
                    const char *words) {
  gb b;
  gb_init(&b, 14);
  int g = gates(op);
  int in[3] = {gb_float(&b, false, 3, D(SEQ, BATCH, IN), -1, 1, false),
               gb_float(&b, false, 3, wdims, -1, 1, false),
               gb_float(&b, false, 3, D(1, g * HID, HID), -1, 1, false)},
      y;
  size_t k = gb_node(&b, op, in, 3, 1, &y);
  if (hidden > 0) cr_assert_eq(ty_graph_node_set_int(b.g, k, "hidden_size", hidden), 0);
  if (act) {
    size_t len = strlen(act);
    const char *v[3] = {act, act, act};
    cr_assert_eq(ty_graph_node_set_strings(b.g, k, "activations", v, (size_t[]){len, len, len},
                                           (size_t)(op == TY_OP_LSTM  ? 3
                                                    : op == TY_OP_GRU ? 2
                                                                      : 1)),
                 0);
  }
  char err[256] = "";
  cr_assert_neq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert(strstr(err, words), "%s", err);
  cr_assert(strstr(err, ty_op_name(op)), "%s", err);
  ty_graph_destroy(b.g);
}

Test(grad_rnn, refuses_w_of_the_wrong_input_size) {
  refused(TY_OP_LSTM, D(1, 4 * HID, IN + 1), 0, NULL, "input W must have shape [1,8,3]");
}
Test(grad_rnn, refuses_w_rows_not_a_multiple_of_gates) {
  refused(TY_OP_GRU, D(1, 7, IN), 0, NULL, "is not 3 x hidden_size");
}
Test(grad_rnn, refuses_hidden_size_mismatch) {
  refused(TY_OP_LSTM, D(1, 4 * HID, IN), HID + 1, NULL, "hidden_size=3 does not match W");
}
Test(grad_rnn, refuses_an_unknown_activation) {
  refused(TY_OP_RNN, D(1, HID, IN), 0, "Swish", "\"Swish\" is not supported");
}
Test(grad_rnn, refuses_r_of_the_wrong_shape) {
  gb b;
  gb_init(&b, 14);
  int in[3] = {gb_float(&b, false, 3, D(SEQ, BATCH, IN), -1, 1, false),
               gb_float(&b, false, 3, D(1, HID, IN), -1, 1, false),
               gb_float(&b, false, 3, D(1, HID, HID + 1), -1, 1, false)},
      y;
  gb_node(&b, TY_OP_RNN, in, 3, 1, &y);
  char err[256] = "";
  cr_assert_neq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert(strstr(err, "input R must have shape [1,2,2]"), "%s", err);
  ty_graph_destroy(b.g);
}

Test(grad_rnn, refuses_sequence_lens_beyond_the_sequence) {
  gb b;
  gb_init(&b, 14);
  int in[5] = {gb_float(&b, false, 3, D(SEQ, BATCH, IN), -1, 1, false),
               gb_float(&b, false, 3, D(1, 3 * HID, IN), -1, 1, false),
               gb_float(&b, false, 3, D(1, 3 * HID, HID), -1, 1, false), TY_NO_VALUE,
               gb_ints(&b, 1, D(BATCH), D(SEQ, SEQ + 2))},
      y;
  gb_node(&b, TY_OP_GRU, in, 5, 1, &y);
  char err[256] = "";
  cr_assert_neq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert(strstr(err, "sequence_lens[1]=5 is outside 0..3"), "%s", err);
  ty_graph_destroy(b.g);
}

Test(grad_rnn, refuses_input_forget) {
  gb b;
  gb_init(&b, 14);
  int in[3] = {gb_float(&b, false, 3, D(SEQ, BATCH, IN), -1, 1, false),
               gb_float(&b, false, 3, D(1, 4 * HID, IN), -1, 1, false),
               gb_float(&b, false, 3, D(1, 4 * HID, HID), -1, 1, false)},
      y;
  size_t k = gb_node(&b, TY_OP_LSTM, in, 3, 1, &y);
  cr_assert_eq(ty_graph_node_set_int(b.g, k, "input_forget", 1), 0);
  char err[256] = "";
  cr_assert_neq(ty_graph_infer_shapes(b.g, err, sizeof err), 0);
  cr_assert(strstr(err, "input_forget=1 (coupled gates) is not supported"), "%s", err);
  ty_graph_destroy(b.g);
}

/* The activations (a list of strings) survive export and import, as in a
 * checkpoint of a trained nn.RNN(nonlinearity="relu"). */
Test(grad_rnn, activations_survive_export) {
  gb b;
  gb_init(&b, 14);
  int in[3] = {gb_float(&b, false, 3, D(SEQ, BATCH, IN), -1, 1, false),
               gb_float(&b, false, 3, D(2, HID, IN), -1, 1, false),
               gb_float(&b, false, 3, D(2, HID, HID), -1, 1, false)},
      y;
  size_t k = gb_node(&b, TY_OP_RNN, in, 3, 1, &y);
  cr_assert_eq(ty_graph_mark_output(b.g, y), 0);
  cr_assert_eq(ty_graph_node_set_string(b.g, k, "direction", "bidirectional"), 0);
  const char *acts[2] = {"Relu", "Tanh"};
  cr_assert_eq(ty_graph_node_set_strings(b.g, k, "activations", acts, (size_t[]){4, 4}, 2), 0);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(b.g, err, sizeof err), 0, "%s", err);
  uint8_t *data;
  size_t len;
  cr_assert_eq(ty_graph_to_onnx(b.g, NULL, 0, err, sizeof err, &data, &len), 0, "%s", err);
  ty_graph *g2;
  cr_assert_eq(ty_graph_load_bytes(data, len, err, sizeof err, &g2), 0, "%s", err);
  free(data);
  const ty_graph_node *n = NULL;
  for (size_t i = 0; i < ty_graph_n_nodes(g2); i++)
    if (ty_graph_node_at(g2, i)->op == TY_OP_RNN) n = ty_graph_node_at(g2, i);
  cr_assert(n);
  const ty_graph_attr *a = ty_graph_node_attr(n, "activations");
  cr_assert(a && a->type == TY_ATTR_STRINGS && a->n == 2);
  cr_assert_str_eq(ty_graph_attr_string_at(a, 0), "Relu");
  cr_assert_str_eq(ty_graph_attr_string_at(a, 1), "Tanh");
  cr_assert_null(ty_graph_attr_string_at(a, 2));
  ty_graph_destroy(g2);
  ty_graph_destroy(b.g);
}
