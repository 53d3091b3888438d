/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The pipeline search: S stages of equal sub-meshes, M micro-batches, and
 * which layers each stage runs (stages.c has the layers and the DP).
 *
 * For every micro-batch count M (the request's, or a power of two dividing
 * the batch, at most MAX_MICRO, from S / 2 to 4 S), every stage count S
 * (dividing the devices into sub-meshes whose links are known: inside a
 * node, or whole nodes) and the first MAX_STAGE_MESHES mesh shapes of one
 * stage's devices (its physical shape first), the graph is modelled at the
 * micro-batch B / M and its cost graph built once on that mesh. A stage's
 * cost is the intra-operator search (elimination) on the cost graph cut
 * down to its layers' vertices, plus the point-to-point sends of the
 * activations that enter it and of their gradients that leave it. Stage k
 * of S holds the activations of min(S - k, M) micro-batches at once
 * (1F1B), so its memory is parameters with state + that many
 * micro-batches' activations. When the fastest assignment does not fit,
 * the fastest that does among recomputing it, the least-memory assignment
 * and recomputing that is taken (recomputing keeps only each micro-batch's
 * inputs and pays one more forward); a stage that fits in none costs
 * INFINITY (the DP avoids it).
 *
 * In tensor mode (TY_PLAN_MODE_TENSOR) a stage's ops may not split a batch
 * loop: its mesh runs it tensor parallel (a choice that would costs more
 * than any plan). In grid mode (TY_PLAN_MODE_GRID) only stage meshes with
 * both axes of more than one device are tried, axis 0 data parallel (it
 * splits batch loops or nothing) and axis 1 tensor parallel (it never
 * splits one): data x tensor inside every stage. Auto mode tries such
 * meshes too, with every op free. In data mode (TY_PLAN_MODE_DATA) every
 * stage runs on its physical mesh, both axes data parallel: pipeline x
 * data parallelism.
 *
 * Every stage uses the same mesh shape, so one assignment over the whole
 * cost graph describes the pipelined plan and ty__emit writes it: a value
 * crossing stages arrives in its producer's layout on the same mesh
 * coordinates and is resharded by the consumer's collectives.
 *
 * A stage mesh's gradient synchronisation runs once per step, after the
 * last micro-batch: each micro-batch is charged 1 / M of it (the model's
 * sync_micro), so one stage's M micro-batches cost it once, as data
 * parallelism does. Charged per micro-batch in full, it made a data-
 * parallel stage M times dearer and the search chose to replicate the
 * stage's ops instead (no communication, no speed-up).
 *
 * Not modelled: edges cut between stages lose their resharding cost (the
 * sends are charged instead), the 1F1B schedule's sum + (M - 1) x max
 * over several stages counts their syncs' shares rather than the last
 * one's whole, and stages are equal in size (Alpa also tries unequal
 * sub-meshes).
 */
#include "ops/plan/plan_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MICRO 64
#define MAX_STAGE_MESHES 2

typedef struct pctx {
  const ty_plan_request *req;
  const ty__space *sp;
  const int *start; /* layer starts: positions in the model's order */
  int L, S, M, devices;
  int *vlayer;         /* layer of each vertex */
  int *seen;           /* per value: the last boundary() call that counted it */
  int *pos;            /* per node: its position in the model's order */
  int *pfirst, *plast; /* per parameter value: the first and last positions reading it */
  int stamp;
  double budget, bw, lat;
  uint8_t **allowed; /* tensor mode: per vertex, the choices that split no batch loop */
  const int *assign; /* writing the chosen plan: the stages assigned so far (tied) */
} pctx;

/* One stage's assignment: time without sends, parameter and activation bytes. */
typedef struct part {
  double time, pmem, amem;
  double fwd; /* forward compute alone: what recomputing the stage's activations costs */
} part;

/* ---- one stage ------------------------------------------------------------------ */

