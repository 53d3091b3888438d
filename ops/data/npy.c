/* SPDX-License-Identifier: Apache-2.0 */
/*
 * NumPy .npy reader (format 1.0, 2.0 and 3.0, numpy.lib.format) and the
 * token stream reader.
 *
 * The header is a Python dict literal. It is parsed by a small recursive
 * scanner over the header bytes only (never past them, never NUL-terminated
 * assumptions) that accepts what numpy writes and what a hand-written file
 * plausibly holds: single or double quotes, any spacing, a trailing comma,
 * keys in any order, Python 2's "10L" longs. Anything else is a clear error
 * naming the offset, never a guess. Sizes are multiplied with overflow
 * checks, and the data must fill the file exactly: a truncated download and
 * a file with two arrays appended are both refused.
 *
 * Types: bool, (u)int8..64, float16/32/64, little-endian ('<', '|', or '='
 * on this little-endian host). Big-endian, complex, string, object
 * (pickled) and structured dtypes are refused by name with the fix.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error                                                                                             \
    "ops/data reads little-endian files in place; port the readers before building for a big-endian host"
#endif

#define MAGIC "\x93NUMPY"

/* A cursor over the header text. */
typedef struct scan {
  const char *p, *end, *start;
  const char *name;
  char *err;
  size_t err_len;
} scan;

static int syntax(scan *s, const char *want) {
  return ty_errf(s->err, s->err_len, TY_EPROTO, "%s: .npy header: expected %s at offset %td",
                 s->name, want, s->p - s->start);
}

static void skip_ws(scan *s) {
  while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
    s->p++;
}

static bool eat(scan *s, char c) {
  skip_ws(s);
  if (s->p < s->end && *s->p == c) {
    s->p++;
    return true;
  }
  return false;
}

/* A quoted string without escapes; *out points into the header. */
static int string(scan *s, const char **out, size_t *out_len) {
  skip_ws(s);
  if (s->p >= s->end || (*s->p != '\'' && *s->p != '"')) return syntax(s, "a quoted string");
  char q = *s->p++;
  const char *b = s->p;
  while (s->p < s->end && *s->p != q) {
    if (*s->p == '\\') return syntax(s, "a string without backslash escapes");
    s->p++;
  }
  if (s->p >= s->end) return syntax(s, "the end of a string");
  *out = b;
  *out_len = (size_t)(s->p - b);
  s->p++;
  return 0;
}

static int boolean(scan *s, bool *out) {
  skip_ws(s);
  size_t left = (size_t)(s->end - s->p);
  if (left >= 4 && memcmp(s->p, "True", 4) == 0) {
    s->p += 4;
    *out = true;
    return 0;
  }
  if (left >= 5 && memcmp(s->p, "False", 5) == 0) {
    s->p += 5;
    *out = false;
    return 0;
  }
  return syntax(s, "True or False");
}

static int integer(scan *s, uint64_t *out) {
  skip_ws(s);
  if (s->p >= s->end || *s->p < '0' || *s->p > '9') return syntax(s, "a non-negative integer");
  uint64_t v = 0;
  while (s->p < s->end && *s->p >= '0' && *s->p <= '9') {
    if (v > (UINT64_MAX - 9) / 10)
      return ty_errf(s->err, s->err_len, TY_ETOOBIG,
                     "%s: .npy header: dimension at offset %td overflows", s->name,
                     s->p - s->start);
    v = v * 10 + (uint64_t)(*s->p++ - '0');
  }
  if (s->p < s->end && (*s->p == 'L' || *s->p == 'l')) s->p++; /* Python 2 long */
  *out = v;
  return 0;
}

static int shape(scan *s, ty_npy_info *o) {
  if (!eat(s, '(')) return syntax(s, "a shape tuple");
  o->ndims = 0;
  while (!eat(s, ')')) {
    if (o->ndims == TY_DATA_MAX_DIMS)
      return ty_errf(s->err, s->err_len, TY_EUNSUPPORTED, "%s: shape has more than %d dims",
                     s->name, TY_DATA_MAX_DIMS);
    int rc = integer(s, &o->dims[o->ndims++]);
    if (rc != 0) return rc;
    if (!eat(s, ',')) {
      if (!eat(s, ')')) return syntax(s, "',' or ')' in the shape");
      break;
    }
  }
  return 0;
}

