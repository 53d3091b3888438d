/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train's plans, continued from test_parallel.c (the same ranks as
 * threads, parallel_jobs.c): the checkpoint a plan's ranks write is the
 * single-process one (gathered on rank 0, optimizer state included, one
 * tensor at a time, with the ranks' copies of the model's weights freed),
 * resumes on one process or under another plan where an uninterrupted run
 * would be (a weight split unevenly on 3 ranks too); Dropout's masks,
 * BatchNormalization's running statistics, gradient clipping (the whole
 * model's norm on every rank, NaN included) and micro-batches under plans.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/data/npy_file.h"
#include "tests/unit/ops/shard/mesh_threads.h"
#include "tests/unit/ops/train/parallel_jobs.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

TestSuite(parallel_ckpt, .init = pr_setup, .fini = pr_cleanup);

Test(parallel_ckpt, checkpoint_resumes_on_other_device_counts, .timeout = 240) {
  ty_graph *g = pj_model();
  char ref[300], tp[300], one[300], four[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref8.onnx"));
  snprintf(tp, sizeof tp, "%s", synth_path("tp.onnx"));
  snprintf(one, sizeof one, "%s", synth_path("one.onnx"));
  snprintf(four, sizeof four, "%s", synth_path("four.onnx"));
  pr_run_single(g, 8, ref, false);
  pj_job first = {1, 2, TY_PLAN_MODE_TENSOR, 4, tp, false};
  pj_run(g, &first); /* 4 steps on 2 ranks, tensor parallel */
  pr_copy_checkpoint(tp, one);
  pr_copy_checkpoint(tp, four);
  pr_run_single(g, 8, one, true); /* 4 more on one process */
  pj_job grid = {2, 2, TY_PLAN_MODE_GRID, 8, four, true};
  pj_run(g, &grid); /* 4 more on 4 ranks, data x tensor */
  double d1 = pr_diff(ref, one), d4 = pr_diff(ref, four);
  cr_assert(d1 < 1e-5, "resumed on one process: %g from an uninterrupted run", d1);
  cr_assert(d4 < 1e-5, "resumed on 2x2: %g from an uninterrupted run", d4);
  ty_graph_destroy(g);
}

/* Files a and b hold the same bytes. */
static void expect_same_file(const char *a, const char *b) {
  size_t na, nb;
  uint8_t *da = synth_read_all(a, &na), *db = synth_read_all(b, &nb);
  cr_assert(na == nb && memcmp(da, db, na) == 0, "%s (%zu bytes) and %s (%zu) differ", a, na, b,
            nb);
  free(da);
  free(db);
}

/* The checkpoint at path (streamed through rank 0, a tensor at a time)
 * holds the bytes the whole encoding of model g with its weights gives. */
static void expect_whole_encoding(const ty_graph *g, const char *path) {
  char err[TY_ERR_LEN] = "";
  ty_graph *ck = NULL;
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &ck), 0, "%s", err);
  size_t ni = ty_graph_n_initializers(g);
  ty_init_override *ov = calloc(ni, sizeof *ov);
  for (size_t i = 0; i < ni; i++) {
    const char *name = ty_graph_value_at(g, ty_graph_initializer(g, i))->name;
    ov[i] = (ty_init_override){name, ty_graph_value_at(ck, ty_graph_find_value(ck, name))->init};
  }
  uint8_t *want;
  size_t want_len, got_len;
  cr_assert_eq(ty_graph_to_onnx(g, ov, ni, err, sizeof err, &want, &want_len), 0, "%s", err);
  uint8_t *got = synth_read_all(path, &got_len);
  cr_assert(got_len == want_len && memcmp(got, want, got_len) == 0,
            "%s (%zu bytes) is not the whole encoding of its weights (%zu)", path, got_len,
            want_len);
  free(got);
  free(want);
  free(ov);
  ty_graph_destroy(ck);
}

/* A plan's ranks free their model's whole weights and their training
 * graph's copy of their slices after create (trainrun does, so a rank
 * holds its trained slices alone between steps) and checkpoint the same
 * bytes as ranks that keep them: the checkpoint takes every trained weight
 * from the gathered shards. */
