/* SPDX-License-Identifier: Apache-2.0 */
/* CPU kernels against hand-computed values. */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define F TY_DTYPE_F32
#define I TY_DTYPE_I64

static void expect(const ty_tensor *t, const float *want, int64_t n) {
  cr_assert_eq(ty_tensor_numel(t), n);
  for (int64_t i = 0; i < n; i++)
    cr_assert_float_eq(ty_tensor_f32(t)[i], want[i], 1e-5, "element %lld: %g vs %g", (long long)i,
                       ty_tensor_f32(t)[i], want[i]);
}

/* Builds, runs and checks output 0 of a one-node graph; attrs may be NULL. */
static void check(ty_op op, int n_in, ty_tensor **in, void (*attrs)(one_node *), const float *want,
                  int64_t n) {
  one_node b;
  ty_dtype dts[8];
  ty_shape shs[8];
  for (int i = 0; i < n_in; i++) {
    dts[i] = in[i]->dtype;
    shs[i] = in[i]->shape;
  }
  one_node_build(&b, op, n_in, dts, shs, 1);
  if (attrs) attrs(&b);
  ty_exec *e = one_node_run(&b, in);
  expect(ty_exec_value(e, b.out[0]), want, n);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  for (int i = 0; i < n_in; i++)
    ty_tensor_destroy(in[i]);
}

Test(kernels, binary_broadcasting) {
  ty_tensor *in[2] = {tensor_f32(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6}),
                      tensor_f32(SHAPE(3), (float[]){10, 20, 30})};
  check(TY_OP_ADD, 2, in, NULL, (float[]){11, 22, 33, 14, 25, 36}, 6);
  ty_tensor *in2[2] = {tensor_f32(SHAPE(2, 1), (float[]){1, 2}),
                       tensor_f32(SHAPE(1, 3), (float[]){1, 2, 4})};
  check(TY_OP_DIV, 2, in2, NULL, (float[]){1, 0.5f, 0.25f, 2, 1, 0.5f}, 6);
  ty_tensor *in3[2] = {tensor_f32(SHAPE(3), (float[]){1, 2, 3}),
                       tensor_f32(SCALAR_SHAPE, (float[]){2})};
  check(TY_OP_POW, 2, in3, NULL, (float[]){1, 4, 9}, 3);
}

Test(kernels, activations) {
  ty_tensor *a[1] = {tensor_f32(SHAPE(3), (float[]){-2, 0, 3})};
  check(TY_OP_RELU, 1, a, NULL, (float[]){0, 0, 3}, 3);
  ty_tensor *b[1] = {tensor_f32(SHAPE(3), (float[]){-2, 0, 3})};
  check(TY_OP_LEAKY_RELU, 1, b, NULL, (float[]){-0.02f, 0, 3}, 3);
  ty_tensor *c[1] = {tensor_f32(SHAPE(2), (float[]){0, -100})};
  check(TY_OP_SIGMOID, 1, c, NULL, (float[]){0.5f, 0}, 2);
  ty_tensor *d[1] = {tensor_f32(SHAPE(2), (float[]){0, 1})};
  check(TY_OP_ERF, 1, d, NULL, (float[]){0, 0.8427008f}, 2);
}

static void trans_b(one_node *b) {
  ty_graph_node_set_int(b->g, (size_t)b->node, "transB", 1);
}

Test(kernels, gemm_and_matmul) {
  ty_tensor *in[3] = {tensor_f32(SHAPE(1, 2), (float[]){1, 2}),
                      tensor_f32(SHAPE(2, 2), (float[]){1, 2, 3, 4}),
                      tensor_f32(SHAPE(2), (float[]){10, 20})};
  /* [1,2] x [[1,2],[3,4]]^T + [10,20] = [1+4, 3+8] + ... */
  check(TY_OP_GEMM, 3, in, trans_b, (float[]){15, 31}, 2);
  ty_tensor *m[2] = {tensor_f32(SHAPE(2, 1, 2), (float[]){1, 2, 3, 4}),
                     tensor_f32(SHAPE(2, 1), (float[]){1, 1})};
  check(TY_OP_MATMUL, 2, m, NULL, (float[]){3, 7}, 2);
}

