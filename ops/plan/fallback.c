/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a request gets when no flat plan (data, tensor, grid) fits its
 * memory: the pipeline or gradient accumulation that fits instead, either
 * taken as the plan or named in the refusal.
 *
 * Pipelines and micro-batches are searched only when asked for (a
 * pipeline search costs seconds on a large graph), so they run here, on
 * the refusal only: pipeline stages first (they also split the weights),
 * else the fewest micro-batches, 2 to 64 (the same update,
 * docs/training.md). A request that left its pipeline knobs to the
 * planner (ty_plan_request.pipeline_if_needed, AUTO mode) takes what is
 * found; any other is refused with the setting that would get it.
 *
 * What is taken never changes what is trained. Several micro-batches do
 * where the loss does not add up over them (ty_plan_check_summed_losses:
 * they are not even named then, since the planner would refuse them),
 * where a BatchNormalization would normalise each micro-batch with its own
 * statistics (GPipe's behaviour, another model than the whole batch's),
 * and where the config asked for one micro-batch: then only a pipeline of
 * one micro-batch is taken, and the refusal says why nothing else was.
 */
#include "ops/plan/plan_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Why the automatic choice keeps one micro-batch though more would run
 * (written to why), or NULL. */
static const char *soft_one_micro(const ty_graph *g, const ty_plan_request *req, char *why,
                                  size_t len) {
  if (req->micro_batches == 1) {
    snprintf(why, len, "the training config asks for micro_batches: \"1\"");
    return why;
  }
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    if (n->op != TY_OP_BATCH_NORM) continue;
    snprintf(why, len,
             "node \"%.64s\" (BatchNormalization) would normalise each micro-batch with its own "
             "statistics, another model than the whole batch's (docs/planner.md)",
             n->name);
    return why;
  }
  return NULL;
}

/* Stages (any micro-batches, or one when one_micro is set), else, when
 * accumulate, the fewest micro-batches 2..64 of one stage that fit (every
 * count dividing the batch: 3 and 6 of a batch of 6).
 * *out_m: the micro-batches of accumulation found, 0 for stages. */
static int find(const ty_graph *g, const ty_plan_request *req, double budget, const char *one_micro,
                bool accumulate, ty_plan **out, int64_t *out_m) {
  ty_plan_request pr = *req;
  pr.pipeline_stages = 0;
  pr.micro_batches = one_micro ? 1 : 0; /* asked for: every stage count is tried with it */
  char perr[TY_ERR_LEN] = "";
  *out_m = 0;
  int rc = ty__pipeline_search(g, &pr, budget, INFINITY, one_micro, perr, sizeof perr, out);
  for (int64_t m = 2; rc != 0 && rc != TY_ENOMEM && accumulate && m <= 64 && m <= req->batch; m++) {
    if (req->batch % m != 0) continue;
    pr.pipeline_stages = 1;
    pr.micro_batches = (int)m;
    rc = ty__pipeline_search(g, &pr, budget, INFINITY, NULL, perr, sizeof perr, out);
    if (rc == 0) *out_m = m;
  }
  return rc;
}

/* Appends to err the setting that gets pp (m micro-batches of
 * accumulation, or stages when 0), or, with no pp, that nothing fits.
 * More devices are advised whatever their count: a weight dim they do not
 * divide splits into ceil/floor blocks (hidden 1000 on 7 devices), so a
 * user told to pick a dividing count would skip counts that fit. */
static void hint(const ty_plan_request *req, const ty_plan *pp, int64_t m, const char *hard,
                 char *err, size_t err_len) {
  size_t len = strlen(err);
  char mem[32];
  if (pp) ty__fmt_bytes((double)pp->memory_bytes, mem, sizeof mem);
  if (pp && m == 0)
    snprintf(err + len, err_len - len,
             "; pipeline stages fit: pipeline_stages: \"auto\" in the training config, %d "
             "stages of mesh %dx%d, %d micro-batches, %s per device (docs/planner.md)",
             pp->n_stages, pp->mesh[0], pp->mesh[1], pp->micro_batches, mem);
  else if (pp)
    snprintf(err + len, err_len - len,
             "; gradient accumulation fits: micro_batches: \"%lld\" in the training config, "
             "micro-batches of %lld rows, %s per device (the same update: docs/training.md)",
             (long long)m, (long long)(req->batch / m), mem);
  else if (hard)
    snprintf(err + len, err_len - len,
             "; nor does a pipeline of its layers with one micro-batch, the most its loss allows "
             "(%s): give each device more memory, use more devices (any count: a width they do "
             "not divide splits unevenly) or a smaller config.batch_size",
             hard);
  else
    snprintf(err + len, err_len - len,
             "; nor does a pipeline of its layers or gradient accumulation: give each device more "
             "memory, use more devices (any count: a width they do not divide splits unevenly) "
             "or a smaller config.batch_size");
}

int ty__memory_fallback(const ty_graph *g, const ty_plan_request *req, int loss, double budget,
                        char *err, size_t err_len, ty__fallback *out) {
  memset(out, 0, sizeof *out);
  bool take = req->pipeline_if_needed && req->mode == TY_PLAN_MODE_AUTO;
  char hard_why[TY_ERR_LEN], soft_why[TY_ERR_LEN];
  int rc = ty_plan_check_summed_losses(g, loss, hard_why, sizeof hard_why);
  if (rc != 0 && rc != TY_EUNSUPPORTED) return rc;
  const char *hard = rc == TY_EUNSUPPORTED ? hard_why : NULL;
  const char *soft = take && !hard ? soft_one_micro(g, req, soft_why, sizeof soft_why) : NULL;
  const char *one = hard ? hard : soft;
  ty_plan *pp = NULL;
  int64_t m = 0;
  rc = find(g, req, budget, one, !one, &pp, &m);
  if (rc == TY_ENOMEM) return rc;
  if (rc == 0 && take) { /* nothing that changes what is trained: the plan */
    out->plan = pp;
    if (one) snprintf(out->one_micro_why, sizeof out->one_micro_why, "%s", one);
    return 0;
  }
  if (rc != 0 && soft) { /* what would fit if the config asked for it */
    rc = find(g, req, budget, NULL, true, &pp, &m);
    if (rc == TY_ENOMEM) return rc;
  }
  hint(req, rc == 0 ? pp : NULL, m, hard, err, err_len);
  size_t len = strlen(err);
  if (rc == 0 && !soft) /* the request left nothing to the planner */
    soft = req->mode != TY_PLAN_MODE_AUTO
               ? "parallelism other than auto takes stages or micro-batches only when the "
                 "training config asks for them"
               : "the training config asks for pipeline_stages: \"1\"";
  if (rc == 0) snprintf(err + len, err_len - len, "; not taken automatically: %s", soft);
  ty_plan_destroy(pp);
  return TY_EINVAL;
}
