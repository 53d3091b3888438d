/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SGD, Adam and AdamW on flat float32 arrays, written to mirror torch.optim's
 * single-tensor code path operation by operation (including torch's lerp for
 * the first moment), so rounding follows PyTorch's as closely as plain C can.
 *
 * The loops are simple enough for gcc to vectorise at -O2; the optimizer is a
 * memory-bound pass over parameters, gradients and one or two buffers.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/optim/optim.h"
#include "ops/optim/optim_internal.h"

void ty_optim_opts_default(ty_optim_kind kind, ty_optim_opts *out_opts) {
  memset(out_opts, 0, sizeof *out_opts);
  out_opts->kind = kind;
  out_opts->beta1 = 0.9f;
  out_opts->beta2 = 0.999f;
  out_opts->eps = 1e-8f;
  if (kind == TY_OPTIM_ADAMW) out_opts->weight_decay = 0.01f;
}

static int check_opts(const ty_optim_opts *o, char *err, size_t err_len) {
  if (o->kind != TY_OPTIM_SGD && o->kind != TY_OPTIM_ADAM && o->kind != TY_OPTIM_ADAMW)
    return ty_errf(err, err_len, TY_EINVAL, "optimizer: unknown kind %d", (int)o->kind);
  if (!(o->weight_decay >= 0.0f))
    return ty_errf(err, err_len, TY_EINVAL, "weight_decay: %g must be >= 0",
                   (double)o->weight_decay);
  if (o->kind == TY_OPTIM_SGD) {
    if (!(o->momentum >= 0.0f))
      return ty_errf(err, err_len, TY_EINVAL, "momentum: %g must be >= 0", (double)o->momentum);
    if (o->nesterov && (o->momentum <= 0.0f || o->dampening != 0.0f))
      return ty_errf(err, err_len, TY_EINVAL, "nesterov: requires momentum > 0 and zero dampening");
    return 0;
  }
  if (!(o->beta1 >= 0.0f && o->beta1 < 1.0f))
    return ty_errf(err, err_len, TY_EINVAL, "beta1: %g must be in [0, 1)", (double)o->beta1);
  if (!(o->beta2 >= 0.0f && o->beta2 < 1.0f))
    return ty_errf(err, err_len, TY_EINVAL, "beta2: %g must be in [0, 1)", (double)o->beta2);
  if (!(o->eps > 0.0f))
    return ty_errf(err, err_len, TY_EINVAL, "eps: %g must be > 0", (double)o->eps);
  return 0;
}

int ty_optim_create(const ty_optim_opts *opts, size_t n_params, const size_t *numels,
                    ty_optim **out_optim, char *err, size_t err_len) {
  if (opts == NULL || out_optim == NULL || (n_params > 0 && numels == NULL)) return TY_EINVAL;
  *out_optim = NULL;
  int rc = check_opts(opts, err, err_len);
  if (rc != 0) return rc;
  ty_optim *o = calloc(1, sizeof *o);
  if (o == NULL) return TY_ENOMEM;
  o->opts = *opts;
  o->n = n_params;
  o->params = calloc(n_params ? n_params : 1, sizeof *o->params);
  if (o->params == NULL) {
    free(o);
    return TY_ENOMEM;
  }
  for (size_t i = 0; i < n_params; i++)
    o->params[i].numel = numels[i];
  *out_optim = o;
  return 0;
}

void ty__optim_param_clear(ty__optim_param *p) {
  free(p->buf[0]);
  free(p->buf[1]);
  p->buf[0] = p->buf[1] = NULL;
  p->nbuf = 0;
  p->steps = 0;
}

void ty_optim_destroy(ty_optim *o) {
  if (o == NULL) return;
  for (size_t i = 0; i < o->n; i++)
    ty__optim_param_clear(&o->params[i]);
  free(o->params);
  free(o);
}

size_t ty_optim_num_params(const ty_optim *o) {
  return o->n;
}

uint64_t ty_optim_param_steps(const ty_optim *o, size_t i) {
  return i < o->n ? o->params[i].steps : 0;
}

uint32_t ty__optim_nbuf(const ty_optim_opts *o) {
  if (o->kind == TY_OPTIM_SGD) return o->momentum != 0.0f ? 1 : 0;
  return 2;
}

static void sgd_step(const ty_optim_opts *o, ty__optim_param *st, float lr, float *p,
                     const float *g) {
  float h[4];
  ty_optim_sgd_scalars(lr, o->weight_decay, o->momentum, o->dampening, h);
  const float wd = h[1], mom = h[2], damp = h[3];
  const bool has_wd = wd != 0.0f, has_mom = mom != 0.0f, first = st->steps == 0,
             nesterov = o->nesterov;
  float *buf = st->buf[0];
  for (size_t k = 0; k < st->numel; k++)
    TY_OPTIM_SGD_RULE
}

