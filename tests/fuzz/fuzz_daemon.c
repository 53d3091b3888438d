/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for every request decoder of traind, through the path a
 * request takes: the caps on repeated fields counted on the bytes, then
 * the convert function the method's handler uses (ty_controller_decode_
 * request). Byte 0 picks the method; the rest is the payload.
 */
#include "daemon/daemon.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static size_t n_methods;
  while (ty_controller_method(n_methods))
    n_methods++;
  if (size < 1 || n_methods == 0) return 0;
  char err[TY_ERR_LEN];
  ty_controller_decode_request(ty_controller_method(data[0] % n_methods), data + 1, size - 1, err,
                               sizeof err);
  return 0;
}
