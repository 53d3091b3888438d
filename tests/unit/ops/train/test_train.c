/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train: config decoding and its rejections, a short real training run
 * on Fashion-MNIST, bit-identical resume, checkpoint validity (python3-onnx's
 * checker and our own loader), resume rejections and the all-reduce hook.
 * Tests needing the dataset skip when dataset-fashion-mnist is missing.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "proto/train_config.pb-c.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/train/helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- config ---------------------------------------------------------------- */
static int decode_msg(Trainyard__TrainConfig *m, ty_train_config *c, char *err, size_t n) {
  size_t len = trainyard__train_config__get_packed_size(m);
  uint8_t *buf = malloc(len + 1);
  trainyard__train_config__pack(m, buf);
  int rc = ty_train_config_decode(buf, len, c, err, n);
  free(buf);
  return rc;
}

typedef struct msg {
  Trainyard__TrainConfig m;
  Trainyard__SoftmaxCrossEntropy sce;
  Trainyard__Sgd sgd;
  Trainyard__LrSchedule ls;
  Trainyard__LrSchedule__Step st;
  Trainyard__Dataset ds;
} msg;

static void msg_init(msg *a) {
  a->m = (Trainyard__TrainConfig)TRAINYARD__TRAIN_CONFIG__INIT;
  a->sce = (Trainyard__SoftmaxCrossEntropy)TRAINYARD__SOFTMAX_CROSS_ENTROPY__INIT;
  a->sgd = (Trainyard__Sgd)TRAINYARD__SGD__INIT;
  a->sce.logits_output = "logits";
  a->m.loss_case = TRAINYARD__TRAIN_CONFIG__LOSS_SOFTMAX_CROSS_ENTROPY;
  a->m.softmax_cross_entropy = &a->sce;
  a->sgd.lr = 0.1f;
  a->m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_SGD;
  a->m.sgd = &a->sgd;
  a->m.epochs = 1;
}

static void expect_reject(msg *a, const char *field) {
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a->m, &c, err, sizeof err), TY_EINVAL,
               "accepted; wanted an error about %s", field);
  cr_assert(strstr(err, field), "error \"%s\" does not name %s", err, field);
}

Test(config, defaults) {
  msg a;
  msg_init(&a);
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.batch_size, 64);
  cr_assert_eq(c.log_interval, 100);
  cr_assert_str_eq(c.label_input, "labels");
  cr_assert(c.shuffle && c.fusion && c.eval_each_epoch);
  cr_assert_null(c.checkpoint_path);
  cr_assert_eq(c.keep_checkpoints, 3, "keep_checkpoints 0 means 3");
  cr_assert_eq(c.schedule.kind, TY_LR_CONSTANT);
  ty_train_config_close(&c);
}

Test(config, rejects_garbage) {
  ty_train_config c;
  char err[256] = "";
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  cr_assert_eq(ty_train_config_decode(junk, sizeof junk, &c, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, "TrainConfig"), "%s", err);
  cr_assert_eq(ty_train_config_load("/nonexistent/c.pb", &c, err, sizeof err), TY_ENOTFOUND);
  cr_assert(strstr(err, "/nonexistent/c.pb"), "%s", err);
}

/* The packed message, then a string field `name` holding bytes[0..n) (a
 * NUL protobuf-c's pack of a C string cannot write). */
static int decode_with_string(msg *a, const char *name, const uint8_t *bytes, size_t n, char *err,
                              size_t err_len) {
  const ProtobufCFieldDescriptor *f =
      protobuf_c_message_descriptor_get_field_by_name(&trainyard__train_config__descriptor, name);
  cr_assert(f && f->id < 16 && n < 128);
  size_t len = trainyard__train_config__get_packed_size(&a->m);
  uint8_t *buf = malloc(len + 2 + n);
  trainyard__train_config__pack(&a->m, buf);
  buf[len] = (uint8_t)(f->id << 3 | 2);
  buf[len + 1] = (uint8_t)n;
  memcpy(buf + len + 2, bytes, n);
  ty_train_config c;
  int rc = ty_train_config_decode(buf, len + 2 + n, &c, err, err_len);
  if (rc == 0) ty_train_config_close(&c);
  free(buf);
  return rc;
}

/* A C string would stop at the NUL: checkpoint_path ff fe 00 61 wrote
 * files named $'\377\376'. Strings are refused unless UTF-8 without NUL. */
Test(config, rejects_strings_with_a_nul_or_not_utf8) {
  msg a;
  msg_init(&a);
  char err[256] = "";
  const uint8_t nul[] = {'c', 'k', 0, 'a'};
  cr_assert_eq(decode_with_string(&a, "checkpoint_path", nul, sizeof nul, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "config.checkpoint_path: holds a NUL byte (at byte 2)"), "%s", err);
  const uint8_t bad[] = {0xff, 0xfe, 0x00, 0x61};
  cr_assert_eq(decode_with_string(&a, "checkpoint_path", bad, sizeof bad, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "config.checkpoint_path: not valid UTF-8 (at byte 0)"), "%s", err);
  a.sce.logits_output = "logits\xc3\x28"; /* a cut two-byte sequence, nested */
  expect_reject(&a, "config.softmax_cross_entropy.logits_output: not valid UTF-8 (at byte 6)");
  a.sce.logits_output = "logits_\xc3\xa9"; /* é: UTF-8 passes */
  const uint8_t ok[] = {'c', 'k', 0xc3, 0xa9};
  cr_assert_eq(decode_with_string(&a, "checkpoint_path", ok, sizeof ok, err, sizeof err), 0, "%s",
               err);
}

