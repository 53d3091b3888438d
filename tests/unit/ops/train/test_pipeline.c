/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/train running a pipelined plan (pipe.c): every rank a trainer in a
 * thread of this process, stage messages and collectives through tests'
 * in-process mesh (pipe_ranks.c; the Open MPI transport is covered by
 * tests/integration/test_plan.c). Four stages on four ranks and two stages
 * x two replicas train to the weights of one process on the same global
 * batch, with and without recomputation, and so do two stages x 2-way
 * tensor parallel (tensor mode) and tied weights held by two stages; the
 * checkpoint is the single-process one and resumes under another stage
 * count; a wrong stage message is named by rank, stage and micro-batch,
 * and fails the stage mesh of the rank it stops, not hangs it;
 * bad pipeline requests are refused with the reason; gradient clipping
 * takes the whole model's norm over the stages (a tied weight once) and
 * trains like one process clipping; a mask computed from the input does
 * not stop cuts (each stage computes its own). BatchNormalization
 * in stages is test_pipeline_bn.c's.
 */
#include "ops/train/train.h"

#include "lib/base/base.h"
#include "tests/unit/ops/train/pipe_ranks.h"
#include "tests/unit/ops/train/plan_ranks.h"
#include "tests/unit/ops/train/synth.h"

#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
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

/* The same with fc5 reading fc3's weight (and, with bias, its bias too). */
static ty_graph *tied_model(bool bias) {
  synth_mlp o = {
      .in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .tied = true, .tied_bias = bias};
  ty_graph *g = synth_mlp_build(&o);
  cr_assert_not_null(g);
  return g;
}

/* Pipelines of 2 and 4 stages, replicated or not, trained 5 steps. */
static const struct {
  int nodes, per_node, stages, micro;
  const char *what;
} shapes[] = {
    {2, 2, 4, 4, "4 stages on 4 ranks (2 nodes x 2)"},
    {2, 2, 2, 4, "data x pipeline, 2 x 2"},
    {1, 2, 2, 2, "2 stages, 2 micro-batches"},
    {1, 4, 4, 8, "more micro-batches than stages"},
    {1, 2, 1, 4, "micro-batches without stages: one stage of 2 ranks"},
};

Test(pipeline, stages_train_like_one_process, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "stages", 5, ref, out);
  for (size_t i = 0; i < TY_ARRAY_LEN(shapes); i++) {
    pipe_job j = pipe_job_make(shapes[i].nodes, shapes[i].per_node, shapes[i].stages,
                               shapes[i].micro, 5, out);
    pipe_expect_like(g, &j, ref, shapes[i].what, NULL);
  }
  ty_graph_destroy(g);
}

/* A weight read by two stages (the last hidden layer reuses fc3's, as a
 * tied output layer reuses the embedding) is held by both; their gradient
 * contributions are summed between them each step, so the weights are
 * those of one process. */
Test(pipeline, a_tied_weight_is_held_by_both_its_stages, .timeout = 240) {
  ty_graph *g = tied_model(false);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "tied", 5, ref, out);
  pipe_job four = pipe_job_make(2, 2, 4, 4, 5, out); /* fc3 on stage 1, fc5 on stage 3 */
  pipe_job two = pipe_job_make(2, 2, 2, 4, 5, out);  /* data x pipeline, 2 x 2 */
  pipe_expect_like(g, &four, ref, "a tied weight over 4 stages", NULL);
  pipe_expect_like(g, &two, ref, "a tied weight over 2 stages", NULL);
  ty_train_config c;
  pipe_config(&c, &four);
  ty_plan *p = pipe_plan_for(g, &c, &four);
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
 * are still those of one process. Only the tied parameters' exchange
 * sends a message labelled with the job's micro-batch count. */
