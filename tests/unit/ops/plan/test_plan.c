/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/plan: the choices published with Alpa's intra-operator
 * tests (data parallel for a small-hidden MLP, Megatron's alternating
 * column/row splits for a wide one, Megatron attention and FFN splits for a
 * BERT block), the guarantee against pure data parallelism, memory budgets,
 * every rejection of bad input, the writers and the executor helpers (the
 * device rates: test_plan_device.c).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/autodiff/autodiff.h"
#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"
#include "tests/unit/ops/plan/plan_helpers.h"

static ty_plan_request request(int nodes, int per_node, int64_t batch) {
  return plan_test_request(nodes, per_node, batch, true);
}

static const ty_plan_param *param_named(const ty_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_params; i++)
    if (strcmp(p->params[i].name, name) == 0) return &p->params[i];
  cr_assert_fail("no parameter %s", name);
  return NULL;
}

static size_t count(const ty_plan *p, int kind, int phase) {
  size_t n = 0;
  for (size_t i = 0; i < p->n_collectives; i++)
    n += (kind < 0 || (int)p->collectives[i].kind == kind) &&
         (phase < 0 || (int)p->collectives[i].phase == phase);
  return n;
}

static const ty_plan_alternative *alt(const ty_plan *p, const char *prefix) {
  for (size_t i = 0; i < p->n_alternatives; i++)
    if (strncmp(p->alternatives[i].name, prefix, strlen(prefix)) == 0) return &p->alternatives[i];
  cr_assert_fail("no alternative %s", prefix);
  return NULL;
}

static uint8_t all_axes(const ty_plan *p) {
  return (uint8_t)((p->mesh[0] > 1 ? 1 : 0) | (p->mesh[1] > 1 ? 2 : 0));
}

/* ---- Alpa's MLP tests -------------------------------------------------------------- */

static void check_data_parallel_mlp(int nodes, int per_node) {
  ty_graph *g = model_mlp(6, 32);
  cr_assert_not_null(g);
  ty_plan_request r = request(nodes, per_node, 256);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(count(p, -1, -1), count(p, TY_PLAN_ALL_REDUCE, -1), "only all-reduces");
  for (size_t i = 0; i < p->n_collectives; i++) /* gradients, and the loss summed for reporting */
    cr_assert(p->collectives[i].phase == TY_PLAN_GRAD_SYNC || p->collectives[i].node == -1);
  int axes = (p->mesh[0] > 1) + (p->mesh[1] > 1);
  cr_assert_eq(count(p, TY_PLAN_ALL_REDUCE, TY_PLAN_GRAD_SYNC), (size_t)(12 * axes),
               "6 weights + 6 biases per axis");
  for (int l = 0; l < 6; l++) {
    char n[16];
    snprintf(n, sizeof n, "l%d.w", l);
    const ty_plan_param *w = param_named(p, n);
    cr_assert(w->layout.dim_axes[0] == 0 && w->layout.dim_axes[1] == 0, "%s is replicated", n);
    snprintf(n, sizeof n, "l%d.mm", l);
    cr_assert_eq(plan_test_op_named(p, n)->inputs[0].dim_axes[0], all_axes(p),
                 "%s splits the batch over every axis", n);
  }
  cr_assert_float_eq(p->step_s, alt(p, "data parallel")->step_s, 1e-15);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Initializers left out of req.trained are constants: no gradient (no
 * grad-sync, no weight-gradient FLOPs), no optimizer state, not among the
 * plan's parameters; the request's key says which train; a name that is no
 * float initializer of the graph is refused by name. */
Test(plan, untrained_initializers_are_constants) {
  ty_graph *g = model_mlp(3, 256);
  cr_assert_not_null(g);
  ty_plan_request r = request(1, 2, 64);
  r.mode = TY_PLAN_MODE_DATA;
  ty_plan *all = plan_test_ok(g, &r);
  uint64_t key = ty_plan_request_key(&r, 1);
  const char *trained[] = {"l0.w", "l0.b", "l2.w", "l2.b"}; /* l1 frozen */
  r.trained = trained;
  r.n_trained = TY_ARRAY_LEN(trained);
  ty_plan *frozen = plan_test_ok(g, &r);
  cr_assert_neq(ty_plan_request_key(&r, 1), key);
  cr_assert_eq(frozen->n_params, 4u, "%zu parameters", frozen->n_params);
  for (size_t i = 0; i < frozen->n_collectives; i++) {
    const ty_plan_collective *c = &frozen->collectives[i];
    cr_assert(c->phase != TY_PLAN_GRAD_SYNC || strncmp(c->tensor, "l1.", 3) != 0, "%s synced",
              c->tensor);
  }
  cr_assert_eq(count(frozen, TY_PLAN_ALL_REDUCE, TY_PLAN_GRAD_SYNC),
               count(all, TY_PLAN_ALL_REDUCE, TY_PLAN_GRAD_SYNC) - 2);
  /* l1.w: 256 x 256 floats, its gradient and Adam's two moments gone */
  cr_assert_geq(all->memory_bytes - frozen->memory_bytes, 3u * 256 * 256 * 4, "%llu and %llu",
                (unsigned long long)all->memory_bytes, (unsigned long long)frozen->memory_bytes);
  cr_assert_lt(frozen->compute_s, all->compute_s);
  ty_plan_destroy(all);
  ty_plan_destroy(frozen);
  const char *typo[] = {"l0.w", "l9.w"};
  r.trained = typo;
  r.n_trained = 2;
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "trained[1]: \"l9.w\" is not a float initializer of the graph"), "%s", err);
  ty_graph_destroy(g);
}

