/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The graph IR: storage, accessors, builders and topological ordering.
 * Nodes and values live in growable arrays indexed by int ids, so passes can
 * hold ids across appends (pointers are invalidated by appends).
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
#define TY_OP_NAME_(e, s, k, r) s,
    TY_OP_LIST(TY_OP_NAME_)
#undef TY_OP_NAME_
};

const char *ty_op_name(ty_op op) {
  if ((int)op < 0 || op >= TY_OP_COUNT_) return "?";
  return op_names[op];
}

int ty_op_from_name(const char *op_type, ty_op *out_op) {
  for (int i = 0; i < TY_OP_COUNT_; i++) {
    if (strcmp(op_names[i], op_type) == 0) {
      *out_op = (ty_op)i;
      return 0;
    }
  }
  return TY_ENOTFOUND;
}

int ty__node_err(char *err, size_t err_len, const ty_graph_node *n, int code, const char *fmt,
                 ...) {
  char msg[TY_ERR_LEN];
  va_list ap;
  va_start(ap, fmt);
  ty_verrf(msg, sizeof msg, code, fmt, ap);
  va_end(ap);
  return ty_errf(err, err_len, code, "node \"%s\" (%s): %s", n->name, ty_op_name(n->op), msg);
}

int ty_graph_create(ty_graph **out_graph) {
  ty_graph *g = calloc(1, sizeof *g);
  if (!g) return TY_ENOMEM;
  g->opset = 17;
  *out_graph = g;
  return 0;
}

static void attr_free(ty_graph_attr *a) {
  free(a->name);
  free(a->s);
  free(a->ints);
  free(a->floats);
  ty_tensor_destroy(a->t);
}

static void node_free(ty_graph_node *n) {
  for (int a = 0; a < n->n_attrs; a++)
    attr_free(&n->attrs[a]);
  free(n->attrs);
  free(n->name);
  free(n->inputs);
  free(n->outputs);
}

void ty_graph_destroy(ty_graph *g) {
  if (!g) return;
  for (size_t i = 0; i < g->n_nodes; i++)
    node_free(&g->nodes[i]);
  for (size_t i = 0; i < g->n_values; i++) {
    free(g->values[i].name);
    ty_tensor_destroy(g->values[i].init);
  }
  free(g->nodes);
  free(g->values);
  free(g->inputs);
  free(g->outputs);
  free(g->inits);
  free(g->name);
  free(g);
}

int ty_graph_opset(const ty_graph *g) {
  return g->opset;
}
void ty_graph_set_opset(ty_graph *g, int opset) {
  g->opset = opset;
}
size_t ty_graph_n_nodes(const ty_graph *g) {
  return g->n_nodes;
}
const ty_graph_node *ty_graph_node_at(const ty_graph *g, size_t i) {
  return i < g->n_nodes ? &g->nodes[i] : NULL;
}
size_t ty_graph_n_values(const ty_graph *g) {
  return g->n_values;
}
size_t ty_graph_n_inputs(const ty_graph *g) {
  return g->n_inputs;
}
int ty_graph_input(const ty_graph *g, size_t i) {
  return i < g->n_inputs ? g->inputs[i] : TY_NO_VALUE;
}
size_t ty_graph_n_outputs(const ty_graph *g) {
  return g->n_outputs;
}
int ty_graph_output(const ty_graph *g, size_t i) {
  return i < g->n_outputs ? g->outputs[i] : TY_NO_VALUE;
}
size_t ty_graph_n_initializers(const ty_graph *g) {
  return g->n_inits;
}
int ty_graph_initializer(const ty_graph *g, size_t i) {
  return i < g->n_inits ? g->inits[i] : TY_NO_VALUE;
}

const ty_graph_value *ty_graph_value_at(const ty_graph *g, int id) {
  if (id < 0 || (size_t)id >= g->n_values) return NULL;
  return &g->values[id];
}

bool ty_op_is_random(ty_op op) {
  return op == TY_OP_RANDOM_NORMAL || op == TY_OP_RANDOM_NORMAL_LIKE ||
         op == TY_OP_RANDOM_UNIFORM || op == TY_OP_RANDOM_UNIFORM_LIKE || op == TY_OP_BERNOULLI ||
         op == TY_OP_MULTINOMIAL;
}

