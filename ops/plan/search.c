/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The search: which logical meshes to try, which strategies each search may
 * use, how a memory budget is met, and which plan wins.
 *
 * Meshes. Besides the physical nodes x devices_per_node, every
 * factorisation a0 x a1 of the devices whose inner axis a1 divides a node
 * or is a whole number of nodes (so each axis' links are known: inside a
 * node, or across nodes). A 1-D mesh is written 1 x n.
 *
 * Searches per mesh: unrestricted (the chosen plan's candidates), tensor
 * only (no axis splits a batch dim), and, on 2-D meshes, the grids with one
 * data axis and one tensor axis. Pure data parallelism runs on the
 * physical mesh. All are the same solver on the cost graph restricted to
 * the allowed strategies.
 *
 * Memory. The fastest plan is tried first; if it does not fit, the smallest
 * plan is found (memory is additive over vertices, so elimination minimises
 * it exactly); if even that does not fit, the request is refused with its
 * size. Otherwise a Lagrangian search over time + lambda * memory finds the
 * fastest plan that fits (exact for the ILP and brute-force solvers, which
 * take the budget as a hard constraint instead).
 *
 * The winner is the fastest plan that fits among all of them, so a plan is
 * never predicted slower than pure data parallelism when that fits.
 */
#include "ops/plan/plan_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_MESHES 64

typedef struct solved {
  bool ok;     /* fits the budget */
  bool valid;  /* an assignment was found at all (ok or not) */
  int *assign; /* original strategy indices, per vertex */
  double time, mem, min_mem;
  bool exact;
  bool splits; /* some op's loop or parameter is split across devices */
} solved;

typedef struct candidate {
  int mesh; /* index into the mesh list */
  ty__role roles[TY_PLAN_AXES];
  solved r;
} candidate;

typedef struct search {
  const ty__model *model;
  const ty_plan_request *req;
  double budget;
  ty__mesh meshes[MAX_MESHES];
  int n_meshes;
  int physical;
  char *err;
  size_t err_len;
  /* Why micro-batches cannot add up the loss (ty_plan_check_summed_losses),
   * when the search considers more than one; NULL otherwise. */
  const char *one_micro_why;
  /* Set by a refusal because no plan fits the memory (err says so), with
   * the least memory a flat plan needs and its mesh (need 0: none found). */
  bool refused_memory;
  double need;
  int need_mesh[TY_PLAN_AXES];
} search;

/* ---- validation ---------------------------------------------------------------- */

/* Stage and micro-batch counts; more stages than layers is refused by the
 * pipeline search, which finds the layers. Micro-batches without stages
 * (pipeline_stages 1) are gradient accumulation: a pipeline of one stage
 * on the whole mesh, its ops planned at the micro-batch. */
static int validate_pipeline(const ty_plan_request *r, char *err, size_t err_len) {
  int S = r->pipeline_stages, M = r->micro_batches;
  int devices = r->cluster.nodes * r->cluster.devices_per_node;
  if (S < 0)
    return ty_errf(err, err_len, TY_EINVAL, "pipeline_stages: %d (expected auto or a count >= 1)",
                   S);
  if (S > 1 && devices % S != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "pipeline_stages: %d stages do not divide the %d devices (%d x %d)", S, devices,
                   r->cluster.nodes, r->cluster.devices_per_node);
  if (M < 0)
    return ty_errf(err, err_len, TY_EINVAL, "micro_batches: %d (expected auto or a count >= 1)", M);
  if (M > 0 && r->batch % M != 0)
    return ty_errf(err, err_len, TY_EINVAL, "micro_batches: %d does not divide the batch %lld", M,
                   (long long)r->batch);
  return 0;
}

static int validate(const ty_plan_request *r, char *err, size_t err_len) {
  const ty_plan_cluster *c = &r->cluster;
  if (c->nodes < 1 || c->devices_per_node < 1)
    return ty_errf(err, err_len, TY_EINVAL,
                   "cluster: the mesh has no devices (%d nodes x %d devices per node)", c->nodes,
                   c->devices_per_node);
  if ((int64_t)c->nodes * c->devices_per_node > (1 << 20))
    return ty_errf(err, err_len, TY_EINVAL,
                   "cluster: %d x %d devices is more than the planner handles (%d)", c->nodes,
                   c->devices_per_node, 1 << 20);
  if (r->batch <= 0)
    return ty_errf(err, err_len, TY_EINVAL, "batch: must be positive (got %lld)",
                   (long long)r->batch);
  if (!(c->device_flops > 0) || !isfinite(c->device_flops))
    return ty_errf(err, err_len, TY_EINVAL, "cluster.device_flops: must be positive (got %g)",
                   c->device_flops);
  if (c->device_mem_bytes == 0)
    return ty_errf(err, err_len, TY_EINVAL, "cluster.device_mem_bytes: must be positive");
  if (c->devices_per_node > 1 && (!(c->intra_bw > 0) || !isfinite(c->intra_bw)))
    return ty_errf(err, err_len, TY_EINVAL, "cluster.intra_bw: must be positive (got %g)",
                   c->intra_bw);
  if (c->nodes > 1 && (!(c->inter_bw > 0) || !isfinite(c->inter_bw)))
    return ty_errf(err, err_len, TY_EINVAL, "cluster.inter_bw: must be positive (got %g)",
                   c->inter_bw);
  if (!(c->intra_latency_s >= 0) || !(c->inter_latency_s >= 0) || !(c->launch_s >= 0))
    return ty_errf(err, err_len, TY_EINVAL, "cluster: latencies must be zero or positive");
  if ((unsigned)r->optimizer > TY_PLAN_OPT_ADAM)
    return ty_errf(err, err_len, TY_EINVAL, "optimizer: unknown kind %d", (int)r->optimizer);
  if ((unsigned)r->mode > TY_PLAN_MODE_GRID)
    return ty_errf(err, err_len, TY_EINVAL, "mode: unknown mode %d", (int)r->mode);
  if ((unsigned)r->solver > TY_PLAN_SOLVER_BRUTE)
    return ty_errf(err, err_len, TY_EINVAL, "solver: unknown solver %d", (int)r->solver);
  if (r->time_limit_ms < 0)
    return ty_errf(err, err_len, TY_EINVAL, "time_limit_ms: must not be negative");
  return validate_pipeline(r, err, err_len);
}

void ty_plan_request_init(ty_plan_request *req) {
  memset(req, 0, sizeof *req);
  req->batch = 1;
  req->cluster = (ty_plan_cluster){
      .nodes = 1,
      .devices_per_node = 1,
      .device_flops = 100e9,
      .device_mem_bytes = 16ull << 30,
      .intra_bw = 10e9,
      .inter_bw = 1.25e9,
      .intra_latency_s = 2e-6,
      .inter_latency_s = 20e-6,
      .launch_s = 5e-6,
  };
  req->optimizer = TY_PLAN_OPT_ADAM;
  req->pipeline_stages = 1;
}

/* ---- meshes --------------------------------------------------------------------- */

static ty__mesh make_mesh(const ty_plan_cluster *c, int a0, int a1) {
  ty__mesh m = {.n = {a0, a1}, .flops = c->device_flops, .launch = c->launch_s};
  bool inner_local = a1 <= c->devices_per_node; /* a1 divides a node: its ranks share one */
  m.bw[1] = inner_local ? c->intra_bw : c->inter_bw;
  m.lat[1] = inner_local ? c->intra_latency_s : c->inter_latency_s;
  m.bw[0] = c->nodes == 1 ? c->intra_bw : c->inter_bw;
  m.lat[0] = c->nodes == 1 ? c->intra_latency_s : c->inter_latency_s;
  return m;
}

int ty__list_meshes(const ty_plan_cluster *c, bool fixed, ty__mesh *out, int max) {
  int N = c->nodes, D = c->devices_per_node, n = N * D, k = 0;
  out[k++] = make_mesh(c, N, D);
  for (int a1 = 2; !fixed && a1 <= n && k < max; a1++) {
    bool fits = a1 <= D ? D % a1 == 0 : a1 % D == 0 && N % (a1 / D) == 0;
    if (!fits || a1 == D || (D == 1 && a1 == n)) continue; /* the physical mesh is listed already */
    out[k++] = make_mesh(c, n / a1, a1);
  }
  return k;
}

static void list_meshes(search *s) {
  s->physical = 0;
  s->n_meshes = ty__list_meshes(&s->req->cluster, s->req->fixed_mesh, s->meshes, MAX_MESHES);
}

/* ---- one restricted search ---------------------------------------------------------- */

static int run_solver(const search *s, const ty__cg *cg, ty__objective obj, int *a,
                      ty__solve_info *info) {
  int rc;
  switch (s->req->solver) {
  case TY_PLAN_SOLVER_ILP:
    rc = ty__solve_ilp(cg, obj, s->req->time_limit_ms, a, info);
    if (rc == TY_ETIMEDOUT) {
      obj.budget = -1; /* nothing found in time: fall back to elimination's plan */
      rc = ty__solve_elim(cg, obj, s->req->time_limit_ms, a, info);
      info->exact = false;
    }
    return rc;
  case TY_PLAN_SOLVER_BRUTE:
    rc = ty__solve_brute(cg, obj, 2e7, a, info);
    if (rc == TY_EINVAL)
      return ty_errf(s->err, s->err_len, TY_EINVAL,
                     "solver: brute force would visit more than 2e7 nodes; "
                     "use the default solver for a graph this size");
    return rc;
  default:
    obj.budget = -1;
    return ty__solve_elim(cg, obj, s->req->time_limit_ms, a, info);
  }
}

/* Finds the fastest assignment with mem <= limit by a Lagrangian sweep
 * (elimination only); best/out hold the fastest feasible one seen. */
static int lagrange(const search *s, const ty__cg *cg, double limit, double t0, double m0, int *a,
                    int *best, solved *out) {
  double lam = t0 / fmax(m0, 1.0), lo = 0, hi = 0;
  ty__solve_info info;
  for (int i = 0; i < 60; i++) {
    int rc = run_solver(s, cg, (ty__objective){1, lam, -1}, a, &info);
    if (rc != 0) return rc;
    double t, m;
    ty__cg_eval(cg, a, &t, &m);
    if (m <= limit) {
      if (t < out->time) {
        out->time = t;
        out->mem = m;
        memcpy(best, a, (size_t)cg->n_v * sizeof *a);
      }
      hi = lam;
    } else {
      lo = lam;
    }
    if (hi == 0)
      lam *= 8; /* nothing fits yet: weigh memory more */
    else if (lo == 0)
      lam /= 8; /* everything fits so far: weigh it less */
    else if (hi / lo < 1.05)
      break;
    else
      lam = sqrt(lo * hi);
    if (!(lam > 1e-300 && lam < 1e300)) break;
  }
  return 0;
}

/* Whether assignment a (original strategy indices) splits anything: an op's
 * loop or a parameter's layout over an axis of more than one device. A plan
 * that splits nothing has every device compute the whole step. */
static bool splits_any(const ty__space *sp, const int *a) {
  for (int v = 0; v < sp->n_vertices; v++) {
    const ty__vchoice *c = &sp->choice[v];
    if (c->node < 0) {
      if (ty__lay_whole(c->lay[a[v]]) != 0) return true;
      continue;
    }
    for (int x = 0; x < TY_PLAN_AXES; x++)
      if (sp->mesh.n[x] > 1 && c->strat[a[v]].axis_loop[x] != TY__NO_LOOP) return true;
  }
  return false;
}

static int solve_restricted(const search *s, const ty__space *sp, uint8_t **allowed, solved *out) {
  ty__cg r;
  int *map = NULL, *a = NULL, *best = NULL;
  int rc = ty__cg_restrict(&sp->cg, allowed, &r, &map);
  memset(out, 0, sizeof *out);
  if (rc != 0) return rc;
  size_t nv = (size_t)r.n_v + 1;
  a = malloc(nv * sizeof *a);
  best = malloc(nv * sizeof *best);
  out->assign = malloc(nv * sizeof *out->assign);
  rc = TY_ENOMEM;
  if (!a || !best || !out->assign) goto done;
  double limit = s->budget - sp->fixed_mem, t;
  bool hard = s->req->solver != TY_PLAN_SOLVER_AUTO;
  ty__solve_info info;
  /* the fastest plan, whatever its memory (what a "does not fit" row shows) */
  if ((rc = run_solver(s, &r, (ty__objective){1, 0, -1}, best, &info)) != 0) goto done;
  ty__cg_eval(&r, best, &out->time, &out->mem);
  out->valid = true;
  out->exact = info.exact;
  out->ok = out->mem <= limit;
  if (!out->ok) {
    if ((rc = run_solver(s, &r, (ty__objective){0, 1, -1}, a, &info)) != 0) goto done;
    ty__cg_eval(&r, a, &t, &out->min_mem);
    if (out->min_mem <= limit) {
      solved fit = {.time = INFINITY};
      if (hard) {
        if ((rc = run_solver(s, &r, (ty__objective){1, 0, limit}, a, &info)) != 0) goto done;
        if (info.feasible) ty__cg_eval(&r, a, &fit.time, &fit.mem);
        memcpy(best, a, nv * sizeof *a);
        out->exact = info.exact;
      } else {
        fit.time = t, fit.mem = out->min_mem;
        memcpy(best, a, nv * sizeof *a);
        if ((rc = lagrange(s, &r, limit, out->time, out->mem, a, best, &fit)) != 0) goto done;
        out->exact = false;
      }
      out->ok = fit.time < INFINITY;
      out->time = fit.time, out->mem = fit.mem;
    }
  }
  out->min_mem = (out->ok ? out->mem : out->min_mem) + sp->fixed_mem;
  out->mem += sp->fixed_mem;
  for (int v = 0; v < r.n_v; v++)
    out->assign[v] = map[map[v] + best[v]];
  out->splits = splits_any(sp, out->assign);
  /* as the plan emitted from it will say (shared.c) */
  if (isfinite(out->time)) out->time = fmax(out->time - ty__shared_saving(sp, out->assign), 0);
  rc = 0;
done:
  if (rc != 0) {
    free(out->assign);
    out->assign = NULL;
  }
  free(a);
  free(best);
  free(map);
  ty__cg_close(&r);
  return rc;
}

static int solve_roles(const search *s, const ty__space *sp, ty__role r0, ty__role r1,
                       solved *out) {
  uint8_t **allowed = NULL;
  ty__role roles[TY_PLAN_AXES] = {r0, r1};
  int rc = ty__space_allowed(sp, roles, &allowed);
  if (rc == 0) rc = solve_restricted(s, sp, allowed, out);
  for (int v = 0; allowed && v < sp->n_vertices; v++)
    free(allowed[v]);
  free(allowed);
  return rc;
}

/* ---- the whole search ----------------------------------------------------------------- */

enum { ALT_DATA, ALT_TENSOR, ALT_GRID, ALT_ANY, N_ALT };

typedef struct results {
  candidate best[N_ALT];
  bool have[N_ALT];
} results;

static bool better(const solved *a, const solved *b) {
  if (a->ok != b->ok) return a->ok;
  if (a->ok) return a->time < b->time * (1 - 1e-12);
  return a->min_mem < b->min_mem;
}

/* Keeps sol as alternative alt's best if it beats the one held; takes sol's
 * assignment either way. */
static void keep(results *r, int alt, int mesh, ty__role r0, ty__role r1, solved *sol) {
  if (r->have[alt] && !better(sol, &r->best[alt].r)) {
    free(sol->assign);
    return;
  }
  if (r->have[alt]) free(r->best[alt].r.assign);
  r->best[alt] = (candidate){mesh, {r0, r1}, *sol};
  r->have[alt] = true;
}

/* Whether a data axis of `parts` devices may split the batch: evenly, or
 * ceil / floor (64 on 3: 22, 21, 21) outside a pipeline, each device
 * getting a row at least. */
static bool batch_splits(const ty__model *m, int64_t parts) {
  return m->batch % parts == 0 || (!m->even_only && m->batch >= parts);
}

static int search_mesh(search *s, int mi, results *res) {
  ty__space sp;
  const ty__mesh *m = &s->meshes[mi];
  int rc = ty__space_build(s->model, m, &sp);
  solved sol;
  bool auto_mode = s->req->mode != TY_PLAN_MODE_DATA; /* the forced modes pick among the same */
  int devices = m->n[0] * m->n[1];
  if (rc == 0 && mi == s->physical && batch_splits(s->model, devices) &&
      (rc = solve_roles(s, &sp, TY__ROLE_DATA, TY__ROLE_DATA, &sol)) == 0)
    keep(res, ALT_DATA, mi, TY__ROLE_DATA, TY__ROLE_DATA, &sol);
  if (rc == 0 && auto_mode &&
      (rc = solve_roles(s, &sp, TY__ROLE_TENSOR, TY__ROLE_TENSOR, &sol)) == 0)
    keep(res, ALT_TENSOR, mi, TY__ROLE_TENSOR, TY__ROLE_TENSOR, &sol);
  for (int g = 0; rc == 0 && auto_mode && m->n[0] > 1 && m->n[1] > 1 && g < 2; g++) {
    ty__role r0 = g ? TY__ROLE_TENSOR : TY__ROLE_DATA, r1 = g ? TY__ROLE_DATA : TY__ROLE_TENSOR;
    if (batch_splits(s->model, m->n[g]) && (rc = solve_roles(s, &sp, r0, r1, &sol)) == 0)
      keep(res, ALT_GRID, mi, r0, r1, &sol);
  }
  if (rc == 0 && auto_mode && (rc = solve_roles(s, &sp, TY__ROLE_ANY, TY__ROLE_ANY, &sol)) == 0)
    keep(res, ALT_ANY, mi, TY__ROLE_ANY, TY__ROLE_ANY, &sol);
  ty__space_close(&sp);
  return rc;
}

static void describe_alt(const search *s, const results *res, int alt, ty_plan_alternative *out) {
  static const char *const names[N_ALT] = {"data parallel", "tensor parallel", "data x tensor",
                                           "chosen"};
  memset(out, 0, sizeof *out);
  snprintf(out->name, sizeof out->name, "%s", names[alt]);
  if (!res->have[alt]) {
    int n = s->req->cluster.nodes * s->req->cluster.devices_per_node;
    if (alt == ALT_DATA)
      snprintf(out->why, sizeof out->why, "batch %lld is smaller than the data-parallel degree %d",
               (long long)s->model->batch, n);
    else if (alt == ALT_GRID)
      snprintf(out->why, sizeof out->why,
               "no mesh has two axes of more than one device with a data axis of at most the "
               "batch's rows");
    else
      snprintf(out->why, sizeof out->why, "not searched in data-parallel mode");
    return;
  }
  const candidate *c = &res->best[alt];
  const ty__mesh *m = &s->meshes[c->mesh];
  out->applicable = true;
  out->mesh[0] = m->n[0];
  out->mesh[1] = m->n[1];
  out->step_s = c->r.time;
  out->memory_bytes = (uint64_t)c->r.mem;
  out->fits = c->r.ok;
  if (alt == ALT_GRID) {
    int dp = c->roles[0] == TY__ROLE_DATA ? m->n[0] : m->n[1];
    snprintf(out->name, sizeof out->name, "data %d x tensor %d", dp, m->n[0] * m->n[1] / dp);
  }
  if (alt == ALT_TENSOR && !c->r.splits) {
    snprintf(out->name, sizeof out->name, "replicated");
    snprintf(out->why, sizeof out->why, "nothing is split: every device computes the whole step");
  }
  if (!c->r.ok) {
    char need[32];
    ty__fmt_bytes(c->r.min_mem, need, sizeof need);
    snprintf(out->why, sizeof out->why, "needs at least %s per device", need);
  }
}

static int refuse(search *s, const results *res) {
  int at = -1;
  for (int a = 0; a < N_ALT; a++)
    if (res->have[a] && res->best[a].r.valid &&
        (at < 0 || res->best[a].r.min_mem < res->best[at].r.min_mem))
      at = a;
  char have[32], need[32];
  ty__fmt_bytes(s->budget, have, sizeof have);
  s->refused_memory = true;
  if (at < 0)
    return ty_errf(s->err, s->err_len, TY_EINVAL,
                   "cluster.device_mem_bytes: no plan fits in %s per device", have);
  const ty__mesh *m = &s->meshes[res->best[at].mesh];
  s->need = res->best[at].r.min_mem;
  s->need_mesh[0] = m->n[0], s->need_mesh[1] = m->n[1];
  ty__fmt_bytes(res->best[at].r.min_mem, need, sizeof need);
  return ty_errf(
      s->err, s->err_len, TY_EINVAL,
      "cluster.device_mem_bytes: no plan fits in %s per device; the smallest plan needs %s "
      "per device (mesh %dx%d)",
      have, need, m->n[0], m->n[1]);
}

/* The winner: the fastest plan that fits (ties to the simpler plan: data,
 * then the grid, tensor, and the unrestricted search only when strictly
 * faster), or the forced mode's alternative. Refuses when none fits. */
static int pick(search *s, const results *res, int *out_win) {
  static const int prefer[N_ALT] = {ALT_DATA, ALT_GRID, ALT_TENSOR, ALT_ANY};
  int forced = s->req->mode == TY_PLAN_MODE_TENSOR ? ALT_TENSOR
               : s->req->mode == TY_PLAN_MODE_GRID ? ALT_GRID
                                                   : -1;
  if (forced >= 0 && !res->have[forced])
    return ty_errf(
        s->err, s->err_len, TY_EINVAL, "mode: no %s plan exists for %d devices and batch %lld (%s)",
        forced == ALT_GRID ? "data x tensor" : "tensor parallel",
        s->req->cluster.nodes * s->req->cluster.devices_per_node, (long long)s->model->batch,
        forced == ALT_GRID ? "no mesh has two axes of more than one device with a data "
                             "axis of at most the batch's rows"
                           : "no mesh");
  if (forced >= 0 && !res->best[forced].r.ok) {
    char have[32], need[32];
    ty__fmt_bytes(s->budget, have, sizeof have);
    ty__fmt_bytes(res->best[forced].r.min_mem, need, sizeof need);
    s->refused_memory = true;
    return ty_errf(s->err, s->err_len, TY_EINVAL,
                   "cluster.device_mem_bytes: the %s plan does not fit in %s per device; it "
                   "needs %s",
                   forced == ALT_GRID ? "data x tensor" : "tensor parallel", have, need);
  }
  int win = forced;
  for (int i = 0; forced < 0 && i < N_ALT; i++) {
    int a = prefer[i];
    if (res->have[a] && res->best[a].r.ok &&
        (win < 0 || better(&res->best[a].r, &res->best[win].r)))
      win = a;
  }
  if (win < 0) return refuse(s, res);
  *out_win = win;
  return 0;
}

/* The alternatives, "chosen" last: win's (an alternative of res), or, when
 * win < 0, the pipelined plan p. extra (a pipeline that lost, or the best
 * plan without one) goes before "chosen". */
static int set_alternatives(const search *s, const results *res, int win,
                            const ty_plan_alternative *extra, ty_plan *p) {
  size_t n = N_ALT + (extra != NULL);
  if (!(p->alternatives = calloc(n, sizeof *p->alternatives))) return TY_ENOMEM;
  p->n_alternatives = n;
  for (int a = 0; a < ALT_ANY; a++)
    describe_alt(s, res, a, &p->alternatives[a]);
  if (extra) p->alternatives[ALT_ANY] = *extra;
  ty_plan_alternative *chosen = &p->alternatives[n - 1];
  if (win >= 0) {
    describe_alt(s, res, win, chosen);
    if (win == ALT_ANY)
      snprintf(chosen->why, sizeof chosen->why, "every strategy searched on mesh %dx%d", p->mesh[0],
               p->mesh[1]);
    else
      snprintf(chosen->why, sizeof chosen->why, "the %s plan", p->alternatives[win].name);
  } else {
    *chosen = (ty_plan_alternative){.mesh = {p->mesh[0], p->mesh[1]},
                                    .applicable = true,
                                    .step_s = p->step_s,
                                    .memory_bytes = p->memory_bytes,
                                    .fits = true};
    snprintf(chosen->why, sizeof chosen->why,
             "%d pipeline stage%s of mesh %dx%d, %d micro-batch%s, bubble %.0f%%", p->n_stages,
             p->n_stages == 1 ? "" : "s", p->mesh[0], p->mesh[1], p->micro_batches,
             p->micro_batches == 1 ? "" : "es", 100 * p->bubble);
  }
  snprintf(chosen->name, sizeof chosen->name, "chosen");
  return 0;
}

/* The plan's identity and search facts. */
static void finish(const search *s, double t0, bool exact, ty_plan *p) {
  p->graph_fingerprint = ty_plan_fingerprint(s->model->g);
  p->nodes = s->req->cluster.nodes;
  p->devices_per_node = s->req->cluster.devices_per_node;
  p->budget_bytes = (uint64_t)s->budget;
  p->exact = exact;
  if (p->micro_batches < 1) p->micro_batches = 1;
  if (s->one_micro_why) snprintf(p->one_micro_why, sizeof p->one_micro_why, "%s", s->one_micro_why);
  p->search_ms = (ty_mono_s() - t0) * 1e3;
}

static int assemble(const search *s, const results *res, int win, const ty_plan_alternative *extra,
                    double t0, ty_plan **out_plan) {
  ty_plan *p = calloc(1, sizeof *p);
  if (!p) return TY_ENOMEM;
  const candidate *w = &res->best[win];
  ty__space sp;
  int rc = ty__space_build(s->model, &s->meshes[w->mesh], &sp);
  if (rc == 0) rc = ty__emit(&sp, w->r.assign, p);
  ty__space_close(&sp);
  if (rc == 0) rc = set_alternatives(s, res, win, extra, p);
  if (rc != 0) {
    ty_plan_destroy(p);
    return rc;
  }
  finish(s, t0, w->r.exact, p);
  *out_plan = p;
  return 0;
}

/* The pipelined plan pp as an alternative beside the plan chosen. */
static void pipeline_alt(const ty_plan *pp, int rc, const char *why, ty_plan_alternative *out) {
  memset(out, 0, sizeof *out);
  if (rc != 0) {
    snprintf(out->name, sizeof out->name, "pipeline");
    snprintf(out->why, sizeof out->why, "%s", why);
    return;
  }
  *out = (ty_plan_alternative){.mesh = {pp->mesh[0], pp->mesh[1]},
                               .applicable = true,
                               .step_s = pp->step_s,
                               .memory_bytes = pp->memory_bytes,
                               .fits = true};
  snprintf(out->name, sizeof out->name, "pipeline (%d stages x %d)", pp->n_stages,
           pp->micro_batches);
  snprintf(out->why, sizeof out->why, "stage mesh %dx%d, %d micro-batch%s, bubble %.0f%%",
           pp->mesh[0], pp->mesh[1], pp->micro_batches, pp->micro_batches == 1 ? "" : "es",
           100 * pp->bubble);
}

/* The best plan without a pipeline, beside a pipelined plan chosen. */
static void flat_alt(const search *s, const results *res, int win, const char *why,
                     ty_plan_alternative *out) {
  memset(out, 0, sizeof *out);
  if (win >= 0) {
    describe_alt(s, res, win, out);
    snprintf(out->why, sizeof out->why, "the %s plan", out->name);
  } else {
    snprintf(out->why, sizeof out->why, "%s", why);
  }
  snprintf(out->name, sizeof out->name, "no pipeline");
}

/* Pipelining beside the flat search (win, rc_flat, its error in err):
 * the pipeline wins when forced, when nothing flat fits, or when it is
 * predicted strictly faster. */
static int with_pipeline(const search *s, const results *res, int win, int rc_flat, double t0,
                         ty_plan **out_plan) {
  const ty_plan_request *req = s->req;
  char perr[TY_ERR_LEN] = "";
  ty_plan *pp = NULL;
  bool forced = req->pipeline_stages > 1 || req->micro_batches > 1;
  double bound = forced || rc_flat != 0 ? INFINITY : res->best[win].r.time;
  int rc = ty__pipeline_search(s->model->g, req, s->budget, bound, s->one_micro_why, perr,
                               sizeof perr, &pp);
  if (rc != 0 && rc != TY_ENOTFOUND && (forced || rc == TY_ENOMEM))
    return ty_errf(s->err, s->err_len, rc, "%s", perr);
  if (rc != 0 && (forced || rc_flat != 0)) {
    if (forced) ty_errf(s->err, s->err_len, rc, "%s", perr);
    return forced ? rc : rc_flat; /* the flat search's refusal is in err */
  }
  ty_plan_alternative alt;
  if (rc == 0 && (forced || rc_flat != 0 || pp->step_s < res->best[win].r.time * (1 - 1e-12))) {
    flat_alt(s, res, rc_flat == 0 ? win : -1, s->err, &alt);
    rc = set_alternatives(s, res, -1, &alt, pp);
    if (rc == 0) finish(s, t0, false, pp);
    if (rc == 0)
      *out_plan = pp;
    else
      ty_plan_destroy(pp);
    return rc;
  }
  pipeline_alt(pp, rc, perr, &alt);
  ty_plan_destroy(pp);
  return assemble(s, res, win, &alt, t0, out_plan);
}

/* A flat request refused for memory (err says so): the pipeline or
 * accumulation that fits, taken as the plan when the request allows it
 * (fallback.c), the refusal extended with it otherwise. */
static int fall_back(search *s, const results *res, double t0, ty_plan **out_plan) {
  ty__fallback fb;
  int rc =
      ty__memory_fallback(s->model->g, s->req, s->model->loss, s->budget, s->err, s->err_len, &fb);
  if (rc != 0) return rc;
  ty_plan *pp = fb.plan;
  char have[32], need[32] = "", step[96];
  ty__fmt_bytes(s->budget, have, sizeof have);
  ty_plan_alternative flat = {.name = "no pipeline"};
  if (s->need > 0) {
    ty__fmt_bytes(s->need, need, sizeof need);
    snprintf(flat.why, sizeof flat.why, "the smallest needs %s per device (mesh %dx%d)", need,
             s->need_mesh[0], s->need_mesh[1]);
  }
  rc = set_alternatives(s, res, -1, &flat, pp);
  if (rc != 0) {
    ty_plan_destroy(pp);
    return rc;
  }
  s->one_micro_why = fb.one_micro_why[0] ? fb.one_micro_why : NULL; /* finish copies it */
  finish(s, t0, false, pp);
  s->one_micro_why = NULL;
  if (pp->n_stages > 1)
    snprintf(step, sizeof step, "%d stages of mesh %dx%d, %d micro-batch%s, bubble %.0f%%",
             pp->n_stages, pp->mesh[0], pp->mesh[1], pp->micro_batches,
             pp->micro_batches == 1 ? "" : "es", 100 * pp->bubble);
  else
    snprintf(step, sizeof step, "gradient accumulation over %d micro-batches of %lld on mesh %dx%d",
             pp->micro_batches, (long long)pp->batch, pp->mesh[0], pp->mesh[1]);
  ty_plan_alternative *chosen = &pp->alternatives[pp->n_alternatives - 1];
  char why[TY_ERR_LEN]; /* about 110 bytes: why holds it whole */
  snprintf(why, sizeof why, TY__FALLBACK_WHY "%s per device; pipelined: %s", have, step);
  snprintf(chosen->why, sizeof chosen->why, "%.*s", (int)sizeof chosen->why - 1, why);
  s->err[0] = '\0';
  *out_plan = pp;
  return 0;
}

int ty_plan_search(const ty_graph *g, const ty_plan_request *req, char *err, size_t err_len,
                   ty_plan **out_plan) {
  double t0 = ty_mono_s();
  if (!out_plan || !g || !req)
    return ty_errf(err, err_len, TY_EINVAL,
                   "ty_plan_search: a graph, a request and out_plan are required");
  *out_plan = NULL;
  int rc = validate(req, err, err_len);
  if (rc != 0) return rc;
  const ty_plan_cluster *c = &req->cluster;
  int devices = c->nodes * c->devices_per_node;
  int64_t rows = req->micro_batches > 1 ? req->batch / req->micro_batches : req->batch;
  /* Micro-batches run as a pipeline, whose blocks are equal; a batch
   * without them splits ceil / floor and needs a row per device only. */
  if (req->mode == TY_PLAN_MODE_DATA && req->pipeline_stages == 1 && rows != req->batch &&
      rows % devices != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "batch: the micro-batch of %lld is not divisible by the data-parallel degree "
                   "%d (mesh %dx%d): make config.batch_size a multiple of %lld, or ask for a "
                   "device count that divides %lld",
                   (long long)rows, devices, c->nodes, c->devices_per_node,
                   (long long)(req->batch / rows) * devices, (long long)rows);
  if (req->mode == TY_PLAN_MODE_DATA && req->pipeline_stages == 1 && rows < devices)
    return ty_errf(err, err_len, TY_EINVAL,
                   "batch: %lld is smaller than the data-parallel degree %d (mesh %dx%d): every "
                   "device needs a row; make config.batch_size at least %d, or ask for at most "
                   "%lld devices",
                   (long long)rows, devices, c->nodes, c->devices_per_node, devices,
                   (long long)rows);
  ty__model model;
  rc = ty__model_build(g, req, err, err_len, &model);
  search s = {.model = &model,
              .req = req,
              .budget = (double)c->device_mem_bytes,
              .err = err,
              .err_len = err_len};
  results res;
  memset(&res, 0, sizeof res);
  if (rc == 0) list_meshes(&s);
  for (int i = 0; rc == 0 && i < s.n_meshes; i++)
    if (req->mode != TY_PLAN_MODE_DATA || i == s.physical) rc = search_mesh(&s, i, &res);
  int win = -1;
  bool micro = req->pipeline_stages != 1 || req->micro_batches > 1;
  char why[TY_ERR_LEN];
  if (rc == 0 && micro) {
    rc = ty_plan_check_summed_losses(g, model.loss, why, sizeof why);
    if (rc == TY_EUNSUPPORTED) s.one_micro_why = why;
    rc = rc == TY_EUNSUPPORTED ? 0 : rc;
  }
  if (rc == 0) {
    rc = pick(&s, &res, &win);
    if (micro && (rc == 0 || rc == TY_EINVAL))
      rc = with_pipeline(&s, &res, win, rc, t0, out_plan);
    else if (rc == 0)
      rc = assemble(&s, &res, win, NULL, t0, out_plan);
    else if (s.refused_memory)
      rc = fall_back(&s, &res, t0, out_plan);
  }
  for (int a = 0; a < N_ALT; a++)
    if (res.have[a]) free(res.best[a].r.assign);
  ty__model_close(&model);
  return rc;
}
