/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The planner's view of a graph: every op as a loop nest. An op iterates
 * over a set of loops (MatMul: its batch dims, m, n, k; an elementwise op:
 * its output dims); each dim of each tensor it reads or writes maps to one
 * loop, or to none (a broadcast dim, or a dim the op needs whole). A mesh
 * axis splitting a loop splits every tensor dim mapped to it; a tensor that
 * lacks the loop is replicated along that axis, and an output that lacks it
 * (a contraction or reduction) holds partial sums. The gradient of an input
 * that lacks a split loop is partial along that axis, which is exactly
 * where data parallelism's gradient all-reduce and Megatron's activation
 * all-reduces come from. The per-op rules live in rules.c; ops without
 * one run replicated ("fallback").
 *
 * This file makes every shape concrete (TY_DIM_BATCH becomes the
 * global batch; dims import left unknown come from running the graph's
 * shape arithmetic at that batch, else from derive_shape's rules), marks the dims
 * derived from the batch (what data parallelism splits) and the values that
 * carry gradients. Tuned for graphs of a few thousand nodes: one pass each.
 */
#include "ops/plan/plan_internal.h"

#include "ops/ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int node_fail(char *err, size_t err_len, const ty_graph_node *n, int code,
                     const char *what) {
  return ty_errf(err, err_len, code, "node \"%s\" (%s): %s", n->name, ty_op_name(n->op), what);
}

double ty__value_bytes(const ty__value *v) {
  double b = (double)v->elem;
  for (int d = 0; d < v->shape.rank; d++)
    b *= (double)v->shape.dims[d];
  return b;
}

/* ---- concrete shapes ------------------------------------------------------------ */

/* The graph's shape with the batch substituted; the number of unknown dims
 * (TY_MAX_RANK + 1 for an unknown rank). */
static int substitute(const ty_shape *s, int64_t batch, ty_shape *out, uint8_t *out_batch_dims) {
  *out = *s;
  if (out_batch_dims) *out_batch_dims = 0;
  if (s->rank < 0) return TY_MAX_RANK + 1;
  int unknown = 0;
  for (int d = 0; d < s->rank; d++) {
    if (s->dims[d] == TY_DIM_BATCH) {
      out->dims[d] = batch;
      if (out_batch_dims) *out_batch_dims |= (uint8_t)(1u << d);
    } else if (s->dims[d] < 0) {
      unknown++;
    }
  }
  return unknown;
}

static bool derive_matmul(const ty_shape *a, const ty_shape *b, ty_shape *out) {
  if (a->rank < 1 || b->rank < 1) return false;
  ty_shape ba = ty_shape_make(a->rank > 2 ? a->rank - 2 : 0, a->dims);
  ty_shape bb = ty_shape_make(b->rank > 2 ? b->rank - 2 : 0, b->dims);
  if (ty_shape_broadcast(&ba, &bb, out) != 0 || out->rank + 2 > TY_MAX_RANK) return false;
  if (a->rank >= 2) out->dims[out->rank++] = a->dims[a->rank - 2];
  if (b->rank >= 2) out->dims[out->rank++] = b->dims[b->rank - 1];
  return true;
}

/* Recomputes an output shape inference left unknown (a Reshape's -1 over a
 * batch-sized dim, and the ops downstream of it). */
