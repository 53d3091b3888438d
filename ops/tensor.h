/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/tensor: dense row-major tensors, shapes and ONNX (numpy) broadcasting.
 *
 * A ty_shape is a small value type (no heap). Each dim is either a concrete
 * size >= 0, TY_DIM_BATCH (the symbolic batch dim of a model input, kept
 * symbolic through shape inference so one graph serves every batch size) or
 * TY_DIM_UNKNOWN (a size the graph alone cannot tell). A rank of
 * TY_RANK_UNKNOWN marks a value whose shape is not inferred yet.
 *
 * A ty_tensor owns its data buffer and always has a concrete shape. Its
 * fields are public so kernels and transforms can read them directly; change
 * them only through the functions here. Rank 0 is a scalar with one element.
 *
 * The dtype enum uses ONNX TensorProto.DataType numbers so import and export
 * need no table. Float32 is the training dtype; int64 carries shapes, axes,
 * indices and labels; bool carries masks; the other integer and float types
 * are computed by the elementwise, comparison, reduction and data-movement
 * kernels and converted by Cast.
 */
#ifndef TY_OPS_TENSOR_H
#define TY_OPS_TENSOR_H

#include "lib/base/base.h" /* TY_E* codes returned by every ops function */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* X(suffix, ONNX number, size): the element types the runtime holds. The
 * enum, sizes and names are generated from this one list. FLOAT and INT64
 * carry training and shapes; the others are what masks, indices and
 * exported models bring. FLOAT16 and BFLOAT16 are stored as their bits and
 * computed through float. STRING and complex types are refused at import. */
/* clang-format off */
#define TY_DTYPE_LIST(X)                                                                           \
  X(F32, 1, 4) X(U8, 2, 1) X(I8, 3, 1) X(U16, 4, 2) X(I16, 5, 2) X(I32, 6, 4) X(I64, 7, 8)         \
  X(BOOL, 9, 1) X(F16, 10, 2) X(F64, 11, 8) X(U32, 12, 4) X(U64, 13, 8) X(BF16, 16, 2)
/* clang-format on */

typedef enum {
  TY_DTYPE_INVALID = 0,
#define TY_DTYPE_ENUM_(e, n, sz) TY_DTYPE_##e = n,
  TY_DTYPE_LIST(TY_DTYPE_ENUM_)
#undef TY_DTYPE_ENUM_
} ty_dtype;

/* Bytes per element; 0 for TY_DTYPE_INVALID and unsupported numbers. */
size_t ty_dtype_size(ty_dtype dt);
/* "FLOAT", "INT64", "BOOL"; also names the ONNX types we reject ("STRING").
 * Takes any ONNX DataType number; never returns NULL. */
const char *ty_dtype_name(int onnx_dtype);
/* True for the dtypes this runtime holds (TY_DTYPE_LIST). */
bool ty_dtype_supported(int onnx_dtype);
/* True for FLOAT, DOUBLE, FLOAT16 and BFLOAT16. */
bool ty_dtype_is_float(ty_dtype dt);

#define TY_MAX_RANK 8
#define TY_DIM_BATCH (-1)
#define TY_DIM_UNKNOWN (-2)
#define TY_RANK_UNKNOWN (-1)

typedef struct ty_shape {
  int rank; /* 0..TY_MAX_RANK, or TY_RANK_UNKNOWN */
  int64_t dims[TY_MAX_RANK];
} ty_shape;

/* Builds a shape; rank above TY_MAX_RANK is clamped (callers check first). */
ty_shape ty_shape_make(int rank, const int64_t *dims);
ty_shape ty_shape_unknown(void);
bool ty_shape_is_concrete(const ty_shape *s);
bool ty_shape_equal(const ty_shape *a, const ty_shape *b);
/* Number of elements, or -1 when a dim is symbolic or unknown or the
 * product overflows int64. */
int64_t ty_shape_numel(const ty_shape *s);
/* Product of dims [from, to); -1 when any of them is not concrete or the
 * product overflows. */
int64_t ty_shape_span(const ty_shape *s, int from, int to);
/* Bytes of a dense tensor of this shape and dtype: TY_EINVAL for a shape
 * that is not concrete or a dtype of no size, TY_ETOOBIG when the size
 * overflows size_t (shapes from models are untrusted). */
int ty_shape_nbytes(const ty_shape *s, ty_dtype dt, size_t *out_nbytes);
/* Row-major strides in elements. */
void ty_shape_strides(const ty_shape *s, int64_t *out_strides);
/* Writes "[N,3,224,224]" ("?" for unknown dims, "[?]" for unknown rank). */
void ty_shape_format(const ty_shape *s, char *buf, size_t len);
/* Replaces TY_DIM_BATCH by batch. */
ty_shape ty_shape_with_batch(const ty_shape *s, int64_t batch);
/* Normalises an axis in [-rank, rank) to [0, rank); TY_EINVAL if outside. */
int ty_axis_normalize(int64_t axis, int rank, int *out_axis);

/* Multidirectional (numpy) broadcast of a and b. Dims of 1 stretch;
 * symbolic dims match equal symbolic dims or 1. TY_EINVAL when incompatible. */
int ty_shape_broadcast(const ty_shape *a, const ty_shape *b, ty_shape *out);
/* Strides (in elements) to read `in` while walking `out` (same or lower rank
 * in, right-aligned): broadcast dims get stride 0. out_strides has out->rank
 * entries. Both shapes must be concrete and broadcast-compatible. */
void ty_broadcast_strides(const ty_shape *in, const ty_shape *out, int64_t *out_strides);

typedef struct ty_tensor {
  ty_dtype dtype;
  ty_shape shape; /* always concrete */
  void *data;     /* owned; numel * ty_dtype_size(dtype) bytes (never NULL) */
  size_t nbytes;
} ty_tensor;

/* Allocates a zero-filled tensor. TY_EINVAL for a non-concrete shape or an
 * unsupported dtype, TY_ETOOBIG for a size that overflows, TY_ENOMEM. The
 * caller owns *out and frees it with _destroy. */
int ty_tensor_create(ty_dtype dt, const ty_shape *shape, ty_tensor **out_tensor);
/* Like _create, copying nbytes of data (must match the shape). */
int ty_tensor_create_from(ty_dtype dt, const ty_shape *shape, const void *data, size_t nbytes,
                          ty_tensor **out_tensor);
int ty_tensor_clone(const ty_tensor *t, ty_tensor **out_tensor);
void ty_tensor_destroy(ty_tensor *t);
int64_t ty_tensor_numel(const ty_tensor *t);
/* Changes the shape in place, keeping the data; TY_EINVAL if numel differs. */
int ty_tensor_reshape(ty_tensor *t, const ty_shape *shape);

/* Converts t to dtype `to` element by element, as ONNX Cast does: floats to
 * integers truncate toward zero (saturating, NaN to 0), integers wrap to
 * narrower integers, anything to BOOL is "!= 0", floats round to nearest
 * even. The caller owns *out_tensor. */
int ty_tensor_cast(const ty_tensor *t, ty_dtype to, ty_tensor **out_tensor);
/* Element i of t as a double (any dtype; exact for all but 64-bit
 * integers beyond 2^53). */
double ty_tensor_get_f64(const ty_tensor *t, int64_t i);

static inline float *ty_tensor_f32(const ty_tensor *t) {
  return (float *)t->data;
}
static inline int64_t *ty_tensor_i64(const ty_tensor *t) {
  return (int64_t *)t->data;
}
static inline uint8_t *ty_tensor_bool(const ty_tensor *t) {
  return (uint8_t *)t->data;
}

#endif
