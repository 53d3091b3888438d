/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's store schema: the migrations that take a state file
 * from any earlier version to this build's, and the SQL that TY_JOB_COLUMNS
 * (daemon.h) makes -- the jobs table's DDL per schema version (and the
 * `arrays` copy of its columns), the INSERT of a whole row and the UPDATE
 * of a set of columns. store.c opens the file and runs ty__store_migrate
 * before it prepares its statements from this SQL.
 *
 * A migration is one transaction that also sets PRAGMA user_version, so a
 * file is always at exactly one version; a file newer than this build is
 * refused rather than guessed at. Adding a column is one TY_JOB_COLUMNS
 * line naming its version; adding a table or index is one migrations[]
 * entry.
 */
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "daemon/daemon_internal.h"
#include "daemon/store_internal.h"
#include "lib/base/base.h"

/* migrations[v - 1] takes the schema to version v, after the jobs columns of
 * version v (TY_JOB_COLUMNS in daemon.h, added by job_ddl). */
static const char *const migrations[] = {
    /* 1: the first schema, and the 'default' queue every job falls into. */
    "CREATE TABLE queues("
    "  name TEXT PRIMARY KEY,"
    "  priority_tier INTEGER NOT NULL DEFAULT 0,"
    "  state TEXT NOT NULL DEFAULT 'UP');"
    "INSERT INTO queues(name, priority_tier, state) VALUES('default', 0, 'UP');"
    "CREATE INDEX jobs_by_state ON jobs(state);"
    "CREATE TABLE nodes("
    "  name TEXT PRIMARY KEY,"
    "  state INTEGER NOT NULL,"
    "  cpus INTEGER NOT NULL DEFAULT 0,"
    "  memory INTEGER NOT NULL DEFAULT 0,"
    "  gpus BLOB,"
    "  io_addr TEXT NOT NULL DEFAULT '',"
    "  last_seen_ms INTEGER NOT NULL DEFAULT 0,"
    "  reason TEXT NOT NULL DEFAULT '');"
    "CREATE TABLE events("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  time_ms INTEGER NOT NULL,"
    "  from_state INTEGER NOT NULL,"
    "  to_state INTEGER NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  actor TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX events_by_job ON events(job_id, id);",
    /* 2: the scheduler (issue 5): queue limits and fair-share weights, queue
     * states OPEN/CLOSED/PAUSED (UP was the only state before), operator
     * holds and reported checkpoints on jobs, node drains, decayed usage per
     * (user, queue), and an event log for changes that are not job state
     * transitions (queues, nodes), each with the actor who made it. */
    "ALTER TABLE queues ADD COLUMN share REAL NOT NULL DEFAULT 1;"
    "ALTER TABLE queues ADD COLUMN max_running INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queues ADD COLUMN max_gpus INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queues ADD COLUMN max_gpus_per_user INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queues ADD COLUMN preemptible INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queues ADD COLUMN default_time_s INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queues ADD COLUMN max_time_s INTEGER NOT NULL DEFAULT 0;"
    "UPDATE queues SET state = 'OPEN' WHERE state = 'UP';"
    "ALTER TABLE nodes ADD COLUMN drain INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE usage("
    "  user TEXT NOT NULL,"
    "  queue TEXT NOT NULL,"
    "  gpu_s REAL NOT NULL DEFAULT 0,"
    "  cpu_s REAL NOT NULL DEFAULT 0,"
    "  updated_ms INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(user, queue));"
    "CREATE TABLE admin_events("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  time_ms INTEGER NOT NULL,"
    "  actor TEXT NOT NULL,"
    "  kind TEXT NOT NULL,"
    "  object TEXT NOT NULL,"
    "  action TEXT NOT NULL,"
    "  detail TEXT NOT NULL DEFAULT '');",
    /* 3: graph jobs' plans: only the jobs column. */
    "",
    /* 4: retry-safe submits (issue 13): the client's request id, unique per
     * user among the jobs that have one, so a repeated id finds its job. */
    "CREATE UNIQUE INDEX jobs_by_request ON jobs(user, request_id) WHERE request_id != '';",
    /* 5: authentication (issue 12): the ranks' cgroup usage, and the
     * submitter's uid, which a request id is now unique per (a user's name
     * was the client's word before; jobs from then have uid -1 and are left
     * out of the index, so their ids can never collide with new ones). */
    "DROP INDEX jobs_by_request;"
    "CREATE UNIQUE INDEX jobs_by_request ON jobs(uid, request_id) "
    "WHERE request_id != '' AND uid >= 0;",
    /* 6: arrays, accounting and a controller that keeps only live jobs in
     * memory (issue 15). Finished jobs are read through indexes: by end time
     * (history, listings, pruning), by user and end time, by array and task
     * index (partial: most jobs are in no array). One row per rank of each
     * run (per-rank accounting), and node events. */
    "CREATE INDEX jobs_by_end ON jobs(end_ms);"
    "CREATE INDEX jobs_by_user ON jobs(user, end_ms);"
    "CREATE INDEX jobs_by_array ON jobs(array_id, array_task) WHERE array_id != 0;"
    "CREATE TABLE ranks("
    "  job_id INTEGER NOT NULL REFERENCES jobs(id),"
    "  run INTEGER NOT NULL,"
    "  rank INTEGER NOT NULL,"
    "  node TEXT NOT NULL DEFAULT '',"
    "  start_ms INTEGER NOT NULL DEFAULT 0,"
    "  end_ms INTEGER NOT NULL DEFAULT 0,"
    "  state INTEGER NOT NULL DEFAULT 0,"
    "  exit_code INTEGER NOT NULL DEFAULT 0,"
    "  term_signal INTEGER NOT NULL DEFAULT 0,"
    "  cpus INTEGER NOT NULL DEFAULT 0,"
    "  gpus INTEGER NOT NULL DEFAULT 0,"
    "  cpu_ms INTEGER NOT NULL DEFAULT 0,"
    "  gpu_ms INTEGER NOT NULL DEFAULT 0,"
    "  mem_peak INTEGER NOT NULL DEFAULT 0,"
    "  measured INTEGER NOT NULL DEFAULT 0,"
    "  PRIMARY KEY(job_id, run, rank)) WITHOUT ROWID;"
    "CREATE TABLE node_events("
    "  id INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  node TEXT NOT NULL,"
    "  time_ms INTEGER NOT NULL,"
    "  from_state INTEGER NOT NULL DEFAULT 0,"
    "  to_state INTEGER NOT NULL DEFAULT 0,"
    "  action TEXT NOT NULL,"
    "  reason TEXT NOT NULL DEFAULT '',"
    "  actor TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX node_events_by_node ON node_events(node, id);"
    "CREATE INDEX node_events_by_time ON node_events(time_ms);",
    /* 7: the web console's per-user tokens (issue 16): only their SHA-256,
     * the user they act for, and when they expire or were revoked. */
    "CREATE TABLE web_tokens("
    "  hash TEXT PRIMARY KEY,"
    "  uid INTEGER NOT NULL,"
    "  gid INTEGER NOT NULL,"
    "  user TEXT NOT NULL,"
    "  created_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  revoked_ms INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX web_tokens_by_uid ON web_tokens(uid, revoked_ms);",
    /* 8: a pending array is one record (issue 15): the jobs columns (its
     * first element's row, from which every element still there is made)
     * and how many elements the array has; later jobs columns are added to
     * both tables (job_ddl). */
    "CREATE TABLE arrays AS SELECT * FROM jobs WHERE 0;"
    "ALTER TABLE arrays ADD COLUMN elements INTEGER NOT NULL DEFAULT 0;"
    "CREATE UNIQUE INDEX arrays_by_id ON arrays(id);",
    /* 9: `history --queue` (issue 15): finished jobs of one queue, newest
     * first, through an index as those of one user, not a walk of all
     * history by end time filtering the queue. */
    "CREATE INDEX jobs_by_queue ON jobs(queue, end_ms);",
    /* 10: whole-node jobs (sbatch's --exclusive): only the jobs (and arrays)
     * column `exclusive`; the spec blob holds it too (Resources.exclusive),
     * the column lets the store's readers and SQL see it without decoding. */
    "",
    /* 11: -w/--nodelist and -x/--exclude: only the jobs (and arrays) columns
     * `req_nodes` and `exc_nodes`, hostlists of the names; the spec blob
     * holds the lists (Resources.required_nodes, excluded_nodes), the
     * columns let the store's readers and SQL see them without decoding. */
    "",
    /* 12: memory per node of a queue's jobs (Slurm's DefMemPerNode and
     * MaxMemPerNode): bytes, 0 = none, as every queue had before. What a
     * job got and whence is in its spec blob (Resources.mem_source). */
    "ALTER TABLE queues ADD COLUMN default_mem INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE queues ADD COLUMN max_mem INTEGER NOT NULL DEFAULT 0;",
    /* 13: ids are never reused: the largest id pruning deleted, kept as
     * the store's high-water mark (key 'pruned_max_id'), since after a
     * prune no row may hold the largest id ever given out. A file from
     * before has pruned without it; its next start goes on from the
     * largest id left. */
    "CREATE TABLE meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;",
    /* 14: a graph job's last progress and checkpoints outlive its time in
     * memory and restarts: only the jobs (and arrays) column
     * `graph_progress`, GetJobResponse's fields 60 and 61 as graph.c
     * encodes them (x'' = none reported, as for every job from before). */
    "",
    /* 15: a running job being ended outlives a restart during its kill
     * grace: only the jobs (and arrays) columns `kill_sent` (its ranks
     * were sent SIGTERM: not signalled again), `requeue_asked` (`job
     * requeue`: PENDING again when its ranks end) and `preempt_for` (the
     * job it is preempted for: PREEMPTED and requeued when they end); 0
     * for every job from before. */
    "",
    /* 16: per-queue access lists (Slurm's AllowGroups, and users): the
     * comma-separated group and user names that may put jobs in the queue;
     * '' = everyone, as every queue allowed before. */
    "ALTER TABLE queues ADD COLUMN allow_groups TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE queues ADD COLUMN allow_users TEXT NOT NULL DEFAULT '';",
    /* 17: how each run ended (RankRecord.run_state), on its rank rows: a
     * preempted run's ranks exited 0 after their SIGTERM, and only this
     * says PREEMPTED. Rows from before: a run older than the job's latest
     * (requeue_count + 1) was requeued (REQUEUED, 10: whether preempted,
     * lost with its node or asked for is not recorded); the latest run of a
     * job that ended ended as the job did; others are not known (0). */
    "ALTER TABLE ranks ADD COLUMN run_state INTEGER NOT NULL DEFAULT 0;"
    "UPDATE ranks SET run_state = COALESCE((SELECT CASE"
    "  WHEN ranks.run <= jobs.requeue_count THEN 10"
    "  WHEN jobs.state BETWEEN 3 AND 9 THEN jobs.state ELSE 0 END"
    "  FROM jobs WHERE jobs.id = ranks.job_id), 0);",
    /* 18: an operator's hold (Slurm's JobHeldAdmin), which only an operator
     * releases, apart from its owner's (JobHeldUser): only the jobs (and
     * arrays) column `held_by`, the operator's name ('' for every hold
     * from before, which is its owner's). */
    "",
    /* 19: a request id reused for another job is refused: only the jobs
     * (and arrays) column `request_hash`, of the Job its submit sent (0 for
     * jobs from before, whose retries are answered unchecked). */
    "",
    /* 20: `history` of one user (every user's default) or one queue, and
     * `ls --all -u`, list by id, newest first: these walk the user's (the
     * queue's) jobs in id order up to the LIMIT. Through jobs_by_user
     * (by end time) SQLite sorted every job the user ever ran, whole rows,
     * before the LIMIT: 5-10 s for 100,000 jobs of one user. */
    "CREATE INDEX IF NOT EXISTS jobs_by_user_id ON jobs(user, id);"
    "CREATE INDEX IF NOT EXISTS jobs_by_queue_id ON jobs(queue, id);",
};