static bool derive_shape(const ty__model *m, const ty_graph_node *n, int o, ty_shape *s) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x) return false;
  switch (n->op) {
  case TY_OP_RESHAPE:
  case TY_OP_FLATTEN:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE: {
    int at = -1;
    double known = 1;
    for (int d = 0; d < s->rank; d++) {
      if (s->dims[d] >= 0)
        known *= (double)s->dims[d];
      else if (at >= 0)
        return false;
      else
        at = d;
    }
    double rest = ty__numel(x) / known;
    if (o != 0 || at < 0 || rest != floor(rest)) return false;
    s->dims[at] = (int64_t)rest;
    return true;
  }
  case TY_OP_MATMUL:
    return ty__in_shape(m, n, 1) && derive_matmul(x, ty__in_shape(m, n, 1), s);
  case TY_OP_GEMM: {
    const ty_shape *b = ty__in_shape(m, n, 1);
    if (!b || x->rank != 2 || b->rank != 2) return false;
    bool ta = ty_graph_node_attr_int(n, "transA", 0) != 0,
         tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
    *s = ty_shape_make(2, (int64_t[]){x->dims[ta ? 1 : 0], b->dims[tb ? 0 : 1]});
    return true;
  }
  case TY_OP_TRANSPOSE: {
    const ty_graph_attr *perm = ty_graph_node_attr(n, "perm");
    *s = *x;
    for (int d = 0; d < x->rank; d++) {
      int64_t p = perm && perm->type == TY_ATTR_INTS && (int)perm->n == x->rank ? perm->ints[d]
                                                                                : x->rank - 1 - d;
      if (p < 0 || p >= x->rank) return false;
      s->dims[d] = x->dims[p];
    }
    return true;
  }
  default:
    break;
  }
  /* Elementwise and shape-keeping ops: the broadcast of the float inputs. */
  ty_shape acc = ty_shape_make(0, NULL);
  for (int i = 0; i < n->n_inputs; i++) {
    int v = ty_graph_node_input(n, i);
    if (v == TY_NO_VALUE || m->values[v].kind == TY__V_CONST) continue;
    ty_shape t;
    if (ty_shape_broadcast(&acc, &m->values[v].shape, &t) != 0) return false;
    acc = t;
  }
  if (acc.rank != s->rank) return false;
  *s = acc;
  return true;
}

/* Value v's shape at the batch with the graph's shape arithmetic run
 * (ops' ty__graph_shapes_at, as ops/shard computes it), or NULL. */
static const ty_shape *run_shape(ty__model *m, int v) {
  if (!m->at_batch) {
    char err[TY_ERR_LEN];
    m->at_batch = calloc(m->n_values + 1, sizeof *m->at_batch);
    if (!m->at_batch) return NULL;
    for (size_t i = 0; i < m->n_values; i++)
      m->at_batch[i].rank = TY_RANK_UNKNOWN;
    ty__graph_shapes_at(m->g, m->batch, m->at_batch, err, sizeof err);
  }
  return ty_shape_is_concrete(&m->at_batch[v]) ? &m->at_batch[v] : NULL;
}

static int resolve_outputs(ty__model *m, const ty_graph_node *n, char *err, size_t err_len) {
  for (int o = 0; o < n->n_outputs; o++) {
    int v = n->outputs[o];
    if (v == TY_NO_VALUE) continue;
    ty__value *val = &m->values[v];
    const ty_graph_value *gv = ty_graph_value_at(m->g, v);
    if (substitute(&gv->shape, m->batch, &val->shape, &val->batch_dims) == 0) continue;
    /* Running the shape arithmetic is exact; derive_shape's rules are the
     * fallback where it cannot run. */
    const ty_shape *run = run_shape(m, v);
    if (run) {
      val->shape = *run;
      continue;
    }
    if (gv->shape.rank >= 0 && derive_shape(m, n, o, &val->shape) &&
        substitute(&val->shape, m->batch, &val->shape, NULL) == 0)
      continue;
    char shp[96], what[256];
    ty_shape_format(&gv->shape, shp, sizeof shp);
    snprintf(what, sizeof what,
             "output \"%s\" has shape %s for batch %lld; the planner needs concrete shapes",
             gv->name, shp, (long long)m->batch);
    return node_fail(err, err_len, n, TY_EUNSUPPORTED, what);
  }
  return 0;
}

static int init_values(ty__model *m, char *err, size_t err_len) {
  for (size_t v = 0; v < m->n_values; v++) {
    const ty_graph_value *gv = ty_graph_value_at(m->g, (int)v);
    ty__value *val = &m->values[v];
    size_t es = ty_dtype_size(gv->dtype);
    val->elem = es ? es : 4;
    val->producer = gv->producer;
    val->kind = gv->init ? TY__V_CONST : gv->producer >= 0 ? TY__V_ACT : TY__V_DATA;
    if (gv->init) {
      val->shape = gv->init->shape;
    } else if (gv->producer < 0) {
      int unknown = substitute(&gv->shape, m->batch, &val->shape, &val->batch_dims);
      if (unknown != 0 && gv->is_input)
        return ty_errf(err, err_len, TY_EUNSUPPORTED,
                       "input \"%s\": %s; the planner needs every dim but the batch", gv->name,
                       gv->shape.rank < 0 ? "its rank is unknown" : "a dim is unknown");
    }
  }
  return 0;
}