TY_OPTIM_LERPF_DEF

static void adam_step(const ty_optim_opts *o, ty__optim_param *st, float lr, float *p,
                      const float *g) {
  float h[8];
  ty_optim_adam_scalars(lr, o->weight_decay, o->beta1, o->beta2, o->eps, st->steps + 1, h);
  const float step_size = h[0], bc2_sqrt = h[1], decay = h[2], wd = h[3], b2 = h[4], w1 = h[5],
              w2 = h[6], eps = h[7];
  const bool adamw = o->kind == TY_OPTIM_ADAMW, has_wd = wd != 0.0f;
  float *m = st->buf[0], *v = st->buf[1];
  for (size_t k = 0; k < st->numel; k++)
    TY_OPTIM_ADAM_RULE
}

/* Allocates the buffers on a parameter's first step. */
static int ensure_buffers(const ty_optim *o, ty__optim_param *st) {
  uint32_t want = ty__optim_nbuf(&o->opts);
  for (uint32_t b = st->nbuf; b < want; b++) {
    st->buf[b] = calloc(st->numel ? st->numel : 1, sizeof(float));
    if (st->buf[b] == NULL) return TY_ENOMEM;
    st->nbuf = b + 1;
  }
  return 0;
}

int ty_optim_step_param(ty_optim *o, size_t i, float lr, float *param, const float *grad) {
  if (o == NULL || i >= o->n || param == NULL || grad == NULL) return TY_EINVAL;
  ty__optim_param *st = &o->params[i];
  int rc = ensure_buffers(o, st);
  if (rc != 0) return rc;
  if (o->opts.kind == TY_OPTIM_SGD)
    sgd_step(&o->opts, st, lr, param, grad);
  else
    adam_step(&o->opts, st, lr, param, grad);
  st->steps++;
  return 0;
}

int ty_optim_param_state(ty_optim *o, size_t i, float *out_bufs[2], uint64_t *out_steps) {
  if (o == NULL || i >= o->n || out_bufs == NULL || out_steps == NULL) return TY_EINVAL;
  ty__optim_param *st = &o->params[i];
  int rc = ensure_buffers(o, st);
  if (rc != 0) return rc;
  out_bufs[0] = st->buf[0];
  out_bufs[1] = st->buf[1];
  *out_steps = st->steps;
  return 0;
}

int ty_optim_param_advance(ty_optim *o, size_t i) {
  if (o == NULL || i >= o->n) return TY_EINVAL;
  o->params[i].steps++;
  return 0;
}

int ty_optim_param_set_steps(ty_optim *o, size_t i, uint64_t steps) {
  if (o == NULL || i >= o->n) return TY_EINVAL;
  o->params[i].steps = steps;
  return 0;
}

int ty_optim_param_peek(const ty_optim *o, size_t i, const float *out_bufs[2],
                        uint64_t *out_steps) {
  if (o == NULL || i >= o->n || out_bufs == NULL || out_steps == NULL) return TY_EINVAL;
  const ty__optim_param *st = &o->params[i];
  out_bufs[0] = st->nbuf > 0 ? st->buf[0] : NULL;
  out_bufs[1] = st->nbuf > 1 ? st->buf[1] : NULL;
  *out_steps = st->steps;
  return 0;
}

int ty_optim_param_restore(ty_optim *o, size_t i, uint64_t steps, const float *const bufs[2]) {
  if (o == NULL || i >= o->n) return TY_EINVAL;
  ty__optim_param *st = &o->params[i];
  ty__optim_param_clear(st);
  if (steps == 0) return 0;
  uint32_t want = ty__optim_nbuf(&o->opts);
  for (uint32_t b = 0; b < want; b++)
    if (bufs == NULL || bufs[b] == NULL) return TY_EINVAL;
  int rc = ensure_buffers(o, st);
  for (uint32_t b = 0; rc == 0 && b < st->nbuf; b++)
    memcpy(st->buf[b], bufs[b], st->numel * sizeof(float));
  if (rc == 0) st->steps = steps;
  return rc;
}

const ty_optim_opts *ty_optim_get_opts(const ty_optim *o) {
  return &o->opts;
}

int ty_optim_step(ty_optim *o, float lr, float *const *params, const float *const *grads) {
  if (o == NULL || (o->n > 0 && (params == NULL || grads == NULL))) return TY_EINVAL;
  for (size_t i = 0; i < o->n; i++) {
    int rc = ty_optim_step_param(o, i, lr, params[i], grads[i]);
    if (rc != 0) return rc;
  }
  return 0;
}
