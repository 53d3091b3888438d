/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/store on a temporary file: migrations, reopening,
 * events per transition, refusal of corrupt or future files, history
 * queries, pruning, array records, web tokens (upgrades of old files and
 * backups: test_store_upgrade.c). */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "store_fixture.h"

TestSuite(store, .init = store_setup, .fini = store_teardown);

static int copy_job(const ty_job_row *r, void *ud) {
  ty_job_row *out = ud;
  *out = *r;
  out->name = ty_strdup(r->name);
  out->reason = ty_strdup(r->reason);
  out->nodes = ty_strdup(r->nodes);
  cr_assert_eq(r->spec_len, 4u);
  cr_assert_eq(r->spec[3], 3);
  return 0;
}

static int find_default(const ty_queue_row *r, void *ud) {
  if (strcmp(r->name, "default") == 0 && strcmp(r->state, "OPEN") == 0) *(int *)ud = 1;
  return 0;
}

Test(store, migrates_an_empty_file) {
  ty_store *s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  int found = 0;
  cr_assert_eq(ty_store_load_queues(s, find_default, &found), 0);
  cr_assert_eq(found, 1);
  int n = 0;
  cr_assert_eq(ty_store_load_jobs(s, count_jobs, &n), 0);
  cr_assert_eq(n, 0);
  ty_store_close(s);
}

static void transition(ty_store *s, uint64_t id, int from, int to, const char *reason) {
  ty_txn *t = ty_txn_create();
  ty_job_row r = row(id, to);
  r.reason = reason;
  r.nodes = "n1,n2";
  ty_txn_update_job(t, &r, TY_JOB_ALL_COLS);
  ty_event_row ev = {.job_id = id,
                     .time_ms = 2000,
                     .from_state = from,
                     .to_state = to,
                     .reason = reason,
                     .actor = "controller"};
  ty_txn_add_event(t, &ev);
  commit_txn(s, t);
}

typedef struct evs {
  int n;
  int to[8];
  char reason[8][64];
} evs;

static int collect_event(const ty_event_row *r, void *ud) {
  evs *e = ud;
  if (e->n < 8) {
    e->to[e->n] = r->to_state;
    snprintf(e->reason[e->n], sizeof(e->reason[0]), "%s", r->reason);
  }
  e->n++;
  return 0;
}

Test(store, reopen_keeps_jobs_and_events) {
  ty_store *s = open_ok();
  submit(s, 1);
  submit(s, 2);
  transition(s, 1, TY_JOB_PENDING, TY_JOB_RUNNING, "");
  transition(s, 1, TY_JOB_RUNNING, TY_JOB_FAILED, "rank 0 exited with code 3");
  cr_assert_eq(ty_store_commits(s), 4u);
  ty_store_close(s);

  s = open_ok();
  int n = 0;
  cr_assert_eq(ty_store_load_jobs(s, count_jobs, &n), 0);
  cr_assert_eq(n, 2);
  evs e = {0};
  cr_assert_eq(ty_store_job_events(s, 1, collect_event, &e), 0);
  cr_assert_eq(e.n, 3);
  cr_assert_eq(e.to[0], TY_JOB_PENDING);
  cr_assert_eq(e.to[1], TY_JOB_RUNNING);
  cr_assert_eq(e.to[2], TY_JOB_FAILED);
  cr_assert_str_eq(e.reason[2], "rank 0 exited with code 3");
  ty_store_close(s);
}

static int stop_at_first(const ty_job_row *r, void *ud) {
  ty_job_row *out = ud;
  if (out->id) return 0;
  return copy_job(r, ud);
}

/* A graph job's plan file lives in its row (schema 3). */
static int check_plan(const ty_job_row *r, void *ud) {
  (void)ud;
  cr_assert_eq(r->plan_len, r->id == 1 ? 5u : 0u, "job %llu", (unsigned long long)r->id);
  if (r->id == 1) cr_assert_eq(memcmp(r->plan, "TYPL!", 5), 0);
  return 0;
}

