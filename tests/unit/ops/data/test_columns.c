/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/data's datasets of columns: conversions to the model's
 * input types, every refusal of a column, token streams (raw .bin and .npy)
 * cut into windows, range checks, and the loader over several columns with
 * sharding, shuffling and prefetch.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/base/base.h"
#include "ops/data/data.h"
#include "tests/support/tree.h"
#include "tests/unit/ops/data/npy_file.h"

static char dir[TY_TEST_DIR_LEN];

static void make_dir(void) {
  cr_assert_eq(ty_test_make_dir(dir, "cols"), 0);
}

static void remove_dir(void) {
  cr_assert_eq(ty_test_remove_tree(dir), 0, "%s stayed", dir);
}

TestSuite(columns, .init = make_dir, .fini = remove_dir);
TestSuite(tokens, .init = make_dir, .fini = remove_dir);

static const char *path_of(const char *name) {
  static char p[8][256];
  static unsigned next;
  char *s = p[next++ % 8];
  snprintf(s, 256, "%s/%s", dir, name);
  return s;
}

/* Writes a v1 .npy of descr/shape with nbytes of data; returns its path. */
static const char *save(const char *name, const char *descr, const char *shape, const void *data,
                        size_t nbytes) {
  const char *p = path_of(name);
  npy_write(p, descr, shape, data, nbytes);
  return p;
}

static void open_array(const char *path, ty_data_array *a) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_data_array_open(path, a, err, sizeof err), 0, "%s", err);
}

/* A dataset over the given files and feeds; err receives the refusal. */
static int build(const char *const *paths, const ty_data_feed *feeds, size_t n, ty_dataset **ds,
                 char *err) {
  ty_data_array a[TY_DATA_MAX_COLUMNS];
  for (size_t k = 0; k < n; k++)
    open_array(paths[k], &a[k]);
  int rc = ty_dataset_from_arrays(a, feeds, n, ds, err, TY_ERR_LEN);
  for (size_t k = 0; k < n; k++)
    cr_assert_null(a[k].data, "array %zu not moved into the dataset", k);
  return rc;
}

Test(columns, converts_to_the_input_types) {
  double x[4][3];
  int32_t y[4];
  uint8_t img[4][2][2];
  for (int i = 0; i < 4; i++) {
    for (int j = 0; j < 3; j++)
      x[i][j] = i + j / 4.0 + 1e-12;
    y[i] = 7 - i;
    for (int j = 0; j < 4; j++)
      img[i][j / 2][j % 2] = (uint8_t)(i * 60 + j);
  }
  const char *paths[] = {save("x.npy", "<f8", "(4, 3)", x, sizeof x),
                         save("y.npy", "<i4", "(4,)", y, sizeof y),
                         save("img.npy", "|u1", "(4, 2, 2)", img, sizeof img)};
  ty_data_feed f[] = {{.name = "x", .to = TY_DATA_F32},
                      {.name = "labels", .to = TY_DATA_I64},
                      {.name = "pixels", .to = TY_DATA_F32, .mean = 0.5f, .std = 0.25f}};
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(build(paths, f, 3, &ds, err), 0, "%s", err);
  cr_assert_eq(ty_dataset_count(ds), 4u);
  cr_assert_eq(ty_dataset_n_columns(ds), 3u);
  const ty_data_column *c = ty_dataset_column(ds, 2);
  cr_assert_str_eq(c->name, "pixels");
  cr_assert_eq(c->from, TY_DATA_U8);
  cr_assert_eq(c->ndims, 2u);
  cr_assert_eq(c->elems, 4u);
  float xs[3], px[4];
  int64_t lab;
  ty_dataset_gather(ds, 0, 2, xs);
  ty_dataset_gather(ds, 1, 2, &lab);
  ty_dataset_gather(ds, 2, 3, px);
  for (int j = 0; j < 3; j++)
    cr_assert_eq(xs[j], (float)x[2][j]);
  cr_assert_eq(lab, 5);
  for (int j = 0; j < 4; j++) /* torchvision's ToTensor + Normalize, in float32 */
    cr_assert_eq(px[j], ((float)(180 + j) / 255.0f - 0.5f) / 0.25f);
  ty_dataset_destroy(ds);
}

