/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The planner's sharding rules: every op as a loop nest (see model.c for
 * why). Each rule lists the op's loops, which of them a mesh axis may
 * split, and for each dim of each input and output the loop it runs along
 * (or none); plus the op's forward FLOPs. An op without a rule, or whose
 * shapes fit none, falls back to running replicated and says why.
 * Adding an op: write its loops here (or, for an op that moves or picks
 * elements, in rules_layout.c) and add it to model_dispatch; an
 * elementwise ONNX op only needs its name in elementwise_by_name. This
 * file also owns the building blocks the rules share (ty__rule_*).
 */
#include "ops/autodiff/autodiff.h"
#include "ops/kernels_internal.h"
#include "ops/plan/plan_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- loops and maps ------------------------------------------------------- */

int ty__rule_loop(ty__op *op, int64_t size, bool split, uint8_t role) {
  if (op->n_loops >= TY__PLAN_MAX_LOOPS) return -1;
  ty__loop *l = &op->loops[op->n_loops];
  l->size = size;
  l->split = split && size >= 2;
  l->batch = false;
  l->role = role;
  return op->n_loops++;
}

int ty__op_init(ty__op *op, const ty_graph_node *n) {
  op->node = -1;
  op->batch_loop = -1;
  op->n_in = n->n_inputs;
  op->n_out = n->n_outputs;
  size_t nt = (size_t)(n->n_inputs + n->n_outputs) + 1;
  op->in = malloc(nt * sizeof *op->in);
  op->in_diff = calloc(nt, sizeof *op->in_diff);
  op->out_full = calloc(nt, sizeof *op->out_full);
  if (!op->in || !op->in_diff || !op->out_full) return TY_ENOMEM;
  memset(op->in, -1, nt * sizeof *op->in);
  op->out = op->in + n->n_inputs;
  return 0;
}

/* Maps dim d of input / output i to loop l when the node has that slot. */
void ty__rule_map_in(ty__op *op, int i, int d, int l) {
  if (i < op->n_in && d < TY_MAX_RANK) op->in[i].loop[d] = (int8_t)l;
}
void ty__rule_map_out(ty__op *op, int i, int d, int l) {
  if (i < op->n_out && d < TY_MAX_RANK) op->out[i].loop[d] = (int8_t)l;
}

const ty_shape *ty__in_shape(const ty__model *m, const ty_graph_node *n, int i) {
  int v = ty_graph_node_input(n, i);
  return v == TY_NO_VALUE ? NULL : &m->values[v].shape;
}

const ty_shape *ty__out_shape(const ty__model *m, const ty_graph_node *n, int i) {
  int v = i < n->n_outputs ? n->outputs[i] : TY_NO_VALUE;
  return v == TY_NO_VALUE ? NULL : &m->values[v].shape;
}

double ty__numel(const ty_shape *s) {
  double e = 1;
  for (int d = 0; s && d < s->rank; d++)
    e *= (double)s->dims[d];
  return e;
}

/* Maps tensor s right-aligned onto loops loop0.. (one per dim of a shape
 * `full`): equal dims map, dims of 1 broadcast. False if s does not
 * broadcast to full. */
bool ty__rule_map_aligned(ty__tmap *t, const ty_shape *s, const ty_shape *full, int loop0) {
  if (!s) return true;
  if (s->rank > full->rank) return false;
  int off = full->rank - s->rank;
  for (int d = 0; d < s->rank; d++) {
    if (s->dims[d] == full->dims[off + d])
      t->loop[d] = (int8_t)(loop0 + off + d);
    else if (s->dims[d] != 1)
      return false;
  }
  return true;
}

/* Loops = the dims of `full` (split unless unsplit[d]); every input and
 * output maps aligned. The rule of elementwise ops and of the ops that keep
 * their input's shape. */
static bool model_aligned(const ty__model *m, ty__op *op, const ty_graph_node *n,
                          const ty_shape *full, const bool *unsplit) {
  for (int d = 0; d < full->rank; d++)
    if (ty__rule_loop(op, full->dims[d], !(unsplit && unsplit[d]), TY__LOOP_DIM) < 0) return false;
  for (int i = 0; i < n->n_inputs; i++)
    if (!ty__rule_map_aligned(&op->in[i], ty__in_shape(m, n, i), full, 0)) return false;
  for (int i = 0; i < n->n_outputs; i++)
    if (!ty__rule_map_aligned(&op->out[i], ty__out_shape(m, n, i), full, 0)) return false;
  return true;
}