Test(store, plans_are_kept_with_their_jobs) {
  ty_store *s = open_ok();
  ty_txn *t = ty_txn_create();
  ty_job_row a = row(1, TY_JOB_PENDING), b = row(2, TY_JOB_PENDING);
  a.plan = (const uint8_t *)"TYPL!";
  a.plan_len = 5;
  cr_assert_eq(ty_txn_insert_job(t, &a), 0);
  cr_assert_eq(ty_txn_insert_job(t, &b), 0);
  commit_txn(s, t);
  transition(s, 2, TY_JOB_PENDING, TY_JOB_RUNNING, "placed");
  ty_store_close(s);
  s = open_ok();
  cr_assert_eq(ty_store_load_jobs(s, check_plan, NULL), 0);
  ty_store_close(s);
}

Test(store, update_overwrites_the_row) {
  ty_store *s = open_ok();
  submit(s, 7);
  transition(s, 7, TY_JOB_PENDING, TY_JOB_RUNNING, "started");
  ty_job_row got = {0};
  cr_assert_eq(ty_store_load_jobs(s, stop_at_first, &got), 0);
  cr_assert_eq(got.id, 7u);
  cr_assert_eq(got.state, TY_JOB_RUNNING);
  cr_assert_str_eq(got.nodes, "n1,n2");
  cr_assert_str_eq(got.reason, "started");
  free((char *)got.name);
  free((char *)got.reason);
  free((char *)got.nodes);
  ty_job_row missing = row(99, TY_JOB_RUNNING);
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_update_job(s, &missing, TY_JOB_ALL_COLS), TY_ENOTFOUND);
  ty_store_rollback(s);
  ty_store_close(s);
}

Test(store, foreign_keys_are_enforced) {
  ty_store *s = open_ok();
  ty_event_row ev = {.job_id = 42, .time_ms = 1, .to_state = TY_JOB_PENDING};
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_add_event(s, &ev), TY_ESTORE);
  ty_store_rollback(s);
  ty_job_row r = row(1, TY_JOB_PENDING);
  r.queue = "nosuchqueue";
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_insert_job(s, &r), TY_ESTORE);
  ty_store_rollback(s);
  ty_store_close(s);
}

static int copy_node(const ty_node_row *r, void *ud) {
  ty_node_row *out = ud;
  out->state = r->state;
  out->cpus = r->cpus;
  out->gpus_len = r->gpus_len;
  return 0;
}

Test(store, nodes_upsert) {
  ty_store *s = open_ok();
  const uint8_t g[] = {9, 9};
  ty_node_row n = {.name = "n1",
                   .state = 1,
                   .cpus = 8,
                   .memory = 1 << 20,
                   .gpus = g,
                   .gpus_len = 2,
                   .io_addr = "127.0.0.1:7820",
                   .last_seen_ms = 5};
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_upsert_node(s, &n), 0);
  n.state = 2;
  n.cpus = 16;
  cr_assert_eq(ty_store_upsert_node(s, &n), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  ty_node_row got = {0};
  cr_assert_eq(ty_store_load_nodes(s, copy_node, &got), 0);
  cr_assert_eq(got.state, 2);
  cr_assert_eq(got.cpus, 16u);
  cr_assert_eq(got.gpus_len, 2u);
  ty_store_close(s);
}

Test(store, corrupt_file_is_refused) {
  FILE *f = fopen(store_path, "wb");
  cr_assert_not_null(f);
  for (int i = 0; i < 512; i++)
    fputs("this is not a database ", f);
  fclose(f);
  ty_store *s = NULL;
  char err[512] = "";
  cr_assert_eq(ty_store_open(store_path, &s, err, sizeof(err)), TY_ESTORE);
  cr_assert_null(s);
  cr_assert(strstr(err, store_path), "%s", err);
  cr_assert(strstr(err, "is not a usable SQLite database"), "%s", err);
}

/* A zero-length file is what a truncation leaves, not a new store: refused,
 * and left as it is. */
Test(store, an_empty_file_is_refused_not_taken_as_new) {
  FILE *f = fopen(store_path, "wb");
  cr_assert_not_null(f);
  fclose(f);
  ty_store *s = NULL;
  char err[512] = "";
  cr_assert_eq(ty_store_open(store_path, &s, err, sizeof(err)), TY_ESTORE);
  cr_assert_null(s);
  cr_assert(strstr(err, store_path), "%s", err);
  cr_assert(strstr(err, "is empty: a truncated or damaged file; restore a backup"), "%s", err);
  struct stat st;
  cr_assert_eq(stat(store_path, &st), 0);
  cr_assert_eq(st.st_size, 0, "the file was written: %lld bytes", (long long)st.st_size);
}

