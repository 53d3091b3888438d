/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Attention's scale and mask folded into its Softmax (ty__fold_softmax;
 * see fold_softmax.h). PyTorch exports `softmax(masked_fill(q @ k^T *
 * c, mask == 0, -inf))` as Mul -> Where -> Softmax: three passes over the
 * scores forward and three backward, each with a tensor of its own. The
 * pass matches, backwards from a Softmax over the last axis:
 *   mask:  Where(cond, fill, s), Where(cond, s, fill) with fill a scalar
 *          constant, or Add(s, m) / Add(m, s) with m a float mask no
 *          gradient is needed through (optional);
 *   scale: Mul(s, c), Mul(c, s) or Div(s, c) with c a scalar constant
 *          (optional; at least one of the two);
 * where each matched node's output is read by the next one only, and
 * neither the mask nor a constant grows the scores' shape (a mask whose
 * shape import could not infer is bounded through the Slices and
 * comparisons that made it, else left alone). The Softmax then reads the scale's input (and the
 * mask), the attributes say how to apply them, and the matched nodes go.
 * Run before autodiff, so the gradient is the folded Softmax's.
 */
#include "ops/fold_softmax.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

typedef struct pass {
  ty_graph *g;
  int *readers;  /* per value: how many node inputs read it */
  bool *trained; /* per value: a trained initializer */
  bool *grad;    /* per value: depends on a trained initializer */
  bool *drop;    /* per node */
} pass;

/* The node producing id when only one node reads id and it is no graph
 * output (so the node can go); NULL otherwise. */
static const ty_graph_node *sole_producer(const pass *p, int id) {
  if (id == TY_NO_VALUE) return NULL;
  const ty_graph_value *v = &p->g->values[id];
  if (v->producer < 0 || v->is_output || p->readers[id] != 1) return NULL;
  return &p->g->nodes[v->producer];
}

/* The value of a scalar float constant (a Constant node's, or an
 * initializer nobody trains) that cannot grow a tensor of rank r. */
static bool scalar_const(const pass *p, int id, int r, float *out) {
  if (id == TY_NO_VALUE) return false;
  const ty_graph_value *v = &p->g->values[id];
  const ty_tensor *t = v->init;
  if (v->producer >= 0 && p->g->nodes[v->producer].op == TY_OP_CONSTANT) {
    const ty_graph_attr *a = ty_graph_node_attr(&p->g->nodes[v->producer], "value");
    t = a && a->type == TY_ATTR_TENSOR ? a->t : NULL;
  } else if (p->trained[id]) {
    return false;
  }
  if (!t || t->dtype != TY_DTYPE_F32 || ty_tensor_numel(t) != 1 || t->shape.rank > r) return false;
  *out = ty_tensor_f32(t)[0];
  return true;
}

/* An upper bound of dim d (counted from the last, 1 = the last) of value
 * id when its shape is not known, looking back through the ops that keep
 * or shrink a shape (Slice, Cast, Not, Identity, a comparison with a
 * scalar) to one that is; -1 when there is none. */
static int64_t dim_bound(const ty_graph *g, int id, int d) {
  for (int hops = 0; hops < 16 && id != TY_NO_VALUE; hops++) {
    const ty_graph_value *v = &g->values[id];
    if (v->shape.rank >= 0 && d > v->shape.rank) return 1;
    if (v->shape.rank >= 0 && v->shape.dims[v->shape.rank - d] >= 0)
      return v->shape.dims[v->shape.rank - d];
    if (v->producer < 0) return -1;
    const ty_graph_node *n = &g->nodes[v->producer];
    bool compare = n->op == TY_OP_EQUAL || n->op == TY_OP_LESS || n->op == TY_OP_GREATER ||
                   n->op == TY_OP_LESS_EQUAL || n->op == TY_OP_GREATER_EQUAL;
    if (compare && n->n_inputs == 2 && n->inputs[1] != TY_NO_VALUE &&
        g->values[n->inputs[1]].shape.rank == 0) {
      id = n->inputs[0];
      continue;
    }
    if (n->op != TY_OP_SLICE && n->op != TY_OP_CAST && n->op != TY_OP_NOT &&
        n->op != TY_OP_IDENTITY)
      return -1;
    id = n->n_inputs > 0 ? n->inputs[0] : TY_NO_VALUE;
  }
  return -1;
}