Test(config, rejects_missing_loss) {
  msg a;
  msg_init(&a);
  a.m.loss_case = TRAINYARD__TRAIN_CONFIG__LOSS__NOT_SET;
  expect_reject(&a, "config.loss");
}

Test(config, rejects_missing_optimizer) {
  msg a;
  msg_init(&a);
  a.m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER__NOT_SET;
  expect_reject(&a, "config.optimizer");
}

Test(config, rejects_bad_sgd) {
  msg a;
  msg_init(&a);
  a.sgd.lr = 0;
  expect_reject(&a, "config.sgd.lr");
  msg_init(&a);
  a.sgd.momentum = 1.5f;
  expect_reject(&a, "config.sgd.momentum");
  msg_init(&a);
  a.sgd.nesterov = true;
  expect_reject(&a, "config.sgd.nesterov");
}

Test(config, rejects_no_length) {
  msg a;
  msg_init(&a);
  a.m.epochs = 0;
  expect_reject(&a, "config.max_steps");
}

/* Sizes that would overflow the batch buffers or the step arithmetic are
 * refused at decode time, naming the field. */
Test(config, rejects_out_of_range_batch_and_lengths) {
  msg a;
  msg_init(&a);
  a.m.batch_size = 4000000000u;
  expect_reject(&a, "config.batch_size: 4000000000 is above the maximum 1048576");
  msg_init(&a);
  a.m.epochs = 4000000000u;
  expect_reject(&a, "config.epochs: 4000000000 is above the maximum");
  msg_init(&a);
  a.m.max_steps = UINT64_MAX;
  expect_reject(&a, "config.max_steps: 18446744073709551615 is above the maximum");
  msg_init(&a);
  a.m.keep_checkpoints = 20000;
  expect_reject(&a, "config.keep_checkpoints: 20000 is above the maximum 10000");
  msg_init(&a);
  a.m.eval_batch_size = 70000;
  expect_reject(&a, "config.eval_batch_size: 70000 is above the maximum 65536");
}

/* device selects the collective backend; a value from a newer schema is
 * refused rather than read as the CPU. */
Test(config, device) {
  msg a;
  msg_init(&a);
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert(!c.gpu, "the default is the CPU");
  ty_train_config_close(&c);
  a.m.device = TRAINYARD__DEVICE__DEVICE_GPU;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert(c.gpu);
  ty_train_config_close(&c);
  msg_init(&a);
  a.m.device = (Trainyard__Device)7;
  expect_reject(&a, "config.device: unknown value 7");
}

/* Optimizer numbers that are NaN or infinite are refused naming the
 * field (Adam's NaN lr once became torch's default 0.001 silently). */
Test(config, rejects_non_finite_optimizer_numbers) {
  msg a;
  const float bad[] = {NAN, INFINITY};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    msg_init(&a);
    a.sgd.lr = bad[i];
    expect_reject(&a, "config.sgd.lr: must be finite and > 0");
    msg_init(&a);
    a.sgd.weight_decay = bad[i];
    expect_reject(&a, "config.sgd.weight_decay: must be finite");
    const char *fields[] = {"config.adam.lr", "config.adam.beta1", "config.adam.beta2",
                            "config.adam.eps", "config.adam.weight_decay"};
    for (int f = 0; f < 5; f++) {
      Trainyard__Adam adam = TRAINYARD__ADAM__INIT;
      adam.beta1_given_case = TRAINYARD__ADAM__BETA1_GIVEN_BETA1;
      adam.beta2_given_case = TRAINYARD__ADAM__BETA2_GIVEN_BETA2;
      adam.eps_given_case = TRAINYARD__ADAM__EPS_GIVEN_EPS;
      adam.weight_decay_given_case = TRAINYARD__ADAM__WEIGHT_DECAY_GIVEN_WEIGHT_DECAY;
      adam.beta1 = 0.9f, adam.beta2 = 0.999f, adam.eps = 1e-8f;
      float *v[] = {&adam.lr, &adam.beta1, &adam.beta2, &adam.eps, &adam.weight_decay};
      *v[f] = bad[i];
      msg_init(&a);
      a.m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_ADAM;
      a.m.adam = &adam;
      expect_reject(&a, fields[f]);
    }
  }
}

/* Adam's betas and eps: unset is torch's default, an explicit 0 is kept
 * (betas=(0, 0.99), as GANs train; 0 once became 0.9 silently). */