/* Copies store_path to dst: 0, or -1. */
static int copy_file(const char *dst) {
  FILE *in = fopen(store_path, "rb"), *out = fopen(dst, "wb");
  char buf[4096];
  size_t n;
  int rc = in && out ? 0 : -1;
  while (rc == 0 && (n = fread(buf, 1, sizeof buf, in)) > 0)
    rc = fwrite(buf, 1, n, out) == n ? 0 : -1;
  if (in) fclose(in);
  if (out && fclose(out) != 0) rc = -1;
  return rc;
}

/* Fills the filesystem of dir with dir/fill. */
static void fill_up(const char *dir) {
  char path[256];
  snprintf(path, sizeof path, "%s/fill", dir);
  FILE *f = fopen(path, "wb");
  static const char block[4096];
  while (f && fwrite(block, 1, sizeof block, f) == sizeof block)
    ;
  if (f) fclose(f);
}

/* An intact store on a full filesystem (SQLite cannot make its -shm file):
 * the error says the filesystem is full, not that the file is damaged. A
 * small tmpfs needs root; skipped where mounting is not permitted. */
Test(store, a_full_filesystem_is_not_blamed_on_the_file) {
  ty_store_close(open_ok());
  char dir[160], db[192];
  snprintf(dir, sizeof dir, "%s/small", store_dir);
  snprintf(db, sizeof db, "%s/traind.db", dir);
  cr_assert_eq(mkdir(dir, 0700), 0);
  if (mount("tmpfs", dir, "tmpfs", 0, "size=1m") != 0) cr_skip_test("cannot mount a tmpfs here");
  int copied = copy_file(db);
  fill_up(dir);
  ty_store *s = NULL;
  char err[512] = "";
  int rc = ty_store_open(db, &s, err, sizeof(err));
  ty_store_close(s);
  cr_assert_eq(umount(dir), 0);
  cr_assert_eq(copied, 0);
  cr_assert_eq(rc, TY_ESTORE, "%s", err);
  cr_assert(strstr(err, "cannot open"), "%s", err);
  cr_assert(strstr(err, "bytes free on its filesystem"), "%s", err);
  cr_assert(strstr(err, "the file itself was not checked"), "%s", err);
  cr_assert_null(strstr(err, "not a usable SQLite database"), "%s", err);
}

Test(store, newer_schema_is_refused) {
  ty_store *s = open_ok();
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  cr_assert_eq(sqlite3_exec(db, "PRAGMA user_version=99", NULL, NULL, NULL), SQLITE_OK);
  sqlite3_close(db);
  char err[512] = "";
  cr_assert_eq(ty_store_open(store_path, &s, err, sizeof(err)), TY_ESTORE);
  char want[96];
  snprintf(want, sizeof(want), "schema version 99, newer than this traind supports (%d)",
           ty_store_schema_version());
  cr_assert(strstr(err, want), "%s", err);
}

Test(store, unwritable_path_is_refused) {
  ty_store *s = NULL;
  char err[512] = "";
  cr_assert_eq(ty_store_open("/nonexistent-store_dir/x/traind.db", &s, err, sizeof(err)),
               TY_ESTORE);
  cr_assert(strstr(err, "/nonexistent-store_dir/x/traind.db"), "%s", err);
}

/* The jobs table is exactly TY_JOB_COLUMNS, in order, on a new file: the
 * CREATE TABLE of schema 1 and the ALTER TABLEs after it are generated from
 * the list, like the statements that read and write it. */
