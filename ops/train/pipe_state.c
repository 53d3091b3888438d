/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What a pipeline's rank holds of the model (pipe_internal.h; pipe.c's
 * header comment, "Memory and checkpoints"): its stage's parameters (on a
 * stage mesh its blocks of them) and their optimizer state, nothing of the
 * other stages'; the bytes of that (ty_train_pipeline_state_bytes); on a
 * stage mesh that splits a BatchNormalization's channels, its blocks of
 * the running statistics; gathering every stage's parts into rank 0's
 * full tensors, statistics and optimizer for evaluation, and one tensor at
 * a time for a checkpoint's streamed save (checkpoint.c); and where this
 * rank's part of each tensor lies, for resuming from mapped files
 * (resume.c).
 */
#include "ops/train/pipe_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

uint64_t ty_train_pipeline_state_bytes(const ty_train *t) {
  if (!t->pipe) return 0;
  const ty_optim_opts *o = ty_optim_get_opts(t->optim);
  uint64_t copies = o->kind == TY_OPTIM_SGD ? (o->momentum > 0 ? 1 : 0) : 2, n = 0;
  for (size_t p = 0; p < t->np; p++)
    n += (uint64_t)ty_tensor_numel(t->params[p]) * (1 + copies);
  return (n + t->pipe->acc_n) * sizeof(float);
}

/* ---- the rank's parts ------------------------------------------------------------ */

/* A rank keeps its stage's parameters (on a stage mesh only its block of
 * each; the optimizer is then made over them, train.c) and nothing of the
 * other stages' (an empty tensor): what the planner counts per device. */
int ty__pipe_shard_params(ty_train *t) {
  ty__pipe *pp = t->pipe;
  for (size_t p = 0; p < t->np; p++) {
    ty_tensor *part = NULL;
    int rc = 0;
    bool held = ty__pipe_holds(pp, p, pp->stage);
    if (held && !pp->tp) continue; /* a stage of one device: whole */
    if (held)
      rc = ty__pipe_tp_slice(pp->tp, t->param_ids[p], t->params[p], &part);
    else
      rc = ty_tensor_create(TY_DTYPE_F32, &(ty_shape){.rank = 1, .dims = {0}}, &part);
    if (rc != 0) return rc;
    ty_tensor_destroy(t->params[p]);
    t->params[p] = part;
  }
  return 0;
}

int ty__pipe_bn_blocks(ty_train *t) {
  ty__pipe *pp = t->pipe;
  for (size_t b = 0; pp && pp->tp && b < t->n_bn; b++)
    for (int k = 0; k < 2; k++) {
      ty_tensor *part = NULL;
      if (ty__pipe_tp_whole(pp->tp, t->bn[b].ids[k])) continue;
      int rc = ty__pipe_tp_slice(pp->tp, t->bn[b].ids[k], t->bn[b].stat[k], &part);
      if (rc != 0) return rc;
      ty_tensor_destroy(t->bn[b].stat[k]);
      t->bn[b].stat[k] = part;
    }
  return 0;
}

/* The gradient sums of the stage's parameters (or of this rank's blocks). */
int ty__pipe_grad_sums(ty_train *t) {
  ty__pipe *pp = t->pipe;
  for (size_t k = 0; k < pp->n_mine; k++) {
    pp->acc_off[k] = pp->acc_n;
    pp->acc_n += (size_t)ty_tensor_numel(t->params[pp->mine[k]]);
  }
  pp->acc = calloc(pp->acc_n + 1, sizeof *pp->acc);
  return pp->acc ? 0 : TY_ENOMEM;
}

/* Per BatchNormalization of t: the stage of the node reading its running
 * mean. Made at the first gather: t->bn is set up after the stages'
 * graphs (train.c). */
static int bn_stages(ty_train *t, ty__pipe *pp) {
  pp->bn_stage = calloc(t->n_bn + 1, sizeof *pp->bn_stage);
  if (!pp->bn_stage) return TY_ENOMEM;
  for (size_t b = 0; b < t->n_bn; b++)
    for (size_t i = 0; i < pp->plan->n_ops && i < ty_graph_n_nodes(t->g); i++) {
      const ty_graph_node *n = ty_graph_node_at(t->g, i);
      if (n->op == TY_OP_BATCH_NORM && n->n_inputs > 3 && n->inputs[3] == t->bn[b].ids[0])
        pp->bn_stage[b] = pp->plan->ops[i].stage;
    }
  return 0;
}

/* ---- gathering onto rank 0 ----------------------------------------------------------- */

/* ---- a sharded stage's gather and resume ----------------------------------------- */

/* Rank 0's full (value v's whole tensor) from the blocks of stage s's
 * ranks, n floats each (every other rank sends n zeros). */
