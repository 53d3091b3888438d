/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train on an image folder (ops/data/imgdir.c through feed.c): a small
 * image MLP (Flatten, Gemm, Relu, Gemm) trained, with random crop and flip,
 * from a folder of PNGs reaches exactly the weights it reaches from the
 * .npy files of the same pixels and labels in ImageFolder's order; the
 * class mapping is logged; a test folder with a class the training folder
 * lacks, a model input that is no [N, C, H, W] image, and a resize that
 * gives another size than the model's, are refused. With per-channel
 * statistics (channel_mean, channel_std) the folder trains to the weights
 * of a float32 .npy of the same pixels normalised beforehand.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/data/image_file.h"
#include "tests/unit/ops/train/helpers.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <png.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

TestSuite(feed_images, .fini = synth_cleanup);

enum { N = 96, C = 3, H = 6, W = 6, PX = C * H * W };

/* Classes named out of their sorted order: ids follow the sorted names. */
static const char *const names[] = {"zebra", "ant", "cow", "bee"};
static const int64_t sorted_id[] = {3, 0, 2, 1};

/* Per-channel statistics, and the same pixels normalised by them. */
static const float ch_mean[C] = {0.485f, 0.456f, 0.406f}, ch_std[C] = {0.229f, 0.224f, 0.225f};

/* xf.npy: x (uint8 [N, C, H, W]) as torchvision's Normalize(ch_mean,
 * ch_std)(ToTensor()(image)) gives it, in float32. */
static void write_normalised(const uint8_t *x) {
  float *xf = malloc(sizeof(float) * N * PX);
  for (size_t i = 0; i < (size_t)N * PX; i++) {
    size_t c = i / (H * W) % C;
    xf[i] = ((float)x[i] / 255.0f - ch_mean[c]) / ch_std[c];
  }
  char shape[64];
  snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", N, C, H, W);
  npy_write(synth_path("xf.npy"), "<f4", shape, xf, sizeof(float) * N * PX);
  free(xf);
}

/* DIR/train/CLASS/NNN.png, 24 RGB images per class whose pixels centre on
 * a class colour, and x.npy / y.npy: the same pixels (uint8 [N, C, H, W])
 * and ids in ImageFolder's order (sorted classes, sorted files); xf.npy:
 * the pixels normalised per channel. */
static void write_folder(void) {
  uint8_t *x = malloc((size_t)N * PX), rows[H * W * C];
  int64_t y[N];
  uint64_t rng = 11;
  mkdir(synth_path("train"), 0700);
  for (int k = 0; k < 4; k++) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", synth_path("train"), names[k]);
    mkdir(path, 0700);
    for (int j = 0; j < N / 4; j++) {
      int64_t id = sorted_id[k];
      size_t i = (size_t)id * (N / 4) + (size_t)j; /* its place in ImageFolder's order */
      for (int p = 0; p < H * W; p++)
        for (int c = 0; c < C; c++) {
          rng = rng * 6364136223846793005ull + 1442695040888963407ull;
          int v = (c == k % 3 ? 60 * (k + 1) : 40) + (int)(rng >> 59);
          rows[p * C + c] = x[i * PX + (size_t)c * H * W + (size_t)p] = (uint8_t)v;
        }
      y[i] = id;
      snprintf(path, sizeof path, "%s/%s/%03d.png", synth_path("train"), names[k], j);
      png_file(path, W, H, PNG_COLOR_TYPE_RGB, 8, rows, NULL, 0);
    }
  }
  char shape[64];
  snprintf(shape, sizeof shape, "(%d, %d, %d, %d)", N, C, H, W);
  npy_write(synth_path("x.npy"), "|u1", shape, x, (size_t)N * PX);
  write_normalised(x);
  snprintf(shape, sizeof shape, "(%d,)", N);
  npy_write(synth_path("y.npy"), "<i8", shape, y, sizeof y);
  free(x);
}

/* c's train arrays: x.npy and y.npy, normalised and augmented alike. */
static void image_config(ty_train_config *c, bool folder) {
  synth_config(c, 30, false);
  ty_train_array *a = c->train_arrays;
  a[0].mean = 0.5f;
  a[0].std = 0.25f;
  a[0].augment = (ty_data_augment){.crop_padding = 1, .hflip = true};
  if (!folder) return;
  for (int i = 0; i < 2; i++) {
    free(a[i].path);
    a[i].path = ty_strdup(synth_path("train"));
    a[i].image = i ? TY_TRAIN_IMAGE_LABELS : TY_TRAIN_IMAGE_PIXELS;
  }
}

static float *floats(const float *v, size_t n) {
  float *f = malloc(sizeof(float) * n);
  memcpy(f, v, sizeof(float) * n);
  return f;
}

/* The folder with channel_mean and channel_std (and flips) trains to the
 * weights the pre-normalised floats give (no crop: its padding would be
 * each channel's normalised 0 in one and 0 in the other). */