static void pad1(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "pads", (int64_t[]){1, 1, 1, 1}, 4);
}

Test(kernels, conv_with_padding_and_bias) {
  float x[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  float w[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  ty_tensor *in[3] = {tensor_f32(SHAPE(1, 1, 3, 3), x), tensor_f32(SHAPE(1, 1, 3, 3), w),
                      tensor_f32(SHAPE(1), (float[]){1})};
  /* 3x3 box sums with zero padding, plus 1. */
  check(TY_OP_CONV, 3, in, pad1, (float[]){13, 22, 17, 28, 46, 34, 25, 40, 29}, 9);
}

static void group2(one_node *b) {
  ty_graph_node_set_int(b->g, (size_t)b->node, "group", 2);
}

Test(kernels, conv_groups) {
  ty_tensor *in[2] = {tensor_f32(SHAPE(1, 2, 1, 2), (float[]){1, 2, 3, 4}),
                      tensor_f32(SHAPE(2, 1, 1, 1), (float[]){10, 100})};
  check(TY_OP_CONV, 2, in, group2, (float[]){10, 20, 300, 400}, 4);
}

static void pool2(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "kernel_shape", (int64_t[]){2, 2}, 2);
  ty_graph_node_set_ints(b->g, (size_t)b->node, "pads", (int64_t[]){1, 1, 0, 0}, 4);
  ty_graph_node_set_ints(b->g, (size_t)b->node, "strides", (int64_t[]){1, 1}, 2);
}

static void pool2_incl(one_node *b) {
  pool2(b);
  ty_graph_node_set_int(b->g, (size_t)b->node, "count_include_pad", 1);
}

Test(kernels, pools) {
  float x[4] = {1, 2, 3, 4};
  ty_tensor *a[1] = {tensor_f32(SHAPE(1, 1, 2, 2), x)};
  check(TY_OP_MAX_POOL, 1, a, pool2, (float[]){1, 2, 3, 4}, 4);
  ty_tensor *b[1] = {tensor_f32(SHAPE(1, 1, 2, 2), x)};
  check(TY_OP_AVERAGE_POOL, 1, b, pool2, (float[]){1, 1.5f, 2, 2.5f}, 4);
  ty_tensor *c[1] = {tensor_f32(SHAPE(1, 1, 2, 2), x)};
  check(TY_OP_AVERAGE_POOL, 1, c, pool2_incl, (float[]){0.25f, 0.75f, 1, 2.5f}, 4);
  ty_tensor *d[1] = {tensor_f32(SHAPE(1, 2, 1, 2), (float[]){1, 3, 5, 9})};
  check(TY_OP_GLOBAL_AVERAGE_POOL, 1, d, NULL, (float[]){2, 7}, 2);
}

Test(kernels, batch_norm_inference) {
  ty_tensor *in[5] = {tensor_f32(SHAPE(1, 2, 1, 1), (float[]){1, 2}),
                      tensor_f32(SHAPE(2), (float[]){2, 1}), tensor_f32(SHAPE(2), (float[]){0, 1}),
                      tensor_f32(SHAPE(2), (float[]){1, 0}), tensor_f32(SHAPE(2), (float[]){4, 1})};
  /* (x - mean) / sqrt(var + 1e-5) * scale + bias */
  check(TY_OP_BATCH_NORM, 5, in, NULL, (float[]){0, 2.0f / sqrtf(1 + 1e-5f) + 1}, 2);
}

/* Training-mode BatchNormalization (one sweep over fixed lanes,
 * kernels/bn_sweep.c) against the two-pass statistics in double, on
 * planes of 65 (eight full lanes and a tail) and values near 100 with a
 * spread of 1: y within 1e-4 (its float x * k + b0 rounds at about
 * 100 * 2^-24 * k), the running mean and variance outputs within 1e-6
 * relative. */
Test(kernels, batch_norm_training_matches_two_pass) {
  enum { N = 3, C = 4, SP = 65 };
  one_node b;
  ty_tensor *in[5] = {tensor_f32(SHAPE(N, C, 5, 13), NULL), tensor_f32(SHAPE(C), NULL),
                      tensor_f32(SHAPE(C), NULL), tensor_f32(SHAPE(C), NULL),
                      tensor_f32(SHAPE(C), NULL)};
  float *x = ty_tensor_f32(in[0]);
  for (int i = 0; i < N * C * SP; i++)
    x[i] = 100.0f + (float)sin(i * 0.7) * (1.0f + (float)(i % C));
  for (int c = 0; c < C; c++) {
    ty_tensor_f32(in[1])[c] = 0.5f + 0.25f * (float)c;
    ty_tensor_f32(in[2])[c] = -1.0f + 0.5f * (float)c;
    ty_tensor_f32(in[3])[c] = 0.0f;
    ty_tensor_f32(in[4])[c] = 1.0f;
  }
  ty_dtype dts[5] = {F, F, F, F, F};
  ty_shape shs[5];
  for (int i = 0; i < 5; i++)
    shs[i] = in[i]->shape;
  one_node_build(&b, TY_OP_BATCH_NORM, 5, dts, shs, 3);
  char err[256];
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0, "%s", err);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b.g, &(ty_exec_opts){.training = true}, &e), 0);
  for (int i = 0; i < 5; i++) {
    char name[8];
    snprintf(name, sizeof name, "x%d", i);
    cr_assert_eq(ty_exec_bind(e, name, in[i], err, sizeof err), 0, "%s", err);
  }
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  const float *y = ty_tensor_f32(ty_exec_value(e, b.out[0]));
  for (int c = 0; c < C; c++) {
    double s = 0, s2 = 0, cnt = N * SP;
    for (int n = 0; n < N; n++)
      for (int i = 0; i < SP; i++)
        s += x[(n * C + c) * SP + i];
    double m = s / cnt;
    for (int n = 0; n < N; n++)
      for (int i = 0; i < SP; i++)
        s2 += (x[(n * C + c) * SP + i] - m) * (x[(n * C + c) * SP + i] - m);
    double var = s2 / cnt, k = ty_tensor_f32(in[1])[c] / sqrt(var + 1e-5);
    for (int n = 0; n < N; n++)
      for (int i = 0; i < SP; i++) {
        int at = (n * C + c) * SP + i;
        double want = (x[at] - m) * k + ty_tensor_f32(in[2])[c];
        cr_assert(fabs(y[at] - want) <= 1e-4, "y[%d] %.7g vs %.7g", at, y[at], want);
      }
    double um = 0.1 * m, uv = 0.9 + 0.1 * var;
    float got_m = ty_tensor_f32(ty_exec_value(e, b.out[1]))[c],
          got_v = ty_tensor_f32(ty_exec_value(e, b.out[2]))[c];
    cr_assert(fabs(got_m - um) <= 1e-6 * fabs(um), "channel %d mean %.9g vs %.9g", c, got_m, um);
    cr_assert(fabs(got_v - uv) <= 1e-6 * fabs(uv), "channel %d var %.9g vs %.9g", c, got_v, uv);
  }
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  for (int i = 0; i < 5; i++)
    ty_tensor_destroy(in[i]);
}

