/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which executor a training step runs on. A DEVICE_GPU job's training
 * graph runs on ops/cuda's GPU executor (ops/cuda/exec.h) when this build
 * has it (cuBLAS found) and a CUDA device is visible; otherwise on the CPU
 * executor, and the log says which and why, once. A parallel plan's rank
 * stays on the CPU executor: its TyExtern collectives have no GPU path.
 *
 * A single process (no all-reduce) keeps everything on the device across
 * steps: the weights are resident in the executor, the optimizer runs
 * there (ops/cuda's ty_cuda_optim, the CPU JIT's formulas) with its state
 * loaded from ops/optim at the first update, and both come back to the
 * trainer's host tensors only when the host needs them (ty__train_gpu_sync:
 * checkpoints, evaluation, the end of ty_train_steps). Several ranks
 * whose collective reduces device memory (trainrun's NCCL hooks,
 * ty_train_async_allreduce.start_device) do the same with the gradient
 * buckets on the device: the executor reports each gradient as soon as it
 * is queued, it is packed into its bucket on the compute stream, and a
 * complete bucket's reduction starts on NCCL's stream after the bucket's
 * event, while the backward pass goes on. Other ranks upload the weights
 * each step and bring the gradients back for the host all-reduce and
 * optimizer (ty__train_value), as on the CPU.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#ifdef TY_HAVE_CUDA_EXEC
#include "ops/cuda/cuda.h"
#include "ops/cuda/exec.h"
#include "ops/optim/optim.h"
#endif

#include <stdlib.h>
#include <string.h>

/* Why this job does not run on the GPU, or NULL when it does. */
static const char *cpu_reason(const ty_train *t) {
  if (t->shard) return "a parallel plan's rank runs its TyExtern collectives on the CPU executor";
  if (ty__train_accum(t) && t->cfg->micro_batches > 1)
    return "gradient accumulation (config.micro_batches) runs on the CPU executor";
  if (ty__train_accum(t))
    return "data-parallel ranks run a weighted or ignore_index mean or summed loss on the CPU "
           "executor";
  if (t->pipe) return "a pipelined plan's stages run on the CPU executor";
#ifdef TY_HAVE_CUDA_EXEC
  if (ty_cuda_device_count() <= 0) return "no CUDA device is visible";
  return NULL;
#else
  return "this build has no GPU executor (it needs cudart, NVRTC and cuBLAS)";
#endif
}

bool ty__train_on_gpu(ty_train *t) {
  if (t->gpu_state) return t->gpu_state > 0;
  const char *why = t->cfg->gpu ? cpu_reason(t) : "";
  t->gpu_state = why ? -1 : 1;
  if (t->cfg->gpu && why)
    fprintf(ty__train_log(t), "device GPU: the training step runs on the CPU executor: %s\n", why);
  return t->gpu_state > 0;
}

#ifdef TY_HAVE_CUDA_EXEC
/* The values the trainer reads after a step: gradients, BN inputs or
 * statistics (the loss is a graph output, kept anyway). */
static int keep_list(const ty_train *t, int **out, size_t *out_n) {
  int *bn = NULL;
  size_t n_bn = 0;
  int rc = ty__train_bn_keep(t, &bn, &n_bn);
  if (rc != 0) return rc;
  int *keep = calloc(n_bn + t->np + 1, sizeof *keep);
  if (!keep) {
    free(bn);
    return TY_ENOMEM;
  }
  for (size_t i = 0; i < n_bn; i++)
    keep[i] = bn[i];
  for (size_t p = 0; p < t->np; p++)
    keep[n_bn + p] = t->grad_ids[p];
  free(bn);
  *out = keep;
  *out_n = n_bn + t->np;
  return 0;
}

static int bind_all(ty_train *t, char *err, size_t err_len) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < t->np; i++)
    rc = ty__train_gpu_updates(t)
             ? ty_cuda_exec_bind_resident(t->gpu, t->param_ids[i], t->params[i], err, err_len)
             : ty_cuda_exec_bind_id(t->gpu, t->param_ids[i], t->params[i], err, err_len);
  for (size_t i = 0; rc == 0 && i < t->n_bn; i++)
    for (int k = 0; rc == 0 && k < 2; k++)
      rc = ty_cuda_exec_bind_id(t->gpu, t->bn[i].ids[k], t->bn[i].stat[k], err, err_len);
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++)
    rc = ty_cuda_exec_bind_id(t->gpu, t->feeds[k].id, t->feeds[k].t, err, err_len);
  return rc;
}

