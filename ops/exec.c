/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The executor: topological order computed once at create; per run, shape
 * inference on concrete inputs, allocation, kernel call. Values are either
 * borrowed (bound inputs, initializers) or owned (node outputs); `owned`
 * tells which to free.
 */
#include "ops/exec.h"

#include "lib/base/base.h"
#include "ops/fusion/fusion_internal.h"
#include "ops/memplan/memplan_internal.h"
#include "ops/ops_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ty_exec {
  const ty_graph *g;
  ty_exec_opts opts;
  uint64_t runs;  /* runs started: the random draws' run number (ty__noise_run) */
  uint64_t noise; /* this run's key for the random ops and Dropout */
  size_t *order;
  const ty_tensor **bound; /* per value: bound by the caller, else NULL */
  ty_tensor **vals;        /* per value: the tensor of the last run */
  bool *owned;
  bool *watched;    /* per value: report it through opts.on_value_ready */
  ty__sched *sched; /* steps: nodes and fused regions (ops/fusion) */
  ty__mpool *pool;  /* planned buffers; NULL with no_memplan (ops/memplan) */
  ty_jit *jit;      /* NULL with no_fusion */
  bool own_jit;
};

/* Generated from TY_OP_LIST: every op has exactly the kernel named there. */
static const ty__kernel_fn kernels[TY_OP_COUNT_] = {
#define TY_OP_KERNEL_(e, s, k, r) [TY_OP_##e] = ty__k_##k,
    TY_OP_LIST(TY_OP_KERNEL_)
#undef TY_OP_KERNEL_
};

ty__kernel_fn ty__kernel_for(ty_op op) {
  return (int)op >= 0 && op < TY_OP_COUNT_ ? kernels[op] : NULL;
}

bool ty__kernel_overwrites(const ty_graph_node *n) {
  if (ty_op_is_random(n->op)) return true;
  switch (n->op) {
  case TY_OP_CONV:
  case TY_OP_GEMM:
  case TY_OP_MATMUL:
  case TY_OP_MAX_POOL:
  case TY_OP_AVERAGE_POOL:
  case TY_OP_TRANSPOSE:
  case TY_OP_CONCAT:
  case TY_OP_GATHER:
  case TY_OP_SLICE:
  case TY_OP_SPLIT:
  case TY_OP_EXPAND:
  case TY_OP_WHERE:
  case TY_OP_SOFTMAX:
  case TY_OP_LOG_SOFTMAX:
  case TY_OP_LAYER_NORM:
  case TY_OP_BATCH_NORM:
  case TY_OP_FLATTEN:
  case TY_OP_RESHAPE:
  case TY_OP_SQUEEZE:
  case TY_OP_UNSQUEEZE:
    return true;
  case TY_OP_GRAD:
    return ty__grad_overwrites(n);
  default:
    return false;
  }
}

/* The schedule (fusion), the buffer pool (memory planning) and the JIT. */
/* The values to keep: keep_values plus watch_values (*out owned, may be NULL). */
static int keep_list(ty_exec *e, int **out, size_t *out_n) {
  const ty_exec_opts *o = &e->opts;
  size_t n = o->n_keep_values + o->n_watch_values, nv = ty_graph_n_values(e->g);
  *out = calloc(n + 1, sizeof **out);
  if (!*out) return TY_ENOMEM;
  if (o->n_keep_values) memcpy(*out, o->keep_values, o->n_keep_values * sizeof **out);
  for (size_t i = 0; i < o->n_watch_values; i++) {
    int id = o->watch_values[i];
    if (id < 0 || (size_t)id >= nv) return TY_EINVAL;
    (*out)[o->n_keep_values + i] = id;
    e->watched[id] = o->on_value_ready != NULL;
  }
  *out_n = n;
  return 0;
}

static int plan_create(ty_exec *e) {
  const ty_exec_opts *o = &e->opts;
  int *keep = NULL;
  size_t n_keep = 0;
  int rc = keep_list(e, &keep, &n_keep);
  if (rc == 0) rc = ty__sched_create(e->g, e->order, !o->no_fusion, keep, n_keep, &e->sched);
  free(keep);
  e->opts.keep_values = NULL; /* borrowed during create only */
  e->opts.watch_values = NULL;
  if (rc == 0 && !o->no_memplan) rc = ty__mpool_create(e->g, e->sched, false, &e->pool);
  if (rc != 0 || o->no_fusion) return rc;
  if (o->jit) {
    e->jit = o->jit;
    return 0;
  }
  e->own_jit = true;
  return ty_jit_create(&(ty_jit_opts){.no_jit = o->no_jit, .cache_dir = o->kernel_cache}, &e->jit);
}

