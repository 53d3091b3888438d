/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the ONNX importer: bytes -> ty_graph_load_bytes
 * (protobuf decoding, the conversion to the IR, shape inference, constant
 * folding), and for every model it accepts an export and a re-import, which
 * must succeed. Any crash, leak, sanitizer report or failed re-import is a
 * bug; the inputs that found one are kept in corpus/import as regressions.
 *
 * Built with clang -fsanitize=fuzzer,address,undefined by tests/fuzz/
 * meson.build, which also runs it for a bounded time as the test
 * fuzz_import (suite fuzz). Run it longer by hand:
 *   build/tests/fuzz/fuzz_import -max_total_time=600 build/tests/fuzz/corpus
 * tests/fuzz/corpus/import
 */
#include "lib/base/base.h"
#include "ops/graph.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  char err[TY_ERR_LEN];
  ty_graph *g = NULL;
  if (ty_graph_load_bytes(data, size, err, sizeof err, &g) != 0) return 0;
  uint8_t *bytes = NULL;
  size_t len = 0;
  if (ty_graph_to_onnx(g, NULL, 0, err, sizeof err, &bytes, &len) != 0) {
    fprintf(stderr, "export of an accepted model failed: %s\n", err);
    abort();
  }
  ty_graph *again = NULL;
  if (ty_graph_load_bytes(bytes, len, err, sizeof err, &again) != 0) {
    fprintf(stderr, "re-import of an exported model failed: %s\n", err);
    abort();
  }
  ty_graph_destroy(again);
  free(bytes);
  ty_graph_destroy(g);
  return 0;
}