Test(config, adam_explicit_zero_beta_is_kept) {
  msg a;
  msg_init(&a);
  Trainyard__Adam adam = TRAINYARD__ADAM__INIT;
  a.m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_ADAM;
  a.m.adam = &adam;
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.optim.beta1, 0.9f);
  cr_assert_eq(c.optim.beta2, 0.999f);
  cr_assert_eq(c.optim.eps, 1e-8f);
  ty_train_config_close(&c);
  adam.beta1_given_case = TRAINYARD__ADAM__BETA1_GIVEN_BETA1, adam.beta1 = 0.0f;
  adam.beta2_given_case = TRAINYARD__ADAM__BETA2_GIVEN_BETA2, adam.beta2 = 0.99f;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.optim.beta1, 0.0f);
  cr_assert_eq(c.optim.beta2, 0.99f);
  ty_train_config_close(&c);
  adam.eps_given_case = TRAINYARD__ADAM__EPS_GIVEN_EPS, adam.eps = 0.0f;
  expect_reject(&a, "config.adam.eps: must be finite and > 0 (got 0)");
}

/* softmax_cross_entropy.ignore_index: unset is torch's -100 (not given),
 * an explicit 0 is kept (a pad id 0 is ignored). */
Test(config, ignore_index_presence) {
  msg a;
  msg_init(&a);
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert(!c.ignore_index_set, "unset means torch's default -100");
  ty_train_config_close(&c);
  a.sce.ignore_index_given_case = TRAINYARD__SOFTMAX_CROSS_ENTROPY__IGNORE_INDEX_GIVEN_IGNORE_INDEX;
  a.sce.ignore_index = 0;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert(c.ignore_index_set && c.ignore_index == 0, "an explicit 0 is kept");
  ty_train_config_close(&c);
}

/* Adam's weight_decay: unset is torch's default, 0.01 for AdamW and 0 for
 * Adam; an explicit 0 is kept (AdamW without the field once decayed
 * nothing, its checkpoint byte-identical to plain Adam's). */
Test(config, adamw_unset_weight_decay_is_torchs_default) {
  msg a;
  msg_init(&a);
  Trainyard__Adam adam = TRAINYARD__ADAM__INIT;
  a.m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_ADAM;
  a.m.adam = &adam;
  ty_train_config c;
  char err[256] = "";
  adam.decoupled_weight_decay = true;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.optim.weight_decay, 0.01f, "AdamW's default");
  ty_train_config_close(&c);
  adam.weight_decay_given_case = TRAINYARD__ADAM__WEIGHT_DECAY_GIVEN_WEIGHT_DECAY;
  adam.weight_decay = 0.0f;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.optim.weight_decay, 0.0f, "an explicit 0 is kept");
  ty_train_config_close(&c);
  adam.weight_decay = 0.1f;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.optim.weight_decay, 0.1f);
  ty_train_config_close(&c);
  adam.decoupled_weight_decay = false;
  adam.weight_decay_given_case = TRAINYARD__ADAM__WEIGHT_DECAY_GIVEN__NOT_SET;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.optim.weight_decay, 0.0f, "Adam's default");
  ty_train_config_close(&c);
}

/* max_grad_norm: 0 (no clipping) by default, a positive norm kept,
 * negative and non-finite values refused naming the field. */
Test(config, max_grad_norm) {
  msg a;
  msg_init(&a);
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.max_grad_norm, 0.0f, "no clipping by default");
  ty_train_config_close(&c);
  a.m.max_grad_norm = 1.5f;
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.max_grad_norm, 1.5f);
  ty_train_config_close(&c);
  const float bad[] = {-1.0f, NAN, INFINITY};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++) {
    msg_init(&a);
    a.m.max_grad_norm = bad[i];
    expect_reject(&a, "config.max_grad_norm: must be finite and >= 0");
  }
}

/* A text-format config (what examples/models hold, before protoc
 * encodes it) is refused with the command that encodes it; other
 * garbage keeps the plain refusal. */
Test(config, text_format_is_named_with_the_command_that_encodes_it) {
  const char *texts[] = {
      "# a config\nsoftmax_cross_entropy { logits_output: \"logits\" }\nsgd { lr: 0.1 }\n",
      "loss_output: \"loss\"\nadam {}\nepochs: 2\n",
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(texts); i++) {
    ty_train_config c;
    char err[512] = "";
    cr_assert_eq(
        ty_train_config_decode((const uint8_t *)texts[i], strlen(texts[i]), &c, err, sizeof err),
        TY_EPROTO, "text %zu decoded", i);
    cr_assert(strstr(err, "protobuf text format") &&
                  strstr(err, "protoc --encode=trainyard.TrainConfig"),
              "%s", err);
  }
  ty_train_config c;
  char err[512] = "";
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  cr_assert_eq(ty_train_config_decode(junk, sizeof junk, &c, err, sizeof err), TY_EPROTO);
  cr_assert_null(strstr(err, "text format"), "%s", err);
  /* An empty file (what `protoc --encode ... > c.pb` leaves when it fails)
   * is named as such, not as a config without a loss. */
  char path[] = "/tmp/ty-empty-config-XXXXXX";
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  close(fd);
  cr_assert_eq(ty_train_config_load(path, &c, err, sizeof err), TY_EPROTO);
  cr_assert(strstr(err, path) && strstr(err, "empty file"), "%s", err);
  unlink(path);
}

/* Pipeline knobs: "" is no pipeline unless no flat plan fits (0, apart
 * from an explicit "1": the planner's pipeline_if_needed) and auto
 * micro-batches, "auto" and counts parse, anything else names the field
 * and the value. */
