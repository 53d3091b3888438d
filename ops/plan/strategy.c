/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Strategies on one mesh, and the cost graph they span.
 *
 * A strategy of an op assigns each mesh axis of more than one device to one
 * of the op's splittable loops, or to none; two axes may split one loop.
 * A loop must divide evenly, except a ragged loop (ty__loop_splits), which
 * splits ceil / floor and is charged its largest block. From the
 * assignment follow the layout of every
 * input (what the op needs) and output (what it writes, partial sums
 * marked), which inputs' gradients come back partial, the compute time
 * (the forward, plus one forward's worth per input that takes a gradient,
 * at most two, so backward is ~2x forward; divided by the devices that
 * split the work), the memory it keeps per device, and the communication
 * that is the op's own: gradient all-reduces of the parameters it alone
 * reads and BatchNormalization's statistics.
 *
 * Vertices of the cost graph are the ops (topological order) and, after
 * them, the parameters read by more than one op, whose choices are layouts
 * (a parameter read once is stored as its reader wants it). Edges join a
 * value's writer to each reader, and a shared parameter to its readers;
 * their matrices hold the forward reshard and, when the value carries a
 * gradient, the backward one. An edge's matrix is computed over the
 * distinct layouts on each side only: most strategies of an op lay a given
 * tensor out the same way.
 */
#include "ops/plan/plan_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GPART_SHIFT 18 /* a reader's key: layout | gradient-partial axes << 18 */

static ty__lay tensor_lay(const ty__tmap *t, int rank, const ty__strat *st, uint8_t *out_missing) {
  ty__lay l = 0;
  uint8_t missing = 0;
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    int loop = st->axis_loop[a];
    if (loop == TY__NO_LOOP) continue;
    bool found = false;
    for (int d = 0; d < rank && !found; d++)
      if (t->loop[d] == loop) {
        l |= (ty__lay)(1u << a) << (2 * d);
        found = true;
      }
    if (!found) missing |= (uint8_t)(1u << a);
  }
  *out_missing = missing;
  return l;
}

static int value_rank(const ty__model *m, int v) {
  return v == TY_NO_VALUE ? 0 : m->values[v].shape.rank;
}

/* Layouts of every input and output of op under st; gradient-partial axes
 * of every input. */
static void derive_layouts(const ty__model *m, const ty__op *op, const ty__strat *st, ty__lay *lay,
                           uint8_t *gpart) {
  const ty_graph_node *n = ty_graph_node_at(m->g, (size_t)op->node);
  uint8_t missing;
  for (int i = 0; i < op->n_in; i++) {
    lay[i] = tensor_lay(&op->in[i], value_rank(m, n->inputs[i]), st, &missing);
    gpart[i] = op->in_diff[i] ? missing : 0;
  }
  for (int o = 0; o < op->n_out; o++) {
    ty__lay l = tensor_lay(&op->out[o], value_rank(m, n->outputs[o]), st, &missing);
    if (!op->out_full[o]) l |= (ty__lay)missing << TY__LAY_PARTIAL_SHIFT;
    lay[op->n_in + o] = l;
  }
}

/* How many times faster the op runs split: the devices, or for an uneven
 * loop its size over its largest block (64 rows on 3: 64 / 22). */
static double split_devices(const ty__mesh *mesh, const ty__op *op, const ty__strat *st) {
  double d = 1;
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    int l = st->axis_loop[a];
    if (l == TY__NO_LOOP || (a > 0 && st->axis_loop[0] == l)) continue;
    int64_t parts = mesh->n[a];
    if (a == 0 && st->axis_loop[1] == l) parts *= mesh->n[1];
    int64_t size = op->loops[l].size;
    d *= size > 0 ? (double)size / (double)ty__ceil_div(size, parts) : (double)parts;
  }
  return d;
}

uint8_t ty__bn_axes(const ty__op *op, const ty__strat *st) {
  uint8_t ax = 0;
  for (int a = 0; op->bn_channels > 0 && a < TY_PLAN_AXES; a++)
    if (st->axis_loop[a] == 0) ax |= (uint8_t)(1u << a); /* loop 0 is N (model_nc) */
  return ax;
}

