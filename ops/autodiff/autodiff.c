/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reverse-mode autodiff over the IR (see autodiff.h).
 *
 * One pass forward marks the values that depend on a parameter; one pass
 * over the nodes in reverse topological order then emits, for every node
 * whose output 0 has a gradient, the gradient of each marked differentiable
 * input, and accumulates gradients of values read more than once with Add.
 * A Split whose every output has a gradient passes its input one Concat of
 * them (backward_split) rather than a gradient per output summed by Adds.
 * Only gradients of values that existed before the pass are tracked, so the
 * nodes appended on the way are never differentiated themselves.
 */
#include "ops/autodiff/autodiff.h"

#include "lib/base/base.h"
#include "ops/autodiff/grad_internal.h"
#include "ops/kernels_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct ad {
  ty_graph *g;
  size_t nv0;  /* values before the pass */
  int *grad;   /* nv0 entries: gradient value id or TY_NO_VALUE */
  bool *needs; /* nv0 entries: depends on a parameter */
  char *err;
  size_t err_len;
} ad;

static int new_value(ad *a, ty_dtype dt, int like, int *out_id) {
  ty_shape s = like >= 0 ? a->g->values[like].shape : ty_shape_unknown();
  return ty_graph_add_value(a->g, NULL, dt, &s, out_id);
}

/* Appends op(inputs) -> one new float value shaped like `like`. */
static int add_simple(ad *a, ty_op op, const int *in, int n_in, int like, int *out_id,
                      size_t *out_node) {
  int rc = new_value(a, TY_DTYPE_F32, like, out_id);
  int idx = 0;
  if (rc == 0) rc = ty_graph_add_node(a->g, op, NULL, in, n_in, out_id, 1, &idx);
  if (rc == 0 && out_node) *out_node = (size_t)idx;
  return rc;
}

static int accumulate(ad *a, int id, int gid) {
  if (a->grad[id] == TY_NO_VALUE) {
    a->grad[id] = gid;
    return 0;
  }
  int in[2] = {a->grad[id], gid}, sum;
  int rc = add_simple(a, TY_OP_ADD, in, 2, id, &sum, NULL);
  if (rc == 0) a->grad[id] = sum;
  return rc;
}

static int gemm(ad *a, int x, int y, bool ta, bool tb, float alpha, int like, int *out_id) {
  size_t nd;
  int in[2] = {x, y};
  int rc = add_simple(a, TY_OP_GEMM, in, 2, like, out_id, &nd);
  if (rc == 0 && ta) rc = ty_graph_node_set_int(a->g, nd, "transA", 1);
  if (rc == 0 && tb) rc = ty_graph_node_set_int(a->g, nd, "transB", 1);
  if (rc == 0 && alpha != 1.0f) rc = ty_graph_node_set_float(a->g, nd, "alpha", alpha);
  return rc;
}

/* Gemm's A and B through Gemm: Y = alpha op(A) op(B). */
static int emit_gemm(ad *a, size_t k, int wrt, int dy, int *out_id) {
  const ty_graph_node *n = &a->g->nodes[k];
  bool ta = ty_graph_node_attr_int(n, "transA", 0) != 0,
       tb = ty_graph_node_attr_int(n, "transB", 0) != 0;
  float alpha = ty_graph_node_attr_float(n, "alpha", 1.0f);
  int A = n->inputs[0], B = n->inputs[1], like = n->inputs[wrt];
  if (wrt == 0) {
    if (!ta) return gemm(a, dy, B, false, !tb, alpha, like, out_id); /* dY op(B)^T */
    return gemm(a, B, dy, tb, true, alpha, like, out_id);            /* op(B) dY^T */
  }
  if (!tb) return gemm(a, A, dy, !ta, false, alpha, like, out_id); /* op(A)^T dY */
  return gemm(a, dy, A, true, ta, alpha, like, out_id);            /* dY^T op(A) */
}

