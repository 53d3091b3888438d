/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/base: duration and size parsing, the byte buffer, the
 * error table and formatter, the RNG and overflow checks. */
#include <criterion/criterion.h>
#include <string.h>

#include <uv.h>

#include "lib/base/base.h"

Test(duration, accepts_units_and_clock_forms) {
  uint32_t s = 0;
  cr_assert_eq(ty_parse_duration("90", &s), 0); cr_assert_eq(s, 90u);
  cr_assert_eq(ty_parse_duration("15m", &s), 0); cr_assert_eq(s, 900u);
  cr_assert_eq(ty_parse_duration("2h", &s), 0); cr_assert_eq(s, 7200u);
  cr_assert_eq(ty_parse_duration("1d", &s), 0); cr_assert_eq(s, 86400u);
  cr_assert_eq(ty_parse_duration("1:30:00", &s), 0); cr_assert_eq(s, 5400u);
  cr_assert_eq(ty_parse_duration("30:05", &s), 0); cr_assert_eq(s, 1805u);
}

Test(duration, rejects_garbage) {
  uint32_t s = 0;
  const char *bad[] = {"", "x", "5x", "5mm", "-3", "1:2:3:4", "::", "99999999999"};
  for (size_t i = 0; i < TY_ARRAY_LEN(bad); i++)
    cr_assert_eq(ty_parse_duration(bad[i], &s), TY_EINVAL, "accepted %s", bad[i]);
}

Test(size, parses_suffixes) {
  uint64_t b = 0;
  cr_assert_eq(ty_parse_size("512", &b), 0); cr_assert_eq(b, 512u);
  cr_assert_eq(ty_parse_size("16M", &b), 0); cr_assert_eq(b, 16u << 20);
  cr_assert_eq(ty_parse_size("2GiB", &b), 0); cr_assert_eq(b, 2ull << 30);
  cr_assert_eq(ty_parse_size("2Q", &b), TY_EINVAL);
  cr_assert_eq(ty_parse_size("G", &b), TY_EINVAL);
}

Test(buf, appends_printf_and_consumes) {
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_buf_printf(&b, "%s-%d", "job", 42), 0);
  cr_assert_eq(b.len, 6u);
  cr_assert_eq(memcmp(b.data, "job-42", 6), 0);
  ty_buf_consume(&b, 4);
  cr_assert_eq(b.len, 2u);
  cr_assert_eq(memcmp(b.data, "42", 2), 0);
  ty_buf_close(&b);
}

Test(strerror, names_own_and_libuv_codes) {
  cr_assert_str_eq(ty_strerror(TY_ETOOBIG), "frame exceeds the maximum frame size");
  cr_assert_str_eq(ty_strerror(UV_ECONNREFUSED), "connection refused");
}

Test(errors, words_and_labels_come_from_one_table) {
  cr_assert_str_eq(ty_strerror(TY_EPERM), "permission denied");
  cr_assert_str_eq(ty_error_label(TY_EPERM), "EPERM");
  cr_assert_str_eq(ty_error_label(0), "OK");
  cr_assert_str_eq(ty_error_label(UV_ECONNREFUSED), "ECONNREFUSED");
  cr_assert_str_eq(ty_error_label(-99999), "ERROR");
}

Test(errors, errf_formats_and_returns_the_code) {
  char err[TY_ERR_LEN];
  cr_assert_eq(ty_errf(err, sizeof err, TY_EINVAL, "%s: must be > %d", "batch_size", 0), TY_EINVAL);
  cr_assert_str_eq(err, "batch_size: must be > 0");
  cr_assert_eq(ty_errf(NULL, 0, TY_EIO, "ignored"), TY_EIO);
  char tiny[4];
  ty_errf(tiny, sizeof tiny, TY_EINVAL, "truncated");
  cr_assert_str_eq(tiny, "tru");
}

Test(rng, splitmix_is_counter_based_and_deterministic) {
  ty_rng a = ty_rng_make(42), b = ty_rng_make(42);
  uint64_t first = ty_rng_next(&a);
  cr_assert_eq(first, ty_rng_next(&b));
  cr_assert_eq(first, ty_mix64(42 + TY_GOLDEN_GAMMA));
  cr_assert_neq(ty_mix2(1, 2), ty_mix2(1, 3));
  for (int i = 0; i < 1000; i++) {
    float u = ty_rng_uniform(&a);
    cr_assert(u >= 0.0f && u < 1.0f);
  }
}

Test(alloc, mul_overflow_is_detected) {
  size_t out = 0;
  cr_assert(!ty_mul_overflow(1000, 1000, &out));
  cr_assert_eq(out, 1000000u);
  cr_assert(ty_mul_overflow(SIZE_MAX / 2, 3, &out));
}
