/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SoftmaxCrossEntropyLoss with class probabilities as labels, lowered at
 * import. PyTorch 1.13 exports F.cross_entropy(logits, target) with a float
 * target ([N, C, d1...], one distribution per sample: soft labels, mixup,
 * distillation) as a SoftmaxCrossEntropyLoss whose labels are FLOAT, which
 * the ONNX spec does not define (its labels are class indices). PyTorch's
 * meaning is
 *
 *   loss[n, d...] = -sum_c weight[c] * target[n, c, d...] * log_softmax(x)[n, c, d...]
 *
 * reduced by the node's reduction: "mean" divides by the number of
 * samples (N * d1 * ..., not by a sum of weights as with indices), "sum"
 * adds, "none" keeps [N, d1...]; ignore_index does not apply. This file
 * replaces such a node by ops that already have kernels and gradients:
 *
 *   LogSoftmax(axis 1) -> Einsum("nc...,nc...[,c]->n...") -> Neg -> ReduceMean/ReduceSum
 *
 * The log-probabilities are the node's second output when it has one.
 * The labels count as float when their dtype is declared (a graph input,
 * an initializer), set by a Cast or a Constant, or carried through ops
 * whose output has their input's dtype (what the exporter writes for a
 * one-hot or a smoothing computed in the graph); other labels stay with
 * the node, and shape inference names their dtype if it is not an index.
 *
 * Runs once per import, before shape inference.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DTYPE_DEPTH 32

/* The input whose dtype op's output has, or -1 when op does not say. */
static int same_dtype_input(ty_op op) {
  static const ty_op first[] = {
      TY_OP_ADD,         TY_OP_SUB,        TY_OP_MUL,         TY_OP_DIV,        TY_OP_NEG,
      TY_OP_ABS,         TY_OP_CLIP,       TY_OP_POW,         TY_OP_SQRT,       TY_OP_EXP,
      TY_OP_LOG,         TY_OP_TANH,       TY_OP_SIGMOID,     TY_OP_RELU,       TY_OP_SOFTMAX,
      TY_OP_LOG_SOFTMAX, TY_OP_IDENTITY,   TY_OP_DROPOUT,     TY_OP_RESHAPE,    TY_OP_TRANSPOSE,
      TY_OP_FLATTEN,     TY_OP_SQUEEZE,    TY_OP_UNSQUEEZE,   TY_OP_CONCAT,     TY_OP_EXPAND,
      TY_OP_SLICE,       TY_OP_GATHER,     TY_OP_SPLIT,       TY_OP_MAX,        TY_OP_MIN,
      TY_OP_SUM,         TY_OP_MEAN,       TY_OP_GEMM,        TY_OP_MATMUL,     TY_OP_EINSUM,
      TY_OP_CONV,        TY_OP_REDUCE_SUM, TY_OP_REDUCE_MEAN, TY_OP_REDUCE_MAX, TY_OP_LAYER_NORM,
  };
  for (size_t i = 0; i < sizeof first / sizeof first[0]; i++)
    if (op == first[i]) return 0;
  if (op == TY_OP_WHERE) return 1;
  if (op == TY_OP_ONE_HOT) return 2;
  return -1;
}

/* Value id's dtype as far as import knows it before inference, or
 * TY_DTYPE_INVALID. */
static ty_dtype known_dtype(const ty_graph *g, int id) {
  for (int depth = 0; depth < DTYPE_DEPTH && id != TY_NO_VALUE; depth++) {
    const ty_graph_value *v = ty_graph_value_at(g, id);
    if (v->dtype != TY_DTYPE_INVALID) return v->dtype;
    if (v->producer < 0) break;
    const ty_graph_node *n = ty_graph_node_at(g, (size_t)v->producer);
    if (n->op == TY_OP_CAST) return (ty_dtype)ty_graph_node_attr_int(n, "to", TY_DTYPE_INVALID);
    if (n->op == TY_OP_CONSTANT) {
      const ty_graph_attr *a = ty_graph_node_attr(n, "value");
      return a && a->type == TY_ATTR_TENSOR && a->t ? a->t->dtype : TY_DTYPE_INVALID;
    }
    int k = same_dtype_input(n->op);
    if (k < 0 || k >= n->n_inputs) break;
    id = n->inputs[k];
  }
  return TY_DTYPE_INVALID;
}

/* What one node to lower holds; copied before the node is dropped. */
typedef struct soft_ce {
  char name[200];
  int x, labels, weight, loss, log_prob;
  char reduction[8];
} soft_ce;

/* A new value named "<node>/<what>". */
static int new_value(ty_graph *g, const soft_ce *s, const char *what, int *out) {
  char name[256];
  snprintf(name, sizeof name, "%s/%s", s->name, what);
  return ty_graph_add_value(g, name, TY_DTYPE_INVALID, NULL, out);
}

/* A node named "<node>/<what>" with one output. */
static int add(ty_graph *g, const soft_ce *s, ty_op op, const char *what, const int *in, int n_in,
               int out, int *idx) {
  char name[256];
  snprintf(name, sizeof name, "%s/%s", s->name, what);
  return ty_graph_add_node(g, op, name, in, n_in, &out, 1, idx);
}

