/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/shard: every rank of a plan runs its local graph (in
 * threads, through tests' in-process mesh transport) forward and backward,
 * and the loss and the gradients, summed over the axes the shard names and
 * put together from each rank's slice, equal single-process ones on the
 * global batch. Plans: data, tensor (Megatron), data x tensor grids and
 * whatever the search picks, on 1x2, 2x1, 2x2 and 1x4 meshes, for an MLP
 * and a BERT block (reshapes to heads, transposes, softmax, layer norm),
 * a CNN with BatchNormalization, LRN, MVN and GridSample, torch's GELU
 * (one value two readers share, moved once), and tensors
 * built from the batch size (ConstantOfShape, Expand, Tile, Range).
 * Integer values a reader wants in a layout only a collective makes (moved
 * as float), an INT64 input its readers want in several layouts (token ids
 * for an embedding and a padding mask), and values the loss does not
 * differentiate (ArgMax's scores, an output head the loss does not read:
 * forward routes only). Plus the routes themselves (all-gather,
 * reduce-scatter, all-to-all and the generic fallback) and the refusals
 * (a weighted mean loss rewritten for micro-batches: test_wmean.c), and
 * the graph sharded for evaluation (BatchNormalization on its running
 * statistics, dropped weights left dropped). The
 * harness that runs the ranks and compares them is equiv.c.
 */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops/plan/plan.h"
#include "ops/shard/shard.h"
#include "tests/unit/ops/plan/models.h"
#include "tests/unit/ops/shard/equiv.h"

void openblas_set_num_threads(int num_threads);

/* x [B, 8] -> MatMul 8x16 -> BatchNormalization -> Relu -> MatMul 16x4,
 * mean squared error against y: a BatchNormalization whose batch data
 * parallelism splits. */
static ty_graph *model_bn(void) {
  ty_graph *g;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 15);
  int v[12], idx;
  const char *names[] = {"x", "y", "w1", "h", "scale", "bias", "mean", "var", "n", "r", "w2", "o"};
  ty_shape in = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 8}),
           out = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 4});
  const ty_shape shapes[] = {in,
                             out,
                             ty_shape_make(2, (int64_t[]){8, 16}),
                             ty_shape_unknown(),
                             ty_shape_make(1, (int64_t[]){16}),
                             ty_shape_make(1, (int64_t[]){16}),
                             ty_shape_make(1, (int64_t[]){16}),
                             ty_shape_make(1, (int64_t[]){16}),
                             ty_shape_unknown(),
                             ty_shape_unknown(),
                             ty_shape_make(2, (int64_t[]){16, 4}),
                             ty_shape_unknown()};
  for (int i = 0; i < 12; i++) {
    cr_assert_eq(ty_graph_add_value(g, names[i], TY_DTYPE_F32,
                                    shapes[i].rank >= 0 ? &shapes[i] : NULL, &v[i]),
                 0);
    ty_tensor *t;
    if (i < 2)
      cr_assert_eq(ty_graph_mark_input(g, v[i]), 0);
    else if (shapes[i].rank >= 0) {
      cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &shapes[i], &t), 0);
      for (int64_t k = 0; k < ty_tensor_numel(t); k++)
        ty_tensor_f32(t)[k] = i == 7 ? 1.0f : 0.0f;
      cr_assert_eq(ty_graph_set_initializer(g, v[i], t), 0);
    }
  }
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MATMUL, "mm1", (int[]){v[0], v[2]}, 2, &v[3], 1, &idx),
               0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_BATCH_NORM, "bn", (int[]){v[3], v[4], v[5], v[6], v[7]},
                                 5, &v[8], 1, &idx),
               0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_RELU, "relu", &v[8], 1, &v[9], 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MATMUL, "mm2", (int[]){v[9], v[10]}, 2, &v[11], 1, &idx),
               0);
  int d, sq, loss;
  cr_assert_eq(ty_graph_add_value(g, "diff", TY_DTYPE_F32, NULL, &d), 0);
  cr_assert_eq(ty_graph_add_value(g, "sq", TY_DTYPE_F32, NULL, &sq), 0);
  cr_assert_eq(ty_graph_add_value(g, "loss", TY_DTYPE_F32, NULL, &loss), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SUB, "diff", (int[]){v[11], v[1]}, 2, &d, 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_MUL, "sq", (int[]){d, d}, 2, &sq, 1, &idx), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_REDUCE_MEAN, "loss", &sq, 1, &loss, 1, &idx), 0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0), 0);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* A value and, for weights, its initializer (filled by randomize). */
static int value(ty_graph *g, const char *name, int rank, const int64_t *dims, bool input,
                 bool weight) {
  ty_shape s = ty_shape_make(rank, dims);
  int id;
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_F32, rank >= 0 ? &s : NULL, &id), 0);
  ty_tensor *t;
  if (input) cr_assert_eq(ty_graph_mark_input(g, id), 0);
  if (weight) {
    cr_assert_eq(ty_tensor_create(TY_DTYPE_F32, &s, &t), 0);
    cr_assert_eq(ty_graph_set_initializer(g, id, t), 0);
  }
  return id;
}

