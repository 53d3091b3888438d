/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console's per-user tokens. `trainctl web-token` calls WebToken
 * with the caller's credential (MUNGE proves the uid); traind answers a new
 * token bound to that uid and stores only its SHA-256 with the uid, the
 * user's name and primary group and the expiry (store_web.c). A console
 * request bearing the token then acts as that user: its actions run the
 * RPC handlers with that identity (web.c), so the console allows exactly
 * what trainctl allows the user. `trainctl web-token --revoke` revokes
 * every live token of the caller.
 *
 * Expiry: 7 days unless asked (ttl_s), at most 90 days; at most LIVE_MAX
 * live tokens per user. The answer comes
 * once the row is durable, so a token printed is a token that works after
 * a restart.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/convert_internal.h"
#include "daemon/daemon_internal.h"
#include "daemon/web_internal.h"
#include "lib/token/token.h"

#define LIVE_MAX 64u      /* live tokens per user: a browser each, not an unbounded table */
#define ID_CACHE_MS 60000 /* how long a looked-up identity is trusted (group changes) */

typedef struct issue_ctx {
  ty_reply *r;
  uint32_t uid;
  char token[TY_TOKEN_WEB_LEN + 1];
  int64_t expires_ms;
  uint32_t revoked;
} issue_ctx;

/* The console's address as a user's browser reaches it: the listening
 * host, or this host's name when it listens on every address; the token in
 * its fragment, which the browser keeps to itself (web.c). */
static void console_url(const ty_controller *ctl, const char *token, char *out, size_t cap) {
  int port = ty_controller_web_port(ctl);
  if (port < 0) {
    out[0] = '\0';
    return;
  }
  char host[256];
  const char *h = ctl->cfg.web_host;
  if (!strcmp(h, "0.0.0.0") || !strcmp(h, "::") || !h[0]) {
    if (gethostname(host, sizeof(host)) != 0) snprintf(host, sizeof(host), "localhost");
    host[sizeof(host) - 1] = '\0';
    h = host;
  }
  bool v6 = strchr(h, ':') != NULL;
  snprintf(out, cap, "http://%s%s%s:%d/#token=%s", v6 ? "[" : "", h, v6 ? "]" : "", port, token);
}

/* Forgets the cached identities of uid's tokens (after a revocation). */
static void forget_uid(ty_controller *ctl, uint32_t uid) {
  for (size_t i = 0; ctl->web_ids && i < TY__WEB_IDS; i++)
    if (ctl->web_ids[i].cached_mono && ctl->web_ids[i].id.uid == uid)
      ctl->web_ids[i].cached_mono = 0;
}

static void on_committed(int status, void *ud) {
  issue_ctx *ic = ud;
  ty_reply *r = ic->r;
  if (!ic->token[0]) forget_uid(r->ctl, ic->uid); /* a lookup may have cached one meanwhile */
  if (status != 0) {
    ty__reply_finish(r, status == TY_ECLOSED ? TY_ECLOSED : TY_ESTORE,
                     "the token was not stored; check the controller's log and retry");
  } else {
    char url[512] = "";
    if (ic->token[0]) console_url(r->ctl, ic->token, url, sizeof(url));
    int rc = ty__conv_web_token_resp(ic->token, ic->expires_ms, ic->revoked, url, &r->out);
    ty__reply_finish(r, rc, rc ? "cannot encode the answer" : NULL);
  }
  memset(ic->token, 0, sizeof(ic->token));
  free(ic);
}

/* A new token for r's caller into t: 0, or the refusal in err (too many
 * live tokens, no randomness). */
static int issue(ty_controller *ctl, const ty_reply *r, issue_ctx *ic, uint32_t ttl_s, int64_t now,
                 ty_txn *t, char *err, size_t len) {
  uint32_t live = 0;
  if (ty_store_count_web_tokens(ctl->store, r->who.uid, now, &live) == 0 && live >= LIVE_MAX)
    return ty_errf(err, len, TY_ESTATE,
                   "%s has %u console tokens that still work, the most one user may; revoke "
                   "them (trainctl web-token --revoke)",
                   r->who.user, live);
  if (ty_token_web_new(ic->token) != 0)
    return ty_errf(err, len, TY_EIO, "no randomness for a token (getrandom failed)");
  ty_web_token_row row = {.uid = r->who.uid, .gid = r->who.gid, .created_ms = now};
  ty_token_web_hash(ic->token, row.hash);
  snprintf(row.user, sizeof(row.user), "%s", r->who.user);
  row.expires_ms = ic->expires_ms =
      now + (int64_t)(ttl_s ? ttl_s : TY_WEB_TOKEN_TTL_DEFAULT_S) * 1000;
  ty_txn_put_web_token(t, &row);
  return 0;
}

