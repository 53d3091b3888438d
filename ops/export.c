/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ONNX export: graph + (trained) initializers back to a ModelProto, so a
 * checkpoint is a model any ONNX runtime can load. Every protobuf-c object
 * built here is allocated from one arena and released together after
 * packing; the graph itself is only read.
 */
#include "ops/ops_internal.h"

#include "lib/base/base.h"
#include "lib/base/version.h"
#include "proto/onnx.pb-c.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct arena {
  void **ptrs;
  size_t n, cap;
  bool oom;
} arena;

static void *arena_alloc(arena *a, size_t size) {
  if (a->oom) return NULL;
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 64;
    void **p = realloc(a->ptrs, nc * sizeof *p);
    if (!p) {
      a->oom = true;
      return NULL;
    }
    a->ptrs = p;
    a->cap = nc;
  }
  void *m = calloc(1, size ? size : 1);
  if (!m) {
    a->oom = true;
    return NULL;
  }
  a->ptrs[a->n++] = m;
  return m;
}

static void arena_free(arena *a) {
  for (size_t i = 0; i < a->n; i++)
    free(a->ptrs[i]);
  free(a->ptrs);
}

static void *new_obj(arena *a, size_t size, const void *init) {
  void *p = arena_alloc(a, size);
  if (p) memcpy(p, init, size);
  return p;
}

/* Allocates a protobuf-c message initialised with its _INIT value. */
#define NEW(a, T, init) ((T *)new_obj((a), sizeof(T), &(T)init))

static Onnx__TensorProto *tensor_proto(arena *a, const char *name, const ty_tensor *t) {
  Onnx__TensorProto *tp = NEW(a, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT);
  if (!tp) return NULL;
  tp->name = (char *)name;
  tp->has_data_type = 1;
  tp->data_type = (int32_t)t->dtype;
  tp->n_dims = (size_t)t->shape.rank;
  tp->dims = (int64_t *)t->shape.dims;
  tp->has_raw_data = 1;
  tp->raw_data.len = t->nbytes;
  tp->raw_data.data = t->data;
  return tp;
}

static Onnx__ValueInfoProto *value_info(arena *a, const ty_graph_value *v) {
  Onnx__ValueInfoProto *vi = NEW(a, Onnx__ValueInfoProto, ONNX__VALUE_INFO_PROTO__INIT);
  Onnx__TypeProto *tp = NEW(a, Onnx__TypeProto, ONNX__TYPE_PROTO__INIT);
  Onnx__TypeProto__Tensor *tt = NEW(a, Onnx__TypeProto__Tensor, ONNX__TYPE_PROTO__TENSOR__INIT);
  if (!vi || !tp || !tt) return NULL;
  vi->name = v->name;
  vi->type = tp;
  tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
  tp->tensor_type = tt;
  tt->has_elem_type = 1;
  tt->elem_type = (int32_t)v->dtype;
  if (v->shape.rank < 0) return vi;
  Onnx__TensorShapeProto *sp = NEW(a, Onnx__TensorShapeProto, ONNX__TENSOR_SHAPE_PROTO__INIT);
  Onnx__TensorShapeProto__Dimension **dims = arena_alloc(a, (size_t)v->shape.rank * sizeof *dims);
  if (!sp || !dims) return NULL;
  tt->shape = sp;
  sp->n_dim = (size_t)v->shape.rank;
  sp->dim = dims;
  for (int d = 0; d < v->shape.rank; d++) {
    Onnx__TensorShapeProto__Dimension *dim =
        NEW(a, Onnx__TensorShapeProto__Dimension, ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT);
    if (!dim) return NULL;
    dims[d] = dim;
    if (v->shape.dims[d] >= 0) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
      dim->dim_value = v->shape.dims[d];
    } else if (v->shape.dims[d] == TY_DIM_BATCH) {
      dim->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
      dim->dim_param = (char *)"N";
    }
  }
  return vi;
}