int ty_exec_create(const ty_graph *g, const ty_exec_opts *opts, ty_exec **out_exec) {
  ty_exec *e = calloc(1, sizeof *e);
  if (!e) return TY_ENOMEM;
  ty__blas_on_caller();
  size_t nv = ty_graph_n_values(g) + 1, nn = ty_graph_n_nodes(g) + 1;
  e->g = g;
  if (opts) e->opts = *opts;
  e->order = calloc(nn, sizeof *e->order);
  e->bound = calloc(nv, sizeof *e->bound);
  e->vals = calloc(nv, sizeof *e->vals);
  e->owned = calloc(nv, sizeof *e->owned);
  e->watched = calloc(nv, sizeof *e->watched);
  int rc = TY_ENOMEM;
  if (!e->order || !e->bound || !e->vals || !e->owned || !e->watched) goto fail;
  if ((rc = ty_graph_topo_order(g, e->order)) != 0) goto fail;
  if ((rc = plan_create(e)) != 0) goto fail;
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
  ty__mpool_destroy(e->pool);
  ty__sched_destroy(e->sched);
  if (e->own_jit) ty_jit_destroy(e->jit);
  free(e->order);
  free(e->bound);
  free(e->vals);
  free(e->owned);
  free(e->watched);
  free(e);
}

int ty_exec_bind_id(ty_exec *e, int id, const ty_tensor *t, char *err, size_t err_len) {
  int rc = ty_graph_check_bind(e->g, id, t, err, err_len);
  if (rc != 0) return rc;
  e->bound[id] = t;
  return 0;
}

int ty_exec_bind(ty_exec *e, const char *name, const ty_tensor *t, char *err, size_t err_len) {
  int id = ty_graph_find_value(e->g, name);
  if (id == TY_NO_VALUE) return ty_errf(err, err_len, TY_ENOTFOUND, "\"%s\": no such input", name);
  return ty_exec_bind_id(e, id, t, err, err_len);
}

/* An output of step k: from the pool when planning, else owned. */
static int alloc_out(ty_exec *e, size_t k, int id, ty_dtype dt, const ty_shape *s,
                     ty_tensor **out) {
  if (e->pool) return ty__mpool_alloc(e->pool, k, id, dt, s, out);
  int rc = ty_tensor_create(dt, s, out);
  if (rc == 0) e->owned[id] = true;
  return rc;
}

/* Runs fused region k: its loop shape is the broadcast of its inputs. */
static int run_group(ty_exec *e, size_t k, ty__fgroup *grp, char *err, size_t err_len) {
  const ty_graph_node *first = ty_graph_node_at(e->g, grp->nodes[0]);
  const ty_tensor *ins[TY__FUSE_MAX_IO];
  ty_tensor *outs[TY__FUSE_MAX_IO];
  ty_shape loop = ty_shape_make(0, NULL);
  for (int i = 0; i < grp->prog.n_in; i++) {
    ins[i] = e->vals[grp->in_ids[i]];
    const char *vn = ty_graph_value_at(e->g, grp->in_ids[i])->name;
    if (!ins[i] || ins[i]->dtype != TY_DTYPE_F32)
      return ty__node_err(err, err_len, first, TY_EINVAL,
                          "fused region: input \"%s\" missing or not float", vn);
    if (ty_shape_broadcast(&loop, &ins[i]->shape, &loop) != 0)
      return ty__node_err(err, err_len, first, TY_EINVAL,
                          "fused region: input \"%s\" does not broadcast", vn);
  }
  for (int j = 0; j < grp->prog.n_out; j++) {
    int rc = alloc_out(e, k, grp->out_ids[j], TY_DTYPE_F32, &loop, &outs[j]);
    if (rc != 0)
      return ty__node_err(err, err_len, first, rc, "fused region: cannot allocate output %d", j);
    e->vals[grp->out_ids[j]] = outs[j];
  }
  int rc = ty__fgroup_run(grp, e->jit, e->opts.workers, ins, outs);
  return rc ? ty__node_err(err, err_len, first, rc, "fused region failed: %s", ty_strerror(rc)) : 0;
}

