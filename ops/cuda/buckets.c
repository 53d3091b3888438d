/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Gradient buckets on the device: one buffer holding every bucket back to
 * back (the trainer's layout, ops/train), gradients packed into it by
 * device-to-device copies on the compute stream, and one event per bucket
 * recorded there once its last gradient is packed, which the NCCL stream
 * waits on (ops/collective's ty_coll_start_device): a bucket's all-reduce
 * starts on the device as soon as its gradients are written, while the
 * compute stream goes on with the backward pass.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>

struct ty_cuda_buckets {
  float *data;
  size_t floats;
  cudaEvent_t *ready; /* per bucket, created on first use */
  size_t n;
  void *stream;
};

static int cuda_fail(char *err, size_t err_len, cudaError_t e, const char *what) {
  return ty_errf(err, err_len, TY_EIO, "gradient buckets: %s: %s", what, cudaGetErrorString(e));
}

int ty_cuda_buckets_create(size_t floats, size_t n_buckets, void *stream, ty_cuda_buckets **out,
                           char *err, size_t err_len) {
  ty_cuda_buckets *b = calloc(1, sizeof *b);
  if (!b || !(b->ready = calloc(n_buckets + 1, sizeof *b->ready))) {
    free(b);
    return TY_ENOMEM;
  }
  cudaError_t e = cudaMalloc((void **)&b->data, floats ? floats * sizeof(float) : 4);
  if (e != cudaSuccess) {
    free(b->ready);
    free(b);
    return cuda_fail(err, err_len, e, "device buffer");
  }
  b->floats = floats;
  b->n = n_buckets;
  b->stream = stream;
  *out = b;
  return 0;
}

void ty_cuda_buckets_destroy(ty_cuda_buckets *b) {
  if (!b) return;
  for (size_t k = 0; k < b->n; k++)
    if (b->ready[k]) cudaEventDestroy(b->ready[k]);
  cudaFree(b->data);
  free(b->ready);
  free(b);
}

float *ty_cuda_buckets_data(const ty_cuda_buckets *b) {
  return b->data;
}

int ty_cuda_buckets_pack(ty_cuda_buckets *b, size_t off, const float *src, size_t n, char *err,
                         size_t err_len) {
  if (off > b->floats || n > b->floats - off)
    return ty_errf(err, err_len, TY_EINVAL, "gradient buckets: %zu floats at %zu past %zu", n, off,
                   b->floats);
  cudaError_t e = n ? cudaMemcpyAsync(b->data + off, src, n * sizeof(float),
                                      cudaMemcpyDeviceToDevice, (cudaStream_t)b->stream)
                    : cudaSuccess;
  return e == cudaSuccess ? 0 : cuda_fail(err, err_len, e, "packing a gradient");
}

void *ty_cuda_buckets_ready(ty_cuda_buckets *b, size_t k, char *err, size_t err_len) {
  if (k >= b->n) {
    ty_errf(err, err_len, TY_EINVAL, "gradient buckets: no bucket %zu of %zu", k, b->n);
    return NULL;
  }
  cudaError_t e =
      b->ready[k] ? cudaSuccess : cudaEventCreateWithFlags(&b->ready[k], cudaEventDisableTiming);
  if (e == cudaSuccess) e = cudaEventRecord(b->ready[k], (cudaStream_t)b->stream);
  if (e != cudaSuccess) {
    cuda_fail(err, err_len, e, "the bucket's event");
    return NULL;
  }
  return b->ready[k];
}
