/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The plan file (ops/plan/codec.c): a plan survives encode and decode
 * exactly; every rejection of the decoder, each naming its field; the
 * graph fingerprint ties a plan to its graph; equal searches hash equal.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ops/plan/plan.h"
#include "tests/unit/ops/plan/models.h"

static ty_plan *make_plan(ty_plan_mode mode) {
  ty_graph *g = model_mlp(2, 64);
  cr_assert_not_null(g);
  ty_plan_request r;
  ty_plan_request_init(&r);
  r.batch = 16;
  r.cluster.nodes = 2;
  r.cluster.devices_per_node = 2;
  r.cluster.device_flops = 1e6; /* every op splits: layouts, partial sums, collectives */
  r.mode = mode;
  char err[TY_ERR_LEN] = "";
  ty_plan *p = NULL;
  cr_assert_eq(ty_plan_search(g, &r, err, sizeof err, &p), 0, "%s", err);
  ty_graph_destroy(g);
  return p;
}

static void encode(const ty_plan *p, ty_buf *b) {
  ty_buf_init(b);
  cr_assert_eq(ty_plan_encode(p, b), 0);
}

/* Rewrites the trailing CRC after a test edits the bytes. */
static void recrc(ty_buf *b) {
  uint32_t c = (uint32_t)crc32(0L, b->data, (uInt)(b->len - 4));
  for (int i = 0; i < 4; i++)
    b->data[b->len - 4 + (size_t)i] = (uint8_t)(c >> (8 * i));
}

static void expect_refused(const uint8_t *data, size_t len, int code, const char *why) {
  char err[TY_ERR_LEN] = "";
  ty_plan *p = (ty_plan *)1;
  cr_assert_eq(ty_plan_decode(data, len, &p, err, sizeof err), code,
               "expected %s for \"%s\", got: %s", ty_strerror(code), why, err);
  cr_assert_null(p);
  cr_assert(strstr(err, why), "\"%s\" not in: %s", why, err);
}

/* Encodes a plan edited by the test and expects the decoder to refuse it. */
static void expect_field_refused(ty_plan *p, const char *why) {
  ty_buf b;
  encode(p, &b);
  expect_refused(b.data, b.len, TY_EINVAL, why);
  ty_buf_close(&b);
}

Test(codec, round_trip_is_exact) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  cr_assert_gt(p->n_collectives, 0);
  ty_buf a, b;
  encode(p, &a);
  char err[TY_ERR_LEN] = "";
  ty_plan *q = NULL;
  cr_assert_eq(ty_plan_decode(a.data, a.len, &q, err, sizeof err), 0, "%s", err);
  encode(q, &b);
  cr_assert_eq(a.len, b.len);
  cr_assert_eq(memcmp(a.data, b.data, a.len), 0, "decode then encode changed the bytes");
  cr_assert_eq(q->graph_fingerprint, p->graph_fingerprint);
  cr_assert_eq(q->mesh[0], p->mesh[0]);
  cr_assert_eq(q->n_ops, p->n_ops);
  cr_assert_eq(q->n_fallback, p->n_fallback);
  cr_assert_str_eq(q->ops[0].strategy, p->ops[0].strategy);
  cr_assert_eq(q->ops[0].inputs[1].grad_partial, p->ops[0].inputs[1].grad_partial);
  cr_assert_eq(ty_plan_hash(q), ty_plan_hash(p));
  ty_buf_close(&a);
  ty_buf_close(&b);
  ty_plan_destroy(q);
  ty_plan_destroy(p);
}

Test(codec, equal_searches_hash_equal_and_others_do_not) {
  ty_plan *a = make_plan(TY_PLAN_MODE_TENSOR), *b = make_plan(TY_PLAN_MODE_TENSOR),
          *c = make_plan(TY_PLAN_MODE_DATA);
  b->search_ms = a->search_ms + 100; /* the one field left out */
  cr_assert_eq(ty_plan_hash(a), ty_plan_hash(b));
  cr_assert_neq(ty_plan_hash(a), ty_plan_hash(c));
  ty_plan_destroy(a);
  ty_plan_destroy(b);
  ty_plan_destroy(c);
}