bool ty_op_is_reduce(ty_op op) {
  switch (op) {
  case TY_OP_REDUCE_MEAN:
  case TY_OP_REDUCE_SUM:
  case TY_OP_REDUCE_MAX:
  case TY_OP_REDUCE_MIN:
  case TY_OP_REDUCE_PROD:
  case TY_OP_REDUCE_L1:
  case TY_OP_REDUCE_L2:
  case TY_OP_REDUCE_SUM_SQUARE:
  case TY_OP_REDUCE_LOG_SUM:
  case TY_OP_REDUCE_LOG_SUM_EXP:
    return true;
  default:
    return false;
  }
}

int ty_graph_check_bind(const ty_graph *g, int id, const ty_tensor *t, char *err, size_t err_len) {
  const ty_graph_value *v = ty_graph_value_at(g, id);
  if (!v) return ty_errf(err, err_len, TY_ENOTFOUND, "value %d: no such value", id);
  if (!v->is_input && !v->init)
    return ty_errf(err, err_len, TY_EINVAL, "\"%s\": not a graph input or initializer", v->name);
  bool ok = t->dtype == v->dtype && (v->shape.rank < 0 || v->shape.rank == t->shape.rank);
  for (int d = 0; ok && v->shape.rank >= 0 && d < v->shape.rank; d++)
    ok = v->shape.dims[d] < 0 || v->shape.dims[d] == t->shape.dims[d];
  if (!ok) {
    char want[128], got[128];
    ty_shape_format(&v->shape, want, sizeof want);
    ty_shape_format(&t->shape, got, sizeof got);
    return ty_errf(err, err_len, TY_EINVAL, "input \"%s\": got %s %s, expected %s %s", v->name,
                   ty_dtype_name(t->dtype), got, ty_dtype_name(v->dtype), want);
  }
  return 0;
}

int ty_graph_find_value(const ty_graph *g, const char *name) {
  /* Linear: graphs have at most a few thousand values and import calls this
   * once per node input; a hash would be the next step for huge graphs. */
  for (size_t i = g->n_values; i-- > 0;)
    if (strcmp(g->values[i].name, name) == 0) return (int)i;
  return TY_NO_VALUE;
}

const ty_graph_attr *ty_graph_node_attr(const ty_graph_node *n, const char *name) {
  for (int i = 0; i < n->n_attrs; i++)
    if (strcmp(n->attrs[i].name, name) == 0) return &n->attrs[i];
  return NULL;
}

int64_t ty_graph_node_attr_int(const ty_graph_node *n, const char *name, int64_t dflt) {
  const ty_graph_attr *a = ty_graph_node_attr(n, name);
  return a && a->type == TY_ATTR_INT ? a->i : dflt;
}

float ty_graph_node_attr_float(const ty_graph_node *n, const char *name, float dflt) {
  const ty_graph_attr *a = ty_graph_node_attr(n, name);
  return a && a->type == TY_ATTR_FLOAT ? a->f : dflt;
}

const char *ty_graph_node_attr_string(const ty_graph_node *n, const char *name, const char *dflt) {
  const ty_graph_attr *a = ty_graph_node_attr(n, name);
  return a && a->type == TY_ATTR_STRING ? a->s : dflt;
}

int ty_graph_node_input(const ty_graph_node *n, int i) {
  return i < n->n_inputs ? n->inputs[i] : TY_NO_VALUE;
}

int ty__attr_ints(const ty_graph_node *n, const char *name, int64_t *out, int max, int *out_n) {
  const ty_graph_attr *a = ty_graph_node_attr(n, name);
  if (!a) {
    *out_n = -1;
    return 0;
  }
  if (a->type != TY_ATTR_INTS || a->n > (size_t)max) return TY_EINVAL;
  memcpy(out, a->ints, a->n * sizeof *out);
  *out_n = (int)a->n;
  return 0;
}

static int grow(void **arr, size_t *cap, size_t need, size_t elem) {
  if (need <= *cap) return 0;
  size_t nc = *cap ? *cap * 2 : 16;
  while (nc < need)
    nc *= 2;
  void *p = realloc(*arr, nc * elem);
  if (!p) return TY_ENOMEM;
  memset((char *)p + *cap * elem, 0, (nc - *cap) * elem);
  *arr = p;
  *cap = nc;
  return 0;
}