static int gather_blocks(ty_train *t, int v, int s, const float *mine, size_t n, float *full,
                         float *scratch, const float *zeros) {
  const ty_train_parallel *par = t->opts.parallel;
  ty__pipe *pp = t->pipe;
  ty_shard *sh = pp->tp ? ty__pipe_tp_shard(pp->tp) : NULL;
  int rc = par->gather(pp->stage == s ? mine : zeros, n, t->opts.rank == 0 ? scratch : NULL,
                       par->comm.user);
  if (rc == 0 && t->opts.rank == 0 && !sh) /* a stage of one device: rank s holds it whole */
    memcpy(full, scratch + (size_t)s * n, n * sizeof *full);
  for (int j = 0; rc == 0 && sh && t->opts.rank == 0 && j < pp->R; j++) {
    int q = s * pp->R + j;
    ty_shape fs;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    rc = ty_shard_slice_of(sh, v, q, &fs, start, len);
    if (rc == 0)
      ty_shard_copy_block(full, &fs, (void *)(scratch + (size_t)q * n), start, len, sizeof(float),
                          false);
  }
  return rc;
}

/* The floats of initializer v of the training graph, whole (its value's
 * shape: the data may have been dropped, ty_train_drop_model_data). */
static size_t whole_numel(const ty_train *t, int v) {
  return (size_t)ty_shape_numel(&ty_graph_value_at(t->g, v)->shape);
}

/* The floats of v's block on the ranks of its stage s. */
static size_t block_numel(const ty_train *t, ty__pipe *pp, int v, int s) {
  ty_shape fs;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK], n = 1;
  if (!pp->tp) return whole_numel(t, v);
  if (ty_shard_slice_of(ty__pipe_tp_shard(pp->tp), v, s * pp->R, &fs, start, len) != 0) return 0;
  for (int d = 0; d < fs.rank; d++)
    n *= len[d];
  return (size_t)n;
}

/* Parameter p into rank 0's full_params from the blocks of the stage that
 * trains it. */
static int gather_param(ty_train *t, size_t p, float *scratch, const float *zeros) {
  ty__pipe *pp = t->pipe;
  int v = t->param_ids[p], s = pp->param_stage[p];
  return gather_blocks(t, v, s, t->params[p]->data, block_numel(t, pp, v, s),
                       t->opts.rank == 0 ? t->full_params[p]->data : NULL, scratch, zeros);
}

/* BatchNormalization b's running statistics into rank 0's full_stats from
 * the blocks of the ranks of the stage that runs it (whole on each where
 * the stage keeps its channels whole). */
static int gather_stats(ty_train *t, size_t b, float *scratch, const float *zeros) {
  ty__pipe *pp = t->pipe;
  int rc = 0;
  for (int k = 0; rc == 0 && k < 2; k++) {
    int v = t->bn[b].ids[k], s = pp->bn_stage[b];
    rc = gather_blocks(t, v, s, t->bn[b].stat[k]->data, block_numel(t, pp, v, s),
                       t->opts.rank == 0 ? t->full_stats[2 * b + (size_t)k]->data : NULL, scratch,
                       zeros);
  }
  return rc;
}

/* Every rank: rank 0's full_params and full_stats from the stages'
 * blocks. */
static int gather_sharded(ty_train *t, size_t most, char *err, size_t err_len) {
  ty__pipe *pp = t->pipe;
  bool root = t->opts.rank == 0;
  float *scratch = root ? malloc(most * t->opts.world_size * sizeof *scratch + 1) : NULL;
  float *zeros = calloc(most + 1, sizeof *zeros);
  int rc = (root && !scratch) || !zeros ? TY_ENOMEM : 0;
  if (rc == 0 && root) rc = ty__train_plan_full(t);
  if (rc == 0 && !pp->bn_stage) rc = bn_stages(t, pp);
  for (size_t p = 0; rc == 0 && p < t->np; p++)
    rc = gather_param(t, p, scratch, zeros);
  for (size_t b = 0; rc == 0 && b < t->n_bn; b++)
    rc = gather_stats(t, b, scratch, zeros);
  free(scratch);
  free(zeros);
  return rc ? ty_errf(err, err_len, rc,
                      "evaluation: gathering the stages' blocks on rank 0 failed: %s",
                      ty_strerror(rc))
            : 0;
}