static int op(ty_graph *g, ty_op o, const char *name, const int *in, int n_in, int *idx) {
  int y = value(g, name, -1, NULL, false, false);
  cr_assert_eq(ty_graph_add_node(g, o, name, in, n_in, &y, 1, idx), 0);
  return y;
}

/* An int64 constant initializer named `name`: of rank 0 (v[0]) or 1 (n
 * values). */
static int int_const(ty_graph *g, const char *name, int rank, const int64_t *v, int n) {
  ty_shape s = ty_shape_make(rank, (int64_t[]){n});
  ty_tensor *t;
  int id;
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_I64, &s, v, (size_t)(rank ? n : 1) * sizeof *v, &t),
               0);
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_I64, &s, &id), 0);
  cr_assert_eq(ty_graph_set_initializer(g, id, t), 0);
  return id;
}

static int ints(ty_graph *g, const char *name, const int64_t *v, int n) {
  return int_const(g, name, 1, v, n);
}

static int int_scalar(ty_graph *g, const char *name, int64_t v) {
  return int_const(g, name, 0, &v, 1);
}

/* The mean of out squared as the graph's loss; shapes inferred. */
static ty_graph *mse_loss(ty_graph *g, int out) {
  int idx;
  int sq = op(g, TY_OP_MUL, "sq", (int[]){out, out}, 2, &idx);
  int loss = op(g, TY_OP_REDUCE_MEAN, "loss", &sq, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0), 0);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

/* x [B, 2, 6, 6] -> Conv 2->4 3x3 pad 1 -> Relu -> MaxPool 2 -> Flatten ->
 * MatMul 36x4 -> squared error: convolution's channel and batch splits,
 * pooling and the flatten behind them. */
static ty_graph *model_cnn(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 4, (int64_t[]){TY_DIM_BATCH, 2, 6, 6}, true, false);
  int y = value(g, "y", 2, (int64_t[]){TY_DIM_BATCH, 4}, true, false);
  int w = value(g, "conv.w", 4, (int64_t[]){4, 2, 3, 3}, false, true);
  int b = value(g, "conv.b", 1, (int64_t[]){4}, false, true);
  int fw = value(g, "fc.w", 2, (int64_t[]){36, 4}, false, true);
  int c = op(g, TY_OP_CONV, "conv", (int[]){x, w, b}, 3, &idx);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)idx, "kernel_shape", (int64_t[]){3, 3}, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)idx, "pads", (int64_t[]){1, 1, 1, 1}, 4), 0);
  int r = op(g, TY_OP_RELU, "relu", &c, 1, &idx);
  int p = op(g, TY_OP_MAX_POOL, "pool", &r, 1, &idx);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)idx, "kernel_shape", (int64_t[]){2, 2}, 2), 0);
  cr_assert_eq(ty_graph_node_set_ints(g, (size_t)idx, "strides", (int64_t[]){2, 2}, 2), 0);
  int f = op(g, TY_OP_FLATTEN, "flatten", &p, 1, &idx);
  int o = op(g, TY_OP_MATMUL, "fc", (int[]){f, fw}, 2, &idx);
  int d = op(g, TY_OP_SUB, "diff", (int[]){o, y}, 2, &idx);
  return mse_loss(g, d);
}

TestSuite(shard, .init = NULL);

Test(shard, convolution_every_mode_matches_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_cnn();
  eq_randomize(g, 5);
  eq_each_mode(g, 1, 2, 4);
  eq_each_mode(g, 2, 2, 4);
  ty_graph_destroy(g);
}

/* Batch statistics summed over the ranks: the same normalisation and
 * gradients as one process, with the plan's batch_stats all-reduce. */
Test(shard, batch_norm_over_a_split_batch_matches_single_process, .timeout = 60) {
  openblas_set_num_threads(1);
  ty_graph *g = model_bn();
  eq_randomize(g, 4);
  for (int slow = 0; slow < 2; slow++) {
    ty_plan *p = eq_plan(g, 2, 2, 8, TY_PLAN_MODE_DATA, slow);
    bool stats = false;
    for (size_t i = 0; i < p->n_collectives; i++)
      stats |= strcmp(p->collectives[i].tensor, "bn:batch_stats") == 0;
    cr_assert(stats, "the data-parallel plan does not sum the batch statistics");
    eq_expect_equivalent(g, p, false);
    ty_plan_destroy(p);
  }
  ty_plan *p = eq_plan(g, 1, 4, 8, TY_PLAN_MODE_AUTO, true);
  eq_expect_equivalent(g, p, false);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

static size_t count_ops(const ty_graph *g, ty_op o) {
  size_t n = 0;
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++)
    n += ty_graph_node_at(g, i)->op == o;
  return n;
}

