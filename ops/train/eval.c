/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Evaluation on the test split: the plain model (no loss, no backward) with
 * the current weights, in batches whose activations stay within a training
 * step's memory (eval_rows below). Accuracy is the argmax of the
 * logits against the labels (per token for a token stream); the loss is
 * the mean softmax cross-entropy (or the model's own loss output, added
 * up over the batches by its kind: eval_loss.c).
 *
 * Inference mode is a property of the graph evaluated, not only of the
 * executor: a model exported in training mode carries it in
 * BatchNormalization's training_mode attribute and Dropout's training_mode
 * input, which the kernels honour. So evaluation runs a copy of the model
 * with every such switch turned off (eval_g, inference.c), and Dropout is the identity
 * and BatchNormalization uses its running statistics, whatever the export
 * said: two evaluations of the same weights agree bit for bit (which
 * eval_pad.c relies on to tell whether a fixed batch's padding rows change
 * its real rows' predictions). Rank 0
 * alone evaluates, so only rank 0 holds that copy, without the weights:
 * it binds the trained ones (a plan's rank 0 gathers them first, where
 * its ranks cannot evaluate together). A flat plan's ranks evaluate
 * together instead (eval_shard.c), each on its blocks, and so do a
 * pipeline's stages (pipe_eval.c); this file then only dispatches.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "ops/memplan/memplan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double mib(uint64_t bytes) {
  return (double)bytes / 1048576.0;
}

/* The whole weights and running statistics a sharded run gathers on rank 0. */
static uint64_t gathered_bytes(const ty_train *t) {
  uint64_t whole = 0;
  for (size_t k = 0; k < t->np + 2 * t->n_bn; k++)
    whole += ty__train_plan_full_numel(t, ty__train_save_item(t, k, NULL)) * sizeof(float);
  return whole;
}

/* A model planned because it fits no device would be killed at its first
 * evaluation if rank 0 gathered weights beyond the device memory the plan
 * was made for: such runs skip evaluation and say so once. */
bool ty__train_ranks_evaluate(const ty_train *t) {
  return t->eval_shard || ty__train_pipe_evaluates(t);
}

static bool whole_fits(const ty_train *t) {
  if (ty__train_ranks_evaluate(t)) return true; /* no rank gathers anything */
  const ty_plan *p = ty__train_sharded(t) ? ty_train_plan(t) : NULL;
  return !p || !p->budget_bytes || p->memory_bytes + gathered_bytes(t) <= p->budget_bytes;
}

bool ty__train_eval_fits(ty_train *t) {
  if (whole_fits(t)) return true;
  const ty_plan *p = ty_train_plan(t);
  uint64_t whole = gathered_bytes(t);
  if (!t->eval_skip_said && t->opts.rank == 0)
    fprintf(ty__train_log(t),
            "evaluation skipped: it gathers the whole model's weights (%.1f MiB) on rank 0 "
            "beside the %.1f MiB its plan holds there, beyond the %.1f MiB per device the plan "
            "was made for; evaluate a checkpoint in one process where the model fits (trainrun "
            "--model M.onnx --config C.pb --checkpoint PATH --steps STEP, STEP the checkpoint's, "
            "resumes it, trains nothing and evaluates)\n",
            mib(whole), mib(p->memory_bytes), mib(p->budget_bytes));
  t->eval_skip_said = true;
  return false;
}

uint64_t ty__train_activation_bytes(const ty_train *t, const ty_graph *g, int64_t rows) {
  ty_memplan_opts mo = {.no_fusion = t->opts.no_fusion};
  ty_memplan_report r;
  char e[TY_ERR_LEN];
  return ty_memplan_report_graph(g, rows, &mo, e, sizeof e, &r) == 0 ? r.planned_bytes : 0;
}

/* The rows each rank's training step runs at once (one micro-batch). */
static uint32_t train_rows(const ty_train *t) {
  uint32_t world = t->opts.parallel ? 1 : t->opts.world_size;
  uint32_t rows = t->cfg->batch_size / world;
  if (t->cfg->micro_batches > 1) rows /= (uint32_t)t->cfg->micro_batches;
  return rows ? rows : 1;
}

/* What an evaluation batch's activations may take: a training step's
 * activations, or the floor, and on a sharded plan's rank 0 no more than
 * what the device has left beside the plan and the gathered weights
 * (eval_fits). */