Test(pipeline, tied_weights_travel_in_one_message_per_pair, .timeout = 240) {
  ty_graph *g = tied_model(true);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "tied_bucket", 5, ref, out);
  pipe_job j = pipe_job_make(2, 2, 4, 4, 5, out);
  j.count_micro = j.micro;
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run(g, &j, rr, NULL);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-5, "a tied weight and bias over 4 stages: %g from one process", d);
  int holders = 0;
  for (int r = 0; r < 4; r++) {
    cr_assert(rr[r].counted == 0 || rr[r].counted == 5,
              "rank %d sent %d tied messages in 5 steps (one per step and peer)", r, rr[r].counted);
    holders += rr[r].counted == 5;
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

/* Asserts that j's plan holds fc3.weight, read by both of its 2 stages,
 * in blocks (not whole) on each stage's mesh. */
static void expect_tied_weight_split(const ty_graph *g, const pipe_job *j) {
  ty_train_config c;
  pipe_config(&c, j);
  ty_plan *p = pipe_plan_for(g, &c, j);
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
}

/* Issue 18: a tied weight that the stage meshes split. Two stages x 2-way
 * tensor parallel: each holder rank keeps its block of fc3.weight (the
 * plan's one layout for it, so rank i of stage 0 and rank i of stage 1
 * hold the same block), the blocks' gradients are swapped between those
 * ranks and summed, and the weights are those of one process; so on 2
 * stages of a 2x2 data x tensor mesh (grid mode). */
Test(pipeline, a_tied_weight_split_by_its_stages_meshes, .timeout = 240) {
  ty_graph *g = tied_model(false);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "tied_tp", 5, ref, out);
  pipe_job j = pipe_job_make(1, 4, 2, 4, 5, out);
  j.mode = TY_PLAN_MODE_TENSOR;
  expect_tied_weight_split(g, &j);
  pipe_expect_like(g, &j, ref, "a tied weight split over 2 stages x 2 devices", NULL);
  pipe_job grid = pipe_job_make(1, 8, 2, 2, 5, out);
  grid.mode = TY_PLAN_MODE_GRID;
  grid.grid[0] = grid.grid[1] = 2; /* stages of 2x2, data x tensor */
  pipe_expect_like(g, &grid, ref, "a tied weight over 2 stages of 2x2 (data x tensor)", NULL);
  ty_graph_destroy(g);
}

/* The ops of p that split the batch, and those that split a weight's
 * output features (a column or row-block split: tensor parallelism). */
static void count_splits(const ty_plan *p, int *out_batch, int *out_tensor) {
  *out_batch = *out_tensor = 0;
  for (size_t i = 0; i < p->n_ops; i++) {
    *out_batch += strstr(p->ops[i].strategy, "batch split") != NULL;
    *out_tensor +=
        strstr(p->ops[i].strategy, "column split") || strstr(p->ops[i].strategy, "row-block");
  }
}

/* Issue 18: each stage runs its own intra-stage plan. Tensor mode makes the
 * planner split the stages' weights over each stage's two devices; the
 * ranks run their shards and train to the single-process weights. */
