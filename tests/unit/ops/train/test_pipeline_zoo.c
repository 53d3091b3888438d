/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Zoo models under micro-batches, every rank a trainer in a thread as in
 * test_pipeline_loss.c. bench/plan/zoo_sweep.py is the only thing that
 * runs examples/models' zoo under plans, and it needs torch, which CI has
 * not: the kinds that failed there under accumulation until "pipe: a
 * stage differentiates what it receives, not its data feeds" (an
 * autoencoder and a VAE whose losses read x again, GridSample, Unfold,
 * the padding modes) are committed as their export (zoo/export.py writes
 * them, 104 KB in all). Each trains 3 steps of 2 micro-batches on one
 * stage of 1x2 with zoo_sweep.py's rates, its accum plan, and ends with
 * one process's weights; its data are random arrays written here.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/data/npy_file.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline_zoo, .init = pr_setup, .fini = pr_cleanup);

#define ROWS 12 /* 3 steps of zoo_sweep.py's batch of 4 */
#define CLASSES 5

/* The model of the test running, read by zoo_config on every rank's
 * thread (Criterion runs each test in a process of its own). */
static const ty_graph *zoo;

static bool has_output(const ty_graph *g, const char *name) {
  for (size_t i = 0; i < ty_graph_n_outputs(g); i++)
    if (strcmp(ty_graph_value_at(g, ty_graph_output(g, i))->name, name) == 0) return true;
  return false;
}

/* zoo_sweep.py's config on synth_config's: batch 4 in file order, plain
 * SGD, the model's own loss ("loss", no labels) or cross-entropy over
 * "logits"; x is synth_config's x.npy and labels its y.npy, x1 added. */
static void zoo_config(ty_train_config *c) {
  c->batch_size = 4;
  c->shuffle = false;
  c->optim.momentum = 0;
  c->schedule.base_lr = 0.05;
  free(c->data_input);
  c->data_input = ty_strdup("x");
  if (has_output(zoo, "loss")) {
    synth_own_loss(c);
    ty_train_array *y = &c->train_arrays[--c->n_train_arrays]; /* synth_config's last */
    free(y->path);
    free(y->input);
  }
  if (ty_graph_find_value(zoo, "x1") != TY_NO_VALUE)
    synth_add_array(c, false, synth_path("x1.npy"), "x1");
}

/* ROWS rows of random floats for a float input of g (x.npy for x). */
static void write_input(const ty_graph *g, int v, uint64_t *rng) {
  const ty_graph_value *gv = ty_graph_value_at(g, v);
  int64_t n = ROWS;
  char shape[128], file[64], *end = shape + snprintf(shape, sizeof shape, "(%d", ROWS);
  for (int d = 1; d < gv->shape.rank; d++) {
    n *= gv->shape.dims[d];
    end +=
        snprintf(end, (size_t)(shape + sizeof shape - end), ", %lld", (long long)gv->shape.dims[d]);
  }
  snprintf(end, (size_t)(shape + sizeof shape - end), "%s)", gv->shape.rank == 1 ? "," : "");
  float *x = malloc((size_t)n * sizeof *x);
  for (int64_t i = 0; i < n; i++) {
    *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
    x[i] = (float)((double)(*rng >> 40) / (double)(1ull << 24) * 4.0 - 2.0);
  }
  snprintf(file, sizeof file, "%s.npy", gv->name);
  npy_write(synth_path(file), "<f4", shape, x, (size_t)n * sizeof *x);
  free(x);
}

/* zoo/NAME.onnx trained 3 steps by one process (which moves its weights)
 * and by 2 ranks of 2 micro-batches each: the same weights. */
static void expect_accum_like_one_process(const char *name) {
  char path[512], err[TY_ERR_LEN] = "", ref[PIPE_PATH], out[PIPE_PATH];
  snprintf(path, sizeof path, "%s/%s.onnx", TY_TRAIN_ZOO_DIR, name);
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &g), 0, "%s: %s", path, err);
  zoo = g;
  uint64_t rng = 7;
  for (size_t i = 0; i < ty_graph_n_inputs(g); i++)
    if (ty_graph_value_at(g, ty_graph_input(g, i))->dtype == TY_DTYPE_F32)
      write_input(g, ty_graph_input(g, i), &rng);
  int64_t y[ROWS];
  for (int i = 0; i < ROWS; i++)
    y[i] = (i * 3 + 1) % CLASSES;
  char shape[16];
  snprintf(shape, sizeof shape, "(%d,)", ROWS);
  npy_write(synth_path("y.npy"), "<i8", shape, y, sizeof y);
  pipe_path(ref, "ref_zoo.onnx");
  pipe_path(out, "accum_zoo.onnx");
  pr_run_single_with(g, 3, ref, zoo_config);
  double moved = pr_diff(path, ref);
  cr_assert(moved > 1e-4, "%s: 3 steps moved the weights by %g only", name, moved);
  pipe_job j = pipe_job_make(1, 2, 1, 2, 3, out);
  j.split_all = true;
  j.tweak = zoo_config;
  pipe_expect_like(g, &j, ref, name, NULL);
  ty_graph_destroy(g);
}

Test(pipeline_zoo, autoencoder, .timeout = 60) {
  expect_accum_like_one_process("autoencoder");
}
Test(pipeline_zoo, vae, .timeout = 60) {
  expect_accum_like_one_process("vae");
}
Test(pipeline_zoo, grid_warp, .timeout = 60) {
  expect_accum_like_one_process("grid_warp");
}
Test(pipeline_zoo, unfold_patches, .timeout = 60) {
  expect_accum_like_one_process("unfold_patches");
}
Test(pipeline_zoo, pad_modes, .timeout = 60) {
  expect_accum_like_one_process("pad_modes");
}
