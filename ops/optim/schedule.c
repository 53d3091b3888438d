/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Learning-rate schedules as closed forms of the step number, so a resumed
 * run needs only its step count to continue the schedule — no scheduler
 * state goes into checkpoints.
 */
#include <math.h>

#include "ops/optim/optim.h"
#include "ops/optim/optim_internal.h"

int ty_lr_check(const ty_lr_schedule *s, char *err, size_t err_len) {
  if (s == NULL) return TY_EINVAL;
  if (!(s->base_lr > 0.0) || !isfinite(s->base_lr))
    return ty_errf(err, err_len, TY_EINVAL, "lr: %g must be a finite number > 0", s->base_lr);
  switch (s->kind) {
  case TY_LR_CONSTANT:
    return 0;
  case TY_LR_STEP:
    if (s->step_size == 0)
      return ty_errf(err, err_len, TY_EINVAL, "lr_schedule.step.step_size: must be > 0");
    if (!(s->gamma > 0.0 && s->gamma <= 1.0))
      return ty_errf(err, err_len, TY_EINVAL, "lr_schedule.step.gamma: %g must be in (0, 1]",
                     s->gamma);
    return 0;
  case TY_LR_COSINE:
    if (s->total_steps == 0)
      return ty_errf(err, err_len, TY_EINVAL, "lr_schedule.cosine.total_steps: must be > 0");
    if (!(s->min_lr >= 0.0 && s->min_lr <= s->base_lr))
      return ty_errf(err, err_len, TY_EINVAL, "lr_schedule.cosine.min_lr: %g must be in [0, lr]",
                     s->min_lr);
    return 0;
  }
  return ty_errf(err, err_len, TY_EINVAL, "lr_schedule: unknown kind %d", (int)s->kind);
}

static double after_warmup(const ty_lr_schedule *s, uint64_t t) {
  switch (s->kind) {
  case TY_LR_STEP:
    return s->base_lr * pow(s->gamma, (double)(t / s->step_size));
  case TY_LR_COSINE: {
    if (t >= s->total_steps) return s->min_lr;
    double c = cos(M_PI * (double)t / (double)s->total_steps);
    return s->min_lr + (s->base_lr - s->min_lr) * (1.0 + c) / 2.0;
  }
  case TY_LR_CONSTANT:
  default:
    return s->base_lr;
  }
}

double ty_lr_at(const ty_lr_schedule *s, uint64_t step) {
  if (step < s->warmup_steps)
    return after_warmup(s, 0) * (double)(step + 1) / (double)s->warmup_steps;
  return after_warmup(s, step - s->warmup_steps);
}
