/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/optim: parameter updates on flat float32 arrays, learning-rate
 * schedules, and optimizer state that survives checkpoints.
 *
 * The update rules are torch.optim's (2.x, single-tensor path, maximize=False,
 * amsgrad=False), so a model trained here and one trained in PyTorch with the
 * same hyperparameters follow the same trajectory up to float rounding:
 *
 *   SGD   g = grad + wd * p
 *         b = g                                  (first step)
 *         b = momentum * b + (1 - dampening) * g (later steps)
 *         g = g + momentum * b (nesterov)  or  g = b
 *         p = p - lr * g
 *   Adam  t = t + 1
 *         g = grad + wd * p                      (Adam)
 *         p = p * (1 - lr * wd)                  (AdamW instead)
 *         m = beta1 * m + (1 - beta1) * g
 *         v = beta2 * v + (1 - beta2) * g * g
 *         p = p - (lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * Scalars (bias corrections, step sizes) are computed in double, element
 * updates in float. Each parameter keeps its own step count, as torch does,
 * so parameters can be updated one at a time as their gradients become ready.
 *
 * Thread safety: one ty_optim per training process; calls on distinct
 * parameters may run concurrently, calls on one parameter may not.
 */
#ifndef TY_OPS_OPTIM_OPTIM_H
#define TY_OPS_OPTIM_OPTIM_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/base/base.h"

typedef enum {
  TY_OPTIM_SGD = 1,
  TY_OPTIM_ADAM = 2,
  TY_OPTIM_ADAMW = 3,
} ty_optim_kind;

typedef struct ty_optim_opts {
  ty_optim_kind kind;
  float weight_decay; /* >= 0 */
  /* SGD */
  float momentum;  /* >= 0; 0: no buffer */
  float dampening; /* torch's default 0 */
  bool nesterov;   /* needs momentum > 0 and dampening == 0 */
  /* Adam / AdamW */
  float beta1; /* [0, 1) */
  float beta2; /* [0, 1) */
  float eps;   /* > 0 */
} ty_optim_opts;

/* torch's defaults: SGD without momentum; Adam betas (0.9, 0.999), eps 1e-8;
 * AdamW as Adam plus weight_decay 0.01. */
void ty_optim_opts_default(ty_optim_kind kind, ty_optim_opts *out_opts);

typedef struct ty_optim ty_optim;

/* Creates an optimizer for n_params parameter tensors of numels[i] floats
 * each. Buffers are allocated lazily on the first step of each parameter,
 * zero-filled for Adam, copied from the gradient for SGD momentum (torch).
 * Errors: TY_EINVAL naming the bad option in err (err may be NULL). */
int ty_optim_create(const ty_optim_opts *opts, size_t n_params, const size_t *numels,
                    ty_optim **out_optim, char *err, size_t err_len);
void ty_optim_destroy(ty_optim *o);

size_t ty_optim_num_params(const ty_optim *o);
/* Steps taken by parameter i (Adam's t, SGD's count of updates). */
uint64_t ty_optim_param_steps(const ty_optim *o, size_t i);

/* Updates parameter i in place from its gradient with learning rate lr.
 * param and grad hold numels[i] floats; grad is not modified. */
int ty_optim_step_param(ty_optim *o, size_t i, float lr, float *param, const float *grad);
/* For an external update kernel (ops/fusion's fused updates) that computes
 * exactly what ty_optim_step_param would: allocates parameter i's buffers as
 * a step does and returns them in out_bufs[0..1] (SGD momentum; Adam m, v;
 * NULL where this optimizer keeps none; owned by o) and the steps taken so
 * far. After applying the update, ty_optim_param_advance counts the step,
 * so checkpoints and resume see the same state either way. */
int ty_optim_param_state(ty_optim *o, size_t i, float *out_bufs[2], uint64_t *out_steps);
int ty_optim_param_advance(ty_optim *o, size_t i);
/* Sets parameter i's step count alone: a caller that filled the buffers
 * ty_optim_param_state returned (a plan's checkpoint gathers them there)
 * then gives their steps without a second copy of them. */
int ty_optim_param_set_steps(ty_optim *o, size_t i, uint64_t steps);
/* A parameter's state as it stands, to move it between optimizers of
 * other shapes (a parallel plan's slices and the full tensors of a
 * checkpoint): the steps taken and its buffers (out_bufs NULL where none:
 * before the first step, or an optimizer without them), borrowed and valid
 * until the next call on parameter i. */
int ty_optim_param_peek(const ty_optim *o, size_t i, const float *out_bufs[2], uint64_t *out_steps);
/* Sets parameter i's state: `steps` taken and, when steps > 0 and the
 * optimizer keeps buffers, the contents of each (numels[i] floats, copied;
 * bufs[b] may not be NULL then). steps == 0 clears it. */
int ty_optim_param_restore(ty_optim *o, size_t i, uint64_t steps, const float *const bufs[2]);
/* The options o was created with. */
const ty_optim_opts *ty_optim_get_opts(const ty_optim *o);
/* Updates every parameter: params[i], grads[i] for i < n_params. */
int ty_optim_step(ty_optim *o, float lr, float *const *params, const float *const *grads);

/* ---- the update rules, written once ------------------------------------------
 * The element update of each optimizer is the body of a loop over k, kept
 * here as a macro: ops/optim expands it into C, ops/fusion stringifies it
 * (TY_OPTIM_SRC) into the source its JIT compiles. Both therefore compute
 * the same operations in the same order, bit for bit. A rule reads:
 *   SGD   p, g, buf (arrays), k; lr, wd, mom, damp (float); has_wd,
 *         has_mom, first, nesterov (flags: constants in the JIT, so its
 *         compiler drops the dead terms)
 *   Adam  p, g, m, v, k; step_size, bc2_sqrt, decay, wd, b2, w1, w2, eps;
 *         adamw, has_wd (flags)
 * with the scalars from ty_optim_sgd_scalars / ty_optim_adam_scalars. */
#define TY_OPTIM_SGD_RULE                                                                          \
  {                                                                                                \
    float d = g[k];                                                                                \
    if (has_wd) d = d + wd * p[k];                                                                 \
    if (has_mom) {                                                                                 \
      buf[k] = first ? d : buf[k] * mom + damp * d;                                                \
      d = nesterov ? d + mom * buf[k] : buf[k];                                                    \
    }                                                                                              \
    p[k] = p[k] + (-lr) * d;                                                                       \
  }
#define TY_OPTIM_ADAM_RULE                                                                         \
  {                                                                                                \
    float gk = g[k];                                                                               \
    if (adamw)                                                                                     \
      p[k] = p[k] * decay;                                                                         \
    else if (has_wd)                                                                               \
      gk = gk + wd * p[k];                                                                         \
    m[k] = ty_optim_lerpf(m[k], gk, w1);                                                           \
    v[k] = v[k] * b2 + w2 * (gk * gk);                                                             \
    float denom = sqrtf(v[k]) / bc2_sqrt + eps;                                                    \
    p[k] = p[k] + (-step_size) * (m[k] / denom);                                                   \
  }
/* torch.lerp's CPU formula, which switches form at weight 0.5 (Adam's m). */
#define TY_OPTIM_LERPF_DEF                                                                         \
  static inline float ty_optim_lerpf(float self, float end, float w) {                             \
    return fabsf(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);            \
  }
/* The text of a rule after macro expansion, for generated source. */
#define TY_OPTIM_SRC_(...) #__VA_ARGS__
#define TY_OPTIM_SRC(rule) TY_OPTIM_SRC_(rule)

/* SGD's scalars: lr, wd, mom, damp = 1 - dampening (in double, as torch). */
static inline void ty_optim_sgd_scalars(float lr, float wd, float momentum, float dampening,
                                        float out[4]) {
  out[0] = lr;
  out[1] = wd;
  out[2] = momentum;
  out[3] = (float)(1.0 - (double)dampening);
}
/* Adam's scalars for 1-based step t, derived in double as torch does:
 * step_size, bc2_sqrt, decay, wd, b2, w1, w2, eps. */
static inline void ty_optim_adam_scalars(float lr, float wd, float beta1, float beta2, float eps,
                                         uint64_t step, float out[8]) {
  const double t = (double)step;
  const double bc1 = 1.0 - pow((double)beta1, t), bc2 = 1.0 - pow((double)beta2, t);
  out[0] = (float)((double)lr / bc1);
  out[1] = (float)sqrt(bc2);
  out[2] = (float)(1.0 - (double)lr * (double)wd);
  out[3] = wd;
  out[4] = beta2;
  out[5] = (float)(1.0 - (double)beta1);
  out[6] = (float)(1.0 - (double)beta2);
  out[7] = eps;
}

/* ---- state ------------------------------------------------------------------
 * Serialised state, all integers and floats little-endian:
 *
 *   offset  size  field
 *   0       4     magic "TYOS"
 *   4       4     u32 format version (1)
 *   8       4     u32 kind (ty_optim_kind)
 *   12      4     u32 n_params
 *   then per parameter:
 *           8     u64 numel
 *           8     u64 steps taken
 *           4     u32 number of buffers present: 0 (no step yet, or SGD
 *                 without momentum), 1 (SGD momentum) or 2 (Adam m, v)
 *           4*numel per buffer, float32 bit patterns
 *   last    4     u32 CRC-32 (zlib's) of every byte before it
 *
 * Hyperparameters are not stored: they come from the training config, so a
 * resumed job may change, say, the learning rate. Loading checks the kind and
 * every numel against the optimizer it is loaded into.
 */
/* Appends the state to out (which the caller owns). */
int ty_optim_state_save(const ty_optim *o, ty_buf *out);
/* Receives the state's bytes in order, a piece at a time (pieces are
 * borrowed for the call); a nonzero return stops the write with it. */
typedef int (*ty_optim_emit)(const void *data, size_t len, void *user);
/* The same bytes as ty_optim_state_save, handed to emit as they are made
 * (each buffer straight from the optimizer): a checkpoint writes them to
 * its file without holding the encoding. */
int ty_optim_state_write(const ty_optim *o, ty_optim_emit emit, void *user);
/* The same bytes written a piece at a time from buffers the caller holds
 * in turn (a plan's rank 0 gathers one parameter's buffer at a time):
 * begin, then per parameter its head and each of its nbuf buffers' numel
 * floats, then end (the CRC). The writer's fields are the codec's. */
typedef struct ty_optim_writer {
  ty_optim_emit emit;
  void *user;
  unsigned long crc;
} ty_optim_writer;
int ty_optim_write_begin(ty_optim_writer *w, ty_optim_kind kind, uint32_t n_params,
                         ty_optim_emit emit, void *user);
int ty_optim_write_param(ty_optim_writer *w, uint64_t numel, uint64_t steps, uint32_t nbuf);
int ty_optim_write_floats(ty_optim_writer *w, const float *f, size_t n);
int ty_optim_write_end(ty_optim_writer *w);
/* The bytes of a state's fixed part (header and CRC) and of one
 * parameter's record: a state's size without holding its buffers. */
#define TY_OPTIM_STATE_FIXED 20u
size_t ty_optim_state_param_size(uint64_t numel, uint32_t nbuf);
/* The number of bytes ty_optim_state_save appends for o as it is now: a
 * caller reserves them once, so a large state is never copied by the
 * buffer growing under it. */
size_t ty_optim_state_size(const ty_optim *o);
/* Replaces o's state with the serialised one, bit-identically. On error o is
 * unchanged. Errors: TY_EPROTO (bad magic, CRC, truncated, wrong buffer
 * count), TY_EVERSION, TY_EINVAL (kind or shapes differ from o), with a line
 * in err naming the field. */
int ty_optim_state_load(ty_optim *o, const uint8_t *data, size_t len, char *err, size_t err_len);
/* The same, for an optimizer of slices of the parameters the state was
 * saved for (a plan's rank resuming): parameter i has full_numel[i]
 * elements in data, and slice copies o's part of each of its buffers
 * (`full`, full_numel[i] little-endian floats, not aligned: data may be a
 * mapped file) into `local` (o's numel of parameter i): 0, or an error
 * that stops the load. Nothing whole is allocated, so a rank resumes
 * within the memory of its slices. */
typedef int (*ty_optim_slice)(size_t i, const void *full, float *local, void *user);
int ty_optim_state_load_sliced(ty_optim *o, const uint8_t *data, size_t len,
                               const uint64_t *full_numel, ty_optim_slice slice, void *user,
                               char *err, size_t err_len);

/* ---- learning-rate schedules ----------------------------------------------- */
typedef enum {
  TY_LR_CONSTANT = 0,
  TY_LR_STEP = 1,   /* base * gamma^floor(t / step_size) */
  TY_LR_COSINE = 2, /* min + (base - min) * (1 + cos(pi * t / total)) / 2 */
} ty_lr_kind;

typedef struct ty_lr_schedule {
  ty_lr_kind kind;
  double base_lr;
  uint64_t step_size;   /* STEP: > 0 */
  double gamma;         /* STEP */
  uint64_t total_steps; /* COSINE: > 0; past it the rate stays at min_lr */
  double min_lr;        /* COSINE */
  /* Linear warm-up: t < warmup_steps gives base * (t + 1) / warmup_steps,
   * then the schedule runs at t - warmup_steps (torch's SequentialLR of
   * LinearLR(1/W, 1, W-1) and the schedule). 0: none. */
  uint64_t warmup_steps;
} ty_lr_schedule;

/* TY_EINVAL naming the bad field in err. */
int ty_lr_check(const ty_lr_schedule *s, char *err, size_t err_len);
/* The learning rate for optimizer step t (counted from 0). */
double ty_lr_at(const ty_lr_schedule *s, uint64_t step);

#endif