static uint64_t eval_budget(const ty_train *t, const char **out_why) {
  uint64_t train = ty__train_activation_bytes(t, t->g, train_rows(t));
  uint64_t budget = train > TY__EVAL_FLOOR_BYTES ? train : TY__EVAL_FLOOR_BYTES;
  *out_why = train > TY__EVAL_FLOOR_BYTES ? "a training step's" : "the floor";
  const ty_plan *p = ty__train_sharded(t) ? ty_train_plan(t) : NULL;
  if (p && p->budget_bytes) {
    uint64_t held = p->memory_bytes + gathered_bytes(t);
    uint64_t left = held < p->budget_bytes ? p->budget_bytes - held : 0;
    if (left < budget) budget = left, *out_why = "what the plan's device has left";
  }
  return budget;
}

uint32_t ty__train_rows_within(const ty_train *t, const ty_graph *g, uint64_t budget,
                               uint32_t fallback, uint64_t *out_bytes) {
  uint64_t top = ty__train_activation_bytes(t, g, TY__EVAL_ROWS_MAX);
  if (top == 0) return *out_bytes = 0, fallback;
  if (top <= budget) return *out_bytes = top, TY__EVAL_ROWS_MAX;
  uint32_t lo = 1, hi = TY__EVAL_ROWS_MAX - 1; /* the answer is in [lo, hi] */
  uint64_t lo_bytes = 0;                       /* lo's, once measured */
  while (lo < hi) {
    uint32_t mid = lo + (hi - lo + 1) / 2;
    uint64_t b = ty__train_activation_bytes(t, g, mid);
    if (b <= budget)
      lo = mid, lo_bytes = b;
    else
      hi = mid - 1;
  }
  *out_bytes = lo_bytes ? lo_bytes : ty__train_activation_bytes(t, g, lo);
  return lo;
}

/* eval_rows: a fixed batch dim, config.eval_batch_size (feed.c refused
 * one other than the fixed dim), or the memory rule. */
static void choose_rows(ty_train *t) {
  uint32_t asked = t->cfg->eval_batch_size;
  if (t->fixed_batch || asked || !whole_fits(t)) { /* a skipped one says so instead */
    t->eval_rows = t->fixed_batch ? t->fixed_batch : asked ? asked : train_rows(t);
    return;
  }
  const char *why;
  uint64_t budget = eval_budget(t, &why), bytes = 0;
  uint32_t fallback = train_rows(t) < TY__EVAL_ROWS_MAX ? train_rows(t) : TY__EVAL_ROWS_MAX;
  t->eval_rows = ty__train_rows_within(t, t->eval_g, budget, fallback, &bytes);
  if (t->eval_rows == TY__EVAL_ROWS_MAX) return;
  FILE *log = ty__train_log(t);
  if (bytes)
    fprintf(log,
            "evaluation: batches of %u rows, %.1f MiB of activations (within %.1f MiB, %s; "
            "config.eval_batch_size sets it)\n",
            t->eval_rows, mib(bytes), mib(budget), why);
  else
    fprintf(log,
            "evaluation: batches of %u rows, a training step's (the model's activation sizes "
            "are not known before it runs; config.eval_batch_size sets it)\n",
            t->eval_rows);
}

bool ty__train_eval_pads(const ty_train *t) {
  return t->fixed_batch && !t->cfg->loss_output;
}

bool ty__train_eval_drops_last(const ty_train *t) {
  return t->fixed_batch && t->cfg->loss_output;
}

/* Rank 0 says once what a fixed batch with the model's own loss leaves
 * out (feed.c refused a test split shorter than the batch). */
static void say_dropped(const ty_train *t) {
  if (t->opts.rank != 0 || !ty__train_eval_drops_last(t)) return;
  uint64_t count = ty_dataset_count(t->test_ds), left = count % t->fixed_batch;
  if (left)
    fprintf(ty__train_log(t),
            "evaluation: the last %llu of the test split's %llu rows are not evaluated: the "
            "model's batch dim is fixed at %u and its own loss \"%s\" is a mean over every row "
            "of a batch\n",
            (unsigned long long)left, (unsigned long long)count, t->fixed_batch,
            t->cfg->loss_output);
}

void ty__train_eval_fill(const ty_train *t, size_t k, const ty_batch *b, ty_tensor *x) {
  ty_shape part = ty__train_feed_shape(t, k, b->n);
  size_t n = (size_t)ty_shape_numel(&part) * ty_dtype_size(t->feeds[k].dtype);
  memcpy(x->data, b->cols[k], n);
  memset((char *)x->data + n, 0, x->nbytes - n);
}

