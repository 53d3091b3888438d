/* SPDX-License-Identifier: Apache-2.0 */
/*
 * CRC-32 (IEEE 802.3, reflected, the polynomial and framing of zlib's
 * crc32()), for the plan file's trailer: trainctl decodes plans and would
 * otherwise load zlib for this one function (issue 20 item 3: each shared
 * library costs every trainctl process its mapping, relocations and about
 * ten system calls). The table is built by the compiler; one table lookup
 * per byte is plenty for plans of a few hundred kilobytes.
 */
#include "lib/base/base.h"

#define POLY 0xEDB88320u
#define STEP(c) (((c) >> 1) ^ (((c)&1u) ? POLY : 0u))
#define ENTRY(n) STEP(STEP(STEP(STEP(STEP(STEP(STEP(STEP((uint32_t)(n)))))))))
#define ROW4(n) ENTRY(n), ENTRY((n) + 1), ENTRY((n) + 2), ENTRY((n) + 3)
#define ROW16(n) ROW4(n), ROW4((n) + 4), ROW4((n) + 8), ROW4((n) + 12)
#define ROW64(n) ROW16(n), ROW16((n) + 16), ROW16((n) + 32), ROW16((n) + 48)

static const uint32_t table[256] = {ROW64(0), ROW64(64), ROW64(128), ROW64(192)};

uint32_t ty_crc32(uint32_t crc, const void *data, size_t len) {
  const uint8_t *p = data;
  crc = ~crc;
  for (size_t i = 0; i < len; i++)
    crc = table[(crc ^ p[i]) & 0xffu] ^ (crc >> 8);
  return ~crc;
}
