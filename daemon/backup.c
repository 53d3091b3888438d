/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Online backup of the controller's store (`traind --backup FILE`,
 * docs/deploy.md): SQLite's backup API copies traind.db page by page from
 * a connection of its own, in a separate process, while traind runs.
 *
 * Why one step of all pages (sqlite3_backup_step(-1)): an incremental
 * backup restarts whenever another connection writes between its steps,
 * and a busy controller commits every few milliseconds, so it might never
 * finish. One step holds a single read transaction; in WAL mode a reader
 * never blocks the writer, so traind keeps committing (its WAL grows until
 * the copy ends and the next checkpoint runs) and the copy is the state as
 * of one commit: every job it holds was acknowledged, none half-written.
 *
 * The copy lands in DEST.tmp, passes PRAGMA quick_check, is fsynced and
 * renamed over DEST, so a crash or a full disk never leaves a truncated
 * backup under the final name.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"

/* The source is busy only while a writer checkpoints with TRUNCATE or an
 * operator's shell holds an exclusive lock: wait this long for it. */
#define BUSY_WAIT_MS 10000

static int sql_fail(sqlite3 *db, const char *what, const char *path, char *err, size_t len) {
  return ty_errf(err, len, TY_ESTORE, "%s %s: %s", what, path,
                 db ? sqlite3_errmsg(db) : "out of memory");
}

/* SQLite's message and, when a system call failed, its errno's. */
static int create_fail(sqlite3 *db, const char *path, char *err, size_t len) {
  int e = db ? sqlite3_system_errno(db) : 0;
  if (e == 0) return sql_fail(db, "cannot create", path, err, len);
  return ty_errf(err, len, TY_ESTORE, "cannot create %s: %s (%s)", path, sqlite3_errmsg(db),
                 strerror(e));
}

static int open_source(const char *path, sqlite3 **out, char *err, size_t len) {
  struct stat st;
  if (stat(path, &st) != 0)
    return ty_errf(err, len, TY_EIO, "no store at %s: %s (is --state-dir traind's?)", path,
                   strerror(errno));
  /* Read-write without create: a WAL reader needs the -shm index, which
   * SQLite may have to rebuild when traind is not running. */
  int rc = sqlite3_open_v2(path, out, SQLITE_OPEN_READWRITE, NULL);
  if (rc != SQLITE_OK) return sql_fail(*out, "cannot open", path, err, len);
  sqlite3_busy_timeout(*out, BUSY_WAIT_MS);
  return 0;
}

/* The copy's own checks: SQLite's quick_check and the schema version. */
static int check_copy(sqlite3 *db, const char *path, int *out_version, char *err, size_t len) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check", -1, &st, NULL);
  if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
    const char *verdict = (const char *)sqlite3_column_text(st, 0);
    if (!verdict || strcmp(verdict, "ok") != 0) {
      ty_errf(err, len, TY_ESTORE, "the copy %s fails quick_check: %s", path,
              verdict ? verdict : "(no answer)");
      sqlite3_finalize(st);
      return TY_ESTORE;
    }
  } else {
    sqlite3_finalize(st);
    return sql_fail(db, "cannot check the copy", path, err, len);
  }
  sqlite3_finalize(st);
  if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK ||
      sqlite3_step(st) != SQLITE_ROW) {
    sqlite3_finalize(st);
    return sql_fail(db, "cannot read the schema version of", path, err, len);
  }
  *out_version = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return 0;
}

/* Copies every page of src into dst in one step, waiting out a busy source. */
static int copy_pages(sqlite3 *src, sqlite3 *dst, const char *src_path, char *err, size_t len) {
  sqlite3_backup *b = sqlite3_backup_init(dst, "main", src, "main");
  if (!b) return sql_fail(dst, "cannot start the backup of", src_path, err, len);
  int rc;
  for (int waited = 0;; waited += 100) {
    rc = sqlite3_backup_step(b, -1);
    if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || waited >= BUSY_WAIT_MS) break;
    sqlite3_sleep(100);
  }
  sqlite3_backup_finish(b);
  if (rc != SQLITE_DONE)
    return ty_errf(err, len, TY_ESTORE, "backup of %s stopped: %s", src_path, sqlite3_errstr(rc));
  return 0;
}

