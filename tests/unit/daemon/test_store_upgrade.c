/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for daemon/store's files over time: a file an older traind
 * wrote is upgraded with its jobs; a backup holds the last commit and
 * refuses bad destinations; a kept statement reads later commits. */
#include <criterion/criterion.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "store_fixture.h"

TestSuite(store_upgrade, .init = store_setup, .fini = store_teardown);

/* ---- upgrades ----------------------------------------------------------------------------- */

/* What schema 15 added: a running job's kill, in jobs and arrays. */
#define DROP_KILL_COLUMNS                                                                          \
  "ALTER TABLE jobs DROP COLUMN kill_sent; ALTER TABLE arrays DROP COLUMN kill_sent;"              \
  "ALTER TABLE jobs DROP COLUMN requeue_asked; ALTER TABLE arrays DROP COLUMN requeue_asked;"      \
  "ALTER TABLE jobs DROP COLUMN preempt_for; ALTER TABLE arrays DROP COLUMN preempt_for;"

/* What schema 16 added: the queues' access lists. */
#define DROP_ALLOW_COLUMNS                                                                         \
  "ALTER TABLE queues DROP COLUMN allow_groups; ALTER TABLE queues DROP COLUMN allow_users;"

/* What schema 17 added: how each run ended, on its rank rows; 18: whose
 * hold it is, and 19: the hash of a request id's Job, in jobs and arrays. */
#define DROP_RUN_STATE "ALTER TABLE ranks DROP COLUMN run_state;"
#define DROP_HELD_BY                                                                               \
  "ALTER TABLE jobs DROP COLUMN held_by; ALTER TABLE arrays DROP COLUMN held_by;"                  \
  "ALTER TABLE jobs DROP COLUMN request_hash; ALTER TABLE arrays DROP COLUMN request_hash;"

static void exec_ok(sqlite3 *db, const char *sql) {
  cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql,
               sqlite3_errmsg(db));
}

/* Turns a new file into what a schema-`v` traind (3 or 4) wrote: without
 * what schema 4 (request ids), 5 (accounting, uids), 6 (arrays, per-rank
 * accounting, node events, history indexes), 7 (web tokens), 8 (array
 * records), 9 (the queue index), 12 (queues' memory), 13 (the pruned ids' mark),
 * 14 (graph jobs' progress), 15 (a running job's kill) and 16 (queues' access
 * lists) added. */
static void downgrade_to(int v) {
  static const struct {
    int version;
    const char *name;
  } cols[] = {
#define COL_(version, col, kind, sql) {version, #col},
      TY_JOB_COLUMNS(COL_)
#undef COL_
  };
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, "DROP INDEX jobs_by_end; DROP INDEX jobs_by_user; DROP INDEX jobs_by_array;"
              "DROP TABLE ranks; DROP TABLE node_events; DROP INDEX jobs_by_request;"
              "DROP TABLE web_tokens; DROP TABLE arrays; DROP INDEX jobs_by_queue;"
              "DROP INDEX jobs_by_user_id; DROP INDEX jobs_by_queue_id;"
              "ALTER TABLE queues DROP COLUMN default_mem; ALTER TABLE queues DROP COLUMN max_mem;"
              "DROP TABLE meta;" DROP_ALLOW_COLUMNS);
  for (size_t i = 0; i < TY_ARRAY_LEN(cols); i++) {
    if (cols[i].version <= v) continue;
    char sql[128];
    snprintf(sql, sizeof sql, "ALTER TABLE jobs DROP COLUMN %s", cols[i].name);
    cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s: %s", sql,
                 sqlite3_errmsg(db));
  }
  if (v == 4)
    exec_ok(db, "CREATE UNIQUE INDEX jobs_by_request ON jobs(user, request_id) "
                "WHERE request_id != ''");
  char sql[64];
  snprintf(sql, sizeof sql, "PRAGMA user_version=%d", v);
  exec_ok(db, sql);
  sqlite3_close(db);
}

static int check_upgraded(const ty_job_row *r, void *ud) {
  (*(int *)ud)++;
  cr_expect_eq(r->id, 7u);
  cr_expect_str_eq(r->name, "train");
  cr_expect_str_eq(r->request_id, "");
  cr_expect_eq(r->uid, -1, "a job from before authentication has no uid");
  cr_expect_eq(r->cpu_usec, 0);
  cr_expect_eq(r->array_id, 0);
  cr_expect_str_eq(r->model_file, "");
  cr_expect(!r->acct_measured);
  cr_expect(!r->exclusive, "a job from before schema 10 is not exclusive");
  cr_expect_eq(r->graph_progress_len, 0u, "a job from before schema 14 has no stored progress");
  cr_expect(!r->kill_sent && !r->requeue_asked && r->preempt_for == 0,
            "a job from before schema 15 is being killed");
  return 0;
}

