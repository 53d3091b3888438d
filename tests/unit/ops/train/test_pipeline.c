/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train running a pipelined plan (pipe.c): every rank a trainer in a
 * thread of this process, stage messages and collectives through tests'
 * in-process mesh (tests/unit/ops/shard/mesh_threads.c; the Open MPI
 * transport is covered by tests/integration/test_plan.c). Four stages on
 * four ranks and two stages x two replicas train to the weights of one
 * process on the same global batch, with and without recomputation, and so
 * do two stages x 2-way tensor parallel (tensor mode) and a BatchNormalization
 * model against one process accumulating over the same micro-batches; the
 * checkpoint is the single-process one and resumes under another stage
 * count; a wrong stage message is named by rank, stage and micro-batch;
 * bad pipeline requests are refused with the reason.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "ops/autodiff/autodiff.h"
#include "ops/exec.h"
#include "tests/unit/ops/shard/mesh_threads.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

TestSuite(pipeline, .init = pr_setup, .fini = pr_cleanup);

/* x -> fc1 -> fc3 .. fc5 -> fc2: five weight layers. */
static ty_graph *model(void) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  return g;
}

typedef struct job {
  int nodes, per_node, stages, micro;
  uint64_t steps; /* total steps to reach */
  const char *ckpt;
  bool resume;
  uint64_t mem;       /* device memory budget; 0: plenty */
  int bad_rank;       /* this rank sends one wrong message (-1: none) */
  bool all_recompute; /* run the plan with every stage's recompute set */
  int stop_rank;      /* this rank's stop flag is set before the first step (-1: none) */
  ty_plan_mode mode;  /* the planner's mode (AUTO: 0) */
} job;

/* Set by the tied bucket test (tied_micro > 0): per rank, the messages it
 * sent whose micro-batch field is tied_micro, the job's micro-batch count,
 * which only the tied parameters' exchange sends. */
static int tied_msgs[MT_MAX_RANKS], tied_micro;

/* Set by the data x tensor test: the stage mesh with both axes split, as
 * the transport's inner axes (0: none). */
static int stage_grid[2];

typedef struct rank_run {
  mt_rank r;
  const job *j;
  const ty_graph *g;
  volatile sig_atomic_t stop;
  bool recompute; /* the plan recomputes some stage */
  char *log;      /* the trainer's log (owned) */
  uint64_t step;  /* where it stopped */
  uint64_t state; /* ty_train_pipeline_state_bytes after training */
  int rc;
  char err[TY_ERR_LEN];
} rank_run;

/* Set by the BatchNormalization test: the data in file order and plain SGD,
 * which its hand-written reference reproduces. */
static bool plain_sgd;

static void config(ty_train_config *c, const job *j) {
  synth_config(c, j->steps, false);
  if (plain_sgd) {
    c->shuffle = false;
    c->optim.momentum = 0;
  }
  c->pipeline_stages = j->stages;
  c->micro_batches = j->micro;
  if (j->ckpt) c->checkpoint_path = ty_strdup(j->ckpt);
}

static ty_plan_request request(const job *j) {
  ty_plan_request req;
  ty_plan_request_init(&req);
  req.cluster.nodes = j->nodes;
  req.cluster.devices_per_node = j->per_node;
  req.cluster.device_flops = 1e9;
  if (j->mem) req.cluster.device_mem_bytes = j->mem;
  req.mode = j->mode;
  return req;
}

/* j's plan for g under config c, as the controller would make it (the
 * test fails when there is none). The caller destroys it. */
static ty_plan *plan_for(const ty_graph *g, const ty_train_config *c, const job *j) {
  ty_plan_request req = request(j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, c, true, &req, &p, err, sizeof err), 0, "%s", err);
  return p;
}

/* The one-process run of `steps` steps that a test compares with, saved
 * in ref_NAME.onnx, and the path pipe_NAME.onnx for the run compared. */
static void reference(ty_graph *g, const char *name, int steps, char ref[300], char out[300]) {
  char file[64];
  snprintf(file, sizeof file, "ref_%s.onnx", name);
  snprintf(ref, 300, "%s", synth_path(file));
  snprintf(file, sizeof file, "pipe_%s.onnx", name);
  snprintf(out, 300, "%s", synth_path(file));
  pr_run_single(g, steps, ref, false);
}

/* The wrong message: rank bad_rank's activation of micro-batch 1 claims
 * to be micro-batch 7. */
static int bad_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user) {
  uint64_t h[4] = {hdr[0], hdr[1], hdr[2] == 1 ? 7 : hdr[2], hdr[3]};
  return mt_send(peer, h, buf, n, user);
}

static int counting_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n,
                         void *user) {
  if (hdr[2] == (uint64_t)tied_micro) __atomic_add_fetch(&tied_msgs[((mt_rank *)user)->rank], 1, 0);
  return mt_send(peer, hdr, buf, n, user);
}

