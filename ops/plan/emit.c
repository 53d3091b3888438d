/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The chosen strategies as a ty_plan: per-op layouts and strategy names,
 * the parameters' stored layouts, and the collectives in execution order,
 * each from the same reshard function whose cost the search minimised (so
 * the plan's collectives and its predicted time cannot disagree). Also the
 * plan's lifecycle and the helpers an executor uses to find its slice and
 * its communicators. (codec.c owns the plan's lifecycle.)
 */
#include "ops/plan/plan_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct colls {
  ty_plan_collective *v;
  size_t n, cap;
} colls;

typedef struct emitter {
  const ty__space *s;
  const int *assign;
  ty_plan *p;
  colls c;
  ty__shared_reads sh; /* reads that run no reshard of their own (shared.c) */
} emitter;

static bool shared_read(const emitter *em, size_t node, int i) {
  return em->sh.dup[em->sh.base[node] + (size_t)i];
}

/* A gradient synchronisation's seconds are charged 1 / M per micro-batch
 * (plan_internal.h: sync_micro); the collective runs once per step. */
static double sync_share(const emitter *em, ty_plan_phase ph) {
  int m = em->s->model->sync_micro;
  return ph == TY_PLAN_GRAD_SYNC && m > 1 ? m : 1;
}

static int push_steps(emitter *em, const ty__step *st, int n, ty_plan_phase ph, int value,
                      const char *tensor, int node, int input) {
  for (int i = 0; i < n; i++) {
    colls *c = &em->c;
    if (c->n == c->cap) {
      size_t nc = c->cap ? 2 * c->cap : 64;
      ty_plan_collective *nv = realloc(c->v, nc * sizeof *nv);
      if (!nv) return TY_ENOMEM;
      c->v = nv;
      c->cap = nc;
    }
    char *name = strdup(tensor);
    if (!name) return TY_ENOMEM;
    c->v[c->n++] = (ty_plan_collective){.kind = (ty_plan_coll_kind)st[i].kind,
                                        .phase = ph,
                                        .mesh_axis = st[i].axis,
                                        .value = value,
                                        .tensor = name,
                                        .node = node,
                                        .input = input,
                                        .dim = st[i].dim,
                                        .src_dim = st[i].src_dim,
                                        .bytes = (uint64_t)(st[i].bytes + 0.5),
                                        .seconds = st[i].seconds * sync_share(em, ph)};
  }
  return 0;
}

/* The layout the writer of input i of node holds it in; false when no
 * vertex writes it (data, constants, parameters read once). */
static bool source_lay(const emitter *em, int v, ty__lay *out) {
  const ty__space *s = em->s;
  const ty__value *val = &s->model->values[v];
  if (val->kind == TY__V_PARAM && s->vertex_of_value[v] >= 0) {
    int u = s->vertex_of_value[v];
    *out = *ty__choice_lays(s, u, em->assign[u]);
    return true;
  }
  if (val->kind != TY__V_ACT || s->vertex_of_node[val->producer] < 0) return false;
  const ty_graph_node *p = ty_graph_node_at(s->model->g, (size_t)val->producer);
  int u = s->vertex_of_node[val->producer], o = 0;
  while (o < p->n_outputs && p->outputs[o] != v)
    o++;
  *out = ty__choice_lays(s, u, em->assign[u])[p->n_inputs + o];
  return true;
}

static int emit_bn(emitter *em, const ty__op *op, int vx, ty_plan_phase ph) {
  uint8_t axes = ty__bn_axes(op, &em->s->choice[vx].strat[em->assign[vx]]);
  char name[300];
  snprintf(name, sizeof name, "%s:batch_stats",
           ty_graph_node_at(em->s->model->g, (size_t)op->node)->name);
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    if (!(axes >> a & 1u)) continue;
    double bytes = 8.0 * (double)op->bn_channels;
    ty__step st = {TY_PLAN_ALL_REDUCE,
                   (uint8_t)a,
                   -1,
                   -1,
                   bytes,
                   ty__coll_seconds(&em->s->mesh, a, TY_PLAN_ALL_REDUCE, bytes)};
    int rc = push_steps(em, &st, 1, ph, -1, name, op->node, -1);
    if (rc != 0) return rc;
  }
  return 0;
}