static int push_id(int **arr, size_t *n, int id) {
  int *p = realloc(*arr, (*n + 1) * sizeof *p);
  if (!p) return TY_ENOMEM;
  p[(*n)++] = id;
  *arr = p;
  return 0;
}

int ty_graph_add_value(ty_graph *g, const char *name, ty_dtype dt, const ty_shape *shape,
                       int *out_id) {
  int rc = grow((void **)&g->values, &g->cap_values, g->n_values + 1, sizeof *g->values);
  if (rc != 0) return rc;
  ty_graph_value *v = &g->values[g->n_values];
  memset(v, 0, sizeof *v);
  char auto_name[32];
  if (!name) {
    snprintf(auto_name, sizeof auto_name, "_v%zu", g->n_values);
    name = auto_name;
  }
  v->name = strdup(name);
  if (!v->name) return TY_ENOMEM;
  v->dtype = dt;
  v->shape = shape ? *shape : ty_shape_unknown();
  v->producer = -1;
  *out_id = (int)g->n_values++;
  return 0;
}

static bool valid_id(const ty_graph *g, int id) {
  return id >= 0 && (size_t)id < g->n_values;
}

int ty_graph_mark_input(ty_graph *g, int id) {
  if (!valid_id(g, id) || g->values[id].producer >= 0) return TY_EINVAL;
  if (g->values[id].is_input) return 0;
  g->values[id].is_input = true;
  return push_id(&g->inputs, &g->n_inputs, id);
}

int ty_graph_mark_output(ty_graph *g, int id) {
  if (!valid_id(g, id)) return TY_EINVAL;
  if (g->values[id].is_output) return 0;
  g->values[id].is_output = true;
  return push_id(&g->outputs, &g->n_outputs, id);
}

int ty_graph_set_initializer(ty_graph *g, int id, ty_tensor *t) {
  if (!valid_id(g, id) || g->values[id].producer >= 0 || g->values[id].is_input) {
    ty_tensor_destroy(t);
    return TY_EINVAL;
  }
  ty_graph_value *v = &g->values[id];
  if (!v->init && push_id(&g->inits, &g->n_inits, id) != 0) {
    ty_tensor_destroy(t);
    return TY_ENOMEM;
  }
  ty_tensor_destroy(v->init);
  v->init = t;
  v->dtype = t->dtype;
  v->shape = t->shape;
  return 0;
}

int ty_graph_drop_init_data(ty_graph *g, int id) {
  if (!valid_id(g, id) || !g->values[id].init) return TY_EINVAL;
  ty_graph_value *v = &g->values[id];
  if (v->init_dropped) return 0;
  ty_tensor *empty = NULL;
  ty_shape none = ty_shape_make(1, (int64_t[]){0});
  int rc = ty_tensor_create(v->init->dtype, &none, &empty);
  if (rc != 0) return rc;
  v->shape = v->init->shape;
  v->dtype = v->init->dtype;
  ty_tensor_destroy(v->init);
  v->init = empty;
  v->init_dropped = true;
  return 0;
}

static int *copy_ids(const int *ids, int n) {
  int *p = malloc((size_t)(n ? n : 1) * sizeof *p);
  if (p && n) memcpy(p, ids, (size_t)n * sizeof *p);
  return p;
}

/* Deep copy of attribute a into the zeroed *d. */
static int attr_copy(const ty_graph_attr *a, ty_graph_attr *d) {
  size_t slen = 0;
  for (size_t k = 0; a->s && k < (a->type == TY_ATTR_STRINGS ? a->n : 1); k++)
    slen += strlen(a->s + slen) + 1;
  *d = *a;
  d->name = strdup(a->name);
  d->s = a->s ? malloc(slen ? slen : 1) : NULL;
  d->ints = a->ints ? malloc(a->n * sizeof *a->ints + 1) : NULL;
  d->floats = a->floats ? malloc(a->n * sizeof *a->floats + 1) : NULL;
  d->t = NULL;
  int rc = d->name && (d->s || !a->s) && (d->ints || !a->ints) && (d->floats || !a->floats)
               ? 0
               : TY_ENOMEM;
  if (rc == 0 && a->s) memcpy(d->s, a->s, slen);
  if (rc == 0 && a->ints) memcpy(d->ints, a->ints, a->n * sizeof *a->ints);
  if (rc == 0 && a->floats) memcpy(d->floats, a->floats, a->n * sizeof *a->floats);
  if (rc == 0 && a->t) rc = ty_tensor_clone(a->t, &d->t);
  return rc;
}

