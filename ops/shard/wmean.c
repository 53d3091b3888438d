/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Weighted and ignore_index mean losses over part of a batch (shard.h).
 * SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss with a weight
 * input or an ignore_index, reduction mean, are sum(w l) / sum(w) over the
 * whole batch: a rank that holds some rows (a split batch), or a pipeline
 * micro-batch, cannot divide by its own rows' weights. Such a node becomes
 *
 *   S   = the same loss with reduction sum            (its gradient: w l')
 *   d   = "<node>.weight_sum": sum(w[y]) over the labels it reads, the
 *         ignored ones counting 0: with weights, NegativeLogLikelihoodLoss
 *         (reduction sum) of -1s, whose weight input has no gradient, so
 *         neither an initializer w nor one computed at run time becomes
 *         a trained parameter through d; with ignore_index alone, a count
 *         by Equal, Where and ReduceSum; the caller may sum d over ranks
 *         or micro-batches before the loss reads it
 *   out = S * r + z,  r = k / d and z = 0, or r = 0 and z = NaN when d = 0
 *
 * so the partial losses add up to the one-process mean and d needs no
 * gradient (it depends on the labels and the weight tensor only). An
 * all-zero denominator gives what the one-process kernels give: a NaN loss
 * and zero gradients. k undoes a caller's averaging (a pipeline's 1 / M).
 * The constants are Constant nodes, not initializers: nothing to train.
 */
#include "ops/shard/shard_internal.h"

#include "ops/ops_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool ty_shard_weighted_mean(const ty_graph_node *n) {
  return (n->op == TY_OP_SOFTMAX_CE_LOSS || n->op == TY_OP_NLL_LOSS) &&
         strcmp(ty_graph_node_attr_string(n, "reduction", "mean"), "mean") == 0 &&
         (ty_graph_node_input(n, 2) != TY_NO_VALUE || ty_graph_node_attr(n, "ignore_index"));
}

/* op(in) -> a new value named "<node>.<what>". */
static int op_node(ty_graph *g, const char *node, const char *what, ty_op op, const int *in,
                   int n_in, int *out) {
  char name[300];
  snprintf(name, sizeof name, "%s.%s", node, what);
  int idx, rc = ty_graph_add_value(g, name, TY_DTYPE_INVALID, NULL, out);
  return rc ? rc : ty_graph_add_node(g, op, name, in, n_in, out, 1, &idx);
}

/* A Constant node "<node>.<what>" holding t, which it takes (destroyed
 * when the node cannot be added). */
static int constant_of(ty_graph *g, const char *node, const char *what, ty_tensor *t, int *out) {
  char name[300];
  int idx, rc;
  snprintf(name, sizeof name, "%s.%s", node, what);
  if ((rc = ty_graph_add_value(g, name, t->dtype, &t->shape, out)) != 0 ||
      (rc = ty_graph_add_node(g, TY_OP_CONSTANT, name, NULL, 0, out, 1, &idx)) != 0) {
    ty_tensor_destroy(t);
    return rc;
  }
  return ty_graph_node_set_tensor(g, (size_t)idx, "value", t);
}

/* A scalar Constant node "<node>.<what>" of dtype dt holding x. */
static int constant(ty_graph *g, const char *node, const char *what, ty_dtype dt, double x,
                    int *out) {
  ty_shape vs = ty_shape_make(0, NULL);
  ty_tensor *t;
  int rc = ty_tensor_create(dt, &vs, &t);
  if (rc != 0) return rc;
  if (dt == TY_DTYPE_F32)
    ty_tensor_f32(t)[0] = (float)x;
  else if (dt == TY_DTYPE_I32)
    ((int32_t *)t->data)[0] = (int32_t)x;
  else
    ((int64_t *)t->data)[0] = (int64_t)x;
  return constant_of(g, node, what, t, out);
}

/* The weight tensor the sum reads: an initializer's copy as a Constant
 * node, so that no gradient path reaches the initializer (the trainer
 * would take a float initializer read differentiably for a parameter);
 * any other value as it is. */
static int weight_table(ty_graph *g, const char *node, int w, int *out) {
  const ty_tensor *init = ty_graph_value_at(g, w)->init;
  *out = w;
  if (!init) return 0;
  ty_tensor *t;
  int rc = ty_tensor_clone(init, &t);
  return rc ? rc : constant_of(g, node, "weight_table", t, out);
}

/* A Constant "<node>.minus_ones" of -1s shaped [1, classes, 1...], of
 * rank label_rank + 1: Expand broadcasts it to the loss's scores. */