static Onnx__AttributeProto *attr_proto(arena *a, const ty_graph_attr *at) {
  Onnx__AttributeProto *ap = NEW(a, Onnx__AttributeProto, ONNX__ATTRIBUTE_PROTO__INIT);
  if (!ap) return NULL;
  ap->name = at->name;
  ap->has_type = 1;
  ap->type = (Onnx__AttributeProto__AttributeType)at->type;
  switch (at->type) {
  case TY_ATTR_FLOAT:
    ap->has_f = 1;
    ap->f = at->f;
    break;
  case TY_ATTR_INT:
    ap->has_i = 1;
    ap->i = at->i;
    break;
  case TY_ATTR_STRING:
    ap->has_s = 1;
    ap->s.data = (uint8_t *)at->s;
    ap->s.len = strlen(at->s);
    break;
  case TY_ATTR_TENSOR:
    ap->t = tensor_proto(a, NULL, at->t);
    break;
  case TY_ATTR_STRINGS:
    ap->n_strings = at->n;
    ap->strings = arena_alloc(a, (at->n + 1) * sizeof *ap->strings);
    if (!ap->strings) return NULL;
    for (size_t i = 0; i < at->n; i++) {
      const char *s = ty_graph_attr_string_at(at, i);
      ap->strings[i].data = (uint8_t *)s;
      ap->strings[i].len = strlen(s);
    }
    break;
  case TY_ATTR_FLOATS:
    ap->n_floats = at->n;
    ap->floats = at->floats;
    break;
  case TY_ATTR_INTS:
    ap->n_ints = at->n;
    ap->ints = at->ints;
    break;
  }
  return ap;
}

static char *value_name(const ty_graph *g, int id) {
  return id == TY_NO_VALUE ? (char *)"" : g->values[id].name;
}

static Onnx__NodeProto *node_proto(arena *a, const ty_graph *g, const ty_graph_node *n) {
  Onnx__NodeProto *np = NEW(a, Onnx__NodeProto, ONNX__NODE_PROTO__INIT);
  char **in = arena_alloc(a, (size_t)n->n_inputs * sizeof *in);
  char **out = arena_alloc(a, (size_t)n->n_outputs * sizeof *out);
  Onnx__AttributeProto **attrs = arena_alloc(a, (size_t)n->n_attrs * sizeof *attrs);
  if (!np || !in || !out || !attrs) return NULL;
  np->name = n->name;
  np->op_type = (char *)ty_op_name(n->op);
  np->n_input = (size_t)n->n_inputs;
  np->input = in;
  np->n_output = (size_t)n->n_outputs;
  np->output = out;
  np->n_attribute = (size_t)n->n_attrs;
  np->attribute = attrs;
  for (int i = 0; i < n->n_inputs; i++)
    in[i] = value_name(g, n->inputs[i]);
  for (int i = 0; i < n->n_outputs; i++)
    out[i] = value_name(g, n->outputs[i]);
  for (int i = 0; i < n->n_attrs; i++)
    if (!(attrs[i] = attr_proto(a, &n->attrs[i]))) return NULL;
  return np;
}

/* Initializer proto of value v whose bytes a fill supplies later: its
 * size, no data (packing it whole would read NULL). */
static Onnx__TensorProto *deferred_proto(arena *a, const ty_graph_value *v) {
  size_t nbytes = 0;
  if (ty_shape_nbytes(&v->shape, v->dtype, &nbytes) != 0) return NULL;
  Onnx__TensorProto *tp = NEW(a, Onnx__TensorProto, ONNX__TENSOR_PROTO__INIT);
  if (!tp) return NULL;
  tp->name = v->name;
  tp->has_data_type = 1;
  tp->data_type = (int32_t)v->dtype;
  tp->n_dims = (size_t)v->shape.rank;
  tp->dims = (int64_t *)v->shape.dims;
  tp->has_raw_data = 1;
  tp->raw_data.len = nbytes;
  return tp;
}

/* The initializers, overrides in place of the graph's data; fill_of[i]
 * (when not NULL) is the override initializer i's bytes are filled from,
 * or -1 where its tensor holds them. */