static int node_copy(const ty_graph_node *n, ty_graph_node *d) {
  *d = (ty_graph_node){
      .op = n->op, .opset = n->opset, .n_inputs = n->n_inputs, .n_outputs = n->n_outputs};
  d->name = strdup(n->name);
  d->inputs = copy_ids(n->inputs, n->n_inputs);
  d->outputs = copy_ids(n->outputs, n->n_outputs);
  d->attrs = n->n_attrs ? calloc((size_t)n->n_attrs, sizeof *d->attrs) : NULL;
  int rc = d->name && d->inputs && d->outputs && (d->attrs || !n->n_attrs) ? 0 : TY_ENOMEM;
  for (int a = 0; rc == 0 && a < n->n_attrs; a++, d->n_attrs++)
    rc = attr_copy(&n->attrs[a], &d->attrs[a]);
  return rc;
}

/* The value ids an import of g's encoding gives (the export writes
 * initializers, inputs, then the nodes in topological order; the import
 * numbers values as it meets them): map[old] = new, -1 for a value no
 * encoding names. Returns how many are numbered. */
static size_t import_ids(const ty_graph *g, const size_t *order, int *map) {
  size_t n = 0;
  for (size_t i = 0; i < g->n_values; i++)
    map[i] = -1;
#define TY_NUMBER_(id)                                                                             \
  if ((id) != TY_NO_VALUE && map[(id)] < 0) map[(id)] = (int)n++
  for (size_t i = 0; i < g->n_inits; i++)
    TY_NUMBER_(g->inits[i]);
  for (size_t i = 0; i < g->n_inputs; i++)
    TY_NUMBER_(g->inputs[i]);
  for (size_t k = 0; k < g->n_nodes; k++)
    for (int o = 0; o < g->nodes[order[k]].n_outputs; o++)
      TY_NUMBER_(g->nodes[order[k]].outputs[o]);
  for (size_t i = 0; i < g->n_outputs; i++)
    TY_NUMBER_(g->outputs[i]);
#undef TY_NUMBER_
  return n;
}

static void remap(int *ids, size_t n, const int *map) {
  for (size_t i = 0; i < n; i++)
    if (ids[i] != TY_NO_VALUE) ids[i] = map[ids[i]];
}

/* Copies value v into the zeroed slot d; a node's output loses its
 * type, which shape inference gives again, as after an import. */
static int value_copy(const ty_graph_value *v, ty_graph_value *d) {
  *d = *v;
  d->init = NULL;
  d->producer = -1;
  if (v->producer >= 0 && !v->init) {
    d->dtype = TY_DTYPE_INVALID;
    d->shape = ty_shape_unknown();
  }
  d->name = strdup(v->name);
  int rc = d->name ? 0 : TY_ENOMEM;
  if (rc == 0 && v->init) rc = ty_tensor_clone(v->init, &d->init);
  return rc;
}

/* Each value's and node's owned data is copied into the zeroed slots of
 * c, counted as it goes (the for loops count a slot that failed half way
 * too), so that ty_graph_destroy frees a half-made copy. */