static void sub_close(ty__cg *cg) {
  for (int v = 0; cg->v && v < cg->n_v; v++) {
    free(cg->v[v].time);
    free(cg->v[v].mem);
  }
  free(cg->v);
  free(cg->e); /* the edges' matrices stay the space's */
}

/* The cost of a choice the request's mode bars: finite, so the solvers'
 * sums stay numbers, and larger than any plan. */
#define BARRED 1e30

/* Layers [i, j) as their own cost graph, a vertex's memory its parameters
 * plus f micro-batches of activations. map[k]: the original vertex. */
static int sub_cg(const pctx *c, int i, int j, double f, ty__cg *out, int *map, int *inv) {
  const ty__cg *cg = &c->sp->cg;
  memset(out, 0, sizeof *out);
  out->v = calloc((size_t)cg->n_v + 1, sizeof *out->v);
  out->e = calloc((size_t)cg->n_e + 1, sizeof *out->e);
  if (!out->v || !out->e) return TY_ENOMEM;
  for (int v = 0; v < cg->n_v; v++) {
    inv[v] = -1;
    if (c->vlayer[v] < i || c->vlayer[v] >= j) continue;
    const ty__vchoice *ch = &c->sp->choice[v];
    ty__cg_vertex *nv = &out->v[out->n_v];
    nv->n = cg->v[v].n;
    nv->time = malloc((size_t)nv->n * sizeof *nv->time);
    nv->mem = malloc((size_t)nv->n * sizeof *nv->mem);
    map[out->n_v] = v;
    inv[v] = out->n_v++; /* counted before the check: sub_close frees it either way */
    if (!nv->time || !nv->mem) return TY_ENOMEM;
    for (int k = 0; k < nv->n; k++) {
      bool barred = c->allowed && !c->allowed[v][k];
      nv->time[k] = barred ? BARRED : cg->v[v].time[k];
      nv->mem[k] = barred ? BARRED : ch->pmem[k] + f * (cg->v[v].mem[k] - ch->pmem[k]);
    }
  }
  for (int e = 0; e < cg->n_e; e++)
    if (inv[cg->e[e].u] >= 0 && inv[cg->e[e].v] >= 0)
      out->e[out->n_e++] = (ty__cg_edge){inv[cg->e[e].u], inv[cg->e[e].v], cg->e[e].cost};
  return 0;
}

/* Solves layers [i, j) for time (or for memory at f in flight); the
 * assignment goes to assign (original vertices) when non-NULL. */
static int solve_part(const pctx *c, int i, int j, double f, bool least_mem, int *assign,
                      part *out) {
  int nv = c->sp->cg.n_v;
  int *map = malloc(((size_t)nv + 1) * sizeof *map), *inv = malloc(((size_t)nv + 1) * sizeof *inv);
  int *a = malloc(((size_t)nv + 1) * sizeof *a);
  ty__cg sub;
  memset(&sub, 0, sizeof sub);
  int rc = map && inv && a ? sub_cg(c, i, j, f, &sub, map, inv) : TY_ENOMEM;
  ty__solve_info info;
  ty__objective obj = least_mem ? (ty__objective){0, 1, -1} : (ty__objective){1, 0, -1};
  if (rc == 0) rc = ty__solve_elim(&sub, obj, c->req->time_limit_ms, a, &info);
  if (rc == 0) {
    double mem;
    ty__cg_eval(&sub, a, &out->time, &mem);
    out->pmem = out->fwd = 0;
    for (int k = 0; k < sub.n_v; k++) {
      const ty__vchoice *ch = &c->sp->choice[map[k]];
      out->pmem += ch->pmem[a[k]];
      if (ch->node < 0) continue;
      const ty__op *op = &c->sp->model->ops[ch->node];
      out->fwd += ty__op_compute(c->sp, op, &ch->strat[a[k]]) /
                  (1.0 + (op->grad_inputs < 2 ? op->grad_inputs : 2));
    }
    out->amem = (mem - out->pmem) / f;
    for (int k = 0; assign && k < sub.n_v; k++)
      assign[map[k]] = a[k];
  }
  sub_close(&sub);
  free(map);
  free(inv);
  free(a);
  return rc;
}