Test(store, jobs_table_is_the_column_list) {
  static const char *const want[] = {
#define COL_(version, col, kind, sql) #col,
      TY_JOB_COLUMNS(COL_)
#undef COL_
  };
  ty_store_close(open_ok());
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  sqlite3_stmt *st = NULL;
  cr_assert_eq(sqlite3_prepare_v2(db, "PRAGMA table_info(jobs)", -1, &st, NULL), SQLITE_OK);
  size_t n = 0;
  while (sqlite3_step(st) == SQLITE_ROW) {
    cr_assert_lt(n, TY_ARRAY_LEN(want), "more columns than TY_JOB_COLUMNS lists");
    cr_expect_str_eq((const char *)sqlite3_column_text(st, 1), want[n], "column %zu", n);
    n++;
  }
  cr_expect_eq(n, TY_ARRAY_LEN(want));
  sqlite3_finalize(st);
  sqlite3_close(db);
}

/* ---- issue 15: live-only loading, history by index, column-wise writes, pruning ---- */

/* n finished jobs (ended at 10,000 + id ms) and `live` pending ones after them. */
static void fill(ty_store *s, uint64_t n, uint64_t live) {
  ty_txn *t = ty_txn_create();
  for (uint64_t id = 1; id <= n + live; id++) {
    ty_job_row r = row(id, id <= n ? TY_JOB_COMPLETED : TY_JOB_PENDING);
    if (id <= n) r.end_ms = 10000 + (int64_t)id;
    cr_assert_eq(ty_txn_insert_job(t, &r), 0);
    ty_event_row ev = {
        .job_id = id, .time_ms = 1000, .to_state = r.state, .reason = "", .actor = "controller"};
    ty_txn_add_event(t, &ev);
    ty_rank_row rk = {.job_id = id, .run = 1, .rank = 0, .node = "n1", .end_ms = r.end_ms};
    if (id <= n) ty_txn_add_rank(t, &rk);
  }
  commit_txn(s, t);
}

Test(store, a_starting_controller_reads_only_live_jobs) {
  ty_store *s = open_ok();
  fill(s, 500, 3);
  uint64_t before = ty_store_rows_read(s);
  int n = 0;
  cr_assert_eq(ty_store_load_live_jobs(s, count_jobs, &n), 0);
  cr_assert_eq(n, 3);
  cr_assert_eq(ty_store_rows_read(s) - before, 3u, "read finished rows to load the live set");
  uint64_t max = 0;
  cr_assert_eq(ty_store_max_job_id(s, &max), 0);
  cr_assert_eq(max, 503u);
  ty_store_close(s);
}

Test(store, history_is_newest_first_with_a_limit) {
  ty_store *s = open_ok();
  fill(s, 300, 2);
  ty_store_reader *rd = NULL;
  cr_assert_eq(ty_store_reader_open(s, &rd), 0);
  ids got = {0};
  uint64_t before = ty_store_rows_read(s);
  ty_job_query q = {.finished_only = true, .limit = 5};
  cr_assert_eq(ty_store_query_jobs(rd, &q, note_id, &got), 0);
  cr_assert_eq(got.n, 5u);
  cr_assert(got.v[0] == 300 && got.v[4] == 296, "%llu..%llu", (unsigned long long)got.v[0],
            (unsigned long long)got.v[4]);
  cr_assert_eq(ty_store_rows_read(s) - before, 5u, "the LIMIT is the store's, not a filter");
  got.n = 0;
  q = (ty_job_query){.finished_only = true, .ended_since_ms = 10000 + 298};
  cr_assert_eq(ty_store_query_jobs(rd, &q, note_id, &got), 0);
  cr_assert_eq(got.n, 3u);
  got.n = 0;
  q = (ty_job_query){.finished_only = true, .user = "bob"};
  cr_assert_eq(ty_store_query_jobs(rd, &q, note_id, &got), 0);
  cr_assert_eq(got.n, 0u);
  /* Every shape of the query walks an index in order, sorting nothing. */
  uint64_t scans = ty_store_scans(s);
  int completed = TY_JOB_COMPLETED;
  ty_job_query shapes[] = {{.finished_only = true, .limit = 1},
                           {.finished_only = true, .user = "alice", .limit = 3},
                           {.finished_only = true, .states = &completed, .n_states = 1, .limit = 3},
                           {.finished_only = true, .ended_since_ms = 10000 + 100, .limit = 3}};
  for (size_t i = 0; i < TY_ARRAY_LEN(shapes); i++) {
    got.n = 0;
    cr_assert_eq(ty_store_query_jobs(rd, &shapes[i], note_id, &got), 0);
    cr_assert_eq(ty_store_scans(s), scans, "query %zu sorted or scanned the jobs table", i);
  }
  ty_store_reader_close(rd);
  ty_store_close(s);
}