double ty__op_compute(const ty__space *s, const ty__op *op, const ty__strat *st) {
  double backward =
      op->grad_inputs < 2 ? op->grad_inputs : 2; /* dA and dB of a MatMul: one forward each */
  return op->flops * (1.0 + backward) / s->mesh.flops / split_devices(&s->mesh, op, st);
}

const ty__lay *ty__choice_lays(const ty__space *s, int vertex, int k) {
  const ty__vchoice *c = &s->choice[vertex];
  if (c->node < 0) return &c->lay[k];
  const ty__op *op = &s->model->ops[c->node];
  return &c->lay[(size_t)k * (size_t)(op->n_in + op->n_out)];
}

uint8_t ty__choice_gpart(const ty__space *s, int vertex, int k, int input) {
  const ty__vchoice *c = &s->choice[vertex];
  return c->gpart[(size_t)k * (size_t)s->model->ops[c->node].n_in + (size_t)input];
}

/* The op's own time and memory for one strategy. */
static void strategy_cost(const ty__space *s, const ty__op *op, int k, double *out_time,
                          double *out_mem, double *out_pmem) {
  const ty__model *m = s->model;
  const ty__vchoice *c = &s->choice[s->vertex_of_node[op->node]];
  const ty__strat *st = &c->strat[k];
  const ty__lay *lay = &c->lay[(size_t)k * (size_t)(op->n_in + op->n_out)];
  const uint8_t *gpart = &c->gpart[(size_t)k * (size_t)op->n_in];
  const ty_graph_node *n = ty_graph_node_at(m->g, (size_t)op->node);
  double t = ty__op_compute(s, op, st), mem = 0, pmem = 0;
  for (int i = 0; i < op->n_in; i++) {
    int v = n->inputs[i];
    if (v == TY_NO_VALUE) continue;
    const ty__value *val = &m->values[v];
    double local = ty__local_bytes(&s->mesh, &val->shape, val->elem, lay[i]);
    if (val->kind == TY__V_DATA) mem += local;
    if (val->kind != TY__V_PARAM || s->vertex_of_value[v] >= 0) continue;
    pmem += local * (1.0 + m->state_copies);
    if (gpart[i])
      t += ty__reshard(&s->sync, &val->shape, val->elem,
                       lay[i] | (ty__lay)gpart[i] << TY__LAY_PARTIAL_SHIFT, lay[i], NULL, NULL);
  }
  for (int o = 0; o < op->n_out; o++) {
    int v = n->outputs[o];
    if (v != TY_NO_VALUE)
      mem += ty__local_bytes(&s->mesh, &m->values[v].shape, m->values[v].elem, lay[op->n_in + o]);
  }
  uint8_t bn = ty__bn_axes(op, st);
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (bn >> a & 1u)
      t += 2 * ty__coll_seconds(&s->mesh, a, TY_PLAN_ALL_REDUCE, 8.0 * (double)op->bn_channels);
  *out_time = t;
  *out_mem = mem + pmem;
  *out_pmem = pmem;
}

/* ---- enumeration ------------------------------------------------------------------ */

#define MAX_STRATS ((TY__PLAN_MAX_LOOPS + 1) * (TY__PLAN_MAX_LOOPS + 1))

static int enum_strategies(const ty__mesh *mesh, const ty__op *op, ty__strat *out) {
  uint8_t opts[TY_PLAN_AXES][TY__PLAN_MAX_LOOPS + 1];
  int nopt[TY_PLAN_AXES];
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    nopt[a] = 0;
    opts[a][nopt[a]++] = TY__NO_LOOP;
    for (int l = 0; mesh->n[a] > 1 && l < op->n_loops; l++)
      if (op->loops[l].split && ty__loop_splits(op, l, mesh->n[a])) opts[a][nopt[a]++] = (uint8_t)l;
  }
  int n = 0;
  for (int i = 0; i < nopt[0]; i++)
    for (int j = 0; j < nopt[1]; j++) {
      uint8_t l0 = opts[0][i], l1 = opts[1][j];
      if (l0 != TY__NO_LOOP && l0 == l1 &&
          !ty__loop_splits(op, l0, (int64_t)mesh->n[0] * mesh->n[1]))
        continue;
      out[n++] = (ty__strat){{l0, l1}};
    }
  return n;
}

