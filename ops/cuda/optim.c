/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The optimizer on the device: ops/fusion's SGD and Adam/AdamW update
 * kernels (the CPU JIT's formulas, ops/optim's TY_OPTIM_*_RULE, as CUDA C)
 * compiled by NVRTC per variant on first use, and each parameter's state
 * (SGD's momentum buffer, Adam's two moments) in device buffers this
 * object owns. The state comes from the host optimizer (ty_cuda_optim_load)
 * and goes back to it (ty_cuda_optim_store) whenever the host needs it
 * (checkpoints, evaluation), so ops/optim stays the one place that owns
 * the state's meaning. The scalars are ops/optim's (ty_optim_*_scalars),
 * computed on the host per step.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"
#include "ops/optim/optim.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#define N_SGD 16 /* has_wd, has_mom, first, nesterov */
#define N_ADAM 4 /* adamw, has_wd */

typedef struct param_state {
  float *buf[2]; /* device; NULL where the rule has none */
  size_t n;
  int n_bufs;
} param_state;

struct ty_cuda_optim {
  ty_cuda_rtc *rtc;
  void *stream;
  ty_cuda_module *sgd[N_SGD], *adam[N_ADAM];
  param_state *ps;
  size_t np;
};

int ty_cuda_optim_create(ty_cuda_rtc *rtc, void *stream, size_t n_params, ty_cuda_optim **out) {
  ty_cuda_optim *o = calloc(1, sizeof *o);
  if (!o) return TY_ENOMEM;
  o->ps = calloc(n_params + 1, sizeof *o->ps);
  if (!o->ps) {
    free(o);
    return TY_ENOMEM;
  }
  o->rtc = rtc;
  o->stream = stream;
  o->np = n_params;
  *out = o;
  return 0;
}

static void free_state(param_state *s) {
  for (int b = 0; b < 2; b++)
    if (s->buf[b]) cudaFree(s->buf[b]);
  *s = (param_state){0};
}

void ty_cuda_optim_destroy(ty_cuda_optim *o) {
  if (!o) return;
  for (size_t p = 0; p < o->np; p++)
    free_state(&o->ps[p]);
  for (int i = 0; i < N_SGD; i++)
    ty_cuda_module_unload(o->sgd[i]);
  for (int i = 0; i < N_ADAM; i++)
    ty_cuda_module_unload(o->adam[i]);
  free(o->ps);
  free(o);
}

static int cuda_fail(char *err, size_t err_len, cudaError_t e, const char *what) {
  return ty_errf(err, err_len, TY_EIO, "optimizer state: %s: %s", what, cudaGetErrorString(e));
}

int ty_cuda_optim_load(ty_cuda_optim *o, size_t p, size_t n, int n_bufs, float *const *host,
                       char *err, size_t err_len) {
  if (p >= o->np || n_bufs < 0 || n_bufs > 2)
    return ty_errf(err, err_len, TY_EINVAL, "optimizer state: parameter %zu of %zu, %d buffers", p,
                   o->np, n_bufs);
  param_state *s = &o->ps[p];
  if (s->n != n || s->n_bufs != n_bufs) free_state(s);
  for (int b = 0; b < n_bufs; b++) {
    cudaError_t e = s->buf[b] ? cudaSuccess : cudaMalloc((void **)&s->buf[b], n ? n * 4 : 4);
    if (e == cudaSuccess && n)
      e = cudaMemcpyAsync(s->buf[b], host[b], n * 4, cudaMemcpyHostToDevice,
                          (cudaStream_t)o->stream);
    if (e != cudaSuccess) return cuda_fail(err, err_len, e, "upload");
  }
  s->n = n;
  s->n_bufs = n_bufs;
  return 0;
}

int ty_cuda_optim_store(ty_cuda_optim *o, size_t p, float *const *host, char *err, size_t err_len) {
  if (p >= o->np) return ty_errf(err, err_len, TY_EINVAL, "optimizer state: no parameter %zu", p);
  const param_state *s = &o->ps[p];
  for (int b = 0; b < s->n_bufs && s->n; b++) {
    cudaError_t e = cudaMemcpyAsync(host[b], s->buf[b], s->n * 4, cudaMemcpyDeviceToHost,
                                    (cudaStream_t)o->stream);
    if (e != cudaSuccess) return cuda_fail(err, err_len, e, "download");
  }
  cudaError_t e = cudaStreamSynchronize((cudaStream_t)o->stream);
  return e == cudaSuccess ? 0 : cuda_fail(err, err_len, e, "download");
}