Test(pipeline, tensor_parallel_stages_train_like_one_process, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "tp", 5, ref, out);
  pipe_job j = pipe_job_make(1, 4, 2, 4, 5, out);
  j.mode = TY_PLAN_MODE_TENSOR;
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan *p = pipe_plan_for(g, &c, &j);
  cr_assert_eq(p->n_stages, 2);
  cr_assert_eq(p->mesh[0] * p->mesh[1], 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  int batch, tensor;
  count_splits(p, &batch, &tensor);
  cr_assert_eq(batch, 0, "%d ops of the stages split the batch in tensor mode", batch);
  cr_assert_gt(tensor, 0, "no op of the stages is split tensor parallel");
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  char *logs = NULL;
  pipe_expect_like(g, &j, ref, "2 tensor-parallel stages x 2 devices", &logs);
  cr_assert(strstr(logs, "its intra-stage plan through ops/shard"), "%s", logs);
  free(logs);
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

/* Asserts that each rank of j's run (rr) holds as many bytes of parameters
 * and optimizer state as j's plan counts for it, fewer than its stage's
 * whole parameters. */
static void expect_blocks(const ty_graph *g, const pipe_job *j, const pipe_rank *rr) {
  ty_train_config c;
  pipe_config(&c, j);
  ty_plan *p = pipe_plan_for(g, &c, j);
  for (int r = 0; r < j->nodes * j->per_node; r++) {
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
  }
  ty_plan_destroy(p);
  ty_train_config_close(&c);
}

/* Issue 18: a rank of a tensor-parallel stage holds only its blocks of its
 * stage's parameters and their optimizer state, as many bytes as the
 * planner counts for it (less than the stage's whole parameters); the
 * checkpoint gathered from the blocks resumes on the same sharded stages,
 * on 4 stages of one device and on one process, each reaching the
 * uninterrupted run's weights. */
Test(pipeline, tensor_parallel_stages_hold_their_blocks_and_resume, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH], tp[PIPE_PATH], again[PIPE_PATH], four[PIPE_PATH], one[PIPE_PATH];
  pipe_path(again, "blocks_again.onnx");
  pipe_path(four, "blocks_four.onnx");
  pipe_path(one, "blocks_one.onnx");
  pipe_reference(g, "blocks", 8, ref, tp);
  pipe_job j = pipe_job_make(1, 4, 2, 4, 4, tp);
  j.mode = TY_PLAN_MODE_TENSOR;
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run(g, &j, rr, NULL);
  expect_blocks(g, &j, rr);
  pr_copy_checkpoint(tp, again);
  pr_copy_checkpoint(tp, four);
  pr_copy_checkpoint(tp, one);
  pipe_job sharded = pipe_job_make(1, 4, 2, 4, 8, again);
  sharded.resume = true;
  sharded.mode = TY_PLAN_MODE_TENSOR;
  pipe_expect_like(g, &sharded, ref, "resumed on the sharded stages", NULL);
  pipe_job stages = pipe_job_make(1, 4, 4, 4, 8, four);
  stages.resume = true;
  pipe_expect_like(g, &stages, ref, "resumed on 4 stages", NULL);
  pr_run_single(g, 8, one, true);
  double d1 = pr_diff(ref, one);
  cr_assert(d1 < 1e-5, "resumed on one process: %g from an uninterrupted run", d1);
  ty_graph_destroy(g);
}

/* The same with PyTorch's attention head-split idiom in the first stage
 * (a Reshape to [N * 2, hidden / 2] by a shape computed at run time, and
 * back): the shard's local shapes cross stages as its layouts say. */
Test(pipeline, tensor_parallel_stages_with_head_split_reshapes, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .shape_arith = true};
  ty_graph *g = synth_mlp_build(&mo);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "heads", 4, ref, out);
  pipe_job j = pipe_job_make(1, 4, 2, 4, 4, out);
  j.mode = TY_PLAN_MODE_TENSOR;
  pipe_expect_like(g, &j, ref, "head-split MLP on 2 tensor-parallel stages", NULL);
  ty_graph_destroy(g);
}

/* The head-split idiom on stages of one device each: the Reshape'd and
 * Slice'd activations have dims import leaves unknown (they come from
 * Shape arithmetic) but that are known at the batch, so the graph keeps
 * its five layers (it had four: no cut where such a value crossed, which
 * left a ViT or a transformer encoder one layer), a stage may send such a
 * value (its shape taken at the micro-batch), and its seeded loss reduces
 * it whole. */
/* The deep synthetic MLP `mo` plans as its five layers (fc1, fc3, fc4,
 * fc5, fc2) and trains on 2 and 4 stages to one process's weights. */
static void five_layers_on_2_and_4_stages(synth_mlp mo, const char *name, const char *on_2) {
  ty_graph *g = synth_mlp_build(&mo);
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, name, 4, ref, out);
  for (int stages = 2; stages <= 4; stages += 2) {
    pipe_job j = pipe_job_make(1, stages, stages, 4, 4, out);
    ty_train_config c;
    pipe_config(&c, &j);
    ty_plan *p = pipe_plan_for(g, &c, &j);
    cr_assert_eq(p->n_layers, 5, "%d layers, not 5: fc1, fc3, fc4, fc5, fc2", p->n_layers);
    ty_plan_destroy(p);
    ty_train_config_close(&c);
    pipe_expect_like(g, &j, ref, stages == 2 ? on_2 : "on 4 stages", NULL);
  }
  ty_graph_destroy(g);
}

