/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gradient clipping (config.max_grad_norm, as torch.nn.utils.clip_grad_norm_):
 * the refusals and scratch at setup, and the factor each step's update is
 * scaled by. train.c applies it (apply_clipped), pipe.c on a pipeline's
 * rank (its gradient sums).
 *
 * The norm is the whole model's, on every CPU plan. One process and
 * data-parallel ranks hold every (averaged) gradient whole. A plan's rank
 * holds blocks: the square sums of the blocks that count once (clip_counts,
 * decided at setup from the plan's own layouts) are added over the job's
 * world, so a parameter split in slices counts by its slices, and one a
 * plan replicates (on tensor ranks, on data-parallel replicas, on the
 * holders of a pipeline's tied weight) counts once. That sum is exchanged
 * as every rank's double (all-gathered on both mesh axes) and added in
 * rank order, so every rank gets the same bits and the same factor.
 */
#include "ops/train/train_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Whether no rank below this one holds the same block of parameter p of
 * a flat plan (the first copy of a replicated block counts). */
static int first_copy(const ty_train *t, size_t p, bool *out) {
  ty_shape full;
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK], s0[TY_MAX_RANK], l0[TY_MAX_RANK];
  int v = t->param_ids[p],
      rc = ty_shard_slice_of(t->shard, v, (int)t->opts.rank, &full, start, len);
  *out = rc == 0;
  for (uint32_t r = 0; rc == 0 && *out && r < t->opts.rank; r++) {
    rc = ty_shard_slice_of(t->shard, v, (int)r, &full, s0, l0);
    size_t bytes = (size_t)full.rank * sizeof *start;
    if (rc == 0 && !memcmp(s0, start, bytes) && !memcmp(l0, len, bytes)) *out = false;
  }
  return rc;
}

/* t->clip_counts: per parameter, whether this rank's gradient of it counts
 * in the norm (every one without a plan). */
static int decide_counts(ty_train *t, char *err, size_t err_len) {
  t->clip_counts = calloc(t->np + 1, sizeof *t->clip_counts);
  if (!t->clip_counts) return TY_ENOMEM;
  for (size_t p = 0; p < t->np; p++) {
    int rc = 0;
    if (t->pipe)
      t->clip_counts[p] = ty__train_pipe_counts(t, p);
    else if (t->shard)
      rc = first_copy(t, p, &t->clip_counts[p]);
    else
      t->clip_counts[p] = true;
    if (rc != 0)
      return ty_errf(err, err_len, rc,
                     "config.max_grad_norm: the plan has no block of parameter \"%s\" for rank %u",
                     ty_train_param_name(t, p), t->opts.rank);
  }
  return 0;
}

/* The scratch a clipped gradient goes through, which parameters count on
 * this rank, and the refusal: the GPU executor updates on the device. */
int ty__train_clip_setup(ty_train *t, char *err, size_t err_len) {
  if (t->cfg->max_grad_norm == 0) return 0;
  if (t->cfg->gpu)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.max_grad_norm: gradient clipping is not supported with DEVICE_GPU yet "
                   "(set it to 0 or train on DEVICE_CPU)");
  if (ty__train_sharded(t) && !t->par.comm.all_gather)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.max_grad_norm: gradient clipping on a plan's ranks sums the norm with "
                   "an all-gather, which this transport does not offer (set max_grad_norm to 0)");
  int rc = decide_counts(t, err, err_len);
  if (rc != 0) return rc;
  size_t most = 1;
  for (size_t p = 0; p < t->np; p++)
    if ((size_t)ty_tensor_numel(t->params[p]) > most) most = (size_t)ty_tensor_numel(t->params[p]);
  t->clip_buf = malloc(most * sizeof *t->clip_buf);
  if (!t->clip_buf) return TY_ENOMEM;
  t->grad_norm = NAN; /* until the first step's */
  fprintf(ty__train_log(t), "gradient clipping: global L2 norm to %g (clip_grad_norm_)\n",
          (double)t->cfg->max_grad_norm);
  return 0;
}