Test(columns, refuses_what_cannot_feed) {
  float fx[6] = {0};
  uint8_t u[3] = {0};
  int64_t l[2] = {0};
  const char *x = save("x.npy", "<f4", "(3, 2)", fx, sizeof fx),
             *y = save("y.npy", "<f4", "(3,)", fx, 12);
  const char *short_y = save("s.npy", "<i8", "(2,)", l, sizeof l),
             *scalar = save("c.npy", "<f4", "()", fx, 4);
  const char *empty = save("e.npy", "<f4", "(0, 2)", fx, 0),
             *hollow = save("h.npy", "|u1", "(3, 0)", u, 0);
  char err[TY_ERR_LEN] = "";
  ty_dataset *ds = NULL;
  ty_data_feed f[2] = {{.name = "x", .to = TY_DATA_F32}, {.name = "labels", .to = TY_DATA_I64}};
  cr_assert_eq(build((const char *[]){x, y}, f, 2, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "y.npy: float32 values cannot feed int64 input \"labels\"") != NULL, "%s",
            err);
  cr_assert_eq(build((const char *[]){x, short_y}, f, 2, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "s.npy: 2 samples, but") != NULL && strstr(err, "x.npy has 3"), "%s", err);
  cr_assert_eq(build((const char *[]){scalar}, f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "c.npy: a 0-d array has no samples") != NULL, "%s", err);
  cr_assert_eq(build((const char *[]){empty}, f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "e.npy: holds no samples") != NULL, "%s", err);
  cr_assert_eq(build((const char *[]){hollow}, f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "h.npy: samples hold no values") != NULL, "%s", err);
  ty_data_feed norm_int = {.name = "ids", .to = TY_DATA_I64, .mean = 1};
  cr_assert_eq(build((const char *[]){short_y}, &norm_int, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "divisor, mean and std apply to float32 inputs; \"ids\" takes int64") !=
                NULL,
            "%s", err);
  ty_data_feed neg = {.name = "x", .to = TY_DATA_F32, .std = -1};
  cr_assert_eq(build((const char *[]){x}, &neg, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "must be >= 0") != NULL, "%s", err);
  cr_assert_null(ds);
}

Test(columns, range_checks_name_the_sample) {
  int64_t y[5] = {0, 3, 9, 10, 2};
  const char *p = save("y.npy", "<i8", "(5,)", y, sizeof y);
  ty_data_feed f = {.name = "labels"};
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(build(&p, &f, 1, &ds, err), 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 0, 0, 11, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 0, 0, 10, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "y.npy: value 10 of sample 3 is outside [0, 10) for \"labels\"") != NULL,
            "%s", err);
  ty_dataset_destroy(ds);
  float fx[2] = {0};
  p = save("f.npy", "<f4", "(2,)", fx, sizeof fx);
  cr_assert_eq(build(&p, &f, 1, &ds, err), 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 0, 0, 10, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "float32 values are not integer ids") != NULL, "%s", err);
  ty_dataset_destroy(ds);
}

/* Three columns whose values all encode the sample index. */
Test(columns, loader_keeps_columns_together) {
  enum { N = 203, WORLD = 3 };
  static float x[N][2];
  static int64_t y[N];
  static uint16_t z[N];
  for (int i = 0; i < N; i++) {
    x[i][0] = (float)i;
    x[i][1] = (float)-i;
    y[i] = i * 3;
    z[i] = (uint16_t)(i + 1000);
  }
  const char *paths[] = {save("x.npy", "<f4", "(203, 2)", x, sizeof x),
                         save("y.npy", "<i8", "(203,)", y, sizeof y),
                         save("z.npy", "<u2", "(203,)", z, sizeof z)};
  ty_data_feed f[] = {
      {.name = "x", .to = TY_DATA_F32}, {.name = "y"}, {.name = "z", .to = TY_DATA_I64}};
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(build(paths, f, 3, &ds, err), 0, "%s", err);
  static int hits[N];
  for (int prefetch = 0; prefetch < 2; prefetch++) {
    memset(hits, 0, sizeof hits);
    for (uint32_t r = 0; r < WORLD; r++) {
      ty_loader_opts o = {.batch_size = 8,
                          .seed = 11,
                          .shuffle = true,
                          .rank = r,
                          .world_size = WORLD,
                          .prefetch = prefetch};
      ty_loader *l = NULL;
      cr_assert_eq(ty_loader_create(ds, &o, &l, err, sizeof err), 0, "%s", err);
      cr_assert_eq(ty_loader_start_epoch(l, 2, 0), 0);
      ty_batch b;
      while (ty_loader_next(l, &b) == 1) {
        const float *bx = b.cols[0];
        const int64_t *by = b.cols[1], *bz = b.cols[2];
        cr_assert_eq((const void *)b.x, b.cols[0]);
        cr_assert_eq((const void *)b.y, b.cols[1]);
        for (uint32_t k = 0; k < b.n; k++) {
          int i = (int)bx[2 * k];
          cr_assert_eq(bx[2 * k + 1], (float)-i);
          cr_assert_eq(by[k], 3 * i);
          cr_assert_eq(bz[k], i + 1000);
          hits[i]++;
        }
      }
      ty_loader_destroy(l);
    }
    for (int i = 0; i < N; i++)
      cr_assert_eq(hits[i], 1, "sample %d seen %d times", i, hits[i]);
  }
  ty_dataset_destroy(ds);
}