/* The schema version that made `arrays`, a copy of the jobs columns. */
#define ARRAYS_VERSION 8

/* The jobs table's columns, from TY_JOB_COLUMNS. */
static const struct job_col {
  int version;
  const char *name, *sql;
} job_cols[] = {
#define JOB_COL_(version, col, kind, sql) {version, #col, sql},
    TY_JOB_COLUMNS(JOB_COL_)
#undef JOB_COL_
};

int ty_store_schema_version(void) {
  int v = (int)TY_ARRAY_LEN(migrations);
  for (size_t i = 0; i < TY_ARRAY_LEN(job_cols); i++)
    if (job_cols[i].version > v) v = job_cols[i].version;
  return v;
}

/* The jobs columns schema version v adds: the table itself at 1. */
static int job_ddl(int v, ty_buf *b) {
  int rc = v == 1 ? ty_buf_printf(b, "CREATE TABLE jobs(") : 0;
  const char *sep = "";
  for (size_t i = 0; rc == 0 && i < TY_ARRAY_LEN(job_cols); i++) {
    if (job_cols[i].version != v) continue;
    if (v == 1)
      rc = ty_buf_printf(b, "%s%s %s", sep, job_cols[i].name, job_cols[i].sql);
    else
      rc =
          ty_buf_printf(b, "ALTER TABLE jobs ADD COLUMN %s %s;", job_cols[i].name, job_cols[i].sql);
    if (rc == 0 && v > ARRAYS_VERSION)
      rc = ty_buf_printf(b, "ALTER TABLE arrays ADD COLUMN %s %s;", job_cols[i].name,
                         job_cols[i].sql);
    sep = ", ";
  }
  if (rc == 0 && v == 1) rc = ty_buf_printf(b, ");");
  return rc;
}