int ty__train_pipe_block(const ty_train *t, int v, const ty_tensor *local, ty_shape *full,
                         int64_t *start, int64_t *len, bool *held) {
  int64_t nl = ty_tensor_numel(local), nw = (int64_t)whole_numel(t, v);
  *full = ty_graph_value_at(t->g, v)->shape;
  *held = nl > 0 || nw == 0; /* nothing of another stage's parameter */
  if (*held && nl < nw)
    return t->pipe->tp ? ty__pipe_tp_block(t->pipe->tp, v, full, start, len) : TY_EINTERNAL;
  for (int d = 0; d < full->rank; d++)
    start[d] = 0, len[d] = full->dims[d];
  return 0;
}

/* ---- a streamed save's gathers (checkpoint.c) -------------------------------------- */

size_t ty__train_pipe_full_numel(const ty_train *t, int v) {
  return whole_numel(t, v);
}

/* Value v's full tensor onto rank 0 (full, NULL elsewhere) from the blocks
 * at mine of stage s's ranks, through a scratch of world x a block. */
static int gather_value(ty_train *t, int v, int s, const float *mine, float *full) {
  size_t n = block_numel(t, t->pipe, v, s);
  bool root = t->opts.rank == 0;
  float *scratch = root ? malloc(n * t->opts.world_size * sizeof *scratch + 1) : NULL;
  float *zeros = calloc(n + 1, sizeof *zeros);
  int rc = (root && !scratch) || !zeros ? TY_ENOMEM : 0;
  if (rc == 0) rc = gather_blocks(t, v, s, mine, n, full, scratch, zeros);
  free(scratch);
  free(zeros);
  return rc;
}

int ty__train_pipe_gather_item(ty_train *t, size_t k, float **out) {
  ty__pipe *pp = t->pipe;
  *out = NULL;
  int rc = pp->bn_stage ? 0 : bn_stages(t, pp);
  ty_tensor *local;
  int v = ty__train_save_item(t, k, &local);
  int s = k < t->np ? pp->param_stage[k] : pp->bn_stage[(k - t->np) / 2];
  if (rc == 0 && t->opts.rank == 0 &&
      !(*out = malloc(ty__train_pipe_full_numel(t, v) * sizeof **out + 1)))
    rc = TY_ENOMEM;
  if (rc == 0) rc = gather_value(t, v, s, local->data, *out);
  if (rc != 0) free(*out), *out = NULL;
  return rc;
}

int ty__train_pipe_gather_buf(ty_train *t, size_t p, int b, float *full) {
  float *bufs[2];
  uint64_t steps;
  int rc = ty_optim_param_state(t->optim, p, bufs, &steps);
  if (rc == 0 && !bufs[b]) rc = TY_EINTERNAL; /* the same on every rank */
  return rc ? rc : gather_value(t, t->param_ids[p], t->pipe->param_stage[p], bufs[b], full);
}

int ty__train_pipe_save_heads(ty_train *t, uint64_t *steps, uint32_t *nbuf, uint32_t *ngather) {
  ty__pipe *pp = t->pipe;
  bool root = t->opts.rank == 0;
  float *st = malloc(2 * t->np * sizeof *st + 1);
  float *scratch = root ? malloc(2 * t->np * t->opts.world_size * sizeof *scratch + 1) : NULL;
  int rc = !st || (root && !scratch) ? TY_ENOMEM : 0;
  for (size_t p = 0; rc == 0 && p < t->np; p++) {
    float *bufs[2]; /* made where missing, so every rank gathers as many */
    rc = ty_optim_param_state(t->optim, p, bufs, &steps[p]);
    ngather[p] = (uint32_t)(bufs[0] != NULL) + (uint32_t)(bufs[1] != NULL);
    st[2 * p] = (float)(steps[p] & 0xffffffu), st[2 * p + 1] = (float)(steps[p] >> 24);
  }
  const ty_train_parallel *par = t->opts.parallel;
  if (rc == 0) rc = par->gather(st, 2 * t->np, scratch, par->comm.user);
  for (size_t p = 0; rc == 0 && root && p < t->np; p++) {
    const float *own = scratch + (size_t)pp->param_stage[p] * pp->R * 2 * t->np + 2 * p;
    steps[p] = (uint64_t)own[0] | (uint64_t)own[1] << 24; /* exact in floats */
    nbuf[p] = steps[p] > 0 ? ngather[p] : 0; /* as the stage's optimizer would save it */
  }
  free(st);
  free(scratch);
  return rc;
}

int ty__train_pipe_gather(ty_train *t, char *err, size_t err_len) {
  size_t most = 2;
  for (size_t p = 0; p < t->np; p++) {
    size_t n = whole_numel(t, t->param_ids[p]);
    most = n > most ? n : most;
  }
  for (size_t b = 0; b < t->n_bn; b++) {
    size_t n = whole_numel(t, t->bn[b].ids[0]);
    most = n > most ? n : most;
  }
  return gather_sharded(t, most, err, err_len);
}
