/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The training graph's loss: a copy of the model (export + re-import, so
 * the caller's graph stays exportable as a plain ONNX model) with either
 * the builtin SoftmaxCrossEntropyLoss appended over the configured logits,
 * or the model's own loss output found and checked. It owns the labels'
 * input: its shape comes from the label data, or without data (planning on
 * the controller) from the logits' shape, and a mismatch with the logits is
 * refused here, naming the class-axis setting that would fit, rather than
 * by the loss kernel on the first batch. Token streams ([N, T, V] logits)
 * are flattened to [N*T, V] as F.cross_entropy does.
 *
 * Runs once per ty_train_create (and per plan on the controller); nothing
 * here is on the per-step path.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdlib.h>

/* The loss on [N*T, V] for logits [N, T, V] (classes last, token streams):
 * Flatten the logits and Reshape the labels [N, T] to [N*T], as
 * F.cross_entropy(logits.view(-1, V), y.view(-1)) does. */
static int flatten_tokens(ty_train *t, int *logits, int *labels) {
  int rank = ty_graph_value_at(t->g, *logits)->shape.rank, idx, rc = 0;
  if (rank > 2) {
    int flat;
    if ((rc = ty_graph_add_value(t->g, "trainyard.logits_flat", TY_DTYPE_INVALID, NULL, &flat)) !=
            0 ||
        (rc = ty_graph_add_node(t->g, TY_OP_FLATTEN, "trainyard.logits_flat", logits, 1, &flat, 1,
                                &idx)) != 0 ||
        (rc = ty_graph_node_set_int(t->g, (size_t)idx, "axis", rank - 1)) != 0)
      return rc;
    *logits = flat;
  }
  ty_shape vs = ty_shape_make(1, (int64_t[]){1});
  ty_tensor *minus1;
  int shape, flat;
  if ((rc = ty_tensor_create(TY_DTYPE_I64, &vs, &minus1)) != 0) return rc;
  ((int64_t *)minus1->data)[0] = -1;
  if ((rc = ty_graph_add_value(t->g, "trainyard.labels_shape", TY_DTYPE_I64, &vs, &shape)) != 0 ||
      (rc = ty_graph_set_initializer(t->g, shape, minus1)) != 0) {
    ty_tensor_destroy(minus1);
    return rc;
  }
  if ((rc = ty_graph_add_value(t->g, "trainyard.labels_flat", TY_DTYPE_INVALID, NULL, &flat)) !=
          0 ||
      (rc = ty_graph_add_node(t->g, TY_OP_RESHAPE, "trainyard.labels_flat", (int[]){*labels, shape},
                              2, &flat, 1, &idx)) != 0)
    return rc;
  *labels = flat;
  return 0;
}

/* The labels' shape: [batch, the label data's dims per sample]. */
static int labels_of_data(const ty_train *t, ty_shape *out, char *err, size_t err_len) {
  const ty_data_column *lc = ty_dataset_column(t->train_ds, (size_t)t->label_feed);
  if (lc->ndims + 1 > TY_MAX_RANK)
    return ty_errf(err, err_len, TY_EINVAL, "%s: labels of %u dims", lc->path, lc->ndims);
  *out = (ty_shape){.rank = (int)lc->ndims + 1};
  out->dims[0] = TY_DIM_BATCH;
  for (uint32_t d = 0; d < lc->ndims; d++)
    out->dims[d + 1] = (int64_t)lc->dims[d];
  return 0;
}

/* Without the data: the shape SoftmaxCrossEntropyLoss wants for the
 * logits, which the data must have anyway: the logits' dims without the
 * class axis (axis 1, or the last for a token stream: [N, C] -> [N],
 * [N, T, V] -> [N, T]). */
static bool dims_known_after_batch(const ty_shape *s) {
  bool known = s->rank >= 2;
  for (int d = 1; known && d < s->rank; d++)
    known = s->dims[d] >= 0;
  return known;
}

/* The logits' shape; where import left a dim unknown because it comes
 * from shape arithmetic (a ViT's Expand of a class token to Shape(x)[0]),
 * the shape at the config's batch, where that arithmetic is constant. */
static int logits_shape(const ty_train *t, int logits, ty_shape *out, char *err, size_t err_len) {
  *out = ty_graph_value_at(t->g, logits)->shape;
  if (dims_known_after_batch(out)) return 0;
  size_t nv = ty_graph_n_values(t->g);
  ty_shape *at = malloc(nv * sizeof *at);
  if (!at) return TY_ENOMEM;
  int64_t batch = t->cfg->batch_size > 0 ? (int64_t)t->cfg->batch_size : 1;
  int rc = ty__graph_shapes_at(t->g, batch, at, err, err_len);
  if (rc == 0) *out = at[logits];
  free(at);
  return rc;
}