/* INSERT of every column into `table` (jobs, or arrays with its element
 * count as the last parameter). */
int ty__store_insert_sql(ty_buf *b, const char *table) {
  size_t n = TY_ARRAY_LEN(job_cols);
  bool array = strcmp(table, "arrays") == 0;
  int rc = ty_buf_printf(b, "INSERT INTO %s(", table);
  for (size_t i = 0; rc == 0 && i < n; i++)
    rc = ty_buf_printf(b, "%s%s", i ? ", " : "", job_cols[i].name);
  if (rc == 0 && array) rc = ty_buf_printf(b, ", elements");
  if (rc == 0) rc = ty_buf_printf(b, ") VALUES(");
  for (size_t i = 0; rc == 0 && i < n + array; i++)
    rc = ty_buf_printf(b, "%s?%zu", i ? "," : "", i + 1);
  if (rc == 0) rc = ty_buf_printf(b, ")");
  return rc;
}

/* UPDATE of the columns in `cols` but the key (the first), each bound as
 * ?N with N its column number + 1, like the INSERT, so one binder serves. */
int ty__store_update_sql(ty_job_cols cols, ty_buf *b) {
  int rc = ty_buf_printf(b, "UPDATE jobs SET ");
  const char *sep = "";
  for (size_t i = 1; rc == 0 && i < TY_ARRAY_LEN(job_cols); i++) {
    if (!(cols & ((ty_job_cols)1 << i))) continue;
    rc = ty_buf_printf(b, "%s%s=?%zu", sep, job_cols[i].name, i + 1);
    sep = ", ";
  }
  if (rc == 0) rc = ty_buf_printf(b, " WHERE %s=?1", job_cols[0].name);
  return rc;
}