/* Every shape of a history query (any of user, queue, states, end and
 * submit bounds, a page cursor, names, nodes, with or without a LIMIT) walks an index in
 * the listing's order: no table scan, nothing sorted; one filtered by user
 * or queue walks that column's index, not all history by end time, and so
 * does one listed by id without an end bound. Named jobs are found by key
 * and their few rows sorted. */
/* Whether a plan scans a table: a SCAN line other than of the request's
 * own node list (json_each, a virtual table of at most 4096 names). */
static bool scans_a_table(const char *plan) {
  for (const char *l = plan; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
    const char *end = strchr(l, '\n');
    size_t n = end ? (size_t)(end - l) : strlen(l);
    char line[512];
    snprintf(line, sizeof line, "%.*s", (int)(n < sizeof line - 1 ? n : sizeof line - 1), l);
    if (strstr(line, "SCAN") && !strstr(line, "VIRTUAL TABLE")) return true;
  }
  return false;
}

/* The same shape listed by id, newest first (history without --since,
 * `ls --all`): nothing sorted for the LIMIT; every user's jobs are the
 * table walked by its key, one user's or one queue's are walked in id
 * order through that column's id index. */
static void by_id_walks_an_index(ty_store_reader *rd, ty_job_query q, unsigned m) {
  q.by_id = true;
  ty_buf plan;
  ty_buf_init(&plan);
  cr_assert_eq(ty_store_query_plan(rd, &q, &plan), 0);
  ty_buf_append(&plan, "", 1);
  const char *p = (const char *)plan.data;
  cr_assert(!strstr(p, "TEMP B-TREE"), "shape %u by id: %s", m, p);
  if (q.user || q.queue) cr_assert(!scans_a_table(p), "shape %u by id: %s", m, p);
  if (q.user && !q.queue) cr_assert(strstr(p, "jobs_by_user_id"), "shape %u by id: %s", m, p);
  if (q.queue && !q.user) cr_assert(strstr(p, "jobs_by_queue_id"), "shape %u by id: %s", m, p);
  ty_buf_close(&plan);
}

Test(store, every_history_query_shape_walks_an_index) {
  ty_store *s = open_ok();
  fill(s, 50, 2);
  ty_store_reader *rd = NULL;
  cr_assert_eq(ty_store_reader_open(s, &rd), 0);
  int states[] = {TY_JOB_COMPLETED, TY_JOB_FAILED};
  uint64_t ids[] = {3, 7};
  const char *names[] = {"train", "eval"}, *nodes[] = {"n1", "n2"};
  for (unsigned m = 0; m < 512; m++) {
    ty_job_query q = {.finished_only = true};
    if (m & 128) q.names = names, q.n_names = 2;
    if (m & 256) q.nodes = nodes, q.n_nodes = 2;
    if (m & 1) q.user = "alice";
    if (m & 2) q.queue = "default";
    if (m & 4) q.states = states, q.n_states = 2;
    if (m & 8) q.ended_since_ms = 10010;
    if (m & 16) q.submitted_before_ms = 20000;
    if (m & 32) q.before_end_ms = 10040, q.before_id = 40;
    if (m & 64) q.limit = 10;
    ty_buf plan;
    ty_buf_init(&plan);
    cr_assert_eq(ty_store_query_plan(rd, &q, &plan), 0);
    const char *p = (const char *)plan.data;
    cr_assert(p && !scans_a_table(p) && !strstr(p, "TEMP B-TREE"), "shape %u: %s", m, p);
    if (q.user && !q.queue) cr_assert(strstr(p, "jobs_by_user"), "shape %u: %s", m, p);
    if (q.queue && !q.user) cr_assert(strstr(p, "jobs_by_queue"), "shape %u: %s", m, p);
    if (q.user && q.queue)
      cr_assert(strstr(p, "jobs_by_user") || strstr(p, "jobs_by_queue"), "shape %u: %s", m, p);
    if (!(m & (8 | 32))) by_id_walks_an_index(rd, q, m);
    /* Named jobs and arrays: by key, never a scan. */
    q.ids = ids, q.n_ids = 2;
    plan.len = 0;
    cr_assert_eq(ty_store_query_plan(rd, &q, &plan), 0);
    ty_buf_append(&plan, "", 1);
    cr_assert(!scans_a_table((const char *)plan.data), "shape %u with ids: %s", m,
              (const char *)plan.data);
    ty_buf_close(&plan);
  }
  ty_store_reader_close(rd);
  ty_store_close(s);
}