Test(pipeline, stages_cut_where_activations_come_from_shape_arithmetic, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .shape_arith = true};
  five_layers_on_2_and_4_stages(mo, "arith", "head-split MLP on 2 stages");
}

/* An exported LSTM reorders its gates by Slices of its weights whose
 * starts, ends and axes are Constant nodes made just before them: their
 * int64 outputs cannot cross a cut, so every cut before such a weight was
 * blocked (3 nn.LSTM had "2 layers"). Constants are computed by every
 * stage that reads them instead: the sliced layers are layers, and 2 and
 * 4 stages train to the weights of one process. */
Test(pipeline, stages_cut_before_weights_sliced_by_constants, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .sliced = true};
  five_layers_on_2_and_4_stages(mo, "sliced", "sliced MLP on 2 stages");
}

/* A mask computed from the data feed (a padding mask x == 0, here
 * x[:, 0:1] > x[:, 1:2]) before the first layer and read by the last: a
 * bool value cannot cross a cut, so it kept every cut between them (the
 * MLP had 2 layers; an encoder whose blocks read its padding mask had 2
 * instead of 7). Every stage loads the feeds, so each that reads the mask
 * computes its own: the five layers stay, and 2 and 4 stages train to the
 * weights of one process. */
Test(pipeline, stages_cut_across_a_mask_computed_from_the_input, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .input_mask = true};
  five_layers_on_2_and_4_stages(mo, "input_mask", "masked MLP on 2 stages");
}

/* Issue 18: a stage mesh with both axes split. Grid mode makes every
 * stage's 2x2 mesh data parallel on axis 0 and tensor parallel on axis 1;
 * the gradients are summed over the stage's data axis and the tensor
 * collectives run over its tensor axis (the transport's inner axes), and
 * two such stages on 8 ranks train to the single-process weights. */
Test(pipeline, data_x_tensor_stages_train_like_one_process, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_reference(g, "grid", 5, ref, out);
  pipe_job j = pipe_job_make(1, 8, 2, 2, 5, out);
  j.mode = TY_PLAN_MODE_GRID;
  j.grid[0] = j.grid[1] = 2;
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan *p = pipe_plan_for(g, &c, &j);
  cr_assert_eq(p->n_stages, 2);
  cr_assert(p->mesh[0] == 2 && p->mesh[1] == 2, "stage mesh %dx%d", p->mesh[0], p->mesh[1]);
  int batch, tensor;
  count_splits(p, &batch, &tensor);
  cr_assert(batch > 0 && tensor > 0, "%d ops split the batch, %d a weight", batch, tensor);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  char *logs = NULL;
  pipe_expect_like(g, &j, ref, "2 stages of 2x2 (data x tensor)", &logs);
  cr_assert(strstr(logs, "of its 2x2 mesh, its intra-stage plan through ops/shard"), "%s", logs);
  free(logs);
  ty_graph_destroy(g);
}

/* ---- gradient clipping ------------------------------------------------------------ */

#define CLIP 0.05f

/* g trained 5 steps by one process clipping at CLIP into ref; want[s]:
 * step s's norm, above the limit at every step so that every step clips. */
static void clip_reference(const ty_graph *g, const char *name, char ref[PIPE_PATH],
                           double want[PR_MAX_STEPS]) {
  char file[64];
  snprintf(file, sizeof file, "ref_clip_%s.onnx", name);
  pipe_path(ref, file);
  pr_run_single_clipped(g, 5, ref, CLIP, want);
  for (int s = 0; s < 5; s++)
    cr_assert_gt(want[s], 2 * CLIP, "step %d's norm %g: clipping would not act", s, want[s]);
}

/* Runs j clipping at CLIP, checkpointing to a path of its own (one that
 * exists would be resumed): its weights are one process's (ref), and each
 * step's norm is the same bits on every rank of every stage and one
 * process's (want). */
