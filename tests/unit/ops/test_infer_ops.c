/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape inference of the ops added for exported models: what each infers,
 * and every rejection, with the message that names the node and the field.
 */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <string.h>

#define N TY_DIM_BATCH
#define F TY_DTYPE_F32
#define I TY_DTYPE_I64

/* A node reading graph inputs (shapes[i], dts[i]) or, where vals[i] is
 * given, int64 initializers holding vals[i]. */
typedef struct spec {
  ty_dtype dt;
  ty_shape shape;
  const int64_t *vals; /* NULL: a graph input */
} spec;

static ty_graph *build(ty_op op, int opset, const spec *in, int n_in, int n_out, int *out_node) {
  ty_graph *g;
  int ids[8], outs[8];
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, opset);
  for (int i = 0; i < n_in; i++) {
    cr_assert_eq(ty_graph_add_value(g, NULL, in[i].dt, &in[i].shape, &ids[i]), 0);
    if (!in[i].vals) {
      cr_assert_eq(ty_graph_mark_input(g, ids[i]), 0);
      continue;
    }
    ty_tensor *t;
    cr_assert_eq(ty_tensor_create_from(I, &in[i].shape, in[i].vals,
                                       (size_t)ty_shape_numel(&in[i].shape) * 8, &t),
                 0);
    cr_assert_eq(ty_graph_set_initializer(g, ids[i], t), 0);
  }
  for (int i = 0; i < n_out; i++)
    cr_assert_eq(ty_graph_add_value(g, NULL, TY_DTYPE_INVALID, NULL, &outs[i]), 0);
  cr_assert_eq(ty_graph_add_node(g, op, "n", ids, n_in, outs, n_out, out_node), 0);
  return g;
}

static void expect_error(ty_graph *g, int code, const char *msg) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), code, "%s", err);
  cr_assert(strstr(err, msg), "\"%s\" does not contain \"%s\"", err, msg);
  ty_graph_destroy(g);
}

static void expect_shape(ty_graph *g, int out, ty_dtype dt, ty_shape want) {
  char err[TY_ERR_LEN] = "", a[64], b[64];
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  const ty_graph_value *v =
      ty_graph_value_at(g, ty_graph_node_at(g, ty_graph_n_nodes(g) - 1)->outputs[out]);
  ty_shape_format(&v->shape, a, sizeof a);
  ty_shape_format(&want, b, sizeof b);
  cr_assert(ty_shape_equal(&v->shape, &want), "got %s, want %s", a, b);
  cr_assert_eq(v->dtype, dt, "dtype %s", ty_dtype_name(v->dtype));
  ty_graph_destroy(g);
}

#define IN(dt, ...) ((spec){dt, SHAPE(__VA_ARGS__), NULL})
#define VALS(rank_shape, ...) ((spec){I, rank_shape, (const int64_t[]){__VA_ARGS__}})

Test(infer_ops, comparisons_are_bool_and_dtypes_must_agree) {
  int k;
  expect_shape(
      build(TY_OP_LESS, 17, (spec[]){IN(TY_DTYPE_I32, N, 3), IN(TY_DTYPE_I32, 3)}, 2, 1, &k), 0,
      TY_DTYPE_BOOL, SHAPE(N, 3));
  expect_error(build(TY_OP_EQUAL, 17, (spec[]){IN(F, 3), IN(I, 3)}, 2, 1, &k), TY_EINVAL,
               "node \"n\" (Equal): inputs have dtypes FLOAT and INT64");
  expect_error(build(TY_OP_AND, 17, (spec[]){IN(F, 3), IN(F, 3)}, 2, 1, &k), TY_EUNSUPPORTED,
               "(And): input 0: dtype FLOAT is not supported");
}

Test(infer_ops, mod_and_bitshift_attributes) {
  int k;
  expect_error(build(TY_OP_MOD, 17, (spec[]){IN(F, 3), IN(F, 3)}, 2, 1, &k), TY_EINVAL,
               "(Mod): attribute fmod must be 1 for dtype FLOAT");
  ty_graph *g =
      build(TY_OP_BIT_SHIFT, 17, (spec[]){IN(TY_DTYPE_U8, 3), IN(TY_DTYPE_U8, 3)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "direction", "UP"), 0);
  expect_error(g, TY_EINVAL, "(BitShift): attribute direction must be LEFT or RIGHT, not \"UP\"");
}

