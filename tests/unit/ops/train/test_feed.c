/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train on data the config names (its fields' decoding is
 * test_feed_config.c's): .npy arrays trained on and evaluated, and every
 * check that runs before the first step
 * (shapes, types, labels, unfed inputs), each refusal naming the file and
 * the model input; a resume on data of another length, and the temporaries
 * an interrupted save left.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/helpers.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zip.h>

TestSuite(feed, .fini = synth_cleanup);

/* ---- arrays ------------------------------------------------------------------ */
static synth_mlp blob_mlp(void) {
  return (synth_mlp){.in = 8, .hidden = 16, .out = 4, .seed = 3};
}

Test(feed, trains_and_evaluates_npy_arrays, .timeout = 60) {
  synth_blob_files("", 512, 1);
  synth_blob_files("t", 256, 2);
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 80, true);
  FILE *log = tmpfile();
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  ty_train *b = synth_trainer(g, &c, &(ty_train_opts){.log = log, .prefetch = true});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 80, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 80, err, sizeof err), 0, "%s", err);
  double acc, loss;
  cr_assert_eq(ty_train_evaluate(a, &acc, &loss, err, sizeof err), 0, "%s", err);
  cr_assert_geq(acc, 0.95, "test accuracy %.4f", acc);
  cr_assert_lt(loss, 0.3);
  synth_assert_same_params(a, b); /* the order is the seed's, prefetched or not */
  ty_train_destroy(a);
  ty_train_destroy(b);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* DIR/blobs.npz holding x.npy and y.npy (deflated, as savez_compressed). */
static void blobs_npz(void) {
  int e = 0;
  zip_t *z = zip_open(synth_path("blobs.npz"), ZIP_CREATE | ZIP_TRUNCATE, &e);
  cr_assert(z, "zip_open: %d", e);
  const char *names[] = {"x.npy", "y.npy"};
  for (int i = 0; i < 2; i++) {
    zip_source_t *src = zip_source_file(z, synth_path(names[i]), 0, -1);
    cr_assert(src && zip_file_add(z, names[i], src, 0) >= 0, "%s", zip_strerror(z));
  }
  cr_assert_eq(zip_close(z), 0);
}

/* Arrays read from an .npz by key train exactly as their .npy files. */
Test(feed, trains_on_npz_arrays_as_on_their_npy, .timeout = 60) {
  synth_blob_files("", 512, 1);
  blobs_npz();
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c, z;
  synth_config(&c, 40, false);
  synth_config(&z, 40, false);
  const char *keys[] = {"x", "y"};
  for (int i = 0; i < 2; i++) {
    free(z.train_arrays[i].path);
    z.train_arrays[i].path = ty_strdup(synth_path("blobs.npz"));
    z.train_arrays[i].key = ty_strdup(keys[i]);
  }
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){0});
  ty_train *b = synth_trainer(g, &z, &(ty_train_opts){0});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 40, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 40, err, sizeof err), 0, "%s", err);
  synth_assert_same_params(a, b);
  ty_train_destroy(a);
  ty_train_destroy(b);
  free(z.train_arrays[1].key);
  z.train_arrays[1].key = ty_strdup("labels");
  ty_train *t = NULL;
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){0}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.train[1].key: ") &&
                strstr(err, "no array \"labels\" in the archive (it holds: x, y)"),
            "%s", err);
  ty_train_config_close(&c);
  ty_train_config_close(&z);
  ty_graph_destroy(g);
}

