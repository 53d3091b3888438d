/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The store's reads (store.c owns the file, its schema and the writes).
 *
 * Two kinds of reader. The loop thread reads through the store's own
 * reader connection: loading at start (only live jobs: a starting
 * controller reads no finished row), one job by id, one array's element or
 * counts, a job's or a node's events; each touches a handful of rows
 * through the primary key or an index. Listings of finished jobs and
 * accounting (ty_store_query_jobs, ty_store_query_ranks) may touch many
 * rows, so they run on a ty_store_reader of their own, off the loop; their
 * WHERE clauses are shaped for the indexes (jobs_by_end, jobs_by_user,
 * jobs_by_queue) and always carry a LIMIT when one is asked for;
 * ty_store_query_plan shows which one a query walks.
 *
 * Every row handed to a callback is counted (ty_store_rows_read), the
 * hook that lets tests show which operations read history.
 */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/daemon_internal.h"
#include "daemon/store_internal.h"

struct ty_store_reader {
  ty_store *store;
  sqlite3 *db;
};

static const char *const job_col_names[] = {
#define NAME_(version, col, kind, sql) #col,
    TY_JOB_COLUMNS(NAME_)
#undef NAME_
};

static const char *col_text(sqlite3_stmt *st, int i) {
  const char *t = (const char *)sqlite3_column_text(st, i);
  return t ? t : "";
}

/* Binds a statement's parameters (NULL: none). */
typedef int (*bind_fn)(sqlite3_stmt *st, const void *ud);

/* ---- the loop reader's statements, kept prepared ----------------------------
 * A submit's look-up of its request id spent 70k instructions parsing the
 * same SELECT anew, three quarters of the handler: the loop reader keeps
 * each statement it runs (up to STMTS of them, found by their text), reset
 * after use. A statement being stepped (a callback that runs the same
 * query) or a full cache gets one prepared and finalized as before. */
#define STMTS 32

struct ty__stmt_cache {
  struct {
    char *sql;
    sqlite3_stmt *st;
    bool busy;
  } e[STMTS];
};

void ty__stmt_cache_free(ty__stmt_cache *c) {
  if (!c) return;
  for (int i = 0; i < STMTS; i++) {
    sqlite3_finalize(c->e[i].st);
    free(c->e[i].sql);
  }
  free(c);
}

/* The kept statement for sql, marked busy; NULL: prepare one. */
static sqlite3_stmt *kept_stmt(ty_store *s, const char *sql) {
  ty__stmt_cache **cp = ty__store_loop_stmts(s);
  if (!*cp && !(*cp = calloc(1, sizeof(**cp)))) return NULL;
  ty__stmt_cache *c = *cp;
  int slot = -1;
  for (int i = 0; i < STMTS; i++) {
    if (!c->e[i].sql) {
      if (slot < 0) slot = i;
    } else if (strcmp(c->e[i].sql, sql) == 0) {
      if (c->e[i].busy) return NULL;
      c->e[i].busy = true;
      return c->e[i].st;
    }
  }
  sqlite3_stmt *st = NULL;
  if (slot < 0 || sqlite3_prepare_v3(ty__store_loop_db(s), sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
                                     NULL) != SQLITE_OK) {
    sqlite3_finalize(st);
    return NULL;
  }
  c->e[slot].sql = ty_strdup(sql);
  c->e[slot].st = st;
  c->e[slot].busy = true;
  return st;
}

static void kept_done(ty_store *s, sqlite3_stmt *st) {
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  ty__stmt_cache *c = *ty__store_loop_stmts(s);
  for (int i = 0; i < STMTS; i++)
    if (c->e[i].st == st) c->e[i].busy = false;
}

/* Runs `sql` on db and hands each row to `row_cb`; counts rows read. */
static int run(ty_store *s, sqlite3 *db, const char *sql, bind_fn bind, const void *bind_ud,
               int (*row_cb)(sqlite3_stmt *st, void *ud), void *ud) {
  sqlite3_stmt *st = db == ty__store_loop_db(s) ? kept_stmt(s, sql) : NULL;
  bool kept = st != NULL;
  if (!kept && sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return TY_ESTORE;
  int rc = bind ? bind(st, bind_ud) : 0, step = SQLITE_DONE;
  uint64_t rows = 0;
  while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
    rows++;
    rc = row_cb(st, ud);
  }
  if (rc == 0 && step != SQLITE_DONE) rc = TY_ESTORE;
  /* (the counters are read and reset: a kept statement's count this run) */
  bool sorted = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_SORT, 1) > 0;
  bool scanned = sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 1) > 0 || sorted;
  if (kept)
    kept_done(s, st);
  else
    sqlite3_finalize(st);
  ty__store_count_rows(s, rows, scanned);
  return rc;
}