/* Several ranks whose collective reduces device buffers (NCCL): the
 * buckets stay on the device. */
static bool device_buckets(const ty_train *t) {
  return t->bucket_buf && t->opts.async.start_device && t->opts.async.wait_device;
}

static int make_buckets(ty_train *t, char *err, size_t err_len) {
  size_t floats = 0;
  for (size_t k = 0; k < t->n_buckets; k++)
    if (t->buckets[k].offset + t->buckets[k].floats > floats)
      floats = t->buckets[k].offset + t->buckets[k].floats;
  return ty_cuda_buckets_create(floats, t->n_buckets, ty_cuda_exec_stream(t->gpu), &t->gpu_buckets,
                                err, err_len);
}

/* Starts the complete buckets in bucket order (the same on every rank),
 * each after its ready event on the compute stream. */
static int start_ready_dev(ty_train *t, char *err, size_t err_len) {
  while (t->n_started < t->n_buckets && t->buckets[t->n_started].pending == 0) {
    const ty__bucket *b = &t->buckets[t->n_started];
    void *ev = ty_cuda_buckets_ready(t->gpu_buckets, t->n_started, err, err_len);
    if (!ev) return TY_EIO;
    int rc = t->opts.async.start_device(ty_cuda_buckets_data(t->gpu_buckets) + b->offset, b->floats,
                                        t->seq++, ev, t->opts.allreduce_user);
    if (rc != 0)
      return ty_errf(err, err_len, rc, "all-reduce of gradient bucket %zu failed to start: %s",
                     t->n_started, ty_strerror(rc));
    t->n_started++;
  }
  return 0;
}

/* Parameter p's gradient g (device) into its bucket; starts what is complete. */
static int pack_dev(ty_train *t, size_t p, const float *g, char *err, size_t err_len) {
  int rc = ty_cuda_buckets_pack(t->gpu_buckets, t->param_off[p], g,
                                (size_t)ty_tensor_numel(t->params[p]), err, err_len);
  if (rc != 0) return rc;
  t->packed[p] = true;
  t->buckets[t->param_bucket[p]].pending--;
  return start_ready_dev(t, err, err_len);
}

/* The executor's device-ready hook: a gradient was just queued. */
static int grad_ready_dev(int id, void *dev, void *user) {
  ty_train *t = user;
  char err[TY_ERR_LEN];
  int p = t->param_of_grad[id];
  if (p < 0 || t->packed[p] || t->param_bucket[p] == SIZE_MAX) return 0;
  int rc = pack_dev(t, (size_t)p, dev, err, sizeof err);
  if (rc != 0) fprintf(ty__train_log(t), "device GPU: %s\n", err);
  return rc;
}

static int make_gpu(ty_train *t, char *err, size_t err_len) {
  int *keep = NULL;
  size_t n_keep = 0;
  int rc = keep_list(t, &keep, &n_keep);
  if (rc != 0) return ty_errf(err, err_len, rc, "GPU executor: %s", ty_strerror(rc));
  ty_cuda_exec_opts o = {.training = true,
                         .seed = ty_mix2(t->cfg->seed, t->step),
                         .noise_seed = ty__train_noise_seed(t),
                         .keep_values = keep,
                         .n_keep_values = n_keep,
                         .workers = t->opts.workers};
  if (device_buckets(t)) { /* each gradient packed as soon as it is computed */
    o.on_device_ready = grad_ready_dev;
    o.on_device_ready_user = t;
    o.watch_values = t->grad_ids;
    o.n_watch_values = t->np;
  }
  rc = ty_cuda_exec_create(t->g, &o, &t->gpu, err, err_len);
  free(keep);
  if (rc == 0) rc = bind_all(t, err, err_len);
  if (rc == 0 && device_buckets(t)) rc = make_buckets(t, err, err_len);
  if (rc == 0 && ty__train_gpu_updates(t) &&
      (rc = ty_cuda_optim_create(ty_cuda_exec_rtc(t->gpu), ty_cuda_exec_stream(t->gpu), t->np,
                                 &t->gpu_optim)) != 0)
    ty_errf(err, err_len, rc, "the optimizer on the device: %s", ty_strerror(rc));
  if (rc != 0) return rc;
  char sum[1024];
  if (ty_cuda_plan_summary(ty_cuda_exec_get_plan(t->gpu), t->g, sum, sizeof sum) == 0)
    fprintf(ty__train_log(t), "GPU executor: %s\n", sum);
  return 0;
}

