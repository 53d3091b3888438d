/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of ops/collective shared by collective.c (world formation over
 * Open MPI, checks, reductions), layout.c (bucket descriptions and shape
 * hashes) and nccl.c (GPU path, compiled only with TY_HAVE_NCCL).
 */
#ifndef TY_OPS_COLLECTIVE_COLL_INTERNAL_H
#define TY_OPS_COLLECTIVE_COLL_INTERNAL_H

#include "lib/base/base.h"
#include "ops/collective/collective.h"
#include "ops/collective/server_dir.h"

#include <mpi.h>
#include <sys/types.h>

#define TY__COLL_MAX_INFLIGHT 64
#define TY__COLL_DESC 240 /* bytes of a bucket description exchanged on mismatch */

typedef struct ty__tensor_desc {
  char *name;
  char shape[96]; /* "[10,64]" */
  size_t numel;
} ty__tensor_desc;

typedef struct ty__bucket_desc {
  size_t first, last; /* tensor indices, first >= last, like ops/train */
  size_t floats;
  uint64_t hash;
  char desc[TY__COLL_DESC];
} ty__bucket_desc;

/* A communicator with what its checks need: its members' job ranks (for
 * messages), the sequence number of its next checked collective and the
 * noun its mismatch messages use. */
typedef struct ty__group {
  MPI_Comm comm; /* MPI_COMM_NULL: not formed */
  int size, me;
  uint32_t *world_rank; /* member index -> job rank; owned */
  uint64_t seq;
  const char *noun;
} ty__group;

typedef struct ty__inflight {
  MPI_Request req;
  uint64_t seq;
  size_t n;
  int64_t t0_us;
  int64_t t1_us; /* completion seen by ty_coll_progress; 0 before */
} ty__inflight;

/* A pipeline message on its way (p2p.c): the request and its own copy;
 * on NCCL (nccl_p2p.c) a queued one: its peer, floats and device copy. */
typedef struct ty__p2p_send {
  MPI_Request req;
  uint8_t *buf;
  uint32_t peer;
  size_t n;
  void *dev;
} ty__p2p_send;

struct ty_coll {
  ty_coll_opts o;
  ty_rdv *rdv;
  bool mpi_inited, failed;
  ty__group world; /* every rank, job-rank order */
  /* A plan's mesh (mesh.c): mesh[m - 1] for the axis set m (1: axis 0,
   * 2: axis 1, 3: both, a duplicate of the world). inner: axis 1 split
   * into an inner_n[0] x inner_n[1] mesh of its own (a pipelined plan's
   * stage mesh with both axes split), one group per inner axis of more
   * than one device: axis sets 4 and 8, axes 2 and 3. */
  int mesh_n[2], inner_n[2];
  ty__group mesh[3], inner[2];
  char port[MPI_MAX_PORT_NAME];
  pid_t server_pid;
  char server_dir[TY__COLL_DIR_MAX];
  ty__tensor_desc *tensors;
  size_t n_tensors;
  size_t bucket_bytes;
  ty__bucket_desc *buckets; /* computed on first use */
  size_t n_buckets;
  ty__inflight inflight[TY__COLL_MAX_INFLIGHT];
  size_t head, count;
  ty_coll_stats stats;
  void *nccl;          /* nccl.c's state when backend is NCCL */
  ty__p2p_send *sends; /* p2p.c: sends not known complete */
  size_t n_sends;
  char err[TY_ERR_LEN];
};

/* layout.c: computes buckets from the tensors (idempotent). */
int ty__coll_layout(ty_coll *c);
/* The bucket a call with this seq and length reduces: its hash and
 * description (a stand-in from n alone when no layout was given). */
void ty__coll_bucket_for(ty_coll *c, uint64_t seq, size_t n, uint64_t *out_hash, char *out_desc);
int64_t ty__coll_now_us(void);