static int initializer_protos(arena *a, const ty_graph *g, const ty_init_override *ov, size_t n_ov,
                              long *fill_of, Onnx__GraphProto *gp, char *err, size_t err_len) {
  gp->n_initializer = g->n_inits;
  gp->initializer = arena_alloc(a, g->n_inits * sizeof *gp->initializer);
  if (!gp->initializer) return TY_ENOMEM;
  for (size_t i = 0; i < n_ov; i++) {
    int id = ty_graph_find_value(g, ov[i].name);
    if (id == TY_NO_VALUE || !g->values[id].init)
      return ty_errf(err, err_len, TY_EINVAL, "override \"%s\": no such initializer", ov[i].name);
    const ty_graph_value *v = &g->values[id];
    const ty_tensor *o = ov[i].tensor;
    if (!o && !fill_of)
      return ty_errf(err, err_len, TY_EINVAL,
                     "override \"%s\": no tensor (only a streamed export fills one)", ov[i].name);
    if (o && (o->dtype != v->dtype || !ty_shape_equal(&o->shape, &v->shape)))
      return ty_errf(err, err_len, TY_EINVAL,
                     "override \"%s\": dtype or shape differs from the initializer", ov[i].name);
  }
  for (size_t i = 0; i < g->n_inits; i++) {
    const ty_graph_value *v = &g->values[g->inits[i]];
    const ty_tensor *t = v->init;
    long k = -1;
    for (size_t j = 0; j < n_ov; j++)
      if (strcmp(ov[j].name, v->name) == 0) k = (long)j;
    if (k < 0 && v->init_dropped)
      return ty_errf(err, err_len, TY_EINVAL,
                     "initializer \"%s\": its data was dropped and no override gives it", v->name);
    if (k >= 0) t = ov[k].tensor;
    if (fill_of) fill_of[i] = t ? -1 : k;
    if (!(gp->initializer[i] = t ? tensor_proto(a, v->name, t) : deferred_proto(a, v)))
      return TY_ENOMEM;
  }
  return 0;
}

static int graph_proto(arena *a, const ty_graph *g, const ty_init_override *ov, size_t n_ov,
                       long *fill_of, Onnx__GraphProto *gp, char *err, size_t err_len) {
  gp->name = g->name ? g->name : (char *)"trainyard";
  gp->n_node = g->n_nodes;
  gp->node = arena_alloc(a, g->n_nodes * sizeof *gp->node);
  gp->n_input = g->n_inputs;
  gp->input = arena_alloc(a, g->n_inputs * sizeof *gp->input);
  gp->n_output = g->n_outputs;
  gp->output = arena_alloc(a, g->n_outputs * sizeof *gp->output);
  if (!gp->node || !gp->input || !gp->output) return TY_ENOMEM;
  size_t *order = arena_alloc(a, (g->n_nodes + 1) * sizeof *order);
  if (!order) return TY_ENOMEM;
  if (ty_graph_topo_order(g, order) != 0)
    return ty_errf(err, err_len, TY_EINVAL, "graph: is not a DAG");
  for (size_t i = 0; i < g->n_nodes; i++)
    if (!(gp->node[i] = node_proto(a, g, &g->nodes[order[i]]))) return TY_ENOMEM;
  for (size_t i = 0; i < g->n_inputs; i++)
    if (!(gp->input[i] = value_info(a, &g->values[g->inputs[i]]))) return TY_ENOMEM;
  for (size_t i = 0; i < g->n_outputs; i++)
    if (!(gp->output[i] = value_info(a, &g->values[g->outputs[i]]))) return TY_ENOMEM;
  return initializer_protos(a, g, ov, n_ov, fill_of, gp, err, err_len);
}

/* A ModelProto and what it points into, built from a graph: ir_version 8,
 * the graph's opset; the arena owns every allocation (model_msg_free). */
typedef struct model_msg {
  arena a;
  Onnx__ModelProto mp;
  Onnx__GraphProto gp;
  Onnx__OperatorSetIdProto opset;
  Onnx__OperatorSetIdProto *opsets[1];
} model_msg;

