/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape inference for the data-movement ops (Flatten, Reshape, Transpose,
 * Concat, Gather, Squeeze, Unsqueeze), Shape and Size, the reductions,
 * TopK, Constant and Dropout. Reshape, Squeeze, Unsqueeze and the reductions read
 * int inputs; at import those come from initializers, Constant nodes or
 * folded shape arithmetic, and a Reshape target computed from a symbolic
 * batch (ty__symvec) keeps the batch symbolic. When a value is not known
 * the output shape is left unknown rather than guessed.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

static int fail(ty__infer *ic, int code, const char *msg) {
  return ty__infer_fail(ic, code, "%s", msg);
}

/* Splits dims [from,to) into a concrete product and counts of batch and
 * unknown dims, so reshapes can keep the batch symbolic. */
typedef struct factor {
  int64_t known;
  int batch, unknown;
} factor;

static factor factorize(const ty_shape *s, int from, int to) {
  factor f = {1, 0, 0};
  for (int d = from; d < to; d++) {
    if (s->dims[d] >= 0 && !__builtin_mul_overflow(f.known, s->dims[d], &f.known)) continue;
    if (s->dims[d] >= 0)
      f.unknown++; /* overflowed: the size is not tracked */
    else if (s->dims[d] == TY_DIM_BATCH)
      f.batch++;
    else if (s->dims[d] < 0)
      f.unknown++;
  }
  return f;
}

static int64_t factor_dim(factor f) {
  if (f.unknown || f.batch > 1) return TY_DIM_UNKNOWN;
  if (f.batch == 1) return f.known == 1 ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
  return f.known;
}

