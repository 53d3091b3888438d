/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for the planner's pipeline stages: the stage DP against known
 * optima and against exhaustive search on random costs, the layers and
 * stages of an MLP, a pipeline chosen where slow links make the flat plans
 * pay for their weight synchronisation, every rejection of a bad stage or
 * micro-batch count, tensor mode's stages that split weights, not the
 * batch, and the plan file's pipeline section (round trip,
 * rejection, version 1 plans still read).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"
#include "tests/unit/ops/plan/plan_helpers.h"

/* ---- the DP ------------------------------------------------------------------------ */

/* cost of layers i..j-1 on stage k = the sum of per-layer costs (any k). */
static double *additive(const double *layer, int L, int S) {
  size_t W = (size_t)L + 1;
  double *c = malloc((size_t)S * W * W * sizeof *c);
  cr_assert_not_null(c);
  for (int k = 0; k < S; k++)
    for (int i = 0; i <= L; i++)
      for (int j = 0; j <= L; j++) {
        double t = INFINITY;
        if (j > i) {
          t = 0;
          for (int l = i; l < j; l++)
            t += layer[l];
        }
        c[((size_t)k * W + (size_t)i) * W + (size_t)j] = t;
      }
  return c;
}

Test(plan_pipeline_dp, balanced_layers_cut_evenly) {
  double layer[4] = {1, 1, 1, 1};
  double *c = additive(layer, 4, 2), step;
  int b[3];
  cr_assert_eq(ty_plan_pipeline_dp(c, 4, 2, 8, b, &step), 0);
  cr_assert_eq(b[0], 0);
  cr_assert_eq(b[1], 2);
  cr_assert_eq(b[2], 4);
  cr_assert_float_eq(step, 2 + 2 + 7 * 2.0, 1e-12); /* sum + (M - 1) max */
  free(c);
}

Test(plan_pipeline_dp, many_micro_batches_balance_the_slowest_stage) {
  /* With one micro-batch only the sum counts (any cut); with many the
   * slowest stage dominates: {5}, {1,1,1,1,1} (max 5) beats anything else. */
  double layer[6] = {5, 1, 1, 1, 1, 1};
  double *c = additive(layer, 6, 2), step;
  int b[3];
  cr_assert_eq(ty_plan_pipeline_dp(c, 6, 2, 100, b, &step), 0);
  cr_assert_eq(b[1], 1);
  cr_assert_float_eq(step, 10 + 99 * 5.0, 1e-9);
  cr_assert_eq(ty_plan_pipeline_dp(c, 6, 2, 1, b, &step), 0);
  cr_assert_float_eq(step, 10.0, 1e-9);
  free(c);
}

Test(plan_pipeline_dp, a_stage_that_does_not_fit_is_avoided) {
  double layer[4] = {1, 1, 1, 1};
  double *c = additive(layer, 4, 2), step;
  size_t W = 5;
  c[(0 * W + 0) * W + 2] = INFINITY; /* stage 0 cannot hold layers 0..1 */
  int b[3];
  cr_assert_eq(ty_plan_pipeline_dp(c, 4, 2, 4, b, &step), 0);
  cr_assert_neq(b[1], 2);
  cr_assert_float_eq(step, 4 + 3 * 3.0, 1e-9); /* {1},{3} or {3},{1} */
  for (size_t q = 0; q < 2 * W * W; q++)
    c[q] = INFINITY;
  cr_assert_eq(ty_plan_pipeline_dp(c, 4, 2, 4, b, &step), TY_ENOTFOUND);
  cr_assert_eq(ty_plan_pipeline_dp(c, 4, 5, 4, b, &step), TY_EINVAL, "more stages than layers");
  cr_assert_eq(ty_plan_pipeline_dp(c, 4, 0, 4, b, &step), TY_EINVAL);
  free(c);
}

/* Every cut of L layers into S stages, by recursion. */
static double brute(const double *c, int L, int S, int M, int k, int i, double sum, double max) {
  size_t W = (size_t)L + 1;
  if (k == S) return i == L ? sum + (M - 1) * max : INFINITY;
  double best = INFINITY;
  for (int j = i + 1; j <= L - (S - 1 - k); j++) {
    double t = c[((size_t)k * W + (size_t)i) * W + (size_t)j];
    if (!isfinite(t)) continue;
    best = fmin(best, brute(c, L, S, M, k + 1, j, sum + t, fmax(max, t)));
  }
  return best;
}