/* collective.c, for mesh.c */
/* Waits for rq within the deadline (TY_ETIMEDOUT, c marked failed). */
int ty__coll_wait_req(ty_coll *c, MPI_Request *rq, const char *what, uint64_t seq);
/* The (seq, hash, length, stop) exchange before each checked collective
 * of group g; TY_EINVAL naming the odd rank and both descriptions. */
int ty__coll_check(ty_coll *c, const ty__group *g, uint64_t seq, uint64_t hash, size_t n,
                   const char *desc);
/* The same exchange in two halves, so that a collective can start between
 * them and both travel at once (mesh.c): start sends this rank's header
 * (k must stay in place until finish); finish waits for every rank's and
 * compares them. After a start, finish must be called, whatever happened
 * in between. desc is borrowed until finish. */
typedef struct ty__check {
  const ty__group *g;
  const char *desc;
  uint64_t hdr[4], *all;
  MPI_Request rq;
  int rc; /* of the start */
  int64_t t0;
} ty__check;
void ty__coll_check_start(ty_coll *c, const ty__group *g, uint64_t seq, uint64_t hash, size_t n,
                          const char *desc, ty__check *k);
int ty__coll_check_finish(ty_coll *c, ty__check *k);
int ty__coll_mpi_err(ty_coll *c, int code, const char *what);
/* This rank's part of a stop exchange: its request or what an earlier
 * exchange agreed (1 or 0). */
int ty__coll_stop_mine(const ty_coll *c);
/* An exchange saw a rank's stop: sets the agreed flag (collective.h). */
void ty__coll_stop_seen(ty_coll *c);
int ty__coll_set_err(ty_coll *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* TY_ESTATE "an earlier collective failed: <cause>" (c already failed). */
int ty__coll_failed_before(ty_coll *c);
/* p2p.c: frees the send buffers (at destroy). */
void ty__coll_p2p_close(ty_coll *c);
/* Frees a group's communicator and table. */
void ty__coll_group_close(ty__group *g);

#ifdef TY_HAVE_NCCL
int ty__nccl_create(ty_coll *c);
void ty__nccl_destroy(ty_coll *c);
/* Checks (seq, hash, n) across the world, then sums buf (host or device
 * memory; host buffers are staged through the comm stream) in place. */
int ty__nccl_allreduce(ty_coll *c, float *buf, size_t n, uint64_t seq, uint64_t hash,
                       const char *desc);
/* A plan's mesh on NCCL (host buffers, staged): the communicators, one
 * checked collective of kind ("all-reduce", "all-gather",
 * "reduce-scatter", "all-to-all") over the group of an axis set, and a
 * byte all-gather over the world. */
int ty__nccl_set_mesh(ty_coll *c);
int ty__nccl_mesh(ty_coll *c, const char *kind, unsigned axes, const float *in, size_t n_in,
                  float *out, size_t n_out, uint64_t hash, const char *desc);
int ty__nccl_allgather_bytes(ty_coll *c, const void *in, size_t n, void *out);
/* A device bucket reduced on NCCL's stream after event ready (a
 * cudaEvent_t, NULL: at once); completed in start order by
 * ty__nccl_wait_device. */
int ty__nccl_start_device(ty_coll *c, float *buf, size_t n, uint64_t seq, uint64_t hash,
                          const char *desc, void *ready);
int ty__nccl_wait_device(ty_coll *c);
/* nccl.c, for nccl_p2p.c: the world's ncclComm_t and the comm stream's
 * cudaStream_t; waiting for that stream within the deadline. */
void ty__nccl_world(ty_coll *c, void **out_comm, void **out_stream);
int ty__nccl_wait(ty_coll *c, const char *what);
/* nccl_p2p.c: pipeline messages over NCCL (ty_coll_send / recv / flush's
 * contract; sends queued until the next recv or flush); close frees the
 * device copies of sends never posted. */
int ty__nccl_send(ty_coll *c, uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n);
int ty__nccl_recv(ty_coll *c, uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n,
                  size_t *out_n);
int ty__nccl_flush(ty_coll *c);
void ty__nccl_p2p_close(ty_coll *c);
#endif

#endif