static int bind_i64(sqlite3_stmt *st, const void *ud) {
  return sqlite3_bind_int64(st, 1, *(const int64_t *)ud) == SQLITE_OK ? 0 : TY_ESTORE;
}

static int each_row(ty_store *s, const char *sql, int64_t arg, bool has_arg,
                    int (*row_cb)(sqlite3_stmt *st, void *ud), void *ud) {
  return run(s, ty__store_loop_db(s), sql, has_arg ? bind_i64 : NULL, &arg, row_cb, ud);
}

/* Typed callback + user data pairs (ISO C has no portable function-pointer
 * to void * conversion). */
typedef struct job_cb {
  int (*cb)(const ty_job_row *r, void *ud);
  void *ud;
} job_cb;
typedef struct node_cb {
  int (*cb)(const ty_node_row *r, void *ud);
  void *ud;
} node_cb;
typedef struct queue_cb {
  int (*cb)(const ty_queue_row *r, void *ud);
  void *ud;
} queue_cb;
typedef struct event_cb {
  int (*cb)(const ty_event_row *r, void *ud);
  void *ud;
} event_cb;

/* ---- jobs -------------------------------------------------------------------------- */

#define READ_ID(st, i, r, col) (r).col = (uint64_t)sqlite3_column_int64(st, i)
#define READ_TEXT(st, i, r, col) (r).col = col_text(st, i)
#define READ_INT(st, i, r, col) (r).col = sqlite3_column_int(st, i)
#define READ_I64(st, i, r, col) (r).col = sqlite3_column_int64(st, i)
#define READ_U32(st, i, r, col) (r).col = (uint32_t)sqlite3_column_int64(st, i)
#define READ_BOOL(st, i, r, col) (r).col = sqlite3_column_int(st, i) != 0
#define READ_BLOB(st, i, r, col)                                                                   \
  ((r).col = sqlite3_column_blob(st, i), (r).col##_len = (size_t)sqlite3_column_bytes(st, i))

static int job_row(sqlite3_stmt *st, void *ud) {
  job_cb *p = ud;
  ty_job_row r;
  int i = 0;
#define READ_(version, col, kind, sql) READ_##kind(st, i, r, col), i++;
  TY_JOB_COLUMNS(READ_)
#undef READ_
  return p->cb(&r, p->ud);
}

/* "SELECT <every job column> FROM jobs " followed by `tail`. */
static int job_select(ty_buf *sql, const char *tail) {
  int rc = ty_buf_printf(sql, "SELECT ");
  for (size_t i = 0; rc == 0 && i < TY_ARRAY_LEN(job_col_names); i++)
    rc = ty_buf_printf(sql, "%s%s", i ? ", " : "", job_col_names[i]);
  if (rc == 0) rc = ty_buf_printf(sql, " FROM jobs %s", tail);
  return rc;
}

/* ---- pending arrays' records (store.c: schema 8) ------------------------------------ */

typedef struct array_cb {
  int (*cb)(const ty_job_row *first, uint32_t elements, void *ud);
  void *ud;
} array_cb;

static int array_row(sqlite3_stmt *st, void *ud) {
  array_cb *p = ud;
  ty_job_row r;
  int i = 0;
#define READ_(version, col, kind, sql) READ_##kind(st, i, r, col), i++;
  TY_JOB_COLUMNS(READ_)
#undef READ_
  return p->cb(&r, (uint32_t)sqlite3_column_int64(st, i), p->ud);
}

int ty_store_load_arrays(ty_store *s,
                         int (*cb)(const ty_job_row *first, uint32_t elements, void *ud),
                         void *ud) {
  array_cb p = {cb, ud};
  ty_buf sql;
  ty_buf_init(&sql);
  int rc = ty_buf_printf(&sql, "SELECT ");
  for (size_t i = 0; rc == 0 && i < TY_ARRAY_LEN(job_col_names); i++)
    rc = ty_buf_printf(&sql, "%s%s", i ? ", " : "", job_col_names[i]);
  if (rc == 0) rc = ty_buf_printf(&sql, ", elements FROM arrays ORDER BY id");
  if (rc == 0) rc = each_row(s, (char *)sql.data, 0, false, array_row, &p);
  ty_buf_close(&sql);
  return rc;
}

typedef struct id_cb {
  int (*cb)(uint64_t id, void *ud);
  void *ud;
} id_cb;

static int id_row(sqlite3_stmt *st, void *ud) {
  id_cb *p = ud;
  return p->cb((uint64_t)sqlite3_column_int64(st, 0), p->ud);
}

int ty_store_array_rows(ty_store *s, uint64_t array_id, int (*cb)(uint64_t id, void *ud),
                        void *ud) {
  id_cb p = {cb, ud};
  /* jobs_by_array: the array's rows only. */
  return each_row(s, "SELECT id FROM jobs WHERE array_id = ?1 AND array_id != 0 ORDER BY id",
                  (int64_t)array_id, true, id_row, &p);
}

static int load_where(ty_store *s, const char *tail, int64_t arg, bool has_arg,
                      int (*cb)(const ty_job_row *r, void *ud), void *ud) {
  job_cb p = {cb, ud};
  ty_buf sql;
  ty_buf_init(&sql);
  int rc = job_select(&sql, tail);
  if (rc == 0) rc = each_row(s, (char *)sql.data, arg, has_arg, job_row, &p);
  ty_buf_close(&sql);
  return rc;
}

int ty_store_load_jobs(ty_store *s, int (*cb)(const ty_job_row *r, void *ud), void *ud) {
  return load_where(s, "ORDER BY id", 0, false, cb, ud);
}

int ty_store_load_live_jobs(ty_store *s, int (*cb)(const ty_job_row *r, void *ud), void *ud) {
  /* jobs_by_state: the live states only, never a finished row (NODE_FAIL
   * and PREEMPTED are only stored as a no_requeue job's end). */
  return load_where(s, "WHERE state IN (1, 2) ORDER BY id", 0, false, cb, ud);
}

typedef struct found_cb {
  int (*cb)(const ty_job_row *r, void *ud);
  void *ud;
  bool found;
} found_cb;

static int found_row(const ty_job_row *r, void *ud) {
  found_cb *f = ud;
  f->found = true;
  return f->cb(r, f->ud);
}

int ty_store_get_job(ty_store *s, uint64_t id, int (*cb)(const ty_job_row *r, void *ud), void *ud) {
  found_cb f = {cb, ud, false};
  int rc = load_where(s, "WHERE id = ?1", (int64_t)id, true, found_row, &f);
  return rc == 0 && !f.found ? TY_ENOTFOUND : rc;
}

static int first_i64(sqlite3_stmt *st, void *ud) {
  *(int64_t *)ud = sqlite3_column_int64(st, 0);
  return 0;
}

typedef struct element_key {
  int64_t array_id, task;
} element_key;

static int bind_element(sqlite3_stmt *st, const void *ud) {
  const element_key *k = ud;
  sqlite3_bind_int64(st, 1, k->array_id);
  sqlite3_bind_int64(st, 2, k->task);
  return 0;
}

int ty_store_find_element(ty_store *s, uint64_t array_id, uint32_t task, uint64_t *out_id) {
  if (array_id == 0) return TY_ENOTFOUND; /* a plain job's array_id: no array */
  element_key k = {(int64_t)array_id, task};
  int64_t id = 0;
  int rc = run(s, ty__store_loop_db(s),
               "SELECT id FROM jobs WHERE array_id = ?1 AND array_task = ?2 LIMIT 1", bind_element,
               &k, first_i64, &id);
  if (rc == 0 && id <= 0) return TY_ENOTFOUND;
  if (rc == 0) *out_id = (uint64_t)id;
  return rc;
}

typedef struct request_key {
  uint32_t uid;
  const char *rid;
} request_key;

static int bind_request(sqlite3_stmt *st, const void *ud) {
  const request_key *k = ud;
  sqlite3_bind_int64(st, 1, k->uid);
  sqlite3_bind_text(st, 2, k->rid, -1, SQLITE_STATIC);
  return 0;
}

static int id_and_hash(sqlite3_stmt *st, void *ud) {
  int64_t *v = ud;
  v[0] = sqlite3_column_int64(st, 0);
  v[1] = sqlite3_column_int64(st, 1);
  return 0;
}

int ty_store_find_request(ty_store *s, uint32_t uid, const char *rid, uint64_t *out_id,
                          uint64_t *out_hash) {
  request_key k = {uid, rid};
  int64_t v[2] = {0, 0};
  /* jobs_by_request: one row at most. */
  int rc = run(s, ty__store_loop_db(s),
               "SELECT id, request_hash FROM jobs WHERE uid = ?1 AND request_id = ?2"
               " AND request_id != '' AND uid >= 0",
               bind_request, &k, id_and_hash, v);
  if (rc == 0 && v[0] <= 0) return TY_ENOTFOUND;
  if (rc == 0) *out_id = (uint64_t)v[0];
  if (rc == 0 && out_hash) *out_hash = (uint64_t)v[1];
  return rc;
}

static int counts_row(sqlite3_stmt *st, void *ud) {
  ty_array_counts *c = ud;
  *c = (ty_array_counts){
      (uint32_t)sqlite3_column_int64(st, 0), (uint32_t)sqlite3_column_int64(st, 1),
      (uint32_t)sqlite3_column_int64(st, 2), (uint32_t)sqlite3_column_int64(st, 3)};
  return 0;
}

int ty_store_array_counts(ty_store *s, uint64_t array_id, ty_array_counts *out) {
  *out = (ty_array_counts){0};
  if (array_id == 0) return 0; /* a plain job's array_id: no array */
  /* jobs_by_array: the array's rows only. */
  /* Started: begun its current run (not PENDING, 1, again after a
   * requeue) or ended. */
  int rc = each_row(s,
                    "SELECT COUNT(*), TOTAL((start_ms > 0 AND state != 1)"
                    " OR state IN (3,4,5,6,7,8,9)),"
                    " TOTAL(state IN (3,4,5,6,7,8,9)), TOTAL(state = 3)"
                    " FROM jobs WHERE array_id = ?1",
                    (int64_t)array_id, true, counts_row, out);
  /* Elements still in the array's record are pending: they count in the
   * total only. */
  int64_t elements = 0;
  if (rc == 0)
    rc = each_row(s, "SELECT elements FROM arrays WHERE id = ?1", (int64_t)array_id, true,
                  first_i64, &elements);
  if (rc == 0 && elements > (int64_t)out->total) out->total = (uint32_t)elements;
  return rc;
}

int ty_store_max_job_id(ty_store *s, uint64_t *out_id) {
  int64_t id = 0, reserved = 0, pruned = 0;
  int rc = each_row(s, "SELECT IFNULL(MAX(id), 0) FROM jobs", 0, false, first_i64, &id);
  /* A pending array's record holds its elements' ids. */
  if (rc == 0)
    rc = each_row(s, "SELECT IFNULL(MAX(id + elements - 1), 0) FROM arrays", 0, false, first_i64,
                  &reserved);
  /* Pruned jobs' ids stay taken: their rows are gone, the mark is not. */
  if (rc == 0)
    rc = each_row(s, "SELECT IFNULL(MAX(value), 0) FROM meta WHERE key = 'pruned_max_id'", 0, false,
                  first_i64, &pruned);
  if (reserved > id) id = reserved;
  *out_id = (uint64_t)(pruned > id ? pruned : id);
  return rc;
}

/* ---- queries off the loop ------------------------------------------------------------- */

int ty_store_reader_open(ty_store *s, ty_store_reader **out) {
  ty_store_reader *r = calloc(1, sizeof(*r));
  if (!r) return TY_ENOMEM;
  r->store = s;
  if (sqlite3_open_v2(ty__store_path(s), &r->db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
    ty_store_reader_close(r);
    return TY_ESTORE;
  }
  sqlite3_busy_timeout(r->db, 5000);
  *out = r;
  return 0;
}

void ty_store_reader_close(ty_store_reader *r) {
  if (!r) return;
  sqlite3_close(r->db);
  free(r);
}

/* The first parameter of q's names; the JSON array of its nodes follows
 * them. */
#define NAME_PARAM 10

/* q's nodes as one JSON array of strings into out (initialised): bytes
 * kept as they are but for the escapes JSON needs, so json_each gives back
 * each name exactly. */
static int nodes_json(const ty_job_query *q, ty_buf *out) {
  int rc = ty_buf_printf(out, "[");
  for (size_t i = 0; rc == 0 && i < q->n_nodes; i++) {
    rc = ty_buf_printf(out, "%s\"", i ? "," : "");
    for (const unsigned char *c = (const unsigned char *)q->nodes[i]; rc == 0 && *c; c++)
      rc = *c == '"' || *c == '\\' ? ty_buf_printf(out, "\\%c", *c)
           : *c < 0x20             ? ty_buf_printf(out, "\\u%04x", *c)
                                   : ty_buf_append(out, c, 1);
    if (rc == 0) rc = ty_buf_printf(out, "\"");
  }
  if (rc == 0) rc = ty_buf_printf(out, "]");
  return rc;
}

/* sacct --name and -N: filters on whatever index the rest of q walks (no
 * index holds names or node lists: the walk in end-time order goes on
 * until the LIMIT has its rows, as it does for states). A node is matched
 * whole within the comma-separated list, so n1 does not match n10. The
 * nodes are one parameter, a JSON array walked by json_each: a term per
 * node would nest past SQLite's expression depth (1000) long before the
 * 4096 nodes a query may name. */
static int name_node_where(const ty_job_query *q, ty_buf *sql) {
  int rc = 0;
  for (size_t i = 0; rc == 0 && i < q->n_names; i++)
    rc = ty_buf_printf(sql, "%s?%zu", i ? "," : " AND name IN (", NAME_PARAM + i);
  if (rc == 0 && q->n_names) rc = ty_buf_printf(sql, ")");
  if (rc == 0 && q->n_nodes)
    rc = ty_buf_printf(sql,
                       " AND EXISTS (SELECT 1 FROM json_each(?%zu) AS asked"
                       " WHERE instr(',' || nodes || ',', ',' || asked.value || ',') > 0)",
                       NAME_PARAM + q->n_names);
  return rc;
}

/* The WHERE clause of q, its parameters numbered in the order bind_query
 * binds them. */
static int query_where(const ty_job_query *q, ty_buf *sql) {
  int rc = ty_buf_printf(sql, "WHERE 1");
  /* "+state": the state terms filter rows and never pick the index (a
   * state index would then need every ended row sorted for the LIMIT;
   * SQLite without statistics picks it). Named jobs: the primary key and
   * jobs_by_array find them and their few rows are sorted, rather than
   * walking the end-time index through all history ("+end_ms"). */
  if (rc == 0 && q->finished_only)
    rc = ty_buf_printf(sql, " AND %send_ms >= ?1 AND +state IN (3,4,5,6,7,8,9)",
                       q->n_ids || (q->by_id && q->ended_since_ms <= 0) ? "+" : "");
  if (rc == 0 && q->user && q->user[0]) rc = ty_buf_printf(sql, " AND user = ?2");
  if (rc == 0 && q->queue && q->queue[0]) rc = ty_buf_printf(sql, " AND queue = ?3");
  if (rc == 0 && q->submitted_before_ms) rc = ty_buf_printf(sql, " AND submit_ms < ?4");
  /* A page after the cursor: a range of the end-time index, then the id. */
  if (rc == 0 && q->finished_only && q->before_end_ms)
    rc = ty_buf_printf(sql, " AND (end_ms < ?5 OR (end_ms = ?5 AND id < ?6))");
  for (size_t i = 0; rc == 0 && i < q->n_states; i++)
    rc = ty_buf_printf(sql, "%s%d", i ? "," : " AND +state IN (", q->states[i]);
  if (rc == 0 && q->n_states) rc = ty_buf_printf(sql, ")");
  for (size_t i = 0; rc == 0 && i < q->n_ids; i++)
    rc = ty_buf_printf(sql, "%s%llu", i ? "," : " AND (id IN (", (unsigned long long)q->ids[i]);
  for (size_t i = 0; rc == 0 && i < q->n_ids; i++)
    rc = ty_buf_printf(sql, "%s%llu", i ? "," : ") OR (array_id IN (",
                       (unsigned long long)q->ids[i]);
  /* array_id != 0: what lets the partial index jobs_by_array serve it. */
  if (rc == 0 && q->n_ids) rc = ty_buf_printf(sql, ") AND array_id != 0))");
  if (rc == 0) rc = name_node_where(q, sql);
  /* Newest first: the end-time index serves the order and the LIMIT, or,
   * by id, the primary key. */
  if (rc == 0)
    rc = ty_buf_printf(sql, q->by_id ? " ORDER BY id DESC" : " ORDER BY end_ms DESC, id DESC");
  if (rc == 0 && q->limit) rc = ty_buf_printf(sql, " LIMIT %u", q->limit);
  return rc;
}

static int bind_query(sqlite3_stmt *st, const void *ud) {
  const ty_job_query *q = ud;
  if (q->finished_only) sqlite3_bind_int64(st, 1, q->ended_since_ms > 0 ? q->ended_since_ms : 1);
  if (q->user && q->user[0]) sqlite3_bind_text(st, 2, q->user, -1, SQLITE_STATIC);
  if (q->queue && q->queue[0]) sqlite3_bind_text(st, 3, q->queue, -1, SQLITE_STATIC);
  if (q->submitted_before_ms) sqlite3_bind_int64(st, 4, q->submitted_before_ms);
  if (q->finished_only && q->before_end_ms) {
    sqlite3_bind_int64(st, 5, q->before_end_ms);
    sqlite3_bind_int64(st, 6, (sqlite3_int64)q->before_id);
  }
  for (size_t i = 0; i < q->n_names; i++)
    sqlite3_bind_text(st, (int)(NAME_PARAM + i), q->names[i], -1, SQLITE_STATIC);
  if (!q->n_nodes) return 0;
  ty_buf nodes;
  ty_buf_init(&nodes);
  int rc = nodes_json(q, &nodes);
  if (rc == 0 && sqlite3_bind_text(st, (int)(NAME_PARAM + q->n_names), (const char *)nodes.data,
                                   (int)nodes.len, SQLITE_TRANSIENT) != SQLITE_OK)
    rc = TY_ESTORE;
  ty_buf_close(&nodes);
  return rc;
}

/* The SELECT of q, NUL-terminated, into sql (initialised). */
static int query_sql(const ty_job_query *q, ty_buf *sql) {
  ty_buf where;
  ty_buf_init(&where);
  int rc = query_where(q, &where);
  if (rc == 0) rc = ty_buf_append(&where, "", 1);
  if (rc == 0) rc = job_select(sql, (char *)where.data);
  ty_buf_close(&where);
  return rc;
}

int ty_store_query_jobs(ty_store_reader *r, const ty_job_query *q,
                        int (*cb)(const ty_job_row *row, void *ud), void *ud) {
  job_cb p = {cb, ud};
  ty_buf sql;
  ty_buf_init(&sql);
  int rc = query_sql(q, &sql);
  if (rc == 0) rc = run(r->store, r->db, (char *)sql.data, bind_query, q, job_row, &p);
  ty_buf_close(&sql);
  return rc;
}

static int plan_row(sqlite3_stmt *st, void *ud) {
  return ty_buf_printf(ud, "%s\n", col_text(st, 3));
}

int ty_store_query_plan(ty_store_reader *r, const ty_job_query *q, ty_buf *out) {
  ty_buf sql;
  ty_buf_init(&sql);
  int rc = ty_buf_printf(&sql, "EXPLAIN QUERY PLAN ");
  if (rc == 0) rc = query_sql(q, &sql);
  if (rc == 0) rc = run(r->store, r->db, (char *)sql.data, bind_query, q, plan_row, out);
  ty_buf_close(&sql);
  return rc;
}

typedef struct rank_cb {
  int (*cb)(const ty_rank_row *r, void *ud);
  void *ud;
} rank_cb;

static int rank_row(sqlite3_stmt *st, void *ud) {
  rank_cb *p = ud;
  ty_rank_row r = {.job_id = (uint64_t)sqlite3_column_int64(st, 0),
                   .run = (uint32_t)sqlite3_column_int64(st, 1),
                   .rank = (uint32_t)sqlite3_column_int64(st, 2),
                   .node = col_text(st, 3),
                   .start_ms = sqlite3_column_int64(st, 4),
                   .end_ms = sqlite3_column_int64(st, 5),
                   .state = sqlite3_column_int(st, 6),
                   .exit_code = sqlite3_column_int(st, 7),
                   .term_signal = sqlite3_column_int(st, 8),
                   .cpus = (uint32_t)sqlite3_column_int64(st, 9),
                   .gpus = (uint32_t)sqlite3_column_int64(st, 10),
                   .cpu_ms = sqlite3_column_int64(st, 11),
                   .gpu_ms = sqlite3_column_int64(st, 12),
                   .mem_peak = sqlite3_column_int64(st, 13),
                   .measured = sqlite3_column_int(st, 14) != 0,
                   .run_state = sqlite3_column_int(st, 15)};
  return p->cb(&r, p->ud);
}

int ty_store_query_ranks(ty_store_reader *r, uint64_t job_id,
                         int (*cb)(const ty_rank_row *row, void *ud), void *ud) {
  rank_cb p = {cb, ud};
  int64_t id = (int64_t)job_id;
  return run(r->store, r->db,
             "SELECT job_id, run, rank, node, start_ms, end_ms, state, exit_code, term_signal,"
             " cpus, gpus, cpu_ms, gpu_ms, mem_peak, measured, run_state FROM ranks"
             " WHERE job_id = ?1 ORDER BY run, rank",
             bind_i64, &id, rank_row, &p);
}

/* ---- nodes, queues, usage, events --------------------------------------------------- */

static int node_row(sqlite3_stmt *st, void *ud) {
  node_cb *p = ud;
  ty_node_row r = {.name = col_text(st, 0),
                   .state = sqlite3_column_int(st, 1),
                   .cpus = (uint32_t)sqlite3_column_int64(st, 2),
                   .memory = (uint64_t)sqlite3_column_int64(st, 3),
                   .gpus = sqlite3_column_blob(st, 4),
                   .gpus_len = (size_t)sqlite3_column_bytes(st, 4),
                   .io_addr = col_text(st, 5),
                   .last_seen_ms = sqlite3_column_int64(st, 6),
                   .reason = col_text(st, 7),
                   .drain = sqlite3_column_int(st, 8) != 0};
  return p->cb(&r, p->ud);
}

int ty_store_load_nodes(ty_store *s, int (*cb)(const ty_node_row *r, void *ud), void *ud) {
  node_cb p = {cb, ud};
  return each_row(s,
                  "SELECT name, state, cpus, memory, gpus, io_addr, last_seen_ms, reason, drain"
                  " FROM nodes ORDER BY name",
                  0, false, node_row, &p);
}

typedef struct node_event_cb {
  int (*cb)(const ty_node_event_row *r, void *ud);
  void *ud;
} node_event_cb;

static int node_event_row(sqlite3_stmt *st, void *ud) {
  node_event_cb *p = ud;
  ty_node_event_row r = {.time_ms = sqlite3_column_int64(st, 0),
                         .node = col_text(st, 1),
                         .from_state = sqlite3_column_int(st, 2),
                         .to_state = sqlite3_column_int(st, 3),
                         .action = col_text(st, 4),
                         .reason = col_text(st, 5),
                         .actor = col_text(st, 6)};
  return p->cb(&r, p->ud);
}

typedef struct node_key {
  const char *node;
  int64_t limit;
} node_key;

static int bind_node(sqlite3_stmt *st, const void *ud) {
  const node_key *k = ud;
  sqlite3_bind_text(st, 1, k->node, -1, SQLITE_STATIC);
  sqlite3_bind_int64(st, 2, k->limit);
  return 0;
}

int ty_store_node_events(ty_store *s, const char *node, uint32_t limit,
                         int (*cb)(const ty_node_event_row *r, void *ud), void *ud) {
  node_event_cb p = {cb, ud};
  node_key k = {node, limit ? (int64_t)limit : -1};
  /* The newest `limit` through node_events_by_node, then oldest first. */
  return run(s, ty__store_loop_db(s),
             "SELECT time_ms, node, from_state, to_state, action, reason, actor FROM"
             " (SELECT * FROM node_events WHERE node = ?1 ORDER BY id DESC LIMIT ?2)"
             " ORDER BY id",
             bind_node, &k, node_event_row, &p);
}

static int queue_row(sqlite3_stmt *st, void *ud) {
  queue_cb *p = ud;
  ty_queue_row r = {.name = col_text(st, 0),
                    .priority_tier = sqlite3_column_int(st, 1),
                    .state = col_text(st, 2),
                    .share = sqlite3_column_double(st, 3),
                    .max_running = (uint32_t)sqlite3_column_int64(st, 4),
                    .max_gpus = (uint32_t)sqlite3_column_int64(st, 5),
                    .max_gpus_per_user = (uint32_t)sqlite3_column_int64(st, 6),
                    .preemptible = sqlite3_column_int(st, 7) != 0,
                    .default_time_s = (uint32_t)sqlite3_column_int64(st, 8),
                    .max_time_s = (uint32_t)sqlite3_column_int64(st, 9),
                    .default_mem = (uint64_t)sqlite3_column_int64(st, 10),
                    .max_mem = (uint64_t)sqlite3_column_int64(st, 11),
                    .allow_groups = col_text(st, 12),
                    .allow_users = col_text(st, 13)};
  return p->cb(&r, p->ud);
}

int ty_store_load_queues(ty_store *s, int (*cb)(const ty_queue_row *r, void *ud), void *ud) {
  queue_cb p = {cb, ud};
  return each_row(s,
                  "SELECT name, priority_tier, state, share, max_running, max_gpus,"
                  " max_gpus_per_user, preemptible, default_time_s, max_time_s,"
                  " default_mem, max_mem, allow_groups, allow_users FROM queues ORDER BY name",
                  0, false, queue_row, &p);
}

static int event_row(sqlite3_stmt *st, void *ud) {
  event_cb *p = ud;
  ty_event_row r = {.id = sqlite3_column_int64(st, 0),
                    .job_id = (uint64_t)sqlite3_column_int64(st, 1),
                    .time_ms = sqlite3_column_int64(st, 2),
                    .from_state = sqlite3_column_int(st, 3),
                    .to_state = sqlite3_column_int(st, 4),
                    .reason = col_text(st, 5),
                    .actor = col_text(st, 6)};
  return p->cb(&r, p->ud);
}

int ty_store_job_events(ty_store *s, uint64_t job_id, int (*cb)(const ty_event_row *r, void *ud),
                        void *ud) {
  event_cb p = {cb, ud};
  return each_row(s,
                  "SELECT id, job_id, time_ms, from_state, to_state, reason, actor"
                  " FROM events WHERE job_id = ?1 ORDER BY id",
                  (int64_t)job_id, true, event_row, &p);
}

/* The rank columns GetTaskLocations needs: run, rank, node, start_ms. */
static int run_rank_row(sqlite3_stmt *st, void *ud) {
  rank_cb *p = ud;
  ty_rank_row r = {.run = (uint32_t)sqlite3_column_int64(st, 0),
                   .rank = (uint32_t)sqlite3_column_int64(st, 1),
                   .node = col_text(st, 2),
                   .start_ms = sqlite3_column_int64(st, 3)};
  return p->cb(&r, p->ud);
}

int ty_store_job_runs(ty_store *s, uint64_t job_id, int (*cb)(const ty_rank_row *r, void *ud),
                      void *ud) {
  rank_cb p = {cb, ud};
  return each_row(s,
                  "SELECT run, rank, node, start_ms FROM ranks WHERE job_id = ?1"
                  " ORDER BY run, rank",
                  (int64_t)job_id, true, run_rank_row, &p);
}

typedef struct usage_cb {
  int (*cb)(const ty_usage_row *r, void *ud);
  void *ud;
} usage_cb;

static int usage_row(sqlite3_stmt *st, void *ud) {
  usage_cb *p = ud;
  ty_usage_row r = {.user = col_text(st, 0),
                    .queue = col_text(st, 1),
                    .gpu_s = sqlite3_column_double(st, 2),
                    .cpu_s = sqlite3_column_double(st, 3),
                    .updated_ms = sqlite3_column_int64(st, 4)};
  return p->cb(&r, p->ud);
}

int ty_store_load_usage(ty_store *s, int (*cb)(const ty_usage_row *r, void *ud), void *ud) {
  usage_cb p = {cb, ud};
  return each_row(s, "SELECT user, queue, gpu_s, cpu_s, updated_ms FROM usage ORDER BY queue, user",
                  0, false, usage_row, &p);
}

typedef struct admin_cb {
  int (*cb)(const ty_admin_event_row *r, void *ud);
  void *ud;
} admin_cb;

static int admin_row(sqlite3_stmt *st, void *ud) {
  admin_cb *p = ud;
  ty_admin_event_row r = {.time_ms = sqlite3_column_int64(st, 0),
                          .actor = col_text(st, 1),
                          .kind = col_text(st, 2),
                          .object = col_text(st, 3),
                          .action = col_text(st, 4),
                          .detail = col_text(st, 5)};
  return p->cb(&r, p->ud);
}

static int bind_admin_query(sqlite3_stmt *st, const void *ud) {
  const ty_admin_event_query *q = ud;
  bool ok = sqlite3_bind_text(st, 1, q->kind ? q->kind : "", -1, SQLITE_STATIC) == SQLITE_OK &&
            sqlite3_bind_int64(st, 2, q->since_ms) == SQLITE_OK &&
            sqlite3_bind_int64(st, 3, q->limit) == SQLITE_OK;
  return ok ? 0 : TY_ESTORE;
}

int ty_store_admin_events(ty_store *s, const ty_admin_event_query *q,
                          int (*cb)(const ty_admin_event_row *r, void *ud), void *ud) {
  admin_cb p = {cb, ud};
  return run(s, ty__store_loop_db(s),
             "SELECT time_ms, actor, kind, object, action, detail FROM (SELECT * FROM admin_events"
             " WHERE (?1 = '' OR kind = ?1) AND time_ms >= ?2 ORDER BY id DESC LIMIT ?3)"
             " ORDER BY id",
             bind_admin_query, q, admin_row, &p);
}