int ty__graph_copy(const ty_graph *g, ty_graph **out_graph) {
  ty_graph *c = calloc(1, sizeof *c);
  size_t *order = malloc((g->n_nodes + 1) * sizeof *order);
  int *map = malloc((g->n_values + 1) * sizeof *map), *old = NULL;
  int rc = c && order && map ? ty_graph_topo_order(g, order) : TY_ENOMEM;
  if (rc != 0) goto fail;
  size_t nv = import_ids(g, order, map);
  rc = TY_ENOMEM;
  if (!(old = malloc((nv + 1) * sizeof *old))) goto fail;
  for (size_t i = 0; i < g->n_values; i++)
    if (map[i] >= 0) old[map[i]] = (int)i;
  c->opset = g->opset;
  c->values = calloc(nv + 1, sizeof *c->values);
  c->nodes = calloc(g->n_nodes + 1, sizeof *c->nodes);
  c->cap_values = nv + 1;
  c->cap_nodes = g->n_nodes + 1;
  c->inputs = copy_ids(g->inputs, (int)g->n_inputs);
  c->outputs = copy_ids(g->outputs, (int)g->n_outputs);
  c->inits = copy_ids(g->inits, (int)g->n_inits);
  c->n_inputs = g->n_inputs;
  c->n_outputs = g->n_outputs;
  c->n_inits = g->n_inits;
  c->name = g->name ? strdup(g->name) : NULL;
  if (!c->values || !c->nodes || !c->inputs || !c->outputs || !c->inits || (g->name && !c->name))
    goto fail;
  remap(c->inputs, c->n_inputs, map);
  remap(c->outputs, c->n_outputs, map);
  remap(c->inits, c->n_inits, map);
  for (rc = 0; rc == 0 && c->n_values < nv; c->n_values++)
    rc = value_copy(&g->values[old[c->n_values]], &c->values[c->n_values]);
  for (; rc == 0 && c->n_nodes < g->n_nodes; c->n_nodes++) {
    ty_graph_node *d = &c->nodes[c->n_nodes];
    if ((rc = node_copy(&g->nodes[order[c->n_nodes]], d)) != 0) continue;
    remap(d->inputs, (size_t)d->n_inputs, map);
    remap(d->outputs, (size_t)d->n_outputs, map);
    for (int o = 0; o < d->n_outputs; o++)
      if (d->outputs[o] != TY_NO_VALUE) c->values[d->outputs[o]].producer = (int)c->n_nodes;
  }
  if (rc != 0) goto fail;
  free(order);
  free(map);
  free(old);
  *out_graph = c;
  return 0;
fail:
  free(order);
  free(map);
  free(old);
  ty_graph_destroy(c);
  return rc;
}

int ty_graph_add_node(ty_graph *g, ty_op op, const char *name, const int *inputs, int n_inputs,
                      const int *outputs, int n_outputs, int *out_index) {
  if ((int)op < 0 || op >= TY_OP_COUNT_ || n_inputs < 0 || n_outputs < 1) return TY_EINVAL;
  for (int i = 0; i < n_inputs; i++)
    if (inputs[i] != TY_NO_VALUE && !valid_id(g, inputs[i])) return TY_EINVAL;
  for (int i = 0; i < n_outputs; i++) {
    if (outputs[i] == TY_NO_VALUE) continue;
    if (!valid_id(g, outputs[i])) return TY_EINVAL;
    const ty_graph_value *v = &g->values[outputs[i]];
    if (v->producer >= 0 || v->is_input || v->init) return TY_EINVAL;
  }
  int rc = grow((void **)&g->nodes, &g->cap_nodes, g->n_nodes + 1, sizeof *g->nodes);
  if (rc != 0) return rc;
  ty_graph_node *n = &g->nodes[g->n_nodes];
  memset(n, 0, sizeof *n);
  char auto_name[64];
  if (!name || !*name) {
    snprintf(auto_name, sizeof auto_name, "%s_%zu", ty_op_name(op), g->n_nodes);
    name = auto_name;
  }
  n->op = op;
  n->opset = g->opset;
  n->name = strdup(name);
  n->inputs = copy_ids(inputs, n_inputs);
  n->outputs = copy_ids(outputs, n_outputs);
  if (!n->name || !n->inputs || !n->outputs) {
    free(n->name);
    free(n->inputs);
    free(n->outputs);
    return TY_ENOMEM;
  }
  n->n_inputs = n_inputs;
  n->n_outputs = n_outputs;
  for (int i = 0; i < n_outputs; i++)
    if (outputs[i] != TY_NO_VALUE) g->values[outputs[i]].producer = (int)g->n_nodes;
  if (out_index) *out_index = (int)g->n_nodes;
  g->n_nodes++;
  return 0;
}

