/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/plan/fallback.c: a request that left its pipeline knobs to the
 * planner (pipeline_if_needed, a training config with pipeline_stages
 * empty) and that no flat plan fits gets the pipeline, else the gradient
 * accumulation, that fits; the plan says so. Where micro-batches would
 * change what is trained (a BatchNormalization, a loss they cannot add
 * up, micro_batches "1" asked for) only one micro-batch is taken, and
 * each refusal says why the rest was not.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"
#include "tests/unit/ops/plan/plan_helpers.h"

static ty_plan_request request(int per_node, int64_t batch, uint64_t mem) {
  ty_plan_request r = plan_test_request(1, per_node, batch, true);
  r.cluster.device_mem_bytes = mem;
  r.pipeline_if_needed = true;
  return r;
}

/* What memory budget leaves no flat plan of g on one device but half
 * its activations: 60% of what the whole batch needs. */
static uint64_t tight(const ty_graph *g, int64_t batch) {
  ty_plan_request r = plan_test_request(1, 1, batch, true);
  ty_plan *whole = plan_test_ok(g, &r);
  uint64_t mem = whole->memory_bytes * 6 / 10;
  ty_plan_destroy(whole);
  return mem;
}

/* x [batch, 64] -> "fc1" (MatMul 64 x 64) -> BatchNormalization "bn" ->
 * Relu -> "fc2" (MatMul 64 x 10) -> SoftmaxCrossEntropyLoss (mean). */
static ty_graph *bn_mlp(void) {
  ty_graph *g = NULL;
  char err[TY_ERR_LEN];
  int x, lab, w1, s, b, mu, var, w2, idx, v[5];
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_shape xs = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 64});
  plan_test_add_inputs(g, &xs, &x, &lab);
  const plan_test_init inits[] = {{"fc1.w", TY_DTYPE_F32, 2, {64, 64}, &w1, NULL},
                                  {"bn.scale", TY_DTYPE_F32, 1, {64}, &s, NULL},
                                  {"bn.bias", TY_DTYPE_F32, 1, {64}, &b, NULL},
                                  {"bn.mean", TY_DTYPE_F32, 1, {64}, &mu, NULL},
                                  {"bn.var", TY_DTYPE_F32, 1, {64}, &var, NULL},
                                  {"fc2.w", TY_DTYPE_F32, 2, {64, 10}, &w2, NULL}};
  plan_test_add_inits(g, inits, TY_ARRAY_LEN(inits));
  const char *names[] = {"fc1", "bn", "relu", "fc2", "loss"};
  plan_test_add_values(g, names, TY_ARRAY_LEN(names), v);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MATMUL, "fc1", (int[]){x, w1}, 2, &v[0], 1, &idx), 0);
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_BATCH_NORM, "bn", (int[]){v[0], s, b, mu, var}, 5, &v[1], 1, &idx),
      0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RELU, "relu", &v[1], 1, &v[2], 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MATMUL, "fc2", (int[]){v[2], w2}, 2, &v[3], 1, &idx), 0);
  cr_assert_eq(
      ty_graph_add_node(g, TY_OP_SOFTMAX_CE_LOSS, "loss", (int[]){v[3], lab}, 2, &v[4], 1, &idx),
      0);
  ty_graph_mark_output(g, v[4]);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* The plan's text, NUL-terminated (malloc'd). */
static char *text_of(const ty_plan *p) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_to_text(p, &b), 0);
  char *s = strndup((const char *)b.data, b.len);
  ty_buf_close(&b);
  return s;
}

/* Grouped convolutions split no weight over 3 devices, so no flat plan
 * fits 4 MiB (test_plan.c's refusal names the pipeline); left to the
 * planner, the request gets it, and the plan, its file and its text say
 * why. */
