/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for lib/json/json.c: escaping, UTF-8 repair, structure, misuse. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "lib/json/json.h"

static char *escaped(const char *s, size_t n) {
  static char out[512];
  ty_buf b;
  ty_buf_init(&b);
  cr_assert_eq(ty_json_escape(&b, s, n), 0);
  cr_assert_lt(b.len, sizeof out);
  memcpy(out, b.data, b.len);
  out[b.len] = '\0';
  ty_buf_close(&b);
  return out;
}
#define ESC(lit) escaped(lit, sizeof(lit) - 1)

Test(json_escape, quotes_backslashes_and_controls) {
  cr_assert_str_eq(ESC("plain"), "\"plain\"");
  cr_assert_str_eq(ESC("a\"b\\c"), "\"a\\\"b\\\\c\"");
  cr_assert_str_eq(ESC("l1\nl2\r\t\b\f"), "\"l1\\nl2\\r\\t\\b\\f\"");
  cr_assert_str_eq(ESC("\x01\x1f\x7f"), "\"\\u0001\\u001f\\u007f\"");
  cr_assert_str_eq(ESC("nul\0byte"), "\"nul\\u0000byte\"");
  cr_assert_str_eq(ESC("</script>"), "\"</script>\"");
  cr_assert_str_eq(ESC(""), "\"\"");
}

Test(json_escape, valid_utf8_passes_invalid_becomes_replacement) {
  cr_assert_str_eq(ESC("h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x9a\x82"),
                   "\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x9a\x82\"");
  cr_assert_str_eq(ESC("\x80"), "\"\\ufffd\"");                       /* bare continuation */
  cr_assert_str_eq(ESC("\xc0\xaf"), "\"\\ufffd\\ufffd\"");            /* overlong '/' */
  cr_assert_str_eq(ESC("\xed\xa0\x80"), "\"\\ufffd\\ufffd\\ufffd\""); /* surrogate */
  cr_assert_str_eq(ESC("\xe2\x82"), "\"\\ufffd\\ufffd\"");            /* truncated */
  cr_assert_str_eq(ESC("\xf5\x80\x80\x80"), "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* > U+10FFFF */
  cr_assert_str_eq(ESC("a\xffz"), "\"a\\ufffdz\"");
}

Test(json_writer, integers_at_their_limits) {
  ty_buf b;
  ty_buf_init(&b);
  ty_json j;
  ty_json_init(&j, &b);
  ty_json_begin_array(&j);
  ty_json_int(&j, INT64_MIN), ty_json_int(&j, INT64_MAX), ty_json_int(&j, 0), ty_json_int(&j, -7);
  ty_json_uint(&j, 0), ty_json_uint(&j, UINT64_MAX), ty_json_uint(&j, 10);
  ty_json_end_array(&j);
  cr_assert_eq(ty_json_finish(&j), 0);
  ty_buf_append(&b, "", 1);
  cr_assert_str_eq((const char *)b.data, "[-9223372036854775808,9223372036854775807,0,-7,0,"
                                         "18446744073709551615,10]\n");
  ty_buf_close(&b);
}

Test(json_writer, nested_document) {
  ty_buf b;
  ty_buf_init(&b);
  ty_json j;
  ty_json_init(&j, &b);
  ty_json_begin_object(&j);
  ty_json_key(&j, "id"), ty_json_uint(&j, 18446744073709551615ull);
  ty_json_key(&j, "n"), ty_json_int(&j, -42);
  ty_json_key(&j, "ok"), ty_json_bool(&j, true);
  ty_json_key(&j, "none"), ty_json_string(&j, NULL);
  ty_json_key(&j, "list"), ty_json_begin_array(&j);
  ty_json_string(&j, "a\"");
  ty_json_begin_object(&j), ty_json_end_object(&j);
  ty_json_begin_array(&j), ty_json_end_array(&j);
  ty_json_end_array(&j);
  ty_json_key(&j, "k\n"), ty_json_string_n(&j, "xyz", 2);
  ty_json_end_object(&j);
  cr_assert_eq(ty_json_finish(&j), 0);
  ty_buf_append(&b, "", 1);
  cr_assert_str_eq((char *)b.data,
                   "{\"id\":18446744073709551615,\"n\":-42,\"ok\":true,\"none\":null,"
                   "\"list\":[\"a\\\"\",{},[]],\"k\\n\":\"xy\"}\n");
  ty_buf_close(&b);
}

Test(json_writer, lines_mode_puts_one_record_per_line) {
  ty_buf b;
  ty_buf_init(&b);
  ty_json j;
  ty_json_init(&j, &b);
  j.lines = true;
  ty_json_begin_array(&j);
  for (int i = 1; i <= 2; i++) {
    ty_json_begin_object(&j);
    ty_json_key(&j, "id"), ty_json_int(&j, i);
    ty_json_key(&j, "tags"), ty_json_begin_array(&j), ty_json_int(&j, 0), ty_json_int(&j, 1);
    ty_json_end_array(&j);
    ty_json_end_object(&j);
  }
  ty_json_end_array(&j);
  cr_assert_eq(ty_json_finish(&j), 0);
  ty_buf_append(&b, "", 1);
  cr_assert_str_eq((char *)b.data, "[\n{\"id\":1,\"tags\":[0,1]},\n{\"id\":2,\"tags\":[0,1]}\n]\n");
  ty_buf_close(&b);

  ty_buf_init(&b);
  ty_json_init(&j, &b);
  j.lines = true;
  ty_json_begin_array(&j), ty_json_end_array(&j);
  cr_assert_eq(ty_json_finish(&j), 0);
  cr_assert_eq(b.len, 3u); /* "[]\n" */
  ty_buf_close(&b);
}

typedef void (*misuse_fn)(ty_json *j);
static void value_without_key(ty_json *j) {
  ty_json_begin_object(j), ty_json_int(j, 1);
}
static void key_in_array(ty_json *j) {
  ty_json_begin_array(j), ty_json_key(j, "k");
}
static void unbalanced(ty_json *j) {
  ty_json_begin_object(j);
}
static void wrong_end(ty_json *j) {
  ty_json_begin_object(j), ty_json_end_array(j);
}
static void dangling_key(ty_json *j) {
  ty_json_begin_object(j), ty_json_key(j, "k"), ty_json_end_object(j);
}
static void two_roots(ty_json *j) {
  ty_json_int(j, 1), ty_json_int(j, 2);
}
static void empty_doc(ty_json *j) {
  (void)j;
}
static void too_deep(ty_json *j) {
  for (int i = 0; i < TY_JSON_MAX_DEPTH + 1; i++)
    ty_json_begin_array(j);
}

Test(json_writer, misuse_is_reported) {
  misuse_fn cases[] = {value_without_key, key_in_array, unbalanced, wrong_end,
                       dangling_key,      two_roots,    empty_doc,  too_deep};
  for (size_t i = 0; i < TY_ARRAY_LEN(cases); i++) {
    ty_buf b;
    ty_buf_init(&b);
    ty_json j;
    ty_json_init(&j, &b);
    cases[i](&j);
    cr_expect_eq(ty_json_finish(&j), TY_EINVAL, "case %zu", i);
    ty_buf_close(&b);
  }
}
