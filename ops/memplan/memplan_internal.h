/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The buffer pool behind the executor's planned allocations, shared by the
 * executor (real buffers) and the static report (simulated sizes only).
 * Usage per run: _begin, then for each step k: _alloc for each value it
 * writes, the kernel, _end_step(k).
 */
#ifndef TY_OPS_MEMPLAN_MEMPLAN_INTERNAL_H
#define TY_OPS_MEMPLAN_MEMPLAN_INTERNAL_H

#include "ops/fusion/fusion_internal.h"
#include "ops/memplan/memplan.h"

typedef struct ty__mpool ty__mpool;

/* The schedule is borrowed and must outlive the pool. simulate: track
 * sizes without allocating memory (tensors handed out have data NULL). */
int ty__mpool_create(const ty_graph *g, const ty__sched *s, bool simulate, ty__mpool **out_pool);
void ty__mpool_destroy(ty__mpool *p);
/* Starts a run: every buffer is free again. */
void ty__mpool_begin(ty__mpool *p);
/* The tensor for value id, written by step k (header owned by the pool,
 * valid until the next _begin). Zero-filled unless the step overwrites. */
int ty__mpool_alloc(ty__mpool *p, size_t k, int id, ty_dtype dt, const ty_shape *shape,
                    ty_tensor **out_t);
/* Returns the buffers of values whose last use is step k. */
void ty__mpool_end_step(ty__mpool *p, size_t k);
/* Liveness of value id (def/last_use in steps). */
ty_memplan_live ty__mpool_live(const ty__mpool *p, int id);

typedef struct ty__mpool_stats {
  uint64_t bytes;       /* capacity of all buffers */
  uint64_t naive_bytes; /* sizes of all values allocated in the last run */
  size_t n_buffers, n_values, n_inplace;
  size_t n_views; /* Reshape-like outputs that share their input's buffer */
} ty__mpool_stats;
void ty__mpool_get_stats(const ty__mpool *p, ty__mpool_stats *out);

#endif