/* Rank r of plan p sharded for inference from g, whose named values'
 * data is dropped first; the shard, or NULL with the error in err. */
static ty_shard *inference_shard(ty_graph *g, const ty_plan *p, int r, const char *const *drop,
                                 size_t n_drop, char *err, size_t err_len) {
  for (size_t i = 0; i < n_drop; i++)
    cr_assert_eq(ty_graph_drop_init_data(g, ty_graph_find_value(g, drop[i])), 0);
  ty_shard *s = NULL;
  int rc = ty_shard_create_inference(g, ty_graph_find_value(g, "loss"), p, r, err, err_len, &s);
  cr_assert_eq(rc == 0, s != NULL);
  return s;
}

/* For evaluation (ty_shard_create_inference) a BatchNormalization over a
 * split batch stays one node, reading the running statistics, where
 * training sums the batch's statistics; initializers whose data was
 * dropped stay dropped, at the rank's local shape, for the caller to
 * bind its blocks. */
Test(shard, inference_keeps_batch_norm_one_node_and_dropped_weights_dropped, .timeout = 60) {
  ty_graph *g = model_bn();
  eq_randomize(g, 4);
  ty_plan *p = eq_plan(g, 2, 2, 8, TY_PLAN_MODE_GRID, true);
  char err[TY_ERR_LEN] = "";
  ty_shard *train = NULL;
  cr_assert_eq(ty_shard_create(g, ty_graph_find_value(g, "loss"), p, 3, err, sizeof err, &train), 0,
               "%s", err);
  cr_assert_eq(count_ops(ty_shard_graph(train), TY_OP_BATCH_NORM), 0);
  const char *drop[] = {"w1", "mean", "var", "w2"};
  ty_shard *s = inference_shard(g, p, 3, drop, TY_ARRAY_LEN(drop), err, sizeof err);
  cr_assert_not_null(s, "%s", err);
  const ty_graph *local = ty_shard_graph(s);
  cr_assert_eq(count_ops(local, TY_OP_BATCH_NORM), 1);
  for (size_t i = 0; i < TY_ARRAY_LEN(drop); i++) {
    int v = ty_graph_find_value(g, drop[i]);
    const ty_graph_value *lv = ty_graph_value_at(local, v);
    ty_shape full;
    int64_t start[TY_MAX_RANK], len[TY_MAX_RANK];
    cr_assert_eq(ty_shard_slice_of(s, v, 3, &full, start, len), 0);
    cr_assert(lv->init_dropped, "%s holds data", drop[i]);
    for (int d = 0; d < full.rank; d++)
      cr_assert_eq(lv->shape.dims[d], len[d], "%s dim %d", drop[i], d);
  }
  ty_shard_destroy(s);
  ty_shard_destroy(train);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* A dropped initializer a node reads in another layout than it is held
 * in has no data to copy for that reader: refused, naming both. */
Test(shard, a_dropped_initializer_read_in_another_layout_is_refused, .timeout = 60) {
  ty_graph *g = model_bn();
  int idx, mean = ty_graph_find_value(g, "mean"), peek;
  cr_assert_eq(ty_graph_add_value(g, "peek", TY_DTYPE_F32, NULL, &peek), 0);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_IDENTITY, "peek", &mean, 1, &peek, 1, &idx), 0);
  cr_assert_eq(ty_graph_mark_output(g, peek), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  ty_plan *p = eq_plan(g, 1, 2, 8, TY_PLAN_MODE_TENSOR, true);
  ty_plan_layout *in = &p->ops[idx].inputs[0], *out = &p->ops[idx].outputs[0];
  in->dim_axes[0] = out->dim_axes[0] = in->dim_axes[0] ? 0 : 2; /* mesh 1x2: axis 1 */
  const char *drop[] = {"mean"};
  ty_shard *s = inference_shard(g, p, 0, NULL, 0, err, sizeof err); /* data: a copy */
  cr_assert_not_null(s, "%s", err);
  ty_shard_destroy(s);
  s = inference_shard(g, p, 0, drop, 1, err, sizeof err);
  cr_assert_null(s);
  cr_assert(strstr(err, "reads \"mean\" in another layout than it is held in, and its data is "
                        "bound at run time"),
            "%s", err);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

/* LRN split on the batch or a spatial dim, MVN on what it does not
 * reduce, GridSample on the batch of its input and grid together. */
Test(shard, local_norms_and_grid_sample_every_mode_match_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  for (int mvn_batch = 0; mvn_batch < 2; mvn_batch++) {
    ty_graph *g = model_local_norms(4, mvn_batch);
    cr_assert_not_null(g);
    eq_randomize(g, 6);
    eq_each_mode(g, 1, 2, 4);
    eq_each_mode(g, 2, 2, 4);
    ty_graph_destroy(g);
  }
}

Test(shard, mlp_every_mode_matches_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_mlp(3, 32);
  cr_assert_not_null(g);
  eq_randomize(g, 1);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 1, 4, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* Batches and widths the ranks do not divide split ceil / floor (8 on 3:
 * 3, 3, 2; 10 on 2x3: 5, 5, then 2, 2, 1; a BERT block's 16 and 32 wide
 * weights on 3): the rows each rank reads, a mean's scale,
 * BatchNormalization's counts and the padded collectives of the routes
 * follow each rank's real block, so every mode matches one process as
 * even splits do. The data-parallel plan splits the batch. */
Test(shard, uneven_batch_splits_every_mode_match_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_mlp(3, 32);
  eq_randomize(g, 1);
  eq_each_mode(g, 1, 3, 8);
  eq_each_mode(g, 2, 3, 10);
  ty_graph_destroy(g);
  g = model_cnn();
  eq_randomize(g, 5);
  eq_each_mode(g, 1, 3, 7);
  ty_graph_destroy(g);
  g = model_transformer(1, 4, 16, 2, 32, 0); /* widths of 16 and 32 on 3: weights split too */
  eq_randomize(g, 2);
  eq_each_mode(g, 1, 3, 4);
  ty_graph_destroy(g);
  g = model_bn();
  eq_randomize(g, 4);
  ty_plan *p = eq_plan(g, 1, 3, 8, TY_PLAN_MODE_DATA, false);
  cr_assert(strstr(p->ops[0].strategy, "batch split"), "%s", p->ops[0].strategy);
  eq_expect_equivalent(g, p, false);
  /* Refused: a block with no row (a plan file's). */
  char err[TY_ERR_LEN] = "";
  ty_shard *sh = NULL;
  p->batch = 2;
  cr_assert_eq(ty_shard_create(g, TY_NO_VALUE, p, 0, err, sizeof err, &sh), TY_EINVAL);
  cr_assert(strstr(err, "plan: value \"x\" dim 0 (2) cannot split into 3 parts (a rank would "
                        "hold none of it)"),
            "%s", err);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}

Test(shard, bert_block_every_mode_matches_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_transformer(1, 4, 16, 2, 32, 0);
  cr_assert_not_null(g);
  eq_randomize(g, 2);
  eq_each_mode(g, 1, 2, 4);
  eq_each_mode(g, 2, 2, 4);
  ty_graph_destroy(g);
}

/* torch's GELU reads fc1's output in Div and Mul. With fc1 row split (its
 * 1 column cannot split in 2), the plan all-reduces the partial sums once, at
 * the Div; the Mul reads the same TyExtern's result, and backward sums
 * both readers' gradients before its one route back. A Shape of fc1's
 * output read before the Div reads no element, so it owns no reshard (the
 * Div would get none). Every mode matches one process. */
Test(shard, a_value_two_readers_share_is_moved_once_and_matches, .timeout = 120) {
  openblas_set_num_threads(1);
  for (int shaped = 0; shaped < 2; shaped++) {
    ty_graph *g = model_gelu_mlp(8, 1, 4, shaped);
    cr_assert_not_null(g);
    eq_randomize(g, 5);
    ty_plan *p = eq_plan(g, 1, 2, 8, TY_PLAN_MODE_TENSOR, true);
    int h = ty_graph_find_value(g, "fc1"), moved = 0,
        div = ty_graph_value_at(g, ty_graph_find_value(g, "fc1.gelu.div"))->producer,
        mul = ty_graph_value_at(g, ty_graph_find_value(g, "fc1.gelu.mul"))->producer;
    cr_assert_neq(p->ops[ty_graph_value_at(g, h)->producer].outputs[0].partial, 0);
    for (size_t c = 0; c < p->n_collectives; c++) {
      const ty_plan_collective *pc = &p->collectives[c];
      cr_assert(pc->value != h || pc->node != mul, "fc1's output moved for the Mul");
      moved += pc->value == h && pc->node == div;
    }
    cr_assert_eq(moved, 1, "fc1's output moved %d times for the Div", moved);
    eq_expect_equivalent(g, p, false);
    ty_plan_destroy(p);
    eq_each_mode(g, 1, 2, 8);
    eq_each_mode(g, 1, 4, 8);
    ty_graph_destroy(g);
  }
}

/* Tensors built from Shape(x)[0]: the ConstantOfShape mask, the Expand
 * and the Tile are made as each rank's block of the global batch (from
 * the plan, not from the local Shape), the replicated Range over the
 * global batch, on 2 and 4 ranks and every mode; each matches one
 * process. */
Test(shard, batch_shaped_tensors_every_mode_match_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_batch_shaped();
  cr_assert_not_null(g);
  eq_randomize(g, 7);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 1, 4, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* An integer tensor built from the batch and split with it, read whole
 * by an op without a sharding rule (CumSum): it is gathered as float (exact
 * for integers up to 2^24) and cast back, so every mode matches one
 * process (it was refused: only float values moved between ranks). */
static ty_graph *model_split_integer(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 2, (int64_t[]){TY_DIM_BATCH, 8}, true, false);
  int w = value(g, "w", 2, (int64_t[]){8, 8}, false, true);
  int h = op(g, TY_OP_MATMUL, "mm", (int[]){x, w}, 2, &idx);
  int shp = op(g, TY_OP_SHAPE, "shape", &h, 1, &idx);
  int ones = op(g, TY_OP_CONSTANT_OF_SHAPE, "ones", &shp, 1, &idx);
  ty_tensor *one;
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_I64, &(ty_shape){.rank = 1, .dims = {1}},
                                     &(int64_t){1}, sizeof(int64_t), &one),
               0);
  cr_assert_eq(ty_graph_node_set_tensor(g, (size_t)idx, "value", one), 0);
  int axis = int_scalar(g, "axis", 1);
  int pos = op(g, TY_OP_CUMSUM, "positions", (int[]){ones, axis}, 2, &idx);
  int posf = op(g, TY_OP_CAST, "positions.float", &pos, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "to", TY_DTYPE_F32), 0);
  int scaled = op(g, TY_OP_MUL, "scaled", (int[]){h, posf}, 2, &idx);
  return mse_loss(g, scaled);
}