/* Maps a descr such as "<f4" to a type; messages say how to fix the file. */
static int descr(scan *s, const char *d, size_t n, ty_data_type *out) {
  static const struct {
    char code[3];
    ty_data_type t;
  } codes[] = {{"b1", TY_DATA_BOOL}, {"?", TY_DATA_BOOL}, {"u1", TY_DATA_U8},  {"i1", TY_DATA_I8},
               {"u2", TY_DATA_U16},  {"i2", TY_DATA_I16}, {"u4", TY_DATA_U32}, {"i4", TY_DATA_I32},
               {"u8", TY_DATA_U64},  {"i8", TY_DATA_I64}, {"f2", TY_DATA_F16}, {"f4", TY_DATA_F32},
               {"f8", TY_DATA_F64}};
  char order = n > 0 ? d[0] : 0;
  const char *code = d + (order == '<' || order == '>' || order == '|' || order == '=');
  size_t cn = n - (size_t)(code - d);
  for (size_t i = 0; i < TY_ARRAY_LEN(codes); i++) {
    if (cn != strlen(codes[i].code) || memcmp(code, codes[i].code, cn) != 0) continue;
    if (order == '>' && ty_data_type_size(codes[i].t) > 1)
      return ty_errf(s->err, s->err_len, TY_EUNSUPPORTED,
                     "%s: big-endian dtype '%.*s' is not supported (save it with "
                     "a.astype(a.dtype.newbyteorder('<')))",
                     s->name, (int)n, d);
    *out = codes[i].t;
    return 0;
  }
  const char *why = cn && code[0] == 'O' ? "object arrays hold pickled Python objects"
                    : cn && (code[0] == 'U' || code[0] == 'S') ? "string arrays are not numbers"
                    : cn && code[0] == 'c' ? "complex numbers cannot feed a model"
                                           : "not a numeric dtype this reader takes";
  return ty_errf(s->err, s->err_len, TY_EUNSUPPORTED,
                 "%s: dtype '%.*s' is not supported (%s; bool, (u)int8-64 and float16/32/64 are)",
                 s->name, (int)(n > 32 ? 32 : n), d, why);
}

/* One "key: value" of the header dict; *seen collects the keys read. */
static int entry(scan *s, ty_npy_info *o, unsigned *seen) {
  const char *k;
  size_t kn;
  int rc = string(s, &k, &kn);
  if (rc != 0) return rc;
  if (!eat(s, ':')) return syntax(s, "':' after a key");
  unsigned bit = kn == 5 && !memcmp(k, "descr", 5)             ? 1u
                 : kn == 13 && !memcmp(k, "fortran_order", 13) ? 2u
                 : kn == 5 && !memcmp(k, "shape", 5)           ? 4u
                                                               : 0u;
  if (bit == 0)
    return ty_errf(s->err, s->err_len, TY_EPROTO,
                   "%s: .npy header: unknown key '%.*s' (only descr, fortran_order and shape)",
                   s->name, (int)(kn > 32 ? 32 : kn), k);
  if (*seen & bit)
    return ty_errf(s->err, s->err_len, TY_EPROTO, "%s: .npy header: key '%.*s' appears twice",
                   s->name, (int)kn, k);
  *seen |= bit;
  if (bit == 2) return boolean(s, &o->fortran_order);
  if (bit == 4) return shape(s, o);
  skip_ws(s);
  if (s->p < s->end && *s->p == '[')
    return ty_errf(
        s->err, s->err_len, TY_EUNSUPPORTED,
        "%s: structured dtype (a list descr) is not supported; save one plain array per field",
        s->name);
  const char *d;
  size_t dn;
  if ((rc = string(s, &d, &dn)) != 0) return rc;
  return descr(s, d, dn, &o->type);
}

static int dict(scan *s, ty_npy_info *o) {
  unsigned seen = 0;
  if (!eat(s, '{')) return syntax(s, "'{' opening the header dict");
  while (!eat(s, '}')) {
    int rc = entry(s, o, &seen);
    if (rc != 0) return rc;
    if (!eat(s, ',')) {
      if (!eat(s, '}')) return syntax(s, "',' or '}' in the header dict");
      break;
    }
  }
  skip_ws(s);
  if (s->p != s->end) return syntax(s, "only spaces after the header dict");
  if (seen != 7)
    return ty_errf(s->err, s->err_len, TY_EPROTO, "%s: .npy header lacks '%s'", s->name,
                   !(seen & 1)   ? "descr"
                   : !(seen & 2) ? "fortran_order"
                                 : "shape");
  return 0;
}

/* Layouts agree for C and Fortran order when at most one dim exceeds 1. */
static bool order_matters(const ty_npy_info *o) {
  int big = 0;
  for (uint32_t i = 0; i < o->ndims; i++)
    big += o->dims[i] > 1;
  return big > 1;
}

static int sizes(const ty_npy_info *o, size_t payload, const char *name, ty_npy_info *out,
                 char *err, size_t err_len) {
  char shp[160];
  ty__data_shape_str(o->dims, o->ndims, shp, sizeof shp);
  size_t n = ty_data_type_size(o->type);
  for (uint32_t i = 0; i < o->ndims; i++)
    if (o->dims[i] > SIZE_MAX || ty_mul_overflow(n, (size_t)o->dims[i], &n))
      return ty_errf(err, err_len, TY_ETOOBIG, "%s: shape %s of %s overflows the address space",
                     name, shp, ty_data_type_name(o->type));
  if (payload < n)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: truncated: shape %s of %s needs %zu data bytes, the file holds %zu", name,
                   shp, ty_data_type_name(o->type), n, payload);
  if (payload > n)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: %zu bytes of trailing data after the %zu data bytes of shape %s of %s",
                   name, payload - n, n, shp, ty_data_type_name(o->type));
  *out = *o;
  out->data_bytes = n;
  return 0;
}

