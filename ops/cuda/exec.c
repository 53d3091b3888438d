/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU executor (ops/cuda/exec.h): runs the plan's steps on one compute
 * stream. This file owns the per-value host/device state and the run loop;
 * the node launchers are in exec_nodes.c.
 *
 * Per value: a host tensor (borrowed when bound or an initializer, owned
 * when downloaded or computed by a CPU step) and a device block from the
 * caching allocator, each with a valid flag. Shapes always live on the
 * host. A value's device block goes back to the allocator after the last
 * step that reads it, unless it is kept (keep_values, graph outputs,
 * values nobody reads); the allocator reuses blocks per stream, so
 * returning one while kernels queued before still read it is safe.
 */
#include "ops/cuda/exec_internal.h"
#include "ops/ops_internal.h"

#include "lib/base/base.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int ty__cx_cuda_err(char *err, size_t err_len, int e, const char *what) {
  return ty_errf(err, err_len, TY_EIO, "%s: %s", what, cudaGetErrorString((cudaError_t)e));
}

/* ---- value state ------------------------------------------------------------ */
static void drop_dev(ty_cuda_exec *e, ty__cx_val *v) {
  if (v->dev) ty_cuda_alloc_put(e->alloc, v->dev);
  v->dev = NULL;
  v->dev_ok = false;
}

static void drop_host(ty__cx_val *v) {
  if (v->host_own) ty_tensor_destroy(v->host);
  v->host = NULL;
  v->host_own = false;
  v->host_ok = false;
}

static void drop_value(ty_cuda_exec *e, ty__cx_val *v) {
  drop_dev(e, v);
  drop_host(v);
  v->known = false;
}

static size_t value_bytes(const ty__cx_val *v) {
  return (size_t)ty_shape_numel(&v->shape) * ty_dtype_size(v->dt);
}

void *ty__cx_dev(ty_cuda_exec *e, int id, char *err, size_t err_len, int *rc) {
  ty__cx_val *v = &e->v[id];
  *rc = 0;
  if (v->dev_ok) return v->dev;
  if (!v->host_ok) {
    *rc = ty_errf(err, err_len, TY_EINTERNAL, "value \"%s\" is on neither side",
                  ty_graph_value_at(e->g, id)->name);
    return NULL;
  }
  size_t bytes = value_bytes(v);
  if (!v->dev && (*rc = ty_cuda_alloc_get(e->alloc, bytes ? bytes : 1, e->stream, &v->dev)) != 0) {
    *rc = ty_errf(err, err_len, *rc, "value \"%s\": no device memory for %zu bytes",
                  ty_graph_value_at(e->g, id)->name, bytes);
    return NULL;
  }
  int ce = bytes ? (int)cudaMemcpyAsync(v->dev, v->host->data, bytes, cudaMemcpyHostToDevice,
                                        (cudaStream_t)e->stream)
                 : 0;
  if (ce != 0) {
    *rc = ty__cx_cuda_err(err, err_len, ce, "upload");
    return NULL;
  }
  e->st.h2d_bytes += bytes;
  v->dev_ok = true;
  return v->dev;
}

int ty__cx_host(ty_cuda_exec *e, int id, char *err, size_t err_len) {
  ty__cx_val *v = &e->v[id];
  if (v->host_ok) return 0;
  if (!v->dev_ok)
    return ty_errf(err, err_len, TY_EINTERNAL, "value \"%s\" is on neither side",
                   ty_graph_value_at(e->g, id)->name);
  int rc = 0;
  if (!v->host) {
    if ((rc = ty_tensor_create(v->dt, &v->shape, &v->host)) != 0)
      return ty_errf(err, err_len, rc, "value \"%s\": no host memory",
                     ty_graph_value_at(e->g, id)->name);
    v->host_own = true;
  }
  size_t bytes = value_bytes(v);
  int ce = bytes ? (int)cudaMemcpyAsync(v->host->data, v->dev, bytes, cudaMemcpyDeviceToHost,
                                        (cudaStream_t)e->stream)
                 : 0;
  if (ce == 0) ce = (int)cudaStreamSynchronize((cudaStream_t)e->stream);
  if (ce != 0) return ty__cx_cuda_err(err, err_len, ce, "download");
  e->st.d2h_bytes += bytes;
  v->host_ok = true;
  return 0;
}