static void *rank_main(void *arg) {
  rank_run *rr = arg;
  ty_train_config c;
  config(&c, rr->j);
  ty_plan_request req = request(rr->j);
  bool bad = rr->r.rank == rr->j->bad_rank;
  ty_train_parallel par = pr_parallel(&rr->r);
  par.request = &req;
  if (rr->j->bad_rank >= 0) par.agree_stop = NULL;
  if (bad) par.send = bad_send;
  if (tied_micro > 0) par.send = counting_send;
  ty_plan *given = NULL;
  if (rr->j->all_recompute) {
    cr_assert_eq(ty_train_make_plan(rr->g, &c, true, &req, &given, rr->err, sizeof rr->err), 0);
    for (int s = 0; s < given->n_stages; s++)
      given->stages[s].recompute = true;
    par.plan = given;
  }
  rr->r.stop = &rr->stop;
  FILE *log = tmpfile();
  ty_train_opts o = {.rank = (uint32_t)rr->r.rank,
                     .world_size = (uint32_t)rr->r.m->world,
                     .resume = rr->j->resume,
                     .parallel = &par,
                     .log = log,
                     .stop = &rr->stop};
  ty_train *t = NULL;
  rr->rc = ty_train_create(rr->g, &c, &o, &t, rr->err, sizeof rr->err);
  for (int s = 0; rr->rc == 0 && s < ty_train_plan(t)->n_stages; s++)
    rr->recompute = rr->recompute || ty_train_plan(t)->stages[s].recompute;
  if (rr->j->stop_rank == rr->r.rank) rr->stop = 1; /* as SIGTERM would */
  if (rr->rc == 0) rr->rc = ty_train_steps(t, rr->j->steps, rr->err, sizeof rr->err);
  if (rr->rc == 0) rr->step = ty_train_step(t);
  if (rr->rc == 0) rr->state = ty_train_pipeline_state_bytes(t);
  if (rr->rc == 0 && rr->j->ckpt) rr->rc = ty_train_checkpoint(t, rr->err, sizeof rr->err);
  ty_train_destroy(t);
  ty_plan_destroy(given);
  rr->log = synth_log_text(log);
  fclose(log);
  ty_train_config_close(&c);
  return NULL;
}

/* Runs job j on nodes x per_node threads (mesh: stages x replicas). */
static void run_ranks(const ty_graph *g, const job *j, rank_run *rr) {
  int world = j->nodes * j->per_node;
  mt_mesh m;
  mt_mesh_init(&m, j->stages, world / j->stages);
  if (stage_grid[0] > 0) mt_mesh_set_inner(&m, stage_grid[0], stage_grid[1]);
  if (j->bad_rank >= 0) m.timeout_ms = 3000;
  for (int r = 0; r < world; r++)
    rr[r] = (rank_run){.r = {&m, r, NULL}, .j = j, .g = g};
  pr_threads(world, rank_main, rr, sizeof *rr);
  mt_mesh_close(&m);
}

/* Runs j, which must succeed; *out_logs (may be NULL) gets every rank's
 * log, concatenated (owned). */
static void run_pipeline_logged(const ty_graph *g, const job *j, bool *out_recompute,
                                char **out_logs) {
  rank_run rr[MT_MAX_RANKS];
  run_ranks(g, j, rr);
  size_t len = 1;
  for (int r = 0; r < j->nodes * j->per_node; r++) {
    cr_assert_eq(rr[r].rc, 0, "rank %d: %s: %s", r, ty_strerror(rr[r].rc), rr[r].err);
    len += strlen(rr[r].log);
  }
  if (out_recompute) *out_recompute = rr[0].recompute;
  char *all = calloc(len, 1);
  for (int r = 0; r < j->nodes * j->per_node; r++) {
    strcat(all, rr[r].log);
    free(rr[r].log);
  }
  if (out_logs)
    *out_logs = all;
  else
    free(all);
}

static void run_pipeline(const ty_graph *g, const job *j, bool *out_recompute) {
  run_pipeline_logged(g, j, out_recompute, NULL);
}

Test(pipeline, stages_train_like_one_process, .timeout = 240) {
  ty_graph *g = model();
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("pipe.onnx"));
  pr_run_single(g, 5, ref, false);
  const job jobs[] = {
      {2, 2, 4, 4, 5, out, false, 0, -1, false, -1, 0}, /* 4 stages on 4 ranks (2 nodes x 2) */
      {2, 2, 2, 4, 5, out, false, 0, -1, false, -1, 0}, /* data x pipeline, 2 x 2 */
      {1, 2, 2, 2, 5, out, false, 0, -1, false, -1, 0}, /* 2 stages, 2 micro-batches */
      {1, 4, 4, 8, 5, out, false, 0, -1, false, -1, 0}, /* more micro-batches than stages */
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++) {
    run_pipeline(g, &jobs[i], NULL);
    double d = pr_diff(ref, out);
    cr_assert(d < 1e-5,
              "job %zu (%d stages x %d micro-batches on %dx%d): weights differ from one "
              "process by %g",
              i, jobs[i].stages, jobs[i].micro, jobs[i].nodes, jobs[i].per_node, d);
  }
  ty_graph_destroy(g);
}

/* A weight read by two stages (the last hidden layer reuses fc3's, as a
 * tied output layer reuses the embedding) is held by both; their gradient
 * contributions are summed between them each step, so the weights are
 * those of one process. */