/* A parameter that layers [i, j) read and others read too (a tied weight,
 * stages.c): every holder keeps it in its one layout (the block its
 * vertex's choice gives each device) with its state; out_mem gets those
 * bytes when its vertex (and so its memory) is an earlier stage's. Each
 * step the holders swap the blocks' gradients: the seconds of that. The
 * vertex's choice is known once the stage that owns it is assigned
 * (c->assign, while the chosen plan is written); before that, in the DP,
 * the whole tensor is counted, an upper bound. */
static double tied(const pctx *c, int v, int i, int j, double *out_mem) {
  const ty__value *val = &c->sp->model->values[v];
  bool before = c->pfirst[v] < c->start[i], after = c->plast[v] >= c->start[j];
  if (!before && !after) return 0;
  double copies = 1.0 + c->sp->model->state_copies, held = ty__value_bytes(val) * copies;
  int pv = c->sp->vertex_of_value[v];
  if (c->assign && pv >= 0 && c->vlayer[pv] >= 0 && c->vlayer[pv] < j)
    held = c->sp->choice[pv].pmem[c->assign[pv]];
  if (before) *out_mem += held;
  return 2 * (held / copies / c->bw + c->lat);
}

/* Point-to-point seconds of the activations entering layers [i, j) and of
 * their gradients going back: each device sends its 1/devices share; and
 * of the tied parameters' gradients (tied). out_in_bytes: what one
 * micro-batch brings in per device (those activations and the data the
 * layers read), all a recomputing stage keeps of it between its forward
 * and its backward. out_tied_mem: the tied parameters' bytes this stage
 * holds beyond its own. */
static double boundary(pctx *c, int i, int j, double *out_in_bytes, double *out_tied_mem) {
  const ty__model *m = c->sp->model;
  double t = 0, in = 0;
  *out_tied_mem = 0;
  c->stamp++;
  for (int p = c->start[i]; p < c->start[j]; p++) {
    const ty_graph_node *n = ty_graph_node_at(m->g, m->order[p]);
    for (int k = 0; k < n->n_inputs; k++) {
      int v = n->inputs[k];
      if (v == TY_NO_VALUE || c->seen[v] == c->stamp) continue;
      const ty__value *val = &m->values[v];
      c->seen[v] = c->stamp;
      if (val->kind == TY__V_PARAM) t += tied(c, v, i, j, out_tied_mem);
      bool act = val->kind == TY__V_ACT && c->pos[val->producer] < c->start[i];
      if (!act && val->kind != TY__V_DATA) continue;
      double bytes = ty__value_bytes(val) / c->devices, one = bytes / c->bw + c->lat;
      in += bytes;
      if (act) t += val->grad ? 2 * one : one;
    }
  }
  *out_in_bytes = in;
  return t;
}

static int in_flight(const pctx *c, int k) {
  return c->S - k < c->M ? c->S - k : c->M;
}

/* One way to run a stage: an assignment (least memory or fastest), with
 * or without recomputation. */
typedef struct way {
  bool least_mem, recompute;
  double time, mem, mem_plain;
} way;

static way way_of(const part *pt, bool least_mem, bool recompute, double f, double in,
                  double fixed) {
  way w = {.least_mem = least_mem, .recompute = recompute};
  w.mem_plain = pt->pmem + f * pt->amem + fixed;
  w.time = pt->time + (recompute ? pt->fwd : 0);
  /* Recomputing keeps only each micro-batch's inputs, and one micro-batch's
   * activations while its backward runs. */
  w.mem = recompute ? pt->pmem + f * in + pt->amem + fixed : w.mem_plain;
  return w;
}

