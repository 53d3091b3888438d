/* SPDX-License-Identifier: Apache-2.0 */
/*
 * SQLite state of the controller.
 *
 * Settings, and why:
 *   - journal_mode=WAL: readers (GetJob's events, on the loop) never block on
 *     the writer, and a commit is one append + fsync of the WAL.
 *   - synchronous=FULL: an acknowledged job must survive power loss, not only
 *     a process crash. With NORMAL, WAL commits are not fsynced and the last
 *     transactions can vanish after a power cut. FULL costs one fsync per
 *     commit, which group commit (commit.c) amortises over every request that
 *     arrived while the previous commit ran.
 *   - busy_timeout=5000: an operator's sqlite3 shell holding a read lock
 *     delays us instead of failing writes.
 *   - foreign_keys=ON: events cannot point at missing jobs, jobs not at
 *     missing queues.
 *
 * The schema, its migrations and the SQL made from the jobs columns are
 * store_schema.c's; ty_store_open migrates a file before it prepares the
 * statements here.
 *
 * Pending arrays (schema 8): an array is stored at submit as ONE row of
 * `arrays` -- its first element's job row (the spec once) and its element
 * count -- instead of a jobs row per element. An element gets its own jobs
 * row when it leaves that record (jobs.c: it starts, or is cancelled, held
 * or changed alone), in the transaction of that change; so the elements
 * still in the record are exactly those of the array's ids without a jobs
 * row, and a split can never be stored twice (the row's id is its key).
 * The record goes once every element has a row; until then pruning leaves
 * the array's rows alone, since a pruned row would bring its element back.
 * Files from before keep their per-element rows, which are simply elements
 * already split off.
 */
#include "daemon/daemon.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "daemon/daemon_internal.h"
#include "daemon/store_internal.h"
#include "lib/base/base.h"

enum {
  ST_INSERT_JOB,
  ST_ADD_EVENT,
  ST_UPSERT_NODE,
  ST_DELETE_NODE,
  ST_UPSERT_QUEUE,
  ST_UPSERT_USAGE,
  ST_ADD_ADMIN_EVENT,
  ST_ADD_RANK,
  ST_RUN_STATE,
  ST_ADD_NODE_EVENT,
  ST_PRUNE_PICK,
  ST_PRUNE_EVENTS,
  ST_PRUNE_RANKS,
  ST_PRUNE_JOB,
  ST_PRUNE_NODE_EVENTS,
  ST_PRUNE_MARK,
  ST_ARRAY_LEFT,
  ST_INSERT_ARRAY,
  ST_ARRAY_DONE,
  ST_BEGIN,
  ST_COMMIT,
  ST_SAVEPOINT,
  ST_RELEASE,
  ST_N
};

