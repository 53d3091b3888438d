/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Augmentation of training images (ops/data/augment.c through the loader):
 * every augmented sample is the original shifted by at most the padding on
 * both axes (the same shift on every channel, the padded values the
 * normalised 0 of their channel, also with per-channel statistics) and
 * maybe mirrored; the draws vary between samples and
 * epochs, and depend on (seed, epoch, sample) only, so data-parallel ranks
 * see the single-process batch's samples. Refusals name the file.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/data/npy_file.h"

#define N 48
#define C 2
#define H 4
#define W 5
#define PAD 2

static char dir[TY_TEST_DIR_LEN];
static char path[TY_TEST_DIR_LEN + 32];

/* N images [C, H, W] of uint8, every value distinct within an image. */
static void make_images(void) {
  cr_assert_eq(ty_test_make_dir(dir, "aug"), 0);
  static uint8_t img[N][C][H][W];
  for (int i = 0; i < N; i++)
    for (int v = 0; v < C * H * W; v++)
      (&img[i][0][0][0])[v] = (uint8_t)(1 + v + i);
  snprintf(path, sizeof path, "%s/img.npy", dir);
  npy_write(path, "|u1", "(48, 2, 4, 5)", img, sizeof img);
}

static void remove_images(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(augment, .init = make_images, .fini = remove_images);

static const ty_data_feed feed = {.name = "x",
                                  .to = TY_DATA_F32,
                                  .mean = 0.5f,
                                  .std = 0.25f,
                                  .augment = {.crop_padding = PAD, .hflip = true}};

static int open_set(const ty_data_feed *f, ty_dataset **ds, char *err) {
  ty_data_array a;
  char e[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_array_open(path, &a, e, sizeof e), 0, "%s", e);
  return ty_dataset_from_arrays(&a, f, 1, ds, err, TY_ERR_LEN);
}

/* Every sample of one epoch of a loader over ds (world ranks, this one's
 * share), by sample position in the epoch's order: out[pos * C*H*W]. */
static void epoch_samples(const ty_dataset *ds, uint32_t rank, uint32_t world, uint64_t epoch,
                          float *out) {
  ty_loader_opts o = {.batch_size = 4,
                      .seed = 11,
                      .shuffle = true,
                      .rank = rank,
                      .world_size = world,
                      .drop_last = true,
                      .prefetch = true};
  ty_loader *l;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_loader_create(ds, &o, &l, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_loader_start_epoch(l, epoch, 0), 0);
  ty_batch b;
  size_t p = 0;
  while (ty_loader_next(l, &b) == 1)
    for (uint32_t j = 0; j < b.n; j++, p++)
      memcpy(out + (p * world + rank) * C * H * W, b.x + j * C * H * W, C * H * W * sizeof(float));
  ty_loader_destroy(l);
}

/* The (oy, ox, flip) that made got from the image's plain values, or -1;
 * pad[c] is channel c's padding. */
static int explain(const float *plain, const float *got, const float *pad) {
  for (int flip = 0; flip < 2; flip++)
    for (int oy = -PAD; oy <= PAD; oy++)
      for (int ox = -PAD; ox <= PAD; ox++) {
        bool same = true;
        for (int c = 0; same && c < C; c++)
          for (int y = 0; same && y < H; y++)
            for (int x = 0; same && x < W; x++) {
              int sx = (flip ? W - 1 - x : x) + ox, sy = y + oy;
              float want =
                  sy >= 0 && sy < H && sx >= 0 && sx < W ? plain[(c * H + sy) * W + sx] : pad[c];
              same = got[(c * H + y) * W + x] == want;
            }
        if (same) return ((oy + PAD) * (2 * PAD + 1) + ox + PAD) * 2 + flip;
      }
  return -1;
}

/* Channel 0 as feed's mean and std, channel 1 another pair. */
static const float ch_mean[C] = {0.5f, 0.25f}, ch_std[C] = {0.25f, 0.5f};

static void crops_and_flips(const ty_data_feed *f) {
  ty_dataset *ds, *plain_ds;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(open_set(f, &ds, err), 0, "%s", err);
  ty_data_feed plain = *f;
  plain.augment = (ty_data_augment){0};
  cr_assert_eq(open_set(&plain, &plain_ds, err), 0, "%s", err);
  cr_assert(ty_dataset_augments(ds, 0) && !ty_dataset_augments(plain_ds, 0));
  static float got[N * C * H * W], orig[C * H * W];
  epoch_samples(ds, 0, 1, 0, got);
  uint32_t order[N];
  ty_data_shuffle(11, 0, N, order);
  float pad[C]; /* RandomCrop pads with 0 before Normalize */
  for (int c = 0; c < C; c++)
    pad[c] = f->n_channels ? (0.0f / 255.0f - ch_mean[c]) / ch_std[c]
                           : (0.0f / 255.0f - f->mean) / f->std;
  bool seen[(2 * PAD + 1) * (2 * PAD + 1) * 2] = {false};
  int kinds = 0;
  for (int p = 0; p < N; p++) {
    ty_dataset_gather(plain_ds, 0, order[p], orig);
    int k = explain(orig, got + p * C * H * W, pad);
    cr_assert(k >= 0, "sample %u is no crop or flip of its image", order[p]);
    kinds += !seen[k];
    seen[k] = true;
  }
  cr_assert_geq(kinds, 12, "only %d distinct crops and flips in %d samples", kinds, N);
  ty_dataset_destroy(ds);
  ty_dataset_destroy(plain_ds);
}

Test(augment, samples_are_crops_and_flips_of_the_image_drawn_per_sample) {
  crops_and_flips(&feed);
  ty_data_feed f = feed;
  f.mean = f.std = 0;
  f.channel_mean = ch_mean;
  f.channel_std = ch_std;
  f.n_channels = C;
  crops_and_flips(&f);
}

Test(augment, draws_depend_on_seed_epoch_and_sample_only) {
  ty_dataset *ds;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(open_set(&feed, &ds, err), 0, "%s", err);
  static float one[N * C * H * W], two[N * C * H * W], next[N * C * H * W];
  epoch_samples(ds, 0, 1, 3, one);
  epoch_samples(ds, 0, 2, 3, two); /* two ranks, each its share */
  epoch_samples(ds, 1, 2, 3, two);
  cr_assert_eq(memcmp(one, two, sizeof one), 0, "two ranks saw other samples than one process");
  epoch_samples(ds, 0, 1, 4, next);
  /* Epoch 4's order differs; compare sample by sample through the orders. */
  uint32_t o3[N], o4[N], at4[N];
  ty_data_shuffle(11, 3, N, o3);
  ty_data_shuffle(11, 4, N, o4);
  for (int p = 0; p < N; p++)
    at4[o4[p]] = (uint32_t)p;
  int differ = 0;
  for (int p = 0; p < N; p++)
    differ += memcmp(one + p * C * H * W, next + at4[o3[p]] * C * H * W, C * H * W * 4) != 0;
  cr_assert_geq(differ, N / 2, "epoch 4 augmented only %d of %d samples otherwise", differ, N);
  ty_dataset_destroy(ds);
}

Test(augment, refusals_name_the_file_and_why) {
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN] = "";
  ty_data_feed f = feed;
  f.augment.crop_padding = H + 1;
  cr_assert_neq(open_set(&f, &ds, err), 0);
  cr_assert(strstr(err, path) && strstr(err, "random_crop_padding 5 is larger than the image"),
            "%s", err);
  f = (ty_data_feed){.name = "ids", .to = TY_DATA_I64, .augment = {.hflip = true}};
  cr_assert_neq(open_set(&f, &ds, err), 0);
  cr_assert(strstr(err, "apply to float32 images") && strstr(err, "\"ids\" takes int64"), "%s",
            err);
  cr_assert_null(ds);
}
