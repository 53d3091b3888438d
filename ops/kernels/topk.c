/* SPDX-License-Identifier: Apache-2.0 */
/*
 * TopK: the k largest (or smallest) elements along one axis, sorted, and
 * their int64 indices; what torch.topk, torch.sort(...).values and k-max
 * pooling export. Ties keep the lower index first (ONNX), NaN counts as
 * larger than every number (as PyTorch and numpy sort it). Any numeric
 * dtype. Its gradient scatters dValues back at the indices
 * (ops/autodiff/kernels_grad_index.c).
 */
#include "ops/ops_internal.h"

#include <math.h>
#include <stdlib.h> /* qsort_r: the build defines _GNU_SOURCE */

typedef struct entry {
  ty__num v;
  int64_t at;
} entry;

typedef struct order {
  ty__dkind kind;
  bool largest;
} order;

/* a before b: by value in the requested direction, then by index. */
static int cmp(const void *pa, const void *pb, void *arg) {
  const entry *a = pa, *b = pb;
  const order *o = arg;
  int c;
  if (o->kind == TY__DK_FLOAT) {
    bool na = isnan(a->v.f), nb = isnan(b->v.f);
    c = na || nb ? (int)na - (int)nb : (a->v.f > b->v.f) - (a->v.f < b->v.f);
  } else if (o->kind == TY__DK_SINT) {
    c = (a->v.i > b->v.i) - (a->v.i < b->v.i);
  } else {
    c = (a->v.u > b->v.u) - (a->v.u < b->v.u);
  }
  if (o->largest) c = -c;
  return c ? c : (a->at > b->at) - (a->at < b->at);
}

int ty__k_top_k(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  int r = x->shape.rank, axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", -1), r, &axis) != 0) return TY_EINTERNAL;
  const ty_tensor *vals = out[0] ? out[0] : out[1];
  if (!vals) return 0;
  int64_t dim = x->shape.dims[axis], k = vals->shape.dims[axis];
  int64_t outer = ty_shape_span(&x->shape, 0, axis), inner = ty_shape_span(&x->shape, axis + 1, r);
  order o = {ty__dkind_of(x->dtype), ty_graph_node_attr_int(n, "largest", 1) != 0};
  entry *e = malloc((size_t)(dim + 1) * sizeof *e);
  if (!e) return TY_ENOMEM;
  for (int64_t a = 0; a < outer; a++)
    for (int64_t b = 0; b < inner; b++) {
      for (int64_t j = 0; j < dim; j++)
        e[j] = (entry){ty__get(x->dtype, x->data, (a * dim + j) * inner + b), j};
      qsort_r(e, (size_t)dim, sizeof *e, cmp, &o);
      for (int64_t j = 0; j < k; j++) {
        int64_t at = (a * k + j) * inner + b;
        if (out[0]) ty__put(x->dtype, out[0]->data, at, e[j].v);
        if (out[1]) ty_tensor_i64(out[1])[at] = e[j].at;
      }
    }
  free(e);
  return 0;
}
