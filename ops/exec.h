/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/exec: a simple CPU executor for a ty_graph. It runs the nodes in
 * topological order; before each node it infers the concrete output shapes
 * from the actual inputs (so one executor serves any batch size), allocates
 * the outputs and calls the op's kernel.
 *
 * Every value computed by the last run is kept until the next run or
 * destroy, so a backward pass can read forward activations; memory planning
 * (reuse of dead buffers) is a later layer on top.
 *
 * Bound tensors are borrowed: they must stay alive and unchanged until
 * ty_exec_run returns. Binding an initializer's name overrides the graph's
 * data (how a trainer feeds updated weights). The graph must outlive the
 * executor and must not change while it exists.
 *
 * A CUDA backend would plug in here: a per-device kernel table selected at
 * _create, with the same ty__infer contract; nothing in this header names
 * CUDA types.
 */
#ifndef TY_OPS_EXEC_H
#define TY_OPS_EXEC_H

#include "ops/graph.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct ty_exec ty_exec;

typedef struct ty_exec_opts {
  bool training; /* Dropout drops and BatchNormalization uses batch statistics */
  uint64_t seed; /* seed of the Dropout random stream */
} ty_exec_opts;

/* opts may be NULL (inference, seed 0). */
int ty_exec_create(const ty_graph *g, const ty_exec_opts *opts, ty_exec **out_exec);
void ty_exec_destroy(ty_exec *e);
/* Binds a graph input or overrides an initializer, by name or value id.
 * TY_ENOTFOUND for an unknown name; TY_EINVAL for a dtype, rank or fixed
 * dim that does not match the declared one (the message names the input). */
int ty_exec_bind(ty_exec *e, const char *name, const ty_tensor *t, char *err, size_t err_len);
int ty_exec_bind_id(ty_exec *e, int value_id, const ty_tensor *t, char *err, size_t err_len);
/* Runs the graph. Every graph input must be bound. Errors name the node. */
int ty_exec_run(ty_exec *e, char *err, size_t err_len);
/* A value computed (or bound) in the last run; NULL if none. Owned by the
 * executor; valid until the next run, bind or destroy. */
const ty_tensor *ty_exec_value(const ty_exec *e, int value_id);
const ty_tensor *ty_exec_output(const ty_exec *e, const char *name);

#endif