/* Layers [i, j) as stage k: the fastest way that fits (the fastest
 * assignment, recomputing it, the least-memory one, recomputing that), or
 * the smallest when none does (ok false); its assignment into assign when
 * non-NULL. */
static int eval_stage(pctx *c, int i, int j, int k, int *assign, ty_plan_stage *out, bool *ok) {
  double f = in_flight(c, k), fixed = c->sp->fixed_mem, in, tied_mem;
  double send = boundary(c, i, j, &in, &tied_mem);
  fixed += tied_mem;
  part fast, small;
  way ways[4], *pick = NULL;
  int n = 0, rc = solve_part(c, i, j, 1, false, NULL, &fast);
  if (rc == 0) {
    ways[n++] = way_of(&fast, false, false, f, in, fixed);
    ways[n++] = way_of(&fast, false, true, f, in, fixed);
    if (ways[0].mem > c->budget && (rc = solve_part(c, i, j, f, true, NULL, &small)) == 0) {
      ways[n++] = way_of(&small, true, false, f, in, fixed);
      ways[n++] = way_of(&small, true, true, f, in, fixed);
    }
  }
  for (int q = 0; rc == 0 && q < n; q++)
    if (ways[q].mem <= c->budget ? !pick || pick->mem > c->budget || ways[q].time < pick->time
                                 : !pick || (pick->mem > c->budget && ways[q].mem < pick->mem))
      pick = &ways[q];
  if (rc == 0 && assign)
    rc = solve_part(c, i, j, pick->least_mem ? f : 1, pick->least_mem, assign,
                    pick->least_mem ? &small : &fast);
  if (rc != 0) return rc;
  if (assign) send = boundary(c, i, j, &in, &tied_mem); /* its own tied blocks now known */
  out->send_s = send;
  out->step_s = pick->time + send;
  out->memory_bytes = (uint64_t)pick->mem;
  out->memory_no_recompute_bytes = (uint64_t)pick->mem_plain;
  out->recompute = pick->recompute;
  out->in_flight = (int)f;
  *ok = pick->mem <= c->budget;
  return 0;
}

/* cost[(k * W + i) * W + j] for every range and stage position. A range's
 * fastest assignment is shared by the positions where it fits. */
static int fill_costs(pctx *c, double *cost) {
  size_t W = (size_t)c->L + 1;
  int rc = 0;
  for (int i = 0; rc == 0 && i < c->L; i++)
    for (int j = i + 1; rc == 0 && j <= c->L; j++) {
      part fast;
      double in, tied_mem;
      if ((rc = solve_part(c, i, j, 1, false, NULL, &fast)) != 0) break;
      double send = boundary(c, i, j, &in, &tied_mem);
      for (int k = 0; rc == 0 && k < c->S; k++) {
        double *at = &cost[((size_t)k * W + (size_t)i) * W + (size_t)j];
        double f = in_flight(c, k);
        *at = fast.pmem + f * fast.amem + c->sp->fixed_mem + tied_mem <= c->budget
                  ? fast.time + send
                  : INFINITY;
        if (isfinite(*at) || i < k || c->L - j < c->S - 1 - k) continue;
        ty_plan_stage st;
        bool ok;
        rc = eval_stage(c, i, j, k, NULL, &st, &ok);
        if (rc == 0 && ok) *at = st.step_s;
      }
    }
  return rc;
}

/* ---- the search over M, S and meshes ----------------------------------------------- */

typedef struct best {
  bool have;
  double step;
  int M, S;
  ty__mesh mesh;
  int bounds[TY__MAX_LAYERS + 1];
} best;

typedef struct psearch {
  const ty_graph *g;
  const ty_plan_request *req;
  double budget;
  double bound; /* a step to beat (the flat plan's, or INFINITY) */
  bool pruned;  /* some (M, S) was skipped by its compute bound */
  int tried;    /* stage meshes searched */
  int *start, L;
  char *err;
  size_t err_len;
  best b;
} psearch;