Test(pipeline, a_tied_weight_is_held_by_both_its_stages, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .tied = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  char ref[300], out[300];
  reference(g, "tied", 5, ref, out);
  const job jobs[] = {
      {2, 2, 4, 4, 5, out, false, 0, -1, false, -1, 0}, /* fc3 on stage 1, fc5 on stage 3 */
      {2, 2, 2, 4, 5, out, false, 0, -1, false, -1, 0}, /* data x pipeline, 2 x 2 */
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(jobs); i++) {
    char *logs = NULL;
    run_pipeline_logged(g, &jobs[i], NULL, &logs);
    double d = pr_diff(ref, out);
    cr_assert(d < 1e-5, "job %zu: a tied weight over %d stages: %g from one process", i,
              jobs[i].stages, d);
    free(logs);
  }
  ty_train_config c;
  config(&c, &jobs[0]);
  ty_plan *p = plan_for(g, &c, &jobs[0]);
  int s3 = -1, s5 = -1;
  for (size_t i = 0; i < p->n_ops; i++) {
    if (!strcmp(p->ops[i].name, "fc3")) s3 = p->ops[i].stage;
    if (!strcmp(p->ops[i].name, "fc5")) s5 = p->ops[i].stage;
  }
  cr_assert(s3 >= 0 && s5 > s3, "fc3 on stage %d, fc5 on stage %d", s3, s5);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Two parameters tied across the same stages (fc5 reads fc3's weight and
 * its bias) travel in one message per holder pair and step, each way: on
 * 4 stages, 5 steps, the two holder ranks send 5 each, and the weights
 * are still those of one process. */
Test(pipeline, tied_weights_travel_in_one_message_per_pair, .timeout = 240) {
  synth_mlp o = {
      .in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .tied = true, .tied_bias = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  char ref[300], out[300];
  reference(g, "tied_bucket", 5, ref, out);
  job j = {2, 2, 4, 4, 5, out, false, 0, -1, false, -1, 0};
  tied_micro = j.micro;
  run_pipeline(g, &j, NULL);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "a tied weight and bias over 4 stages: %g from one process", d);
  int holders = 0;
  for (int r = 0; r < 4; r++) {
    cr_assert(tied_msgs[r] == 0 || tied_msgs[r] == 5,
              "rank %d sent %d tied messages in 5 steps (one per step and peer)", r, tied_msgs[r]);
    holders += tied_msgs[r] == 5;
  }
  cr_assert_eq(holders, 2, "%d ranks exchanged tied gradients, not the 2 holders", holders);
  ty_graph_destroy(g);
}

/* The stages of p whose ops read value v of g, as bits. */
static unsigned readers(const ty_graph *g, const ty_plan *p, int v) {
  unsigned bits = 0;
  for (size_t i = 0; i < p->n_ops && i < ty_graph_n_nodes(g); i++)
    for (int k = 0; k < ty_graph_node_at(g, i)->n_inputs; k++)
      if (ty_graph_node_at(g, i)->inputs[k] == v) bits |= 1u << p->ops[i].stage;
  return bits;
}

/* Issue 18: a tied weight that the stage meshes split. Two stages x 2-way
 * tensor parallel: each holder rank keeps its block of fc3.weight (the
 * plan's one layout for it, so rank i of stage 0 and rank i of stage 1
 * hold the same block), the blocks' gradients are swapped between those
 * ranks and summed, and the weights are those of one process; so on 2
 * stages of a 2x2 data x tensor mesh (grid mode). */
Test(pipeline, a_tied_weight_split_by_its_stages_meshes, .timeout = 240) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .tied = true};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  char ref[300], out[300];
  reference(g, "tied_tp", 5, ref, out);
  job j = {1, 4, 2, 4, 5, out, false, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  ty_graph *pg = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_plan_graph(g, &c, true, &pg, err, sizeof err), 0, "%s", err);
  int w = ty_graph_find_value(pg, "fc3.weight");
  cr_assert_eq(readers(pg, p, w), 3u, "fc3.weight is read by stages 0x%x, not both",
               readers(pg, p, w));
  const ty_plan_param *pa = NULL;
  for (size_t k = 0; k < p->n_params; k++)
    if (p->params[k].value == w) pa = &p->params[k];
  cr_assert_not_null(pa, "fc3.weight has no layout in the plan");
  int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
  const ty_shape *full = &ty_graph_value_at(pg, w)->init->shape;
  ty_plan_slice(p, &pa->layout, full, 0, start, len);
  cr_assert(len[0] * len[1] < full->dims[0] * full->dims[1],
            "the stage meshes hold fc3.weight whole: nothing tests its blocks");
  ty_graph_destroy(pg);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  run_pipeline(g, &j, NULL);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "a tied weight split over 2 stages x 2 devices: %g from one process", d);
  job grid = {1, 8, 2, 2, 5, out, false, 0, -1, false, -1, TY_PLAN_MODE_GRID};
  stage_grid[0] = stage_grid[1] = 2; /* stages of 2x2, data x tensor */
  run_pipeline(g, &grid, NULL);
  d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "a tied weight over 2 stages of 2x2 (data x tensor): %g from one process", d);
  ty_graph_destroy(g);
}

/* The ops of stage mesh's plan that split a weight's output features (a
 * column or row-block split: tensor parallelism), and none that splits a
 * batch. */
static int tensor_split_ops(const ty_plan *p) {
  int n = 0;
  for (size_t i = 0; i < p->n_ops; i++) {
    cr_assert(!strstr(p->ops[i].strategy, "batch split"), "op %s: %s", p->ops[i].name,
              p->ops[i].strategy);
    n += strstr(p->ops[i].strategy, "column split") || strstr(p->ops[i].strategy, "row-block");
  }
  return n;
}

/* Issue 18: each stage runs its own intra-stage plan. Tensor mode makes the
 * planner split the stages' weights over each stage's two devices; the
 * ranks run their shards and train to the single-process weights. */
