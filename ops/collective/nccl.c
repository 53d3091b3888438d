/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU path: NCCL all-reduce on a stream of its own, so the reduction of
 * one bucket overlaps the compute stream's remaining backward work. Rank 0
 * creates the ncclUniqueId and publishes it through the controller's
 * rendezvous store ("nccl.id"); the other ranks fetch it. Compiled only when
 * meson finds NCCL and CUDA (TY_HAVE_NCCL); the CPU build never sees it.
 *
 * buf is a device pointer here. Waits are bounded like the MPI path: the
 * stream is polled with cudaStreamQuery and the communicator aborted
 * (ncclCommAbort) when the deadline passes, so a dead peer cannot hang us.
 */
#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct nccl_state {
  ncclComm_t comm;
  cudaStream_t stream;
} nccl_state;

int ty__nccl_create(ty_coll *c) {
  ncclUniqueId id;
  int rc = 0;
  if (c->o.rank == 0) {
    if (ncclGetUniqueId(&id) != ncclSuccess) {
      snprintf(c->err, sizeof c->err, "ncclGetUniqueId failed");
      return TY_EIO;
    }
    rc = ty_rdv_put(c->rdv, "nccl.id", &id, sizeof id, c->err, sizeof c->err);
  } else {
    uint8_t *v = NULL;
    size_t len = 0;
    rc = ty_rdv_get(c->rdv, "nccl.id", c->o.timeout_ms, &v, &len, c->err, sizeof c->err);
    if (rc == 0 && len != sizeof id) rc = TY_EPROTO;
    if (rc == 0) memcpy(&id, v, sizeof id);
    free(v);
  }
  if (rc != 0) return rc;
  nccl_state *s = calloc(1, sizeof *s);
  if (!s) return TY_ENOMEM;
  ncclResult_t nr = ncclCommInitRank(&s->comm, (int)c->o.world_size, id, (int)c->o.rank);
  if (nr != ncclSuccess || cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess) {
    snprintf(c->err, sizeof c->err, "ncclCommInitRank: %s", ncclGetErrorString(nr));
    free(s);
    return TY_EIO;
  }
  c->nccl = s;
  return 0;
}

void ty__nccl_destroy(ty_coll *c) {
  nccl_state *s = c->nccl;
  if (c->failed) ncclCommAbort(s->comm);
  else ncclCommDestroy(s->comm);
  cudaStreamDestroy(s->stream);
  free(s);
  c->nccl = NULL;
}

int ty__nccl_allreduce(ty_coll *c, float *buf, size_t n) {
  nccl_state *s = c->nccl;
  if (ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, s->comm, s->stream) != ncclSuccess) {
    c->failed = true;
    snprintf(c->err, sizeof c->err, "ncclAllReduce failed");
    return TY_EIO;
  }
  int64_t deadline = ty_mono_ms() + c->o.timeout_ms;
  cudaError_t q;
  while ((q = cudaStreamQuery(s->stream)) == cudaErrorNotReady) {
    if (ty_mono_ms() > deadline) {
      c->failed = true;
      snprintf(c->err, sizeof c->err, "ncclAllReduce: no answer within %u ms (a rank died or hangs)", c->o.timeout_ms);
      return TY_ETIMEDOUT;
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  return q == cudaSuccess ? 0 : TY_EIO;
}