/* Infers, allocates and runs one node (step k). */
static int run_node(ty_exec *e, size_t k, const ty_graph_node *n, char *err, size_t err_len) {
  int ni = n->n_inputs, no = n->n_outputs, rc;
  const ty_tensor *in[64] = {NULL}; /* kernels read absent optional inputs as NULL */
  ty_tensor *out[16] = {NULL};
  ty_dtype dts[80];
  ty_shape shs[80];
  if (ni > 64 || no > 16)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  for (int i = 0; i < ni; i++) {
    in[i] = n->inputs[i] == TY_NO_VALUE ? NULL : e->vals[n->inputs[i]];
    dts[i] = in[i] ? in[i]->dtype : TY_DTYPE_INVALID;
    shs[i] = in[i] ? in[i]->shape : ty_shape_unknown();
  }
  ty__infer ic = {.node = n,
                  .n_in = ni,
                  .in_dt = dts,
                  .in_shape = shs,
                  .in_val = in,
                  .n_out = no,
                  .out_dt = dts + ni,
                  .out_shape = shs + ni,
                  .err = err,
                  .err_len = err_len};
  if ((rc = ty__infer_node(&ic)) != 0) return rc;
  for (int i = 0; i < no; i++) {
    int id = n->outputs[i];
    if (id == TY_NO_VALUE) continue;
    if ((rc = alloc_out(e, k, id, dts[ni + i], &shs[ni + i], &out[i])) != 0)
      return ty__node_err(err, err_len, n, rc, "cannot allocate output %d", i);
    e->vals[id] = out[i];
  }
  char why[TY_ERR_LEN / 2] = "";
  ty__kctx ctx = {.training = e->opts.training,
                  .why = why,
                  .why_len = sizeof why,
                  .noise = e->noise,
                  .extern_op = e->opts.extern_op,
                  .extern_user = e->opts.extern_user,
                  .workers = e->opts.workers};
  rc = kernels[n->op](n, in, out, &ctx);
  if (rc != 0 && n->op == TY_OP_EXTERN) {
    const char *why =
        ctx.extern_op && e->opts.extern_error ? e->opts.extern_error(e->opts.extern_user) : NULL;
    return ty__node_err(err, err_len, n, rc, "%s%s%s",
                        ctx.extern_op ? "the extern op failed" : "no extern hook given",
                        why && why[0] ? ": " : "", why ? why : "");
  }
  if (rc != 0 && why[0]) return ty__node_err(err, err_len, n, rc, "%s", why);
  if (rc != 0)
    return ty__node_err(err, err_len, n, rc, "kernel failed: %s (an index or label out of range?)",
                        ty_strerror(rc));
  return 0;
}

int ty__kctx_why(ty__kctx *ctx, int rc, const char *fmt, ...) {
  if (!ctx || !ctx->why || !ctx->why_len) return rc;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(ctx->why, ctx->why_len, fmt, ap);
  va_end(ap);
  return rc;
}

int ty__k_extern(const ty_graph_node *n, const ty_tensor *const *in, ty_tensor *const *out,
                 ty__kctx *ctx) {
  if (!ctx->extern_op || !out[0]) return TY_ESTATE; /* an executor without the hook, or folding */
  return ctx->extern_op(ty_graph_node_attr_int(n, "id", -1),
                        ty_graph_node_attr_int(n, "backward", 0) != 0, in[0], out[0],
                        ctx->extern_user);
}

int ty__eval_node(const ty_graph_node *n, const ty_tensor *const *in, int64_t max_numel,
                  ty_tensor **out, char *err, size_t err_len) {
  int ni = n->n_inputs, no = n->n_outputs, rc;
  const ty_tensor *ins[64] = {NULL}; /* kernels read absent optional inputs and outputs as NULL */
  ty_tensor *outs[16] = {NULL};
  ty_dtype dts[80];
  ty_shape shs[80];
  if (ni > 64 || no > 16)
    return ty__node_err(err, err_len, n, TY_EUNSUPPORTED, "too many inputs or outputs");
  for (int i = 0; i < ni; i++) {
    ins[i] = in[i];
    dts[i] = in[i] ? in[i]->dtype : TY_DTYPE_INVALID;
    shs[i] = in[i] ? in[i]->shape : ty_shape_unknown();
  }
  ty__infer ic = {.node = n,
                  .n_in = ni,
                  .in_dt = dts,
                  .in_shape = shs,
                  .in_val = ins,
                  .n_out = no,
                  .out_dt = dts + ni,
                  .out_shape = shs + ni,
                  .err = err,
                  .err_len = err_len};
  if ((rc = ty__infer_node(&ic)) != 0) return rc;
  for (int i = 0; i < no; i++) /* decided before allocating: a model's shapes are untrusted */
    if (n->outputs[i] != TY_NO_VALUE &&
        (ty_shape_numel(&shs[ni + i]) < 0 || ty_shape_numel(&shs[ni + i]) > max_numel))
      return 1;
  for (int i = 0; rc == 0 && i < no; i++)
    if (n->outputs[i] != TY_NO_VALUE &&
        (rc = ty_tensor_create(dts[ni + i], &shs[ni + i], &outs[i])) != 0)
      rc = ty__node_err(err, err_len, n, rc, "cannot allocate output %d: %s", i, ty_strerror(rc));
  ty__kctx ctx = {.training = false};
  if (rc == 0 && (rc = kernels[n->op](n, ins, outs, &ctx)) != 0)
    rc = ty__node_err(err, err_len, n, rc, "kernel failed: %s", ty_strerror(rc));
  for (int i = 0; i < no; i++) {
    if (rc != 0) ty_tensor_destroy(outs[i]);
    out[i] = rc == 0 ? outs[i] : NULL;
  }
  return rc;
}

