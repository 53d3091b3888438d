/* SPDX-License-Identifier: Apache-2.0 */
/* Shapes, broadcasting helpers and tensor lifecycle. */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>

Test(tensor, broadcast_rules) {
  ty_shape a = SHAPE(8, 1, 6, 1), b = SHAPE(7, 1, 5), out;
  cr_assert_eq(ty_shape_broadcast(&a, &b, &out), 0);
  ty_shape want = SHAPE(8, 7, 6, 5);
  cr_assert(ty_shape_equal(&out, &want));
  ty_shape c = SHAPE(3), d = SHAPE(4);
  cr_assert_eq(ty_shape_broadcast(&c, &d, &out), TY_EINVAL);
  ty_shape e = SHAPE(TY_DIM_BATCH, 1), f = SHAPE(TY_DIM_BATCH, 9);
  cr_assert_eq(ty_shape_broadcast(&e, &f, &out), 0);
  ty_shape want2 = SHAPE(TY_DIM_BATCH, 9);
  cr_assert(ty_shape_equal(&out, &want2));
}

Test(tensor, broadcast_strides_zero_on_stretched_dims) {
  ty_shape in = SHAPE(3, 1), out = SHAPE(2, 3, 4);
  int64_t st[3];
  ty_broadcast_strides(&in, &out, st);
  cr_assert_eq(st[0], 0);
  cr_assert_eq(st[1], 1);
  cr_assert_eq(st[2], 0);
}

Test(tensor, numel_format_and_symbolic) {
  ty_shape s = SHAPE(TY_DIM_BATCH, 3, 224, 224);
  char buf[64];
  ty_shape_format(&s, buf, sizeof buf);
  cr_assert_str_eq(buf, "[N,3,224,224]");
  cr_assert_eq(ty_shape_numel(&s), -1);
  ty_shape r = ty_shape_with_batch(&s, 2);
  cr_assert_eq(ty_shape_numel(&r), 2 * 3 * 224 * 224);
  ty_tensor *t;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), TY_EINVAL);
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &r, &t), 0);
  cr_assert_eq(t->nbytes, (size_t)(2 * 3 * 224 * 224 * 4));
  ty_shape flat = SHAPE(2, 3 * 224 * 224);
  cr_assert_eq(ty_tensor_reshape(t, &flat), 0);
  ty_shape wrong = SHAPE(5);
  cr_assert_eq(ty_tensor_reshape(t, &wrong), TY_EINVAL);
  ty_tensor_destroy(t);
  ty_tensor_destroy(NULL);
}

Test(tensor, dtype_names) {
  cr_assert_str_eq(ty_dtype_name(TY_DTYPE_F32), "FLOAT");
  cr_assert_str_eq(ty_dtype_name(11), "DOUBLE");
  cr_assert_str_eq(ty_dtype_name(999), "UNKNOWN");
  cr_assert(ty_dtype_supported(11));
  cr_assert(!ty_dtype_supported(8), "STRING is refused");
  cr_assert(!ty_dtype_supported(14), "COMPLEX64 is refused");
  cr_assert_eq(ty_dtype_size(TY_DTYPE_F16), 2);
  cr_assert_eq(ty_dtype_size(TY_DTYPE_U64), 8);
}
