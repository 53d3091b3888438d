/* SPDX-License-Identifier: Apache-2.0 */
#include "tests/unit/ops/data/npy_file.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t npy_image(uint8_t *out, int major, const char *header, const void *data, size_t nbytes) {
  size_t lenlen = major == 1 ? 2 : 4, pre = 8 + lenlen, hl = strlen(header) + 1;
  while ((pre + hl) % 64)
    hl++;
  memcpy(out, "\x93NUMPY", 6);
  out[6] = (uint8_t)major;
  out[7] = 0;
  for (size_t i = 0; i < lenlen; i++)
    out[8 + i] = (uint8_t)(hl >> (8 * i));
  memset(out + pre, ' ', hl);
  memcpy(out + pre, header, strlen(header));
  out[pre + hl - 1] = '\n';
  if (nbytes) memcpy(out + pre + hl, data, nbytes);
  return pre + hl + nbytes;
}

void npy_write(const char *path, const char *descr, const char *shape, const void *data,
               size_t nbytes) {
  char h[256];
  snprintf(h, sizeof h, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
  uint8_t *buf = malloc(128 + strlen(h) + nbytes);
  cr_assert_not_null(buf);
  size_t n = npy_image(buf, 1, h, data, nbytes);
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f, "%s", path);
  cr_assert_eq(fwrite(buf, 1, n, f), n);
  cr_assert_eq(fclose(f), 0);
  free(buf);
}