Test(kernels, layer_norm_and_softmax) {
  ty_tensor *in[2] = {tensor_f32(SHAPE(1, 2), (float[]){1, 3}),
                      tensor_f32(SHAPE(2), (float[]){1, 1})};
  float s = 1.0f / sqrtf(1 + 1e-5f);
  check(TY_OP_LAYER_NORM, 2, in, NULL, (float[]){-s, s}, 2);
  ty_tensor *sm[1] = {tensor_f32(SHAPE(1, 2), (float[]){0, logf(3)})};
  check(TY_OP_SOFTMAX, 1, sm, NULL, (float[]){0.25f, 0.75f}, 2);
  ty_tensor *lsm[1] = {tensor_f32(SHAPE(1, 2), (float[]){0, logf(3)})};
  check(TY_OP_LOG_SOFTMAX, 1, lsm, NULL, (float[]){logf(0.25f), logf(0.75f)}, 2);
}

static void ignore_neg1(one_node *b) {
  ty_graph_node_set_int(b->g, (size_t)b->node, "ignore_index", -1);
}

Test(kernels, softmax_cross_entropy) {
  /* Row 0 is uniform over 2 classes: loss ln 2. Row 1 is ignored. */
  ty_tensor *in[2] = {tensor_f32(SHAPE(2, 2), (float[]){0, 0, 5, 1}),
                      tensor_i64(SHAPE(2), (int64_t[]){1, -1})};
  check(TY_OP_SOFTMAX_CE_LOSS, 2, in, ignore_neg1, (float[]){logf(2)}, 1);
}