bool ty_cuda_optim_loaded(const ty_cuda_optim *o, size_t p) {
  return p < o->np && (o->ps[p].n_bufs > 0 || o->ps[p].n > 0);
}

/* The variant's module, compiled and loaded on first use. */
static int module_of(ty_cuda_optim *o, ty_cuda_module **slot, const char *src, const char *what,
                     char *err, size_t err_len) {
  if (*slot) return 0;
  void *img = NULL;
  size_t len = 0;
  int rc = ty_cuda_rtc_compile(o->rtc, src, what, &img, &len, err, err_len);
  if (rc == 0) rc = ty_cuda_module_load(img, slot, err, err_len);
  free(img);
  return rc;
}

static unsigned grid_of(size_t n) {
  size_t g = (n + 255) / 256;
  return (unsigned)(g < 1 ? 1 : g > 65535 ? 65535 : g);
}

int ty_cuda_optim_sgd(ty_cuda_optim *o, size_t p, const ty_fused_sgd *h, float *param,
                      const float *grad, char *err, size_t err_len) {
  bool wd = h->weight_decay != 0.0f, mom = h->momentum != 0.0f;
  param_state *s = p < o->np ? &o->ps[p] : NULL;
  if (!s || (mom && (s->n_bufs < 1 || !s->buf[0])))
    return ty_errf(err, err_len, TY_ESTATE, "SGD on the device: parameter %zu has no state", p);
  int v = (int)wd | (int)mom << 1 | (int)h->first << 2 | (int)h->nesterov << 3;
  char *src = NULL;
  int rc = o->sgd[v] ? 0 : ty_fusion_cuda_sgd_src(wd, mom, h->first, h->nesterov, &src);
  if (rc == 0) rc = module_of(o, &o->sgd[v], src, "ty_sgd", err, err_len);
  free(src);
  if (rc != 0) return rc;
  float sc[4];
  ty_optim_sgd_scalars(h->lr, h->weight_decay, h->momentum, h->dampening, sc);
  int64_t n = (int64_t)s->n;
  float *buf = mom ? s->buf[0] : NULL;
  void *args[] = {&n, &param, (void *)&grad, &buf, &sc[0], &sc[1], &sc[2], &sc[3]};
  return ty_cuda_module_launch(o->sgd[v], "ty_sgd", grid_of(s->n), 256, 0, o->stream, args, err,
                               err_len);
}

int ty_cuda_optim_adam(ty_cuda_optim *o, size_t p, const ty_fused_adam *h, float *param,
                       const float *grad, char *err, size_t err_len) {
  param_state *s = p < o->np ? &o->ps[p] : NULL;
  if (!s || s->n_bufs < 2 || h->step == 0)
    return ty_errf(err, err_len, TY_ESTATE, "Adam on the device: parameter %zu has no state", p);
  bool has_wd = !h->adamw && h->weight_decay != 0.0f; /* as ty_jit_adam_step */
  int v = (int)h->adamw | (int)has_wd << 1;
  char *src = NULL;
  int rc = o->adam[v] ? 0 : ty_fusion_cuda_adam_src(h->adamw, has_wd, &src);
  if (rc == 0) rc = module_of(o, &o->adam[v], src, "ty_adam", err, err_len);
  free(src);
  if (rc != 0) return rc;
  float sc[8];
  ty_optim_adam_scalars(h->lr, h->weight_decay, h->beta1, h->beta2, h->eps, h->step, sc);
  int64_t n = (int64_t)s->n;
  void *args[] = {&n,     &param, (void *)&grad, &s->buf[0], &s->buf[1], &sc[0], &sc[1],
                  &sc[2], &sc[3], &sc[4],        &sc[5],     &sc[6],     &sc[7]};
  return ty_cuda_module_launch(o->adam[v], "ty_adam", grid_of(s->n), 256, 0, o->stream, args, err,
                               err_len);
}
