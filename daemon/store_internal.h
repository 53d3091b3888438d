/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the store's files share among themselves and with no one else:
 * store.c (connections, the committer), store_query.c (the loop thread's
 * reads), store_schema.c (the schema and its migrations) and store_web.c.
 * The store's API for the rest of the controller is daemon.h's ty_store_*.
 */
#ifndef TY_DAEMON_STORE_INTERNAL_H
#define TY_DAEMON_STORE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"

/* ---- store.c's internals that store_query.c shares ---- */
struct sqlite3;
struct sqlite3 *ty__store_loop_db(ty_store *s);   /* the loop thread's reader */
struct sqlite3 *ty__store_writer_db(ty_store *s); /* the committer thread's */
const char *ty__store_path(const ty_store *s);
/* The loop reader's statements kept prepared (store_query.c makes the
 * cache on first use and frees it; store.c holds it and calls the free at
 * close, before the reader connection is closed). */
typedef struct ty__stmt_cache ty__stmt_cache;
ty__stmt_cache **ty__store_loop_stmts(ty_store *s);
void ty__stmt_cache_free(ty__stmt_cache *c); /* accepts NULL */
void ty__store_count_rows(ty_store *s, uint64_t n, bool scanned);
/* Small helpers of store.c that store_schema.c shares: sqlite3_exec as 0 or
 * TY_ESTORE; the first column of the first row as an int; the error
 * "PATH: WHAT: sqlite's message" into err (db may be NULL), TY_ESTORE. */
int ty__store_exec(struct sqlite3 *db, const char *sql);
int ty__store_query_int(struct sqlite3 *db, const char *sql, int *out);
int ty__store_err(char *err, size_t len, const char *path, const char *what, struct sqlite3 *db);
/* PRAGMA quick_check on db, of one table and its indexes or (NULL) of the
 * whole file: 0, or TY_ESTORE and a sentence naming path and the damage;
 * UV_ECANCELED when db's progress handler interrupted it (no verdict). */
int ty__store_quick_check(struct sqlite3 *db, const char *path, const char *table, char *err,
                          size_t len);

/* ---- store_schema.c: the schema and the SQL made from TY_JOB_COLUMNS ---- */
/* Takes db (the state file at path) to this build's schema version, one
 * transaction per version; refuses a newer file. 0, or TY_ESTORE and err. */
int ty__store_migrate(struct sqlite3 *db, const char *path, char *err, size_t len);
/* INSERT of every jobs column into `table`: jobs, or arrays with its
 * element count as the last parameter. */
int ty__store_insert_sql(ty_buf *b, const char *table);
/* UPDATE jobs of the columns in cols but the key, each bound as ?N with N
 * its column number + 1, like the INSERT. */
int ty__store_update_sql(ty_job_cols cols, ty_buf *b);

#endif