int ty__store_migrate(sqlite3 *db, const char *path, char *err, size_t len) {
  int version = 0;
  if (ty__store_query_int(db, "PRAGMA user_version", &version) != 0)
    return ty__store_err(err, len, path, "cannot read the schema version", db);
  int target = ty_store_schema_version();
  if (version > target) {
    char what[TY_ERR_LEN];
    snprintf(what, sizeof(what), "has schema version %d, newer than this traind supports (%d)",
             version, target);
    return ty__store_err(err, len, path, what, NULL);
  }
  for (int v = version; v < target; v++) {
    ty_buf sql;
    ty_buf_init(&sql);
    int rc = job_ddl(v + 1, &sql);
    if (rc == 0 && v < (int)TY_ARRAY_LEN(migrations)) rc = ty_buf_printf(&sql, "%s", migrations[v]);
    if (rc == 0) rc = ty_buf_printf(&sql, "PRAGMA user_version=%d;", v + 1);
    if (rc == 0 && (ty__store_exec(db, "BEGIN IMMEDIATE") != 0 ||
                    ty__store_exec(db, (char *)sql.data) != 0 || ty__store_exec(db, "COMMIT") != 0))
      rc = TY_ESTORE;
    ty_buf_close(&sql);
    if (rc != 0) {
      char what[TY_ERR_LEN];
      snprintf(what, sizeof(what), "schema migration %d failed", v + 1);
      ty__store_err(err, len, path, what, db);
      ty__store_exec(db, "ROLLBACK");
      return TY_ESTORE;
    }
    ty_info("store: migrated %s to schema version %d", path, v + 1);
  }
  return 0;
}