Test(plan_alpa, mlp_small_hidden_is_data_parallel_1x4) {
  check_data_parallel_mlp(1, 4);
}
Test(plan_alpa, mlp_small_hidden_is_data_parallel_2x2) {
  check_data_parallel_mlp(2, 2);
}

static void check_megatron_mlp(int nodes, int per_node) {
  ty_graph *g = model_mlp(6, 256);
  ty_plan_request r = request(nodes, per_node, 32);
  /* Alpa's test gives both mesh axes the same links: what is tested is
   * the choice along whichever axis has the devices. */
  r.cluster.inter_bw = r.cluster.intra_bw;
  r.cluster.inter_latency_s = r.cluster.intra_latency_s;
  ty_plan *p = plan_test_ok(g, &r);
  int axis = p->mesh[0] > 1 ? 0 : 1;
  uint8_t bit = (uint8_t)(1u << axis);
  for (int l = 0; l < 6; l++) {
    char n[16];
    snprintf(n, sizeof n, "l%d.w", l);
    const ty_plan_layout *w = &param_named(p, n)->layout;
    if (l % 2 == 0)
      cr_assert(w->dim_axes[0] == 0 && w->dim_axes[1] == bit, "%s is split by column", n);
    else
      cr_assert(w->dim_axes[0] == bit && w->dim_axes[1] == 0, "%s is split by row", n);
    for (size_t i = 0; i < p->n_collectives; i++)
      cr_assert(p->collectives[i].phase != TY_PLAN_GRAD_SYNC ||
                    strcmp(p->collectives[i].tensor, n) != 0,
                "no gradient all-reduce of %s", n);
  }
  /* One activation all-reduce per layer pair and direction; the input's
   * gradient is never needed, so the first pair has none backward. */
  cr_assert_eq(count(p, TY_PLAN_ALL_REDUCE, TY_PLAN_FORWARD), 3);
  cr_assert_eq(count(p, TY_PLAN_ALL_REDUCE, TY_PLAN_BACKWARD), 2);
  cr_assert_eq(count(p, -1, -1), 5, "nothing else is communicated");
  /* Alpa's expected objective: (layers - 1) all-reduces of batch x hidden floats. */
  double n = 4, bytes = 32.0 * 256 * 4, bw = axis == 0 ? r.cluster.inter_bw : r.cluster.intra_bw;
  double lat = axis == 0 ? r.cluster.inter_latency_s : r.cluster.intra_latency_s;
  double ar = r.cluster.launch_s + 2 * (n - 1) / n * bytes / bw + 2 * (n - 1) * lat;
  cr_assert(fabs(p->comm_s - 5 * ar) < 1e-12, "communication %g s, expected %g s", p->comm_s,
            5 * ar);
  cr_assert_lt(p->step_s, alt(p, "data parallel")->step_s);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_alpa, mlp_wide_alternates_column_and_row_1x4) {
  check_megatron_mlp(1, 4);
}
Test(plan_alpa, mlp_wide_alternates_column_and_row_4x1) {
  check_megatron_mlp(4, 1);
}

Test(plan_alpa, bert_splits_qkv_and_ffn_in_by_column_and_outputs_by_row) {
  ty_graph *g = model_transformer(2, 32, 512, 8, 2048, 0);
  cr_assert_not_null(g);
  ty_plan_request r = request(1, 4, 8);
  ty_plan *p = plan_test_ok(g, &r);
  static const char *const column[] = {"q", "k", "v", "ffn_in"}, *const row[] = {"o", "ffn_out"};
  for (int l = 0; l < 2; l++) {
    char n[32];
    for (size_t i = 0; i < 4; i++) {
      snprintf(n, sizeof n, "%d.%s.w", l, column[i]);
      const ty_plan_layout *w = &param_named(p, n)->layout;
      cr_assert(w->dim_axes[0] == 0 && w->dim_axes[1] == 2, "%s is split by column", n);
    }
    for (size_t i = 0; i < 2; i++) {
      snprintf(n, sizeof n, "%d.%s.w", l, row[i]);
      const ty_plan_layout *w = &param_named(p, n)->layout;
      cr_assert(w->dim_axes[0] == 2 && w->dim_axes[1] == 0, "%s is split by row", n);
    }
    snprintf(n, sizeof n, "%d.scores", l);
    cr_assert_eq(plan_test_op_named(p, n)->outputs[0].dim_axes[1], 2, "attention heads are split");
  }
  cr_assert_lt(p->step_s, alt(p, "data parallel")->step_s);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* ---- never slower than data parallelism ---------------------------------------------- */

Test(plan, never_slower_than_data_parallel) {
  struct {
    int nodes, per_node;
    int64_t batch, hidden;
  } cases[] = {{1, 4, 256, 32}, {1, 4, 32, 256},  {2, 2, 64, 128},
               {2, 4, 64, 512}, {1, 8, 16, 1024}, {4, 2, 128, 64}};
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    ty_graph *g = model_mlp(4, cases[i].hidden);
    ty_plan_request r = request(cases[i].nodes, cases[i].per_node, cases[i].batch);
    r.fixed_mesh = false;
    ty_plan *p = plan_test_ok(g, &r);
    const ty_plan_alternative *dp = alt(p, "data parallel");
    cr_assert(dp->applicable && dp->fits);
    cr_assert_leq(p->step_s, dp->step_s * (1 + 1e-12), "case %zu: %g > %g", i, p->step_s,
                  dp->step_s);
    cr_assert_leq(p->memory_bytes, p->budget_bytes);
    cr_assert_str_eq(p->alternatives[p->n_alternatives - 1].name, "chosen");
    ty_plan_destroy(p);
    ty_graph_destroy(g);
  }
}

