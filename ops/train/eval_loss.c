/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The test loss of a model's own loss (config.loss_output) over the whole
 * test split, whatever its batches (docs/training.md, "Evaluation"). The
 * evaluation runs the loss per batch, so how the batches' values add up
 * depends on the loss's kind, as the planner classifies it:
 *
 *   - a plain mean over the batch: the batches' means weighted by their
 *     rows;
 *   - a weighted or ignore_index mean (ty_shard_weighted_mean), sum(w l) /
 *     sum(w): each batch's mean weighted by its own sum(w), which a graph
 *     of its own computes from the batch's labels and the weight tensor
 *     (ops/shard's "<node>.weight_sum", as training's pipe_wmean.c does),
 *     divided by the sum of those;
 *   - a sum over the batch (ty_plan_summed_loss): the batches' sums added
 *     up, the test split's total, as reduction="sum" over it gives.
 *
 * A loss that combines several such nodes (two weighted means, a sum
 * beside a mean of any kind, or a weighted mean beside a plain mean term
 * such as a regulariser's (b ** 2).mean(): ty_plan_mean_loss) has no one
 * denominator: it is counted as a plain mean; so is a weighted mean whose
 * labels or weights the model computes from its trained weights (the log
 * says so, either way).
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The loss's kind from the model's nodes (not t->g's: a plan's rank
 * trains its local graph); *out_node the one weighted mean, or the one
 * sum, that makes it (NULL for a plain mean); *out_mixed whether it adds
 * up terms of different kinds (a sum beside a mean, two weighted means,
 * or a weighted mean beside a plain mean term), which have no one
 * denominator. */
static int loss_kind(const ty_train *t, int *out_kind, const ty_graph_node **out_node,
                     bool *out_mixed) {
  const ty_graph *g = t->model;
  const ty_graph_node *wn = NULL, *sn = NULL;
  int weighted = 0, summed = 0, means = 0, rc = 0;
  int loss = ty_graph_find_value(g, t->cfg->loss_output);
  for (size_t i = 0; rc == 0 && i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    bool sum = false, mean = false;
    if (ty_shard_weighted_mean(n)) {
      weighted++;
      wn = n;
    } else if ((rc = ty_plan_summed_loss(g, loss, n, &sum)) == 0 && sum) {
      summed++;
      sn = n;
    } else if (rc == 0 && (rc = ty_plan_mean_loss(g, loss, n, &mean)) == 0 && mean) {
      means++;
    }
  }
  *out_mixed = weighted > 1 || (summed && (weighted || means)) || (weighted && means);
  *out_kind = *out_mixed ? TY__EVAL_LOSS_MEAN
              : weighted ? TY__EVAL_LOSS_WEIGHTED
              : summed   ? TY__EVAL_LOSS_SUM
                         : TY__EVAL_LOSS_MEAN;
  *out_node = *out_kind == TY__EVAL_LOSS_WEIGHTED             ? wn
              : *out_kind == TY__EVAL_LOSS_SUM && summed == 1 ? sn
                                                              : NULL;
  return rc;
}

/* Whether g reads the test batches' inputs and untrained initializers
 * alone (not a trained weight, whose data in the model is the initial). */
static bool feeds_only(const ty_train *t, const ty_graph *g) {
  for (size_t i = 0; i < t->np; i++)
    if (ty_graph_find_value(g, ty_graph_value_at(t->g, t->param_ids[i])->name) != TY_NO_VALUE)
      return false;
  for (size_t v = 0; v < ty_graph_n_values(g); v++) {
    const ty_graph_value *gv = ty_graph_value_at(g, (int)v);
    if (gv->producer >= 0 || gv->init) continue;
    bool fed = false;
    for (size_t k = 0; !fed && k < t->n_feeds; k++)
      fed = t->feeds[k].model_input && strcmp(t->names[k], gv->name) == 0;
    if (!fed) return false;
  }
  return true;
}

/* The graph of the weighted mean node's denominator alone, from a copy of
 * the model in which ops/shard split that loss (value ids kept). */
static int den_graph(ty_train *t, const ty_graph_node *wn, char *err, size_t err_len) {
  ty_graph *split = NULL;
  bool *need = NULL;
  char name[300];
  snprintf(name, sizeof name, "%s%s", wn->name, TY_SHARD_WEIGHT_SUM);
  int loss = ty_graph_find_value(t->model, t->cfg->loss_output), d = TY_NO_VALUE;
  int rc = ty_shard_split_weighted_means(t->model, loss, 1.0, &split, err, err_len);
  if (rc == 0 && (d = ty_graph_find_value(split, name)) == TY_NO_VALUE) rc = TY_EINTERNAL;
  if (rc == 0) rc = ty__train_needed_nodes(split, &d, 1, &need);
  if (rc == 0) rc = ty__pipe_extract(split, need, &d, 1, &t->eval_den_g, err, err_len);
  if (rc == 0) rc = ty__train_inference_mode(t->eval_den_g);
  if (rc == 0 && (t->eval_den_v = ty_graph_find_value(t->eval_den_g, name)) == TY_NO_VALUE)
    rc = TY_EINTERNAL;
  if (rc == 0 && !feeds_only(t, t->eval_den_g)) rc = TY_EUNSUPPORTED;
  if (rc == 0)
    rc = ty_exec_create(t->eval_den_g, &(ty_exec_opts){.no_memplan = true}, &t->eval_den_e);
  free(need);
  ty_graph_destroy(split);
  return rc;
}

int ty__train_eval_loss_setup(ty_train *t, char *err, size_t err_len) {
  const ty_graph_node *wn = NULL;
  bool mixed = false;
  if (!t->cfg->loss_output || !t->test_ds) return 0;
  int rc = loss_kind(t, &t->eval_loss_kind, &wn, &mixed);
  t->eval_loss_node = rc == 0 ? wn : NULL;
  if (rc == 0 && mixed && t->opts.rank == 0)
    fprintf(ty__train_log(t),
            "evaluation: test_loss is the mean over the test rows of the batches' values: the "
            "model's loss \"%s\" adds up terms that reduce the batch in different ways (a sum "
            "beside a mean, or two weighted means), which have no one denominator over the "
            "test split\n",
            t->cfg->loss_output);
  if (rc != 0 || t->eval_loss_kind != TY__EVAL_LOSS_WEIGHTED) return rc;
  char e[TY_ERR_LEN] = "";
  rc = den_graph(t, wn, e, sizeof e);
  if (rc == TY_ENOMEM) return ty_errf(err, err_len, rc, "evaluation: out of memory");
  if (rc == 0) return 0;
  t->eval_loss_kind = TY__EVAL_LOSS_MEAN;
  t->eval_loss_node = NULL;
  if (t->opts.rank == 0)
    fprintf(ty__train_log(t),
            "evaluation: test_loss is the mean over the test rows of the batches' values: the "
            "denominator of the weighted mean loss node \"%s\" is not computed from the test "
            "batches' labels and untrained weights alone (%s)\n",
            wn->name, e[0] ? e : ty_strerror(rc));
  ty__train_eval_loss_destroy(t);
  t->eval_den_g = NULL, t->eval_den_e = NULL;
  return 0;
}

const char *ty__train_eval_loss_name(const ty_train *t) {
  return t->eval_loss_kind == TY__EVAL_LOSS_SUM        ? "a sum"
         : t->eval_loss_kind == TY__EVAL_LOSS_WEIGHTED ? "a weighted mean"
                                                       : "a mean";
}

const char *ty__train_eval_loss_pad(const ty_train *t, size_t *out_feed, int64_t *out_label) {
  const ty_graph_node *n = t->eval_loss_node;
  if (t->eval_loss_kind == TY__EVAL_LOSS_MEAN) return "every row of a batch counts in it";
  if (!n) return "several of its nodes reduce the batch";
  if ((n->op != TY_OP_SOFTMAX_CE_LOSS && n->op != TY_OP_NLL_LOSS) ||
      !ty_graph_node_attr(n, "ignore_index"))
    return "its node reducing the batch has no ignore_index that padding rows could carry";
  int y = ty_graph_node_input(n, 1);
  const char *label = y != TY_NO_VALUE ? ty_graph_value_at(t->model, y)->name : "";
  for (size_t k = 0; k < t->n_feeds; k++)
    if (t->feeds[k].model_input && strcmp(t->names[k], label) == 0) {
      if (t->feeds[k].dtype != TY_DTYPE_I64 && t->feeds[k].dtype != TY_DTYPE_I32)
        return "its labels are neither int64 nor int32";
      *out_feed = k;
      *out_label = ty_graph_node_attr_int(n, "ignore_index", 0);
      return NULL;
    }
  return "its node reducing the batch reads labels the model computes, not a test array";
}

void ty__train_eval_loss_destroy(ty_train *t) {
  ty_exec_destroy(t->eval_den_e);
  ty_graph_destroy(t->eval_den_g);
}

/* sum(w) over batch b's counted labels: the denominator graph run on it. */
static int batch_weight(const ty_train *t, const ty_batch *b, double *out, char *err,
                        size_t err_len) {
  ty_tensor *in[TY_DATA_MAX_COLUMNS] = {0};
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++) {
    if (ty_graph_find_value(t->eval_den_g, t->names[k]) == TY_NO_VALUE) continue;
    ty_shape s = ty__train_feed_shape(t, k, b->n);
    rc = ty_tensor_create(t->feeds[k].dtype, &s, &in[k]);
    if (rc == 0) ty__train_eval_fill(t, k, b, in[k]);
    if (rc == 0) rc = ty_exec_bind(t->eval_den_e, t->names[k], in[k], err, err_len);
  }
  if (rc == 0) rc = ty_exec_run(t->eval_den_e, err, err_len);
  const ty_tensor *d = rc == 0 ? ty_exec_value(t->eval_den_e, t->eval_den_v) : NULL;
  if (rc == 0 && (!d || d->dtype != TY_DTYPE_F32 || ty_tensor_numel(d) != 1)) rc = TY_EINTERNAL;
  if (rc == 0) *out = ty_tensor_f32(d)[0];
  for (size_t k = 0; k < TY_DATA_MAX_COLUMNS; k++)
    ty_tensor_destroy(in[k]);
  return rc;
}

int ty__train_tally_loss(const ty_train *t, double loss, const ty_batch *b, ty__eval_tally *a,
                         char *err, size_t err_len) {
  a->count += b->n;
  a->rows += b->n;
  if (t->eval_loss_kind == TY__EVAL_LOSS_SUM) {
    a->loss += loss;
    return 0;
  }
  if (t->eval_loss_kind != TY__EVAL_LOSS_WEIGHTED) {
    a->loss += loss * (double)b->n;
    return 0;
  }
  double w = 0;
  int rc = batch_weight(t, b, &w, err, err_len);
  if (rc == 0 && w != 0) a->loss += loss * w; /* a batch of ignored labels only has a NaN mean */
  a->weight += w;
  return rc;
}

double ty__train_eval_loss(const ty_train *t, const ty__eval_tally *a) {
  if (!a->count) return NAN; /* every batch left out */
  if (t->cfg->loss_output && t->eval_loss_kind == TY__EVAL_LOSS_SUM) return a->loss;
  if (t->cfg->loss_output && t->eval_loss_kind == TY__EVAL_LOSS_WEIGHTED)
    return a->weight != 0 ? a->loss / a->weight : NAN; /* every label ignored */
  return a->loss / (double)a->count;
}