/* fill_of as graph_proto's (NULL: every override must carry its tensor). */
static int model_msg_build(model_msg *m, const ty_graph *g, const ty_init_override *ov, size_t n_ov,
                           long *fill_of, char *err, size_t err_len) {
  *m = (model_msg){.mp = ONNX__MODEL_PROTO__INIT,
                   .gp = ONNX__GRAPH_PROTO__INIT,
                   .opset = ONNX__OPERATOR_SET_ID_PROTO__INIT};
  m->opset.domain = (char *)"";
  m->opset.has_version = 1;
  m->opset.version = g->opset;
  m->opsets[0] = &m->opset;
  m->mp.has_ir_version = 1;
  m->mp.ir_version = 8;
  m->mp.producer_name = (char *)"trainyard";
  m->mp.producer_version = (char *)ty_version;
  m->mp.n_opset_import = 1;
  m->mp.opset_import = m->opsets;
  m->mp.graph = &m->gp;
  int rc = graph_proto(&m->a, g, ov, n_ov, fill_of, &m->gp, err, err_len);
  return rc == 0 && m->a.oom ? TY_ENOMEM : rc;
}

static void model_msg_free(model_msg *m) {
  arena_free(&m->a);
}

int ty_graph_to_onnx(const ty_graph *g, const ty_init_override *overrides, size_t n_overrides,
                     char *err, size_t err_len, uint8_t **out_data, size_t *out_len) {
  model_msg m;
  int rc = model_msg_build(&m, g, overrides, n_overrides, NULL, err, err_len);
  if (rc == 0) {
    size_t len = onnx__model_proto__get_packed_size(&m.mp);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf)
      rc = TY_ENOMEM;
    else {
      onnx__model_proto__pack(&m.mp, buf);
      *out_data = buf;
      *out_len = len;
    }
  }
  if (rc == TY_ENOMEM) ty_errf(err, err_len, rc, "export: out of memory");
  model_msg_free(&m);
  return rc;
}

/* ---- streamed export ----------------------------------------------------------
 * The same bytes as ty_graph_to_onnx, written in pieces. protobuf-c packs
 * a message's fields in field-number order, so the ModelProto is its
 * fields before graph (1-3), the graph (7) and opset_import (8); the
 * GraphProto is node (1) and name (2), initializer (5), input (11) and
 * output (12); a TensorProto ends with raw_data (9). Each piece but the
 * initializers' data is packed by protobuf-c from a copy of the message
 * with the other fields left out, and the lengths of the graph and of each
 * initializer come from get_packed_size with their data's length set (it
 * never reads the data). */

typedef struct sink {
  ty_onnx_emit emit;
  void *user;
  size_t filled; /* bytes a fill has emitted for the current initializer */
} sink;

/* A one-byte tag (every field here is below 16) and a varint value. */
static int emit_varint(sink *s, uint8_t tag, uint64_t v) {
  uint8_t b[11] = {tag};
  size_t n = 1;
  for (; v >= 0x80; v >>= 7)
    b[n++] = (uint8_t)(v | 0x80);
  b[n++] = (uint8_t)v;
  return s->emit(b, n, s->user);
}

/* Packs message m (through its descriptor) and emits the bytes. */
static int emit_packed(sink *s, const ProtobufCMessage *m) {
  size_t n = protobuf_c_message_get_packed_size(m);
  uint8_t *b = malloc(n ? n : 1);
  if (!b) return TY_ENOMEM;
  protobuf_c_message_pack(m, b);
  int rc = n ? s->emit(b, n, s->user) : 0;
  free(b);
  return rc;
}

static int count_fill(const void *data, size_t len, void *user) {
  sink *s = user;
  s->filled += len;
  return len ? s->emit(data, len, s->user) : 0;
}

/* Initializer tp (field 5 of the graph), its data from its tensor or fill. */
static int emit_initializer(sink *s, const Onnx__TensorProto *tp, long k, ty_onnx_fill fill,
                            void *fill_user, char *err, size_t err_len) {
  Onnx__TensorProto head = *tp;
  head.has_raw_data = 0;
  int rc = emit_varint(s, 5u << 3 | 2u, onnx__tensor_proto__get_packed_size(tp));
  if (rc == 0) rc = emit_packed(s, &head.base);
  if (rc == 0) rc = emit_varint(s, 9u << 3 | 2u, tp->raw_data.len);
  if (rc != 0 || k < 0) return rc ? rc : s->emit(tp->raw_data.data, tp->raw_data.len, s->user);
  s->filled = 0;
  if ((rc = fill((size_t)k, count_fill, s, fill_user)) != 0) return rc;
  if (s->filled != tp->raw_data.len)
    return ty_errf(err, err_len, TY_EINVAL, "initializer \"%s\": its fill gave %zu bytes, not %zu",
                   tp->name, s->filled, tp->raw_data.len);
  return 0;
}

