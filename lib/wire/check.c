/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_wire_check: the caps on a request's repeated fields, applied to the
 * encoded bytes before protobuf-c allocates anything from them (wire.h).
 *
 * One pass over the bytes with the message descriptors as the map: every
 * byte is read once, at the innermost message holding it; the only memory
 * taken is one small counter array per message instance on the current
 * path (at most TY_WIRE_MAX_DEPTH deep). Counting follows protobuf-c's
 * unpack: a repeated field's elements are its occurrences, plus, for a
 * packed scalar, the elements inside each occurrence. Bytes that are not
 * valid protobuf are not this pass's business: it stops and lets unpack
 * refuse them. ty_wire_check_strings also checks each string field's
 * bytes: no NUL, and UTF-8 but in the fields it is told hold raw bytes
 * (argv, environment, paths: any bytes Linux allows).
 */
#include "lib/wire/wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LENS = 64 }; /* the caps' and raw names' lengths kept per walk */

typedef struct walker {
  const ty_wire_cap *caps;
  size_t n_caps;
  uint32_t default_max;
  char *err;
  size_t err_len;
  /* The field names from the top message down to the current one, made
   * into a path ("job.command.") only for an error message. */
  const char *names[TY_WIRE_MAX_DEPTH + 1];
  char path[256];
  bool strings;           /* string fields checked too (ty_wire_check_strings) */
  const char *const *raw; /* full names of string fields not held to UTF-8 */
  size_t n_raw;
  size_t cap_len[LENS], raw_len[LENS]; /* strlen of caps[i].field and raw[i] */
} walker;

enum { MALFORMED = 1 }; /* stop walking; unpack will refuse the bytes */

static int read_varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
  uint64_t v = 0;
  for (int shift = 0; shift < 64 && *p < end; shift += 7) {
    uint8_t b = *(*p)++;
    v |= (uint64_t)(b & 0x7f) << shift;
    if (!(b & 0x80)) {
      *out = v;
      return 0;
    }
  }
  return MALFORMED;
}

/* Elements in a packed run of `len` bytes of scalar `type`. */
static uint64_t packed_count(ProtobufCType type, const uint8_t *p, size_t len) {
  switch (type) {
  case PROTOBUF_C_TYPE_FIXED32:
  case PROTOBUF_C_TYPE_SFIXED32:
  case PROTOBUF_C_TYPE_FLOAT:
    return len / 4;
  case PROTOBUF_C_TYPE_FIXED64:
  case PROTOBUF_C_TYPE_SFIXED64:
  case PROTOBUF_C_TYPE_DOUBLE:
    return len / 8;
  default: { /* varints: one element ends at each byte without the high bit */
    uint64_t n = 0;
    for (size_t i = 0; i < len; i++)
      n += !(p[i] & 0x80);
    return n;
  }
  }
}

static bool is_scalar(ProtobufCType t) {
  return t != PROTOBUF_C_TYPE_STRING && t != PROTOBUF_C_TYPE_BYTES && t != PROTOBUF_C_TYPE_MESSAGE;
}

/* A field as the caps and raw lists name it: message d's full name (dl
 * bytes), a dot, field f's name (fl bytes). */
typedef struct field_name {
  const ProtobufCMessageDescriptor *d;
  const ProtobufCFieldDescriptor *f;
  size_t dl, fl;
} field_name;

/* Whether `full` (len bytes: "trainyard.Job.name") names fn; most entries
 * are told apart by their length alone. */
static bool names_field(const char *full, size_t len, const field_name *fn) {
  return len == fn->dl + 1 + fn->fl && full[fn->dl] == '.' &&
         memcmp(full + fn->dl + 1, fn->f->name, fn->fl) == 0 &&
         memcmp(full, fn->d->name, fn->dl) == 0;
}

/* Entry i's length: from the walker's table for the first LENS entries
 * (measured once per walk), else measured now. */
static size_t entry_len(const size_t *lens, size_t i, const char *s) {
  return i < LENS ? lens[i] : strlen(s);
}

static uint32_t cap_of(const walker *w, const field_name *fn) {
  for (size_t i = 0; i < w->n_caps; i++)
    if (names_field(w->caps[i].field, entry_len(w->cap_len, i, w->caps[i].field), fn))
      return w->caps[i].max;
  return w->default_max;
}

