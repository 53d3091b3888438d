/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/optim internals shared by optim.c (updates) and state.c (checkpoint
 * codec). The optimizer owns one ty__optim_param per parameter tensor.
 */
#ifndef TY_OPS_OPTIM_OPTIM_INTERNAL_H
#define TY_OPS_OPTIM_OPTIM_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "ops/optim/optim.h"

typedef struct ty__optim_param {
  size_t numel;
  uint64_t steps;
  uint32_t nbuf; /* buffers allocated: 0 until the first step */
  float *buf[2]; /* owned; SGD: momentum; Adam: m, v */
} ty__optim_param;

struct ty_optim {
  ty_optim_opts opts;
  size_t n;
  ty__optim_param *params; /* owned, n entries */
};

/* Buffers a parameter of this optimizer has after its first step. */
uint32_t ty__optim_nbuf(const ty_optim_opts *o);
/* Frees a parameter's buffers and zeroes its step count. */
void ty__optim_param_clear(ty__optim_param *p);

#endif