Test(infer_ops, where_clip_and_cast) {
  int k;
  expect_shape(
      build(TY_OP_WHERE, 17, (spec[]){IN(TY_DTYPE_BOOL, 1, 4), IN(F, N, 1), IN(F, 4)}, 3, 1, &k), 0,
      F, SHAPE(N, 4));
  expect_error(build(TY_OP_WHERE, 17, (spec[]){IN(F, 4), IN(F, 4), IN(F, 4)}, 3, 1, &k),
               TY_EUNSUPPORTED, "(Where): input 0: dtype FLOAT is not supported");
  expect_error(build(TY_OP_CLIP, 13, (spec[]){IN(F, 4), IN(F, 2)}, 2, 1, &k), TY_EINVAL,
               "(Clip): input 1 (min) must be a scalar");
  ty_graph *g = build(TY_OP_CAST, 13, (spec[]){IN(F, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "to", 8), 0);
  expect_error(g, TY_EUNSUPPORTED, "(Cast): attribute to=STRING is not supported");
  g = build(TY_OP_CAST, 13, (spec[]){IN(F, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "to", TY_DTYPE_F16), 0);
  expect_shape(g, 0, TY_DTYPE_F16, SHAPE(4));
}

Test(infer_ops, unary_dtypes_and_attributes) {
  int k;
  expect_error(build(TY_OP_GELU, 20, (spec[]){IN(I, 4)}, 1, 1, &k), TY_EUNSUPPORTED,
               "(Gelu): input 0: dtype INT64");
  ty_graph *g = build(TY_OP_GELU, 20, (spec[]){IN(F, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "approximate", "fast"), 0);
  expect_error(g, TY_EINVAL, "(Gelu): attribute approximate=fast is not valid (none or tanh)");
  expect_shape(build(TY_OP_IS_NAN, 13, (spec[]){IN(TY_DTYPE_F64, 2)}, 1, 1, &k), 0, TY_DTYPE_BOOL,
               SHAPE(2));
  expect_shape(build(TY_OP_ABS, 13, (spec[]){IN(TY_DTYPE_I8, 2)}, 1, 1, &k), 0, TY_DTYPE_I8,
               SHAPE(2));
}

Test(infer_ops, shape_size_and_slice) {
  int k;
  expect_shape(build(TY_OP_SHAPE, 15, (spec[]){IN(F, N, 3, 4)}, 1, 1, &k), 0, I, SHAPE(3));
  expect_shape(build(TY_OP_SIZE, 15, (spec[]){IN(F, N, 3)}, 1, 1, &k), 0, I, SCALAR_SHAPE);
  expect_shape(
      build(TY_OP_SLICE, 13,
            (spec[]){IN(F, N, 10), VALS(SHAPE(1), 2), VALS(SHAPE(1), -1), VALS(SHAPE(1), 1)}, 4, 1,
            &k),
      0, F, SHAPE(N, 7));
  expect_error(
      build(TY_OP_SLICE, 13,
            (spec[]){IN(F, 4, 4), VALS(SHAPE(2), 0, 0), VALS(SHAPE(1), 2), VALS(SHAPE(2), 0, 1)}, 4,
            1, &k),
      TY_EINVAL, "(Slice): starts, ends, axes and steps must be vectors of one length");
}

Test(infer_ops, split_expand_tile) {
  int k;
  expect_error(build(TY_OP_SPLIT, 13, (spec[]){IN(F, 4, 6), VALS(SHAPE(2), 2, 3)}, 2, 2, &k),
               TY_EINVAL, "(Split): split sizes must be one per output and add up to the dim");
  expect_error(build(TY_OP_EXPAND, 13, (spec[]){IN(F, 3, 2), VALS(SHAPE(2), 3, 4)}, 2, 1, &k),
               TY_EINVAL, "(Expand): shape does not broadcast with the input");
  expect_error(build(TY_OP_TILE, 13, (spec[]){IN(F, 3, 2), VALS(SHAPE(1), 2)}, 2, 1, &k), TY_EINVAL,
               "(Tile): repeats must have one value per input dim");
  expect_shape(build(TY_OP_TILE, 13, (spec[]){IN(F, N, 2), VALS(SHAPE(2), 1, 3)}, 2, 1, &k), 0, F,
               SHAPE(N, 6));
}

/* PyTorch's repeat_interleave splits an Expand whose rank inference cannot
 * tell: every output still has the input's dtype, or the Concat reading
 * them is refused for "no known dtype". */
Test(infer_ops, split_of_unknown_rank_keeps_the_dtype) {
  int k;
  spec x = {F, ty_shape_unknown(), NULL};
  expect_shape(build(TY_OP_SPLIT, 13, (spec[]){x, VALS(SHAPE(2), 1, 1)}, 2, 2, &k), 1, F,
               ty_shape_unknown());
}

/* An output whose element count overflows is refused, whatever op made it. */
Test(infer_ops, outputs_too_large_are_refused) {
  int k;
  expect_error(build(TY_OP_TILE, 13, (spec[]){IN(F, 1024, 1024), VALS(SHAPE(2), 1 << 30, 1 << 30)},
                     2, 1, &k),
               TY_EINVAL, "node \"n\" (Tile): output 0: its shape is too large");
  expect_error(
      build(TY_OP_EXPAND, 13, (spec[]){IN(F, 1), VALS(SHAPE(1), (int64_t)1 << 41)}, 2, 1, &k),
      TY_EINVAL, "node \"n\" (Expand): output 0: its shape is too large");
}

Test(infer_ops, pad_modes_and_sizes) {
  int k;
  ty_graph *g = build(TY_OP_PAD, 13, (spec[]){IN(F, 3, 4), VALS(SHAPE(4), 1, 1, 1, 1)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "mode", "wrap"), 0);
  expect_error(g, TY_EUNSUPPORTED,
               "(Pad): attribute mode=wrap is not supported (constant, reflect, edge)");
  g = build(TY_OP_PAD, 13, (spec[]){IN(F, 3, 4), VALS(SHAPE(4), 3, 0, 0, 0)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "mode", "reflect"), 0);
  expect_error(g, TY_EINVAL, "(Pad): reflect pads must be smaller than the dim");
  expect_error(build(TY_OP_PAD, 13, (spec[]){IN(F, 3, 4), VALS(SHAPE(3), 1, 1, 1)}, 2, 1, &k),
               TY_EINVAL, "(Pad): pads must hold a begin and an end for every padded axis");
  expect_shape(build(TY_OP_PAD, 13, (spec[]){IN(F, N, 4), VALS(SHAPE(4), 0, 1, 0, -2)}, 2, 1, &k),
               0, F, SHAPE(N, 3));
}

Test(infer_ops, range_onehot_constant_of_shape) {
  int k;
  expect_error(build(TY_OP_RANGE, 13,
                     (spec[]){VALS(SCALAR_SHAPE, 0), VALS(SCALAR_SHAPE, 5), VALS(SCALAR_SHAPE, 0)},
                     3, 1, &k),
               TY_EINVAL, "(Range): delta is 0 or the range is too long");
  expect_shape(build(TY_OP_RANGE, 13,
                     (spec[]){VALS(SCALAR_SHAPE, 0), VALS(SCALAR_SHAPE, 5), VALS(SCALAR_SHAPE, 2)},
                     3, 1, &k),
               0, I, SHAPE(3));
  expect_error(
      build(TY_OP_ONE_HOT, 11, (spec[]){IN(I, 3), VALS(SCALAR_SHAPE, 0), IN(F, 2)}, 3, 1, &k),
      TY_EINVAL, "(OneHot): depth must be at least 1");
  expect_error(build(TY_OP_CONSTANT_OF_SHAPE, 13, (spec[]){VALS(SHAPE(2), 2, -3)}, 1, 1, &k),
               TY_EINVAL, "(ConstantOfShape): shape has a negative dim");
}

Test(infer_ops, gather_scatter_families) {
  int k;
  expect_error(build(TY_OP_GATHER_ELEMENTS, 13, (spec[]){IN(F, 3, 3), IN(I, 3)}, 2, 1, &k),
               TY_EINVAL, "(GatherElements): indices must have the rank of data");
  expect_error(build(TY_OP_GATHER_ND, 13, (spec[]){IN(F, 3, 3), IN(I, 2, 3)}, 2, 1, &k), TY_EINVAL,
               "(GatherND): the last dim of indices must be 1..rank(data) - batch_dims");
  expect_shape(build(TY_OP_GATHER_ND, 13, (spec[]){IN(F, 3, 4, 5), IN(I, 2, 2)}, 2, 1, &k), 0, F,
               SHAPE(2, 5));
  expect_error(
      build(TY_OP_SCATTER_ND, 16, (spec[]){IN(F, 4, 3), IN(I, 2, 1), IN(F, 2, 4)}, 3, 1, &k),
      TY_EINVAL,
      "(ScatterND): updates must have shape indices.shape[:-1] + data.shape[indices.shape[-1]:]");
  ty_graph *g =
      build(TY_OP_SCATTER_ELEMENTS, 16, (spec[]){IN(F, 4, 3), IN(I, 2, 3), IN(F, 2, 3)}, 3, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "reduction", "avg"), 0);
  expect_error(g, TY_EINVAL, "(ScatterElements): attribute reduction=avg is not valid");
  /* indices of a dim the graph cannot tell match updates of the batch
   * (an Expand to a partly known shape); known dims must still agree. */
  int u = TY_DIM_UNKNOWN;
  expect_shape(build(TY_OP_SCATTER_ELEMENTS, 16,
                     (spec[]){IN(F, N, 2, 3), IN(I, u, 6, 3), IN(F, N, 6, 3)}, 3, 1, &k),
               0, F, SHAPE(N, 2, 3));
  expect_error(build(TY_OP_SCATTER_ELEMENTS, 16,
                     (spec[]){IN(F, N, 2, 3), IN(I, u, 6, 3), IN(F, N, 5, 3)}, 3, 1, &k),
               TY_EINVAL, "(ScatterElements): indices and updates must have one shape");
  expect_error(build(TY_OP_SCATTER_ELEMENTS, 16,
                     (spec[]){IN(F, N, 2, 3), IN(I, 4, 6, 3), IN(F, N, 6, 3)}, 3, 1, &k),
               TY_EINVAL, "(ScatterElements): indices and updates must have one shape");
}

Test(infer_ops, layout_ops) {
  int k;
  ty_graph *g = build(TY_OP_DEPTH_TO_SPACE, 13, (spec[]){IN(F, 1, 6, 2, 2)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "blocksize", 2), 0);
  expect_error(g, TY_EINVAL, "(DepthToSpace): channels must divide by blocksize^2");
  expect_error(build(TY_OP_TRILU, 14, (spec[]){IN(F, 4)}, 1, 1, &k), TY_EINVAL,
               "(Trilu): input must have rank >= 2");
  expect_error(build(TY_OP_CUMSUM, 14, (spec[]){IN(F, 4), VALS(SHAPE(2), 0, 0)}, 2, 1, &k),
               TY_EINVAL, "(CumSum): axis must be a scalar");
}

/* Resize (X, roi, scales, sizes; empty roi and scales as exporters write
 * them) and Upsample-7 (attribute scales). */
static ty_graph *resize(int opset, spec x, const int64_t *sizes, int n_sizes, int *k) {
  spec in[4] = {x, IN(F, 0), IN(F, 0), {I, ty_shape_make(1, (int64_t[]){n_sizes}), sizes}};
  return build(TY_OP_RESIZE, opset, in, 4, 1, k);
}

Test(infer_ops, resize_geometry) {
  int k;
  expect_shape(resize(13, IN(F, 2, 3, 4, 4), (const int64_t[]){2, 3, 8, 6}, 4, &k), 0, F,
               SHAPE(2, 3, 8, 6));
  ty_graph *g = resize(18, IN(F, 2, 3, 4, 4), (const int64_t[]){8, 6}, 2, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "axes", (int64_t[]){-2, -1}, 2), 0);
  expect_shape(g, 0, F, SHAPE(2, 3, 8, 6));
  g = resize(18, IN(F, 2, 3, 4, 4), (const int64_t[]){8, 6}, 2, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "axes", (int64_t[]){2, 3}, 2), 0);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "keep_aspect_ratio_policy", "not_larger"), 0);
  expect_shape(g, 0, F, SHAPE(2, 3, 6, 6));
  /* Upsample-7: a scale of 1 keeps the batch symbolic; floor(4 * 2.5). */
  g = build(TY_OP_UPSAMPLE, 7, (spec[]){IN(TY_DTYPE_U8, N, 3, 4, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_floats(g, (size_t)k, "scales", (float[]){1, 1, 2, 2.5f}, 4), 0);
  expect_shape(g, 0, TY_DTYPE_U8, SHAPE(N, 3, 8, 10));
}

Test(infer_ops, resize_rejections) {
  int k;
  const int64_t up[] = {1, 1, 8, 8};
  ty_graph *g = resize(13, IN(F, 1, 1, 4, 4), up, 4, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "mode", "bicubic"), 0);
  expect_error(g, TY_EINVAL, "(Resize): attribute mode=bicubic: expected nearest, linear or cubic");
  g = resize(13, IN(I, 1, 1, 4, 4), up, 4, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "mode", "linear"), 0);
  expect_error(g, TY_EUNSUPPORTED, "(Resize): input 0: dtype INT64 is not supported");
  g = resize(13, IN(F, 1, 1, 4, 4), up, 4, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "coordinate_transformation_mode", "edge"), 0);
  expect_error(g, TY_EINVAL, "coordinate_transformation_mode=edge is not an ONNX mode");
  g = resize(18, IN(F, 1, 1, 4, 4), up, 4, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "antialias", 1), 0);
  expect_error(g, TY_EUNSUPPORTED, "(Resize): attribute antialias=1 is not supported");
  expect_error(resize(13, IN(F, 1, 1, 4, 4), (const int64_t[]){8, 8}, 2, &k), TY_EINVAL,
               "(Resize): sizes has 2 values; expected 4");
  expect_error(resize(13, IN(F, 1, 1, 4, 4), (const int64_t[]){1, 1, 0, 8}, 4, &k), TY_EINVAL,
               "sizes[2]=0: every size must be >= 1");
  g = resize(18, IN(F, 1, 1, 4, 4), (const int64_t[]){8, 8}, 2, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "axes", (int64_t[]){2, 2}, 2), 0);
  expect_error(g, TY_EINVAL, "attribute axes: 2 is out of range or repeated for rank 4");
  expect_error(build(TY_OP_RESIZE, 13, (spec[]){IN(F, 1, 1, 4, 4), IN(F, 0), IN(F, 0)}, 3, 1, &k),
               TY_EINVAL, "(Resize): one of scales and sizes must be given");
  g = build(TY_OP_UPSAMPLE, 7, (spec[]){IN(F, 1, 1, 4, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_floats(g, (size_t)k, "scales", (float[]){1, 1, -2, 2}, 4), 0);
  expect_error(g, TY_EINVAL, "(Upsample): scales[2]=-2: every scale must be > 0");
}

Test(infer_ops, reductions_and_argmax) {
  int k;
  expect_shape(build(TY_OP_REDUCE_MAX, 18, (spec[]){IN(TY_DTYPE_I32, N, 3, 4), VALS(SHAPE(1), -1)},
                     2, 1, &k),
               0, TY_DTYPE_I32, SHAPE(N, 3, 1));
  ty_graph *g = build(TY_OP_ARG_MAX, 13, (spec[]){IN(F, N, 3, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "axis", 1), 0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "keepdims", 0), 0);
  expect_shape(g, 0, I, SHAPE(N, 4));
  expect_error(build(TY_OP_REDUCE_MIN, 18, (spec[]){IN(F, 0, 3), VALS(SHAPE(1), 0)}, 2, 1, &k),
               TY_EINVAL, "(ReduceMin): cannot reduce an empty dim to a maximum or minimum");
  /* Before opset 18 (13 for ReduceSum) axes is an attribute: an axes input
   * there is refused, not read by the kernel against the inferred shape. */
  expect_error(build(TY_OP_REDUCE_MEAN, 17, (spec[]){IN(F, 2, 3, 4), VALS(SHAPE(1), 1)}, 2, 1, &k),
               TY_EINVAL,
               "(ReduceMean): input 1 (axes) is given, but at opset 17 axes is an attribute (an "
               "input from opset 18)");
  expect_error(build(TY_OP_REDUCE_SUM, 11, (spec[]){IN(F, 2, 3), VALS(SHAPE(1), 1)}, 2, 1, &k),
               TY_EINVAL, "at opset 11 axes is an attribute (an input from opset 13)");
}

/* nn.Conv3d: rank-5 Conv with strides, dilations, pads and groups, and
 * with auto_pad; a rank-6 input, a weight of another rank and pads of the
 * wrong length are refused naming the node. */
Test(infer_ops, conv_3d_geometry_and_refusals) {
  int k;
  ty_graph *g =
      build(TY_OP_CONV, 17, (spec[]){IN(F, N, 4, 5, 6, 7), IN(F, 6, 2, 3, 3, 2)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "group", 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "strides", (int64_t[]){1, 2, 1}, 3), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "dilations", (int64_t[]){2, 1, 1}, 3), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "pads", (int64_t[]){1, 1, 0, 1, 0, 1}, 6), 0);
  /* depth 5 + 2 - 5 + 1 = 3; height (6 + 1 - 3) / 2 + 1 = 3; width 7 + 1 - 2 + 1 = 7 */
  expect_shape(g, 0, F, SHAPE(N, 6, 3, 3, 7));
  /* auto_pad SAME_UPPER with strides: ceil(in / stride) per spatial dim */
  g = build(TY_OP_CONV, 17, (spec[]){IN(F, N, 4, 5, 6, 7), IN(F, 6, 4, 2, 3, 2)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "auto_pad", "SAME_UPPER"), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "strides", (int64_t[]){2, 1, 3}, 3), 0);
  expect_shape(g, 0, F, SHAPE(N, 6, 3, 6, 3));
  expect_error(
      build(TY_OP_CONV, 17, (spec[]){IN(F, 1, 1, 2, 2, 2, 2), IN(F, 1, 1, 1, 1, 1, 1)}, 2, 1, &k),
      TY_EUNSUPPORTED, "node \"n\" (Conv): input 0 has rank 6, expected 3..5");
  expect_error(build(TY_OP_CONV, 17, (spec[]){IN(F, 1, 1, 4, 4, 4), IN(F, 2, 1, 3, 3)}, 2, 1, &k),
               TY_EINVAL, "(Conv): weight rank 4 differs from input rank 5");
  g = build(TY_OP_CONV, 17, (spec[]){IN(F, 1, 1, 4, 4, 4), IN(F, 2, 1, 3, 3, 3)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "pads", (int64_t[]){1, 1, 1, 1}, 4), 0);
  expect_error(g, TY_EINVAL, "(Conv): attribute pads must have 6 values");
}

