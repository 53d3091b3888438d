/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Log of a sigmoid made stable, at import (ty__import_stable_log_sigmoid).
 * PyTorch 1.13 exports F.logsigmoid(z) as Log(Sigmoid(z)) and
 * F.binary_cross_entropy_with_logits(z, y) as
 * -(y * Log(Sigmoid(z)) + (1 - y) * Log(Sub(1, Sigmoid(z)))), which PyTorch
 * itself computes stably. In float32 Sigmoid rounds to 1 once z passes
 * about 17 (to 0 below about -88): Log(0) is -inf, and 0 x -inf a NaN in
 * the loss and its gradient. This pass rewrites, before autodiff (the
 * gradient is then the stable form's too):
 *
 *   Log(Sigmoid(x))          ->  Neg(Softplus(Neg(x)))   log sigmoid(x) = -softplus(-x)
 *   Log(Sub(1, Sigmoid(x)))  ->  Neg(Softplus(x))        log(1 - sigmoid(x)) = -softplus(x)
 *
 * where the 1 is a float constant (a Constant node's or an initializer's)
 * of ones whose shape cannot grow the Sigmoid's (a scalar, or dims of 1 or
 * the Sigmoid's own). The Log node becomes the outer Neg (its output, and
 * so its readers, kept); the Sigmoid and the Sub go only when nothing else
 * reads them (a Sigmoid that is also a prediction output stays). The
 * runtime's Softplus is stable at both ends (ops/kernels/activation.c).
 * Runs once per import, after shape inference (the constant's shape is
 * checked against the Sigmoid's); import infers shapes again after it.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How many node inputs read each value of g (malloc'd; NULL: no memory). */
static int *count_readers(const ty_graph *g) {
  int *r = calloc(g->n_values + 1, sizeof *r);
  for (size_t k = 0; r && k < g->n_nodes; k++)
    for (int i = 0; i < g->nodes[k].n_inputs; i++)
      if (g->nodes[k].inputs[i] != TY_NO_VALUE) r[g->nodes[k].inputs[i]]++;
  return r;
}

/* The node producing id when it is op, else NULL. */
static const ty_graph_node *made_by(const ty_graph *g, int id, ty_op op) {
  if (id == TY_NO_VALUE || g->values[id].producer < 0) return NULL;
  const ty_graph_node *n = &g->nodes[g->values[id].producer];
  return n->op == op && n->n_inputs >= 1 && n->inputs[0] != TY_NO_VALUE ? n : NULL;
}

/* Value id's constant tensor: an initializer's, or a Constant node's. */
static const ty_tensor *constant_of(const ty_graph *g, int id) {
  const ty_graph_value *v = &g->values[id];
  if (v->producer < 0) return v->init;
  const ty_graph_node *n = &g->nodes[v->producer];
  const ty_graph_attr *a = n->op == TY_OP_CONSTANT ? ty_graph_node_attr(n, "value") : NULL;
  return a && a->type == TY_ATTR_TENSOR ? a->t : NULL;
}

/* Whether value c is float ones that, subtracted from, cannot grow the
 * shape of value s: a scalar, or no more dims than s with each 1 or s's. */
static bool ones_within(const ty_graph *g, int c, int s) {
  const ty_tensor *t = c == TY_NO_VALUE ? NULL : constant_of(g, c);
  if (!t || t->dtype != TY_DTYPE_F32) return false;
  for (int64_t i = 0; i < ty_tensor_numel(t); i++)
    if (ty_tensor_f32(t)[i] != 1.0f) return false;
  const ty_shape *to = &g->values[s].shape;
  if (t->shape.rank == 0) return true;
  if (to->rank < t->shape.rank) return false; /* unknown (-1) or fewer dims */
  for (int d = 1; d <= t->shape.rank; d++) {
    int64_t cd = t->shape.dims[t->shape.rank - d], sd = to->dims[to->rank - d];
    if (cd != 1 && cd != sd) return false;
  }
  return true;
}

/* A new value "<base>/<what>" and the node of that name computing it
 * from in with op. */
