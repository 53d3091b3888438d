/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Dropout's draws and the executor's reseed (ops/exec.c ty_exec_reseed,
 * ops/kernels/random.c): a reseeded executor draws, bit for bit, what a
 * new executor with those seeds draws (Dropout masks and random ops), so
 * a trainer reseeds instead of rebuilding per step.
 */
#include "tests/unit/ops/helpers.h"

#include <criterion/criterion.h>
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