static const char *const stmt_sql[ST_N] = {
    /* ST_INSERT_JOB: ty__store_insert_sql; updates: update_stmt, one per set of columns. */
    [ST_ADD_EVENT] = "INSERT INTO events(job_id, time_ms, from_state, to_state, reason, actor) "
                     "VALUES(?1,?2,?3,?4,?5,?6)",
    [ST_UPSERT_NODE] =
        "INSERT INTO nodes(name, state, cpus, memory, gpus, io_addr, last_seen_ms, reason, drain) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9) ON CONFLICT(name) DO UPDATE SET state=excluded.state, "
        "cpus=excluded.cpus, memory=excluded.memory, gpus=excluded.gpus, "
        "io_addr=excluded.io_addr, last_seen_ms=excluded.last_seen_ms, reason=excluded.reason, "
        "drain=excluded.drain",
    /* trainctl node delete: the row only; its node_events stay history. */
    [ST_DELETE_NODE] = "DELETE FROM nodes WHERE name = ?1",
    [ST_UPSERT_QUEUE] =
        "INSERT INTO queues(name, priority_tier, state, share, max_running, max_gpus, "
        "max_gpus_per_user, preemptible, default_time_s, max_time_s, default_mem, max_mem, "
        "allow_groups, allow_users) "
        "VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14) ON CONFLICT(name) "
        "DO UPDATE SET priority_tier=excluded.priority_tier, state=excluded.state, "
        "share=excluded.share, max_running=excluded.max_running, max_gpus=excluded.max_gpus, "
        "max_gpus_per_user=excluded.max_gpus_per_user, preemptible=excluded.preemptible, "
        "default_time_s=excluded.default_time_s, max_time_s=excluded.max_time_s, "
        "default_mem=excluded.default_mem, max_mem=excluded.max_mem, "
        "allow_groups=excluded.allow_groups, allow_users=excluded.allow_users",
    [ST_UPSERT_USAGE] =
        "INSERT INTO usage(user, queue, gpu_s, cpu_s, updated_ms) VALUES(?1,?2,?3,?4,?5) "
        "ON CONFLICT(user, queue) DO UPDATE SET gpu_s=excluded.gpu_s, cpu_s=excluded.cpu_s, "
        "updated_ms=excluded.updated_ms",
    [ST_ADD_ADMIN_EVENT] = "INSERT INTO admin_events(time_ms, actor, kind, object, action, detail) "
                           "VALUES(?1,?2,?3,?4,?5,?6)",
    [ST_ADD_RANK] =
        "INSERT OR REPLACE INTO ranks(job_id, run, rank, node, start_ms, end_ms, state, exit_code,"
        " term_signal, cpus, gpus, cpu_ms, gpu_ms, mem_peak, measured, run_state)"
        " VALUES(?1,?2,?3,?4,?5,?6,?7,?8,?9,?10,?11,?12,?13,?14,?15,?16)",
    [ST_RUN_STATE] = "UPDATE ranks SET run_state = ?3 WHERE job_id = ?1 AND run = ?2",
    [ST_ADD_NODE_EVENT] =
        "INSERT INTO node_events(node, time_ms, from_state, to_state, action, reason, actor)"
        " VALUES(?1,?2,?3,?4,?5,?6,?7)",
    /* Pruning walks jobs_by_end from the oldest end, never the whole table. */
    [ST_PRUNE_PICK] =
        "SELECT id, array_id, model_file, submit_ms FROM jobs WHERE end_ms > 0 AND end_ms < ?1"
        " AND state IN (3,4,5,6,7,8,9) AND array_id NOT IN (SELECT id FROM arrays)"
        " ORDER BY end_ms LIMIT ?2",
    [ST_PRUNE_EVENTS] = "DELETE FROM events WHERE job_id = ?1",
    [ST_PRUNE_RANKS] = "DELETE FROM ranks WHERE job_id = ?1",
    [ST_PRUNE_JOB] = "DELETE FROM jobs WHERE id = ?1",
    [ST_PRUNE_NODE_EVENTS] = "DELETE FROM node_events WHERE time_ms < ?1",
    /* The high-water mark of pruned ids (schema 13): never lowered. */
    [ST_PRUNE_MARK] = "INSERT INTO meta(key, value) VALUES('pruned_max_id', ?1) "
                      "ON CONFLICT(key) DO UPDATE SET value = MAX(value, excluded.value)",
    [ST_ARRAY_LEFT] = "SELECT 1 FROM jobs WHERE array_id = ?1 LIMIT 1",
    /* ST_INSERT_ARRAY: ty__store_insert_sql into `arrays`, with the element count. The
     * record goes only when every element has its row (the count says so,
     * not the caller's bookkeeping). */
    [ST_ARRAY_DONE] = "DELETE FROM arrays WHERE id = ?1 AND elements <= "
                      "(SELECT COUNT(*) FROM jobs WHERE array_id = ?1)",
    /* The group commit's frame: a batch is BEGIN, a SAVEPOINT and RELEASE
     * per txn, COMMIT. Kept prepared: through sqlite3_exec each was parsed
     * anew, 12k instructions per txn for the pair alone. */
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_SAVEPOINT] = "SAVEPOINT req",
    [ST_RELEASE] = "RELEASE req",
};

/* Prepared UPDATEs, one per set of columns written: a transition writes
 * the few columns it changed, and the sets that occur are few. */
#define UPDATE_CACHE 32

struct ty_store {
  sqlite3 *db;  /* writer connection */
  sqlite3 *rdb; /* reader connection (loop thread) */
  sqlite3_stmt *stmt[ST_N];
  struct {
    ty_job_cols cols;
    sqlite3_stmt *st;
  } update[UPDATE_CACHE]; /* writer thread */
  unsigned update_next;
  atomic_uint_fast64_t commits;
  atomic_uint_fast64_t rows_read;
  atomic_uint_fast64_t scans; /* statements that sorted or walked a whole table */
  char *path;
  ty__stmt_cache *loop_stmts; /* the loop reader's kept statements (store_query.c) */
};

