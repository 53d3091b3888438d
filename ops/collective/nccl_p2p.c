/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Pipeline messages over NCCL (p2p.c's ty_coll_send / recv / flush on a
 * world formed over NCCL; compiled with TY_HAVE_NCCL only). A message is
 * the trainer's four header words and a fifth, the float count, then the
 * floats; the receiver checks the header as on Open MPI (ops/train names a
 * wrong one) and takes whatever count the header announces.
 *
 * NCCL has no buffered send: ncclSend completes when the peer posts the
 * matching ncclRecv, and operations on one stream run in order. A send
 * that waited for its receiver would deadlock 1F1B (stage k sends an
 * activation while stage k + 1 sends a gradient back), so a send is
 * queued (a host copy) and posted with the rank's next receive or flush,
 * in one ncclGroupStart/End with it, as Megatron's batched
 * send-and-receive does. Each exchange runs in two grouped phases: every
 * queued header with the header received, then every queued payload with
 * the payload received (its count now known). Per peer the messages stay
 * in order, so headers and payloads pair up on both sides.
 *
 * Buffers are host memory (the pipelined stages run on the CPU executor);
 * they are staged through device buffers on the communicator's stream,
 * and every wait is bounded by the collective's deadline (nccl.c), so a
 * dead peer fails the step instead of hanging it.
 */
#include "ops/collective/coll_internal.h"

#include "lib/base/base.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <string.h>

#define HDR_WORDS 5 /* the trainer's four words, then the float count */
#define HDR_BYTES (HDR_WORDS * sizeof(uint64_t))

int ty__nccl_send(ty_coll *c, uint32_t peer, const uint64_t hdr[4], const float *buf, size_t n) {
  ty__p2p_send *s = realloc(c->sends, (c->n_sends + 1) * sizeof *s);
  uint8_t *copy = malloc(HDR_BYTES + n * sizeof *buf);
  if (s) c->sends = s;
  if (!s || !copy) {
    free(copy);
    return TY_ENOMEM;
  }
  uint64_t words[HDR_WORDS] = {hdr[0], hdr[1], hdr[2], hdr[3], (uint64_t)n};
  memcpy(copy, words, HDR_BYTES);
  memcpy(copy + HDR_BYTES, buf, n * sizeof *buf);
  c->sends[c->n_sends++] = (ty__p2p_send){.buf = copy, .peer = peer, .n = n};
  c->stats.p2p_msgs++;
  c->stats.p2p_bytes += HDR_BYTES + n * sizeof *buf;
  return 0;
}

/* Device copies of the queued sends (uploaded on the stream). */
static int upload(ty_coll *c, cudaStream_t stream) {
  for (size_t i = 0; i < c->n_sends; i++) {
    ty__p2p_send *s = &c->sends[i];
    size_t bytes = HDR_BYTES + s->n * sizeof(float);
    if (s->dev) continue;
    if (cudaMalloc(&s->dev, bytes) != cudaSuccess)
      return ty__coll_set_err(c, TY_ENOMEM, "pipeline message of %zu bytes: cudaMalloc failed",
                              bytes);
    cudaMemcpyAsync(s->dev, s->buf, bytes, cudaMemcpyHostToDevice, stream);
  }
  return 0;
}

/* One grouped phase: every queued send's header (or payload) and, when
 * recv_dev is set, the receive of `count` words of `type` from peer. */
static int phase(ty_coll *c, bool headers, uint32_t peer, void *recv_dev, size_t count,
                 ncclDataType_t type) {
  ncclComm_t comm;
  cudaStream_t stream;
  ty__nccl_world(c, (void **)&comm, (void **)&stream);
  ncclResult_t r = ncclGroupStart();
  for (size_t i = 0; r == ncclSuccess && i < c->n_sends; i++) {
    const ty__p2p_send *s = &c->sends[i];
    r = headers
            ? ncclSend(s->dev, HDR_WORDS, ncclUint64, (int)s->peer, comm, stream)
            : ncclSend((uint8_t *)s->dev + HDR_BYTES, s->n, ncclFloat, (int)s->peer, comm, stream);
  }
  if (r == ncclSuccess && recv_dev) r = ncclRecv(recv_dev, count, type, (int)peer, comm, stream);
  ncclResult_t e = ncclGroupEnd();
  if (r == ncclSuccess) r = e;
  if (r != ncclSuccess) {
    c->failed = true;
    return ty__coll_set_err(c, TY_EIO, "pipeline messages (NCCL %s): %s",
                            headers ? "headers" : "payloads", ncclGetErrorString(r));
  }
  return ty__nccl_wait(c, headers ? "pipeline message headers" : "pipeline message payloads");
}

static void drop_sends(ty_coll *c) {
  for (size_t i = 0; i < c->n_sends; i++) {
    cudaFree(c->sends[i].dev);
    free(c->sends[i].buf);
  }
  c->n_sends = 0;
}

int ty__nccl_recv(ty_coll *c, uint32_t peer, uint64_t out_hdr[4], float *buf, size_t n,
                  size_t *out_n) {
  ncclComm_t comm;
  cudaStream_t stream;
  ty__nccl_world(c, (void **)&comm, (void **)&stream);
  uint64_t words[HDR_WORDS] = {0};
  void *dhdr = NULL, *dbuf = NULL;
  float *host = NULL;
  int rc = upload(c, stream);
  if (rc == 0 && cudaMalloc(&dhdr, HDR_BYTES) != cudaSuccess) rc = TY_ENOMEM;
  if (rc == 0) rc = phase(c, true, peer, dhdr, HDR_WORDS, ncclUint64);
  if (rc == 0 && cudaMemcpy(words, dhdr, HDR_BYTES, cudaMemcpyDeviceToHost) != cudaSuccess)
    rc = ty__coll_set_err(c, TY_EIO, "pipeline message from rank %u: reading its header", peer);
  size_t got = (size_t)words[4];
  if (rc == 0 && got > (size_t)INT32_MAX)
    rc = ty__coll_set_err(c, TY_EPROTO, "pipeline message from rank %u announces %zu floats", peer,
                          got);
  if (rc == 0 && (cudaMalloc(&dbuf, got * sizeof *buf + 1) != cudaSuccess ||
                  !(host = malloc(got * sizeof *buf + 1))))
    rc = TY_ENOMEM;
  if (rc == 0) rc = phase(c, false, peer, dbuf, got, ncclFloat);
  if (rc == 0 && cudaMemcpy(host, dbuf, got * sizeof *buf, cudaMemcpyDeviceToHost) != cudaSuccess)
    rc = ty__coll_set_err(c, TY_EIO, "pipeline message from rank %u: reading its floats", peer);
  if (rc == 0) {
    memcpy(out_hdr, words, 4 * sizeof *words);
    if (got == n) memcpy(buf, host, n * sizeof *buf);
    *out_n = got;
    drop_sends(c);
  }
  cudaFree(dhdr);
  cudaFree(dbuf);
  free(host);
  return rc;
}

int ty__nccl_flush(ty_coll *c) {
  ncclComm_t comm;
  cudaStream_t stream;
  ty__nccl_world(c, (void **)&comm, (void **)&stream);
  if (c->n_sends == 0) return 0;
  int rc = upload(c, stream);
  if (rc == 0) rc = phase(c, true, 0, NULL, 0, ncclUint64);
  if (rc == 0) rc = phase(c, false, 0, NULL, 0, ncclFloat);
  if (rc == 0) drop_sends(c);
  return rc;
}

void ty__nccl_p2p_close(ty_coll *c) {
  for (size_t i = 0; i < c->n_sends; i++)
    cudaFree(c->sends[i].dev);
}