Test(plan, gpt_like_graph_plans_on_a_2d_mesh) {
  ty_graph *g = model_transformer(4, 64, 256, 8, 1024, 1);
  ty_plan_request r = request(2, 4, 16);
  r.fixed_mesh = false;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->devices, 8);
  cr_assert_eq(p->n_fallback, 0, "every op has a sharding rule");
  cr_assert_leq(p->step_s, alt(p, "data parallel")->step_s * (1 + 1e-12));
  for (size_t i = 0; i < p->n_collectives; i++) {
    const ty_plan_collective *c = &p->collectives[i];
    cr_assert(c->mesh_axis >= 0 && c->mesh_axis < 2 && p->mesh[c->mesh_axis] > 1);
    cr_assert(c->bytes > 0 && c->seconds > 0);
  }
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* ---- memory ---------------------------------------------------------------------------- */

Test(plan_memory, a_budget_data_parallel_misses_is_met_by_splitting_weights) {
  ty_graph *g = model_mlp(6, 2048); /* 25M parameters: 400 MB with Adam's state */
  ty_plan_request r = request(1, 4, 64);
  r.cluster.device_mem_bytes = 250ull << 20;
  ty_plan *p = plan_test_ok(g, &r);
  const ty_plan_alternative *dp = alt(p, "data parallel");
  cr_assert(dp->applicable && !dp->fits, "data parallel needs %llu bytes",
            (unsigned long long)dp->memory_bytes);
  cr_assert_gt(dp->memory_bytes, r.cluster.device_mem_bytes);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  cr_assert(alt(p, "chosen")->fits);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_memory, budget_binds_inside_the_search) {
  /* Between the smallest plan and the fastest: the search trades time for memory. */
  ty_graph *g = model_mlp(4, 1024);
  ty_plan_request r = request(1, 4, 512);
  ty_plan *fast = plan_test_ok(g, &r);
  r.cluster.device_mem_bytes = fast->memory_bytes * 6 / 10;
  char err[TY_ERR_LEN];
  ty_plan *p = NULL;
  if (ty_plan_search(g, &r, err, sizeof err, &p) == 0) {
    cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
    cr_assert_geq(p->step_s, fast->step_s * (1 - 1e-12));
    ty_plan_destroy(p);
  } else {
    cr_assert(strstr(err, "the smallest plan needs"), "%s", err);
  }
  ty_plan_destroy(fast);
  ty_graph_destroy(g);
}

Test(plan_memory, unsatisfiable_budget_names_the_minimum) {
  ty_graph *g = model_mlp(6, 256);
  ty_plan_request r = request(1, 4, 32);
  r.cluster.device_mem_bytes = 64 << 10;
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "cluster.device_mem_bytes: no plan fits in 64.0 KiB per device"), "%s",
            err);
  const char *need = strstr(err, "the smallest plan needs ");
  cr_assert(need, "%s", err);
  /* 6 weights of 256 x 256 split 4 ways with gradient and Adam's 2 moments:
   * at least 4 x 6 x 64 KiB = 1.5 MiB. */
  double mib = atof(need + strlen("the smallest plan needs "));
  cr_assert(strstr(need, "MiB") && mib >= 1.5 && mib < 16, "%s", err);
  /* Nor does one layer per stage: the refusal says what else to change. */
  cr_assert(strstr(err, "; nor does a pipeline of its layers or gradient accumulation: give each "
                        "device more memory, use more devices"),
            "%s", err);
  r.cluster.device_mem_bytes = (uint64_t)(mib * 1.1 * (1 << 20));
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Grouped convolutions split no weight over 3 devices (model_mlp's 250
 * wide ones split 84, 83, 83 and fit), so every flat plan holds all six
 * weights of 360 x 180 (with gradient and Adam's moments, about 5.9 MiB);
 * two layers a stage hold a third of that. A flat request refused for
 * memory names the pipeline that fits, and the config setting that gets
 * it. */
Test(plan_memory, a_refusal_names_the_pipeline_that_fits) {
  ty_graph *g = model_grouped_convs(6, 360, false);
  ty_plan_request r = request(1, 3, 30);
  r.cluster.device_mem_bytes = 4ull << 20;
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "cluster.device_mem_bytes: no plan fits in 4.0 MiB per device; the "
                        "smallest plan needs "),
            "%s", err);
  cr_assert(strstr(err, "; pipeline stages fit: pipeline_stages: \"auto\" in the training config, "
                        "3 stages of mesh 1x1, "),
            "%s", err);
  /* And it does: asked for, the pipeline is planned within the budget. */
  r.pipeline_stages = 0;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 3);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* On one device a large batch's activations are the problem: no split
 * and no pipeline exist, but fewer rows at a time fit, and the refusal
 * names the micro-batch count that does. */
