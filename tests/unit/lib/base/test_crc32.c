/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/base/crc32.c: the CRC-32 check value, and zlib's
 * crc32() over many lengths, whole and chained. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <zlib.h>

#include "lib/base/base.h"

Test(crc32, matches_zlib) {
  uint8_t data[1000];
  for (size_t i = 0; i < sizeof data; i++)
    data[i] = (uint8_t)(i * 31 + 3);
  cr_assert_eq(ty_crc32(0, "123456789", 9), 0xCBF43926u); /* the check value */
  cr_assert_eq(ty_crc32(0, NULL, 0), 0u);
  for (size_t len = 0; len <= sizeof data; len += 37) {
    cr_assert_eq(ty_crc32(0, data, len), (uint32_t)crc32(0L, data, (uInt)len), "length %zu", len);
    uint32_t chained = ty_crc32(ty_crc32(0, data, len / 2), data + len / 2, len - len / 2);
    cr_assert_eq(chained, ty_crc32(0, data, len), "chained, length %zu", len);
  }
}
