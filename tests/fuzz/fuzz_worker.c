/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for every request decoder of trainworkerd (LaunchTask,
 * KillTask from the controller; ReadLog, Attach, AttachInput on the task
 * I/O port): the caps on repeated fields, then the convert function
 * (ty_worker_decode_request). Byte 0 picks the method; the rest is the
 * payload.
 */
#include "worker/worker.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static size_t n_methods;
  while (ty_worker_method(n_methods))
    n_methods++;
  if (size < 1 || n_methods == 0) return 0;
  char err[TY_ERR_LEN];
  ty_worker_decode_request(ty_worker_method(data[0] % n_methods), data + 1, size - 1, err,
                           sizeof err);
  return 0;
}