static int emit_transpose(ad *a, size_t k, int dy, int *out_id) {
  const ty_graph_node *n = &a->g->nodes[k];
  const ty_graph_attr *perm = ty_graph_node_attr(n, "perm");
  int64_t inv[TY_MAX_RANK];
  size_t np = perm ? perm->n : 0;
  for (size_t i = 0; i < np && i < TY_MAX_RANK; i++)
    if (perm->ints[i] >= 0 && perm->ints[i] < (int64_t)np) inv[perm->ints[i]] = (int64_t)i;
  int x = n->inputs[0];
  size_t nd;
  int rc = add_simple(a, TY_OP_TRANSPOSE, &dy, 1, x, out_id, &nd);
  if (rc == 0 && np > 0) rc = ty_graph_node_set_ints(a->g, nd, "perm", inv, np);
  return rc;
}

/* Dropout's gradient needs the mask: add the output if the model left it off. */
static int ensure_mask(ad *a, size_t k) {
  ty_graph_node *n = &a->g->nodes[k];
  if (n->n_outputs > 1 && n->outputs[1] != TY_NO_VALUE) return 0;
  int id;
  int rc = new_value(a, TY_DTYPE_BOOL, n->outputs[0], &id);
  if (rc != 0) return rc;
  n = &a->g->nodes[k];
  if (n->n_outputs < 2) {
    int *outs = realloc(n->outputs, 2 * sizeof *outs);
    if (!outs) return TY_ENOMEM;
    n->outputs = outs;
    n->n_outputs = 2;
  }
  n->outputs[1] = id;
  a->g->values[id].producer = (int)k;
  return 0;
}

static int copy_attrs(ad *a, size_t from, size_t to) {
  int rc = 0;
  for (int i = 0; rc == 0 && i < a->g->nodes[from].n_attrs; i++) {
    const ty_graph_attr *t = &a->g->nodes[from].attrs[i];
    switch (t->type) {
    case TY_ATTR_INT:
      rc = ty_graph_node_set_int(a->g, to, t->name, t->i);
      break;
    case TY_ATTR_FLOAT:
      rc = ty_graph_node_set_float(a->g, to, t->name, t->f);
      break;
    case TY_ATTR_STRING:
      rc = ty_graph_node_set_string(a->g, to, t->name, t->s);
      break;
    case TY_ATTR_INTS:
      rc = ty_graph_node_set_ints(a->g, to, t->name, t->ints, t->n);
      break;
    case TY_ATTR_FLOATS:
      rc = ty_graph_node_set_floats(a->g, to, t->name, t->floats, t->n);
      break;
    case TY_ATTR_STRINGS:
      rc = ty_graph_node_copy_strings(a->g, to, t);
      break;
    default:
      break; /* tensor attributes belong to Constant, which has no gradient */
    }
  }
  return rc;
}

static int emit_tygrad(ad *a, size_t k, int wrt, int out, int dy, int *out_id) {
  const ty_graph_node *n = &a->g->nodes[k];
  int nin = 1 + n->n_inputs + n->n_outputs, like = n->inputs[wrt];
  int *in = malloc((size_t)nin * sizeof *in);
  if (!in) return TY_ENOMEM;
  in[0] = dy;
  memcpy(in + 1, n->inputs, (size_t)n->n_inputs * sizeof *in);
  memcpy(in + 1 + n->n_inputs, n->outputs, (size_t)n->n_outputs * sizeof *in);
  int nfi = n->n_inputs, fwd_op = (int)n->op, opset = n->opset;
  size_t nd;
  int rc = add_simple(a, TY_OP_GRAD, in, nin, like, out_id, &nd);
  free(in);
  if (rc == 0) rc = copy_attrs(a, k, nd);
  if (rc == 0) rc = ty_graph_node_set_int(a->g, nd, TY__GRAD_FWD_OP, fwd_op);
  if (rc == 0) rc = ty_graph_node_set_int(a->g, nd, TY__GRAD_WRT, wrt);
  if (rc == 0) rc = ty_graph_node_set_int(a->g, nd, TY__GRAD_NFI, nfi);
  if (rc == 0 && out > 0) rc = ty_graph_node_set_int(a->g, nd, TY__GRAD_OUT, out);
  if (rc == 0) a->g->nodes[nd].opset = opset;
  return rc;
}

/* TyExtern's gradient is the caller's too: the same id, backward = 1,
 * shaped like the forward input (ops/exec.h). */
