/* SPDX-License-Identifier: Apache-2.0 */
/* ONNX import rejections (each names what is wrong) and export round trip. */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int load(const char *op, const char *name, int elem, const raw_attr *a, char *err,
                size_t len) {
  uint8_t *buf;
  size_t n;
  int64_t dims[4] = {1, 1, 4, 4};
  raw_model(op, name, elem, 4, dims, a, &buf, &n);
  ty_graph *g = NULL;
  int rc = ty_graph_load_bytes(buf, n, err, len, &g);
  ty_graph_destroy(g);
  free(buf);
  return rc;
}

Test(import, accepts_a_supported_op) {
  char err[256] = "";
  cr_assert_eq(load("Relu", "r", 1, NULL, err, sizeof err), 0, "%s", err);
}

Test(import, rejects_unsupported_op_by_name) {
  char err[256];
  cr_assert_eq(load("NonZero", "x", 1, NULL, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert_str_eq(err, "node \"x\" (NonZero): op is not supported");
}

Test(import, says_why_pytorch_models_hold_unsupported_ops) {
  char err[TY_ERR_LEN];
  cr_assert_eq(load("Loop", "/e/Loop", 1, NULL, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "node \"/e/Loop\" (Loop): op is not supported: control flow is not "
                        "supported (an If whose condition shape inference decides is inlined); "
                        "PyTorch exports nn.EmbeddingBag as a Loop"),
            "%s", err);
}

/* torch.randn_like and friends export as the random generators, which
 * import (their kernels: test_random.c). */
Test(import, accepts_random_generators) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(load("RandomNormalLike", "r", 1, NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(load("RandomUniformLike", "r", 1, NULL, err, sizeof err), 0, "%s", err);
  cr_assert_eq(load("Bernoulli", "r", 1, NULL, err, sizeof err), 0, "%s", err);
}

Test(import, rejects_unsupported_attribute_by_name) {
  char err[256];
  raw_attr a = {.name = "storage_order", .i = 1};
  cr_assert_eq(load("MaxPool", "pool1", 1, &a, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "node \"pool1\" (MaxPool): attribute storage_order=1 is not supported"),
            "%s", err);
}

Test(import, rejects_unknown_auto_pad_value) {
  char err[256];
  raw_attr a = {.name = "auto_pad", .s = "BOGUS"};
  cr_assert_eq(load("MaxPool", "p", 1, &a, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "node \"p\" (MaxPool): attribute auto_pad=BOGUS is not supported"), "%s",
            err);
}

Test(import, rejects_unsupported_input_dtype) {
  char err[256];
  cr_assert_eq(load("Relu", "r", 8, NULL, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert_str_eq(err, "input \"x\": dtype STRING is not supported");
}

Test(import, rejects_dtype_the_op_does_not_take) {
  char err[256];
  cr_assert_eq(load("Sigmoid", "s", 7, NULL, err, sizeof err), TY_EUNSUPPORTED);
  cr_assert(strstr(err, "node \"s\" (Sigmoid): input 0: dtype INT64 is not supported"), "%s", err);
}

static int load_init(int elem_type, int rank, const int64_t *dims, size_t raw_len, char *err,
                     size_t len) {
  uint8_t *buf;
  size_t n;
  raw_model_with_init(elem_type, rank, dims, raw_len, &buf, &n);
  ty_graph *g = NULL;
  int rc = ty_graph_load_bytes(buf, n, err, len, &g);
  ty_graph_destroy(g);
  free(buf);
  return rc;
}

Test(import, accepts_an_initializer_of_the_right_size) {
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(load_init(1, 1, (int64_t[]){4}, 16, err, sizeof err), 0, "%s", err);
}

/* The size check ran after the tensor was freed (a use-after-free under
 * ASan); now it runs before anything is allocated. */
Test(import, rejects_short_raw_data_by_name) {
  char err[TY_ERR_LEN];
  cr_assert_eq(load_init(1, 1, (int64_t[]){4}, 15, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "initializer \"w\": raw_data has 15 bytes but its shape needs 16");
}

/* A shape announcing far more bytes than the model holds is refused
 * without allocating them. */
Test(import, rejects_huge_announced_initializer_without_allocating) {
  char err[TY_ERR_LEN];
  cr_assert_eq(load_init(1, 2, (int64_t[]){1 << 30, 1 << 30}, 16, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "raw_data has 16 bytes but its shape needs 4611686018427387904"), "%s",
            err);
}

Test(import, rejects_initializer_whose_size_overflows) {
  char err[TY_ERR_LEN];
  cr_assert_eq(load_init(1, 3, (int64_t[]){INT64_MAX / 2, 4, 4}, 16, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "initializer \"w\": its shape's size overflows");
}

Test(import, rejects_absurd_input_dims) {
  char err[TY_ERR_LEN];
  uint8_t *buf;
  size_t n;
  ty_graph *g = NULL;
  raw_model("Relu", "r", 1, 2, (int64_t[]){(int64_t)1 << 50, 2}, NULL, &buf, &n);
  cr_assert_eq(ty_graph_load_bytes(buf, n, err, sizeof err, &g), TY_EINVAL);
  cr_assert_str_eq(err, "input \"x\": dim 0 is 1125899906842624, above the maximum 1099511627776");
  free(buf);
}

/* Dims each fine on their own whose product overflows an element count. */
Test(import, rejects_a_shape_whose_size_overflows) {
  char err[TY_ERR_LEN];
  uint8_t *buf;
  size_t n;
  ty_graph *g = NULL;
  int64_t big = (int64_t)1 << 40;
  raw_model("Relu", "r", 1, 2, (int64_t[]){big, big}, NULL, &buf, &n);
  cr_assert_eq(ty_graph_load_bytes(buf, n, err, sizeof err, &g), TY_EINVAL);
  cr_assert_str_eq(err, "input \"x\": its shape is too large");
  free(buf);
}

Test(import, rejects_garbage_bytes) {
  char err[256];
  ty_graph *g = NULL;
  const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f};
  cr_assert_eq(ty_graph_load_bytes(junk, sizeof junk, err, sizeof err, &g), TY_EPROTO);
  cr_assert_str_eq(err, "model: not an ONNX ModelProto");
  cr_assert_null(g);
}

Test(import, missing_file_is_io_error) {
  char err[256];
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_load_file("/nonexistent/model.onnx", err, sizeof err, &g), TY_EIO);
  cr_assert(strstr(err, "/nonexistent/model.onnx"));
}

Test(import, rejects_bad_tensor_proto) {
  char err[256];
  ty_tensor *t = NULL;
  const uint8_t junk[] = {0xff};
  cr_assert_eq(ty_onnx_tensor_load(junk, sizeof junk, "input_0.pb", err, sizeof err, &t),
               TY_EPROTO);
  cr_assert(strstr(err, "input_0.pb"));
}

/* x[N,3] -> Gemm(W[2,3]^T, b) -> y; export with new weights; load back. */
Test(export, round_trip_with_overrides_and_symbolic_batch) {
  ty_graph *g = gemm_model((float[]){1, 0, 0, 0, 1, 0}, (float[]){0, 0}, 1.0f, false);
  char err[256] = "";

  ty_tensor *neww = tensor_f32(SHAPE(2, 3), (float[]){1, 1, 1, 2, 2, 2});
  ty_init_override ov = {"W", neww};
  char path[] = "/tmp/ty_ops_export_XXXXXX";
  int fd = mkstemp(path);
  cr_assert(fd >= 0);
  close(fd);
  cr_assert_eq(ty_graph_save_onnx(g, &ov, 1, path, err, sizeof err), 0, "%s", err);

  ty_graph *g2;
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &g2), 0, "%s", err);
  unlink(path);
  const ty_graph_value *yv = ty_graph_value_at(g2, ty_graph_output(g2, 0));
  cr_assert_eq(yv->shape.rank, 2);
  cr_assert_eq(yv->shape.dims[0], TY_DIM_BATCH);
  cr_assert_eq(yv->shape.dims[1], 2);
  cr_assert_eq(ty_graph_n_initializers(g2), 2);

  ty_exec *e;
  ty_tensor *in = tensor_f32(SHAPE(1, 3), (float[]){1, 2, 3});
  cr_assert_eq(ty_exec_create(g2, NULL, &e), 0);
  cr_assert_eq(ty_exec_bind(e, "x", in, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
  const float *out = ty_tensor_f32(ty_exec_output(e, "y"));
  cr_assert_float_eq(out[0], 6.0f, 1e-6);
  cr_assert_float_eq(out[1], 12.0f, 1e-6);
  ty_exec_destroy(e);
  ty_tensor_destroy(in);
  ty_tensor_destroy(neww);
  ty_graph_destroy(g2);
  ty_graph_destroy(g);
}

Test(export, rejects_override_of_wrong_shape) {
  ty_graph *g;
  int w;
  cr_assert_eq(ty_graph_create(&g), 0);
  cr_assert_eq(ty_graph_add_value(g, "W", TY_DTYPE_F32, NULL, &w), 0);
  cr_assert_eq(ty_graph_set_initializer(g, w, tensor_f32(SHAPE(2), NULL)), 0);
  ty_tensor *bad = tensor_f32(SHAPE(3), NULL);
  ty_init_override ov = {"W", bad};
  char err[256];
  uint8_t *data;
  size_t len;
  cr_assert_eq(ty_graph_to_onnx(g, &ov, 1, err, sizeof err, &data, &len), TY_EINVAL);
  cr_assert(strstr(err, "override \"W\""), "%s", err);
  ty_init_override ov2 = {"nope", bad};
  cr_assert_eq(ty_graph_to_onnx(g, &ov2, 1, err, sizeof err, &data, &len), TY_EINVAL);
  cr_assert(strstr(err, "\"nope\": no such initializer"), "%s", err);
  ty_tensor_destroy(bad);
  ty_graph_destroy(g);
}

Test(exec, rejects_input_of_wrong_shape_and_unbound_inputs) {
  one_node b;
  ty_dtype dt[1] = {TY_DTYPE_F32};
  ty_shape sh[1] = {SHAPE(TY_DIM_BATCH, 4)};
  one_node_build(&b, TY_OP_RELU, 1, dt, sh, 1);
  char err[256];
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0);
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b.g, NULL, &e), 0);
  ty_tensor *t = tensor_f32(SHAPE(2, 5), NULL);
  cr_assert_eq(ty_exec_bind(e, "x0", t, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "input \"x0\": got FLOAT [2,5], expected FLOAT [N,4]");
  cr_assert_eq(ty_exec_bind(e, "zzz", t, err, sizeof err), TY_ENOTFOUND);
  cr_assert_eq(ty_exec_run(e, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "input \"x0\": not bound");
  ty_exec_destroy(e);
  ty_tensor_destroy(t);
  ty_graph_destroy(b.g);
}

/* Every input the fuzzer (tests/fuzz) found a crash with is kept in its
 * corpus; each must now load or fail with a message, and never crash (the
 * ASan build of CI runs this too). */
static int load_path(const char *path, char *err, size_t err_len) {
  ty_graph *g = NULL;
  int rc = ty_graph_load_file(path, err, err_len, &g);
  ty_graph_destroy(g);
  return rc;
}

static void load_cleanly(const char *path, const char *name, void *user) {
  (void)user;
  char err[TY_ERR_LEN] = "";
  int rc = load_path(path, err, sizeof err);
  cr_expect(rc == 0 || (rc < 0 && err[0]), "%s: code %d without a message", name, rc);
}

Test(import, fuzz_regressions_fail_cleanly) {
  cr_assert_geq(each_corpus_file("regress_", load_cleanly, NULL), 5);
}

Test(import, fuzz_regressions_name_the_problem) {
  const char *dir = getenv("TY_FUZZ_CORPUS");
  cr_assert_not_null(dir);
  char path[4096], err[TY_ERR_LEN] = "";
  snprintf(path, sizeof path, "%s/regress_output_without_name.onnx", dir);
  cr_assert_eq(load_path(path, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "output 0: has no name");
  snprintf(path, sizeof path, "%s/regress_huge_announced_dims.onnx", dir);
  cr_assert_eq(load_path(path, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "initializer \"w\": raw_data has 16 bytes but its shape needs"), "%s", err);
  snprintf(path, sizeof path, "%s/regress_relu_two_outputs.onnx", dir);
  cr_assert_eq(load_path(path, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "node \"act\" (Relu): output 1 \"extra\": Relu has no output 1 (name it "
                        "\"\" or drop it)");
  snprintf(path, sizeof path, "%s/regress_batchnorm_six_outputs.onnx", dir);
  cr_assert_eq(load_path(path, err, sizeof err), TY_EINVAL);
  cr_assert_str_eq(err, "node \"bn\" (BatchNormalization): output 5 \"o5\": BatchNormalization "
                        "has no output 5 (name it \"\" or drop it)");
}
