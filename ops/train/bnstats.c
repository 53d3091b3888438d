/* SPDX-License-Identifier: Apache-2.0 */
/*
 * BatchNormalization running statistics during training. The executor's
 * training mode normalises with batch statistics; after each step the
 * trainer folds the batch statistics of every BatchNormalization node into
 * its running_mean / running_var initializers, PyTorch style:
 *
 *   running = momentum * running + (1 - momentum) * batch
 *
 * with the node's ONNX `momentum` attribute (default 0.9, i.e. PyTorch's
 * momentum 0.1). running_mean uses the batch mean; running_var uses the
 * UNBIASED batch variance (sum of squares / (count - 1)) as PyTorch does,
 * not the population variance ONNX's own optional outputs carry. The
 * statistics are trainer-owned tensors (no gradient, no optimizer), bound
 * to the executor, saved in checkpoints and restored on resume; evaluation
 * binds them so inference uses them. Each rank of a data-parallel job
 * updates them from its own shard (like PyTorch DDP without SyncBatchNorm);
 * rank 0's are checkpointed. The ranks of a plan that splits a batch
 * normalise with the global batch's statistics (ops/shard sums them, like
 * SyncBatchNorm) and update the running ones from those; a rank holds the
 * statistics of its channels, gathered on rank 0 for checkpoints.
 */
#include "ops/train/train_internal.h"

#include "ops/ops_internal.h"
#include "ops/kernels_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

static bool is_stat(const ty_graph *g, int id) {
  const ty_graph_value *v = id == TY_NO_VALUE ? NULL : ty_graph_value_at(g, id);
  return v && v->init && v->dtype == TY_DTYPE_F32 && v->init->shape.rank == 1;
}

/* Starts entry t->bn[t->n_bn]: the statistics' ids, cloned values. */
static int add_bn(ty_train *t, int x, int mean, int var, float momentum, ty__bn **out) {
  ty__bn *b = &t->bn[t->n_bn];
  *b = (ty__bn){.x_id = x,
                .ids = {mean, var},
                .mean_id = TY_NO_VALUE,
                .var_id = TY_NO_VALUE,
                .momentum = momentum};
  t->n_bn++; /* counted before cloning so destroy frees a partial entry */
  *out = b;
  for (int k = 0; k < 2; k++) {
    int rc = ty_tensor_clone(ty_graph_value_at(t->g, b->ids[k])->init, &b->stat[k]);
    if (rc != 0) return rc;
  }
  return 0;
}

/* The BatchNormalizations a plan's shard computes from summed statistics. */
static int synced_bns(ty_train *t) {
  for (size_t i = 0; t->shard && i < ty_shard_n_bn(t->shard); i++) {
    const ty_shard_bn_info *s = ty_shard_bn_at(t->shard, i);
    ty__bn *b;
    if (!is_stat(t->g, s->running_mean) || !is_stat(t->g, s->running_var)) continue;
    int rc = add_bn(t, TY_NO_VALUE, s->running_mean, s->running_var, s->momentum, &b);
    if (rc != 0) return rc;
    b->mean_id = s->mean;
    b->var_id = s->var;
    b->count = s->count;
  }
  return 0;
}

bool ty__train_bn_keeps_stats(const ty_graph *g, const ty_graph_node *n) {
  return n->op == TY_OP_BATCH_NORM && n->n_inputs >= 5 && is_stat(g, n->inputs[3]) &&
         is_stat(g, n->inputs[4]);
}

int ty__train_bn_setup(ty_train *t) {
  size_t nn = ty_graph_n_nodes(t->g);
  t->bn = calloc(nn + (t->shard ? ty_shard_n_bn(t->shard) : 0) + 1, sizeof *t->bn);
  if (!t->bn) return TY_ENOMEM;
  for (size_t i = 0; i < nn; i++) {
    const ty_graph_node *n = ty_graph_node_at(t->g, i);
    if (!ty__train_bn_keeps_stats(t->g, n)) continue;
    ty__bn *b;
    int rc = add_bn(t, n->inputs[0], n->inputs[3], n->inputs[4],
                    ty_graph_node_attr_float(n, "momentum", 0.9f), &b);
    if (rc != 0) return rc;
    b->node = n->name;
  }
  return synced_bns(t);
}

void ty__train_bn_destroy(ty_train *t) {
  for (size_t i = 0; t->bn && i < t->n_bn; i++) {
    ty_tensor_destroy(t->bn[i].stat[0]);
    ty_tensor_destroy(t->bn[i].stat[1]);
  }
  free(t->bn);
}

int ty__train_bn_fold(ty__bn *b, const ty_tensor *x) {
  float *rm = ty_tensor_f32(b->stat[0]), *rv = ty_tensor_f32(b->stat[1]), mom = b->momentum;
  int64_t c = ty_tensor_numel(b->stat[0]);
  if (x->dtype != TY_DTYPE_F32 || x->shape.rank < 2 || x->shape.dims[1] != c ||
      ty_tensor_numel(b->stat[1]) != c)
    return TY_EINVAL;
  int64_t nb = x->shape.dims[0], sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  const float *xd = x->data;
  for (int64_t ch = 0; ch < c; ch++) {
    ty__bn_sums s; /* the forward's statistics (kernels/bn_sweep.c) */
    ty__bn_sweep(xd, NULL, nb, c, sp, ch, TY__BN_STATS, &s);
    double var = s.count > 1 ? s.var * s.count / (s.count - 1) : 0;
    rm[ch] = rm[ch] * mom + (float)s.mean * (1 - mom);
    rv[ch] = rv[ch] * mom + (float)var * (1 - mom);
  }
  return 0;
}

