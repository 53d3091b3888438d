/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The GPU path: NCCL on a stream of its own, so the reduction of one bucket
 * overlaps the compute stream's remaining backward work. Rank 0 creates
 * the ncclUniqueId and publishes it through the controller's rendezvous
 * store ("nccl.id"); the other ranks fetch it. Compiled only when meson
 * finds NCCL and CUDA (TY_HAVE_NCCL); the CPU build never sees it.
 *
 * The gradient all-reduce takes device pointers (the GPU executor's
 * gradients) or host ones (the CPU executor's, staged). A plan's mesh (mesh.c's
 * ty_coll_mesh_*) splits the world with ncclCommSplit, one communicator
 * per axis of more than one device (colour: the other coordinate, key:
 * this one, so ranks are in coordinate order), the world itself for both
 * axes; its collectives take host buffers, as ops/exec's tensors are, and
 * stage them through device buffers of the communicator's stream. Each
 * is checked like the MPI path: an all-gather of (seq, hash, length, stop)
 * on the group first, refusing a mismatch.
 *
 * Waits are bounded like the MPI path: the stream is polled with
 * cudaStreamQuery and the communicator aborted (ncclCommAbort) when the
 * deadline passes, so a dead peer cannot hang us.
 */
#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct nccl_state {
  ncclComm_t comm;
  ncclComm_t mesh[2]; /* per axis of more than one device; NULL otherwise */
  uint64_t seq[3];    /* checked mesh collectives per axis set - 1 */
  cudaStream_t stream;
  void *dev[2]; /* staging buffers of host tensors */
  size_t dev_cap;
  /* Device buckets started after the caller's event (ty__nccl_start_device):
   * a ring of "reduced" events, completed in start order. */
  cudaEvent_t done[TY__COLL_MAX_INFLIGHT];
  size_t done_head, done_count;
} nccl_state;

static int nccl_fail(ty_coll *c, ncclResult_t r, const char *what) {
  c->failed = true;
  return ty__coll_set_err(c, TY_EIO, "%s: %s", what, ncclGetErrorString(r));
}

int ty__nccl_create(ty_coll *c) {
  ncclUniqueId id;
  int rc = 0;
  if (c->o.rank == 0) {
    if (ncclGetUniqueId(&id) != ncclSuccess)
      return ty__coll_set_err(c, TY_EIO, "ncclGetUniqueId failed");
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
  if (nr != ncclSuccess ||
      cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking) != cudaSuccess) {
    ty__coll_set_err(c, TY_EIO, "ncclCommInitRank: %s", ncclGetErrorString(nr));
    free(s);
    return TY_EIO;
  }
  c->nccl = s;
  return 0;
}

void ty__nccl_destroy(ty_coll *c) {
  nccl_state *s = c->nccl;
  for (int a = 0; a < 2; a++)
    if (s->mesh[a]) c->failed ? ncclCommAbort(s->mesh[a]) : ncclCommDestroy(s->mesh[a]);
  if (c->failed)
    ncclCommAbort(s->comm);
  else
    ncclCommDestroy(s->comm);
  cudaFree(s->dev[0]);
  cudaFree(s->dev[1]);
  for (size_t i = 0; i < TY__COLL_MAX_INFLIGHT; i++)
    if (s->done[i]) cudaEventDestroy(s->done[i]);
  cudaStreamDestroy(s->stream);
  free(s);
  c->nccl = NULL;
}

