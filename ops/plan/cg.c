/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cost graph's small utilities: evaluating an assignment, restricting
 * the graph to the strategies a role allows (so the restricted searches run
 * the same solvers on smaller matrices), and freeing.
 */
#include "ops/plan/plan_internal.h"

#include <stdlib.h>
#include <string.h>

void ty__cg_close(ty__cg *cg) {
  for (int v = 0; cg->v && v < cg->n_v; v++) {
    free(cg->v[v].time);
    free(cg->v[v].mem);
  }
  for (int e = 0; cg->e && e < cg->n_e; e++)
    free(cg->e[e].cost);
  free(cg->v);
  free(cg->e);
  memset(cg, 0, sizeof *cg);
}

void ty__cg_eval(const ty__cg *cg, const int *assign, double *out_time, double *out_mem) {
  double t = 0, m = 0;
  for (int v = 0; v < cg->n_v; v++) {
    t += cg->v[v].time[assign[v]];
    m += cg->v[v].mem[assign[v]];
  }
  for (int e = 0; e < cg->n_e; e++) {
    const ty__cg_edge *ed = &cg->e[e];
    t += ed->cost[(size_t)assign[ed->u] * (size_t)cg->v[ed->v].n + (size_t)assign[ed->v]];
  }
  *out_time = t;
  *out_mem = m;
}

int ty__cg_restrict(const ty__cg *cg, uint8_t *const *allowed, ty__cg *out, int **out_map) {
  memset(out, 0, sizeof *out);
  *out_map = NULL;
  size_t total = (size_t)cg->n_v;
  for (int v = 0; v < cg->n_v; v++)
    total += (size_t)cg->v[v].n;
  int *map = malloc((total + 1) * sizeof *map);
  out->v = calloc((size_t)cg->n_v + 1, sizeof *out->v);
  out->e = calloc((size_t)cg->n_e + 1, sizeof *out->e);
  out->n_v = cg->n_v;
  if (!map || !out->v || !out->e) goto oom;
  size_t pos = (size_t)cg->n_v;
  for (int v = 0; v < cg->n_v; v++) {
    const ty__cg_vertex *src = &cg->v[v];
    ty__cg_vertex *dst = &out->v[v];
    map[v] = (int)pos;
    dst->time = malloc(((size_t)src->n + 1) * sizeof *dst->time);
    dst->mem = malloc(((size_t)src->n + 1) * sizeof *dst->mem);
    if (!dst->time || !dst->mem) goto oom;
    for (int k = 0; k < src->n; k++) {
      if (allowed && !allowed[v][k]) continue;
      dst->time[dst->n] = src->time[k];
      dst->mem[dst->n] = src->mem[k];
      map[pos + (size_t)dst->n++] = k;
    }
    pos += (size_t)dst->n;
  }
  for (int e = 0; e < cg->n_e; e++) {
    const ty__cg_edge *src = &cg->e[e];
    ty__cg_edge *dst = &out->e[e];
    int nu = out->v[src->u].n, nv = out->v[src->v].n, srcw = cg->v[src->v].n;
    *dst = (ty__cg_edge){src->u, src->v, malloc(((size_t)nu * (size_t)nv + 1) * sizeof *dst->cost)};
    if (!dst->cost) goto oom;
    out->n_e = e + 1;
    const int *iu = map + map[src->u], *iv = map + map[src->v];
    for (int i = 0; i < nu; i++)
      for (int j = 0; j < nv; j++)
        dst->cost[(size_t)i * (size_t)nv + (size_t)j] =
            src->cost[(size_t)iu[i] * (size_t)srcw + (size_t)iv[j]];
  }
  *out_map = map;
  return 0;
oom:
  free(map);
  ty__cg_close(out);
  return TY_ENOMEM;
}
