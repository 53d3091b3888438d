/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gradient clipping (config.max_grad_norm, as torch.nn.utils.clip_grad_norm_):
 * the refusals and scratch at setup, and the factor each step's update is
 * scaled by. train.c applies it (apply_clipped).
 */
#include "ops/train/train_internal.h"

#include <math.h>
#include <stdlib.h>

/* The first parameter a plan's rank holds only a slice of (its numel
 * below the model's), or NULL when the rank holds every one whole. */
static const char *split_param(const ty_train *t) {
  for (size_t p = 0; p < t->np; p++) {
    const char *name = ty_train_param_name(t, p);
    int id = ty_graph_find_value(t->model, name);
    const ty_graph_value *v = id == TY_NO_VALUE ? NULL : ty_graph_value_at(t->model, id);
    if (!v || !v->init || ty_tensor_numel(v->init) != ty_tensor_numel(t->params[p])) return name;
  }
  return NULL;
}

/* The scratch a clipped gradient goes through, and the refusals: the norm
 * needs every gradient whole on every rank, which a pipeline's stage (part
 * of the parameters) and a plan that splits a parameter (a slice of it)
 * do not have, and the GPU executor updates on the device. A plan whose
 * ranks hold every parameter whole (data parallel, one device) clips. */
int ty__train_clip_setup(ty_train *t, char *err, size_t err_len) {
  if (t->cfg->max_grad_norm == 0) return 0;
  if (t->pipe)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.max_grad_norm: gradient clipping is not supported with pipeline stages "
                   "yet (set config.pipeline_stages to 1, or max_grad_norm to 0)");
  const char *split = ty__train_planned(t) ? split_param(t) : NULL;
  if (split)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.max_grad_norm: gradient clipping is not supported yet when the plan "
                   "splits a parameter over the ranks (it splits \"%s\"): run with parallelism "
                   "data, or set max_grad_norm to 0",
                   split);
  if (t->cfg->gpu)
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.max_grad_norm: gradient clipping is not supported with DEVICE_GPU yet "
                   "(set it to 0 or train on DEVICE_CPU)");
  size_t most = 1;
  for (size_t p = 0; p < t->np; p++)
    if ((size_t)ty_tensor_numel(t->params[p]) > most) most = (size_t)ty_tensor_numel(t->params[p]);
  t->clip_buf = malloc(most * sizeof *t->clip_buf);
  if (!t->clip_buf) return TY_ENOMEM;
  fprintf(ty__train_log(t), "gradient clipping: global L2 norm to %g (clip_grad_norm_)\n",
          (double)t->cfg->max_grad_norm);
  return 0;
}

/* torch.nn.utils.clip_grad_norm_'s factor: max / (total + 1e-6), at most 1,
 * over every trained parameter's final gradient. NaN when a gradient is
 * not finite, as torch's (the update then spreads it, as torch's does). */
int ty__train_clip_scale(ty_train *t, float *out, char *err, size_t err_len) {
  double sq = 0;
  for (size_t p = 0; p < t->np; p++) {
    const float *g = ty__train_final_grad(t, p);
    if (!g)
      return ty_errf(err, err_len, TY_EINTERNAL, "gradient of parameter %zu was not computed", p);
    size_t n = (size_t)ty_tensor_numel(t->params[p]);
    for (size_t i = 0; i < n; i++)
      sq += (double)g[i] * g[i];
  }
  t->grad_norm = sqrt(sq);
  double coef = (double)t->cfg->max_grad_norm / (t->grad_norm + 1e-6);
  *out = coef < 1.0 || isnan(coef) ? (float)coef : 1.0f;
  return 0;
}