Test(plan_pipeline_dp, matches_exhaustive_search_on_random_costs) {
  ty_rng rng = ty_rng_make(42);
  for (int trial = 0; trial < 300; trial++) {
    int L = 1 + (int)(ty_rng_next(&rng) % 8), S = 1 + (int)(ty_rng_next(&rng) % (uint64_t)L);
    int M = 1 + (int)(ty_rng_next(&rng) % 9);
    size_t W = (size_t)L + 1, n = (size_t)S * W * W;
    double *c = malloc(n * sizeof *c), step;
    for (size_t q = 0; q < n; q++) /* not additive, some ranges do not fit */
      c[q] = ty_rng_next(&rng) % 7 == 0 ? INFINITY : (double)(ty_rng_next(&rng) % 1000) / 10;
    int b[10];
    double want = brute(c, L, S, M, 0, 0, 0, 0);
    int rc = ty_plan_pipeline_dp(c, L, S, M, b, &step);
    if (!isfinite(want)) {
      cr_assert_eq(rc, TY_ENOTFOUND, "trial %d", trial);
    } else {
      cr_assert_eq(rc, 0, "trial %d", trial);
      cr_assert_float_eq(step, want, 1e-9, "trial %d: L %d S %d M %d", trial, L, S, M);
      double sum = 0, max = 0; /* the bounds give the step they claim */
      cr_assert_eq(b[0], 0);
      cr_assert_eq(b[S], L);
      for (int k = 0; k < S; k++) {
        double t = c[((size_t)k * W + (size_t)b[k]) * W + (size_t)b[k + 1]];
        sum += t, max = fmax(max, t);
      }
      cr_assert_float_eq(sum + (M - 1) * max, step, 1e-9, "trial %d", trial);
    }
    free(c);
  }
}

/* ---- stages of a graph -------------------------------------------------------------- */

/* An MLP of `layers` layers `hidden` wide, and in *r the request for it on
 * nodes x per_node devices, global batch `batch`, in `stages` pipeline
 * stages (0: the planner's choice; 1: none). */
static ty_graph *mlp_in_stages(int layers, int64_t hidden, int nodes, int per_node, int64_t batch,
                               int stages, ty_plan_request *r) {
  *r = plan_test_request(nodes, per_node, batch, false);
  r->pipeline_stages = stages;
  return model_mlp(layers, hidden);
}

Test(plan_pipeline, four_stages_of_a_four_layer_mlp) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 64, 2, 2, 32, 4, &r);
  r.micro_batches = 8;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 4);
  cr_assert_eq(p->n_layers, 4);
  cr_assert_eq(p->micro_batches, 8);
  cr_assert_eq(p->batch, 4, "layouts are for one micro-batch");
  cr_assert_eq(p->devices, 4);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 1);
  double sum = 0, max = 0;
  for (int k = 0; k < 4; k++) {
    cr_assert_eq(p->stages[k].first_layer, k);
    cr_assert_eq(p->stages[k].n_layers, 1);
    cr_assert_eq(p->stages[k].first_rank, k);
    cr_assert_eq(p->stages[k].in_flight, 4 - k, "1F1B keeps S - k micro-batches on stage k");
    sum += p->stages[k].step_s;
    max = fmax(max, p->stages[k].step_s);
    cr_assert(p->stages[k].memory_bytes <= p->memory_bytes);
  }
  cr_assert_float_eq(p->step_s, sum + 7 * max, 1e-12);
  cr_assert(p->bubble > 0 && p->bubble < 1);
  for (size_t i = 0; i < p->n_ops; i++) { /* layer l's nodes run on stage l */
    int l = -1;
    sscanf(p->ops[i].name, "l%d", &l);
    if (l >= 0) cr_assert_eq(p->ops[i].stage, l, "%s", p->ops[i].name);
  }
  int ranks[1];
  ty_plan_axis_group(p, 3, 1, ranks);
  cr_assert_eq(ranks[0], 3, "a stage's groups stay in the stage");
  const ty_plan_alternative *last = &p->alternatives[p->n_alternatives - 1];
  cr_assert_str_eq(last->name, "chosen");
  cr_assert_str_eq(p->alternatives[p->n_alternatives - 2].name, "no pipeline");
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_text(p, &b), 0);
  cr_assert_not_null(strstr((char *)b.data, "pipeline: 4 stages of mesh 1x1, 8 micro-batches"),
                     "%.*s", (int)b.len, b.data);
  cr_assert_not_null(strstr((char *)b.data, "IN FLIGHT"));
  b.len = 0;
  cr_assert_eq(ty_plan_to_json(p, &b), 0);
  cr_assert_not_null(strstr((char *)b.data, "\"pipeline\":{\"micro_batches\":8"), "%.*s",
                     (int)b.len, b.data);
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_pipeline, data_x_pipeline_2x2) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 64, 2, 2, 32, 2, &r);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 2);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2);
  cr_assert_eq(p->stages[1].first_rank, 2);
  cr_assert_eq(p->stages[0].n_layers + p->stages[1].n_layers, 4);
  cr_assert_eq(32 % p->micro_batches, 0);
  int ranks[2];
  ty_plan_axis_group(p, 3, p->mesh[1] == 2 ? 1 : 0, ranks);
  cr_assert_eq(ranks[0], 2);
  cr_assert_eq(ranks[1], 3);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Issue 18: a stage's own intra-operator plan. Tensor mode keeps every
 * stage's batch whole and splits its weights over the stage's devices;
 * the text shows each op's split beside its stage. */