Test(parallel_ckpt, ranks_free_the_models_weights_and_checkpoint_the_same_bytes, .timeout = 120) {
  ty_graph *g = pj_model();
  char keep[300], drop[300], ks[320], ds[320];
  snprintf(keep, sizeof keep, "%s", synth_path("keep.onnx"));
  snprintf(drop, sizeof drop, "%s", synth_path("drop.onnx"));
  snprintf(ks, sizeof ks, "%s.state", keep);
  snprintf(ds, sizeof ds, "%s.state", drop);
  pr_remove_checkpoint(keep);
  pr_remove_checkpoint(drop);
  pj_rank rr[MT_MAX_RANKS];
  pj_job kj = {1, 2, TY_PLAN_MODE_TENSOR, 3, keep, false};
  pj_run_ranks(g, &kj, NULL, rr);
  pj_job dj = {1, 2, TY_PLAN_MODE_TENSOR, 3, drop, false};
  pj_drop_weights = true;
  pj_run_ranks(g, &dj, NULL, rr);
  pj_drop_weights = false;
  size_t whole = pj_float_init_bytes(g);
  cr_assert_gt(whole, 0u);
  for (int r = 0; r < 2; r++) {
    cr_assert_gt(rr[r].dropped, whole, "rank %d freed %zu bytes, the model has %zu", r,
                 rr[r].dropped, whole);
    cr_assert_eq(rr[r].left, 0u, "rank %d's model still holds %zu bytes of weights", r, rr[r].left);
    cr_assert_eq(rr[r].train_left, 0u, "rank %d's training graph still holds %zu bytes of weights",
                 r, rr[r].train_left);
    cr_assert_eq(rr[r].wrong_model_rc, TY_EINVAL, "rank %d freed a graph it was not made from", r);
  }
  expect_same_file(keep, drop);
  expect_same_file(ks, ds);
  expect_whole_encoding(g, keep);
  ty_graph_destroy(g);
}

/* A save rank 0 cannot write (its temporary file's name is a directory)
 * fails there, naming the file, and leaves no rank waiting in a gather:
 * rank 0 makes every gather the others make, writing nothing more. */
Test(parallel_ckpt, a_save_rank_0_cannot_write_fails_there_and_no_rank_waits, .timeout = 120) {
  ty_graph *g = pj_model();
  char path[300], tmp[400];
  snprintf(path, sizeof path, "%s", synth_path("unwritable.onnx"));
  pr_remove_checkpoint(path);
  snprintf(tmp, sizeof tmp, "%s", synth_path("unwritable.step-000003.onnx"));
  snprintf(tmp + strlen(tmp), sizeof tmp - strlen(tmp), ".tmp.%ld", (long)getpid());
  cr_assert_eq(mkdir(tmp, 0700), 0, "%s", tmp);
  pj_rank rr[MT_MAX_RANKS];
  pj_job j = {1, 2, TY_PLAN_MODE_TENSOR, 3, path, false};
  pj_unchecked = true;
  pj_run_ranks(g, &j, NULL, rr);
  pj_unchecked = false;
  rmdir(tmp);
  cr_assert_neq(rr[0].rc, 0, "rank 0 wrote a checkpoint through a directory");
  cr_assert(strstr(rr[0].err, "cannot create"), "%s", rr[0].err);
  cr_assert_eq(rr[1].rc, 0, "rank 1: %s", rr[1].err);
  ty_graph_destroy(g);
}

/* On 3 ranks no dim of the MLP divides (8 inputs, 64 hidden, 4 outputs):
 * tensor parallelism splits its weights unevenly (64 as 22, 21, 21), and
 * the checkpoint gathers each rank's block, padded to rank 0's, to the
 * bytes one process writes (before a step: the gather alone). Trained, it
 * resumes on one process and on 2 ranks where an uninterrupted run is. */