int ty__store_exec(sqlite3 *db, const char *sql) {
  return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : TY_ESTORE;
}

int ty__store_err(char *err, size_t len, const char *path, const char *what, sqlite3 *db) {
  return ty_errf(err, len, TY_ESTORE, "%s: %s%s%s", path, what, db ? ": " : "",
                 db ? sqlite3_errmsg(db) : "");
}

int ty__store_query_int(sqlite3 *db, const char *sql, int *out) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) *out = sqlite3_column_int(st, 0);
  sqlite3_finalize(st);
  return rc == SQLITE_ROW ? 0 : TY_ESTORE;
}

/* Bytes free to traind on the filesystem of path's directory, or -1. */
static long long free_bytes(const char *path) {
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
  struct statvfs fs;
  if (statvfs(slash ? dir : ".", &fs) != 0) return -1;
  return (long long)fs.f_bavail * (long long)fs.f_frsize;
}

/* The first read of the file (PRAGMA journal_mode=WAL) failed with code:
 * a file that is no database is named as such; a full or failing
 * filesystem, or one traind may not write, is not blamed on the file. */
static int first_read_err(char *err, size_t len, const char *path, int code, const char *msg) {
  int primary = code & 0xff;
  if (primary == SQLITE_FULL || primary == SQLITE_IOERR || primary == SQLITE_CANTOPEN ||
      primary == SQLITE_READONLY)
    return ty_errf(err, len, TY_ESTORE,
                   "cannot open %s: %s; %lld bytes free on its filesystem: free space (or let "
                   "traind write there) and start again; the file itself was not checked",
                   path, msg, free_bytes(path));
  return ty_errf(err, len, TY_ESTORE,
                 "%s: is not a usable SQLite database (move it away or restore a backup): %s", path,
                 msg);
}

/* Switches db to WAL, its first read of the file: 0, or TY_ESTORE and why. */
static int set_wal(sqlite3 *db, const char *path, char *err, size_t len) {
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode=WAL", -1, &st, NULL);
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  bool wal = rc == SQLITE_ROW && strcmp((const char *)sqlite3_column_text(st, 0), "wal") == 0;
  int code = sqlite3_extended_errcode(db);
  char msg[256];
  snprintf(msg, sizeof msg, "%s",
           rc == SQLITE_ROW ? "journal mode WAL refused" : sqlite3_errmsg(db));
  sqlite3_finalize(st);
  return wal ? 0 : first_read_err(err, len, path, rc == SQLITE_ROW ? SQLITE_NOTADB : code, msg);
}

static int open_conn(const char *path, sqlite3 **out, char *err, size_t len) {
  sqlite3 *db = NULL;
  int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
  if (rc != SQLITE_OK) {
    ty__store_err(err, len, path, "cannot open the state database", db);
    sqlite3_close(db);
    return TY_ESTORE;
  }
  sqlite3_busy_timeout(db, 5000);
  sqlite3_extended_result_codes(db, 1);
  if (set_wal(db, path, err, len) != 0) {
    sqlite3_close(db);
    return TY_ESTORE;
  }
  if (ty__store_exec(db, "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON") != 0) {
    ty__store_err(err, len, path, "cannot configure the state database", db);
    sqlite3_close(db);
    return TY_ESTORE;
  }
  *out = db;
  return 0;
}