Test(shard, a_split_integer_value_read_whole_moves_as_float, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_split_integer();
  eq_randomize(g, 5);
  ty_plan *p = eq_plan(g, 1, 2, 8, TY_PLAN_MODE_DATA, false);
  ty_shard *sh = NULL;
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_shard_create(g, TY_NO_VALUE, p, 0, err, sizeof err, &sh), 0, "%s", err);
  ty_shard_destroy(sh);
  /* the loss the trainer differentiates must be one of g's values */
  int bad = (int)ty_graph_n_values(g);
  cr_assert_eq(ty_shard_create(g, bad, p, 0, err, sizeof err, &sh), TY_EINVAL);
  cr_assert_null(sh);
  char want[80];
  snprintf(want, sizeof want, "shard: loss: value %d is not one of the graph's %d", bad, bad);
  cr_assert(strstr(err, want), "%s", err);
  eq_expect_equivalent(g, p, false);
  ty_plan_destroy(p);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* Token ids [B, 6] read by an embedding (Gather, which splits the batch),
 * by Shape for a ConstantOfShape of ones, compared with 0 for a padding
 * mask, and summed along the sequence by CumSum (no rule: read whole) to
 * weight it: the readers want the INT64 input in different layouts, so it
 * is fed whole and each reader slices it (it was refused: only float
 * inputs could be sliced per reader). */
