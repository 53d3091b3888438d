/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Tensors, shapes and broadcasting. Shapes are tiny value types copied
 * freely; tensors are single heap blocks of header + data so that creating
 * one per node output in the executor costs one allocation.
 */
#include "ops/tensor.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t ty_dtype_size(ty_dtype dt) {
  switch ((int)dt) {
#define TY_DTYPE_SIZE_(e, n, sz)                                                                   \
  case n:                                                                                          \
    return sz;
    TY_DTYPE_LIST(TY_DTYPE_SIZE_)
#undef TY_DTYPE_SIZE_
  default:
    return 0;
  }
}

const char *ty_dtype_name(int onnx_dtype) {
  static const char *const names[] = {"UNDEFINED",  "FLOAT",   "UINT8",  "INT8",   "UINT16",
                                      "INT16",      "INT32",   "INT64",  "STRING", "BOOL",
                                      "FLOAT16",    "DOUBLE",  "UINT32", "UINT64", "COMPLEX64",
                                      "COMPLEX128", "BFLOAT16"};
  if (onnx_dtype < 0 || (size_t)onnx_dtype >= TY_ARRAY_LEN(names)) return "UNKNOWN";
  return names[onnx_dtype];
}

bool ty_dtype_supported(int onnx_dtype) {
  return ty_dtype_size((ty_dtype)onnx_dtype) != 0;
}

bool ty_dtype_is_float(ty_dtype dt) {
  return dt == TY_DTYPE_F32 || dt == TY_DTYPE_F64 || dt == TY_DTYPE_F16 || dt == TY_DTYPE_BF16;
}

ty_shape ty_shape_make(int rank, const int64_t *dims) {
  ty_shape s;
  memset(&s, 0, sizeof s);
  if (rank > TY_MAX_RANK) rank = TY_MAX_RANK;
  s.rank = rank;
  for (int i = 0; i < rank; i++)
    s.dims[i] = dims[i];
  return s;
}

ty_shape ty_shape_unknown(void) {
  ty_shape s;
  memset(&s, 0, sizeof s);
  s.rank = TY_RANK_UNKNOWN;
  return s;
}

bool ty_shape_is_concrete(const ty_shape *s) {
  if (s->rank < 0) return false;
  for (int i = 0; i < s->rank; i++)
    if (s->dims[i] < 0) return false;
  return true;
}

bool ty_shape_equal(const ty_shape *a, const ty_shape *b) {
  if (a->rank != b->rank) return false;
  for (int i = 0; i < a->rank; i++)
    if (a->dims[i] != b->dims[i]) return false;
  return true;
}

int64_t ty_shape_span(const ty_shape *s, int from, int to) {
  int64_t n = 1;
  for (int i = from; i < to; i++)
    if (s->dims[i] < 0 || __builtin_mul_overflow(n, s->dims[i], &n)) return -1;
  return n;
}

int ty_shape_nbytes(const ty_shape *s, ty_dtype dt, size_t *out_nbytes) {
  size_t es = ty_dtype_size(dt);
  if (es == 0 || !ty_shape_is_concrete(s)) return TY_EINVAL;
  size_t n = es;
  for (int i = 0; i < s->rank; i++)
    if (ty_mul_overflow(n, (size_t)s->dims[i], &n)) return TY_ETOOBIG;
  *out_nbytes = n;
  return 0;
}

int64_t ty_shape_numel(const ty_shape *s) {
  if (s->rank < 0) return -1;
  return ty_shape_span(s, 0, s->rank);
}

void ty_shape_strides(const ty_shape *s, int64_t *out_strides) {
  int64_t st = 1;
  for (int i = s->rank - 1; i >= 0; i--) {
    out_strides[i] = st;
    if (__builtin_mul_overflow(st, s->dims[i], &st))
      st = INT64_MAX; /* only an empty tensor gets here */
  }
}

void ty_shape_format(const ty_shape *s, char *buf, size_t len) {
  if (len == 0) return;
  if (s->rank < 0) {
    snprintf(buf, len, "[?]");
    return;
  }
  size_t off = 0;
  buf[0] = '\0';
  off += (size_t)snprintf(buf, len, "[");
  for (int i = 0; i < s->rank && off < len; i++) {
    const char *sep = i ? "," : "";
    if (s->dims[i] == TY_DIM_BATCH)
      off += (size_t)snprintf(buf + off, len - off, "%sN", sep);
    else if (s->dims[i] < 0)
      off += (size_t)snprintf(buf + off, len - off, "%s?", sep);
    else
      off += (size_t)snprintf(buf + off, len - off, "%s%lld", sep, (long long)s->dims[i]);
  }
  if (off < len) snprintf(buf + off, len - off, "]");
}