int ty__train_gpu_run(ty_train *t, char *err, size_t err_len) {
  int rc = t->gpu ? 0 : make_gpu(t, err, err_len);
  if (rc != 0) return rc;
  if (t->reseed_per_step) {
    ty_cuda_exec_set_seed(t->gpu, ty_mix2(t->cfg->seed, t->step));
    ty_cuda_exec_set_noise_seed(t->gpu, ty__train_noise_seed(t));
  }
  return ty_cuda_exec_run(t->gpu, err, err_len);
}

void ty__train_gpu_destroy(ty_train *t) {
  ty__train_gpu_drain(t);
  ty_cuda_buckets_destroy(t->gpu_buckets);
  t->gpu_buckets = NULL;
  ty_cuda_optim_destroy(t->gpu_optim);
  ty_cuda_exec_destroy(t->gpu);
  t->gpu_optim = NULL;
  t->gpu = NULL;
}

bool ty__train_gpu_updates(const ty_train *t) {
  return t->gpu_state > 0 && (!t->bucket_buf || device_buckets(t));
}

void ty__train_gpu_drain(ty_train *t) {
  for (; t->gpu_buckets && t->n_waited < t->n_started; t->n_waited++)
    t->opts.async.wait_device(t->opts.allreduce_user); /* errors ignored: the step failed */
}

/* Parameter p's state on the device, from ops/optim's at its first update. */
static int load_state(ty_train *t, size_t p, char *err, size_t err_len) {
  if (ty_cuda_optim_loaded(t->gpu_optim, p)) return 0;
  const ty_optim_opts *o = ty_optim_get_opts(t->optim);
  float *buf[2] = {NULL, NULL};
  uint64_t steps;
  int rc = ty_optim_param_state(t->optim, p, buf, &steps);
  int n_bufs = o->kind == TY_OPTIM_SGD ? (o->momentum != 0.0f ? 1 : 0) : 2;
  if (rc != 0) return ty_errf(err, err_len, rc, "optimizer state of parameter %zu", p);
  return ty_cuda_optim_load(t->gpu_optim, p, (size_t)ty_tensor_numel(t->params[p]), n_bufs, buf,
                            err, err_len);
}

/* One parameter's update on the device: update_param's rule, same scalars. */
static int update_one(ty_train *t, size_t p, float lr, const float *g, char *err, size_t err_len) {
  const ty_optim_opts *o = ty_optim_get_opts(t->optim);
  float *buf[2];
  uint64_t steps;
  int rc = load_state(t, p, err, err_len);
  if (rc == 0 && (rc = ty_optim_param_state(t->optim, p, buf, &steps)) != 0)
    return ty_errf(err, err_len, rc, "optimizer state of parameter %zu", p);
  float *w = rc ? NULL : ty_cuda_exec_device_ptr(t->gpu, t->param_ids[p], true, err, err_len);
  if (rc == 0 && (!g || !w)) rc = TY_EINTERNAL;
  if (rc == 0 && o->kind == TY_OPTIM_SGD) {
    ty_fused_sgd h = ty__train_sgd_scalars(o, lr, steps);
    rc = ty_cuda_optim_sgd(t->gpu_optim, p, &h, w, g, err, err_len);
  } else if (rc == 0) {
    ty_fused_adam h = ty__train_adam_scalars(o, lr, steps);
    rc = ty_cuda_optim_adam(t->gpu_optim, p, &h, w, g, err, err_len);
  }
  return rc == 0 ? ty_optim_param_advance(t->optim, p) : rc;
}