/* LRN keeps its input's shape; a missing or non-positive size, a
 * non-positive bias and a rank below 3 are refused naming the node. */
Test(infer_ops, lrn_shape_and_refusals) {
  int k;
  ty_graph *g = build(TY_OP_LRN, 13, (spec[]){IN(F, N, 6, 3, 3)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "size", 5), 0);
  expect_shape(g, 0, F, SHAPE(N, 6, 3, 3));
  g = build(TY_OP_LRN, 13, (spec[]){IN(F, N, 6, 3, 3)}, 1, 1, &k);
  expect_error(g, TY_EINVAL, "node \"n\" (LRN): attribute size (an int) is required");
  g = build(TY_OP_LRN, 13, (spec[]){IN(F, N, 6, 3, 3)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "size", 0), 0);
  expect_error(g, TY_EINVAL, "node \"n\" (LRN): attribute size=0 must be in 1..");
  g = build(TY_OP_LRN, 13, (spec[]){IN(F, N, 6, 3, 3)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "size", -2), 0);
  expect_error(g, TY_EINVAL, "(LRN): attribute size=-2 must be in 1..");
  g = build(TY_OP_LRN, 13, (spec[]){IN(F, N, 6, 3, 3)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "size", 3), 0);
  cr_assert_eq(ty_graph_node_set_float(g, (size_t)k, "bias", 0.0f), 0);
  expect_error(g, TY_EINVAL, "(LRN): attributes bias=0 and alpha=0.0001: bias must be positive");
  g = build(TY_OP_LRN, 13, (spec[]){IN(F, N, 6)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)k, "size", 3), 0);
  expect_error(g, TY_EUNSUPPORTED, "(LRN): input 0 has rank 2, expected 3..");
}