int ty__infer_flatten(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = ty_shape_unknown();
  if (x->rank >= 0) {
    int64_t axis = ty_graph_node_attr_int(ic->node, "axis", 1);
    if (axis < 0) axis += x->rank;
    if (axis < 0 || axis > x->rank) return fail(ic, TY_EINVAL, "axis is out of range");
    out = ty_shape_make(2, (int64_t[]){factor_dim(factorize(x, 0, (int)axis)),
                                       factor_dim(factorize(x, (int)axis, x->rank))});
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

/* The target's dims with 0 (copy) resolved; -1 entries left at 1 in out
 * and reported in *infer_at. */
static int reshape_target(ty__infer *ic, const int64_t *target, const int8_t *kind, int n,
                          ty_shape *out, int *infer_at) {
  const ty_shape *x = &ic->in_shape[0];
  bool allowzero = ty_graph_node_attr_int(ic->node, "allowzero", 0) != 0;
  out->rank = n;
  *infer_at = -1;
  for (int d = 0; d < n; d++) {
    if (kind[d] != TY__SYM_KNOWN) {
      out->dims[d] = kind[d] == TY__SYM_BATCH ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
    } else if (target[d] == 0 && !allowzero) {
      if (d >= x->rank)
        return fail(ic, TY_EINVAL, "a 0 in shape copies a dim the input does not have");
      out->dims[d] = x->dims[d];
    } else if (target[d] == -1) {
      if (*infer_at >= 0) return fail(ic, TY_EINVAL, "shape has more than one -1");
      *infer_at = d;
      out->dims[d] = 1;
    } else if (target[d] < 0) {
      return fail(ic, TY_EINVAL, "shape has a negative dim other than -1");
    } else {
      out->dims[d] = target[d];
    }
  }
  return 0;
}

int ty__infer_reshape(ty__infer *ic) {
  int64_t target[TY_MAX_RANK];
  int8_t kind[TY_MAX_RANK];
  int n, infer_at, rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_dims_list(ic, 1, target, kind, TY_MAX_RANK, &n);
  if (rc != 0) return rc;
  if (n == -1) return fail(ic, TY_EINVAL, "input shape is missing");
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = ty_shape_unknown();
  if (n >= 0 && x->rank < 0) { /* the target's length is the rank; its given dims are known */
    out.rank = n;
    for (int d = 0; d < n; d++)
      out.dims[d] = kind[d] == TY__SYM_BATCH                    ? TY_DIM_BATCH
                    : kind[d] == TY__SYM_KNOWN && target[d] > 0 ? target[d]
                                                                : TY_DIM_UNKNOWN;
  }
  if (n < 0 || x->rank < 0) {
    ty__infer_set(ic, 0, ic->in_dt[0], &out);
    return 0;
  }
  if ((rc = reshape_target(ic, target, kind, n, &out, &infer_at)) != 0) return rc;
  factor fi = factorize(x, 0, x->rank), fo = factorize(&out, 0, n);
  if (infer_at >= 0) {
    factor rest = {fi.known, fi.batch - fo.batch, fi.unknown + fo.unknown};
    if (fo.known == 0 || (rest.unknown == 0 && rest.batch >= 0 && fi.known % fo.known != 0))
      return fail(ic, TY_EINVAL, "cannot infer the -1 dim: sizes do not divide");
    rest.known = fi.known / fo.known;
    out.dims[infer_at] = rest.batch < 0 ? TY_DIM_UNKNOWN : factor_dim(rest);
  } else if (!fi.unknown && !fo.unknown && (fi.known != fo.known || fi.batch != fo.batch)) {
    return fail(ic, TY_EINVAL, "shape does not hold the same number of elements");
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_transpose(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = *x;
  if (x->rank >= 0) {
    int64_t perm[TY_MAX_RANK];
    int n;
    if (ty__attr_ints(ic->node, "perm", perm, TY_MAX_RANK, &n) != 0 || (n >= 0 && n != x->rank))
      return fail(ic, TY_EINVAL, "attribute perm must list every axis once");
    bool seen[TY_MAX_RANK] = {false};
    for (int d = 0; d < x->rank; d++) {
      int64_t p = n < 0 ? x->rank - 1 - d : perm[d];
      if (p < 0 || p >= x->rank || seen[p])
        return fail(ic, TY_EINVAL, "attribute perm must list every axis once");
      seen[p] = true;
      out.dims[d] = x->dims[p];
    }
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_concat(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  ty_shape out = ic->in_shape[0];
  int axis = 0;
  for (int i = 1; i < ic->n_in; i++) {
    if (!ty__infer_has(ic, i)) return fail(ic, TY_EINVAL, "an input is missing");
    if (ic->in_dt[i] != ic->in_dt[0]) return fail(ic, TY_EINVAL, "inputs have different dtypes");
  }
  if (out.rank < 0) goto done;
  if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", 0), out.rank, &axis) != 0)
    return fail(ic, TY_EINVAL, "axis is out of range");
  for (int i = 1; i < ic->n_in; i++) {
    const ty_shape *s = &ic->in_shape[i];
    if (s->rank < 0) {
      out = ty_shape_unknown();
      goto done;
    }
    if (s->rank != out.rank) return fail(ic, TY_EINVAL, "inputs have different ranks");
    for (int d = 0; d < out.rank; d++) {
      if (d == axis) continue;
      if (s->dims[d] >= 0 && out.dims[d] >= 0 && s->dims[d] != out.dims[d])
        return fail(ic, TY_EINVAL, "inputs differ outside the concat axis");
      if (out.dims[d] < 0) out.dims[d] = s->dims[d];
    }
    out.dims[axis] = out.dims[axis] >= 0 && s->dims[axis] >= 0
                         ? ty__dim_add(out.dims[axis], s->dims[axis])
                         : TY_DIM_UNKNOWN;
  }
done:
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_gather(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_INDEX, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0], *idx = &ic->in_shape[1];
  ty_shape out = ty_shape_unknown();
  if (x->rank >= 0 && idx->rank >= 0) {
    int axis;
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", 0), x->rank, &axis) != 0)
      return fail(ic, TY_EINVAL, "axis is out of range");
    if (x->rank - 1 + idx->rank > TY_MAX_RANK)
      return fail(ic, TY_EUNSUPPORTED, "output rank is too large");
    out.rank = 0;
    for (int d = 0; d < axis; d++)
      out.dims[out.rank++] = x->dims[d];
    for (int d = 0; d < idx->rank; d++)
      out.dims[out.rank++] = idx->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
      out.dims[out.rank++] = x->dims[d];
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

/* Axes of Squeeze/Unsqueeze/Reduce*: an attribute before the opset that
 * moved them to input 1, the input after. *out_n: -1 absent, -2 unknown. */
static int read_axes(ty__infer *ic, int input_opset, int64_t *axes, int *out_n) {
  if (ic->node->opset >= input_opset) return ty__infer_int_list(ic, 1, axes, TY_MAX_RANK, out_n);
  if (ty__attr_ints(ic->node, "axes", axes, TY_MAX_RANK, out_n) != 0)
    return fail(ic, TY_EINVAL, "attribute axes has too many values");
  return 0;
}

/* Marks normalised axes; fails on out-of-range or repeated ones. */
static int mark_axes(ty__infer *ic, const int64_t *axes, int n, int rank, bool *mark) {
  memset(mark, 0, TY_MAX_RANK * sizeof *mark);
  for (int i = 0; i < n; i++) {
    int a;
    if (ty_axis_normalize(axes[i], rank, &a) != 0 || mark[a])
      return fail(ic, TY_EINVAL, "axes are out of range or repeated");
    mark[a] = true;
  }
  return 0;
}

int ty__infer_squeeze(ty__infer *ic) {
  bool unsqueeze = ic->node->op == TY_OP_UNSQUEEZE;
  int64_t axes[TY_MAX_RANK];
  bool mark[TY_MAX_RANK];
  int n, rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = read_axes(ic, 13, axes, &n);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = ty_shape_unknown();
  if (unsqueeze && n == -1) return fail(ic, TY_EINVAL, "axes are missing");
  if (x->rank < 0 || n == -2) goto done;
  int rank = unsqueeze ? x->rank + n : x->rank;
  if (rank > TY_MAX_RANK) return fail(ic, TY_EUNSUPPORTED, "output rank is too large");
  if (n >= 0 && (rc = mark_axes(ic, axes, n, rank, mark)) != 0) return rc;
  out.rank = 0;
  for (int d = 0, src = 0; d < rank; d++) {
    if (unsqueeze) {
      out.dims[out.rank++] = mark[d] ? 1 : x->dims[src++];
      continue;
    }
    bool drop = n >= 0 ? mark[d] : x->dims[d] == 1;
    if (n < 0 && x->dims[d] == TY_DIM_UNKNOWN) {
      out = ty_shape_unknown();
      goto done;
    }
    if (drop && x->dims[d] != 1 && x->dims[d] >= 0)
      return fail(ic, TY_EINVAL, "cannot squeeze a dim that is not 1");
    if (!drop) out.dims[out.rank++] = x->dims[d];
  }
done:
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

/* The opset from which a reduction reads its axes from input 1. */
int ty__infer_reduce(ty__infer *ic) {
  ty_op op = ic->node->op;
  uint32_t mask =
      op == TY_OP_REDUCE_MAX || op == TY_OP_REDUCE_MIN ? TY__DT_NUMS | TY__DT(BOOL) : TY__DT_NUMS;
  int64_t axes[TY_MAX_RANK];
  bool mark[TY_MAX_RANK];
  int n, rc = ty__infer_need(ic, 0, mask, false);
  if (rc != 0) return rc;
  if (!ty__reduce_axes_is_input(ic->node) && ty__infer_has(ic, 1))
    return ty__infer_fail(ic, TY_EINVAL,
                          "input 1 (axes) is given, but at opset %d axes is an attribute (an "
                          "input from opset %d)",
                          ic->node->opset, op == TY_OP_REDUCE_SUM ? 13 : 18);
  rc = read_axes(ic, ty__reduce_axes_is_input(ic->node) ? 0 : INT32_MAX, axes, &n);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = ty_shape_unknown();
  if (x->rank < 0 || n == -2) goto done;
  bool keep = ty_graph_node_attr_int(ic->node, "keepdims", 1) != 0;
  bool noop = ty_graph_node_attr_int(ic->node, "noop_with_empty_axes", 0) != 0;
  if (n <= 0 && noop) {
    out = *x;
    goto done;
  }
  if (n > 0 && (rc = mark_axes(ic, axes, n, x->rank, mark)) != 0) return rc;
  out.rank = 0;
  for (int d = 0; d < x->rank; d++) {
    bool red = n <= 0 || mark[d];
    if (red && x->dims[d] == 0 && (op == TY_OP_REDUCE_MAX || op == TY_OP_REDUCE_MIN))
      return fail(ic, TY_EINVAL, "cannot reduce an empty dim to a maximum or minimum");
    if (!red)
      out.dims[out.rank++] = x->dims[d];
    else if (keep)
      out.dims[out.rank++] = 1;
  }
done:
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_arg_reduce(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_NUMS, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = *x;
  if (x->rank >= 0) {
    int axis;
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", 0), x->rank ? x->rank : 1,
                          &axis) != 0)
      return fail(ic, TY_EINVAL, "axis is out of range");
    if (x->rank && x->dims[axis] == 0)
      return fail(ic, TY_EINVAL, "cannot take the index of an empty dim");
    bool keep = ty_graph_node_attr_int(ic->node, "keepdims", 1) != 0;
    if (x->rank && keep)
      out.dims[axis] = 1;
    else if (x->rank) {
      for (int d = axis; d + 1 < x->rank; d++)
        out.dims[d] = x->dims[d + 1];
      out.rank--;
    }
  }
  ty__infer_set(ic, 0, TY_DTYPE_I64, &out);
  return 0;
}

/* TopK's k: input 1 (opset 10 on) or attribute k; -1 when not yet known. */
static int top_k_k(ty__infer *ic, int64_t *out) {
  *out = -1;
  if (ic->node->opset < 10) {
    *out = ty_graph_node_attr_int(ic->node, "k", -1);
    return *out < 0 ? fail(ic, TY_EINVAL, "attribute k must be given and >= 0") : 0;
  }
  int rc = ty__infer_need(ic, 1, TY__DT(I64), false);
  if (rc != 0) return rc;
  if (ic->in_shape[1].rank >= 0 && ty_shape_numel(&ic->in_shape[1]) != 1)
    return fail(ic, TY_EINVAL, "K must hold one value");
  if (ic->in_val[1] && (*out = ty_tensor_i64(ic->in_val[1])[0]) < 0)
    return fail(ic, TY_EINVAL, "K must be >= 0");
  return 0;
}

int ty__infer_top_k(ty__infer *ic) {
  int64_t k;
  int rc = ty__infer_need(ic, 0, TY__DT_NUMS, false);
  if (rc == 0) rc = top_k_k(ic, &k);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = *x;
  if (x->rank == 0) return fail(ic, TY_EINVAL, "input must have rank >= 1");
  if (x->rank > 0) {
    int axis;
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", -1), x->rank, &axis) != 0)
      return fail(ic, TY_EINVAL, "axis is out of range");
    if (k >= 0 && x->dims[axis] >= 0 && k > x->dims[axis])
      return ty__infer_fail(ic, TY_EINVAL, "K=%lld exceeds the axis' %lld elements", (long long)k,
                            (long long)x->dims[axis]);
    out.dims[axis] = k >= 0 ? k : TY_DIM_UNKNOWN;
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  ty__infer_set(ic, 1, TY_DTYPE_I64, &out);
  return 0;
}

int ty__infer_dropout(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(F32), false);
  if (rc != 0) return rc;
  if (ty__infer_has(ic, 1) && (ic->in_dt[1] != TY_DTYPE_F32 || (ic->in_shape[1].rank > 0)))
    return fail(ic, TY_EINVAL, "ratio must be a FLOAT scalar");
  if (ty__infer_has(ic, 2) && ic->in_dt[2] != TY_DTYPE_BOOL)
    return fail(ic, TY_EINVAL, "training_mode must be a BOOL scalar");
  const ty_tensor *r = ty__infer_has(ic, 1) ? ic->in_val[1] : NULL;
  float ratio = r ? ty_tensor_f32(r)[0] : ty_graph_node_attr_float(ic->node, "ratio", 0.5f);
  if (ratio < 0.0f || ratio >= 1.0f) return fail(ic, TY_EINVAL, "ratio must be in [0, 1)");
  ty__infer_set(ic, 0, TY_DTYPE_F32, &ic->in_shape[0]);
  ty__infer_set(ic, 1, TY_DTYPE_BOOL, &ic->in_shape[0]);
  return 0;
}

int ty__infer_constant(ty__infer *ic) {
  const ty_graph_attr *a = ty_graph_node_attr(ic->node, "value");
  if (!a || a->type != TY_ATTR_TENSOR || !a->t)
    return fail(ic, TY_EINVAL, "attribute value is missing");
  ty__infer_set(ic, 0, a->t->dtype, &a->t->shape);
  return 0;
}

/* Shape's [start, end) window of the input's dims (opset 15), clamped. */
void ty__shape_window(const ty_graph_node *n, int rank, int *out_start, int *out_end) {
  int64_t st = ty_graph_node_attr_int(n, "start", 0), en = ty_graph_node_attr_int(n, "end", rank);
  if (st < 0) st += rank;
  if (en < 0) en += rank;
  st = st < 0 ? 0 : st > rank ? rank : st;
  en = en < 0 ? 0 : en > rank ? rank : en;
  *out_start = (int)st;
  *out_end = (int)(en < st ? st : en);
}

int ty__infer_shape(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = ty_shape_make(0, NULL);
  if (ic->node->op == TY_OP_SHAPE) {
    int st, en;
    ty__shape_window(ic->node, x->rank, &st, &en);
    out = x->rank < 0 ? ty_shape_make(1, (int64_t[]){TY_DIM_UNKNOWN})
                      : ty_shape_make(1, (int64_t[]){en - st});
  }
  ty__infer_set(ic, 0, TY_DTYPE_I64, &out);
  return 0;
}