/* store_internal.h says what it answers. */
int ty__store_quick_check(sqlite3 *db, const char *path, const char *table, char *err, size_t len) {
  char sql[96];
  snprintf(sql, sizeof(sql), table ? "PRAGMA quick_check(%s)" : "PRAGMA quick_check", table);
  sqlite3_stmt *st = NULL;
  int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
  const char *res = NULL;
  if (rc == SQLITE_OK) rc = sqlite3_step(st);
  if (rc == SQLITE_ROW) res = (const char *)sqlite3_column_text(st, 0);
  if (rc == SQLITE_INTERRUPT) {
    sqlite3_finalize(st);
    return ty_errf(err, len, UV_ECANCELED, "%s: integrity check stopped before it finished", path);
  }
  if (!res || strcmp(res, "ok") != 0) {
    char what[TY_ERR_LEN];
    snprintf(what, sizeof(what), "integrity check failed (%.160s); restore a backup",
             res ? res : sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return ty__store_err(err, len, path, what, NULL);
  }
  sqlite3_finalize(st);
  return 0;
}

/* The tables a start reads whole (the live jobs come from `jobs` through
 * the state index): checked at open. The rest grows with history, so the
 * whole file is checked by ty_store_check, off the loop, after the start. */
static const char *const start_tables[] = {"queues", "nodes", "usage", "arrays", "web_tokens"};

static int check_start_tables(ty_store *s, char *err, size_t len) {
  for (size_t i = 0; i < TY_ARRAY_LEN(start_tables); i++) {
    char sql[128];
    int present = 0;
    snprintf(sql, sizeof(sql),
             "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = '%s'",
             start_tables[i]);
    if (ty__store_query_int(s->db, sql, &present) != 0)
      return ty__store_err(err, len, s->path, "integrity check failed: cannot read the schema",
                           s->db);
    int rc = present ? ty__store_quick_check(s->db, s->path, start_tables[i], err, len) : 0;
    if (rc != 0) return rc;
  }
  return 0;
}

static int prepare(ty_store *s, int which, char *err, size_t len) {
  ty_buf sql;
  ty_buf_init(&sql);
  int rc = which == ST_INSERT_JOB     ? ty__store_insert_sql(&sql, "jobs")
           : which == ST_INSERT_ARRAY ? ty__store_insert_sql(&sql, "arrays")
                                      : ty_buf_printf(&sql, "%s", stmt_sql[which]);
  if (rc == 0 && sqlite3_prepare_v3(s->db, (char *)sql.data, -1, SQLITE_PREPARE_PERSISTENT,
                                    &s->stmt[which], NULL) != SQLITE_OK)
    rc = ty__store_err(err, len, s->path, "cannot prepare statements (schema mismatch?)", s->db);
  ty_buf_close(&sql);
  return rc;
}

/* Only a missing file is a first start: an empty one is what is left of a
 * truncated or damaged store, which SQLite would silently take as new. */
static int refuse_empty(const char *path, char *err, size_t len) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > 0) return 0;
  return ty_errf(err, len, TY_ESTORE,
                 "%s is empty: a truncated or damaged file; restore a backup, or remove it to "
                 "start an empty store",
                 path);
}

int ty_store_open(const char *path, ty_store **out, char *err, size_t len) {
  int rc = refuse_empty(path, err, len);
  if (rc != 0) return rc;
  ty_store *s = ty_xcalloc(1, sizeof(*s));
  s->path = ty_strdup(path);
  atomic_init(&s->commits, 0);
  rc = open_conn(path, &s->db, err, len);
  if (rc == 0) rc = check_start_tables(s, err, len);
  if (rc == 0) rc = ty__store_migrate(s->db, s->path, err, len);
  if (rc == 0) rc = open_conn(path, &s->rdb, err, len);
  for (int i = 0; rc == 0 && i < ST_N; i++)
    rc = prepare(s, i, err, len);
  if (rc != 0) goto fail;
  *out = s;
  return 0;
fail:
  ty_store_close(s);
  return rc;
}

void ty_store_close(ty_store *s) {
  if (!s) return;
  for (int i = 0; i < ST_N; i++)
    sqlite3_finalize(s->stmt[i]);
  for (int i = 0; i < UPDATE_CACHE; i++)
    sqlite3_finalize(s->update[i].st);
  ty__stmt_cache_free(s->loop_stmts);
  sqlite3_close(s->rdb);
  sqlite3_close(s->db);
  free(s->path);
  free(s);
}

int ty_store_user_version(ty_store *s) {
  int v = -1;
  ty__store_query_int(s->rdb ? s->rdb : s->db, "PRAGMA user_version", &v);
  return v;
}

uint64_t ty_store_commits(const ty_store *s) {
  return (uint64_t)atomic_load(&((ty_store *)s)->commits);
}

const char *ty_store_errmsg(ty_store *s) {
  return sqlite3_errmsg(s->db);
}

uint64_t ty_store_rows_read(const ty_store *s) {
  return (uint64_t)atomic_load(&((ty_store *)s)->rows_read);
}

uint64_t ty_store_scans(const ty_store *s) {
  return (uint64_t)atomic_load(&((ty_store *)s)->scans);
}

/* ---- what store_query.c shares (daemon_internal.h) ------------------------- */