/* Parameter p's gradient as the update reads it (a pipeline's: its stage's
 * summed and averaged block), or NULL. */
static const float *grad(ty_train *t, size_t p) {
  return t->pipe ? ty__train_pipe_grad(t, p) : ty__train_final_grad(t, p);
}

/* x as three floats that carry it whole: its mantissa's high and low parts
 * and its exponent (x itself when it is not finite), and back. */
static void split_double(double x, float out[3]) {
  int e = 0;
  double m = isfinite(x) ? frexp(x, &e) : x;
  out[0] = (float)m;
  out[1] = isfinite(x) ? (float)(m - (double)out[0]) : 0.0f;
  out[2] = (float)e;
}

static double join_double(const float in[3]) {
  return isfinite(in[0]) ? ldexp((double)in[0] + (double)in[1], (int)in[2]) : (double)in[0];
}

/* *io, this rank's part, becomes the sum over the plan's world: every
 * rank's part all-gathered along mesh axis 1, then axis 0 (a pipeline's:
 * a stage's ranks, then the stages), and added in that order, the same
 * bits on every rank. */
static int world_sum(ty_train *t, double *io, char *err, size_t err_len) {
  const ty_plan *p = ty_train_plan(t);
  int m0 = p->n_stages > 0 ? p->n_stages : p->mesh[0];
  int m1 = p->n_stages > 0 ? p->devices / p->n_stages : p->mesh[1];
  float mine[3], *row = malloc((size_t)m1 * 3 * sizeof *row),
                 *all = malloc((size_t)m0 * m1 * 3 * sizeof *all);
  int rc = row && all ? 0 : TY_ENOMEM;
  const ty_shard_comm *c = &t->par.comm;
  const char *what = "the gradient norm's square sum (config.max_grad_norm)";
  split_double(*io, mine);
  if (rc == 0) rc = c->all_gather(1, mine, 3, row, what, c->user);
  if (rc == 0) rc = c->all_gather(0, row, (size_t)m1 * 3, all, what, c->user);
  double sum = 0;
  for (int r = 0; rc == 0 && r < m0 * m1; r++)
    sum += join_double(all + 3 * r);
  free(row);
  free(all);
  if (rc != 0)
    return ty_errf(err, err_len, rc,
                   "config.max_grad_norm: summing the gradient norm over the ranks failed: %s",
                   ty_strerror(rc));
  *io = sum;
  return 0;
}

/* torch.nn.utils.clip_grad_norm_'s factor: max / (total + 1e-6), at most 1,
 * over every trained parameter's final gradient (the whole model's, summed
 * over a plan's ranks). NaN when a gradient is not finite, as torch's (the
 * update then spreads it, as torch's does). */
int ty__train_clip_scale(ty_train *t, float *out, char *err, size_t err_len) {
  double sq = 0;
  for (size_t p = 0; p < t->np; p++) {
    if (!t->clip_counts[p]) continue;
    const float *g = grad(t, p);
    if (!g)
      return ty_errf(err, err_len, TY_EINTERNAL, "gradient of parameter %zu was not computed", p);
    size_t n = (size_t)ty_tensor_numel(t->params[p]);
    for (size_t i = 0; i < n; i++)
      sq += (double)g[i] * g[i];
  }
  int rc = ty__train_sharded(t) ? world_sum(t, &sq, err, err_len) : 0;
  if (rc != 0) return rc;
  t->grad_norm = sqrt(sq);
  double coef = (double)t->cfg->max_grad_norm / (t->grad_norm + 1e-6);
  *out = coef < 1.0 || isnan(coef) ? (float)coef : 1.0f;
  return 0;
}

double ty_train_grad_norm(const ty_train *t) {
  return t->clip_buf ? t->grad_norm : NAN;
}