/* 0, or the store's error, for one job row with this uid and request id. */
static int insert_with(ty_store *s, uint64_t id, int64_t uid, const char *rid) {
  ty_job_row r = row(id, TY_JOB_PENDING);
  r.uid = uid;
  r.request_id = rid;
  cr_assert_eq(ty_store_begin(s), 0);
  int rc = ty_store_insert_job(s, &r);
  if (rc == 0)
    cr_assert_eq(ty_store_commit(s), 0);
  else
    ty_store_rollback(s);
  return rc;
}

/* Opens a file downgraded to schema v and checks what the upgrade made. */
static void upgrade_from(int v) {
  ty_store *s = open_ok();
  submit(s, 7);
  ty_store_close(s);
  downgrade_to(v);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  cr_assert_eq(ty_store_schema_version(), 20);
  int n = 0;
  cr_assert_eq(ty_store_load_jobs(s, check_upgraded, &n), 0);
  cr_assert_eq(n, 1);
  /* A request id is unique per uid: another uid may use it, the same may
   * not; rows without a uid (from before authentication) are outside. */
  cr_expect_eq(insert_with(s, 8, 1000, "r1"), 0);
  cr_expect_eq(insert_with(s, 9, 1001, "r1"), 0);
  cr_expect_neq(insert_with(s, 10, 1000, "r1"), 0);
  cr_expect_eq(insert_with(s, 11, -1, "r1"), 0);
  cr_expect_eq(insert_with(s, 12, -1, "r1"), 0);
  /* Schema 6's tables and indexes are there: per-rank accounting, node
   * events, and history through its indexes. */
  ty_txn *t = ty_txn_create();
  ty_rank_row rk = {.job_id = 7, .run = 1, .rank = 0, .node = "n1", .cpu_ms = 5, .measured = true};
  ty_txn_add_rank(t, &rk);
  commit_txn(s, t);
  ty_store_reader *rd = NULL;
  cr_assert_eq(ty_store_reader_open(s, &rd), 0);
  int ranks = 0;
  cr_assert_eq(ty_store_query_ranks(rd, 7, count_ranks, &ranks), 0);
  cr_expect_eq(ranks, 1);
  ids got = {0};
  uint64_t scans = ty_store_scans(s);
  ty_job_query q = {.finished_only = true, .user = "alice", .limit = 3};
  cr_assert_eq(ty_store_query_jobs(rd, &q, note_id, &got), 0);
  cr_expect_eq(ty_store_scans(s), scans, "history of an upgraded file scanned the jobs table");
  ty_store_reader_close(rd);
  ty_web_token_row w = {.hash = "ab", .uid = 1000, .expires_ms = 10}, got_w;
  apply_web(s, &w, false);
  cr_expect_eq(ty_store_find_web_token(s, "ab", &got_w), 0, "schema 7's web_tokens is missing");
  ty_store_close(s);
}

Test(store_upgrade, a_schema_3_file_is_upgraded_with_its_jobs) {
  upgrade_from(3);
}

Test(store_upgrade, a_schema_4_file_is_upgraded_with_its_jobs) {
  upgrade_from(4);
}

/* ud: int[2], job 7's and job 8's exclusive column. */
static int note_exclusive(const ty_job_row *r, void *ud) {
  if (r->id == 7 || r->id == 8) ((int *)ud)[r->id - 7] = r->exclusive ? 1 : 0;
  return 0;
}

/* Schema 10 adds `exclusive` to jobs and arrays: a schema-9 file gets it
 * (0 for its jobs), and a job stored with it reads it back. */