int ty_data_npy_parse(const uint8_t *buf, size_t len, const char *name, ty_npy_info *out_info,
                      char *err, size_t err_len) {
  if (buf == NULL || out_info == NULL) return TY_EINVAL;
  name = name ? name : ".npy";
  memset(out_info, 0, sizeof *out_info);
  if (len < 6 || memcmp(buf, MAGIC, 6) != 0)
    return ty_errf(err, err_len, TY_EPROTO, "%s: not a .npy file (no \\x93NUMPY magic)", name);
  if (len < 8)
    return ty_errf(err, err_len, TY_EPROTO, "%s: truncated: the file ends inside the .npy version",
                   name);
  unsigned major = buf[6], minor = buf[7];
  if (major < 1 || major > 3 || minor != 0)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "%s: .npy format version %u.%u is not supported (1.0, 2.0, 3.0 are)", name,
                   major, minor);
  size_t lenlen = major == 1 ? 2 : 4;
  if (len < 8 + lenlen)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: truncated: the file ends inside the .npy header length", name);
  const uint8_t *hl = buf + 8;
  size_t hlen =
      major == 1 ? (size_t)hl[0] | (size_t)hl[1] << 8
                 : (size_t)hl[0] | (size_t)hl[1] << 8 | (size_t)hl[2] << 16 | (size_t)hl[3] << 24;
  if (hlen > TY_DATA_NPY_MAX_HEADER)
    return ty_errf(err, err_len, TY_ETOOBIG,
                   "%s: .npy header of %zu bytes is longer than the %u accepted", name, hlen,
                   TY_DATA_NPY_MAX_HEADER);
  size_t off = 8 + lenlen + hlen;
  if (len < off)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: truncated: the header announces %zu bytes, the file holds %zu after it",
                   name, hlen, len - 8 - lenlen);
  const char *h = (const char *)buf + 8 + lenlen;
  scan s = {.p = h, .end = h + hlen, .start = h, .name = name, .err = err, .err_len = err_len};
  ty_npy_info o = {.data_offset = off};
  int rc = dict(&s, &o);
  if (rc != 0) return rc;
  if (o.fortran_order && order_matters(&o))
    return ty_errf(
        err, err_len, TY_EUNSUPPORTED,
        "%s: Fortran-order arrays are not supported (save np.ascontiguousarray(a) instead)", name);
  return sizes(&o, len - off, name, out_info, err, err_len);
}

int ty__npy_to_array(const uint8_t *bytes, size_t len, const char *path, ty_data_array *a,
                     char *err, size_t err_len) {
  ty_npy_info info;
  int rc = ty_data_npy_parse(bytes, len, path, &info, err, err_len);
  if (rc != 0) return rc;
  a->type = info.type;
  a->ndims = info.ndims;
  memcpy(a->dims, info.dims, sizeof a->dims);
  a->data = bytes + info.data_offset;
  a->nbytes = info.data_bytes;
  return 0;
}

/* ---- token streams -------------------------------------------------------- */
static bool token_type(ty_data_type t) {
  return t == TY_DATA_U16 || t == TY_DATA_I32 || t == TY_DATA_U32 || t == TY_DATA_I64;
}

int ty_data_tokens_open(const char *path, ty_data_type type, ty_data_array *out_array, char *err,
                        size_t err_len) {
  if (path == NULL || out_array == NULL) return TY_EINVAL;
  memset(out_array, 0, sizeof *out_array);
  if ((out_array->path = strdup(path)) == NULL) return TY_ENOMEM;
  ty_data_array *a = out_array;
  const uint8_t *b;
  size_t len;
  int rc = ty__data_map(path, "a token stream", &b, &len, &a->storage, err, err_len);
  if (rc != 0) return rc;
  if (len >= 6 && memcmp(b, MAGIC, 6) == 0) {
    if ((rc = ty__npy_to_array(b, len, path, a, err, err_len)) != 0) return rc;
    if (a->ndims != 1 || !token_type(a->type)) {
      char shp[160];
      ty__data_shape_str(a->dims, a->ndims, shp, sizeof shp);
      return ty_errf(err, err_len, TY_EINVAL,
                     "%s: a token stream must be 1-D uint16, int32, uint32 or int64; this is %s %s",
                     path, ty_data_type_name(a->type), shp);
    }
    return 0;
  }
  if (type != TY_DATA_U16 && type != TY_DATA_I32)
    return ty_errf(err, err_len, TY_EINVAL, "%s: raw token ids must be uint16 or int32, not %s",
                   path, ty_data_type_name(type));
  size_t es = ty_data_type_size(type);
  if (len % es != 0)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: %zu bytes is not a whole number of %s token ids (%zu bytes each)", path,
                   len, ty_data_type_name(type), es);
  a->type = type;
  a->ndims = 1;
  a->dims[0] = len / es;
  a->data = b;
  a->nbytes = len;
  return 0;
}