/* Reports the watched values step st wrote (opts.on_value_ready). */
static int report_ready(ty_exec *e, const ty__step *st, char *err, size_t err_len) {
  for (int i = 0; i < st->n_writes; i++) {
    int id = st->writes[i];
    if (id < 0 || !e->watched[id] || !e->vals[id]) continue;
    int rc = e->opts.on_value_ready(id, e->vals[id], e->opts.on_value_ready_user);
    if (rc != 0)
      return ty_errf(err, err_len, rc, "value \"%s\": the ready hook failed: %s",
                     ty_graph_value_at(e->g, id)->name, ty_strerror(rc));
  }
  return 0;
}

void ty_exec_reseed(ty_exec *e, uint64_t seed, uint64_t noise_seed) {
  e->opts.seed = seed;
  e->opts.noise_seed = noise_seed;
  e->runs = 0;
}

int ty_exec_run(ty_exec *e, char *err, size_t err_len) {
  const ty_graph *g = e->g;
  release_values(e);
  e->noise = ty__noise_run(e->opts.noise_seed, e->opts.seed, e->runs++);
  size_t nv = ty_graph_n_values(g);
  for (size_t i = 0; i < nv; i++) {
    const ty_graph_value *v = ty_graph_value_at(g, (int)i);
    e->vals[i] = (ty_tensor *)(e->bound[i] ? e->bound[i] : v->init);
    if (v->is_input && !e->bound[i])
      return ty_errf(err, err_len, TY_EINVAL, "input \"%s\": not bound", v->name);
  }
  if (e->pool) ty__mpool_begin(e->pool);
  for (size_t k = 0; k < e->sched->n_steps; k++) {
    ty__step *st = &e->sched->steps[k];
    int rc = st->group ? run_group(e, k, st->group, err, err_len)
                       : run_node(e, k, ty_graph_node_at(g, st->node), err, err_len);
    if (rc == 0) rc = report_ready(e, st, err, err_len);
    if (rc != 0) return rc;
    if (e->pool) ty__mpool_end_step(e->pool, k);
  }
  for (size_t i = 0; e->pool && i < nv;
       i++) /* planned buffers of dead values hold other data now */
    if (!e->sched->keep[i] && ty_graph_value_at(g, (int)i)->producer >= 0) e->vals[i] = NULL;
  return 0;
}

void ty_exec_get_stats(const ty_exec *e, ty_exec_stats *out) {
  *out = (ty_exec_stats){.n_steps = e->sched->n_steps,
                         .fused_regions = e->sched->n_groups,
                         .fused_nodes = e->sched->n_fused_nodes};
  if (e->jit) {
    ty_jit_stats js;
    ty_jit_get_stats(e->jit, &js);
    out->jit_compiles = js.compiles;
    out->jit_failures = js.compile_failures;
    out->jit_disk_loads = js.disk_loads;
    out->interp_runs = js.interp_runs;
  }
  if (e->pool) {
    ty__mpool_stats ps;
    ty__mpool_get_stats(e->pool, &ps);
    out->pool_bytes = ps.bytes;
    out->unplanned_bytes = ps.naive_bytes;
    out->inplace = ps.n_inplace;
    out->views = ps.n_views;
  }
}

const ty_tensor *ty_exec_value(const ty_exec *e, int id) {
  if (id < 0 || (size_t)id >= ty_graph_n_values(e->g)) return NULL;
  return e->vals[id];
}

const ty_tensor *ty_exec_output(const ty_exec *e, const char *name) {
  return ty_exec_value(e, ty_graph_find_value(e->g, name));
}
