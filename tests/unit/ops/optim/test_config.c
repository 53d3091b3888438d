/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The example training configs (examples/models/{mlp,cnn}.config.txtpb, encoded by
 * protoc at build time) decode as trainyard.TrainConfig and describe an
 * optimizer and schedule that ops/optim accepts. Catches a config that drifts
 * from proto/train_config.proto or from the optimizer's validation rules.
 * The build passes the directory of the encoded files in
 * TY_EXAMPLE_CONFIG_DIR.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/optim/optim.h"
#include "proto/train_config.pb-c.h"

static Trainyard__TrainConfig *load(const char *name) {
  const char *dir = getenv("TY_EXAMPLE_CONFIG_DIR");
  if (dir == NULL) cr_skip("TY_EXAMPLE_CONFIG_DIR not set (run through meson test)");
  char path[1024];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "%s: missing", path);
  static uint8_t buf[4096];
  size_t n = fread(buf, 1, sizeof buf, f);
  fclose(f);
  Trainyard__TrainConfig *c = trainyard__train_config__unpack(NULL, n, buf);
  cr_assert_not_null(c, "%s: not a TrainConfig", path);
  return c;
}

static void check(const char *name) {
  Trainyard__TrainConfig *c = load(name);
  cr_assert_eq(c->loss_case, TRAINYARD__TRAIN_CONFIG__LOSS_SOFTMAX_CROSS_ENTROPY);
  cr_assert_str_eq(c->softmax_cross_entropy->logits_output, "logits");
  cr_assert_str_eq(c->data_input, "x");
  cr_assert_eq(c->optimizer_case, TRAINYARD__TRAIN_CONFIG__OPTIMIZER_SGD);
  cr_assert(c->batch_size >= 64 && c->batch_size <= 128);
  cr_assert_gt(c->epochs, 0u);
  cr_assert_str_eq(c->dataset->name, "fashion-mnist");
  cr_assert_float_eq(c->dataset->mean, 0.2860f, 1e-6f);
  cr_assert_float_eq(c->dataset->std, 0.3530f, 1e-6f);

  ty_optim_opts o;
  ty_optim_opts_default(TY_OPTIM_SGD, &o);
  o.momentum = c->sgd->momentum;
  o.weight_decay = c->sgd->weight_decay;
  o.nesterov = c->sgd->nesterov;
  size_t numel = 10;
  ty_optim *opt = NULL;
  char err[256] = "";
  cr_assert_eq(ty_optim_create(&o, 1, &numel, &opt, err, sizeof err), 0, "%s", err);
  ty_optim_destroy(opt);

  cr_assert_eq(c->lr_schedule->kind_case, TRAINYARD__LR_SCHEDULE__KIND_COSINE);
  uint64_t steps = (uint64_t)c->epochs * ((60000 + c->batch_size - 1) / c->batch_size);
  ty_lr_schedule s = {
      .kind = TY_LR_COSINE,
      .base_lr = c->sgd->lr,
      .total_steps = c->lr_schedule->cosine->total_steps ? c->lr_schedule->cosine->total_steps
                                                         : steps - c->lr_schedule->warmup_steps,
      .min_lr = c->lr_schedule->cosine->min_lr,
      .warmup_steps = c->lr_schedule->warmup_steps,
  };
  cr_assert_eq(ty_lr_check(&s, err, sizeof err), 0, "%s", err);
  cr_assert_float_eq(ty_lr_at(&s, s.warmup_steps), c->sgd->lr, 1e-7);
  cr_assert_float_eq(ty_lr_at(&s, steps), 0.0, 1e-12);
  trainyard__train_config__free_unpacked(c, NULL);
}

Test(example_config, mlp) {
  check("mlp.config.pb");
}
Test(example_config, cnn) {
  check("cnn.config.pb");
}
