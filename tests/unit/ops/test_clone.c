/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ty_graph_clone (ops/import.c) against the copy it replaces in the
 * trainer, a re-import of the graph's encoding: the same graph, byte for
 * byte once encoded and numbered alike, for every model of the import
 * corpus that loads and a graph built by hand; its own copy
 * of each initializer; and no encoding made on the way (a graph with a
 * dropped initializer, which ty_graph_to_onnx refuses, clones).
 */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* g's encoding, asserted to succeed. */
static uint8_t *encode(const ty_graph *g, size_t *out_len) {
  uint8_t *b = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &b, out_len), 0, "%s", err);
  return b;
}

/* Asserts that g's clone encodes to the bytes of g's re-import and holds
 * its own copy of each initializer's data. what names g. */
static void expect_clone_is_reimport(const ty_graph *g, const char *what) {
  char err[TY_ERR_LEN] = "";
  size_t n = 0, rn = 0, cn = 0;
  uint8_t *b = encode(g, &n);
  ty_graph *re = NULL, *c = NULL;
  cr_assert_eq(ty_graph_load_bytes(b, n, err, sizeof err, &re), 0, "%s: %s", what, err);
  cr_assert_eq(ty_graph_clone(g, err, sizeof err, &c), 0, "%s: %s", what, err);
  uint8_t *rb = encode(re, &rn), *cb = encode(c, &cn);
  cr_assert(rn == cn && memcmp(rb, cb, rn) == 0,
            "%s: the clone encodes to %zu bytes, its re-import to %zu, and they differ", what, cn,
            rn);
  /* Numbered alike: the trainer's ids and its executor's order are the
   * re-import's (a plan's ranks compare hashes of what they planned). */
  cr_assert_eq(ty_graph_n_values(c), ty_graph_n_values(re), "%s", what);
  for (int v = 0; v < (int)ty_graph_n_values(re); v++)
    cr_assert_str_eq(ty_graph_value_at(c, v)->name, ty_graph_value_at(re, v)->name, "%s: value %d",
                     what, v);
  for (size_t k = 0; k < ty_graph_n_nodes(re); k++)
    cr_assert_str_eq(ty_graph_node_at(c, k)->name, ty_graph_node_at(re, k)->name, "%s: node %zu",
                     what, k);
  cr_assert_eq(ty_graph_n_initializers(c), ty_graph_n_initializers(g), "%s", what);
  for (size_t i = 0; i < ty_graph_n_initializers(g); i++) {
    const ty_tensor *a = ty_graph_value_at(g, ty_graph_initializer(g, i))->init;
    const ty_tensor *d = ty_graph_value_at(c, ty_graph_initializer(c, i))->init;
    cr_assert(a->nbytes == 0 || a->data != d->data, "%s: initializer %zu is shared", what, i);
  }
  free(b);
  free(rb);
  free(cb);
  ty_graph_destroy(re);
  ty_graph_destroy(c);
}

/* A corpus model the import takes (*user counts them) is its clone's. */
static void clone_one(const char *path, const char *name, void *user) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = NULL;
  if (ty_graph_load_file(path, err, sizeof err, &g) != 0) return; /* not ours to import */
  expect_clone_is_reimport(g, name);
  ty_graph_destroy(g);
  ++*(int *)user;
}

Test(clone, is_the_reimport_of_its_encoding_for_every_corpus_model) {
  int seen = 0;
  each_corpus_file("onnx_test_", clone_one, &seen);
  cr_assert_geq(seen, 20);
}

Test(clone, outlives_its_original_and_keeps_a_dropped_initializer_without_encoding) {
  ty_graph *g = gemm_model((float[]){1, 2, 3, 4, 5, 6}, (float[]){7, 8}, 0.5f, false), *c = NULL,
           *cd = NULL;
  expect_clone_is_reimport(g, "gemm");
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_clone(g, err, sizeof err, &c), 0, "%s", err);
  int w = ty_graph_find_value(g, "W");
  cr_assert_eq(ty_graph_drop_init_data(g, w), 0);
  /* The encoding the trainer made before refuses this graph; a clone does
   * not encode it, so it copies it. */
  uint8_t *b = NULL;
  size_t n = 0;
  cr_assert_eq(ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &b, &n), TY_EINVAL);
  cr_assert_eq(ty_graph_clone(g, err, sizeof err, &cd), 0, "%s", err);
  const ty_graph_value *v = ty_graph_value_at(cd, ty_graph_find_value(cd, "W"));
  cr_assert(v->init_dropped && v->init->nbytes == 0, "the clone's W holds %zu bytes",
            v->init->nbytes);
  cr_assert_eq(v->shape.rank, 2);
  ty_graph_destroy(g); /* the first clone's data is its own */
  const ty_graph_value *cw = ty_graph_value_at(c, ty_graph_find_value(c, "W"));
  cr_assert(!cw->init_dropped && cw->init->nbytes == 6 * sizeof(float));
  cr_assert_eq(((const float *)cw->init->data)[5], 6.0f);
  const ty_graph_node *fc = ty_graph_node_at(c, 0);
  cr_assert_str_eq(fc->name, "fc");
  cr_assert_eq(ty_graph_node_attr_float(fc, "alpha", 1), 0.5f);
  ty_graph_destroy(c);
  ty_graph_destroy(cd);
}