Test(plan_pipeline, tensor_mode_splits_each_stage_s_weights) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 1024, 1, 4, 32, 2, &r);
  r.micro_batches = 4;
  r.mode = TY_PLAN_MODE_TENSOR;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 2);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2);
  int split[2] = {0, 0};
  for (size_t i = 0; i < p->n_ops; i++) {
    cr_assert_null(strstr(p->ops[i].strategy, "batch split"), "%s: %s", p->ops[i].name,
                   p->ops[i].strategy);
    if (strstr(p->ops[i].strategy, "column split") || strstr(p->ops[i].strategy, "row-block"))
      split[p->ops[i].stage]++;
  }
  cr_assert(split[0] > 0 && split[1] > 0, "tensor-parallel ops per stage: %d, %d", split[0],
            split[1]);
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_text(p, &b), 0);
  cr_assert_not_null(strstr((char *)b.data, "pipeline: 2 stages of mesh"), "%.*s", (int)b.len,
                     b.data);
  cr_assert_not_null(strstr((char *)b.data, "column split"), "%.*s", (int)b.len, b.data);
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Issue 18: a weight tied across stages that the stage meshes split (an
 * output layer reading layer 0's weight, tensor mode). Every holder keeps
 * its block of the plan's one layout for it, and the chosen plan's stages
 * count that block: each holder's sends exceed those of the same model
 * with an untied output layer by the swap of the block's gradient, one
 * message each way. */
Test(plan_pipeline, a_tied_weight_split_by_the_stage_meshes_counts_its_block) {
  ty_plan_request r = plan_test_request(1, 4, 32, false);
  r.pipeline_stages = 2;
  r.micro_batches = 4;
  r.mode = TY_PLAN_MODE_TENSOR;
  ty_graph *tied = model_mlp_out(4, 1024, 1), *own = model_mlp_out(4, 1024, 0);
  cr_assert(tied && own);
  ty_plan *pt = plan_test_ok(tied, &r), *po = plan_test_ok(own, &r);
  cr_assert(pt->n_stages == 2 && po->n_stages == 2);
  cr_assert_eq(pt->stages[1].first_layer, po->stages[1].first_layer, "the two models cut apart");
  int w = ty_graph_find_value(tied, "l0.w");
  const ty_plan_param *pa = NULL;
  for (size_t k = 0; k < pt->n_params; k++)
    if (pt->params[k].value == w) pa = &pt->params[k];
  cr_assert_not_null(pa, "l0.w has no layout");
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  ty_plan_slice(pt, &pa->layout, &ty_graph_value_at(tied, w)->shape, 0, start, len);
  double block = (double)(len[0] * len[1]) * sizeof(float), whole = 1024.0 * 1024 * sizeof(float);
  cr_assert_lt(block, whole, "the stage meshes keep l0.w whole: nothing tests its blocks");
  double swap = 2 * (block / r.cluster.intra_bw + r.cluster.intra_latency_s);
  for (int k = 0; k < 2; k++) {
    double extra = pt->stages[k].send_s - po->stages[k].send_s;
    cr_assert_float_eq(extra, swap, swap * 1e-9,
                       "stage %d: the tied weight's swap costs %g s, its block's is %g s", k, extra,
                       swap);
  }
  ty_plan_destroy(pt);
  ty_plan_destroy(po);
  ty_graph_destroy(tied);
  ty_graph_destroy(own);
}

Test(plan_pipeline, auto_pipelines_when_weights_do_not_fit_and_links_are_slow) {
  /* Four 512 x 512 layers with Adam need 16 MiB replicated; with 13 MiB
   * per device and links of 1 MB/s every flat plan that splits weights
   * moves megabytes per step, while stages of whole layers send only
   * [batch, 512] activations. */
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 512, 4, 1, 4, 0, &r);
  r.cluster.inter_bw = 1e6;
  r.cluster.device_mem_bytes = 13ull << 20;
  ty_plan *p = plan_test_ok(g, &r);
  ty_buf b;
  ty_buf_init(&b);
  ty_plan_to_text(p, &b);
  cr_assert_gt(p->n_stages, 1, "%.*s", (int)b.len, b.data);
  ty_buf_close(&b);
  const ty_plan_alternative *flat = &p->alternatives[p->n_alternatives - 2];
  cr_assert_str_eq(flat->name, "no pipeline");
  cr_assert(p->step_s < flat->step_s, "%g vs %g", p->step_s, flat->step_s);
  cr_assert(p->memory_bytes <= r.cluster.device_mem_bytes);
  ty_plan_destroy(p);
  /* Memory enough to replicate: the flat plan stays, the pipeline is listed. */
  r.cluster.device_mem_bytes = 1ull << 30;
  p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 0);
  cr_assert_not_null(strstr(p->alternatives[p->n_alternatives - 2].name, "pipeline ("));
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_pipeline, a_budget_that_does_not_hold_the_activations_recomputes_them) {
  /* Four stages of one device, 8 micro-batches: stage 0 keeps 4 of them
   * in flight. One byte less than it needs without recomputation makes it
   * keep only their inputs and recompute; the other stages still fit. */
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 512, 4, 1, 512, 4, &r);
  r.micro_batches = 8;
  ty_plan *roomy = plan_test_ok(g, &r);
  for (int k = 0; k < 4; k++)
    cr_assert(!roomy->stages[k].recompute, "stage %d recomputes with 16 GiB", k);
  uint64_t need = roomy->stages[0].memory_bytes;
  cr_assert_eq(roomy->stages[0].memory_no_recompute_bytes, need);
  r.cluster.device_mem_bytes = need - 1;
  ty_plan *tight = plan_test_ok(g, &r);
  ty_buf b;
  ty_buf_init(&b);
  ty_plan_to_text(tight, &b);
  const ty_plan_stage *s0 = &tight->stages[0];
  cr_assert(s0->recompute, "%.*s", (int)b.len, b.data);
  cr_assert(s0->memory_bytes < need && s0->memory_no_recompute_bytes == need, "%.*s", (int)b.len,
            b.data);
  cr_assert(s0->step_s > roomy->stages[0].step_s, "recomputing costs a forward");
  cr_assert(!tight->stages[3].recompute, "the last stage holds one micro-batch: it fits");
  cr_assert(tight->memory_bytes <= r.cluster.device_mem_bytes);
  cr_assert_not_null(strstr((char *)b.data, "yes (else "), "%.*s", (int)b.len, b.data);
  ty_buf_close(&b);
  /* A budget that even recomputation misses is refused. */
  r.cluster.device_mem_bytes = roomy->stages[3].memory_bytes / 4;
  char err[TY_ERR_LEN] = "";
  ty_plan *none = NULL;
  cr_assert_neq(ty_plan_search(g, &r, err, sizeof err, &none), 0);
  cr_assert_not_null(strstr(err, "no pipeline of the graph's 4 layers fits"), "%s", err);
  ty_plan_destroy(roomy);
  ty_plan_destroy(tight);
  ty_graph_destroy(g);
}