/* ---- token streams ------------------------------------------------------------ */
static const char *raw(const char *name, const void *b, size_t n) {
  const char *p = path_of(name);
  FILE *f = fopen(p, "wb");
  cr_assert_not_null(f);
  if (n) cr_assert_eq(fwrite(b, 1, n, f), n);
  cr_assert_eq(fclose(f), 0);
  return p;
}

static ty_dataset *windows(const char *path, ty_data_type type, uint32_t context, uint32_t stride,
                           char *err, int *rc) {
  ty_data_array a;
  ty_dataset *ds = NULL;
  ty_data_feed in = {.name = "idx", .to = TY_DATA_I64}, lab = {.name = "labels", .to = TY_DATA_I64};
  *rc = ty_data_tokens_open(path, type, &a, err, TY_ERR_LEN);
  if (*rc == 0) *rc = ty_dataset_from_tokens(&a, context, stride, &in, &lab, &ds, err, TY_ERR_LEN);
  ty_data_array_close(&a);
  return ds;
}

Test(tokens, windows_shift_labels_by_one) {
  uint16_t t[11];
  for (int i = 0; i < 11; i++)
    t[i] = (uint16_t)(100 + i);
  const char *p = raw("t.bin", t, sizeof t);
  char err[TY_ERR_LEN] = "";
  int rc;
  ty_dataset *ds = windows(p, TY_DATA_U16, 4, 0, err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(ty_dataset_count(ds), 2u); /* (11 - 1) / 4 windows of 5 tokens */
  const ty_data_column *c = ty_dataset_column(ds, 0);
  cr_assert_eq(c->ndims, 1u);
  cr_assert_eq(c->dims[0], 4u);
  int64_t in[4], lab[4];
  ty_dataset_gather(ds, 0, 1, in);
  ty_dataset_gather(ds, 1, 1, lab);
  for (int j = 0; j < 4; j++) {
    cr_assert_eq(in[j], 104 + j);
    cr_assert_eq(lab[j], 105 + j);
  }
  ty_dataset_destroy(ds);
  ds = windows(p, TY_DATA_U16, 4, 1, err, &rc); /* every start */
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(ty_dataset_count(ds), 7u);
  ty_dataset_gather(ds, 1, 6, lab);
  cr_assert_eq(lab[3], 110); /* the stream's last token */
  ty_dataset_destroy(ds);
}

Test(tokens, reads_int32_and_npy_streams) {
  int32_t t[9];
  for (int i = 0; i < 9; i++)
    t[i] = 70000 + i;
  char err[TY_ERR_LEN] = "";
  int rc;
  ty_dataset *ds = windows(raw("t32.bin", t, sizeof t), TY_DATA_I32, 2, 0, err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(ty_dataset_count(ds), 4u);
  int64_t in[2];
  ty_dataset_gather(ds, 0, 3, in);
  cr_assert_eq(in[0], 70006);
  ty_dataset_destroy(ds);
  /* A .npy carries its own type: the configured one does not matter. */
  ds = windows(save("t.npy", "<i4", "(9,)", t, sizeof t), TY_DATA_INVALID, 2, 0, err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(ty_dataset_column(ds, 0)->from, TY_DATA_I32);
  ty_dataset_destroy(ds);
}

Test(tokens, rejects_bad_streams) {
  uint8_t b[7] = {0};
  char err[TY_ERR_LEN] = "";
  int rc;
  cr_assert_null(windows(raw("odd.bin", b, 7), TY_DATA_U16, 2, 0, err, &rc));
  cr_assert_eq(rc, TY_EPROTO);
  cr_assert(strstr(err, "odd.bin: 7 bytes is not a whole number of uint16 token ids") != NULL, "%s",
            err);
  cr_assert_null(windows(raw("t.bin", b, 6), TY_DATA_INVALID, 2, 0, err, &rc));
  cr_assert_eq(rc, TY_EINVAL);
  cr_assert(strstr(err, "raw token ids must be uint16 or int32") != NULL, "%s", err);
  cr_assert_null(windows(raw("short.bin", b, 6), TY_DATA_U16, 3, 0, err, &rc));
  cr_assert_eq(rc, TY_EINVAL);
  cr_assert(strstr(err, "short.bin: 3 tokens, fewer than one window of context + 1 = 4") != NULL,
            "%s", err);
  cr_assert_null(windows(raw("zero.bin", b, 6), TY_DATA_U16, 0, 0, err, &rc));
  cr_assert(strstr(err, "context length must be > 0") != NULL, "%s", err);
  float f[4] = {0};
  cr_assert_null(windows(save("f.npy", "<f4", "(4,)", f, sizeof f), TY_DATA_U16, 2, 0, err, &rc));
  cr_assert(
      strstr(err,
             "a token stream must be 1-D uint16, int32, uint32 or int64; this is float32 (4,)") !=
          NULL,
      "%s", err);
  cr_assert_null(windows(save("m.npy", "<i4", "(2, 2)", f, sizeof f), TY_DATA_U16, 1, 0, err, &rc));
  cr_assert(strstr(err, "this is int32 (2, 2)") != NULL, "%s", err);
  cr_assert_null(windows(path_of("none.bin"), TY_DATA_U16, 2, 0, err, &rc));
  cr_assert_eq(rc, TY_ENOTFOUND);
}

Test(tokens, vocabulary_check_names_the_position) {
  uint16_t t[8] = {1, 2, 3, 4, 5, 50, 6, 7};
  char err[TY_ERR_LEN] = "";
  int rc;
  ty_dataset *ds = windows(raw("v.bin", t, sizeof t), TY_DATA_U16, 3, 0, err, &rc);
  cr_assert_eq(rc, 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 0, 0, 51, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_dataset_check_range(ds, 1, 0, 50, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "v.bin: token 50 at position 5 is outside [0, 50) for \"labels\"") != NULL,
            "%s", err);
  ty_dataset_destroy(ds);
}

/* ImageNet's statistics, as torchvision's examples give them. */
static const float in_mean[3] = {0.485f, 0.456f, 0.406f}, in_std[3] = {0.229f, 0.224f, 0.225f};

/* uint8 [N, 3, H, W] with channel_mean and channel_std is bit for bit
 * torchvision's Normalize(mean, std)(ToTensor()(img)) in float32: the
 * pixel / 255, minus the channel's mean, divided by its std (sub_ then
 * div_). The values cover all 256 bytes in every channel. A float32
 * [N, F] array (a CSV's features) takes one pair per feature. */
Test(columns, normalises_per_channel_as_torchvision) {
  enum { N = 4, C = 3, HW = 64 };
  static uint8_t img[N][C][HW];
  for (int i = 0; i < N; i++)
    for (int c = 0; c < C; c++)
      for (int p = 0; p < HW; p++)
        img[i][c][p] = (uint8_t)(i * HW + p * (2 * c + 1) + 37 * c);
  float feats[N][2] = {{1, -2}, {3.5f, 0}, {-1, 8}, {0.25f, 1e3f}};
  const char *paths[] = {save("img.npy", "|u1", "(4, 3, 8, 8)", img, sizeof img),
                         save("f.npy", "<f4", "(4, 2)", feats, sizeof feats)};
  const float fm[2] = {0.5f, -1}, fs[2] = {2, 0.3f};
  ty_data_feed f[] = {
      {.name = "x",
       .to = TY_DATA_F32,
       .channel_mean = in_mean,
       .channel_std = in_std,
       .n_channels = 3},
      {.name = "t", .to = TY_DATA_F32, .channel_mean = fm, .channel_std = fs, .n_channels = 2}};
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(build(paths, f, 2, &ds, err), 0, "%s", err);
  static float got[C][HW];
  float t[2];
  for (int i = 0; i < N; i++) {
    ty_dataset_gather(ds, 0, (size_t)i, got);
    for (int c = 0; c < C; c++)
      for (int p = 0; p < HW; p++) {
        float want = ((float)img[i][c][p] / 255.0f - in_mean[c]) / in_std[c];
        cr_assert_eq(memcmp(&got[c][p], &want, 4), 0, "sample %d channel %d value %d: %.9g != %.9g",
                     i, c, p, (double)got[c][p], (double)want);
      }
    ty_dataset_gather(ds, 1, (size_t)i, t);
    for (int c = 0; c < 2; c++)
      cr_assert_eq(t[c], (feats[i][c] - fm[c]) / fs[c]);
  }
  ty_dataset_destroy(ds);
}

/* Each refusal of per-channel statistics names the file and the values. */
Test(columns, refuses_channel_stats_that_do_not_apply) {
  uint8_t img[2][3][2][2] = {{{{0}}}};
  int64_t ids[2] = {0, 1};
  const char *x = save("x.npy", "|u1", "(2, 3, 2, 2)", img, sizeof img),
             *flat = save("flat.npy", "|u1", "(2,)", img, 2),
             *y = save("y.npy", "<i8", "(2,)", ids, sizeof ids),
             *rows = save("rows.npy", "|u1", "(2, 3, 4)", img, 24);
  ty_data_feed f = {.name = "x", .to = TY_DATA_F32, .channel_mean = in_mean, .channel_std = in_std};
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN] = "";
  f.n_channels = 2;
  cr_assert_eq(build(&x, &f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "x.npy: channel_mean [0.485, 0.456] and channel_std [0.229, 0.224] have "
                        "2 values, but the array has 3 channels (dim 1; samples are (3, 2, 2))"),
            "%s", err);
  f.n_channels = 3;
  cr_assert_eq(build(&flat, &f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "flat.npy: channel_mean [0.485, 0.456, 0.406] and channel_std [0.229, "
                        "0.224, 0.225] need a channel dim (dim 1); the array is 1-D"),
            "%s", err);
  ty_data_feed lab = f;
  lab.name = "labels";
  lab.to = TY_DATA_I64;
  cr_assert_eq(build(&y, &lab, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "y.npy: channel_mean [0.485, 0.456, 0.406] and channel_std [0.229, 0.224, "
                        "0.225] apply to float32 inputs; \"labels\" takes int64"),
            "%s", err);
  f.mean = 0.5f;
  cr_assert_eq(build(&x, &f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "x.npy: mean 0.5 and std 0 (one for every channel) are set besides "
                        "channel_mean [0.485, 0.456, 0.406]"),
            "%s", err);
  f.mean = 0;
  float bad[2][3] = {{0.2f, 0, 0.2f}, {0.2f, 0.2f, NAN}};
  for (int k = 0; k < 2; k++) {
    f.channel_std = bad[k];
    cr_assert_eq(build(&x, &f, 1, &ds, err), TY_EINVAL);
    cr_assert(strstr(err, "x.npy: channel ") && strstr(err, "every channel_std finite and > 0") &&
                  strstr(err, k ? "channel 2 has mean 0.406 and std nan" : "channel_std [0.2, 0, "),
              "%s", err);
  }
  /* A 2-D sample's channels would be the crop's H: padding is refused. */
  f.channel_std = in_std;
  f.augment.crop_padding = 1;
  cr_assert_eq(build(&rows, &f, 1, &ds, err), TY_EINVAL);
  cr_assert(strstr(err, "rows.npy: random_crop_padding with channel_mean and channel_std needs "
                        "samples [C, H, W]"),
            "%s", err);
  cr_assert_null(ds);
}