static int emit_forward(emitter *em, size_t node) {
  const ty__space *s = em->s;
  const ty__op *op = &s->model->ops[node];
  const ty_graph_node *n = ty_graph_node_at(s->model->g, node);
  int vx = s->vertex_of_node[node];
  if (vx < 0) return 0;
  const ty__lay *lay = ty__choice_lays(s, vx, em->assign[vx]);
  for (int i = 0; i < op->n_in; i++) {
    int v = n->inputs[i], k;
    ty__lay src;
    if (v == TY_NO_VALUE || shared_read(em, node, i) || !source_lay(em, v, &src)) continue;
    const ty__value *val = &s->model->values[v];
    ty__step st[TY__MAX_STEPS];
    ty__reshard(&s->mesh, &val->shape, val->elem, src, lay[i], st, &k);
    int rc = push_steps(em, st, k, TY_PLAN_FORWARD, v, ty_graph_value_at(s->model->g, v)->name,
                        (int)node, i);
    if (rc != 0) return rc;
  }
  return op->bn_channels ? emit_bn(em, op, vx, TY_PLAN_FORWARD) : 0;
}

static int emit_backward(emitter *em, size_t node) {
  const ty__space *s = em->s;
  const ty__op *op = &s->model->ops[node];
  const ty_graph_node *n = ty_graph_node_at(s->model->g, node);
  int vx = s->vertex_of_node[node], rc = 0;
  if (vx < 0 || !op->backward) return 0;
  if (op->bn_channels && (rc = emit_bn(em, op, vx, TY_PLAN_BACKWARD)) != 0) return rc;
  const ty__lay *lay = ty__choice_lays(s, vx, em->assign[vx]);
  for (int i = op->n_in; i-- > 0 && rc == 0;) {
    int v = n->inputs[i], k = 0;
    if (v == TY_NO_VALUE || !op->in_diff[i] || shared_read(em, node, i)) continue;
    const ty__value *val = &s->model->values[v];
    ty__lay g = lay[i] | (ty__lay)ty__choice_gpart(s, vx, em->assign[vx], i)
                             << TY__LAY_PARTIAL_SHIFT,
            src;
    ty__step st[TY__MAX_STEPS];
    const ty__mesh *mesh = val->kind == TY__V_PARAM ? &s->sync : &s->mesh;
    if (source_lay(em, v, &src))
      ty__reshard(mesh, &val->shape, val->elem, g, ty__lay_whole(src), st, &k);
    else if (val->kind == TY__V_PARAM)
      ty__reshard(mesh, &val->shape, val->elem, g, lay[i], st, &k);
    ty_plan_phase ph = val->kind == TY__V_PARAM ? TY_PLAN_GRAD_SYNC : TY_PLAN_BACKWARD;
    rc = push_steps(em, st, k, ph, v, ty_graph_value_at(s->model->g, v)->name, (int)node, i);
  }
  return rc;
}

/* Partial graph outputs (a loss over a split batch) are summed so every
 * rank reports the full value. Nothing waits for that sum, so it rides
 * with the gradient buckets and is costed like them (bandwidth only, which
 * for a scalar is nothing); the search does not charge it. */
static int emit_outputs(emitter *em) {
  const ty__model *m = em->s->model;
  for (size_t i = 0; i < ty_graph_n_outputs(m->g); i++) {
    int v = ty_graph_output(m->g, i), k;
    ty__lay src;
    if (!source_lay(em, v, &src) || !ty__lay_partial(src)) continue;
    ty__step st[TY__MAX_STEPS];
    ty__reshard(&em->s->sync, &m->values[v].shape, m->values[v].elem, src, ty__lay_whole(src), st,
                &k);
    int rc = push_steps(em, st, k, TY_PLAN_FORWARD, v, ty_graph_value_at(m->g, v)->name, -1, -1);
    if (rc != 0) return rc;
  }
  return 0;
}

/* -1 marks an absent optional input or output in the plan's layouts. */
static int value_rank(const ty__model *m, int v) {
  return v == TY_NO_VALUE ? -1 : m->values[v].shape.rank;
}