Test(plan_fallback, an_unset_pipeline_is_taken_when_no_flat_plan_fits) {
  ty_graph *g = model_grouped_convs(6, 360, false);
  ty_plan_request r = request(3, 30, 4ull << 20);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 3);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  const char *why = ty_plan_memory_fallback(p);
  cr_assert(why && strstr(why, "no flat plan fits in 4.0 MiB per device; pipelined: 3 stages of "
                               "mesh 1x1, "),
            "%s", why ? why : "(none)");
  const ty_plan_alternative *flat = &p->alternatives[p->n_alternatives - 2];
  cr_assert(strcmp(flat->name, "no pipeline") == 0 && strstr(flat->why, "the smallest needs ") &&
                strstr(flat->why, "per device (mesh 1x"),
            "%s: %s", flat->name, flat->why);
  char *text = text_of(p);
  cr_assert(strstr(text, "\nwhy: no flat plan fits in 4.0 MiB per device; pipelined: "), "%s",
            text);
  free(text);
  /* The plan file carries it (ranks and trainctl show print it). */
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_plan_encode(p, &b), 0);
  ty_plan *back = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_decode(b.data, b.len, &back, err, sizeof err), 0, "%s", err);
  cr_assert_str_eq(ty_plan_memory_fallback(back), why);
  ty_plan_destroy(back);
  ty_buf_close(&b);
  /* A plan that was asked for says nothing of the kind; nor may a cache
   * answer one request with the other's plan. */
  ty_plan_request asked = r;
  asked.pipeline_if_needed = false;
  asked.pipeline_stages = 0;
  ty_plan *q = plan_test_ok(g, &asked);
  cr_assert_null(ty_plan_memory_fallback(q));
  cr_assert_neq(ty_plan_request_key(&r, 1), ty_plan_request_key(&asked, 1));
  ty_plan_destroy(q);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Not in a forced mode: tensor parallelism that does not fit is refused,
 * saying why the pipeline that fits was not taken. */
Test(plan_fallback, a_forced_mode_keeps_its_refusal) {
  ty_graph *g = model_grouped_convs(6, 360, false);
  ty_plan_request r = request(3, 30, 4ull << 20);
  r.mode = TY_PLAN_MODE_TENSOR;
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "the tensor parallel plan does not fit in 4.0 MiB per device") &&
                strstr(err, "; pipeline stages fit: ") &&
                strstr(err, "; not taken automatically: parallelism other than auto takes stages "
                            "or micro-batches only when the training config asks for them"),
            "%s", err);
  ty_graph_destroy(g);
}

/* One device and too many rows: no pipeline exists, the fewest
 * micro-batches that fit are taken. */
Test(plan_fallback, accumulation_is_taken_where_no_pipeline_exists) {
  ty_graph *g = model_mlp(2, 64);
  ty_plan_request r = request(1, 8192, tight(g, 8192));
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 1);
  cr_assert_geq(p->micro_batches, 2);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  const char *why = ty_plan_memory_fallback(p);
  cr_assert(why && strstr(why, "; pipelined: gradient accumulation over ") &&
                strstr(why, " on mesh 1x1"),
            "%s", why ? why : "(none)");
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* A batch of 6 divides into 3 and 6 micro-batches, not 4: where 2 do not
 * fit, the fallback takes 3 (it tried powers of two only, stopped at the
 * first that did not divide, and said nothing fits). */
Test(plan_fallback, accumulation_tries_every_count_dividing_the_batch) {
  ty_graph *g = model_mlp(2, 64);
  ty_plan_request probe = request(1, 6144, 1ull << 40);
  probe.micro_batches = 3, probe.pipeline_stages = 1, probe.pipeline_if_needed = false;
  ty_plan *three = plan_test_ok(g, &probe);
  probe.micro_batches = 2;
  ty_plan *two = plan_test_ok(g, &probe);
  cr_assert_lt(three->memory_bytes, two->memory_bytes);
  ty_plan_request r = request(1, 6144, (three->memory_bytes + two->memory_bytes) / 2);
  ty_plan_destroy(three);
  ty_plan_destroy(two);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_eq(p->n_stages, 1);
  cr_assert_eq(p->micro_batches, 3);
  cr_assert_leq(p->memory_bytes, r.cluster.device_mem_bytes);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* Micro-batches would normalise each with its own statistics: refused,
 * naming what fits and why it was not taken. */
Test(plan_fallback, batch_normalization_keeps_the_refusal_and_says_why) {
  ty_graph *g = bn_mlp();
  ty_plan_request r = request(1, 8192, tight(g, 8192));
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "cluster.device_mem_bytes: no plan fits in ") &&
                strstr(err, "; gradient accumulation fits: micro_batches: \"") &&
                strstr(err, "; not taken automatically: node \"bn\" (BatchNormalization) would "
                            "normalise each micro-batch with its own statistics"),
            "%s", err);
  ty_graph_destroy(g);
}