Test(parallel_ckpt, uneven_weight_splits_checkpoint_and_resume_like_one_process, .timeout = 240) {
  ty_graph *g = pj_model();
  ty_train_config c;
  synth_config(&c, 4, false);
  pj_job uneven = {1, 3, TY_PLAN_MODE_TENSOR, 4, NULL, false};
  ty_plan_request req = pj_request(&uneven);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  int split = 0;
  for (size_t i = 0; i < p->n_params; i++)
    for (int d = 0; d < TY_MAX_RANK; d++)
      split += p->params[i].layout.dim_axes[d] != 0;
  cr_assert_gt(split, 0, "no weight splits on 3 ranks: the test tests nothing");
  ty_plan_destroy(p);
  char ref0[300], three[300], ref[300], one[300], two[300];
  snprintf(ref0, sizeof ref0, "%s", synth_path("u_ref0.onnx"));
  snprintf(three, sizeof three, "%s", synth_path("u_three.onnx"));
  snprintf(ref, sizeof ref, "%s", synth_path("u_ref.onnx"));
  snprintf(one, sizeof one, "%s", synth_path("u_one.onnx"));
  snprintf(two, sizeof two, "%s", synth_path("u_two.onnx"));
  c.checkpoint_path = ty_strdup(ref0);
  FILE *log = tmpfile();
  ty_train *t = synth_trainer(g, &c, &(ty_train_opts){.log = log});
  cr_assert_eq(ty_train_checkpoint(t, err, sizeof err), 0, "%s", err);
  ty_train_destroy(t);
  fclose(log);
  ty_train_config_close(&c);
  uneven.ckpt = three;
  pr_remove_checkpoint(three);
  pj_no_steps = true;
  pj_run(g, &uneven);
  pj_no_steps = false;
  expect_same_file(ref0, three);
  pr_run_single(g, 8, ref, false);
  pr_remove_checkpoint(three);
  pj_run(g, &uneven); /* 4 steps on 3 ranks */
  pr_copy_checkpoint(three, one);
  pr_copy_checkpoint(three, two);
  pr_run_single(g, 8, one, true);                                /* 4 more on one process */
  pj_run(g, &(pj_job){1, 2, TY_PLAN_MODE_TENSOR, 8, two, true}); /* 4 more on 2 ranks */
  double d1 = pr_diff(ref, one), d2 = pr_diff(ref, two);
  cr_assert(d1 < 1e-5, "resumed on one process: %g from an uninterrupted run", d1);
  cr_assert(d2 < 1e-5, "resumed on 1x2: %g from an uninterrupted run", d2);
  ty_graph_destroy(g);
}

/* The MLP with a Dropout(0.5) after its hidden layers (training_mode True,
 * as PyTorch's training-mode export writes it). */
