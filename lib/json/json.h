/* SPDX-License-Identifier: Apache-2.0 */
/*
 * lib/json: a small JSON writer into a ty_buf, shared by `trainctl --json`
 * (cli/) and the planner's plan documents (ops/plan/).
 *
 * Writes compact, well-formed JSON into a ty_buf. Strings are escaped per RFC
 * 8259 and invalid UTF-8 becomes U+FFFD, so any bytes a user put in a job name
 * still yield a document every parser accepts. Commas and nesting are tracked
 * by the writer; misuse (a value where a key is due, unbalanced ends) makes
 * ty_json_finish() fail with TY_EINVAL.
 */
#ifndef TY_LIB_JSON_JSON_H
#define TY_LIB_JSON_JSON_H

#include "lib/base/base.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TY_JSON_MAX_DEPTH 32
typedef struct ty_json {
  ty_buf *out;
  int depth;
  int err;
  bool first[TY_JSON_MAX_DEPTH]; /* nothing written yet at this level */
  bool object[TY_JSON_MAX_DEPTH];
  bool want_value; /* a key was written, its value is due */
  /* Set after init: each element of a top-level array goes on its own line,
   * so `grep -c '"id"'` counts records, as shell scripts expect. */
  bool lines;
} ty_json;
void ty_json_init(ty_json *j, ty_buf *out);
void ty_json_begin_object(ty_json *j);
void ty_json_end_object(ty_json *j);
void ty_json_begin_array(ty_json *j);
void ty_json_end_array(ty_json *j);
void ty_json_key(ty_json *j, const char *key);
void ty_json_string(ty_json *j, const char *s); /* NULL writes null */
void ty_json_string_n(ty_json *j, const char *s, size_t n);
void ty_json_int(ty_json *j, int64_t v);
void ty_json_uint(ty_json *j, uint64_t v);
void ty_json_double(ty_json *j, double v); /* NaN and infinities write null */
void ty_json_bool(ty_json *j, bool v);
void ty_json_null(ty_json *j);
/* Appends "\n"; returns 0, or the first error (TY_EINVAL, TY_ENOMEM). */
int ty_json_finish(ty_json *j);
/* Appends `s` (n bytes) as a quoted, escaped JSON string. */
int ty_json_escape(ty_buf *out, const char *s, size_t n);

#endif