static void expect_clipped_like(const ty_graph *g, pipe_job *j, const char *ref, const double *want,
                                const char *what) {
  static int runs;
  char out[PIPE_PATH], file[64];
  snprintf(file, sizeof file, "pipe_clip_%d.onnx", runs++);
  pipe_path(out, file);
  j->ckpt = out;
  j->clip = CLIP;
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run(g, j, rr, NULL);
  double d = pr_diff(ref, j->ckpt);
  cr_assert(d < 1e-5, "%s, clipped: weights differ from one process by %g", what, d);
  for (int r = 0; r < j->nodes * j->per_node; r++)
    for (int s = 0; s < 5; s++) {
      cr_assert(rr[r].norms[s] == rr[0].norms[s],
                "%s, step %d: rank %d's norm %.17g, rank 0's %.17g", what, s, r, rr[r].norms[s],
                rr[0].norms[s]);
      cr_assert(fabs(rr[r].norms[s] - want[s]) <= 1e-5 * want[s],
                "%s, step %d: norm %.9g, one process's %.9g", what, s, rr[r].norms[s], want[s]);
    }
}

/* Gradient clipping (config.max_grad_norm) with pipeline stages: after the
 * last micro-batch the norm is the whole model's, over every stage's
 * parameters (and every stage mesh's blocks, a replicated one once), the
 * same on every rank, and the one optimizer step is one process's: 2
 * stages, 4 stages, data x pipeline 2 x 2, 2 tensor-parallel stages x 2
 * devices and 2 stages of a 2x2 data x tensor mesh. */
Test(pipeline, clipping_takes_the_whole_models_norm_over_the_stages, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH];
  double want[PR_MAX_STEPS];
  clip_reference(g, "stages", ref, want);
  pipe_job two = pipe_job_make(1, 2, 2, 2, 5, NULL), four = pipe_job_make(2, 2, 4, 4, 5, NULL);
  pipe_job dp = pipe_job_make(2, 2, 2, 4, 5, NULL), tp = pipe_job_make(1, 4, 2, 4, 5, NULL);
  pipe_job grid = pipe_job_make(1, 8, 2, 2, 5, NULL);
  tp.mode = TY_PLAN_MODE_TENSOR;
  grid.mode = TY_PLAN_MODE_GRID;
  grid.grid[0] = grid.grid[1] = 2;
  expect_clipped_like(g, &two, ref, want, "2 stages");
  expect_clipped_like(g, &four, ref, want, "4 stages");
  expect_clipped_like(g, &dp, ref, want, "data x pipeline, 2 x 2");
  expect_clipped_like(g, &tp, ref, want, "2 tensor-parallel stages x 2 devices");
  expect_clipped_like(g, &grid, ref, want, "2 stages of 2x2 (data x tensor)");
  ty_graph_destroy(g);
}

/* A tied weight (and bias) held by two stages counts once in the norm, not
 * once per holder: on 4 stages, and split by 2 tensor-parallel stages. */
Test(pipeline, clipping_counts_a_tied_weight_once, .timeout = 240) {
  ty_graph *g = tied_model(true);
  char ref[PIPE_PATH];
  double want[PR_MAX_STEPS];
  clip_reference(g, "tied", ref, want);
  pipe_job four = pipe_job_make(2, 2, 4, 4, 5, NULL), tp = pipe_job_make(1, 4, 2, 4, 5, NULL);
  tp.mode = TY_PLAN_MODE_TENSOR;
  expect_clipped_like(g, &four, ref, want, "a tied weight over 4 stages");
  expect_clipped_like(g, &tp, ref, want, "a tied weight over 2 tensor-parallel stages");
  ty_graph_destroy(g);
}

/* A transport without an all-gather cannot sum the norm: refused before
 * the first step, naming the field. */
