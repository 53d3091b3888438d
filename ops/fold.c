/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Shape arithmetic at import. PyTorch exports `x.view(x.size(0), -1)` as
 * Shape -> Gather -> Unsqueeze -> Concat -> Reshape, and similar chains for
 * expand, masks and attention heads. Two things make them cheap here:
 *
 *   - Folding (ty__graph_fold): a node whose inputs are all constants
 *     (Constant outputs, non-float initializers, folded values, or a Shape
 *     of a fully static shape) is run once at import and replaced by a
 *     Constant node holding its output (one Constant per output of a
 *     node of several, such as the Split of repeat_interleave's repeats);
 *     constants nobody reads any more are dropped. Float initializers are never treated as
 * constants: they may be weights being trained.
 *   - Partly known vectors (ty__sym_eval): when the chain depends on the
 *     symbolic batch, the nodes stay and run at run time, but shape
 *     inference follows the vector entry by entry (known, the batch, or
 *     unknown), so the Reshape still infers [N, 784] at import.
 *
 * Folded outputs are capped at FOLD_MAX elements so a ConstantOfShape of a
 * large tensor stays a node instead of bloating the model.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FOLD_MAX 65536
#define FOLD_OUTPUTS 16 /* ty__eval_node's most */

/* ---- partly known vectors ------------------------------------------------ */
/* Input i as a partly known vector: its symvec, or its value when that is a
 * small int tensor. */
static bool sym_in(const ty__symvec *const *in_sym, const ty_tensor *const *in_val, int i,
                   ty__symvec *out) {
  if (in_sym && in_sym[i]) {
    *out = *in_sym[i];
    return true;
  }
  const ty_tensor *t = in_val ? in_val[i] : NULL;
  if (!t || ty__dkind_of(t->dtype) == TY__DK_FLOAT || t->shape.rank > 1 ||
      ty_tensor_numel(t) > TY__SYM_MAX)
    return false;
  out->n = (int)ty_tensor_numel(t);
  out->rank = t->shape.rank;
  for (int k = 0; k < out->n; k++) {
    out->v[k] = ty__geti(t->dtype, t->data, k);
    out->kind[k] = TY__SYM_KNOWN;
  }
  return true;
}

static int sym_shape(const ty_graph_node *n, const ty_shape *x, ty__symvec *out) {
  if (x->rank < 0) return 0;
  if (n->op == TY_OP_SIZE) {
    int64_t p = ty_shape_numel(x);
    *out = (ty__symvec){
        .n = 1, .rank = 0, .v = {p}, .kind = {p < 0 ? TY__SYM_UNKNOWN : TY__SYM_KNOWN}};
    return 1;
  }
  int st, en;
  ty__shape_window(n, x->rank, &st, &en);
  if (en - st > TY__SYM_MAX) return 0;
  out->n = en - st;
  out->rank = 1;
  for (int d = st; d < en; d++) {
    int64_t v = x->dims[d];
    out->v[d - st] = v;
    out->kind[d - st] = v >= 0              ? TY__SYM_KNOWN
                        : v == TY_DIM_BATCH ? TY__SYM_BATCH
                                            : TY__SYM_UNKNOWN;
  }
  return 1;
}

static int sym_gather(const ty_graph_node *n, const ty__symvec *x, const ty_tensor *idx,
                      ty__symvec *out) {
  if (!idx || x->rank != 1 || idx->shape.rank > 1 || ty_graph_node_attr_int(n, "axis", 0) != 0)
    return 0;
  int64_t cnt = ty_tensor_numel(idx);
  if (cnt > TY__SYM_MAX) return 0;
  out->n = (int)cnt;
  out->rank = idx->shape.rank;
  for (int k = 0; k < out->n; k++) {
    int64_t j = ty__geti(idx->dtype, idx->data, k);
    if (j < 0) j += x->n;
    if (j < 0 || j >= x->n) return 0;
    out->v[k] = x->v[j];
    out->kind[k] = x->kind[j];
  }
  return 1;
}

static int sym_concat(const ty__symvec *const *in_sym, const ty_tensor *const *in_val, int ni,
                      ty__symvec *out) {
  out->n = 0;
  out->rank = 1;
  for (int i = 0; i < ni; i++) {
    ty__symvec a;
    if (!sym_in(in_sym, in_val, i, &a) || out->n + a.n > TY__SYM_MAX) return 0;
    memcpy(out->v + out->n, a.v, (size_t)a.n * sizeof *a.v);
    memcpy(out->kind + out->n, a.kind, (size_t)a.n * sizeof *a.kind);
    out->n += a.n;
  }
  return 1;
}

static int sym_slice(const ty_graph_node *n, const ty__symvec *x, const ty_tensor *const *in_val,
                     ty__symvec *out) {
  ty__slice s;
  if (x->rank != 1 || ty__slice_params(n, in_val, 1, &s) != 0) return 0;
  int64_t st, len;
  ty__slice_axis(x->n, s.start[0], s.end[0], s.step[0], &st, &len);
  out->n = (int)len;
  out->rank = 1;
  for (int k = 0; k < out->n; k++) {
    out->v[k] = x->v[st + k * s.step[0]];
    out->kind[k] = x->kind[st + k * s.step[0]];
  }
  return 1;
}

/* Entry k of an elementwise op on partly known operands (broadcast of a
 * scalar or one-entry vector against a vector). */
static void sym_arith(ty_op op, const ty__symvec *a, int ka, const ty__symvec *b, int kb,
                      int8_t *kind, int64_t *v) {
  int64_t x = a->v[ka], y = b->v[kb];
  bool xk = a->kind[ka] == TY__SYM_KNOWN, yk = b->kind[kb] == TY__SYM_KNOWN;
  *kind = TY__SYM_UNKNOWN;
  *v = 0;
  if (xk && yk) {
    *kind = TY__SYM_KNOWN;
    switch (op) {
    case TY_OP_ADD:
      *v = (int64_t)((uint64_t)x + (uint64_t)y);
      return;
    case TY_OP_SUB:
      *v = (int64_t)((uint64_t)x - (uint64_t)y);
      return;
    case TY_OP_MUL:
      *v = (int64_t)((uint64_t)x * (uint64_t)y);
      return;
    case TY_OP_EQUAL:
      *v = x == y;
      return;
    case TY_OP_LESS:
      *v = x < y;
      return;
    case TY_OP_LESS_EQUAL:
      *v = x <= y;
      return;
    case TY_OP_GREATER:
      *v = x > y;
      return;
    case TY_OP_GREATER_EQUAL:
      *v = x >= y;
      return;
    case TY_OP_MIN:
      *v = x < y ? x : y;
      return;
    case TY_OP_MAX:
      *v = x > y ? x : y;
      return;
    case TY_OP_AND:
      *v = x && y;
      return;
    case TY_OP_OR:
      *v = x || y;
      return;
    default:
      if (y == 0 || (y == -1 && x == INT64_MIN))
        *kind = TY__SYM_UNKNOWN;
      else
        *v = x / y;
      return;
    }
  }
  /* A dim is never negative: the batch is not -1 (Equal(Reshape(sizes),
   * -1), PyTorch's export of expand(-1, ...), asked of a batch entry). */
  bool xb = a->kind[ka] == TY__SYM_BATCH, yb = b->kind[kb] == TY__SYM_BATCH;
  if (op == TY_OP_EQUAL && ((xb && yk && y < 0) || (yb && xk && x < 0))) {
    *kind = TY__SYM_KNOWN;
    return;
  }
  /* x * 1, x + 0, x - 0, x / 1 keep the batch, and so do Min and Max of
   * the batch with itself. */
  bool keep = (op == TY_OP_MUL && ((yk && y == 1) || (xk && x == 1))) ||
              ((op == TY_OP_ADD) && ((yk && !y) || (xk && !x))) ||
              ((op == TY_OP_SUB || op == TY_OP_DIV) && yk && y == (op == TY_OP_DIV));
  if (keep) *kind = xk ? b->kind[kb] : a->kind[ka];
  if ((op == TY_OP_MIN || op == TY_OP_MAX) && a->kind[ka] == TY__SYM_BATCH &&
      b->kind[kb] == TY__SYM_BATCH)
    *kind = TY__SYM_BATCH;
}

static int sym_binary(ty_op op, const ty__symvec *a, const ty__symvec *b, ty__symvec *out) {
  if (a->n != b->n && a->n != 1 && b->n != 1) return 0;
  out->n = a->n > b->n ? a->n : b->n;
  out->rank = a->rank > b->rank ? a->rank : b->rank;
  for (int k = 0; k < out->n; k++)
    sym_arith(op, a, a->n == 1 ? 0 : k, b, b->n == 1 ? 0 : k, &out->kind[k], &out->v[k]);
  return 1;
}

/* Min or Max of any number of partly known operands. */
static int sym_variadic(const ty_graph_node *n, const ty__symvec *const *in_sym,
                        const ty_tensor *const *in_val, ty__symvec *out) {
  ty__symvec b, acc;
  if (!sym_in(in_sym, in_val, 0, out)) return 0;
  for (int i = 1; i < n->n_inputs; i++) {
    if (n->inputs[i] == TY_NO_VALUE || !sym_in(in_sym, in_val, i, &b)) return 0;
    acc = *out;
    if (!sym_binary(n->op, &acc, &b, out)) return 0;
  }
  return 1;
}

static int sym_where(const ty__symvec *c, const ty__symvec *a, const ty__symvec *b,
                     ty__symvec *out) {
  int n = c->n > a->n ? c->n : a->n;
  n = n > b->n ? n : b->n;
  if ((c->n != n && c->n != 1) || (a->n != n && a->n != 1) || (b->n != n && b->n != 1)) return 0;
  out->n = n;
  out->rank = 1;
  for (int k = 0; k < n; k++) {
    int kc = c->n == 1 ? 0 : k, ka = a->n == 1 ? 0 : k, kb = b->n == 1 ? 0 : k;
    const ty__symvec *pick = c->v[kc] ? a : b;
    int kp = c->v[kc] ? ka : kb;
    out->v[k] = pick->v[kp];
    out->kind[k] = c->kind[kc] == TY__SYM_KNOWN ? pick->kind[kp] : TY__SYM_UNKNOWN;
  }
  return 1;
}

/* A partly known vector x reshaped by a known shape of one entry, -1 or
 * x's length: the same entries as a vector. PyTorch exports
 * x.expand(-1, 1, d) with its sizes through Reshape(Concat(...), [-1])
 * before the Where that turns -1 into 1; without this the Expand's shape,
 * and an If on it (squeeze(1)'s), stayed unknown at import. */
static int sym_reshape(const ty_tensor *shape, ty__symvec *x) {
  if (!shape || ty__dkind_of(shape->dtype) == TY__DK_FLOAT || shape->shape.rank != 1 ||
      ty_tensor_numel(shape) != 1)
    return 0;
  int64_t d = ty__geti(shape->dtype, shape->data, 0);
  if (d != -1 && d != x->n) return 0;
  x->rank = 1;
  return 1;
}

int ty__sym_eval(const ty_graph_node *n, const ty_shape *in_shape, const ty__symvec *const *in_sym,
                 const ty_tensor *const *in_val, ty__symvec *out) {
  ty__symvec a, b, c;
  memset(out, 0, sizeof *out);
  if (n->n_inputs < 1 || n->inputs[0] == TY_NO_VALUE) return 0;
  switch (n->op) {
  case TY_OP_SHAPE:
  case TY_OP_SIZE:
    return sym_shape(n, &in_shape[0], out);
  case TY_OP_GATHER:
    return sym_in(in_sym, in_val, 0, &a) ? sym_gather(n, &a, in_val[1], out) : 0;
  case TY_OP_CONCAT:
    return sym_concat(in_sym, in_val, n->n_inputs, out);
  case TY_OP_SLICE:
    return sym_in(in_sym, in_val, 0, &a) ? sym_slice(n, &a, in_val, out) : 0;
  case TY_OP_IDENTITY:
  case TY_OP_CAST:
    return sym_in(in_sym, in_val, 0, out);
  case TY_OP_UNSQUEEZE:
  case TY_OP_SQUEEZE: /* scalar <-> one-entry vector */
    if (!sym_in(in_sym, in_val, 0, &a) || a.n != 1 || a.rank != (n->op == TY_OP_SQUEEZE)) return 0;
    *out = a;
    out->rank = n->op == TY_OP_UNSQUEEZE;
    return 1;
  case TY_OP_ADD:
  case TY_OP_SUB:
  case TY_OP_MUL:
  case TY_OP_DIV:
  case TY_OP_EQUAL:
    if (!sym_in(in_sym, in_val, 0, &a) || n->n_inputs < 2 || !sym_in(in_sym, in_val, 1, &b))
      return 0;
    return sym_binary(n->op, &a, &b, out);
  case TY_OP_LESS:
  case TY_OP_LESS_EQUAL:
  case TY_OP_GREATER:
  case TY_OP_GREATER_EQUAL:
  case TY_OP_AND:
  case TY_OP_OR:
    if (!sym_in(in_sym, in_val, 0, &a) || n->n_inputs < 2 || !sym_in(in_sym, in_val, 1, &b))
      return 0;
    return sym_binary(n->op, &a, &b, out);
  case TY_OP_MIN:
  case TY_OP_MAX: /* variadic: folded pairwise */
    return sym_variadic(n, in_sym, in_val, out);
  case TY_OP_NOT:
    if (!sym_in(in_sym, in_val, 0, out)) return 0;
    for (int k = 0; k < out->n; k++)
      out->v[k] = !out->v[k];
    return 1;
  case TY_OP_RESHAPE: /* a vector to [-1] or [n], as expand(-1, ...)'s export does */
    return n->n_inputs >= 2 && sym_in(in_sym, in_val, 0, out) ? sym_reshape(in_val[1], out) : 0;
  case TY_OP_WHERE:
    if (n->n_inputs < 3 || !sym_in(in_sym, in_val, 0, &c) || !sym_in(in_sym, in_val, 1, &a) ||
        !sym_in(in_sym, in_val, 2, &b))
      return 0;
    return sym_where(&c, &a, &b, out);
  default:
    return 0;
  }
}

/* ---- folding --------------------------------------------------------------- */
static bool foldable(ty_op op) {
  return op != TY_OP_CONSTANT && op != TY_OP_DROPOUT && op != TY_OP_GRAD &&
         op != TY_OP_BATCH_NORM && !ty_op_is_random(op) && /* a new draw per run */
         op != TY_OP_EXTERN; /* the caller's op, run only by its executor */
}

typedef struct folder {
  ty_graph *g;
  const ty_tensor **cval; /* per value: its constant data (borrowed or in owned) */
  ty_tensor **owned;      /* per value: data computed here, until moved into a Constant */
  bool *fold;             /* per node: replace by a Constant of its output */
  char *err;
  size_t err_len;
} folder;

/* Shape/Size of a fully static shape, computed without the input's data. */
static int static_shape(folder *f, const ty_graph_node *n, ty_tensor **out) {
  const ty_shape *x = &f->g->values[n->inputs[0]].shape;
  if (!ty_shape_is_concrete(x)) return 1;
  ty__symvec sv;
  if (!sym_shape(n, x, &sv)) return 1;
  ty_shape s = ty_shape_make(sv.rank, (int64_t[]){sv.n});
  int rc = ty_tensor_create(TY_DTYPE_I64, &s, out);
  for (int k = 0; rc == 0 && k < sv.n; k++)
    ty_tensor_i64(*out)[k] = sv.v[k];
  return rc;
}

/* Runs node k when every input it names is a constant and it names every
 * output; 1 when it did not. */
static int try_fold(folder *f, size_t k) {
  const ty_graph_node *n = &f->g->nodes[k];
  int o = n->outputs[0];
  if (!foldable(n->op) || n->n_outputs > FOLD_OUTPUTS) return 1;
  for (int i = 0; i < n->n_outputs; i++)
    if (n->outputs[i] == TY_NO_VALUE) return 1;
  if (n->op == TY_OP_SHAPE || n->op == TY_OP_SIZE) {
    if (n->n_outputs != 1) return 1; /* inference refuses the extra outputs */
    int rc = static_shape(f, n, &f->owned[o]);
    if (rc == 0) f->cval[o] = f->owned[o];
    return rc;
  }
  const ty_tensor *in[64] = {NULL};
  if (n->n_inputs > 64) return 1;
  for (int i = 0; i < n->n_inputs; i++) {
    int id = n->inputs[i];
    if (id == TY_NO_VALUE) continue;
    if (!(in[i] = f->cval[id])) return 1;
  }
  ty_tensor *out[FOLD_OUTPUTS] = {NULL};
  int rc = ty__eval_node(n, in, FOLD_MAX, out, f->err, f->err_len);
  for (int i = 0; rc == 0 && i < n->n_outputs; i++)
    f->cval[n->outputs[i]] = f->owned[n->outputs[i]] = out[i];
  return rc;
}

/* Node k's output i (i > 0) as a Constant node of its own, appended. */
static int add_constant(folder *f, const char *node, int i, int o) {
  char name[256];
  snprintf(name, sizeof name, "%.200s.folded_%d", node, i);
  int idx = -1, rc = ty_graph_add_node(f->g, TY_OP_CONSTANT, name, NULL, 0, &o, 1, &idx);
  if (rc == 0)
    rc = ty_graph_node_set_tensor(f->g, (size_t)idx, "value", f->owned[o]);
  else
    ty_tensor_destroy(f->owned[o]);
  f->owned[o] = NULL; /* moved, or freed on failure */
  return rc;
}

/* Folded node k becomes the Constant of its output 0, and its other
 * outputs Constants appended (the caller sorts the nodes again). */
static int to_constants(folder *f, size_t k, bool *appended) {
  ty_graph *g = f->g;
  int n_out = g->nodes[k].n_outputs, outs[FOLD_OUTPUTS];
  memcpy(outs, g->nodes[k].outputs, (size_t)n_out * sizeof *outs);
  char *name = strdup(g->nodes[k].name);
  int rc = name ? 0 : TY_ENOMEM;
  /* A value keeps its shape even when its Constant goes as dead below (a
   * chain folded whole): ty__graph_shapes_at reports it. */
  for (int i = 0; i < n_out; i++)
    if (f->owned[outs[i]]) g->values[outs[i]].shape = f->owned[outs[i]]->shape;
  if (rc == 0)
    rc = ty__graph_node_to_constant(g, k, f->owned[outs[0]]);
  else
    ty_tensor_destroy(f->owned[outs[0]]);
  f->owned[outs[0]] = NULL; /* moved, or freed on failure */
  for (int i = 1; rc == 0 && i < n_out; i++)
    rc = add_constant(f, name, i, outs[i]);
  *appended = *appended || n_out > 1;
  free(name);
  return rc;
}

/* Constant nodes whose output nobody reads any more (and that are not
 * graph outputs) are dropped; iterates so chains of them go at once. */
static void mark_dead(const ty_graph *g, bool *drop) {
  bool *read = calloc(g->n_values + 1, sizeof *read);
  bool changed = true;
  while (read && changed) {
    changed = false;
    memset(read, 0, (g->n_values + 1) * sizeof *read);
    for (size_t k = 0; k < g->n_nodes; k++)
      for (int i = 0; !drop[k] && i < g->nodes[k].n_inputs; i++)
        if (g->nodes[k].inputs[i] != TY_NO_VALUE) read[g->nodes[k].inputs[i]] = true;
    for (size_t k = 0; k < g->n_nodes; k++) {
      const ty_graph_node *n = &g->nodes[k];
      int o = n->outputs[0];
      if (drop[k] || n->op != TY_OP_CONSTANT || o == TY_NO_VALUE || read[o] ||
          g->values[o].is_output)
        continue;
      drop[k] = true;
      changed = true;
    }
  }
  free(read);
}

static int rewrite(folder *f) {
  ty_graph *g = f->g;
  bool appended = false;
  for (size_t k = 0, n = g->n_nodes; k < n; k++) {
    int rc = f->fold[k] ? to_constants(f, k, &appended) : 0;
    if (rc != 0) return rc;
  }
  bool *drop = calloc(g->n_nodes + 1, sizeof *drop);
  if (!drop) return TY_ENOMEM;
  mark_dead(g, drop);
  int rc = ty__graph_drop_nodes(g, drop);
  free(drop);
  return rc == 0 && appended ? ty__graph_sort(g) : rc;
}

int ty__graph_fold(ty_graph *g, char *err, size_t err_len) {
  size_t nv = g->n_values + 1, nn = g->n_nodes + 1;
  folder f = {.g = g,
              .cval = calloc(nv, sizeof *f.cval),
              .owned = calloc(nv, sizeof *f.owned),
              .fold = calloc(nn, sizeof *f.fold),
              .err = err,
              .err_len = err_len};
  size_t *order = malloc(nn * sizeof *order);
  int rc = TY_ENOMEM;
  if (!f.cval || !f.owned || !f.fold || !order) goto done;
  if ((rc = ty_graph_topo_order(g, order)) != 0) goto done;
  for (size_t i = 0; i < g->n_values; i++)
    if (g->values[i].init && !ty_dtype_is_float(g->values[i].dtype)) f.cval[i] = g->values[i].init;
  bool any = false;
  for (size_t s = 0; rc == 0 && s < g->n_nodes; s++) {
    const ty_graph_node *n = &g->nodes[order[s]];
    if (n->op == TY_OP_CONSTANT) { /* its output may be unnamed (omitted) */
      if (n->outputs[0] != TY_NO_VALUE) f.cval[n->outputs[0]] = ty_graph_node_attr(n, "value")->t;
      continue;
    }
    int r = try_fold(&f, order[s]);
    if (r < 0)
      rc = r;
    else if (r == 0)
      any = f.fold[order[s]] = true;
  }
  if (rc == 0 && any) rc = rewrite(&f);
done:
  for (size_t i = 0; f.owned && i < g->n_values; i++)
    ty_tensor_destroy(f.owned[i]);
  free(f.cval);
  free(f.owned);
  free(f.fold);
  free(order);
  return rc;
}