static ty_graph *model_tokens(void) {
  ty_graph *g;
  int idx, tok;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  ty_shape ts = ty_shape_make(2, (int64_t[]){TY_DIM_BATCH, 6});
  cr_assert_eq(ty_graph_add_value(g, "tokens", TY_DTYPE_I64, &ts, &tok), 0);
  cr_assert_eq(ty_graph_mark_input(g, tok), 0);
  int emb = value(g, "emb", 2, (int64_t[]){5, 8}, false, true);
  int w = value(g, "w", 2, (int64_t[]){8, 4}, false, true);
  int h = op(g, TY_OP_GATHER, "embed", (int[]){emb, tok}, 2, &idx);
  int shp = op(g, TY_OP_SHAPE, "shape", &tok, 1, &idx);
  int ones = op(g, TY_OP_CONSTANT_OF_SHAPE, "ones", &shp, 1, &idx);
  ty_tensor *one;
  cr_assert_eq(ty_tensor_create_from(TY_DTYPE_F32, &(ty_shape){.rank = 1, .dims = {1}}, &(float){1},
                                     sizeof(float), &one),
               0);
  cr_assert_eq(ty_graph_node_set_tensor(g, (size_t)idx, "value", one), 0);
  int z = int_scalar(g, "pad", 0);
  int pad = op(g, TY_OP_EQUAL, "is_pad", (int[]){tok, z}, 2, &idx);
  int padf = op(g, TY_OP_CAST, "is_pad.float", &pad, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "to", TY_DTYPE_F32), 0);
  int keep = op(g, TY_OP_SUB, "keep", (int[]){ones, padf}, 2, &idx);
  int un = ints(g, "axes", (int64_t[]){2}, 1), axis1 = int_scalar(g, "cumsum.axis", 1);
  int cum = op(g, TY_OP_CUMSUM, "token_sum", (int[]){tok, axis1}, 2, &idx);
  int cumf = op(g, TY_OP_CAST, "token_sum.float", &cum, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "to", TY_DTYPE_F32), 0);
  int weighted = op(g, TY_OP_MUL, "weighted", (int[]){keep, cumf}, 2, &idx);
  int keep3 = op(g, TY_OP_UNSQUEEZE, "keep3", (int[]){weighted, un}, 2, &idx);
  int masked = op(g, TY_OP_MUL, "masked", (int[]){h, keep3}, 2, &idx);
  int y = op(g, TY_OP_MATMUL, "proj", (int[]){masked, w}, 2, &idx);
  return mse_loss(g, y);
}