/* Loops of output dims the import shape calls the batch, for an op none
 * of whose loops reads a batch-derived input dim: ConstantOfShape and the
 * other ops that build a tensor from Shape(x)[0] read the batch as a
 * value, not as a dim. */
static void mark_batch_outputs(ty__model *m, ty__op *op, const ty_graph_node *n) {
  for (int l = 0; l < op->n_loops; l++)
    if (op->loops[l].batch) return;
  for (int o = 0; o < n->n_outputs; o++) {
    int v = n->outputs[o];
    if (v == TY_NO_VALUE) continue;
    for (int d = 0; d < m->values[v].shape.rank; d++)
      if ((m->values[v].batch_dims >> d & 1u) && op->out[o].loop[d] >= 0)
        op->loops[op->out[o].loop[d]].batch = true;
  }
}

/* Loops reading a batch-derived dim are batch loops; output dims on them
 * derive from the batch too. */
static void mark_batch(ty__model *m, ty__op *op, const ty_graph_node *n) {
  for (int i = 0; i < n->n_inputs; i++) {
    int v = ty_graph_node_input(n, i);
    if (v == TY_NO_VALUE) continue;
    for (int d = 0; d < m->values[v].shape.rank; d++)
      if ((m->values[v].batch_dims >> d & 1u) && op->in[i].loop[d] >= 0)
        op->loops[op->in[i].loop[d]].batch = true;
  }
  mark_batch_outputs(m, op, n);
  for (int o = 0; o < n->n_outputs; o++) {
    int v = n->outputs[o];
    if (v == TY_NO_VALUE) continue;
    for (int d = 0; d < m->values[v].shape.rank; d++)
      if (op->out[o].loop[d] >= 0 && op->loops[op->out[o].loop[d]].batch)
        m->values[v].batch_dims |= (uint8_t)(1u << d);
  }
  for (int l = 0; l < op->n_loops && op->batch_loop < 0; l++)
    if (op->loops[l].batch && op->loops[l].split) op->batch_loop = l;
}

/* A loop is ragged when every tensor dim mapped to it has its size: then
 * ty_plan_block cuts the same rows (or columns) from each. */
static void mark_ragged(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  for (int l = 0; l < op->n_loops; l++)
    op->loops[l].ragged = op->loops[l].split;
  for (int t = 0; t < n->n_inputs + n->n_outputs; t++) {
    bool in = t < n->n_inputs;
    int v = in ? ty_graph_node_input(n, t) : n->outputs[t - n->n_inputs];
    const ty__tmap *map = in ? &op->in[t] : &op->out[t - n->n_inputs];
    if (v == TY_NO_VALUE) continue;
    for (int d = 0; d < m->values[v].shape.rank && d < TY_MAX_RANK; d++)
      if (map->loop[d] >= 0 && m->values[v].shape.dims[d] != op->loops[map->loop[d]].size)
        op->loops[map->loop[d]].ragged = false;
  }
}

bool ty__loop_splits(const ty__op *op, int l, int64_t parts) {
  const ty__loop *lp = &op->loops[l];
  return lp->size % parts == 0 || (lp->ragged && lp->size >= parts);
}

void ty__model_even_only(ty__model *m) {
  m->even_only = true;
  for (size_t k = 0; k < m->n_nodes; k++)
    for (int l = 0; l < m->ops[k].n_loops; l++)
      m->ops[k].loops[l].ragged = false;
}