static void axis1(one_node *b) {
  ty_graph_node_set_int(b->g, (size_t)b->node, "axis", 1);
}

static void perm10(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "perm", (int64_t[]){1, 0}, 2);
}

Test(kernels, transpose_concat_gather) {
  ty_tensor *t[1] = {tensor_f32(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6})};
  check(TY_OP_TRANSPOSE, 1, t, perm10, (float[]){1, 4, 2, 5, 3, 6}, 6);
  ty_tensor *c[2] = {tensor_f32(SHAPE(2, 1), (float[]){1, 2}),
                     tensor_f32(SHAPE(2, 2), (float[]){3, 4, 5, 6})};
  check(TY_OP_CONCAT, 2, c, axis1, (float[]){1, 3, 4, 2, 5, 6}, 6);
  ty_tensor *g[2] = {tensor_f32(SHAPE(3, 2), (float[]){1, 2, 3, 4, 5, 6}),
                     tensor_i64(SHAPE(2), (int64_t[]){-1, 0})};
  check(TY_OP_GATHER, 2, g, NULL, (float[]){5, 6, 1, 2}, 4);
}

/* Runs a two-input node that must fail on its data; its error contains want. */
static void refused_run(ty_op op, ty_tensor **in, void (*attrs)(one_node *), const char *want) {
  one_node b;
  one_node_build(&b, op, 2, (ty_dtype[]){in[0]->dtype, in[1]->dtype},
                 (ty_shape[]){in[0]->shape, in[1]->shape}, 1);
  if (attrs) attrs(&b);
  char err[256];
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b.g, NULL, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x0", in[0], err, sizeof err), 0);
  cr_assert_eq(ty_exec_bind(e, "x1", in[1], err, sizeof err), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, want), "%s", err);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  ty_tensor_destroy(in[0]);
  ty_tensor_destroy(in[1]);
}

Test(kernels, gather_index_out_of_range_is_an_error_naming_the_node) {
  ty_tensor *in[2] = {tensor_f32(SHAPE(3), NULL), tensor_i64(SHAPE(2), (int64_t[]){1, 7})};
  refused_run(TY_OP_GATHER, in, NULL,
              "node \"n\" (Gather): index 7 (element 1 of the indices) is outside [-3, 3), axis "
              "0's size");
}

/* A label outside the classes names itself and its sample (and the
 * ignore_index it is not), not "kernel failed". */
Test(kernels, a_label_out_of_range_is_an_error_naming_label_and_sample) {
  ty_tensor *in[2] = {tensor_f32(SHAPE(3, 2), (float[]){0, 0, 5, 1, 2, 2}),
                      tensor_i64(SHAPE(3), (int64_t[]){1, -1, 2})};
  refused_run(TY_OP_SOFTMAX_CE_LOSS, in, ignore_neg1,
              "node \"n\" (SoftmaxCrossEntropyLoss): label 2 (sample 2 of the batch) is outside "
              "[0, 2), the classes and is not the ignore_index -1");
  ty_tensor *nll[2] = {tensor_f32(SHAPE(1, 2), (float[]){-1, -1}),
                       tensor_i64(SHAPE(1), (int64_t[]){-3})};
  refused_run(TY_OP_NLL_LOSS, nll, NULL,
              "node \"n\" (NegativeLogLikelihoodLoss): label -3 (sample 0 of the batch) is "
              "outside [0, 2), the classes");
}

static void axes1(one_node *b) {
  ty_graph_node_set_ints(b->g, (size_t)b->node, "axes", (int64_t[]){1}, 1);
}