Test(codec, a_plan_belongs_to_its_graph) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  ty_graph *same = model_mlp(2, 64), *other = model_mlp(2, 32);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_plan_check(p, same, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_plan_check(p, other, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "plan: made for another graph (fingerprint "), "%s", err);
  ty_graph_destroy(same);
  ty_graph_destroy(other);
  ty_plan_destroy(p);
}

Test(codec, bytes_that_are_no_plan) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  ty_buf b;
  encode(p, &b);
  expect_refused((const uint8_t *)"hello world, no plan", 20, TY_EPROTO,
                 "plan: not a trainyard plan");
  expect_refused(b.data, 6, TY_EPROTO, "not a trainyard plan");
  b.data[4] = 4;
  expect_refused(b.data, b.len, TY_EVERSION,
                 "plan: format version 4; this build reads versions 1 to 3");
  b.data[4] = 2;
  expect_refused(b.data, 40, TY_EPROTO, "truncated (40 bytes");
  b.data[b.len / 2] ^= 1;
  expect_refused(b.data, b.len, TY_EPROTO, "corrupt: the CRC-32 of its");
  b.data[b.len / 2] ^= 1;
  /* a CRC that matches but the lists stop early, or go on after the end */
  ty_buf cut;
  ty_buf_init(&cut);
  ty_buf_append(&cut, b.data, b.len - 40);
  ty_buf_append(&cut, b.data + b.len - 4, 4);
  recrc(&cut);
  expect_refused(cut.data, cut.len, TY_EPROTO, "truncated");
  ty_buf_close(&cut);
  ty_buf_init(&cut);
  ty_buf_append(&cut, b.data, b.len - 4);
  ty_buf_append(&cut, "xyz", 3);
  ty_buf_append(&cut, b.data + b.len - 4, 4);
  recrc(&cut);
  expect_refused(cut.data, cut.len, TY_EPROTO, "plan: 3 bytes after the last field");
  ty_buf_close(&cut);
  ty_buf_close(&b);
  ty_plan_destroy(p);
}

Test(codec, counts_larger_than_the_bytes) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  ty_buf b;
  encode(p, &b);
  /* n_ops follows the fixed header: magic 4, version 4, fingerprint 8,
   * 5 u32, batch 8, 7 f64, 2 u64, search_ms 8, exact 1 */
  size_t at = 4 + 4 + 8 + 20 + 8 + 56 + 16 + 8 + 1;
  uint32_t n = (uint32_t)b.data[at] | (uint32_t)b.data[at + 1] << 8;
  cr_assert_eq(n, p->n_ops);
  memset(b.data + at, 0xFF, 4);
  recrc(&b);
  expect_refused(b.data, b.len, TY_EPROTO,
                 "plan: ops: 4294967295 entries announced, the plan holds at most");
  ty_buf_close(&b);
  ty_plan_destroy(p);
}

Test(codec, header_fields_out_of_range) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  int nodes = p->nodes;
  p->nodes = 0;
  expect_field_refused(p, "plan: cluster: 0 nodes x 2 devices per node is not 4 devices");
  p->nodes = nodes;
  int m0 = p->mesh[0];
  p->mesh[0] = 3;
  expect_field_refused(p, "mesh: 3x2 does not hold the plan's 4 devices");
  p->mesh[0] = m0;
  p->batch = 0;
  expect_field_refused(p, "batch: 0 (must be positive)");
  p->batch = 16;
  p->step_s = NAN;
  expect_field_refused(p, "step_s: nan is not a finite non-negative number");
  ty_plan_destroy(p);
}