int ty__cx_out_dev(ty_cuda_exec *e, int id, ty_dtype dt, const ty_shape *s, void **out, char *err,
                   size_t err_len) {
  ty__cx_val *v = &e->v[id];
  drop_value(e, v);
  v->dt = dt;
  v->shape = *s;
  v->known = true;
  size_t bytes = value_bytes(v);
  int rc = ty_cuda_alloc_get(e->alloc, bytes ? bytes : 1, e->stream, &v->dev);
  if (rc != 0)
    return ty_errf(err, err_len, rc, "value \"%s\": no device memory for %zu bytes",
                   ty_graph_value_at(e->g, id)->name, bytes);
  v->dev_ok = true;
  *out = v->dev;
  return 0;
}

void ty__cx_out_host(ty_cuda_exec *e, int id, ty_tensor *t) {
  ty__cx_val *v = &e->v[id];
  drop_value(e, v);
  v->dt = t->dtype;
  v->shape = t->shape;
  v->known = true;
  v->host = t;
  v->host_own = true;
  v->host_ok = true;
}

void ty__cx_forget(ty_cuda_exec *e, int id) {
  drop_value(e, &e->v[id]);
}

/* ---- create / destroy ------------------------------------------------------ */
/* Per value: the last step reading it; kept values never die in a run. */
static int plan_lifetimes(ty_cuda_exec *e, const int *keep, size_t n_keep) {
  const ty_cuda_plan *p = e->plan;
  for (size_t i = 0; i < e->nv; i++)
    e->last_use[i] = -1;
  for (size_t k = 0; k < p->n_steps; k++) {
    const ty_cuda_step *s = &p->steps[k];
    if (s->kind == TY_CUDA_STEP_REGION) {
      const ty_fused_src *r = &p->regions[s->region];
      for (int i = 0; i < r->n_in; i++)
        e->last_use[r->in_ids[i]] = (long)k;
      continue;
    }
    const ty_graph_node *n = ty_graph_node_at(e->g, s->node);
    for (int i = 0; i < n->n_inputs; i++)
      if (n->inputs[i] != TY_NO_VALUE) e->last_use[n->inputs[i]] = (long)k;
  }
  for (size_t i = 0; i < e->nv; i++)
    e->keep[i] = e->last_use[i] < 0;
  for (size_t i = 0; i < ty_graph_n_outputs(e->g); i++)
    e->keep[ty_graph_output(e->g, i)] = true;
  for (size_t i = 0; i < n_keep; i++) {
    if (keep[i] < 0 || (size_t)keep[i] >= e->nv) return TY_EINVAL;
    e->keep[keep[i]] = true;
  }
  for (size_t i = 0; i < e->o.n_watch_values; i++) {
    int id = e->o.watch_values[i];
    if (id < 0 || (size_t)id >= e->nv) return TY_EINVAL;
    e->keep[id] = true;
    e->watched[id] = e->o.on_device_ready != NULL;
  }
  return 0;
}

static int load_regions(ty_cuda_exec *e, char *err, size_t err_len) {
  const ty_cuda_plan *p = e->plan;
  e->mods = calloc(p->n_regions + 1, sizeof *e->mods);
  if (!e->mods) return TY_ENOMEM;
  for (size_t r = 0; r < p->n_regions; r++) {
    void *img = NULL;
    size_t len = 0;
    int rc = ty_cuda_rtc_compile(e->rtc, p->regions[r].src, p->regions[r].name, &img, &len, err,
                                 err_len);
    if (rc == 0) rc = ty_cuda_module_load(img, &e->mods[r], err, err_len);
    free(img);
    if (rc != 0) return rc;
  }
  return 0;
}

