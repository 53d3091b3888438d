/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The graphs a pipeline stage runs (pipe.c), cut from the job's forward +
 * loss graph by the plan's op.stage:
 *
 *   fwd   the stage's forward nodes alone: inputs are the data feeds and
 *         the activations other stages send it, outputs the activations it
 *         sends on (and the loss, on the stage that computes it);
 *   train fwd differentiated (with respect to its parameters and float
 *         inputs, less a weighted mean loss's denominator: pipe_wmean.c):
 *         a non-last stage's loss is the vector-Jacobian
 *         seed sum_k ReduceSum(out_k * seed_k), where seed_k (an input
 *         named "<out_k>.seed") is the gradient of out_k the later stages
 *         send back; autodiff then gives the gradients of the stage's
 *         parameters and of the activations it received (sent back in
 *         turn). The last stage differentiates the real loss;
 *   f, b  train split where the seeds first enter: f computes the sent
 *         activations plus what backward reads, b the rest. Running f at a
 *         micro-batch's forward slot and b at its backward slot keeps the
 *         activations in between; running fwd, then train at the backward
 *         slot, is activation recomputation (only the inputs are kept).
 *
 * One cutting rule serves all four graphs (extract): the chosen nodes are
 * copied with their value names; a value they read that none of them
 * computes becomes an input (an initializer keeps its data); a value they
 * compute that another node reads, or that the source graph outputs,
 * becomes an output. Binding by name then connects the graphs.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value of src with id v in g (added on first use): an initializer's
 * data copied, otherwise an input when no member computes it; so is an
 * initializer whose data was dropped (trained weights the executors bind,
 * pipe_eval.c's cut of a stage). */
static int map_value(const ty_graph *src, int v, const bool *computed, ty_graph *g, int *map,
                     int *out) {
  if (v == TY_NO_VALUE) return *out = TY_NO_VALUE, 0;
  if (map[v] != TY_NO_VALUE) return *out = map[v], 0;
  const ty_graph_value *sv = ty_graph_value_at(src, v);
  int rc = ty_graph_add_value(g, sv->name, sv->dtype, &sv->shape, &map[v]);
  if (rc != 0) return rc;
  if (sv->init && !sv->init_dropped) {
    ty_tensor *copy;
    if ((rc = ty_tensor_clone(sv->init, &copy)) != 0 ||
        (rc = ty_graph_set_initializer(g, map[v], copy)) != 0)
      return rc;
  } else if (!computed[v] && (rc = ty_graph_mark_input(g, map[v])) != 0) {
    return rc;
  }
  *out = map[v];
  return 0;
}

static int copy_attrs(ty_graph *g, size_t idx, const ty_graph_node *n) {
  int rc = 0;
  for (int a = 0; rc == 0 && a < n->n_attrs; a++) {
    const ty_graph_attr *at = &n->attrs[a];
    ty_tensor *t = NULL;
    switch (at->type) {
    case TY_ATTR_FLOAT:
      rc = ty_graph_node_set_float(g, idx, at->name, at->f);
      break;
    case TY_ATTR_INT:
      rc = ty_graph_node_set_int(g, idx, at->name, at->i);
      break;
    case TY_ATTR_STRING:
      rc = ty_graph_node_set_string(g, idx, at->name, at->s);
      break;
    case TY_ATTR_INTS:
      rc = ty_graph_node_set_ints(g, idx, at->name, at->ints, at->n);
      break;
    case TY_ATTR_FLOATS:
      rc = ty_graph_node_set_floats(g, idx, at->name, at->floats, at->n);
      break;
    case TY_ATTR_STRINGS:
      rc = ty_graph_node_copy_strings(g, idx, at);
      break;
    case TY_ATTR_TENSOR:
      if ((rc = ty_tensor_clone(at->t, &t)) == 0)
        rc = ty_graph_node_set_tensor(g, idx, at->name, t);
      break;
    }
  }
  return rc;
}

/* Marks the outputs: the values listed, or (outputs NULL) values members
 * compute that a non-member reads or that src outputs. */
static int mark_outputs(const ty_graph *src, const bool *in_set, const int *outputs,
                        size_t n_outputs, const int *map, ty_graph *g) {
  size_t nv = ty_graph_n_values(src), nn = ty_graph_n_nodes(src);
  bool *out = calloc(nv + 1, sizeof *out);
  if (!out) return TY_ENOMEM;
  for (size_t i = 0; i < n_outputs; i++)
    out[outputs[i]] = true;
  for (size_t i = 0; !outputs && i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(src, i);
    for (int k = 0; !in_set[i] && k < n->n_inputs; k++)
      if (n->inputs[k] != TY_NO_VALUE) out[n->inputs[k]] = true;
  }
  for (size_t i = 0; !outputs && i < ty_graph_n_outputs(src); i++)
    out[ty_graph_output(src, i)] = true;
  int rc = 0;
  for (size_t v = 0; rc == 0 && v < nv; v++) {
    const ty_graph_value *sv = ty_graph_value_at(src, (int)v);
    if (out[v] && map[v] != TY_NO_VALUE && sv->producer >= 0 && in_set[sv->producer])
      rc = ty_graph_mark_output(g, map[v]);
  }
  free(out);
  return rc;
}

int ty__pipe_extract(const ty_graph *src, const bool *in_set, const int *outputs, size_t n_outputs,
                     ty_graph **out, char *err, size_t err_len) {
  size_t nv = ty_graph_n_values(src), nn = ty_graph_n_nodes(src);
  int *map = malloc((nv + 1) * sizeof *map);
  bool *computed = calloc(nv + 1, sizeof *computed);
  ty_graph *g = NULL;
  int rc = map && computed ? ty_graph_create(&g) : TY_ENOMEM;
  for (size_t v = 0; map && v < nv; v++)
    map[v] = TY_NO_VALUE;
  for (size_t i = 0; rc == 0 && i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(src, i);
    for (int k = 0; in_set[i] && k < n->n_outputs; k++)
      if (n->outputs[k] != TY_NO_VALUE) computed[n->outputs[k]] = true;
  }
  for (size_t i = 0; rc == 0 && i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(src, i);
    if (!in_set[i]) continue;
    int ins[n->n_inputs + 1], outs[n->n_outputs + 1], idx;
    for (int k = 0; rc == 0 && k < n->n_inputs; k++)
      rc = map_value(src, n->inputs[k], computed, g, map, &ins[k]);
    for (int k = 0; rc == 0 && k < n->n_outputs; k++)
      rc = map_value(src, n->outputs[k], computed, g, map, &outs[k]);
    if (rc != 0) break;
    ty_graph_set_opset(g, n->opset);
    if ((rc = ty_graph_add_node(g, n->op, n->name, ins, n->n_inputs, outs, n->n_outputs, &idx)) ==
        0)
      rc = copy_attrs(g, (size_t)idx, n);
  }
  if (rc == 0) rc = mark_outputs(src, in_set, outputs, n_outputs, map, g);
  if (rc == 0) ty_graph_set_opset(g, ty_graph_opset(src));
  if (rc == 0) rc = ty_graph_infer_shapes(g, err, err_len);
  free(map);
  free(computed);
  if (rc != 0) {
    ty_graph_destroy(g);
    return err && err[0] ? rc : ty_errf(err, err_len, rc, "pipeline: cutting a stage's graph");
  }
  *out = g;
  return 0;
}

/* x flattened: Reshape(x, [-1]), for a value whose rank the graph does
 * not know (one Reshape'd from shape arithmetic). */
static int flatten_all(ty_graph *g, int x, int *out) {
  ty_shape as = ty_shape_make(1, (int64_t[]){1});
  ty_tensor *t;
  int rc, shape, idx;
  if ((rc = ty_tensor_create(TY_DTYPE_I64, &as, &t)) != 0) return rc;
  ((int64_t *)t->data)[0] = -1;
  if ((rc = ty_graph_add_value(g, NULL, TY_DTYPE_I64, &as, &shape)) != 0) {
    ty_tensor_destroy(t);
    return rc;
  }
  if ((rc = ty_graph_set_initializer(g, shape, t)) != 0 ||
      (rc = ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, out)) != 0)
    return rc;
  return ty_graph_add_node(g, TY_OP_RESHAPE, NULL, (int[]){x, shape}, 2, out, 1, &idx);
}

/* ReduceSum of x over all its rank axes to a scalar (axes an input from
 * opset 13, an attribute before); x flattened first when its rank is
 * unknown. */
static int reduce_all(ty_graph *g, int x, int rank, int out) {
  int rc;
  if (rank < 0) {
    if ((rc = flatten_all(g, x, &x)) != 0) return rc;
    rank = 1;
  }
  int64_t axes[TY_MAX_RANK];
  for (int d = 0; d < rank; d++)
    axes[d] = d;
  int idx, in[2] = {x, TY_NO_VALUE};
  bool as_input = ty_graph_opset(g) >= 13;
  if (as_input) {
    ty_shape as = ty_shape_make(1, (int64_t[]){rank});
    ty_tensor *t;
    if ((rc = ty_tensor_create(TY_DTYPE_I64, &as, &t)) != 0) return rc;
    memcpy(t->data, axes, (size_t)rank * sizeof *axes);
    if ((rc = ty_graph_add_value(g, NULL, TY_DTYPE_I64, &as, &in[1])) != 0) {
      ty_tensor_destroy(t);
      return rc;
    }
    if ((rc = ty_graph_set_initializer(g, in[1], t)) != 0) return rc;
  }
  if ((rc = ty_graph_add_node(g, TY_OP_REDUCE_SUM, NULL, in, as_input ? 2 : 1, &out, 1, &idx)) !=
          0 ||
      (rc = ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0)) != 0)
    return rc;
  return as_input ? 0 : ty_graph_node_set_ints(g, (size_t)idx, "axes", axes, (size_t)rank);
}