/* Returns the attribute slot named `name` on node idx, replacing an old one. */
static ty_graph_attr *attr_slot(ty_graph *g, size_t idx, const char *name, ty_attr_type type) {
  if (idx >= g->n_nodes) return NULL;
  ty_graph_node *n = &g->nodes[idx];
  for (int i = 0; i < n->n_attrs; i++) {
    if (strcmp(n->attrs[i].name, name) == 0) {
      attr_free(&n->attrs[i]);
      memset(&n->attrs[i], 0, sizeof n->attrs[i]);
      n->attrs[i].name = strdup(name);
      n->attrs[i].type = type;
      return n->attrs[i].name ? &n->attrs[i] : NULL;
    }
  }
  ty_graph_attr *p = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof *p);
  if (!p) return NULL;
  n->attrs = p;
  ty_graph_attr *a = &p[n->n_attrs];
  memset(a, 0, sizeof *a);
  a->name = strdup(name);
  if (!a->name) return NULL;
  a->type = type;
  n->n_attrs++;
  return a;
}

int ty_graph_node_set_int(ty_graph *g, size_t node, const char *name, int64_t v) {
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_INT);
  if (!a) return TY_EINVAL;
  a->i = v;
  return 0;
}

int ty_graph_node_set_float(ty_graph *g, size_t node, const char *name, float v) {
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_FLOAT);
  if (!a) return TY_EINVAL;
  a->f = v;
  return 0;
}

int ty_graph_node_set_ints(ty_graph *g, size_t node, const char *name, const int64_t *v, size_t n) {
  size_t bytes;
  if (ty_mul_overflow(n ? n : 1, sizeof *v, &bytes))
    return TY_ETOOBIG; /* counts come from models */
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_INTS);
  if (!a) return TY_EINVAL;
  a->ints = malloc(bytes);
  if (!a->ints) return TY_ENOMEM;
  if (n) memcpy(a->ints, v, n * sizeof *v);
  a->n = n;
  return 0;
}

int ty_graph_node_set_floats(ty_graph *g, size_t node, const char *name, const float *v, size_t n) {
  size_t bytes;
  if (ty_mul_overflow(n ? n : 1, sizeof *v, &bytes)) return TY_ETOOBIG;
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_FLOATS);
  if (!a) return TY_EINVAL;
  a->floats = malloc(bytes);
  if (!a->floats) return TY_ENOMEM;
  if (n) memcpy(a->floats, v, n * sizeof *v);
  a->n = n;
  return 0;
}

int ty_graph_node_set_string(ty_graph *g, size_t node, const char *name, const char *v) {
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_STRING);
  if (!a) return TY_EINVAL;
  a->s = strdup(v);
  return a->s ? 0 : TY_ENOMEM;
}

int ty_graph_node_set_strings(ty_graph *g, size_t node, const char *name, const char *const *v,
                              const size_t *lens, size_t n) {
  size_t total = 1;
  for (size_t i = 0; i < n; i++) {
    if (memchr(v[i], 0, lens[i]) || __builtin_add_overflow(total, lens[i] + 1, &total))
      return TY_EINVAL;
  }
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_STRINGS);
  if (!a) return TY_EINVAL;
  a->s = malloc(total);
  if (!a->s) return TY_ENOMEM;
  char *p = a->s;
  for (size_t i = 0; i < n; i++) {
    memcpy(p, v[i], lens[i]);
    p += lens[i];
    *p++ = 0;
  }
  *p = 0;
  a->n = n;
  return 0;
}

int ty_graph_node_copy_strings(ty_graph *g, size_t node, const ty_graph_attr *a) {
  const char **v = calloc(a->n + 1, sizeof *v);
  size_t *lens = calloc(a->n + 1, sizeof *lens);
  int rc = v && lens ? 0 : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && i < a->n; i++) {
    v[i] = ty_graph_attr_string_at(a, i);
    lens[i] = strlen(v[i]);
  }
  if (rc == 0) rc = ty_graph_node_set_strings(g, node, a->name, v, lens, a->n);
  free(v);
  free(lens);
  return rc;
}

const char *ty_graph_attr_string_at(const ty_graph_attr *a, size_t i) {
  if (!a || a->type != TY_ATTR_STRINGS || i >= a->n) return NULL;
  const char *s = a->s;
  for (size_t k = 0; k < i; k++)
    s += strlen(s) + 1;
  return s;
}