Test(config, pipeline_knobs) {
  static const struct {
    const char *stages, *micro;
    int want_stages, want_micro, req_stages;
    bool if_needed;
  } ok[] = {{"", "", 0, 0, 1, true},
            {"1", "", 1, 0, 1, false},
            {"auto", "8", TY_TRAIN_AUTO, 8, 0, false},
            {"4", "auto", 4, 0, 4, false}};
  msg a;
  msg_init(&a);
  for (size_t i = 0; i < TY_ARRAY_LEN(ok); i++) {
    ty_train_config c;
    char err[256] = "";
    a.m.pipeline_stages = (char *)ok[i].stages;
    a.m.micro_batches = (char *)ok[i].micro;
    cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
    cr_assert_eq(c.pipeline_stages, ok[i].want_stages, "\"%s\"", ok[i].stages);
    cr_assert_eq(c.micro_batches, ok[i].want_micro, "\"%s\"", ok[i].micro);
    ty_plan_request r;
    ty_plan_request_init(&r);
    ty_graph *g = make_mlp(8, 1);
    cr_assert_eq(ty_train_plan_request(g, &c, &r), 0);
    cr_assert(r.pipeline_stages == ok[i].req_stages && r.pipeline_if_needed == ok[i].if_needed,
              "\"%s\": stages %d, if needed %d", ok[i].stages, r.pipeline_stages,
              r.pipeline_if_needed);
    ty_train_plan_request_close(&r);
    ty_graph_destroy(g);
    ty_train_config_close(&c);
  }
  a.m.pipeline_stages = "four";
  expect_reject(&a, "config.pipeline_stages: expected \"auto\" or a count from 1 to 4096, got "
                    "\"four\"");
  a.m.pipeline_stages = "0";
  expect_reject(&a, "config.pipeline_stages: expected");
  a.m.pipeline_stages = "-2";
  expect_reject(&a, "config.pipeline_stages: expected");
  a.m.pipeline_stages = "2";
  a.m.micro_batches = "3";
  expect_reject(&a, "config.micro_batches: 3 does not divide config.batch_size 64");
  a.m.micro_batches = "9999";
  expect_reject(&a, "config.micro_batches: expected");
  a.m.micro_batches = "0";
  expect_reject(&a, "config.micro_batches: expected \"auto\" or a count from 1 to 4096, got \"0\"");
  a.m.micro_batches = "x";
  expect_reject(&a, "config.micro_batches: expected \"auto\" or a count from 1 to 4096, got \"x\"");
  /* Without stages: gradient accumulation (test_accum.c), its count
   * dividing the batch. */
  a.m.pipeline_stages = "";
  a.m.micro_batches = "3";
  expect_reject(&a, "config.micro_batches: 3 does not divide config.batch_size 64");
  a.m.micro_batches = "4";
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  cr_assert_eq(c.pipeline_stages, 0);
  cr_assert_eq(c.micro_batches, 4);
  ty_train_config_close(&c);
}

Test(config, rejects_bad_schedule_and_dataset) {
  msg a;
  msg_init(&a);
  a.ls = (Trainyard__LrSchedule)TRAINYARD__LR_SCHEDULE__INIT;
  a.st = (Trainyard__LrSchedule__Step)TRAINYARD__LR_SCHEDULE__STEP__INIT;
  a.ls.kind_case = TRAINYARD__LR_SCHEDULE__KIND_STEP;
  a.ls.step = &a.st;
  a.m.lr_schedule = &a.ls;
  expect_reject(&a, "config.lr_schedule.step.step_size");
  a.st.step_size = 1, a.st.gamma = NAN; /* once the default 0.1, silently */
  expect_reject(&a, "config.lr_schedule.step.gamma: must be in (0, 1] (got nan)");
  Trainyard__LrSchedule__Cosine cos = TRAINYARD__LR_SCHEDULE__COSINE__INIT;
  cos.min_lr = NAN;
  a.ls.kind_case = TRAINYARD__LR_SCHEDULE__KIND_COSINE, a.ls.cosine = &cos;
  expect_reject(&a, "config.lr_schedule.cosine.min_lr: must be finite and >= 0");
  /* above the lr: refused at decode, before any output or checkpoint lock */
  cos.min_lr = 0.5;
  expect_reject(&a, "config.lr_schedule.cosine.min_lr: 0.5 is above the learning rate 0.1 "
                    "(config.sgd.lr); it must be in [0, lr]");
  cos.min_lr = 0.1f; /* the lr itself: a constant rate */
  ty_train_config c;
  char err[256] = "";
  cr_assert_eq(decode_msg(&a.m, &c, err, sizeof err), 0, "%s", err);
  ty_train_config_close(&c);
  Trainyard__Adam adam = TRAINYARD__ADAM__INIT; /* lr 0: torch's 0.001 */
  a.m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_ADAM, a.m.adam = &adam;
  cos.min_lr = 0.002;
  expect_reject(&a, "config.lr_schedule.cosine.min_lr: 0.002 is above the learning rate 0.001 "
                    "(config.adam.lr, 0 meaning 0.001)");
  msg_init(&a);
  a.ds = (Trainyard__Dataset)TRAINYARD__DATASET__INIT;
  a.ds.name = "cifar10";
  a.m.dataset = &a.ds;
  expect_reject(&a, "config.dataset.name");
}