static int emit_model(sink *s, Onnx__ModelProto *mp, const long *fill_of, ty_onnx_fill fill,
                      void *fill_user, char *err, size_t err_len) {
  Onnx__GraphProto *gp = mp->graph;
  Onnx__ModelProto head = *mp, tail = ONNX__MODEL_PROTO__INIT;
  Onnx__GraphProto nodes = *gp, ends = ONNX__GRAPH_PROTO__INIT;
  head.graph = NULL, head.n_opset_import = 0;
  tail.n_opset_import = mp->n_opset_import, tail.opset_import = mp->opset_import;
  nodes.n_initializer = nodes.n_input = nodes.n_output = 0;
  ends.n_input = gp->n_input, ends.input = gp->input;
  ends.n_output = gp->n_output, ends.output = gp->output;
  int rc = emit_packed(s, &head.base);
  if (rc == 0) rc = emit_varint(s, 7u << 3 | 2u, onnx__graph_proto__get_packed_size(gp));
  if (rc == 0) rc = emit_packed(s, &nodes.base);
  for (size_t i = 0; rc == 0 && i < gp->n_initializer; i++)
    rc = emit_initializer(s, gp->initializer[i], fill_of[i], fill, fill_user, err, err_len);
  if (rc == 0) rc = emit_packed(s, &ends.base);
  return rc == 0 ? emit_packed(s, &tail.base) : rc;
}

int ty_graph_write_onnx(const ty_graph *g, const ty_init_override *overrides, size_t n_overrides,
                        ty_onnx_fill fill, void *fill_user, ty_onnx_emit emit, void *emit_user,
                        char *err, size_t err_len) {
  model_msg m = {0};
  long *fill_of = calloc(g->n_inits + 1, sizeof *fill_of);
  int rc =
      fill_of ? model_msg_build(&m, g, overrides, n_overrides, fill_of, err, err_len) : TY_ENOMEM;
  for (size_t i = 0; rc == 0 && !fill && i < g->n_inits; i++)
    if (fill_of[i] >= 0)
      rc = ty_errf(err, err_len, TY_EINVAL, "override \"%s\": no tensor and no fill",
                   overrides[fill_of[i]].name);
  sink s = {emit, emit_user, 0};
  if (rc == 0) rc = emit_model(&s, &m.mp, fill_of, fill, fill_user, err, err_len);
  if (rc == TY_ENOMEM) ty_errf(err, err_len, rc, "export: out of memory");
  free(fill_of);
  model_msg_free(&m);
  return rc;
}

static int write_fd(const void *data, size_t n, void *user) {
  int fd = *(const int *)user;
  for (const uint8_t *p = data; n > 0;) {
    ssize_t w = write(fd, p, n);
    if (w < 0) return TY_EIO;
    p += w;
    n -= (size_t)w;
  }
  return 0;
}

/* Streamed to a temporary file, fsync'ed and renamed: the whole encoding
 * is never in memory, and the path is complete or absent. */
int ty_graph_save_onnx(const ty_graph *g, const ty_init_override *overrides, size_t n_overrides,
                       const char *path, char *err, size_t err_len) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return ty_errf(err, err_len, TY_EIO, "%s: cannot create", tmp);
  int rc = ty_graph_write_onnx(g, overrides, n_overrides, NULL, NULL, write_fd, &fd, err, err_len);
  if (rc == 0 && fsync(fd) != 0) rc = TY_EIO;
  if (close(fd) != 0 && rc == 0) rc = TY_EIO;
  if (rc == 0 && rename(tmp, path) != 0) rc = TY_EIO;
  if (rc != 0) unlink(tmp);
  if (rc == TY_EIO) ty_errf(err, err_len, rc, "%s: cannot write the model", path);
  return rc;
}