/* Mask value mk broadcasts into the scores s without growing them: each
 * of its dims is 1 or the scores', or unknown where the scores' dim is
 * known and above 1 (a mask dim that differed would fail the unfolded
 * op too), or bounded by 1. */
static bool mask_fits(const ty_graph *g, int mk, int s) {
  const ty_shape *m = &g->values[mk].shape, *x = &g->values[s].shape;
  if (m->rank < 0 || x->rank < 1 || m->rank > x->rank) return false;
  for (int d = 1; d <= m->rank; d++) {
    int64_t md = m->dims[m->rank - d], sd = x->dims[x->rank - d];
    if (md == 1 || (md == sd && md != TY_DIM_UNKNOWN)) continue;
    if (md >= 0) return false;
    if (sd > 1 || dim_bound(g, mk, d) == 1) continue;
    return false;
  }
  return true;
}

typedef struct match {
  int x;    /* what the Softmax reads instead */
  int mask; /* the mask value or TY_NO_VALUE */
  int mask_kind, scale_op;
  float fill, scale;
  long mask_node, scale_node; /* node indices, -1 when absent */
} match;

/* The mask step producing id (into m); false when there is none. */
static bool match_mask(const pass *p, int id, match *m) {
  const ty_graph_node *n = sole_producer(p, id);
  if (!n || n->n_inputs != 2 + (n->op == TY_OP_WHERE)) return false;
  const int *in = n->inputs;
  const ty_graph *g = p->g;
  if (n->op == TY_OP_WHERE) {
    if (in[0] == TY_NO_VALUE || g->values[in[0]].dtype != TY_DTYPE_BOOL) return false;
    for (int side = 1; side <= 2; side++) {
      int s = in[side == 1 ? 2 : 1];
      if (s != TY_NO_VALUE && g->values[s].dtype == TY_DTYPE_F32 && mask_fits(g, in[0], s) &&
          scalar_const(p, in[side], g->values[s].shape.rank, &m->fill)) {
        m->mask_kind = side == 1 ? TY__SM_MASK_FILL_TRUE : TY__SM_MASK_FILL_FALSE;
        m->x = s;
        m->mask = in[0];
        m->mask_node = g->values[id].producer;
        return true;
      }
    }
    return false;
  }
  if (n->op != TY_OP_ADD || in[0] == TY_NO_VALUE || in[1] == TY_NO_VALUE) return false;
  for (int k = 0; k < 2; k++) { /* k: the scores' side */
    int s = in[k], mk = in[1 - k];
    if (p->grad[mk] || !p->grad[s] || g->values[mk].dtype != TY_DTYPE_F32 ||
        g->values[s].dtype != TY_DTYPE_F32 || !mask_fits(g, mk, s))
      continue;
    m->mask_kind = TY__SM_MASK_ADD;
    m->x = s;
    m->mask = mk;
    m->mask_node = g->values[id].producer;
    return true;
  }
  return false;
}

/* The scale step producing id (into m); false when there is none. */
static bool match_scale(const pass *p, int id, match *m) {
  const ty_graph_node *n = sole_producer(p, id);
  if (!n || n->n_inputs != 2 || (n->op != TY_OP_MUL && n->op != TY_OP_DIV) || n->opset < 7)
    return false;
  for (int k = 0; k < (n->op == TY_OP_MUL ? 2 : 1); k++) { /* k: the scores' side */
    int s = n->inputs[k];
    if (s == TY_NO_VALUE || p->g->values[s].dtype != TY_DTYPE_F32 ||
        p->g->values[s].shape.rank < 1 ||
        !scalar_const(p, n->inputs[1 - k], p->g->values[s].shape.rank, &m->scale))
      continue;
    m->scale_op = n->op == TY_OP_MUL ? TY__SM_SCALE_MUL : TY__SM_SCALE_DIV;
    m->x = s;
    m->scale_node = p->g->values[id].producer;
    return true;
  }
  return false;
}

