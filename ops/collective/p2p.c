/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Point-to-point messages between the stages of a pipelined plan
 * (collective.h, "pipeline messages"; ops/train's send / recv / flush
 * hooks). A message is one MPI_BYTE buffer on the world communicator
 * under its own tag: the four u64 header words (step, sender's stage,
 * micro-batch, shape hash) the trainer checks, then the floats. Sends are
 * MPI_Isend from a private copy, freed as they complete (tested on every
 * send, waited for by flush at the end of a step); receives probe the
 * sender with MPI_Iprobe under the collective's deadline, so a dead or
 * silent peer fails the wait instead of hanging it, then take the whole
 * message whatever its length (the trainer names a wrong one).
 *
 * A world formed over NCCL sends them with ncclSend / ncclRecv instead
 * (nccl_p2p.c), with the same header.
 */
#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#define P2P_TAG 0x7118
#define HDR_BYTES (4 * sizeof(uint64_t))

static bool on_nccl(const ty_coll *c) {
#ifdef TY_HAVE_NCCL
  return c->nccl != NULL;
#else
  (void)c;
  return false;
#endif
}

static int usable(ty_coll *c, uint32_t peer) {
  if (c->failed) return ty__coll_failed_before(c);
  if (!on_nccl(c) && (!c->mpi_inited || c->world.comm == MPI_COMM_NULL))
    return ty__coll_set_err(c, TY_EUNSUPPORTED,
                            "pipeline messages need a world of several ranks (Open MPI or "
                            "NCCL)");
  if (peer >= c->o.world_size || peer == c->o.rank)
    return ty__coll_set_err(c, TY_EINVAL, "pipeline message to rank %u: not a peer of rank %u",
                            peer, c->o.rank);
  return 0;
}

/* Frees the sends that completed (all of them when wait is set, under
 * the deadline). */
static int reap(ty_coll *c, bool wait) {
  size_t keep = 0;
  int rc = 0;
  for (size_t i = 0; i < c->n_sends; i++) {
    int done = 0;
    if (rc == 0 && wait) {
      rc = ty__coll_wait_req(c, &c->sends[i].req, "pipeline send", 0);
      done = rc == 0;
    } else if (rc == 0) {
      int mrc = MPI_Test(&c->sends[i].req, &done, MPI_STATUS_IGNORE);
      if (mrc != MPI_SUCCESS) rc = ty__coll_mpi_err(c, mrc, "MPI_Test (pipeline send)");
    }
    if (done) {
      free(c->sends[i].buf);
    } else {
      c->sends[keep++] = c->sends[i];
    }
  }
  c->n_sends = keep;
  return rc;
}

int ty_coll_send(uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n, void *user) {
  ty_coll *c = user;
  int rc = usable(c, peer);
#ifdef TY_HAVE_NCCL
  if (rc == 0 && on_nccl(c)) return ty__nccl_send(c, peer, hdr, buf, n);
#endif
  if (rc == 0) rc = reap(c, false);
  if (rc != 0) return rc;
  size_t bytes = HDR_BYTES + n * sizeof *buf;
  if (bytes > (size_t)INT32_MAX)
    return ty__coll_set_err(c, TY_EINVAL, "pipeline message of %zu floats: too large", n);
  ty__p2p_send *s = realloc(c->sends, (c->n_sends + 1) * sizeof *s);
  uint8_t *copy = malloc(bytes);
  if (s) c->sends = s;
  if (!s || !copy) {
    free(copy);
    return TY_ENOMEM;
  }
  memcpy(copy, hdr, HDR_BYTES);
  memcpy(copy + HDR_BYTES, buf, n * sizeof *buf);
  ty__p2p_send *e = &c->sends[c->n_sends];
  e->buf = copy;
  int mrc = MPI_Isend(copy, (int)bytes, MPI_BYTE, (int)peer, P2P_TAG, c->world.comm, &e->req);
  if (mrc != MPI_SUCCESS) {
    free(copy);
    return ty__coll_mpi_err(c, mrc, "MPI_Isend (pipeline)");
  }
  c->n_sends++;
  c->stats.p2p_msgs++;
  c->stats.p2p_bytes += bytes;
  return 0;
}

/* Waits for a message from peer within the deadline. */
static int probe(ty_coll *c, uint32_t peer, MPI_Status *st) {
  int64_t deadline = ty_mono_ms() + c->o.timeout_ms;
  for (unsigned spins = 0;; spins++) {
    int flag = 0, mrc = MPI_Iprobe((int)peer, P2P_TAG, c->world.comm, &flag, st);
    if (mrc != MPI_SUCCESS) return ty__coll_mpi_err(c, mrc, "MPI_Iprobe (pipeline)");
    if (flag) return 0;
    if (reap(c, false) != 0) return TY_EIO; /* move our own sends on meanwhile */
    if (spins < 200) continue;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
    if (ty_mono_ms() > deadline) {
      c->failed = true;
      return ty__coll_set_err(c, TY_ETIMEDOUT,
                              "pipeline message from rank %u: none within %u ms (a rank died or "
                              "hangs)",
                              peer, c->o.timeout_ms);
    }
  }
}

int ty_coll_recv(uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n, size_t *out_n,
                 void *user) {
  ty_coll *c = user;
  MPI_Status st;
  int rc = usable(c, peer), count = 0;
#ifdef TY_HAVE_NCCL
  if (rc == 0 && on_nccl(c)) return ty__nccl_recv(c, peer, out_hdr, buf, n, out_n);
#endif
  if (rc == 0) rc = probe(c, peer, &st);
  if (rc != 0) return rc;
  MPI_Get_count(&st, MPI_BYTE, &count);
  uint8_t *msg = malloc((size_t)count + HDR_BYTES);
  if (!msg) return TY_ENOMEM;
  int mrc = MPI_Recv(msg, count, MPI_BYTE, (int)peer, P2P_TAG, c->world.comm, MPI_STATUS_IGNORE);
  if (mrc != MPI_SUCCESS) {
    free(msg);
    return ty__coll_mpi_err(c, mrc, "MPI_Recv (pipeline)");
  }
  memset(out_hdr, 0, HDR_BYTES);
  size_t got = (size_t)count >= HDR_BYTES ? ((size_t)count - HDR_BYTES) / sizeof *buf : 0;
  if ((size_t)count >= HDR_BYTES) memcpy(out_hdr, msg, HDR_BYTES);
  if (got == n) memcpy(buf, msg + HDR_BYTES, n * sizeof *buf);
  *out_n = got;
  free(msg);
  return 0;
}

int ty_coll_flush(void *user) {
  ty_coll *c = user;
#ifdef TY_HAVE_NCCL
  if (on_nccl(c)) return c->failed ? ty__coll_failed_before(c) : ty__nccl_flush(c);
#endif
  return c->n_sends ? reap(c, true) : 0;
}

void ty__coll_p2p_close(ty_coll *c) {
#ifdef TY_HAVE_NCCL
  if (on_nccl(c)) ty__nccl_p2p_close(c);
#endif
  for (size_t i = 0; i < c->n_sends; i++)
    free(c->sends[i].buf); /* the process is ending or the sends completed */
  free(c->sends);
  c->sends = NULL;
  c->n_sends = 0;
}