/* ---- the loop ---------------------------------------------------------------- */
static ty_train *make_trainer(ty_graph *g, ty_train_config *c, const ty_train_opts *o) {
  ty_train *t = NULL;
  char err[512] = "";
  int rc = ty_train_create(g, c, o, &t, err, sizeof err);
  cr_assert_eq(rc, 0, "ty_train_create: %s", err);
  return t;
}

/* The test's folder, made on first use and removed after the test. */
static char dir[TY_TEST_DIR_LEN];

static void remove_dir(void) {
  if (dir[0]) cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(train, .fini = remove_dir);

/* DIR/name (heap, caller frees). */
static char *tmp_path(const char *name) {
  if (!dir[0]) cr_assert_eq(ty_test_make_dir(dir, "train"), 0);
  char *p = malloc(128);
  snprintf(p, 128, "%s/%s", dir, name);
  return p;
}

Test(train, mlp_learns_fashion_mnist, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(128, 1);
  ty_train_config c;
  make_config(&c, 400, NULL);
  FILE *log = tmpfile();
  ty_train *t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[512] = "";
  cr_assert_eq(ty_train_steps(t, 400, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_step(t), 400);
  double acc, loss;
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert_geq(acc, 0.75, "test accuracy %.4f after 400 steps", acc);
  cr_assert_lt(loss, 0.8);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* PyTorch's export of an image MLP: shape arithmetic on the batch, Gelu
 * and LayerNorm forward and backward, through the whole training loop. */
Test(train, exported_mlp_with_shape_arithmetic_learns, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_exported_mlp(64, 1);
  ty_train_config c;
  make_config(&c, 300, NULL);
  FILE *log = tmpfile();
  ty_train *t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[512] = "";
  cr_assert_eq(ty_train_steps(t, 300, err, sizeof err), 0, "%s", err);
  double acc, loss;
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert_geq(acc, 0.75, "test accuracy %.4f after 300 steps", acc);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static void snapshot(const ty_train *t, uint8_t **out, size_t *out_len) {
  size_t n = 0;
  for (size_t i = 0; i < ty_train_n_params(t); i++)
    n += ty_train_param(t, i)->nbytes;
  uint8_t *b = malloc(n), *p = b;
  for (size_t i = 0; i < ty_train_n_params(t); i++) {
    memcpy(p, ty_train_param(t, i)->data, ty_train_param(t, i)->nbytes);
    p += ty_train_param(t, i)->nbytes;
  }
  *out = b;
  *out_len = n;
}

Test(train, resume_is_bit_identical, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(32, 2);
  char err[512] = "", *ck = tmp_path("resume.onnx");
  FILE *log = tmpfile();
  ty_train_opts o = {.log = log};
  ty_train_config straight, split;
  make_config(&straight, 60, NULL);
  make_config(&split, 60, ck);
  ty_train *t = make_trainer(g, &straight, &o);
  cr_assert_eq(ty_train_steps(t, 60, err, sizeof err), 0, "%s", err);
  uint8_t *want, *got;
  size_t want_len, got_len;
  snapshot(t, &want, &want_len);
  ty_train_destroy(t);

  t = make_trainer(g, &split, &o);
  cr_assert_eq(ty_train_steps(t, 30, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  o.resume = true;
  t = make_trainer(g, &split, &o);
  cr_assert_eq(ty_train_step(t), 30);
  cr_assert_eq(ty_train_steps(t, 30, err, sizeof err), 0, "%s", err);
  snapshot(t, &got, &got_len);
  cr_assert_eq(got_len, want_len);
  cr_assert(memcmp(got, want, want_len) == 0, "resumed weights differ from the uninterrupted run");
  ty_train_destroy(t);
  free(want);
  free(got);
  free(ck);
  fclose(log);
  ty_train_config_close(&straight);
  ty_train_config_close(&split);
  ty_graph_destroy(g);
}

Test(train, checkpoint_is_valid_onnx, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 3);
  char err[512] = "", *ck = tmp_path("valid.onnx");
  ty_train_config c;
  make_config(&c, 5, ck);
  FILE *log = tmpfile();
  ty_train *t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  bool stopped;
  cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
  cr_assert(!stopped);
  ty_graph *back;
  cr_assert_eq(ty_graph_load_file(ck, err, sizeof err, &back), 0, "%s", err);
  int id = ty_graph_find_value(back, "fc1.weight");
  cr_assert_neq(id, TY_NO_VALUE);
  const ty_tensor *w = ty_graph_value_at(back, id)->init;
  cr_assert(memcmp(w->data, ty_train_param(t, 0)->data, w->nbytes) == 0,
            "checkpoint holds other weights");
  cr_assert_eq(ty_graph_find_value(back, "trainyard.loss"), TY_NO_VALUE,
               "the loss leaked into the checkpoint");
  ty_graph_destroy(back);
  if (system("/usr/bin/python3 -c 'import onnx' 2>/dev/null") == 0) {
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"import onnx,sys; "
             "onnx.checker.check_model(onnx.load(sys.argv[1]))\" %s",
             ck);
    cr_assert_eq(system(cmd), 0, "onnx.checker rejected %s", ck);
  }
  ty_train_destroy(t);
  fclose(log);
  free(ck);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(train, resume_rejections, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 4);
  char err[512] = "", *ck = tmp_path("reject.onnx"), *missing = tmp_path("missing.onnx");
  FILE *log = tmpfile();
  ty_train_config c;
  ty_train *t = NULL;
  make_config(&c, 4, missing);
  cr_assert_eq(
      ty_train_create(g, &c, &(ty_train_opts){.resume = true, .log = log}, &t, err, sizeof err),
      TY_ENOTFOUND);
  cr_assert(strstr(err, "missing.onnx.state"), "%s", err);
  ty_train_config_close(&c);
  /* A .state that is a FIFO is refused at once, never waited on in
   * open(); a directory is named as one. */
  char *odd = tmp_path("odd.onnx"), odd_state[200];
  snprintf(odd_state, sizeof odd_state, "%s.state", odd);
  make_config(&c, 4, odd);
  cr_assert_eq(mkfifo(odd_state, 0600), 0);
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "odd.onnx.state: not a regular file"), "%s", err);
  cr_assert_eq(unlink(odd_state), 0);
  cr_assert_eq(mkdir(odd_state, 0700), 0);
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "odd.onnx.state: is a directory"), "%s", err);
  cr_assert_eq(rmdir(odd_state), 0);
  ty_train_config_close(&c);
  free(odd);

  make_config(&c, 4, ck);
  t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_steps(t, 2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  c.seed = 99; /* another seed: another data order */
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "seed"), "%s", err);
  c.seed = 3;
  c.shuffle = false; /* another order from the saved position on */
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "checkpoint has shuffle ON, this run OFF (the data order would differ): "
                        "to resume, set config.dataset.shuffle back to TOGGLE_ON"),
            "%s", err);
  c.shuffle = true;
  ty_optim_opts sgd = c.optim; /* another optimizer: its state does not fit */
  ty_optim_opts_default(TY_OPTIM_ADAM, &c.optim);
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.log = log}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(
      strstr(err, "reject.step-000002.onnx.state: optimizer state: of SGD, the optimizer is Adam"),
      "%s", err);
  cr_assert(strstr(err, "a new checkpoint_path starts afresh"), "%s", err);
  c.optim = sgd;
  char spath[160];
  snprintf(spath, sizeof spath, "%s.state", ck);
  FILE *f = fopen(spath, "r+b");
  fseek(f, 9, SEEK_SET);
  fputc(0x7f, f);
  fclose(f);
  /* The only pair damaged: --resume, which needs one, fails naming it; a
   * run without it moves the pair aside and trains from step 0. */
  cr_assert_eq(
      ty_train_create(g, &c, &(ty_train_opts){.log = log, .resume = true}, &t, err, sizeof err),
      TY_ENOTFOUND);
  cr_assert(strstr(err, "no usable checkpoint at ") && strstr(err, "all 1 were damaged"), "%s",
            err);
  t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_step(t), 0);
  ty_train_destroy(t);
  /* The links to it are gone with it: no later run reads them as a
   * checkpoint from before step names (its CRC error then failed it). */
  cr_assert_eq(access(ck, F_OK), -1);
  cr_assert_eq(access(spath, F_OK), -1);
  t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_step(t), 0);
  ty_train_destroy(t);
  ty_train_config_close(&c);
  fclose(log);
  free(ck);
  free(missing);
  ty_graph_destroy(g);
}

