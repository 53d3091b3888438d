/* SPDX-License-Identifier: Apache-2.0 */
/* Error words, labels and the caller-buffer formatter, all from TY_ERROR_MAP
 * (base.h); every code outside Trainyard's range is named from libuv's own
 * table of its codes, UV_ERRNO_MAP in uv.h, the words and names that
 * uv_strerror and uv_err_name return. A header's table, not a call: a
 * program that uses nothing else of libuv (trainctl's one-shot commands,
 * on lib/rpc's ty_rpc_sync) is not linked against it for its errors. */
#include "lib/base/base.h"

#include <stdio.h>
#include <uv.h>

/* libuv's words for one of its codes, or NULL. */
static const char *uv_words(int code) {
  switch (code) {
#define TY_UV_WORDS_(name, words)                                                                  \
  case UV_##name:                                                                                  \
    return words;
    UV_ERRNO_MAP(TY_UV_WORDS_)
#undef TY_UV_WORDS_
  default:
    return NULL;
  }
}

/* libuv's name ("ECONNREFUSED") for one of its codes, or NULL. */
static const char *uv_label(int code) {
  switch (code) {
#define TY_UV_LABEL_(name, words)                                                                  \
  case UV_##name:                                                                                  \
    return #name;
    UV_ERRNO_MAP(TY_UV_LABEL_)
#undef TY_UV_LABEL_
  default:
    return NULL;
  }
}

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
  const char *words = uv_words(code);
  return words ? words : "unknown error";
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
  const char *label = uv_label(code);
  return label ? label : "ERROR";
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
