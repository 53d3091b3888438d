/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Element types and file access shared by the readers: the type table
 * (numpy names, sizes, what may feed what), read-only whole-file mappings,
 * and opening an array file by its content.
 *
 * Files are mapped, not read: a dataset larger than memory then costs page
 * cache, not heap, and the kernel reads ahead for the sequential parts. A
 * file truncated by someone else while it is mapped would raise SIGBUS on
 * access; datasets are expected to stay put while a job trains on them.
 */
#include "ops/data/data_internal.h"

#include "lib/base/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
  const char *name;
  size_t size;
  int onnx; /* TensorProto.DataType */
} types[] = {
    [TY_DATA_INVALID] = {"invalid", 0, 0}, [TY_DATA_BOOL] = {"bool", 1, 9},
    [TY_DATA_U8] = {"uint8", 1, 2},        [TY_DATA_I8] = {"int8", 1, 3},
    [TY_DATA_U16] = {"uint16", 2, 4},      [TY_DATA_I16] = {"int16", 2, 5},
    [TY_DATA_U32] = {"uint32", 4, 12},     [TY_DATA_I32] = {"int32", 4, 6},
    [TY_DATA_U64] = {"uint64", 8, 13},     [TY_DATA_I64] = {"int64", 8, 7},
    [TY_DATA_F16] = {"float16", 2, 10},    [TY_DATA_F32] = {"float32", 4, 1},
    [TY_DATA_F64] = {"float64", 8, 11},
};

static bool valid(ty_data_type t) {
  return t > TY_DATA_INVALID && t <= TY_DATA_F64;
}

const char *ty_data_type_name(ty_data_type t) {
  return valid(t) ? types[t].name : "invalid";
}
size_t ty_data_type_size(ty_data_type t) {
  return valid(t) ? types[t].size : 0;
}

ty_data_type ty_data_type_from_onnx(int onnx_dtype) {
  for (int t = TY_DATA_BOOL; t <= TY_DATA_F64; t++)
    if (types[t].onnx == onnx_dtype) return (ty_data_type)t;
  return TY_DATA_INVALID;
}

static bool is_float(ty_data_type t) {
  return t == TY_DATA_F16 || t == TY_DATA_F32 || t == TY_DATA_F64;
}

bool ty_data_convertible(ty_data_type from, ty_data_type to) {
  if (!valid(from) || !valid(to)) return false;
  if (from == to || to == TY_DATA_F32) return true;
  return to == TY_DATA_I64 && !is_float(from);
}

void ty__data_shape_str(const uint64_t *dims, uint32_t ndims, char *buf, size_t len) {
  size_t at = 0;
  at += (size_t)snprintf(buf, len, "(");
  for (uint32_t i = 0; i < ndims && at < len; i++)
    at +=
        (size_t)snprintf(buf + at, len - at, "%s%llu", i ? ", " : "", (unsigned long long)dims[i]);
  if (at < len) snprintf(buf + at, len - at, ndims == 1 ? ",)" : ")");
}

bool ty__data_is_gzip(const uint8_t *buf, size_t len) {
  return len >= 2 && buf[0] == 0x1f && buf[1] == 0x8b;
}

void ty__data_storage_free(ty_data_storage *st) {
  if (st == NULL) return;
  if (st->map != NULL) munmap(st->map, st->map_len);
  free(st->heap);
  memset(st, 0, sizeof *st);
}

/* path opened without waiting (a FIFO would block open() until a writer
 * came, and a signal restarts it) and checked to be a regular file; the fd,
 * blocking again, or the error. */
static int open_checked(const char *path, const char *what, struct stat *st, char *err,
                        size_t err_len) {
  const char *why;
  int fd = ty_open_regular(path, st, &why);
  if (fd < 0 && why)
    return S_ISDIR(st->st_mode)
               ? ty_errf(err, err_len, TY_EINVAL, "%s: is a directory, not %s", path, what)
               : ty_errf(err, err_len, TY_EINVAL, "%s: not a regular file (%s expected)", path,
                         what);
  if (fd < 0 && (errno == ENOENT || errno == ENOTDIR))
    return ty_errf(err, err_len, TY_ENOTFOUND, "%s: missing", path);
  if (fd < 0) return ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(errno));
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    return ty_errf(err, err_len, TY_EIO, "%s: %s", path, strerror(e));
  }
  return fd;
}

