/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MUNGE scheme of lib/auth: a credential is what munge_encode() returns
 * for the request's digest; munged on the receiving host decodes it and
 * vouches for the uid and gid of the process that asked for it. munged
 * itself refuses a credential decoded twice (EMUNGE_CRED_REPLAYED: its
 * replay cache, kept until the credential's TTL ends) and one past its TTL
 * (EMUNGE_CRED_EXPIRED, default 300 s) or from the future
 * (EMUNGE_CRED_REWOUND), so this file keeps no replay state of its own.
 *
 * Each call opens its own munge context (and socket connection), so calls
 * may run on several threads at once, as Slurm's daemons do.
 */
#include "lib/auth/auth_internal.h"

#include <munge.h>
#include <nettle/memops.h>
#include <stdlib.h>
#include <string.h>

static munge_ctx_t context(const char *socket) {
  munge_ctx_t ctx = munge_ctx_create();
  if (ctx && munge_ctx_set(ctx, MUNGE_OPT_SOCKET, socket) != EMUNGE_SUCCESS) {
    munge_ctx_destroy(ctx);
    return NULL;
  }
  return ctx;
}

static const char *words(munge_ctx_t ctx, munge_err_t e) {
  const char *s = munge_ctx_strerror(ctx);
  return s && s[0] ? s : munge_strerror(e);
}

int ty__munge_sign(const char *socket, const uint8_t digest[32], uint8_t **out, size_t *out_len,
                   char *err, size_t err_len) {
  munge_ctx_t ctx = context(socket);
  if (!ctx) return TY_ENOMEM;
  char *cred = NULL;
  munge_err_t e = munge_encode(&cred, ctx, digest, 32);
  int rc = 0;
  if (e != EMUNGE_SUCCESS)
    rc = ty_errf(err, err_len, TY_EPERM, "munged at %s: %s", socket, words(ctx, e));
  munge_ctx_destroy(ctx);
  if (rc != 0) return rc;
  *out_len = strlen(cred);
  *out = (uint8_t *)cred; /* libmunge's malloc'ed string; the NUL stays unsent */
  return 0;
}

/* The label and sentence of a munge_decode refusal. */
static int refused(munge_ctx_t ctx, munge_err_t e, const char *socket, const char **label,
                   char *err, size_t len) {
  switch (e) {
  case EMUNGE_CRED_REPLAYED:
    *label = "replayed";
    return ty_errf(err, len, TY_EPERM, "credential: replayed (munged already decoded it once)");
  case EMUNGE_CRED_EXPIRED:
  case EMUNGE_CRED_REWOUND:
    *label = "expired";
    return ty_errf(err, len, TY_EPERM, "credential: %s", words(ctx, e));
  case EMUNGE_SOCKET:
  case EMUNGE_TIMEOUT:
  case EMUNGE_SNAFU:
  case EMUNGE_NO_MEMORY:
    *label = "munge_unavailable";
    return ty_errf(err, len, TY_EPERM, "cannot check the credential: munged at %s: %s", socket,
                   words(ctx, e));
  case EMUNGE_BAD_CRED:
  case EMUNGE_BAD_VERSION:
  case EMUNGE_BAD_LENGTH:
    *label = "malformed";
    return ty_errf(err, len, TY_EPERM, "credential: %s", words(ctx, e));
  default:
    *label = "bad_credential";
    return ty_errf(err, len, TY_EPERM, "credential: %s (another cluster's munge key?)",
                   words(ctx, e));
  }
}

int ty__munge_verify(const char *socket, const uint8_t digest[32], const uint8_t *cred,
                     size_t cred_len, ty_auth_id *out, const char **out_label, char *err,
                     size_t err_len) {
  if (memchr(cred, '\0', cred_len)) {
    *out_label = "malformed";
    return ty_errf(err, err_len, TY_EPERM, "credential: not a MUNGE credential");
  }
  char *text = malloc(cred_len + 1);
  munge_ctx_t ctx = text ? context(socket) : NULL;
  if (!ctx) {
    free(text);
    return TY_ENOMEM;
  }
  memcpy(text, cred, cred_len);
  text[cred_len] = '\0';
  void *payload = NULL;
  int len = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  munge_err_t e = munge_decode(text, ctx, &payload, &len, &uid, &gid);
  int rc = 0;
  if (e != EMUNGE_SUCCESS) {
    rc = refused(ctx, e, socket, out_label, err, err_len);
  } else if (len != 32 || !memeql_sec(payload, digest, 32)) {
    *out_label = "wrong_request";
    rc = ty_errf(err, err_len, TY_EPERM,
                 "credential: made for another request (its digest "
                 "does not match this method and payload)");
  }
  free(payload);
  free(text);
  munge_ctx_destroy(ctx);
  if (rc != 0) return rc;
  ty_auth_id_local((uint32_t)uid, (uint32_t)gid, out);
  out->authenticated = true;
  return 0;
}