static int labels_of_logits(const ty_train *t, int logits, ty_shape *out, char *err,
                            size_t err_len) {
  ty_shape ls;
  int rc = logits_shape(t, logits, &ls, err, err_len);
  if (rc != 0) return rc;
  int classes = t->class_last ? ls.rank - 1 : 1;
  if (!dims_known_after_batch(&ls))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.softmax_cross_entropy.logits_output: \"%s\" needs a known shape "
                   "[batch, classes, ...] to derive the labels' shape without the data",
                   ty_graph_value_at(t->g, logits)->name);
  *out = (ty_shape){.rank = ls.rank - 1};
  for (int d = 0, k = 0; d < ls.rank; d++)
    if (d != classes) out->dims[k++] = ls.dims[d];
  out->dims[0] = TY_DIM_BATCH; /* as the data's, whatever the model fixed */
  return 0;
}

/* The labels fit the logits with the classes on axis cls: one dim fewer,
 * the others equal (the batch and unknown dims match anything). */
static bool labels_fit(const ty_shape *lg, const ty_shape *lb, int cls) {
  if (lg->rank < 2 || lb->rank != lg->rank - 1) return false;
  for (int d = 1, k = 1; d < lg->rank; d++) {
    if (d == cls) continue;
    int64_t a = lg->dims[d], b = lb->dims[k++];
    if (a >= 0 && b >= 0 && a != b) return false;
  }
  return true;
}

/* Labels of the logits' rank: a trailing dim of 1 (y[:, None], a
 * column of a table) or the logits' own shape (one-hot or soft targets).
 * The hint for each, or "" when neither. */
static const char *label_rank_hint(const ty_shape *lg, const ty_shape *lb, int cls) {
  if (lb->rank != lg->rank) return "";
  if (lb->dims[lb->rank - 1] == 1) {
    ty_shape squeezed = *lb;
    squeezed.rank--;
    if (labels_fit(lg, &squeezed, cls))
      return "; they have a trailing dim of 1: save the class indices without it "
             "(numpy: y.squeeze(-1))";
  }
  for (int d = 1; d < lg->rank; d++)
    if (lg->dims[d] >= 0 && lb->dims[d] >= 0 && lg->dims[d] != lb->dims[d]) return "";
  return "; they have the logits' shape (one-hot or probabilities?): the builtin loss takes "
         "int64 class indices (numpy: y.argmax(axis=1)); for soft targets make the model "
         "return its loss and set loss_output";
}

/* Labels [N, T] beside logits [N, T, V] are a language model's with the
 * default class axis: say which setting fits, before the loss node fails
 * on the first batch with ONNX's words. (A token stream's windows are
 * checked against the model's input, which names the context.) */
static int check_label_shape(const ty_train *t, int logits, char *err, size_t err_len) {
  if (t->cfg->data_kind == TY_TRAIN_DATA_TOKENS) return 0;
  ty_shape lg, lb = ty_graph_value_at(t->g, t->label_id)->shape;
  int rc = logits_shape(t, logits, &lg, err, err_len);
  if (rc != 0 || lg.rank < 2 || lb.rank < 0) return rc; /* unknown: the loss checks each batch */
  int cls = t->class_last ? lg.rank - 1 : 1;
  if (labels_fit(&lg, &lb, cls)) return 0;
  bool other = labels_fit(&lg, &lb, t->class_last ? 1 : lg.rank - 1);
  char a[96], b[96];
  ty_shape_format(&lg, a, sizeof a);
  ty_shape_format(&lb, b, sizeof b);
  return ty_errf(err, err_len, TY_EINVAL,
                 "config.label_input: labels \"%s\" %s do not fit the logits \"%s\" %s with the "
                 "classes on their %s axis%s",
                 t->cfg->label_input, b, ty_graph_value_at(t->g, logits)->name, a,
                 t->class_last ? "last" : "second",
                 !other          ? label_rank_hint(&lg, &lb, cls)
                 : t->class_last ? "; they fit with the classes second: set "
                                   "softmax_cross_entropy.class_axis: CLASS_AXIS_SECOND"
                                 : "; they fit with the classes last: set "
                                   "softmax_cross_entropy.class_axis: CLASS_AXIS_LAST");
}