static int emit_extern(ad *a, size_t k, int dy, int *out_id) {
  const ty_graph_node *n = &a->g->nodes[k];
  int x = n->inputs[0];
  const ty_shape s = a->g->values[x].shape;
  int64_t id = ty_graph_node_attr_int(n, "id", -1);
  if (ty_graph_node_attr_int(n, "backward", 0))
    return ty__node_err(a->err, a->err_len, n, TY_EUNSUPPORTED,
                        "cannot differentiate a backward TyExtern");
  if (s.rank < 0 || ty_shape_numel(&s) < 0)
    return ty__node_err(a->err, a->err_len, n, TY_EUNSUPPORTED, "input shape must be known");
  size_t nd;
  int rc = add_simple(a, TY_OP_EXTERN, &dy, 1, x, out_id, &nd);
  if (rc == 0) rc = ty_graph_node_set_int(a->g, nd, "id", id);
  if (rc == 0) rc = ty_graph_node_set_int(a->g, nd, "backward", 1);
  if (rc == 0) rc = ty_graph_node_set_ints(a->g, nd, "shape", s.dims, (size_t)s.rank);
  return rc;
}

/* The tensor of a one-element float constant (an initializer or a
 * Constant node's output, owned by the graph); NULL for anything else. */
static const ty_tensor *scalar_constant(const ad *a, int id) {
  const ty_graph_value *v = &a->g->values[id];
  const ty_tensor *t = v->init;
  if (!t && v->producer >= 0 && a->g->nodes[v->producer].op == TY_OP_CONSTANT) {
    const ty_graph_attr *at = ty_graph_node_attr(&a->g->nodes[v->producer], "value");
    t = at && at->type == TY_ATTR_TENSOR ? at->t : NULL;
  }
  return t && t->dtype == TY_DTYPE_F32 && ty_tensor_numel(t) == 1 ? t : NULL;
}

/* Div(x, c) by a finite nonzero float constant c, x as broadcast as Y:
 * dX = dY * (1 / c), a multiply where the TyGrad divides each element
 * (the GELU's x / sqrt(2): a third of its backward region's time was the
 * division). The product may differ from dY / c by one rounding. A new
 * initializer holds 1 / c; *done stays false (and nothing is added) where
 * this does not apply. */
static int emit_div_by_constant(ad *a, size_t k, int dy, int *out_id, bool *done) {
  const ty_graph_node *n = &a->g->nodes[k];
  int x = n->inputs[0], y = n->outputs[0];
  /* A trained divisor is no constant. */
  const ty_tensor *ct = a->needs[n->inputs[1]] ? NULL : scalar_constant(a, n->inputs[1]);
  float c = ct ? ty_tensor_f32(ct)[0] : 0.0f;
  *done = false;
  if (c == 0.0f || !isfinite(c) || !ty_shape_equal(&a->g->values[x].shape, &a->g->values[y].shape))
    return 0;
  ty_shape s = ct->shape;
  ty_tensor *r;
  int id, rc = ty_tensor_create(TY_DTYPE_F32, &s, &r);
  if (rc != 0) return rc;
  ty_tensor_f32(r)[0] = 1.0f / c;
  if ((rc = ty_graph_add_value(a->g, NULL, TY_DTYPE_F32, &s, &id)) != 0) {
    ty_tensor_destroy(r);
    return rc;
  }
  if ((rc = ty_graph_set_initializer(a->g, id, r)) != 0) return rc;
  int in[2] = {dy, id};
  rc = add_simple(a, TY_OP_MUL, in, 2, x, out_id, NULL);
  *done = rc == 0;
  return rc;
}