/* Reads a small int64 constant (initializer or Constant node output). */
int ty__rule_const_ints(const ty__model *m, int v, int64_t *out, int max) {
  if (v == TY_NO_VALUE) return -1;
  const ty_graph_value *gv = ty_graph_value_at(m->g, v);
  const ty_tensor *t = gv->init;
  if (!t && gv->producer >= 0) {
    const ty_graph_node *p = ty_graph_node_at(m->g, (size_t)gv->producer);
    const ty_graph_attr *a = p->op == TY_OP_CONSTANT ? ty_graph_node_attr(p, "value") : NULL;
    t = a && a->type == TY_ATTR_TENSOR ? a->t : NULL;
  }
  if (!t || t->dtype != TY_DTYPE_I64 || ty_tensor_numel(t) > max) return -1;
  int k = (int)ty_tensor_numel(t);
  memcpy(out, t->data, (size_t)k * sizeof *out);
  return k;
}

/* ---- the ops ---------------------------------------------------------------- */

/* MatMul with numpy semantics: batch dims broadcast, 1-D operands promoted. */
static bool model_matmul(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *a = ty__in_shape(m, n, 0), *b = ty__in_shape(m, n, 1),
                 *y = ty__out_shape(m, n, 0);
  if (!a || !b || !y || a->rank < 1 || b->rank < 1) return false;
  bool a1 = a->rank == 1, b1 = b->rank == 1;
  int nb = y->rank - (a1 ? 0 : 1) - (b1 ? 0 : 1);
  if (nb < 0) return false;
  ty_shape yb = ty_shape_make(nb, y->dims);
  for (int d = 0; d < nb; d++)
    ty__rule_loop(op, y->dims[d], true, TY__LOOP_DIM);
  int lm = a1 ? -1 : ty__rule_loop(op, a->dims[a->rank - 2], true, TY__LOOP_M);
  int ln = b1 ? -1 : ty__rule_loop(op, b->dims[b->rank - 1], true, TY__LOOP_N);
  int lk = ty__rule_loop(op, a->dims[a->rank - 1], true, TY__LOOP_K);
  if (lk < 0) return false;
  if (!a1) {
    ty_shape ab = ty_shape_make(a->rank - 2, a->dims);
    if (!ty__rule_map_aligned(&op->in[0], &ab, &yb, 0)) return false;
    op->in[0].loop[a->rank - 2] = (int8_t)lm;
  }
  op->in[0].loop[a->rank - 1] = (int8_t)lk;
  if (!b1) {
    ty_shape bb = ty_shape_make(b->rank - 2, b->dims);
    if (!ty__rule_map_aligned(&op->in[1], &bb, &yb, 0)) return false;
    op->in[1].loop[b->rank - 1] = (int8_t)ln;
  }
  op->in[1].loop[b1 ? 0 : b->rank - 2] = (int8_t)lk;
  for (int d = 0; d < nb; d++)
    op->out[0].loop[d] = (int8_t)d;
  if (!a1) op->out[0].loop[nb] = (int8_t)lm;
  if (!b1) op->out[0].loop[y->rank - 1] = (int8_t)ln;
  op->flops = 2.0 * ty__numel(y) * (double)a->dims[a->rank - 1];
  return true;
}

