/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The solvers against each other on small random graphs: elimination (the
 * default), the ILP over the whole graph, and exhaustive branch and bound
 * must reach the same objective on chains, diamonds, residual blocks and
 * general DAGs, unconstrained and under a memory budget that binds.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ops/plan/plan.h"
#include "tests/support/subset.h"
#include "tests/unit/ops/plan/models.h"

static ty_plan *solve(const ty_graph *g, ty_plan_request r, ty_plan_solver solver, char *err) {
  ty_plan *p = NULL;
  r.solver = solver;
  int rc = ty_plan_search(g, &r, err, TY_ERR_LEN, &p);
  return rc == 0 ? p : NULL;
}

static ty_plan_request request(uint64_t seed, int64_t batch) {
  ty_plan_request r;
  ty_plan_request_init(&r);
  r.batch = batch;
  r.fixed_mesh = true;
  /* the solvers minimise a pairwise objective that charges each read;
   * a plan's shared reads would then make an optimum of it look beaten */
  r.separate_reads = true;
  /* alternate a 1-D mesh and a 2-D mesh with a slow axis */
  r.cluster.nodes = seed % 2 ? 2 : 1;
  r.cluster.devices_per_node = seed % 2 ? 2 : 4;
  r.cluster.device_flops =
      1e8 * (double)(1 + seed % 5); /* vary the compute/communication balance */
  return r;
}

static void same(double a, double b, const char *what, uint64_t seed, int shape) {
  cr_assert(fabs(a - b) <= 1e-6 * fmax(fabs(a), fabs(b)), "%s: seed %llu shape %d: %.12g vs %.12g",
            what, (unsigned long long)seed, shape, a, b);
}

static void compare(int shape, int ops, int seeds) {
  char err[TY_ERR_LEN];
  for (uint64_t seed = 1; seed <= (uint64_t)seeds; seed++) {
    ty_graph *g = model_random(seed * 7919 + (uint64_t)shape, shape, ops);
    cr_assert_not_null(g);
    ty_plan_request r = request(seed, 8);
    ty_plan *brute = solve(g, r, TY_PLAN_SOLVER_BRUTE, err);
    cr_assert_not_null(brute, "brute force: %s", err);
    ty_plan *elim = solve(g, r, TY_PLAN_SOLVER_AUTO, err),
            *ilp = solve(g, r, TY_PLAN_SOLVER_ILP, err);
    cr_assert(elim && ilp, "%s", err);
    cr_assert(brute->exact && elim->exact, "seed %llu", (unsigned long long)seed);
    same(elim->step_s, brute->step_s, "elimination vs brute force", seed, shape);
    same(ilp->step_s, brute->step_s, "ILP vs brute force", seed, shape);
    ty_plan_destroy(elim);
    ty_plan_destroy(ilp);
    /* A budget between the smallest and the fastest plan: the exact
     * solvers agree, and elimination's Lagrangian search fits it and is
     * never better than the optimum. */
    r.cluster.device_mem_bytes = brute->memory_bytes * 85 / 100;
    ty_plan *bb = solve(g, r, TY_PLAN_SOLVER_BRUTE, err);
    ilp = solve(g, r, TY_PLAN_SOLVER_ILP, err);
    elim = solve(g, r, TY_PLAN_SOLVER_AUTO, err);
    cr_assert_eq(!bb, !ilp, "seed %llu: brute force and ILP disagree on feasibility",
                 (unsigned long long)seed);
    if (bb) {
      same(ilp->step_s, bb->step_s, "ILP vs brute force under a budget", seed, shape);
      cr_assert_leq(bb->memory_bytes, r.cluster.device_mem_bytes);
      cr_assert_not_null(elim, "a plan exists but elimination found none: %s", err);
      cr_assert_leq(elim->memory_bytes, r.cluster.device_mem_bytes);
      cr_assert_geq(elim->step_s, bb->step_s * (1 - 1e-9));
    }
    ty_plan_destroy(bb);
    ty_plan_destroy(ilp);
    ty_plan_destroy(elim);
    ty_plan_destroy(brute);
    ty_graph_destroy(g);
  }
}

/* Under the sanitizers (tests/support/subset.h) a third of the seeds. */
Test(plan_solvers, chains) {
  compare(0, 6, ty_test_cases(12, 4));
}
Test(plan_solvers, diamonds) {
  compare(1, 8, ty_test_cases(8, 3));
}
Test(plan_solvers, residual_blocks) {
  compare(2, 8, ty_test_cases(8, 3));
}
Test(plan_solvers, general_dags) {
  compare(3, 7, ty_test_cases(12, 4));
}

/* A walk of 2e7 nodes before the refusal: about 25 s unsanitized, so the
 * sanitizer pass leaves it to the first one (tests/support/subset.h). */
Test(plan_solvers, brute_force_refuses_a_large_graph) {
  if (ty_test_subset()) cr_skip_test("TY_TEST_SUBSET: the 2e7-node walk runs unsanitized only");
  ty_graph *g = model_transformer(4, 16, 64, 4, 256, 0);
  ty_plan_request r = request(1, 8); /* a 2x2 mesh */
  char err[TY_ERR_LEN];
  cr_assert_null(solve(g, r, TY_PLAN_SOLVER_BRUTE, err));
  cr_assert(strstr(err, "solver: brute force would visit more than"), "%s", err);
  ty_graph_destroy(g);
}