/* The gradient of forward input wrt of node k, given dY of output out. */
static int emit(ad *a, size_t k, int wrt, int out, int dy, int *out_id) {
  const ty_graph_node *n = &a->g->nodes[k];
  const ty_graph_value *x = &a->g->values[n->inputs[wrt]], *y = &a->g->values[n->outputs[out]];
  const ty_shape *shapes[TY__EINSUM_MAX_IN] = {NULL};
  for (int i = 0; i < n->n_inputs && i < TY__EINSUM_MAX_IN; i++)
    shapes[i] = n->inputs[i] == TY_NO_VALUE ? NULL : &a->g->values[n->inputs[i]].shape;
  const char *why = ty__grad_refusal(n, wrt, shapes);
  if (why) return ty__node_err(a->err, a->err_len, n, TY_EUNSUPPORTED, "input %d: %s", wrt, why);
  switch (n->op) {
  case TY_OP_IDENTITY:
    *out_id = dy;
    return 0;
  case TY_OP_ADD:
    if (ty_shape_equal(&x->shape, &y->shape)) {
      *out_id = dy;
      return 0;
    }
    break;
  case TY_OP_GEMM:
    if (wrt < 2) return emit_gemm(a, k, wrt, dy, out_id);
    break;
  case TY_OP_TRANSPOSE:
    return emit_transpose(a, k, dy, out_id);
  case TY_OP_DIV:
    if (wrt == 0 && out == 0) {
      bool done;
      int rc = emit_div_by_constant(a, k, dy, out_id, &done);
      if (rc != 0 || done) return rc;
    }
    break;
  case TY_OP_DROPOUT: {
    int rc = ensure_mask(a, k);
    if (rc != 0) return rc;
    break;
  }
  case TY_OP_CONSTANT:
    return ty__node_err(a->err, a->err_len, n, TY_EUNSUPPORTED, "has no gradient");
  case TY_OP_EXTERN:
    return emit_extern(a, k, dy, out_id);
  default:
    break;
  }
  if (n->op == TY_OP_GRAD)
    return ty__node_err(a->err, a->err_len, n, TY_EUNSUPPORTED,
                        "cannot differentiate a gradient node");
  return emit_tygrad(a, k, wrt, out, dy, out_id);
}

static bool wants_grad(ad *a, size_t k, int i) {
  int x = a->g->nodes[k].inputs[i];
  return x != TY_NO_VALUE && a->needs[x] && ty__grad_differentiable(a->g->nodes[k].op, i) &&
         a->g->values[x].dtype == TY_DTYPE_F32;
}

/* One TyGrad node with an output per input (ty__grad_all_inputs_node):
 * the recurrent ops' backward pass yields every gradient at once, and a
 * marked LayerNormalization's dX, dScale and dB come from one sweep. */
static int backward_all_inputs(ad *a, size_t k, int out, int dy) {
  int nfi = a->g->nodes[k].n_inputs, nfo = a->g->nodes[k].n_outputs, first = -1, rc = 0, idx;
  int *outs = malloc((size_t)nfi * sizeof *outs),
      *in = malloc((size_t)(1 + nfi + nfo) * sizeof *in);
  if (!outs || !in) rc = TY_ENOMEM;
  for (int i = 0; rc == 0 && i < nfi; i++) {
    outs[i] = TY_NO_VALUE;
    if (!wants_grad(a, k, i)) continue;
    rc = new_value(a, TY_DTYPE_F32, a->g->nodes[k].inputs[i], &outs[i]);
    if (first < 0) first = i;
  }
  if (rc == 0 && first >= 0) {
    const ty_graph_node *n = &a->g->nodes[k];
    in[0] = dy;
    memcpy(in + 1, n->inputs, (size_t)nfi * sizeof *in);
    memcpy(in + 1 + nfi, n->outputs, (size_t)nfo * sizeof *in);
    int fwd_op = (int)n->op, opset = n->opset;
    rc = ty_graph_add_node(a->g, TY_OP_GRAD, NULL, in, 1 + nfi + nfo, outs, nfi, &idx);
    if (rc == 0) rc = copy_attrs(a, k, (size_t)idx);
    if (rc == 0) rc = ty_graph_node_set_int(a->g, (size_t)idx, TY__GRAD_FWD_OP, fwd_op);
    if (rc == 0) rc = ty_graph_node_set_int(a->g, (size_t)idx, TY__GRAD_WRT, first);
    if (rc == 0) rc = ty_graph_node_set_int(a->g, (size_t)idx, TY__GRAD_NFI, nfi);
    if (rc == 0 && out > 0) rc = ty_graph_node_set_int(a->g, (size_t)idx, TY__GRAD_OUT, out);
    if (rc == 0) a->g->nodes[idx].opset = opset;
    for (int i = 0; rc == 0 && i < nfi; i++)
      if (outs[i] != TY_NO_VALUE) rc = accumulate(a, a->g->nodes[k].inputs[i], outs[i]);
  }
  free(outs);
  free(in);
  return rc;
}

/* Whether node k's gradients come from one TyGrad node: always for the
 * recurrent ops; for a marked LayerNormalization when more than one input
 * wants a gradient (one alone gains nothing from the shared sweep). */