int ty__data_map(const char *path, const char *what, const uint8_t **out_bytes, size_t *out_len,
                 ty_data_storage *st, char *err, size_t err_len) {
  struct stat sb;
  memset(st, 0, sizeof *st);
  *out_bytes = (const uint8_t *)"";
  *out_len = 0;
  int fd = open_checked(path, what, &sb, err, err_len);
  if (fd < 0) return fd;
  if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX / 2) {
    close(fd);
    return ty_errf(err, err_len, TY_ETOOBIG, "%s: %lld bytes cannot be mapped", path,
                   (long long)sb.st_size);
  }
  size_t len = (size_t)sb.st_size;
  if (len == 0) {
    close(fd);
    return 0;
  }
  void *m = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, 0);
  int e = errno;
  close(fd);
  if (m == MAP_FAILED)
    return ty_errf(err, err_len, e == ENOMEM ? TY_ENOMEM : TY_EIO, "%s: cannot map (%s)", path,
                   strerror(e));
  st->map = m;
  st->map_len = len;
  *out_bytes = m;
  *out_len = len;
  return 0;
}

/* An IDX file (read by idx.c, gzip'ed or plain) as an array. */
static int idx_to_array(const char *path, ty_data_array *a, char *err, size_t err_len) {
  ty_idx idx;
  int rc = ty_data_idx_read(path, &idx, err, err_len);
  if (rc != 0) return rc;
  a->type = TY_DATA_U8;
  a->ndims = idx.ndims;
  for (uint32_t i = 0; i < idx.ndims; i++)
    a->dims[i] = idx.dims[i];
  a->data = idx.data;
  a->nbytes = idx.size;
  a->storage = idx.storage; /* moved: idx is not closed */
  return 0;
}

int ty_data_array_open(const char *path, ty_data_array *out_array, char *err, size_t err_len) {
  if (path == NULL || out_array == NULL) return TY_EINVAL;
  memset(out_array, 0, sizeof *out_array);
  if ((out_array->path = strdup(path)) == NULL) return TY_ENOMEM;
  const uint8_t *b;
  size_t len;
  ty_data_storage st;
  int rc = ty__data_map(path, "a .npy or IDX file", &b, &len, &st, err, err_len);
  if (rc != 0) return rc;
  if (len >= 6 && memcmp(b, "\x93NUMPY", 6) == 0) {
    out_array->storage = st;
    return ty__npy_to_array(b, len, path, out_array, err, err_len);
  }
  bool idx_like = ty__data_is_gzip(b, len) || (len >= 2 && b[0] == 0 && b[1] == 0);
  bool zip = ty__data_is_zip(b, len);
  char head[16] = ""; /* the first bytes, those there are */
  for (size_t i = 0, off = 0; i < len && i < 4; i++)
    off += (size_t)snprintf(head + off, sizeof head - off, "%s%02x", i ? " " : "", b[i]);
  ty__data_storage_free(&st);
  if (zip) return ty__data_npz_refuse(path, err, err_len);
  if (idx_like) return idx_to_array(path, out_array, err, err_len);
  if (len == 0)
    return ty_errf(err, err_len, TY_EPROTO,
                   "%s: empty file (0 bytes); expected a .npy file (magic \\x93NUMPY) or an IDX "
                   "file (00 00 type ndims), plain or gzip'ed",
                   path);
  return ty_errf(err, err_len, TY_EPROTO,
                 "%s: neither a .npy file (magic \\x93NUMPY) nor an IDX file (00 00 type ndims), "
                 "plain or gzip'ed: starts with %s%s",
                 path, head, len < 4 ? " (the whole file)" : "");
}

void ty_data_array_close(ty_data_array *a) {
  if (a == NULL) return;
  ty__data_storage_free(&a->storage);
  free(a->path);
  free(a->lines);
  for (size_t i = 0; i < a->n_categories; i++)
    free(a->categories[i]);
  free(a->categories);
  memset(a, 0, sizeof *a);
}
