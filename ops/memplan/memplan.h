/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ops/memplan: liveness-based memory planning for the executor.
 *
 * Over the executor's step order (forward and backward nodes of one graph,
 * fused regions counted as one step), each materialised value lives from
 * the step that writes it to the last step that reads it. When a value
 * dies its buffer goes back to a pool; the next output takes the best-fit
 * free buffer (the smallest one large enough, else the largest free one
 * grown), so activations share memory. An elementwise step writes its
 * output over an input that dies at that step when both have the same
 * dtype and size (in place); graph inputs and initializers are never
 * written. Values the caller reads after a run stay alive: graph outputs,
 * values no node reads (gradients), one-element values (a loss), and
 * ty_exec_opts.keep_values; every
 * other value is unreadable after the run (ty_exec_value returns NULL).
 *
 * The executor plans by default (ty_exec_opts.no_memplan turns it off);
 * results are identical either way. This header adds the static report
 * `trainrun --report` prints and the liveness table for tests.
 */
#ifndef TY_OPS_MEMPLAN_MEMPLAN_H
#define TY_OPS_MEMPLAN_MEMPLAN_H

#include "ops/graph.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ty_memplan_opts {
  bool no_fusion;         /* plan the unfused schedule */
  const int *keep_values; /* extra values read after a run; borrowed */
  size_t n_keep_values;
} ty_memplan_opts;

typedef struct ty_memplan_report {
  uint64_t unplanned_bytes; /* every activation of a step alive at once (no planning) */
  uint64_t planned_bytes;   /* bytes of the planned buffers */
  size_t n_activations;     /* values written by steps */
  size_t n_buffers;         /* buffers they share with planning */
  size_t n_inplace;         /* outputs written over a dying input */
  size_t n_views;           /* Reshape-like outputs sharing their input's buffer */
  size_t n_steps;           /* executor steps (fused regions count once) */
} ty_memplan_report;

/* Plans the graph for a batch size (TY_DIM_BATCH dims become batch) and
 * reports activation memory with and without planning. Activations are the
 * values nodes write; inputs and initializers are not counted. TY_EINVAL
 * when a shape is not known statically (err names the value). opts may be
 * NULL. */
int ty_memplan_report_graph(const ty_graph *g, int64_t batch, const ty_memplan_opts *opts,
                            char *err, size_t err_len, ty_memplan_report *out_report);

/* Liveness of one value over the step order. */
typedef struct ty_memplan_live {
  int def;      /* step writing it; -1 for inputs, initializers, values of no step */
  int last_use; /* last step reading it; -1 if none */
  bool kept;    /* alive after the run */
} ty_memplan_live;

/* Fills out_live[ty_graph_n_values(g)] and *out_n_steps. */
int ty_memplan_liveness(const ty_graph *g, const ty_memplan_opts *opts, ty_memplan_live *out_live,
                        size_t *out_n_steps);

#endif
