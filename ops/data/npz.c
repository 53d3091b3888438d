/* SPDX-License-Identifier: Apache-2.0 */
/*
 * .npz archives (numpy.savez and savez_compressed): a zip file holding one
 * .npy member per array, KEY.npy. The zip itself is read with libzip (its
 * central directory, deflate and CRC checks are libzip's, a well-kept
 * parser, not ours); the member is read whole into memory and parsed as
 * any .npy file (npy.c), so the array's rules and messages are the same.
 * Members are decompressed into memory rather than mapped: a stored
 * member could be mapped in place, but libzip does not say where its
 * bytes start.
 *
 * Untrusted input: before anything is allocated, a member's declared size
 * is checked against TY_DATA_NPZ_MAX_BYTES and against what its
 * compressed bytes (no more than the file holds) can hold (equal for a stored member, at most
 * deflate's ratio of 1032:1 for a deflated one), so a small archive cannot make us allocate
 * gigabytes; what libzip then reads must be exactly that size.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zip.h>

#define DEFLATE_MAX_RATIO 1032 /* the most deflate expands: 258 bytes per 2 bits */

bool ty__data_is_zip(const uint8_t *buf, size_t len) {
  return len >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0;
}

/* The archive's arrays as "a, b, c" (members ending in .npy, without it). */
static void list_keys(zip_t *z, char *out, size_t len) {
  size_t w = 0;
  out[0] = '\0';
  zip_int64_t n = zip_get_num_entries(z, 0);
  for (zip_int64_t i = 0; i < n && w + 1 < len; i++) {
    const char *name = zip_get_name(z, (zip_uint64_t)i, 0);
    size_t nl = name ? strlen(name) : 0;
    if (nl <= 4 || strcmp(name + nl - 4, ".npy") != 0) continue;
    int k = snprintf(out + w, len - w, "%s%.*s", w ? ", " : "", (int)(nl - 4), name);
    w = k < 0 ? len : w + (size_t)k;
  }
  if (!out[0]) snprintf(out, len, "no .npy members");
}

static int open_zip(const char *path, zip_t **out, char *err, size_t err_len) {
  int code = 0;
  *out = zip_open(path, ZIP_RDONLY, &code);
  if (*out) return 0;
  if (code == ZIP_ER_NOENT) return ty_errf(err, err_len, TY_ENOTFOUND, "%s: missing", path);
  if (code == ZIP_ER_OPEN || code == ZIP_ER_READ)
    return ty_errf(err, err_len, TY_EIO, "%s: cannot read: %s", path, strerror(errno));
  zip_error_t ze;
  zip_error_init_with_code(&ze, code);
  int rc = ty_errf(err, err_len, TY_EPROTO, "%s: not a readable .npz (zip) archive: %s", path,
                   zip_error_strerror(&ze));
  zip_error_fini(&ze);
  return rc;
}

/* Member i of z (an archive of file_size bytes) read whole into a new
 * heap block *out of *len bytes. */
static int read_member(zip_t *z, zip_uint64_t i, uint64_t file_size, const char *what,
                       uint8_t **out, size_t *len, char *err, size_t err_len) {
  zip_stat_t st;
  zip_stat_init(&st);
  if (zip_stat_index(z, i, 0, &st) != 0 || !(st.valid & ZIP_STAT_SIZE))
    return ty_errf(err, err_len, TY_EPROTO, "%s: its size is unknown: %s", what, zip_strerror(z));
  if (st.size > TY_DATA_NPZ_MAX_BYTES)
    return ty_errf(err, err_len, TY_ETOOBIG, "%s: %llu bytes; at most %llu", what,
                   (unsigned long long)st.size, (unsigned long long)TY_DATA_NPZ_MAX_BYTES);
  if (!(st.valid & ZIP_STAT_COMP_SIZE) || !(st.valid & ZIP_STAT_COMP_METHOD))
    return ty_errf(err, err_len, TY_EPROTO, "%s: its compressed size is unknown", what);
  bool stored = st.comp_method == ZIP_CM_STORE;
  if (st.comp_size > file_size || (stored && st.size != st.comp_size) ||
      (!stored && st.size / DEFLATE_MAX_RATIO > st.comp_size))
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: declares %llu bytes from %llu %s bytes, which cannot hold them", what,
                   (unsigned long long)st.size, (unsigned long long)st.comp_size,
                   stored ? "stored" : "compressed");
  zip_file_t *f = zip_fopen_index(z, i, 0);
  if (!f) return ty_errf(err, err_len, TY_EPROTO, "%s: cannot open: %s", what, zip_strerror(z));
  uint8_t *buf = malloc(st.size ? st.size : 1);
  zip_int64_t got = buf ? zip_fread(f, buf, st.size) : -1;
  char extra;
  bool whole = got >= 0 && (zip_uint64_t)got == st.size && zip_fread(f, &extra, 1) == 0;
  int rc = !buf ? ty_errf(err, err_len, TY_ENOMEM, "%s: no memory for %llu bytes", what,
                          (unsigned long long)st.size)
           : !whole
               ? ty_errf(err, err_len, TY_EPROTO, "%s: corrupt (read %lld of %llu bytes): %s", what,
                         (long long)got, (unsigned long long)st.size, zip_file_strerror(f))
               : 0;
  zip_fclose(f);
  if (rc != 0) {
    free(buf);
    return rc;
  }
  *out = buf;
  *len = st.size;
  return 0;
}

int ty_data_npz_open(const char *path, const char *key, ty_data_array *out_array, char *err,
                     size_t err_len) {
  if (path == NULL || key == NULL || out_array == NULL) return TY_EINVAL;
  memset(out_array, 0, sizeof *out_array);
  size_t plen = strlen(path), klen = strlen(key);
  char *what = malloc(plen + klen + 2), *member = malloc(klen + 5);
  if (!what || !member) {
    free(what);
    free(member);
    return TY_ENOMEM;
  }
  snprintf(what, plen + klen + 2, "%s:%s", path, key);
  snprintf(member, klen + 5, "%s.npy", key);
  out_array->path = what; /* messages name the array as PATH:KEY */
  zip_t *z = NULL;
  int rc = open_zip(path, &z, err, err_len);
  zip_int64_t i = rc == 0 ? zip_name_locate(z, member, 0) : -1;
  if (rc == 0 && i < 0) {
    char keys[512];
    list_keys(z, keys, sizeof keys);
    rc = ty_errf(err, err_len, TY_ENOTFOUND, "%s: no array \"%s\" in the archive (it holds: %s)",
                 path, key, keys);
  }
  uint8_t *buf = NULL;
  size_t len = 0;
  struct stat fs;
  if (rc == 0 && stat(path, &fs) != 0)
    rc = ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(errno));
  if (rc == 0)
    rc = read_member(z, (zip_uint64_t)i, (uint64_t)fs.st_size, what, &buf, &len, err, err_len);
  if (z) zip_discard(z);
  free(member);
  if (rc != 0) return rc;
  out_array->storage.heap = buf;
  return ty__npy_to_array(buf, len, what, out_array, err, err_len);
}

int ty__data_npz_refuse(const char *path, char *err, size_t err_len) {
  zip_t *z = NULL;
  int rc = open_zip(path, &z, err, err_len);
  if (rc != 0) return rc;
  char keys[512];
  list_keys(z, keys, sizeof keys);
  zip_discard(z);
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: an .npz archive of several arrays: name the one to read (DataArray.key: "
                 "one of %s)",
                 path, keys);
}