int ty__train_bn_check_batch(const ty_train *t, size_t b, const ty_tensor *x, char *err,
                             size_t err_len) {
  if (x->shape.rank < 2) return 0; /* not [N, C, ...]: ty__train_bn_fold refuses it */
  int64_t nb = x->shape.dims[0], sp = ty_shape_span(&x->shape, 2, x->shape.rank);
  if (nb * sp != 1) return 0;
  char shape[96], rank[64] = "";
  ty_shape_format(&x->shape, shape, sizeof shape);
  uint32_t world = ty__train_data_world(t);
  if (world > 1)
    snprintf(rank, sizeof rank, " on data-parallel rank %u of %u", t->opts.rank, world);
  return ty_errf(
      err, err_len, TY_EINVAL,
      "BatchNormalization node \"%s\" (training mode): its input \"%s\" is %s%s, one value per "
      "channel (batch %lld x %lld spatial), so the batch statistics are that value, the output "
      "is just the bias and the layers below it get no gradient (PyTorch refuses it: \"Expected "
      "more than 1 value per channel when training\"); raise config.batch_size (every "
      "data-parallel rank needs 2 rows or more)",
      t->bn[b].node, ty_graph_value_at(t->g, t->bn[b].x_id)->name, shape, rank, (long long)nb,
      (long long)sp);
}

int ty__train_bn_fold_stats(ty__bn *b, const ty_tensor *mean, const ty_tensor *var, double count) {
  float *rm = ty_tensor_f32(b->stat[0]), *rv = ty_tensor_f32(b->stat[1]), mom = b->momentum;
  int64_t c = ty_tensor_numel(b->stat[0]);
  if (!mean || !var || ty_tensor_numel(mean) != c || ty_tensor_numel(var) != c) return TY_EINVAL;
  double unbias = count > 1 ? count / (count - 1) : 0;
  for (int64_t ch = 0; ch < c; ch++) {
    rm[ch] = rm[ch] * mom + ty_tensor_f32(mean)[ch] * (1 - mom);
    rv[ch] = rv[ch] * mom + (float)(ty_tensor_f32(var)[ch] * unbias) * (1 - mom);
  }
  return 0;
}

int ty__train_bn_update(ty_train *t, char *err, size_t err_len) {
  for (size_t i = 0; i < t->n_bn; i++) {
    const ty__bn *b = &t->bn[i];
    if (b->x_id == TY_NO_VALUE) {
      if (ty__train_bn_fold_stats(&t->bn[i], ty__train_value(t, b->mean_id),
                                  ty__train_value(t, b->var_id), b->count) != 0)
        return ty_errf(err, err_len, TY_EINTERNAL,
                       "BatchNormalization running stats \"%s\": no batch statistics",
                       ty_graph_value_at(t->g, b->ids[0])->name);
      continue;
    }
    const ty_tensor *x = ty__train_value(t, t->bn[i].x_id);
    int rc = x ? ty__train_bn_check_batch(t, i, x, err, err_len) : 0;
    if (rc != 0) return rc;
    rc = x ? ty__train_bn_fold(&t->bn[i], x) : TY_EINTERNAL;
    if (rc != 0)
      return ty_errf(
          err, err_len, rc,
          "BatchNormalization running stats \"%s\": input \"%s\" missing or not [N, C, ...]",
          ty_graph_value_at(t->g, t->bn[i].ids[0])->name,
          ty_graph_value_at(t->g, t->bn[i].x_id)->name);
  }
  return 0;
}

int ty__train_bn_keep(const ty_train *t, int **out_ids, size_t *out_n) {
  *out_ids = calloc(2 * t->n_bn + 1, sizeof **out_ids);
  if (!*out_ids) return TY_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < t->n_bn; i++) {
    if (t->bn[i].x_id != TY_NO_VALUE) {
      (*out_ids)[n++] = t->bn[i].x_id;
      continue;
    }
    (*out_ids)[n++] = t->bn[i].mean_id;
    (*out_ids)[n++] = t->bn[i].var_id;
  }
  *out_n = n;
  return 0;
}

size_t ty_train_n_stats(const ty_train *t) {
  return 2 * t->n_bn;
}
const char *ty_train_stat_name(const ty_train *t, size_t i) {
  return i < 2 * t->n_bn ? ty_graph_value_at(t->g, t->bn[i / 2].ids[i % 2])->name : NULL;
}
const ty_tensor *ty_train_stat(const ty_train *t, size_t i) {
  return i < 2 * t->n_bn ? t->bn[i / 2].stat[i % 2] : NULL;
}