static int add_op(ty_graph *g, const char *base, const char *what, ty_op op, int in, int *out) {
  char name[512];
  snprintf(name, sizeof name, "%s/%s", base, what);
  int idx, rc = ty_graph_add_value(g, name, TY_DTYPE_INVALID, NULL, out);
  return rc == 0 ? ty_graph_add_node(g, op, name, &in, 1, out, 1, &idx) : rc;
}

/* Log node k over x: k becomes Neg(Softplus(x)), with x negated first
 * when negate (log sigmoid) and not (log(1 - sigmoid)). */
static int rewrite(ty_graph *g, size_t k, int x, bool negate) {
  char base[256];
  snprintf(base, sizeof base, "%s", g->nodes[k].name); /* adding nodes may move them */
  int in = x, sp, rc = negate ? add_op(g, base, "neg_x", TY_OP_NEG, x, &in) : 0;
  if (rc == 0) rc = add_op(g, base, "softplus", TY_OP_SOFTPLUS, in, &sp);
  if (rc != 0) return rc;
  g->nodes[k].op = TY_OP_NEG;
  g->nodes[k].inputs[0] = sp;
  return 0;
}

/* The Log node k rewritten, if it matches (*did); the Sigmoid and Sub it
 * read marked in cand (dropped if unread after). */
static int match(ty_graph *g, size_t k, bool *cand, bool *did) {
  const ty_graph_node *l = &g->nodes[k];
  *did = false;
  if (l->op != TY_OP_LOG || l->n_inputs != 1 || l->inputs[0] == TY_NO_VALUE) return 0;
  const ty_graph_node *s = made_by(g, l->inputs[0], TY_OP_SIGMOID), *d = NULL;
  if (!s && (d = made_by(g, l->inputs[0], TY_OP_SUB)) != NULL && d->n_inputs == 2 &&
      (s = made_by(g, d->inputs[1], TY_OP_SIGMOID)) != NULL &&
      !ones_within(g, d->inputs[0], d->inputs[1]))
    s = NULL;
  if (!s) return 0;
  cand[g->values[s->outputs[0]].producer] = true;
  if (d) cand[g->values[d->outputs[0]].producer] = true;
  *did = true;
  return rewrite(g, k, s->inputs[0], d == NULL);
}

/* Drops the nodes marked in cand (of the first n, the graph's before the
 * rewrite) whose outputs nothing reads any more (a Sub before the Sigmoid
 * it reads: those nodes are in topological order, so the later first). */
static int drop_unread(ty_graph *g, const bool *cand, size_t n) {
  int *readers = count_readers(g);
  bool *drop = calloc(g->n_nodes + 1, sizeof *drop); /* the nodes added too */
  int rc = readers && drop ? 0 : TY_ENOMEM;
  for (size_t k = n; rc == 0 && k-- > 0;) {
    const ty_graph_node *nd = &g->nodes[k];
    int out = nd->n_outputs == 1 ? nd->outputs[0] : TY_NO_VALUE;
    if (!cand[k] || out == TY_NO_VALUE || readers[out] > 0 || g->values[out].is_output) continue;
    drop[k] = true;
    for (int i = 0; i < nd->n_inputs; i++)
      if (nd->inputs[i] != TY_NO_VALUE) readers[nd->inputs[i]]--;
  }
  if (rc == 0) rc = ty__graph_drop_nodes(g, drop);
  free(readers);
  free(drop);
  return rc;
}

int ty__import_stable_log_sigmoid(ty_graph *g, size_t *rewritten, char *err, size_t err_len) {
  size_t n = g->n_nodes, done = 0;
  bool *cand = calloc(n + 1, sizeof *cand);
  int rc = cand ? 0 : TY_ENOMEM;
  for (size_t k = 0; rc == 0 && k < n; k++) { /* the nodes added are not Logs */
    bool did;
    rc = match(g, k, cand, &did);
    done += did;
  }
  if (rc == 0 && done) rc = drop_unread(g, cand, n);
  if (rc == 0 && done) rc = ty__graph_sort(g);
  free(cand);
  if (rewritten) *rewritten = rc == 0 ? done : 0;
  return rc ? ty_errf(err, err_len, rc, "model: rewriting Log(Sigmoid) stably: %s", ty_strerror(rc))
            : 0;
}