Test(feed, converts_uint8_float64_and_int32_data, .timeout = 60) {
  enum { N = 256 };
  static float xf[N][8];
  static int64_t y[N];
  static uint8_t img[N][2][4];
  static double xd[N][8];
  static int32_t y32[N];
  synth_blobs(N, 8, 4, 9, &xf[0][0], y);
  for (int i = 0; i < N; i++) {
    y32[i] = (int32_t)y[i];
    for (int j = 0; j < 8; j++) {
      xd[i][j] = xf[i][j];
      img[i][j / 4][j % 4] = (uint8_t)(xf[i][j] * 60 + 40);
    }
  }
  npy_write(synth_path("img.npy"), "|u1", "(256, 2, 4)", img, sizeof img);
  npy_write(synth_path("xd.npy"), "<f8", "(256, 8)", xd, sizeof xd);
  npy_write(synth_path("y32.npy"), "<i4", "(256,)", y32, sizeof y32);
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  const char *inputs[2] = {"img.npy", "xd.npy"};
  for (int k = 0; k < 2; k++) {
    ty_train_config c;
    synth_config(&c, 60, false);
    free(c.train_arrays[0].path);
    free(c.train_arrays[1].path);
    c.train_arrays[0].path = ty_strdup(inputs[k]); /* relative: taken from data_dir */
    c.train_arrays[0].mean = k == 0 ? 0.3f : 0;
    c.train_arrays[0].std = k == 0 ? 0.25f : 0;
    c.train_arrays[1].path = ty_strdup("y32.npy");
    c.data_dir = ty_strdup(synth_path(""));
    synth_add_array(&c, true, synth_path(inputs[k]), "x");
    synth_add_array(&c, true, synth_path("y32.npy"), "labels");
    c.test_arrays[0].mean = c.train_arrays[0].mean;
    c.test_arrays[0].std = c.train_arrays[0].std;
    FILE *log = tmpfile();
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(ty_train_steps(t, 60, err, sizeof err), 0, "%s", err);
    double acc, loss;
    cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
    cr_assert_geq(acc, 0.9, "%s: accuracy %.4f", inputs[k], acc);
    ty_train_destroy(t);
    fclose(log);
    ty_train_config_close(&c);
  }
  ty_graph_destroy(g);
}

