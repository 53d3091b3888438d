/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape and dtype inference of the random generators (RandomNormal,
 * RandomNormalLike, RandomUniform, RandomUniformLike, Bernoulli,
 * Multinomial), and the refusals of their attributes: a negative scale,
 * low above high, a dtype ONNX does not allow, a shape with a negative
 * dim, a seed that is not a number. Kernels: ops/kernels/random.c.
 */
#include "ops/ops_internal.h"

#include <math.h>

static int fail(ty__infer *ic, int code, const char *msg) {
  return ty__infer_fail(ic, code, "%s", msg);
}

/* The output dtype: attribute dtype, else dflt; in allowed. */
static int out_dtype(ty__infer *ic, ty_dtype dflt, uint32_t allowed, const char *what,
                     ty_dtype *out) {
  const ty_graph_attr *a = ty_graph_node_attr(ic->node, "dtype");
  if (a && a->type != TY_ATTR_INT) return fail(ic, TY_EINVAL, "attribute dtype must be an int");
  int64_t dt = a ? a->i : dflt;
  if (dt <= 0 || dt > 31 || !ty_dtype_supported((int)dt) || !(allowed & (1u << dt)))
    return ty__infer_fail(ic, TY_EINVAL, "dtype %s is not allowed: the output must be %s",
                          dt > 0 && dt < 64 ? ty_dtype_name((int)dt) : "(out of range)", what);
  *out = (ty_dtype)dt;
  return 0;
}

static int check_seed(ty__infer *ic) {
  const ty_graph_attr *s = ty_graph_node_attr(ic->node, "seed");
  if (!s) return 0;
  if (s->type == TY_ATTR_INT) return 0;
  if (s->type != TY_ATTR_FLOAT || !isfinite(s->f))
    return fail(ic, TY_EINVAL, "attribute seed must be a finite number");
  return 0;
}

static int check_params(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  if (n->op == TY_OP_RANDOM_NORMAL || n->op == TY_OP_RANDOM_NORMAL_LIKE) {
    float mean = ty_graph_node_attr_float(n, "mean", 0.0f);
    float scale = ty_graph_node_attr_float(n, "scale", 1.0f);
    if (!isfinite(mean)) return fail(ic, TY_EINVAL, "attribute mean must be finite");
    if (!(scale >= 0.0f) || !isfinite(scale))
      return ty__infer_fail(ic, TY_EINVAL, "attribute scale=%g must be finite and not negative",
                            (double)scale);
  } else {
    float lo = ty_graph_node_attr_float(n, "low", 0.0f);
    float hi = ty_graph_node_attr_float(n, "high", 1.0f);
    if (!isfinite(lo) || !isfinite(hi))
      return fail(ic, TY_EINVAL, "attributes low and high must be finite");
    if (lo > hi)
      return ty__infer_fail(ic, TY_EINVAL, "attribute low=%g exceeds high=%g", (double)lo,
                            (double)hi);
  }
  return check_seed(ic);
}

/* RandomNormal and RandomUniform: the shape attribute. */
static int attr_shape(ty__infer *ic, ty_shape *out) {
  const ty_graph_attr *a = ty_graph_node_attr(ic->node, "shape");
  if (!a || a->type != TY_ATTR_INTS) return fail(ic, TY_EINVAL, "attribute shape is missing");
  if (a->n > TY_MAX_RANK) return fail(ic, TY_EUNSUPPORTED, "attribute shape has too many dims");
  int64_t numel = 1;
  for (size_t d = 0; d < a->n; d++) {
    if (a->ints[d] < 0)
      return ty__infer_fail(ic, TY_EINVAL, "attribute shape has a negative dim (%lld)",
                            (long long)a->ints[d]);
    if (a->ints[d] > 0 && numel > (INT64_C(1) << 40) / a->ints[d])
      return fail(ic, TY_EINVAL, "attribute shape has too many elements");
    numel *= a->ints[d];
  }
  *out = ty_shape_make((int)a->n, a->ints);
  return 0;
}

int ty__infer_multinomial(ty__infer *ic) {
  int rc = ty__infer_need(ic, 0, TY__DT_FLOATS, false);
  if (rc != 0) return rc;
  const ty_shape *x = &ic->in_shape[0];
  if (x->rank >= 0 && x->rank != 2)
    return fail(ic, TY_EINVAL, "input must be 2-D: [batch_size, class_size]");
  int64_t ss = ty_graph_node_attr_int(ic->node, "sample_size", 1);
  if (ss < 1 || ss > (INT64_C(1) << 31))
    return ty__infer_fail(ic, TY_EINVAL, "attribute sample_size=%lld must be positive",
                          (long long)ss);
  ty_dtype dt;
  if ((rc = out_dtype(ic, TY_DTYPE_I32, TY__DT_INDEX, "INT32 or INT64", &dt)) != 0) return rc;
  if ((rc = check_seed(ic)) != 0) return rc;
  ty_shape out = ty_shape_unknown();
  if (x->rank == 2) out = ty_shape_make(2, (int64_t[]){x->dims[0], ss});
  ty__infer_set(ic, 0, dt, &out);
  return 0;
}

int ty__infer_random(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  ty_dtype dt;
  ty_shape shape;
  int rc;
  if (n->op == TY_OP_BERNOULLI) {
    if ((rc = ty__infer_need(ic, 0, TY__DT_FLOATS, false)) != 0) return rc;
    if ((rc = out_dtype(ic, ic->in_dt[0], TY__DT_ALL, "a number or BOOL", &dt)) != 0) return rc;
    if ((rc = check_seed(ic)) != 0) return rc;
    ty__infer_set(ic, 0, dt, &ic->in_shape[0]);
    return 0;
  }
  if ((rc = check_params(ic)) != 0) return rc;
  bool like = n->op == TY_OP_RANDOM_NORMAL_LIKE || n->op == TY_OP_RANDOM_UNIFORM_LIKE;
  if (like) {
    if ((rc = ty__infer_need(ic, 0, TY__DT_ALL, false)) != 0) return rc;
    shape = ic->in_shape[0];
  } else {
    if (n->n_inputs > 0) return fail(ic, TY_EINVAL, "takes no inputs (the shape is an attribute)");
    if ((rc = attr_shape(ic, &shape)) != 0) return rc;
  }
  rc = out_dtype(ic, like ? ic->in_dt[0] : TY_DTYPE_F32, TY__DT_FLOATS,
                 "FLOAT, DOUBLE, FLOAT16 or BFLOAT16", &dt);
  if (rc != 0) return rc;
  ty__infer_set(ic, 0, dt, &shape);
  return 0;
}
