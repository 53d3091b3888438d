/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Exhaustive search with branch and bound: vertices in order, each level
 * trying its strategies cheapest first, pruning a branch once the cost so
 * far plus the cheapest completion (every remaining vertex at its minimum;
 * edge costs are never negative) reaches the best total found. It is the
 * reference the other solvers are tested against, and solves the small
 * irreducible cores elimination leaves. max_nodes bounds the work.
 */
#include "ops/plan/plan_internal.h"

#include <float.h>
#include <stdlib.h>
#include <string.h>

typedef struct bb {
  const ty__cg *cg;
  ty__objective obj;
  int **back;                  /* per vertex: edge ids to earlier vertices, -1 terminated */
  double *min_rest, *mem_rest; /* cheapest completion from vertex k on */
  int *cur, *best;
  double best_val;
  double nodes, max_nodes;
  bool found;
} bb;

static double vcost(const bb *b, int v, int t) {
  return b->obj.wt * b->cg->v[v].time[t] + b->obj.wm * b->cg->v[v].mem[t];
}

static double back_cost(const bb *b, int v, int t) {
  double c = 0;
  for (const int *e = b->back[v]; *e >= 0; e++) {
    const ty__cg_edge *ed = &b->cg->e[*e];
    int nb = b->cg->v[ed->v].n;
    c += ed->u == v ? ed->cost[(size_t)t * (size_t)nb + (size_t)b->cur[ed->v]]
                    : ed->cost[(size_t)b->cur[ed->u] * (size_t)nb + (size_t)t];
  }
  return c;
}

static int dfs(bb *b, int k, double partial, double mem) {
  const ty__cg *cg = b->cg;
  if (k == cg->n_v) {
    if (partial < b->best_val) {
      b->best_val = partial;
      memcpy(b->best, b->cur, (size_t)cg->n_v * sizeof *b->best);
      b->found = true;
    }
    return 0;
  }
  int n = cg->v[k].n;
  double *c = malloc(((size_t)n + 1) * (sizeof *c + sizeof(int)));
  if (!c) return TY_ENOMEM;
  int *ord = (int *)(c + n + 1), rc = 0;
  for (int t = 0; t < n; t++) {
    c[t] = vcost(b, k, t) + back_cost(b, k, t);
    int j = t;
    while (j > 0 && c[ord[j - 1]] > c[t])
      ord[j] = ord[j - 1], j--;
    ord[j] = t;
  }
  for (int i = 0; i < n && rc == 0; i++) {
    int t = ord[i];
    if (partial + c[t] + b->min_rest[k + 1] >= b->best_val) break;
    double m = mem + cg->v[k].mem[t];
    if (b->obj.budget >= 0 && m + b->mem_rest[k + 1] > b->obj.budget) continue;
    if (++b->nodes > b->max_nodes) rc = TY_EINVAL;
    b->cur[k] = t;
    if (rc == 0) rc = dfs(b, k + 1, partial + c[t], m);
  }
  free(c);
  return rc;
}

static int bb_init(bb *b, const ty__cg *cg) {
  int nv = cg->n_v;
  b->back = calloc((size_t)nv + 1, sizeof *b->back);
  b->min_rest = calloc((size_t)nv + 1, sizeof *b->min_rest);
  b->mem_rest = calloc((size_t)nv + 1, sizeof *b->mem_rest);
  b->cur = calloc((size_t)nv + 1, sizeof *b->cur);
  b->best = calloc((size_t)nv + 1, sizeof *b->best);
  int *deg = calloc((size_t)nv + 1, sizeof *deg);
  int rc = TY_ENOMEM;
  if (!b->back || !b->min_rest || !b->mem_rest || !b->cur || !b->best || !deg) goto done;
  for (int e = 0; e < cg->n_e; e++)
    deg[cg->e[e].u > cg->e[e].v ? cg->e[e].u : cg->e[e].v]++;
  for (int v = 0; v < nv; v++) {
    if (!(b->back[v] = malloc(((size_t)deg[v] + 1) * sizeof **b->back))) goto done;
    b->back[v][0] = -1;
    deg[v] = 0;
  }
  for (int e = 0; e < cg->n_e; e++) {
    int late = cg->e[e].u > cg->e[e].v ? cg->e[e].u : cg->e[e].v;
    b->back[late][deg[late]++] = e;
    b->back[late][deg[late]] = -1;
  }
  for (int v = nv; v-- > 0;) {
    double mc = DBL_MAX, mm = DBL_MAX;
    for (int t = 0; t < cg->v[v].n; t++) {
      if (vcost(b, v, t) < mc) mc = vcost(b, v, t);
      if (cg->v[v].mem[t] < mm) mm = cg->v[v].mem[t];
    }
    b->min_rest[v] = b->min_rest[v + 1] + mc;
    b->mem_rest[v] = b->mem_rest[v + 1] + mm;
  }
  rc = 0;
done:
  free(deg);
  return rc;
}

int ty__solve_brute(const ty__cg *cg, ty__objective obj, double max_nodes, int *out_assign,
                    ty__solve_info *info) {
  bb b = {.cg = cg, .obj = obj, .best_val = DBL_MAX, .max_nodes = max_nodes};
  memset(info, 0, sizeof *info);
  int rc = bb_init(&b, cg);
  if (rc == 0) rc = dfs(&b, 0, 0, 0);
  if (rc == 0 && b.found) memcpy(out_assign, b.best, (size_t)cg->n_v * sizeof *out_assign);
  info->exact = rc == 0;
  info->feasible = rc == 0 && b.found;
  for (int v = 0; b.back && v < cg->n_v; v++)
    free(b.back[v]);
  free(b.back);
  free(b.min_rest);
  free(b.mem_rest);
  free(b.cur);
  free(b.best);
  return rc;
}