/* Communication charged to vertex vx: its own (vertex time less compute)
 * and its incoming edges. */
static double vertex_comm(const emitter *em, int vx, double compute) {
  const ty__cg *cg = &em->s->cg;
  double c = cg->v[vx].time[em->assign[vx]] - compute;
  for (int e = 0; e < cg->n_e; e++) {
    const ty__cg_edge *ed = &cg->e[e];
    if (ed->v == vx)
      c += ed->cost[(size_t)em->assign[ed->u] * (size_t)cg->v[vx].n + (size_t)em->assign[vx]];
  }
  return c > 0 ? c : 0;
}

static int fill_op(emitter *em, size_t node, double *compute_total) {
  const ty__space *s = em->s;
  const ty__model *m = s->model;
  const ty__op *op = &m->ops[node];
  const ty_graph_node *n = ty_graph_node_at(m->g, node);
  ty_plan_op *po = &em->p->ops[node];
  int vx = s->vertex_of_node[node];
  char strat[160] = "replicated";
  po->node = (int)node;
  po->op = n->op;
  po->fallback = op->fallback;
  po->n_inputs = n->n_inputs;
  po->n_outputs = n->n_outputs;
  po->name = strdup(n->name);
  po->inputs = calloc((size_t)n->n_inputs + 1, sizeof *po->inputs);
  po->outputs = calloc((size_t)n->n_outputs + 1, sizeof *po->outputs);
  po->note = op->fallback ? strdup(op->note) : NULL;
  if (!po->name || !po->inputs || !po->outputs || (op->fallback && !po->note)) return TY_ENOMEM;
  for (int o = 0; o < n->n_outputs; o++)
    po->outputs[o].rank = value_rank(m, n->outputs[o]);
  for (int i = 0; i < n->n_inputs; i++)
    po->inputs[i].rank = value_rank(m, n->inputs[i]);
  if (vx >= 0) {
    const ty__strat *st = &s->choice[vx].strat[em->assign[vx]];
    const ty__lay *lay = ty__choice_lays(s, vx, em->assign[vx]);
    for (int i = 0; i < n->n_inputs; i++) {
      ty__lay_to_public(lay[i], po->inputs[i].rank, &po->inputs[i]);
      if (po->inputs[i].rank >= 0)
        po->inputs[i].grad_partial = ty__choice_gpart(s, vx, em->assign[vx], i);
    }
    for (int o = 0; o < n->n_outputs; o++)
      ty__lay_to_public(lay[n->n_inputs + o], po->outputs[o].rank, &po->outputs[o]);
    ty__strat_describe(m, op, st, &s->mesh, strat, sizeof strat);
    po->compute_s = ty__op_compute(s, op, st);
    po->comm_s = fmax(vertex_comm(em, vx, po->compute_s) - em->sh.node_saved[node], 0);
    po->memory_bytes = (uint64_t)s->cg.v[vx].mem[em->assign[vx]];
    *compute_total += po->compute_s;
  }
  return (po->strategy = strdup(strat)) ? 0 : TY_ENOMEM;
}

/* Each trainable parameter's stored layout: its vertex's when shared, else
 * the layout its one reader wants. */
static int fill_params(emitter *em) {
  const ty__space *s = em->s;
  const ty__model *m = s->model;
  size_t np = 0;
  for (size_t v = 0; v < m->n_values; v++)
    np += m->values[v].kind == TY__V_PARAM;
  em->p->params = calloc(np + 1, sizeof *em->p->params);
  if (!em->p->params) return TY_ENOMEM;
  for (size_t v = 0; v < m->n_values; v++) {
    if (m->values[v].kind != TY__V_PARAM) continue;
    ty_plan_param *pp = &em->p->params[em->p->n_params++];
    pp->value = (int)v;
    if (!(pp->name = strdup(ty_graph_value_at(m->g, (int)v)->name))) return TY_ENOMEM;
    ty__lay l = 0;
    if (s->vertex_of_value[v] >= 0)
      l = *ty__choice_lays(s, s->vertex_of_value[v], em->assign[s->vertex_of_value[v]]);
    for (size_t node = 0; s->vertex_of_value[v] < 0 && node < m->n_nodes; node++) {
      const ty_graph_node *n = ty_graph_node_at(m->g, node);
      int vx = s->vertex_of_node[node];
      for (int i = 0; vx >= 0 && i < n->n_inputs; i++)
        if (n->inputs[i] == (int)v) l = ty__choice_lays(s, vx, em->assign[vx])[i];
    }
    ty__lay_to_public(l, m->values[v].shape.rank, &pp->layout);
  }
  return 0;
}

