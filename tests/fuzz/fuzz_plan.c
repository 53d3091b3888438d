/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the plan file decoder (ops/plan/codec.c): any bytes
 * in; a plan that decodes must encode and decode again to the same bytes
 * (the decoder accepts only what the encoder can write), and print as
 * text and JSON without reading outside it. Each input is decoded twice:
 * as it is (the CRC check) and with its last four bytes replaced by the
 * right CRC, so mutations reach the fields behind the check.
 */
#include "ops/plan/plan.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void one(const uint8_t *data, size_t size) {
  char err[TY_ERR_LEN];
  ty_plan *p = NULL, *q = NULL;
  if (ty_plan_decode(data, size, &p, err, sizeof err) != 0) {
    if (p || !err[0]) abort(); /* a refusal names its cause and returns nothing */
    return;
  }
  ty_buf a, b, text;
  ty_buf_init(&a);
  ty_buf_init(&b);
  ty_buf_init(&text);
  if (ty_plan_encode(p, &a) != 0 || ty_plan_decode(a.data, a.len, &q, err, sizeof err) != 0 ||
      ty_plan_encode(q, &b) != 0 || a.len != b.len || memcmp(a.data, b.data, a.len) != 0)
    abort();
  ty_plan_to_text(p, &text);
  ty_plan_to_json(p, &text);
  ty_buf_close(&a);
  ty_buf_close(&b);
  ty_buf_close(&text);
  ty_plan_destroy(p);
  ty_plan_destroy(q);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  one(data, size);
  if (size < 8) return 0;
  uint8_t *fixed = malloc(size);
  if (!fixed) return 0;
  memcpy(fixed, data, size);
  uint32_t c = (uint32_t)crc32(0L, fixed, (uInt)(size - 4));
  for (int i = 0; i < 4; i++)
    fixed[size - 4 + (size_t)i] = (uint8_t)(c >> (8 * i));
  one(fixed, size);
  free(fixed);
  return 0;
}