Test(plan_memory, a_refusal_names_the_gradient_accumulation_that_fits) {
  ty_graph *g = model_mlp(2, 64);
  ty_plan_request r = request(1, 1, 8192);
  ty_plan *whole = plan_test_ok(g, &r);
  r.cluster.device_mem_bytes = whole->memory_bytes * 6 / 10;
  ty_plan_destroy(whole);
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  const char *hint = strstr(err, "; gradient accumulation fits: micro_batches: \"");
  cr_assert(hint, "%s", err);
  cr_assert(strstr(err, "per device (the same update: docs/training.md)"), "%s", err);
  r.micro_batches = atoi(hint + strlen("; gradient accumulation fits: micro_batches: \""));
  cr_assert(r.micro_batches >= 2, "%s", err);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* ---- bad input ----------------------------------------------------------------------- */

Test(plan_reject, mesh_of_zero_devices) {
  ty_graph *g = model_mlp(2, 32);
  char err[TY_ERR_LEN];
  ty_plan_request r = request(0, 4, 32);
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "cluster: the mesh has no devices (0 nodes x 4 devices per node)"), "%s",
            err);
  r = request(2, 0, 32);
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "no devices (2 nodes x 0 devices per node)"), "%s", err);
  ty_graph_destroy(g);
}

Test(plan_reject, batch_smaller_than_the_data_parallel_degree) {
  ty_graph *g = model_mlp(2, 32);
  char err[TY_ERR_LEN];
  ty_plan_request r = request(1, 4, 3);
  r.mode = TY_PLAN_MODE_DATA;
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "batch: 3 is smaller than the data-parallel degree 4 (mesh 1x4): every "
                        "device needs a row; make config.batch_size at least 4, or ask for at "
                        "most 3 devices"),
            "%s", err);
  /* Auto mode plans without data parallelism and says why it is missing. */
  r.mode = TY_PLAN_MODE_AUTO;
  ty_plan *p = plan_test_ok(g, &r);
  const ty_plan_alternative *dp = alt(p, "data parallel");
  cr_assert(!dp->applicable);
  cr_assert(strstr(dp->why, "batch 3 is smaller than the data-parallel degree 4"), "%s", dp->why);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* A batch the devices do not divide splits ceil / floor (30 on 4: 8, 8, 7,
 * 7), on the physical mesh: data parallelism is an alternative, and the
 * step is charged the largest block's 8 rows, not 7.5. */
Test(plan_search, a_batch_the_devices_do_not_divide_splits_unevenly) {
  ty_graph *g = model_mlp(2, 32);
  ty_plan_request r = request(1, 4, 30);
  r.mode = TY_PLAN_MODE_DATA;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert(p->mesh[0] == 1 && p->mesh[1] == 4);
  for (size_t i = 0; i < p->n_ops; i++)
    cr_assert(strstr(p->ops[i].strategy, "batch split"), "%s: %s", p->ops[i].name,
              p->ops[i].strategy);
  r.batch = 32;
  ty_plan *even = plan_test_ok(g, &r);
  cr_assert_float_eq(p->compute_s, even->compute_s, 1e-12 + 1e-9 * even->compute_s,
                     "30 rows on 4 devices: the largest block is 8, as for 32");
  ty_plan_destroy(even);
  ty_plan_destroy(p);
  r = request(1, 4, 30);
  p = plan_test_ok(g, &r);
  cr_assert(alt(p, "data parallel")->applicable);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_reject, bad_request_fields) {
  ty_graph *g = model_mlp(2, 32);
  char err[TY_ERR_LEN];
  ty_plan_request r = request(1, 4, 0);
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "batch: must be positive (got 0)"), "%s", err);
  r = request(1, 4, 32);
  r.cluster.device_flops = 0;
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "cluster.device_flops"), "%s", err);
  r = request(1, 4, 32);
  r.cluster.device_mem_bytes = 0;
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "cluster.device_mem_bytes: must be positive"), "%s", err);
  r = request(1, 4, 32);
  r.cluster.intra_bw = -1;
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "cluster.intra_bw"), "%s", err);
  r = request(2, 1, 32);
  r.cluster.inter_bw = 0;
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "cluster.inter_bw"), "%s", err);
  r = request(1, 4, 32);
  r.cluster.inter_latency_s = -1e-6;
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "latencies"), "%s", err);
  r = request(1, 4, 32);
  r.loss = "nothing";
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "loss: the graph has no value \"nothing\""), "%s", err);
  r.loss = "loss.sq";
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "loss: \"loss.sq\" is not a one-element float value"), "%s", err);
  cr_assert_eq(ty_plan_search(NULL, &r, err, sizeof err, NULL), TY_EINVAL);
  ty_graph_destroy(g);
}

