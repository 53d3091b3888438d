/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The executor: topological order computed once at create; per run, shape
 * inference on concrete inputs, allocation, kernel call. Values are either
 * borrowed (bound inputs, initializers) or owned (node outputs); `owned`
 * tells which to free.
 */
#include "ops/exec.h"

#include "lib/base/base.h"
#include "ops/ops_internal.h"

#include <stdlib.h>
#include <string.h>

struct ty_exec {
  const ty_graph *g;
  ty_exec_opts opts;
  uint64_t rng;
  size_t *order;
  const ty_tensor **bound; /* per value: bound by the caller, else NULL */
  ty_tensor **vals;        /* per value: the tensor of the last run */
  bool *owned;
};

static const ty__kernel_fn kernels[TY_OP_COUNT_] = {
    [TY_OP_ADD] = ty__k_binary, [TY_OP_SUB] = ty__k_binary, [TY_OP_MUL] = ty__k_binary,
    [TY_OP_DIV] = ty__k_binary, [TY_OP_POW] = ty__k_binary, [TY_OP_RELU] = ty__k_unary,
    [TY_OP_LEAKY_RELU] = ty__k_unary, [TY_OP_SIGMOID] = ty__k_unary, [TY_OP_TANH] = ty__k_unary,
    [TY_OP_ERF] = ty__k_unary, [TY_OP_SQRT] = ty__k_unary, [TY_OP_EXP] = ty__k_unary,
    [TY_OP_LOG] = ty__k_unary, [TY_OP_NEG] = ty__k_unary, [TY_OP_IDENTITY] = ty__k_unary,
    [TY_OP_GEMM] = ty__k_gemm, [TY_OP_MATMUL] = ty__k_matmul, [TY_OP_SOFTMAX] = ty__k_softmax,
    [TY_OP_LOG_SOFTMAX] = ty__k_softmax, [TY_OP_CONV] = ty__k_conv, [TY_OP_MAX_POOL] = ty__k_pool,
    [TY_OP_AVERAGE_POOL] = ty__k_pool, [TY_OP_GLOBAL_AVERAGE_POOL] = ty__k_global_avg_pool,
    [TY_OP_BATCH_NORM] = ty__k_batch_norm, [TY_OP_LAYER_NORM] = ty__k_layer_norm,
    [TY_OP_DROPOUT] = ty__k_dropout, [TY_OP_FLATTEN] = ty__k_copy, [TY_OP_RESHAPE] = ty__k_copy,
    [TY_OP_TRANSPOSE] = ty__k_transpose, [TY_OP_CONCAT] = ty__k_concat, [TY_OP_GATHER] = ty__k_gather,
    [TY_OP_SQUEEZE] = ty__k_copy, [TY_OP_UNSQUEEZE] = ty__k_copy, [TY_OP_REDUCE_MEAN] = ty__k_reduce,
    [TY_OP_REDUCE_SUM] = ty__k_reduce, [TY_OP_CONSTANT] = ty__k_constant,
    [TY_OP_SOFTMAX_CE_LOSS] = ty__k_sce_loss, [TY_OP_GRAD] = ty__k_grad,
};

ty__kernel_fn ty__kernel_for(ty_op op) { return (int)op >= 0 && op < TY_OP_COUNT_ ? kernels[op] : NULL; }

int ty_exec_create(const ty_graph *g, const ty_exec_opts *opts, ty_exec **out_exec) {
  ty_exec *e = calloc(1, sizeof *e);
  if (!e) return TY_ENOMEM;
  size_t nv = ty_graph_n_values(g) + 1, nn = ty_graph_n_nodes(g) + 1;
  e->g = g;
  if (opts) e->opts = *opts;
  e->rng = e->opts.seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
  e->order = calloc(nn, sizeof *e->order);
  e->bound = calloc(nv, sizeof *e->bound);
  e->vals = calloc(nv, sizeof *e->vals);
  e->owned = calloc(nv, sizeof *e->owned);
  int rc = TY_ENOMEM;
  if (!e->order || !e->bound || !e->vals || !e->owned) goto fail;
  if ((rc = ty_graph_topo_order(g, e->order)) != 0) goto fail;
  *out_exec = e;
  return 0;
fail:
  ty_exec_destroy(e);
  return rc;
}

static void release_values(ty_exec *e) {
  size_t nv = ty_graph_n_values(e->g);
  for (size_t i = 0; i < nv; i++) {
    if (e->owned[i]) ty_tensor_destroy(e->vals[i]);
    e->vals[i] = NULL;
    e->owned[i] = false;
  }
}

void ty_exec_destroy(ty_exec *e) {
  if (!e) return;
  if (e->vals && e->owned) release_values(e);
  free(e->order);
  free(e->bound);
  free(e->vals);
  free(e->owned);
  free(e);
}