static int minus_ones(ty_graph *g, const char *node, int64_t classes, int label_rank, int *out) {
  int64_t dims[TY_MAX_RANK];
  for (int d = 0; d <= label_rank; d++)
    dims[d] = d == 1 ? classes : 1;
  ty_shape vs = ty_shape_make(label_rank + 1, dims);
  ty_tensor *t;
  int rc = ty_tensor_create(TY_DTYPE_F32, &vs, &t);
  if (rc != 0) return rc;
  for (int64_t i = 0; i < classes; i++)
    ty_tensor_f32(t)[i] = -1.0f;
  return constant_of(g, node, "minus_ones", t, out);
}

/* The Constant "<node>.class_axis", [1]: Unsqueeze's axes. */
static int class_axis(ty_graph *g, const char *node, int *out) {
  ty_shape vs = ty_shape_make(1, (int64_t[]){1});
  ty_tensor *t;
  int rc = ty_tensor_create(TY_DTYPE_I64, &vs, &t);
  if (rc != 0) return rc;
  ((int64_t *)t->data)[0] = 1;
  return constant_of(g, node, "class_axis", t, out);
}

/* sum(w[y]) over the counted labels as NegativeLogLikelihoodLoss itself
 * computes it: the same labels, weights and ignore_index over
 * log-probabilities of -1 everywhere, reduction sum. The op's weight
 * input carries no gradient, so a weight tensor computed at run time
 * (w = counts.sum() / counts, w * 2) gets none through the denominator,
 * as in one process, where only the loss reads it; a Gather of it would
 * make its source a trained parameter. The -1s are [N, C, d...] from the
 * labels' shape (Unsqueeze at 1, Shape, Expand), not the scores', so the
 * sum depends on the labels and weights only (pipe_wmean.c runs it
 * before the step). Its helper nodes follow opset 17. */
static int label_weights_sum(ty_graph *g, const ty_graph_node *gn, const int *in, int table,
                             const ty_shape *labels, int64_t classes, const char *name, int *out) {
  const char *nn = gn->name;
  const ty_graph_attr *ig = ty_graph_node_attr(gn, "ignore_index");
  int was = ty_graph_opset(g), ones, axes, lifted, shape, x, idx, rc;
  ty_graph_set_opset(g, 17);
  if ((rc = minus_ones(g, nn, classes, labels->rank, &ones)) == 0 &&
      (rc = class_axis(g, nn, &axes)) == 0)
    rc = op_node(g, nn, "labels_at_classes", TY_OP_UNSQUEEZE, (int[]){in[1], axes}, 2, &lifted);
  if (rc == 0) rc = op_node(g, nn, "scores_shape", TY_OP_SHAPE, &lifted, 1, &shape);
  if (rc == 0) rc = op_node(g, nn, "minus_log_probs", TY_OP_EXPAND, (int[]){ones, shape}, 2, &x);
  if (rc == 0) rc = ty_graph_add_value(g, name, TY_DTYPE_F32, NULL, out);
  if (rc == 0)
    rc = ty_graph_add_node(g, TY_OP_NLL_LOSS, name, (int[]){x, in[1], table}, 3, out, 1, &idx);
  if (rc == 0) rc = ty_graph_node_set_string(g, (size_t)idx, "reduction", "sum");
  if (rc == 0 && ig) rc = ty_graph_node_set_int(g, (size_t)idx, "ignore_index", ig->i);
  ty_graph_set_opset(g, was);
  return rc;
}

int ty__wmean_weight_sum(ty_graph *g, const ty_graph_node *gn, const int *in,
                         const ty_shape *scores, const ty_shape *labels, const char *name, int *out,
                         char *err, size_t err_len) {
  const ty_graph_attr *ig = ty_graph_node_attr(gn, "ignore_index");
  const char *nn = gn->name;
  int zero, one, w, ignored, at, idx, rc;
  if (gn->n_inputs > 2 && in[2] != TY_NO_VALUE) {
    const ty_tensor *wi = ty_graph_value_at(g, in[2])->init;
    int64_t classes = scores->rank >= 2 ? scores->dims[1] : -1;
    if (classes <= 0 && wi && wi->shape.rank == 1) classes = wi->shape.dims[0];
    if (classes <= 0 || labels->rank < 1 || labels->rank + 1 >= TY_MAX_RANK)
      return ty_errf(err, err_len, TY_EUNSUPPORTED,
                     "node \"%s\" (%s): a class-weighted mean over a split batch or "
                     "micro-batches needs the class count and the labels' rank, which shape "
                     "inference left unknown",
                     nn, ty_op_name(gn->op));
    int table;
    rc = weight_table(g, nn, in[2], &table);
    return rc ? rc : label_weights_sum(g, gn, in, table, labels, classes, name, out);
  }
  /* ignore_index alone: the count of the labels it does not ignore */
  ty_dtype lt = ty_graph_value_at(g, in[1])->dtype;
  if ((rc = constant(g, nn, "wsum_zero", TY_DTYPE_F32, 0.0, &zero)) != 0 ||
      (rc = constant(g, nn, "wsum_one", TY_DTYPE_F32, 1.0, &one)) != 0 ||
      (rc = constant(g, nn, "ignore_index", lt, (double)(ig ? ig->i : 0), &at)) != 0 ||
      (rc = op_node(g, nn, "ignored", TY_OP_EQUAL, (int[]){in[1], at}, 2, &ignored)) != 0 ||
      (rc = op_node(g, nn, "counted_weights", TY_OP_WHERE, (int[]){ignored, zero, one}, 3, &w)) !=
          0 ||
      (rc = ty_graph_add_value(g, name, TY_DTYPE_F32, NULL, out)) != 0 ||
      (rc = ty_graph_add_node(g, TY_OP_REDUCE_SUM, name, &w, 1, out, 1, &idx)) != 0)
    return rc;
  return ty_graph_node_set_int(g, (size_t)idx, "keepdims", 0);
}