static bool one_grad_node(ad *a, size_t k) {
  const ty_graph_node *n = &a->g->nodes[k];
  if (ty__grad_all_inputs(n->op)) return true;
  if (!ty__grad_all_inputs_node(n->op, n)) return false;
  int wanted = 0;
  for (int i = 0; i < n->n_inputs; i++)
    wanted += wants_grad(a, k, i);
  return wanted > 1;
}

/* The gradients node k passes to its inputs from the gradient of output
 * out (dy). */
static int backward_output(ad *a, size_t k, int out, int dy) {
  int nin = a->g->nodes[k].n_inputs;
  ty_op op = a->g->nodes[k].op;
  if (one_grad_node(a, k)) return backward_all_inputs(a, k, out, dy);
  for (int i = 0; i < nin; i++) {
    int x = a->g->nodes[k].inputs[i], gid;
    if (x == TY_NO_VALUE || !a->needs[x] || !ty__grad_differentiable(op, i)) continue;
    if (a->g->values[x].dtype != TY_DTYPE_F32) continue;
    int rc = emit(a, k, i, out, dy, &gid);
    if (rc == 0) rc = accumulate(a, x, gid);
    if (rc != 0) return rc;
  }
  return 0;
}

/* Split whose every output has a gradient: the input's gradient is those
 * gradients concatenated along the split axis, one Concat (one copy of
 * each) instead of a zero-filled input-sized TyGrad per output and the
 * Adds that would sum them. *out_done is false when the Split does not
 * qualify (an output without a gradient), and the caller goes on. */
static int backward_split(ad *a, size_t k, bool *out_done) {
  const ty_graph_node *n = &a->g->nodes[k];
  int x = n->inputs[0], nout = n->n_outputs, gid;
  *out_done = false;
  if (x == TY_NO_VALUE || !a->needs[x] || a->g->values[x].dtype != TY_DTYPE_F32 || nout < 1 ||
      nout > 64)
    return 0;
  int dys[64];
  for (int o = 0; o < nout; o++) {
    int id = n->outputs[o];
    if (id == TY_NO_VALUE || a->grad[id] == TY_NO_VALUE) return 0;
    dys[o] = a->grad[id];
  }
  int64_t axis = ty_graph_node_attr_int(n, "axis", 0);
  size_t nd;
  int rc = add_simple(a, TY_OP_CONCAT, dys, nout, x, &gid, &nd);
  if (rc == 0) rc = ty_graph_node_set_int(a->g, nd, "axis", axis);
  if (rc == 0) rc = accumulate(a, x, gid);
  *out_done = rc == 0;
  return rc;
}

static int backward_node(ad *a, size_t k) {
  const ty_graph_node *n = &a->g->nodes[k];
  if (n->op == TY_OP_SPLIT) {
    bool done;
    int rc = backward_split(a, k, &done);
    if (rc != 0 || done) return rc;
    n = &a->g->nodes[k];
  }
  bool multi = ty__grad_multi_output(n->op);
  for (int i = 1; i < n->n_outputs && !multi; i++) {
    int o = n->outputs[i];
    if (o != TY_NO_VALUE && a->grad[o] != TY_NO_VALUE)
      return ty__node_err(a->err, a->err_len, n, TY_EUNSUPPORTED,
                          "the loss depends on output %d; only output 0 is differentiated", i);
  }
  int n_out = multi ? n->n_outputs : (n->n_outputs > 0 ? 1 : 0);
  for (int o = 0; o < n_out; o++) {
    int id = a->g->nodes[k].outputs[o];
    if (id == TY_NO_VALUE || a->grad[id] == TY_NO_VALUE) continue;
    int rc = backward_output(a, k, o, a->grad[id]);
    if (rc != 0) return rc;
  }
  return 0;
}

/* A value of a known non-float type carries no gradient (TopK's indices,
 * an ArgMax): nothing computed from it alone needs one, so no backward
 * node is emitted for it (a collective's backward on a plan's rank, a
 * Cast of indices to float). */
static bool carries_grad(const ad *a, int v) {
  ty_dtype dt = a->g->values[v].dtype;
  return dt == TY_DTYPE_INVALID || ty_dtype_is_float(dt);
}