static bool model_gemm(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *a = ty__in_shape(m, n, 0), *b = ty__in_shape(m, n, 1), *c = ty__in_shape(m, n, 2);
  const ty_shape *y = ty__out_shape(m, n, 0);
  if (!a || !b || !y || a->rank != 2 || b->rank != 2 || y->rank != 2) return false;
  bool ta = ty_graph_node_attr_int(n, "transA", 0) != 0,
       tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
  int lm = ty__rule_loop(op, y->dims[0], true, TY__LOOP_M);
  int ln = ty__rule_loop(op, y->dims[1], true, TY__LOOP_N);
  int lk = ty__rule_loop(op, a->dims[ta ? 0 : 1], true, TY__LOOP_K);
  op->in[0].loop[ta ? 1 : 0] = (int8_t)lm;
  op->in[0].loop[ta ? 0 : 1] = (int8_t)lk;
  op->in[1].loop[tb ? 1 : 0] = (int8_t)lk;
  op->in[1].loop[tb ? 0 : 1] = (int8_t)ln;
  op->out[0].loop[0] = (int8_t)lm;
  op->out[0].loop[1] = (int8_t)ln;
  if (c && !ty__rule_map_aligned(&op->in[2], c, y, lm)) return false;
  op->flops = 2.0 * ty__numel(y) * (double)op->loops[lk].size + ty__numel(y);
  return true;
}

/* Conv: batch and output-channel splits; channels only without groups. */
static bool model_conv(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *w = ty__in_shape(m, n, 1),
                 *y = ty__out_shape(m, n, 0);
  if (!x || !w || !y || x->rank < 3 || w->rank != x->rank || y->rank != x->rank) return false;
  bool grouped = ty_graph_node_attr_int(n, "group", 1) != 1;
  int ln = ty__rule_loop(op, y->dims[0], true, TY__LOOP_DIM);
  int lco = ty__rule_loop(op, y->dims[1], !grouped, TY__LOOP_COUT);
  int lci = ty__rule_loop(op, w->dims[1], false, TY__LOOP_DIM);
  double pts = (double)y->dims[0] * (double)y->dims[1] * (double)w->dims[1];
  op->in[0].loop[0] = op->out[0].loop[0] = (int8_t)ln;
  op->in[1].loop[0] = op->out[0].loop[1] = (int8_t)lco;
  op->in[0].loop[1] = (int8_t)(grouped ? -1 : lci);
  op->in[1].loop[1] = (int8_t)lci;
  ty__rule_map_in(op, 2, 0, lco);
  for (int d = 2; d < y->rank; d++) {
    op->out[0].loop[d] = (int8_t)ty__rule_loop(op, y->dims[d], false, TY__LOOP_DIM);
    op->in[1].loop[d] = (int8_t)ty__rule_loop(op, w->dims[d], false, TY__LOOP_DIM);
    pts *= (double)y->dims[d] * (double)w->dims[d];
  }
  op->flops = 2.0 * pts;
  return op->n_loops < TY__PLAN_MAX_LOOPS;
}

/* Pooling and normalisation over [N, C, spatial...]: N and C split. */
static bool model_nc(const ty__model *m, ty__op *op, const ty_graph_node *n, double flops_per_in) {
  const ty_shape *x = ty__in_shape(m, n, 0), *y = ty__out_shape(m, n, 0);
  if (!x || !y || x->rank < 2 || y->rank != x->rank) return false;
  int ln = ty__rule_loop(op, x->dims[0], true, TY__LOOP_DIM);
  int lc = ty__rule_loop(op, x->dims[1], true, TY__LOOP_CHANNEL);
  op->in[0].loop[0] = (int8_t)ln;
  op->in[0].loop[1] = (int8_t)lc;
  for (int o = 0; o < n->n_outputs; o++) {
    const ty_shape *s = ty__out_shape(m, n, o);
    if (s && s->rank == x->rank) {
      op->out[o].loop[0] = (int8_t)ln;
      op->out[o].loop[1] = (int8_t)lc;
    } else if (s && s->rank == 1) { /* BatchNormalization's running statistics */
      op->out[o].loop[0] = (int8_t)lc;
      op->out_full[o] = true;
    }
  }
  for (int i = 1; i < n->n_inputs; i++) {
    const ty_shape *s = ty__in_shape(m, n, i);
    if (s && s->rank == 1) op->in[i].loop[0] = (int8_t)lc;
  }
  op->flops = flops_per_in * ty__numel(x);
  return true;
}

/* Softmax / LogSoftmax / LayerNormalization: dims from the axis on are
 * needed whole (all of them before opset 13's Softmax, and always for
 * LayerNormalization). */