/* ---- rejections ---------------------------------------------------------------------- */

static void reject(const ty_graph *g, const ty_plan_request *r, const char *want) {
  char err[TY_ERR_LEN] = "";
  plan_test_refused(g, r, err);
  cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

/* A stage message carries float tensors: a shape (int64) made in layer 1
 * and read after layer 2 keeps those two layers in one stage. */
Test(plan_pipeline, values_that_cannot_cross_keep_their_readers_in_one_stage) {
  ty_plan_request r;
  ty_graph *g = model_mlp_shape_link(4, 64);
  cr_assert_not_null(g);
  r = plan_test_request(3, 1, 32, false);
  r.pipeline_stages = 3;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_layers, 3, "l0, l1 + l2 with the Reshape, l3: %d layers", p->n_layers);
  int shape_stage = -1, reshape_stage = -1;
  for (size_t i = 0; i < p->n_ops; i++) {
    if (!strcmp(p->ops[i].name, "l1.shape")) shape_stage = p->ops[i].stage;
    if (!strcmp(p->ops[i].name, "l2.reshape")) reshape_stage = p->ops[i].stage;
  }
  cr_assert(shape_stage == 1 && reshape_stage == 1, "%d %d", shape_stage, reshape_stage);
  ty_plan_destroy(p);
  r = plan_test_request(4, 1, 32, false);
  r.pipeline_stages = 4;
  reject(g, &r, "pipeline_stages: 4 stages but the graph has 3 layers");
  ty_graph_destroy(g);
}

/* Micro-batches without pipeline stages (gradient accumulation under a
 * plan, as parallelism auto with micro_batches asks): one stage on the
 * whole mesh, its ops planned at the micro-batch, in every mode; data
 * mode's micro-batch must divide over the devices. */