Test(shard, integer_input_read_in_several_layouts_every_mode_matches, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_tokens();
  eq_randomize(g, 9);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* x [B, 8] -> MatMul w -> h; scores MatMul(h, s) read only by ArgMax
 * (whose index picks h's element by GatherElements), and a second output
 * MatMul(h, w2) the loss does not read. Neither the scores nor the second
 * head reach the loss through a differentiable slot, so the planner lists
 * no backward collectives for them; the shard builds forward routes only
 * (it built backward ones and refused the plan as inconsistent). */
static ty_graph *model_argmax_two_heads(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 2, (int64_t[]){TY_DIM_BATCH, 8}, true, false);
  int w = value(g, "w", 2, (int64_t[]){8, 8}, false, true);
  int sw = value(g, "score", 2, (int64_t[]){8, 8}, false, true);
  int w2 = value(g, "w2", 2, (int64_t[]){8, 4}, false, true);
  int h = op(g, TY_OP_MATMUL, "mm", (int[]){x, w}, 2, &idx);
  int sb = value(g, "score.bias", 1, (int64_t[]){8}, false, true);
  int w2b = value(g, "w2.bias", 1, (int64_t[]){4}, false, true);
  int sm = op(g, TY_OP_MATMUL, "scores.mm", (int[]){h, sw}, 2, &idx);
  int sc = op(g, TY_OP_ADD, "scores", (int[]){sm, sb}, 2, &idx);
  int am = op(g, TY_OP_ARG_MAX, "pick", &sc, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 1), 0);
  int picked = op(g, TY_OP_GATHER_ELEMENTS, "picked", (int[]){h, am}, 2, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 1), 0);
  int sq = op(g, TY_OP_MUL, "sq", (int[]){picked, picked}, 2, &idx);
  int hs = op(g, TY_OP_MUL, "hsq", (int[]){h, h}, 2, &idx);
  int a = op(g, TY_OP_REDUCE_MEAN, "a", &sq, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0), 0);
  int b2 = op(g, TY_OP_REDUCE_MEAN, "b", &hs, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0), 0);
  int loss = op(g, TY_OP_ADD, "loss", (int[]){a, b2}, 2, &idx);
  int o1 = op(g, TY_OP_MATMUL, "head2.mm", (int[]){h, w2}, 2, &idx);
  int out1 = op(g, TY_OP_ADD, "head2", (int[]){o1, w2b}, 2, &idx);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  cr_assert_eq(ty_graph_mark_output(g, out1), 0);
  char err[TY_ERR_LEN] = "";
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  return g;
}

Test(shard, values_the_loss_does_not_differentiate_move_forward_only, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_argmax_two_heads();
  eq_randomize(g, 11);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* x [B, 6] -> MatMul 6x8 -> h; TopK(h, 2) on axis 1, its indices as
 * floats (zoo4's topk(...).indices.float()) concatenated to h -> MatMul
 * 10x4; mean square. No gradient reaches the indices, but the autodiff
 * still differentiates the collective that moves their float copy, so the
 * shard's backward call for it must give zeros, not fail. */
static ty_graph *model_topk_indices(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 2, (int64_t[]){TY_DIM_BATCH, 6}, true, false);
  int w = value(g, "w", 2, (int64_t[]){6, 8}, false, true);
  int w2 = value(g, "w2", 2, (int64_t[]){10, 4}, false, true);
  int h = op(g, TY_OP_MATMUL, "h", (int[]){x, w}, 2, &idx);
  int top[2] = {value(g, "top.values", -1, NULL, false, false),
                value(g, "top.indices", -1, NULL, false, false)};
  cr_assert_eq(ty_graph_add_node(g, TY_OP_TOP_K, "top", (int[]){h, ints(g, "k", (int64_t[]){2}, 1)},
                                 2, top, 2, &idx),
               0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 1), 0);
  int fi = op(g, TY_OP_CAST, "indices.float", &top[1], 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "to", TY_DTYPE_F32), 0);
  int cat = op(g, TY_OP_CONCAT, "features", (int[]){h, fi}, 2, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 1), 0);
  return mse_loss(g, op(g, TY_OP_MATMUL, "out", (int[]){cat, w2}, 2, &idx));
}

Test(shard, integer_outputs_read_as_floats_every_mode_match_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_topk_indices();
  eq_randomize(g, 13);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* x [B, 4, 6] -> MatMul 6x12 -> Split into q, k, v [B, 4, 4] (axis 2);
 * q * k reshaped to [B, 4, 2, 2] by a target built from its Shape
 * (Slice [0:2] then Concat [2, 2]), summed over the last axis and divided
 * by Shape(q * k)[0] (the global batch: a rank holding a slice of it must
 * still read the whole); times v's Slice [0:2] on axis 2; mean square. The
 * attention block's Split / Slice / Shape pattern (nanoGPT's c_attn). */
