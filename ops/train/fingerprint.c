/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fingerprint of the model a run was started from, which its
 * checkpoints keep (checkpoint.c) so that a resume from another model is
 * refused instead of mixing the two: a resume copies the trained
 * parameters and BatchNormalization statistics out of the checkpoint, but
 * the graph and every other initializer come from the model given to the
 * run. So the fingerprint is a CRC-32 of the graph's structure (opset,
 * nodes with their ops, inputs, outputs and attributes, the graph's inputs
 * and outputs, every initializer's name, type and dims) and of the values
 * of the initializers the checkpoint does not hold. It is taken of
 * t->model, the model as loaded, before a plan or a pipeline rewrites its
 * copy and before any weight is dropped, so every rank of any plan and
 * rank count computes the same one.
 */
#include "ops/train/train_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

typedef struct fp {
  uLong crc;
} fp;

static void add_bytes(fp *f, const void *data, size_t n) {
  f->crc = crc32_z(f->crc, data, n);
}

static void add_u64(fp *f, uint64_t v) {
  uint8_t b[8];
  for (int i = 0; i < 8; i++)
    b[i] = (uint8_t)(v >> (8 * i));
  add_bytes(f, b, 8);
}

/* A string with its terminator, so that "ab","c" and "a","bc" differ. */
static void add_str(fp *f, const char *s) {
  add_bytes(f, s ? s : "", s ? strlen(s) + 1 : 1);
}

static void add_float(fp *f, float x) {
  uint32_t bits;
  memcpy(&bits, &x, sizeof bits);
  add_u64(f, bits);
}

static void add_shape(fp *f, ty_dtype dt, const ty_shape *s) {
  add_u64(f, (uint64_t)dt);
  add_u64(f, (uint64_t)(int64_t)s->rank);
  for (int d = 0; d < s->rank && d < TY_MAX_RANK; d++)
    add_u64(f, (uint64_t)s->dims[d]);
}

static void add_value_name(fp *f, const ty_graph *g, int id) {
  add_str(f, id == TY_NO_VALUE ? "" : ty_graph_value_at(g, id)->name);
}

static void add_attr(fp *f, const ty_graph_attr *a) {
  add_str(f, a->name);
  add_u64(f, (uint64_t)a->type);
  add_u64(f, (uint64_t)a->i);
  add_float(f, a->f);
  add_u64(f, (uint64_t)a->n);
  if (a->type == TY_ATTR_STRING) add_str(f, a->s);
  for (size_t k = 0; a->type == TY_ATTR_STRINGS && k < a->n; k++)
    add_str(f, ty_graph_attr_string_at(a, k));
  for (size_t k = 0; a->type == TY_ATTR_INTS && k < a->n; k++)
    add_u64(f, (uint64_t)a->ints[k]);
  for (size_t k = 0; a->type == TY_ATTR_FLOATS && k < a->n; k++)
    add_float(f, a->floats[k]);
  if (a->type == TY_ATTR_TENSOR && a->t) {
    add_shape(f, a->t->dtype, &a->t->shape);
    add_bytes(f, a->t->data, a->t->nbytes);
  }
}

static void add_node(fp *f, const ty_graph *g, const ty_graph_node *n) {
  add_str(f, ty_op_name(n->op));
  add_u64(f, (uint64_t)n->opset);
  add_u64(f, (uint64_t)n->n_inputs);
  for (int i = 0; i < n->n_inputs; i++)
    add_value_name(f, g, n->inputs[i]);
  add_u64(f, (uint64_t)n->n_outputs);
  for (int i = 0; i < n->n_outputs; i++)
    add_value_name(f, g, n->outputs[i]);
  add_u64(f, (uint64_t)n->n_attrs);
  for (int i = 0; i < n->n_attrs; i++)
    add_attr(f, &n->attrs[i]);
}

/* Marks in held (per value of the model) the initializers a checkpoint
 * holds: the trained parameters, and every BatchNormalization's running
 * statistics (whether this rank's plan keeps them or not, so that every
 * plan marks the same). */
static void mark_held(const ty_train *t, bool *held) {
  const ty_graph *m = t->model;
  for (size_t k = 0; k < t->np; k++) {
    int id = ty_graph_find_value(m, ty_graph_value_at(t->g, t->param_ids[k])->name);
    if (id != TY_NO_VALUE) held[id] = true;
  }
  for (size_t i = 0; i < ty_graph_n_nodes(m); i++) {
    const ty_graph_node *n = ty_graph_node_at(m, i);
    for (int k = 3; n->op == TY_OP_BATCH_NORM && k < 5 && k < n->n_inputs; k++)
      if (n->inputs[k] != TY_NO_VALUE) held[n->inputs[k]] = true;
  }
}

static void add_initializers(fp *f, const ty_graph *m, const bool *held) {
  size_t ni = ty_graph_n_initializers(m);
  add_u64(f, (uint64_t)ni);
  for (size_t i = 0; i < ni; i++) {
    int id = ty_graph_initializer(m, i);
    const ty_graph_value *v = ty_graph_value_at(m, id);
    add_str(f, v->name);
    add_shape(f, v->init->dtype, &v->init->shape);
    if (!held[id] && !v->init_dropped) add_bytes(f, v->init->data, v->init->nbytes);
  }
}

int ty__train_fingerprint(ty_train *t) {
  const ty_graph *m = t->model;
  bool *held = calloc(ty_graph_n_values(m) + 1, sizeof *held);
  if (!held) return TY_ENOMEM;
  mark_held(t, held);
  fp f = {crc32(0L, Z_NULL, 0)};
  add_u64(&f, (uint64_t)ty_graph_opset(m));
  add_u64(&f, (uint64_t)ty_graph_n_nodes(m));
  for (size_t i = 0; i < ty_graph_n_nodes(m); i++)
    add_node(&f, m, ty_graph_node_at(m, i));
  add_u64(&f, (uint64_t)ty_graph_n_inputs(m));
  for (size_t i = 0; i < ty_graph_n_inputs(m); i++) {
    const ty_graph_value *v = ty_graph_value_at(m, ty_graph_input(m, i));
    add_str(&f, v->name);
    add_shape(&f, v->dtype, &v->shape);
  }
  add_u64(&f, (uint64_t)ty_graph_n_outputs(m));
  for (size_t i = 0; i < ty_graph_n_outputs(m); i++)
    add_value_name(&f, m, ty_graph_output(m, i));
  add_initializers(&f, m, held);
  free(held);
  t->model_fp = (uint32_t)f.crc;
  return 0;
}
