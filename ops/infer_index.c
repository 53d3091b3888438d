/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape inference of the indexing and layout ops: Slice, Split, Expand,
 * Tile, Pad, Trilu, Range, ConstantOfShape, EyeLike, OneHot, the Gather and
 * Scatter families, DepthToSpace/SpaceToDepth, CumSum, and Resize/Upsample
 * (whose geometry ops/kernels/resize.c shares). Ops whose output
 * shape depends on an input's value (Range, OneHot's depth, Slice's starts)
 * get a concrete shape when the value is known at import, an unknown dim
 * otherwise; in the executor every value is known.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int fail(ty__infer *ic, int code, const char *msg) {
  return ty__infer_fail(ic, code, "%s", msg);
}

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) {
  return v < lo ? lo : v > hi ? hi : v;
}

void ty__slice_axis(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t *out_start,
                    int64_t *out_len) {
  if (start < 0) start += dim; /* no overflow: dim >= 0 */
  if (end < 0) end += dim;
  /* Counted in unsigned: a step of INT64_MIN has no negation. */
  uint64_t mag = step > 0 ? (uint64_t)step : 0 - (uint64_t)step;
  if (step > 0) {
    start = clamp64(start, 0, dim);
    end = clamp64(end, 0, dim);
    *out_len = end > start ? (int64_t)((uint64_t)(end - start - 1) / mag + 1) : 0;
  } else {
    start = clamp64(start, 0, dim - 1);
    end = clamp64(end, -1, dim - 1);
    *out_len = start > end ? (int64_t)((uint64_t)(start - end - 1) / mag + 1) : 0;
  }
  *out_start = start;
}

int ty__slice_params(const ty_graph_node *n, const ty_tensor *const *in, int rank, ty__slice *s) {
  int64_t st[TY_MAX_RANK], en[TY_MAX_RANK], ax[TY_MAX_RANK], sp[TY_MAX_RANK];
  int ns, ne, na = -1, nsp = -1;
  bool attrs = n->opset < 10;
  for (int d = 0; d < rank; d++) {
    s->start[d] = 0;
    s->step[d] = 1;
    s->end[d] = INT64_MAX; /* the whole dim */
    s->given[d] = false;
  }
  if (attrs) {
    if (ty__attr_ints(n, "starts", st, TY_MAX_RANK, &ns) ||
        ty__attr_ints(n, "ends", en, TY_MAX_RANK, &ne) ||
        ty__attr_ints(n, "axes", ax, TY_MAX_RANK, &na) || ns < 0 || ne != ns)
      return TY_EINVAL;
  } else {
    for (int i = 1; i < 5 && i < n->n_inputs; i++)
      if (in[i] && (in[i]->shape.rank != 1 || ty_tensor_numel(in[i]) > TY_MAX_RANK))
        return TY_EINVAL;
    if (!in[1] || !in[2]) return TY_EINVAL;
    ns = (int)ty_tensor_numel(in[1]);
    ne = (int)ty_tensor_numel(in[2]);
    for (int i = 0; i < ns; i++)
      st[i] = ty__geti(in[1]->dtype, in[1]->data, i);
    for (int i = 0; i < ne; i++)
      en[i] = ty__geti(in[2]->dtype, in[2]->data, i);
    if (n->n_inputs > 3 && in[3]) na = (int)ty_tensor_numel(in[3]);
    for (int i = 0; i < na; i++)
      ax[i] = ty__geti(in[3]->dtype, in[3]->data, i);
    if (n->n_inputs > 4 && in[4]) nsp = (int)ty_tensor_numel(in[4]);
    for (int i = 0; i < nsp; i++)
      sp[i] = ty__geti(in[4]->dtype, in[4]->data, i);
  }
  if (ne != ns || (na >= 0 && na != ns) || (nsp >= 0 && nsp != ns)) return TY_EINVAL;
  bool seen[TY_MAX_RANK] = {false};
  for (int i = 0; i < ns; i++) {
    int a;
    if (ty_axis_normalize(na >= 0 ? ax[i] : i, rank, &a) != 0 || seen[a]) return TY_EINVAL;
    seen[a] = true;
    s->step[a] = nsp >= 0 ? sp[i] : 1;
    if (s->step[a] == 0) return TY_EINVAL;
    s->start[a] = st[i];
    s->end[a] = en[i]; /* resolved against the dims by ty__slice_axis */
    s->given[a] = true;
  }
  return 0;
}