/* Parameter p's update, naming it in an error. */
static int update_named(ty_train *t, size_t p, float lr, const float *g, char *err,
                        size_t err_len) {
  int rc = g ? update_one(t, p, lr, g, err, err_len) : TY_EINTERNAL;
  if (rc != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", g ? err : "no gradient");
    return ty_errf(err, err_len, rc, "optimizer step on the device, parameter \"%s\": %s",
                   ty_graph_value_at(t->g, t->param_ids[p])->name, inner);
  }
  return 0;
}

/* Several ranks: the gradients not packed yet, then bucket by bucket the
 * reduction's end, the mean (1 / world_size) and the update. */
static int update_bucketed(ty_train *t, float lr, char *err, size_t err_len) {
  int rc = 0;
  for (size_t p = t->np; rc == 0 && p-- > 0;) {
    if (t->packed[p] || t->param_bucket[p] == SIZE_MAX) continue;
    const float *g = ty_cuda_exec_device_ptr(t->gpu, t->grad_ids[p], false, err, err_len);
    rc = g ? pack_dev(t, p, g, err, err_len) : TY_EINTERNAL;
  }
  float *data = ty_cuda_buckets_data(t->gpu_buckets);
  for (size_t k = 0; rc == 0 && k < t->n_buckets; k++) {
    const ty__bucket *b = &t->buckets[k];
    rc = t->opts.async.wait_device(t->opts.allreduce_user);
    t->n_waited++;
    if (rc != 0) {
      rc = ty_errf(err, err_len, rc, "all-reduce of gradient bucket %zu failed: %s", k,
                   ty_strerror(rc));
      break;
    }
    rc = ty_cuda_exec_scale(t->gpu, data + b->offset, b->floats, 1.0f / (float)t->opts.world_size,
                            err, err_len);
    for (size_t j = 0; rc == 0 && j < b->n_params; j++)
      rc = update_named(t, b->params[j], lr, data + t->param_off[b->params[j]], err, err_len);
  }
  if (rc != 0) ty__train_gpu_drain(t);
  return rc;
}

int ty__train_gpu_update(ty_train *t, float lr, char *err, size_t err_len) {
  if (device_buckets(t)) return update_bucketed(t, lr, err, err_len);
  int rc = 0;
  for (size_t p = 0; rc == 0 && p < t->np; p++)
    rc =
        update_named(t, p, lr, ty_cuda_exec_device_ptr(t->gpu, t->grad_ids[p], false, err, err_len),
                     err, err_len);
  return rc;
}

int ty__train_gpu_sync(ty_train *t, char *err, size_t err_len) {
  if (!t->gpu || !ty__train_gpu_updates(t)) return 0;
  for (size_t p = 0; p < t->np; p++) {
    int rc = ty_cuda_exec_sync_host(t->gpu, t->param_ids[p], err, err_len);
    float *buf[2] = {NULL, NULL};
    uint64_t steps;
    if (rc == 0 && ty_cuda_optim_loaded(t->gpu_optim, p) &&
        (rc = ty_optim_param_state(t->optim, p, buf, &steps)) == 0)
      rc = ty_cuda_optim_store(t->gpu_optim, p, buf, err, err_len);
    if (rc != 0) return rc;
  }
  return 0;
}

const ty_tensor *ty__train_value(ty_train *t, int id) {
  return t->gpu ? ty_cuda_exec_value(t->gpu, id) : ty_exec_value(t->exec, id);
}
#else
bool ty__train_gpu_updates(const ty_train *t) {
  (void)t;
  return false;
}

void ty__train_gpu_drain(ty_train *t) {
  (void)t;
}

int ty__train_gpu_update(ty_train *t, float lr, char *err, size_t err_len) {
  (void)t;
  (void)lr;
  return ty_errf(err, err_len, TY_EUNSUPPORTED, "this build has no GPU executor");
}

int ty__train_gpu_sync(ty_train *t, char *err, size_t err_len) {
  (void)t;
  (void)err;
  (void)err_len;
  return 0;
}

int ty__train_gpu_run(ty_train *t, char *err, size_t err_len) {
  (void)t;
  return ty_errf(err, err_len, TY_EUNSUPPORTED, "this build has no GPU executor");
}

void ty__train_gpu_destroy(ty_train *t) {
  (void)t;
}

const ty_tensor *ty__train_value(ty_train *t, int id) {
  return ty_exec_value(t->exec, id);
}
#endif