Test(plan_pipeline, micro_batches_without_stages_are_one_stage) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 64, 1, 4, 32, 1, &r);
  r.micro_batches = 4;
  const ty_plan_mode modes[] = {TY_PLAN_MODE_AUTO, TY_PLAN_MODE_DATA, TY_PLAN_MODE_TENSOR};
  for (size_t i = 0; i < TY_ARRAY_LEN(modes); i++) {
    r.mode = modes[i];
    ty_plan *p = plan_test_ok(g, &r);
    cr_assert_eq(p->n_stages, 1, "mode %d", (int)modes[i]);
    cr_assert_eq(p->micro_batches, 4);
    cr_assert_eq(p->batch, 8, "layouts are for one micro-batch");
    cr_assert_eq(p->devices, 4);
    cr_assert_eq(p->mesh[0] * p->mesh[1], 4, "the stage is the whole mesh");
    cr_assert_eq(p->stages[0].n_layers, 4);
    ty_plan_destroy(p);
  }
  r.mode = TY_PLAN_MODE_DATA;
  r.micro_batches = 16;
  reject(g, &r, "batch: the micro-batch of 2 is not divisible by the data-parallel degree 4");
  ty_graph_destroy(g);
}

/* Seconds of p's gradient synchronisation collectives. */
static double grad_sync_seconds(const ty_plan *p) {
  double t = 0;
  for (size_t i = 0; i < p->n_collectives; i++)
    if (p->collectives[i].phase == TY_PLAN_GRAD_SYNC) t += p->collectives[i].seconds;
  return t;
}

/* A stage of 2 devices data parallel all-reduces its gradients once per
 * step, as data parallelism does: one stage of 4 or 8 micro-batches on a
 * 1x2 mesh is charged that all-reduce once, so it costs what data
 * parallelism does and auto mode keeps it (charged per micro-batch, it
 * cost M times more and the search replicated the stage instead:
 * communication 0.000 ms, no speed-up). */
Test(plan_pipeline, a_data_parallel_stage_is_charged_its_gradient_all_reduce_once) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 64, 1, 2, 32, 1, &r);
  r.mode = TY_PLAN_MODE_DATA;
  ty_plan *dp = plan_test_ok(g, &r);
  double sync = grad_sync_seconds(dp);
  cr_assert_gt(sync, 0);
  cr_assert_gt(dp->comm_s, 0);
  for (int M = 4; M <= 8; M *= 2)
    for (int mode = 0; mode < 2; mode++) {
      r.mode = mode ? TY_PLAN_MODE_DATA : TY_PLAN_MODE_AUTO;
      r.micro_batches = M;
      ty_plan *p = plan_test_ok(g, &r);
      cr_assert_eq(p->n_stages, 1);
      cr_assert_eq(p->micro_batches, M);
      cr_assert(fabs(grad_sync_seconds(p) - sync) <= 1e-9 * sync, "M %d mode %d: sync %g, not %g",
                M, mode, grad_sync_seconds(p), sync);
      cr_assert_gt(p->comm_s, 0, "M %d mode %d: the stage's all-reduce is not charged", M, mode);
      cr_assert(fabs(p->step_s - dp->step_s) <= 1e-6 * dp->step_s,
                "M %d mode %d: step %g ms, data parallel %g ms", M, mode, p->step_s * 1e3,
                dp->step_s * 1e3);
      ty_plan_destroy(p);
    }
  ty_plan_destroy(dp);
  ty_graph_destroy(g);
}

/* p's text, and that of p through the plan file (a plan the controller
 * made), say why it keeps one micro-batch, or say nothing of it. */
static void expect_one_micro_why(const ty_plan *p, bool said, const char *what) {
  ty_buf bytes;
  ty_buf_init(&bytes);
  cr_assert_eq(ty_plan_encode(p, &bytes), 0);
  cr_assert_eq(bytes.data[4], said ? 3 : 2, "%s: only a plan with a reason needs version 3", what);
  ty_plan *q = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(bytes.data, bytes.len, &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_plan_hash(q), ty_plan_hash(p), "%s", what);
  const char *want = "one micro-batch only: node \"loss";
  for (int k = 0; k < 2; k++) {
    ty_buf text;
    ty_buf_init(&text);
    cr_assert_eq(ty_plan_to_text(k ? q : p, &text), 0);
    bool has = memmem(text.data, text.len, want, strlen(want)) != NULL;
    cr_assert(has == said, "%s%s: %.*s", what, k ? ", through the plan file" : "", (int)text.len,
              text.data);
    ty_buf_close(&text);
  }
  ty_plan_destroy(q);
  ty_buf_close(&bytes);
}

/* The pipeline of auto_pipelines_when_weights_do_not_fit_and_links_are_slow
 * with batch statistics: a loss that micro-batches cannot add up (sqrt of a
 * sum or of a mean over the batch) keeps one micro-batch in auto mode, and
 * more asked for are refused at planning, naming the node, not at start;
 * statistics by hand inside the forward pipeline several, as the mean
 * squared error does, and so does a mean loss beside a metric output that
 * is the root of it (only the loss named counts); naming that root the
 * loss keeps one; a summed loss that the root or half of it reads
 * pipelines several (the root reads the sum unscaled), and one whose term
 * of the loss the root reads keeps one. A flat
 * plan that wins over the pipeline says why too. */