/* Whether a dim of n elements may be cut into parts blocks (ty__loop_splits'
 * rule for a tensor's own dim: evenly, or ceil / floor outside a pipeline). */
static bool dim_splits(const ty__model *m, int64_t n, int64_t parts) {
  return n % parts == 0 || (!m->even_only && n >= parts);
}

/* Layouts of a shared parameter: each axis splits one dim or none. */
static int enum_param_layouts(const ty__model *m, const ty__mesh *mesh, const ty_shape *s,
                              ty__lay *out) {
  int8_t opts[TY_PLAN_AXES][TY_MAX_RANK + 1];
  int nopt[TY_PLAN_AXES];
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    nopt[a] = 0;
    opts[a][nopt[a]++] = -1;
    for (int d = 0; mesh->n[a] > 1 && d < s->rank; d++)
      if (dim_splits(m, s->dims[d], mesh->n[a])) opts[a][nopt[a]++] = (int8_t)d;
  }
  int n = 0;
  for (int i = 0; i < nopt[0]; i++)
    for (int j = 0; j < nopt[1]; j++) {
      int d0 = opts[0][i], d1 = opts[1][j];
      if (d0 >= 0 && d0 == d1 && !dim_splits(m, s->dims[d0], (int64_t)mesh->n[0] * mesh->n[1]))
        continue;
      ty__lay l = 0;
      if (d0 >= 0) l |= 1u << (2 * d0);
      if (d1 >= 0) l |= 2u << (2 * d1);
      out[n++] = l;
    }
  return n;
}

static int vertex_alloc(ty__cg_vertex *v, int n) {
  v->n = n;
  v->time = calloc((size_t)n, sizeof *v->time);
  v->mem = calloc((size_t)n, sizeof *v->mem);
  return v->time && v->mem ? 0 : TY_ENOMEM;
}

static int build_op_vertex(ty__space *s, const ty__op *op, int vx) {
  ty__strat tmp[MAX_STRATS];
  int n = enum_strategies(&s->mesh, op, tmp);
  ty__vchoice *c = &s->choice[vx];
  size_t nt = (size_t)(op->n_in + op->n_out);
  c->node = op->node;
  c->value = -1;
  c->n = n;
  c->strat = malloc((size_t)n * sizeof *c->strat);
  c->lay = malloc((size_t)n * (nt + 1) * sizeof *c->lay);
  c->gpart = malloc((size_t)n * ((size_t)op->n_in + 1));
  c->pmem = malloc((size_t)n * sizeof *c->pmem);
  if (!c->strat || !c->lay || !c->gpart || !c->pmem || vertex_alloc(&s->cg.v[vx], n) != 0)
    return TY_ENOMEM;
  memcpy(c->strat, tmp, (size_t)n * sizeof *tmp);
  for (int k = 0; k < n; k++)
    derive_layouts(s->model, op, &c->strat[k], &c->lay[(size_t)k * nt],
                   &c->gpart[(size_t)k * (size_t)op->n_in]);
  for (int k = 0; k < n; k++)
    strategy_cost(s, op, k, &s->cg.v[vx].time[k], &s->cg.v[vx].mem[k], &c->pmem[k]);
  return 0;
}

