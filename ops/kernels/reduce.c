/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The reductions (ReduceSum, Mean, Max, Min, Prod, L1, L2, SumSquare,
 * LogSum, LogSumExp) over any set of axes, and ArgMax/ArgMin along one.
 * The input is walked once as an odometer; each element folds into the
 * output slot whose index drops (or pins to 0) the reduced dims. Floats
 * accumulate in double, so means over large spatial extents keep float
 * precision; integers accumulate in their own 64-bit domain and wrap.
 * LogSumExp takes a second pass to subtract each slot's maximum first.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

bool ty__reduce_axes_is_input(const ty_graph_node *n) {
  return n->opset >= (n->op == TY_OP_REDUCE_SUM ? 13 : 18);
}

int ty__reduce_mask(const ty_graph_node *n, const ty_tensor *const *in, int rank, bool *red,
                    bool *out_noop) {
  int64_t axes[TY_MAX_RANK];
  int na = -1;
  const ty_tensor *ax = n->n_inputs > 1 && ty__reduce_axes_is_input(n) ? in[1] : NULL;
  if (ax) {
    na = (int)ty_tensor_numel(ax);
    if (na > TY_MAX_RANK) return TY_EINTERNAL;
    for (int i = 0; i < na; i++)
      axes[i] = ty__geti(ax->dtype, ax->data, i);
  } else if (ty__attr_ints(n, "axes", axes, TY_MAX_RANK, &na) != 0) {
    return TY_EINTERNAL;
  }
  *out_noop = na <= 0 && ty_graph_node_attr_int(n, "noop_with_empty_axes", 0) != 0;
  memset(red, 0, TY_MAX_RANK * sizeof *red);
  for (int i = 0; i < na; i++) {
    int a;
    if (ty_axis_normalize(axes[i], rank, &a) != 0) return TY_EINTERNAL;
    red[a] = true;
  }
  for (int d = 0; na <= 0 && d < rank; d++)
    red[d] = true;
  return 0;
}

void ty__reduce_slots(const ty_shape *x, const bool *red, int64_t *out_strides) {
  int64_t st = 1;
  for (int d = x->rank - 1; d >= 0; d--) {
    out_strides[d] = red[d] ? 0 : st;
    st *= red[d] ? 1 : x->dims[d];
  }
}

/* Walks x; w.off[0] is the output slot of the current element. */
static void slots_init(ty__odo *w, const ty_shape *x, const bool *red) {
  int64_t ys[TY_MAX_RANK];
  ty__reduce_slots(x, red, ys);
  ty__odo_init_strided(w, x, ys, 0);
}

static double init_f(ty_op op) {
  switch (op) {
  case TY_OP_REDUCE_PROD:
    return 1.0;
  case TY_OP_REDUCE_MAX:
    return -INFINITY;
  case TY_OP_REDUCE_MIN:
    return INFINITY;
  default:
    return 0.0;
  }
}

static double fold_f(ty_op op, double acc, double v) {
  switch (op) {
  case TY_OP_REDUCE_PROD:
    return acc * v;
  case TY_OP_REDUCE_MAX:
    return isnan(v) || v > acc ? v : acc;
  case TY_OP_REDUCE_MIN:
    return isnan(v) || v < acc ? v : acc;
  case TY_OP_REDUCE_L1:
    return acc + fabs(v);
  case TY_OP_REDUCE_L2:
  case TY_OP_REDUCE_SUM_SQUARE:
    return acc + v * v;
  default:
    return acc + v;
  }
}

static double final_f(ty_op op, double acc, double count) {
  switch (op) {
  case TY_OP_REDUCE_MEAN:
    return acc / count;
  case TY_OP_REDUCE_L2:
    return sqrt(acc);
  case TY_OP_REDUCE_LOG_SUM:
    return log(acc);
  default:
    return acc;
  }
}

static void reduce_float(ty_op op, const ty_tensor *x, const bool *red, ty_tensor *y, double *acc,
                         double *mx) {
  int64_t xn = ty_tensor_numel(x), yn = ty_tensor_numel(y);
  ty__odo w;
  bool lse = op == TY_OP_REDUCE_LOG_SUM_EXP;
  for (int64_t i = 0; i < yn; i++) {
    acc[i] = init_f(op);
    mx[i] = -INFINITY;
  }
  if (lse) {
    slots_init(&w, &x->shape, red);
    for (int64_t i = 0; i < xn; i++, ty__odo_next(&w))
      mx[w.off[0]] = fmax(mx[w.off[0]], ty__getf(x->dtype, x->data, i));
  }
  slots_init(&w, &x->shape, red);
  for (int64_t i = 0; i < xn; i++, ty__odo_next(&w)) {
    double v = ty__getf(x->dtype, x->data, i);
    int64_t o = w.off[0];
    acc[o] = lse ? acc[o] + exp(v - mx[o]) : fold_f(op, acc[o], v);
  }
  double count = yn ? (double)xn / (double)yn : 1;
  for (int64_t i = 0; i < yn; i++) {
    double v = lse ? (isinf(mx[i]) ? mx[i] : mx[i] + log(acc[i])) : final_f(op, acc[i], count);
    ty__putf(y->dtype, y->data, i, v);
  }
}