Test(pipeline, tensor_parallel_stages_train_like_one_process, .timeout = 240) {
  ty_graph *g = model();
  char ref[300], out[300];
  reference(g, "tp", 5, ref, out);
  job j = {1, 4, 2, 4, 5, out, false, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  cr_assert_eq(p->n_stages, 2);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  cr_assert_gt(tensor_split_ops(p), 0, "no op of the stages is split tensor parallel");
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  char *logs = NULL;
  run_pipeline_logged(g, &j, NULL, &logs);
  cr_assert(strstr(logs, "its intra-stage plan through ops/shard"), "%s", logs);
  free(logs);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "2 tensor-parallel stages x 2 devices: weights differ by %g", d);
  ty_graph_destroy(g);
}

/* What the planner counts on rank r of p for its stage's parameters: each
 * block's bytes x (the parameter, its gradient, the optimizer's copies). */
static uint64_t planned_state(const ty_graph *model, const ty_train_config *c, const ty_plan *p,
                              int r) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = NULL;
  cr_assert_eq(ty_train_plan_graph(model, c, true, &g, err, sizeof err), 0, "%s", err);
  int stage = r / (p->devices / p->n_stages);
  uint64_t copies = c->optim.kind == TY_OPTIM_SGD ? (c->optim.momentum > 0) : 2, n = 0;
  for (size_t k = 0; k < p->n_params; k++) {
    const ty_plan_param *pa = &p->params[k];
    int st = -1;
    for (size_t i = 0; i < p->n_ops && i < ty_graph_n_nodes(g); i++)
      for (int q = 0; q < ty_graph_node_at(g, i)->n_inputs; q++)
        if (ty_graph_node_at(g, i)->inputs[q] == pa->value) st = p->ops[i].stage;
    if (st != stage) continue;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK], numel = 1;
    const ty_shape *full = &ty_graph_value_at(g, pa->value)->init->shape;
    ty_plan_slice(p, &pa->layout, full, r, start, len);
    for (int d = 0; d < full->rank; d++)
      numel *= len[d];
    n += (uint64_t)numel * (2 + copies) * sizeof(float);
  }
  ty_graph_destroy(g);
  return n;
}

/* Issue 18: a rank of a tensor-parallel stage holds only its blocks of its
 * stage's parameters and their optimizer state, as many bytes as the
 * planner counts for it (less than the stage's whole parameters); the
 * checkpoint gathered from the blocks resumes on the same sharded stages,
 * on 4 stages of one device and on one process, each reaching the
 * uninterrupted run's weights. */
