/* SPDX-License-Identifier: Apache-2.0 */
/* Error words, labels and the caller-buffer formatter, all from TY_ERROR_MAP
 * (base.h); libuv names every code outside Trainyard's range.
 *
 * libuv's two namers are weak references: a program that links libuv for
 * anything else (every daemon, rlaunch, the tests) gets libuv's words, while
 * one that does not (trainctl's one-shot commands, which use lib/rpc's
 * ty_rpc_sync) is not made to load libuv for them (a weak reference does
 * not make `-Wl,--as-needed` keep a library) and names the system's error
 * numbers, libuv's codes on Linux, with the C library's words. */
#include "lib/base/base.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#pragma weak uv_strerror
#pragma weak uv_err_name

/* A code libuv would name: -errno, or one of its own (UV_EOF, UV_EAI_*). */
static bool uv_range(int code) {
  return code < 0 && code > -4096;
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
  if (!uv_range(code)) return "unknown error";
  if (uv_strerror) return uv_strerror(code);
  return -code < 3000 ? strerror(-code) : "unknown error";
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
  if (!uv_range(code)) return "ERROR";
  if (uv_err_name) return uv_err_name(code);
  const char *name = -code < 3000 ? strerrorname_np(-code) : NULL;
  return name ? name : "ERROR";
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