/* Waits for the stream within the deadline. */
static int wait_stream(ty_coll *c, const char *what) {
  nccl_state *s = c->nccl;
  int64_t deadline = ty_mono_ms() + c->o.timeout_ms;
  cudaError_t q;
  while ((q = cudaStreamQuery(s->stream)) == cudaErrorNotReady) {
    if (ty_mono_ms() > deadline) {
      c->failed = true;
      return ty__coll_set_err(c, TY_ETIMEDOUT, "%s: no answer within %u ms (a rank died or hangs)",
                              what, c->o.timeout_ms);
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  return q == cudaSuccess ? 0 : ty__coll_set_err(c, TY_EIO, "%s: %s", what, cudaGetErrorString(q));
}

void ty__nccl_world(ty_coll *c, void **out_comm, void **out_stream) {
  nccl_state *s = c->nccl;
  *out_comm = s->comm;
  *out_stream = s->stream;
}

int ty__nccl_wait(ty_coll *c, const char *what) {
  return wait_stream(c, what);
}

/* ---- a plan's mesh ------------------------------------------------------------------ */

int ty__nccl_set_mesh(ty_coll *c) {
  nccl_state *s = c->nccl;
  int m1 = c->mesh_n[1], me = (int)c->o.rank, c0 = me / m1, c1 = me % m1;
  for (int a = 0; a < 2; a++) {
    if (c->mesh_n[a] <= 1) continue;
    ncclResult_t r = ncclCommSplit(s->comm, a == 0 ? c1 : c0, a == 0 ? c0 : c1, &s->mesh[a], NULL);
    if (r != ncclSuccess) return nccl_fail(c, r, "ncclCommSplit (mesh axis)");
  }
  return 0;
}

/* The communicator of an axis set and its size; NULL when this rank alone. */
static ncclComm_t group(ty_coll *c, unsigned axes, int *out_size, int *out_set) {
  nccl_state *s = c->nccl;
  unsigned m = 0;
  for (int a = 0; a < 2; a++)
    if ((axes >> a & 1u) && c->mesh_n[a] > 1) m |= 1u << a;
  *out_set = (int)m;
  *out_size = m == 3 ? (int)c->o.world_size : m ? c->mesh_n[m - 1] : 1;
  return m == 0 ? NULL : m == 3 ? s->comm : s->mesh[m - 1];
}

static int staging(ty_coll *c, size_t bytes) {
  nccl_state *s = c->nccl;
  if (bytes <= s->dev_cap) return 0;
  cudaFree(s->dev[0]);
  cudaFree(s->dev[1]);
  s->dev[0] = s->dev[1] = NULL;
  s->dev_cap = 0;
  if (cudaMalloc(&s->dev[0], bytes) != cudaSuccess || cudaMalloc(&s->dev[1], bytes) != cudaSuccess)
    return ty__coll_set_err(c, TY_ENOMEM, "cudaMalloc of %zu staging bytes failed", bytes);
  s->dev_cap = bytes;
  return 0;
}

/* One collective of kind on comm (size g) from host `in` into host `out`:
 * floats, counts per ty_shard_comm's contract. */
static int run(ty_coll *c, ncclComm_t comm, int g, const char *kind, const float *in, size_t n_in,
               float *out, size_t n_out) {
  nccl_state *s = c->nccl;
  int rc = staging(c, (n_in > n_out ? n_in : n_out) * sizeof(float));
  if (rc != 0) return rc;
  cudaMemcpyAsync(s->dev[0], in, n_in * sizeof(float), cudaMemcpyHostToDevice, s->stream);
  ncclResult_t r = ncclSuccess;
  if (!strcmp(kind, "all-reduce"))
    r = ncclAllReduce(s->dev[0], s->dev[1], n_in, ncclFloat, ncclSum, comm, s->stream);
  else if (!strcmp(kind, "all-gather"))
    r = ncclAllGather(s->dev[0], s->dev[1], n_in, ncclFloat, comm, s->stream);
  else if (!strcmp(kind, "reduce-scatter"))
    r = ncclReduceScatter(s->dev[0], s->dev[1], n_out, ncclFloat, ncclSum, comm, s->stream);
  else { /* all-to-all: chunk j to coordinate j */
    size_t chunk = n_in / (size_t)g;
    ncclGroupStart();
    for (int j = 0; j < g && r == ncclSuccess; j++) {
      r = ncclSend((float *)s->dev[0] + (size_t)j * chunk, chunk, ncclFloat, j, comm, s->stream);
      if (r == ncclSuccess)
        r = ncclRecv((float *)s->dev[1] + (size_t)j * chunk, chunk, ncclFloat, j, comm, s->stream);
    }
    ncclResult_t e = ncclGroupEnd();
    if (r == ncclSuccess) r = e;
  }
  if (r != ncclSuccess) return nccl_fail(c, r, kind);
  cudaMemcpyAsync(out, s->dev[1], n_out * sizeof(float), cudaMemcpyDeviceToHost, s->stream);
  return wait_stream(c, kind);
}

/* The (seq, hash, length, stop) agreement of the group, as the MPI path. */
static int check(ty_coll *c, ncclComm_t comm, int g, uint64_t seq, uint64_t hash, size_t n,
                 const char *desc) {
  nccl_state *s = c->nccl;
  uint64_t hdr[4] = {seq, hash, n, (uint64_t)ty__coll_stop_mine(c)};
  uint64_t *all = calloc((size_t)g, sizeof hdr);
  int rc = all ? staging(c, (size_t)g * sizeof hdr) : TY_ENOMEM;
  if (rc == 0) {
    cudaMemcpyAsync(s->dev[0], hdr, sizeof hdr, cudaMemcpyHostToDevice, s->stream);
    ncclResult_t r = ncclAllGather(s->dev[0], s->dev[1], 4, ncclUint64, comm, s->stream);
    rc = r == ncclSuccess ? 0 : nccl_fail(c, r, "ncclAllGather (check)");
    if (rc == 0)
      cudaMemcpyAsync(all, s->dev[1], (size_t)g * sizeof hdr, cudaMemcpyDeviceToHost, s->stream);
    if (rc == 0) rc = wait_stream(c, "shape check");
  }
  for (int j = 0; rc == 0 && j < g; j++) {
    if (all[4 * j + 3]) ty__coll_stop_seen(c);
    if (memcmp(&all[4 * j], &all[0], 3 * sizeof *all) != 0) {
      c->failed = true;
      rc = ty__coll_set_err(
          c, TY_EINVAL,
          "collective mismatch: member %d of this rank's group disagrees with member 0 on %s "
          "(seq %llu vs %llu, %llu vs %llu floats); the ranks do not run the same plan",
          j, desc, (unsigned long long)all[4 * j], (unsigned long long)all[0],
          (unsigned long long)all[4 * j + 2], (unsigned long long)all[2]);
    }
  }
  free(all);
  return rc;
}

int ty__nccl_mesh(ty_coll *c, const char *kind, unsigned axes, const float *in, size_t n_in,
                  float *out, size_t n_out, uint64_t hash, const char *desc) {
  int g, set;
  ncclComm_t comm = group(c, axes, &g, &set);
  if (!comm) {
    memcpy(out, in, n_out * sizeof *out);
    return 0;
  }
  nccl_state *s = c->nccl;
  int rc = check(c, comm, g, s->seq[set - 1]++, hash, n_in, desc);
  return rc ? rc : run(c, comm, g, kind, in, n_in, out, n_out);
}

/* The data-parallel gradient all-reduce. A device buffer (the GPU
 * executor's gradients) is reduced in place on the comm stream; a host
 * buffer (gradients of the CPU executor) is staged through the device,
 * since NCCL reads and writes device memory only. */
int ty__nccl_allreduce(ty_coll *c, float *buf, size_t n, uint64_t seq, uint64_t hash,
                       const char *desc) {
  nccl_state *s = c->nccl;
  int g = (int)c->o.world_size;
  int rc = check(c, s->comm, g, seq, hash, n, desc);
  if (rc != 0) return rc;
  struct cudaPointerAttributes at;
  bool on_device = cudaPointerGetAttributes(&at, buf) == cudaSuccess &&
                   (at.type == cudaMemoryTypeDevice || at.type == cudaMemoryTypeManaged);
  (void)cudaGetLastError(); /* a host pointer may leave an error behind on old drivers */
  if (!on_device) return run(c, s->comm, g, "all-reduce", buf, n, buf, n);
  ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, s->comm, s->stream);
  return r == ncclSuccess ? wait_stream(c, "ncclAllReduce") : nccl_fail(c, r, "ncclAllReduce");
}

int ty__nccl_allgather_bytes(ty_coll *c, const void *in, size_t n, void *out) {
  nccl_state *s = c->nccl;
  size_t w = c->o.world_size;
  int rc = staging(c, n * w);
  if (rc != 0) return rc;
  cudaMemcpyAsync(s->dev[0], in, n, cudaMemcpyHostToDevice, s->stream);
  ncclResult_t r = ncclAllGather(s->dev[0], s->dev[1], n, ncclUint8, s->comm, s->stream);
  if (r != ncclSuccess) return nccl_fail(c, r, "ncclAllGather");
  cudaMemcpyAsync(out, s->dev[1], n * w, cudaMemcpyDeviceToHost, s->stream);
  return wait_stream(c, "ncclAllGather");
}

/* ---- device buckets ordered after the compute stream ------------------------------- */
/* The all-reduce of device bucket buf on the comm stream once the caller's
 * event ready (a cudaEvent_t recorded on its compute stream after the
 * bucket's gradients) has completed: the host does not wait for the
 * compute stream, NCCL's stream does. The (seq, hash) check comes first on
 * the same stream (a communicator's operations must be issued in one
 * order on every rank), so it waits for the reductions queued before. */
int ty__nccl_start_device(ty_coll *c, float *buf, size_t n, uint64_t seq, uint64_t hash,
                          const char *desc, void *ready) {
  nccl_state *s = c->nccl;
  if (s->done_count == TY__COLL_MAX_INFLIGHT)
    return ty__coll_set_err(c, TY_ESTATE, "more than %d device all-reduces in flight",
                            TY__COLL_MAX_INFLIGHT);
  int rc = check(c, s->comm, (int)c->o.world_size, seq, hash, n, desc);
  if (rc != 0) return rc;
  size_t slot = (s->done_head + s->done_count) % TY__COLL_MAX_INFLIGHT;
  cudaError_t e = cudaSuccess;
  if (!s->done[slot]) e = cudaEventCreateWithFlags(&s->done[slot], cudaEventDisableTiming);
  if (e == cudaSuccess && ready) e = cudaStreamWaitEvent(s->stream, (cudaEvent_t)ready, 0);
  if (e != cudaSuccess)
    return ty__coll_set_err(c, TY_EIO, "%s: ordering after the compute stream: %s", desc,
                            cudaGetErrorString(e));
  ncclResult_t r = ncclAllReduce(buf, buf, n, ncclFloat, ncclSum, s->comm, s->stream);
  if (r != ncclSuccess) return nccl_fail(c, r, "ncclAllReduce (device bucket)");
  if ((e = cudaEventRecord(s->done[slot], s->stream)) != cudaSuccess)
    return ty__coll_set_err(c, TY_EIO, "%s: %s", desc, cudaGetErrorString(e));
  s->done_count++;
  return 0;
}

/* Completes the oldest device bucket within the deadline. */
int ty__nccl_wait_device(ty_coll *c) {
  nccl_state *s = c->nccl;
  if (s->done_count == 0) return ty__coll_set_err(c, TY_ESTATE, "no device all-reduce in flight");
  cudaEvent_t ev = s->done[s->done_head];
  int64_t deadline = ty_mono_ms() + c->o.timeout_ms;
  cudaError_t q;
  while ((q = cudaEventQuery(ev)) == cudaErrorNotReady) {
    if (ty_mono_ms() > deadline) {
      c->failed = true;
      return ty__coll_set_err(c, TY_ETIMEDOUT,
                              "device all-reduce: no answer within %u ms (a rank died or hangs)",
                              c->o.timeout_ms);
    }
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
  }
  s->done_head = (s->done_head + 1) % TY__COLL_MAX_INFLIGHT;
  s->done_count--;
  return q == cudaSuccess
             ? 0
             : ty__coll_set_err(c, TY_EIO, "device all-reduce: %s", cudaGetErrorString(q));
}