/* Integers in their own domain: sums and products wrap, as numpy's. */
static ty__num fold_i(ty_op op, bool sgn, ty__num a, ty__num v) {
  switch (op) {
  case TY_OP_REDUCE_PROD:
    a.u *= v.u;
    return a;
  case TY_OP_REDUCE_MAX:
    if (sgn ? v.i > a.i : v.u > a.u) a = v;
    return a;
  case TY_OP_REDUCE_MIN:
    if (sgn ? v.i < a.i : v.u < a.u) a = v;
    return a;
  case TY_OP_REDUCE_L1:
    a.u += sgn && v.i < 0 ? 0u - v.u : v.u;
    return a;
  case TY_OP_REDUCE_SUM_SQUARE:
    a.u += v.u * v.u;
    return a;
  default:
    a.u += v.u;
    return a;
  }
}

static int reduce_int(ty_op op, const ty_tensor *x, const bool *red, ty_tensor *y) {
  int64_t xn = ty_tensor_numel(x), yn = ty_tensor_numel(y);
  bool sgn = ty__dkind_of(x->dtype) == TY__DK_SINT;
  ty__num *acc = calloc((size_t)(yn ? yn : 1), sizeof *acc);
  bool *seen = calloc((size_t)(yn ? yn : 1), sizeof *seen);
  if (!acc || !seen) {
    free(acc);
    free(seen);
    return TY_ENOMEM;
  }
  if (op == TY_OP_REDUCE_PROD)
    for (int64_t i = 0; i < yn; i++)
      acc[i].u = 1;
  ty__odo w;
  slots_init(&w, &x->shape, red);
  bool minmax = op == TY_OP_REDUCE_MAX || op == TY_OP_REDUCE_MIN;
  for (int64_t i = 0; i < xn; i++, ty__odo_next(&w)) {
    ty__num v = ty__get(x->dtype, x->data, i);
    int64_t o = w.off[0];
    acc[o] = minmax && !seen[o] ? v : fold_i(op, sgn, acc[o], v);
    seen[o] = true;
  }
  double count = yn ? (double)xn / (double)yn : 1;
  for (int64_t i = 0; i < yn; i++) {
    if (op == TY_OP_REDUCE_MEAN || op == TY_OP_REDUCE_L2 || op == TY_OP_REDUCE_LOG_SUM ||
        op == TY_OP_REDUCE_LOG_SUM_EXP) {
      double v = final_f(op, sgn ? (double)acc[i].i : (double)acc[i].u, count);
      ty__putf(y->dtype, y->data, i, v);
    } else {
      ty__put(y->dtype, y->data, i, acc[i]);
    }
  }
  free(acc);
  free(seen);
  return 0;
}

int ty__k_reduce(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  bool red[TY_MAX_RANK], noop;
  if (ty__reduce_mask(n, in, x->shape.rank, red, &noop) != 0) return TY_EINTERNAL;
  if (noop) {
    memcpy(y->data, x->data, x->nbytes);
    return 0;
  }
  if (ty__dkind_of(x->dtype) != TY__DK_FLOAT && n->op != TY_OP_REDUCE_LOG_SUM_EXP)
    return reduce_int(n->op, x, red, y);
  int64_t yn = ty_tensor_numel(y);
  double *acc = calloc(2 * (size_t)(yn ? yn : 1), sizeof *acc);
  if (!acc) return TY_ENOMEM;
  reduce_float(n->op, x, red, y, acc, acc + (yn ? yn : 1));
  free(acc);
  return 0;
}

/* ---- ArgMax, ArgMin ------------------------------------------------------------ */
int ty__k_arg_reduce(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                     ty__kctx *ctx) {
  (void)ctx;
  const ty_tensor *x = in[0];
  ty_tensor *y = out[0];
  if (!y) return 0;
  int axis, r = x->shape.rank;
  if (ty_axis_normalize(ty_graph_node_attr_int(n, "axis", 0), r ? r : 1, &axis) != 0)
    return TY_EINTERNAL;
  bool last = ty_graph_node_attr_int(n, "select_last_index", 0) != 0,
       is_max = n->op == TY_OP_ARG_MAX;
  int64_t outer = r ? ty_shape_span(&x->shape, 0, axis) : 1, dim = r ? x->shape.dims[axis] : 1;
  int64_t inner = r ? ty_shape_span(&x->shape, axis + 1, r) : 1;
  ty__dkind k = ty__dkind_of(x->dtype);
  for (int64_t o = 0; o < outer; o++)
    for (int64_t i = 0; i < inner; i++) {
      int64_t best = 0;
      ty__num bv = ty__get(x->dtype, x->data, o * dim * inner + i);
      for (int64_t j = 1; j < dim; j++) {
        ty__num v = ty__get(x->dtype, x->data, (o * dim + j) * inner + i);
        int c = k == TY__DK_FLOAT  ? (v.f > bv.f) - (v.f < bv.f)
                : k == TY__DK_SINT ? (v.i > bv.i) - (v.i < bv.i)
                                   : (v.u > bv.u) - (v.u < bv.u);
        if (!is_max) c = -c;
        if (c > 0 || (c == 0 && last)) {
          best = j;
          bv = v;
        }
      }
      ty_tensor_i64(y)[o * inner + i] = best;
    }
  return 0;
}