static bool model_axis_whole(const ty__model *m, ty__op *op, const ty_graph_node *n, bool tail,
                             double flops_per) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x) return false;
  int64_t dflt =
      n->op == TY_OP_SOFTMAX || n->op == TY_OP_LOG_SOFTMAX ? (n->opset >= 13 ? -1 : 1) : -1;
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", dflt), x->rank ? x->rank : 1, &axis) != 0)
    return false;
  bool unsplit[TY_MAX_RANK] = {false};
  for (int d = axis; d < x->rank; d++)
    unsplit[d] = tail || d == axis;
  if (!model_aligned(m, op, n, x, unsplit)) return false;
  op->flops = flops_per * ty__numel(x);
  return true;
}

/* ReduceSum / ReduceMean: a split reduced dim leaves partial sums (a mean
 * divides by the full count on every rank). */
/* Reductions whose partial results do not add up (a max, a norm, a log):
 * their reduced dims stay whole on every rank. */
static bool reduce_additive(ty_op op) {
  return op == TY_OP_REDUCE_SUM || op == TY_OP_REDUCE_MEAN;
}

static bool model_reduce(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x) return false;
  int64_t axes[TY_MAX_RANK];
  int na;
  int input_opset = n->op == TY_OP_REDUCE_SUM ? 13 : 18; /* axes as an input from */
  if (n->opset >= input_opset) {
    na = ty_graph_node_input(n, 1) == TY_NO_VALUE
             ? 0
             : ty__rule_const_ints(m, ty_graph_node_input(n, 1), axes, TY_MAX_RANK);
  } else {
    const ty_graph_attr *a = ty_graph_node_attr(n, "axes");
    na = a && a->type == TY_ATTR_INTS && a->n <= TY_MAX_RANK ? (int)a->n : a ? -1 : 0;
    if (na > 0) memcpy(axes, a->ints, (size_t)na * sizeof *axes);
  }
  if (na < 0) return false;
  bool noop = ty_graph_node_attr_int(n, "noop_with_empty_axes", 0) != 0;
  bool keep = ty_graph_node_attr_int(n, "keepdims", 1) != 0;
  bool red[TY_MAX_RANK];
  for (int d = 0; d < x->rank; d++)
    red[d] = na == 0 && !noop;
  for (int i = 0; i < na; i++) {
    int a;
    if (ty_axis_normalize(axes[i], x->rank, &a) != 0) return false;
    red[a] = true;
  }
  for (int d = 0, o = 0; d < x->rank; d++) {
    ty__rule_loop(op, x->dims[d], !red[d] || reduce_additive(n->op),
                  red[d] ? TY__LOOP_REDUCE : TY__LOOP_DIM);
    op->in[0].loop[d] = (int8_t)d;
    if (!red[d])
      op->out[0].loop[o++] = (int8_t)d;
    else if (keep)
      o++;
  }
  op->flops = ty__numel(x);
  return true;
}

/* Ops whose samples are independent but whose other dims this planner
 * does not split (ConvTranspose, InstanceNormalization): the batch (dim 0
 * of input 0 and output 0) may split, every other dim is needed whole, and
 * the weights are replicated, their gradients partial over the batch's
 * axes as in data parallelism. */
static bool model_batch_only(const ty__model *m, ty__op *op, const ty_graph_node *n, double flops) {
  const ty_shape *x = ty__in_shape(m, n, 0), *y = ty__out_shape(m, n, 0);
  if (!x || !y || x->rank < 2 || y->rank < 2 || x->dims[0] != y->dims[0]) return false;
  int ln = ty__rule_loop(op, x->dims[0], true, TY__LOOP_DIM);
  op->in[0].loop[0] = op->out[0].loop[0] = (int8_t)ln;
  op->flops = flops;
  return true;
}

/* Resize/Upsample: each (n, c) plane resizes alone, so the batch and the
 * channels split where neither is resized. Only with scales: sizes name
 * whole dims, which a split would contradict, so a Resize given sizes
 * runs replicated. */
