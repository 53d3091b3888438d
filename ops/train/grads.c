/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A step's gradients, from the executor to the weights: the buckets they
 * are summed in across ranks (built once at setup: runs of consecutive
 * parameters for data parallelism, or per set of mesh axes for a plan's
 * rank), packing each gradient as the executor finishes it and starting a
 * bucket's all-reduce as soon as it is complete (overlapping the rest of
 * the backward pass), the waits, clipping's scale, and each parameter's
 * optimizer update (the fused kernel, or ops/optim's loop without fusion).
 * train.c's step calls ty__train_begin_buckets before the run and
 * ty__train_apply_grads after it; ty__train_drain after a failed step.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

#define DEFAULT_BUCKET_BYTES ((size_t)4 << 20)

/* Per parameter: its bucket and offset; per gradient value: its parameter. */
static int build_maps(ty_train *t, size_t total) {
  size_t nv = ty_graph_n_values(t->g);
  t->bucket_buf = malloc((total + 1) * sizeof *t->bucket_buf);
  t->param_off = calloc(t->np + 1, sizeof *t->param_off);
  t->param_bucket = malloc((t->np + 1) * sizeof *t->param_bucket);
  t->packed = calloc(t->np + 1, sizeof *t->packed);
  t->param_of_grad = malloc((nv + 1) * sizeof *t->param_of_grad);
  if (!t->bucket_buf || !t->param_off || !t->param_bucket || !t->packed || !t->param_of_grad)
    return TY_ENOMEM;
  for (size_t i = 0; i < nv; i++)
    t->param_of_grad[i] = -1;
  for (size_t p = 0; p < t->np; p++)
    t->param_bucket[p] = SIZE_MAX; /* summed nowhere: applied as computed */
  for (size_t k = 0; k < t->n_buckets; k++) {
    size_t off = t->buckets[k].offset;
    for (size_t j = 0; j < t->buckets[k].n_params; j++) {
      size_t p = t->buckets[k].params[j];
      t->param_bucket[p] = k;
      t->param_off[p] = off;
      off += (size_t)ty_tensor_numel(t->params[p]);
      t->param_of_grad[t->grad_ids[p]] = (int)p;
    }
  }
  return 0;
}

/* "fc2.weight [64,128], fc2.bias [64] over axes 0,1": a plan's bucket. */
static int describe_bucket(ty_train *t, ty__bucket *b) {
  ty_buf d;
  ty_buf_init(&d);
  int rc = 0;
  for (size_t j = 0; rc == 0 && j < b->n_params; j++) {
    char shape[96];
    ty_shape_format(&t->params[b->params[j]]->shape, shape, sizeof shape);
    rc = ty_buf_printf(&d, "%s%s %s", j ? ", " : "",
                       ty_graph_value_at(t->g, t->param_ids[b->params[j]])->name, shape);
  }
  if (rc == 0)
    rc = ty_buf_printf(&d, " over axes%s%s", b->axes & 1u ? " 0" : "", b->axes & 2u ? " 1" : "");
  if (rc == 0) rc = ty_buf_append(&d, "", 1);
  if (rc == 0)
    b->what = (char *)d.data;
  else
    ty_buf_close(&d);
  return rc;
}

/* Groups parameters, last first, into buckets of about bucket_bytes: one
 * run of consecutive parameters (data parallel), or per set of mesh axes
 * (a plan's rank; parameters summed over none are in no bucket). */
int ty__train_build_buckets(ty_train *t) {
  size_t cap = t->opts.bucket_bytes ? t->opts.bucket_bytes : DEFAULT_BUCKET_BYTES, total = 0;
  size_t open[4] = {SIZE_MAX, SIZE_MAX, SIZE_MAX, SIZE_MAX};
  bool planned = ty__train_planned(t);
  t->buckets = calloc(t->np + 1, sizeof *t->buckets);
  if (!t->buckets) return TY_ENOMEM;
  for (size_t p = t->np; p-- > 0;) {
    size_t f = (size_t)ty_tensor_numel(t->params[p]);
    unsigned axes = planned ? t->param_axes[p] & 3u : 0;
    if (planned && axes == 0) continue;
    ty__bucket *b = open[axes] == SIZE_MAX ? NULL : &t->buckets[open[axes]];
    if (!b || (b->floats + f) * sizeof(float) > cap) {
      open[axes] = t->n_buckets;
      b = &t->buckets[t->n_buckets++];
      b->offset = total;
      b->axes = axes;
      if (!(b->params = calloc(t->np + 1, sizeof *b->params))) return TY_ENOMEM;
    }
    b->params[b->n_params++] = p;
    b->floats += f;
    total += f;
  }
  /* a bucket's floats are contiguous: lay them out in bucket order */
  total = 0;
  for (size_t k = 0; k < t->n_buckets; k++) {
    t->buckets[k].offset = total;
    total += t->buckets[k].floats;
    int rc = planned ? describe_bucket(t, &t->buckets[k]) : 0;
    if (rc != 0) return rc;
  }
  t->overlap = planned || (t->opts.async.start && t->opts.async.wait);
  if (!planned && !t->opts.allreduce && !t->overlap) return 0;
  return build_maps(t, total);
}

static const float *grad_of(ty_train *t, size_t p) {
  const ty_tensor *g = ty__train_value(t, t->grad_ids[p]);
  return g ? g->data : NULL;
}

static void pack(ty_train *t, size_t p, const float *g) {
  memcpy(t->bucket_buf + t->param_off[p], g, (size_t)ty_tensor_numel(t->params[p]) * sizeof *g);
  t->packed[p] = true;
  t->buckets[t->param_bucket[p]].pending--;
}

void ty__train_begin_buckets(ty_train *t) {
  for (size_t p = 0; t->bucket_buf && p < t->np; p++)
    t->packed[p] = false;
  for (size_t k = 0; k < t->n_buckets; k++)
    t->buckets[k].pending = t->buckets[k].n_params;
  t->n_started = t->n_waited = 0;
}

/* Starts the complete buckets, in bucket order (the same on every rank). */
static int start_ready(ty_train *t) {
  while (t->n_started < t->n_buckets && t->buckets[t->n_started].pending == 0) {
    const ty__bucket *b = &t->buckets[t->n_started];
    float *buf = t->bucket_buf + b->offset;
    int rc = ty__train_planned(t)
                 ? t->par.start(b->axes, buf, b->floats, b->what, t->par.comm.user)
                 : t->opts.async.start(buf, b->floats, t->seq++, t->opts.allreduce_user);
    if (rc != 0) return rc;
    t->n_started++;
  }
  return 0;
}

static int async_wait(ty_train *t) {
  return ty__train_planned(t) ? t->par.wait(t->par.comm.user)
                              : t->opts.async.wait(t->opts.allreduce_user);
}

static int async_progress(ty_train *t) {
  if (ty__train_planned(t)) return t->par.progress ? t->par.progress(t->par.comm.user) : 0;
  return t->opts.async.progress ? t->opts.async.progress(t->opts.allreduce_user) : 0;
}

/* The executor's ready hook: a gradient is final, pack it and start what is
 * complete; then let the transport progress what is in flight. */
int ty__train_grad_ready(int value_id, const ty_tensor *g, void *user) {
  ty_train *t = user;
  int p = t->param_of_grad[value_id];
  if (p < 0 || t->packed[p] || g->dtype != TY_DTYPE_F32 ||
      ty_tensor_numel(g) != ty_tensor_numel(t->params[p]))
    return 0; /* not ours or odd: apply_grads packs it from the executor's value */
  pack(t, (size_t)p, g->data);
  int rc = start_ready(t);
  if (rc == 0 && t->n_started > t->n_waited) rc = async_progress(t);
  return rc;
}

/* After a failed step: completes what was started so no transfer still
 * writes bucket_buf (errors ignored; the step already failed). */
void ty__train_drain(ty_train *t) {
  if (ty__train_gpu_updates(t)) { /* its buckets are the device's */
    ty__train_gpu_drain(t);
    return;
  }
  for (; t->overlap && t->n_waited < t->n_started; t->n_waited++)
    async_wait(t);
}

ty_fused_sgd ty__train_sgd_scalars(const ty_optim_opts *o, float lr, uint64_t steps) {
  return (ty_fused_sgd){.lr = lr,
                        .weight_decay = o->weight_decay,
                        .momentum = o->momentum,
                        .dampening = o->dampening,
                        .nesterov = o->nesterov,
                        .first = steps == 0};
}

ty_fused_adam ty__train_adam_scalars(const ty_optim_opts *o, float lr, uint64_t steps) {
  return (ty_fused_adam){.lr = lr,
                         .weight_decay = o->weight_decay,
                         .beta1 = o->beta1,
                         .beta2 = o->beta2,
                         .eps = o->eps,
                         .adamw = o->kind == TY_OPTIM_ADAMW,
                         .step = steps + 1};
}

/* One parameter's update: ops/fusion's fused kernel with fusion on,
 * ops/optim's loop with it off. Both compute the same bits and keep the
 * state in t->optim, so checkpoints and resume do not depend on the choice. */
int ty__train_update_param(ty_train *t, size_t p, float lr, const float *g) {
  if (!t->jit) return ty_optim_step_param(t->optim, p, lr, t->params[p]->data, g);
  const ty_optim_opts *o = ty_optim_get_opts(t->optim);
  size_t n = (size_t)ty_tensor_numel(t->params[p]);
  float *buf[2];
  uint64_t steps;
  int rc = ty_optim_param_state(t->optim, p, buf, &steps);
  if (rc == 0 && o->kind == TY_OPTIM_SGD) {
    ty_fused_sgd h = ty__train_sgd_scalars(o, lr, steps);
    rc = ty_jit_sgd_step(t->jit, &h, n, t->params[p]->data, g, buf[0]);
  } else if (rc == 0) {
    ty_fused_adam h = ty__train_adam_scalars(o, lr, steps);
    rc = ty_jit_adam_step(t->jit, &h, n, t->params[p]->data, g, buf[0], buf[1]);
  }
  return rc == 0 ? ty_optim_param_advance(t->optim, p) : rc;
}

/* Packs the gradients the ready hook has not seen, starts the rest (async). */
static int pack_rest(ty_train *t, char *err, size_t err_len) {
  for (size_t p = t->np; t->bucket_buf && p-- > 0;) {
    if (t->packed[p] || t->param_bucket[p] == SIZE_MAX) continue;
    const float *g = grad_of(t, p);
    if (!g)
      return ty_errf(err, err_len, TY_EINTERNAL, "gradient of parameter %zu was not computed", p);
    pack(t, p, g);
  }
  int rc = t->overlap ? start_ready(t) : 0;
  return rc ? ty_errf(err, err_len, rc, "all-reduce of gradient bucket %zu failed to start: %s",
                      t->n_started, ty_strerror(rc))
            : 0;
}

/* Bucket k summed across ranks in bucket_buf: waits for it (async) or
 * reduces it now (the synchronous hook). */
static int reduce_bucket(ty_train *t, size_t k, char *err, size_t err_len) {
  const ty__bucket *b = &t->buckets[k];
  int rc;
  if (t->overlap) {
    rc = async_wait(t);
    t->n_waited++;
  } else {
    rc = t->opts.allreduce(t->bucket_buf + b->offset, b->floats, t->seq++, t->opts.allreduce_user);
  }
  if (rc != 0)
    return ty_errf(err, err_len, rc, "all-reduce of gradient bucket %zu failed: %s", k,
                   ty_strerror(rc));
  if (ty__train_planned(t)) return 0; /* sums: the loss is the global mean already */
  float scale = 1.0f / (float)t->opts.world_size, *buf = t->bucket_buf + b->offset;
  for (size_t i = 0; i < b->floats; i++)
    buf[i] *= scale;
  return 0;
}

/* Parameter p's gradient as the update reads it: its bucket's (summed
 * and averaged) or the executor's; NULL when it was not computed. */
const float *ty__train_final_grad(ty_train *t, size_t p) {
  bool bucketed = t->bucket_buf && t->param_bucket[p] != SIZE_MAX;
  return bucketed ? t->bucket_buf + t->param_off[p] : grad_of(t, p);
}

/* Parameter p's update from its (summed) gradient times scale (clipping;
 * 1 leaves it as it is). */
static int apply_one(ty_train *t, size_t p, float lr, float scale, char *err, size_t err_len) {
  const float *g = ty__train_final_grad(t, p);
  int rc = 0;
  if (g && scale != 1.0f) {
    size_t n = (size_t)ty_tensor_numel(t->params[p]);
    for (size_t i = 0; i < n; i++)
      t->clip_buf[i] = g[i] * scale;
    g = t->clip_buf;
  }
  if (!g)
    rc = ty_errf(err, err_len, TY_EINTERNAL, "gradient of parameter %zu was not computed", p);
  else if ((rc = ty__train_update_param(t, p, lr, g)) != 0)
    rc = ty_errf(err, err_len, rc, "optimizer step failed for parameter %zu", p);
  return rc;
}

/* With clipping every bucket must be summed before the first update (the
 * norm is over all of them): reduce all, scale, update. */
static int apply_clipped(ty_train *t, float lr, char *err, size_t err_len) {
  int rc = pack_rest(t, err, err_len);
  for (size_t k = 0; rc == 0 && t->bucket_buf && k < t->n_buckets; k++)
    rc = reduce_bucket(t, k, err, err_len);
  float scale = 1.0f;
  if (rc == 0) rc = ty__train_clip_scale(t, &scale, err, err_len);
  for (size_t p = 0; rc == 0 && p < t->np; p++)
    rc = apply_one(t, p, lr, scale, err, err_len);
  if (rc != 0) ty__train_drain(t);
  return rc;
}

/* Completes the all-reduce bucket by bucket (when a hook is set) and
 * applies the update. */
int ty__train_apply_grads(ty_train *t, float lr, char *err, size_t err_len) {
  if (t->clip_buf) return apply_clipped(t, lr, err, err_len);
  int rc = pack_rest(t, err, err_len);
  for (size_t k = 0; rc == 0 && k < t->n_buckets; k++) {
    const ty__bucket *b = &t->buckets[k];
    if (t->bucket_buf && (rc = reduce_bucket(t, k, err, err_len)) != 0) break;
    for (size_t j = 0; rc == 0 && j < b->n_params; j++)
      rc = apply_one(t, b->params[j], lr, 1.0f, err, err_len);
  }
  for (size_t p = t->np;
       rc == 0 && t->bucket_buf && p-- > 0;) /* complete as computed (a plan's rank) */
    if (t->param_bucket[p] == SIZE_MAX) rc = apply_one(t, p, lr, 1.0f, err, err_len);
  if (rc != 0) ty__train_drain(t);
  return rc;
}