static int open_device(ty_cuda_exec *e, char *err, size_t err_len) {
  int arch = 0, ce;
  if (ty_cuda_device_count() <= e->o.device || ty_cuda_device_arch(e->o.device, &arch) != 0)
    return ty_errf(err, err_len, TY_EUNSUPPORTED, "no CUDA device %d on this machine", e->o.device);
  if ((ce = (int)cudaSetDevice(e->o.device)) != 0)
    return ty__cx_cuda_err(err, err_len, ce, "cudaSetDevice");
  cudaStream_t s = NULL;
  if ((ce = (int)cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking)) != 0)
    return ty__cx_cuda_err(err, err_len, ce, "the compute stream");
  e->stream = s;
  ty_cuda_rtc_opts ro = {.arch = arch, .cache_dir = e->o.kernel_cache};
  int rc = ty_cuda_rtc_create(&ro, &e->rtc, err, err_len);
  if (rc == 0) rc = ty_cuda_alloc_create(NULL, &e->alloc);
  if (rc == 0) rc = ty_cuda_kernels_create(e->rtc, &e->kern, err, err_len);
  if (rc == 0) rc = ty_cuda_blas_create(e->stream, e->o.tf32, &e->blas, err, err_len);
#ifdef TY_HAVE_CUDNN
  if (rc == 0) rc = ty_cuda_dnn_create(e->stream, e->alloc, &e->dnn, err, err_len);
#endif
  if (rc == 0 && (rc = ty_cuda_alloc_get(e->alloc, sizeof(int64_t), e->stream, &e->bad)) != 0)
    rc = ty_errf(err, err_len, rc, "no device memory");
  return rc;
}

int ty_cuda_exec_create(const ty_graph *g, const ty_cuda_exec_opts *opts, ty_cuda_exec **out,
                        char *err, size_t err_len) {
  ty_cuda_exec *e = calloc(1, sizeof *e);
  if (!e) return TY_ENOMEM;
  e->g = g;
  if (opts) e->o = *opts;
  e->nv = ty_graph_n_values(g);
  e->v = calloc(e->nv + 1, sizeof *e->v);
  e->bound = calloc(e->nv + 1, sizeof *e->bound);
  e->keep = calloc(e->nv + 1, sizeof *e->keep);
  e->last_use = calloc(e->nv + 1, sizeof *e->last_use);
  e->watched = calloc(e->nv + 1, sizeof *e->watched);
  int rc = e->v && e->bound && e->keep && e->last_use && e->watched ? 0 : TY_ENOMEM;
  if (rc == 0)
    rc = ty_cuda_plan_create(g, e->o.keep_values, e->o.n_keep_values, &e->plan, err, err_len);
  if (rc == 0 && (rc = plan_lifetimes(e, e->o.keep_values, e->o.n_keep_values)) != 0)
    ty_errf(err, err_len, rc, "keep_values or watch_values: a value id out of range");
  e->o.keep_values = NULL; /* borrowed during create only */
  e->o.watch_values = NULL;
  if (rc == 0) rc = open_device(e, err, err_len);
  if (rc == 0) rc = load_regions(e, err, err_len);
  if (rc != 0) {
    ty_cuda_exec_destroy(e);
    return rc;
  }
  *out = e;
  return 0;
}

void ty_cuda_exec_destroy(ty_cuda_exec *e) {
  if (!e) return;
  if (e->stream) cudaStreamSynchronize((cudaStream_t)e->stream);
  for (size_t i = 0; e->v && i < e->nv; i++)
    drop_value(e, &e->v[i]);
  for (size_t r = 0; e->mods && e->plan && r < e->plan->n_regions; r++)
    ty_cuda_module_unload(e->mods[r]);
  free(e->mods);
  ty_cuda_blas_destroy(e->blas);
#ifdef TY_HAVE_CUDNN
  ty_cuda_dnn_destroy(e->dnn);
#endif
  ty_cuda_kernels_destroy(e->kern);
  ty_cuda_alloc_destroy(e->alloc); /* after every put: it frees live blocks too */
  ty_cuda_rtc_destroy(e->rtc);
  if (e->stream) cudaStreamDestroy((cudaStream_t)e->stream);
  ty_cuda_plan_destroy(e->plan);
  free(e->v);
  free(e->bound);
  free(e->keep);
  free(e->last_use);
  free(e->watched);
  free(e);
}