static void mark_needs(ad *a, const size_t *order, size_t nn) {
  for (size_t s = 0; s < nn; s++) {
    const ty_graph_node *n = &a->g->nodes[order[s]];
    bool any = false;
    for (int i = 0; i < n->n_inputs && !any; i++)
      any = n->inputs[i] != TY_NO_VALUE && a->needs[n->inputs[i]] &&
            ty__grad_differentiable(n->op, i);
    for (int i = 0; any && i < n->n_outputs; i++)
      if (n->outputs[i] != TY_NO_VALUE && carries_grad(a, n->outputs[i]))
        a->needs[n->outputs[i]] = true;
  }
}

static int seed(ad *a, int loss) {
  const ty_graph_value *v = &a->g->values[loss];
  if (v->dtype != TY_DTYPE_F32 || ty_shape_numel(&v->shape) != 1)
    return ty_errf(a->err, a->err_len, TY_EINVAL,
                   "loss \"%s\": must be a float value of one element", v->name);
  ty_shape s = v->shape;
  ty_tensor *one;
  int id, rc = ty_tensor_create(TY_DTYPE_F32, &s, &one);
  if (rc != 0) return rc;
  ty_tensor_f32(one)[0] = 1.0f;
  char name[256];
  snprintf(name, sizeof name, "%s.grad_seed", v->name);
  if ((rc = ty_graph_add_value(a->g, name, TY_DTYPE_F32, &s, &id)) != 0) {
    ty_tensor_destroy(one);
    return rc;
  }
  if ((rc = ty_graph_set_initializer(a->g, id, one)) != 0) return rc;
  a->grad[loss] = id;
  return 0;
}

static int run(ad *a, int loss, const int *params, size_t n_params, int *out_grads) {
  size_t nn = a->g->n_nodes;
  size_t *order = malloc((nn + 1) * sizeof *order);
  if (!order) return TY_ENOMEM;
  int rc = ty_graph_topo_order(a->g, order);
  if (rc != 0)
    rc = ty_errf(a->err, a->err_len, rc, "graph: has a cycle or reads a value nobody produces");
  for (size_t i = 0; rc == 0 && i < n_params; i++) {
    if (params[i] < 0 || (size_t)params[i] >= a->nv0 ||
        a->g->values[params[i]].dtype != TY_DTYPE_F32)
      rc = ty_errf(a->err, a->err_len, TY_EINVAL, "param %zu: not a float value of the graph", i);
    else
      a->needs[params[i]] = true;
  }
  if (rc == 0) mark_needs(a, order, nn);
  if (rc == 0) rc = seed(a, loss);
  for (size_t s = nn; rc == 0 && s-- > 0;)
    rc = backward_node(a, order[s]);
  for (size_t i = 0; rc == 0 && i < n_params; i++) {
    out_grads[i] = a->grad[params[i]];
    if (out_grads[i] != TY_NO_VALUE) rc = ty_graph_mark_output(a->g, out_grads[i]);
  }
  free(order);
  return rc;
}

int ty_autodiff_one_grad_layer_norm(ty_graph *g, size_t *marked) {
  *marked = 0;
  for (size_t k = 0; k < g->n_nodes; k++) {
    if (g->nodes[k].op != TY_OP_LAYER_NORM) continue;
    int rc = ty_graph_node_set_int(g, k, TY_AUTODIFF_LN_ONE_GRAD, 1);
    if (rc != 0) return rc;
    ++*marked;
  }
  return 0;
}

int ty_autodiff(ty_graph *g, int loss, const int *params, size_t n_params, int *out_grads,
                char *err, size_t err_len) {
  ad a = {.g = g, .nv0 = g->n_values, .err = err, .err_len = err_len};
  if (loss < 0 || (size_t)loss >= g->n_values)
    return ty_errf(err, err_len, TY_EINVAL, "loss: value %d does not exist", loss);
  a.grad = malloc((a.nv0 + 1) * sizeof *a.grad);
  a.needs = calloc(a.nv0 + 1, sizeof *a.needs);
  int rc = TY_ENOMEM;
  if (a.grad && a.needs) {
    for (size_t i = 0; i < a.nv0; i++)
      a.grad[i] = TY_NO_VALUE;
    rc = run(&a, loss, params, n_params, out_grads);
  }
  if (rc == 0) rc = ty_graph_infer_shapes(g, err, err_len);
  free(a.grad);
  free(a.needs);
  return rc;
}