static int build_param_vertex(ty__space *s, int v, int vx) {
  const ty__value *val = &s->model->values[v];
  ty__lay tmp[(TY_MAX_RANK + 1) * (TY_MAX_RANK + 1)];
  int n = enum_param_layouts(s->model, &s->mesh, &val->shape, tmp);
  ty__vchoice *c = &s->choice[vx];
  c->node = -1;
  c->value = v;
  c->n = n;
  c->lay = malloc((size_t)n * sizeof *c->lay);
  c->pmem = malloc((size_t)n * sizeof *c->pmem);
  if (!c->lay || !c->pmem || vertex_alloc(&s->cg.v[vx], n) != 0) return TY_ENOMEM;
  memcpy(c->lay, tmp, (size_t)n * sizeof *tmp);
  for (int k = 0; k < n; k++)
    s->cg.v[vx].mem[k] = c->pmem[k] =
        ty__local_bytes(&s->mesh, &val->shape, val->elem, tmp[k]) * (1.0 + s->model->state_copies);
  return 0;
}

/* ---- edges ------------------------------------------------------------------------ */

static ty__lay writer_lay(const ty__space *s, int u, int k, int out_slot) {
  const ty__vchoice *c = &s->choice[u];
  if (c->node < 0) return c->lay[k];
  const ty__op *op = &s->model->ops[c->node];
  return c->lay[(size_t)k * (size_t)(op->n_in + op->n_out) + (size_t)(op->n_in + out_slot)];
}

static uint32_t reader_key(const ty__space *s, int w, int k, int slot) {
  const ty__vchoice *c = &s->choice[w];
  const ty__op *op = &s->model->ops[c->node];
  return c->lay[(size_t)k * (size_t)(op->n_in + op->n_out) + (size_t)slot] |
         (uint32_t)c->gpart[(size_t)k * (size_t)op->n_in + (size_t)slot] << GPART_SHIFT;
}

/* Replaces keys[0..n) by its distinct values (in first-seen order) and
 * writes each original entry's index among them; returns how many. */
static int distinct(uint32_t *keys, int n, int *idx) {
  int u = 0;
  for (int i = 0; i < n; i++) {
    uint32_t k = keys[i];
    int j = 0;
    while (j < u && keys[j] != k)
      j++;
    if (j == u) keys[u++] = k;
    idx[i] = j;
  }
  return u;
}

/* Edge costs repeat: a transformer's layers hold the same shapes and
 * layouts again and again, so (shape, layouts, direction) -> seconds is
 * remembered for the whole mesh. Open addressing, grown at half load. */
typedef struct memo_ent {
  ty_shape shape;
  uint32_t elem, p, q;
  uint8_t flags; /* 1: with the gradient, 2: a parameter's (bucketed) gradient */
  bool used;
  double cost;
} memo_ent;

typedef struct memo {
  memo_ent *t;
  size_t cap, n;
} memo;

static uint64_t memo_hash(const memo_ent *k) {
  uint64_t h = ty_mix2(((uint64_t)k->p << 32) | k->q, ((uint64_t)k->elem << 8) | k->flags);
  for (int d = 0; d < k->shape.rank; d++)
    h = ty_mix2(h, (uint64_t)k->shape.dims[d]);
  return ty_mix2(h, (uint64_t)k->shape.rank);
}

static bool memo_same(const memo_ent *a, const memo_ent *b) {
  return a->p == b->p && a->q == b->q && a->elem == b->elem && a->flags == b->flags &&
         ty_shape_equal(&a->shape, &b->shape);
}

static memo_ent *memo_slot(memo *mo, const memo_ent *k) {
  size_t i = (size_t)memo_hash(k) & (mo->cap - 1);
  while (mo->t[i].used && !memo_same(&mo->t[i], k))
    i = (i + 1) & (mo->cap - 1);
  return &mo->t[i];
}

static int memo_grow(memo *mo) {
  memo old = *mo;
  mo->cap = old.cap ? 2 * old.cap : 4096;
  mo->n = 0;
  if (!(mo->t = calloc(mo->cap, sizeof *mo->t))) return TY_ENOMEM;
  for (size_t i = 0; i < old.cap; i++)
    if (old.t[i].used) {
      *memo_slot(mo, &old.t[i]) = old.t[i];
      mo->n++;
    }
  free(old.t);
  return 0;
}