Test(plan_reject, graph_without_a_loss) {
  ty_graph *g = NULL;
  int x, y, idx;
  ty_shape s = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 8});
  cr_assert_eq(ty_graph_create(&g), 0);
  cr_assert_eq(ty_graph_add_value(g, "x", TY_DTYPE_F32, &s, &x), 0);
  cr_assert_eq(ty_graph_mark_input(g, x), 0);
  cr_assert_eq(ty_graph_add_value(g, "y", TY_DTYPE_F32, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RELU, "relu", &x, 1, &y, 1, &idx), 0);
  cr_assert_eq(ty_graph_mark_output(g, y), 0);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0);
  ty_plan_request r = request(1, 2, 8);
  plan_test_refused(g, &r, err);
  cr_assert(strstr(err, "loss: the graph has no one-element float output"), "%s", err);
  ty_graph_destroy(g);
}

/* An op without a sharding rule (here autodiff's TyGrad nodes in a graph
 * that already holds its backward pass) runs replicated, and the plan says
 * so per op. */
Test(plan, ops_without_a_rule_fall_back_to_replicated) {
  ty_graph *g = model_mlp(2, 16);
  int loss = ty_graph_find_value(g, "loss"), w = ty_graph_find_value(g, "l0.w"), grad;
  cr_assert_neq(loss, TY_NO_VALUE);
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_autodiff(g, loss, &w, 1, &grad, err, sizeof err), 0, "%s", err);
  ty_plan_request r = request(1, 2, 8);
  r.loss = "loss";
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_gt(p->n_fallback, 0);
  size_t seen = 0;
  for (size_t i = 0; i < p->n_ops; i++) {
    const ty_plan_op *o = &p->ops[i];
    if (o->op != TY_OP_GRAD) continue;
    seen++;
    cr_assert(o->fallback && o->note && strstr(o->note, "no sharding rule for TyGrad"), "%s",
              o->name);
    cr_assert_str_eq(o->strategy, "replicated (fallback)");
    for (int k = 0; k < o->n_outputs; k++)
      cr_assert(o->outputs[k].rank < 0 || o->outputs[k].dim_axes[0] == 0);
  }
  cr_assert_eq(seen, p->n_fallback);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_json(p, &b), 0);
  const char *want = "\"fallback\":\"no sharding rule for TyGrad; runs replicated\"";
  cr_assert(memmem(b.data, b.len, want, strlen(want)));
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* ---- writers and helpers ------------------------------------------------------------- */

static bool has(const ty_buf *b, const char *s) {
  return memmem(b->data, b->len, s, strlen(s)) != NULL;
}

Test(plan_write, json_has_the_documented_fields) {
  ty_graph *g = model_mlp(6, 256);
  ty_plan_request r = request(1, 4, 32);
  ty_plan *p = plan_test_ok(g, &r);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_json(p, &b), 0);
  cr_assert(b.len > 0 && b.data[b.len - 1] == '\n');
  static const char *const fields[] = {
      "{\"plan\":{\"mesh\":[1,4],",
      "\"ops\":[{\"name\":\"l0.mm\",\"op\":\"MatMul\",\"strategy\":\"column split (axis 1)\"",
      "\"sharding\":{\"inputs\":[\"[R,R]\",\"[R,S1]\"],\"outputs\":[\"[R,S1]\"]}",
      "\"collectives\":[{\"kind\":\"all-reduce\",\"tensor\":\"l1.mm\",\"bytes\":32768,\"mesh_"
      "axis\":1,\"phase\":\"forward\"",
      "\"phase\":\"backward\"",
      "\"predicted_step_s\":",
      "\"memory_per_device_bytes\":",
      "\"alternatives\":[{\"name\":\"data parallel\",\"mesh\":[1,4],\"predicted_step_s\":",
      "{\"name\":\"chosen\",",
      "\"fits\":true",
      "\"search_ms\":",
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(fields); i++)
    cr_assert(has(&b, fields[i]), "missing %s in %.*s", fields[i], (int)b.len, (char *)b.data);
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_write, text_shows_alternatives_ops_and_collectives) {
  ty_graph *g = model_mlp(2, 32);
  ty_plan_request r = request(2, 2, 64);
  ty_plan *p = plan_test_ok(g, &r);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_text(p, &b), 0);
  static const char *const lines[] = {"plan: mesh 2x2 (4 devices), batch 64",
                                      "predicted step:",
                                      "memory per device:",
                                      "ALTERNATIVE",
                                      "data parallel",
                                      "replicated", /* the tensor-only search splits nothing */
                                      "chosen",
                                      "l0.mm",
                                      "batch split (axis",
                                      "grad-sync",
                                      "all-reduce"};
  for (size_t i = 0; i < TY_ARRAY_LEN(lines); i++)
    cr_assert(has(&b, lines[i]), "missing %s in\n%.*s", lines[i], (int)b.len, (char *)b.data);
  cr_assert(!has(&b, "every op is replicated"), "a split plan has no such note");
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* A plan of several devices that splits nothing (a tiny model on fast
 * devices and slow links: every collective costs more than it saves)
 * says so, and why: each rank computes every batch whole. */