static bool is_raw(const walker *w, const field_name *fn) {
  for (size_t i = 0; i < w->n_raw; i++)
    if (names_field(w->raw[i], entry_len(w->raw_len, i, w->raw[i]), fn)) return true;
  return false;
}

/* Skips the value of a field of wire type wt; MALFORMED when it does not fit. */
static int skip_value(int wt, const uint8_t **p, const uint8_t *end, const uint8_t **out_body,
                      size_t *out_len) {
  uint64_t v;
  *out_body = NULL;
  *out_len = 0;
  switch (wt) {
  case 0:
    return read_varint(p, end, &v);
  case 1:
    if (end - *p < 8) return MALFORMED;
    *p += 8;
    return 0;
  case 5:
    if (end - *p < 4) return MALFORMED;
    *p += 4;
    return 0;
  case 2:
    if (read_varint(p, end, &v) || v > (uint64_t)(end - *p)) return MALFORMED;
    *out_body = *p;
    *out_len = (size_t)v;
    *p += v;
    return 0;
  default:
    return MALFORMED; /* groups are not proto3 */
  }
}

static int walk(walker *w, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                int depth);

/* A submessage: its field's name goes on the path and it is walked. */
static int walk_sub(walker *w, const ProtobufCFieldDescriptor *f, const uint8_t *body, size_t len,
                    int depth) {
  if (depth < TY_WIRE_MAX_DEPTH + 1) w->names[depth] = f->name;
  return walk(w, f->descriptor, body, len, depth + 1);
}

/* The path of the message at `depth` ("job.command."; "" at the top) into
 * w->path, for an error message; a name that does not fit is left out. */
static const char *path_of(walker *w, int depth) {
  size_t len = 0;
  w->path[0] = '\0';
  for (int i = 0; i < depth && i < TY_WIRE_MAX_DEPTH + 1; i++) {
    size_t k = strlen(w->names[i]) + 1;
    if (k >= sizeof w->path - len) continue;
    memcpy(w->path + len, w->names[i], k - 1);
    w->path[len + k - 1] = '.';
    w->path[len += k] = '\0';
  }
  return w->path;
}

static int field_error(walker *w, int depth, const char *name, uint64_t count, uint32_t max) {
  return ty_errf(w->err, w->err_len, TY_EINVAL,
                 "%s%s: %llu entries or more; at most %u are allowed", path_of(w, depth), name,
                 (unsigned long long)count, max);
}

/* The length of the UTF-8 sequence at p (at most n bytes), 0 when it is
 * not one: no overlong forms, surrogates or code points past U+10FFFF. */
static size_t utf8_seq(const uint8_t *p, size_t n) {
  uint8_t c = p[0];
  size_t len = c < 0x80                 ? 1
               : c >= 0xc2 && c <= 0xdf ? 2
               : c >= 0xe0 && c <= 0xef ? 3
               : c >= 0xf0 && c <= 0xf4 ? 4
                                        : 0;
  if (len == 0 || len > n) return 0;
  for (size_t i = 1; i < len; i++)
    if ((p[i] & 0xc0) != 0x80) return 0;
  if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) || (c == 0xf0 && p[1] < 0x90) ||
      (c == 0xf4 && p[1] > 0x8f))
    return 0;
  return len;
}

/* A string field's bytes: without a NUL, which would cut the C string
 * protobuf-c makes of it, and UTF-8 (as proto3 requires) unless `raw`. */
static int string_error(walker *w, int depth, const char *name, bool raw, const uint8_t *p,
                        size_t n) {
  for (size_t i = 0, k = 1; i < n; i += k) {
    if (p[i] == 0)
      return ty_errf(w->err, w->err_len, TY_EINVAL, "%s%s: holds a NUL byte (at byte %zu)",
                     path_of(w, depth), name, i);
    if (!raw && (k = utf8_seq(p + i, n - i)) == 0)
      return ty_errf(w->err, w->err_len, TY_EINVAL, "%s%s: not valid UTF-8 (at byte %zu)",
                     path_of(w, depth), name, i);
  }
  return 0;
}