sqlite3 *ty__store_loop_db(ty_store *s) {
  return s->rdb;
}
sqlite3 *ty__store_writer_db(ty_store *s) {
  return s->db;
}
ty__stmt_cache **ty__store_loop_stmts(ty_store *s) {
  return &s->loop_stmts;
}
const char *ty__store_path(const ty_store *s) {
  return s->path;
}
void ty__store_count_rows(ty_store *s, uint64_t n, bool scanned) {
  atomic_fetch_add(&s->rows_read, n);
  if (scanned) atomic_fetch_add(&s->scans, 1);
}

/* ---- transactions ----------------------------------------------------------- */

static int step_done(sqlite3_stmt *st);

int ty_store_begin(ty_store *s) {
  return step_done(s->stmt[ST_BEGIN]);
}

int ty_store_commit(ty_store *s) {
  if (step_done(s->stmt[ST_COMMIT]) != 0) return TY_ESTORE;
  atomic_fetch_add(&s->commits, 1);
  return 0;
}

void ty_store_rollback(ty_store *s) {
  if (!sqlite3_get_autocommit(s->db)) ty__store_exec(s->db, "ROLLBACK");
}

int ty_store_savepoint(ty_store *s) {
  return step_done(s->stmt[ST_SAVEPOINT]);
}
int ty_store_release(ty_store *s) {
  return step_done(s->stmt[ST_RELEASE]);
}
void ty_store_rollback_to(ty_store *s) {
  ty__store_exec(s->db, "ROLLBACK TO req");
  ty__store_exec(s->db, "RELEASE req");
}

/* ---- writes ------------------------------------------------------------------ */

/* Bound values are not copied (SQLITE_STATIC): every writer below binds
 * from what its caller holds and runs step_done, which resets the
 * statement and clears its bindings, before it returns. */
static void bind_text(sqlite3_stmt *st, int i, const char *v) {
  sqlite3_bind_text(st, i, v ? v : "", -1, SQLITE_STATIC);
}

static int step_done(sqlite3_stmt *st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? 0 : TY_ESTORE;
}

/* Binders and readers of each column kind (TY_JOB_COLUMNS). */
#define BIND_ID(st, i, r, col) sqlite3_bind_int64(st, i, (sqlite3_int64)(r)->col)
#define BIND_TEXT(st, i, r, col) bind_text(st, i, (r)->col)
#define BIND_INT(st, i, r, col) sqlite3_bind_int(st, i, (r)->col)
#define BIND_I64(st, i, r, col) sqlite3_bind_int64(st, i, (r)->col)
#define BIND_U32(st, i, r, col) sqlite3_bind_int64(st, i, (r)->col)
#define BIND_BOOL(st, i, r, col) sqlite3_bind_int(st, i, (r)->col ? 1 : 0)
#define BIND_BLOB(st, i, r, col)                                                                   \
  sqlite3_bind_blob(st, i, (r)->col ? (const void *)(r)->col : "", (int)(r)->col##_len,            \
                    SQLITE_STATIC)

/* Binds the columns of r in `cols` (the key always) as ?N = column + 1. */
static void bind_job(sqlite3_stmt *st, const ty_job_row *r, ty_job_cols cols) {
  int i = 1;
  cols |= TY_JOB_BIT(id);
#define BIND_(version, col, kind, sql)                                                             \
  if (cols & TY_JOB_BIT(col)) BIND_##kind(st, i, r, col);                                          \
  i++;
  TY_JOB_COLUMNS(BIND_)
#undef BIND_
}

static int put_job(sqlite3_stmt *st, const ty_job_row *r, ty_job_cols cols) {
  bind_job(st, r, cols);
  return step_done(st);
}

int ty_store_insert_job(ty_store *s, const ty_job_row *r) {
  return put_job(s->stmt[ST_INSERT_JOB], r, TY_JOB_ALL_COLS);
}

int ty_store_insert_array(ty_store *s, const ty_job_row *first, uint32_t elements) {
  sqlite3_stmt *st = s->stmt[ST_INSERT_ARRAY];
  bind_job(st, first, TY_JOB_ALL_COLS);
  sqlite3_bind_int64(st, TY_JOB_NCOLS + 1, elements);
  return step_done(st);
}

int ty_store_array_done(ty_store *s, uint64_t array_id) {
  sqlite3_stmt *st = s->stmt[ST_ARRAY_DONE];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)array_id);
  return step_done(st);
}