int ty_exec_bind_id(ty_exec *e, int id, const ty_tensor *t, char *err, size_t err_len) {
  const ty_value *v = ty_graph_value(e->g, id);
  if (!v) return ty__err(err, err_len, TY_ENOTFOUND, "value %d: no such value", id);
  if (!v->is_input && !v->init)
    return ty__err(err, err_len, TY_EINVAL, "\"%s\": not a graph input or initializer", v->name);
  bool ok = t->dtype == v->dtype && (v->shape.rank < 0 || v->shape.rank == t->shape.rank);
  for (int d = 0; ok && v->shape.rank >= 0 && d < v->shape.rank; d++)
    ok = v->shape.dims[d] < 0 || v->shape.dims[d] == t->shape.dims[d];
  if (!ok) {
    char want[128], got[128];
    ty_shape_format(&v->shape, want, sizeof want);
    ty_shape_format(&t->shape, got, sizeof got);
    return ty__err(err, err_len, TY_EINVAL, "input \"%s\": got %s %s, expected %s %s", v->name,
                   ty_dtype_name(t->dtype), got, ty_dtype_name(v->dtype), want);
  }
  e->bound[id] = t;
  return 0;
}

int ty_exec_bind(ty_exec *e, const char *name, const ty_tensor *t, char *err, size_t err_len) {
  int id = ty_graph_find_value(e->g, name);
  if (id == TY_NO_VALUE) return ty__err(err, err_len, TY_ENOTFOUND, "\"%s\": no such input", name);
  return ty_exec_bind_id(e, id, t, err, err_len);
}

/* Infers, allocates and runs one node. */
static int run_node(ty_exec *e, const ty_node *n, char *err, size_t err_len) {
  int ni = n->n_inputs, no = n->n_outputs, rc;
  const ty_tensor *in[64] = {NULL}; /* kernels read absent optional inputs as NULL */
  ty_tensor *out[16] = {NULL};
  ty_dtype dts[80];
  ty_shape shs[80];
  if (ni > 64 || no > 16) return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  for (int i = 0; i < ni; i++) {
    in[i] = n->inputs[i] == TY_NO_VALUE ? NULL : e->vals[n->inputs[i]];
    dts[i] = in[i] ? in[i]->dtype : TY_DTYPE_INVALID;
    shs[i] = in[i] ? in[i]->shape : ty_shape_unknown();
  }
  ty__infer ic = {.node = n, .n_in = ni, .in_dt = dts, .in_shape = shs, .in_val = in, .n_out = no,
                  .out_dt = dts + ni, .out_shape = shs + ni, .err = err, .err_len = err_len};
  if ((rc = ty__infer_node(&ic)) != 0) return rc;
  for (int i = 0; i < no; i++) {
    int id = n->outputs[i];
    if (id == TY_NO_VALUE) continue;
    if ((rc = ty_tensor_create(dts[ni + i], &shs[ni + i], &out[i])) != 0)
      return ty__node_err(err, err_len, n, rc, "cannot allocate output %d", i);
    e->vals[id] = out[i];
    e->owned[id] = true;
  }
  ty__kctx ctx = {.training = e->opts.training, .rng = e->rng};
  rc = kernels[n->op](n, in, out, &ctx);
  e->rng = ctx.rng;
  if (rc != 0) return ty__node_err(err, err_len, n, rc, "kernel failed: %s (an index or label out of range?)",
                                   ty_strerror(rc));
  return 0;
}

int ty_exec_run(ty_exec *e, char *err, size_t err_len) {
  const ty_graph *g = e->g;
  release_values(e);
  size_t nv = ty_graph_n_values(g);
  for (size_t i = 0; i < nv; i++) {
    const ty_value *v = ty_graph_value(g, (int)i);
    e->vals[i] = (ty_tensor *)(e->bound[i] ? e->bound[i] : v->init);
    if (v->is_input && !e->bound[i])
      return ty__err(err, err_len, TY_EINVAL, "input \"%s\": not bound", v->name);
  }
  for (size_t k = 0; k < ty_graph_n_nodes(g); k++) {
    int rc = run_node(e, ty_graph_node(g, e->order[k]), err, err_len);
    if (rc != 0) return rc;
  }
  return 0;
}

const ty_tensor *ty_exec_value(const ty_exec *e, int id) {
  if (id < 0 || (size_t)id >= ty_graph_n_values(e->g)) return NULL;
  return e->vals[id];
}

const ty_tensor *ty_exec_output(const ty_exec *e, const char *name) {
  return ty_exec_value(e, ty_graph_find_value(e->g, name));
}