Test(plan_pipeline, a_loss_micro_batches_cannot_add_up_keeps_one) {
  static const struct {
    model_stat kind;
    const char *loss; /* NULL: the only one-element output */
    int micro;        /* 0: several */
    const char *refusal;
  } cases[] = {
      {MODEL_STAT_ROOT_SUM, NULL, 1,
       "node \"loss.sum\" (ReduceSum) sums over the batch and reaches the loss through "
       "\"loss\" (Sqrt)"},
      {MODEL_STAT_ROOT_MEAN, NULL, 1,
       "node \"loss.mean\" (ReduceMean) averages over the batch and reaches the loss through "
       "\"loss\" (Sqrt), a nonlinear function of the batch's mean"},
      {MODEL_STAT_HAND_NORM, NULL, 0, NULL},
      {MODEL_STAT_METRIC, "loss", 0, NULL},
      {MODEL_STAT_METRIC, "rmse", 1,
       "node \"loss\" (ReduceMean) averages over the batch and reaches the loss through "
       "\"rmse\" (Sqrt)"},
      /* a summed loss that a metric reads through a Sqrt: the stages
       * scale it and the Sqrt reads it unscaled; so with half of it */
      {MODEL_STAT_SUM_METRIC, "loss", 0, NULL},
      {MODEL_STAT_SUM_HALF_METRIC, "loss", 0, NULL},
      /* the root of the loss, a term computed from the sum: scaling the
       * sum would change the metric, so ty_plan_summed_loss (the stages'
       * rule) leaves it unscaled and the check refuses */
      {MODEL_STAT_SUM_TERM_METRIC, "loss", 1,
       "node \"loss.sum\" (ReduceSum) sums over the batch into the loss and also into another "
       "output through \"rmse\" (Sqrt)"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    ty_graph *g = model_mlp_batch_stat(4, 512, cases[i].kind);
    cr_assert_not_null(g);
    ty_plan_request r = plan_test_request(4, 1, 4, false);
    r.loss = cases[i].loss;
    r.pipeline_stages = 0; /* auto */
    r.cluster.inter_bw = 1e6;
    r.cluster.device_mem_bytes = 13ull << 20;
    ty_plan *p = plan_test_ok(g, &r);
    char what[48];
    snprintf(what, sizeof what, "case %zu", i);
    cr_assert_gt(p->n_stages, 1, "case %zu: slow links pipeline it", i);
    cr_assert(cases[i].micro ? p->micro_batches == cases[i].micro : p->micro_batches > 1,
              "case %zu: %d micro-batches", i, p->micro_batches);
    expect_one_micro_why(p, cases[i].micro == 1, what);
    ty_plan_destroy(p);
    /* fast links and memory enough: the flat plan wins over one
     * micro-batch's pipeline, still saying why */
    ty_plan_request flat = plan_test_request(4, 1, 4, false);
    flat.loss = cases[i].loss;
    flat.pipeline_stages = 0;
    p = plan_test_ok(g, &flat);
    cr_assert(p->n_stages == 0 || cases[i].micro != 1, "case %zu: no pipeline with fast links", i);
    snprintf(what, sizeof what, "case %zu, flat", i);
    expect_one_micro_why(p, cases[i].micro == 1, what);
    ty_plan_destroy(p);
    r.micro_batches = 2;
    if (cases[i].refusal) reject(g, &r, cases[i].refusal);
    ty_graph_destroy(g);
  }
}

/* The stages' rule for scaling a sum by the micro-batch count, given the
 * loss: the summed loss of MODEL_STAT_SUM_METRIC and _SUM_HALF_METRIC is
 * scaled and its metric reads it unscaled; the sum whose half, the loss,
 * a metric roots (MODEL_STAT_SUM_TERM_METRIC) is not (the check above
 * refuses it); a loss not one of g's values is refused. */
Test(plan_pipeline, a_summed_loss_is_scaled_and_its_metric_reads_it_unscaled) {
  static const struct {
    model_stat kind;
    const char *sum, *metric;
    bool scaled;
  } cases[] = {
      {MODEL_STAT_SUM_METRIC, "loss", "rmse", true},
      {MODEL_STAT_SUM_HALF_METRIC, "loss", "half", true},
      {MODEL_STAT_SUM_TERM_METRIC, "loss.sum", "rmse", false},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    ty_graph *g = model_mlp_batch_stat(4, 512, cases[i].kind);
    cr_assert_not_null(g);
    int loss = ty_graph_find_value(g, "loss"), s = ty_graph_find_value(g, cases[i].sum);
    int m = ty_graph_find_value(g, cases[i].metric);
    const ty_graph_node *n = ty_graph_node_at(g, (size_t)ty_graph_value_at(g, s)->producer);
    const ty_graph_node *c = ty_graph_node_at(g, (size_t)ty_graph_value_at(g, m)->producer);
    bool scaled = !cases[i].scaled, unscaled = !cases[i].scaled;
    cr_assert_eq(ty_plan_summed_loss(g, loss, n, &scaled), 0);
    cr_assert_eq(ty_plan_reads_unscaled(g, loss, c, 0, &unscaled), 0);
    cr_assert(scaled == cases[i].scaled && unscaled == cases[i].scaled, "case %zu: %d %d", i,
              scaled, unscaled);
    /* every output a loss: the metric adds the sum up as it is */
    cr_assert_eq(ty_plan_reads_unscaled(g, TY_NO_VALUE, c, 0, &unscaled), 0);
    cr_assert(!unscaled, "case %zu", i);
    int bad = (int)ty_graph_n_values(g);
    cr_assert_eq(ty_plan_summed_loss(g, bad, n, &scaled), TY_EINVAL);
    cr_assert_eq(ty_plan_reads_unscaled(g, bad, c, 0, &unscaled), TY_EINVAL);
    cr_assert(!scaled && !unscaled);
    ty_graph_destroy(g);
  }
}

Test(plan_pipeline_reject, bad_stage_and_micro_batch_counts) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(2, 16, 1, 4, 32, 4, &r);
  reject(g, &r, "pipeline_stages: 4 stages but the graph has 2 layers");
  r.pipeline_stages = 3;
  reject(g, &r, "pipeline_stages: 3 stages do not divide the 4 devices");
  r.pipeline_stages = -1;
  reject(g, &r, "pipeline_stages: -1");
  r.pipeline_stages = 2;
  r.micro_batches = 3;
  reject(g, &r, "micro_batches: 3 does not divide the batch 32");
  r.micro_batches = -2;
  reject(g, &r, "micro_batches: -2");
  r.micro_batches = 0;
  r.pipeline_stages = 2;
  r.mode = TY_PLAN_MODE_GRID; /* 2 devices a stage: no mesh with both axes split */
  reject(g, &r, "mode grid: no pipeline of 1 x 4 devices has stage meshes with both axes");
  r.mode = TY_PLAN_MODE_AUTO;
  r.cluster.device_mem_bytes = 1024;
  reject(g, &r, "pipeline_stages: no pipeline of the graph's 2 layers fits in 1.0 KiB");
  ty_graph_destroy(g);
}