/* The prepared UPDATE of `cols`, from the cache or made now (the oldest
 * entry makes room). */
static sqlite3_stmt *update_stmt(ty_store *s, ty_job_cols cols) {
  for (int i = 0; i < UPDATE_CACHE; i++)
    if (s->update[i].st && s->update[i].cols == cols) return s->update[i].st;
  ty_buf sql;
  ty_buf_init(&sql);
  sqlite3_stmt *st = NULL;
  if (ty__store_update_sql(cols, &sql) == 0 &&
      sqlite3_prepare_v3(s->db, (char *)sql.data, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL) !=
          SQLITE_OK)
    st = NULL;
  ty_buf_close(&sql);
  if (!st) return NULL;
  unsigned k = s->update_next++ % UPDATE_CACHE;
  sqlite3_finalize(s->update[k].st);
  s->update[k].cols = cols;
  s->update[k].st = st;
  return st;
}

int ty_store_update_job(ty_store *s, const ty_job_row *r, ty_job_cols cols) {
  cols &= TY_JOB_ALL_COLS & ~TY_JOB_BIT(id);
  if (!cols) return 0;
  sqlite3_stmt *st = update_stmt(s, cols);
  int rc = st ? put_job(st, r, cols) : TY_ESTORE;
  if (rc == 0 && sqlite3_changes(s->db) == 0) return TY_ENOTFOUND;
  return rc;
}

/* FNV-1a over n bytes: fingerprints of text and blob columns. */
static uint64_t hash_bytes(const void *p, size_t n) {
  const uint8_t *b = p;
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; i++)
    h = (h ^ b[i]) * 0x100000001b3ull;
  return ty_mix64(h ^ n);
}

#define FP_ID(r, col) (uint64_t)(r)->col
#define FP_TEXT(r, col) hash_bytes((r)->col ? (r)->col : "", (r)->col ? strlen((r)->col) : 0)
#define FP_INT(r, col) (uint64_t)(int64_t)(r)->col
#define FP_I64(r, col) (uint64_t)(r)->col
#define FP_U32(r, col) (uint64_t)(r)->col
#define FP_BOOL(r, col) (uint64_t)((r)->col ? 1 : 0)
#define FP_BLOB(r, col) hash_bytes((r)->col ? (const void *)(r)->col : "", (r)->col##_len)

void ty_job_row_fingerprint(const ty_job_row *r, uint64_t out[TY_JOB_NCOLS]) {
#define FP_(version, col, kind, sql) out[TY_JOB_COL_##col] = FP_##kind(r, col);
  TY_JOB_COLUMNS(FP_)
#undef FP_
}

int ty_store_add_rank(ty_store *s, const ty_rank_row *r) {
  sqlite3_stmt *st = s->stmt[ST_ADD_RANK];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)r->job_id);
  sqlite3_bind_int64(st, 2, r->run);
  sqlite3_bind_int64(st, 3, r->rank);
  bind_text(st, 4, r->node);
  sqlite3_bind_int64(st, 5, r->start_ms);
  sqlite3_bind_int64(st, 6, r->end_ms);
  sqlite3_bind_int(st, 7, r->state);
  sqlite3_bind_int(st, 8, r->exit_code);
  sqlite3_bind_int(st, 9, r->term_signal);
  sqlite3_bind_int64(st, 10, r->cpus);
  sqlite3_bind_int64(st, 11, r->gpus);
  sqlite3_bind_int64(st, 12, r->cpu_ms);
  sqlite3_bind_int64(st, 13, r->gpu_ms);
  sqlite3_bind_int64(st, 14, r->mem_peak);
  sqlite3_bind_int(st, 15, r->measured ? 1 : 0);
  sqlite3_bind_int(st, 16, r->run_state);
  return step_done(st);
}

int ty_store_set_run_state(ty_store *s, uint64_t job_id, uint32_t run, int run_state) {
  sqlite3_stmt *st = s->stmt[ST_RUN_STATE];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)job_id);
  sqlite3_bind_int64(st, 2, run);
  sqlite3_bind_int(st, 3, run_state);
  return step_done(st);
}

int ty_store_add_node_event(ty_store *s, const ty_node_event_row *r) {
  sqlite3_stmt *st = s->stmt[ST_ADD_NODE_EVENT];
  bind_text(st, 1, r->node);
  sqlite3_bind_int64(st, 2, r->time_ms);
  sqlite3_bind_int(st, 3, r->from_state);
  sqlite3_bind_int(st, 4, r->to_state);
  bind_text(st, 5, r->action);
  bind_text(st, 6, r->reason);
  bind_text(st, 7, r->actor);
  return step_done(st);
}