/* sacct --name and -N in the store: an old job of that name is found past
 * a LIMIT's worth of newer ones, and a node matches a whole element of
 * the node list (n1 is not n10, nor a prefix of "n1x"). */
Test(store, history_by_name_and_node_is_applied_before_the_limit) {
  ty_store *s = open_ok();
  ty_txn *t = ty_txn_create();
  static const char *const nodes[] = {"n10", "n1x,n2", "n2,n1", "n1", "n10,n11"};
  for (uint64_t id = 1; id <= 40; id++) {
    ty_job_row r = row(id, TY_JOB_COMPLETED);
    r.end_ms = 10000 + (int64_t)id;
    r.name = id == 2 ? "old" : "train";
    r.nodes = nodes[id % 5];
    cr_assert_eq(ty_txn_insert_job(t, &r), 0);
  }
  commit_txn(s, t);
  ty_store_reader *rd = NULL;
  cr_assert_eq(ty_store_reader_open(s, &rd), 0);
  ids got = {0};
  const char *old[] = {"old", "none"}, *n1[] = {"n1"};
  ty_job_query q = {.finished_only = true, .limit = 5, .names = old, .n_names = 2};
  cr_assert_eq(ty_store_query_jobs(rd, &q, note_id, &got), 0);
  cr_assert(got.n == 1 && got.v[0] == 2, "%zu rows, the first %llu", got.n,
            (unsigned long long)got.v[0]);
  got.n = 0;
  q = (ty_job_query){.finished_only = true, .limit = 16, .nodes = n1, .n_nodes = 1};
  cr_assert_eq(ty_store_query_jobs(rd, &q, note_id, &got), 0);
  cr_assert_eq(got.n, 16u);
  for (size_t i = 0; i < got.n; i++)
    cr_assert(got.v[i] % 5 == 2 || got.v[i] % 5 == 3, "job %llu (nodes %s) is not on n1",
              (unsigned long long)got.v[i], nodes[got.v[i] % 5]);
  ty_store_reader_close(rd);
  ty_store_close(s);
}

static int check_untouched(const ty_job_row *r, void *ud) {
  (void)ud;
  cr_assert_str_eq(r->name, "train", "a column outside the set was written");
  cr_assert_eq(r->state, TY_JOB_RUNNING);
  return 0;
}

Test(store, an_update_writes_only_its_columns) {
  ty_store *s = open_ok();
  submit(s, 7);
  ty_job_row r = row(7, TY_JOB_RUNNING);
  r.name = "renamed";
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_update_job(s, &r, TY_JOB_BIT(state)), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(ty_store_get_job(s, 7, check_untouched, NULL), 0);
  cr_assert_eq(ty_store_get_job(s, 8, check_untouched, NULL), TY_ENOTFOUND);
  ty_store_close(s);
}