int ty__infer_slice(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  for (int i = 1; rc == 0 && i < 5 && ic->node->opset >= 10; i++)
    rc = ty__infer_need(ic, i, TY__DT_INDEX, i > 2);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = *x;
  bool known = true;
  for (int i = 1; i < 5 && i < ic->n_in && ic->node->opset >= 10; i++)
    known &= !ty__infer_has(ic, i) || ic->in_val[i];
  if (x->rank >= 0 && known) {
    ty__slice s;
    if (ty__slice_params(ic->node, ic->in_val, x->rank, &s) != 0)
      return fail(ic, TY_EINVAL,
                  "starts, ends, axes and steps must be vectors of one length naming distinct "
                  "axes, steps not 0");
    for (int d = 0; d < x->rank; d++) {
      if (!s.given[d]) continue;
      if (x->dims[d] < 0) {
        bool whole = s.step[d] == 1 && s.start[d] == 0 && s.end[d] >= INT32_MAX;
        out.dims[d] = whole ? x->dims[d] : TY_DIM_UNKNOWN;
        continue;
      }
      int64_t st, len;
      ty__slice_axis(x->dims[d], s.start[d], s.end[d], s.step[d], &st, &len);
      out.dims[d] = len;
    }
  } else if (x->rank >= 0) {
    for (int d = 0; d < x->rank; d++)
      out.dims[d] = TY_DIM_UNKNOWN;
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__split_sizes(const ty_graph_node *n, const ty_tensor *split_in, int64_t dim, int n_out,
                    int64_t *sizes) {
  int64_t v[64];
  int ns = -1;
  if (n_out > 64) return TY_EUNSUPPORTED;
  if (split_in) {
    ns = (int)ty_tensor_numel(split_in);
    if (ns > 64 || split_in->shape.rank != 1) return TY_EINVAL;
    for (int i = 0; i < ns; i++)
      v[i] = ty__geti(split_in->dtype, split_in->data, i);
  } else if (n->opset < 13 && ty__attr_ints(n, "split", v, 64, &ns) != 0) {
    return TY_EINVAL;
  }
  if (ns >= 0) {
    if (ns != n_out) return TY_EINVAL;
    int64_t sum = 0;
    for (int i = 0; i < ns; i++) {
      if (v[i] < 0) return TY_EINVAL;
      sizes[i] = v[i];
      sum = ty__dim_add(sum, v[i]);
    }
    return dim < 0 || sum == dim ? 0 : TY_EINVAL;
  }
  if (dim < 0) {
    for (int i = 0; i < n_out; i++)
      sizes[i] = TY_DIM_UNKNOWN;
    return 0;
  }
  /* Equal parts; opset 18's num_outputs lets the last one be smaller. */
  int64_t part = (dim + n_out - 1) / n_out;
  if (n->opset < 18 && dim % n_out != 0) return TY_EINVAL;
  for (int i = 0; i < n_out; i++) {
    int64_t left = dim - part * i;
    sizes[i] = left < 0 ? 0 : left < part ? left : part;
  }
  return 0;
}

int ty__infer_split(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_INDEX, true);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  int64_t nout = ty_graph_node_attr_int(ic->node, "num_outputs", ic->n_out);
  if (nout != ic->n_out)
    return fail(ic, TY_EINVAL, "attribute num_outputs differs from the number of outputs");
  if (x->rank < 0) { /* the dtype is still known: later nodes need it */
    for (int i = 0; i < ic->n_out; i++)
      ty__infer_set(ic, i, ic->in_dt[0], x);
    return 0;
  }
  int axis;
  if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", 0), x->rank, &axis) != 0)
    return fail(ic, TY_EINVAL, "axis is out of range");
  if (ty__infer_has(ic, 1) && !ic->in_val[1]) {
    for (int i = 0; i < ic->n_out; i++) {
      ty_shape o = *x;
      o.dims[axis] = TY_DIM_UNKNOWN;
      ty__infer_set(ic, i, ic->in_dt[0], &o);
    }
    return 0;
  }
  int64_t sizes[64];
  if (ty__split_sizes(ic->node, ty__infer_has(ic, 1) ? ic->in_val[1] : NULL, x->dims[axis],
                      ic->n_out, sizes) != 0)
    return fail(ic, TY_EINVAL, "split sizes must be one per output and add up to the dim");
  for (int i = 0; i < ic->n_out; i++) {
    ty_shape o = *x;
    o.dims[axis] = sizes[i];
    ty__infer_set(ic, i, ic->in_dt[0], &o);
  }
  return 0;
}

int ty__infer_expand(ty__infer *ic) {
  int64_t target[TY_MAX_RANK];
  int8_t kind[TY_MAX_RANK];
  int n, rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(I64), false);
  if (rc == 0) rc = ty__infer_dims_list(ic, 1, target, kind, TY_MAX_RANK, &n);
  if (rc != 0) return rc;
  ty_shape out = ty_shape_unknown(), t;
  if (n >= 0) {
    t = ty_shape_make(n, target);
    for (int d = 0; d < n; d++) {
      if (kind[d] != TY__SYM_KNOWN)
        t.dims[d] = kind[d] == TY__SYM_BATCH ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
      else if (target[d] < 0)
        return fail(ic, TY_EINVAL, "shape has a negative dim");
    }
    if (ty_shape_broadcast(&ic->in_shape[0], &t, &out) != 0)
      return fail(ic, TY_EINVAL, "shape does not broadcast with the input");
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

/* Tile's repeats may be partly known (Concat(Shape(x)[0], 1)): a dim of 1
 * repeated the batch times is the batch. */
int ty__infer_tile(ty__infer *ic) {
  int64_t rep[TY_MAX_RANK];
  int8_t kind[TY_MAX_RANK];
  int n, rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(I64), false);
  if (rc == 0) rc = ty__infer_dims_list(ic, 1, rep, kind, TY_MAX_RANK, &n);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = *x;
  if (x->rank >= 0 && n >= 0) {
    if (n != x->rank) return fail(ic, TY_EINVAL, "repeats must have one value per input dim");
    for (int d = 0; d < n; d++) {
      if (kind[d] != TY__SYM_KNOWN) {
        out.dims[d] = kind[d] == TY__SYM_BATCH && x->dims[d] == 1 ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
        continue;
      }
      if (rep[d] < 0) return fail(ic, TY_EINVAL, "repeats must not be negative");
      out.dims[d] = x->dims[d] >= 0 ? ty__dim_mul(x->dims[d], rep[d])
                    : rep[d] == 1   ? x->dims[d]
                                    : TY_DIM_UNKNOWN;
    }
  } else if (x->rank >= 0) {
    for (int d = 0; d < x->rank; d++)
      out.dims[d] = TY_DIM_UNKNOWN;
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__pad_params(const ty_graph_node *n, const ty_tensor *const *in, int rank, int64_t *pads) {
  int64_t v[2 * TY_MAX_RANK], axes[TY_MAX_RANK];
  int nv, na = -1;
  if (n->opset < 11) {
    if (ty__attr_ints(n, "pads", v, 2 * TY_MAX_RANK, &nv) != 0 || nv < 0) return TY_EINVAL;
  } else {
    if (!in[1] || in[1]->shape.rank != 1 || ty_tensor_numel(in[1]) > 2 * TY_MAX_RANK)
      return TY_EINVAL;
    nv = (int)ty_tensor_numel(in[1]);
    for (int i = 0; i < nv; i++)
      v[i] = ty__geti(in[1]->dtype, in[1]->data, i);
    if (n->n_inputs > 3 && in[3]) {
      if (in[3]->shape.rank != 1 || ty_tensor_numel(in[3]) > TY_MAX_RANK) return TY_EINVAL;
      na = (int)ty_tensor_numel(in[3]);
      for (int i = 0; i < na; i++)
        axes[i] = ty__geti(in[3]->dtype, in[3]->data, i);
    }
  }
  int cnt = na >= 0 ? na : rank;
  if (nv != 2 * cnt) return TY_EINVAL;
  memset(pads, 0, 2 * (size_t)rank * sizeof *pads);
  for (int i = 0; i < cnt; i++) {
    int a = i;
    if (na >= 0 && ty_axis_normalize(axes[i], rank, &a) != 0) return TY_EINVAL;
    pads[a] = v[i];
    pads[rank + a] = v[cnt + i];
  }
  return 0;
}

int ty__infer_pad(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0 && n->opset >= 11) rc = ty__infer_need(ic, 1, TY__DT(I64), false);
  if (rc == 0 && n->opset >= 11) rc = ty__infer_need(ic, 2, 1u << ic->in_dt[0], true);
  if (rc == 0 && n->opset >= 11) rc = ty__infer_need(ic, 3, TY__DT_INDEX, true);
  if (rc != 0) return rc;
  const char *mode = ty_graph_node_attr_string(n, "mode", "constant");
  if (strcmp(mode, "constant") != 0 && strcmp(mode, "reflect") != 0 && strcmp(mode, "edge") != 0)
    return ty__infer_fail(ic, TY_EUNSUPPORTED,
                          "attribute mode=%s is not supported (constant, reflect, edge)", mode);
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = *x;
  bool known = n->opset < 11 || (ic->in_val[1] && (!ty__infer_has(ic, 3) || ic->in_val[3]));
  if (x->rank >= 0) {
    int64_t pads[2 * TY_MAX_RANK];
    if (known && ty__pad_params(n, ic->in_val, x->rank, pads) != 0)
      return fail(ic, TY_EINVAL, "pads must hold a begin and an end for every padded axis");
    for (int d = 0; d < x->rank; d++) {
      if (known && (pads[d] < -TY__DIM_MAX || pads[d] > TY__DIM_MAX ||
                    pads[x->rank + d] < -TY__DIM_MAX || pads[x->rank + d] > TY__DIM_MAX))
        return fail(ic, TY_EINVAL, "pads are out of range");
      int64_t o = x->dims[d] + (known ? pads[d] + pads[x->rank + d] : 0);
      out.dims[d] = !known || x->dims[d] < 0
                        ? (known && !pads[d] && !pads[x->rank + d] ? x->dims[d] : TY_DIM_UNKNOWN)
                        : o;
      if (known && x->dims[d] >= 0 && o < 0)
        return fail(ic, TY_EINVAL, "pads crop more than the dim holds");
      if (known && strcmp(mode, "constant") != 0 && x->dims[d] == 0 &&
          (pads[d] || pads[x->rank + d]))
        return fail(ic, TY_EINVAL, "cannot pad an empty dim in reflect or edge mode");
      if (known && !strcmp(mode, "reflect") && x->dims[d] > 0 &&
          (pads[d] >= x->dims[d] || pads[x->rank + d] >= x->dims[d]))
        return fail(ic, TY_EINVAL, "reflect pads must be smaller than the dim");
    }
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_trilu(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(I64), true);
  if (rc != 0) return rc;
  if (ic->in_shape[0].rank >= 0 && ic->in_shape[0].rank < 2)
    return fail(ic, TY_EINVAL, "input must have rank >= 2");
  if (ty__infer_has(ic, 1) && ty_shape_numel(&ic->in_shape[1]) > 1)
    return fail(ic, TY_EINVAL, "k must be a scalar");
  ty__infer_set(ic, 0, ic->in_dt[0], &ic->in_shape[0]);
  return 0;
}

int64_t ty__range_len(const ty_tensor *start, const ty_tensor *limit, const ty_tensor *delta) {
  if (ty__dkind_of(start->dtype) == TY__DK_FLOAT) {
    double s = ty__getf(start->dtype, start->data, 0), l = ty__getf(limit->dtype, limit->data, 0);
    double d = ty__getf(delta->dtype, delta->data, 0);
    double n = d != 0 ? ceil((l - s) / d) : -1;
    return d == 0 || !(n < 0x1p40) ? -1 : n < 0 ? 0 : (int64_t)n;
  }
  int64_t s = ty__geti(start->dtype, start->data, 0), l = ty__geti(limit->dtype, limit->data, 0);
  int64_t d = ty__geti(delta->dtype, delta->data, 0);
  if (d == 0) return -1;
  double n = ceil(((double)l - (double)s) / (double)d);
  return !(n < 0x1p40) ? -1 : n < 0 ? 0 : (int64_t)n;
}

int ty__infer_range(ty__infer *ic) {
  uint32_t mask = TY__DT(F32) | TY__DT(F64) | TY__DT(I16) | TY__DT(I32) | TY__DT(I64);
  int rc = 0;
  for (int i = 0; rc == 0 && i < 3; i++)
    rc = ty__infer_need(ic, i, mask, false);
  for (int i = 1; rc == 0 && i < 3; i++)
    if (ic->in_dt[i] != ic->in_dt[0])
      rc = fail(ic, TY_EINVAL, "start, limit and delta must have one dtype");
  for (int i = 0; rc == 0 && i < 3; i++)
    if (ty_shape_numel(&ic->in_shape[i]) > 1)
      rc = fail(ic, TY_EINVAL, "start, limit and delta must be scalars");
  if (rc != 0) return rc;
  ty_shape out = ty_shape_make(1, (int64_t[]){TY_DIM_UNKNOWN});
  if (ic->in_val[0] && ic->in_val[1] && ic->in_val[2]) {
    out.dims[0] = ty__range_len(ic->in_val[0], ic->in_val[1], ic->in_val[2]);
    if (out.dims[0] < 0) return fail(ic, TY_EINVAL, "delta is 0 or the range is too long");
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_constant_of_shape(ty__infer *ic) {
  int64_t dims[TY_MAX_RANK];
  int8_t kind[TY_MAX_RANK];
  int n, rc = ty__infer_need(ic, 0, TY__DT(I64), false);
  if (rc == 0) rc = ty__infer_dims_list(ic, 0, dims, kind, TY_MAX_RANK, &n);
  if (rc != 0) return rc;
  const ty_graph_attr *v = ty_graph_node_attr(ic->node, "value");
  if (v && (v->type != TY_ATTR_TENSOR || ty_tensor_numel(v->t) != 1))
    return fail(ic, TY_EINVAL, "attribute value must be a tensor of one element");
  ty_shape out = ty_shape_unknown();
  if (n >= 0) {
    out = ty_shape_make(n, dims);
    for (int d = 0; d < n; d++) {
      if (kind[d] != TY__SYM_KNOWN)
        out.dims[d] = kind[d] == TY__SYM_BATCH ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
      else if (dims[d] < 0)
        return fail(ic, TY_EINVAL, "shape has a negative dim");
    }
  }
  ty__infer_set(ic, 0, v ? v->t->dtype : TY_DTYPE_F32, &out);
  return 0;
}

int ty__infer_eye_like(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  if (ic->in_shape[0].rank >= 0 && ic->in_shape[0].rank != 2)
    return fail(ic, TY_EINVAL, "input must be 2-D");
  int64_t dt = ty_graph_node_attr_int(ic->node, "dtype", ic->in_dt[0]);
  if (dt < 0 || dt > 64 || !ty_dtype_supported((int)dt))
    return ty__infer_fail(ic, TY_EUNSUPPORTED, "attribute dtype=%s is not supported",
                          ty_dtype_name((int)dt));
  ty__infer_set(ic, 0, (ty_dtype)dt, &ic->in_shape[0]);
  return 0;
}

int ty__infer_one_hot(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_NUMS, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_NUMS, false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT_ALL, false);
  if (rc != 0) return rc;
  if (ty_shape_numel(&ic->in_shape[1]) > 1) return fail(ic, TY_EINVAL, "depth must be a scalar");
  if (ic->in_shape[2].rank >= 0 && ty_shape_numel(&ic->in_shape[2]) != 2)
    return fail(ic, TY_EINVAL, "values must hold [off_value, on_value]");
  const ty_shape *x = &ic->in_shape[0];
  ty_shape out = ty_shape_unknown();
  if (x->rank >= 0) {
    if (x->rank + 1 > TY_MAX_RANK) return fail(ic, TY_EUNSUPPORTED, "output rank is too large");
    int axis;
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", -1), x->rank + 1, &axis) != 0)
      return fail(ic, TY_EINVAL, "axis is out of range");
    int64_t depth = TY_DIM_UNKNOWN;
    if (ic->in_val[1]) {
      depth =
          ty__geti(ic->in_val[1]->dtype, ic->in_val[1]->data, 0); /* saturating, unlike a C cast */
      if (depth < 1) return fail(ic, TY_EINVAL, "depth must be at least 1");
    }
    out.rank = x->rank + 1;
    for (int d = 0, s = 0; d < out.rank; d++)
      out.dims[d] = d == axis ? depth : x->dims[s++];
  }
  ty__infer_set(ic, 0, ic->in_dt[2], &out);
  return 0;
}

int ty__infer_gather_elements(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_INDEX, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0], *idx = &ic->in_shape[1];
  if (x->rank >= 0 && idx->rank >= 0) {
    int axis;
    if (idx->rank != x->rank) return fail(ic, TY_EINVAL, "indices must have the rank of data");
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", 0), x->rank, &axis) != 0)
      return fail(ic, TY_EINVAL, "axis is out of range");
  }
  ty__infer_set(ic, 0, ic->in_dt[0], idx);
  return 0;
}

int ty__infer_gather_nd(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(I64), false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0], *idx = &ic->in_shape[1];
  ty_shape out = ty_shape_unknown();
  int64_t b = ty_graph_node_attr_int(ic->node, "batch_dims", 0);
  if (x->rank >= 0 && idx->rank >= 0) {
    int64_t m = idx->rank ? idx->dims[idx->rank - 1] : -1;
    if (idx->rank < 1 || b < 0 || b >= idx->rank || b >= x->rank)
      return fail(ic, TY_EINVAL, "batch_dims is out of range");
    if (m < 1 || m > x->rank - b)
      return fail(ic, TY_EINVAL, "the last dim of indices must be 1..rank(data) - batch_dims");
    if (idx->rank - 1 + x->rank - b - m > TY_MAX_RANK)
      return fail(ic, TY_EUNSUPPORTED, "output rank is too large");
    out.rank = 0;
    for (int d = 0; d < idx->rank - 1; d++)
      out.dims[out.rank++] = idx->dims[d];
    for (int64_t d = b + m; d < x->rank; d++)
      out.dims[out.rank++] = x->dims[d];
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

static int check_reduction(ty__infer *ic) {
  const char *r = ty_graph_node_attr_string(ic->node, "reduction", "none");
  if (strcmp(r, "none") && strcmp(r, "add") && strcmp(r, "mul") && strcmp(r, "max") &&
      strcmp(r, "min"))
    return ty__infer_fail(ic, TY_EINVAL, "attribute reduction=%s is not valid", r);
  return 0;
}

int ty__infer_scatter_nd(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT(I64), false);
  if (rc == 0) rc = ty__infer_need(ic, 2, 1u << ic->in_dt[0], false);
  if (rc == 0) rc = check_reduction(ic);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0], *idx = &ic->in_shape[1], *up = &ic->in_shape[2];
  if (x->rank >= 0 && idx->rank >= 0 && up->rank >= 0) {
    int64_t m = idx->rank ? idx->dims[idx->rank - 1] : -1;
    bool ok = idx->rank >= 1 && m >= 0 && m <= x->rank && up->rank == idx->rank - 1 + x->rank - m;
    for (int d = 0; ok && d < up->rank; d++) {
      int64_t want = d < idx->rank - 1 ? idx->dims[d] : x->dims[m + d - (idx->rank - 1)];
      ok = up->dims[d] < 0 || want < 0 || up->dims[d] == want;
    }
    if (!ok)
      return fail(ic, TY_EINVAL,
                  "updates must have shape indices.shape[:-1] + data.shape[indices.shape[-1]:]");
  }
  ty__infer_set(ic, 0, ic->in_dt[0], x);
  return 0;
}

/* Whether indices and updates may have one shape: the same rank and dims,
 * a dim the graph cannot tell matching any. */
static bool may_match(const ty_shape *a, const ty_shape *b) {
  if (a->rank != b->rank) return false;
  bool unknown = false;
  for (int d = 0; d < a->rank; d++) {
    unknown |= a->dims[d] == TY_DIM_UNKNOWN || b->dims[d] == TY_DIM_UNKNOWN;
    if (a->dims[d] != b->dims[d] && a->dims[d] != TY_DIM_UNKNOWN && b->dims[d] != TY_DIM_UNKNOWN)
      return false;
  }
  return unknown || ty_shape_is_concrete(a) == ty_shape_is_concrete(b);
}

int ty__infer_scatter_elements(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_INDEX, false);
  if (rc == 0) rc = ty__infer_need(ic, 2, 1u << ic->in_dt[0], false);
  if (rc == 0) rc = check_reduction(ic);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0], *idx = &ic->in_shape[1], *up = &ic->in_shape[2];
  if (x->rank >= 0 && idx->rank >= 0 && up->rank >= 0) {
    int axis;
    if (idx->rank != x->rank || !may_match(idx, up))
      return fail(ic, TY_EINVAL, "indices and updates must have one shape, of the rank of data");
    if (ty_axis_normalize(ty_graph_node_attr_int(ic->node, "axis", 0), x->rank, &axis) != 0)
      return fail(ic, TY_EINVAL, "axis is out of range");
  }
  ty__infer_set(ic, 0, ic->in_dt[0], x);
  return 0;
}

