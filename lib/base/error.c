/* SPDX-License-Identifier: Apache-2.0 */
/* Error words, labels and the caller-buffer formatter, all from TY_ERROR_MAP
 * (base.h); libuv names every code outside Trainyard's range. */
#include "lib/base/base.h"

#include <stdio.h>
#include <uv.h>

const char *ty_strerror(int code) {
  switch (code) {
  case TY_OK:
    return "success";
#define TY_ERROR_WORDS_(name, c, words)                                                            \
  case TY_##name:                                                                                  \
    return words;
    TY_ERROR_MAP(TY_ERROR_WORDS_)
#undef TY_ERROR_WORDS_
  default:
    break;
  }
  if (code < 0 && code > -4096) return uv_strerror(code);
  return "unknown error";
}

const char *ty_error_label(int code) {
  switch (code) {
  case TY_OK:
    return "OK";
#define TY_ERROR_LABEL_(name, c, words)                                                            \
  case TY_##name:                                                                                  \
    return #name;
    TY_ERROR_MAP(TY_ERROR_LABEL_)
#undef TY_ERROR_LABEL_
  default:
    break;
  }
  if (code < 0 && code > -4096) return uv_err_name(code);
  return "ERROR";
}

int ty_verrf(char *err, size_t err_len, int code, const char *fmt, va_list ap) {
  if (err && err_len > 0) vsnprintf(err, err_len, fmt, ap);
  return code;
}

int ty_errf(char *err, size_t err_len, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(err, err_len, code, fmt, ap);
  va_end(ap);
  return code;
}