Test(feed_images, channel_stats_train_as_prenormalised_floats, .timeout = 60) {
  write_folder();
  synth_mlp o = {.in = PX, .hidden = 16, .out = 4, .seed = 3, .chw = {C, H, W}};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c, z;
  image_config(&c, false);
  image_config(&z, true);
  free(c.train_arrays[0].path);
  c.train_arrays[0].path = ty_strdup(synth_path("xf.npy"));
  ty_train_array *ca = &c.train_arrays[0], *za = &z.train_arrays[0];
  ca->mean = ca->std = za->mean = za->std = 0;
  ca->augment.crop_padding = za->augment.crop_padding = 0;
  za->channel_mean = floats(ch_mean, C);
  za->channel_std = floats(ch_std, C);
  za->n_channels = C;
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){0});
  ty_train *b = synth_trainer(g, &z, &(ty_train_opts){0});
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 30, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 30, err, sizeof err), 0, "%s", err);
  synth_assert_same_params(a, b);
  ty_train_destroy(a);
  ty_train_destroy(b);
  /* Two values for three channels: refused when the folder is opened. */
  za->n_channels = 2;
  ty_train *t = NULL;
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){0}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.train[0]: ") &&
                strstr(err, "/train: channel_mean [0.485, 0.456] and channel_std [0.229, 0.224] "
                            "have 2 values, but the array has 3 channels (dim 1; samples are "
                            "(3, 6, 6))"),
            "%s", err);
  ty_train_config_close(&c);
  ty_train_config_close(&z);
  ty_graph_destroy(g);
}

Test(feed_images, trains_as_the_same_npy, .timeout = 60) {
  write_folder();
  synth_mlp o = {.in = PX, .hidden = 16, .out = 4, .seed = 3, .chw = {C, H, W}};
  ty_graph *g = synth_mlp_build(&o);
  ty_train_config c, z;
  image_config(&c, false);
  image_config(&z, true);
  FILE *log = tmpfile();
  ty_train *a = synth_trainer(g, &c, &(ty_train_opts){0});
  ty_train *b = synth_trainer(g, &z, &(ty_train_opts){.log = log});
  char *text = synth_log_text(log);
  cr_assert(strstr(text, "train: image_folder classes for \"labels\": 0=\"ant\" 1=\"bee\" "
                         "2=\"cow\" 3=\"zebra\""),
            "%s", text);
  free(text);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_steps(a, 30, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_train_steps(b, 30, err, sizeof err), 0, "%s", err);
  synth_assert_same_params(a, b);
  ty_train_destroy(a);
  ty_train_destroy(b);

  /* A test folder with a class the training folder lacks. */
  char path[512];
  snprintf(path, sizeof path, "%s/yak", synth_path("test"));
  mkdir(synth_path("test"), 0700);
  mkdir(path, 0700);
  uint8_t rows[H * W * C] = {0};
  snprintf(path, sizeof path, "%s/yak/0.png", synth_path("test"));
  png_file(path, W, H, PNG_COLOR_TYPE_RGB, 8, rows, NULL, 0);
  synth_add_array(&z, true, synth_path("test"), "x");
  synth_add_array(&z, true, synth_path("test"), "labels");
  z.test_arrays[0].image = TY_TRAIN_IMAGE_PIXELS;
  z.test_arrays[1].image = TY_TRAIN_IMAGE_LABELS;
  ty_train *t = NULL;
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){.log = log}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.test[0].path: ") &&
                strstr(err, "test/yak: class \"yak\" is not a class of the training folder"),
            "%s", err);
  /* image_folder.resize reaches the decoder: Resize(3) of the 6x6 images
   * is 3x3, not the model's 6x6 (no center_crop to make it so). */
  ty_train_config r;
  image_config(&r, true);
  r.train_arrays[0].resize = 3;
  cr_assert_neq(ty_train_create(g, &r, &(ty_train_opts){.log = log}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "/000.png: 3x3 (WxH) after resize 3 but the images must be 6x6"), "%s",
            err);
  ty_train_config_close(&r);
  fclose(log);
  ty_train_config_close(&z);
  ty_graph_destroy(g);

  /* The blobs MLP takes x [N, 8]: no image. */
  o = (synth_mlp){.in = 8, .hidden = 16, .out = 4, .seed = 3};
  g = synth_mlp_build(&o);
  image_config(&z, true);
  cr_assert_neq(ty_train_create(g, &z, &(ty_train_opts){0}, &t, err, sizeof err), 0);
  cr_assert(strstr(err, "config.dataset.train[0].path: image_folder: model input \"x\" is "), "%s",
            err);
  cr_assert(strstr(err, "images feed [N, C, H, W] with C 1 (grayscale) or 3 (RGB)"), "%s", err);
  ty_train_config_close(&c);
  ty_train_config_close(&z);
  ty_graph_destroy(g);
}