static int ctx_open(psearch *ps, const ty__space *sp, int S, int M, pctx *c) {
  const ty_plan_cluster *cl = &ps->req->cluster;
  const ty__model *m = sp->model;
  *c = (pctx){.req = ps->req,
              .sp = sp,
              .start = ps->start,
              .L = ps->L,
              .S = S,
              .M = M,
              .devices = sp->mesh.n[0] * sp->mesh.n[1],
              .budget = ps->budget,
              .bw = cl->nodes == 1 ? cl->intra_bw : cl->inter_bw,
              .lat = cl->nodes == 1 ? cl->intra_latency_s : cl->inter_latency_s};
  c->vlayer = malloc(((size_t)sp->n_vertices + 1) * sizeof *c->vlayer);
  c->seen = calloc(m->n_values + 1, sizeof *c->seen);
  c->pos = malloc((m->n_nodes + 1) * sizeof *c->pos);
  c->pfirst = malloc((m->n_values + 1) * sizeof *c->pfirst);
  c->plast = malloc((m->n_values + 1) * sizeof *c->plast);
  if (!c->vlayer || !c->seen || !c->pos || !c->pfirst || !c->plast) return TY_ENOMEM;
  for (size_t v = 0; v < m->n_values; v++)
    c->pfirst[v] = INT32_MAX, c->plast[v] = -1;
  for (size_t p = 0; p < m->n_nodes; p++) {
    const ty_graph_node *n = ty_graph_node_at(m->g, m->order[p]);
    c->pos[m->order[p]] = (int)p;
    for (int i = 0; i < n->n_inputs; i++) {
      int v = n->inputs[i];
      if (v == TY_NO_VALUE) continue;
      if ((int)p < c->pfirst[v]) c->pfirst[v] = (int)p;
      if ((int)p > c->plast[v]) c->plast[v] = (int)p;
    }
  }
  for (int v = 0; v < sp->n_vertices; v++)
    c->vlayer[v] = -1;
  ty_plan_mode mode = ps->req->mode;
  if (mode != TY_PLAN_MODE_AUTO) {
    ty__role r0 = mode == TY_PLAN_MODE_TENSOR ? TY__ROLE_TENSOR : TY__ROLE_DATA;
    ty__role r1 = mode == TY_PLAN_MODE_DATA ? TY__ROLE_DATA : TY__ROLE_TENSOR;
    int rc = ty__space_allowed(sp, (ty__role[TY_PLAN_AXES]){r0, r1}, &c->allowed);
    if (rc != 0) return rc;
  }
  for (int l = 0; l < ps->L; l++)
    for (int p = ps->start[l]; p < ps->start[l + 1]; p++) {
      const ty_graph_node *n = ty_graph_node_at(m->g, m->order[p]);
      int vx = sp->vertex_of_node[m->order[p]];
      if (vx >= 0) c->vlayer[vx] = l;
      for (int i = 0; i < n->n_inputs; i++) {
        int v = n->inputs[i], pv = v == TY_NO_VALUE ? -1 : sp->vertex_of_value[v];
        if (pv >= 0 && c->vlayer[pv] < 0) c->vlayer[pv] = l;
      }
    }
  return 0;
}

static void ctx_close(pctx *c) {
  for (int v = 0; c->allowed && c->sp && v < c->sp->n_vertices; v++)
    free(c->allowed[v]);
  free(c->allowed);
  free(c->vlayer);
  free(c->seen);
  free(c->pos);
  free(c->pfirst);
  free(c->plast);
}

