/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for ops/data's IDX reader: the pure parser on the raw
 * bytes (with its invariant: header plus payload fill the input exactly),
 * then the same bytes as a file, which also takes the gzip path when the
 * input starts with gzip's magic, and as both halves of an image/label
 * pair; and as a PNG or JPEG image (ops/data/image.c: libpng's and
 * libjpeg's decoding, our size checks and colour conversion), to 1 or 3
 * channels by the input's size, which shares this target's fuzz time.
 */
#include "tests/fuzz/fuzz_data_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The bytes as an image, of any size or of 8x8 pixels. */
static void fuzz_image(const uint8_t *data, size_t size) {
  ty_data_image_want want = {.channels = size & 1 ? 3 : 1};
  if (size & 2) want.height = want.width = 8;
  uint8_t *px = NULL;
  uint32_t h = 0, w = 0;
  char err[TY_ERR_LEN];
  if (ty_data_image_decode(data, size, "fuzz.png", &want, &px, &h, &w, err, sizeof err) == 0) {
    if (!px || !h || !w || (want.height && (h != 8 || w != 8))) abort();
    (void)px[(size_t)want.channels * h * w - 1];
  }
  free(px);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ty_idx idx;
  char err[TY_ERR_LEN];
  fuzz_image(data, size);
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