/* A non-last stage's loss: sum_k ReduceSum(out_k * seed_k) over the float
 * activations it sends (seed_k an input named "<out_k>.seed"). */
static int seed_loss(ty_graph *g, const char *const *sent, size_t n, int *out_loss) {
  int rc = 0, total = TY_NO_VALUE, idx;
  for (size_t i = 0; rc == 0 && i < n; i++) {
    int out = ty_graph_find_value(g, sent[i]);
    const ty_graph_value *v = out == TY_NO_VALUE ? NULL : ty_graph_value_at(g, out);
    if (!v || v->dtype != TY_DTYPE_F32) continue;
    char name[300];
    snprintf(name, sizeof name, "%s.seed", v->name);
    int seed, prod, sum;
    ty_shape shape = v->shape;
    if ((rc = ty_graph_add_value(g, name, TY_DTYPE_F32, &shape, &seed)) != 0 ||
        (rc = ty_graph_mark_input(g, seed)) != 0 ||
        (rc = ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &prod)) != 0 ||
        (rc = ty_graph_add_node(g, TY_OP_MUL, NULL, (int[]){out, seed}, 2, &prod, 1, &idx)) != 0 ||
        (rc = ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &sum)) != 0 ||
        (rc = reduce_all(g, prod, shape.rank, sum)) != 0)
      return rc;
    if (total != TY_NO_VALUE) {
      int next;
      if ((rc = ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &next)) != 0 ||
          (rc = ty_graph_add_node(g, TY_OP_ADD, NULL, (int[]){total, sum}, 2, &next, 1, &idx)) != 0)
        return rc;
      sum = next;
    }
    total = sum;
  }
  if (total == TY_NO_VALUE) return TY_EINVAL;
  *out_loss = total;
  return ty_graph_mark_output(g, total);
}