ty_shape ty_shape_with_batch(const ty_shape *s, int64_t batch) {
  ty_shape r = *s;
  for (int i = 0; i < r.rank; i++)
    if (r.dims[i] == TY_DIM_BATCH) r.dims[i] = batch;
  return r;
}

int ty_axis_normalize(int64_t axis, int rank, int *out_axis) {
  if (axis < -rank || axis >= rank) return TY_EINVAL;
  *out_axis = (int)(axis < 0 ? axis + rank : axis);
  return 0;
}

static int broadcast_dim(int64_t a, int64_t b, int64_t *out) {
  if (a == b)
    *out = a;
  else if (a == 1)
    *out = b;
  else if (b == 1)
    *out = a;
  else if (a == TY_DIM_UNKNOWN || b == TY_DIM_UNKNOWN)
    *out = a >= 0 ? a : b >= 0 ? b : TY_DIM_UNKNOWN;
  else
    return TY_EINVAL;
  return 0;
}

int ty_shape_broadcast(const ty_shape *a, const ty_shape *b, ty_shape *out) {
  if (a->rank < 0 || b->rank < 0) {
    *out = ty_shape_unknown();
    return 0;
  }
  int rank = a->rank > b->rank ? a->rank : b->rank;
  ty_shape r;
  memset(&r, 0, sizeof r);
  r.rank = rank;
  for (int i = 0; i < rank; i++) {
    int ia = i - (rank - a->rank), ib = i - (rank - b->rank);
    int64_t da = ia >= 0 ? a->dims[ia] : 1, db = ib >= 0 ? b->dims[ib] : 1;
    if (broadcast_dim(da, db, &r.dims[i]) != 0) return TY_EINVAL;
  }
  *out = r;
  return 0;
}

void ty_broadcast_strides(const ty_shape *in, const ty_shape *out, int64_t *out_strides) {
  int64_t st[TY_MAX_RANK];
  ty_shape_strides(in, st);
  int shift = out->rank - in->rank;
  for (int i = 0; i < out->rank; i++) {
    int j = i - shift;
    out_strides[i] = (j < 0 || in->dims[j] == 1) ? 0 : st[j];
  }
}

int ty_tensor_create(ty_dtype dt, const ty_shape *shape, ty_tensor **out_tensor) {
  size_t nbytes;
  int rc = ty_shape_nbytes(shape, dt, &nbytes);
  if (rc != 0) return rc;
  /* The data follows the header, aligned for any element type; at least one
   * byte so that data is never NULL for empty tensors. */
  size_t hdr = (sizeof(ty_tensor) + 63) & ~(size_t)63;
  if (nbytes > SIZE_MAX - hdr - 1) return TY_ETOOBIG;
  ty_tensor *t = calloc(1, hdr + (nbytes ? nbytes : 1));
  if (!t) return TY_ENOMEM;
  t->dtype = dt;
  t->shape = *shape;
  t->data = (char *)t + hdr;
  t->nbytes = nbytes;
  *out_tensor = t;
  return 0;
}

int ty_tensor_create_from(ty_dtype dt, const ty_shape *shape, const void *data, size_t nbytes,
                          ty_tensor **out_tensor) {
  ty_tensor *t;
  int rc = ty_tensor_create(dt, shape, &t);
  if (rc != 0) return rc;
  if (nbytes != t->nbytes) {
    ty_tensor_destroy(t);
    return TY_EINVAL;
  }
  if (nbytes) memcpy(t->data, data, nbytes);
  *out_tensor = t;
  return 0;
}

int ty_tensor_clone(const ty_tensor *t, ty_tensor **out_tensor) {
  return ty_tensor_create_from(t->dtype, &t->shape, t->data, t->nbytes, out_tensor);
}

void ty_tensor_destroy(ty_tensor *t) {
  free(t);
}

int64_t ty_tensor_numel(const ty_tensor *t) {
  return ty_shape_numel(&t->shape);
}

int ty_tensor_reshape(ty_tensor *t, const ty_shape *shape) {
  if (!ty_shape_is_concrete(shape) || ty_shape_numel(shape) != ty_tensor_numel(t)) return TY_EINVAL;
  t->shape = *shape;
  return 0;
}