/* Forward reshard p -> q and, with a gradient, the way back. */
static int pair_cost(const ty__space *s, memo *mo, const ty__value *val, ty__lay p, uint32_t qkey,
                     bool grad, double *out) {
  memo_ent k = {.shape = val->shape,
                .elem = (uint32_t)val->elem,
                .p = p,
                .q = qkey,
                .flags = (uint8_t)((grad ? 1 : 0) | (val->kind == TY__V_PARAM ? 2 : 0))};
  if (2 * (mo->n + 1) > mo->cap && memo_grow(mo) != 0) return TY_ENOMEM;
  memo_ent *e = memo_slot(mo, &k);
  if (!e->used) {
    ty__lay q = qkey & 0xFFFFu, g = qkey >> GPART_SHIFT;
    k.cost = ty__reshard(&s->mesh, &val->shape, val->elem, p, q, NULL, NULL);
    if (grad)
      k.cost += ty__reshard(val->kind == TY__V_PARAM ? &s->sync : &s->mesh, &val->shape, val->elem,
                            q | g << TY__LAY_PARTIAL_SHIFT, ty__lay_whole(p), NULL, NULL);
    k.used = true;
    *e = k;
    mo->n++;
  }
  *out = e->cost;
  return 0;
}

/* Adds to e the cost of value val flowing from writer slot out_slot (-1: a
 * parameter vertex) to reader slot `slot`, forward and, with grad, back. */
static int add_edge_cost(const ty__space *s, memo *mo, ty__cg_edge *e, int out_slot, int slot,
                         const ty__value *val, bool grad) {
  int nu = s->cg.v[e->u].n, nw = s->cg.v[e->v].n;
  uint32_t *pk = malloc(((size_t)nu + (size_t)nw) * sizeof *pk);
  int *pi = malloc(((size_t)nu + (size_t)nw) * sizeof *pi);
  double *small = NULL;
  int rc = TY_ENOMEM;
  if (!pk || !pi) goto done;
  uint32_t *qk = pk + nu;
  int *qi = pi + nu;
  for (int k = 0; k < nu; k++)
    pk[k] = writer_lay(s, e->u, k, out_slot);
  for (int k = 0; k < nw; k++)
    qk[k] = reader_key(s, e->v, k, slot);
  int up = distinct(pk, nu, pi), uq = distinct(qk, nw, qi);
  if (!(small = malloc((size_t)up * (size_t)uq * sizeof *small))) goto done;
  rc = 0;
  for (int a = 0; a < up && rc == 0; a++)
    for (int b = 0; b < uq && rc == 0; b++)
      rc = pair_cost(s, mo, val, pk[a], qk[b], grad, &small[(size_t)a * (size_t)uq + (size_t)b]);
  for (int i = 0; rc == 0 && i < nu; i++)
    for (int j = 0; j < nw; j++)
      e->cost[(size_t)i * (size_t)nw + (size_t)j] +=
          small[(size_t)pi[i] * (size_t)uq + (size_t)qi[j]];
done:
  free(pk);
  free(pi);
  free(small);
  return rc;
}

/* The edge (u, w), created after first_edge, or a new zero one. */
static ty__cg_edge *edge_for(ty__space *s, int first_edge, int *cap, int u, int w) {
  for (int e = first_edge; e < s->cg.n_e; e++)
    if (s->cg.e[e].u == u) return &s->cg.e[e];
  if (s->cg.n_e == *cap) {
    int nc = *cap ? 2 * *cap : 64;
    ty__cg_edge *ne = realloc(s->cg.e, (size_t)nc * sizeof *ne);
    if (!ne) return NULL;
    s->cg.e = ne;
    *cap = nc;
  }
  ty__cg_edge *e = &s->cg.e[s->cg.n_e];
  e->u = u;
  e->v = w;
  e->cost = calloc((size_t)s->cg.v[u].n * (size_t)s->cg.v[w].n, sizeof *e->cost);
  if (!e->cost) return NULL;
  s->cg.n_e++;
  return e;
}