/* The DP for S stages and M micro-batches on one stage mesh. */
static int try_mesh(psearch *ps, const ty__model *m, const ty__mesh *mesh, int S, int M) {
  ty__space sp;
  pctx c;
  memset(&c, 0, sizeof c);
  size_t W = (size_t)ps->L + 1;
  double *cost = malloc((size_t)S * W * W * sizeof *cost), step;
  int bounds[TY__MAX_LAYERS + 1];
  int rc = ty__space_build(m, mesh, &sp);
  if (rc == 0) rc = cost ? ctx_open(ps, &sp, S, M, &c) : TY_ENOMEM;
  for (size_t q = 0; rc == 0 && q < (size_t)S * W * W; q++)
    cost[q] = INFINITY;
  if (rc == 0) rc = fill_costs(&c, cost);
  if (rc == 0) {
    rc = ty_plan_pipeline_dp(cost, ps->L, S, M, bounds, &step);
    if (rc == 0 && (!ps->b.have || step < ps->b.step * (1 - 1e-12))) {
      ps->b = (best){.have = true, .step = step, .M = M, .S = S, .mesh = *mesh};
      memcpy(ps->b.bounds, bounds, (size_t)(S + 1) * sizeof *bounds);
    }
    if (rc == TY_ENOTFOUND) rc = 0;
  }
  ctx_close(&c);
  ty__space_close(&sp);
  free(cost);
  return rc;
}

/* The devices of one stage as a cluster of their own; false when they
 * neither divide a node nor are whole nodes. */
static bool stage_cluster(const ty_plan_cluster *c, int S, ty_plan_cluster *out) {
  int d = c->nodes * c->devices_per_node / S;
  *out = *c;
  if (d <= c->devices_per_node) {
    out->nodes = 1;
    out->devices_per_node = d;
    return c->devices_per_node % d == 0;
  }
  out->nodes = d / c->devices_per_node;
  return d % c->devices_per_node == 0;
}

/* Forward + backward seconds of the whole graph on one device (m is one
 * micro-batch's): sum(t_k) >= this x S / D and max(t_k) >= sum / S, so a
 * pipeline's step is at least this x (S + M - 1) / D. */
static double compute_seconds(const ty__model *m, double flops) {
  double t = 0;
  for (size_t i = 0; i < m->n_nodes; i++) {
    const ty__op *op = &m->ops[i];
    t += op->flops * (1.0 + (op->grad_inputs < 2 ? op->grad_inputs : 2)) / flops;
  }
  return t;
}

static int try_micro(psearch *ps, int M) {
  ty_plan_request r = *ps->req;
  r.batch = ps->req->batch / M;
  ty__model m;
  int rc = ty__model_build(ps->g, &r, ps->err, ps->err_len, &m);
  if (rc != 0) return ps->req->micro_batches ? rc : 0; /* this micro-batch has no concrete plan */
  ty__model_even_only(&m); /* stage boundaries and micro-batches assume equal blocks */
  m.sync_micro = M;
  int D = r.cluster.nodes * r.cluster.devices_per_node;
  double work = compute_seconds(&m, r.cluster.device_flops);
  /* Micro-batches asked for may run as one stage (accumulation on the
   * whole mesh): then only so without stages, else beside the pipelines. */
  int first = ps->req->micro_batches > 1 ? 1 : 2, last = ps->req->pipeline_stages == 1 ? 1 : ps->L;
  for (int S = first; rc == 0 && S <= last && S <= D; S++) {
    ty_plan_cluster sc;
    ty__mesh meshes[MAX_STAGE_MESHES];
    bool window = ps->req->micro_batches || (2 * M >= S && M <= 4 * S);
    if (D % S != 0 || (ps->req->pipeline_stages > 1 && S != ps->req->pipeline_stages) || !window ||
        !stage_cluster(&r.cluster, S, &sc))
      continue;
    double beat = ps->b.have && ps->b.step < ps->bound ? ps->b.step : ps->bound;
    if (work * (S + M - 1) / D >= beat) {
      ps->pruned = true;
      continue;
    }
    int nm = ty__list_meshes(&sc, r.fixed_mesh, meshes, MAX_STAGE_MESHES);
    bool grid = ps->req->mode == TY_PLAN_MODE_GRID, data = ps->req->mode == TY_PLAN_MODE_DATA;
    for (int i = 0; rc == 0 && i < nm && !(data && i > 0); i++) /* data: the physical mesh */
      if (!grid || (meshes[i].n[0] > 1 && meshes[i].n[1] > 1)) {
        ps->tried++;
        rc = try_mesh(ps, &m, &meshes[i], S, M);
      }
  }
  ty__model_close(&m);
  return rc;
}