int ty_graph_node_set_tensor(ty_graph *g, size_t node, const char *name, ty_tensor *t) {
  ty_graph_attr *a = attr_slot(g, node, name, TY_ATTR_TENSOR);
  if (!a) {
    ty_tensor_destroy(t);
    return TY_EINVAL;
  }
  a->t = t;
  return 0;
}

int ty__graph_node_to_constant(ty_graph *g, size_t k, ty_tensor *t) {
  ty_graph_node *n = &g->nodes[k];
  int *outs = malloc(sizeof *outs);
  if (!outs) {
    ty_tensor_destroy(t);
    return TY_ENOMEM;
  }
  outs[0] = n->outputs[0];
  for (int i = 1; i < n->n_outputs; i++)
    if (n->outputs[i] != TY_NO_VALUE) g->values[n->outputs[i]].producer = -1;
  for (int a = 0; a < n->n_attrs; a++)
    attr_free(&n->attrs[a]);
  free(n->attrs);
  free(n->inputs);
  free(n->outputs);
  n->attrs = NULL;
  n->n_attrs = 0;
  n->inputs = NULL;
  n->n_inputs = 0;
  n->outputs = outs;
  n->n_outputs = 1;
  n->op = TY_OP_CONSTANT;
  return ty_graph_node_set_tensor(g, k, "value", t);
}

int ty__graph_drop_nodes(ty_graph *g, const bool *drop) {
  size_t w = 0;
  for (size_t k = 0; k < g->n_nodes; k++) {
    ty_graph_node *n = &g->nodes[k];
    if (drop[k]) {
      for (int i = 0; i < n->n_outputs; i++)
        if (n->outputs[i] != TY_NO_VALUE) g->values[n->outputs[i]].producer = -1;
      node_free(n);
      continue;
    }
    g->nodes[w] = *n;
    for (int i = 0; i < n->n_outputs; i++)
      if (n->outputs[i] != TY_NO_VALUE) g->values[n->outputs[i]].producer = (int)w;
    w++;
  }
  g->n_nodes = w;
  return 0;
}

int ty__graph_sort(ty_graph *g) {
  size_t *order = malloc((g->n_nodes + 1) * sizeof *order);
  ty_graph_node *nodes = malloc((g->n_nodes + 1) * sizeof *nodes);
  int rc = order && nodes ? ty_graph_topo_order(g, order) : TY_ENOMEM;
  for (size_t w = 0; rc == 0 && w < g->n_nodes; w++) {
    nodes[w] = g->nodes[order[w]];
    for (int i = 0; i < nodes[w].n_outputs; i++)
      if (nodes[w].outputs[i] != TY_NO_VALUE) g->values[nodes[w].outputs[i]].producer = (int)w;
  }
  if (rc == 0) memcpy(g->nodes, nodes, g->n_nodes * sizeof *nodes);
  free(order);
  free(nodes);
  return rc;
}

/* Kahn's algorithm over value readiness, scanning nodes in original order
 * each round so an already sorted graph comes back unchanged. */
int ty_graph_topo_order(const ty_graph *g, size_t *out_order) {
  bool *ready = calloc(g->n_values + 1, sizeof *ready);
  bool *done = calloc(g->n_nodes + 1, sizeof *done);
  int rc = TY_ENOMEM;
  if (!ready || !done) goto fail;
  for (size_t i = 0; i < g->n_values; i++)
    ready[i] = g->values[i].is_input || g->values[i].init != NULL;
  size_t placed = 0;
  bool progress = true;
  while (placed < g->n_nodes && progress) {
    progress = false;
    for (size_t i = 0; i < g->n_nodes; i++) {
      const ty_graph_node *n = &g->nodes[i];
      bool ok = !done[i];
      for (int k = 0; ok && k < n->n_inputs; k++)
        ok = n->inputs[k] == TY_NO_VALUE || ready[n->inputs[k]];
      if (!ok) continue;
      done[i] = true;
      out_order[placed++] = i;
      progress = true;
      for (int k = 0; k < n->n_outputs; k++)
        if (n->outputs[k] != TY_NO_VALUE) ready[n->outputs[k]] = true;
    }
  }
  rc = placed == g->n_nodes ? 0 : TY_EINVAL;
fail:
  free(ready);
  free(done);
  return rc;
}