Test(feed, refuses_shapes_and_types_naming_file_and_input, .timeout = 60) {
  synth_blob_files("", 64, 1);
  static float x3[64][3][4], yf[64];
  static int64_t y7[64], y63[63];
  y7[10] = 7;
  static double x3d[64][3][4];
  npy_write(synth_path("x3.npy"), "<f4", "(64, 3, 4)", x3, sizeof x3);
  npy_write(synth_path("x3d.npy"), "<f8", "(64, 3, 4)", x3d, sizeof x3d);
  npy_write(synth_path("yf.npy"), "<f4", "(64,)", yf, sizeof yf);
  npy_write(synth_path("y7.npy"), "<i8", "(64,)", y7, sizeof y7);
  npy_write(synth_path("y63.npy"), "<i8", "(63,)", y63, sizeof y63);
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  const struct {
    int slot;
    const char *file;
    int code;
    const char *want[4];
  } cases[] = {
      {0,
       "x3.npy",
       TY_EINVAL,
       {"config.dataset.train[0] (", "x3.npy): samples are float32 (3, 4) (12 values) but model "
                                     "input \"x\" takes float32 [N,8]"}},
      /* the file's type, as numpy names it, and what it is read as */
      {0,
       "x3d.npy",
       TY_EINVAL,
       {"config.dataset.train[0] (", "x3d.npy): samples are float64 read as float32 (3, 4) (12 "
                                     "values) but model input \"x\" takes float32 [N,8]"}},
      {1,
       "yf.npy",
       TY_EINVAL,
       {"config.dataset.train[1]: ", "yf.npy: float32 values cannot feed int64 input \"labels\""}},
      {1,
       "y7.npy",
       TY_EINVAL,
       {"config.label_input (the logits \"logits\" have 4 classes): ",
        "y7.npy: value 7 of sample 10 is outside [0, 4)"}},
      {1,
       "y63.npy",
       TY_EINVAL,
       {"config.dataset.train[1]: ", "y63.npy: 63 samples, but", "x.npy has 64"}},
      {1, "none.npy", TY_ENOTFOUND, {"config.dataset.train[1].path: ", "none.npy: missing"}},
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    ty_train_config c;
    synth_config(&c, 4, false);
    free(c.train_arrays[cases[i].slot].path);
    c.train_arrays[cases[i].slot].path = ty_strdup(synth_path(cases[i].file));
    synth_refused(g, &c, NULL, cases[i].code, cases[i].want);
    ty_train_config_close(&c);
  }
  /* The test split is checked as strictly as the train split. */
  ty_train_config c;
  synth_config(&c, 4, false);
  synth_add_array(&c, true, synth_path("x3.npy"), "x");
  synth_add_array(&c, true, synth_path("y.npy"), "labels");
  synth_refused(
      g, &c, NULL, TY_EINVAL,
      (const char *[]){"config.dataset.test[0] (", "x3.npy): samples are float32 (3, 4)", NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A model's own loss reading the labels is checked against its class
 * count before the first step, as the builtin loss is; its ignore_index
 * is a label too. */
Test(feed, refuses_labels_outside_the_models_own_loss, .timeout = 60) {
  synth_blob_files("", 64, 1);
  static int64_t y7[64];
  y7[10] = 7;
  npy_write(synth_path("y7.npy"), "<i8", "(64,)", y7, sizeof y7);
  synth_mlp o = blob_mlp();
  o.own_loss = true;
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 2, false);
  synth_own_loss(&c);
  free(c.train_arrays[1].path);
  c.train_arrays[1].path = ty_strdup(synth_path("y7.npy"));
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.label_input (node \"loss\" (SoftmaxCrossEntropyLoss) "
                                 "takes 4 classes): ",
                                 "y7.npy: value 7 of sample 10 is outside [0, 4)", NULL});
  size_t loss = ty_graph_n_nodes(g) - 1; /* the last node */
  cr_assert_str_eq(ty_graph_node_at(g, loss)->name, "loss");
  cr_assert_eq(ty_graph_node_set_int(g, loss, "ignore_index", 7), 0);
  ty_train_destroy(synth_trainer(g, &c, NULL)); /* 7 is ignored: accepted */
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(feed, refuses_unfed_and_unknown_inputs, .timeout = 60) {
  synth_blob_files("", 64, 1);
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 4, false);
  free(c.train_arrays[0].input);
  c.train_arrays[0].input = ty_strdup("pixels");
  synth_refused(
      g, &c, NULL, TY_EINVAL,
      (const char *[]){
          "config.dataset.train[0]: \"pixels\" is not an input of the model (its inputs: x)",
          NULL});
  ty_train_config_close(&c);
  synth_config(&c, 4, false);
  c.data_input = ty_strdup("inp"); /* a typo beside arrays that feed x */
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"config.data_input: \"inp\" is not an input of the model (the "
                                 "arrays of config.dataset.train feed the inputs they name",
                                 NULL});
  ty_train_config_close(&c);
  synth_config(&c, 4, false);
  c.n_train_arrays = 1; /* x only: no labels */
  free(c.train_arrays[1].path);
  free(c.train_arrays[1].input);
  synth_refused(
      g, &c, NULL, TY_EINVAL,
      (const char *[]){
          "config.dataset.train: no array feeds the labels \"labels\" (config.label_input)", NULL});
  ty_train_config_close(&c);
  synth_config(&c, 4, false);
  free(c.train_arrays[0].path);
  free(c.train_arrays[0].input);
  c.train_arrays[0] = c.train_arrays[1]; /* labels only: x unfed */
  c.n_train_arrays = 1;
  synth_refused(g, &c, NULL, TY_EINVAL,
                (const char *[]){"model input \"x\" is fed by no data", NULL});
  ty_train_config_close(&c);
  ty_graph_destroy(g);
  o.batch = 16; /* exported with a fixed batch */
  g = synth_mlp_build(&o);
  synth_config(&c, 4, false);
  synth_refused(
      g, &c, NULL, TY_EINVAL,
      (const char *[]){
          "model input \"x\" takes float32 [16,8] (a fixed batch dim; each rank's batch is 32",
          NULL});
  c.batch_size = 16; /* a matching batch trains, and evaluation follows it */
  synth_add_array(&c, true, synth_path("x.npy"), "x");
  synth_add_array(&c, true, synth_path("y.npy"), "labels");
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  double acc, loss;
  cr_assert_eq(ty_train_steps(t, 4, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(feed, no_test_split_means_no_evaluation, .timeout = 60) {
  synth_blob_files("", 64, 1);
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 0, false);
  c.epochs = 2;
  c.eval_each_epoch = true;
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  bool stopped;
  cr_assert_eq(ty_train_run(t, &stopped, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_step(t), 4);
  double acc, loss;
  cr_assert_eq(ty_train_evaluate(t, &acc, &loss, err, sizeof err), TY_ESTATE);
  cr_assert(strstr(err, "the config names no test data"), "%s", err);
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "evaluation: the config names no test data"), "%s", text);
  cr_assert_null(strstr(text, "test_accuracy"), "%s", text);
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Rank 0 alone evaluates, so the other ranks build no evaluation copy of
 * the model (a whole model's weights each) and say so if asked. */
Test(feed, only_rank_0_holds_the_evaluation_model, .timeout = 60) {
  synth_blob_files("", 64, 1);
  synth_blob_files("t", 64, 2);
  synth_mlp o = blob_mlp();
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c;
  synth_config(&c, 0, true);
  char err[TY_ERR_LEN] = "";
  double acc, loss;
  for (uint32_t rank = 0; rank < 2; rank++) {
    ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.rank = rank, .world_size = 2});
    int rc = ty_train_evaluate(t, &acc, &loss, err, sizeof err);
    cr_assert_eq(rc, rank == 0 ? 0 : TY_ESTATE, "rank %u: %s", rank, err);
    if (rank == 1) cr_assert(strstr(err, "rank 1 does not evaluate; rank 0 does"), "%s", err);
    ty_train_destroy(t);
  }
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Data grown or cut between a checkpoint and its resume would move the
 * saved position into another epoch order: refused, naming both counts;
 * the data it trained on resumes. */
/* The blob model, and its config (c) checkpointing to DIR/name. */
static ty_graph *checkpointed(const char *name, ty_train_config *c) {
  synth_mlp o = blob_mlp();
  synth_config(c, 0, false);
  c->checkpoint_path = ty_strdup(synth_path(name));
  return synth_mlp_build(&o);
}

Test(feed, resume_refuses_another_sample_count, .timeout = 60) {
  synth_blob_files("", 256, 1);
  ty_train_config c;
  ty_graph *g = checkpointed("count.onnx", &c);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(t, 3, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  synth_blob_files("", 320, 1);
  const char *const want[] = {"checkpoint was trained on 256 training samples, this run's data "
                              "holds 320",
                              "choose another checkpoint_path", NULL};
  synth_refused(g, &c, &(ty_train_opts){.log = log}, TY_EINVAL, want);
  /* The step pair alone (its links removed) is refused the same way, not
   * passed over as if there were no checkpoint. */
  cr_assert_eq(unlink(synth_path("count.onnx.state")), 0);
  cr_assert_eq(unlink(synth_path("count.onnx")), 0);
  synth_refused(g, &c, &(ty_train_opts){.log = log}, TY_EINVAL, want);
  synth_blob_files("", 256, 1);
  t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_step(t), 3);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static void touch(const char *name) {
  FILE *f = fopen(synth_path(name), "w");
  cr_assert_not_null(f, "%s", name);
  fclose(f);
}

/* A save killed mid-write leaves its temporary; the next start removes
 * those of this checkpoint whose writer is gone, and nothing else. */
Test(feed, start_removes_what_an_interrupted_save_left, .timeout = 60) {
  synth_blob_files("", 64, 1);
  pid_t dead = fork();
  if (dead == 0) _exit(0);
  cr_assert_eq(waitpid(dead, NULL, 0), dead);
  char stale[3][64], kept[3][64];
  snprintf(stale[0], 64, "run.step-000120.onnx.tmp.%d", (int)dead);
  snprintf(stale[1], 64, "run.step-000120.onnx.state.tmp.%d", (int)dead);
  snprintf(stale[2], 64, "run.onnx.tmp.%d", (int)dead);
  snprintf(kept[0], 64, "run.step-000120.onnx.tmp.%d", (int)getppid()); /* alive */
  snprintf(kept[1], 64, "other.onnx.tmp.%d", (int)dead);                /* another path's */
  snprintf(kept[2], 64, "run.step-000120.onnx.tmp.x%d", (int)dead);     /* not a save's */
  for (int i = 0; i < 3; i++)
    touch(stale[i]), touch(kept[i]);
  ty_train_config c;
  ty_graph *g = checkpointed("run.onnx", &c);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  char *text = synth_log_text(log);
  for (int i = 0; i < 3; i++) {
    cr_assert_neq(access(synth_path(stale[i]), F_OK), 0, "%s stayed", stale[i]);
    cr_assert(strstr(text, stale[i]), "the log does not name %s: %s", stale[i], text);
    cr_assert_eq(access(synth_path(kept[i]), F_OK), 0, "%s was removed", kept[i]);
  }
  free(text);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* ---- Fashion-MNIST, two ways ---------------------------------------------------- */
static void idx_to_npy(const char *idx_path, const char *npy_path) {
  ty_idx idx;
  char err[TY_ERR_LEN] = "", shape[64];
  cr_assert_eq(ty_data_idx_read(idx_path, &idx, err, sizeof err), 0, "%s", err);
  if (idx.ndims == 3)
    snprintf(shape, sizeof shape, "(%u, %u, %u)", idx.dims[0], idx.dims[1], idx.dims[2]);
  else
    snprintf(shape, sizeof shape, "(%u,)", idx.dims[0]);
  npy_write(npy_path, "|u1", shape, idx.data, idx.size);
  ty_data_idx_close(&idx);
}

/* The IDX files converted to .npy train exactly as the builtin dataset:
 * same order, same normalisation, same weights bit for bit. */
Test(feed, npy_fashion_mnist_trains_like_the_builtin_one, .timeout = 120) {
  if (!have_fashion_mnist()) cr_skip_test("dataset-fashion-mnist not installed");
  const char *parts[] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
  for (int i = 0; i < 4; i++) {
    char src[256], dst[64];
    snprintf(src, sizeof src, "%s/%s.gz", FMNIST_DIR, parts[i]);
    snprintf(dst, sizeof dst, "%s.npy", parts[i]);
    idx_to_npy(src, synth_path(dst));
  }
  ty_graph *g = make_mlp(32, 7);
  ty_train_config builtin, arrays;
  make_config(&builtin, 30, NULL);
  make_config(&arrays, 30, NULL);
  arrays.mean = arrays.std = 0;
  arrays.data_dir = ty_strdup(synth_path(""));
  for (int i = 0; i < 4; i++) {
    char name[64];
    snprintf(name, sizeof name, "%s.npy", parts[i]);
    synth_add_array(&arrays, i >= 2, name, i % 2 ? "labels" : "x");
  }
  arrays.train_arrays[0].mean = builtin.mean;
  arrays.train_arrays[0].std = builtin.std;
  arrays.test_arrays[0].mean = builtin.mean;
  arrays.test_arrays[0].std = builtin.std;
  FILE *log = tmpfile();
  ty_train *a = synth_trainer(g, &builtin, &(ty_train_opts){.log = log});
  ty_train *b = synth_trainer(g, &arrays, &(ty_train_opts){.log = log});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 30, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 30, err, sizeof err), 0, "%s", err);
  synth_assert_same_params(a, b);
  double acc_a, loss_a, acc_b, loss_b;
  cr_assert_eq(ty_train_evaluate(a, &acc_a, &loss_a, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_evaluate(b, &acc_b, &loss_b, err, sizeof err), 0, "%s", err);
  cr_assert(acc_a == acc_b && loss_a == loss_b);
  ty_train_destroy(a);
  ty_train_destroy(b);
  fclose(log);
  ty_train_config_close(&builtin);
  ty_train_config_close(&arrays);
  ty_graph_destroy(g);
}
