/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/optim. Expected values come from the torch.optim
 * formulas evaluated in float64 with numpy (three steps on a 3-element
 * parameter, gradients fixed below), so they check the update rules, not
 * this implementation against itself. Tolerance 2e-6 covers float32.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>
#include <zlib.h>

#include "lib/base/base.h"
#include "ops/optim/optim.h"

static const float P0[3] = {1.0f, -2.0f, 0.5f};
static const float G[3][3] = {{0.1f, 0.2f, -0.3f}, {-0.05f, 0.4f, 0.1f}, {0.3f, -0.1f, 0.2f}};

static void run3(const ty_optim_opts *opts, float lr, float out[3]) {
  size_t numel = 3;
  ty_optim *o = NULL;
  char err[256] = "";
  cr_assert_eq(ty_optim_create(opts, 1, &numel, &o, err, sizeof err), 0, "%s", err);
  memcpy(out, P0, sizeof P0);
  for (int s = 0; s < 3; s++) {
    float *params[] = {out};
    const float *grads[] = {G[s]};
    cr_assert_eq(ty_optim_step(o, lr, params, grads), 0);
  }
  cr_assert_eq(ty_optim_param_steps(o, 0), 3u);
  ty_optim_destroy(o);
}

static void expect3(const float got[3], double a, double b, double c) {
  const double want[3] = {a, b, c};
  for (int i = 0; i < 3; i++)
    cr_assert_float_eq(got[i], want[i], 2e-6, "p[%d] = %.9g, want %.9g", i, (double)got[i],
                       want[i]);
}

static ty_optim_opts sgd(float momentum, float wd, bool nesterov, float dampening) {
  ty_optim_opts o;
  ty_optim_opts_default(TY_OPTIM_SGD, &o);
  o.momentum = momentum;
  o.weight_decay = wd;
  o.nesterov = nesterov;
  o.dampening = dampening;
  return o;
}

static ty_optim_opts adam(ty_optim_kind kind, float b1, float b2, float eps, float wd) {
  ty_optim_opts o;
  ty_optim_opts_default(kind, &o);
  o.beta1 = b1;
  o.beta2 = b2;
  o.eps = eps;
  o.weight_decay = wd;
  return o;
}

Test(sgd, plain) {
  /* By hand: p - lr * (g1 + g2 + g3) = 1 - 0.1 * 0.35 = 0.965, ... */
  float p[3];
  ty_optim_opts o = sgd(0, 0, false, 0);
  run3(&o, 0.1f, p);
  expect3(p, 0.965, -2.05, 0.5);
}

Test(sgd, momentum) {
  float p[3];
  ty_optim_opts o = sgd(0.9f, 0, false, 0);
  run3(&o, 0.1f, p);
  expect3(p, 0.9524, -2.1202, 0.5423);
}

Test(sgd, momentum_weight_decay) {
  float p[3];
  ty_optim_opts o = sgd(0.9f, 0.01f, false, 0);
  run3(&o, 0.1f, p);
  expect3(p, 0.946827789, -2.108873618, 0.5393934295);
}

Test(sgd, nesterov_weight_decay) {
  float p[3];
  ty_optim_opts o = sgd(0.9f, 0.01f, true, 0);
  run3(&o, 0.1f, p);
  expect3(p, 0.914209762551, -2.141759579462, 0.5337798163405);
}

Test(sgd, dampening_skips_the_first_step) {
  /* torch copies the gradient into the buffer on step 1, undamped. */
  float p[3];
  ty_optim_opts o = sgd(0.9f, 0, false, 0.1f);
  run3(&o, 0.1f, p);
  expect3(p, 0.95445, -2.1136, 0.5462);
}

Test(adam, defaults) {
  float p[3];
  ty_optim_opts o = adam(TY_OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0);
  run3(&o, 0.01f, p);
  expect3(p, 0.980631625651246, -2.025537886557849, 0.5131992088959904);
}

