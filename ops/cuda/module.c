/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Loading NVRTC images with the driver API and launching their kernels.
 *
 * The driver (libcuda.so.1) is never linked: its entry points come from
 * cudart's cudaGetDriverEntryPointByVersion, so binaries start on hosts
 * without a driver and only these calls fail there. Modules load into the
 * device's primary context, the one cudart uses, so device pointers and
 * streams from cudart work with the kernels unchanged.
 *
 * Fused-region launches pass shapes and parameters by value (see
 * ops/fusion/cuda_gen.c): a launch allocates nothing on the device.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"
#include "ops/fusion/fusion.h"

#include <cuda.h>
#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

typedef CUresult (*load_fn)(CUmodule *, const void *);
typedef CUresult (*unload_fn)(CUmodule);
typedef CUresult (*getfn_fn)(CUfunction *, CUmodule, const char *);
typedef CUresult (*launch_fn)(CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned,
                              unsigned, unsigned, CUstream, void **, void **);
typedef CUresult (*errstr_fn)(CUresult, const char **);

struct ty_cuda_module {
  CUmodule mod;
  load_fn load;
  unload_fn unload;
  getfn_fn get_function;
  launch_fn launch;
  errstr_fn error_string;
  int sm_count;
};

/* One driver entry point through cudart (CUDA 12.0's ABI of it). */
static int entry(const char *sym, void *out_fn) {
  void *fn = NULL;
  enum cudaDriverEntryPointQueryResult q;
  if (cudaGetDriverEntryPointByVersion(sym, &fn, 12000, cudaEnableDefault, &q) != cudaSuccess ||
      q != cudaDriverEntryPointSuccess || !fn) {
    (void)cudaGetLastError();
    return TY_ENOTFOUND;
  }
  memcpy(out_fn, &fn, sizeof fn);
  return 0;
}

static int drv_err(const ty_cuda_module *m, CUresult r, const char *what, char *err,
                   size_t err_len) {
  const char *s = NULL;
  if (m->error_string) m->error_string(r, &s);
  return ty_errf(err, err_len, TY_EIO, "%s: %s (CUresult %d)", what, s ? s : "?", (int)r);
}

