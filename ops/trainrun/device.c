/* SPDX-License-Identifier: Apache-2.0 */
/*
 * trainrun's side of config.device DEVICE_GPU (trainrun_internal.h): which
 * program runs such a job (the CPU build execs trainrun-gpu beside it,
 * main.c's header says why), whether a GPU is visible, and which nodes of
 * the training graph ops/cuda has kernels for. The only file of trainrun
 * that includes CUDA headers.
 */
#include "ops/trainrun/trainrun_internal.h"

#include "lib/base/base.h"
#ifdef TY_HAVE_CUDA
#include <cuda_runtime_api.h>
#endif
#ifdef TY_HAVE_CUDA_OPS
#include "ops/cuda/cuda.h"
#endif

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int tr_gpu_handoff(char **argv) {
#ifdef TY_TRAINRUN_GPU
  char self[4096], path[4200];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) n = 0;
  self[n] = '\0';
  char *slash = strrchr(self, '/');
  if (slash) *slash = '\0';
  snprintf(path, sizeof path, "%s/%s", slash ? self : ".", TY_TRAINRUN_GPU);
  fflush(NULL);
  execv(path, argv);
  fprintf(stderr,
          "trainrun: config.device is DEVICE_GPU but %s, the build of trainrun with the GPU "
          "executor, cannot run: %s\n",
          path, strerror(errno));
  return 2;
#else
  (void)argv;
  return -1; /* this program runs them */
#endif
}

int tr_gpu_check(uint32_t rank) {
#ifdef TY_HAVE_CUDA
  int n = 0;
  cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess || n == 0) {
    fprintf(stderr, "trainrun: config.device is DEVICE_GPU but no CUDA device is visible (%s)\n",
            e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    return 2;
  }
  if (rank == 0)
    printf("device: %d CUDA device(s); collectives through NCCL; the training graph runs on "
           "the GPU executor (its plan is logged at the first step)\n",
           n);
  return 0;
#else
  (void)rank;
  fprintf(stderr, "trainrun: config.device is DEVICE_GPU but this build has no CUDA\n");
  return 2;
#endif
}

void tr_gpu_print_placement(const ty_train *t) {
#ifdef TY_HAVE_CUDA_OPS
  ty_cuda_place *p = NULL;
  size_t n = 0;
  char sum[2048];
  if (ty_cuda_placement(ty_train_graph(t), &p, &n) == 0 &&
      ty_cuda_placement_summary(p, n, sum, sizeof sum) == 0)
    printf("placement: %s\n", sum);
  free(p);
#else
  (void)t;
#endif
}