/* Trains 2 steps of g into a checkpoint at ck (frozen: config.frozen's
 * one pattern, or NULL). */
static void checkpoint_two_steps(ty_graph *g, const char *ck, const char *frozen, FILE *log) {
  ty_train_config c;
  char err[512] = "";
  make_config(&c, 4, ck);
  if (frozen) {
    c.frozen = calloc(1, sizeof *c.frozen);
    c.frozen[0] = ty_strdup(frozen);
    c.n_frozen = 1;
  }
  ty_train *t = make_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_steps(t, 2, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  ty_train_config_close(&c);
}

/* ty_train_create of model on a config as checkpoint_two_steps': its
 * code, the error in err. */
static int resume_with(ty_graph *model, const char *ck, const char *frozen, FILE *log, char *err,
                       size_t err_len) {
  ty_train_config c;
  make_config(&c, 4, ck);
  if (frozen) {
    c.frozen = calloc(1, sizeof *c.frozen);
    c.frozen[0] = ty_strdup(frozen);
    c.n_frozen = 1;
  }
  ty_train *t = NULL;
  int rc = ty_train_create(model, &c, &(ty_train_opts){.log = log}, &t, err, err_len);
  if (rc == 0)
    cr_assert_eq(ty_train_step(t), 2, "resumed at step %llu", (unsigned long long)ty_train_step(t));
  ty_train_destroy(t);
  ty_train_config_close(&c);
  return rc;
}

/* The graph and the initializers a checkpoint does not hold come from the
 * run's model: a resume from another graph (same parameters) or other
 * frozen values is refused, while other initial values of the trained
 * parameters (which the checkpoint replaces) resume. */
Test(train, resume_refuses_another_model, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 4), *tanh = make_mlp_act(16, 4, TY_OP_TANH), *other = make_mlp(16, 5);
  char err[512] = "", *ck = tmp_path("graph.onnx"), *fck = tmp_path("frozen.onnx");
  FILE *log = tmpfile();
  checkpoint_two_steps(g, ck, NULL, log);
  cr_assert_eq(resume_with(tanh, ck, NULL, log, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "graph.step-000002.onnx.state: checkpoint was trained from another model "
                        "(graph, frozen initializers, or config.frozen / trainable differ)"),
            "%s", err);
  cr_assert(strstr(err, "resume with the model and config it was trained from"), "%s", err);
  cr_assert_eq(resume_with(other, ck, NULL, log, err, sizeof err), 0, "%s", err);

  checkpoint_two_steps(g, fck, "fc1.*", log);
  cr_assert_eq(resume_with(other, fck, "fc1.*", log, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "frozen.step-000002.onnx.state: checkpoint was trained from another model"),
            "%s", err);
  cr_assert_eq(resume_with(g, fck, "fc1.*", log, err, sizeof err), 0, "%s", err);
  fclose(log);
  free(ck);
  free(fck);
  ty_graph_destroy(g);
  ty_graph_destroy(tanh);
  ty_graph_destroy(other);
}