Test(store_upgrade, a_schema_9_file_gets_the_exclusive_column) {
  ty_store *s = open_ok();
  submit(s, 7);
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, "ALTER TABLE jobs DROP COLUMN exclusive; ALTER TABLE arrays DROP COLUMN exclusive;"
              "ALTER TABLE jobs DROP COLUMN req_nodes; ALTER TABLE arrays DROP COLUMN req_nodes;"
              "ALTER TABLE jobs DROP COLUMN exc_nodes; ALTER TABLE arrays DROP COLUMN exc_nodes;"
              "ALTER TABLE queues DROP COLUMN default_mem; ALTER TABLE queues DROP COLUMN max_mem;"
              "DROP TABLE meta; ALTER TABLE jobs DROP COLUMN graph_progress;"
              "ALTER TABLE arrays DROP COLUMN graph_progress;" DROP_KILL_COLUMNS DROP_ALLOW_COLUMNS
                  DROP_RUN_STATE DROP_HELD_BY "PRAGMA user_version=9");
  sqlite3_close(db);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  ty_job_row r = row(8, TY_JOB_PENDING);
  r.exclusive = true;
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_insert_job(s, &r), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  int excl[2] = {-1, -1};
  cr_assert_eq(ty_store_load_jobs(s, note_exclusive, excl), 0);
  cr_expect_eq(excl[0], 0, "the schema-9 job is not exclusive");
  cr_expect_eq(excl[1], 1, "the exclusive column did not survive");
  ty_store_close(s);
}

/* ud: char[2][32], job 7's and job 8's req_nodes and exc_nodes columns. */
static int note_lists(const ty_job_row *r, void *ud) {
  char(*out)[2][32] = ud;
  if (r->id == 7 || r->id == 8)
    snprintf(out[r->id - 7][0], 32, "%s", r->req_nodes),
        snprintf(out[r->id - 7][1], 32, "%s", r->exc_nodes);
  return 0;
}

/* Schema 11 adds `req_nodes` and `exc_nodes` (-w/-x as hostlists) to jobs
 * and arrays: a schema-10 file gets them ("" for its jobs), and a job
 * stored with them reads them back. */
Test(store_upgrade, a_schema_10_file_gets_the_node_list_columns) {
  ty_store *s = open_ok();
  submit(s, 7);
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, "ALTER TABLE jobs DROP COLUMN req_nodes; ALTER TABLE arrays DROP COLUMN req_nodes;"
              "ALTER TABLE jobs DROP COLUMN exc_nodes; ALTER TABLE arrays DROP COLUMN exc_nodes;"
              "ALTER TABLE queues DROP COLUMN default_mem; ALTER TABLE queues DROP COLUMN max_mem;"
              "DROP TABLE meta; ALTER TABLE jobs DROP COLUMN graph_progress;"
              "ALTER TABLE arrays DROP COLUMN graph_progress;" DROP_KILL_COLUMNS DROP_ALLOW_COLUMNS
                  DROP_RUN_STATE DROP_HELD_BY "PRAGMA user_version=10");
  sqlite3_close(db);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  ty_job_row r = row(8, TY_JOB_PENDING);
  r.req_nodes = "w[1-2]", r.exc_nodes = "w3";
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_insert_job(s, &r), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  char lists[2][2][32] = {{"?", "?"}, {"?", "?"}};
  cr_assert_eq(ty_store_load_jobs(s, note_lists, lists), 0);
  cr_expect_str_eq(lists[0][0], "", "the schema-10 job has no -w");
  cr_expect_str_eq(lists[0][1], "");
  cr_expect_str_eq(lists[1][0], "w[1-2]", "req_nodes did not survive");
  cr_expect_str_eq(lists[1][1], "w3", "exc_nodes did not survive");
  ty_store_close(s);
}

/* ud: uint64_t[2], queue "small"'s default_mem and max_mem. */
static int note_queue_mem(const ty_queue_row *r, void *ud) {
  if (!strcmp(r->name, "small"))
    ((uint64_t *)ud)[0] = r->default_mem, ((uint64_t *)ud)[1] = r->max_mem;
  return 0;
}

/* Schema 12 adds a queue's default_mem and max_mem: a schema-11 file's
 * queues get none (0), and a queue stored with them reads them back. */
