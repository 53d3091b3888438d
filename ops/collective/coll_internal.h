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

typedef struct ty__inflight {
  MPI_Request req;
  uint64_t seq;
  size_t n;
  int64_t t0_us;
  int64_t t1_us; /* completion seen by ty_coll_progress; 0 before */
} ty__inflight;

struct ty_coll {
  ty_coll_opts o;
  ty_rdv *rdv;
  bool mpi_inited, failed;
  MPI_Comm comm;
  char port[MPI_MAX_PORT_NAME];
  pid_t server_pid;
  char server_dir[64];
  ty__tensor_desc *tensors;
  size_t n_tensors;
  size_t bucket_bytes;
  ty__bucket_desc *buckets; /* computed on first use */
  size_t n_buckets;
  ty__inflight inflight[TY__COLL_MAX_INFLIGHT];
  size_t head, count;
  ty_coll_stats stats;
  void *nccl; /* nccl.c's state when backend is NCCL */
  char err[TY_ERR_LEN];
};

/* layout.c: computes buckets from the tensors (idempotent). */
int ty__coll_layout(ty_coll *c);
/* The bucket a call with this seq and length reduces: its hash and
 * description (a stand-in from n alone when no layout was given). */
void ty__coll_bucket_for(ty_coll *c, uint64_t seq, size_t n, uint64_t *out_hash, char *out_desc);
int64_t ty__coll_now_us(void);

#ifdef TY_HAVE_NCCL
int ty__nccl_create(ty_coll *c);
void ty__nccl_destroy(ty_coll *c);
int ty__nccl_allreduce(ty_coll *c, float *buf, size_t n);
#endif

#endif