/* Rewrites the state file at path as version 2 wrote it: the fields a
 * version 3 header added (between the sample count and the optimizer's
 * state) taken out, the CRC made anew. */
static void as_version_2(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert(f, "%s", path);
  static uint8_t b[1 << 20];
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  cr_assert(n > 80 && n < sizeof b);
  uint64_t olen = 0;
  for (int i = 7; i >= 0; i--)
    olen = olen << 8 | b[52 + i];
  size_t head = n - 4 - (size_t)olen;
  cr_assert(head > 68, "a state of %zu bytes, optimizer %llu", n, (unsigned long long)olen);
  b[4] = 2;
  memmove(b + 68, b + head, (size_t)olen);
  n -= head - 68;
  uint32_t crc = (uint32_t)crc32_z(0L, b, n - 4);
  for (int i = 0; i < 4; i++)
    b[n - 4 + i] = (uint8_t)(crc >> (8 * i));
  f = fopen(path, "wb");
  cr_assert_eq(fwrite(b, 1, n, f), n);
  fclose(f);
}

/* A checkpoint from before the model's fingerprint resumes as it did,
 * unchecked, and the log says so. */
Test(train, an_older_state_resumes_unchecked, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 4), *tanh = make_mlp_act(16, 4, TY_OP_TANH);
  char err[512] = "", *ck = tmp_path("old.onnx"), state[160];
  FILE *log = tmpfile();
  checkpoint_two_steps(g, ck, NULL, log);
  snprintf(state, sizeof state, "%s/old.step-000002.onnx.state", dir);
  as_version_2(state);
  long at = ftell(log);
  cr_assert_eq(resume_with(tanh, ck, NULL, log, err, sizeof err), 0, "%s", err);
  char text[4096] = "";
  fseek(log, at, SEEK_SET);
  text[fread(text, 1, sizeof text - 1, log)] = 0;
  cr_assert(strstr(text, "old.step-000002.onnx.state: written by an older trainrun (state "
                         "version 2), which kept neither the model's fingerprint"),
            "%s", text);
  fclose(log);
  free(ck);
  ty_graph_destroy(g);
  ty_graph_destroy(tanh);
}

/* A run resumed at its end trains nothing and leaves the checkpoint as
 * it is: no new file under its names. */
