/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The exact solver for series-parallel cost graphs, by elimination (the
 * method of MindSpore's auto-parallel): repeatedly
 *   - a vertex with no edge picks its cheapest strategy;
 *   - a leaf v hanging from u folds into u: c_u[s] += min_t E(s,t) + c_v[t];
 *   - a vertex v of degree two between u and w becomes an edge:
 *     E'(s,r) = min_t E_uv(s,t) + c_v[t] + E_vw(t,r), added to any edge
 *     u-w already there (parallel edges merge).
 * Every step keeps the optimum and records its argmin, so substituting back
 * in reverse order recovers an optimal assignment. Chains, trees, residual
 * blocks and attention's fork-join patterns reduce completely. What cannot
 * reduce (every vertex of degree three or more) is solved by branch and
 * bound when small, else by the ILP, else by a local search from the
 * per-vertex optimum, and then the plan is not proved optimal.
 * A series step costs n_u * n_v * n_w; on a 2-D mesh an op has at most a
 * few dozen strategies, so a 1,000-op graph takes milliseconds.
 */
#include "ops/plan/plan_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

typedef struct wedge {
  int a, b; /* matrix rows: a's strategies */
  double *m;
  bool owned; /* else borrowed from the cost graph */
  bool alive;
} wedge;

typedef struct wvert {
  int n;
  double *c;
  int *adj; /* edge ids */
  int deg, cap;
  bool alive;
} wvert;

typedef struct record {
  int kind; /* 0 isolated, 1 leaf, 2 series */
  int v, u, w;
  int *arg;
} record;

typedef struct work {
  int nv, ne, ecap;
  wvert *v;
  wedge *e;
  record *rec;
  int nrec;
  int *queue;
  int qlen, qcap;
} work;

static int other(const wedge *e, int x) {
  return e->a == x ? e->b : e->a;
}

/* Appends v to a growable int array. */
static int int_push(int **arr, int *len, int *cap, int v) {
  if (*len == *cap) {
    int nc = *cap ? 2 * *cap : 8;
    int *na = realloc(*arr, (size_t)nc * sizeof *na);
    if (!na) return TY_ENOMEM;
    *arr = na;
    *cap = nc;
  }
  (*arr)[(*len)++] = v;
  return 0;
}

static int adj_add(wvert *x, int e) {
  return int_push(&x->adj, &x->deg, &x->cap, e);
}
static int push(work *w, int v) {
  return int_push(&w->queue, &w->qlen, &w->qcap, v);
}

static void adj_remove(wvert *x, int e) {
  for (int i = 0; i < x->deg; i++)
    if (x->adj[i] == e) {
      x->adj[i] = x->adj[--x->deg];
      return;
    }
}

/* Cost of edge e with its end `from` at strategy s and the other at t. */
static double em(const work *w, const wedge *e, int from, int s, int t) {
  int nb = w->v[e->b].n;
  return e->a == from ? e->m[(size_t)s * (size_t)nb + (size_t)t]
                      : e->m[(size_t)t * (size_t)nb + (size_t)s];
}

/* Adds matrix m (rows: a's strategies) as edge a-b, merging with an
 * existing a-b edge. Takes ownership of m when owned. */
static int add_edge(work *w, int a, int b, double *m, bool owned) {
  wvert *va = &w->v[a];
  for (int i = 0; i < va->deg; i++) {
    wedge *e = &w->e[va->adj[i]];
    if (other(e, a) != b) continue;
    size_t na = (size_t)w->v[e->a].n, nb = (size_t)w->v[e->b].n;
    if (!e->owned) {
      double *copy = malloc(na * nb * sizeof *copy);
      if (!copy) return TY_ENOMEM;
      memcpy(copy, e->m, na * nb * sizeof *copy);
      e->m = copy;
      e->owned = true;
    }
    for (size_t s = 0; s < (size_t)w->v[a].n; s++)
      for (size_t t = 0; t < (size_t)w->v[b].n; t++)
        e->m[e->a == a ? s * nb + t : t * nb + s] += m[s * (size_t)w->v[b].n + t];
    if (owned) free(m);
    return 0;
  }
  if (w->ne == w->ecap) {
    int nc = w->ecap ? 2 * w->ecap : 64;
    wedge *ne = realloc(w->e, (size_t)nc * sizeof *ne);
    if (!ne) return TY_ENOMEM;
    w->e = ne;
    w->ecap = nc;
  }
  w->e[w->ne] = (wedge){a, b, m, owned, true};
  int rc = adj_add(va, w->ne);
  if (rc == 0) rc = adj_add(&w->v[b], w->ne);
  if (rc == 0) w->ne++;
  return rc;
}

static int work_init(work *w, const ty__cg *cg, ty__objective obj) {
  memset(w, 0, sizeof *w);
  w->nv = cg->n_v;
  w->v = calloc((size_t)cg->n_v + 1, sizeof *w->v);
  w->rec = calloc((size_t)cg->n_v + 1, sizeof *w->rec);
  if (!w->v || !w->rec) return TY_ENOMEM;
  for (int v = 0; v < cg->n_v; v++) {
    wvert *x = &w->v[v];
    x->n = cg->v[v].n;
    x->alive = true;
    if (!(x->c = malloc(((size_t)x->n + 1) * sizeof *x->c))) return TY_ENOMEM;
    for (int k = 0; k < x->n; k++)
      x->c[k] = obj.wt * cg->v[v].time[k] + obj.wm * cg->v[v].mem[k];
  }
  int rc = 0;
  for (int e = 0; rc == 0 && e < cg->n_e; e++)
    rc = add_edge(w, cg->e[e].u, cg->e[e].v, cg->e[e].cost, false);
  for (int v = 0; rc == 0 && v < w->nv; v++)
    if (w->v[v].deg <= 2) rc = push(w, v);
  return rc;
}

static void work_close(work *w) {
  for (int v = 0; w->v && v < w->nv; v++) {
    free(w->v[v].c);
    free(w->v[v].adj);
  }
  for (int e = 0; w->e && e < w->ne; e++)
    if (w->e[e].owned) free(w->e[e].m);
  for (int r = 0; w->rec && r < w->nrec; r++)
    free(w->rec[r].arg);
  free(w->v);
  free(w->e);
  free(w->rec);
  free(w->queue);
}

static void drop_edge(work *w, int e) {
  w->e[e].alive = false;
  adj_remove(&w->v[w->e[e].a], e);
  adj_remove(&w->v[w->e[e].b], e);
}

static int eliminate_leaf(work *w, int v) {
  wvert *x = &w->v[v];
  int e = x->adj[0], u = other(&w->e[e], v);
  wvert *y = &w->v[u];
  int *arg = malloc(((size_t)y->n + 1) * sizeof *arg);
  if (!arg) return TY_ENOMEM;
  for (int s = 0; s < y->n; s++) {
    double best = DBL_MAX;
    arg[s] = 0;
    for (int t = 0; t < x->n; t++) {
      double c = em(w, &w->e[e], u, s, t) + x->c[t];
      if (c < best) best = c, arg[s] = t;
    }
    y->c[s] += best;
  }
  w->rec[w->nrec++] = (record){1, v, u, -1, arg};
  drop_edge(w, e);
  x->alive = false;
  return y->deg <= 2 ? push(w, u) : 0;
}

/* Copies edge e as a matrix with rows for `from` (n_from x n_other). */
static double *oriented(const work *w, int e, int from) {
  const wedge *ed = &w->e[e];
  int nf = w->v[from].n, no = w->v[other(ed, from)].n;
  double *m = malloc(((size_t)nf * (size_t)no + 1) * sizeof *m);
  if (!m) return NULL;
  for (int s = 0; s < nf; s++)
    for (int t = 0; t < no; t++)
      m[(size_t)s * (size_t)no + (size_t)t] = em(w, ed, from, s, t);
  return m;
}

static int eliminate_series(work *w, int v) {
  wvert *x = &w->v[v];
  int e1 = x->adj[0], e2 = x->adj[1];
  int u = other(&w->e[e1], v), z = other(&w->e[e2], v);
  int nu = w->v[u].n, nz = w->v[z].n, nx = x->n;
  double *a = oriented(w, e1, u), *b = oriented(w, e2, v);
  double *m = malloc(((size_t)nu * (size_t)nz + 1) * sizeof *m);
  int *arg = malloc(((size_t)nu * (size_t)nz + 1) * sizeof *arg);
  int rc = TY_ENOMEM;
  if (!a || !b || !m || !arg) goto fail;
  for (size_t i = 0; i < (size_t)nu * (size_t)nz; i++)
    m[i] = DBL_MAX, arg[i] = 0;
  for (int s = 0; s < nu; s++)
    for (int t = 0; t < nx; t++) {
      double base = a[(size_t)s * (size_t)nx + (size_t)t] + x->c[t];
      const double *brow = b + (size_t)t * (size_t)nz;
      double *mrow = m + (size_t)s * (size_t)nz;
      int *arow = arg + (size_t)s * (size_t)nz;
      for (int r = 0; r < nz; r++)
        if (base + brow[r] < mrow[r]) mrow[r] = base + brow[r], arow[r] = t;
    }
  free(a);
  free(b);
  w->rec[w->nrec++] = (record){2, v, u, z, arg};
  drop_edge(w, e1);
  drop_edge(w, e2);
  x->alive = false;
  if ((rc = add_edge(w, u, z, m, true)) != 0) return rc;
  if (w->v[u].deg <= 2 && (rc = push(w, u)) != 0) return rc;
  return w->v[z].deg <= 2 ? push(w, z) : 0;
fail:
  free(a);
  free(b);
  free(m);
  free(arg);
  return rc;
}

static int reduce(work *w) {
  while (w->qlen > 0) {
    int v = w->queue[--w->qlen], rc = 0;
    wvert *x = &w->v[v];
    if (!x->alive || x->deg > 2) continue;
    if (x->deg == 0) {
      int *arg = malloc(sizeof *arg);
      if (!arg) return TY_ENOMEM;
      *arg = 0;
      for (int t = 1; t < x->n; t++)
        if (x->c[t] < x->c[*arg]) *arg = t;
      w->rec[w->nrec++] = (record){0, v, -1, -1, arg};
      x->alive = false;
    } else if (x->deg == 1) {
      rc = eliminate_leaf(w, v);
    } else if (other(&w->e[x->adj[0]], v) != other(&w->e[x->adj[1]], v)) {
      rc = eliminate_series(w, v);
    }
    if (rc != 0) return rc;
  }
  return 0;
}

/* Local search from the per-vertex optimum: each vertex in turn takes its
 * best strategy given its neighbours, until nothing changes. */
static void local_search(const ty__cg *k, int *assign) {
  for (int v = 0; v < k->n_v; v++) {
    assign[v] = 0;
    for (int t = 1; t < k->v[v].n; t++)
      if (k->v[v].time[t] < k->v[v].time[assign[v]]) assign[v] = t;
  }
  for (int sweep = 0, changed = 1; changed && sweep < 100; sweep++) {
    changed = 0;
    for (int v = 0; v < k->n_v; v++) {
      int best = assign[v];
      double bestc = DBL_MAX;
      for (int t = 0; t < k->v[v].n; t++) {
        double c = k->v[v].time[t];
        for (int e = 0; e < k->n_e; e++) {
          const ty__cg_edge *ed = &k->e[e];
          int nb = k->v[ed->v].n;
          if (ed->u == v)
            c += ed->cost[(size_t)t * (size_t)nb + (size_t)assign[ed->v]];
          else if (ed->v == v)
            c += ed->cost[(size_t)assign[ed->u] * (size_t)nb + (size_t)t];
        }
        if (c < bestc) bestc = c, best = t;
      }
      changed |= best != assign[v];
      assign[v] = best;
    }
  }
}

/* Solves what elimination left: a cost graph of the alive vertices. */
static int solve_kernel(work *w, int time_limit_ms, int *assign, ty__solve_info *info) {
  int *id = malloc(((size_t)w->nv + 1) * sizeof *id), nk = 0;
  ty__cg k = {0};
  int *ka = NULL, rc = TY_ENOMEM;
  if (!id) return rc;
  for (int v = 0; v < w->nv; v++)
    id[v] = w->v[v].alive ? nk++ : -1;
  info->kernel = nk;
  if (nk == 0) {
    free(id);
    return 0;
  }
  k.v = calloc((size_t)nk, sizeof *k.v);
  k.e = calloc((size_t)w->ne + 1, sizeof *k.e);
  ka = malloc((size_t)nk * sizeof *ka);
  if (!k.v || !k.e || !ka) goto done;
  k.n_v = nk;
  double space = 1;
  for (int v = 0; v < w->nv; v++) {
    if (id[v] < 0) continue;
    ty__cg_vertex *kv = &k.v[id[v]];
    kv->n = w->v[v].n;
    kv->time = malloc((size_t)kv->n * sizeof *kv->time);
    kv->mem = calloc((size_t)kv->n, sizeof *kv->mem);
    if (!kv->time || !kv->mem) goto done;
    memcpy(kv->time, w->v[v].c, (size_t)kv->n * sizeof *kv->time);
    space *= kv->n;
  }
  for (int e = 0; e < w->ne; e++) {
    if (!w->e[e].alive) continue;
    size_t sz = (size_t)w->v[w->e[e].a].n * (size_t)w->v[w->e[e].b].n;
    ty__cg_edge *ke = &k.e[k.n_e];
    *ke = (ty__cg_edge){id[w->e[e].a], id[w->e[e].b], malloc(sz * sizeof *ke->cost)};
    if (!ke->cost) goto done;
    memcpy(ke->cost, w->e[e].m, sz * sizeof *ke->cost);
    k.n_e++;
  }
  ty__objective plain = {1, 0, -1};
  ty__solve_info ki = {0};
  rc = space <= 1e7 ? ty__solve_brute(&k, plain, 1e8, ka, &ki) : TY_EINVAL;
  if (rc != 0) rc = ty__solve_ilp(&k, plain, time_limit_ms, ka, &ki);
  if (rc == TY_ENOMEM) goto done;
  if (rc != 0) {
    local_search(&k, ka);
    ki.exact = false;
    rc = 0;
  }
  info->exact = ki.exact;
  for (int v = 0; v < w->nv; v++)
    if (id[v] >= 0) assign[v] = ka[id[v]];
done:
  ty__cg_close(&k);
  free(ka);
  free(id);
  return rc;
}

int ty__solve_elim(const ty__cg *cg, ty__objective obj, int time_limit_ms, int *out_assign,
                   ty__solve_info *info) {
  work w;
  memset(info, 0, sizeof *info);
  int rc = work_init(&w, cg, obj);
  if (rc == 0) rc = reduce(&w);
  info->exact = true;
  if (rc == 0) rc = solve_kernel(&w, time_limit_ms, out_assign, info);
  for (int r = w.nrec; rc == 0 && r-- > 0;) {
    const record *rec = &w.rec[r];
    if (rec->kind == 0)
      out_assign[rec->v] = rec->arg[0];
    else if (rec->kind == 1)
      out_assign[rec->v] = rec->arg[out_assign[rec->u]];
    else
      out_assign[rec->v] =
          rec->arg[(size_t)out_assign[rec->u] * (size_t)w.v[rec->w].n + (size_t)out_assign[rec->w]];
  }
  info->feasible = rc == 0;
  work_close(&w);
  return rc;
}
