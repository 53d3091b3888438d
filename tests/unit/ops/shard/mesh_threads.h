/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An in-process transport for ops/shard's tests: the ranks of a mesh are
 * threads of one process and each collective is a rendezvous at a barrier
 * of all of them, reading the peers' buffers in place. SPMD ranks issue the
 * same collectives in the same order, so one barrier over every rank is
 * enough even when the groups are smaller. Not for production: no
 * deadlines, no checks; ops/collective is the real transport.
 */
#ifndef TY_TESTS_UNIT_OPS_SHARD_MESH_THREADS_H
#define TY_TESTS_UNIT_OPS_SHARD_MESH_THREADS_H

#include "ops/shard/shard.h"

#include <pthread.h>

#define MT_MAX_RANKS 16

typedef struct mt_mesh {
  int mesh[2], world;
  pthread_barrier_t bar;
  const float *slot[MT_MAX_RANKS];
} mt_mesh;

/* The per-rank handle given as ty_shard_comm.user. */
typedef struct mt_rank {
  mt_mesh *m;
  int rank;
} mt_rank;

void mt_mesh_init(mt_mesh *m, int m0, int m1);
void mt_mesh_close(mt_mesh *m);
/* The transport of rank r (user points at r). */
ty_shard_comm mt_comm(mt_rank *r);

#endif