/* MeanVarianceNormalization keeps its input's shape; axes out of range
 * (also the default [0, 2, 3] on a rank-3 input) and repeated are refused. */
Test(infer_ops, mvn_shape_and_refusals) {
  int k;
  expect_shape(build(TY_OP_MVN, 13, (spec[]){IN(F, N, 3, 4, 4)}, 1, 1, &k), 0, F,
               SHAPE(N, 3, 4, 4));
  ty_graph *g = build(TY_OP_MVN, 13, (spec[]){IN(F, N, 3, 4)}, 1, 1, &k);
  expect_error(g, TY_EINVAL,
               "node \"n\" (MeanVarianceNormalization): axis 3 is out of range for rank 3 "
               "(default axes [0, 2, 3])");
  g = build(TY_OP_MVN, 13, (spec[]){IN(F, N, 3, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "axes", (int64_t[]){1, -4}, 2), 0);
  expect_error(g, TY_EINVAL, "(MeanVarianceNormalization): axis -4 is out of range for rank 3");
  g = build(TY_OP_MVN, 13, (spec[]){IN(F, N, 3, 4)}, 1, 1, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "axes", (int64_t[]){2, -1}, 2), 0);
  expect_error(g, TY_EINVAL, "(MeanVarianceNormalization): axis -1 is repeated");
}