/* ---- the plan file ---------------------------------------------------------------------- */

static void put32(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++)
    p[i] = (uint8_t)(v >> (8 * i));
}

Test(plan_pipeline_codec, stages_round_trip_and_bad_ones_are_named) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 64, 2, 2, 32, 4, &r);
  ty_plan *p = plan_test_ok(g, &r), *q = NULL;
  ty_buf b;
  ty_buf_init(&b);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_encode(p, &b), 0);
  cr_assert_eq(ty_plan_decode(b.data, b.len, &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q->n_stages, 4);
  cr_assert_eq(q->micro_batches, p->micro_batches);
  for (int k = 0; k < 4; k++) {
    cr_assert_eq(q->stages[k].recompute, p->stages[k].recompute);
    cr_assert_eq(q->stages[k].memory_no_recompute_bytes, p->stages[k].memory_no_recompute_bytes);
  }
  cr_assert_eq(ty_plan_hash(q), ty_plan_hash(p));
  for (size_t i = 0; i < p->n_ops; i++)
    cr_assert_eq(q->ops[i].stage, p->ops[i].stage);
  ty_plan_destroy(q);
  p->stages[2].first_rank = 7;
  b.len = 0;
  cr_assert_eq(ty_plan_encode(p, &b), 0);
  cr_assert_eq(ty_plan_decode(b.data, b.len, &q, err, sizeof err), TY_EINVAL);
  cr_assert_not_null(strstr(err, "stages[2]: first_rank: 7, expected 2"), "%s", err);
  p->stages[2].first_rank = 2;
  p->ops[0].stage = 9;
  b.len = 0;
  cr_assert_eq(ty_plan_encode(p, &b), 0);
  cr_assert_eq(ty_plan_decode(b.data, b.len, &q, err, sizeof err), TY_EINVAL);
  cr_assert_not_null(strstr(err, "ops[0].stage: 9 is not one of the 4 stages"), "%s", err);
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* One stage of M micro-batches has no bubble: its step, sum + (M - 1) max,
 * may round an ulp below M sum, and a bubble of -2e-16 was written into the
 * plan and refused by its decoder ("bubble: -2.22045e-16 is not a finite
 * non-negative number"), so the ranks could not read their plan. Every
 * count dividing the batch plans, encodes and decodes. */
Test(plan_pipeline_codec, one_stage_of_any_micro_batches_round_trips) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(3, 48, 1, 2, 96, 1, &r);
  for (int m = 2; m <= 48; m++) {
    if (96 % m != 0 || (96 / m) % 2 != 0) continue;
    r.micro_batches = m;
    ty_plan *p = plan_test_ok(g, &r), *q = NULL;
    cr_assert(p->bubble >= 0, "%d micro-batches: bubble %g", m, p->bubble);
    ty_buf b;
    ty_buf_init(&b);
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(ty_plan_encode(p, &b), 0);
    cr_assert_eq(ty_plan_decode(b.data, b.len, &q, err, sizeof err), 0, "%d: %s", m, err);
    ty_buf_close(&b);
    ty_plan_destroy(q);
    ty_plan_destroy(p);
  }
  ty_graph_destroy(g);
}

/* Whether a plan of m micro-batches (0: the planner's choice) fits budget. */
static bool fits(const ty_graph *g, ty_plan_request r, int m, uint64_t budget) {
  r.micro_batches = m;
  r.cluster.device_mem_bytes = budget;
  ty_plan *p = NULL;
  char err[TY_ERR_LEN];
  int rc = ty_plan_search(g, &r, err, sizeof err, &p);
  ty_plan_destroy(p);
  return rc == 0;
}

/* Stages asked for, micro-batches left to the planner: where no power of
 * two dividing the batch fits, its other divisors are tried (a batch of 30
 * in 3 micro-batches fits the least memory 3 need, 2 do not), rather than
 * "no pipeline fits". */
Test(plan_pipeline, a_batch_with_odd_factors_gets_a_count_that_divides_it) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 256, 1, 2, 30, 2, &r);
  uint64_t lo = 1, hi = 1ull << 32; /* the least budget 3 micro-batches fit */
  while (lo < hi) {
    uint64_t mid = lo + (hi - lo) / 2;
    if (fits(g, r, 3, mid))
      hi = mid;
    else
      lo = mid + 1;
  }
  cr_assert(!fits(g, r, 2, lo) && !fits(g, r, 1, lo), "fewer micro-batches fit %llu bytes too",
            (unsigned long long)lo);
  r.cluster.device_mem_bytes = lo;
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 2);
  cr_assert_eq(p->micro_batches, 3);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* b (an encoding) with its CRC made again over its first len bytes. */