Test(pipeline, clipping_without_an_all_gather_is_refused, .timeout = 60) {
  ty_graph *g = model();
  pipe_job j = pipe_job_make(1, 2, 2, 2, 1, NULL);
  j.clip = CLIP;
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan *p = pipe_plan_for(g, &c, &j);
  ty_train_parallel par = {.plan = p, .send = mt_send, .recv = mt_recv, .flush = mt_flush};
  ty_train *t = NULL;
  FILE *log = tmpfile();
  char err[TY_ERR_LEN] = "";
  ty_train_opts to = {.rank = 0, .world_size = 2, .parallel = &par, .log = log};
  cr_assert_eq(ty_train_create(g, &c, &to, &t, err, sizeof err), TY_EINVAL, "%s", err);
  cr_assert(strstr(err, "config.max_grad_norm: gradient clipping on a plan's ranks sums the norm "
                        "with an all-gather, which this transport does not offer"),
            "%s", err);
  fclose(log);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(pipeline, recomputation_forced_by_memory_gives_the_same_weights, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH], out[PIPE_PATH];
  pipe_path(ref, "ref_rc.onnx");
  pipe_path(out, "pipe_rc.onnx");
  pipe_job plain = pipe_job_make(1, 4, 4, 4, 4, ref);
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run(g, &plain, rr, NULL);
  cr_assert(!rr[0].recompute, "recomputation without a memory limit");
  pipe_job tight = plain;
  tight.ckpt = out;
  tight.mem = pipe_plain_memory(g, &plain) - 1; /* the largest stage no longer fits as it is */
  pipe_run(g, &tight, rr, NULL);
  cr_assert(rr[0].recompute, "a budget of %llu bytes did not make the planner recompute",
            (unsigned long long)tight.mem);
  double d = pr_diff(ref, out);
  cr_assert(d < 1e-6, "recomputation changed the weights by %g", d);
  ty_graph_destroy(g);
}

Test(pipeline, checkpoint_resumes_under_another_stage_count, .timeout = 240) {
  ty_graph *g = model();
  char ref[PIPE_PATH], four[PIPE_PATH], two[PIPE_PATH], one[PIPE_PATH];
  pipe_path(two, "two.onnx");
  pipe_path(one, "one.onnx");
  pipe_reference(g, "four", 8, ref, four);
  pipe_job first = pipe_job_make(1, 4, 4, 4, 4, four);
  pipe_run(g, &first, NULL, NULL); /* 4 steps on 4 stages */
  pr_copy_checkpoint(four, two);
  pr_copy_checkpoint(four, one);
  pipe_job second = pipe_job_make(1, 2, 2, 2, 8, two);
  second.resume = true;
  pipe_expect_like(g, &second, ref, "resumed on 2 stages", NULL); /* 4 more on 2 stages */
  pr_run_single(g, 8, one, true);                                 /* 4 more on one process */
  double d1 = pr_diff(ref, one);
  cr_assert(d1 < 1e-5, "resumed on one process: %g from an uninterrupted run", d1);
  ty_graph_destroy(g);
}

/* Dropout: a run repeats exactly, and a stage the plan recomputes does
 * recompute (its second forward draws the first one's masks; that they
 * are one process's is test_pipeline_drop.c's). */
Test(pipeline, dropout_stages_repeat_and_are_recomputed, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .dropout = true};
  ty_graph *g = synth_mlp_build(&mo);
  char a[PIPE_PATH], b[PIPE_PATH];
  pipe_path(a, "drop_a.onnx");
  pipe_path(b, "drop_b.onnx");
  pipe_job j = pipe_job_make(1, 4, 4, 4, 3, a);
  j.all_recompute = true; /* the plan recomputes every stage */
  char *logs = NULL;
  pipe_run(g, &j, NULL, &logs);
  int said = 0;
  for (const char *at = logs; (at = strstr(at, "activations recomputed in backward")); at++)
    said++;
  cr_assert_eq(said, 4, "%d of 4 stages recompute as the plan says:\n%s", said, logs);
  free(logs);
  j.ckpt = b;
  pipe_run(g, &j, NULL, NULL);
  cr_assert_eq(pr_diff(a, b), 0.0, "two runs with one seed differ");
  ty_graph_destroy(g);
}

/* A stage reseeds its executors per step and micro-batch (ty_exec_reseed)
 * instead of building new ones: 2 + 2 resumed steps (new executors at
 * step 2) end with the bits of 4 uninterrupted steps. */
