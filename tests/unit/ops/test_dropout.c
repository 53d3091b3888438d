/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dropout's draws and the executor's reseed (ops/exec.c ty_exec_reseed,
 * ops/kernels/random.c): a reseeded executor draws, bit for bit, what a
 * new executor with those seeds draws (Dropout masks and random ops), so
 * a trainer reseeds instead of rebuilding per step. Dropout's mask is
 * keyed as the random ops' draws: another noise_seed (a data-parallel
 * rank, ops/train) draws another mask, a node given a slice (ops/shard)
 * draws its part of the whole mask, a seed attribute the same mask on
 * every run and rank, and the kept fraction is 1 - ratio.
 */
#include "tests/unit/ops/helpers.h"

#include "lib/base/base.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROWS 64
#define COLS 16

/* x [ROWS, COLS] -> Dropout "d1" (ratio 0.3) -> + RandomNormalLike(x) ->
 * Dropout "d2" (ratio 0.5); outputs y, d1's and d2's masks. */
typedef struct net {
  ty_graph *g;
  int x, y, m1, m2;
} net;

static int value(ty_graph *g, const char *name) {
  int id;
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_INVALID, NULL, &id), 0);
  return id;
}

static void dropout(ty_graph *g, const char *name, int x, float ratio, int *y, int *mask) {
  char yn[32], mn[32];
  snprintf(yn, sizeof yn, "%s.out", name);
  snprintf(mn, sizeof mn, "%s.mask", name);
  int outs[2] = {value(g, yn), value(g, mn)}, idx;
  cr_assert_eq(ty_graph_add_node(g, TY_OP_DROPOUT, name, &x, 1, outs, 2, &idx), 0);
  cr_assert_eq(ty_graph_node_set_float(g, (size_t)idx, "ratio", ratio), 0);
  *y = outs[0];
  *mask = outs[1];
}