/* GridSample: [N, C, H, W] and [N, Ho, Wo, 2] give [N, C, Ho, Wo], with
 * bicubic and reflection too; an unknown mode or padding, a grid without
 * two coordinates and a rank-5 input are refused naming the node. */
Test(infer_ops, grid_sample_shape_and_refusals) {
  int k;
  expect_shape(
      build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, N, 3, 8, 9), IN(F, N, 5, 6, 2)}, 2, 1, &k), 0, F,
      SHAPE(N, 3, 5, 6));
  ty_graph *g =
      build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, N, 3, 8, 9), IN(F, N, 5, 6, 2)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "mode", "bicubic"), 0);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "padding_mode", "reflection"), 0);
  expect_shape(g, 0, F, SHAPE(N, 3, 5, 6));
  g = build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, N, 3, 8, 9), IN(F, N, 5, 6, 2)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "mode", "lanczos"), 0);
  expect_error(g, TY_EUNSUPPORTED,
               "node \"n\" (GridSample): attribute mode=lanczos is not supported (bilinear, "
               "linear, nearest, bicubic or cubic)");
  g = build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, N, 3, 8, 9), IN(F, N, 5, 6, 2)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "padding_mode", "wrap"), 0);
  expect_error(g, TY_EUNSUPPORTED,
               "(GridSample): attribute padding_mode=wrap is not supported (zeros, border or "
               "reflection)");
  expect_error(
      build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, N, 3, 8, 9), IN(F, N, 5, 6, 3)}, 2, 1, &k),
      TY_EINVAL, "(GridSample): grid's last dim is 3, expected 2 (x, y)");
  expect_error(
      build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, 2, 3, 8, 9), IN(F, 4, 5, 6, 2)}, 2, 1, &k),
      TY_EINVAL, "(GridSample): batch: 2 vs 4");
  expect_error(
      build(TY_OP_GRID_SAMPLE, 16, (spec[]){IN(F, N, 3, 4, 8, 9), IN(F, N, 5, 6, 2)}, 2, 1, &k),
      TY_EUNSUPPORTED, "(GridSample): input 0 has rank 5, expected 4..4");
}

