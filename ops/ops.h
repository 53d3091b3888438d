/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops: the training runtime's public API in one include — tensors and
 * broadcasting (ops/tensor.h), the graph IR with ONNX import/export and
 * shape inference (ops/graph.h), and the CPU executor (ops/exec.h).
 */
#ifndef TY_OPS_OPS_H
#define TY_OPS_OPS_H

#include "ops/exec.h"
#include "ops/graph.h"
#include "ops/tensor.h"

#endif
