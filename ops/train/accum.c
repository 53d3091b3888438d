/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gradient accumulation without a plan (docs/training.md, "Gradient
 * accumulation"): config.micro_batches = N > 1 on one process or on
 * data-parallel ranks. Owns the refusals, the one-stage plan the step
 * runs as (pipe.c's machinery with S = 1, so the micro-batches draw one
 * pass's Dropout masks (pipe_random.c), a weighted or ignore_index mean
 * loss divides by the whole batch's denominator (pipe_wmean.c) and each
 * micro-batch folds its BatchNormalization statistics into the running
 * ones (pipe.c)), and the one all-reduce of the summed gradients over the
 * data-parallel ranks per optimizer step.
 *
 * Data-parallel ranks whose loss is not a plain mean over the batch (a
 * weighted or ignore_index mean, or a sum: the planner's classification)
 * run that one-stage plan with one micro-batch too: averaging the ranks'
 * gradients is exact only for equal means, so there the denominators are
 * summed over the ranks (pipe.c) and each rank's graph computes its share
 * of the global batch's loss (pipe_setup.c), as a plan's data ranks do.
 *
 * Why a one-stage pipeline rather than a loop in plain_step: those three
 * guarantees are properties of pipe.c's stage graphs (the denominators
 * fed as inputs, the random nodes placed per micro-batch), which a loop
 * over the plain graph would have to rebuild; the stage of one rank
 * needs no messages, so the only new code is this file's.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>

/* The plan of one stage running every node of t->g over M micro-batches
 * of `rows` (owned by the caller until ty__train_accum_open takes it). */
static int one_stage_plan(const ty_train *t, int M, int64_t rows, ty_plan **out) {
  ty_plan *p = calloc(1, sizeof *p);
  size_t nn = ty_graph_n_nodes(t->g);
  if (p) {
    p->ops = calloc(nn + 1, sizeof *p->ops);
    p->stages = calloc(1, sizeof *p->stages);
  }
  if (!p || !p->ops || !p->stages) {
    ty_plan_destroy(p);
    return TY_ENOMEM;
  }
  p->n_ops = nn;
  for (size_t i = 0; i < nn; i++)
    p->ops[i].node = (int)i; /* stage 0 */
  p->nodes = p->devices_per_node = p->devices = 1;
  p->mesh[0] = p->mesh[1] = 1;
  p->n_stages = 1;
  p->micro_batches = M;
  p->batch = rows;
  *out = p;
  return 0;
}

/* Whether t->g's loss is not a plain mean over the batch (the planner's
 * classification: a weighted or ignore_index mean, ty_shard_weighted_mean,
 * or a sum over the batch, ty_plan_summed_loss). Data-parallel ranks
 * cannot average such a loss's shards: they run it through the one-stage
 * plan, whose graph takes each rank's share of the global batch's loss. */
static int loss_not_a_mean(const ty_train *t, bool *out) {
  int rc = 0;
  *out = false;
  for (size_t i = 0; rc == 0 && !*out && i < ty_graph_n_nodes(t->g); i++) {
    const ty_graph_node *n = ty_graph_node_at(t->g, i);
    *out = ty_shard_weighted_mean(n);
    if (!*out) rc = ty_plan_summed_loss(t->g, t->loss_id, n, out);
  }
  return rc;
}

/* Data-parallel ranks with an all-reduce whose loss is not a plain mean. */
static int data_ranks_need_plan(const ty_train *t, bool *out) {
  bool reduces = t->opts.allreduce || (t->opts.async.start && t->opts.async.wait);
  *out = false;
  return t->opts.world_size > 1 && reduces ? loss_not_a_mean(t, out) : 0;
}

int ty__train_accum_setup(ty_train *t, char *err, size_t err_len) {
  int M = t->cfg->micro_batches > 1 ? t->cfg->micro_batches : 1;
  if (t->opts.parallel) return 0; /* a plan's micro-batches are its stages' */
  bool global = false;
  int rc = data_ranks_need_plan(t, &global);
  if (rc != 0 || (M == 1 && !global)) return rc;
  uint32_t world = t->opts.world_size, per = t->cfg->batch_size / world;
  if (per % (uint32_t)M != 0 && world == 1)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.micro_batches: %d does not divide config.batch_size %u", M,
                   t->cfg->batch_size);
  if (per % (uint32_t)M != 0)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.micro_batches: %d does not divide the batch of each of the %u "
                   "data-parallel ranks (config.batch_size %u / %u = %u)",
                   M, world, t->cfg->batch_size, world, per);
  if (world > 1 && !t->opts.allreduce && !(t->opts.async.start && t->opts.async.wait))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.micro_batches: %u data-parallel ranks without an all-reduce", world);
  ty_plan *p = NULL;
  rc = one_stage_plan(t, M, (int64_t)(per / (uint32_t)M), &p);
  return rc ? rc : ty__train_accum_open(t, p, err, err_len);
}

/* What takes this path, for its errors: config.micro_batches, or
 * data-parallel ranks whose loss is not a plain mean (one micro-batch). */
static const char *accum_cause(const ty_train *t) {
  return t->cfg->micro_batches > 1 ? "gradient accumulation" : "data parallelism";
}

int ty__train_accum_sum(ty_train *t, float *buf, size_t n, const char *what, char *err,
                        size_t err_len) {
  if (t->opts.world_size <= 1 || n == 0) return 0;
  int rc;
  if (t->opts.async.start && t->opts.async.wait) {
    rc = t->opts.async.start(buf, n, t->seq++, t->opts.allreduce_user);
    if (rc == 0) rc = t->opts.async.wait(t->opts.allreduce_user);
  } else {
    rc = t->opts.allreduce(buf, n, t->seq++, t->opts.allreduce_user);
  }
  return rc ? ty_errf(err, err_len, rc, "%s: the all-reduce of the %s failed: %s", accum_cause(t),
                      what, ty_strerror(rc))
            : 0;
}
