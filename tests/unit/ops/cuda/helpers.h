/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by the ops/cuda tests: an example model's training graph and a
 * value builder for small hand-made graphs. */
#ifndef TY_TESTS_UNIT_OPS_CUDA_HELPERS_H
#define TY_TESTS_UNIT_OPS_CUDA_HELPERS_H

#include "ops/graph.h"

#include <stdint.h>

/* The training graph of example `name` in dir (name.onnx, name.config.pb):
 * model + builtin loss + backward of every float initializer that is not a
 * rank-0 constant. The caller destroys it. */
ty_graph *training_graph(const char *dir, const char *name);
/* Adds value name (rank < 0: unknown shape) and returns its id. */
int add_value(ty_graph *g, const char *name, ty_dtype dt, int rank, const int64_t *dims);

#endif