/* fsyncs path (a file, or a directory after a rename into it). */
static int sync_path(const char *path, int flags, char *err, size_t len) {
  int fd = open(path, flags | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return ty_errf(err, len, TY_EIO, "cannot sync %s: %s", path, strerror(e));
  }
  close(fd);
  return 0;
}

/* The directory dest is in ("/", ".", or dest up to its last slash). */
static void dest_dir(const char *dest, char dir[PATH_MAX]) {
  snprintf(dir, PATH_MAX, "%s", dest);
  char *slash = strrchr(dir, '/');
  if (slash == dir)
    slash[1] = '\0';
  else if (slash)
    *slash = '\0';
  else
    snprintf(dir, PATH_MAX, ".");
}

/* The destination's directory must be one this user may add a file to;
 * checked first, since SQLite says only "unable to open database file". */
static int check_dest_dir(const char *dest, char *err, size_t len) {
  char dir[PATH_MAX];
  dest_dir(dest, dir);
  struct stat st;
  if (stat(dir, &st) != 0)
    return ty_errf(err, len, TY_EIO, "cannot create %s: its directory %s: %s (create it first)",
                   dest, dir, strerror(errno));
  if (!S_ISDIR(st.st_mode))
    return ty_errf(err, len, TY_EIO, "cannot create %s: %s is not a directory", dest, dir);
  if (access(dir, W_OK | X_OK) != 0)
    return ty_errf(err, len, TY_EIO, "cannot create %s in %s: %s (uid %u)", dest, dir,
                   strerror(errno), (unsigned)geteuid());
  return 0;
}

static int finish_file(const char *tmp, const char *dest, uint64_t *out_bytes, char *err,
                       size_t len) {
  struct stat st;
  int rc = sync_path(tmp, O_RDONLY, err, len);
  if (rc != 0) return rc;
  if (stat(tmp, &st) != 0 || rename(tmp, dest) != 0)
    return ty_errf(err, len, TY_EIO, "cannot move the copy to %s: %s", dest, strerror(errno));
  *out_bytes = (uint64_t)st.st_size;
  char dir[PATH_MAX];
  dest_dir(dest, dir);
  return sync_path(dir, O_RDONLY | O_DIRECTORY, err, len);
}

int ty_store_backup(const char *db_path, const char *dest_path, ty_store_backup_info *out,
                    char *err, size_t err_len) {
  char tmp[PATH_MAX];
  if (snprintf(tmp, sizeof tmp, "%s.tmp", dest_path) >= (int)sizeof tmp)
    return ty_errf(err, err_len, TY_EINVAL, "backup file name too long: %s", dest_path);
  sqlite3 *src = NULL, *dst = NULL;
  ty_store_backup_info info = {0};
  int rc = check_dest_dir(dest_path, err, err_len);
  if (rc == 0) rc = open_source(db_path, &src, err, err_len);
  if (rc == 0) {
    unlink(tmp);             /* a leftover of an interrupted backup */
    mode_t old = umask(077); /* the store holds job environments: 0600 like traind.db */
    int o = sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    umask(old);
    if (o != SQLITE_OK) rc = create_fail(dst, tmp, err, err_len);
  }
  if (rc == 0) rc = copy_pages(src, dst, db_path, err, err_len);
  if (rc == 0) rc = check_copy(dst, tmp, &info.user_version, err, err_len);
  sqlite3_close(src);
  if (dst && sqlite3_close(dst) != SQLITE_OK && rc == 0)
    rc = ty_errf(err, err_len, TY_ESTORE, "cannot close %s", tmp);
  if (rc == 0) rc = finish_file(tmp, dest_path, &info.bytes, err, err_len);
  if (rc != 0)
    unlink(tmp);
  else if (out)
    *out = info;
  return rc;
}