/* field names a value that is no output of the model: say which are. */
static int not_an_output(const ty_train *t, const char *field, const char *name, char *err,
                         size_t err_len) {
  char list[256];
  ty__train_name_list(t->model, true, list, sizeof list);
  return ty_errf(err, err_len, TY_EINVAL,
                 "%s: \"%s\" is not an output of the model (its outputs: %s)", field, name, list);
}

/* config.loss_output must be one float: a model returning its logits (or
 * any per-sample value) is told what to set instead. */
static int check_scalar_loss(const ty_train *t, char *err, size_t err_len) {
  const ty_graph_value *v = ty_graph_value_at(t->g, t->loss_id);
  if (v->dtype == TY_DTYPE_F32 && ty_shape_numel(&v->shape) == 1) return 0;
  char shape[128];
  ty_shape_format(&v->shape, shape, sizeof shape);
  return ty_errf(err, err_len, TY_EINVAL,
                 "config.loss_output: \"%s\" is %s %s, not a loss (one float32 value): for class "
                 "scores set softmax_cross_entropy { logits_output: \"%s\" } instead, or make "
                 "the model return its mean loss (e.g. ((pred - y) ** 2).mean())",
                 v->name, ty_dtype_name(v->dtype), shape, v->name);
}

/* A new value `name` computed by op over in[0..n) into t->g; TY_NO_VALUE
 * on failure (rc set). */
static int add_op(ty_train *t, ty_op op, const char *name, const int *in, int n, int *rc,
                  int *out_idx) {
  int v = TY_NO_VALUE;
  if (*rc == 0) *rc = ty_graph_add_value(t->g, name, TY_DTYPE_INVALID, NULL, &v);
  if (*rc == 0) *rc = ty_graph_add_node(t->g, op, name, in, n, &v, 1, out_idx);
  return *rc == 0 ? v : TY_NO_VALUE;
}

/* A scalar float Constant node (not an initializer: those may be trained). */
static int scalar(ty_train *t, const char *name, float x, int *rc) {
  int idx = -1, v = add_op(t, TY_OP_CONSTANT, name, NULL, 0, rc, &idx);
  ty_tensor *k = NULL;
  if (*rc == 0) *rc = ty_tensor_create(TY_DTYPE_F32, &(ty_shape){.rank = 0}, &k);
  if (*rc == 0) ty_tensor_f32(k)[0] = x;
  if (*rc == 0) *rc = ty_graph_node_set_tensor(t->g, (size_t)idx, "value", k);
  return v;
}

/* A scalar int64 Constant node. */
static int scalar_i64(ty_train *t, const char *name, int64_t x, int *rc) {
  int idx = -1, v = add_op(t, TY_OP_CONSTANT, name, NULL, 0, rc, &idx);
  ty_tensor *k = NULL;
  if (*rc == 0) *rc = ty_tensor_create(TY_DTYPE_I64, &(ty_shape){.rank = 0}, &k);
  if (*rc == 0) ((int64_t *)k->data)[0] = x;
  if (*rc == 0) *rc = ty_graph_node_set_tensor(t->g, (size_t)idx, "value", k);
  return v;
}

/* The smoothing term with ignored labels: the mean over the labels not
 * ignored of -mean over classes of LogSoftmax(logits), as
 * NegativeLogLikelihoodLoss(ReduceMean(logp, class axis, keepdims),
 * labels' , ignore_index) with labels' 0 where kept and ignore_index
 * where ignored: a loss of one class whose ignore_index mean divides by
 * the same count as the cross-entropy's, over the global batch too
 * (ops/shard/wmean.c treats both alike). */
static int smooth_ignoring(ty_train *t, int lsm, int labels, int cls, int *rc) {
  int idx = -1;
  int mean = add_op(t, TY_OP_REDUCE_MEAN, "trainyard.smooth_mean", &lsm, 1, rc, &idx);
  if (*rc == 0) *rc = ty_graph_node_set_ints(t->g, (size_t)idx, "axes", (int64_t[]){cls}, 1);
  if (*rc == 0) *rc = ty_graph_node_set_int(t->g, (size_t)idx, "keepdims", 1);
  int ig = scalar_i64(t, "trainyard.smooth_ignore", t->ignore, rc);
  int zero = scalar_i64(t, "trainyard.smooth_class", 0, rc);
  int eq = add_op(t, TY_OP_EQUAL, "trainyard.smooth_ignored", (int[]){labels, ig}, 2, rc, NULL);
  int lab =
      add_op(t, TY_OP_WHERE, "trainyard.smooth_labels", (int[]){eq, labels, zero}, 3, rc, NULL);
  int nll = add_op(t, TY_OP_NLL_LOSS, "trainyard.smooth_nll", (int[]){mean, lab}, 2, rc, &idx);
  if (*rc == 0) *rc = ty_graph_node_set_int(t->g, (size_t)idx, "ignore_index", t->ignore);
  return nll;
}

