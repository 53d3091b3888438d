/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A JSON writer small enough to read in one sitting. `trainctl --json` output
 * is consumed by scripts (jq, Python), so the only hard requirement is that
 * every document is well formed whatever bytes a job name, reason or log line
 * holds: strings are escaped per RFC 8259 and invalid UTF-8 sequences (bare
 * continuation bytes, overlong forms, surrogates, truncated sequences) become
 * U+FFFD. Errors are sticky: the first one is reported by ty_json_finish().
 */
#include "lib/json/json.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

void ty_json_init(ty_json *j, ty_buf *out) {
  memset(j, 0, sizeof *j);
  j->out = out;
  j->first[0] = true;
}

static void put(ty_json *j, const char *s, size_t n) {
  if (j->err == 0) j->err = ty_buf_append(j->out, s, n);
}

/* Writes the separator a value needs at the current position. */
static bool before_value(ty_json *j) {
  if (j->err) return false;
  if (j->object[j->depth] && !j->want_value) {
    j->err = TY_EINVAL; /* a value inside an object needs a key first */
    return false;
  }
  if (j->want_value) {
    j->want_value = false;
  } else {
    if (j->depth == 0 && !j->first[0]) {
      j->err = TY_EINVAL; /* one top-level value per document */
      return false;
    }
    if (!j->first[j->depth]) put(j, ",", 1);
    if (j->lines && j->depth == 1 && !j->object[1]) put(j, "\n", 1);
  }
  j->first[j->depth] = false;
  return j->err == 0;
}

static void begin(ty_json *j, bool object) {
  if (!before_value(j)) return;
  if (j->depth + 1 >= TY_JSON_MAX_DEPTH) {
    j->err = TY_EINVAL;
    return;
  }
  put(j, object ? "{" : "[", 1);
  j->depth++;
  j->first[j->depth] = true;
  j->object[j->depth] = object;
}

static void end(ty_json *j, bool object) {
  if (j->err) return;
  if (j->depth == 0 || j->object[j->depth] != object || j->want_value) {
    j->err = TY_EINVAL;
    return;
  }
  if (j->lines && j->depth == 1 && !object && !j->first[1]) put(j, "\n", 1);
  j->depth--;
  put(j, object ? "}" : "]", 1);
}

void ty_json_begin_object(ty_json *j) {
  begin(j, true);
}
void ty_json_end_object(ty_json *j) {
  end(j, true);
}
void ty_json_begin_array(ty_json *j) {
  begin(j, false);
}
void ty_json_end_array(ty_json *j) {
  end(j, false);
}

void ty_json_key(ty_json *j, const char *key) {
  if (j->err) return;
  if (!j->object[j->depth] || j->want_value) {
    j->err = TY_EINVAL;
    return;
  }
  if (!j->first[j->depth]) put(j, ",", 1);
  j->first[j->depth] = false;
  if (j->err == 0) j->err = ty_json_escape(j->out, key, strlen(key));
  put(j, ":", 1);
  j->want_value = true;
}

static int escape_ascii(ty_buf *out, unsigned char c) {
  switch (c) {
  case '"':
    return ty_buf_append(out, "\\\"", 2);
  case '\\':
    return ty_buf_append(out, "\\\\", 2);
  case '\n':
    return ty_buf_append(out, "\\n", 2);
  case '\r':
    return ty_buf_append(out, "\\r", 2);
  case '\t':
    return ty_buf_append(out, "\\t", 2);
  case '\b':
    return ty_buf_append(out, "\\b", 2);
  case '\f':
    return ty_buf_append(out, "\\f", 2);
  default:
    if (c < 0x20 || c == 0x7F) return ty_buf_printf(out, "\\u%04x", c);
    return ty_buf_append(out, &c, 1);
  }
}

/* Printable ASCII other than the quote and the backslash: copied as is. */
static bool plain(unsigned char c) {
  return c >= 0x20 && c < 0x7F && c != '"' && c != '\\';
}

/* The length of s's leading run of plain bytes. */
static size_t plain_run(const unsigned char *s, size_t n) {
  size_t k = 0;
  while (k < n && plain(s[k]))
    k++;
  return k;
}

int ty_json_escape(ty_buf *out, const char *s, size_t n) {
  const unsigned char *p = (const unsigned char *)s;
  if (n < SIZE_MAX - 2 && plain_run(p, n) == n) { /* most strings: one copy */
    int rc = ty_buf_reserve(out, n + 2);
    if (rc) return rc;
    uint8_t *d = out->data + out->len;
    d[0] = '"';
    memcpy(d + 1, s, n);
    d[n + 1] = '"';
    out->len += n + 2;
    return 0;
  }
  int rc = ty_buf_append(out, "\"", 1);
  size_t i = 0;
  while (rc == 0 && i < n) {
    size_t run = plain_run(p + i, n - i); /* a run of plain bytes in one append */
    if (run) {
      rc = ty_buf_append(out, p + i, run);
      i += run;
      continue;
    }
    size_t len = ty_utf8_decode(p + i, n - i, NULL);
    if (len == 1)
      rc = escape_ascii(out, p[i]);
    else if (len > 1)
      rc = ty_buf_append(out, p + i, len);
    else
      rc = ty_buf_append(out, "\\ufffd", 6);
    i += len ? len : 1;
  }
  if (rc == 0) rc = ty_buf_append(out, "\"", 1);
  return rc;
}

void ty_json_string_n(ty_json *j, const char *s, size_t n) {
  if (before_value(j)) j->err = ty_json_escape(j->out, s, n);
}

void ty_json_string(ty_json *j, const char *s) {
  if (!s)
    ty_json_null(j);
  else
    ty_json_string_n(j, s, strlen(s));
}

static void scalar(ty_json *j, const char *text) {
  if (before_value(j)) put(j, text, strlen(text));
}

/* v's decimal digits, ending at end (not terminated); returns the first. A
 * listing writes a dozen integers per job, and snprintf was most of it. */
static char *digits(uint64_t v, char *end) {
  do
    *--end = (char)('0' + v % 10);
  while (v /= 10);
  return end;
}

void ty_json_int(ty_json *j, int64_t v) {
  char b[24], *p = digits(v < 0 ? 0 - (uint64_t)v : (uint64_t)v, b + sizeof b);
  if (v < 0) *--p = '-';
  if (before_value(j)) put(j, p, (size_t)(b + sizeof b - p));
}

void ty_json_uint(ty_json *j, uint64_t v) {
  char b[24], *p = digits(v, b + sizeof b);
  if (before_value(j)) put(j, p, (size_t)(b + sizeof b - p));
}

/* Finite doubles as %.6g; NaN and infinities (not JSON) as null. */
void ty_json_double(ty_json *j, double v) {
  if (v != v || v > 1e308 || v < -1e308) {
    scalar(j, "null");
    return;
  }
  char b[32];
  snprintf(b, sizeof b, "%.6g", v);
  scalar(j, b);
}

void ty_json_bool(ty_json *j, bool v) {
  scalar(j, v ? "true" : "false");
}
void ty_json_null(ty_json *j) {
  scalar(j, "null");
}

int ty_json_finish(ty_json *j) {
  if (j->err == 0 && (j->depth != 0 || j->want_value || j->first[0])) j->err = TY_EINVAL;
  put(j, "\n", 1);
  return j->err;
}
