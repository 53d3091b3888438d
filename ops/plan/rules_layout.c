/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The planner's sharding rules of the ops that move or pick elements
 * without arithmetic on them (rules.c has the others and the dispatch):
 * Reshape and its family, Transpose, Concat, Split, Slice, Shape, Gather,
 * and the ops that make a tensor of a shape read from a shape vector
 * (ConstantOfShape, Expand, Tile). Each lists the op's loops and maps its
 * inputs' and outputs' dims onto them, as rules.c explains.
 */
#include "ops/plan/plan_internal.h"

#include <string.h>

/* Reshape family: input and output dims in groups of equal products; the
 * leading dims of a group share a loop (of their gcd), so a split of it
 * cuts the same contiguous blocks on both sides. */
bool ty__rule_reshape(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *y = ty__out_shape(m, n, 0);
  if (!x || !y) return false;
  int i = 0, j = 0;
  while (i < x->rank || j < y->rank) {
    while (i < x->rank && x->dims[i] == 1)
      i++;
    while (j < y->rank && y->dims[j] == 1)
      j++;
    if (i >= x->rank || j >= y->rank) break;
    int i0 = i, j0 = j;
    double pi = (double)x->dims[i++], pj = (double)y->dims[j++];
    while (pi != pj && (i < x->rank || j < y->rank)) {
      if (pi < pj && i < x->rank)
        pi *= (double)x->dims[i++];
      else if (j < y->rank)
        pj *= (double)y->dims[j++];
      else
        break;
    }
    if (pi != pj) return false;
    int64_t a = x->dims[i0], b = y->dims[j0];
    while (b) {
      int64_t t = a % b;
      a = b, b = t;
    }
    int l = ty__rule_loop(op, a, true, TY__LOOP_DIM);
    if (l < 0) return false;
    op->in[0].loop[i0] = op->out[0].loop[j0] = (int8_t)l;
  }
  op->flops = 0;
  return true;
}

bool ty__rule_transpose(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x) return false;
  const ty_graph_attr *perm = ty_graph_node_attr(n, "perm");
  for (int d = 0; d < x->rank; d++) {
    ty__rule_loop(op, x->dims[d], true, TY__LOOP_DIM);
    op->in[0].loop[d] = (int8_t)d;
  }
  for (int d = 0; d < x->rank; d++) {
    int64_t p = perm && perm->type == TY_ATTR_INTS && (int)perm->n == x->rank ? perm->ints[d]
                                                                              : x->rank - 1 - d;
    if (p < 0 || p >= x->rank) return false;
    op->out[0].loop[d] = (int8_t)p;
  }
  op->flops = ty__numel(x);
  return true;
}

bool ty__rule_concat(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *y = ty__out_shape(m, n, 0);
  int axis;
  if (!y || ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), y->rank, &axis) != 0)
    return false;
  for (int d = 0; d < y->rank; d++) {
    ty__rule_loop(op, y->dims[d], d != axis, TY__LOOP_DIM);
    op->out[0].loop[d] = (int8_t)(d == axis ? -1 : d);
    for (int i = 0; i < n->n_inputs; i++)
      op->in[i].loop[d] = (int8_t)(d == axis ? -1 : d);
  }
  op->flops = ty__numel(y);
  return true;
}

/* Split: the split axis stays whole (each output takes its part of it);
 * the other dims split alike on the input and every output. */
bool ty__rule_split(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  int axis;
  if (!x || ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), x->rank, &axis) != 0)
    return false;
  for (int d = 0; d < x->rank; d++) {
    if (ty__rule_loop(op, x->dims[d], d != axis, TY__LOOP_DIM) < 0) return false;
    ty__rule_map_in(op, 0, d, d == axis ? -1 : d);
    for (int o = 0; o < n->n_outputs; o++)
      ty__rule_map_out(op, o, d, d == axis ? -1 : d);
  }
  op->flops = ty__numel(x);
  return true;
}

/* The axes a Slice cuts (its axes input or attribute; all of starts'
 * otherwise) as bits; false when they are not constant. */