int ty_store_add_event(ty_store *s, const ty_event_row *r) {
  sqlite3_stmt *st = s->stmt[ST_ADD_EVENT];
  sqlite3_bind_int64(st, 1, (sqlite3_int64)r->job_id);
  sqlite3_bind_int64(st, 2, r->time_ms);
  sqlite3_bind_int(st, 3, r->from_state);
  sqlite3_bind_int(st, 4, r->to_state);
  bind_text(st, 5, r->reason);
  bind_text(st, 6, r->actor);
  return step_done(st);
}

int ty_store_upsert_node(ty_store *s, const ty_node_row *r) {
  sqlite3_stmt *st = s->stmt[ST_UPSERT_NODE];
  bind_text(st, 1, r->name);
  sqlite3_bind_int(st, 2, r->state);
  sqlite3_bind_int64(st, 3, r->cpus);
  sqlite3_bind_int64(st, 4, (sqlite3_int64)r->memory);
  if (r->gpus)
    sqlite3_bind_blob(st, 5, r->gpus, (int)r->gpus_len, SQLITE_STATIC);
  else
    sqlite3_bind_null(st, 5);
  bind_text(st, 6, r->io_addr);
  sqlite3_bind_int64(st, 7, r->last_seen_ms);
  bind_text(st, 8, r->reason);
  sqlite3_bind_int(st, 9, r->drain ? 1 : 0);
  return step_done(st);
}

int ty_store_delete_node(ty_store *s, const char *name) {
  sqlite3_stmt *st = s->stmt[ST_DELETE_NODE];
  bind_text(st, 1, name);
  return step_done(st);
}

int ty_store_upsert_queue(ty_store *s, const ty_queue_row *r) {
  sqlite3_stmt *st = s->stmt[ST_UPSERT_QUEUE];
  bind_text(st, 1, r->name);
  sqlite3_bind_int(st, 2, r->priority_tier);
  bind_text(st, 3, r->state);
  sqlite3_bind_double(st, 4, r->share);
  sqlite3_bind_int64(st, 5, r->max_running);
  sqlite3_bind_int64(st, 6, r->max_gpus);
  sqlite3_bind_int64(st, 7, r->max_gpus_per_user);
  sqlite3_bind_int(st, 8, r->preemptible ? 1 : 0);
  sqlite3_bind_int64(st, 9, r->default_time_s);
  sqlite3_bind_int64(st, 10, r->max_time_s);
  sqlite3_bind_int64(st, 11, (sqlite3_int64)r->default_mem);
  sqlite3_bind_int64(st, 12, (sqlite3_int64)r->max_mem);
  bind_text(st, 13, r->allow_groups);
  bind_text(st, 14, r->allow_users);
  return step_done(st);
}

int ty_store_upsert_usage(ty_store *s, const ty_usage_row *r) {
  sqlite3_stmt *st = s->stmt[ST_UPSERT_USAGE];
  bind_text(st, 1, r->user);
  bind_text(st, 2, r->queue);
  sqlite3_bind_double(st, 3, r->gpu_s);
  sqlite3_bind_double(st, 4, r->cpu_s);
  sqlite3_bind_int64(st, 5, r->updated_ms);
  return step_done(st);
}

int ty_store_add_admin_event(ty_store *s, const ty_admin_event_row *r) {
  sqlite3_stmt *st = s->stmt[ST_ADD_ADMIN_EVENT];
  sqlite3_bind_int64(st, 1, r->time_ms);
  bind_text(st, 2, r->actor);
  bind_text(st, 3, r->kind);
  bind_text(st, 4, r->object);
  bind_text(st, 5, r->action);
  bind_text(st, 6, r->detail);
  return step_done(st);
}

/* ---- pruning ------------------------------------------------------------------- */

typedef struct prune_pick {
  int64_t id, array_id;
  char *model_file;
  int64_t submit_ms;
} prune_pick;

static int step_id(sqlite3_stmt *st, int64_t id) {
  sqlite3_bind_int64(st, 1, id);
  return step_done(st);
}

/* Whether a pruned job's model file is no longer needed: a plain job's is
 * its own; an array's elements share one, needed while any element is left. */
