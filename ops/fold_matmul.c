/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Transposes folded into the MatMuls that read them (ty__fold_transpose_
 * matmul). PyTorch exports attention's heads as Reshape -> Transpose ->
 * MatMul (and K^T as one more Transpose), and every Linear layer as
 * Transpose(W) -> MatMul: each Transpose is a copy forward and another
 * (of the gradient) backward. A MatMul can read such an operand in place,
 * as a strided or transposed matrix (kernels/matmul.c), so the pass points
 * the MatMul at the Transpose's input, records the permutation in the
 * MatMul's TY__MM_PERM_A / TY__MM_PERM_B attribute and drops Transposes
 * whose output nobody reads any more. Run before autodiff: the MatMul's
 * gradient then writes dX in X's own layout and no gradient Transpose is
 * made either.
 */
#include "ops/fold_matmul.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>

/* The Transpose producing value id, when the MatMul can read its input
 * through the permutation instead; NULL otherwise. */
static const ty_graph_node *foldable(const ty_graph *g, int id, int side, int64_t *perm) {
  if (id == TY_NO_VALUE) return NULL;
  const ty_graph_value *v = &g->values[id];
  if (v->producer < 0 || v->is_output) return NULL;
  const ty_graph_node *t = &g->nodes[v->producer];
  if (t->op != TY_OP_TRANSPOSE || t->n_inputs < 1 || t->inputs[0] == TY_NO_VALUE) return NULL;
  const ty_graph_value *x = &g->values[t->inputs[0]];
  int r = x->shape.rank;
  if (x->dtype != TY_DTYPE_F32 || r < 2 || r > TY_MAX_RANK || v->shape.rank != r) return NULL;
  const ty_graph_attr *pa = ty_graph_node_attr(t, "perm");
  if (pa && (pa->type != TY_ATTR_INTS || pa->n != (size_t)r)) return NULL;
  for (int d = 0; d < r; d++)
    perm[d] = pa ? pa->ints[d] : r - 1 - d;
  for (int d = 1; d < r; d++) /* the strides need every dim but the first */
    if (x->shape.dims[d] < 0) return NULL;
  /* The view must be a matrix the GEMM reads: ty__mm_view_of checks. */
  ty_graph_node probe = {.op = TY_OP_MATMUL, .n_attrs = 1};
  ty_graph_attr at = {.name = side == 0 ? TY__MM_PERM_A : TY__MM_PERM_B,
                      .type = TY_ATTR_INTS,
                      .ints = perm,
                      .n = (size_t)r};
  probe.attrs = &at;
  ty__mm_view view;
  if (ty__mm_view_of(&probe, side, &x->shape, &view) != 0) return NULL;
  return t;
}

/* Transposes whose output nobody reads (and that are not graph outputs). */
static int drop_unread(ty_graph *g) {
  bool *read = calloc(g->n_values + 1, sizeof *read), *drop = calloc(g->n_nodes + 1, sizeof *drop);
  int rc = TY_ENOMEM;
  if (read && drop) {
    for (size_t k = 0; k < g->n_nodes; k++)
      for (int i = 0; i < g->nodes[k].n_inputs; i++)
        if (g->nodes[k].inputs[i] != TY_NO_VALUE) read[g->nodes[k].inputs[i]] = true;
    for (size_t k = 0; k < g->n_nodes; k++) {
      int o = g->nodes[k].outputs[0];
      drop[k] = g->nodes[k].op == TY_OP_TRANSPOSE && o != TY_NO_VALUE && !read[o] &&
                !g->values[o].is_output;
    }
    rc = ty__graph_drop_nodes(g, drop);
  }
  free(read);
  free(drop);
  return rc;
}

int ty__fold_transpose_matmul(ty_graph *g, size_t *folded) {
  *folded = 0;
  for (size_t k = 0; k < g->n_nodes; k++) {
    if (g->nodes[k].op != TY_OP_MATMUL || g->nodes[k].n_inputs != 2) continue;
    for (int side = 0; side < 2; side++) {
      const char *attr = side == 0 ? TY__MM_PERM_A : TY__MM_PERM_B;
      int64_t perm[TY_MAX_RANK];
      if (ty_graph_node_attr(&g->nodes[k], attr)) continue;
      const ty_graph_node *t = foldable(g, g->nodes[k].inputs[side], side, perm);
      if (!t) continue;
      int x = t->inputs[0];
      int rc = ty_graph_node_set_ints(g, k, attr, perm, (size_t)g->values[x].shape.rank);
      if (rc != 0) return rc;
      g->nodes[k].inputs[side] = x;
      (*folded)++;
    }
  }
  return *folded ? drop_unread(g) : 0;
}