static ty_graph *model_dropout(void) {
  synth_mlp o = {.in = 8, .hidden = 64, .out = 4, .seed = 11, .deep = 1, .dropout = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  return g;
}

/* A resumed run draws the masks of an uninterrupted one: the resumed
 * trainer builds its executor at step 3, the uninterrupted one reseeds
 * the executor it built at step 0 (ty_exec_reseed), and both end with the
 * same bits. */
Test(parallel_ckpt, dropout_resumed_draws_the_uninterrupted_masks, .timeout = 120) {
  ty_graph *g = model_dropout();
  char whole[300], part[300];
  snprintf(whole, sizeof whole, "%s", synth_path("drop-whole.onnx"));
  snprintf(part, sizeof part, "%s", synth_path("drop-part.onnx"));
  pr_run_single(g, 6, whole, false);
  pr_run_single(g, 3, part, false);
  pr_run_single(g, 6, part, true);
  double d = pr_diff(whole, part);
  cr_assert_eq(d, 0.0, "3 + 3 steps differ from 6 by %g", d);
  ty_graph_destroy(g);
}

/* Dropout draws its mask position by position from the step's key, so a
 * plan's rank draws its slice of the one-process mask: split on the batch
 * (data), on the hidden units (tensor) or both (grid), the run ends with
 * the weights of one process. */
Test(parallel_ckpt, dropout_plans_train_like_one_process, .timeout = 240) {
  ty_graph *g = model_dropout();
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("drop-ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("drop-plan.onnx"));
  pr_run_single(g, 6, ref, false);
  const pj_job jobs[] = {
      {1, 2, TY_PLAN_MODE_DATA, 6, out, false},
      {1, 2, TY_PLAN_MODE_TENSOR, 6, out, false},
      {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
      {1, 3, TY_PLAN_MODE_DATA, 6, out, false}, /* uneven blocks: each its slice of the mask */
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-5);
  ty_graph_destroy(g);
}

/* A BatchNormalization whose batch the plan splits normalises with the
 * global batch's statistics and keeps the running ones of one process. */
Test(parallel_ckpt, batch_norm_running_statistics_follow_the_global_batch, .timeout = 240) {
  ty_graph *g = pj_model_with(true);
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("bn_ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("bn_plan.onnx"));
  pr_run_single(g, 6, ref, false);
  const pj_job jobs[] = {{1, 2, TY_PLAN_MODE_DATA, 6, out, false},
                         {2, 2, TY_PLAN_MODE_GRID, 6, out, false},
                         {1, 3, TY_PLAN_MODE_DATA, 6, out, false}}; /* counts 22, 21, 21 */
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++)
    pj_expect_like(g, &jobs[i], ref, 1e-4);
  ty_graph_destroy(g);
  g = pj_model_bn_train_mode(); /* the same with PyTorch's unread outputs 1 and 2 */
  pr_remove_checkpoint(ref);    /* its own reference, not a resume of the other model's */
  pr_run_single(g, 6, ref, false);
  pj_expect_like(g, &jobs[1], ref, 1e-4);
  ty_graph_destroy(g);
}

/* The controller plans without the data (it has none): the labels' shape
 * from the logits gives the plan a rank makes with the data present. */
Test(parallel_ckpt, plan_without_data_is_the_plan_with_it, .timeout = 120) {
  ty_graph *g = pj_model();
  ty_train_config c;
  synth_config(&c, 4, false);
  const ty_plan_mode modes[] = {TY_PLAN_MODE_AUTO, TY_PLAN_MODE_TENSOR, TY_PLAN_MODE_GRID};
  for (size_t i = 0; i < TY_ARRAY_LEN(modes); i++) {
    pj_job j = {2, 2, modes[i], 4, NULL, false};
    ty_plan_request req = pj_request(&j);
    ty_plan *with = NULL, *without = NULL;
    char err[TY_ERR_LEN] = "";
    cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &with, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_train_make_plan(g, &c, false, &req, &without, err, sizeof err), 0, "%s", err);
    cr_assert_eq(ty_plan_hash(with), ty_plan_hash(without), "mode %d: the plans differ", modes[i]);
    ty_plan_destroy(with);
    ty_plan_destroy(without);
  }
  /* No data opened: a config whose arrays do not exist still plans ... */
  free(c.train_arrays[0].path);
  c.train_arrays[0].path = ty_strdup("/nonexistent/x.npy");
  ty_graph *pg = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_plan_graph(g, &c, false, &pg, err, sizeof err), 0, "%s", err);
  ty_graph_destroy(pg);
  /* ... but its feeds are still checked against the model. */
  free(c.train_arrays[0].input);
  c.train_arrays[0].input = ty_strdup("pixels");
  cr_assert_eq(ty_train_plan_graph(g, &c, false, &pg, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "config.dataset.train[0]: \"pixels\" is not an input of the model"), "%s",
            err);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Whether plan p splits some trained parameter over its ranks (*split) and
 * keeps another whole on every rank (*whole). */
static void param_layouts(const ty_plan *p, bool *split, bool *whole) {
  *split = *whole = false;
  for (size_t i = 0; i < p->n_params; i++) {
    bool cut = false;
    for (int d = 0; d < p->params[i].layout.rank; d++)
      cut = cut || p->params[i].layout.dim_axes[d] != 0;
    *split = *split || cut;
    *whole = *whole || !cut;
  }
}

/* Gradient clipping (config.max_grad_norm) on every flat plan: tensor
 * parallel (a weight split in slices, a bias kept whole on both ranks),
 * data x tensor, 4-way tensor, data parallel and one device. The limit is
 * below the norm at every step, so every step clips; each step's norm is
 * the same bits on every rank and one process's (the whole model's: a
 * replicated bias counted once, slices by their slices), and the weights
 * are those of one process clipping the same way. */
Test(parallel_ckpt, clipping_trains_like_one_process_on_every_plan, .timeout = 240) {
  ty_graph *g = pj_model();
  char ref[300], out[5][300]; /* a checkpoint per run: an existing one would be resumed */
  snprintf(ref, sizeof ref, "%s", synth_path("clip-ref.onnx"));
  for (int i = 0; i < 5; i++) {
    char name[32];
    snprintf(name, sizeof name, "clip-plan-%d.onnx", i);
    snprintf(out[i], sizeof out[i], "%s", synth_path(name));
  }
  double want[PR_MAX_STEPS];
  pj_clip_norm = 0.05f;
  pr_run_single_clipped(g, 6, ref, pj_clip_norm, want);
  for (int s = 0; s < 6; s++)
    cr_assert_gt(want[s], 2 * pj_clip_norm, "step %d's norm %g: clipping would not act", s,
                 want[s]);
  const pj_job jobs[] = {{1, 2, TY_PLAN_MODE_TENSOR, 6, out[0], false},
                         {2, 2, TY_PLAN_MODE_GRID, 6, out[1], false},
                         {1, 4, TY_PLAN_MODE_TENSOR, 6, out[2], false},
                         {1, 2, TY_PLAN_MODE_DATA, 6, out[3], false},
                         {1, 1, TY_PLAN_MODE_AUTO, 6, out[4], false}};
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++) {
    const pj_job *j = &jobs[i];
    pj_rank rr[MT_MAX_RANKS];
    pj_run_ranks(g, j, NULL, rr);
    double d = pr_diff(ref, j->ckpt);
    cr_assert(d < 1e-5, "%dx%d, mode %d: weights differ from one process by %g", j->nodes,
              j->per_node, j->mode, d);
    for (int r = 0; r < j->nodes * j->per_node; r++)
      for (int s = 0; s < 6; s++) {
        cr_assert(rr[r].norms[s] == rr[0].norms[s],
                  "%dx%d, step %d: rank %d's norm %.17g, rank 0's %.17g", j->nodes, j->per_node, s,
                  r, rr[r].norms[s], rr[0].norms[s]);
        cr_assert(fabs(rr[r].norms[s] - want[s]) <= 1e-5 * want[s],
                  "%dx%d, mode %d, step %d: norm %.9g, one process's %.9g", j->nodes, j->per_node,
                  j->mode, s, rr[r].norms[s], want[s]);
      }
  }
  ty_train_config c;
  synth_config(&c, 6, false);
  ty_plan_request req = pj_request(&jobs[0]);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  bool split, whole;
  param_layouts(p, &split, &whole);
  cr_assert(split && whole, "the tensor plan %s a parameter and %s one whole: the test tests less",
            split ? "splits" : "splits no", whole ? "keeps" : "keeps no");
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  pj_clip_norm = 0;
  ty_graph_destroy(g);
}

/* Whether some float initializer of the checkpoint at path holds a NaN. */
static bool holds_nan(const char *path) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = NULL;
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &g), 0, "%s", err);
  bool nan = false;
  for (size_t i = 0; i < ty_graph_n_initializers(g); i++) {
    const ty_tensor *w = ty_graph_value_at(g, ty_graph_initializer(g, i))->init;
    for (int64_t k = 0; w->dtype == TY_DTYPE_F32 && k < ty_tensor_numel(w); k++)
      nan = nan || isnan(ty_tensor_f32(w)[k]);
  }
  ty_graph_destroy(g);
  return nan;
}

