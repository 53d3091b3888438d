/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for a graph job's training config: bytes ->
 * ty_train_config_decode (caps on repeated fields, protobuf decoding and
 * every validation rule), as traind runs it at submit and trainrun at
 * start. An accepted config must have a positive batch size.
 */
#include "ops/train/train.h"

#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ty_train_config c;
  char err[TY_ERR_LEN];
  if (ty_train_config_decode(data, size, &c, err, sizeof err) == 0 && c.batch_size == 0) {
    fprintf(stderr, "a config with a zero batch was accepted\n");
    abort();
  }
  ty_train_config_close(&c);
  return 0;
}
