/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The test hooks of the oneDNN convolution path (ops/kernels/conv_dnnl.c,
 * built when meson finds oneDNN): a switch that routes every Conv through
 * im2col, the reference, and the count of convs (forward or backward) run
 * through oneDNN so far. The path itself is internal to ops/.
 */
#ifndef TY_OPS_CONV_DNNL_H
#define TY_OPS_CONV_DNNL_H

#include <stdbool.h>
#include <stdint.h>

void ty__conv_dnnl_enable(bool on);
int64_t ty__conv_dnnl_calls(void);

#endif