static net net_build(void) {
  net n;
  cr_assert_eq(ty_graph_create(&n.g), 0);
  ty_graph_set_opset(n.g, 11); /* Dropout's ratio as an attribute */
  ty_shape s = SHAPE(ROWS, COLS);
  cr_assert_eq(ty_graph_add_value(n.g, "x", TY_DTYPE_F32, &s, &n.x), 0);
  ty_graph_mark_input(n.g, n.x);
  int d1, noise = value(n.g, "noise"), sum = value(n.g, "sum"), idx;
  dropout(n.g, "d1", n.x, 0.3f, &d1, &n.m1);
  cr_assert_eq(ty_graph_add_node(n.g, TY_OP_RANDOM_NORMAL_LIKE, "n", &n.x, 1, &noise, 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(n.g, TY_OP_ADD, "add", (int[]){d1, noise}, 2, &sum, 1, &idx), 0);
  dropout(n.g, "d2", sum, 0.5f, &n.y, &n.m2);
  ty_graph_mark_output(n.g, n.y);
  ty_graph_mark_output(n.g, n.m1);
  ty_graph_mark_output(n.g, n.m2);
  char err[256] = "";
  cr_assert_eq(ty_graph_infer_shapes(n.g, err, sizeof err), 0, "%s", err);
  return n;
}

static ty_tensor *ones(void) {
  ty_tensor *x = tensor_f32(SHAPE(ROWS, COLS), NULL);
  for (int64_t i = 0; i < ty_tensor_numel(x); i++)
    ty_tensor_f32(x)[i] = 1.0f + (float)i / 64.0f;
  return x;
}

static ty_exec *exec_of(const net *n, const ty_tensor *x, uint64_t seed, uint64_t noise_seed,
                        bool no_fusion) {
  ty_exec_opts o = {
      .training = true, .seed = seed, .noise_seed = noise_seed, .no_fusion = no_fusion};
  ty_exec *e;
  char err[256] = "";
  cr_assert_eq(ty_exec_create(n->g, &o, &e), 0);
  cr_assert_eq(ty_exec_bind_id(e, n->x, x, err, sizeof err), 0, "%s", err);
  return e;
}

static void run(ty_exec *e) {
  char err[256] = "";
  cr_assert_eq(ty_exec_run(e, err, sizeof err), 0, "%s", err);
}

/* Whether the outputs of the last runs of a and b are the same bytes. */
static bool same_outputs(const net *n, const ty_exec *a, const ty_exec *b) {
  int ids[3] = {n->y, n->m1, n->m2};
  for (int k = 0; k < 3; k++) {
    const ty_tensor *ta = ty_exec_value(a, ids[k]), *tb = ty_exec_value(b, ids[k]);
    cr_assert(ta && tb && ta->nbytes == tb->nbytes);
    if (memcmp(ta->data, tb->data, ta->nbytes) != 0) return false;
  }
  return true;
}

/* An executor run a few times and reseeded draws what a new one with those
 * seeds draws on its first run: with a noise_seed (the trainer) and
 * without one (a pipeline stage: the random ops' key from the seed). */
Test(dropout, a_reseeded_executor_draws_what_a_new_one_draws) {
  net n = net_build();
  ty_tensor *x = ones();
  for (int fusion = 0; fusion < 2; fusion++) {
    const uint64_t seeds[][2] = {{5, 9}, {5, 0}, {77, 0x6e6f697365000001ull}};
    for (size_t k = 0; k < sizeof seeds / sizeof seeds[0]; k++) {
      ty_exec *old = exec_of(&n, x, 1, 2, !fusion), *fresh;
      for (int r = 0; r < 3; r++)
        run(old);
      ty_exec_reseed(old, seeds[k][0], seeds[k][1]);
      run(old);
      fresh = exec_of(&n, x, seeds[k][0], seeds[k][1], !fusion);
      run(fresh);
      cr_assert(same_outputs(&n, old, fresh), "seeds %zu, fusion %d: the reseeded run differs", k,
                fusion);
      run(old); /* the second runs too: the run count restarted */
      run(fresh);
      cr_assert(same_outputs(&n, old, fresh), "seeds %zu, fusion %d: second runs differ", k,
                fusion);
      ty_exec_destroy(old);
      ty_exec_destroy(fresh);
    }
  }
  ty_tensor_destroy(x);
  ty_graph_destroy(n.g);
}

/* Reseeding with other seeds draws other masks (the trainer's steps). */
Test(dropout, another_seed_draws_other_masks) {
  net n = net_build();
  ty_tensor *x = ones();
  ty_exec *a = exec_of(&n, x, 5, 9, false), *b = exec_of(&n, x, 5, 9, false);
  run(a);
  ty_exec_reseed(b, 6, 10);
  run(b);
  cr_assert(!same_outputs(&n, a, b));
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_tensor_destroy(x);
  ty_graph_destroy(n.g);
}

/* Two executors that differ only in noise_seed, as two data-parallel
 * ranks' trainers do (ops/train ty__train_noise_seed): their masks agree
 * about as often as independent draws do (p^2 + (1-p)^2), not everywhere. */
Test(dropout, another_noise_seed_draws_another_mask) {
  net n = net_build();
  ty_tensor *x = ones();
  ty_exec *a = exec_of(&n, x, 5, ty_mix2(ty_mix2(7, 3), 0x6e6f697365000000ull) | 1, false),
          *b = exec_of(&n, x, 5, ty_mix2(ty_mix2(7, 3), 0x6e6f697365000001ull) | 1, false);
  run(a);
  run(b);
  const uint8_t *ma = ty_exec_value(a, n.m2)->data, *mb = ty_exec_value(b, n.m2)->data;
  int same = 0, total = ROWS * COLS;
  for (int i = 0; i < total; i++)
    same += ma[i] == mb[i];
  /* ratio 0.5: agreement 0.5, standard error sqrt(0.25 / total); 6 of them */
  cr_assert(same > total / 2 - 6 * 16 && same < total / 2 + 6 * 16,
            "the masks agree on %d of %d elements", same, total);
  ty_exec_destroy(a);
  ty_exec_destroy(b);
  ty_tensor_destroy(x);
  ty_graph_destroy(n.g);
}

/* The mask of x [rows, 8] with ratio 0.3 (seed attribute when seed >= 0;
 * TY_RANDOM_FULL / START of a [8, 8] tensor from row `start` when slice). */
static void one_mask(int64_t rows, bool slice, int64_t start, int64_t seed, uint64_t noise_seed,
                     uint8_t *out) {
  one_node b;
  ty_shape s = SHAPE(rows, 8);
  one_node_build(&b, TY_OP_DROPOUT, 1, (ty_dtype[]){TY_DTYPE_F32}, &s, 2);
  ty_graph_node_set_float(b.g, (size_t)b.node, "ratio", 0.3f);
  if (seed >= 0) ty_graph_node_set_int(b.g, (size_t)b.node, "seed", seed);
  if (slice) {
    ty_graph_node_set_ints(b.g, (size_t)b.node, TY_RANDOM_FULL, (int64_t[]){8, 8}, 2);
    ty_graph_node_set_ints(b.g, (size_t)b.node, TY_RANDOM_START, (int64_t[]){start, 0}, 2);
  }
  char err[256] = "";
  cr_assert_eq(one_node_infer(&b, err, sizeof err), 0, "%s", err);
  ty_tensor *x = tensor_f32(s, NULL);
  ty_exec_opts o = {.training = true, .noise_seed = noise_seed};
  ty_exec *e;
  cr_assert_eq(ty_exec_create(b.g, &o, &e), 0);
  cr_assert_eq(ty_exec_bind_id(e, b.in[0], x, err, sizeof err), 0, "%s", err);
  run(e);
  memcpy(out, ty_exec_value(e, b.out[1])->data, (size_t)rows * 8);
  ty_exec_destroy(e);
  ty_tensor_destroy(x);
  ty_graph_destroy(b.g);
}

/* Rows 4..7 given as a slice of an [8, 8] draw are rows 4..7 of the whole
 * mask, and rows 0..3 rows 0..3: two ranks splitting the batch draw the
 * one-process mask between them. */
Test(dropout, a_slice_draws_its_part_of_the_whole_mask) {
  uint8_t whole[64], top[32], bottom[32];
  one_mask(8, false, 0, -1, 42, whole);
  one_mask(4, true, 0, -1, 42, top);
  one_mask(4, true, 4, -1, 42, bottom);
  cr_assert_eq(memcmp(top, whole, 32), 0);
  cr_assert_eq(memcmp(bottom, whole + 32, 32), 0);
  cr_assert_neq(memcmp(top, bottom, 32), 0, "both halves drew the same mask");
}

/* A seed attribute draws the same mask whatever the executor's key; the
 * kept fraction of a large mask is 1 - ratio (6 standard errors). */
Test(dropout, a_seed_attribute_fixes_the_mask_and_the_rate_holds) {
  uint8_t a[64], b[64], c[64];
  one_mask(8, false, 0, 3, 1, a);
  one_mask(8, false, 0, 3, 2, b);
  one_mask(8, false, 0, -1, 1, c);
  cr_assert_eq(memcmp(a, b, 64), 0, "a seeded Dropout drew another mask for another key");
  cr_assert_neq(memcmp(a, c, 64), 0);
  net n = net_build();
  ty_tensor *x = ones();
  ty_exec *e = exec_of(&n, x, 5, 9, false);
  run(e);
  const uint8_t *m = ty_exec_value(e, n.m1)->data; /* ratio 0.3 */
  const float *y = ty_exec_value(e, n.y)->data;
  const uint8_t *m2 = ty_exec_value(e, n.m2)->data;
  int kept = 0, total = ROWS * COLS;
  for (int i = 0; i < total; i++) {
    kept += m[i];
    if (!m2[i]) cr_assert_eq(y[i], 0.0f, "element %d dropped but %g", i, (double)y[i]);
  }
  double sd = sqrt(0.21 * total);
  cr_assert(fabs(kept - 0.7 * total) < 6 * sd, "kept %d of %d at ratio 0.3", kept, total);
  ty_exec_destroy(e);
  ty_tensor_destroy(x);
  ty_graph_destroy(n.g);
}