static bool model_resize(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *y = ty__out_shape(m, n, 0);
  bool sizes = n->op == TY_OP_RESIZE && n->opset >= 11 && n->n_inputs > 3 &&
               n->inputs[3] != TY_NO_VALUE && ty__numel(ty__in_shape(m, n, 3)) > 0;
  if (sizes || !x || !y || x->rank < 3 || y->rank != x->rank || x->dims[0] != y->dims[0] ||
      x->dims[1] != y->dims[1])
    return false;
  int ln = ty__rule_loop(op, x->dims[0], true, TY__LOOP_DIM);
  int lc = ty__rule_loop(op, x->dims[1], true, TY__LOOP_CHANNEL);
  op->in[0].loop[0] = op->out[0].loop[0] = (int8_t)ln;
  op->in[0].loop[1] = op->out[0].loop[1] = (int8_t)lc;
  const char *mode = ty_graph_node_attr_string(n, "mode", "nearest");
  op->flops = (double)ty__numel(y) * (!strcmp(mode, "cubic")    ? 16
                                      : !strcmp(mode, "linear") ? 4
                                                                : 1);
  return true;
}

/* LRN: its window runs across channels, so every dim but the channels
 * (the batch and the spatial dims) may split. */
static bool model_lrn(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x || x->rank < 3) return false;
  bool unsplit[TY_MAX_RANK] = {false};
  unsplit[1] = true;
  if (!model_aligned(m, op, n, x, unsplit)) return false;
  op->flops = (double)(ty_graph_node_attr_int(n, "size", 1) + 4) * ty__numel(x);
  return true;
}

/* MeanVarianceNormalization: statistics over the axes attribute (default
 * [0, 2, 3]); those dims stay whole, every other dim may split. */
static bool model_mvn(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x) return false;
  const ty_graph_attr *a = ty_graph_node_attr(n, "axes");
  static const int64_t dflt[] = {0, 2, 3};
  const int64_t *axes = dflt;
  size_t na = TY_ARRAY_LEN(dflt);
  if (a) {
    if (a->type != TY_ATTR_INTS) return false;
    axes = a->ints, na = a->n;
  }
  bool unsplit[TY_MAX_RANK] = {false};
  for (size_t i = 0; i < na; i++) {
    int d;
    if (ty_axis_normalize(axes[i], x->rank, &d) != 0) return false;
    unsplit[d] = true;
  }
  if (!model_aligned(m, op, n, x, unsplit)) return false;
  op->flops = 8 * ty__numel(x);
  return true;
}

/* GridSample: X [N, C, H, W] sampled at grid [N, Ho, Wo, 2] into
 * [N, C, Ho, Wo]; a sample reads anywhere in its own image, so only the
 * batch splits, of the input and the grid together. */
static bool model_grid_sample(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *grid = ty__in_shape(m, n, 1),
                 *y = ty__out_shape(m, n, 0);
  if (!x || !grid || !y || x->rank < 3 || grid->rank != x->rank || y->rank != x->rank ||
      grid->dims[0] != x->dims[0] || y->dims[0] != x->dims[0])
    return false;
  int ln = ty__rule_loop(op, x->dims[0], true, TY__LOOP_DIM);
  op->in[0].loop[0] = op->in[1].loop[0] = op->out[0].loop[0] = (int8_t)ln;
  const char *mode = ty_graph_node_attr_string(n, "mode", "bilinear");
  op->flops = (double)ty__numel(y) * (strstr(mode, "cubic")      ? 32
                                      : !strcmp(mode, "nearest") ? 2
                                                                 : 8);
  return true;
}

/* ConvTranspose's FLOPs: every input element meets a filter of
 * C_out / group x kernel taps (w is [C_in, C_out / group, k...]). */
static double conv_transpose_flops(const ty__model *m, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *w = ty__in_shape(m, n, 1);
  if (!x || !w || w->rank < 2) return 0;
  double taps = 1;
  for (int d = 1; d < w->rank; d++)
    taps *= (double)w->dims[d];
  return 2.0 * ty__numel(x) * taps;
}

/* SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss: scores (or log
 * probabilities) [N, C, d...], labels [N, d...], class weights [C];
 * classes stay whole; a reduced loss over a split batch is a partial sum
 * (ops/shard rescales a mean: by the counts, or over the weights, wmean.c). */