Test(pipeline, dropout_stages_resumed_draw_the_uninterrupted_masks, .timeout = 240) {
  synth_mlp mo = {.in = 8, .hidden = 32, .out = 4, .seed = 5, .deep = 3, .dropout = true};
  ty_graph *g = synth_mlp_build(&mo);
  char a[PIPE_PATH], b[PIPE_PATH];
  pipe_path(a, "drop_whole.onnx");
  pipe_path(b, "drop_part.onnx");
  pipe_job whole = pipe_job_make(1, 2, 2, 2, 4, a);
  pipe_run(g, &whole, NULL, NULL);
  pipe_job part = pipe_job_make(1, 2, 2, 2, 2, b);
  pipe_run(g, &part, NULL, NULL);
  part.steps = 4;
  part.resume = true;
  pipe_run(g, &part, NULL, NULL);
  cr_assert_eq(pr_diff(a, b), 0.0, "2 + 2 steps differ from 4");
  ty_graph_destroy(g);
}

/* A stop request on one stage (SIGTERM) stops every stage at the same
 * agreed step, so none waits for messages of a step the others skip: the
 * first step's (the ranks agree after it, and then as often as their
 * step time allows within a quarter of a second), not the eighth's. */
Test(pipeline, a_stop_on_one_stage_stops_all_at_one_step, .timeout = 120) {
  ty_graph *g = model();
  pipe_job j = pipe_job_make(1, 4, 4, 4, 20, NULL);
  j.stop_rank = 2;
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run(g, &j, rr, NULL);
  for (int r = 0; r < 4; r++)
    cr_assert_eq(rr[r].step, 1u, "rank %d stopped at step %llu", r, (unsigned long long)rr[r].step);
  ty_graph_destroy(g);
}

/* ---- refusals ------------------------------------------------------------------ */

Test(pipeline, a_wrong_stage_message_is_named, .timeout = 120) {
  ty_graph *g = model();
  pipe_job j = pipe_job_make(1, 4, 4, 4, 1, NULL);
  j.bad_rank = 1; /* rank 1 (stage 1) mislabels micro-batch 1 */
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run_ranks(g, &j, rr);
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

/* A rank that stops on a wrong message leaves the peer of its stage mesh
 * in a collective it never joins (tensor mode: the stage's layers gather
 * and reduce within it). That peer must fail at the transport's deadline,
 * as it would on the real transport: it once waited for ever, and the
 * test hung until CI's timeout instead of failing. */
Test(pipeline, a_wrong_stage_message_fails_its_stage_mesh_too, .timeout = 60) {
  ty_graph *g = model();
  pipe_job j = pipe_job_make(1, 4, 2, 4, 1, NULL);
  j.mode = TY_PLAN_MODE_TENSOR;
  j.bad_rank = 0; /* rank 0 (stage 0) mislabels micro-batch 1 for rank 2 (stage 1) */
  pipe_rank rr[MT_MAX_RANKS];
  pipe_run_ranks(g, &j, rr);
  cr_assert_eq(rr[2].rc, TY_EINVAL, "rank 2: %s", rr[2].err);
  cr_assert(strstr(rr[2].err, "rank 2 (stage 1), micro-batch 1 of step 0: expected the "
                              "activation of"),
            "%s", rr[2].err);
  cr_assert_eq(rr[3].rc, TY_ETIMEDOUT, "rank 3 waits in a collective rank 2 never joins: %s",
               rr[3].err);
  cr_assert(strstr(rr[3].err, "the extern op failed") && strstr(rr[3].err, "timed out"), "%s",
            rr[3].err);
  for (int r = 0; r < 4; r++)
    cr_assert_neq(rr[r].rc, 0, "rank %d finished a step its stage peer did not", r);
  for (int r = 0; r < 4; r++)
    free(rr[r].log);
  ty_graph_destroy(g);
}

/* The rank threads build their configs at once (pipe_config): each must
 * keep its own synth_path's. One ring shared by the threads once gave a
 * rank "y.npy" as its data "x.npy" now and then under load; that rank
 * failed at start and its stage peers hung in their first collective. */
typedef struct path_probe {
  pthread_barrier_t *all;
  bool kept;
} path_probe;

static void *probe_paths(void *arg) {
  path_probe *pr = arg;
  const char *x = synth_path("x.npy");
  pthread_barrier_wait(pr->all); /* every thread has its "x.npy" ... */
  (void)synth_path("y.npy");
  pthread_barrier_wait(pr->all); /* ... and then asked for another path */
  size_t n = strlen(x);
  pr->kept = n >= 6 && strcmp(x + n - 6, "/x.npy") == 0;
  return NULL;
}

Test(pipeline, each_rank_thread_keeps_its_config_paths, .timeout = 60) {
  pthread_barrier_t all;
  path_probe pr[8];
  cr_assert_eq(pthread_barrier_init(&all, NULL, 8), 0);
  for (int i = 0; i < 8; i++)
    pr[i] = (path_probe){&all, false};
  pr_threads(8, probe_paths, pr, sizeof *pr);
  pthread_barrier_destroy(&all);
  for (int i = 0; i < 8; i++)
    cr_assert(pr[i].kept, "thread %d's \"x.npy\" was overwritten by another thread's path", i);
}

/* Planning `stages` x `micro` for g on 4 devices fails naming `want`. */
static void refused(const ty_graph *g, int stages, int micro, const char *want) {
  pipe_job j = pipe_job_make(1, 4, stages, micro, 1, NULL);
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan_request req = pipe_request(&j);
  ty_plan *p = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_make_plan(g, &c, true, &req, &p, err, sizeof err), TY_EINVAL,
               "%d stages x %d micro-batches: %s", stages, micro, err);
  cr_assert(strstr(err, want), "%d stages x %d micro-batches: %s", stages, micro, err);
  ty_train_config_close(&c);
}

