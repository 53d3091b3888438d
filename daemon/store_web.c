/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The web console's per-user tokens in the store (schema 7, table
 * web_tokens): writes on the committer's connection (through a ty_txn),
 * reads on the loop's. A row holds the token's SHA-256, never the token,
 * so the database file admits nobody to the console. A revoked token keeps
 * its row (revoked_ms) until a day past its expiry, so the console can say
 * "revoked" rather than "unknown"; storing a new token forgets older ones.
 * Few rows (a user makes a token per browser every few days): each
 * statement is prepared when run.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon_internal.h"
#include "daemon/store_internal.h"

#define FORGET_AFTER_MS (24LL * 3600 * 1000)

static int exec(sqlite3 *db, const char *sql, const ty_web_token_row *r) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return TY_ESTORE;
  sqlite3_bind_text(st, 1, r->hash, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, r->uid);
  sqlite3_bind_int64(st, 3, r->gid);
  sqlite3_bind_text(st, 4, r->user, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 5, r->created_ms);
  sqlite3_bind_int64(st, 6, r->expires_ms);
  sqlite3_bind_int64(st, 7, r->revoked_ms);
  int rc = sqlite3_step(st) == SQLITE_DONE ? 0 : TY_ESTORE;
  sqlite3_finalize(st);
  return rc;
}

int ty_store_put_web_token(ty_store *s, const ty_web_token_row *r) {
  sqlite3 *db = ty__store_writer_db(s);
  ty_web_token_row old = {.created_ms = r->created_ms - FORGET_AFTER_MS};
  int rc = exec(db, "DELETE FROM web_tokens WHERE expires_ms < ?5", &old);
  if (rc == 0)
    rc = exec(db,
              "INSERT INTO web_tokens(hash, uid, gid, user, created_ms, expires_ms, revoked_ms)"
              " VALUES(?1,?2,?3,?4,?5,?6,?7)",
              r);
  return rc;
}

int ty_store_revoke_web_tokens(ty_store *s, uint32_t uid, int64_t now_ms) {
  ty_web_token_row k = {.uid = uid, .revoked_ms = now_ms};
  return exec(ty__store_writer_db(s),
              "UPDATE web_tokens SET revoked_ms = ?7 WHERE uid = ?2 AND revoked_ms = 0", &k);
}

int ty_store_find_web_token(ty_store *s, const char *hash, ty_web_token_row *out) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(ty__store_loop_db(s),
                         "SELECT uid, gid, user, created_ms, expires_ms, revoked_ms"
                         " FROM web_tokens WHERE hash = ?1",
                         -1, &st, NULL) != SQLITE_OK)
    return TY_ESTORE;
  sqlite3_bind_text(st, 1, hash, -1, SQLITE_STATIC);
  int step = sqlite3_step(st), rc = step == SQLITE_ROW    ? 0
                                    : step == SQLITE_DONE ? TY_ENOTFOUND
                                                          : TY_ESTORE;
  if (rc == 0) {
    memset(out, 0, sizeof(*out));
    snprintf(out->hash, sizeof(out->hash), "%s", hash);
    out->uid = (uint32_t)sqlite3_column_int64(st, 0);
    out->gid = (uint32_t)sqlite3_column_int64(st, 1);
    const unsigned char *user = sqlite3_column_text(st, 2);
    snprintf(out->user, sizeof(out->user), "%s", user ? (const char *)user : "");
    out->created_ms = sqlite3_column_int64(st, 3);
    out->expires_ms = sqlite3_column_int64(st, 4);
    out->revoked_ms = sqlite3_column_int64(st, 5);
  }
  sqlite3_finalize(st);
  ty__store_count_rows(s, rc == 0, false);
  return rc;
}

int ty_store_count_web_tokens(ty_store *s, uint32_t uid, int64_t now_ms, uint32_t *out_n) {
  sqlite3_stmt *st = NULL;
  if (sqlite3_prepare_v2(ty__store_loop_db(s),
                         "SELECT COUNT(*) FROM web_tokens"
                         " WHERE uid = ?1 AND revoked_ms = 0 AND expires_ms > ?2",
                         -1, &st, NULL) != SQLITE_OK)
    return TY_ESTORE;
  sqlite3_bind_int64(st, 1, uid);
  sqlite3_bind_int64(st, 2, now_ms);
  int rc = sqlite3_step(st) == SQLITE_ROW ? 0 : TY_ESTORE;
  if (rc == 0) *out_n = (uint32_t)sqlite3_column_int64(st, 0);
  sqlite3_finalize(st);
  return rc;
}