Test(train, nothing_to_train_keeps_the_checkpoint, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 4);
  char err[512] = "", *ck = tmp_path("done.onnx");
  FILE *log = tmpfile();
  ty_train_config c;
  make_config(&c, 2, ck);
  bool stopped;
  struct stat before, after;
  for (int run = 0; run < 2; run++) {
    ty_train *t = make_trainer(g, &c, &(ty_train_opts){.log = log});
    cr_assert_eq(ty_train_step(t), run ? 2 : 0);
    cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
    ty_train_destroy(t);
    cr_assert_eq(stat(ck, run ? &after : &before), 0);
  }
  cr_assert_eq(after.st_ino, before.st_ino, "the run that trained nothing rewrote %s", ck);
  fclose(log);
  free(ck);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(train, rejects_bad_model_fields, .timeout = 60) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 5);
  char err[512] = "";
  ty_train_config c;
  ty_train *t;
  make_config(&c, 4, NULL);
  free(c.logits_output);
  c.logits_output = ty_strdup("nope");
  cr_assert_eq(ty_train_create(g, &c, NULL, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.softmax_cross_entropy.logits_output"), "%s", err);
  ty_train_config_close(&c);
  make_config(&c, 4, NULL);
  free(c.data_input);
  c.data_input = ty_strdup("pixels");
  cr_assert_eq(ty_train_create(g, &c, NULL, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.data_input"), "%s", err);
  ty_train_config_close(&c);
  make_config(&c, 4, NULL);
  c.batch_size = 63;
  cr_assert_eq(ty_train_create(g, &c, &(ty_train_opts){.world_size = 2}, &t, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "config.batch_size"), "%s", err);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

typedef struct hook_log {
  uint64_t calls, next_seq;
  size_t floats;
  bool in_order;
} hook_log;

static int sum_hook(float *buf, size_t n, uint64_t seq, void *user) {
  hook_log *h = user;
  h->in_order = h->in_order && seq == h->next_seq;
  h->next_seq = seq + 1;
  h->calls++;
  h->floats += n;
  for (size_t i = 0; i < n; i++)
    buf[i] *= 2; /* two ranks with equal gradients */
  return 0;
}

Test(train, allreduce_hook_sees_every_bucket, .timeout = 60) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 6);
  char err[512] = "";
  ty_train_config c;
  make_config(&c, 3, NULL);
  hook_log h = {.in_order = true};
  FILE *log = tmpfile();
  ty_train_opts o = {.rank = 1,
                     .world_size = 2,
                     .allreduce = sum_hook,
                     .allreduce_user = &h,
                     .bucket_bytes = 4096,
                     .log = log};
  ty_train *t = make_trainer(g, &c, &o);
  size_t per_step = 0;
  for (size_t i = 0; i < ty_train_n_params(t); i++)
    per_step += (size_t)ty_tensor_numel(ty_train_param(t, i));
  cr_assert_eq(ty_train_steps(t, 3, err, sizeof err), 0, "%s", err);
  cr_assert(h.in_order);
  cr_assert_eq(h.floats, 3 * per_step);
  /* 4 KiB buckets: {fc2.bias, fc2.weight, fc1.bias} (744 B), then fc1.weight alone (50 KiB). */
  cr_assert_eq(h.calls, 3 * 2, "%llu all-reduce calls for 3 steps", (unsigned long long)h.calls);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A fake two-rank transport for the asynchronous hooks: start queues the
 * bucket, wait "sums" the oldest one (doubles it, as sum_hook does). */
typedef struct async_log {
  float *bufs[16];
  size_t ns[16];
  size_t head, count;
  uint64_t starts, waits, progress, next_seq;
  bool in_order;
} async_log;

static int async_start(float *buf, size_t n, uint64_t seq, void *user) {
  async_log *a = user;
  if (a->count == 16) return TY_ESTATE;
  a->in_order = a->in_order && seq == a->next_seq;
  a->next_seq = seq + 1;
  a->bufs[(a->head + a->count) % 16] = buf;
  a->ns[(a->head + a->count++) % 16] = n;
  a->starts++;
  return 0;
}

static int async_wait(void *user) {
  async_log *a = user;
  if (a->count == 0) return TY_ESTATE;
  for (size_t i = 0; i < a->ns[a->head]; i++)
    a->bufs[a->head][i] *= 2;
  a->head = (a->head + 1) % 16;
  a->count--;
  a->waits++;
  return 0;
}

static int async_progress(void *user) {
  ((async_log *)user)->progress++;
  return 0;
}

Test(train, async_allreduce_matches_sync, .timeout = 60) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 6);
  char err[512] = "";
  ty_train_config c;
  make_config(&c, 3, NULL);
  FILE *log = tmpfile();
  hook_log h = {.in_order = true};
  ty_train_opts so = {.rank = 1,
                      .world_size = 2,
                      .allreduce = sum_hook,
                      .allreduce_user = &h,
                      .bucket_bytes = 4096,
                      .log = log};
  ty_train *ts = make_trainer(g, &c, &so);
  cr_assert_eq(ty_train_steps(ts, 3, err, sizeof err), 0, "%s", err);
  async_log a = {.in_order = true};
  ty_train_opts ao = so;
  ao.allreduce = NULL;
  ao.async = (ty_train_async_allreduce){
      .start = async_start, .wait = async_wait, .progress = async_progress};
  ao.allreduce_user = &a;
  ty_train *ta = make_trainer(g, &c, &ao);
  cr_assert_eq(ty_train_steps(ta, 3, err, sizeof err), 0, "%s", err);
  cr_assert(a.in_order);
  cr_assert_eq(a.starts, 3 * 2);
  cr_assert_eq(a.waits, 3 * 2);
  cr_assert_eq(a.count, 0);
  cr_assert_geq(a.progress, 3, "progress is called while backward runs");
  for (size_t i = 0; i < ty_train_n_params(ts); i++) {
    const ty_tensor *x = ty_train_param(ts, i), *y = ty_train_param(ta, i);
    cr_assert_eq(memcmp(x->data, y->data, (size_t)ty_tensor_numel(x) * sizeof(float)), 0,
                 "parameter %zu differs", i);
  }
  ty_train_destroy(ts);
  ty_train_destroy(ta);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static int failing_start(float *buf, size_t n, uint64_t seq, void *user) {
  (void)buf, (void)n, (void)seq, (void)user;
  return TY_EIO;
}

Test(train, async_allreduce_start_failure_fails_the_step, .timeout = 60) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  ty_graph *g = make_mlp(16, 6);
  char err[512] = "";
  ty_train_config c;
  make_config(&c, 3, NULL);
  FILE *log = tmpfile();
  async_log a = {.in_order = true};
  ty_train_opts o = {.rank = 0,
                     .world_size = 2,
                     .async = {failing_start, async_wait, NULL},
                     .allreduce_user = &a,
                     .bucket_bytes = 4096,
                     .log = log};
  ty_train *t = make_trainer(g, &c, &o);
  cr_assert_eq(ty_train_steps(t, 1, err, sizeof err), TY_EIO);
  cr_assert(strstr(err, "ready hook failed"), "%s", err);
  cr_assert_eq(ty_train_step(t), 0);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}