static int model_node(ty__model *m, size_t idx, char *err, size_t err_len) {
  const ty_graph_node *n = ty_graph_node_at(m->g, idx);
  ty__op *op = &m->ops[idx];
  int rc = ty__op_init(op, n);
  if (rc != 0) return rc;
  op->node = (int)idx;
  if (n->op == TY_OP_CONSTANT) {
    op->vertex_less = true;
    for (int o = 0; o < n->n_outputs; o++) {
      int v = n->outputs[o];
      if (v == TY_NO_VALUE) continue;
      m->values[v].kind = TY__V_CONST;
      substitute(&ty_graph_value_at(m->g, v)->shape, m->batch, &m->values[v].shape, NULL);
    }
    return 0;
  }
  if ((rc = resolve_outputs(m, n, err, err_len)) != 0) return rc;
  ty__op_rule(m, op, n);
  mark_batch(m, op, n);
  mark_ragged(m, op, n);
  return 0;
}

/* dep[v]: value v is a float initializer that trains (req->trained, or
 * every one without it). */
static int mark_trained(const ty__model *m, const ty_plan_request *req, bool *dep, char *err,
                        size_t err_len) {
  for (size_t v = 0; v < m->n_values; v++) {
    const ty_graph_value *gv = ty_graph_value_at(m->g, (int)v);
    dep[v] = !req->trained && gv->init && gv->dtype == TY_DTYPE_F32;
  }
  for (size_t i = 0; req->trained && i < req->n_trained; i++) {
    int v = ty_graph_find_value(m->g, req->trained[i]);
    const ty_graph_value *gv = v == TY_NO_VALUE ? NULL : ty_graph_value_at(m->g, v);
    if (!gv || !gv->init || gv->dtype != TY_DTYPE_F32)
      return ty_errf(err, err_len, TY_EINVAL,
                     "trained[%zu]: \"%s\" is not a float initializer of the graph", i,
                     req->trained[i]);
    dep[v] = true;
  }
  return 0;
}

/* Which values carry a gradient: those that depend on a float initializer
 * that trains and that the loss depends on, both through differentiable
 * inputs. */
static int mark_grads(ty__model *m, const ty_plan_request *req, char *err, size_t err_len) {
  size_t nn = m->n_nodes;
  bool *dep = calloc(m->n_values + 1, sizeof *dep), *reach = calloc(m->n_values + 1, sizeof *reach);
  int rc = TY_ENOMEM;
  if (!dep || !reach) goto done;
  if ((rc = mark_trained(m, req, dep, err, err_len)) != 0) goto done;
  reach[m->loss] = true;
  for (size_t k = 0; k < nn; k++) {
    const ty_graph_node *n = ty_graph_node_at(m->g, m->order[k]);
    bool any = false;
    for (int i = 0; i < n->n_inputs; i++) {
      int v = n->inputs[i];
      if (v != TY_NO_VALUE && dep[v] &&
          ty__slot_differentiable(n, i, ty_graph_value_at(m->g, v)->dtype))
        any = true;
    }
    for (int o = 0; o < n->n_outputs; o++)
      if (n->outputs[o] != TY_NO_VALUE) dep[n->outputs[o]] = any;
  }
  for (size_t k = nn; k-- > 0;) {
    const ty_graph_node *n = ty_graph_node_at(m->g, m->order[k]);
    bool any = false;
    for (int o = 0; o < n->n_outputs; o++)
      any |= n->outputs[o] != TY_NO_VALUE && reach[n->outputs[o]];
    for (int i = 0; any && i < n->n_inputs; i++) {
      int v = n->inputs[i];
      if (v != TY_NO_VALUE && ty__slot_differentiable(n, i, ty_graph_value_at(m->g, v)->dtype))
        reach[v] = true;
    }
  }
  for (size_t v = 0; v < m->n_values; v++) {
    const ty_graph_value *gv = ty_graph_value_at(m->g, (int)v);
    m->values[v].frozen = gv->init && gv->dtype == TY_DTYPE_F32 && reach[v] && !dep[v];
    m->values[v].grad = dep[v] && reach[v];
    if (m->values[v].kind == TY__V_CONST && ty_graph_value_at(m->g, (int)v)->init &&
        m->values[v].grad)
      m->values[v].kind = TY__V_PARAM;
  }
done:
  free(dep);
  free(reach);
  return rc;
}