int ty__wmean_loss(ty_graph *g, const ty_graph_node *gn, const int *in, int d, double k) {
  const char *nn = gn->name;
  int outs[16], idx, rc;
  if (gn->n_outputs > 16) return TY_EUNSUPPORTED;
  memcpy(outs, gn->outputs, (size_t)gn->n_outputs * sizeof *outs);
  char name[300];
  snprintf(name, sizeof name, "%s.weighted_sum", nn);
  if ((rc = ty_graph_add_value(g, name, TY_DTYPE_F32, NULL, &outs[0])) != 0 ||
      (rc = ty_graph_add_node(g, gn->op, nn, in, gn->n_inputs, outs, gn->n_outputs, &idx)) != 0)
    return rc;
  for (int a = 0; rc == 0 && a < gn->n_attrs; a++)
    if (strcmp(gn->attrs[a].name, "reduction") != 0)
      rc = ty__graph_copy_attr(g, (size_t)idx, &gn->attrs[a]);
  if (rc == 0) rc = ty_graph_node_set_string(g, (size_t)idx, "reduction", "sum");
  int zero, kc, nan, isz, kd, r, z, sr;
  if (rc != 0 || (rc = constant(g, nn, "loss_zero", TY_DTYPE_F32, 0.0, &zero)) != 0 ||
      (rc = constant(g, nn, "loss_scale", TY_DTYPE_F32, k, &kc)) != 0 ||
      (rc = constant(g, nn, "loss_nan", TY_DTYPE_F32, NAN, &nan)) != 0 ||
      (rc = op_node(g, nn, "no_weight", TY_OP_EQUAL, (int[]){d, zero}, 2, &isz)) != 0 ||
      (rc = op_node(g, nn, "scale_over_weights", TY_OP_DIV, (int[]){kc, d}, 2, &kd)) != 0 ||
      (rc = op_node(g, nn, "inverse_weight_sum", TY_OP_WHERE, (int[]){isz, zero, kd}, 3, &r)) !=
          0 ||
      (rc = op_node(g, nn, "nan_when_no_weight", TY_OP_WHERE, (int[]){isz, nan, zero}, 3, &z)) !=
          0 ||
      (rc = op_node(g, nn, "weighted_mean", TY_OP_MUL, (int[]){outs[0], r}, 2, &sr)) != 0)
    return rc;
  snprintf(name, sizeof name, "%s.mean", nn);
  return ty_graph_add_node(g, TY_OP_ADD, name, (int[]){sr, z}, 2, &gn->outputs[0], 1, &idx);
}

/* ---- the whole-graph form (a pipeline without an intra-stage plan) ----------------- */

static int copy_values(const ty_graph *src, ty_graph *g) {
  int rc = 0;
  for (size_t v = 0; rc == 0 && v < ty_graph_n_values(src); v++) {
    const ty_graph_value *sv = ty_graph_value_at(src, (int)v);
    ty_tensor *t = NULL;
    int id;
    rc = ty_graph_add_value(g, sv->name, sv->dtype, sv->producer < 0 ? &sv->shape : NULL, &id);
    if (rc == 0 && sv->init && (rc = ty_tensor_clone(sv->init, &t)) == 0)
      rc = ty_graph_set_initializer(g, id, t); /* owns t, also on failure */
    if (rc == 0 && sv->is_input) rc = ty_graph_mark_input(g, id);
  }
  return rc;
}

/* gn's inputs in g: a scaled sum that gn, a metric, reads unscaled
 * (ty_plan_reads_unscaled) is its producer's "<node>.micro_batch_sum",
 * the node's own output before the scale; the rest as in src. */