Test(kernels, reduce_mean_attribute_axes) {
  ty_tensor *in[1] = {tensor_f32(SHAPE(2, 3), (float[]){1, 2, 3, 4, 5, 6})};
  check(TY_OP_REDUCE_MEAN, 1, in, axes1, (float[]){2, 5}, 2);
}

Test(kernels, dropout_training_scales_kept_values) {
  one_node b;
  ty_tensor *x = tensor_f32(SHAPE(1000), NULL);
  for (int i = 0; i < 1000; i++)
    ty_tensor_f32(x)[i] = 1.0f;
  one_node_build(&b, TY_OP_DROPOUT, 1, (ty_dtype[]){F}, (ty_shape[]){x->shape}, 2);
  char err[256];
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0);
  ty_exec *e;
  ty_exec_opts opts = {.training = true, .seed = 42};
  cr_assert_eq(ty_exec_create(b.g, &opts, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x0", x, err, sizeof err), 0);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  const ty_tensor *y = ty_exec_value(e, b.out[0]), *mask = ty_exec_value(e, b.out[1]);
  int kept = 0;
  for (int i = 0; i < 1000; i++) {
    bool k = ty_tensor_bool(mask)[i];
    kept += k;
    cr_assert_float_eq(ty_tensor_f32(y)[i], k ? 2.0f : 0.0f, 1e-6);
  }
  cr_assert(kept > 400 && kept < 600, "kept %d of 1000 at ratio 0.5", kept);
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  ty_tensor_destroy(x);
}

/* Einsum's sgemm path (float32, matmul-shaped equations) against its
 * generic loop (the same equation in double). */
static ty_tensor *einsum_run(const char *eq, ty_tensor *a, ty_tensor *b) {
  one_node n;
  one_node_build(&n, TY_OP_EINSUM, 2, (ty_dtype[]){a->dtype, b->dtype},
                 (ty_shape[]){a->shape, b->shape}, 1);
  cr_assert_eq(ty_graph_node_set_string(n.g, (size_t)n.node, "equation", eq), 0);
  ty_exec *e = one_node_run(&n, (ty_tensor *[]){a, b});
  ty_tensor *out;
  cr_assert_eq(ty_tensor_cast(ty_exec_value(e, n.out[0]), TY_DTYPE_F64, &out), 0);
  ty_exec_destroy(e);
  ty_graph_destroy(n.g);
  return out;
}

static void einsum_paths_agree(const char *eq, ty_shape sa, ty_shape sb) {
  ty_tensor *a, *b, *a64, *b64;
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &sa, &a), 0);
  cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &sb, &b), 0);
  for (int64_t i = 0; i < ty_tensor_numel(a); i++)
    ty_tensor_f32(a)[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
  for (int64_t i = 0; i < ty_tensor_numel(b); i++)
    ty_tensor_f32(b)[i] = (float)((i * 104729) % 11) / 11.0f - 0.5f;
  cr_assert_eq(ty_tensor_cast(a, TY_DTYPE_F64, &a64), 0);
  cr_assert_eq(ty_tensor_cast(b, TY_DTYPE_F64, &b64), 0);
  ty_tensor *fast = einsum_run(eq, a, b), *slow = einsum_run(eq, a64, b64);
  cr_assert(ty_shape_equal(&fast->shape, &slow->shape), "%s: shapes differ", eq);
  for (int64_t i = 0; i < ty_tensor_numel(fast); i++)
    cr_assert_float_eq(ty_tensor_get_f64(fast, i), ty_tensor_get_f64(slow, i), 1e-5,
                       "%s element %lld", eq, (long long)i);
  ty_tensor *all[] = {a, b, a64, b64, fast, slow};
  for (int i = 0; i < 6; i++)
    ty_tensor_destroy(all[i]);
}