int ty_cuda_exec_bind_id(ty_cuda_exec *e, int id, const ty_tensor *t, char *err, size_t err_len) {
  int rc = ty_graph_check_bind(e->g, id, t, err, err_len);
  if (rc != 0) return rc;
  e->bound[id] = t;
  return 0;
}

void ty_cuda_exec_set_seed(ty_cuda_exec *e, uint64_t seed) {
  e->o.seed = seed;
  e->runs = 0;
}

void ty_cuda_exec_set_noise_seed(ty_cuda_exec *e, uint64_t noise_seed) {
  e->o.noise_seed = noise_seed;
  e->runs = 0;
}

/* ---- running ------------------------------------------------------------------ */
/* Every value back to its bound tensor or initializer on the host. */
static int begin_run(ty_cuda_exec *e, char *err, size_t err_len) {
  for (size_t i = 0; i < e->nv; i++) {
    const ty_graph_value *gv = ty_graph_value_at(e->g, (int)i);
    ty__cx_val *v = &e->v[i];
    if (v->resident && v->known) continue; /* its sides stay as they are */
    drop_value(e, v);
    const ty_tensor *t = e->bound[i] ? e->bound[i] : gv->init;
    if (gv->is_input && !e->bound[i])
      return ty_errf(err, err_len, TY_EINVAL, "input \"%s\": not bound", gv->name);
    if (!t) continue;
    v->host = (ty_tensor *)t;
    v->host_ok = v->known = true;
    v->dt = t->dtype;
    v->shape = t->shape;
  }
  return 0;
}

/* After step k: device blocks (and host copies) of values it read last. */
static void end_step(ty_cuda_exec *e, size_t k) {
  for (size_t i = 0; i < e->nv; i++)
    if (e->last_use[i] == (long)k && !e->keep[i] && ty_graph_value_at(e->g, (int)i)->producer >= 0)
      drop_value(e, &e->v[i]);
}

static int run_step(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len) {
  switch (s->kind) {
  case TY_CUDA_STEP_REGION:
    return ty__cx_region(e, s, err, err_len);
  case TY_CUDA_STEP_GPU:
    return ty__cx_gpu_node(e, s, err, err_len);
  case TY_CUDA_STEP_HOST:
    return ty__cx_cpu_node(e, s, true, err, err_len);
  case TY_CUDA_STEP_CPU:
  default:
    return ty__cx_cpu_node(e, s, false, err, err_len);
  }
}

/* Reports value id, if watched, with its device block. */
static int report_one(ty_cuda_exec *e, int id, char *err, size_t err_len) {
  if (id == TY_NO_VALUE || !e->watched[id] || !e->v[id].known) return 0;
  int rc = 0;
  void *dev = ty__cx_dev(e, id, err, err_len, &rc);
  if (rc == 0 && (rc = e->o.on_device_ready(id, dev, e->o.on_device_ready_user)) != 0)
    ty_errf(err, err_len, rc, "value \"%s\": the ready hook failed: %s",
            ty_graph_value_at(e->g, id)->name, ty_strerror(rc));
  return rc;
}

/* The watched values step s wrote (o.on_device_ready). */
static int report_ready(ty_cuda_exec *e, const ty_cuda_step *s, char *err, size_t err_len) {
  int rc = 0;
  if (s->kind == TY_CUDA_STEP_REGION) {
    const ty_fused_src *r = &e->plan->regions[s->region];
    for (int j = 0; rc == 0 && j < r->n_out; j++)
      rc = report_one(e, r->out_ids[j], err, err_len);
    return rc;
  }
  const ty_graph_node *n = ty_graph_node_at(e->g, s->node);
  for (int j = 0; rc == 0 && j < n->n_outputs; j++)
    rc = report_one(e, n->outputs[j], err, err_len);
  return rc;
}

