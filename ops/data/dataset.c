/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Datasets (images + labels from two IDX files) and the deterministic epoch
 * order.
 *
 * Invariants: a ty_dataset is immutable after load, so any number of loaders
 * and threads may read it. Pixels stay uint8; normalisation goes through a
 * 256-entry float table computed once, exactly (pixel / 255.0f - mean) / std
 * in float32 like torchvision's ToTensor + Normalize.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/base/base.h"
#include "ops/data/data.h"

struct ty_dataset {
  ty_idx images; /* [n, rows, cols] */
  ty_idx labels; /* [n] */
  uint32_t n, rows, cols, num_classes;
  float lut[256];
};

static void build_lut(ty_dataset *ds, const ty_data_opts *opts)
{
  float mean = opts ? opts->mean : 0.0f;
  float std = opts && opts->std != 0.0f ? opts->std : 1.0f;
  for (int v = 0; v < 256; v++)
    ds->lut[v] = ((float)v / 255.0f - mean) / std;
}

/* Checks shapes and labels; fills n, rows, cols, num_classes. */
static int check_pair(ty_dataset *ds, const char *ipath, const char *lpath,
                      uint32_t max_classes, char *err, size_t err_len)
{
  if (ds->images.ndims != 3)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: expected images [N, rows, cols], header has %u dims", ipath,
                   ds->images.ndims);
  if (ds->labels.ndims != 1)
    return ty_errf(err, err_len, TY_EPROTO, "%s: expected labels [N], header has %u dims", lpath,
                   ds->labels.ndims);
  if (ds->images.dims[0] != ds->labels.dims[0])
    return ty_errf(err, err_len, TY_EPROTO, "%s: %u labels for %u images in %s", lpath,
                   ds->labels.dims[0], ds->images.dims[0], ipath);
  ds->n = ds->images.dims[0];
  ds->rows = ds->images.dims[1];
  ds->cols = ds->images.dims[2];
  uint32_t top = 0;
  for (uint32_t i = 0; i < ds->n; i++) {
    uint32_t y = ds->labels.data[i];
    if (max_classes && y >= max_classes)
      return ty_errf(err, err_len, TY_EPROTO, "%s: label %u of sample %u is not below %u", lpath, y,
                     i, max_classes);
    top = y > top ? y : top;
  }
  ds->num_classes = max_classes ? max_classes : top + 1;
  return 0;
}

static int load_pair(const char *ipath, const char *lpath, const ty_data_opts *opts,
                     uint32_t max_classes, ty_dataset **out_ds, char *err, size_t err_len)
{
  if (ipath == NULL || lpath == NULL || out_ds == NULL)
    return TY_EINVAL;
  *out_ds = NULL;
  ty_dataset *ds = calloc(1, sizeof *ds);
  if (ds == NULL)
    return TY_ENOMEM;
  int rc = ty_data_idx_read(ipath, &ds->images, err, err_len);
  if (rc == 0)
    rc = ty_data_idx_read(lpath, &ds->labels, err, err_len);
  if (rc == 0)
    rc = check_pair(ds, ipath, lpath, max_classes, err, err_len);
  if (rc != 0)
    goto fail;
  build_lut(ds, opts);
  *out_ds = ds;
  return 0;
fail:
  ty_dataset_destroy(ds);
  return rc;
}

int ty_data_load_idx(const char *images_path, const char *labels_path,
                     const ty_data_opts *opts, ty_dataset **out_ds, char *err,
                     size_t err_len)
{
  return load_pair(images_path, labels_path, opts, 0, out_ds, err, err_len);
}

int ty_data_load_fashion_mnist(const ty_data_opts *opts, ty_data_split split,
                               ty_dataset **out_ds, char *err, size_t err_len)
{
  const char *dir = opts && opts->dir && opts->dir[0] ? opts->dir : TY_DATA_FASHION_MNIST_DIR;
  const char *prefix = split == TY_DATA_TEST ? "t10k" : "train";
  char ipath[4096], lpath[4096];
  if (snprintf(ipath, sizeof ipath, "%s/%s-images-idx3-ubyte.gz", dir, prefix) >=
          (int)sizeof ipath ||
      snprintf(lpath, sizeof lpath, "%s/%s-labels-idx1-ubyte.gz", dir, prefix) >= (int)sizeof lpath)
    return ty_errf(err, err_len, TY_EINVAL, "dataset.dir: path too long");
  int rc = load_pair(ipath, lpath, opts, 10, out_ds, err, err_len);
  if (rc == TY_ENOTFOUND && err != NULL && err_len > 0) {
    size_t used = strlen(err);
    snprintf(err + used, err_len - used, " (install dataset-fashion-mnist)");
  }
  return rc;
}

void ty_dataset_destroy(ty_dataset *ds)
{
  if (ds == NULL)
    return;
  ty_data_idx_close(&ds->images);
  ty_data_idx_close(&ds->labels);
  free(ds);
}

size_t ty_dataset_count(const ty_dataset *ds) { return ds->n; }
size_t ty_dataset_sample_size(const ty_dataset *ds) { return (size_t)ds->rows * ds->cols; }
uint32_t ty_dataset_num_classes(const ty_dataset *ds) { return ds->num_classes; }
uint8_t ty_dataset_label(const ty_dataset *ds, size_t i) { return ds->labels.data[i]; }

void ty_dataset_shape(const ty_dataset *ds, uint32_t *out_rows, uint32_t *out_cols)
{
  *out_rows = ds->rows;
  *out_cols = ds->cols;
}

const uint8_t *ty_dataset_pixels(const ty_dataset *ds, size_t i)
{
  return ds->images.data + i * ty_dataset_sample_size(ds);
}

void ty_dataset_sample(const ty_dataset *ds, size_t i, float *out)
{
  size_t k = ty_dataset_sample_size(ds);
  const uint8_t *px = ty_dataset_pixels(ds, i);
  for (size_t j = 0; j < k; j++)
    out[j] = ds->lut[px[j]];
}

/* ---- order ------------------------------------------------------------------ */
void ty_data_shuffle(uint64_t seed, uint64_t epoch, uint32_t n, uint32_t *out_order)
{
  /* The key separates epochs: lib/base's SplitMix64 streams for (seed,
   * epoch) and (seed, epoch + 1) are unrelated, and draw j is computed from
   * j alone (counter based), so any rank can compute any swap. */
  uint64_t key = ty_mix2(seed, epoch);
  for (uint32_t i = 0; i < n; i++)
    out_order[i] = i;
  for (uint32_t i = n; i > 1; i--) {
    uint64_t r = ty_mix64(key + (uint64_t)(n - i + 1) * TY_GOLDEN_GAMMA);
    uint32_t j = (uint32_t)(r % i);
    uint32_t t = out_order[i - 1];
    out_order[i - 1] = out_order[j];
    out_order[j] = t;
  }
}

uint32_t ty_data_shard_len(uint32_t n, uint32_t rank, uint32_t world_size)
{
  if (world_size == 0)
    world_size = 1;
  return n / world_size + (rank < n % world_size ? 1 : 0);
}