Test(adam, l2_weight_decay) {
  float p[3];
  ty_optim_opts o = adam(TY_OPTIM_ADAM, 0.9f, 0.999f, 1e-8f, 0.01f);
  run3(&o, 0.01f, p);
  expect3(p, 0.9792559047906712, -2.0249656878564317, 0.5127753263382662);
}

Test(adam, adamw_decoupled_decay) {
  float p[3];
  ty_optim_opts o = adam(TY_OPTIM_ADAMW, 0.9f, 0.999f, 1e-8f, 0.1f);
  run3(&o, 0.01f, p);
  expect3(p, 0.9776572780193066, -2.0195142427388952, 0.5116767162111162);
}

Test(adam, other_betas_and_eps) {
  float p[3];
  ty_optim_opts o = adam(TY_OPTIM_ADAM, 0.8f, 0.99f, 1e-3f, 0);
  run3(&o, 0.001f, p);
  expect3(p, 0.998089667834807, -2.00251169736608, 0.5011771784872441);
}

Test(adam, first_step_moves_by_lr) {
  /* Bias correction makes step 1 exactly -lr * sign(g) (up to eps). */
  size_t numel = 3;
  ty_optim *o = NULL;
  ty_optim_opts opts;
  ty_optim_opts_default(TY_OPTIM_ADAM, &opts);
  cr_assert_eq(ty_optim_create(&opts, 1, &numel, &o, NULL, 0), 0);
  float p[3] = {0, 0, 0};
  cr_assert_eq(ty_optim_step_param(o, 0, 0.5f, p, G[0]), 0);
  expect3(p, -0.5, -0.5, 0.5);
  ty_optim_destroy(o);
}

Test(optim, rejects_bad_options) {
  struct {
    ty_optim_opts o;
    const char *msg;
  } bad[] = {
      {sgd(0, 0, true, 0), "nesterov: requires momentum > 0 and zero dampening"},
      {sgd(0.9f, 0, true, 0.1f), "nesterov: requires momentum > 0 and zero dampening"},
      {sgd(-0.5f, 0, false, 0), "momentum: -0.5 must be >= 0"},
      {sgd(0, -1, false, 0), "weight_decay: -1 must be >= 0"},
      {adam(TY_OPTIM_ADAM, 1.0f, 0.999f, 1e-8f, 0), "beta1: 1 must be in [0, 1)"},
      {adam(TY_OPTIM_ADAM, 0.9f, -0.1f, 1e-8f, 0), "beta2: -0.1 must be in [0, 1)"},
      {adam(TY_OPTIM_ADAMW, 0.9f, 0.999f, 0, 0), "eps: 0 must be > 0"},
      {adam((ty_optim_kind)9, 0.9f, 0.999f, 1e-8f, 0), "optimizer: unknown kind 9"},
  };
  size_t numel = 4;
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    ty_optim *o = NULL;
    char err[256] = "";
    cr_assert_eq(ty_optim_create(&bad[i].o, 1, &numel, &o, err, sizeof err), TY_EINVAL);
    cr_assert_str_eq(err, bad[i].msg);
    cr_assert_null(o);
  }
  ty_optim_opts ok;
  ty_optim_opts_default(TY_OPTIM_SGD, &ok);
  ty_optim *o = NULL;
  cr_assert_eq(ty_optim_create(&ok, 1, &numel, &o, NULL, 0), 0);
  float p[4] = {0}, g[4] = {0};
  cr_assert_eq(ty_optim_step_param(o, 1, 0.1f, p, g), TY_EINVAL); /* no parameter 1 */
  ty_optim_destroy(o);
  ty_optim_destroy(NULL);
}

/* ---- state round trip ------------------------------------------------------ */
enum { NA = 5, NB = 3 };

