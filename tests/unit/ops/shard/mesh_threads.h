/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An in-process transport for ops/shard's tests: the ranks of a mesh are
 * threads of one process and each collective is a rendezvous at a barrier
 * of its group, reading the peers' buffers in place. The ranks of a group
 * issue its collectives in the same order; other groups may be elsewhere
 * (a pipeline's stages run their own collectives). Not for production: no
 * checks; ops/collective is the real transport. Like it, every wait ends
 * at a deadline (timeout_ms): a collective whose peer never arrives (it
 * failed, or issued another one) returns TY_ETIMEDOUT instead of hanging
 * the test.
 */
#ifndef TY_TESTS_UNIT_OPS_SHARD_MESH_THREADS_H
#define TY_TESTS_UNIT_OPS_SHARD_MESH_THREADS_H

#include "ops/shard/shard.h"

#include <pthread.h>
#include <signal.h>

#define MT_MAX_RANKS 16

typedef struct mt_msg mt_msg;

/* A barrier of one group (a generation counter). */
typedef struct mt_gbar {
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int count;
  unsigned gen;
} mt_gbar;

/* Axis sets: bits 0 and 1 the mesh's axes, 2 and 3 the inner ones. */
#define MT_AXIS_SETS 16

typedef struct mt_mesh {
  int mesh[2], world;
  int inner[2]; /* axis 1 as an inner[0] x inner[1] mesh (mt_mesh_set_inner); 1 x mesh[1] */
  mt_gbar bar[MT_AXIS_SETS][MT_MAX_RANKS]; /* by the group's axes and its first rank */
  const float *slot[MT_MAX_RANKS];
  /* point-to-point messages (mt_send, mt_recv): a queue per receiver */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  mt_msg *box[MT_MAX_RANKS];
  int timeout_ms; /* mt_recv's and each collective's deadline; 0: 30 s */
} mt_mesh;

/* The per-rank handle given as ty_shard_comm.user. */
typedef struct mt_rank {
  mt_mesh *m;
  int rank;
  volatile sig_atomic_t *stop; /* for mt_agree_stop; may be NULL */
} mt_rank;

void mt_mesh_init(mt_mesh *m, int m0, int m1);
/* Splits axis 1 into an i0 x i1 mesh (ops/collective's
 * ty_coll_set_mesh_inner): axis sets 4 and 8, axes 2 and 3, are its axes. */
void mt_mesh_set_inner(mt_mesh *m, int i0, int i1);
void mt_mesh_close(mt_mesh *m);
/* The transport of rank r (user points at r). */
ty_shard_comm mt_comm(mt_rank *r);
/* ops/train's other hooks (ty_train_parallel), user = the mt_rank: a
 * gradient bucket reduced at once (start) with nothing left to wait for,
 * the gather to rank 0, and the stop agreement over every rank. */
int mt_start(unsigned axes, float *buf, size_t n, const char *what, void *user);
int mt_wait(void *user);
int mt_gather(const float *in, size_t n, float *out, void *user);
int mt_agree_stop(double *step_s, void *user);
/* A pipelined plan's messages (ty_train_parallel's send, recv, flush),
 * user = the mt_rank: send queues a copy for peer; recv takes the oldest
 * message from peer, waiting at most timeout_ms (TY_ETIMEDOUT), as each
 * collective waits for its group. */
int mt_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user);
int mt_recv(uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n, size_t *out_n, void *user);
int mt_flush(void *user);

#endif