/* A message's counters live on the stack when it has up to this many
 * fields (every request message has), else on the heap. */
enum { STACK_COUNTS = 64 };

static int walk(walker *w, const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                int depth) {
  if (depth > TY_WIRE_MAX_DEPTH) {
    const char *path = path_of(w, depth);
    size_t len = strlen(path);
    return ty_errf(w->err, w->err_len, TY_EINVAL, "%.*s: messages nested deeper than %d",
                   (int)(len ? len - 1 : 0), path, TY_WIRE_MAX_DEPTH);
  }
  uint64_t stack[STACK_COUNTS];
  uint64_t *counts = stack; /* last: unknown fields */
  if (d->n_fields + 1 > STACK_COUNTS)
    counts = calloc(d->n_fields + 1, sizeof *counts);
  else
    memset(stack, 0, (d->n_fields + 1) * sizeof *counts);
  if (!counts) return TY_ENOMEM;
  size_t dl = strlen(d->name);
  const uint8_t *end = p + n;
  int rc = 0;
  while (rc == 0 && p < end) {
    uint64_t tag;
    const uint8_t *body;
    size_t len;
    if (read_varint(&p, end, &tag) || tag >> 3 == 0 || tag >> 3 > UINT32_MAX ||
        skip_value((int)(tag & 7), &p, end, &body, &len)) {
      rc = MALFORMED;
      break;
    }
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field(d, (unsigned)(tag >> 3));
    if (!f) {
      if (++counts[d->n_fields] > TY_WIRE_MAX_UNKNOWN)
        rc = ty_errf(w->err, w->err_len, TY_EINVAL,
                     "%s(unknown fields): more than %d in one message", path_of(w, depth),
                     TY_WIRE_MAX_UNKNOWN);
      continue;
    }
    size_t i = (size_t)(f - d->fields);
    bool str = body && w->strings && f->type == PROTOBUF_C_TYPE_STRING;
    field_name fn = {d, f, dl, f->label == PROTOBUF_C_LABEL_REPEATED || str ? strlen(f->name) : 0};
    if (f->label == PROTOBUF_C_LABEL_REPEATED) {
      counts[i] += body && is_scalar(f->type) ? packed_count(f->type, body, len) : 1;
      uint32_t max = cap_of(w, &fn);
      if (counts[i] > max) rc = field_error(w, depth, f->name, counts[i], max);
    }
    if (rc == 0 && str) rc = string_error(w, depth, f->name, is_raw(w, &fn), body, len);
    if (rc == 0 && body && f->type == PROTOBUF_C_TYPE_MESSAGE)
      rc = walk_sub(w, f, body, len, depth);
  }
  if (counts != stack) free(counts);
  return rc;
}

/* The lengths of the first LENS caps and raw names, once per walk rather
 * than once per field looked up. */
static void measure(walker *w) {
  for (size_t i = 0; i < w->n_caps && i < LENS; i++)
    w->cap_len[i] = strlen(w->caps[i].field);
  for (size_t i = 0; i < w->n_raw && i < LENS; i++)
    w->raw_len[i] = strlen(w->raw[i]);
}

int ty_wire_check(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                  const ty_wire_cap *caps, size_t n_caps, uint32_t default_max, char *err,
                  size_t err_len) {
  walker w = {
      .caps = caps, .n_caps = n_caps, .default_max = default_max, .err = err, .err_len = err_len};
  measure(&w);
  int rc = walk(&w, d, p, n, 0);
  return rc == MALFORMED ? 0 : rc;
}

int ty_wire_check_strings(const ProtobufCMessageDescriptor *d, const uint8_t *p, size_t n,
                          const ty_wire_cap *caps, size_t n_caps, uint32_t default_max,
                          const char *const *raw, size_t n_raw, char *err, size_t err_len) {
  walker w = {.caps = caps,
              .n_caps = n_caps,
              .default_max = default_max,
              .err = err,
              .err_len = err_len,
              .strings = true,
              .raw = raw,
              .n_raw = n_raw};
  measure(&w);
  int rc = walk(&w, d, p, n, 0);
  return rc == MALFORMED ? 0 : rc;
}