Test(codec, ops_and_layouts_out_of_range) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  p->ops[1].node = 5;
  expect_field_refused(p, "plan: ops[1]: node 5, expected 1 (ops are in node order)");
  p->ops[1].node = 1;
  ty_op op = p->ops[1].op;
  p->ops[1].op = (ty_op)999;
  expect_field_refused(p, "ops[1]: op 999 is not an operator");
  p->ops[1].op = op;
  ty_plan_layout keep = p->ops[0].inputs[0];
  p->ops[0].inputs[0].rank = TY_MAX_RANK + 1;
  expect_field_refused(p, "ops[0].inputs[0]: rank 9 (-1..8)");
  p->ops[0].inputs[0] = keep;
  p->ops[0].inputs[0].dim_axes[0] = 4;
  expect_field_refused(p, "ops[0].inputs[0]: dim 0: axes 0x4 name no mesh axis");
  p->ops[0].inputs[0].dim_axes[0] = 1;
  p->ops[0].inputs[0].dim_axes[1] = 1;
  expect_field_refused(p, "ops[0].inputs[0]: dim 1: a mesh axis splits two dims");
  p->ops[0].inputs[0] = keep;
  p->ops[0].inputs[0].dim_axes[0] = 2;
  p->ops[0].inputs[0].partial = 2;
  expect_field_refused(p, "a mesh axis both splits a dim and is partial");
  p->ops[0].inputs[0] = keep;
  p->ops[0].inputs[0].grad_partial = 8;
  expect_field_refused(p, "gradient-partial axes 0x8 name no mesh axis");
  p->ops[0].inputs[0] = keep;
  p->params[0].value = -2;
  expect_field_refused(p, "plan: params[0]: value: -2");
  p->params[0].value = 0;
  p->params[0].layout.rank = -1;
  expect_field_refused(p, "params[0]: rank -1 (0..8)");
  ty_plan_destroy(p);
}

Test(codec, strings_out_of_range) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  char *name = p->ops[0].name, big[5000];
  memset(big, 'a', sizeof big - 1);
  big[sizeof big - 1] = 0;
  p->ops[0].name = big;
  expect_field_refused(p, "ops[0]: name: length 4999 (at most 4096)");
  p->ops[0].name = name;
  char *why = p->ops[0].strategy;
  p->ops[0].strategy = NULL;
  expect_field_refused(p, "ops[0]: strategy: length 4294967295");
  p->ops[0].strategy = why;
  ty_buf b;
  encode(p, &b);
  uint8_t *at = memmem(b.data, b.len, p->ops[0].name, strlen(p->ops[0].name));
  cr_assert_not_null(at);
  at[1] = 0;
  recrc(&b);
  expect_refused(b.data, b.len, TY_EINVAL, "ops[0]: name: holds a NUL byte");
  ty_buf_close(&b);
  ty_plan_destroy(p);
}

Test(codec, collectives_out_of_range) {
  ty_plan *p = make_plan(TY_PLAN_MODE_AUTO);
  cr_assert_gt(p->n_collectives, 0);
  ty_plan_collective keep = p->collectives[0];
  p->collectives[0].kind = (ty_plan_coll_kind)7;
  expect_field_refused(p, "plan: collectives[0]: kind 7 is not a collective (0..3)");
  p->collectives[0] = keep;
  p->collectives[0].phase = (ty_plan_phase)5;
  expect_field_refused(p, "collectives[0]: phase 5 is not a phase (0..2)");
  p->collectives[0] = keep;
  p->collectives[0].mesh_axis = 2;
  expect_field_refused(p, "collectives[0]: mesh_axis: 2 is not a mesh axis (0 or 1)");
  p->collectives[0] = keep;
  p->collectives[0].node = 99;
  expect_field_refused(p, "collectives[0]: node: 99 is not an op of the plan");
  p->collectives[0] = keep;
  p->collectives[0].node = 0;
  p->collectives[0].input = 9;
  expect_field_refused(p, "collectives[0]: input: op 0 has no input 9");
  p->collectives[0] = keep;
  p->collectives[0].kind = TY_PLAN_ALL_GATHER;
  p->collectives[0].dim = -1;
  expect_field_refused(p, "collectives[0]: dim: -1 is wrong for an all-gather");
  p->collectives[0].kind = TY_PLAN_ALL_REDUCE;
  p->collectives[0].src_dim = 1;
  expect_field_refused(p, "collectives[0]: src_dim: 1 is wrong for an all-reduce");
  p->collectives[0] = keep;
  ty_plan_destroy(p);
}