Test(pipeline, tensor_parallel_stages_hold_their_blocks_and_resume, .timeout = 240) {
  ty_graph *g = model();
  char ref[300], tp[300], again[300], four[300], one[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref_blocks.onnx"));
  snprintf(tp, sizeof tp, "%s", synth_path("blocks.onnx"));
  snprintf(again, sizeof again, "%s", synth_path("blocks_again.onnx"));
  snprintf(four, sizeof four, "%s", synth_path("blocks_four.onnx"));
  snprintf(one, sizeof one, "%s", synth_path("blocks_one.onnx"));
  pr_run_single(g, 8, ref, false);
  job j = {1, 4, 2, 4, 4, tp, false, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  rank_run rr[MT_MAX_RANKS];
  run_ranks(g, &j, rr);
  for (int r = 0; r < 4; r++) {
    cr_assert_eq(rr[r].rc, 0, "rank %d: %s", r, rr[r].err);
    uint64_t want = planned_state(g, &c, p, r), whole = 0;
    ty_plan whole_plan = *p; /* the same stages with every layout replicated */
    ty_plan_param params[64];
    cr_assert(p->n_params <= 64);
    for (size_t k = 0; k < p->n_params; k++) {
      params[k] = p->params[k];
      memset(params[k].layout.dim_axes, 0, sizeof params[k].layout.dim_axes);
    }
    whole_plan.params = params;
    whole = planned_state(g, &c, &whole_plan, r);
    cr_assert_eq(rr[r].state, want,
                 "rank %d holds %llu bytes of parameters and state, the plan "
                 "counts %llu",
                 r, (unsigned long long)rr[r].state, (unsigned long long)want);
    cr_assert_lt(want, whole, "rank %d: its blocks are no smaller than its stage's parameters", r);
    free(rr[r].log);
  }
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  pr_copy_checkpoint(tp, again);
  pr_copy_checkpoint(tp, four);
  pr_copy_checkpoint(tp, one);
  job sharded = {1, 4, 2, 4, 8, again, true, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  run_pipeline(g, &sharded, NULL);
  job stages = {1, 4, 4, 4, 8, four, true, 0, -1, false, -1, TY_PLAN_MODE_AUTO};
  run_pipeline(g, &stages, NULL);
  pr_run_single(g, 8, one, true);
  double da = pr_diff(ref, again), d4 = pr_diff(ref, four), d1 = pr_diff(ref, one);
  cr_assert(da < 1e-5, "resumed on the sharded stages: %g from an uninterrupted run", da);
  cr_assert(d4 < 1e-5, "resumed on 4 stages: %g from an uninterrupted run", d4);
  cr_assert(d1 < 1e-5, "resumed on one process: %g from an uninterrupted run", d1);
  ty_graph_destroy(g);
}

/* The same with PyTorch's attention head-split idiom in the first stage
 * (a Reshape to [N * 2, hidden / 2] by a shape computed at run time, and
 * back): the shard's local shapes cross stages as its layouts say. */
Test(pipeline, tensor_parallel_stages_with_head_split_reshapes, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .shape_arith = true};
  ty_graph *g = synth_mlp_build(&mo);
  char ref[300], out[300];
  reference(g, "heads", 4, ref, out);
  job j = {1, 4, 2, 4, 4, out, false, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  run_pipeline(g, &j, NULL);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "head-split MLP on 2 tensor-parallel stages: weights differ by %g", d);
  ty_graph_destroy(g);
}

/* Issue 18: a stage mesh with both axes split. Grid mode makes every
 * stage's 2x2 mesh data parallel on axis 0 and tensor parallel on axis 1;
 * the gradients are summed over the stage's data axis and the tensor
 * collectives run over its tensor axis (the transport's inner axes), and
 * two such stages on 8 ranks train to the single-process weights. */
Test(pipeline, data_x_tensor_stages_train_like_one_process, .timeout = 240) {
  ty_graph *g = model();
  char ref[300], out[300];
  reference(g, "grid", 5, ref, out);
  job j = {1, 8, 2, 2, 5, out, false, 0, -1, false, -1, TY_PLAN_MODE_GRID};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  cr_assert_eq(p->n_stages, 2);
  cr_assert(p->mesh[0] == 2 && p->mesh[1] == 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  int batch = 0, tensor = 0;
  for (size_t i = 0; i < p->n_ops; i++) {
    batch += strstr(p->ops[i].strategy, "batch split") != NULL;
    tensor += strstr(p->ops[i].strategy, "column split") || strstr(p->ops[i].strategy, "row-block");
  }
  cr_assert(batch > 0 && tensor > 0, "%d ops split the batch, %d a weight", batch, tensor);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  char *logs = NULL;
  stage_grid[0] = stage_grid[1] = 2;
  run_pipeline_logged(g, &j, NULL, &logs);
  cr_assert(strstr(logs, "of its 2x2 mesh, its intra-stage plan through ops/shard"), "%s", logs);
  free(logs);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "2 stages of 2x2 (data x tensor): weights differ by %g", d);
  ty_graph_destroy(g);
}

/* The least memory a plan of j's stages may have without recomputing. */
static uint64_t plain_memory(const ty_graph *g, const job *j) {
  ty_train_config c;
  config(&c, j);
  ty_plan *p = plan_for(g, &c, j);
  uint64_t most = 0;
  for (int s = 0; s < p->n_stages; s++) {
    cr_assert(!p->stages[s].recompute, "stage %d recomputes with plenty of memory", s);
    if (p->stages[s].memory_no_recompute_bytes > most)
      most = p->stages[s].memory_no_recompute_bytes;
  }
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  return most;
}

Test(pipeline, recomputation_forced_by_memory_gives_the_same_weights, .timeout = 240) {
  ty_graph *g = model();
  char ref[300], out[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref_rc.onnx"));
  snprintf(out, sizeof out, "%s", synth_path("pipe_rc.onnx"));
  job plain = {1, 4, 4, 4, 4, ref, false, 0, -1, false, -1, 0};
  bool rc_plain = true, rc_forced = false;
  run_pipeline(g, &plain, &rc_plain);
  cr_assert(!rc_plain, "recomputation without a memory limit");
  job tight = plain;
  tight.ckpt = out;
  tight.mem = plain_memory(g, &plain) - 1; /* the largest stage no longer fits as it is */
  run_pipeline(g, &tight, &rc_forced);
  cr_assert(rc_forced, "a budget of %llu bytes did not make the planner recompute",
            (unsigned long long)tight.mem);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-6, "recomputation changed the weights by %g", d);
  ty_graph_destroy(g);
}

Test(pipeline, checkpoint_resumes_under_another_stage_count, .timeout = 240) {
  ty_graph *g = model();
  char ref[300], four[300], two[300], one[300];
  snprintf(ref, sizeof ref, "%s", synth_path("ref8.onnx"));
  snprintf(four, sizeof four, "%s", synth_path("four.onnx"));
  snprintf(two, sizeof two, "%s", synth_path("two.onnx"));
  snprintf(one, sizeof one, "%s", synth_path("one.onnx"));
  pr_run_single(g, 8, ref, false);
  job first = {1, 4, 4, 4, 4, four, false, 0, -1, false, -1, 0};
  run_pipeline(g, &first, NULL); /* 4 steps on 4 stages */
  pr_copy_checkpoint(four, two);
  pr_copy_checkpoint(four, one);
  job second = {1, 2, 2, 2, 8, two, true, 0, -1, false, -1, 0};
  run_pipeline(g, &second, NULL); /* 4 more on 2 stages */
  pr_run_single(g, 8, one, true); /* 4 more on one process */
  double d2 = pr_diff(ref, two), d1 = pr_diff(ref, one);
  cr_assert(d2 < 1e-5, "resumed on 2 stages: %g from an uninterrupted run", d2);
  cr_assert(d1 < 1e-5, "resumed on one process: %g from an uninterrupted run", d1);
  ty_graph_destroy(g);
}

/* Dropout: each stage draws its masks per step and micro-batch from the
 * run's seed (so a run repeats exactly), and a stage the plan would
 * recompute keeps its activations instead (a second forward would draw
 * other masks than the one whose activations were sent). */
Test(pipeline, dropout_stages_repeat_and_are_not_recomputed, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .dropout = true};
  ty_graph *g = synth_mlp_build(&mo);
  char a[300], b[300];
  snprintf(a, sizeof a, "%s", synth_path("drop_a.onnx"));
  snprintf(b, sizeof b, "%s", synth_path("drop_b.onnx"));
  job j = {1, 4, 4, 4, 3, a, false, 0, -1, true, -1, 0}; /* the plan recomputes every stage */
  char *logs = NULL;
  run_pipeline_logged(g, &j, NULL, &logs);
  cr_assert(strstr(logs, "draws Dropout masks, so it keeps its activations instead of "
                         "recomputing them"),
            "%s", logs);
  free(logs);
  j.ckpt = b;
  run_pipeline(g, &j, NULL);
  cr_assert_eq(pr_diff(a, b), 0.0, "two runs with one seed differ");
  ty_graph_destroy(g);
}

/* A stop request on one stage (SIGTERM) stops every stage at the same
 * agreed step, so none waits for messages of a step the others skip. */
Test(pipeline, a_stop_on_one_stage_stops_all_at_one_step, .timeout = 120) {
  ty_graph *g = model();
  job j = {1, 4, 4, 4, 20, NULL, false, 0, -1, false, 2, 0};
  rank_run rr[MT_MAX_RANKS];
  run_ranks(g, &j, rr);
  for (int r = 0; r < 4; r++) {
    cr_assert_eq(rr[r].rc, 0, "rank %d: %s", r, rr[r].err);
    cr_assert_eq(rr[r].step, 8u, "rank %d stopped at step %llu", r, (unsigned long long)rr[r].step);
    free(rr[r].log);
  }
  ty_graph_destroy(g);
}

Test(pipeline, a_wrong_stage_message_is_named, .timeout = 120) {
  ty_graph *g = model();
  job j = {1,     4, 4, 4,     1,  NULL,
           false, 0, 1, false, -1, 0}; /* rank 1 (stage 1) mislabels micro-batch 1 */
  rank_run rr[MT_MAX_RANKS];
  run_ranks(g, &j, rr);
  cr_assert_eq(rr[2].rc, TY_EINVAL, "rank 2: %s", rr[2].err);
  cr_assert(strstr(rr[2].err, "rank 2 (stage 2), micro-batch 1 of step 0: expected the "
                              "activation of"),
            "%s", rr[2].err);
  cr_assert(strstr(rr[2].err, "from rank 1 (stage 1), but received a message of stage 1, "
                              "micro-batch 7, step 0"),
            "%s", rr[2].err);
  cr_assert_eq(rr[1].rc, TY_ETIMEDOUT, "rank 1 waits for a gradient that never comes: %s",
               rr[1].err);
  for (int r = 0; r < 4; r++)
    free(rr[r].log);
  ty_graph_destroy(g);
}

/* ---- BatchNormalization ---------------------------------------------------------- */

/* The reference of a pipeline with BatchNormalization: one process
 * accumulating gradients over the same M micro-batches of each global
 * batch (each normalised with its own statistics, the running statistics
 * folded in micro-batch order), then one SGD step on their mean. Returns
 * the forward + loss graph with the trained weights and statistics. */
typedef struct ref_bn {
  int x, stat[2];
  float momentum;
} ref_bn;

static void fold(const ref_bn *b, const ty_tensor *x, float *rm, float *rv) {
  int64_t n = x->shape.dims[0], c = x->shape.dims[1];
  for (int64_t ch = 0; ch < c; ch++) {
    double s = 0, s2 = 0;
    for (int64_t r = 0; r < n; r++)
      s += ty_tensor_f32(x)[r * c + ch];
    double m = s / (double)n;
    for (int64_t r = 0; r < n; r++)
      s2 += (ty_tensor_f32(x)[r * c + ch] - m) * (ty_tensor_f32(x)[r * c + ch] - m);
    rm[ch] = rm[ch] * b->momentum + (float)m * (1 - b->momentum);
    rv[ch] = rv[ch] * b->momentum + (float)(s2 / (double)(n - 1)) * (1 - b->momentum);
  }
}

static ty_graph *accumulated(const ty_graph *model, const ty_train_config *c, int M, int steps) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = NULL;
  cr_assert_eq(ty_train_plan_graph(model, c, true, &g, err, sizeof err), 0, "%s", err);
  ref_bn bns[4];
  int nb = 0, wrt[64], grads[64], keep[4];
  size_t np = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    if (n->op != TY_OP_BATCH_NORM) continue;
    bns[nb] = (ref_bn){
        n->inputs[0], {n->inputs[3], n->inputs[4]}, ty_graph_node_attr_float(n, "momentum", 0.9f)};
    keep[nb] = n->inputs[0];
    nb++;
  }
  for (size_t i = 0; i < ty_graph_n_initializers(g); i++) {
    int v = ty_graph_initializer(g, i);
    bool stat = false;
    for (int b = 0; b < nb; b++)
      stat = stat || v == bns[b].stat[0] || v == bns[b].stat[1];
    if (ty_graph_value_at(g, v)->dtype == TY_DTYPE_F32 && !stat) wrt[np++] = v;
  }
  int loss = ty_graph_find_value(g, "trainyard.loss");
  cr_assert_eq(ty_autodiff(g, loss, wrt, np, grads, err, sizeof err), 0, "%s", err);
  ty_exec *ex = NULL;
  ty_exec_opts o = {.training = true, .keep_values = keep, .n_keep_values = (size_t)nb};
  cr_assert_eq(ty_exec_create(g, &o, &ex), 0);
  float *x = malloc(sizeof(float) * 8 * 256), *acc[64];
  int64_t *y = malloc(sizeof(int64_t) * 256), B = c->batch_size / M;
  synth_blobs(256, 8, 4, 1, x, y); /* the suite's x.npy and y.npy */
  for (size_t k = 0; k < np; k++)
    acc[k] = malloc(ty_graph_value_at(g, wrt[k])->init->nbytes);
  for (int s = 0; s < steps; s++) {
    for (size_t k = 0; k < np; k++)
      memset(acc[k], 0, ty_graph_value_at(g, wrt[k])->init->nbytes);
    for (int i = 0; i < M; i++) {
      int64_t first = (int64_t)s * c->batch_size + i * B;
      ty_shape xs = ty_shape_make(2, (int64_t[]){B, 8}), ys = ty_shape_make(1, (int64_t[]){B});
      ty_tensor *xt, *yt;
      cr_assert_eq(ty_tensor_create_from(TY_DTYPE_F32, &xs, x + first * 8,
                                         sizeof(float) * 8 * (size_t)B, &xt),
                   0);
      cr_assert_eq(
          ty_tensor_create_from(TY_DTYPE_I64, &ys, y + first, sizeof(int64_t) * (size_t)B, &yt), 0);
      cr_assert_eq(ty_exec_bind(ex, "x", xt, err, sizeof err), 0, "%s", err);
      cr_assert_eq(ty_exec_bind(ex, "labels", yt, err, sizeof err), 0, "%s", err);
      cr_assert_eq(ty_exec_run(ex, err, sizeof err), 0, "%s", err);
      for (int b = 0; b < nb; b++)
        fold(&bns[b], ty_exec_value(ex, bns[b].x),
             ty_tensor_f32(ty_graph_value_at(g, bns[b].stat[0])->init),
             ty_tensor_f32(ty_graph_value_at(g, bns[b].stat[1])->init));
      for (size_t k = 0; k < np; k++) {
        const ty_tensor *gr = ty_exec_value(ex, grads[k]);
        for (int64_t e = 0; e < ty_tensor_numel(gr); e++)
          acc[k][e] += ty_tensor_f32(gr)[e];
      }
      ty_tensor_destroy(xt);
      ty_tensor_destroy(yt);
    }
    for (size_t k = 0; k < np; k++) { /* SGD on the mean gradient; the executor reads in place */
      ty_tensor *w = ty_graph_value_at(g, wrt[k])->init;
      for (int64_t e = 0; e < ty_tensor_numel(w); e++)
        ty_tensor_f32(w)[e] -= (float)(c->schedule.base_lr * acc[k][e] / M);
    }
  }
  for (size_t k = 0; k < np; k++)
    free(acc[k]);
  free(x);
  free(y);
  ty_exec_destroy(ex);
  return g;
}