/* Label smoothing e over the cross-entropy ce: (1 - e) * ce + e * smooth,
 * smooth = -mean of LogSoftmax(logits) over every element (the mean over
 * samples of -mean over classes: every sample has as many classes), or
 * over the labels not ignored where the loss ignores some. */
static int smooth(ty_train *t, int logits, int labels, int ce) {
  float e = t->cfg->label_smoothing;
  int rc = 0, idx = -1, cls = t->class_last ? -1 : 1; /* token logits are flattened [N*T, V] */
  int lsm = add_op(t, TY_OP_LOG_SOFTMAX, "trainyard.smooth_logp", &logits, 1, &rc, &idx);
  if (rc == 0) rc = ty_graph_node_set_int(t->g, (size_t)idx, "axis", cls);
  int term, sign = t->ignores ? 1 : -1; /* the NLL is -mean log p already */
  if (t->ignores) {
    term = smooth_ignoring(t, lsm, labels, cls, &rc);
  } else {
    term = add_op(t, TY_OP_REDUCE_MEAN, "trainyard.smooth_mean", &lsm, 1, &rc, &idx);
    if (rc == 0) rc = ty_graph_node_set_int(t->g, (size_t)idx, "keepdims", 0);
  }
  int keep = scalar(t, "trainyard.smooth_keep", 1 - e, &rc);
  int weigh = scalar(t, "trainyard.smooth_weight", (float)sign * e, &rc);
  int a = add_op(t, TY_OP_MUL, "trainyard.smooth_ce", (int[]){ce, keep}, 2, &rc, NULL);
  int b = add_op(t, TY_OP_MUL, "trainyard.smooth_term", (int[]){term, weigh}, 2, &rc, NULL);
  t->loss_id = add_op(t, TY_OP_ADD, "trainyard.loss", (int[]){a, b}, 2, &rc, NULL);
  return rc;
}

/* The labels' ignore_index (torch's -100 unless the config gives one)
 * becomes the loss node's attribute where the label data of either split
 * holds it, and always in a planned graph (a plan's rank, the controller
 * planning without the data: their fingerprints must agree, and plans
 * run on the CPU executor anyway). Elsewhere, with no label ignored, the
 * mean is the same without it, and the node stays one the GPU executor
 * and plain data parallelism run (one with ignore_index runs on the CPU:
 * docs/training.md, "Ignored labels"). */
static void find_ignored(ty_train *t) {
  const ty_train_config *c = t->cfg;
  t->ignore = c->ignore_index_set ? c->ignore_index : -100;
  t->ignores = t->planned || t->opts.parallel != NULL;
  const ty_dataset *sets[2] = {t->train_ds, t->test_ds};
  for (int s = 0; s < 2 && t->label_feed >= 0; s++)
    t->ignores =
        t->ignores || (sets[s] && ty_dataset_holds(sets[s], (size_t)t->label_feed, t->ignore));
}

/* Logits of rank 0 or 1 (Linear(h, 1) and a flatten: one score per
 * sample) have no class axis, and [N, 1] has one class (a softmax of 1,
 * loss 0: nothing trains): said by the config field, with the loss that
 * one score per sample takes, before the loss node refuses them with
 * ONNX's words or the labels with a class count of 1. An unknown rank is
 * left to the loss kernel. */
static int check_logits_rank(const ty_train *t, int logits, char *err, size_t err_len) {
  ty_shape lg = ty_graph_value_at(t->g, logits)->shape;
  int rc = lg.rank < 0 ? logits_shape(t, logits, &lg, err, err_len) : 0;
  bool one_class = lg.rank == 2 && lg.dims[1] == 1; /* softmax of one class is 1: loss 0 */
  if (rc != 0 || lg.rank < 0 || (lg.rank >= 2 && !one_class)) return rc;
  char a[96], what[32];
  ty_shape_format(&lg, a, sizeof a);
  snprintf(what, sizeof what, one_class ? "one class" : "rank %d", lg.rank);
  return ty_errf(err, err_len, TY_EINVAL,
                 "config.softmax_cross_entropy.logits_output: \"%s\" is %s, %s; the builtin "
                 "loss takes logits [batch, classes, ...] of two classes or more (rank 2 or "
                 "more; a softmax over one class is 1, its loss 0). One score per sample "
                 "is a binary classifier's: make the model return its loss, e.g. "
                 "F.binary_cross_entropy_with_logits(score, y.float()), and set loss_output; or "
                 "give it two classes (Linear(h, 2)) and keep softmax_cross_entropy",
                 ty_graph_value_at(t->g, logits)->name, a, what);
}