static ty_graph *model_split_slice_shape(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 3, (int64_t[]){TY_DIM_BATCH, 4, 6}, true, false);
  int w = value(g, "w", 2, (int64_t[]){6, 12}, false, true);
  int h = op(g, TY_OP_MATMUL, "c_attn", (int[]){x, w}, 2, &idx);
  int parts = ints(g, "split.sizes", (int64_t[]){4, 4, 4}, 3), qkv[3];
  for (int i = 0; i < 3; i++)
    qkv[i] = value(g, (const char *[]){"q", "k", "v"}[i], -1, NULL, false, false);
  cr_assert_eq(ty_graph_add_node(g, TY_OP_SPLIT, "split", (int[]){h, parts}, 2, qkv, 3, &idx), 0);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 2), 0);
  int qk = op(g, TY_OP_MUL, "qk", (int[]){qkv[0], qkv[1]}, 2, &idx);
  int shp = op(g, TY_OP_SHAPE, "shape", &qk, 1, &idx);
  int zero = ints(g, "zero", (int64_t[]){0}, 1), two = ints(g, "two", (int64_t[]){2}, 1);
  int lead = op(g, TY_OP_SLICE, "lead", (int[]){shp, zero, two}, 3, &idx);
  int tail = ints(g, "tail", (int64_t[]){2, 2}, 2);
  int target = op(g, TY_OP_CONCAT, "target", (int[]){lead, tail}, 2, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 0), 0);
  int r = op(g, TY_OP_RESHAPE, "heads", (int[]){qk, target}, 2, &idx);
  int last = ints(g, "last", (int64_t[]){3}, 1);
  int rs = op(g, TY_OP_REDUCE_SUM, "sum", (int[]){r, last}, 2, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0), 0);
  int batch = op(g, TY_OP_GATHER, "batch", (int[]){shp, zero}, 2, &idx);
  int batchf = op(g, TY_OP_CAST, "batch.float", &batch, 1, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "to", TY_DTYPE_F32), 0);
  int scaled = op(g, TY_OP_DIV, "scaled", (int[]){rs, batchf}, 2, &idx);
  int axes = ints(g, "axes", (int64_t[]){2}, 1);
  int vs = op(g, TY_OP_SLICE, "v.slice", (int[]){qkv[2], zero, two, axes}, 4, &idx);
  int out = op(g, TY_OP_MUL, "out", (int[]){scaled, vs}, 2, &idx);
  return mse_loss(g, out);
}

/* Split and Slice split on the dims they do not cut, and Shape reads any
 * block of its input: under the slow plans that split every op, the plan
 * moves nothing for the Shape nodes' inputs, Split and Slice run split,
 * and every mode on 2 and 4 ranks matches one process (the local Shape
 * gives the global shape). */
Test(shard, split_slice_and_shape_every_mode_match_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_split_slice_shape();
  eq_randomize(g, 11);
  ty_plan *p = eq_plan(g, 1, 2, 8, TY_PLAN_MODE_TENSOR, true);
  for (size_t i = 0; i < p->n_collectives; i++) {
    const ty_plan_collective *c = &p->collectives[i];
    cr_assert(c->node < 0 || ty_graph_node_at(g, (size_t)c->node)->op != TY_OP_SHAPE,
              "the plan moves %s for a Shape", c->tensor);
  }
  for (size_t n = 0; n < p->n_ops; n++)
    cr_assert(!p->ops[n].fallback, "%s runs replicated: %s", p->ops[n].name, p->ops[n].note);
  ty_plan_destroy(p);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* x [B, 4, 6] -> MatMul 6x8 -> h; h[:, 0:0] (an empty [B, 0, 8]) concatenated
 * back onto h, and Shape(h)[3:] (an empty INT64 [0]) concatenated onto a
 * Reshape's target: the values PyTorch exports for `torch.cat([h, h[:, :0]])`
 * and for an in-place slice assignment (`mask[:, 0] = False`, whose ScatterND
 * indices take shape[2:] of a 2-D shape). Values with a dim of 0 elements. */
static ty_graph *model_empty_values(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 3, (int64_t[]){TY_DIM_BATCH, 4, 6}, true, false);
  int w = value(g, "w", 2, (int64_t[]){6, 8}, false, true);
  int h = op(g, TY_OP_MATMUL, "h", (int[]){x, w}, 2, &idx);
  int zero = ints(g, "zero", (int64_t[]){0}, 1), one = ints(g, "one", (int64_t[]){1}, 1);
  int empty = op(g, TY_OP_SLICE, "empty", (int[]){h, zero, zero, one}, 4, &idx);
  int cat = op(g, TY_OP_CONCAT, "cat", (int[]){h, empty}, 2, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 1), 0);
  int shp = op(g, TY_OP_SHAPE, "shape", &cat, 1, &idx);
  int three = ints(g, "three", (int64_t[]){3}, 1), end = ints(g, "end", (int64_t[]){INT64_MAX}, 1);
  int lead = op(g, TY_OP_SLICE, "lead", (int[]){shp, zero, three}, 3, &idx);
  int none = op(g, TY_OP_SLICE, "none", (int[]){shp, three, end}, 3, &idx);
  int target = op(g, TY_OP_CONCAT, "target", (int[]){lead, none}, 2, &idx);
  cr_assert_eq(ty_graph_node_set_int(g, (size_t)idx, "axis", 0), 0);
  int r = op(g, TY_OP_RESHAPE, "reshape", (int[]){cat, target}, 2, &idx);
  return mse_loss(g, r);
}