/* Two parameters, gradients derived from the step number. */
static void step_model(ty_optim *o, float *a, float *b, int s) {
  float ga[NA], gb[NB];
  for (int i = 0; i < NA; i++)
    ga[i] = sinf((float)(s * 7 + i));
  for (int i = 0; i < NB; i++)
    gb[i] = cosf((float)(s * 3 + i)) * 0.1f;
  float *params[] = {a, b};
  const float *grads[] = {ga, gb};
  cr_assert_eq(ty_optim_step(o, 0.05f, params, grads), 0);
}

static void round_trip(ty_optim_kind kind, float momentum) {
  const size_t numels[] = {NA, NB};
  ty_optim_opts opts;
  ty_optim_opts_default(kind, &opts);
  opts.momentum = momentum;
  ty_optim *x = NULL, *y = NULL;
  cr_assert_eq(ty_optim_create(&opts, 2, numels, &x, NULL, 0), 0);
  cr_assert_eq(ty_optim_create(&opts, 2, numels, &y, NULL, 0), 0);
  float a[NA] = {1, 2, 3, 4, 5}, b[NB] = {-1, 0, 1};
  for (int s = 0; s < 4; s++)
    step_model(x, a, b, s);
  ty_buf state;
  ty_buf_init(&state);
  cr_assert_eq(ty_optim_state_save(x, &state), 0);
  cr_assert_eq(ty_optim_state_size(x), state.len);
  char err[256] = "";
  cr_assert_eq(ty_optim_state_load(y, state.data, state.len, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_optim_param_steps(y, 1), 4u);
  float a2[NA], b2[NB];
  memcpy(a2, a, sizeof a);
  memcpy(b2, b, sizeof b);
  for (int s = 4; s < 7; s++) {
    step_model(x, a, b, s);
    step_model(y, a2, b2, s);
  }
  cr_assert_eq(memcmp(a, a2, sizeof a), 0, "resumed run diverged");
  cr_assert_eq(memcmp(b, b2, sizeof b), 0, "resumed run diverged");
  ty_buf again;
  ty_buf_init(&again);
  cr_assert_eq(ty_optim_state_save(y, &again), 0);
  ty_buf_close(&state);
  cr_assert_eq(ty_optim_state_save(x, &state), 0);
  cr_assert_eq(state.len, again.len);
  cr_assert_eq(memcmp(state.data, again.data, state.len), 0);
  ty_buf_close(&state);
  ty_buf_close(&again);
  ty_optim_destroy(x);
  ty_optim_destroy(y);
}

Test(state, round_trip_sgd_momentum) {
  round_trip(TY_OPTIM_SGD, 0.9f);
}
Test(state, round_trip_sgd_plain) {
  round_trip(TY_OPTIM_SGD, 0);
}
Test(state, round_trip_adam) {
  round_trip(TY_OPTIM_ADAM, 0);
}
Test(state, round_trip_adamw) {
  round_trip(TY_OPTIM_ADAMW, 0);
}

static int append_piece(const void *data, size_t n, void *user) {
  return ty_buf_append(user, data, n);
}

/* Fails on the third piece, as a full disk would. */
static int fail_third(const void *data, size_t n, void *user) {
  (void)data, (void)n;
  return ++*(int *)user == 3 ? -28 /* ENOSPC */ : 0;
}

/* A checkpoint streams the state to its file: the same bytes as the
 * buffer's encoding, and a write error stops it with that error. */
Test(state, streamed_is_the_saved_bytes) {
  const size_t numels[] = {NA, NB};
  ty_optim_opts opts;
  ty_optim_opts_default(TY_OPTIM_ADAM, &opts);
  ty_optim *o = NULL;
  cr_assert_eq(ty_optim_create(&opts, 2, numels, &o, NULL, 0), 0);
  float a[NA] = {1, 2, 3, 4, 5}, b[NB] = {-1, 0, 1};
  for (int s = 0; s < 3; s++)
    step_model(o, a, b, s);
  ty_buf saved, streamed;
  ty_buf_init(&saved);
  ty_buf_init(&streamed);
  cr_assert_eq(ty_optim_state_save(o, &saved), 0);
  cr_assert_eq(ty_optim_state_write(o, append_piece, &streamed), 0);
  cr_assert_eq(streamed.len, saved.len);
  cr_assert_eq(memcmp(streamed.data, saved.data, saved.len), 0);
  int calls = 0;
  cr_assert_eq(ty_optim_state_write(o, fail_third, &calls), -28);
  cr_assert_eq(calls, 3, "the write went on after its error");
  ty_buf_close(&saved);
  ty_buf_close(&streamed);
  ty_optim_destroy(o);
}

Test(state, layout_is_the_documented_one) {
  const size_t numels[] = {2};
  ty_optim_opts opts;
  ty_optim_opts_default(TY_OPTIM_ADAM, &opts);
  ty_optim *o = NULL;
  cr_assert_eq(ty_optim_create(&opts, 1, numels, &o, NULL, 0), 0);
  ty_buf st;
  ty_buf_init(&st);
  cr_assert_eq(ty_optim_state_save(o, &st), 0); /* before any step: no buffers */
  cr_assert_eq(st.len, 16u + 20u + 4u);
  cr_assert_eq(ty_optim_state_size(o), st.len); /* what a checkpoint reserves for it */
  cr_assert_eq(memcmp(st.data, "TYOS\1\0\0\0\2\0\0\0\1\0\0\0\2\0\0\0\0\0\0\0", 24), 0);
  float p[2] = {0}, g[2] = {1, -1};
  cr_assert_eq(ty_optim_step_param(o, 0, 0.1f, p, g), 0);
  st.len = 0;
  cr_assert_eq(ty_optim_state_save(o, &st), 0);
  cr_assert_eq(st.len, 16u + 20u + 2 * 8u + 4u);
  cr_assert_eq(ty_optim_state_size(o), st.len);
  cr_assert_eq(st.data[24], 1); /* steps */
  cr_assert_eq(st.data[32], 2); /* buffers */
  uint32_t crc = (uint32_t)crc32(0, st.data, (uInt)(st.len - 4));
  cr_assert_eq(memcmp(st.data + st.len - 4, &crc, 4), 0);
  ty_buf_close(&st);
  ty_optim_destroy(o);
}

/* Saves a 2-step Adam state of shape {3, 2} into st. */
static ty_optim *saved_adam(ty_buf *st) {
  const size_t numels[] = {3, 2};
  ty_optim_opts opts;
  ty_optim_opts_default(TY_OPTIM_ADAM, &opts);
  ty_optim *o = NULL;
  cr_assert_eq(ty_optim_create(&opts, 2, numels, &o, NULL, 0), 0);
  float p[3] = {1, 2, 3}, q[2] = {4, 5};
  for (int s = 0; s < 2; s++) {
    cr_assert_eq(ty_optim_step_param(o, 0, 0.1f, p, G[s]), 0);
    cr_assert_eq(ty_optim_step_param(o, 1, 0.1f, q, G[s]), 0);
  }
  ty_buf_init(st);
  cr_assert_eq(ty_optim_state_save(o, st), 0);
  return o;
}

static void refix_crc(ty_buf *st) {
  uint32_t crc = (uint32_t)crc32(0, st->data, (uInt)(st->len - 4));
  memcpy(st->data + st->len - 4, &crc, 4);
}

Test(state, rejects_corrupt_or_foreign_state) {
  ty_buf st;
  ty_optim *o = saved_adam(&st);
  char err[256];
  st.data[40] ^= 1;
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EPROTO);
  cr_assert_str_eq(err, "optimizer state: CRC mismatch (corrupt checkpoint)");
  st.data[40] ^= 1;
  cr_assert_eq(ty_optim_state_load(o, st.data, 3, err, sizeof err), TY_EPROTO);
  cr_assert_str_eq(err, "optimizer state: truncated (3 bytes)");
  st.data[0] = 'X';
  refix_crc(&st);
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "bad magic") != NULL, "%s", err);
  st.data[0] = 'T';
  st.data[4] = 2;
  refix_crc(&st);
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EVERSION);
  cr_assert_str_eq(err, "optimizer state: version 2, this build reads 1");
  st.data[4] = 1;
  refix_crc(&st);
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), 0, "%s", err);
  ty_buf_close(&st);
  ty_optim_destroy(o);
}

