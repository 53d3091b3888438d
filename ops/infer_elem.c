/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape and dtype inference of the elementwise ops: the binary arithmetic,
 * comparison and logic ops (numpy broadcasting), the variadic Max, Min,
 * Sum and Mean, Where, Clip, Cast and the unary ops. Each op states the
 * dtypes it takes here, so a model with, say, a Sigmoid on INT64 is
 * refused at import naming the node.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <string.h>

ty_shape ty__binary_bshape(const ty_graph_node *n, ty_op op, const ty_shape *a, const ty_shape *b) {
  if (n->opset >= 7 || a->rank < 0 || b->rank < 0 || b->rank >= a->rank) return *b;
  int64_t axis = ty_graph_node_attr_int(n, "axis", -1);
  if (op == TY_OP_PRELU && b->rank == 1 && a->rank > 2 &&
      (b->dims[0] == a->dims[1] || b->dims[0] < 0))
    axis = 1;
  if (axis < 0 || axis + b->rank > a->rank) return *b;
  ty_shape r = *b;
  while (r.rank < a->rank - axis)
    r.dims[r.rank++] = 1;
  return r;
}

/* Broadcasts the shapes of inputs [0, n) into *out. */
static int broadcast_inputs(ty__infer *ic, int n, ty_shape *out) {
  *out = ty_shape_make(0, NULL);
  for (int i = 0; i < n; i++) {
    if (!ty__infer_has(ic, i)) continue;
    ty_shape next, s = i == 1 && n == 2 ? ty__binary_bshape(ic->node, ic->node->op,
                                                            &ic->in_shape[0], &ic->in_shape[1])
                                        : ic->in_shape[i];
    if (ty_shape_broadcast(out, &s, &next) != 0) {
      char a[96], b[96];
      ty_shape_format(out, a, sizeof a);
      ty_shape_format(&s, b, sizeof b);
      return ty__infer_fail(ic, TY_EINVAL, "shapes %s and %s do not broadcast", a, b);
    }
    *out = next;
  }
  return 0;
}

static int same_dtypes(ty__infer *ic, int from, int to) {
  for (int i = from + 1; i < to; i++)
    if (ty__infer_has(ic, i) && ic->in_dt[i] != ic->in_dt[from])
      return ty__infer_fail(ic, TY_EINVAL, "inputs have dtypes %s and %s",
                            ty_dtype_name(ic->in_dt[from]), ty_dtype_name(ic->in_dt[i]));
  return 0;
}

/* Dtypes the first input of a binary op may have. */
static uint32_t binary_mask(ty_op op) {
  switch (op) {
  case TY_OP_AND:
  case TY_OP_OR:
  case TY_OP_XOR:
    return TY__DT(BOOL);
  case TY_OP_BIT_SHIFT:
    return TY__DT_UINTS;
  case TY_OP_EQUAL:
    return TY__DT_ALL;
  case TY_OP_PRELU:
    return TY__DT_FLOATS | TY__DT_SINTS;
  default:
    return TY__DT_NUMS;
  }
}

static bool is_comparison(ty_op op) {
  return op == TY_OP_EQUAL || op == TY_OP_LESS || op == TY_OP_GREATER || op == TY_OP_LESS_EQUAL ||
         op == TY_OP_GREATER_EQUAL;
}

int ty__infer_binary(ty__infer *ic) {
  ty_op op = ic->node->op;
  int rc = ty__infer_need(ic, 0, binary_mask(op), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, op == TY_OP_POW ? TY__DT_NUMS : binary_mask(op), false);
  if (rc == 0 && op != TY_OP_POW) rc = same_dtypes(ic, 0, 2);
  if (rc != 0) return rc;
  if (op == TY_OP_MOD && ty_dtype_is_float(ic->in_dt[0]) &&
      ty_graph_node_attr_int(ic->node, "fmod", 0) == 0)
    return ty__infer_fail(ic, TY_EINVAL, "attribute fmod must be 1 for dtype %s",
                          ty_dtype_name(ic->in_dt[0]));
  const char *dir = ty_graph_node_attr_string(ic->node, "direction", "");
  if (op == TY_OP_BIT_SHIFT && strcmp(dir, "LEFT") != 0 && strcmp(dir, "RIGHT") != 0)
    return ty__infer_fail(ic, TY_EINVAL, "attribute direction must be LEFT or RIGHT, not \"%s\"",
                          dir);
  ty_shape out;
  if ((rc = broadcast_inputs(ic, 2, &out)) != 0) return rc;
  if (op == TY_OP_PRELU && out.rank >= 0 && ic->in_shape[0].rank >= 0 &&
      !ty_shape_equal(&out, &ic->in_shape[0]))
    return ty__infer_fail(ic, TY_EINVAL, "slope must broadcast to the shape of X");
  ty__infer_set(ic, 0, is_comparison(op) ? TY_DTYPE_BOOL : ic->in_dt[0], &out);
  return 0;
}