static int build_edges(ty__space *s) {
  const ty__model *m = s->model;
  int cap = 0, rc = 0;
  memo mo = {0};
  for (size_t k = 0; k < m->n_nodes; k++) {
    size_t node = m->order[k];
    const ty__op *op = &m->ops[node];
    const ty_graph_node *n = ty_graph_node_at(m->g, node);
    int w = s->vertex_of_node[node], first = s->cg.n_e;
    for (int i = 0; w >= 0 && i < op->n_in; i++) {
      int v = n->inputs[i], u = -1, slot = -1;
      if (v == TY_NO_VALUE) continue;
      const ty__value *val = &m->values[v];
      if (val->kind == TY__V_ACT && s->vertex_of_node[val->producer] >= 0) {
        const ty_graph_node *p = ty_graph_node_at(m->g, (size_t)val->producer);
        u = s->vertex_of_node[val->producer];
        for (slot = 0; slot < p->n_outputs && p->outputs[slot] != v; slot++) {
        }
      } else if (val->kind == TY__V_PARAM) {
        u = s->vertex_of_value[v];
      }
      if (u < 0) continue;
      ty__cg_edge *e = edge_for(s, first, &cap, u, w);
      rc = e ? add_edge_cost(s, &mo, e, slot, i, val, op->in_diff[i]) : TY_ENOMEM;
      if (rc != 0) goto done;
    }
  }
done:
  free(mo.t);
  return rc;
}

int ty__space_build(const ty__model *m, const ty__mesh *mesh, ty__space *out) {
  ty__space *s = out;
  memset(s, 0, sizeof *s);
  s->model = m;
  s->mesh = *mesh;
  s->sync = *mesh;
  s->sync.launch = 0;
  /* bandwidth only, so 1 / M of the time is M times the bandwidth */
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    s->sync.lat[a] = 0;
    s->sync.bw[a] *= m->sync_micro > 1 ? m->sync_micro : 1;
  }
  s->fixed_mem = (double)m->const_bytes;
  s->vertex_of_node = malloc((m->n_nodes + 1) * sizeof *s->vertex_of_node);
  s->vertex_of_value = malloc((m->n_values + 1) * sizeof *s->vertex_of_value);
  if (!s->vertex_of_node || !s->vertex_of_value) return TY_ENOMEM;
  int nv = 0;
  for (size_t k = 0; k < m->n_nodes; k++) {
    size_t node = m->order[k];
    s->vertex_of_node[node] = m->ops[node].vertex_less ? -1 : nv++;
  }
  for (size_t v = 0; v < m->n_values; v++)
    s->vertex_of_value[v] = m->values[v].kind == TY__V_PARAM && m->values[v].n_uses > 1 ? nv++ : -1;
  s->n_vertices = s->cg.n_v = nv;
  s->choice = calloc((size_t)nv + 1, sizeof *s->choice);
  s->cg.v = calloc((size_t)nv + 1, sizeof *s->cg.v);
  if (!s->choice || !s->cg.v) return TY_ENOMEM;
  int rc = 0;
  for (size_t node = 0; rc == 0 && node < m->n_nodes; node++)
    if (s->vertex_of_node[node] >= 0)
      rc = build_op_vertex(s, &m->ops[node], s->vertex_of_node[node]);
  for (size_t v = 0; rc == 0 && v < m->n_values; v++)
    if (s->vertex_of_value[v] >= 0) rc = build_param_vertex(s, (int)v, s->vertex_of_value[v]);
  return rc == 0 ? build_edges(s) : rc;
}

void ty__space_close(ty__space *s) {
  for (int v = 0; s->choice && v < s->n_vertices; v++) {
    free(s->choice[v].strat);
    free(s->choice[v].lay);
    free(s->choice[v].gpart);
    free(s->choice[v].pmem);
  }
  free(s->choice);
  ty__cg_close(&s->cg);
  free(s->vertex_of_node);
  free(s->vertex_of_value);
  memset(s, 0, sizeof *s);
}