/* A value with a dim of 0 elements is held whole (no layout splits a dim
 * into blocks it does not have): every mode shards such a model and
 * matches one process, where a dim of 0 "split" into 1 part used to be
 * refused ("dim 1 (0) cannot split into 1 parts"). */
Test(shard, empty_values_every_mode_match_single_process, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_empty_values();
  eq_randomize(g, 12);
  eq_each_mode(g, 1, 2, 8);
  eq_each_mode(g, 2, 2, 8);
  ty_graph_destroy(g);
}

/* x [B, 4, 6] -> MatMul 6x8 -> h; h + Unsqueeze(mask) -> Softmax over the
 * last axis -> squared error: mask [4, 8] a float initializer the
 * config leaves frozen (an attention mask buffer, a causal one as
 * nn.MultiheadAttention unsqueezes it). */
static ty_graph *model_frozen_mask(void) {
  ty_graph *g;
  int idx;
  cr_assert_eq(ty_graph_create(&g), 0);
  ty_graph_set_opset(g, 13);
  int x = value(g, "x", 3, (int64_t[]){TY_DIM_BATCH, 4, 6}, true, false);
  int w = value(g, "w", 2, (int64_t[]){6, 8}, false, true);
  int mask = value(g, "mask", 2, (int64_t[]){4, 8}, false, true);
  int h = op(g, TY_OP_MATMUL, "h", (int[]){x, w}, 2, &idx);
  int zero = ints(g, "zero", (int64_t[]){0}, 1);
  int u = op(g, TY_OP_UNSQUEEZE, "mask.unsqueeze", (int[]){mask, zero}, 2, &idx);
  int a = op(g, TY_OP_ADD, "masked", (int[]){h, u}, 2, &idx);
  int sm = op(g, TY_OP_SOFTMAX, "softmax", &a, 1, &idx);
  return mse_loss(g, sm);
}

/* A float initializer the request leaves out of req.trained (config.frozen)
 * moves forward only, as the planner plans it: the shard builds no
 * backward route for what depends on it alone, where it used to want
 * one the plan does not list ("its collectives lead to layout [R,S1,R],
 * the reader wants [R,R,R] (an inconsistent plan)"). */
Test(shard, a_frozen_initializer_moves_forward_only, .timeout = 120) {
  openblas_set_num_threads(1);
  ty_graph *g = model_frozen_mask();
  eq_randomize(g, 13);
  static const ty_plan_mode modes[] = {TY_PLAN_MODE_AUTO, TY_PLAN_MODE_DATA, TY_PLAN_MODE_TENSOR,
                                       TY_PLAN_MODE_GRID};
  for (size_t m = 0; m < TY_ARRAY_LEN(modes); m++)
    for (int slow = 0; slow < 2; slow++) {
      ty_plan_request r;
      ty_plan_request_init(&r);
      if (slow) {
        r.cluster.device_flops = 1e6;
        r.cluster.intra_latency_s = r.cluster.inter_latency_s = r.cluster.launch_s = 1e-9;
      }
      const char *trained[] = {"w"};
      r.trained = trained;
      r.n_trained = 1;
      r.batch = 8;
      r.cluster.nodes = modes[m] == TY_PLAN_MODE_GRID ? 2 : 1;
      r.cluster.devices_per_node = 2;
      r.mode = modes[m];
      char err[TY_ERR_LEN] = "";
      ty_plan *p = NULL;
      cr_assert_eq(ty_plan_search(g, &r, err, sizeof err, &p), 0, "%s", err);
      cr_assert_eq(p->n_params, 1);
      eq_expect_equivalent(g, p, false);
      ty_plan_destroy(p);
    }
  ty_graph_destroy(g);
}

Test(shard, fused_kernels_around_extern_nodes, .timeout = 60) {
  openblas_set_num_threads(1);
  ty_graph *g = model_mlp(2, 16);
  eq_randomize(g, 3);
  ty_plan *p = eq_plan(g, 1, 2, 4, TY_PLAN_MODE_TENSOR, true);
  eq_expect_equivalent(g, p, true);
  ty_plan_destroy(p);
  ty_graph_destroy(g);
}