Test(store_upgrade, a_schema_11_file_gets_the_queue_memory_columns) {
  ty_store *s = open_ok();
  ty_queue_row q = {.name = "small", .priority_tier = 1, .state = "OPEN", .share = 1};
  cr_assert_eq(ty_store_upsert_queue(s, &q), 0);
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, "ALTER TABLE queues DROP COLUMN default_mem; ALTER TABLE queues DROP COLUMN max_mem;"
              "DROP TABLE meta; ALTER TABLE jobs DROP COLUMN graph_progress;"
              "ALTER TABLE arrays DROP COLUMN graph_progress;" DROP_KILL_COLUMNS DROP_ALLOW_COLUMNS
                  DROP_RUN_STATE DROP_HELD_BY "PRAGMA user_version=11");
  sqlite3_close(db);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  uint64_t mem[2] = {1, 1};
  cr_assert_eq(ty_store_load_queues(s, note_queue_mem, mem), 0);
  cr_expect(mem[0] == 0 && mem[1] == 0, "a schema-11 queue has no memory default or maximum");
  q.default_mem = 256ull << 20, q.max_mem = 16ull << 30;
  cr_assert_eq(ty_store_upsert_queue(s, &q), 0);
  cr_assert_eq(ty_store_load_queues(s, note_queue_mem, mem), 0);
  cr_expect(mem[0] == 256ull << 20 && mem[1] == 16ull << 30, "default_mem and max_mem were lost");
  ty_store_close(s);
}

/* ud: int[2][3], job 7's and job 8's kill_sent, requeue_asked and preempt_for. */
static int note_kill(const ty_job_row *r, void *ud) {
  int(*out)[3] = ud;
  if (r->id == 7 || r->id == 8)
    out[r->id - 7][0] = r->kill_sent, out[r->id - 7][1] = r->requeue_asked,
                out[r->id - 7][2] = (int)r->preempt_for;
  return 0;
}

/* Schema 15 adds a running job's kill (kill_sent, requeue_asked,
 * preempt_for) to jobs and arrays: a schema-14 file's jobs are not being
 * killed, and a job stored being killed reads it back. */
Test(store_upgrade, a_schema_14_file_gets_the_kill_columns) {
  ty_store *s = open_ok();
  submit(s, 7);
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, DROP_KILL_COLUMNS DROP_ALLOW_COLUMNS DROP_RUN_STATE DROP_HELD_BY
          "PRAGMA user_version=14");
  sqlite3_close(db);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  ty_job_row r = row(8, TY_JOB_RUNNING);
  r.kill_sent = r.requeue_asked = true, r.preempt_for = 9;
  cr_assert_eq(ty_store_begin(s), 0);
  cr_assert_eq(ty_store_insert_job(s, &r), 0);
  cr_assert_eq(ty_store_commit(s), 0);
  int kill[2][3] = {{-1, -1, -1}, {-1, -1, -1}};
  cr_assert_eq(ty_store_load_jobs(s, note_kill, kill), 0);
  cr_expect(kill[0][0] == 0 && kill[0][1] == 0 && kill[0][2] == 0,
            "the schema-14 job is being killed: %d %d %d", kill[0][0], kill[0][1], kill[0][2]);
  cr_expect(kill[1][0] == 1 && kill[1][1] == 1 && kill[1][2] == 9,
            "the kill columns did not survive: %d %d %d", kill[1][0], kill[1][1], kill[1][2]);
  ty_store_close(s);
}

/* ud: char[2][64], queue "high"'s allow_groups and allow_users. */
static int note_queue_allow(const ty_queue_row *r, void *ud) {
  char(*out)[64] = ud;
  if (!strcmp(r->name, "high"))
    snprintf(out[0], 64, "%s", r->allow_groups), snprintf(out[1], 64, "%s", r->allow_users);
  return 0;
}

/* Schema 16 adds a queue's allow_groups and allow_users: a schema-15
 * file's queues allow everyone (''), and a queue stored with lists reads
 * them back. */
Test(store_upgrade, a_schema_15_file_gets_the_queue_access_columns) {
  ty_store *s = open_ok();
  ty_queue_row q = {.name = "high", .priority_tier = 9, .state = "OPEN", .share = 1};
  cr_assert_eq(ty_store_upsert_queue(s, &q), 0);
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, DROP_ALLOW_COLUMNS DROP_RUN_STATE DROP_HELD_BY "PRAGMA user_version=15");
  sqlite3_close(db);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  char allow[2][64] = {"x", "x"};
  cr_assert_eq(ty_store_load_queues(s, note_queue_allow, allow), 0);
  cr_expect(!allow[0][0] && !allow[1][0], "a schema-15 queue has access lists: [%s] [%s]", allow[0],
            allow[1]);
  q.allow_groups = "hpc-admins,ml", q.allow_users = "bob";
  cr_assert_eq(ty_store_upsert_queue(s, &q), 0);
  cr_assert_eq(ty_store_load_queues(s, note_queue_allow, allow), 0);
  cr_expect_str_eq(allow[0], "hpc-admins,ml");
  cr_expect_str_eq(allow[1], "bob");
  ty_store_close(s);
}