static bool model_sce(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *lab = ty__in_shape(m, n, 1),
                 *y = ty__out_shape(m, n, 0);
  if (!x || !lab || !y || x->rank < 2 || lab->rank != x->rank - 1) return false;
  bool none = strcmp(ty_graph_node_attr_string(n, "reduction", "mean"), "none") == 0;
  int ln = ty__rule_loop(op, x->dims[0], true, TY__LOOP_DIM);
  int lc = ty__rule_loop(op, x->dims[1], false, TY__LOOP_DIM);
  op->in[0].loop[0] = op->in[1].loop[0] = (int8_t)ln;
  op->in[0].loop[1] = (int8_t)lc;
  ty__rule_map_in(op, 2, 0, lc);
  if (none) op->out[0].loop[0] = (int8_t)ln;
  ty__rule_map_out(op, 1, 0, ln);
  ty__rule_map_out(op, 1, 1, lc);
  for (int d = 2; d < x->rank; d++) {
    int l = ty__rule_loop(op, x->dims[d], true, TY__LOOP_DIM);
    op->in[0].loop[d] = (int8_t)l;
    op->in[1].loop[d - 1] = (int8_t)l;
    ty__rule_map_out(op, 1, d, l);
    if (none) op->out[0].loop[d - 1] = (int8_t)l;
  }
  op->flops = 6.0 * ty__numel(x);
  return op->n_loops < TY__PLAN_MAX_LOOPS;
}

/* LSTM, GRU and RNN: each sequence of the batch recurs alone, so the
 * batch splits: X's dim 1 (dim 0 with layout 1), sequence_lens' dim 0,
 * initial_h / initial_c's and Y_h / Y_c's dim 1 (0), Y's dim 2 (0). Time,
 * directions and hidden units stay whole; W, R, B and P are replicated,
 * their gradients partial over the batch's axes as in data parallelism.
 * FLOPs: per step, row and direction, the gates' two products (2 x gates
 * x hidden x (input + hidden)) and a few per gate unit for the
 * activations and the state update. */
static bool model_rnn(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *shapes[TY__RNN_P + 1] = {NULL};
  int k = n->n_inputs < TY__RNN_P + 1 ? n->n_inputs : TY__RNN_P + 1;
  for (int i = 0; i < k; i++)
    shapes[i] = ty__in_shape(m, n, i);
  ty__rnn r;
  if (ty__rnn_read(n, shapes, k, &r, NULL, 0) != 0 || r.seq < 0 || r.batch < 1 || r.in < 0 ||
      r.hid < 1)
    return false;
  int lb = ty__rule_loop(op, r.batch, true, TY__LOOP_DIM);
  int state_dim = r.layout == 0 ? 1 : 0; /* of X, the initial and the final states */
  ty__rule_map_in(op, TY__RNN_X, state_dim, lb);
  ty__rule_map_in(op, TY__RNN_SEQ, 0, lb);
  ty__rule_map_in(op, TY__RNN_H0, state_dim, lb);
  if (n->op == TY_OP_LSTM) ty__rule_map_in(op, TY__RNN_C0, state_dim, lb);
  ty__rule_map_out(op, 0, r.layout == 0 ? 2 : 0, lb);
  ty__rule_map_out(op, 1, state_dim, lb);
  ty__rule_map_out(op, 2, state_dim, lb);
  double units = (double)r.seq * (double)r.batch * r.ndir * r.gates * (double)r.hid;
  op->flops = units * (2.0 * (double)(r.in + r.hid) + 8);
  return true;
}

/* ONNX op types, beyond this planner's own rules, known to be elementwise
 * with numpy broadcasting: ops added to ops/graph.h later are planned like
 * Add without a change here. */
static bool elementwise_by_name(const char *t) {
  static const char *const names[] = {
      "Gelu",  "Where",    "Clip",        "Abs",       "Cast",
      "Max",   "Min",      "Sum",         "Mean",      "Reciprocal",
      "Sin",   "Cos",      "Floor",       "Ceil",      "Round",
      "Sign",  "Softplus", "Softsign",    "Elu",       "Selu",
      "Celu",  "Mish",     "HardSigmoid", "HardSwish", "ThresholdedRelu",
      "PRelu", "Not",      "And",         "Or",        "Xor",
      "Equal", "Less",     "LessOrEqual", "Greater",   "GreaterOrEqual",
      "IsNaN", "IsInf",    "Mod",         "BitShift",
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(names); i++)
    if (strcmp(t, names[i]) == 0) return true;
  return false;
}

