/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shared by the ops/data fuzz targets: puts the input in an anonymous
 * in-memory file so the readers' file paths (mapping, gzip, by-content
 * detection) run exactly as they do on disk, and pushes whatever opens
 * through a dataset and a gather of its first and last samples.
 */
#ifndef TY_TESTS_FUZZ_DATA_COMMON_H
#define TY_TESTS_FUZZ_DATA_COMMON_H

#include "lib/base/base.h"
#include "ops/data/data.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Writes data to a memfd; *out_path names it. Returns the fd or -1. */
static inline int fuzz_memfd(const uint8_t *data, size_t size, char *out_path, size_t len) {
  int fd = memfd_create("fuzz", MFD_CLOEXEC);
  if (fd < 0) return -1;
  for (size_t off = 0; off < size;) {
    ssize_t w = write(fd, data + off, size - off);
    if (w <= 0) {
      close(fd);
      return -1;
    }
    off += (size_t)w;
  }
  snprintf(out_path, len, "/proc/self/fd/%d", fd);
  return fd;
}

/* Gathers the first and last sample of every column (small ones only). */
static inline void fuzz_gather(const ty_dataset *ds) {
  size_t n = ty_dataset_count(ds);
  for (size_t k = 0; k < ty_dataset_n_columns(ds); k++) {
    const ty_data_column *c = ty_dataset_column(ds, k);
    size_t bytes = c->elems * ty_data_type_size(c->to);
    if (c->elems > (1u << 20) || bytes == 0) continue;
    void *buf = malloc(bytes);
    if (buf == NULL) continue;
    ty_dataset_gather(ds, k, 0, buf);
    ty_dataset_gather(ds, k, n - 1, buf);
    char err[TY_ERR_LEN];
    if (c->from != TY_DATA_BOOL && c->from < TY_DATA_F16)
      (void)ty_dataset_check_range(ds, k, 0, 1000, err, sizeof err);
    free(buf);
  }
}

/* An opened array as a one-column dataset fed as float32 (or itself); one
 * of up to 8 channels (dim 1) takes per-channel statistics, so that the
 * channel-by-channel conversion meets arbitrary shapes too. */
static inline void fuzz_dataset(ty_data_array *a) {
  static const float mean[8] = {0.5f, 0.25f, 0, 1, -1, 2, 0.125f, 3};
  static const float std[8] = {0.25f, 0.5f, 1, 2, 3, 0.125f, 4, 1};
  ty_data_feed f = {
      .name = "x", .to = ty_data_convertible(a->type, TY_DATA_F32) ? TY_DATA_F32 : TY_DATA_INVALID};
  if (f.to == TY_DATA_F32 && a->ndims >= 2 && a->dims[1] >= 1 && a->dims[1] <= 8)
    f = (ty_data_feed){.name = "x",
                       .to = f.to,
                       .channel_mean = mean,
                       .channel_std = std,
                       .n_channels = a->dims[1]};
  ty_dataset *ds = NULL;
  char err[TY_ERR_LEN];
  if (ty_dataset_from_arrays(a, &f, 1, &ds, err, sizeof err) == 0) fuzz_gather(ds);
  ty_dataset_destroy(ds);
}

#endif
