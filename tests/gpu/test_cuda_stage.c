/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GPU suite: input staging through pinned buffers and a copy stream. Five
 * batches are uploaded into five device buffers with the loader's buffer
 * overwritten right after each upload returns (the stage copies it), a
 * kernel-free check on the compute stream then reads them back in order,
 * and a batch above the staged size is refused. Exits 77 without a GPU.
 */
#include "lib/base/base.h"
#include "ops/cuda/cuda.h"
#include "tests/gpu/check.h"

#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { N = 1 << 20, BATCHES = 5 };

int main(void) {
  if (ty_cuda_device_count() == 0) {
    printf("no CUDA device on this machine: skipped\n");
    return 77;
  }
  char err[TY_ERR_LEN];
  cudaStream_t compute;
  CHECK(cudaStreamCreate(&compute) == cudaSuccess, "stream");
  ty_cuda_stage *s = NULL;
  CHECK(ty_cuda_stage_create(N * sizeof(float), compute, &s, err, sizeof err) == 0, "%s", err);
  float *loader = malloc(N * sizeof(float)), *back = malloc(N * sizeof(float)), *d[BATCHES];
  for (int b = 0; b < BATCHES; b++) {
    CHECK(cudaMalloc((void **)&d[b], N * sizeof(float)) == cudaSuccess, "cudaMalloc");
    for (int i = 0; i < N; i++)
      loader[i] = (float)(b * N + i);
    CHECK(ty_cuda_stage_upload(s, loader, N * sizeof(float), d[b], err, sizeof err) == 0, "%s",
          err);
    memset(loader, 0xff, N * sizeof(float)); /* the loader reuses its buffer at once */
  }
  CHECK(ty_cuda_stage_upload(s, loader, N * sizeof(float) + 4, d[0], err, sizeof err) == TY_EINVAL,
        "an oversized batch was accepted");
  for (int b = 0; b < BATCHES; b++) {
    CHECK(cudaMemcpyAsync(back, d[b], N * sizeof(float), cudaMemcpyDeviceToHost, compute) ==
              cudaSuccess,
          "D2H");
    CHECK(cudaStreamSynchronize(compute) == cudaSuccess, "sync");
    for (int i = 0; i < N; i++)
      CHECK(back[i] == (float)(b * N + i), "batch %d element %d: %g", b, i, back[i]);
    cudaFree(d[b]);
  }
  printf("%d staged batches of %zu bytes arrived intact\n", BATCHES, N * sizeof(float));
  ty_cuda_stage_destroy(s);
  cudaStreamDestroy(compute);
  free(loader);
  free(back);
  return 0;
}