/* Largest difference between a checkpoint's float initializers and ref's. */
static double diff_graph(const char *path, const ty_graph *ref) {
  char err[TY_ERR_LEN] = "";
  ty_graph *ga;
  cr_assert_eq(ty_graph_load_file(path, err, sizeof err, &ga), 0, "%s", err);
  double worst = 0;
  for (size_t i = 0; i < ty_graph_n_initializers(ga); i++) {
    const ty_graph_value *va = ty_graph_value_at(ga, ty_graph_initializer(ga, i));
    int r = ty_graph_find_value(ref, va->name);
    if (va->dtype != TY_DTYPE_F32 || r == TY_NO_VALUE) continue;
    const ty_tensor *tb = ty_graph_value_at(ref, r)->init;
    cr_assert_eq(va->init->nbytes, tb->nbytes, "%s", va->name);
    for (int64_t k = 0; k < ty_tensor_numel(va->init); k++)
      worst = fmax(worst, fabs((double)ty_tensor_f32(va->init)[k] - ty_tensor_f32(tb)[k]));
  }
  ty_graph_destroy(ga);
  return worst;
}

/* GPipe's BatchNormalization: statistics per micro-batch, running
 * statistics folded micro-batch by micro-batch in order; the weights and
 * the statistics match one process accumulating gradients over the same
 * micro-batches (and differ from one that normalises the whole batch). */