/* A weighted mean loss's denominator (pipe_wmean.c): fed, never differentiated. */
static bool denominator(const char *name) {
  size_t n = strlen(name), k = strlen(TY_SHARD_WEIGHT_SUM);
  return n > k && strcmp(name + n - k, TY_SHARD_WEIGHT_SUM) == 0;
}

int ty__pipe_differentiate(const ty_graph *fwd, const char *loss_name, const char *const *sent,
                           size_t n_sent, const char *const *received, size_t n_received,
                           const char *const *params, size_t n_params, ty__pipe_grads *out,
                           char *err, size_t err_len) {
  size_t n = ty_graph_n_nodes(fwd);
  bool *all = malloc((n + 1) * sizeof *all);
  if (!all) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++)
    all[i] = true;
  ty_graph *g = NULL;
  int rc = ty__pipe_extract(fwd, all, NULL, 0, &g, err, err_len), loss = TY_NO_VALUE;
  free(all);
  if (rc != 0) return rc;
  size_t nw = 0;
  int *wrt = calloc(n_params + n_received + 1, sizeof *wrt), *grads = NULL;
  /* The activations received and the stage's parameters. Not a data
   * feed: nobody reads its gradient, and on a plan's rank its reshard
   * points have no backward route (ops/shard builds none for an input). */
  for (size_t i = 0; wrt && i < n_received; i++) {
    int v = ty_graph_find_value(g, received[i]);
    if (v != TY_NO_VALUE && ty_graph_value_at(g, v)->dtype == TY_DTYPE_F32 &&
        !denominator(received[i]))
      wrt[nw++] = v;
  }
  for (size_t i = 0; wrt && i < n_params; i++) {
    int v = ty_graph_find_value(g, params[i]);
    if (v != TY_NO_VALUE) wrt[nw++] = v;
  }
  if (!wrt) rc = TY_ENOMEM;
  if (rc == 0 && loss_name) {
    loss = ty_graph_find_value(g, loss_name);
    if (loss == TY_NO_VALUE) rc = TY_EINTERNAL;
  } else if (rc == 0) {
    rc = seed_loss(g, sent, n_sent, &loss);
    if (rc == 0) rc = ty_graph_infer_shapes(g, err, err_len);
  }
  if (rc == 0 && !(grads = calloc(nw + 1, sizeof *grads))) rc = TY_ENOMEM;
  if (rc == 0) rc = ty_autodiff(g, loss, wrt, nw, grads, err, err_len);
  if (rc != 0) {
    free(wrt);
    free(grads);
    ty_graph_destroy(g);
    return err && err[0] ? rc : ty_errf(err, err_len, rc, "pipeline: differentiating a stage");
  }
  *out = (ty__pipe_grads){.g = g, .wrt = wrt, .grads = grads, .n = nw};
  return 0;
}

