/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape and dtype inference: the helpers every rule uses, the dispatch by
 * op (generated from TY_OP_LIST) and the graph-wide pass. The rules live by
 * family in infer_nn.c, infer_elem.c, infer_shape.c and infer_index.c. The
 * same functions run at import (shapes may hold TY_DIM_BATCH) and in the
 * executor before every kernel (all shapes concrete), so a rule written
 * there is the single definition of an op's output shape.
 *
 * The graph-wide pass also tracks values it can know without running the
 * model: initializers and Constant outputs, and partly known int vectors
 * (ty__symvec) computed from shapes, so shape arithmetic on a symbolic
 * batch still gives static output shapes.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ty__infer_fail(ty__infer *ic, int code, const char *fmt, ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(msg, sizeof msg, code, fmt, ap);
  va_end(ap);
  return ty__node_err(ic->err, ic->err_len, ic->node, code, "%s", msg);
}

bool ty__infer_has(const ty__infer *ic, int i) {
  return i < ic->n_in && ic->in_dt[i] != TY_DTYPE_INVALID;
}

int ty__infer_need(ty__infer *ic, int i, uint32_t mask, bool optional) {
  if (!ty__infer_has(ic, i)) {
    if (optional) return 0;
    return ty__infer_fail(ic, TY_EINVAL, "input %d is missing", i);
  }
  if (!(mask & (1u << ic->in_dt[i])))
    return ty__infer_fail(ic, TY_EUNSUPPORTED, "input %d: dtype %s is not supported", i,
                          ty_dtype_name(ic->in_dt[i]));
  return 0;
}

void ty__infer_set(ty__infer *ic, int i, ty_dtype dt, const ty_shape *s) {
  if (i >= ic->n_out) return;
  ic->out_dt[i] = dt;
  ic->out_shape[i] = *s;
}

int ty__infer_int_list(ty__infer *ic, int input, int64_t *out, int max, int *out_n) {
  *out_n = -1;
  if (!ty__infer_has(ic, input)) return 0;
  if (ic->in_dt[input] != TY_DTYPE_I64 && ic->in_dt[input] != TY_DTYPE_I32)
    return ty__infer_fail(ic, TY_EUNSUPPORTED,
                          "input %d: dtype %s is not supported (INT64 or INT32)", input,
                          ty_dtype_name(ic->in_dt[input]));
  const ty_tensor *t = ic->in_val[input];
  if (!t) {
    *out_n = -2;
    return 0;
  }
  int64_t n = ty_tensor_numel(t);
  if (t->shape.rank > 1 || n > max)
    return ty__infer_fail(ic, TY_EINVAL, "input %d must be a vector of at most %d values", input,
                          max);
  for (int64_t i = 0; i < n; i++)
    out[i] = ty__geti(t->dtype, t->data, i);
  *out_n = (int)n;
  return 0;
}

int ty__infer_dims_list(ty__infer *ic, int input, int64_t *out, int8_t *kind, int max, int *out_n) {
  int rc = ty__infer_int_list(ic, input, out, max, out_n);
  if (rc != 0 || *out_n != -2) {
    for (int i = 0; i < *out_n; i++)
      kind[i] = TY__SYM_KNOWN;
    return rc;
  }
  const ty__symvec *sv = ic->in_sym ? ic->in_sym[input] : NULL;
  if (!sv) return 0;
  if (sv->n > max)
    return ty__infer_fail(ic, TY_EINVAL, "input %d must be a vector of at most %d values", input,
                          max);
  memcpy(out, sv->v, (size_t)sv->n * sizeof *out);
  memcpy(kind, sv->kind, (size_t)sv->n * sizeof *kind);
  *out_n = sv->n;
  return 0;
}