static void expect_why_refused(ty_buf *b, size_t len, const char *want) {
  put32(b->data + len, (uint32_t)crc32(0L, b->data, (uInt)len));
  ty_plan *q = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(b->data, len + 4, &q, err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert_not_null(strstr(err, want), "error \"%s\" lacks \"%s\"", err, want);
}

/* Version 3's one_micro_why: a reason in words on a plan of one
 * micro-batch, or refused naming the field. */
Test(plan_pipeline_codec, a_bad_one_micro_why_is_named) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(4, 64, 2, 2, 32, 4, &r);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_gt(p->micro_batches, 1);
  ty_buf b;
  ty_buf_init(&b);
  snprintf(p->one_micro_why, sizeof p->one_micro_why, "x");
  cr_assert_eq(ty_plan_encode(p, &b), 0);
  size_t len = b.len - 4; /* ... u32 1, 'x', then the CRC */
  char want[96];
  snprintf(want, sizeof want, "plan: one_micro_why: given, but the plan has %d micro-batches",
           p->micro_batches);
  expect_why_refused(&b, len, want);
  b.data[len - 1] = '\n';
  expect_why_refused(&b, len, "plan: one_micro_why: control character 0x0a at byte 0");
  put32(b.data + len - 5, 600);
  expect_why_refused(&b, len, "plan: one_micro_why: length 600 (at most 511)");
  put32(b.data + len - 5, 0);
  expect_why_refused(&b, len - 1, "plan: one_micro_why: empty");
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(plan_pipeline_codec, version_1_plans_still_decode) {
  ty_plan_request r;
  ty_graph *g = mlp_in_stages(2, 16, 1, 2, 8, 1, &r);
  ty_plan *p = plan_test_ok(g, &r), *q = NULL;
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_encode(p, &b), 0);
  /* Version 1: no pipeline section (u32, u32, f64, u32 before the CRC). */
  size_t len = b.len - 4 - 20;
  put32(b.data + 4, 1);
  put32(b.data + len, (uint32_t)crc32(0L, b.data, (uInt)len));
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(b.data, len + 4, &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q->n_stages, 0);
  cr_assert_eq(q->micro_batches, 1);
  cr_assert_eq(q->n_ops, p->n_ops);
  ty_plan_destroy(q);
  put32(b.data + 4, 4);
  put32(b.data + len, (uint32_t)crc32(0L, b.data, (uInt)len));
  cr_assert_eq(ty_plan_decode(b.data, len + 4, &q, err, sizeof err), TY_EVERSION);
  cr_assert_not_null(strstr(err, "format version 4; this build reads versions 1 to 3"), "%s", err);
  ty_buf_close(&b);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}