Test(state, rejects_mismatched_optimizer) {
  ty_buf st;
  ty_optim *src = saved_adam(&st);
  char err[256];
  ty_optim_opts opts;
  ty_optim_opts_default(TY_OPTIM_SGD, &opts);
  const size_t same[] = {3, 2}, other[] = {3, 4}, fewer[] = {3};
  ty_optim *o = NULL;
  cr_assert_eq(ty_optim_create(&opts, 2, same, &o, NULL, 0), 0);
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "optimizer state: of Adam, the optimizer is SGD");
  ty_optim_destroy(o);
  ty_optim_opts_default(TY_OPTIM_ADAM, &opts);
  cr_assert_eq(ty_optim_create(&opts, 2, other, &o, NULL, 0), 0);
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "optimizer state: parameter 1 has 2 elements, the model 4");
  cr_assert_eq(ty_optim_param_steps(o, 0), 0u, "a failed load changes nothing");
  ty_optim_destroy(o);
  cr_assert_eq(ty_optim_create(&opts, 1, fewer, &o, NULL, 0), 0);
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "optimizer state: the checkpoint trained 2 parameters, this run trains 1 "
                        "(config.frozen / config.trainable)");
  ty_optim_destroy(o);
  /* Cut inside the buffers but with a valid CRC over what is left. */
  st.len -= 12;
  refix_crc(&st);
  cr_assert_eq(ty_optim_state_load(src, st.data, st.len, err, sizeof err), TY_EPROTO);
  cr_assert_str_eq(err, "optimizer state: truncated in parameter 1");
  cr_assert_eq(ty_optim_param_steps(src, 1), 2u);
  ty_buf_close(&st);
  ty_optim_destroy(src);
}