static int unscaled_inputs(const ty_graph *src, int loss, const ty_graph_node *gn,
                           const ty_graph *g, int *in, char *err, size_t err_len) {
  char name[300];
  for (int i = 0; i < gn->n_inputs; i++) {
    bool unscaled = false;
    int rc = ty_plan_reads_unscaled(src, loss, gn, i, &unscaled);
    in[i] = gn->inputs[i];
    if (rc != 0) return rc;
    if (!unscaled) continue;
    const ty_graph_value *v = ty_graph_value_at(src, gn->inputs[i]);
    snprintf(name, sizeof name, "%s.micro_batch_sum",
             ty_graph_node_at(src, (size_t)v->producer)->name);
    in[i] = ty_graph_find_value(g, name);
    if (in[i] == TY_NO_VALUE) /* src's nodes are in topological order */
      return ty_errf(err, err_len, TY_EINVAL, "node \"%s\" reads \"%s\" before its producer",
                     gn->name, v->name);
  }
  return 0;
}

static int copy_node(const ty_graph *src, int loss, size_t n, double k, ty_graph *g, char *err,
                     size_t err_len) {
  const ty_graph_node *gn = ty_graph_node_at(src, n);
  char name[300];
  int idx, d, rc;
  ty_graph_set_opset(g, gn->opset);
  if (ty_shard_weighted_mean(gn)) {
    snprintf(name, sizeof name, "%s%s", gn->name, TY_SHARD_WEIGHT_SUM);
    rc =
        ty__wmean_weight_sum(g, gn, gn->inputs, &ty_graph_value_at(src, gn->inputs[0])->shape,
                             &ty_graph_value_at(src, gn->inputs[1])->shape, name, &d, err, err_len);
    return rc ? rc : ty__wmean_loss(g, gn, gn->inputs, d, k);
  }
  bool scaled = false;
  int outs[16], *in = NULL, kc;
  rc = 0;
  if (gn->n_outputs > 16) return TY_EUNSUPPORTED;
  if (k != 1.0 && (rc = ty_plan_summed_loss(src, loss, gn, &scaled)) != 0) return rc;
  if (!(in = malloc(((size_t)gn->n_inputs + 1) * sizeof *in))) return TY_ENOMEM;
  if (k != 1.0)
    rc = unscaled_inputs(src, loss, gn, g, in, err, err_len);
  else
    memcpy(in, gn->inputs, (size_t)gn->n_inputs * sizeof *in);
  memcpy(outs, gn->outputs, (size_t)gn->n_outputs * sizeof *outs);
  snprintf(name, sizeof name, "%s.micro_batch_sum", gn->name);
  if (rc == 0 && scaled) rc = ty_graph_add_value(g, name, TY_DTYPE_F32, NULL, &outs[0]);
  if (rc == 0)
    rc = ty_graph_add_node(g, gn->op, gn->name, in, gn->n_inputs, outs, gn->n_outputs, &idx);
  free(in);
  for (int a = 0; rc == 0 && a < gn->n_attrs; a++)
    rc = ty__graph_copy_attr(g, (size_t)idx, &gn->attrs[a]);
  if (rc != 0 || !scaled) return rc;
  /* the step's 1 / k over the micro-batches' losses, undone */
  if ((rc = constant(g, gn->name, "micro_batches", TY_DTYPE_F32, k, &kc)) != 0) return rc;
  snprintf(name, sizeof name, "%s.sum", gn->name);
  return ty_graph_add_node(g, TY_OP_MUL, name, (int[]){outs[0], kc}, 2, &gn->outputs[0], 1, &idx);
}

int ty_shard_split_weighted_means(const ty_graph *src, int loss, double k, ty_graph **out,
                                  char *err, size_t err_len) {
  ty_graph *g = NULL;
  if (loss != TY_NO_VALUE && (loss < 0 || (size_t)loss >= ty_graph_n_values(src)))
    return ty_errf(err, err_len, TY_EINVAL,
                   "weighted mean losses as sums: loss: value %d is not one of the graph's %zu",
                   loss, ty_graph_n_values(src));
  int rc = ty_graph_create(&g);
  if (rc == 0) rc = copy_values(src, g);
  for (size_t n = 0; rc == 0 && n < ty_graph_n_nodes(src); n++)
    rc = copy_node(src, loss, n, k, g, err, err_len);
  for (size_t i = 0; rc == 0 && i < ty_graph_n_outputs(src); i++)
    rc = ty_graph_mark_output(g, ty_graph_output(src, i));
  if (rc == 0) ty_graph_set_opset(g, ty_graph_opset(src));
  if (rc == 0 && (rc = ty_graph_infer_shapes(g, err, err_len)) != 0) {
    char inner[TY_ERR_LEN];
    snprintf(inner, sizeof inner, "%s", err ? err : "");
    rc = ty_errf(err, err_len, rc, "weighted mean losses as sums: %s", inner);
  }
  if (rc != 0) {
    ty_graph_destroy(g);
    return rc;
  }
  *out = g;
  return 0;
}