int ty__infer_depth_space(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  int64_t b = ty_graph_node_attr_int(ic->node, "blocksize", 0);
  const char *mode = ty_graph_node_attr_string(ic->node, "mode", "DCR");
  if (b < 1 || b > 4096) return fail(ic, TY_EINVAL, "attribute blocksize must be 1..4096");
  if (strcmp(mode, "DCR") != 0 && strcmp(mode, "CRD") != 0)
    return fail(ic, TY_EINVAL, "attribute mode must be DCR or CRD");
  ty_shape out = *x;
  if (x->rank >= 0) {
    if (x->rank != 4) return fail(ic, TY_EINVAL, "input must be 4-D [N, C, H, W]");
    bool to_space = ic->node->op == TY_OP_DEPTH_TO_SPACE;
    int64_t c = x->dims[1], h = x->dims[2], w = x->dims[3];
    if (to_space && c >= 0 && c % (b * b))
      return fail(ic, TY_EINVAL, "channels must divide by blocksize^2");
    if (!to_space && ((h >= 0 && h % b) || (w >= 0 && w % b)))
      return fail(ic, TY_EINVAL, "H and W must divide by blocksize");
    out.dims[1] = c < 0 ? c : to_space ? c / (b * b) : ty__dim_mul(c, b * b);
    out.dims[2] = h < 0 ? TY_DIM_UNKNOWN : to_space ? ty__dim_mul(h, b) : h / b;
    out.dims[3] = w < 0 ? TY_DIM_UNKNOWN : to_space ? ty__dim_mul(w, b) : w / b;
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}

int ty__infer_cumsum(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_NUMS, false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_INDEX, false);
  if (rc != 0) return rc;
  if (ty_shape_numel(&ic->in_shape[1]) > 1) return fail(ic, TY_EINVAL, "axis must be a scalar");
  const ty_tensor *a = ic->in_val[1];
  int axis;
  if (a && ic->in_shape[0].rank >= 0 &&
      ty_axis_normalize(ty__geti(a->dtype, a->data, 0), ic->in_shape[0].rank, &axis) != 0)
    return fail(ic, TY_EINVAL, "axis is out of range");
  ty__infer_set(ic, 0, ic->in_dt[0], &ic->in_shape[0]);
  return 0;
}

