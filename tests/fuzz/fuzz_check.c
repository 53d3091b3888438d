/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the model-check protocol between traind and its
 * child, trainyard-graphcheck (daemon/check.c, daemon/graphcheck/main.c):
 * byte 0 even feeds the rest to the child's decoder of a GraphCheckRequest,
 * odd to traind's decoder of a GraphCheckResponse (the child imports
 * untrusted models, so traind treats what it answers as hostile too).
 */
#include "proto/convert.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size < 1) return 0;
  if (data[0] % 2 == 0) {
    ty_graph_check c;
    if (ty_proto_unpack_check(data + 1, size - 1, &c) == 0) ty_graph_check_close(&c);
  } else {
    ty_graph_check_answer a;
    if (ty_proto_unpack_check_answer(data + 1, size - 1, &a) == 0) ty_graph_check_answer_close(&a);
  }
  return 0;
}