static bool model_dispatch(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *y = ty__out_shape(m, n, 0);
  if (ty_op_is_reduce(n->op)) return model_reduce(m, op, n);
  switch (n->op) {
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_DIV:
  case TY_OP_RELU:
  case TY_OP_LEAKY_RELU:
  case TY_OP_NEG:
  case TY_OP_IDENTITY:
  case TY_OP_DROPOUT:
    op->flops = y ? ty__numel(y) : 0;
    return y && model_aligned(m, op, n, y, NULL);
  case TY_OP_POW:
  case TY_OP_SIGMOID:
  case TY_OP_TANH:
  case TY_OP_ERF:
  case TY_OP_SQRT:
  case TY_OP_EXP:
  case TY_OP_LOG:
    op->flops = y ? 4 * ty__numel(y) : 0; /* a transcendental costs a few FLOPs */
    return y && model_aligned(m, op, n, y, NULL);
  case TY_OP_GEMM:
    return model_gemm(m, op, n);
  case TY_OP_MATMUL:
    return model_matmul(m, op, n);
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
    return model_axis_whole(m, op, n, n->opset < 13, 5);
  case TY_OP_LAYER_NORM:
    return model_axis_whole(m, op, n, true, 8);
  case TY_OP_CONV:
    return model_conv(m, op, n);
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_GLOBAL_AVERAGE_POOL:
    return model_nc(m, op, n, 4);
  case TY_OP_BATCH_NORM:
    op->bn_channels = ty__in_shape(m, n, 0) && ty__in_shape(m, n, 0)->rank >= 2
                          ? ty__in_shape(m, n, 0)->dims[1]
                          : 0;
    return model_nc(m, op, n, 10);
  case TY_OP_FLATTEN:
  case TY_OP_RESHAPE:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
    return ty__rule_reshape(m, op, n);
  case TY_OP_TRANSPOSE:
    return ty__rule_transpose(m, op, n);
  case TY_OP_CONCAT:
    return ty__rule_concat(m, op, n);
  case TY_OP_GATHER:
    return ty__rule_gather(m, op, n);
  case TY_OP_SPLIT:
    return ty__rule_split(m, op, n);
  case TY_OP_SLICE:
    return ty__rule_slice(m, op, n);
  case TY_OP_SHAPE:
    return ty__rule_shape(m, op, n);
  case TY_OP_CONV_TRANSPOSE:
    return model_batch_only(m, op, n, conv_transpose_flops(m, n));
  case TY_OP_INSTANCE_NORM:
    return model_batch_only(m, op, n, y ? 8 * ty__numel(y) : 0);
  case TY_OP_RESIZE:
  case TY_OP_UPSAMPLE:
    return model_resize(m, op, n);
  case TY_OP_SOFTMAX_CE_LOSS:
  case TY_OP_NLL_LOSS:
    return model_sce(m, op, n);
  case TY_OP_LRN:
    return model_lrn(m, op, n);
  case TY_OP_MVN:
    return model_mvn(m, op, n);
  case TY_OP_GRID_SAMPLE:
    return model_grid_sample(m, op, n);
  case TY_OP_LSTM:
  case TY_OP_GRU:
  case TY_OP_RNN:
    return model_rnn(m, op, n);
  /* The *Like draws and Bernoulli split as their input does; each rank
   * draws its slice's own noise (ops/kernels/random.c, positioned by the
   * attributes ops/shard gives the node). */
  case TY_OP_RANDOM_NORMAL_LIKE:
  case TY_OP_RANDOM_UNIFORM_LIKE:
  case TY_OP_BERNOULLI:
    op->flops = y ? 20 * ty__numel(y) : 0;
    return y && model_aligned(m, op, n, y, NULL);
  case TY_OP_CONSTANT_OF_SHAPE:
  case TY_OP_EXPAND:
  case TY_OP_TILE:
    return ty__rule_shaped(m, op, n);
  case TY_OP_MULTINOMIAL:
    return model_batch_only(
        m, op, n,
        y && ty__in_shape(m, n, 0)
            ? 4.0 * ((double)ty__numel(y) + (double)ty__numel(ty__in_shape(m, n, 0)))
            : 0);
  default:
    if (!elementwise_by_name(ty_op_name(n->op))) return false;
    op->flops = y ? ty__numel(y) : 0;
    return y && model_aligned(m, op, n, y, NULL);
  }
}

