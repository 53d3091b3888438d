/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared reads: an activation read by several ops that want it in one
 * layout is resharded once. In torch's exported GELU, fc1's output feeds
 * both Div and Mul; under a row-split fc1 each would otherwise all-reduce
 * the same partial sums. The first reader (lowest node index, then input:
 * the order ops/shard builds its local graph in) owns the collectives; the
 * plan lists them on it alone, ops/shard gives every other reader its
 * result, and backward sums the readers' gradients (still partial over
 * the same axes) before the one reshard back.
 * The cost graph joins a writer to each reader by its own edge, so the
 * solver charges every read; the plan's step time and the alternatives'
 * take back what it charged twice (ty__shared_saving).
 */
#include "ops/plan/plan_internal.h"

#include <stdlib.h>
#include <string.h>

/* The layout the vertex writing activation v holds it in; false when no
 * vertex writes it. */
static bool writer_lay(const ty__space *s, const int *assign, int v, ty__lay *out) {
  const ty__model *m = s->model;
  const ty__value *val = &m->values[v];
  if (val->kind != TY__V_ACT || val->producer < 0 || s->vertex_of_node[val->producer] < 0)
    return false;
  const ty_graph_node *p = ty_graph_node_at(m->g, (size_t)val->producer);
  int u = s->vertex_of_node[val->producer], o = 0;
  while (o < p->n_outputs && p->outputs[o] != v)
    o++;
  *out = ty__choice_lays(s, u, assign[u])[p->n_inputs + o];
  return true;
}

/* A read's key: its layout, the axes its gradient comes back partial over
 * (bit 20: whether one comes back at all). A read without a gradient may
 * share a read with one, not the other way round: its reshard would have no
 * way back. ops/shard/local.c (shared_input) matches reads the same way. */
static uint32_t read_key(const ty__space *s, const int *assign, size_t node, int i) {
  const ty__op *op = &s->model->ops[node];
  int vx = s->vertex_of_node[node];
  uint32_t g = ty__choice_gpart(s, vx, assign[vx], i);
  return ty__choice_lays(s, vx, assign[vx])[i] | g << 18 | (uint32_t)op->in_diff[i] << 20;
}

static bool key_shares(uint32_t owner, uint32_t key) {
  uint32_t diff = 1u << 20;
  return (owner & ~diff) == (key & ~diff) && ((owner & diff) || !(key & diff));
}

/* What the edge charged for read (node, i) of v held in src. */
static double read_cost(const ty__space *s, const int *assign, size_t node, int i, int v,
                        ty__lay src) {
  const ty__value *val = &s->model->values[v];
  int vx = s->vertex_of_node[node];
  ty__lay q = ty__choice_lays(s, vx, assign[vx])[i];
  double c = ty__reshard(&s->mesh, &val->shape, val->elem, src, q, NULL, NULL);
  if (s->model->ops[node].in_diff[i])
    c += ty__reshard(&s->mesh, &val->shape, val->elem,
                     q | (ty__lay)ty__choice_gpart(s, vx, assign[vx], i) << TY__LAY_PARTIAL_SHIFT,
                     ty__lay_whole(src), NULL, NULL);
  return c;
}

int ty__shared_find(const ty__space *s, const int *assign, ty__shared_reads *out) {
  const ty__model *m = s->model;
  memset(out, 0, sizeof *out);
  size_t total = 0;
  out->base = malloc((m->n_nodes + 1) * sizeof *out->base);
  out->node_saved = calloc(m->n_nodes + 1, sizeof *out->node_saved);
  if (!out->base || !out->node_saved) goto fail;
  for (size_t k = 0; k < m->n_nodes; k++) {
    out->base[k] = total;
    total += (size_t)ty_graph_node_at(m->g, k)->n_inputs;
  }
  out->base[m->n_nodes] = total;
  /* head[v]: v's latest read so far; next[slot]: the read before it */
  long *head = malloc((m->n_values + 1) * sizeof *head), *next = malloc((total + 1) * sizeof *next);
  uint32_t *keys = malloc((total + 1) * sizeof *keys);
  out->dup = calloc(total + 1, sizeof *out->dup);
  if (!head || !next || !keys || !out->dup) {
    free(head);
    free(next);
    free(keys);
    goto fail;
  }
  for (size_t v = 0; v < m->n_values; v++)
    head[v] = -1;
  for (size_t node = 0; node < m->n_nodes; node++) {
    const ty_graph_node *n = ty_graph_node_at(m->g, node);
    ty__lay src;
    /* A Shape reads no element (the shard gives it the global shape as a
     * constant), so it can own no reshard another reader relies on. */
    if (n->op == TY_OP_SHAPE) continue;
    for (int i = 0; !m->separate_reads && s->vertex_of_node[node] >= 0 && i < n->n_inputs; i++) {
      int v = n->inputs[i];
      if (v == TY_NO_VALUE || !writer_lay(s, assign, v, &src)) continue;
      size_t slot = out->base[node] + (size_t)i;
      uint32_t key = keys[slot] = read_key(s, assign, node, i);
      for (long r = head[v]; r >= 0 && !out->dup[slot]; r = next[r])
        out->dup[slot] = key_shares(keys[r], key);
      if (out->dup[slot]) {
        double c = read_cost(s, assign, node, i, v, src);
        out->node_saved[node] += c;
        out->saved += c;
        continue; /* the chain keeps owners only */
      }
      next[slot] = head[v];
      head[v] = (long)slot;
    }
  }
  free(head);
  free(next);
  free(keys);
  return 0;
fail:
  ty__shared_close(out);
  return TY_ENOMEM;
}

void ty__shared_close(ty__shared_reads *r) {
  free(r->base);
  free(r->dup);
  free(r->node_saved);
  memset(r, 0, sizeof *r);
}

double ty__shared_saving(const ty__space *s, const int *assign) {
  ty__shared_reads r;
  if (ty__shared_find(s, assign, &r) != 0) return 0;
  double saved = r.saved;
  ty__shared_close(&r);
  return saved;
}