int ty__train_eval_setup(ty_train *t, char *err, size_t err_len) {
  int rc = ty__train_eval_loss_setup(t, err, err_len);
  if (rc != 0 || t->eval_shard) {
    if (rc == 0) ty__train_eval_shard_setup(t);
    return rc;
  }
  if (t->test_ds) say_dropped(t);
  rc = ty__train_pipe_eval_setup(t, err, err_len);
  if (rc != 0 || ty__train_pipe_evaluates(t) || !t->test_ds || t->opts.rank != 0) return rc;
  rc = ty_graph_clone(t->model, err, err_len, &t->eval_g); /* no encoding beside it */
  size_t freed = 0; /* eval_setup binds the trained tensors over these */
  if (rc == 0) rc = ty__train_drop_weights(t, t->eval_g, &freed);
  if (rc == 0) rc = ty__train_inference_mode(t->eval_g);
  if (rc == 0) choose_rows(t);
  return rc;
}

/* Cross-entropy and argmax over logits laid out [outer, classes, inner]
 * (classes on axis 1: inner = the trailing dims; classes last: inner = 1);
 * labels are [outer, inner]. Labels equal to ignore (when ignores) count
 * in neither the loss nor the accuracy; others outside [0, classes) were
 * refused when the data was opened, so the check here only keeps a bad
 * batch from reading out of bounds. */
static void batch_ce(const ty_train *t, const float *x, const int64_t *y, int64_t outer,
                     int64_t classes, int64_t inner, ty__eval_tally *a) {
  double total = 0;
  for (int64_t b = 0; b < outer; b++)
    for (int64_t i = 0; i < inner; i++) {
      const float *r = x + b * classes * inner + i;
      int64_t label = y[b * inner + i], best = 0;
      if (label < 0 || label >= classes || (t->ignores && label == t->ignore)) continue;
      for (int64_t k = 1; k < classes; k++)
        if (r[k * inner] > r[best * inner]) best = k;
      double mx = r[best * inner], s = 0;
      for (int64_t k = 0; k < classes; k++)
        s += exp((double)r[k * inner] - mx);
      total += log(s) + mx - r[label * inner];
      a->correct += best == label;
      a->count++;
    }
  a->loss += total;
}

int ty__train_tally_logits(const ty_train *t, const float *x, const ty_shape *s, const ty_batch *b,
                           ty__eval_tally *a) {
  if (s->rank < 2 || s->dims[0] != b->n) return TY_EINVAL;
  int64_t classes = t->class_last ? s->dims[s->rank - 1] : s->dims[1];
  int64_t inner = t->class_last ? 1 : ty_shape_span(s, 2, s->rank),
          outer = ty_shape_numel(s) / classes / inner;
  const ty_data_column *lc = ty_dataset_column(t->test_ds, (size_t)t->label_feed);
  if ((uint64_t)(outer * inner) != (uint64_t)lc->elems * b->n) return TY_EINVAL;
  batch_ce(t, x, b->cols[t->label_feed], outer, classes, inner, a);
  a->rows += b->n;
  return 0;
}

int ty__train_bind_trained(const ty_train *t, ty_exec *e, const ty_graph *g, char *err,
                           size_t err_len) {
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < t->np + 2 * t->n_bn; k++) {
    ty_tensor *x;
    const char *name = ty_graph_value_at(t->g, ty__train_save_item(t, k, &x))->name;
    if (ty_graph_find_value(g, name) != TY_NO_VALUE) rc = ty_exec_bind(e, name, x, err, err_len);
  }
  return rc;
}

const char *ty__train_prediction(const ty_train *t) {
  return t->cfg->loss_output ? t->cfg->loss_output : t->cfg->logits_output;
}

int ty__train_tally(const ty_train *t, const ty_tensor *o, const ty_batch *b, ty__eval_tally *a,
                    char *err, size_t err_len) {
  bool loss = t->cfg->loss_output != NULL;
  int rc = !o || o->dtype != TY_DTYPE_F32 ? TY_EINTERNAL : 0;
  if (rc == 0 && loss && ty_tensor_numel(o) == 1)
    return ty__train_tally_loss(t, ty_tensor_f32(o)[0], b, a, err, err_len);
  if (rc == 0 && loss) {
    rc = TY_EINVAL;
  } else if (rc == 0) {
    ty_shape s = o->shape;
    if (s.rank > 0 && s.dims[0] > b->n && ty__train_eval_pads(t)) s.dims[0] = b->n;
    rc = ty__train_tally_logits(t, o->data, &s, b, a);
  }
  return rc ? ty_errf(err, err_len, rc, "evaluate: output \"%s\" is not %s",
                      ty__train_prediction(t),
                      loss ? "a float loss" : "float logits matching the labels")
            : 0;
}