/* A gradient that is not finite keeps torch's behaviour on a plan: the
 * norm is NaN on every rank (no error), and the update spreads it into
 * the weights, as clip_grad_norm_ and the optimizer do in one process.
 * The NaN comes from a weight (data with one is refused when it opens). */
Test(parallel_ckpt, clipping_a_nan_gradient_on_a_plan_gives_nan_everywhere, .timeout = 120) {
  char out[300];
  snprintf(out, sizeof out, "%s", synth_path("clip-nan.onnx"));
  ty_graph *g = pj_model();
  for (size_t i = 0; i < ty_graph_n_initializers(g); i++) {
    const ty_graph_value *v = ty_graph_value_at(g, ty_graph_initializer(g, i));
    if (v->dtype == TY_DTYPE_F32 && v->shape.rank > 0) {
      ty_tensor_f32(v->init)[0] = NAN; /* the first layer's first weight */
      break;
    }
  }
  pj_clip_norm = 0.05f;
  pj_job j = {1, 2, TY_PLAN_MODE_TENSOR, 1, out, false};
  pj_rank rr[MT_MAX_RANKS];
  pj_run_ranks(g, &j, NULL, rr);
  for (int r = 0; r < 2; r++)
    cr_assert(isnan(rr[r].norms[0]), "rank %d's norm %g, not NaN", r, rr[r].norms[0]);
  cr_assert(holds_nan(out), "no NaN reached the weights");
  pj_clip_norm = 0;
  ty_graph_destroy(g);
}