Test(store, pruning_deletes_old_jobs_with_their_records) {
  ty_store *s = open_ok();
  fill(s, 20, 1);
  uint32_t gone = 0;
  char **unlink = NULL;
  size_t n_unlink = 0;
  cr_assert_eq(ty_store_begin(s), 0);
  /* Ended before 10,011: jobs 1-10, at most 4 per call. */
  cr_assert_eq(ty_store_prune(s, 10011, 4, &gone, &unlink, &n_unlink), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(gone, 4u);
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_prune(s, 10011, 100, &gone, &unlink, &n_unlink), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(gone, 6u);
  cr_assert_eq(n_unlink, 0u);
  free(unlink);
  int n = 0;
  cr_assert_eq(ty_store_load_jobs(s, count_jobs, &n), 0);
  cr_assert_eq(n, 11, "10 finished and the live one remain");
  evs e = {0};
  cr_assert_eq(ty_store_job_events(s, 3, collect_event, &e), 0);
  cr_assert_eq(e.n, 0, "a pruned job's events stay");
  ty_store_reader *rd = NULL;
  cr_assert_eq(ty_store_reader_open(s, &rd), 0);
  int ranks = 0;
  cr_assert_eq(ty_store_query_ranks(rd, 3, count_ranks, &ranks), 0);
  cr_assert_eq(ranks, 0);
  cr_assert_eq(ty_store_query_ranks(rd, 15, count_ranks, &ranks), 0);
  cr_assert_eq(ranks, 1);
  ty_store_reader_close(rd);
  ty_store_close(s);
}

/* Ids are never reused: once pruning deleted every job, the largest id it
 * deleted stays taken, across a reopen (a restarted traind). */
Test(store, pruning_every_job_keeps_its_ids_taken) {
  ty_store *s = open_ok();
  fill(s, 5, 0);
  uint32_t gone = 0;
  char **unlink = NULL;
  size_t n_unlink = 0;
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_prune(s, 10003, 100, &gone, &unlink, &n_unlink), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(gone, 2u);
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_prune(s, 20000, 100, &gone, &unlink, &n_unlink), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(gone, 3u);
  free(unlink);
  ty_store_close(s);
  s = open_ok();
  int n = 0;
  cr_assert_eq(ty_store_load_jobs(s, count_jobs, &n), 0);
  cr_assert_eq(n, 0, "every job was pruned");
  uint64_t max = 0;
  cr_assert_eq(ty_store_max_job_id(s, &max), 0);
  cr_assert_eq(max, 5u, "the pruned jobs' ids would be given out again");
  ty_store_close(s);
}

/* ---- pending arrays' records (schema 8) --------------------------------------------------- */

static int note_array(const ty_job_row *first, uint32_t elements, void *ud) {
  uint64_t *out = ud;
  out[0] = first->id, out[1] = elements, out[2]++;
  return 0;
}

static int note_row_id(uint64_t id, void *ud) {
  ids *v = ud;
  v->v[v->n++] = id;
  return 0;
}

/* Element `task` of array 10 as its own row. */
static void split_row(ty_store *s, uint32_t task, int state) {
  ty_job_row e = row(10 + task, state);
  e.array_id = 10, e.array_task = task;
  e.start_ms = 2000;
  if (state == TY_JOB_COMPLETED) e.end_ms = 3000;
  ty_txn *t = ty_txn_create();
  cr_assert_eq(ty_txn_insert_job(t, &e), 0);
  ty_txn_array_done(t, 10); /* asked at every split: it goes only with the last */
  commit_txn(s, t);
}

/* An array of 5 is one record: its ids are reserved, its elements count as
 * pending until each has a row, the record goes with the last, and pruning
 * leaves the array's finished rows while the record is there (a pruned row
 * would bring its element back at the next start). */
Test(store, a_pending_array_is_one_record_until_every_element_has_a_row) {
  ty_store *s = open_ok();
  ty_job_row first = row(10, TY_JOB_PENDING);
  first.array_id = 10;
  ty_txn *t = ty_txn_create();
  cr_assert_eq(ty_txn_insert_array(t, &first, 5), 0);
  commit_txn(s, t);
  uint64_t max = 0, rec[3] = {0};
  cr_assert_eq(ty_store_max_job_id(s, &max), 0);
  cr_assert_eq(max, 14u, "the record's ids are taken");
  cr_assert_eq(ty_store_load_arrays(s, note_array, rec), 0);
  cr_assert_eq(rec[0], 10u);
  cr_assert_eq(rec[1], 5u);
  cr_assert_eq(rec[2], 1u);
  ty_array_counts c;
  cr_assert_eq(ty_store_array_counts(s, 10, &c), 0);
  cr_assert_eq(c.total, 5u);
  cr_assert_eq(c.started + c.ended, 0u);
  split_row(s, 2, TY_JOB_COMPLETED);
  split_row(s, 0, TY_JOB_RUNNING);
  ids split = {0};
  cr_assert_eq(ty_store_array_rows(s, 10, note_row_id, &split), 0);
  cr_assert_eq(split.n, 2u);
  cr_assert_eq(split.v[0], 10u);
  cr_assert_eq(split.v[1], 12u);
  cr_assert_eq(ty_store_array_counts(s, 10, &c), 0);
  cr_assert_eq(c.total, 5u);
  cr_assert_eq(c.started, 2u);
  cr_assert_eq(c.ended, 1u);
  cr_assert_eq(c.completed, 1u);
  uint32_t gone = 9;
  char **unlink = NULL;
  size_t n_unlink = 0;
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_prune(s, 1000000, 100, &gone, &unlink, &n_unlink), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(gone, 0u, "an array with a record lost a row to pruning");
  rec[2] = 0;
  cr_assert_eq(ty_store_load_arrays(s, note_array, rec), 0);
  cr_assert_eq(rec[2], 1u, "the record went before every element had a row");
  split_row(s, 1, TY_JOB_COMPLETED);
  split_row(s, 3, TY_JOB_COMPLETED);
  split_row(s, 4, TY_JOB_COMPLETED);
  rec[2] = 0;
  cr_assert_eq(ty_store_load_arrays(s, note_array, rec), 0);
  cr_assert_eq(rec[2], 0u, "the last element's row took the record with it");
  cr_assert_eq(ty_store_max_job_id(s, &max), 0);
  cr_assert_eq(max, 14u);
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_prune(s, 1000000, 100, &gone, &unlink, &n_unlink), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  cr_assert_eq(gone, 4u, "the finished elements are pruned once the record is gone");
  free(unlink);
  ty_store_close(s);
}

/* ---- web console tokens ------------------------------------------------------------------- */

/* A token's row is found by its hash with its user and times; revoking
 * marks every live one of that uid and no other's; a token expired a day
 * before a new one is stored is forgotten. */
Test(store, web_tokens_are_found_revoked_and_forgotten) {
  ty_store *s = open_ok();
  int64_t day = 24LL * 3600 * 1000;
  ty_web_token_row a1 = {.hash = "a1",
                         .uid = 1000,
                         .gid = 100,
                         .user = "alice",
                         .created_ms = 5 * day,
                         .expires_ms = 9 * day},
                   a2 = {.hash = "a2", .uid = 1000, .user = "alice", .expires_ms = 9 * day},
                   b1 = {.hash = "b1", .uid = 1001, .user = "bob", .expires_ms = 9 * day}, got;
  apply_web(s, &a1, false), apply_web(s, &a2, false), apply_web(s, &b1, false);
  cr_assert_eq(ty_store_find_web_token(s, "a1", &got), 0);
  cr_expect(got.uid == 1000 && got.gid == 100 && !strcmp(got.user, "alice") &&
            got.expires_ms == 9 * day && got.revoked_ms == 0);
  cr_expect_eq(ty_store_find_web_token(s, "zz", &got), TY_ENOTFOUND);
  uint32_t n = 0;
  cr_assert_eq(ty_store_count_web_tokens(s, 1000, 6 * day, &n), 0);
  cr_expect_eq(n, 2);
  cr_assert_eq(ty_store_count_web_tokens(s, 1000, 10 * day, &n), 0);
  cr_expect_eq(n, 0, "expired tokens are not live");
  ty_web_token_row rv = {.uid = 1000, .revoked_ms = 7 * day};
  apply_web(s, &rv, true);
  cr_assert_eq(ty_store_find_web_token(s, "a2", &got), 0);
  cr_expect_eq(got.revoked_ms, 7 * day);
  cr_assert_eq(ty_store_find_web_token(s, "b1", &got), 0);
  cr_expect_eq(got.revoked_ms, 0, "bob's token was revoked with alice's");
  ty_web_token_row late = {
      .hash = "c1", .uid = 1002, .created_ms = 11 * day, .expires_ms = 12 * day};
  apply_web(s, &late, false);
  cr_expect_eq(ty_store_find_web_token(s, "a1", &got), TY_ENOTFOUND, "an old token was kept");
  cr_expect_eq(ty_store_find_web_token(s, "c1", &got), 0);
  ty_store_close(s);
}