Test(plan_write, a_plan_that_splits_nothing_says_why) {
  ty_graph *g = model_mlp(2, 4);
  ty_plan_request r = request(1, 2, 8);
  r.cluster.device_flops = 1e15;
  r.cluster.launch_s = 1e-2;
  ty_plan *p = plan_test_ok(g, &r);
  for (size_t i = 0; i < p->n_ops; i++)
    cr_assert_str_eq(p->ops[i].strategy, "replicated", "%s", p->ops[i].name);
  char note[2 * TY_ERR_LEN];
  cr_assert(strstr(ty_plan_replicated_note(p, note, sizeof note),
                   "each rank computes every global batch whole"));
  cr_assert(strstr(note, "costs more in communication than it saves"), "%s", note);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_text(p, &b), 0);
  cr_assert(has(&b, "note: every op is replicated"), "%.*s", (int)b.len, (char *)b.data);
  ty_buf_close(&b);
  /* the tensor-only alternative splits nothing either: it is not named tensor parallel */
  cr_assert_str_eq(p->alternatives[1].name, "replicated");
  cr_assert_str_eq(p->alternatives[1].why,
                   "nothing is split: every device computes the whole step");
  cr_assert(strstr(note, "(parallelism: data splits the batch anyway)"), "%s", note);
  p->mesh[0] = p->mesh[1] = 1; /* one device: nothing to explain */
  cr_assert_str_eq(ty_plan_replicated_note(p, note, sizeof note), "");
  ty_plan_destroy(p);
  /* 3 ranks: a data job (no plan) would need a batch they divide. */
  r = request(1, 3, 8);
  r.cluster.device_flops = 1e15;
  r.cluster.launch_s = 1e-2;
  p = plan_test_ok(g, &r);
  cr_assert(strstr(ty_plan_replicated_note(p, note, sizeof note),
                   "(parallelism: data splits the batch anyway given a batch_size the 3 ranks "
                   "divide; 8 is not a multiple of 3)"),
            "%s", note);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Three devices for a batch of 2 and widths of 4: no device count
 * splits them, and the note says the batch could not be split rather
 * than blaming the links. */
Test(plan_write, a_batch_smaller_than_the_devices_is_the_reason_given) {
  ty_graph *g = model_mlp(2, 4);
  ty_plan_request r = request(1, 3, 2);
  ty_plan *p = plan_test_ok(g, &r);
  char note[2 * TY_ERR_LEN];
  ty_plan_replicated_note(p, note, sizeof note);
  cr_assert(strstr(note, "the batch cannot be split (batch 2 is smaller"), "%s", note);
  cr_assert(!strstr(note, "parallelism: data splits the batch anyway"), "%s", note);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_write, layout_strings) {
  char s[64];
  ty_plan_layout l = {.rank = 3, .dim_axes = {1, 0, 3}};
  ty_plan_layout_format(&l, s, sizeof s);
  cr_assert_str_eq(s, "[S0,R,S01]");
  l = (ty_plan_layout){.rank = 2, .partial = 2};
  ty_plan_layout_format(&l, s, sizeof s);
  cr_assert_str_eq(s, "[R,R]+P1");
  l = (ty_plan_layout){.rank = 0, .partial = 3};
  ty_plan_layout_format(&l, s, sizeof s);
  cr_assert_str_eq(s, "[]+P01");
  l = (ty_plan_layout){.rank = -1};
  ty_plan_layout_format(&l, s, sizeof s);
  cr_assert_str_eq(s, "-");
  cr_assert_str_eq(ty_plan_coll_kind_name(TY_PLAN_REDUCE_SCATTER), "reduce-scatter");
  cr_assert_str_eq(ty_plan_coll_kind_name(TY_PLAN_ALL_TO_ALL), "all-to-all");
  cr_assert_str_eq(ty_plan_phase_name(TY_PLAN_GRAD_SYNC), "grad-sync");
}

Test(plan_exec, coords_groups_and_slices) {
  ty_plan p = {.devices = 8, .mesh = {2, 4}};
  int c[2], group[4];
  ty_plan_coords(&p, 6, c);
  cr_assert(c[0] == 1 && c[1] == 2);
  ty_plan_axis_group(&p, 6, 0, group);
  cr_assert(group[0] == 2 && group[1] == 6);
  ty_plan_axis_group(&p, 6, 1, group);
  cr_assert(group[0] == 4 && group[1] == 5 && group[2] == 6 && group[3] == 7);
  ty_shape full = ty_shape_make(3, (int64_t[]){16, 8, 5});
  int64_t start[3], len[3];
  ty_plan_layout l = {.rank = 3,
                      .dim_axes = {3, 0, 0}}; /* dim 0 over both axes: 8 chunks, axis 0 major */
  ty_plan_slice(&p, &l, &full, 6, start, len);
  cr_assert(len[0] == 2 && start[0] == 12 && len[1] == 8 && start[1] == 0 && len[2] == 5);
  l = (ty_plan_layout){.rank = 3, .dim_axes = {1, 2, 0}};
  ty_plan_slice(&p, &l, &full, 6, start, len);
  cr_assert(len[0] == 8 && start[0] == 8 && len[1] == 2 && start[1] == 4);
  /* Uneven: the first blocks one longer; both axes cut axis 0's block. */
  ty_plan_block(64, 3, 0, start, len);
  cr_assert(start[0] == 0 && len[0] == 22);
  ty_plan_block(64, 3, 2, start, len);
  cr_assert(start[0] == 43 && len[0] == 21);
  full = ty_shape_make(1, (int64_t[]){10});
  l = (ty_plan_layout){.rank = 1, .dim_axes = {3}}; /* 10 in 2 (5, 5), then 5 in 4 (2, 1, 1, 1) */
  ty_plan_slice(&p, &l, &full, 4, start, len);
  cr_assert(start[0] == 5 && len[0] == 2, "%lld %lld", (long long)start[0], (long long)len[0]);
  ty_plan_slice(&p, &l, &full, 7, start, len);
  cr_assert(start[0] == 9 && len[0] == 1);
}