Test(kernels, einsum_sgemm_path_matches_the_loop) {
  einsum_paths_agree("bhqd,bhkd->bhqk", SHAPE(2, 3, 4, 5), SHAPE(2, 3, 6, 5));
  einsum_paths_agree("bhqk,bhkd->bhqd", SHAPE(2, 3, 4, 6), SHAPE(2, 3, 6, 5));
  einsum_paths_agree("bij,bjk->bik", SHAPE(3, 4, 5), SHAPE(3, 5, 2));
  einsum_paths_agree("ik,kj->ji", SHAPE(4, 5), SHAPE(5, 3));
  einsum_paths_agree("b...ij,b...jk->b...ik", SHAPE(2, 3, 4, 5), SHAPE(2, 3, 5, 2));
}

/* TopK of x [rows, cols] along axis 1 (x float; an int64 copy when ints):
 * values and indices against want_v / want_i. */
static void top_k_case(const float *x, int64_t rows, int64_t cols, int64_t k, bool largest,
                       bool ints, const float *want_v, const int64_t *want_i) {
  one_node b;
  ty_shape xs = SHAPE(rows, cols);
  ty_tensor *in[2] = {NULL, tensor_i64(SHAPE(1), (int64_t[]){k})};
  if (ints) {
    cr_assert_eq(ty_tensor_create(TY_DTYPE_I64, &xs, &in[0]), 0);
    for (int64_t i = 0; i < rows * cols; i++)
      ty_tensor_i64(in[0])[i] = (int64_t)x[i];
  } else {
    in[0] = tensor_f32(xs, x);
  }
  one_node_build(&b, TY_OP_TOP_K, 2, (ty_dtype[]){in[0]->dtype, TY_DTYPE_I64},
                 (ty_shape[]){xs, SHAPE(1)}, 2);
  cr_assert_eq(ty_graph_node_set_int(b.g, (size_t)b.node, "largest", largest), 0);
  ty_exec *e = one_node_run(&b, in);
  const ty_tensor *v = ty_exec_value(e, b.out[0]), *ix = ty_exec_value(e, b.out[1]);
  cr_assert_eq(ty_tensor_numel(v), rows * k);
  for (int64_t i = 0; i < rows * k; i++) {
    double got = ints ? (double)ty_tensor_i64(v)[i] : ty_tensor_f32(v)[i];
    cr_assert(got == want_v[i] || (isnan(got) && isnan(want_v[i])), "value %lld: %g, want %g",
              (long long)i, got, want_v[i]);
    cr_assert_eq(ty_tensor_i64(ix)[i], want_i[i], "index %lld", (long long)i);
  }
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  ty_tensor_destroy(in[0]);
  ty_tensor_destroy(in[1]);
}

Test(kernels, top_k_ties_nan_and_direction) {
  const float x[10] = {1, 3, 3, NAN, -2, 0, -1, 5, 5, 2};
  /* NaN sorts above every number; equal values keep the lower index first. */
  top_k_case(x, 2, 5, 3, true, false, (float[]){NAN, 3, 3, 5, 5, 2}, (int64_t[]){3, 1, 2, 2, 3, 4});
  top_k_case(x, 2, 5, 2, false, false, (float[]){-2, 1, -1, 0}, (int64_t[]){4, 0, 1, 0});
  const float xi[6] = {4, -7, 9, 2, 9, -1};
  top_k_case(xi, 2, 3, 2, true, true, (float[]){9, 4, 9, 2}, (int64_t[]){2, 0, 1, 0});
}

/* LayerNorm's row moments sum in sixteen lanes with a four-lane and a
 * scalar tail (kernels/norm.c ty__sum4, ty__sqdev4): every row width from
 * 1 to 70 and the GPT's 128 (and 131) against moments in long double, on
 * rows offset from 0 so the mean matters, and on constant rows (variance
 * 0: y is the bias). */