static int find_loss(ty__model *m, const char *name, char *err, size_t err_len) {
  if (name) {
    int want = ty_graph_find_value(m->g, name);
    if (want == TY_NO_VALUE)
      return ty_errf(err, err_len, TY_EINVAL, "loss: the graph has no value \"%s\"", name);
    if (ty__numel(&m->values[want].shape) != 1 ||
        ty_graph_value_at(m->g, want)->dtype != TY_DTYPE_F32)
      return ty_errf(err, err_len, TY_EINVAL, "loss: \"%s\" is not a one-element float value",
                     name);
    m->loss = want;
    return 0;
  }
  m->loss = TY_NO_VALUE;
  for (size_t i = 0; i < ty_graph_n_outputs(m->g); i++) {
    int v = ty_graph_output(m->g, i);
    if (ty__numel(&m->values[v].shape) != 1 || ty_graph_value_at(m->g, v)->dtype != TY_DTYPE_F32)
      continue;
    if (m->loss != TY_NO_VALUE)
      return ty_errf(err, err_len, TY_EINVAL,
                     "loss: outputs \"%s\" and \"%s\" are both one-element; name the loss",
                     ty_graph_value_at(m->g, m->loss)->name, ty_graph_value_at(m->g, v)->name);
    m->loss = v;
  }
  if (m->loss == TY_NO_VALUE)
    return ty_errf(err, err_len, TY_EINVAL,
                   "loss: the graph has no one-element float output (forward + loss expected)");
  return 0;
}

static void finish_ops(ty__model *m) {
  for (size_t k = 0; k < m->n_nodes; k++) {
    const ty_graph_node *n = ty_graph_node_at(m->g, k);
    ty__op *op = &m->ops[k];
    for (int i = 0; i < n->n_inputs; i++) {
      int v = n->inputs[i];
      if (v == TY_NO_VALUE) continue;
      m->values[v].n_uses++;
      op->in_diff[i] =
          m->values[v].grad && ty__slot_differentiable(n, i, ty_graph_value_at(m->g, v)->dtype);
      op->backward |= op->in_diff[i];
      op->grad_inputs += op->in_diff[i];
    }
    m->n_fallback += op->fallback;
  }
  for (size_t v = 0; v < m->n_values; v++)
    if (m->values[v].kind == TY__V_CONST && ty_graph_value_at(m->g, (int)v)->init)
      m->const_bytes += (uint64_t)ty__value_bytes(&m->values[v]);
}

int ty__model_build(const ty_graph *g, const ty_plan_request *req, char *err, size_t err_len,
                    ty__model *out) {
  ty__model *m = out;
  memset(m, 0, sizeof *m);
  m->g = g;
  m->batch = req->batch;
  m->separate_reads = req->separate_reads;
  m->state_copies = 1.0 + (double)req->optimizer; /* the gradient, then SGD 0, momentum 1, Adam 2 */
  m->n_nodes = ty_graph_n_nodes(g);
  m->n_values = ty_graph_n_values(g);
  m->ops = calloc(m->n_nodes + 1, sizeof *m->ops);
  m->order = calloc(m->n_nodes + 1, sizeof *m->order);
  m->values = calloc(m->n_values + 1, sizeof *m->values);
  if (!m->ops || !m->order || !m->values) return TY_ENOMEM;
  if (m->n_nodes == 0) return ty_errf(err, err_len, TY_EINVAL, "graph: it has no nodes");
  if (ty_graph_topo_order(g, m->order) != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "graph: it has a cycle or reads a value nothing writes");
  int rc = init_values(m, err, err_len);
  for (size_t k = 0; rc == 0 && k < m->n_nodes; k++)
    rc = model_node(m, m->order[k], err, err_len);
  if (rc == 0) rc = find_loss(m, req->loss, err, err_len);
  if (rc == 0) rc = mark_grads(m, req, err, err_len);
  if (rc == 0) finish_ops(m);
  return rc;
}

void ty__model_close(ty__model *m) {
  for (size_t k = 0; m->ops && k < m->n_nodes; k++) {
    free(m->ops[k].in);
    free(m->ops[k].in_diff);
    free(m->ops[k].out_full);
  }
  free(m->ops);
  free(m->order);
  free(m->values);
  free(m->at_batch);
  memset(m, 0, sizeof *m);
}