/* TyExtern (ops/exec.h): float in, float out of the "shape" attribute. */
int ty__infer_extern(ty__infer *ic) {
  const ty_graph_node *n = ic->node;
  int64_t dims[TY_MAX_RANK];
  int rank = 0;
  const ty_graph_attr *a = ty_graph_node_attr(n, "shape");
  if (n->n_inputs != 1 || n->n_outputs != 1 || ic->in_dt[0] != TY_DTYPE_F32)
    return ty__infer_fail(ic, TY_EINVAL, "takes one float input and one output");
  if (!a || a->type != TY_ATTR_INTS || ty__attr_ints(n, "shape", dims, TY_MAX_RANK, &rank) != 0)
    return ty__infer_fail(ic, TY_EINVAL, "attribute shape: missing or more than %d dims",
                          TY_MAX_RANK);
  for (int d = 0; d < rank; d++)
    if (dims[d] < 0) return ty__infer_fail(ic, TY_EINVAL, "attribute shape: dim %d is negative", d);
  ty_shape s = ty_shape_make(rank, dims);
  ty__infer_set(ic, 0, TY_DTYPE_F32, &s);
  return 0;
}

typedef int (*infer_fn)(ty__infer *ic);
static const infer_fn rules[TY_OP_COUNT_] = {
#define TY_OP_RULE_(e, s, k, r) [TY_OP_##e] = ty__infer_##r,
    TY_OP_LIST(TY_OP_RULE_)
#undef TY_OP_RULE_
};

int ty__infer_node(ty__infer *ic) {
  for (int i = 0; i < ic->n_out; i++) {
    ic->out_dt[i] = TY_DTYPE_INVALID;
    ic->out_shape[i] = ty_shape_unknown();
  }
  ty_op op = ic->node->op;
  if ((int)op < 0 || op >= TY_OP_COUNT_) return ty__infer_fail(ic, TY_EINTERNAL, "not an op");
  int rc = rules[op](ic);
  for (int i = 0; rc == 0 && i < ic->n_out; i++)
    if (ty__shape_too_large(&ic->out_shape[i]))
      return ty__infer_fail(ic, TY_EINVAL, "output %d: its shape is too large", i);
  return rc;
}

/* ---- the graph-wide pass ------------------------------------------------ */
typedef struct pass {
  ty_graph *g;
  const ty_tensor **known; /* per value: its data when known (borrowed) */
  ty__symvec *sym;         /* per value: a partly known int vector ... */
  const ty__symvec **symp; /* ... when this points at it */
  char *err;
  size_t err_len;
} pass;

/* Per-node scratch: inputs then outputs, for one allocation. */
typedef struct scratch {
  ty_dtype *dt;
  ty_shape *sh;
  const ty_tensor **val;
  const ty__symvec **sym;
} scratch;

static int scratch_init(scratch *s, int ni, int no) {
  size_t n = (size_t)(ni + no) + 1;
  s->dt = calloc(n, sizeof *s->dt);
  s->sh = calloc(n, sizeof *s->sh);
  s->val = calloc(n, sizeof *s->val);
  s->sym = calloc(n, sizeof *s->sym);
  return s->dt && s->sh && s->val && s->sym ? 0 : TY_ENOMEM;
}

static void scratch_close(scratch *s) {
  free(s->dt);
  free(s->sh);
  free(s->val);
  free(s->sym);
}

/* Records what the pass can know of node n's output 0 beyond its shape. */
static void track(pass *p, const ty_graph_node *n, const scratch *s) {
  int o = n->n_outputs > 0 ? n->outputs[0] : TY_NO_VALUE;
  if (o == TY_NO_VALUE) return;
  if (n->op == TY_OP_CONSTANT) {
    p->known[o] = ty_graph_node_attr(n, "value")->t;
    return;
  }
  if (ty__sym_eval(n, s->sh, s->sym, s->val, &p->sym[o]) == 1) p->symp[o] = &p->sym[o];
}