/* A float list (Resize's roi and scales) from a known input: *n 0 when the
 * input is absent or empty, -2 when its value is not known. */
static int known_doubles(ty__infer *ic, int input, double *out, int max, int *n) {
  *n = 0;
  if (input < 0 || !ty__infer_has(ic, input)) return 0;
  const ty_tensor *t = ic->in_val[input];
  if (!t) {
    *n = ty_shape_numel(&ic->in_shape[input]) == 0 ? 0 : -2;
    return 0;
  }
  int64_t cnt = ty_tensor_numel(t);
  if (cnt > max)
    return ty__infer_fail(ic, TY_EINVAL, "input %d has more than %d values", input, max);
  for (int64_t i = 0; i < cnt; i++)
    out[i] = ty__getf(t->dtype, t->data, i);
  *n = (int)cnt;
  return 0;
}

/* Upsample-7's attribute scales, as known_doubles. */
static int attr_doubles(ty__infer *ic, double *out, int *n) {
  const ty_graph_attr *a = ty_graph_node_attr(ic->node, "scales");
  *n = 0;
  if (!a) return 0;
  if (a->type != TY_ATTR_FLOATS || a->n > TY_MAX_RANK)
    return fail(ic, TY_EINVAL, "attribute scales must be a list of one float per dim");
  for (size_t i = 0; i < a->n; i++)
    out[i] = a->floats[i];
  *n = (int)a->n;
  return 0;
}