/* micro_batches "1" in the config is as binding. */
Test(plan_fallback, one_micro_batch_asked_for_keeps_the_refusal_and_says_why) {
  ty_graph *g = model_mlp(2, 64);
  ty_plan_request r = request(1, 8192, tight(g, 8192));
  r.micro_batches = 1;
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "; gradient accumulation fits: ") &&
                strstr(err, "; not taken automatically: the training config asks for "
                            "micro_batches: \"1\""),
            "%s", err);
  ty_graph_destroy(g);
}

/* A loss micro-batches cannot add up (an RMSE): a pipeline of one
 * micro-batch is taken, saying why it has one; where none fits, the
 * refusal says one was the most the loss allows. */
Test(plan_fallback, a_loss_micro_batches_cannot_add_up_gets_one) {
  ty_graph *g = model_grouped_convs(6, 360, true);
  ty_plan_request r = request(3, 30, 4ull << 20);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert(p->n_stages == 3 && p->micro_batches == 1, "%d x %d", p->n_stages, p->micro_batches);
  cr_assert(strstr(p->one_micro_why, "loss.mean"), "%s", p->one_micro_why);
  cr_assert_not_null(ty_plan_memory_fallback(p));
  ty_plan_destroy(p);
  ty_graph_destroy(g);
  g = model_mlp_batch_stat(2, 64, MODEL_STAT_ROOT_MEAN);
  r = request(1, 8192, tight(g, 8192));
  char err[TY_ERR_LEN];
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "; nor does a pipeline of its layers with one micro-batch, the most its "
                        "loss allows (node \"loss.mean\""),
            "%s", err);
  ty_graph_destroy(g);
}

/* Parses "the smallest plan needs 1.6 MiB" (or KiB) out of a refusal. */
static uint64_t smallest_need(const char *err) {
  const char *need = strstr(err, "the smallest plan needs ");
  cr_assert(need, "%s", err);
  char *unit = NULL;
  double v = strtod(need + strlen("the smallest plan needs "), &unit);
  cr_assert(strncmp(unit, " KiB", 4) == 0 || strncmp(unit, " MiB", 4) == 0, "%s", err);
  return (uint64_t)(v * (unit[1] == 'K' ? 1 << 10 : 1 << 20));
}

/* Hidden 250 on 3 devices does not fit a budget it fits on 7, which
 * divide neither 250 nor the batch: the refusal on 3 asks for more
 * devices of any count, not (as before the uneven splits) a count that
 * divides the layers' widths, and 7 then plans. */
Test(plan_fallback, the_refusal_asks_for_more_devices_of_any_count) {
  ty_graph *g = model_mlp(2, 250);
  char err[TY_ERR_LEN];
  ty_plan_request r = request(7, 32, 1 << 10);
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  uint64_t budget = smallest_need(err) * 11 / 10;
  r = request(3, 32, budget);
  cr_assert_eq(plan_test_refused(g, &r, err), TY_EINVAL);
  cr_assert(strstr(err, "use more devices (any count: a width they do not divide splits "
                        "unevenly) or a smaller config.batch_size") &&
                !strstr(err, "a count that divides"),
            "%s", err);
  r = request(7, 32, budget);
  ty_plan *p = plan_test_ok(g, &r);
  cr_assert_leq(p->memory_bytes, budget);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}
