/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The envelope codec: ty_rpc_msg <-> protobuf-encoded tyrpc.Envelope (see
 * envelope.proto, field by field). Pure: bytes in, messages out.
 *
 * Decoding validates what the protobuf layer cannot: the kind is one of the
 * five known ones and a REQUEST names its method. Versions are checked by the
 * connection, which must still answer a request of another version.
 * Encoding escapes a message that holds a control byte or is not UTF-8.
 */
#include "lib/base/base.h"
#include "lib/rpc/envelope.pb-c.h"
#include "lib/rpc/rpc.h"
#include "lib/rpc/rpc_internal.h"

#include <stdlib.h>
#include <string.h>

static bool kind_known(int kind) {
  return kind >= TY_RPC_REQUEST && kind <= TY_RPC_CANCEL;
}

/* protobuf-c's setters take non-const pointers but pack only reads them. */
static void fill_envelope(const ty_rpc_msg *m, Tyrpc__Envelope *e) {
  e->version = m->version;
  e->request_id = m->request_id;
  e->kind = (Tyrpc__Kind)m->kind;
  e->method = (char *)(m->method ? m->method : "");
  e->status = (int32_t)m->status;
  e->message = (char *)(m->message ? m->message : "");
  e->credential.len = m->credential ? m->credential_len : 0;
  e->credential.data = (uint8_t *)m->credential;
  e->payload.len = m->payload ? m->payload_len : 0;
  e->payload.data = (uint8_t *)m->payload;
  e->auth.len = m->auth ? m->auth_len : 0;
  e->auth.data = (uint8_t *)m->auth;
}

/* The message as sent: escaped (ty_escape_text) when it holds a control
 * byte or is not UTF-8, in *owned (freed by the caller), so an answer that
 * quotes what a peer sent is one line of valid UTF-8. NULL: out of memory. */
static const char *sendable_message(const char *msg, char **owned) {
  *owned = NULL;
  size_t n = msg ? strlen(msg) : 0;
  if (!ty_text_needs_escape(msg ? msg : "", n)) return msg;
  *owned = malloc(4 * n + 1);
  if (*owned) ty_escape_text(msg, n, *owned, 4 * n + 1);
  return *owned;
}

int ty__rpc_encode_prefixed(const ty_rpc_msg *m, size_t prefix, uint8_t **out_block,
                            size_t *out_frame_len) {
  if (!m || !kind_known((int)m->kind)) return TY_EINVAL;
  if (m->kind == TY_RPC_REQUEST && (!m->method || !m->method[0])) return TY_EINVAL;
  char *owned;
  ty_rpc_msg sent = *m;
  sent.message = sendable_message(m->message, &owned);
  if (m->message && !sent.message) return TY_ENOMEM;
  Tyrpc__Envelope e = TYRPC__ENVELOPE__INIT;
  fill_envelope(&sent, &e);
  size_t body = tyrpc__envelope__get_packed_size(&e);
  uint8_t *block =
      body == 0 || body > UINT32_MAX ? NULL : malloc(prefix + TY_RPC_FRAME_HEADER + body);
  if (!block) {
    free(owned);
    return body == 0 || body > UINT32_MAX ? TY_ETOOBIG : TY_ENOMEM;
  }
  uint8_t *frame = block + prefix;
  ty_frame_put_header(frame, (uint32_t)body);
  tyrpc__envelope__pack(&e, frame + TY_RPC_FRAME_HEADER);
  free(owned);
  *out_block = block;
  *out_frame_len = TY_RPC_FRAME_HEADER + body;
  return 0;
}

int ty_rpc_encode(const ty_rpc_msg *m, uint8_t **out_frame, size_t *out_len) {
  return ty__rpc_encode_prefixed(m, 0, out_frame, out_len);
}

int ty_rpc_decode(const uint8_t *body, size_t len, ty_rpc_msg *out_msg, void **out_owner) {
  if (!body || len == 0) return TY_EPROTO;
  Tyrpc__Envelope *e = tyrpc__envelope__unpack(NULL, len, body);
  if (!e) return TY_EPROTO;
  if (!kind_known((int)e->kind) || (e->kind == TYRPC__KIND__REQUEST && !e->method[0])) {
    tyrpc__envelope__free_unpacked(e, NULL);
    return TY_EPROTO;
  }
  *out_msg = (ty_rpc_msg){
      .version = e->version,
      .request_id = e->request_id,
      .kind = (ty_rpc_kind)e->kind,
      .method = e->method,
      .status = e->status,
      .message = e->message,
      .credential = e->credential.data,
      .credential_len = e->credential.len,
      .payload = e->payload.data,
      .payload_len = e->payload.len,
      .auth = e->auth.data,
      .auth_len = e->auth.len,
  };
  *out_owner = e;
  return 0;
}

void ty_rpc_msg_free(void *owner) {
  if (owner) tyrpc__envelope__free_unpacked(owner, NULL);
}