int ty_cuda_exec_run(ty_cuda_exec *e, char *err, size_t err_len) {
  int rc = begin_run(e, err, err_len);
  e->noise = ty__noise_run(e->o.noise_seed, e->o.seed, e->runs++);
  for (size_t k = 0; rc == 0 && k < e->plan->n_steps; k++) {
    rc = run_step(e, &e->plan->steps[k], err, err_len);
    if (rc == 0 && e->o.on_device_ready) rc = report_ready(e, &e->plan->steps[k], err, err_len);
    if (rc == 0) end_step(e, k);
  }
  int ce = (int)cudaStreamSynchronize((cudaStream_t)e->stream);
  if (rc == 0 && ce != 0) rc = ty__cx_cuda_err(err, err_len, ce, "the step's kernels");
  ty_cuda_alloc_stats as;
  ty_cuda_alloc_get_stats(e->alloc, &as);
  e->st.dev_peak_bytes = as.peak_in_use;
  return rc;
}

int ty_cuda_exec_bind_resident(ty_cuda_exec *e, int id, ty_tensor *t, char *err, size_t err_len) {
  int rc = ty_cuda_exec_bind_id(e, id, t, err, err_len);
  if (rc != 0) return rc;
  const ty_graph_value *gv = ty_graph_value_at(e->g, id);
  if (gv->is_input)
    return ty_errf(err, err_len, TY_EINVAL, "\"%s\": a graph input cannot be resident", gv->name);
  drop_value(e, &e->v[id]);
  e->v[id].resident = true;
  return 0;
}

void *ty_cuda_exec_device_ptr(ty_cuda_exec *e, int id, bool write, char *err, size_t err_len) {
  int rc = 0;
  if (id < 0 || (size_t)id >= e->nv || !e->v[id].known) {
    ty_errf(err, err_len, TY_ENOTFOUND, "value %d: not computed or bound in the last run", id);
    return NULL;
  }
  void *p = ty__cx_dev(e, id, err, err_len, &rc);
  if (p && write) e->v[id].host_ok = false;
  return p;
}

int ty_cuda_exec_sync_host(ty_cuda_exec *e, int id, char *err, size_t err_len) {
  if (id < 0 || (size_t)id >= e->nv || !e->v[id].known)
    return ty_errf(err, err_len, TY_ENOTFOUND, "value %d: not computed or bound", id);
  return ty__cx_host(e, id, err, err_len);
}

void *ty_cuda_exec_stream(const ty_cuda_exec *e) {
  return e->stream;
}

ty_cuda_rtc *ty_cuda_exec_rtc(const ty_cuda_exec *e) {
  return e->rtc;
}

int ty_cuda_exec_scale(ty_cuda_exec *e, float *p, size_t n, float factor, char *err,
                       size_t err_len) {
  if (n == 0) return 0;
  /* reduce.cu with nothing reduced: out[i] = factor * in[i], in place. */
  ty_cuda_reduce r = {.n_keep = 1, .n_red = 0};
  r.keep_dims[0] = (int64_t)n;
  r.keep_strides[0] = 1;
  return ty_cuda_reduce_sum(e->kern, &r, factor, p, p, e->stream, err, err_len);
}

const ty_tensor *ty_cuda_exec_value(ty_cuda_exec *e, int id) {
  if (id < 0 || (size_t)id >= e->nv || !e->v[id].known) return NULL;
  char err[TY_ERR_LEN];
  if (ty__cx_host(e, id, err, sizeof err) != 0) return NULL;
  return e->v[id].host;
}

const ty_cuda_plan *ty_cuda_exec_get_plan(const ty_cuda_exec *e) {
  return e->plan;
}

void ty_cuda_exec_get_stats(const ty_cuda_exec *e, ty_cuda_exec_stats *out) {
  *out = e->st;
  out->steps = e->plan->n_steps;
  out->gpu_steps = out->cpu_steps = out->host_steps = 0;
  for (size_t k = 0; k < e->plan->n_steps; k++) {
    ty_cuda_step_kind kd = e->plan->steps[k].kind;
    out->gpu_steps += kd == TY_CUDA_STEP_REGION || kd == TY_CUDA_STEP_GPU;
    out->cpu_steps += kd == TY_CUDA_STEP_CPU;
    out->host_steps += kd == TY_CUDA_STEP_HOST;
  }
}
