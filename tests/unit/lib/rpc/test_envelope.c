/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the envelope codec (lib/rpc/envelope.c): a round trip of
 * every kind, and each rejection: garbage, unknown kind, request without
 * method, and encoding what decoding would refuse. */
#include <criterion/criterion.h>
#include <string.h>

#include "lib/base/base.h"
#include "lib/rpc/rpc.h"
#include "proto/methods.h"

/* Encodes, strips the header (checking it), decodes. */
static void round_trip(const ty_rpc_msg *in, ty_rpc_msg *out, void **owner) {
  uint8_t *frame = NULL;
  size_t len = 0;
  cr_assert_eq(ty_rpc_encode(in, &frame, &len), 0);
  cr_assert_gt(len, 4u);
  uint32_t body =
      (uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 | (uint32_t)frame[2] << 8 | frame[3];
  cr_assert_eq(body, len - 4);
  cr_assert_eq(ty_rpc_decode(frame + 4, len - 4, out, owner), 0);
  free(frame);
}

Test(envelope, round_trip_of_every_kind) {
  static const uint8_t payload[] = {0, 1, 2, 255};
  static const uint8_t cred[] = {'t', 'o', 'k', 'e', 'n'};
  static const uint8_t auth[] = {'M', 'U', 'N', 'G', 'E', ':'};
  for (int k = TY_RPC_REQUEST; k <= TY_RPC_CANCEL; k++) {
    ty_rpc_msg in = {
        .version = TY_RPC_VERSION,
        .request_id = 0x1234567890ull + (uint64_t)k,
        .kind = (ty_rpc_kind)k,
        .method = TY_M_SUBMIT_JOB,
        .status = k == TY_RPC_RESPONSE ? TY_ENOTFOUND : 0,
        .message = "job 99 not found",
        .credential = cred,
        .credential_len = sizeof cred,
        .payload = payload,
        .payload_len = sizeof payload,
        .auth = auth,
        .auth_len = sizeof auth,
    };
    ty_rpc_msg out;
    void *owner = NULL;
    round_trip(&in, &out, &owner);
    cr_assert_eq(out.version, TY_RPC_VERSION);
    cr_assert_eq(out.request_id, in.request_id);
    cr_assert_eq(out.kind, in.kind);
    cr_assert_str_eq(out.method, TY_M_SUBMIT_JOB);
    cr_assert_eq(out.status, in.status);
    cr_assert_str_eq(out.message, "job 99 not found");
    cr_assert_eq(out.credential_len, sizeof cred);
    cr_assert_eq(memcmp(out.credential, cred, sizeof cred), 0);
    cr_assert_eq(out.payload_len, sizeof payload);
    cr_assert_eq(memcmp(out.payload, payload, sizeof payload), 0);
    cr_assert_eq(out.auth_len, sizeof auth);
    cr_assert_eq(memcmp(out.auth, auth, sizeof auth), 0);
    ty_rpc_msg_free(owner);
  }
}

Test(envelope, absent_strings_decode_as_empty) {
  ty_rpc_msg in = {.version = 1, .request_id = 1, .kind = TY_RPC_END, .status = 0};
  ty_rpc_msg out;
  void *owner = NULL;
  round_trip(&in, &out, &owner);
  cr_assert_not_null(out.method);
  cr_assert_not_null(out.message);
  cr_assert_str_eq(out.method, "");
  cr_assert_str_eq(out.message, "");
  cr_assert_eq(out.payload_len, 0u);
  cr_assert_eq(out.auth_len, 0u);
  ty_rpc_msg_free(owner);
}

/* A message quoting what a peer sent (a method, a path) goes out escaped:
 * one line of valid UTF-8, which strict protobuf decoders accept. */
Test(envelope, message_is_sent_as_valid_utf8_without_controls) {
  ty_rpc_msg in = {.version = 1,
                   .request_id = 3,
                   .kind = TY_RPC_RESPONSE,
                   .status = TY_ENOTFOUND,
                   .message = "unknown method \"\xff\xfe\n\""};
  ty_rpc_msg out;
  void *owner = NULL;
  round_trip(&in, &out, &owner);
  cr_assert_str_eq(out.message, "unknown method \"\\xff\\xfe\\n\"");
  ty_rpc_msg_free(owner);
  in.message = "caf\xc3\xa9 C:\\dir";
  round_trip(&in, &out, &owner);
  cr_assert_str_eq(out.message, "caf\xc3\xa9 C:\\dir", "valid text is sent as is");
  ty_rpc_msg_free(owner);
}

Test(envelope, negative_status_survives) {
  ty_rpc_msg in = {.version = 1, .request_id = 2, .kind = TY_RPC_RESPONSE, .status = TY_EVERSION};
  ty_rpc_msg out;
  void *owner = NULL;
  round_trip(&in, &out, &owner);
  cr_assert_eq(out.status, TY_EVERSION);
  ty_rpc_msg_free(owner);
}

Test(envelope, garbage_is_rejected) {
  static const uint8_t garbage[][6] = {
      {0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, /* endless varint */
      {0x0f, 0x00, 0x00, 0x00, 0x00, 0x00}, /* field 1 with wire type 7 */
      {0x42, 0x7f, 0x01, 0x02, 0x03, 0x04}, /* payload longer than the body */
  };
  for (size_t i = 0; i < TY_ARRAY_LEN(garbage); i++) {
    ty_rpc_msg out;
    void *owner = NULL;
    cr_assert_eq(ty_rpc_decode(garbage[i], sizeof garbage[i], &out, &owner), TY_EPROTO,
                 "accepted garbage #%zu", i);
  }
  ty_rpc_msg out;
  void *owner = NULL;
  cr_assert_eq(ty_rpc_decode((const uint8_t *)"", 0, &out, &owner), TY_EPROTO);
}

Test(envelope, unknown_kind_is_rejected) {
  /* version=1, kind=9 */
  static const uint8_t nine[] = {0x08, 0x01, 0x18, 0x09};
  /* version=1, kind absent (KIND_UNSPECIFIED) */
  static const uint8_t none[] = {0x08, 0x01, 0x10, 0x05};
  ty_rpc_msg out;
  void *owner = NULL;
  cr_assert_eq(ty_rpc_decode(nine, sizeof nine, &out, &owner), TY_EPROTO);
  cr_assert_eq(ty_rpc_decode(none, sizeof none, &out, &owner), TY_EPROTO);
}

Test(envelope, request_without_method_is_rejected) {
  /* version=1, request_id=7, kind=REQUEST, no method */
  static const uint8_t req[] = {0x08, 0x01, 0x10, 0x07, 0x18, 0x01};
  ty_rpc_msg out;
  void *owner = NULL;
  cr_assert_eq(ty_rpc_decode(req, sizeof req, &out, &owner), TY_EPROTO);
}

Test(envelope, decode_does_not_check_the_version) {
  static const uint8_t req[] = {0x08, 0x07, 0x10, 0x01, 0x18, 0x01, 0x22, 0x01, 'X'};
  ty_rpc_msg out;
  void *owner = NULL;
  cr_assert_eq(ty_rpc_decode(req, sizeof req, &out, &owner), 0);
  cr_assert_eq(out.version, 7u);
  cr_assert_str_eq(out.method, "X");
  ty_rpc_msg_free(owner);
}

Test(envelope, encode_refuses_what_decode_would_reject) {
  uint8_t *frame = NULL;
  size_t len = 0;
  ty_rpc_msg no_method = {.version = 1, .request_id = 1, .kind = TY_RPC_REQUEST};
  cr_assert_eq(ty_rpc_encode(&no_method, &frame, &len), TY_EINVAL);
  ty_rpc_msg bad_kind = {.version = 1, .request_id = 1, .kind = (ty_rpc_kind)9};
  cr_assert_eq(ty_rpc_encode(&bad_kind, &frame, &len), TY_EINVAL);
  cr_assert_null(frame);
}

Test(envelope, free_accepts_null) {
  ty_rpc_msg_free(NULL);
}