int ty__emit(const ty__space *s, const int *assign, ty_plan *p) {
  const ty__model *m = s->model;
  emitter em = {.s = s, .assign = assign, .p = p};
  p->devices = s->mesh.n[0] * s->mesh.n[1];
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    p->mesh[a] = s->mesh.n[a];
    p->axis_bw[a] = s->mesh.bw[a];
    p->axis_latency_s[a] = s->mesh.lat[a];
  }
  p->batch = m->batch;
  p->n_ops = m->n_nodes;
  p->n_fallback = m->n_fallback;
  if (!(p->ops = calloc(m->n_nodes + 1, sizeof *p->ops))) return TY_ENOMEM;
  double compute = 0, mem;
  int rc = ty__shared_find(s, assign, &em.sh);
  for (size_t node = 0; rc == 0 && node < m->n_nodes; node++)
    rc = fill_op(&em, node, &compute);
  if (rc == 0) rc = fill_params(&em);
  for (size_t k = 0; rc == 0 && k < m->n_nodes; k++)
    rc = emit_forward(&em, m->order[k]);
  if (rc == 0) rc = emit_outputs(&em);
  for (size_t k = m->n_nodes; rc == 0 && k-- > 0;)
    rc = emit_backward(&em, m->order[k]);
  p->collectives = em.c.v;
  p->n_collectives = em.c.n;
  ty__cg_eval(&s->cg, assign, &p->step_s, &mem);
  p->step_s = fmax(p->step_s - em.sh.saved, 0);
  ty__shared_close(&em.sh);
  p->compute_s = compute;
  p->comm_s = p->step_s > compute ? p->step_s - compute : 0;
  p->memory_bytes = (uint64_t)(mem + s->fixed_mem);
  return rc;
}

/* ---- lifecycle and executor helpers ------------------------------------------------------ */

void ty_plan_coords(const ty_plan *p, int rank, int out_coords[TY_PLAN_AXES]) {
  int local = rank % (p->mesh[0] * p->mesh[1]); /* the rank within its pipeline stage */
  out_coords[0] = local / p->mesh[1];
  out_coords[1] = local % p->mesh[1];
}

void ty_plan_axis_group(const ty_plan *p, int rank, int axis, int *out_ranks) {
  int c[TY_PLAN_AXES], size = p->mesh[0] * p->mesh[1], base = rank - rank % size;
  ty_plan_coords(p, rank, c);
  for (int i = 0; i < p->mesh[axis]; i++) {
    int cc[TY_PLAN_AXES] = {c[0], c[1]};
    cc[axis] = i;
    out_ranks[i] = base + cc[0] * p->mesh[1] + cc[1];
  }
}

void ty_plan_slice(const ty_plan *p, const ty_plan_layout *l, const ty_shape *full, int rank,
                   int64_t *out_start, int64_t *out_len) {
  int c[TY_PLAN_AXES];
  ty_plan_coords(p, rank, c);
  for (int d = 0; d < full->rank; d++) {
    out_start[d] = 0;
    out_len[d] = full->dims[d];
    for (int a = 0; d < l->rank && a < TY_PLAN_AXES; a++)
      if (l->dim_axes[d] >> a & 1u) {
        int64_t s, n;
        ty_plan_block(out_len[d], p->mesh[a], c[a], &s, &n);
        out_start[d] += s;
        out_len[d] = n;
      }
  }
}

void ty_plan_block(int64_t n, int64_t parts, int64_t index, int64_t *out_start, int64_t *out_len) {
  int64_t base = n / parts, extra = n % parts;
  *out_len = base + (index < extra);
  *out_start = index * base + (index < extra ? index : extra);
}
