/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The credential every trainctl and rlaunch request to traind carries
 * (lib/auth, docs/security.md): a MUNGE credential for the request, made by
 * munged at $TRAINYARD_MUNGE_SOCKET (default: munged's own socket). When
 * munged cannot be reached the request goes without one, which a controller
 * started with --auth none accepts; the reason is kept so that a refusal
 * from a controller that does authenticate can say what went wrong here.
 * A connection to the controller's local Unix socket (cli/socket.c) is not
 * signed: traind identifies its peer by the kernel's word and ignores any
 * credential there, so nothing is asked of munged.
 * Every connection trainctl and rlaunch open, retries' included, comes from
 * ty_cli_open (here) or ty_cli_connect (connect.c: libuv's, kept out of
 * this file so that trainctl's one-shot commands do not link libuv), so no
 * request leaves unsigned by oversight.
 */
#include "cli/cli.h"
#include "cli/socket.h"

#include <stdlib.h>
#include <string.h>

void ty_cli_signer_init(ty_cli_signer *s) {
  if (s->ready) return;
  memset(s, 0, sizeof *s);
  s->ready = true;
  const char *socket = getenv("TRAINYARD_MUNGE_SOCKET");
  ty_auth_config cfg = {.mode = TY_AUTH_MUNGE, .munge_socket = socket && *socket ? socket : NULL};
  if (ty_auth_create(&cfg, &s->auth, s->failure, sizeof s->failure) != 0) s->auth = NULL;
}

void ty_cli_signer_close(ty_cli_signer *s) {
  ty_auth_destroy(s->auth);
  s->auth = NULL;
  s->ready = false;
}

int ty_cli_open(const char *host, int port, uint32_t timeout_ms, ty_cli_signer *signer,
                ty_rpc_sync **out) {
  const char *local = ty_cli_socket_for(host, port);
  if (local) {
    int lrc = ty_rpc_sync_open(local, 0, timeout_ms, out);
    if (lrc == 0) return 0; /* the kernel says who we are: nothing to sign */
    ty_cli_socket_failed(lrc);
  }
  int rc = ty_rpc_sync_open(host, port, timeout_ms, out);
  if (rc != 0 || !signer) return rc;
  ty_cli_signer_init(signer);
  ty_rpc_sync_set_signer(*out, ty_cli_sign, signer);
  return 0;
}

int ty_cli_sign(void *ud, const char *method, const void *payload, size_t len, ty_buf *out) {
  ty_cli_signer *s = ud;
  if (!s->auth) return 0;
  uint8_t *cred = NULL;
  size_t n = 0;
  char err[TY_ERR_LEN];
  int rc = ty_auth_sign(s->auth, method, payload, len, &cred, &n, err, sizeof err);
  if (rc == TY_ENOMEM) return rc;
  if (rc != 0) {
    snprintf(s->failure, sizeof s->failure, "%s", err);
    return 0; /* sent without one: fine for --auth none, explained otherwise */
  }
  s->failure[0] = '\0';
  rc = ty_buf_append(out, cred, n);
  free(cred);
  return rc;
}

const char *ty_cli_signer_hint(const ty_cli_signer *s, int status) {
  return status == TY_EPERM && s->failure[0] ? s->failure : NULL;
}
