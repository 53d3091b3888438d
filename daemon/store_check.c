/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The whole-file integrity check of a state database (ty_store_check,
 * PRAGMA quick_check on a read-only connection of its own) and what stops
 * it from another thread (ty_store_cancel: traind's start runs it on a
 * thread and cancels it when told to stop). The start's check of the
 * tables it reads first is store.c's (ty__store_quick_check).
 */
#include "daemon/daemon.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

#include "daemon/store_internal.h"
#include "lib/base/base.h"

/* What stops a whole-file check from another thread. The mutex keeps db
 * open while ty_store_cancel_fire interrupts it (sqlite3_interrupt must
 * not race the connection's close). */
struct ty_store_cancel {
  pthread_mutex_t mu;
  sqlite3 *db; /* the running check's connection, or NULL */
  atomic_bool fired;
};

ty_store_cancel *ty_store_cancel_create(void) {
  ty_store_cancel *c = ty_xcalloc(1, sizeof(*c));
  pthread_mutex_init(&c->mu, NULL);
  atomic_init(&c->fired, false);
  return c;
}

void ty_store_cancel_fire(ty_store_cancel *c) {
  pthread_mutex_lock(&c->mu);
  atomic_store(&c->fired, true);
  if (c->db) sqlite3_interrupt(c->db);
  pthread_mutex_unlock(&c->mu);
}

void ty_store_cancel_destroy(ty_store_cancel *c) {
  if (!c) return;
  pthread_mutex_destroy(&c->mu);
  free(c);
}

/* SQLite's progress handler during a cancellable ty_store_check, called
 * at every VDBE jump (period 1): nonzero (interrupt) once fired. The first
 * call comes before the b-tree walk (the program's fourth instruction),
 * which closes the race of a fire between setting db and the statement's
 * start (where SQLite clears an earlier sqlite3_interrupt); within the
 * walk, one instruction that calls no handler, sqlite3_interrupt stops
 * it. The first call also holds for hold_ms (tests), in 10 ms naps that
 * watch for a fire. */
static int check_progress(void *ud) {
  ty_store_check_opts *o = ud; /* ty_store_check's copy */
  for (uint32_t held = 0; held < o->hold_ms && !atomic_load(&o->cancel->fired); held += 10)
    uv_sleep(10);
  o->hold_ms = 0;
  return atomic_load(&o->cancel->fired) ? 1 : 0;
}

/* Publishes db to o's canceller (NULL: withdraws it); false when it fired
 * already. */
static bool share_db(const ty_store_check_opts *o, sqlite3 *db) {
  if (!o->cancel) return true;
  pthread_mutex_lock(&o->cancel->mu);
  o->cancel->db = db;
  bool go = !atomic_load(&o->cancel->fired);
  pthread_mutex_unlock(&o->cancel->mu);
  return go;
}

int ty_store_check(const char *path, const ty_store_check_opts *opts, char *err, size_t len) {
  sqlite3 *db = NULL;
  if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    ty__store_err(err, len, path, "integrity check: cannot open", db);
    sqlite3_close(db);
    return TY_ESTORE;
  }
  sqlite3_busy_timeout(db, 5000);
  ty_store_check_opts o = opts ? *opts : (ty_store_check_opts){0};
  if (o.cancel) sqlite3_progress_handler(db, 1, check_progress, &o);
  int rc = share_db(&o, db) ? ty__store_quick_check(db, path, NULL, err, len)
                            : ty_errf(err, len, UV_ECANCELED,
                                      "%s: integrity check stopped before it started", path);
  share_db(&o, NULL);
  sqlite3_close(db);
  return rc;
}
