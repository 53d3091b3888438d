/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Transposes folded into the MatMuls that read them (ops/fold_matmul.c):
 * MatMul(Transpose(x), .) becomes MatMul(x, .) reading x through the
 * permutation, recorded in the MatMul's attribute TY__MM_PERM_A or
 * TY__MM_PERM_B (ints; not ONNX: run the pass on a training graph, never
 * on one that is exported), where the GEMM can read the permuted operand
 * in place (one of its matrix dims at stride 1); Transposes nobody reads
 * any more are dropped. For a graph the CPU executor runs, before
 * autodiff, so the gradients read and write the operands in place too;
 * the CUDA backend and the parallel planner do not read the attributes.
 */
#ifndef TY_OPS_FOLD_MATMUL_H
#define TY_OPS_FOLD_MATMUL_H

#include "ops/graph.h"

#include <stddef.h>

#define TY__MM_PERM_A "ty_perm_a"
#define TY__MM_PERM_B "ty_perm_b"

/* Folds what it can; *folded: the operands folded. 0 or TY_ENOMEM. */
int ty__fold_transpose_matmul(ty_graph *g, size_t *folded);

#endif
