/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for lib/rpc's envelope codec: a frame body is decoded;
 * whatever decodes must encode again (ty_rpc_encode refuses exactly what
 * decode refuses) and decode to the same message.
 */
#include "lib/base/base.h"
#include "lib/rpc/rpc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool same_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn) {
  return an == bn && (an == 0 || memcmp(a, b, an) == 0);
}

static bool same(const ty_rpc_msg *a, const ty_rpc_msg *b) {
  return a->version == b->version && a->request_id == b->request_id && a->kind == b->kind &&
         a->status == b->status && strcmp(a->method, b->method) == 0 &&
         strcmp(a->message, b->message) == 0 &&
         same_bytes(a->credential, a->credential_len, b->credential, b->credential_len) &&
         same_bytes(a->payload, a->payload_len, b->payload, b->payload_len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  ty_rpc_msg m;
  void *owner;
  if (ty_rpc_decode(data, size, &m, &owner) != 0) return 0;
  uint8_t *frame;
  size_t len;
  int rc = ty_rpc_encode(&m, &frame, &len);
  if (rc != 0) {
    fprintf(stderr, "a decoded envelope does not encode: %s\n", ty_strerror(rc));
    abort();
  }
  ty_rpc_msg again;
  void *owner2;
  if (len < TY_RPC_FRAME_HEADER ||
      ty_rpc_decode(frame + TY_RPC_FRAME_HEADER, len - TY_RPC_FRAME_HEADER, &again, &owner2) != 0 ||
      !same(&m, &again)) {
    fprintf(stderr, "an envelope changed through encode and decode\n");
    abort();
  }
  ty_rpc_msg_free(owner2);
  free(frame);
  ty_rpc_msg_free(owner);
  return 0;
}
