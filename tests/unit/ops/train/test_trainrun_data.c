/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainrun, the binary, on a config that names .npy arrays: it trains and
 * logs what it trains, --steps shortens the run without changing the
 * learning-rate schedule, and an unwritable checkpoint path is refused
 * (exit 2) before the first step. The binary's path comes from $TRAINRUN.
 */
#include "lib/base/base.h"
#include "proto/train_config.pb-c.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

TestSuite(trainrun_data, .fini = synth_cleanup);

/* Runs trainrun with args; returns its exit code, output in out. */
static int trainrun(const char *args, char *out, size_t len) {
  char cmd[1024];
  const char *bin = getenv("TRAINRUN");
  cr_assert_not_null(bin, "TRAINRUN is not set");
  snprintf(cmd, sizeof cmd, "'%s' %s 2>&1", bin, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = fread(out, 1, len - 1, p);
  out[n] = 0;
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

/* model.onnx (8-16-4 MLP) and config.pb: x.npy/y.npy, 2 epochs of 4 steps,
 * cosine over them, a checkpoint at ckpt ("" for none). */
static void write_job(const char *ckpt) {
  synth_blob_files("", 128, 1);
  synth_mlp o = {.in = 8, .hidden = 16, .out = 4, .seed = 3};
  ty_graph *g = synth_mlp_build(&o);
  char err[256];
  cr_assert_eq(ty_graph_save_onnx(g, NULL, 0, synth_path("model.onnx"), err, sizeof err), 0, "%s",
               err);
  ty_graph_destroy(g);
  Trainyard__TrainConfig m = TRAINYARD__TRAIN_CONFIG__INIT;
  Trainyard__SoftmaxCrossEntropy sce = TRAINYARD__SOFTMAX_CROSS_ENTROPY__INIT;
  Trainyard__Sgd sgd = TRAINYARD__SGD__INIT;
  Trainyard__LrSchedule ls = TRAINYARD__LR_SCHEDULE__INIT;
  Trainyard__LrSchedule__Cosine cos = TRAINYARD__LR_SCHEDULE__COSINE__INIT;
  Trainyard__Dataset ds = TRAINYARD__DATASET__INIT;
  Trainyard__DataArray x = TRAINYARD__DATA_ARRAY__INIT, y = TRAINYARD__DATA_ARRAY__INIT;
  Trainyard__DataArray *arrays[] = {&x, &y};
  x.path = "x.npy";
  x.input = "x";
  y.path = "y.npy";
  y.input = "labels";
  ds.dir = (char *)synth_path("");
  ds.train = arrays;
  ds.n_train = 2;
  sce.logits_output = "logits";
  m.loss_case = TRAINYARD__TRAIN_CONFIG__LOSS_SOFTMAX_CROSS_ENTROPY;
  m.softmax_cross_entropy = &sce;
  sgd.lr = 0.1f;
  m.optimizer_case = TRAINYARD__TRAIN_CONFIG__OPTIMIZER_SGD;
  m.sgd = &sgd;
  ls.kind_case = TRAINYARD__LR_SCHEDULE__KIND_COSINE;
  ls.cosine = &cos;
  m.lr_schedule = &ls;
  m.dataset = &ds;
  m.batch_size = 32;
  m.epochs = 2;
  m.log_interval = 1;
  m.eval_each_epoch = TRAINYARD__TOGGLE__TOGGLE_OFF;
  m.checkpoint_path = (char *)ckpt;
  size_t len = trainyard__train_config__get_packed_size(&m);
  uint8_t *buf = malloc(len + 1);
  trainyard__train_config__pack(&m, buf);
  FILE *f = fopen(synth_path("config.pb"), "wb");
  cr_assert_not_null(f);
  cr_assert_eq(fwrite(buf, 1, len, f), len);
  fclose(f);
  free(buf);
}

/* The lr printed on the "step N/" line. */
static double lr_at(const char *out, int step) {
  char key[32];
  snprintf(key, sizeof key, "step %d/", step);
  const char *p = strstr(out, key);
  cr_assert_not_null(p, "no \"%s\" in: %s", key, out);
  p = strstr(p, " lr ");
  cr_assert_not_null(p);
  return strtod(p + 4, NULL);
}

Test(trainrun_data, steps_limit_keeps_the_schedule, .timeout = 60) {
  write_job("");
  char args[512], out2[8192], out8[8192];
  snprintf(args, sizeof args, "--model %s --config %s --steps 2 --threads 1",
           synth_path("model.onnx"), synth_path("config.pb"));
  cr_assert_eq(trainrun(args, out2, sizeof out2), 0, "%s", out2);
  cr_assert(strstr(out2, "parameters: 4 tensors, 212 values trained; 0 float initializers frozen"),
            "%s", out2);
  cr_assert(strstr(out2, "step 2/2 "), "%s", out2);
  snprintf(args, sizeof args, "--model %s --config %s --threads 1", synth_path("model.onnx"),
           synth_path("config.pb"));
  cr_assert_eq(trainrun(args, out8, sizeof out8), 0, "%s", out8);
  cr_assert(strstr(out8, "step 8/8 "), "%s", out8);
  for (int s = 1; s <= 2; s++)
    cr_assert_eq(lr_at(out2, s), lr_at(out8, s), "step %d: lr %g with --steps 2, %g without", s,
                 lr_at(out2, s), lr_at(out8, s));
  cr_assert_neq(lr_at(out8, 2), lr_at(out8, 1), "the schedule decays");
}

Test(trainrun_data, unwritable_checkpoint_is_refused_before_training, .timeout = 60) {
  char ck[300];
  snprintf(ck, sizeof ck, "%s/missing-dir/sub/ck.onnx", synth_path(""));
  write_job(ck);
  char args[512], out[8192];
  snprintf(args, sizeof args, "--model %s --config %s", synth_path("model.onnx"),
           synth_path("config.pb"));
  cr_assert_eq(trainrun(args, out, sizeof out), 2, "%s", out);
  cr_assert(strstr(out, "trainrun: checkpoint_path: ") &&
                strstr(out, "missing-dir/sub/ck.onnx: cannot create the directory"),
            "%s", out);
  cr_assert_null(strstr(out, "step "), "trained before refusing: %s", out);
  /* --checkpoint overrides it and is checked the same way. */
  snprintf(args, sizeof args, "--model %s --config %s --checkpoint /proc/ck.onnx",
           synth_path("model.onnx"), synth_path("config.pb"));
  cr_assert_eq(trainrun(args, out, sizeof out), 2, "%s", out);
  cr_assert(strstr(out, "/proc/ck.onnx: cannot be written"), "%s", out);
}