int ty__infer_variadic(ty__infer *ic) {
  ty_op op = ic->node->op;
  uint32_t mask = op == TY_OP_MAX || op == TY_OP_MIN ? TY__DT_NUMS : TY__DT_FLOATS;
  if (ic->n_in < 1) return ty__infer_fail(ic, TY_EINVAL, "needs at least one input");
  int rc = 0;
  for (int i = 0; rc == 0 && i < ic->n_in; i++)
    rc = ty__infer_need(ic, i, mask, false);
  if (rc == 0) rc = same_dtypes(ic, 0, ic->n_in);
  ty_shape out;
  if (rc == 0) rc = broadcast_inputs(ic, ic->n_in, &out);
  if (rc == 0) ty__infer_set(ic, 0, ic->in_dt[0], &out);
  return rc;
}

int ty__infer_where(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT(BOOL), false);
  if (rc == 0) rc = ty__infer_need(ic, 1, TY__DT_ALL, false);
  if (rc == 0) rc = ty__infer_need(ic, 2, TY__DT_ALL, false);
  if (rc == 0) rc = same_dtypes(ic, 1, 3);
  ty_shape out;
  if (rc == 0) rc = broadcast_inputs(ic, 3, &out);
  if (rc == 0) ty__infer_set(ic, 0, ic->in_dt[1], &out);
  return rc;
}

int ty__infer_clip(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, ic->node->opset < 11 ? TY__DT_FLOATS : TY__DT_NUMS, false);
  for (int i = 1; rc == 0 && i < 3; i++) {
    rc = ty__infer_need(ic, i, 1u << ic->in_dt[0], true);
    if (rc == 0 && ty__infer_has(ic, i) && ty_shape_numel(&ic->in_shape[i]) > 1)
      rc = ty__infer_fail(ic, TY_EINVAL, "input %d (%s) must be a scalar", i,
                          i == 1 ? "min" : "max");
  }
  if (rc == 0) ty__infer_set(ic, 0, ic->in_dt[0], &ic->in_shape[0]);
  return rc;
}

int ty__infer_cast(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_ALL, false);
  if (rc != 0) return rc;
  ty_dtype to;
  if (ic->node->op == TY_OP_CAST_LIKE) {
    if ((rc = ty__infer_need(ic, 1, TY__DT_ALL, false)) != 0) return rc;
    to = ic->in_dt[1];
  } else {
    const ty_graph_attr *a = ty_graph_node_attr(ic->node, "to");
    if (!a || a->type != TY_ATTR_INT)
      return ty__infer_fail(ic, TY_EINVAL, "attribute to is missing");
    if (a->i < 0 || a->i > 64 || !ty_dtype_supported((int)a->i))
      return ty__infer_fail(ic, TY_EUNSUPPORTED, "attribute to=%s is not supported",
                            ty_dtype_name((int)a->i));
    to = (ty_dtype)a->i;
  }
  if (ty_graph_node_attr_int(ic->node, "saturate", 1) != 1)
    return ty__infer_fail(ic, TY_EUNSUPPORTED,
                          "attribute saturate=0 is not supported (float8 casts)");
  ty__infer_set(ic, 0, to, &ic->in_shape[0]);
  return 0;
}

/* Dtypes a unary op takes. */
static uint32_t unary_mask(ty_op op) {
  switch (op) {
  case TY_OP_IDENTITY:
    return TY__DT_ALL;
  case TY_OP_NOT:
    return TY__DT(BOOL);
  case TY_OP_RELU:
  case TY_OP_NEG:
    return TY__DT_FLOATS | TY__DT_SINTS;
  case TY_OP_ABS:
  case TY_OP_SIGN:
  case TY_OP_SHRINK:
    return TY__DT_NUMS;
  default:
    return TY__DT_FLOATS;
  }
}

int ty__infer_unary(ty__infer *ic) {
  ty_op op = ic->node->op;
  int rc = ty__infer_need(ic, 0, unary_mask(op), false);
  if (rc != 0) return rc;
  if (op == TY_OP_GELU) {
    const char *ap = ty_graph_node_attr_string(ic->node, "approximate", "none");
    if (strcmp(ap, "none") != 0 && strcmp(ap, "tanh") != 0)
      return ty__infer_fail(ic, TY_EINVAL, "attribute approximate=%s is not valid (none or tanh)",
                            ap);
  }
  if (op == TY_OP_ELU || op == TY_OP_CELU) {
    float alpha = ty_graph_node_attr_float(ic->node, "alpha", 1.0f);
    if (op == TY_OP_CELU && alpha == 0.0f)
      return ty__infer_fail(ic, TY_EINVAL, "attribute alpha must not be 0");
  }
  bool to_bool = op == TY_OP_IS_NAN || op == TY_OP_IS_INF;
  ty__infer_set(ic, 0, to_bool ? TY_DTYPE_BOOL : ic->in_dt[0], &ic->in_shape[0]);
  return 0;
}