Test(kernels, layer_norm_rows_of_every_width_against_long_double) {
  int64_t widths[73];
  for (int i = 0; i < 70; i++)
    widths[i] = i + 1;
  widths[70] = 128;
  widths[71] = 131;
  widths[72] = 16;
  for (int wi = 0; wi < 73; wi++) {
    int64_t cols = widths[wi], rows = 3;
    bool constant = wi == 72;
    float x[3 * 131], sc[131], bi[131];
    for (int64_t i = 0; i < rows * cols; i++)
      x[i] =
          constant ? 1000.5f : 100.0f + (float)((i * 37) % 23) * 0.37f - (float)(i / cols) * 40.0f;
    for (int64_t i = 0; i < cols; i++) {
      sc[i] = 0.5f + (float)i * 0.01f;
      bi[i] = (float)i * -0.02f;
    }
    ty_tensor *in[3] = {tensor_f32(SHAPE(rows, cols), x), tensor_f32(SHAPE(cols), sc),
                        tensor_f32(SHAPE(cols), bi)};
    one_node b;
    ty_dtype dts[3] = {F, F, F};
    ty_shape shs[3] = {in[0]->shape, in[1]->shape, in[2]->shape};
    one_node_build(&b, TY_OP_LAYER_NORM, 3, dts, shs, 1);
    ty_exec *e = one_node_run(&b, in);
    const float *y = ty_tensor_f32(ty_exec_value(e, b.out[0]));
    for (int64_t r = 0; r < rows; r++) {
      long double m = 0, v = 0;
      for (int64_t i = 0; i < cols; i++)
        m += x[r * cols + i];
      m /= cols;
      for (int64_t i = 0; i < cols; i++)
        v += (x[r * cols + i] - m) * (x[r * cols + i] - m);
      long double inv = 1.0L / sqrtl(v / cols + 1e-5L);
      for (int64_t i = 0; i < cols; i++) {
        long double want = (x[r * cols + i] - m) * inv * sc[i] + bi[i];
        cr_assert(fabsl(y[r * cols + i] - want) <= 4e-7L * (fabsl(want) + 1),
                  "width %lld row %lld col %lld: %.9g vs %.9Lg", (long long)cols, (long long)r,
                  (long long)i, y[r * cols + i], want);
      }
    }
    ty_exec_destroy(e);
    ty_graph_destroy(b.g);
    for (int i = 0; i < 3; i++)
      ty_tensor_destroy(in[i]);
  }
}

/* LayerNorm's two row loops (kernels/norm.c, ln_row_out): a scale and a
 * bias per column, and the general one (here a scalar scale, no bias)
 * give the same Y for the same values. */
static void layer_norm_y(int n_in, int64_t ns, const float *x, const float *sc, const float *bi,
                         int64_t rows, int64_t cols, float *y_out) {
  ty_tensor *in[3] = {tensor_f32(SHAPE(rows, cols), x), tensor_f32(SHAPE(ns), sc),
                      n_in > 2 ? tensor_f32(SHAPE(cols), bi) : NULL};
  one_node b;
  ty_dtype dts[3] = {F, F, F};
  ty_shape shs[3] = {in[0]->shape, in[1]->shape, n_in > 2 ? in[2]->shape : in[1]->shape};
  one_node_build(&b, TY_OP_LAYER_NORM, n_in, dts, shs, 1);
  ty_exec *e = one_node_run(&b, in);
  memcpy(y_out, ty_tensor_f32(ty_exec_value(e, b.out[0])), sizeof(float) * (size_t)(rows * cols));
  ty_exec_destroy(e);
  ty_graph_destroy(b.g);
  for (int i = 0; i < n_in; i++)
    ty_tensor_destroy(in[i]);
}

Test(kernels, layer_norm_per_column_and_broadcast_scale_the_same) {
  enum { ROWS = 3, COLS = 131 };
  float x[ROWS * COLS], sc[COLS], bi[COLS], one = 0.75f, y1[ROWS * COLS], y2[ROWS * COLS];
  for (int64_t i = 0; i < ROWS * COLS; i++)
    x[i] = (float)((i * 37) % 23) * 0.37f - (float)(i / COLS) * 4.0f;
  for (int64_t i = 0; i < COLS; i++) {
    sc[i] = 0.75f;
    bi[i] = 0.0f;
  }
  layer_norm_y(3, COLS, x, sc, bi, ROWS, COLS, y1);
  layer_norm_y(2, 1, x, &one, NULL, ROWS, COLS, y2);
  for (int64_t i = 0; i < ROWS * COLS; i++)
    cr_assert(y1[i] == y2[i], "element %lld: %.9g vs %.9g", (long long)i, y1[i], y2[i]);
}