/* A Softmax over the last axis of a float tensor, not yet folded. */
static bool plain_softmax(const ty_graph *g, const ty_graph_node *n) {
  if (n->op != TY_OP_SOFTMAX || n->n_inputs != 1 || n->inputs[0] == TY_NO_VALUE ||
      ty__smf_folded(n))
    return false;
  const ty_graph_value *x = &g->values[n->inputs[0]];
  int r = x->shape.rank, axis;
  if (x->dtype != TY_DTYPE_F32 || r < 1) return false;
  int64_t a = ty_graph_node_attr_int(n, "axis", n->opset < 13 ? 1 : -1);
  return ty_axis_normalize(a, r, &axis) == 0 && axis == r - 1;
}

/* Softmax node k rewritten to read m; its matched nodes marked to go. */
static int rewrite(pass *p, size_t k, const match *m) {
  ty_graph *g = p->g;
  ty_graph_node *n = &g->nodes[k];
  int rc = 0;
  if (m->mask != TY_NO_VALUE) {
    int *in = realloc(n->inputs, 2 * sizeof *in);
    if (!in) return TY_ENOMEM;
    n->inputs = in;
    n->n_inputs = 2;
    in[1] = m->mask;
    rc = ty_graph_node_set_int(g, k, TY__SM_MASK, m->mask_kind);
    if (rc == 0) rc = ty_graph_node_set_float(g, k, TY__SM_FILL, m->fill);
    p->drop[m->mask_node] = true;
  }
  if (rc == 0 && m->scale_op != TY__SM_SCALE_NONE) {
    rc = ty_graph_node_set_int(g, k, TY__SM_SCALE_OP, m->scale_op);
    if (rc == 0) rc = ty_graph_node_set_float(g, k, TY__SM_SCALE, m->scale);
    p->drop[m->scale_node] = true;
  }
  g->nodes[k].inputs[0] = m->x;
  return rc;
}

/* Readers, trained initializers and what depends on them (nodes are in
 * topological order). */
static void scan(pass *p, const int *trained, size_t n_trained) {
  const ty_graph *g = p->g;
  for (size_t i = 0; i < n_trained; i++)
    if (trained[i] >= 0 && (size_t)trained[i] < g->n_values)
      p->trained[trained[i]] = p->grad[trained[i]] = true;
  for (size_t k = 0; k < g->n_nodes; k++) {
    const ty_graph_node *n = &g->nodes[k];
    bool any = false;
    for (int i = 0; i < n->n_inputs; i++)
      if (n->inputs[i] != TY_NO_VALUE) {
        p->readers[n->inputs[i]]++;
        any |= p->grad[n->inputs[i]];
      }
    for (int o = 0; any && o < n->n_outputs; o++)
      if (n->outputs[o] != TY_NO_VALUE) p->grad[n->outputs[o]] = true;
  }
}

static int fold_all(pass *p, size_t *folded) {
  for (size_t k = 0; k < p->g->n_nodes; k++) {
    if (!plain_softmax(p->g, &p->g->nodes[k])) continue;
    match m = {
        .x = p->g->nodes[k].inputs[0], .mask = TY_NO_VALUE, .mask_node = -1, .scale_node = -1};
    bool masked = match_mask(p, m.x, &m);
    bool scaled = match_scale(p, m.x, &m);
    if (!masked && !scaled) continue;
    int rc = rewrite(p, k, &m);
    if (rc != 0) return rc;
    (*folded)++;
  }
  return *folded ? ty__graph_drop_nodes(p->g, p->drop) : 0;
}

int ty__fold_softmax(ty_graph *g, const int *trained, size_t n_trained, size_t *folded) {
  *folded = 0;
  pass p = {.g = g,
            .readers = calloc(g->n_values + 1, sizeof *p.readers),
            .trained = calloc(g->n_values + 1, sizeof *p.trained),
            .grad = calloc(g->n_values + 1, sizeof *p.grad),
            .drop = calloc(g->n_nodes + 1, sizeof *p.drop)};
  int rc = TY_ENOMEM;
  if (p.readers && p.trained && p.grad && p.drop) {
    scan(&p, trained, n_trained);
    rc = fold_all(&p, folded);
  }
  free(p.readers);
  free(p.trained);
  free(p.grad);
  free(p.drop);
  return rc;
}