/* A node whose outputs are static when its inputs are (ty_graph_static_values). */
static bool static_node(const ty_graph *g, const ty_graph_node *n, const bool *out) {
  if (n->op == TY_OP_CONSTANT) return true;
  if (n->n_inputs == 0 || ty_op_is_random(n->op) || n->op == TY_OP_DROPOUT) return false;
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    if (v == TY_NO_VALUE) continue;
    const ty_graph_value *gv = &g->values[v];
    if (!out[v] && !(gv->init && !ty_dtype_is_float(gv->dtype))) return false;
  }
  return true;
}

/* An op cheap enough that every pipeline stage reading its output may
 * compute it again from the data feeds: comparisons, logic, casts, shape
 * arithmetic and reshapes (a padding mask's x == 0, Not, Unsqueeze,
 * Cast, Where). */
static bool cheap_op(ty_op op) {
  static const ty_op ops[] = {
      TY_OP_EQUAL,         TY_OP_LESS,    TY_OP_GREATER,   TY_OP_LESS_EQUAL,
      TY_OP_GREATER_EQUAL, TY_OP_NOT,     TY_OP_AND,       TY_OP_OR,
      TY_OP_XOR,           TY_OP_CAST,    TY_OP_CAST_LIKE, TY_OP_IDENTITY,
      TY_OP_UNSQUEEZE,     TY_OP_SQUEEZE, TY_OP_RESHAPE,   TY_OP_FLATTEN,
      TY_OP_EXPAND,        TY_OP_WHERE,   TY_OP_SHAPE,     TY_OP_SIZE,
      TY_OP_GATHER,        TY_OP_SLICE,   TY_OP_CONCAT,    TY_OP_ADD,
      TY_OP_SUB,           TY_OP_MUL,     TY_OP_NEG,       TY_OP_CONSTANT_OF_SHAPE};
  for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
    if (ops[i] == op) return true;
  return false;
}

/* A node whose outputs are recomputable when its inputs are (see
 * ty_graph_recomputable_values): a cheap op reading data feeds, values
 * already so, and non-float initializers (never a weight). */
static bool feed_node(const ty_graph *g, const ty_graph_node *n, const bool *out) {
  if (!cheap_op(n->op) || n->n_inputs == 0) return false;
  for (int k = 0; k < n->n_inputs; k++) {
    int v = n->inputs[k];
    if (v == TY_NO_VALUE) continue;
    const ty_graph_value *gv = &g->values[v];
    bool feed = gv->is_input && !gv->init && gv->producer < 0;
    if (!out[v] && !feed && !(gv->init && !ty_dtype_is_float(gv->dtype))) return false;
  }
  return true;
}

int ty_graph_recomputable_values(const ty_graph *g, bool *out) {
  size_t *order = malloc((g->n_nodes + 1) * sizeof *order);
  int rc = order ? ty_graph_static_values(g, out) : TY_ENOMEM;
  if (rc == 0) rc = ty_graph_topo_order(g, order);
  for (size_t k = 0; rc == 0 && k < g->n_nodes; k++) {
    const ty_graph_node *n = &g->nodes[order[k]];
    if (!feed_node(g, n, out)) continue;
    for (int o = 0; o < n->n_outputs; o++)
      if (n->outputs[o] != TY_NO_VALUE) out[n->outputs[o]] = true;
  }
  free(order);
  return rc;
}

int ty_graph_static_values(const ty_graph *g, bool *out) {
  size_t *order = malloc((g->n_nodes + 1) * sizeof *order);
  if (!order) return TY_ENOMEM;
  int rc = ty_graph_topo_order(g, order);
  memset(out, 0, g->n_values * sizeof *out);
  for (size_t k = 0; rc == 0 && k < g->n_nodes; k++) {
    const ty_graph_node *n = &g->nodes[order[k]];
    if (!static_node(g, n, out)) continue;
    for (int o = 0; o < n->n_outputs; o++)
      if (n->outputs[o] != TY_NO_VALUE) out[n->outputs[o]] = true;
  }
  free(order);
  return rc;
}