Test(infer_ops, conv_transpose_geometry) {
  int k;
  ty_graph *g =
      build(TY_OP_CONV_TRANSPOSE, 17, (spec[]){IN(F, N, 2, 3, 3), IN(F, 2, 4, 3, 3)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "strides", (int64_t[]){2, 2}, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "output_padding", (int64_t[]){1, 1}, 2), 0);
  expect_shape(g, 0, F, SHAPE(N, 4, 8, 8));
  expect_error(
      build(TY_OP_CONV_TRANSPOSE, 17, (spec[]){IN(F, 1, 2, 3, 3), IN(F, 3, 4, 3, 3)}, 2, 1, &k),
      TY_EINVAL, "(ConvTranspose): channels do not match: input 2, weight 3, group 1");
  g = build(TY_OP_CONV_TRANSPOSE, 17, (spec[]){IN(F, 1, 2, 3, 3), IN(F, 2, 4, 3, 3)}, 2, 1, &k);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)k, "strides", (int64_t[]){2}, 1), 0);
  expect_error(g, TY_EINVAL,
               "(ConvTranspose): kernel_shape, strides, dilations, output_padding and output_shape "
               "need 2 values");
}

static ty_graph *einsum(const char *eq, const spec *in, int n) {
  int k;
  ty_graph *g = build(TY_OP_EINSUM, 12, in, n, 1, &k);
  cr_assert_eq(ty_graph_node_set_string(g, (size_t)k, "equation", eq), 0);
  return g;
}