int ty_cuda_module_load(const void *image, ty_cuda_module **out_module, char *err, size_t err_len) {
  if (ty_cuda_device_count() == 0)
    return ty_errf(err, err_len, TY_EUNSUPPORTED, "cuda: no device visible");
  ty_cuda_module *m = calloc(1, sizeof *m);
  if (!m) return TY_ENOMEM;
  int dev = 0, rc = 0;
  /* cudaFree(NULL) makes the primary context current, which the driver
   * calls below need. */
  if (cudaGetDevice(&dev) != cudaSuccess || cudaFree(NULL) != cudaSuccess ||
      cudaDeviceGetAttribute(&m->sm_count, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
    rc = ty_errf(err, err_len, TY_EIO, "cuda: %s", cudaGetErrorString(cudaGetLastError()));
  if (rc == 0 &&
      (entry("cuModuleLoadData", &m->load) || entry("cuModuleUnload", &m->unload) ||
       entry("cuModuleGetFunction", &m->get_function) || entry("cuLaunchKernel", &m->launch) ||
       entry("cuGetErrorString", &m->error_string)))
    rc = ty_errf(err, err_len, TY_ENOTFOUND, "cuda: the driver lacks a module entry point");
  CUresult r = CUDA_SUCCESS;
  if (rc == 0 && (r = m->load(&m->mod, image)) != CUDA_SUCCESS)
    rc = drv_err(m, r, "cuModuleLoadData", err, err_len);
  if (rc != 0) {
    free(m);
    return rc;
  }
  *out_module = m;
  return 0;
}

void ty_cuda_module_unload(ty_cuda_module *m) {
  if (!m) return;
  m->unload(m->mod);
  free(m);
}

int ty_cuda_module_launch(ty_cuda_module *m, const char *entry_name, unsigned grid, unsigned block,
                          unsigned shmem, void *stream, void **args, char *err, size_t err_len) {
  CUfunction f;
  CUresult r = m->get_function(&f, m->mod, entry_name);
  if (r != CUDA_SUCCESS) return drv_err(m, r, entry_name, err, err_len);
  r = m->launch(f, grid, 1, 1, block, 1, 1, shmem, (CUstream)stream, args, NULL);
  return r == CUDA_SUCCESS ? 0 : drv_err(m, r, entry_name, err, err_len);
}

/* ---- fused regions ------------------------------------------------------- */

/* in's strides against the loop shape, numpy broadcasting (right-aligned,
 * 0 where in has 1 or no dim); false when in does not broadcast. */
static bool bcast_strides(const ty_shape *in, const ty_shape *loop, int64_t *st) {
  int64_t s = 1;
  for (int d = loop->rank - 1, e = in->rank - 1; d >= 0; d--, e--) {
    int64_t dim = e >= 0 ? in->dims[e] : 1;
    if (dim != 1 && dim != loop->dims[d]) return false;
    st[d] = dim == 1 ? 0 : s;
    s *= dim;
  }
  return in->rank <= loop->rank;
}

/* A kernel reads its inputs as the classes it was generated for: a full
 * input must be the loop shape and a scalar one element, or the kernel
 * would read past the buffer. */
int ty_cuda_fused_check(const ty_cuda_fused_call *c, char *err, size_t err_len) {
  if (c->n_in < 1 || c->n_in > TY_FUSE_MAX_IO || c->n_out < 1 || c->n_out > TY_FUSE_MAX_IO ||
      c->n_params < 0 || c->n_params > 64)
    return ty_errf(err, err_len, TY_EINVAL, "fused launch %s: %d inputs, %d outputs, %d params",
                   c->entry, c->n_in, c->n_out, c->n_params);
  if (!ty_shape_is_concrete(c->loop))
    return ty_errf(err, err_len, TY_EINVAL, "fused launch %s: the loop shape is not concrete",
                   c->entry);
  int64_t n = ty_shape_numel(c->loop), st[TY_MAX_RANK];
  for (int i = 0; i < c->n_in; i++) {
    const ty_shape *s = &c->in_shapes[i];
    bool ok = c->cls[i] == TY_FUSE_CUDA_SCALAR ? ty_shape_numel(s) == 1
              : c->cls[i] == TY_FUSE_CUDA_FULL ? ty_shape_equal(s, c->loop)
                                               : bcast_strides(s, c->loop, st);
    if (!ok)
      return ty_errf(err, err_len, TY_EINVAL,
                     "fused launch %s: input %d (%lld elements) does not fit its class %s for "
                     "a loop of %lld",
                     c->entry, i, (long long)ty_shape_numel(s),
                     c->cls[i] == TY_FUSE_CUDA_SCALAR ? "scalar"
                     : c->cls[i] == TY_FUSE_CUDA_FULL ? "full"
                                                      : "broadcast",
                     (long long)n);
  }
  return 0;
}

int ty_cuda_fused_launch(ty_cuda_module *m, const ty_cuda_fused_call *c, char *err,
                         size_t err_len) {
  int rc = ty_cuda_fused_check(c, err, err_len);
  if (rc != 0) return rc;
  int64_t bc[TY_FUSE_CUDA_BC_LEN(32)] = {c->loop->rank};
  float prm[64] = {0};
  void *args[1 + 32 + 32 + 3];
  int64_t n = ty_shape_numel(c->loop);
  int na = 0, ns = 0, vec = 1;
  for (int d = 0; d < c->loop->rank; d++)
    bc[1 + d] = c->loop->dims[d];
  args[na++] = &n;
  for (int i = 0; i < c->n_in; i++) {
    if (c->cls[i] == TY_FUSE_CUDA_STRIDED)
      bcast_strides(&c->in_shapes[i], c->loop, &bc[1 + TY_MAX_RANK * (1 + ns++)]);
    vec &= c->cls[i] != TY_FUSE_CUDA_STRIDED && ((uintptr_t)c->in[i] & 15u) == 0;
    args[na++] = (void *)&c->in[i];
  }
  for (int j = 0; j < c->n_out; j++) {
    vec &= ((uintptr_t)c->out[j] & 15u) == 0;
    args[na++] = (void *)&c->out[j];
  }
  if (c->n_params) memcpy(prm, c->params, (size_t)c->n_params * sizeof *prm);
  args[na++] = prm;
  args[na++] = bc;
  args[na++] = &vec;
  /* Enough blocks to fill the device a few times over; the grid-stride
   * loop covers the rest. */
  int64_t want = (n / (vec ? 4 : 1) + 255) / 256, cap = (int64_t)m->sm_count * 16;
  unsigned grid = (unsigned)(want < 1 ? 1 : want < cap ? want : cap);
  return ty_cuda_module_launch(m, c->entry, grid, 256, 0, c->stream, args, err, err_len);
}