static int resize_inputs(ty__infer *ic, const ty__resize_attrs *a) {
  uint32_t xmask = a->mode == TY__RESIZE_NEAREST ? TY__DT_ALL : TY__DT(F32);
  int rc = ty__infer_need(ic, 0, xmask, false);
  if (rc == 0 && a->roi_in >= 0) rc = ty__infer_need(ic, a->roi_in, TY__DT_FLOATS, true);
  if (rc == 0 && a->scales_in >= 0) rc = ty__infer_need(ic, a->scales_in, TY__DT(F32), true);
  if (rc == 0 && a->sizes_in >= 0) rc = ty__infer_need(ic, a->sizes_in, TY__DT(I64), true);
  return rc;
}

/* Resize-10..19 and Upsample-7/9: the output dims from scales (floor(dim *
 * scale)) or sizes; a dim whose scale is 1 keeps its (possibly symbolic)
 * length, a size that is the batch stays the batch. */
int ty__infer_resize(ty__infer *ic) {
  ty__resize_attrs a;
  int rc = ty__resize_read_attrs(ic->node, &a, ic->err, ic->err_len);
  if (rc == 0) rc = resize_inputs(ic, &a);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  double roi[2 * TY_MAX_RANK], scales[TY_MAX_RANK];
  int64_t sizes[TY_MAX_RANK];
  int8_t kind[TY_MAX_RANK];
  int nr, ns, nz = 0;
  rc = known_doubles(ic, a.roi_in, roi, 2 * TY_MAX_RANK, &nr);
  if (rc == 0)
    rc = a.scales_in < 0 ? attr_doubles(ic, scales, &ns)
                         : known_doubles(ic, a.scales_in, scales, TY_MAX_RANK, &ns);
  if (rc == 0 && a.sizes_in >= 0 && ty__infer_has(ic, a.sizes_in))
    rc = ty__infer_dims_list(ic, a.sizes_in, sizes, kind, TY_MAX_RANK, &nz);
  if (rc != 0) return rc;
  ty_shape out = *x;
  if (x->rank >= 0 && (nr == -2 || ns == -2 || nz == -2)) {
    for (int d = 0; d < x->rank; d++)
      out.dims[d] = TY_DIM_UNKNOWN;
  } else if (x->rank >= 0) {
    for (int i = 0; i < nz; i++)
      if (kind[i] != TY__SYM_KNOWN)
        sizes[i] = kind[i] == TY__SYM_BATCH ? TY_DIM_BATCH : TY_DIM_UNKNOWN;
    ty__resize_geom g;
    rc = ty__resize_geom_make(ic->node, &a, x->rank, x->dims, roi, nr, scales, ns, sizes,
                              nz < 0 ? 0 : nz, &g, ic->err, ic->err_len);
    if (rc != 0) return rc;
    memcpy(out.dims, g.out, (size_t)x->rank * sizeof *out.dims);
  }
  ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return 0;
}