/* The builtin loss: a labels input shaped like the label data (unless
 * the model has one), then SoftmaxCrossEntropyLoss over the logits (and
 * the label-smoothing term). */
static int builtin_loss(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  int logits = ty_graph_find_value(t->g, c->logits_output), idx, rc;
  if (logits == TY_NO_VALUE || !ty_graph_value_at(t->g, logits)->is_output)
    return not_an_output(t, "config.softmax_cross_entropy.logits_output", c->logits_output, err,
                         err_len);
  t->logits_id = logits;
  t->class_last = c->data_kind == TY_TRAIN_DATA_TOKENS || c->class_last;
  if ((rc = check_logits_rank(t, logits, err, err_len)) != 0) return rc;
  if (t->label_id == TY_NO_VALUE) {
    ty_shape ls;
    rc = t->train_ds ? labels_of_data(t, &ls, err, err_len)
                     : labels_of_logits(t, logits, &ls, err, err_len);
    if (rc != 0 ||
        (rc = ty_graph_add_value(t->g, c->label_input, TY_DTYPE_I64, &ls, &t->label_id)) != 0 ||
        (rc = ty_graph_mark_input(t->g, t->label_id)) != 0)
      return rc;
  }
  if ((rc = check_label_shape(t, logits, err, err_len)) != 0) return rc;
  int labels = t->label_id;
  if (t->class_last && (rc = flatten_tokens(t, &logits, &labels)) != 0) return rc;
  find_ignored(t);
  int ce = TY_NO_VALUE;
  const char *ce_name = c->label_smoothing > 0 ? "trainyard.loss_ce" : "trainyard.loss";
  if ((rc = ty_graph_add_value(t->g, ce_name, TY_DTYPE_F32, NULL, &ce)) != 0 ||
      (rc = ty_graph_add_node(t->g, TY_OP_SOFTMAX_CE_LOSS, ce_name, (int[]){logits, labels}, 2, &ce,
                              1, &idx)) != 0 ||
      (t->ignores &&
       (rc = ty_graph_node_set_int(t->g, (size_t)idx, "ignore_index", t->ignore)) != 0))
    return rc;
  t->loss_id = ce;
  if (c->label_smoothing > 0 && (rc = smooth(t, logits, labels, ce)) != 0) return rc;
  if ((rc = ty_graph_mark_output(t->g, t->loss_id)) != 0) return rc;
  return ty_graph_infer_shapes(t->g, err, err_len);
}

/* Copies the model and adds the builtin loss, or finds loss_output. The
 * copy is a clone, not an encoding re-imported: that held the encoding and
 * its parse beside both graphs, the peak of a large model's start. */
int ty__train_build_loss(ty_train *t, char *err, size_t err_len) {
  const ty_train_config *c = t->cfg;
  int rc = ty_graph_clone(t->model, err, err_len, &t->g);
  if (rc != 0) return rc;
  t->logits_id = TY_NO_VALUE;
  t->label_id = ty_graph_find_value(t->g, c->label_input);
  if (!c->loss_output) return builtin_loss(t, err, err_len);
  t->loss_id = ty_graph_find_value(t->g, c->loss_output);
  if (t->loss_id == TY_NO_VALUE || !ty_graph_value_at(t->g, t->loss_id)->is_output)
    return not_an_output(t, "config.loss_output", c->loss_output, err, err_len);
  if ((rc = check_scalar_loss(t, err, err_len)) != 0) return rc;
  /* A token stream under NONE feeds no labels: the loss reads the ids. */
  bool need_labels = c->data_kind == TY_TRAIN_DATA_ARRAYS ? t->label_feed >= 0
                     : c->data_kind == TY_TRAIN_DATA_TOKENS
                         ? c->tokens.labels != TY_TRAIN_TOKENS_NONE
                         : true;
  if (need_labels &&
      (t->label_id == TY_NO_VALUE || !ty_graph_value_at(t->g, t->label_id)->is_input))
    return ty_errf(err, err_len, TY_EINVAL,
                   "config.label_input: \"%s\" is not an input of the model", c->label_input);
  return 0;
}