void ty__h_web_token(ty_controller *ctl, ty_reply *r, const uint8_t *p, size_t n) {
  uint32_t ttl_s = 0;
  bool revoke = false;
  char err[TY_ERR_LEN];
  int rc = ty__conv_web_token_req(p, n, &ttl_s, &revoke);
  if (rc != 0) {
    ty__reply_bad_payload(r, rc, "a WebTokenRequest");
    return;
  }
  if (ttl_s > TY_WEB_TOKEN_TTL_MAX_S) {
    ty__reply_finishf(r, TY_EINVAL,
                      "ttl_s: %u s is longer than the most a token may live (%u s, 90 days)", ttl_s,
                      TY_WEB_TOKEN_TTL_MAX_S);
    return;
  }
  issue_ctx *ic = ty_xcalloc(1, sizeof(*ic));
  ic->r = r;
  ic->uid = r->who.uid;
  int64_t now = ty_now_ms();
  ty_txn *t = ty_txn_create();
  if (revoke) {
    if (ty_store_count_web_tokens(ctl->store, r->who.uid, now, &ic->revoked) != 0)
      ic->revoked = 0; /* the answer's count only; the revocation itself is the txn's */
    ty_txn_revoke_web_tokens(t, r->who.uid, now);
    forget_uid(ctl, r->who.uid);
  } else if ((rc = issue(ctl, r, ic, ttl_s, now, t, err, sizeof(err))) != 0) {
    ty_txn_destroy(t);
    free(ic);
    ty__reply_finish(r, rc, err);
    return;
  }
  ty__commit(ctl, t, on_committed, ic);
}

/* The cached identity of the token with this hash, or NULL. */
static const ty__web_id *cached(const ty_controller *ctl, const char *hash) {
  int64_t mono = ty_mono_ms(), now = ty_now_ms();
  for (size_t i = 0; ctl->web_ids && i < TY__WEB_IDS; i++) {
    const ty__web_id *e = &ctl->web_ids[i];
    if (e->cached_mono && mono - e->cached_mono < ID_CACHE_MS && e->expires_ms > now &&
        !strcmp(e->hash, hash))
      return e;
  }
  return NULL;
}

/* Keeps an identity in the slot looked up longest ago. */
static void cache(ty_controller *ctl, const char *hash, const ty_auth_id *id, int64_t expires_ms) {
  if (!ctl->web_ids && !(ctl->web_ids = calloc(TY__WEB_IDS, sizeof(*ctl->web_ids)))) return;
  ty__web_id *slot = &ctl->web_ids[0];
  for (size_t i = 1; i < TY__WEB_IDS; i++)
    if (ctl->web_ids[i].cached_mono < slot->cached_mono) slot = &ctl->web_ids[i];
  snprintf(slot->hash, sizeof(slot->hash), "%s", hash);
  slot->id = *id;
  slot->expires_ms = expires_ms;
  slot->cached_mono = ty_mono_ms();
}

int ty__web_token_identify(ty_controller *ctl, const char *token, ty_auth_id *who, char *err,
                           size_t len) {
  if (ty_token_web_check(token) != 0)
    return ty_errf(err, len, TY_EPERM,
                   "token: not a console token (\"%s\" and 32 hex digits, from `trainctl "
                   "web-token`)",
                   TY_TOKEN_WEB_PREFIX);
  ty_web_token_row row;
  char hash[TY_TOKEN_WEB_HASH_LEN + 1];
  ty_token_web_hash(token, hash);
  const ty__web_id *hit = cached(ctl, hash);
  if (hit) {
    *who = hit->id;
    return 0;
  }
  int rc = ty_store_find_web_token(ctl->store, hash, &row);
  if (rc == TY_ENOTFOUND)
    return ty_errf(err, len, TY_EPERM,
                   "token: unknown to this controller; run `trainctl web-token` for one");
  if (rc != 0)
    return ty_errf(err, len, TY_ESTORE, "token: cannot be looked up: %s",
                   ty_store_errmsg(ctl->store));
  if (row.revoked_ms)
    return ty_errf(err, len, TY_EPERM,
                   "token: revoked (trainctl web-token --revoke); run `trainctl web-token` for a "
                   "new one");
  if (row.expires_ms <= ty_now_ms())
    return ty_errf(err, len, TY_EPERM, "token: expired; run `trainctl web-token` for a new one");
  ty_auth_id_local(row.uid, row.gid, who);
  who->authenticated = true;
  if (!who->known) snprintf(who->user, sizeof(who->user), "%s", row.user);
  cache(ctl, hash, who, row.expires_ms);
  return 0;
}