Test(infer_ops, einsum_equations) {
  expect_shape(einsum("bhqd,bhkd->bhqk", (spec[]){IN(F, N, 4, 5, 8), IN(F, N, 4, 6, 8)}, 2), 0, F,
               SHAPE(N, 4, 5, 6));
  expect_shape(einsum("...ij,...jk", (spec[]){IN(F, 2, 3, 4), IN(F, 4, 5)}, 2), 0, F,
               SHAPE(2, 3, 5));
  expect_shape(einsum("ij->", (spec[]){IN(F, 2, 3)}, 1), 0, F, SCALAR_SHAPE);
  expect_error(einsum("ij,jk->ik", (spec[]){IN(F, 2, 3), IN(F, 4, 5)}, 2), TY_EINVAL,
               "(Einsum): equation \"ij,jk->ik\": operand 1 dim 0 has size 4, another operand's 3");
  expect_error(einsum("ij->k", (spec[]){IN(F, 2, 3)}, 1), TY_EINVAL,
               "output label 'k' is in no input");
  expect_error(einsum("ij,jk", (spec[]){IN(F, 2, 3)}, 1), TY_EINVAL,
               "needs one term per input (1)");
  expect_error(einsum("i1->i", (spec[]){IN(F, 2)}, 1), TY_EINVAL, "unexpected character '1'");
  expect_error(einsum("ijk->i", (spec[]){IN(F, 2, 3)}, 1), TY_EINVAL,
               "term 0 has 3 labels for rank 2");
}