static int infer_one(pass *p, size_t idx) {
  ty_graph *g = p->g;
  const ty_graph_node *n = &g->nodes[idx];
  int ni = n->n_inputs, no = n->n_outputs;
  scratch s;
  int rc = scratch_init(&s, ni, no);
  for (int i = 0; rc == 0 && i < ni; i++) {
    int id = n->inputs[i];
    s.sh[i] = ty_shape_unknown();
    if (id == TY_NO_VALUE) continue;
    s.dt[i] = g->values[id].dtype;
    s.sh[i] = g->values[id].shape;
    s.val[i] = p->known[id];
    s.sym[i] = p->symp[id];
    if (s.dt[i] == TY_DTYPE_INVALID)
      rc = ty__node_err(p->err, p->err_len, n, TY_EINVAL, "input \"%s\" has no known dtype",
                        g->values[id].name);
  }
  ty__infer ic = {.node = n,
                  .n_in = ni,
                  .in_dt = s.dt,
                  .in_shape = s.sh,
                  .in_val = s.val,
                  .in_sym = s.sym,
                  .n_out = no,
                  .out_dt = s.dt + ni,
                  .out_shape = s.sh + ni,
                  .err = p->err,
                  .err_len = p->err_len};
  if (rc == 0) rc = ty__infer_node(&ic);
  for (int i = 0; rc == 0 && i < no; i++) {
    int id = n->outputs[i];
    if (id == TY_NO_VALUE) continue;
    if (s.dt[ni + i] == TY_DTYPE_INVALID) {
      rc = ty__node_err(p->err, p->err_len, n, TY_EINVAL,
                        "output %d \"%s\": %s has no output %d (name it \"\" or drop it)", i,
                        g->values[id].name, ty_op_name(n->op), i);
      break;
    }
    g->values[id].dtype = s.dt[ni + i];
    g->values[id].shape = s.sh[ni + i];
  }
  if (rc == 0) track(p, n, &s);
  scratch_close(&s);
  return rc;
}

/* The pass over g; with want != TY_NO_VALUE, what it knew of value want
 * at the end into *out (*have: 1 when it knew it, else 0). */
static int infer_pass(ty_graph *g, int want, ty__symvec *out, int *have, char *err,
                      size_t err_len) {
  size_t nv = g->n_values + 1;
  size_t *order = malloc((g->n_nodes + 1) * sizeof *order);
  pass p = {.g = g,
            .known = calloc(nv, sizeof *p.known),
            .sym = calloc(nv, sizeof *p.sym),
            .symp = calloc(nv, sizeof *p.symp),
            .err = err,
            .err_len = err_len};
  int rc = TY_ENOMEM;
  if (!order || !p.known || !p.sym || !p.symp) goto fail;
  if ((rc = ty_graph_topo_order(g, order)) != 0) {
    rc = ty_errf(err, err_len, TY_EINVAL, "graph: has a cycle or reads a value nobody produces");
    goto fail;
  }
  for (size_t i = 0; i < g->n_values; i++)
    p.known[i] = g->values[i].init;
  for (size_t i = 0; i < g->n_nodes && rc == 0; i++)
    rc = infer_one(&p, order[i]);
  if (rc == 0 && want != TY_NO_VALUE) {
    const ty_tensor *t = p.known[want];
    *have = 0;
    if (p.symp[want]) {
      *out = *p.symp[want];
      *have = 1;
    } else if (t && ty__dkind_of(t->dtype) != TY__DK_FLOAT && t->shape.rank <= 1 &&
               ty_tensor_numel(t) >= 1 && ty_tensor_numel(t) <= TY__SYM_MAX) {
      out->n = (int)ty_tensor_numel(t);
      out->rank = t->shape.rank;
      for (int k = 0; k < out->n; k++) {
        out->v[k] = ty__geti(t->dtype, t->data, k);
        out->kind[k] = TY__SYM_KNOWN;
      }
      *have = 1;
    }
  }
fail:
  free(order);
  free(p.known);
  free(p.sym);
  free(p.symp);
  return rc;
}

int ty_graph_infer_shapes(ty_graph *g, char *err, size_t err_len) {
  return infer_pass(g, TY_NO_VALUE, NULL, NULL, err, err_len);
}

int ty__graph_infer_value(ty_graph *g, int id, ty__symvec *out, int *have, char *err,
                          size_t err_len) {
  if (id < 0 || (size_t)id >= g->n_values) return TY_EINVAL;
  return infer_pass(g, id, out, have, err, err_len);
}
