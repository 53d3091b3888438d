/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for ops/data's IDX reader: the pure parser on the raw
 * bytes (with its invariant: header plus payload fill the input exactly),
 * then the same bytes as a file, which also takes the gzip path when the
 * input starts with gzip's magic, and as both halves of an image/label
 * pair.
 */
#include "tests/fuzz/fuzz_data_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ty_idx idx;
  char err[TY_ERR_LEN];
  if (ty_data_idx_parse(data, size, "fuzz", &idx, err, sizeof err) == 0 &&
      (size_t)(idx.data - data) + idx.size != size)
    abort();
  char path[64];
  int fd = fuzz_memfd(data, size, path, sizeof path);
  if (fd < 0) return 0;
  if (ty_data_idx_read(path, &idx, err, sizeof err) == 0 && idx.size > 0)
    (void)idx.data[idx.size - 1];
  ty_data_idx_close(&idx);
  ty_data_array a;
  if (ty_data_array_open(path, &a, err, sizeof err) == 0) fuzz_dataset(&a);
  ty_data_array_close(&a);
  ty_dataset *ds = NULL;
  if (ty_data_load_idx(path, path, NULL, &ds, err, sizeof err) == 0) fuzz_gather(ds);
  ty_dataset_destroy(ds);
  close(fd);
  return 0;
}
