/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host-to-device input staging for the data loader: a rank's batches go
 * through pinned (page-locked) host buffers, so cudaMemcpyAsync really is
 * asynchronous, on a copy stream of their own, so the copy of batch k+1
 * overlaps the compute stream's work on batch k.
 *
 * Two slots alternate. An upload waits (cudaEventSynchronize) until the
 * slot's previous copy has finished reading it, fills it from the
 * loader's buffer, starts the copy and makes the compute stream wait for
 * it (cudaStreamWaitEvent), so kernels queued afterwards see the batch
 * and the host never blocks on compute.
 */
#include "ops/cuda/cuda.h"

#include "lib/base/base.h"

#include <cuda_runtime_api.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 2

struct ty_cuda_stage {
  size_t cap;
  void *pinned[SLOTS];
  cudaEvent_t done[SLOTS];
  bool used[SLOTS];
  int next;
  cudaStream_t copy, compute;
};

static int cuda_err(const char *what, cudaError_t e, char *err, size_t err_len) {
  (void)cudaGetLastError();
  return ty_errf(err, err_len, e == cudaErrorMemoryAllocation ? TY_ENOMEM : TY_EIO, "%s: %s", what,
                 cudaGetErrorString(e));
}

int ty_cuda_stage_create(size_t max_bytes, void *compute_stream, ty_cuda_stage **out_stage,
                         char *err, size_t err_len) {
  if (max_bytes == 0) return ty_errf(err, err_len, TY_EINVAL, "stage: max_bytes is 0");
  ty_cuda_stage *s = calloc(1, sizeof *s);
  if (!s) return TY_ENOMEM;
  s->cap = max_bytes;
  s->compute = (cudaStream_t)compute_stream;
  cudaError_t e = cudaStreamCreateWithFlags(&s->copy, cudaStreamNonBlocking);
  for (int i = 0; e == cudaSuccess && i < SLOTS; i++) {
    e = cudaHostAlloc(&s->pinned[i], max_bytes, cudaHostAllocDefault);
    if (e == cudaSuccess) e = cudaEventCreateWithFlags(&s->done[i], cudaEventDisableTiming);
  }
  if (e != cudaSuccess) {
    int rc = cuda_err("stage: pinned buffers", e, err, err_len);
    ty_cuda_stage_destroy(s);
    return rc;
  }
  *out_stage = s;
  return 0;
}

void ty_cuda_stage_destroy(ty_cuda_stage *s) {
  if (!s) return;
  if (s->copy) cudaStreamSynchronize(s->copy);
  for (int i = 0; i < SLOTS; i++) {
    if (s->done[i]) cudaEventDestroy(s->done[i]);
    cudaFreeHost(s->pinned[i]);
  }
  if (s->copy) cudaStreamDestroy(s->copy);
  free(s);
}

int ty_cuda_stage_upload(ty_cuda_stage *s, const void *src, size_t bytes, void *dst, char *err,
                         size_t err_len) {
  if (bytes > s->cap)
    return ty_errf(err, err_len, TY_EINVAL, "stage: batch of %zu bytes above the %zu staged", bytes,
                   s->cap);
  int i = s->next;
  s->next = (s->next + 1) % SLOTS;
  cudaError_t e = s->used[i] ? cudaEventSynchronize(s->done[i]) : cudaSuccess;
  if (e != cudaSuccess) return cuda_err("stage: waiting for a slot", e, err, err_len);
  memcpy(s->pinned[i], src, bytes);
  e = cudaMemcpyAsync(dst, s->pinned[i], bytes, cudaMemcpyHostToDevice, s->copy);
  if (e == cudaSuccess) e = cudaEventRecord(s->done[i], s->copy);
  if (e == cudaSuccess) e = cudaStreamWaitEvent(s->compute, s->done[i], 0);
  if (e != cudaSuccess) return cuda_err("stage: copy", e, err, err_len);
  s->used[i] = true;
  return 0;
}