/* Labels computed from another stage's activations (labels + 0 x ArgMax
 * of fc1's output, fc1 on stage 0): the global batch's denominator of a
 * weighted mean loss cannot be computed from the data before the step,
 * so the ranks stop at start naming the node. */
Test(pipeline, a_weighted_mean_over_labels_of_another_stage_is_refused, .timeout = 60) {
  synth_mlp o = {.in = 8,
                 .hidden = 32,
                 .out = 4,
                 .seed = 5,
                 .deep = 3,
                 .weighted_loss = true,
                 .argmax_labels = true};
  ty_graph *g = synth_mlp_build(&o);
  synth_ignored_labels();
  pipe_job j = pipe_job_make(1, 4, 4, 4, 1, NULL);
  j.weighted = true;
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan *p = pipe_plan_for(g, &c, &j);
  ty_train_parallel par = {.plan = p, .send = mt_send, .recv = mt_recv, .flush = mt_flush};
  ty_train *t = NULL;
  FILE *log = tmpfile();
  ty_train_opts to = {.rank = 0, .world_size = 4, .parallel = &par, .log = log};
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_train_create(g, &c, &to, &t, err, sizeof err), TY_EUNSUPPORTED, "%s", err);
  cr_assert(strstr(err, "plan: the labels or weights of a weighted mean loss are computed by node "
                        "\"fc1\" on stage 0, not on the loss's stage 3"),
            "%s", err);
  fclose(log);
  ty_plan_destroy(p);
  ty_train_config_close(&c);
  ty_graph_destroy(g);
}

Test(pipeline, bad_pipelines_are_refused, .timeout = 60) {
  synth_mlp o = {.in = 8, .hidden = 32, .out = 4, .seed = 5};
  ty_graph *shallow = synth_mlp_build(&o); /* two layers */
  ty_graph *g = model();
  refused(shallow, 4, 4, "pipeline_stages: 4 stages but the graph has 2 layers");
  refused(g, 4, 3, "micro_batches: 3 does not divide the batch 32");
  refused(g, 3, 4, "pipeline_stages: 3 stages do not divide the 4 devices");
  /* A plan file for another batch or world stops a rank before any step. */
  pipe_job j = pipe_job_make(1, 4, 4, 4, 1, NULL);
  ty_train_config c;
  pipe_config(&c, &j);
  ty_plan *p = pipe_plan_for(g, &c, &j);
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