int ty__pipe_split(const ty_graph *train, ty_graph **out_f, ty_graph **out_b, char *err,
                   size_t err_len) {
  size_t nv = ty_graph_n_values(train), nn = ty_graph_n_nodes(train);
  bool *tainted = calloc(nv + 1, sizeof *tainted), *fwd = calloc(nn + 1, sizeof *fwd),
       *bwd = calloc(nn + 1, sizeof *bwd);
  int rc = tainted && fwd && bwd ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < ty_graph_n_inputs(train); i++) {
    const ty_graph_value *v = ty_graph_value_at(train, ty_graph_input(train, i));
    size_t len = strlen(v->name);
    if (len > 5 && strcmp(v->name + len - 5, ".seed") == 0)
      tainted[ty_graph_input(train, i)] = true;
  }
  /* nodes are appended in a valid order (forward, then backward): one pass */
  for (size_t i = 0; rc == 0 && i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(train, i);
    bool t = false;
    for (int k = 0; k < n->n_inputs; k++)
      t = t || (n->inputs[k] != TY_NO_VALUE && tainted[n->inputs[k]]);
    for (int k = 0; t && k < n->n_outputs; k++)
      if (n->outputs[k] != TY_NO_VALUE) tainted[n->outputs[k]] = true;
    bwd[i] = t;
    fwd[i] = !t;
  }
  if (rc == 0) rc = ty__pipe_extract(train, fwd, NULL, 0, out_f, err, err_len);
  if (rc == 0 && (rc = ty__pipe_extract(train, bwd, NULL, 0, out_b, err, err_len)) != 0) {
    ty_graph_destroy(*out_f);
    *out_f = NULL;
  }
  free(tainted);
  free(fwd);
  free(bwd);
  return rc;
}