Test(infer_ops, losses) {
  int k;
  expect_shape(build(TY_OP_NLL_LOSS, 13, (spec[]){IN(F, N, 5), IN(TY_DTYPE_I32, N)}, 2, 1, &k), 0,
               F, SCALAR_SHAPE);
  expect_error(build(TY_OP_NLL_LOSS, 13, (spec[]){IN(F, 4, 5), IN(I, 4), IN(F, 3)}, 3, 1, &k),
               TY_EINVAL, "(NegativeLogLikelihoodLoss): weights must be a vector of C values");
}

Test(infer_ops, top_k) {
  int k;
  expect_shape(build(TY_OP_TOP_K, 17, (spec[]){IN(F, N, 6, 4), VALS(SHAPE(1), 2)}, 2, 2, &k), 1, I,
               SHAPE(N, 6, 2));
  expect_error(build(TY_OP_TOP_K, 17, (spec[]){IN(F, N, 6, 4), VALS(SHAPE(1), 5)}, 2, 2, &k),
               TY_EINVAL, "(TopK): K=5 exceeds the axis' 4 elements");
  expect_error(build(TY_OP_TOP_K, 17, (spec[]){IN(F, N, 6), VALS(SHAPE(1), -1)}, 2, 2, &k),
               TY_EINVAL, "(TopK): K must be >= 0");
  expect_error(build(TY_OP_TOP_K, 17, (spec[]){IN(F, N, 6), VALS(SHAPE(2), 1, 2)}, 2, 2, &k),
               TY_EINVAL, "(TopK): K must hold one value");
  expect_error(build(TY_OP_TOP_K, 1, (spec[]){IN(F, N, 6)}, 1, 2, &k), TY_EINVAL,
               "(TopK): attribute k must be given and >= 0");
}