/* The ops that compute s's loss into s->loss (and s->log_prob). */
static int emit(ty_graph *g, const soft_ce *s) {
  int lp = s->log_prob, per, neg, idx, rc = 0;
  if (lp == TY_NO_VALUE) rc = new_value(g, s, "log_prob", &lp);
  if (rc == 0) rc = add(g, s, TY_OP_LOG_SOFTMAX, "log_softmax", &s->x, 1, lp, &idx);
  if (rc == 0) rc = ty_graph_node_set_int(g, (size_t)idx, "axis", 1);
  bool w = s->weight != TY_NO_VALUE;
  if (rc == 0) rc = new_value(g, s, "class_sum", &per);
  if (rc == 0)
    rc = add(g, s, TY_OP_EINSUM, "class_sum", (int[]){lp, s->labels, s->weight}, w ? 3 : 2, per,
             &idx);
  if (rc == 0)
    rc = ty_graph_node_set_string(g, (size_t)idx, "equation",
                                  w ? "nc...,nc...,c->n..." : "nc...,nc...->n...");
  if (rc != 0) return rc;
  if (strcmp(s->reduction, "none") == 0) return add(g, s, TY_OP_NEG, "neg", &per, 1, s->loss, &idx);
  if ((rc = new_value(g, s, "neg", &neg)) != 0 ||
      (rc = add(g, s, TY_OP_NEG, "neg", &per, 1, neg, &idx)) != 0)
    return rc;
  ty_op red = strcmp(s->reduction, "sum") == 0 ? TY_OP_REDUCE_SUM : TY_OP_REDUCE_MEAN;
  if ((rc = add(g, s, red, s->reduction, &neg, 1, s->loss, &idx)) == 0)
    rc = ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0);
  return rc;
}

/* Node k's description, or an error naming a reduction that is not one. */
static int describe(const ty_graph_node *n, soft_ce *s, char *err, size_t err_len) {
  const char *red = ty_graph_node_attr_string(n, "reduction", "mean");
  if (strcmp(red, "mean") != 0 && strcmp(red, "sum") != 0 && strcmp(red, "none") != 0)
    return ty__node_err(err, err_len, n, TY_EINVAL, "attribute reduction=%s is not valid", red);
  if (strlen(n->name) >= sizeof s->name)
    return ty__node_err(err, err_len, n, TY_EINVAL, "name is too long to lower float labels");
  snprintf(s->name, sizeof s->name, "%s", n->name);
  snprintf(s->reduction, sizeof s->reduction, "%s", red);
  s->x = n->inputs[0];
  s->labels = n->inputs[1];
  s->weight = n->n_inputs > 2 ? n->inputs[2] : TY_NO_VALUE;
  s->loss = n->outputs[0];
  s->log_prob = n->n_outputs > 1 ? n->outputs[1] : TY_NO_VALUE;
  return 0;
}

/* Lowers node k (a SoftmaxCrossEntropyLoss with float labels). */
static int lower(ty_graph *g, size_t k, char *err, size_t err_len) {
  soft_ce s;
  int rc = describe(ty_graph_node_at(g, k), &s, err, err_len);
  if (rc != 0) return rc;
  bool *drop = calloc(ty_graph_n_nodes(g), sizeof *drop);
  if (!drop) return TY_ENOMEM;
  drop[k] = true;
  rc = ty__graph_drop_nodes(g, drop);
  free(drop);
  if (rc == 0) rc = emit(g, &s);
  if (rc != 0 && err && err_len && !err[0])
    ty_errf(err, err_len, rc, "node \"%s\" (SoftmaxCrossEntropyLoss): lowering float labels: %s",
            s.name, ty_strerror(rc));
  return rc;
}

/* Puts g's nodes back in topological order (graph.h promises it after
 * import; the replacements were appended after the loss's readers). */
static int sort_nodes(ty_graph *g) {
  size_t n = g->n_nodes, *order = malloc((n + 1) * sizeof *order);
  ty_graph_node *sorted = malloc((n + 1) * sizeof *sorted);
  int rc = order && sorted ? ty_graph_topo_order(g, order) : TY_ENOMEM;
  if (rc == 0) {
    for (size_t k = 0; k < n; k++) {
      sorted[k] = g->nodes[order[k]];
      for (int i = 0; i < sorted[k].n_outputs; i++)
        if (sorted[k].outputs[i] != TY_NO_VALUE) g->values[sorted[k].outputs[i]].producer = (int)k;
    }
    memcpy(g->nodes, sorted, n * sizeof *sorted);
  }
  free(order);
  free(sorted);
  return rc;
}

int ty__import_lower_soft_labels(ty_graph *g, char *err, size_t err_len) {
  /* Lowering drops node k and appends its replacement: look at k again. */
  bool lowered = false;
  for (size_t k = 0; k < ty_graph_n_nodes(g);) {
    const ty_graph_node *n = ty_graph_node_at(g, k);
    if (n->op != TY_OP_SOFTMAX_CE_LOSS || n->n_inputs < 2 || n->n_outputs < 1 ||
        n->inputs[0] == TY_NO_VALUE || n->inputs[1] == TY_NO_VALUE ||
        n->outputs[0] == TY_NO_VALUE || !ty_dtype_is_float(known_dtype(g, n->inputs[1]))) {
      k++;
      continue;
    }
    int rc = lower(g, k, err, err_len);
    if (rc != 0) return rc;
    lowered = true;
  }
  return lowered ? sort_nodes(g) : 0;
}