/* ---- roles and names ---------------------------------------------------------------- */

static bool op_allows(const ty__space *s, const ty__op *op, const ty__strat *st,
                      const ty__role *roles) {
  int64_t data_split = 1;
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (roles[a] == TY__ROLE_DATA && s->mesh.n[a] > 1) data_split *= s->mesh.n[a];
  int forced =
      op->batch_loop >= 0 && ty__loop_splits(op, op->batch_loop, data_split) ? op->batch_loop : -1;
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    if (s->mesh.n[a] <= 1) continue;
    int l = st->axis_loop[a] == TY__NO_LOOP ? -1 : st->axis_loop[a];
    if (roles[a] == TY__ROLE_DATA && l != forced) return false;
    if (roles[a] == TY__ROLE_TENSOR && l >= 0 && op->loops[l].batch) return false;
  }
  return true;
}

int ty__space_allowed(const ty__space *s, const ty__role roles[TY_PLAN_AXES],
                      uint8_t ***out_allowed) {
  uint8_t **allowed = calloc((size_t)s->n_vertices + 1, sizeof *allowed);
  if (!allowed) return TY_ENOMEM;
  *out_allowed = allowed;
  for (int v = 0; v < s->n_vertices; v++) {
    const ty__vchoice *c = &s->choice[v];
    if (!(allowed[v] = malloc((size_t)c->n))) return TY_ENOMEM;
    for (int k = 0; k < c->n; k++) {
      if (c->node >= 0) {
        allowed[v][k] = op_allows(s, &s->model->ops[c->node], &c->strat[k], roles);
        continue;
      }
      bool ok = true; /* a shared parameter: replicated along data axes */
      for (int d = 0; d < TY_MAX_RANK; d++)
        for (int a = 0; a < TY_PLAN_AXES; a++)
          if ((ty__lay_dim(c->lay[k], d) >> a & 1u) && roles[a] == TY__ROLE_DATA) ok = false;
      allowed[v][k] = ok;
    }
  }
  return 0;
}

static const char *loop_label(const ty__op *op, int l, char *buf, size_t len) {
  const ty__loop *lp = &op->loops[l];
  if (lp->batch) return "batch split";
  switch (lp->role) {
  case TY__LOOP_M:
    return "row-block split";
  case TY__LOOP_N:
    return "column split";
  case TY__LOOP_K:
    return "row split";
  case TY__LOOP_COUT:
    return "output-channel split";
  case TY__LOOP_CHANNEL:
    return "channel split";
  case TY__LOOP_REDUCE:
    return "reduced-dim split";
  default:
    break;
  }
  for (int d = 0; op->n_out > 0 && d < TY_MAX_RANK; d++)
    if (op->out[0].loop[d] == l) {
      snprintf(buf, len, "dim-%d split", d);
      return buf;
    }
  return "loop split";
}

void ty__strat_describe(const ty__model *m, const ty__op *op, const ty__strat *st,
                        const ty__mesh *mesh, char *buf, size_t len) {
  (void)m;
  size_t off = 0;
  buf[0] = '\0';
  for (int a = 0; a < TY_PLAN_AXES; a++) {
    int l = st->axis_loop[a];
    if (l == TY__NO_LOOP || mesh->n[a] <= 1 || (a > 0 && st->axis_loop[0] == l && mesh->n[0] > 1))
      continue;
    char tmp[32];
    bool both = a == 0 && st->axis_loop[1] == l && mesh->n[1] > 1;
    int w = snprintf(buf + off, len - off, "%s%s (%s)", off ? " + " : "",
                     loop_label(op, l, tmp, sizeof tmp),
                     both     ? "axes 0,1"
                     : a == 0 ? "axis 0"
                              : "axis 1");
    if (w < 0 || (size_t)w >= len - off) break;
    off += (size_t)w;
  }
  if (off == 0) snprintf(buf, len, "%s", op->fallback ? "replicated (fallback)" : "replicated");
}