/* A small CNN: Conv (batch or output-channel split only), BatchNormalization
 * (its statistics synchronised when the batch is split), pooling, Gemm and
 * SoftmaxCrossEntropyLoss against int64 labels. With video, the Conv is
 * 3-D (nn.Conv3d) on [N, 3, 8, 16, 16]. */
static ty_graph *cnn_of(int64_t channels, bool video) {
  ty_graph *g = NULL;
  char err[TY_ERR_LEN];
  int x, lab, w, cb, s, bi, mu, var, fw, fb, idx, v[8];
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = video ? ty_shape_make(5, (int64_t[]){TY_DIM_BATCH, 3, 8, 16, 16})
                      : ty_shape_make(4, (int64_t[]){TY_DIM_BATCH, 3, 16, 16});
  plan_test_add_inputs(g, &xs, &x, &lab);
  const plan_test_init inits[] = {
      {"conv.w", TY_DTYPE_F32, video ? 5 : 4, {channels, 3, 3, 3, 3}, &w, NULL},
      {"conv.b", TY_DTYPE_F32, 1, {channels}, &cb, NULL},
      {"bn.scale", TY_DTYPE_F32, 1, {channels}, &s, NULL},
      {"bn.bias", TY_DTYPE_F32, 1, {channels}, &bi, NULL},
      {"bn.mean", TY_DTYPE_F32, 1, {channels}, &mu, NULL},
      {"bn.var", TY_DTYPE_F32, 1, {channels}, &var, NULL},
      {"fc.w", TY_DTYPE_F32, 2, {10, channels}, &fw, NULL},
      {"fc.b", TY_DTYPE_F32, 1, {10}, &fb, NULL}};
  plan_test_add_inits(g, inits, TY_ARRAY_LEN(inits));
  const char *names[] = {"conv", "bn", "relu", "pool", "flat", "fc", "loss"};
  plan_test_add_values(g, names, TY_ARRAY_LEN(names), v);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONV, "conv", (int[]){x, w, cb}, 3, &v[0], 1, &idx), 0);
  ty_graph_node_set_ints(g, (size_t)idx, "pads", (int64_t[]){1, 1, 1, 1, 1, 1}, video ? 6 : 4);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_BATCH_NORM, "bn", (int[]){v[0], s, bi, mu, var}, 5, &v[1],
                                 1, &idx),
               0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RELU, "relu", &v[1], 1, &v[2], 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_GLOBAL_AVERAGE_POOL, "pool", &v[2], 1, &v[3], 1, &idx),
               0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_FLATTEN, "flat", &v[3], 1, &v[4], 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_GEMM, "fc", (int[]){v[4], fw, fb}, 3, &v[5], 1, &idx), 0);
  ty_graph_node_set_int(g, (size_t)idx, "transB", 1);
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_SOFTMAX_CE_LOSS, "loss", (int[]){v[5], lab}, 2, &v[6], 1, &idx),
      0);
  ty_graph_mark_output(g, v[6]);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

static ty_graph *cnn(int64_t channels) {
  return cnn_of(channels, false);
}