static int eval_setup(ty_train *t, ty_exec **out_e, ty_loader **out_l, char *err, size_t err_len) {
  const ty_graph *g = t->eval_g;
  bool full = ty__train_sharded(t); /* a plan's rank 0 evaluates the gathered full weights */
  if (full && (!t->full_params || !t->full_stats))
    return ty_errf(err, err_len, TY_ESTATE,
                   "evaluate: a plan's weights must be gathered on rank 0 first");
  ty_exec_opts eo = {.no_fusion = t->opts.no_fusion, .jit = t->jit, .workers = t->opts.workers};
  int rc = ty_exec_create(g, &eo, out_e);
  for (size_t i = 0; rc == 0 && i < t->np; i++)
    rc = ty_exec_bind(*out_e, ty_graph_value_at(t->g, t->param_ids[i])->name,
                      full ? t->full_params[i] : t->params[i], err, err_len);
  for (size_t i = 0; rc == 0 && i < t->n_bn; i++) /* inference uses the running statistics */
    for (int k = 0; rc == 0 && k < 2; k++)
      rc = ty_exec_bind(*out_e, ty_graph_value_at(t->g, t->bn[i].ids[k])->name,
                        full ? t->full_stats[2 * i + (size_t)k] : t->bn[i].stat[k], err, err_len);
  ty_loader_opts lo = {
      .batch_size = t->eval_rows, .world_size = 1, .drop_last = ty__train_eval_drops_last(t)};
  if (rc == 0) rc = ty_loader_create(t->test_ds, &lo, out_l, err, err_len);
  if (rc == 0) rc = ty_loader_start_epoch(*out_l, 0, 0);
  return rc;
}

static int eval_batch(ty_train *t, ty_exec *e, const ty_batch *b, ty__eval_tally *a, char *err,
                      size_t err_len) {
  ty_tensor *in[TY_DATA_MAX_COLUMNS] = {0};
  int rc = 0;
  for (size_t k = 0; rc == 0 && k < t->n_feeds; k++) {
    const ty__feed *f = &t->feeds[k];
    if (!f->model_input) continue;
    ty_shape s = ty__train_feed_shape(t, k, t->fixed_batch ? t->fixed_batch : b->n);
    rc = ty_tensor_create(f->dtype, &s, &in[k]);
    if (rc == 0) ty__train_eval_fill(t, k, b, in[k]);
    if (rc == 0) rc = ty_exec_bind(e, t->names[k], in[k], err, err_len);
  }
  if (rc == 0) rc = ty_exec_run(e, err, err_len);
  bool mixes = false; /* the padding changes the rows' predictions: not evaluated */
  if (rc == 0 && b->n < t->eval_rows && ty__train_eval_pads(t))
    rc = ty__train_eval_pad_mixes(t, e, b, in, &mixes, err, err_len);
  if (rc == 0 && !mixes)
    rc = ty__train_tally(t, ty_exec_output(e, ty__train_prediction(t)), b, a, err, err_len);
  for (size_t k = 0; k < TY_DATA_MAX_COLUMNS; k++)
    ty_tensor_destroy(in[k]);
  return rc;
}

/* Rank 0's evaluation of the whole weights. */
static int evaluate_whole(ty_train *t, ty__eval_tally *a, char *err, size_t err_len) {
  ty_exec *e = NULL;
  ty_loader *l = NULL;
  int rc = eval_setup(t, &e, &l, err, err_len);
  ty_batch b;
  while (rc == 0 && (rc = ty_loader_next(l, &b)) == 1)
    rc = eval_batch(t, e, &b, a, err, err_len);
  ty_loader_destroy(l);
  ty_exec_destroy(e);
  return rc;
}

int ty_train_evaluate(ty_train *t, double *out_accuracy, double *out_loss, char *err,
                      size_t err_len) {
  if (!t->test_ds)
    return ty_errf(err, err_len, TY_ESTATE, "evaluate: the config names no test data");
  bool stages = ty__train_pipe_evaluates(t);
  if (!t->eval_g && !stages)
    return ty_errf(err, err_len, TY_ESTATE, "evaluate: rank %u does not evaluate; rank 0 does",
                   t->opts.rank);
  ty__eval_tally a = {0};
  int rc = ty__train_gpu_sync(t, err, err_len); /* the weights, from the device */
  if (rc == 0)
    rc = t->eval_shard ? ty__train_eval_sharded(t, &a, err, err_len)
         : stages      ? ty__train_pipe_evaluate(t, &a, err, err_len)
                       : evaluate_whole(t, &a, err, err_len);
  if (rc != 0) return rc;
  t->eval_counted = a.count;
  t->eval_seen = a.rows;
  t->eval_weightless = t->cfg->loss_output && t->eval_loss_kind == TY__EVAL_LOSS_WEIGHTED &&
                       a.count && a.weight == 0;
  *out_accuracy = t->cfg->loss_output || !a.count ? -1 : (double)a.correct / (double)a.count;
  *out_loss = ty__train_eval_loss(t, &a);
  return 0;
}
