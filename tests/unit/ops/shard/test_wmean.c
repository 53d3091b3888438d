/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Unit tests for ops/shard's copy of a graph for micro-batches
 * (ty_shard_split_weighted_means, wmean.c): a class-weighted mean loss
 * summed over the global batch's weights, a sum over the batch scaled for
 * the loss only (a metric output reads it unscaled), and the refusals.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "ops/graph.h"
#include "ops/shard/shard.h"
#include "tests/unit/ops/plan/models.h"

/* A node of op o named name on inputs in: its output's value id. */
static int op(ty_graph *g, ty_op o, const char *name, const int *in, int n_in, int *idx) {
  int y;
  cr_assert_eq(ty_graph_add_value(g, name, TY_DTYPE_F32, NULL, &y), 0);
  cr_assert_eq(ty_graph_add_node(g, o, name, in, n_in, &y, 1, idx), 0);
  return y;
}

/* A pipeline's or accumulation's copy of a class-weighted mean needs the
 * class count to sum the label weights: from the scores, else from an
 * initializer's weights; with neither it is refused naming the node. */
Test(shard, a_weighted_mean_without_a_class_count_is_refused_naming_the_node) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = model_nll(0, true), *out = NULL;
  int loss = ty_graph_find_value(g, "nll");
  cr_assert_eq(ty_shard_split_weighted_means(g, loss, 2.0, &out, err, sizeof err), 0, "%s", err);
  cr_assert_neq(ty_graph_find_value(out, "nll.weight_sum"), TY_NO_VALUE);
  ty_graph_destroy(out);
  cr_assert_eq(ty_shard_split_weighted_means(g, 99, 2.0, &out, err, sizeof err), TY_EINVAL);
  cr_assert(strstr(err, "loss: value 99 is not one of the graph's"), "%s", err);
  ty_graph_destroy(g);
  g = model_nll(0, false);
  cr_assert_eq(ty_shard_split_weighted_means(g, TY_NO_VALUE, 2.0, &out, err, sizeof err),
               TY_EUNSUPPORTED);
  cr_assert(strstr(err, "node \"nll\" (NegativeLogLikelihoodLoss): a class-weighted mean over a "
                        "split batch or micro-batches needs the class count"),
            "%s", err);
  ty_graph_destroy(g);
}

/* A sum over the batch that only a metric output reads (x.sum() beside
 * the loss nll) is not the loss: the copy scales it by k only when every
 * output counts as a loss (TY_NO_VALUE), not when the loss is named; one
 * the loss reads too is scaled, and a metric reads it unscaled. */
Test(shard, a_sum_only_a_metric_reads_is_not_scaled) {
  char err[TY_ERR_LEN] = "";
  ty_graph *g = model_nll(4, true), *out = NULL;
  int idx, x = ty_graph_find_value(g, "x");
  cr_assert_eq(ty_graph_mark_output(g, op(g, TY_OP_REDUCE_SUM, "x_sum", &x, 1, &idx)), 0);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  for (int named = 0; named < 2; named++) {
    int loss = named ? ty_graph_find_value(g, "nll") : TY_NO_VALUE;
    cr_assert_eq(ty_shard_split_weighted_means(g, loss, 2.0, &out, err, sizeof err), 0, "%s", err);
    bool scaled = ty_graph_find_value(out, "x_sum.micro_batch_sum") != TY_NO_VALUE;
    cr_assert(scaled == !named, "loss %s: x_sum %s", named ? "named" : "every output",
              scaled ? "scaled" : "not scaled");
    ty_graph_destroy(out);
  }
  /* the loss nll + x_sum, a metric sqrt(x_sum): x_sum is scaled for the
   * loss, and the metric reads it as it was before the scale */
  int nll = ty_graph_find_value(g, "nll"), xs = ty_graph_find_value(g, "x_sum");
  int loss = op(g, TY_OP_ADD, "total", (int[]){nll, xs}, 2, &idx);
  int root = op(g, TY_OP_SQRT, "root", &xs, 1, &idx);
  cr_assert_eq(ty_graph_mark_output(g, loss), 0);
  cr_assert_eq(ty_graph_mark_output(g, root), 0);
  cr_assert_eq(ty_graph_infer_shapes(g, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_shard_split_weighted_means(g, loss, 2.0, &out, err, sizeof err), 0, "%s", err);
  int unscaled = ty_graph_find_value(out, "x_sum.micro_batch_sum");
  cr_assert_neq(unscaled, TY_NO_VALUE, "x_sum is scaled for the loss");
  const ty_graph_value *r = ty_graph_value_at(out, root);
  cr_assert_eq(ty_graph_node_at(out, (size_t)r->producer)->inputs[0], unscaled);
  ty_graph_destroy(out);
  ty_graph_destroy(g);
}
