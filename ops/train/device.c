/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Which executor a training step runs on. A DEVICE_GPU job's training
 * graph runs on ops/cuda's GPU executor (ops/cuda/exec.h) when this build
 * has it (cuBLAS found) and a CUDA device is visible; otherwise on the CPU
 * executor, and the log says which and why, once. A parallel plan's rank
 * stays on the CPU executor: its TyExtern collectives have no GPU path.
 *
 * The GPU executor keeps activations and gradients on the device for the
 * step; the weights are uploaded from the trainer's host tensors at the
 * start of each step and the gradients the optimizer reads come back to
 * the host (ty__train_value), so checkpoints, evaluation and the
 * all-reduce hooks see the same host tensors as on the CPU.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#ifdef TY_HAVE_CUDA_EXEC
#include "ops/cuda/cuda.h"
#include "ops/cuda/exec.h"
#endif

#include <stdlib.h>

/* Why this job does not run on the GPU, or NULL when it does. */
static const char *cpu_reason(const ty_train *t) {
  if (t->shard) return "a parallel plan's rank runs its TyExtern collectives on the CPU executor";
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
    rc = ty_cuda_exec_bind_id(t->gpu, t->param_ids[i], t->params[i], err, err_len);
  for (size_t i = 0; rc == 0 && i < t->n_bn; i++)
    for (int k = 0; rc == 0 && k < 2; k++)
      rc = ty_cuda_exec_bind_id(t->gpu, t->bn[i].ids[k], t->bn[i].stat[k], err, err_len);
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++)
    rc = ty_cuda_exec_bind_id(t->gpu, t->feeds[k].id, t->feeds[k].t, err, err_len);
  return rc;
}

static int make_gpu(ty_train *t, char *err, size_t err_len) {
  int *keep = NULL;
  size_t n_keep = 0;
  int rc = keep_list(t, &keep, &n_keep);
  if (rc != 0) return ty_errf(err, err_len, rc, "GPU executor: %s", ty_strerror(rc));
  ty_cuda_exec_opts o = {.training = true,
                         .seed = ty_mix2(t->cfg->seed, t->step),
                         .keep_values = keep,
                         .n_keep_values = n_keep,
                         .workers = t->opts.workers};
  rc = ty_cuda_exec_create(t->g, &o, &t->gpu, err, err_len);
  free(keep);
  if (rc == 0) rc = bind_all(t, err, err_len);
  if (rc != 0) return rc;
  char sum[1024];
  if (ty_cuda_plan_summary(ty_cuda_exec_get_plan(t->gpu), t->g, sum, sizeof sum) == 0)
    fprintf(ty__train_log(t), "GPU executor: %s\n", sum);
  return 0;
}

int ty__train_gpu_run(ty_train *t, char *err, size_t err_len) {
  int rc = t->gpu ? 0 : make_gpu(t, err, err_len);
  if (rc != 0) return rc;
  if (t->exec_per_step) ty_cuda_exec_set_seed(t->gpu, ty_mix2(t->cfg->seed, t->step));
  return ty_cuda_exec_run(t->gpu, err, err_len);
}

void ty__train_gpu_destroy(ty_train *t) {
  ty_cuda_exec_destroy(t->gpu);
  t->gpu = NULL;
}

const ty_tensor *ty__train_value(ty_train *t, int id) {
  return t->gpu ? ty_cuda_exec_value(t->gpu, id) : ty_exec_value(t->exec, id);
}
#else
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
