/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The test hooks of the GEMM engine choice (ops/kernels/gemm.c): a switch
 * that routes every product through OpenBLAS, the reference, and the count
 * of products run through oneDNN's sgemm so far (always 0 when built
 * without oneDNN).
 */
#ifndef TY_OPS_GEMM_DNNL_H
#define TY_OPS_GEMM_DNNL_H

#include <stdbool.h>
#include <stdint.h>

void ty__sgemm_dnnl_enable(bool on);
int64_t ty__sgemm_dnnl_calls(void);

#endif
