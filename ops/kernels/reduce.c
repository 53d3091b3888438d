/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ReduceMean and ReduceSum over any set of axes. The input is viewed as an
 * odometer over all dims; each element adds into the output slot whose
 * index drops (or pins to 0) the reduced dims. Sums accumulate in double so
 * means over large spatial extents keep float precision.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>

int ty__k_reduce(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out, ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int r = x->shape.rank;
  int64_t ynum = ty_tensor_numel(y), xnum = ty_tensor_numel(x);
  const float *xd = x->data;
  float *yd = y->data;
  if (ynum == xnum) { /* noop_with_empty_axes, or reducing only dims of 1 */
    for (int64_t i = 0; i < xnum; i++) yd[i] = xd[i];
    return 0;
  }
  /* A dim is reduced iff it is not kept: rebuild the kept-dim strides of the
   * output from the input dims, matching y's element count. */
  bool red[TY_MAX_RANK] = {false};
  int64_t axes[TY_MAX_RANK];
  int na = -1;
  const ty_tensor *ax = n->n_inputs > 1 ? in[1] : NULL;
  if (ax) {
    na = (int)ty_tensor_numel(ax);
    for (int i = 0; i < na && i < TY_MAX_RANK; i++) axes[i] = ty_tensor_i64(ax)[i];
  } else if (ty__attr_ints(n, "axes", axes, TY_MAX_RANK, &na) != 0) {
    return TY_EINTERNAL;
  }
  for (int i = 0; i < na; i++) red[axes[i] < 0 ? axes[i] + r : axes[i]] = true;
  if (na <= 0)
    for (int d = 0; d < r; d++) red[d] = true;
  int64_t ys[TY_MAX_RANK], st = 1, idx[TY_MAX_RANK] = {0}, off = 0;
  for (int d = r - 1; d >= 0; d--) {
    ys[d] = red[d] ? 0 : st;
    st *= red[d] ? 1 : x->shape.dims[d];
  }
  double *acc = calloc((size_t)(ynum ? ynum : 1), sizeof *acc);
  if (!acc) return TY_ENOMEM;
  for (int64_t i = 0; i < xnum; i++) {
    acc[off] += xd[i];
    for (int d = r - 1; d >= 0; d--) {
      idx[d]++;
      off += ys[d];
      if (idx[d] < x->shape.dims[d]) break;
      off -= ys[d] * idx[d];
      idx[d] = 0;
    }
  }
  double div = ynum ? (double)xnum / (double)ynum : 1;
  bool mean = n->op == TY_OP_REDUCE_MEAN;
  for (int64_t i = 0; i < ynum; i++) yd[i] = (float)(mean ? acc[i] / div : acc[i]);
  free(acc);
  return 0;
}