/* SGD's momentum buffers resumed by an SGD without momentum: another
 * config, refused as one (TY_EINVAL naming config.sgd.momentum), not as a
 * damaged state (TY_EPROTO), which a resume moves aside. */
Test(state, rejects_momentum_buffers_without_momentum) {
  const size_t numels[] = {3};
  ty_optim_opts opts;
  ty_optim_opts_default(TY_OPTIM_SGD, &opts);
  opts.momentum = 0.9f;
  ty_optim *src = NULL, *o = NULL;
  cr_assert_eq(ty_optim_create(&opts, 1, numels, &src, NULL, 0), 0);
  float p[3] = {1, 2, 3};
  cr_assert_eq(ty_optim_step_param(src, 0, 0.1f, p, G[0]), 0);
  ty_buf st;
  ty_buf_init(&st);
  cr_assert_eq(ty_optim_state_save(src, &st), 0);
  opts.momentum = 0;
  cr_assert_eq(ty_optim_create(&opts, 1, numels, &o, NULL, 0), 0);
  char err[256];
  cr_assert_eq(ty_optim_state_load(o, st.data, st.len, err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert_str_eq(err, "optimizer state: the checkpoint's SGD kept a momentum buffer, this run's "
                        "has no momentum (config.sgd.momentum 0): set the checkpoint's momentum");
  cr_assert_eq(ty_optim_param_steps(o, 0), 0u, "a failed load changes nothing");
  ty_buf_close(&st);
  ty_optim_destroy(o);
  ty_optim_destroy(src);
}

/* ---- schedules -------------------------------------------------------------- */
Test(schedule, constant_and_step) {
  ty_lr_schedule c = {.kind = TY_LR_CONSTANT, .base_lr = 0.1};
  cr_assert_float_eq(ty_lr_at(&c, 0), 0.1, 1e-12);
  cr_assert_float_eq(ty_lr_at(&c, 100000), 0.1, 1e-12);
  ty_lr_schedule s = {.kind = TY_LR_STEP, .base_lr = 0.1, .step_size = 3, .gamma = 0.5};
  const uint64_t t[] = {0, 2, 3, 5, 6, 10};
  const double want[] = {0.1, 0.1, 0.05, 0.05, 0.025, 0.0125};
  for (size_t i = 0; i < TY_ARRAY_LEN(t); i++)
    cr_assert_float_eq(ty_lr_at(&s, t[i]), want[i], 1e-12, "step %llu", (unsigned long long)t[i]);
}

Test(schedule, cosine_matches_torch_closed_form) {
  ty_lr_schedule s = {.kind = TY_LR_COSINE, .base_lr = 0.1, .total_steps = 10, .min_lr = 0.001};
  const uint64_t t[] = {0, 1, 5, 9, 10, 11};
  /* torch would climb again after T_max (0.0034227 at 11); we hold min_lr. */
  const double want[] = {0.1, 0.09757729755661011, 0.0505, 0.0034227024433899004, 0.001, 0.001};
  for (size_t i = 0; i < TY_ARRAY_LEN(t); i++)
    cr_assert_float_eq(ty_lr_at(&s, t[i]), want[i], 1e-12, "step %llu", (unsigned long long)t[i]);
}

Test(schedule, warmup_then_cosine) {
  ty_lr_schedule s = {
      .kind = TY_LR_COSINE, .base_lr = 0.1, .total_steps = 10, .min_lr = 0.001, .warmup_steps = 4};
  const uint64_t t[] = {0, 1, 2, 3, 4, 9, 14, 20};
  const double want[] = {0.025, 0.05, 0.075, 0.1, 0.1, 0.0505, 0.001, 0.001};
  for (size_t i = 0; i < TY_ARRAY_LEN(t); i++)
    cr_assert_float_eq(ty_lr_at(&s, t[i]), want[i], 1e-12, "step %llu", (unsigned long long)t[i]);
}

Test(schedule, rejects_bad_fields) {
  struct {
    ty_lr_schedule s;
    const char *msg;
  } bad[] = {
      {{.kind = TY_LR_CONSTANT, .base_lr = 0}, "lr: 0 must be a finite number > 0"},
      {{.kind = TY_LR_CONSTANT, .base_lr = INFINITY}, "lr: inf must be a finite number > 0"},
      {{.kind = TY_LR_STEP, .base_lr = 0.1, .gamma = 0.5},
       "lr_schedule.step.step_size: must be > 0"},
      {{.kind = TY_LR_STEP, .base_lr = 0.1, .step_size = 2, .gamma = 1.5},
       "lr_schedule.step.gamma: 1.5 must be in (0, 1]"},
      {{.kind = TY_LR_COSINE, .base_lr = 0.1}, "lr_schedule.cosine.total_steps: must be > 0"},
      {{.kind = TY_LR_COSINE, .base_lr = 0.1, .total_steps = 5, .min_lr = 0.2},
       "lr_schedule.cosine.min_lr: 0.2 must be in [0, lr]"},
      {{.kind = (ty_lr_kind)7, .base_lr = 0.1}, "lr_schedule: unknown kind 7"},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    char err[256] = "";
    cr_assert_eq(ty_lr_check(&bad[i].s, err, sizeof err), TY_EINVAL);
    cr_assert_str_eq(err, bad[i].msg);
  }
  ty_lr_schedule ok = {.kind = TY_LR_STEP, .base_lr = 0.1, .step_size = 2, .gamma = 0.1};
  cr_assert_eq(ty_lr_check(&ok, NULL, 0), 0);
}