/* Inputs that carry no gradient even when float (autodiff's list). */
bool ty__slot_differentiable(const ty_graph_node *n, int i, ty_dtype dt) {
  return dt == TY_DTYPE_F32 && n->op != TY_OP_CONSTANT &&
         ty_autodiff_input_differentiable(n->op, i);
}

static void model_fallback(ty__op *op, const ty__model *m, const ty_graph_node *n,
                           const char *why) {
  op->fallback = true;
  op->n_loops = 0;
  op->batch_loop = -1;
  memset(op->in, -1, (size_t)(n->n_inputs + n->n_outputs) * sizeof *op->in);
  op->flops = 0;
  for (int o = 0; o < n->n_outputs; o++)
    op->flops += ty__numel(ty__out_shape(m, n, o));
  snprintf(op->note, sizeof op->note, "%s; runs replicated", why);
}

/* Whether n computes a shape: a vector of at most TY_MAX_RANK integers
 * (or booleans, Where's masks of them) that every rank needs whole; a
 * split of it is never worth its gather, and readers of shape vectors take
 * them replicated. Larger integer tensors (a mask over tokens) split as
 * usual. */
static bool shape_vector_out(const ty__model *m, const ty_graph_node *n) {
  if (n->n_outputs < 1 || n->outputs[0] == TY_NO_VALUE) return false;
  ty_dtype dt = ty_graph_value_at(m->g, n->outputs[0])->dtype;
  const ty_shape *s = ty__out_shape(m, n, 0);
  return dt != TY_DTYPE_F32 && s && s->rank <= 1 && ty__numel(s) <= TY_MAX_RANK;
}

static bool op_has_rule(ty_op op) {
  switch (op) {
  case TY_OP_CONSTANT:
  case TY_OP_GRAD:
    return false;
  case TY_OP_CONV_TRANSPOSE:
  case TY_OP_INSTANCE_NORM:
  case TY_OP_RESIZE:
  case TY_OP_UPSAMPLE:
  case TY_OP_LRN:
  case TY_OP_MVN:
  case TY_OP_GRID_SAMPLE:
  case TY_OP_RANDOM_NORMAL_LIKE:
  case TY_OP_RANDOM_UNIFORM_LIKE:
  case TY_OP_BERNOULLI:
  case TY_OP_MULTINOMIAL:
  case TY_OP_CONSTANT_OF_SHAPE:
  case TY_OP_EXPAND:
  case TY_OP_TILE:
  case TY_OP_SPLIT:
  case TY_OP_SLICE:
  case TY_OP_SHAPE:
  case TY_OP_NLL_LOSS:
  case TY_OP_LSTM:
  case TY_OP_GRU:
  case TY_OP_RNN:
    return true;
  default:
    return op < TY_OP_COUNT_ ? op <= TY_OP_SOFTMAX_CE_LOSS || ty_op_is_reduce(op) ||
                                   elementwise_by_name(ty_op_name(op))
                             : false;
  }
}

void ty__op_rule(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  if (n->op == TY_OP_RANDOM_NORMAL || n->op == TY_OP_RANDOM_UNIFORM) {
    model_fallback(op, m, n, "a draw of a fixed shape, the same tensor on every rank");
  } else if (!op_has_rule(n->op)) {
    char why[80];
    snprintf(why, sizeof why, "no sharding rule for %s", ty_op_name(n->op));
    model_fallback(op, m, n, why);
  } else if (!model_dispatch(m, op, n)) {
    model_fallback(op, m, n, "its shapes fit no sharding rule");
  } else if (shape_vector_out(m, n) && n->op != TY_OP_SHAPE) { /* Shape's loops are its input's */
    for (int l = 0; l < op->n_loops; l++) /* shape arithmetic and indices stay whole */
      op->loops[l].split = false;
  }
}