static bool slice_axes(const ty__model *m, const ty_graph_node *n, int rank, unsigned *bits) {
  int64_t axes[TY_MAX_RANK];
  int k;
  const ty_graph_attr *a = ty_graph_node_attr(n, "axes");
  if (n->opset < 10) {
    const ty_graph_attr *st = ty_graph_node_attr(n, "starts");
    k = a && a->type == TY_ATTR_INTS ? (int)a->n : st && st->type == TY_ATTR_INTS ? (int)st->n : -1;
    for (int i = 0; a && i < k && i < TY_MAX_RANK; i++)
      axes[i] = a->ints[i];
    if (!a)
      for (int i = 0; i < k && i < TY_MAX_RANK; i++)
        axes[i] = i;
  } else if (ty_graph_node_input(n, 3) != TY_NO_VALUE) {
    k = ty__rule_const_ints(m, ty_graph_node_input(n, 3), axes, TY_MAX_RANK);
  } else {
    const ty_shape *st = ty__in_shape(m, n, 1);
    k = st && st->rank == 1 && st->dims[0] <= TY_MAX_RANK ? (int)st->dims[0] : -1;
    for (int i = 0; i < k; i++)
      axes[i] = i;
  }
  if (k < 0 || k > TY_MAX_RANK) return false;
  *bits = 0;
  for (int i = 0; i < k; i++) {
    int ax;
    if (ty_axis_normalize(axes[i], rank, &ax) != 0) return false;
    *bits |= 1u << ax;
  }
  return true;
}

/* Slice: the dims it cuts stay whole; the others split alike on the input
 * and the output (starts, ends, axes and steps are read whole). */
bool ty__rule_slice(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *y = ty__out_shape(m, n, 0);
  unsigned cut;
  if (!x || !y || x->rank != y->rank || !slice_axes(m, n, x->rank, &cut)) return false;
  for (int d = 0; d < x->rank; d++) {
    bool whole = cut >> d & 1u;
    if (ty__rule_loop(op, x->dims[d], !whole, TY__LOOP_DIM) < 0) return false;
    ty__rule_map_in(op, 0, d, whole ? -1 : d);
    ty__rule_map_out(op, 0, d, whole ? -1 : d);
  }
  op->flops = ty__numel(y);
  return true;
}

/* Shape reads only its input's dims, which every rank knows whole at the
 * plan's batch: the input may be split any way with no collective, and
 * the output (a shape vector) is whole on every rank (ops/shard makes it
 * the global shape, a constant). */
bool ty__rule_shape(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0);
  if (!x || n->n_outputs < 1) return false;
  for (int d = 0; d < x->rank; d++) {
    if (ty__rule_loop(op, x->dims[d], true, TY__LOOP_DIM) < 0) return false;
    ty__rule_map_in(op, 0, d, d);
  }
  op->out_full[0] = true;
  op->flops = 0;
  return true;
}

/* Gather: the gathered axis (a vocabulary) stays whole. */
bool ty__rule_gather(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *x = ty__in_shape(m, n, 0), *idx = ty__in_shape(m, n, 1),
                 *y = ty__out_shape(m, n, 0);
  int axis;
  if (!x || !idx || !y ||
      ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), x->rank, &axis) != 0)
    return false;
  for (int d = 0; d < y->rank; d++) {
    ty__rule_loop(op, y->dims[d], true, TY__LOOP_DIM);
    op->out[0].loop[d] = (int8_t)d;
  }
  for (int d = 0; d < idx->rank; d++)
    op->in[1].loop[d] = (int8_t)(axis + d);
  for (int d = 0; d < x->rank; d++)
    op->in[0].loop[d] = (int8_t)(d < axis ? d : d == axis ? -1 : d - 1 + idx->rank);
  op->flops = ty__numel(y);
  return true;
}

/* The ops that make a tensor of a shape read from a shape vector
 * (ConstantOfShape's input 0, Expand's and Tile's input 1): the output's
 * dims are loops and each rank makes the block of the output it holds.
 * The shape vector is read whole and never decides the local shape:
 * ops/shard gives each rank's node the shape of its block, so a value
 * built from Shape(x) of a batch-split x follows the split with no
 * collective (ConstantOfShape's fill and Expand's broadcast are the same
 * in every block; Tile splits the dims it does not repeat and the ones
 * it repeats from a single element, a broadcast). */
bool ty__rule_shaped(const ty__model *m, ty__op *op, const ty_graph_node *n) {
  const ty_shape *y = ty__out_shape(m, n, 0);
  const ty_shape *x = n->op == TY_OP_CONSTANT_OF_SHAPE ? NULL : ty__in_shape(m, n, 0);
  if (!y || (n->op != TY_OP_CONSTANT_OF_SHAPE && !x)) return false;
  if (n->op == TY_OP_TILE && x->rank != y->rank) return false;
  for (int d = 0; d < y->rank; d++) {
    bool same = n->op == TY_OP_TILE && x->dims[d] == y->dims[d];
    bool whole = n->op == TY_OP_TILE && !same && x->dims[d] != 1;
    if (ty__rule_loop(op, y->dims[d], !whole, TY__LOOP_DIM) < 0) return false;
    ty__rule_map_out(op, 0, d, d);
    if (same) ty__rule_map_in(op, 0, d, d);
  }
  op->flops = ty__numel(y);
  return n->op != TY_OP_EXPAND || ty__rule_map_aligned(&op->in[0], x, y, 0);
}