/* Micro-batches without pipeline stages: the planner makes them a
 * pipeline of one stage on the whole mesh (gradient accumulation under a
 * plan, test_pipeline.c trains it), and a rank given a plan without
 * stages (one made for another config) refuses it, naming the field. */
Test(parallel_ckpt, micro_batches_plan_one_stage_and_a_plan_without_stages_is_refused,
     .timeout = 60) {
  ty_graph *g = pj_model();
  ty_train_config c;
  synth_config(&c, 2, false);
  const pj_job j = {1, 2, TY_PLAN_MODE_DATA, 2, NULL, false};
  ty_plan_request req = pj_request(&j);
  ty_plan *p = NULL, *q = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), 0, "%s", err);
  c.micro_batches = 4;
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &q, err, sizeof err), 0, "%s", err);
  cr_assert_eq(q->n_stages, 1);
  cr_assert_eq(q->micro_batches, 4);
  ty_plan_destroy(q);
  mt_mesh m;
  mt_mesh_init(&m, p->mesh[0], p->mesh[1]);
  mt_rank r = {&m, 0, NULL};
  ty_train_parallel par = pr_parallel(&r);
  par.plan = p;
  FILE *log = tmpfile();
  ty_train_opts o = pr_opts(&r, &par, false, log);
  ty_train *t = NULL;
  cr_assert_eq(ty_train_create(g, &c, &o, &t, err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert(strstr(err, "config.micro_batches: 4 micro-batches under a plan without pipeline "
                        "stages"),
            "%s", err);
  fclose(log);
  mt_mesh_close(&m);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* A tensor-parallel rank reads its slices straight out of the checkpoint
 * (resume.c): a trained tensor the model lacks, or an optimizer state of
 * another parameter count, is refused as an import would refuse it. */
Test(parallel_ckpt, sliced_resume_refuses_a_missing_tensor_and_another_state) {
  ty_graph *g = pj_model();
  char tp[300], renamed[300];
  snprintf(tp, sizeof tp, "%s", synth_path("refuse.onnx"));
  snprintf(renamed, sizeof renamed, "%s", synth_path("renamed.onnx"));
  pj_job first = {1, 2, TY_PLAN_MODE_TENSOR, 2, tp, false};
  pj_run(g, &first);
  pr_copy_checkpoint(tp, renamed);
  const char *name = NULL;
  for (size_t v = 0; !name && v < ty_graph_n_values(g); v++)
    if (ty_graph_value_at(g, (int)v)->init) name = ty_graph_value_at(g, (int)v)->name;
  cr_assert(name && strlen(name) < 128);
  synth_rename_init(renamed, name);
  pj_job again = {1, 2, TY_PLAN_MODE_TENSOR, 4, renamed, true};
  pj_run_expect(g, &again, "is missing or has another shape");
  ty_graph *bn = pj_model_with(true);
  pj_job other = {1, 2, TY_PLAN_MODE_TENSOR, 4, tp, true};
  pj_run_expect(bn, &other, "this run cannot resume from it");
  ty_graph_destroy(bn);
  ty_graph_destroy(g);
}