Test(plan, cnn_splits_conv_by_batch_or_output_channel) {
  for (int wide = 0; wide < 4; wide++) { /* 2, 3: the same with a 3-D Conv */
    ty_graph *g = cnn_of(wide % 2 ? 1024 : 16, wide >= 2);
    ty_plan_request r = request(1, 4, wide % 2 ? 4 : 256);
    ty_plan *p = plan_test_ok(g, &r);
    cr_assert_eq(p->n_fallback, 0);
    const ty_plan_op *conv = plan_test_op_named(p, "conv");
    bool by_batch = strstr(conv->strategy, "batch split"),
         by_channel = strstr(conv->strategy, "output-channel split");
    cr_assert(by_batch || by_channel, "%s", conv->strategy);
    cr_assert(!(wide % 2) || (by_channel && !by_batch), "1024 channels and 4 samples: %s",
              conv->strategy);
    const ty_plan_layout *cw = &param_named(p, "conv.w")->layout;
    cr_assert_eq(cw->dim_axes[0], by_channel ? 2 : 0);
    cr_assert(cw->dim_axes[1] == 0 && cw->dim_axes[2] == 0 && cw->dim_axes[3] == 0 &&
                  (wide < 2 || cw->dim_axes[4] == 0),
              "never split inside a filter");
    bool stats = false;
    for (size_t i = 0; i < p->n_collectives; i++)
      stats |= strcmp(p->collectives[i].tensor, "bn:batch_stats") == 0;
    cr_assert_eq(stats, strstr(plan_test_op_named(p, "bn")->strategy, "batch split") != NULL,
                 "batch statistics are synchronised exactly when the batch is split");
    ty_plan_destroy(p);
    ty_graph_destroy(g);
  }
  /* Forced data parallelism: the statistics go both ways, 2 x C floats. */
  ty_graph *g = cnn(16);
  ty_plan_request r = request(1, 4, 64);
  r.mode = TY_PLAN_MODE_DATA;
  ty_plan *p = plan_test_ok(g, &r);
  int dirs = 0;
  for (size_t i = 0; i < p->n_collectives; i++)
    if (strcmp(p->collectives[i].tensor, "bn:batch_stats") == 0) {
      cr_assert_eq(p->collectives[i].bytes, 2 * 16 * 4);
      dirs |= 1 << p->collectives[i].phase;
    }
  cr_assert_eq(dirs, (1 << TY_PLAN_FORWARD) | (1 << TY_PLAN_BACKWARD));
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* x [N,4,8,8] -> ConvTranspose (stride 2) -> Resize (scales 0.5, linear)
 * -> InstanceNormalization -> ReduceMax over H, W -> Gemm -> loss: ops
 * with a batch-only, a batch-and-channel or a non-additive reduction
 * rule. */
static ty_graph *decoder(void) {
  ty_graph *g = NULL;
  char err[TY_ERR_LEN];
  int x, lab, w, sc, bi, fw, ax, rsc, idx, v[6];
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 18); /* ReduceMax's axes as an input */
  ty_shape xs = ty_shape_make(4, (int64_t[]){TY_DIM_BATCH, 4, 8, 8});
  plan_test_add_inputs(g, &xs, &x, &lab);
  const plan_test_init inits[] = {
      {"up.w", TY_DTYPE_F32, 4, {4, 2, 2, 2}, &w, NULL},
      {"in.scale", TY_DTYPE_F32, 1, {2}, &sc, NULL},
      {"in.bias", TY_DTYPE_F32, 1, {2}, &bi, NULL},
      {"fc.w", TY_DTYPE_F32, 2, {10, 2}, &fw, NULL},
      {"hw", TY_DTYPE_I64, 1, {2}, &ax, (const int64_t[]){2, 3}},
      {"half", TY_DTYPE_F32, 1, {4}, &rsc, (const float[]){1, 1, 0.5f, 0.5f}}};
  plan_test_add_inits(g, inits, TY_ARRAY_LEN(inits));
  const char *names[] = {"up", "rs", "in", "max", "fc", "loss"};
  plan_test_add_values(g, names, TY_ARRAY_LEN(names), v);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_CONV_TRANSPOSE, "up", (int[]){x, w}, 2, &v[0], 1, &idx),
               0);
  ty_graph_node_set_ints(g, (size_t)idx, "strides", (int64_t[]){2, 2}, 2);
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_RESIZE, "rs", (int[]){v[0], TY_NO_VALUE, rsc}, 3, &v[1], 1, &idx),
      0);
  ty_graph_node_set_string(g, (size_t)idx, "mode", "linear");
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_INSTANCE_NORM, "in", (int[]){v[1], sc, bi}, 3, &v[2], 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_REDUCE_MAX, "max", (int[]){v[2], ax}, 2, &v[3], 1, &idx),
               0);
  ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_GEMM, "fc", (int[]){v[3], fw}, 2, &v[4], 1, &idx), 0);
  ty_graph_node_set_int(g, (size_t)idx, "transB", 1);
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_SOFTMAX_CE_LOSS, "loss", (int[]){v[4], lab}, 2, &v[5], 1, &idx),
      0);
  ty_graph_mark_output(g, v[5]);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* ConvTranspose and InstanceNormalization split the batch, Resize the
 * batch or channels; a ReduceMax may split what it keeps, never what it
 * reduces (partial maxima do not add up), nor Resize what it resizes:
 * data parallelism runs without a replicated fallback. */
Test(plan, batch_only_and_max_reductions_split_the_batch) {
  ty_graph *g = decoder();
  ty_plan_request r = request(1, 4, 64);
  r.mode = TY_PLAN_MODE_DATA;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_fallback, 0);
  const char *ops[] = {"up", "rs", "in", "max"};
  for (size_t i = 0; i < TY_ARRAY_LEN(ops); i++)
    cr_assert(strstr(plan_test_op_named(p, ops[i])->strategy, "batch split"), "%s: %s", ops[i],
              plan_test_op_named(p, ops[i])->strategy);
  cr_assert_eq(plan_test_op_named(p, "up")->inputs[1].dim_axes[0], 0, "the filter stays whole");
  ty_plan_destroy(p);
  r.mode = TY_PLAN_MODE_TENSOR;
  r.batch = 4;
  p = plan_test_ok(g, &r);
  const ty_plan_op *mx = plan_test_op_named(p, "max");
  cr_assert(mx->inputs[0].dim_axes[2] == 0 && mx->inputs[0].dim_axes[3] == 0,
            "ReduceMax's reduced dims split: %s", mx->strategy);
  const ty_plan_op *rs = plan_test_op_named(p, "rs");
  cr_assert(rs->inputs[0].dim_axes[2] == 0 && rs->inputs[0].dim_axes[3] == 0,
            "Resize's resized dims split: %s", rs->strategy);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}
