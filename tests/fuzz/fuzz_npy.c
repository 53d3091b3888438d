/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for ops/data's .npy reader: the pure header parser on
 * the raw bytes (with its invariant: header plus data fill the input
 * exactly), then the same bytes as a file opened as an array, as an .npz
 * archive's array "x" (libzip's reading and our member checks) and as a
 * token stream, each pushed through a dataset.
 */
#include "tests/fuzz/fuzz_data_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ty_npy_info info;
  char err[TY_ERR_LEN];
  if (ty_data_npy_parse(data, size, "fuzz.npy", &info, err, sizeof err) == 0 &&
      info.data_offset + info.data_bytes != size)
    abort();
  char path[64];
  int fd = fuzz_memfd(data, size, path, sizeof path);
  if (fd < 0) return 0;
  ty_data_array a;
  if (ty_data_array_open(path, &a, err, sizeof err) == 0) fuzz_dataset(&a);
  ty_data_array_close(&a);
  if (ty_data_npz_open(path, "x", &a, err, sizeof err) == 0) fuzz_dataset(&a);
  ty_data_array_close(&a);
  if (ty_data_tokens_open(path, TY_DATA_U16, &a, err, sizeof err) == 0) {
    ty_data_feed in = {.name = "idx", .to = TY_DATA_I64},
                 lab = {.name = "labels", .to = TY_DATA_I64};
    ty_dataset *ds = NULL;
    if (ty_dataset_from_tokens(&a, 3, (uint32_t)(size % 5), &in, &lab, &ds, err, sizeof err) == 0)
      fuzz_gather(ds);
    ty_dataset_destroy(ds);
  }
  ty_data_array_close(&a);
  close(fd);
  return 0;
}