Test(pipeline, batch_norm_uses_micro_batch_statistics, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .bn = true};
  ty_graph *g = synth_mlp_build(&mo);
  char out[300], whole[300];
  snprintf(out, sizeof out, "%s", synth_path("pipe_bn.onnx"));
  snprintf(whole, sizeof whole, "%s", synth_path("whole_bn.onnx"));
  plain_sgd = true;
  job j = {1, 2, 2, 4, 3, out, false, 0, -1, false, -1, 0};
  run_pipeline(g, &j, NULL);
  ty_train_config c;
  config(&c, &j);
  ty_graph *ref = accumulated(g, &c, 4, 3);
  double d = diff_graph(out, ref);
  cr_assert(d < 1e-5,
            "2 stages x 4 micro-batches with BatchNormalization: %g from the "
            "accumulating process",
            d);
  ty_graph_destroy(ref);
  ref = accumulated(g, &c, 1, 3); /* whole-batch statistics: another model */
  cr_assert(diff_graph(out, ref) > 1e-4, "micro-batch statistics do not show in the weights");
  ty_graph_destroy(ref);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* The plan's strategy for op `name`. */
static const char *strategy_of(const ty_plan *p, const char *name) {
  for (size_t i = 0; i < p->n_ops; i++)
    if (strcmp(p->ops[i].name, name) == 0) return p->ops[i].strategy;
  cr_assert_fail("the plan has no op %s", name);
  return NULL;
}

/* BatchNormalization in stages of two devices: the stage's shard
 * normalises each micro-batch with statistics summed over the ranks that
 * split its rows, so the stage computes what one device would, and the
 * running statistics fold from those sums: the same weights and
 * statistics as the accumulating process. */
