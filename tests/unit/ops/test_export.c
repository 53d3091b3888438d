/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/export.c's streamed export (ty_graph_write_onnx) against the whole
 * encoding (ty_graph_to_onnx): the same bytes, whether an initializer's
 * data comes from the graph, an override or a fill, and after the graph's
 * own copy was dropped (ty_graph_drop_init_data).
 */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

/* x[N,3] -> Gemm(W[2,3]^T, b) -> y, an int64 initializer and an empty one. */
static ty_graph *model(void) {
  return gemm_model((float[]){1, 2, 3, 4, 5, 6}, (float[]){7, 8}, 1.0f, true);
}

typedef struct out {
  uint8_t *data;
  size_t len, calls;
  int fail_at; /* the emit call that fails (1-based), 0: none */
} out;

static int collect(const void *data, size_t len, void *user) {
  out *o = user;
  if (++o->calls == (size_t)o->fail_at) return TY_EIO;
  o->data = realloc(o->data, o->len + len + 1);
  cr_assert_not_null(o->data);
  memcpy(o->data + o->len, data, len);
  o->len += len;
  return 0;
}

/* Fills override k from tensors[k] a byte at a time (pieces of any size
 * must do), with `extra` bytes too many. */
typedef struct filler {
  const ty_tensor *const *tensors;
  size_t extra, calls;
} filler;

static int fill_bytes(size_t k, ty_onnx_emit emit, void *emit_user, void *user) {
  filler *f = user;
  const ty_tensor *t = f->tensors[k];
  f->calls++;
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < t->nbytes + f->extra; i++)
    rc = emit((const uint8_t *)t->data + i % (t->nbytes ? t->nbytes : 1), 1, emit_user);
  return rc;
}

static void expect_same(const uint8_t *want, size_t want_len, const out *got) {
  cr_assert_eq(got->len, want_len, "streamed %zu bytes, the whole encoding %zu", got->len,
               want_len);
  cr_assert(memcmp(got->data, want, want_len) == 0, "the streamed bytes differ");
}

Test(export, streamed_is_the_whole_encoding_from_tensors_and_fills) {
  ty_graph *g = model();
  ty_tensor *w = tensor_f32(SHAPE(2, 3), (float[]){-1, 0.5f, 2, 3, 4, 1e30f});
  ty_tensor *b = tensor_f32(SHAPE(2), (float[]){9, 10});
  char err[256] = "";
  uint8_t *want;
  size_t want_len;
  ty_init_override ov[2] = {{"W", w}, {"b", b}};
  cr_assert_eq(ty_graph_to_onnx(g, ov, 2, err, sizeof err, &want, &want_len), 0, "%s", err);

  out a = {0};
  cr_assert_eq(ty_graph_write_onnx(g, ov, 2, NULL, NULL, collect, &a, err, sizeof err), 0, "%s",
               err);
  expect_same(want, want_len, &a);

  /* The same weights through fills, after the graph's copies were dropped. */
  cr_assert_eq(ty_graph_drop_init_data(g, ty_graph_find_value(g, "W")), 0);
  cr_assert_eq(ty_graph_drop_init_data(g, ty_graph_find_value(g, "b")), 0);
  cr_assert_eq(ty_graph_value_at(g, ty_graph_find_value(g, "W"))->init->nbytes, 0u);
  const ty_tensor *src[2] = {w, b};
  filler f = {src, 0, 0};
  ty_init_override filled[2] = {{"W", NULL}, {"b", NULL}};
  out c = {0};
  cr_assert_eq(ty_graph_write_onnx(g, filled, 2, fill_bytes, &f, collect, &c, err, sizeof err), 0,
               "%s", err);
  cr_assert_eq(f.calls, 2u);
  expect_same(want, want_len, &c);
  /* Dropped data still exports with tensors as overrides. */
  uint8_t *again;
  size_t again_len;
  cr_assert_eq(ty_graph_to_onnx(g, ov, 2, err, sizeof err, &again, &again_len), 0, "%s", err);
  cr_assert(again_len == want_len && memcmp(again, want, want_len) == 0);
  free(again);
  free(a.data);
  free(c.data);
  free(want);
  ty_tensor_destroy(w);
  ty_tensor_destroy(b);
  ty_graph_destroy(g);
}

Test(export, streamed_refuses_a_wrong_fill_a_missing_one_and_stops_at_a_write_error) {
  ty_graph *g = model();
  ty_tensor *w = tensor_f32(SHAPE(2, 3), NULL);
  const ty_tensor *src[1] = {w};
  ty_init_override filled = {"W", NULL};
  char err[256] = "";
  out o = {0};
  filler f = {src, 1, 0}; /* a byte too many */
  cr_assert_eq(ty_graph_write_onnx(g, &filled, 1, fill_bytes, &f, collect, &o, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "initializer \"W\": its fill gave 25 bytes, not 24"), "%s", err);
  cr_assert_eq(ty_graph_write_onnx(g, &filled, 1, NULL, NULL, collect, &o, err, sizeof err),
               TY_EINVAL);
  cr_assert(strstr(err, "override \"W\": no tensor and no fill"), "%s", err);
  uint8_t *data;
  size_t len;
  cr_assert_eq(ty_graph_to_onnx(g, &filled, 1, err, sizeof err, &data, &len), TY_EINVAL);
  cr_assert(strstr(err, "override \"W\": no tensor"), "%s", err);
  /* A dropped initializer no override gives cannot be exported. */
  cr_assert_eq(ty_graph_drop_init_data(g, ty_graph_find_value(g, "b")), 0);
  cr_assert_eq(ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &data, &len), TY_EINVAL);
  cr_assert(strstr(err, "initializer \"b\": its data was dropped"), "%s", err);
  cr_assert_eq(ty_graph_drop_init_data(g, ty_graph_find_value(g, "x")), TY_EINVAL);
  /* The emit's error stops the export and is returned. */
  ty_tensor *bt = tensor_f32(SHAPE(2), NULL);
  ty_init_override ov = {"b", bt};
  for (int at = 1; at <= 4; at++) {
    out fail = {.fail_at = at};
    cr_assert_eq(ty_graph_write_onnx(g, &ov, 1, NULL, NULL, collect, &fail, err, sizeof err),
                 TY_EIO, "emit call %d failed but the export went on", at);
    cr_assert_eq(fail.calls, (size_t)at);
    free(fail.data);
  }
  free(o.data);
  ty_tensor_destroy(bt);
  ty_tensor_destroy(w);
  ty_graph_destroy(g);
}