/* ---- the chosen pipeline as a plan --------------------------------------------------- */

/* Stage k's record and its ops' stage; assign gets its assignment. */
static int fill_stage(pctx *c, const best *b, int k, int *assign, ty_plan *p) {
  ty_plan_stage *st = &p->stages[k];
  bool ok;
  int rc = eval_stage(c, b->bounds[k], b->bounds[k + 1], k, assign, st, &ok);
  st->first_rank = k * c->devices;
  st->first_layer = b->bounds[k];
  st->n_layers = b->bounds[k + 1] - b->bounds[k];
  return rc;
}

/* The schedule's totals over the stages (plan.h says what each holds). */
static void pipeline_totals(ty_plan *p, int S, int M, int devices, int L) {
  double sum = 0, max = 0;
  uint64_t mem = 0;
  for (int k = 0; k < S; k++) {
    sum += p->stages[k].step_s;
    max = fmax(max, p->stages[k].step_s);
    if (p->stages[k].memory_bytes > mem) mem = p->stages[k].memory_bytes;
  }
  p->n_stages = S;
  p->micro_batches = M;
  p->n_layers = L;
  p->devices = devices;
  p->step_s = sum + (double)(M - 1) * max;
  p->comm_s = sum > p->compute_s ? sum - p->compute_s : 0;
  p->memory_bytes = mem;
  p->bubble = p->step_s > 0 ? 1 - (double)M * sum / ((double)S * p->step_s) : 0;
  /* One stage: sum + (M - 1) max rounds an ulp below M sum, a bubble of
   * -2e-16 the plan's decoder refuses (the ranks would fail to read it). */
  if (!(p->bubble > 0)) p->bubble = 0;
}

static int build_plan(psearch *ps, ty_plan *p) {
  const best *b = &ps->b;
  ty_plan_request r = *ps->req;
  r.batch = ps->req->batch / b->M;
  ty__model m;
  ty__space sp;
  pctx c;
  memset(&sp, 0, sizeof sp);
  memset(&c, 0, sizeof c);
  int *assign = NULL;
  int rc = ty__model_build(ps->g, &r, ps->err, ps->err_len, &m);
  if (rc != 0) return rc;
  ty__model_even_only(&m);
  m.sync_micro = b->M;
  if ((rc = ty__space_build(&m, &b->mesh, &sp)) == 0) rc = ctx_open(ps, &sp, b->S, b->M, &c);
  if (rc == 0) {
    assign = calloc((size_t)sp.n_vertices + 1, sizeof *assign);
    p->stages = calloc((size_t)b->S, sizeof *p->stages);
    if (!assign || !p->stages) rc = TY_ENOMEM;
  }
  c.assign = assign;
  for (int k = 0; rc == 0 && k < b->S; k++)
    rc = fill_stage(&c, b, k, assign, p);
  if (rc == 0) rc = ty__emit(&sp, assign, p);
  for (int k = 0; rc == 0 && k < b->S; k++)
    for (int q = ps->start[b->bounds[k]]; q < ps->start[b->bounds[k + 1]]; q++)
      p->ops[m.order[q]].stage = k;
  if (rc == 0) pipeline_totals(p, b->S, b->M, r.cluster.nodes * r.cluster.devices_per_node, ps->L);
  free(assign);
  ctx_close(&c);
  ty__space_close(&sp);
  ty__model_close(&m);
  return rc;
}