Test(pipeline, batch_norm_in_data_parallel_stages, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .bn = true};
  ty_graph *g = synth_mlp_build(&mo);
  char out[300];
  snprintf(out, sizeof out, "%s", synth_path("pipe_bn_dp.onnx"));
  plain_sgd = true;
  job j = {1, 4, 2, 4, 3, out, false, 0, -1, false, -1, TY_PLAN_MODE_DATA};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  cr_assert(strstr(strategy_of(p, "bn"), "batch split"), "bn: %s", strategy_of(p, "bn"));
  ty_plan_destroy(p);
  run_pipeline(g, &j, NULL);
  ty_graph *ref = accumulated(g, &c, 4, 3);
  double d = diff_graph(out, ref);
  cr_assert(d < 1e-5,
            "2 stages of 2 devices with BatchNormalization: %g from the accumulating process", d);
  ty_graph_destroy(ref);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

/* Issue 18: BatchNormalization with its channels split inside a stage
 * (tensor mode on 2 stages x 2 devices): each rank normalises its
 * channels, keeps its block of the running statistics and folds them from
 * its channels' micro-batch statistics; the checkpoint gathers the blocks
 * (the same weights and statistics as the accumulating process), and it
 * resumes on the same sharded stages (sliced into blocks again) and on 4
 * stages of one device. */
Test(pipeline, batch_norm_with_its_channels_split_in_stages, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .bn = true};
  ty_graph *g = synth_mlp_build(&mo);
  char out[300], again[300], four[300];
  snprintf(out, sizeof out, "%s", synth_path("pipe_bn_tp.onnx"));
  snprintf(again, sizeof again, "%s", synth_path("pipe_bn_tp_again.onnx"));
  snprintf(four, sizeof four, "%s", synth_path("pipe_bn_tp_four.onnx"));
  plain_sgd = true;
  job j = {1, 4, 2, 4, 3, out, false, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  cr_assert(strstr(strategy_of(p, "bn"), "channel split"), "bn: %s", strategy_of(p, "bn"));
  ty_plan_destroy(p);
  run_pipeline(g, &j, NULL);
  ty_graph *ref = accumulated(g, &c, 4, 3);
  double d = diff_graph(out, ref);
  cr_assert(d < 1e-5, "BatchNormalization's channels split over 2 devices: %g from one process", d);
  ty_graph_destroy(ref);
  pr_copy_checkpoint(out, again);
  pr_copy_checkpoint(out, four);
  job sharded = {1, 4, 2, 4, 6, again, true, 0, -1, false, -1, TY_PLAN_MODE_TENSOR};
  run_pipeline(g, &sharded, NULL);
  job stages = {1, 4, 4, 4, 6, four, true, 0, -1, false, -1, TY_PLAN_MODE_AUTO};
  run_pipeline(g, &stages, NULL);
  ref = accumulated(g, &c, 4, 6);
  double da = diff_graph(again, ref), d4 = diff_graph(four, ref);
  cr_assert(da < 1e-5, "resumed on the channel-split stages: %g from one process", da);
  cr_assert(d4 < 1e-5, "resumed on 4 stages of one device: %g from one process", d4);
  ty_graph_destroy(ref);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

static void refused(const ty_graph *g, int stages, int micro, const char *want) {
  job j = {1, 4, stages, micro, 1, NULL, false, 0, -1, false, -1, 0};
  ty_train_config c;
  config(&c, &j);
  ty_plan_request req = request(&j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), TY_EINVAL,
               "%d stages x %d micro-batches: %s", stages, micro, err);
  cr_assert(strstr(err, want), "%d stages x %d micro-batches: %s", stages, micro, err);
  ty_train_config_close(&c);
}

Test(pipeline, bad_pipelines_are_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5};
  ty_graph *shallow = synth_mlp_build(&o); /* two layers */
  ty_graph *g = model();
  refused(shallow, 4, 4, "pipeline_stages: 4 stages but the graph has 2 layers");
  refused(g, 4, 3, "micro_batches: 3 does not divide the batch 32");
  refused(g, 3, 4, "pipeline_stages: 3 stages do not divide the 4 devices");
  /* A plan file for another batch or world stops a rank before any step. */
  job j = {1, 4, 4, 4, 1, NULL, false, 0, -1, false, -1, 0};
  ty_train_config c;
  config(&c, &j);
  ty_plan *p = plan_for(g, &c, &j);
  char err[TY_ERR_LEN] = "";
  c.batch_size = 64;
  ty_train_parallel par = {.plan = p, .send = mt_send, .recv = mt_recv, .flush = mt_flush};
  ty_train *t = NULL;
  FILE *log = tmpfile();
  ty_train_opts to = {.rank = 0, .world_size = 4, .parallel = &par, .log = log};
  cr_assert_eq(ty_train_create(g, &c, &to, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "plan: 4 micro-batches of 8 do not make config.batch_size 64"), "%s", err);
  c.batch_size = 32;
  to.world_size = 8;
  cr_assert_eq(ty_train_create(g, &c, &to, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "plan: made for 4 devices (4 stages x 1), but this job has WORLD_SIZE=8"),
            "%s", err);
  par.send = NULL; /* a transport without messages */
  to.world_size = 4;
  cr_assert_eq(ty_train_create(g, &c, &to, &t, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "4 pipeline stages need point-to-point messages"), "%s", err);
  fclose(log);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  ty_graph_destroy(shallow);
  ty_graph_destroy(g);
}
