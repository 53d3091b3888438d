/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a loss reduces the batch, for micro-batches and evaluation (plan.h:
 * ty_plan_summed_loss, ty_plan_mean_loss, ty_plan_reads_unscaled,
 * ty_plan_check_summed_losses). A pipeline or gradient accumulation
 * averages its M micro-batches' losses: the batch's loss for a mean over
 * the batch, 1 / M of it for a sum. So a node whose output sums over the
 * batch and reaches the loss through linear ops only is multiplied by M
 * in the graph stages are cut from, and a metric that reads it reads it
 * divided by M again.
 *
 * How the batch is reduced is read from the symbolic shapes import infers
 * (the batch dim is TY_DIM_BATCH): a node reduces it when it reduces an
 * axis of that size, or every axis of a value whose shape is not concrete
 * (x.view(-1).sum(): the flattened dim is unknown, the batch inside it).
 *
 *   sum:   SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss with
 *          reduction sum; ReduceSum, ReduceSumSquare, ReduceL1 over it
 *   mean:  ReduceMean over it, and any sum divided on its way to the loss
 *          by a count computed from a Shape or Size (sum / y.numel(),
 *          / x.shape[0]): a micro-batch's mean already
 *   other: ReduceMax, ReduceMin, ReduceProd, ReduceL2, ReduceLogSum(Exp)
 *
 * A sum that reaches the loss through a nonlinear op (sqrt(sum)), a mean
 * that reaches it through one without meeting the batch dim again
 * (sqrt(mse): x - x.mean(0) is the forward's, per micro-batch as
 * BatchNormalization), or an "other" reduction that reaches it linearly,
 * is neither the micro-batches' sum nor their mean:
 * ty_plan_check_summed_losses refuses several micro-batches naming the
 * node, and the planner plans one. An "other" reduction behind a nonlinear
 * op is left alone: that is the forward's arithmetic (x - x.max() before
 * an Exp), not a term of the loss.
 *
 * Only the loss the trainer differentiates counts (the config's
 * loss_output, else its builtin loss; the planner's request.loss): a
 * node it does not depend on, and a consumer that feeds only another
 * output, compute a metric (exp(mean CE), an accuracy), which no
 * gradient accumulates from and which is computed per micro-batch.
 */
#include "ops/plan/plan_internal.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdlib.h>
#include <string.h>

typedef enum { RED_NONE, RED_SUM, RED_MEAN, RED_OTHER } red_kind;
typedef enum { PATH_LINEAR, PATH_MEAN, PATH_NONLINEAR } path_kind;

/* Whether v is computed from a Shape or Size: a count that follows the
 * rows a micro-batch has. */
static bool from_shape(const ty_graph *g, int v, int depth) {
  const ty_graph_value *gv = ty_graph_value_at(g, v);
  const ty_graph_node *n =
      gv && gv->producer >= 0 ? ty_graph_node_at(g, (size_t)gv->producer) : NULL;
  if (!n || depth > 16) return false;
  if (n->op == TY_OP_SHAPE || n->op == TY_OP_SIZE) return true;
  for (int i = 0; i < n->n_inputs; i++)
    if (n->inputs[i] != TY_NO_VALUE && from_shape(g, n->inputs[i], depth + 1)) return true;
  return false;
}

/* The constant axes a reduction reads (attribute, or input 1 from an
 * initializer or a Constant node); -1 when given but not constant, 0
 * when absent (all). */
static int reduce_axes(const ty_graph *g, const ty_graph_node *n, int64_t *axes) {
  if (!ty__reduce_axes_is_input(n)) {
    const ty_graph_attr *a = ty_graph_node_attr(n, "axes");
    if (!a || a->n == 0) return 0;
    if (a->n > TY_MAX_RANK) return -1;
    memcpy(axes, a->ints, a->n * sizeof *axes);
    return (int)a->n;
  }
  int v = ty_graph_node_input(n, 1);
  if (v == TY_NO_VALUE) return 0;
  const ty_graph_value *gv = ty_graph_value_at(g, v);
  const ty_tensor *t = gv->init;
  const ty_graph_node *c = gv->producer >= 0 ? ty_graph_node_at(g, (size_t)gv->producer) : NULL;
  const ty_graph_attr *a = c && c->op == TY_OP_CONSTANT ? ty_graph_node_attr(c, "value") : NULL;
  if (!t && a && a->type == TY_ATTR_TENSOR) t = a->t;
  int64_t cnt = t ? ty_shape_numel(&t->shape) : -1;
  if (!t || t->dtype != TY_DTYPE_I64 || cnt < 0 || cnt > TY_MAX_RANK) return -1;
  memcpy(axes, ty_tensor_i64(t), (size_t)cnt * sizeof *axes);
  return (int)cnt;
}

/* Whether reduction n reduces its input's batch dim. */
static bool reduces_batch(const ty_graph *g, const ty_graph_node *n, bool *unclear) {
  const ty_shape *x = &ty_graph_value_at(g, n->inputs[0])->shape;
  int64_t axes[TY_MAX_RANK];
  int k = reduce_axes(g, n, axes);
  bool batch = false;
  *unclear = false;
  if (x->rank <= 0) return false;
  if (k == 0) {
    if (ty_graph_node_attr_int(n, "noop_with_empty_axes", 0) != 0) return false;
    return !ty_shape_is_concrete(x);
  }
  for (int d = 0; d < x->rank; d++)
    batch = batch || x->dims[d] == TY_DIM_BATCH;
  if (k < 0) {
    *unclear = batch;
    return batch;
  }
  for (int i = 0; i < k; i++) {
    int64_t a = axes[i] < 0 ? axes[i] + x->rank : axes[i];
    if (a >= 0 && a < x->rank && x->dims[a] == TY_DIM_BATCH) return true;
  }
  return false;
}

/* How node n reduces the batch. An integer result (a count of labels)
 * carries no gradient: scaling it would change no update. */
static red_kind reduction(const ty_graph *g, const ty_graph_node *n) {
  bool unclear;
  if (n->n_outputs < 1 || n->outputs[0] == TY_NO_VALUE ||
      ty_graph_value_at(g, n->outputs[0])->dtype != TY_DTYPE_F32)
    return RED_NONE;
  switch (n->op) {
  case TY_OP_SOFTMAX_CE_LOSS:
  case TY_OP_NLL_LOSS: {
    const char *r = ty_graph_node_attr_string(n, "reduction", "mean");
    return strcmp(r, "sum") == 0 ? RED_SUM : strcmp(r, "mean") == 0 ? RED_MEAN : RED_NONE;
  }
  case TY_OP_REDUCE_SUM:
  case TY_OP_REDUCE_SUM_SQUARE:
  case TY_OP_REDUCE_L1:
    if (!reduces_batch(g, n, &unclear)) return RED_NONE;
    return unclear ? RED_OTHER : RED_SUM;
  case TY_OP_REDUCE_MEAN:
    if (!reduces_batch(g, n, &unclear)) return RED_NONE;
    return unclear ? RED_OTHER : RED_MEAN;
  case TY_OP_REDUCE_MAX:
  case TY_OP_REDUCE_MIN:
  case TY_OP_REDUCE_PROD:
  case TY_OP_REDUCE_L2:
  case TY_OP_REDUCE_LOG_SUM:
  case TY_OP_REDUCE_LOG_SUM_EXP:
    return reduces_batch(g, n, &unclear) ? RED_OTHER : RED_NONE;
  default:
    return RED_NONE;
  }
}

/* Whether consumer c of a value (its input k) passes it on linearly. */
static bool linear(const ty_graph_node *c, int k) {
  switch (c->op) {
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_NEG:
  case TY_OP_IDENTITY:
  case TY_OP_RESHAPE:
  case TY_OP_FLATTEN:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
  case TY_OP_CAST:
  case TY_OP_SUM:
  case TY_OP_MEAN:
  case TY_OP_REDUCE_SUM:
  case TY_OP_REDUCE_MEAN:
    return true;
  case TY_OP_DIV:
    return k == 0;
  default:
    return false;
  }
}

/* A walk from a reduction's output towards the loss: `budget` consumers
 * to visit at most (a graph of diamonds would double the walk at each);
 * `at`, the first nonlinear consumer met. `feeds` (NULL: every output is
 * a loss) marks the values the loss depends on: a consumer that feeds
 * none of them computes a metric, which gets no gradient and is not
 * followed. */
typedef struct walk {
  const ty_graph *g;
  const bool *feeds;
  int loss; /* the loss value; TY_NO_VALUE with feeds NULL */
  int budget;
  const ty_graph_node *at;
} walk;

/* Whether consumer c computes something the walk's loss depends on. */
static bool toward_loss(const walk *w, const ty_graph_node *c) {
  for (int o = 0; w->feeds && o < c->n_outputs; o++)
    if (c->outputs[o] != TY_NO_VALUE && w->feeds[c->outputs[o]]) return true;
  return !w->feeds;
}

#define WALK_BUDGET 4096

/* How v reaches the graph's outputs: through linear ops, divided by a
 * count from a shape on the way (a mean), or through a nonlinear op. A
 * walk past its budget takes the rest as linear, as a chain of Adds
 * summing many terms is. */
static path_kind path(walk *w, int v) {
  path_kind worst = PATH_LINEAR;
  for (size_t i = 0; i < ty_graph_n_nodes(w->g) && worst != PATH_NONLINEAR; i++) {
    const ty_graph_node *c = ty_graph_node_at(w->g, i);
    for (int k = 0; k < c->n_inputs && worst != PATH_NONLINEAR; k++) {
      if (c->inputs[k] != v || !toward_loss(w, c) || w->budget-- <= 0) continue;
      bool square = c->op == TY_OP_MUL && c->n_inputs == 2 && c->inputs[0] == c->inputs[1];
      path_kind p = PATH_NONLINEAR;
      if (c->op == TY_OP_DIV && k == 0 && from_shape(w->g, c->inputs[1], 0))
        p = PATH_MEAN;
      else if (linear(c, k) && !square)
        p = c->outputs[0] == TY_NO_VALUE ? PATH_LINEAR : path(w, c->outputs[0]);
      else
        w->at = c;
      if (p > worst) worst = p;
      if (square) break; /* its other input is v too */
    }
  }
  return worst;
}

/* How node n's output reaches the loss (every output when feeds is
 * NULL); *out_at: the nonlinear op. */
static path_kind path_of(const ty_graph *g, const bool *feeds, const ty_graph_node *n,
                         const ty_graph_node **out_at) {
  walk w = {.g = g, .feeds = feeds, .budget = WALK_BUDGET};
  path_kind p = path(&w, n->outputs[0]);
  *out_at = w.at;
  return p;
}

/* Whether v, a statistic of the batch (its batch dim reduced away),
 * reaches the loss through a nonlinear op (first: the first met on the
 * way, NULL none yet) before any value that may hold the batch dim again:
 * sqrt(mse), whose micro-batches' mean is not the batch's. A value with
 * the batch dim takes the statistic into the forward (x - mean, x /
 * sqrt(var)), per micro-batch as BatchNormalization is: left alone. */
static bool nonlinear_statistic(walk *w, int v, const ty_graph_node *first) {
  if ((w->feeds ? v == w->loss : ty_graph_value_at(w->g, v)->is_output) && first) {
    w->at = first;
    return true;
  }
  for (size_t i = 0; i < ty_graph_n_nodes(w->g); i++) {
    const ty_graph_node *c = ty_graph_node_at(w->g, i);
    int o = c->n_outputs > 0 ? c->outputs[0] : TY_NO_VALUE;
    for (int k = 0; k < c->n_inputs; k++) {
      if (c->inputs[k] != v || o == TY_NO_VALUE || !toward_loss(w, c) || w->budget-- <= 0) continue;
      if (!ty_shape_is_concrete(&ty_graph_value_at(w->g, o)->shape)) break;
      bool square = c->op == TY_OP_MUL && c->n_inputs == 2 && c->inputs[0] == c->inputs[1];
      bool mean = c->op == TY_OP_DIV && k == 0 && from_shape(w->g, c->inputs[1], 0);
      const ty_graph_node *f = first || mean || (linear(c, k) && !square) ? first : c;
      if (nonlinear_statistic(w, o, f)) return true;
      break; /* c read v once more: the same walk */
    }
  }
  return false;
}

/* out[v]: whether the loss depends on value v (the loss included), by a
 * walk back through producers. */
static int mark_feeds(const ty_graph *g, int loss, bool *out) {
  size_t nv = ty_graph_n_values(g), top = 0;
  int *stack = malloc((nv + 1) * sizeof *stack);
  if (!stack) return TY_ENOMEM;
  out[loss] = true;
  stack[top++] = loss;
  while (top > 0) {
    const ty_graph_value *gv = ty_graph_value_at(g, stack[--top]);
    const ty_graph_node *n = gv->producer >= 0 ? ty_graph_node_at(g, (size_t)gv->producer) : NULL;
    for (int i = 0; n && i < n->n_inputs; i++) {
      int v = n->inputs[i];
      if (v == TY_NO_VALUE || out[v]) continue;
      out[v] = true;
      stack[top++] = v; /* each value once: at most nv on the stack */
    }
  }
  free(stack);
  return 0;
}

/* How n, a sum over the batch that reaches the loss linearly, is scaled
 * for M micro-batches. The stages multiply the node's output by M; a
 * consumer of it that computes nothing the loss depends on (a metric,
 * sqrt(s) beside the loss s) reads it divided by M again
 * (ty_plan_reads_unscaled), so the metric sees its micro-batch's own sum.
 * What a consumer that feeds the loss computes is scaled, though, and a
 * metric reading that through a nonlinear op (t = 0.05 s feeds the loss,
 * sqrt(t) a metric) would take the root of M times its sum, while leaving
 * s unscaled would give the loss 1 / M of its gradient: SUM_SHARED,
 * *out_at that op (or the consumer, for a metric that divides by a
 * count). A metric reading such a t linearly (2 t) gets M times its
 * micro-batch's value, which averages over the micro-batches as the loss
 * does. The check refuses SUM_SHARED and the stages scale SUM_SCALED,
 * both by this one function. */
typedef enum { SUM_NOT, SUM_SCALED, SUM_SHARED } sum_kind;

static sum_kind summed_of(const ty_graph *g, const bool *feeds, const ty_graph_node *n,
                          const ty_graph_node **out_at) {
  int s = n->outputs[0];
  *out_at = NULL;
  if (reduction(g, n) != RED_SUM || (feeds && !feeds[s])) return SUM_NOT;
  if (path_of(g, feeds, n, out_at) != PATH_LINEAR) return SUM_NOT;
  if (!feeds) return SUM_SCALED; /* every output walked: all add it up */
  walk loss_side = {.g = g, .feeds = feeds}, all = {.g = g, .budget = WALK_BUDGET};
  for (size_t i = 0; i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *c = ty_graph_node_at(g, i);
    for (int k = 0; k < c->n_inputs; k++) {
      if (c->inputs[k] != s || !toward_loss(&loss_side, c)) continue;
      if (c->outputs[0] != TY_NO_VALUE && path(&all, c->outputs[0]) != PATH_LINEAR) {
        *out_at = all.at ? all.at : c;
        return SUM_SHARED;
      }
      break;
    }
  }
  return SUM_SCALED;
}

/* *out_feeds: what loss depends on (mark_feeds); NULL for TY_NO_VALUE. */
static int feeds_of(const ty_graph *g, int loss, bool **out_feeds) {
  size_t nv = ty_graph_n_values(g);
  *out_feeds = NULL;
  if (loss == TY_NO_VALUE) return 0;
  if (loss < 0 || (size_t)loss >= nv) return TY_EINVAL;
  bool *feeds = calloc(nv + 1, sizeof *feeds);
  int rc = feeds ? mark_feeds(g, loss, feeds) : TY_ENOMEM;
  if (rc == 0)
    *out_feeds = feeds;
  else
    free(feeds);
  return rc;
}

int ty_plan_summed_loss(const ty_graph *g, int loss, const ty_graph_node *n, bool *out) {
  const ty_graph_node *at;
  bool *feeds = NULL;
  *out = false;
  if (loss != TY_NO_VALUE && (loss < 0 || (size_t)loss >= ty_graph_n_values(g))) return TY_EINVAL;
  if (reduction(g, n) != RED_SUM) return 0; /* most nodes: no walk, no table */
  int rc = feeds_of(g, loss, &feeds);
  if (rc == 0) *out = summed_of(g, feeds, n, &at) == SUM_SCALED;
  free(feeds);
  return rc;
}

int ty_plan_mean_loss(const ty_graph *g, int loss, const ty_graph_node *n, bool *out) {
  const ty_graph_node *at;
  bool *feeds = NULL;
  *out = false;
  if (loss != TY_NO_VALUE && (loss < 0 || (size_t)loss >= ty_graph_n_values(g))) return TY_EINVAL;
  red_kind r = reduction(g, n);
  if (r != RED_MEAN && r != RED_SUM) return 0; /* most nodes: no walk, no table */
  int rc = feeds_of(g, loss, &feeds);
  if (rc == 0 && (!feeds || feeds[n->outputs[0]])) {
    path_kind p = path_of(g, feeds, n, &at);
    *out = r == RED_MEAN ? p != PATH_NONLINEAR : p == PATH_MEAN;
  }
  free(feeds);
  return rc;
}

int ty_plan_reads_unscaled(const ty_graph *g, int loss, const ty_graph_node *c, int k, bool *out) {
  const ty_graph_node *at;
  bool *feeds = NULL;
  *out = false;
  if (loss != TY_NO_VALUE && (loss < 0 || (size_t)loss >= ty_graph_n_values(g))) return TY_EINVAL;
  int v = k >= 0 && k < c->n_inputs ? c->inputs[k] : TY_NO_VALUE;
  const ty_graph_value *gv = v != TY_NO_VALUE ? ty_graph_value_at(g, v) : NULL;
  const ty_graph_node *n =
      gv && gv->producer >= 0 ? ty_graph_node_at(g, (size_t)gv->producer) : NULL;
  if (loss == TY_NO_VALUE || !n || n->outputs[0] != v || reduction(g, n) != RED_SUM) return 0;
  int rc = feeds_of(g, loss, &feeds);
  walk w = {.g = g, .feeds = feeds};
  if (rc == 0) *out = summed_of(g, feeds, n, &at) == SUM_SCALED && !toward_loss(&w, c);
  free(feeds);
  return rc;
}

/* The reason node n (reduction r) makes micro-batches inexact, in err;
 * 0 when it does not. */
static int check_node(const ty_graph *g, const bool *feeds, int loss, const ty_graph_node *n,
                      red_kind r, char *err, size_t err_len) {
  const ty_graph_node *at = NULL;
  walk w = {.g = g, .feeds = feeds, .loss = loss, .budget = WALK_BUDGET};
  if (r == RED_MEAN && nonlinear_statistic(&w, n->outputs[0], NULL))
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "node \"%s\" (%s) averages over the batch and reaches the loss through "
                   "\"%s\" (%s), a nonlinear function of the batch's mean that the "
                   "micro-batches' mean is not",
                   n->name, ty_op_name(n->op), w.at->name, ty_op_name(w.at->op));
  if (r != RED_SUM && r != RED_OTHER) return 0;
  path_kind p = path_of(g, feeds, n, &at);
  if (r == RED_SUM && p == PATH_NONLINEAR)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "node \"%s\" (%s) sums over the batch and reaches the loss through "
                   "\"%s\" (%s), which is neither the micro-batches' sum nor their mean",
                   n->name, ty_op_name(n->op), at->name, ty_op_name(at->op));
  if (r == RED_OTHER && p == PATH_LINEAR)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "node \"%s\" (%s) reduces the batch dim into the loss neither as a sum nor "
                   "as a mean, which micro-batches cannot add up",
                   n->name, ty_op_name(n->op));
  /* the stages scale by summed_of too (ty_plan_summed_loss) */
  if (r == RED_SUM && p == PATH_LINEAR && summed_of(g, feeds, n, &at) == SUM_SHARED)
    return ty_errf(err, err_len, TY_EUNSUPPORTED,
                   "node \"%s\" (%s) sums over the batch into the loss and also into another "
                   "output through \"%s\" (%s), so the micro-batches cannot scale it for the "
                   "loss alone (give that output a sum of its own)",
                   n->name, ty_op_name(n->op), at->name, ty_op_name(at->op));
  return 0;
}

int ty_plan_check_summed_losses(const ty_graph *g, int loss, char *err, size_t err_len) {
  size_t nv = ty_graph_n_values(g);
  bool *feeds = NULL;
  if (loss != TY_NO_VALUE && (loss < 0 || (size_t)loss >= nv))
    return ty_errf(err, err_len, TY_EINVAL, "loss: value %d is not one of the graph's %zu", loss,
                   nv);
  if (loss != TY_NO_VALUE && !(feeds = calloc(nv + 1, sizeof *feeds))) return TY_ENOMEM;
  int rc = feeds ? mark_feeds(g, loss, feeds) : 0;
  for (size_t i = 0; rc == 0 && i < ty_graph_n_nodes(g); i++) {
    const ty_graph_node *n = ty_graph_node_at(g, i);
    red_kind r = reduction(g, n);
    if (r != RED_NONE && (!feeds || feeds[n->outputs[0]]))
      rc = check_node(g, feeds, loss, n, r, err, err_len);
  }
  free(feeds);
  return rc;
}
