/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/plan's rules for LRN, MeanVarianceNormalization and
 * GridSample (models.c's model_local_norms), in every mode: LRN splits the
 * batch and spatial dims, never the channels its window crosses; MVN
 * splits the dims it does not reduce over; GridSample splits the batch of
 * its input and its grid together, and nothing else. The random draws
 * (models.c's model_noise): a RandomNormalLike splits as its input, a
 * fixed-shape RandomUniform runs replicated. A value two readers want in
 * one layout (torch's GELU, models.c's model_gelu_mlp) moves once.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"
#include "tests/unit/ops/plan/plan_helpers.h"

/* Devices so slow next to their links that every op splits what it may. */
static ty_plan *plan_slow(const ty_graph *g, ty_plan_mode mode, int64_t batch) {
  ty_plan_request r = plan_test_request(1, 4, batch, false);
  r.mode = mode;
  r.cluster.device_flops = 1e6;
  r.cluster.intra_latency_s = r.cluster.inter_latency_s = r.cluster.launch_s = 1e-9;
  return plan_test_ok(g, &r);
}

/* What each rule keeps whole, whatever the plan. */
static void check_whole(const ty_plan *p, bool mvn_batch) {
  cr_assert_eq(p->n_fallback, 0);
  const ty_plan_op *lrn = plan_test_op_named(p, "lrn"), *mvn = plan_test_op_named(p, "mvn"),
                   *gs = plan_test_op_named(p, "gs");
  cr_assert_eq(lrn->inputs[0].dim_axes[1], 0, "LRN's channels split: %s", lrn->strategy);
  cr_assert(mvn->inputs[0].dim_axes[2] == 0 && mvn->inputs[0].dim_axes[3] == 0,
            "MVN's reduced dims split: %s", mvn->strategy);
  cr_assert(!mvn_batch || mvn->inputs[0].dim_axes[0] == 0, "MVN's reduced batch split: %s",
            mvn->strategy);
  for (int d = 1; d < 4; d++)
    cr_assert(gs->inputs[0].dim_axes[d] == 0 && gs->inputs[1].dim_axes[d] == 0,
              "GridSample's dim %d split: %s", d, gs->strategy);
  cr_assert_eq(gs->inputs[1].dim_axes[0], gs->inputs[0].dim_axes[0],
               "the grid's batch split apart from the input's");
}

Test(plan_local, lrn_mvn_grid_sample_split_only_what_they_may) {
  for (int mvn_batch = 0; mvn_batch < 2; mvn_batch++) {
    ty_graph *g = model_local_norms(16, mvn_batch);
    cr_assert_not_null(g);
    ty_plan *p = plan_slow(g, TY_PLAN_MODE_AUTO, 64);
    check_whole(p, mvn_batch);
    ty_plan_destroy(p);

    /* Data parallelism: the batch splits, but MVN's only where it keeps it. */
    p = plan_slow(g, TY_PLAN_MODE_DATA, 64);
    check_whole(p, mvn_batch);
    cr_assert(strstr(plan_test_op_named(p, "lrn")->strategy, "batch split"));
    cr_assert(strstr(plan_test_op_named(p, "gs")->strategy, "batch split"));
    cr_assert_eq(strstr(plan_test_op_named(p, "mvn")->strategy, "batch split") != NULL, !mvn_batch,
                 "%s", plan_test_op_named(p, "mvn")->strategy);
    ty_plan_destroy(p);

    /* Without a batch split: LRN splits a spatial dim, MVN the channels. */
    p = plan_slow(g, TY_PLAN_MODE_TENSOR, 4);
    check_whole(p, mvn_batch);
    const ty_plan_op *lrn = plan_test_op_named(p, "lrn"), *mvn = plan_test_op_named(p, "mvn");
    cr_assert(lrn->inputs[0].dim_axes[2] || lrn->inputs[0].dim_axes[3], "%s", lrn->strategy);
    cr_assert_neq(mvn->inputs[0].dim_axes[1], 0, "%s", mvn->strategy);
    cr_assert(strstr(plan_test_op_named(p, "gs")->strategy, "replicated"));
    ty_plan_destroy(p);

    /* A data x tensor grid: LRN's batch on one axis, a spatial dim on the other. */
    p = plan_slow(g, TY_PLAN_MODE_GRID, 8);
    check_whole(p, mvn_batch);
    lrn = plan_test_op_named(p, "lrn");
    cr_assert(lrn->inputs[0].dim_axes[0] &&
                  (lrn->inputs[0].dim_axes[2] || lrn->inputs[0].dim_axes[3]),
              "%s", lrn->strategy);
    ty_plan_destroy(p);
    ty_graph_destroy(g);
  }
}

/* The random generators: a *Like draw follows its input's batch split; a
 * fixed-shape draw runs replicated, saying why. */
Test(plan_local, random_draws_split_as_their_input_or_replicate) {
  ty_graph *g = model_noise();
  cr_assert_not_null(g);
  ty_plan *p = plan_slow(g, TY_PLAN_MODE_DATA, 64);
  const ty_plan_op *eps = plan_test_op_named(p, "eps"), *fixed = plan_test_op_named(p, "fixed");
  cr_assert(!eps->fallback && strstr(eps->strategy, "batch split"), "%s", eps->strategy);
  cr_assert(fixed->fallback && strstr(fixed->note, "a draw of a fixed shape"), "%s",
            fixed->note ? fixed->note : "");
  cr_assert_eq(p->n_fallback, 1);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Tensors built from Shape(x)[0] (models.c's model_batch_shaped): the
 * ConstantOfShape, Expand and Tile outputs (and the stochastic-depth draw
 * over the mask) follow the batch split on 2 and 4 devices, so their
 * readers get them with no collective; Range has no rule and runs
 * replicated, the only fallback but the Shape nodes. */
Test(plan_local, batch_shaped_tensors_follow_the_batch_split) {
  ty_graph *g = model_batch_shaped();
  cr_assert_not_null(g);
  for (int devices = 2; devices <= 4; devices += 2) {
    ty_plan_request r = plan_test_request(1, devices, 64, false);
    r.mode = TY_PLAN_MODE_DATA;
    ty_plan *p = plan_test_ok(g, &r);
    static const char *const made[] = {"mask", "draw", "keep", "expand", "tile"};
    for (size_t i = 0; i < TY_ARRAY_LEN(made); i++) {
      const ty_plan_op *o = plan_test_op_named(p, made[i]);
      cr_assert(!o->fallback && strstr(o->strategy, "batch split"), "%s on %d devices: %s", made[i],
                devices, o->strategy);
      cr_assert_neq(o->outputs[0].dim_axes[0], 0, "%s's batch is whole", made[i]);
      for (size_t c = 0; c < p->n_collectives; c++)
        cr_assert(p->collectives[c].phase != TY_PLAN_FORWARD ||
                      strcmp(p->collectives[c].tensor, made[i]) != 0,
                  "%s is moved to its reader on %d devices", made[i], devices);
    }
    for (size_t i = 0; i < p->n_ops; i++)
      cr_assert(!p->ops[i].fallback || p->ops[i].op == TY_OP_SHAPE ||
                    strcmp(p->ops[i].name, "range") == 0,
                "%s falls back: %s", p->ops[i].name, p->ops[i].note ? p->ops[i].note : "");
    cr_assert(plan_test_op_named(p, "range")->fallback);
    ty_plan_destroy(p);
  }
  ty_graph_destroy(g);
}

/* torch 1.13's GELU reads fc1's output twice (Div and Mul). fc1 1 wide on
 * 2 devices splits its rows (a column split would leave a rank none), so
 * its output is partial sums: one all-reduce serves both readers, the
 * Div's (the first), and the plan's step time and the "chosen"
 * alternative's charge it once. */
Test(plan_local, a_value_two_readers_want_alike_is_resharded_once) {
  ty_graph *g = model_gelu_mlp(64, 1, 1, 0);
  cr_assert_not_null(g);
  ty_plan_request r = plan_test_request(1, 2, 8, false);
  r.mode = TY_PLAN_MODE_TENSOR;
  r.cluster.device_flops = 1e6;
  r.cluster.intra_latency_s = r.cluster.inter_latency_s = r.cluster.launch_s = 1e-9;
  ty_plan *p = plan_test_ok(g, &r);
  const ty_plan_op *fc1 = plan_test_op_named(p, "fc1"),
                   *div = plan_test_op_named(p, "fc1.gelu.div");
  cr_assert_neq(fc1->outputs[0].partial, 0, "fc1: %s", fc1->strategy);
  int h = ty_graph_node_at(g, (size_t)fc1->node)->outputs[0], n = 0;
  double sum = 0;
  for (size_t c = 0; c < p->n_collectives; c++) {
    const ty_plan_collective *pc = &p->collectives[c];
    sum += pc->seconds;
    if (pc->phase != TY_PLAN_FORWARD || pc->value != h) continue;
    n++;
    cr_assert_eq(pc->kind, TY_PLAN_ALL_REDUCE);
    cr_assert_eq(pc->node, div->node, "fc1's all-reduce listed at %s", p->ops[pc->node].name);
  }
  cr_assert_eq(n, 1, "fc1's output moved %d times", n);
  const ty_plan_alternative *chosen = &p->alternatives[p->n_alternatives - 1];
  cr_assert(fabs(chosen->step_s - p->step_s) <= 1e-9 * p->step_s, "chosen %g s, the plan %g s",
            chosen->step_s, p->step_s);
  cr_assert(fabs(p->compute_s + sum - p->step_s) <= 1e-9 * p->step_s,
            "compute %g s + collectives %g s, step %g s", p->compute_s, sum, p->step_s);

  /* Each read on its own (the search's objective): two all-reduces, and
   * the step one all-reduce slower. */
  r.separate_reads = true;
  ty_plan *q = plan_test_ok(g, &r);
  double ar = 0;
  n = 0;
  for (size_t c = 0; c < q->n_collectives; c++)
    if (q->collectives[c].phase == TY_PLAN_FORWARD && q->collectives[c].value == h) {
      n++;
      ar = q->collectives[c].seconds;
    }
  cr_assert_eq(n, 2, "fc1's output moved %d times", n);
  cr_assert(fabs(q->step_s - ar - p->step_s) <= 1e-9 * q->step_s, "%g s vs %g s + %g s", q->step_s,
            p->step_s, ar);
  ty_plan_destroy(q);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* A weight dim the devices do not divide splits ceil / floor (fc1's 64
 * rows on 3: 22, 21, 21; 1 wide, it cannot split its columns) and the
 * cost model charges its largest block: fc1's compute is that of 66 rows
 * on 3, 22 each. */
Test(plan_local, a_weight_the_devices_do_not_divide_is_charged_its_largest_block) {
  ty_plan_request r = plan_test_request(1, 3, 8, false);
  r.mode = TY_PLAN_MODE_TENSOR;
  r.cluster.device_flops = 1e6;
  r.cluster.intra_latency_s = r.cluster.inter_latency_s = r.cluster.launch_s = 1e-9;
  double s[2];
  for (int i = 0; i < 2; i++) {
    ty_graph *g = model_gelu_mlp(i ? 66 : 64, 1, 1, 0);
    ty_plan *p = plan_test_ok(g, &r);
    const ty_plan_op *fc1 = plan_test_op_named(p, "fc1");
    cr_assert(!strcmp(fc1->strategy, "row split (axis 1)"), "fc1 of %d rows: %s", i ? 66 : 64,
              fc1->strategy);
    s[i] = fc1->compute_s;
    ty_plan_destroy(p);
    ty_graph_destroy(g);
  }
  /* Within the bias's share (8 of fc1's 8 x 66 x 2 flops, scaled as a
   * whole); an average block would be 64 / 66 of it, 3% less. */
  cr_assert(fabs(s[0] - s[1]) <= 1e-3 * s[1], "64 rows on 3: %g s, 66 rows: %g s", s[0], s[1]);
}
