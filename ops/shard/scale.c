/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a rank's partial results add up to one process's (shard_internal.h):
 * a mean over a split batch scaled to the global count, a weighted or
 * ignore_index mean loss as a local sum over the global weight sum
 * (wmean.c builds the nodes; the weight sum's all-reduce is added here),
 * and in a pipeline the micro-batch count a summed loss and the metrics
 * reading it are scaled by. local.c's add_node calls these per node.
 */
#include "ops/shard/shard_internal.h"

#include <stdio.h>
#include <string.h>

/* *out: for reductions that average over a split dim, the scale to the
 * global count; in a pipeline, for a sum over the batch the loss reads,
 * the micro-batch count (the step averages the micro-batches' losses); 1
 * when neither. */
int ty__shard_mean_scale(const builder *b, size_t n, double *out_scale) {
  const ty_shard *s = b->s;
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  int out = gn->outputs[0];
  bool summed = false;
  int rc = s->plan->n_stages > 0 ? ty_plan_summed_loss(b->src, s->loss, gn, &summed) : 0;
  *out_scale = summed ? (double)s->plan->micro_batches : 1.0;
  if (rc != 0 || summed) return rc;
  bool loss = gn->op == TY_OP_SOFTMAX_CE_LOSS || gn->op == TY_OP_NLL_LOSS;
  bool mean = gn->op == TY_OP_REDUCE_MEAN ||
              (loss && strcmp(ty_graph_node_attr_string(gn, "reduction", "mean"), "mean") == 0);
  if (!mean || !s->lay[out].partial) return 0;
  int in = gn->inputs[loss ? 1 : 0]; /* a loss: the labels count */
  ty_shape li = ty__shard_local_of(s, in, &s->plan->ops[n].inputs[loss ? 1 : 0]);
  ty_shape lo = ty__shard_local_of(s, out, &s->lay[out]);
  double local = (double)ty_shape_numel(&li), global = (double)ty_shape_numel(&s->full[in]);
  if (gn->op == TY_OP_REDUCE_MEAN) {
    local /= (double)ty_shape_numel(&lo);
    global /= (double)ty_shape_numel(&s->full[out]);
  }
  *out_scale = local / global;
  return 0;
}

/* out = x * scale, writing value id `out` (the node's own output). The
 * scale is a Constant node, not an initializer: nothing to train or list. */
int ty__shard_add_scale(builder *b, const char *node, int x, double scale, int out) {
  ty_shape vs = ty_shape_make(0, NULL);
  ty_tensor *t;
  char name[300];
  int id, idx, rc = ty_tensor_create(TY_DTYPE_F32, &vs, &t);
  if (rc != 0) return rc;
  ty_tensor_f32(t)[0] = (float)scale;
  snprintf(name, sizeof name, "%s.global_count", node);
  if ((rc = ty_graph_add_value(b->g, name, TY_DTYPE_F32, &vs, &id)) != 0 ||
      (rc = ty_graph_add_node(b->g, TY_OP_CONSTANT, name, NULL, 0, &id, 1, &idx)) != 0) {
    ty_tensor_destroy(t);
    return rc;
  }
  if ((rc = ty_graph_node_set_tensor(b->g, (size_t)idx, "value", t)) != 0) return rc;
  return ty_graph_add_node(b->g, TY_OP_MUL, name, (int[]){x, id}, 2, &out, 1, &idx);
}

/* The mesh axes of more than one device that split a node's batch (its
 * input 0's dim 0). */
unsigned ty__shard_batch_axes(const ty_shard *s, size_t n) {
  const ty_plan_op *o = &s->plan->ops[n];
  unsigned axes = o->n_inputs > 0 && o->inputs[0].rank > 0 ? o->inputs[0].dim_axes[0] : 0;
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (s->plan->mesh[a] <= 1) axes &= ~(1u << a);
  return axes;
}

/* The TyExtern summing a loss's local weight sum d over the batch's
 * axes, forward only: it depends on no parameter. */
static int total_weight(builder *b, const char *node, int d, unsigned axes, int *out) {
  ty__point *pt;
  int rc = ty__shard_add_point(b, &pt);
  if (rc != 0) return rc;
  snprintf(pt->what, sizeof pt->what, "%s%s", node, TY_SHARD_WEIGHT_SUM);
  pt->full = ty_shape_make(0, NULL);
  pt->fwd.start = (ty__order){.rank = 0, .partial = (uint8_t)axes};
  for (int a = 0; a < TY_PLAN_AXES; a++)
    if (axes >> a & 1u) pt->fwd.s[pt->fwd.n++] = (ty__step){TY_PLAN_ALL_REDUCE, (uint8_t)a, -1, -1};
  pt->bwd.start = (ty__order){.rank = 0};
  return ty__shard_add_extern(b, d, &pt->full, pt->what, (int64_t)(b->s->n_points - 1), out);
}

/* Whether node n is a weighted or ignore_index mean loss this rank
 * computes as a sum over a denominator (wmean.c): its batch is split, or
 * the plan's pipeline feeds the denominator of the global batch. */
bool ty__shard_weighted_here(const builder *b, size_t n) {
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  return ty_shard_weighted_mean(gn) && gn->n_outputs > 0 && gn->outputs[0] != TY_NO_VALUE &&
         (b->s->plan->n_stages > 0 || ty_shard_partial_axes(b->s, gn->outputs[0]) != 0);
}

/* sum_local(w l) / sum_global(w): the local weight sum all-reduced over
 * the loss's partial axes; times the micro-batch count in a pipeline (it
 * averages the micro-batches' losses). */
int ty__shard_weighted_mean(builder *b, size_t n, const int *in) {
  ty_shard *s = b->s;
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  unsigned axes = ty_shard_partial_axes(s, gn->outputs[0]);
  char name[300];
  snprintf(name, sizeof name, "%s%s", gn->name, axes ? ".local_weight_sum" : TY_SHARD_WEIGHT_SUM);
  ty_graph_set_opset(b->g, gn->opset);
  int d, rc = ty__wmean_weight_sum(b->g, gn, in, &s->full[gn->inputs[0]], &s->full[gn->inputs[1]],
                                   name, &d, b->err, b->err_len);
  if (rc == 0 && axes) rc = total_weight(b, gn->name, d, axes, &d);
  double k = s->plan->n_stages > 0 ? (double)s->plan->micro_batches : 1.0;
  return rc ? rc : ty__wmean_loss(b->g, gn, in, d, k);
}

/* A metric that reads a sum the pipeline scales by the micro-batch count
 * (ty_plan_reads_unscaled) reads it divided by that count again, after
 * its route: the micro-batch's own sum, as without micro-batches. */
int ty__shard_unscaled_inputs(builder *b, size_t n, int *in) {
  const ty_graph_node *gn = ty_graph_node_at(b->src, n);
  char name[300];
  int rc = 0;
  for (int i = 0; rc == 0 && b->s->plan->n_stages > 0 && i < gn->n_inputs; i++) {
    bool unscaled = false;
    int id = in[i];
    if ((rc = ty_plan_reads_unscaled(b->src, b->s->loss, gn, i, &unscaled)) != 0 || !unscaled)
      continue;
    snprintf(name, sizeof name, "%s.unscaled_%d", gn->name, i);
    if ((rc = ty_graph_add_value(b->g, name, TY_DTYPE_F32, NULL, &id)) == 0)
      rc = ty__shard_add_scale(b, name, in[i], 1.0 / b->s->plan->micro_batches, id);
    in[i] = id;
  }
  return rc;
}