static bool model_unused(ty_store *s, const prune_pick *p) {
  if (!p->model_file || !p->model_file[0]) return false;
  if (!p->array_id) return true;
  sqlite3_stmt *st = s->stmt[ST_ARRAY_LEFT];
  sqlite3_bind_int64(st, 1, p->array_id);
  bool left = sqlite3_step(st) == SQLITE_ROW;
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return !left;
}

static int add_unlink(char ***v, size_t *n, char *path) {
  for (size_t i = 0; i < *n; i++)
    if (strcmp((*v)[i], path) == 0) return 0;
  char **grown = realloc(*v, (*n + 1) * sizeof(**v));
  if (!grown) return TY_ENOMEM;
  *v = grown;
  (*v)[(*n)++] = path;
  return 1; /* taken */
}

/* The oldest finished jobs, at most max. */
static int pick_old(ty_store *s, int64_t before_ms, uint32_t max, prune_pick **out, size_t *out_n) {
  prune_pick *v = calloc(max ? max : 1, sizeof(*v));
  if (!v) return TY_ENOMEM;
  sqlite3_stmt *st = s->stmt[ST_PRUNE_PICK];
  sqlite3_bind_int64(st, 1, before_ms);
  sqlite3_bind_int64(st, 2, max);
  size_t n = 0;
  int step;
  while (n < max && (step = sqlite3_step(st)) == SQLITE_ROW) {
    const char *f = (const char *)sqlite3_column_text(st, 2);
    v[n] = (prune_pick){sqlite3_column_int64(st, 0), sqlite3_column_int64(st, 1),
                        f && f[0] ? strdup(f) : NULL, sqlite3_column_int64(st, 3)};
    n++;
  }
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  *out = v;
  *out_n = n;
  return 0;
}

/* The deleted jobs' ids and submit times, for the caller's clean-up. */
static int note_pruned(const prune_pick *v, size_t n, ty_pruned_job **out, size_t *out_n) {
  if (!out) return 0;
  *out = calloc(n ? n : 1, sizeof(**out));
  if (!*out) return TY_ENOMEM;
  for (size_t i = 0; i < n; i++)
    (*out)[i] = (ty_pruned_job){(uint64_t)v[i].id, v[i].submit_ms};
  *out_n = n;
  return 0;
}

int ty_store_prune(ty_store *s, int64_t before_ms, uint32_t max_jobs, uint32_t *out_jobs,
                   char ***unlink, size_t *n_unlink) {
  return ty_store_prune_jobs(s, before_ms, max_jobs, out_jobs, unlink, n_unlink, NULL, NULL);
}

int ty_store_prune_jobs(ty_store *s, int64_t before_ms, uint32_t max_jobs, uint32_t *out_jobs,
                        char ***unlink, size_t *n_unlink, ty_pruned_job **pruned,
                        size_t *n_pruned) {
  prune_pick *v = NULL;
  size_t n = 0;
  int rc = pick_old(s, before_ms, max_jobs, &v, &n);
  int64_t top = 0;
  for (size_t i = 0; i < n; i++)
    if (v[i].id > top) top = v[i].id;
  /* In the same transaction as the deletes: a restart never sees them gone
   * without the mark that keeps their ids taken. */
  if (rc == 0 && top) rc = step_id(s->stmt[ST_PRUNE_MARK], top);
  for (size_t i = 0; rc == 0 && i < n; i++) {
    rc = step_id(s->stmt[ST_PRUNE_EVENTS], v[i].id);
    if (rc == 0) rc = step_id(s->stmt[ST_PRUNE_RANKS], v[i].id);
    if (rc == 0) rc = step_id(s->stmt[ST_PRUNE_JOB], v[i].id);
    if (rc == 0 && model_unused(s, &v[i])) {
      int taken = add_unlink(unlink, n_unlink, v[i].model_file);
      if (taken < 0)
        rc = taken;
      else if (taken)
        v[i].model_file = NULL;
    }
  }
  if (rc == 0) rc = step_id(s->stmt[ST_PRUNE_NODE_EVENTS], before_ms);
  if (rc == 0) rc = note_pruned(v, n, pruned, n_pruned);
  for (size_t i = 0; i < n; i++)
    free(v[i].model_file);
  free(v);
  if (rc == 0) *out_jobs = (uint32_t)n;
  return rc;
}