static int layers_of(psearch *ps) {
  ty__model m;
  int rc = ty__model_build(ps->g, ps->req, ps->err, ps->err_len, &m);
  if (rc != 0) return rc;
  rc = ty__layers_find(&m, &ps->start, &ps->L);
  ty__model_close(&m);
  int S = ps->req->pipeline_stages;
  if (rc == 0 && S > ps->L)
    rc = ty_errf(ps->err, ps->err_len, TY_EINVAL,
                 "pipeline_stages: %d stages but the graph has %d layer%s (one per op reading a "
                 "weight where only float activations, and values every stage can compute from "
                 "constants or the data feeds, cross the cut before it)",
                 S, ps->L, ps->L == 1 ? "" : "s");
  return rc;
}

int ty__pipeline_search(const ty_graph *g, const ty_plan_request *req, double budget, double bound,
                        const char *one_micro_why, char *err, size_t err_len, ty_plan **out_plan) {
  psearch ps = {
      .g = g, .req = req, .budget = budget, .bound = bound, .err = err, .err_len = err_len};
  *out_plan = NULL;
  int rc = layers_of(&ps);
  int64_t B = req->batch;
  /* A loss that micro-batches cannot add up: one, and a refusal of more. */
  bool one_micro = one_micro_why != NULL;
  if (rc == 0 && one_micro && req->micro_batches > 1)
    rc =
        ty_errf(err, err_len, TY_EUNSUPPORTED, "plan: %s; use micro_batches: \"1\"", one_micro_why);
  if (req->micro_batches > 0) rc = rc ? rc : try_micro(&ps, req->micro_batches);
  for (int64_t M = 1; rc == 0 && !req->micro_batches && M <= B && M <= MAX_MICRO; M *= 2)
    if (B % M == 0 && (M == 1 || !one_micro)) rc = try_micro(&ps, (int)M);
  /* Nothing fits with a power of two: the batch's other divisors, fewest
   * first (3 and 6 of a batch of 6), before "no pipeline fits". */
  for (int64_t M = 3;
       rc == 0 && !ps.b.have && !req->micro_batches && !one_micro && M <= B && M <= MAX_MICRO; M++)
    if (B % M == 0 && (M & (M - 1)) != 0) rc = try_micro(&ps, (int)M);
  if (rc == 0 && !ps.b.have && !ps.pruned && req->mode == TY_PLAN_MODE_GRID && ps.tried == 0) {
    rc = ty_errf(err, err_len, TY_ENOTFOUND,
                 "mode grid: no pipeline of %d x %d devices has stage meshes with both axes "
                 "of more than one device (a stage needs 4 or more devices, dividing a node or "
                 "whole nodes)",
                 req->cluster.nodes, req->cluster.devices_per_node);
  } else if (rc == 0 && !ps.b.have && ps.pruned) {
    rc = ty_errf(err, err_len, TY_ENOTFOUND,
                 "no pipeline of the graph's %d layers can be faster than %.3f ms: one "
                 "micro-batch's compute alone, with the schedule's bubble, takes longer",
                 ps.L, bound * 1e3);
  } else if (rc == 0 && !ps.b.have) {
    char have[32];
    ty__fmt_bytes(budget, have, sizeof have);
    rc = ty_errf(err, err_len, TY_ENOTFOUND,
                 "pipeline_stages: no pipeline of the graph's %d layer%s fits in %s per device",
                 ps.L, ps.L == 1 ? "" : "s", have);
  }
  ty_plan *p = rc == 0 ? calloc(1, sizeof *p) : NULL;
  if (rc == 0 && !p) rc = TY_ENOMEM;
  if (rc == 0) rc = build_plan(&ps, p);

  free(ps.start);
  if (rc != 0) {
    ty_plan_destroy(p);
    return rc;
  }
  *out_plan = p;
  return 0;
}