/* ud: int[3][3], run_state of (job 7 + i, run 1 + k); -1 = no row. */
static int note_run_state(const ty_rank_row *r, void *ud) {
  int(*out)[3] = ud;
  if (r->job_id >= 7 && r->job_id < 10 && r->run >= 1 && r->run <= 3)
    out[r->job_id - 7][r->run - 1] = r->run_state;
  return 0;
}

static void read_run_states(ty_store *s, int out[3][3]) {
  for (int i = 0; i < 3; i++)
    for (int k = 0; k < 3; k++)
      out[i][k] = -1;
  ty_store_reader *rd = NULL;
  cr_assert_eq(ty_store_reader_open(s, &rd), 0);
  for (uint64_t id = 7; id < 10; id++)
    cr_assert_eq(ty_store_query_ranks(rd, id, note_run_state, out), 0);
  ty_store_reader_close(rd);
}

/* Job `id` in `state` after `requeues` requeues, with one rank row per run
 * (1 .. runs), committed. */
static void job_with_runs(ty_store *s, uint64_t id, int state, uint32_t requeues, uint32_t runs) {
  ty_job_row r = row(id, state);
  r.requeue_count = requeues;
  ty_txn *t = ty_txn_create();
  cr_assert_eq(ty_txn_insert_job(t, &r), 0);
  for (uint32_t run = 1; run <= runs; run++)
    ty_txn_add_rank(t, &(ty_rank_row){.job_id = id, .run = run, .node = "n1"});
  commit_txn(s, t);
}

/* Schema 17 adds how each run ended (ranks.run_state). A schema-16 file's
 * rows get what can be told: a run older than the job's latest was
 * requeued (REQUEUED), the latest run of an ended job ended as the job
 * did, the latest of a live job is not known (0). */
Test(store_upgrade, a_schema_16_file_gets_the_run_states) {
  ty_store *s = open_ok();
  job_with_runs(s, 7, TY_JOB_COMPLETED, 2, 3); /* runs 1, 2 requeued; 3 completed */
  job_with_runs(s, 8, TY_JOB_RUNNING, 1, 1);   /* run 1 requeued; run 2 running, no row */
  job_with_runs(s, 9, TY_JOB_FAILED, 0, 1);
  ty_store_close(s);
  sqlite3 *db = NULL;
  cr_assert_eq(sqlite3_open(store_path, &db), SQLITE_OK);
  exec_ok(db, DROP_RUN_STATE DROP_HELD_BY "PRAGMA user_version=16");
  sqlite3_close(db);
  s = open_ok();
  cr_assert_eq(ty_store_user_version(s), ty_store_schema_version());
  int got[3][3];
  read_run_states(s, got);
  cr_expect(got[0][0] == TY_RUN_REQUEUED && got[0][1] == TY_RUN_REQUEUED &&
                got[0][2] == TY_JOB_COMPLETED,
            "job 7's runs: %d %d %d", got[0][0], got[0][1], got[0][2]);
  cr_expect(got[1][0] == TY_RUN_REQUEUED && got[1][1] == -1, "job 8's runs: %d %d", got[1][0],
            got[1][1]);
  cr_expect_eq(got[2][0], TY_JOB_FAILED, "job 9's run: %d", got[2][0]);
  ty_store_close(s);
}

/* A run's end goes onto its rank rows written before it (and only its
 * run's); a row written after it carries its own. */
Test(store_upgrade, a_run_state_is_set_on_the_runs_rows) {
  ty_store *s = open_ok();
  job_with_runs(s, 7, TY_JOB_PENDING, 1, 2);
  ty_txn *t = ty_txn_create();
  ty_txn_set_run_state(t, 7, 2, TY_JOB_PREEMPTED);
  ty_txn_add_rank(
      t, &(ty_rank_row){
             .job_id = 7, .run = 2, .rank = 1, .node = "n2", .run_state = TY_JOB_PREEMPTED});
  commit_txn(s, t);
  int got[3][3];
  read_run_states(s, got);
  cr_expect_eq(got[0][0], 0, "run 1 took run 2's end: %d", got[0][0]);
  cr_expect_eq(got[0][1], TY_JOB_PREEMPTED, "run 2: %d", got[0][1]);
  ty_store_close(s);
}

/* ---- backup.c ------------------------------------------------------------------------------ */

