/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cost graph as an integer program, solved by GLPK (the formulation of
 * Alpa's intra-operator pass):
 *   x[v][k] in {0,1}, sum_k x[v][k] = 1         one strategy per vertex
 *   y[e][s][t] >= 0, sum_t y = x[u][s], sum_s y = x[w][t]   edge e = (u,w)
 *   minimise sum c[v][k] x[v][k] + sum E[e][s][t] y[e][s][t]
 *   sum mem[v][k] x[v][k] <= budget            when a budget is given
 * With x integral the two marginal constraints force y to be the product
 * of the chosen rows, so the edge terms are exact without y being integer.
 * Objective coefficients are scaled to at most 1 and the memory row to the
 * budget, which keeps GLPK's tolerances meaningful for microsecond costs
 * and gigabyte memories alike. GLPK's branch and bound stops at the time
 * limit with the best integer solution found so far (GLP_FEAS).
 * GLPK keeps its state per thread. On an internal error (out of memory) it
 * would abort the process, which must never happen to a controller: an
 * error hook jumps back here, GLPK's whole environment is freed, and the
 * solve fails with TY_ENOMEM.
 */
#include "ops/plan/plan_internal.h"

#include <glpk.h>
#include <math.h>
#include <setjmp.h>
#include <stdlib.h>

typedef struct lp_build {
  glp_prob *lp;
  int *ia, *ja;
  double *ar;
  int nz;
  int *xcol; /* first column of vertex v's x */
} lp_build;

static void put(lp_build *b, int row, int col, double v) {
  b->nz++;
  b->ia[b->nz] = row;
  b->ja[b->nz] = col;
  b->ar[b->nz] = v;
}

static double mem_scale(ty__objective obj) {
  return obj.budget > 1 ? 1.0 / obj.budget : 1.0;
}

static double cost_scale(const ty__cg *cg, ty__objective obj) {
  double mx = 0;
  for (int v = 0; v < cg->n_v; v++)
    for (int k = 0; k < cg->v[v].n; k++)
      mx = fmax(mx, fabs(obj.wt * cg->v[v].time[k] + obj.wm * cg->v[v].mem[k]));
  for (int e = 0; e < cg->n_e; e++)
    for (size_t i = 0; i < (size_t)cg->v[cg->e[e].u].n * (size_t)cg->v[cg->e[e].v].n; i++)
      mx = fmax(mx, fabs(obj.wt * cg->e[e].cost[i]));
  return mx > 0 ? 1.0 / mx : 1.0;
}

/* Sets the columns' kinds, bounds and costs, the rows' bounds, and the
 * constraint matrix into b's arrays (sized by the caller). */
static void formulate(const ty__cg *cg, ty__objective obj, lp_build *b) {
  double scale = cost_scale(cg, obj);
  int col = 1, row = 1;
  for (int v = 0; v < cg->n_v; v++, row++) {
    b->xcol[v] = col;
    for (int k = 0; k < cg->v[v].n; k++, col++) {
      glp_set_col_kind(b->lp, col, GLP_BV);
      glp_set_obj_coef(b->lp, col, scale * (obj.wt * cg->v[v].time[k] + obj.wm * cg->v[v].mem[k]));
      put(b, row, col, 1);
      if (obj.budget >= 0) put(b, glp_get_num_rows(b->lp), col, cg->v[v].mem[k] * mem_scale(obj));
    }
    glp_set_row_bnds(b->lp, row, GLP_FX, 1, 1);
  }
  for (int e = 0; e < cg->n_e; e++) {
    const ty__cg_edge *ed = &cg->e[e];
    int nu = cg->v[ed->u].n, nw = cg->v[ed->v].n, urow = row, wrow = row + nu;
    for (int s = 0; s < nu; s++)
      put(b, urow + s, b->xcol[ed->u] + s, -1);
    for (int t = 0; t < nw; t++)
      put(b, wrow + t, b->xcol[ed->v] + t, -1);
    for (int s = 0; s < nu; s++)
      for (int t = 0; t < nw; t++, col++) {
        glp_set_col_bnds(b->lp, col, GLP_LO, 0, 0);
        glp_set_obj_coef(b->lp, col, scale * obj.wt * ed->cost[(size_t)s * (size_t)nw + (size_t)t]);
        put(b, urow + s, col, 1);
        put(b, wrow + t, col, 1);
      }
    for (int r = 0; r < nu + nw; r++)
      glp_set_row_bnds(b->lp, row + r, GLP_FX, 0, 0);
    row += nu + nw;
  }
}

static int solve(lp_build *b, const ty__cg *cg, int time_limit_ms, int *out_assign,
                 ty__solve_info *info) {
  glp_iocp p;
  glp_init_iocp(&p);
  p.presolve = GLP_ON;
  p.msg_lev = GLP_MSG_OFF;
  p.tm_lim = time_limit_ms > 0 ? time_limit_ms : 10000;
  int ret = glp_intopt(b->lp, &p), st = glp_mip_status(b->lp);
  if (ret == GLP_ENOPFS || st == GLP_NOFEAS) return 0; /* no assignment fits the budget */
  if (st != GLP_OPT && st != GLP_FEAS) return ret == GLP_ETMLIM ? TY_ETIMEDOUT : TY_EINTERNAL;
  for (int v = 0; v < cg->n_v; v++) {
    out_assign[v] = 0;
    for (int k = 0; k < cg->v[v].n; k++)
      if (glp_mip_col_val(b->lp, b->xcol[v] + k) > 0.5) out_assign[v] = k;
  }
  info->exact = st == GLP_OPT;
  info->feasible = true;
  return 0;
}

static void on_glpk_error(void *info) {
  longjmp(*(jmp_buf *)info, 1);
}

static int run_glpk(lp_build *b, const ty__cg *cg, ty__objective obj, size_t ncol, size_t nrow,
                    int time_limit_ms, int *out_assign, ty__solve_info *info) {
  jmp_buf jb;
  glp_error_hook(on_glpk_error, &jb);
  if (setjmp(jb)) {
    glp_free_env(); /* frees every GLPK object of this thread, b->lp too */
    return TY_ENOMEM;
  }
  b->lp = glp_create_prob();
  glp_set_obj_dir(b->lp, GLP_MIN);
  if (ncol > 0) glp_add_cols(b->lp, (int)ncol);
  if (nrow > 0) glp_add_rows(b->lp, (int)nrow);
  if (obj.budget >= 0) glp_set_row_bnds(b->lp, (int)nrow, GLP_UP, 0, obj.budget * mem_scale(obj));
  formulate(cg, obj, b);
  glp_load_matrix(b->lp, b->nz, b->ia, b->ja, b->ar);
  int rc = solve(b, cg, time_limit_ms, out_assign, info);
  glp_delete_prob(b->lp);
  glp_error_hook(NULL, NULL);
  return rc;
}

int ty__solve_ilp(const ty__cg *cg, ty__objective obj, int time_limit_ms, int *out_assign,
                  ty__solve_info *info) {
  *info = (ty__solve_info){0};
  if (cg->n_v == 0) {
    info->exact = info->feasible = true;
    return 0;
  }
  size_t ncol = 0, nrow = (size_t)cg->n_v + (obj.budget >= 0), nz = 0;
  for (int v = 0; v < cg->n_v; v++) {
    ncol += (size_t)cg->v[v].n;
    nz += (size_t)cg->v[v].n * (obj.budget >= 0 ? 2 : 1);
  }
  for (int e = 0; e < cg->n_e; e++) {
    size_t nu = (size_t)cg->v[cg->e[e].u].n, nw = (size_t)cg->v[cg->e[e].v].n;
    ncol += nu * nw;
    nrow += nu + nw;
    nz += 2 * nu * nw + nu + nw;
  }
  if (ncol > (size_t)INT32_MAX / 4 || nz > (size_t)INT32_MAX / 4) return TY_EINVAL;
  lp_build b = {0};
  b.ia = malloc((nz + 1) * sizeof *b.ia);
  b.ja = malloc((nz + 1) * sizeof *b.ja);
  b.ar = malloc((nz + 1) * sizeof *b.ar);
  b.xcol = malloc(((size_t)cg->n_v + 1) * sizeof *b.xcol);
  int rc = b.ia && b.ja && b.ar && b.xcol
               ? run_glpk(&b, cg, obj, ncol, nrow, time_limit_ms, out_assign, info)
               : TY_ENOMEM;
  free(b.ia);
  free(b.ja);
  free(b.ar);
  free(b.xcol);
  return rc;
}