/* The copy is the state after the last commit: a write transaction open on
 * the store while the backup runs is not in it, and the copy opens as a
 * store of the same schema. */
Test(store_upgrade, backup_holds_the_last_commit_not_a_transaction_in_flight) {
  ty_store *s = open_ok();
  submit(s, 1);
  submit(s, 2);
  cr_assert_eq(ty_store_begin(s), 0);
  ty_job_row r = row(3, TY_JOB_PENDING);
  cr_assert_eq(ty_store_insert_job(s, &r), 0);
  char dest[160], err[512] = "";
  snprintf(dest, sizeof dest, "%s/backup.db", store_dir);
  ty_store_backup_info info = {0};
  cr_assert_eq(ty_store_backup(store_path, dest, &info, err, sizeof err), 0, "%s", err);
  cr_assert_eq(ty_store_commit(s), 0);
  ty_store_close(s);
  cr_assert_eq(info.user_version, ty_store_schema_version());
  cr_assert_gt(info.bytes, 0u);
  struct stat st;
  cr_assert_eq(stat(dest, &st), 0);
  cr_assert_eq(st.st_mode & 0777, 0600);
  cr_assert_eq((uint64_t)st.st_size, info.bytes);
  ty_store *b = NULL;
  cr_assert_eq(ty_store_open(dest, &b, err, sizeof err), 0, "%s", err);
  int n = 0;
  cr_assert_eq(ty_store_load_jobs(b, count_jobs, &n), 0);
  cr_assert_eq(n, 2, "the backup holds %d jobs", n);
  ty_store_close(b);
}

Test(store_upgrade, backup_refusals_name_the_file_and_leave_nothing) {
  char dest[160], tmp[170], err[512] = "";
  snprintf(dest, sizeof dest, "%s/backup.db", store_dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", dest);
  cr_assert_eq(ty_store_backup(store_path, dest, NULL, err, sizeof err), TY_EIO);
  cr_assert(strstr(err, "no store at") && strstr(err, store_path), "%s", err);
  ty_store_close(open_ok());
  cr_assert_eq(ty_store_backup(store_path, "/nonexistent-store_dir/b.db", NULL, err, sizeof err),
               TY_EIO);
  cr_assert(strstr(err, "cannot create /nonexistent-store_dir/b.db: its directory "
                        "/nonexistent-store_dir: No such file or directory"),
            "%s", err);
  FILE *f = fopen(store_path, "wb");
  cr_assert_not_null(f);
  for (int i = 0; i < 512; i++)
    fputs("this is not a database ", f);
  fclose(f);
  cr_assert_eq(ty_store_backup(store_path, dest, NULL, err, sizeof err), TY_ESTORE);
  cr_assert(strstr(err, store_path), "%s", err);
  cr_assert_neq(access(dest, F_OK), 0);
  cr_assert_neq(access(tmp, F_OK), 0);
}

/* The loop reader keeps its statements prepared (store_query.c): the same
 * look-up again is the same statement, reset after each use, so it sees
 * what was committed since (a statement left open would read its old
 * snapshot) and the rows and scans hooks still count per look-up. */
Test(store_upgrade, a_kept_statement_reads_what_was_committed_since) {
  ty_store *s = open_ok();
  uint64_t id = 0;
  cr_assert_eq(ty_store_find_request(s, 1000, "rid-1", &id, NULL), TY_ENOTFOUND);
  uint64_t rows = ty_store_rows_read(s), scans = ty_store_scans(s);
  ty_txn *t = ty_txn_create();
  ty_job_row r = row(7, TY_JOB_PENDING);
  r.uid = 1000, r.request_id = "rid-1", r.request_hash = INT64_MIN + 5;
  cr_assert_eq(ty_txn_insert_job(t, &r), 0);
  commit_txn(s, t);
  for (int i = 0; i < 3; i++) {
    id = 0;
    uint64_t hash = 0;
    cr_assert_eq(ty_store_find_request(s, 1000, "rid-1", &id, &hash), 0, "look-up %d", i);
    cr_assert_eq(id, 7u);
    cr_assert_eq(hash, (uint64_t)INT64_MIN + 5, "the Job's hash is kept with its request id");
  }
  cr_assert_eq(ty_store_find_request(s, 1000, "rid-2", &id, NULL), TY_ENOTFOUND);
  cr_assert_eq(ty_store_rows_read(s), rows + 3);
  cr_assert_eq(ty_store_scans(s), scans, "the request index was not used");
  ty_store_close(s);
}
