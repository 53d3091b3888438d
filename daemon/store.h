/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's durable state: the SQLite store (store*.c) and the
 * group-commit writer in front of it (commit.c). Free of the RPC layer and
 * of the controller object, so both are unit-tested on their own; part of
 * daemon/daemon.h, the controller's public header, which includes it.
 */
#ifndef TY_DAEMON_STORE_H
#define TY_DAEMON_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/wire/wire.h"

typedef struct ty_store ty_store;

/* ==== store ==================================================================================
 * store.c: the controller's durable state in one SQLite file
 * (STATE_DIR/traind.db).
 *
 * Tables: jobs, queues, nodes, events (one row per job state transition, the
 * accounting record), ranks (one row per rank of a run, when it ended),
 * node_events (node state changes and operator actions, with who), usage,
 * admin_events. The schema evolves by numbered migrations kept in store.c
 * and tracked in PRAGMA user_version. Finished jobs are found through
 * indexes (by end time, by user, by array), so no query of history scans
 * the table; store_query.c has the reads.
 *
 * Threads: a ty_store holds two connections. The write functions
 * (ty_store_begin ... ty_store_commit and the put functions between them) use
 * the writer connection and belong to exactly one thread: the group-commit
 * writer (group commit below), or the loop before that thread starts. The load and read
 * functions use the reader connection and belong to the loop thread; in WAL
 * mode they never wait for the writer's fsync.
 *
 * Rows passed to callbacks are borrowed for the duration of the callback.
 * Rows passed to put functions are read, not kept.
 */

/* X(version, column, kind, sql): the jobs table, one line per column in
 * column order. `version` is the schema version that added the column
 * (CREATE TABLE for 1, ALTER TABLE ADD COLUMN later; store.c writes both);
 * `kind` is the C type of its ty_job_row field. The table's DDL, INSERT,
 * UPDATE and SELECT, the row struct, its binding and reading and the commit
 * txn's copy all come from this list: a new column is one line here (with
 * the next schema version) plus the code that fills and reads it. */
#define TY_JOB_COLUMNS(X)                                                                          \
  X(1, id, ID, "INTEGER PRIMARY KEY")                                                              \
  X(1, name, TEXT, "TEXT NOT NULL")                                                                \
  X(1, user, TEXT, "TEXT NOT NULL")                                                                \
  X(1, queue, TEXT, "TEXT NOT NULL REFERENCES queues(name)")                                       \
  X(1, priority, INT, "INTEGER NOT NULL DEFAULT 0")                                                \
  X(1, state, INT, "INTEGER NOT NULL") /* ty_job_state */                                          \
  X(1, reason, TEXT, "TEXT NOT NULL DEFAULT ''")                                                   \
  X(1, exit_code, INT, "INTEGER NOT NULL DEFAULT 0")                                               \
  X(1, term_signal, INT, "INTEGER NOT NULL DEFAULT 0")                                             \
  X(1, submit_ms, I64, "INTEGER NOT NULL")                                                         \
  X(1, start_ms, I64, "INTEGER NOT NULL DEFAULT 0")                                                \
  X(1, end_ms, I64, "INTEGER NOT NULL DEFAULT 0")                                                  \
  X(1, nodes, TEXT, "TEXT NOT NULL DEFAULT ''") /* node names, comma-separated, rank order */      \
  X(1, alloc, TEXT, "TEXT NOT NULL DEFAULT ''") /* per-node allocation (jobs.c), may be "" */      \
  X(1, requeue_count, U32, "INTEGER NOT NULL DEFAULT 0")                                           \
  X(1, spec, BLOB, "BLOB NOT NULL")                     /* the encoded trainyard.Job */            \
  X(2, held, BOOL, "INTEGER NOT NULL DEFAULT 0")        /* held until released */                  \
  X(2, last_ckpt_ms, I64, "INTEGER NOT NULL DEFAULT 0") /* last checkpoint reported, 0 = none */   \
  X(3, plan, BLOB, "BLOB NOT NULL DEFAULT x''")         /* its plan file, empty = data parallel */ \
  X(4, request_id, TEXT, "TEXT NOT NULL DEFAULT ''")    /* the client's, for retries; "" = none */ \
  X(5, cpu_usec, I64, "INTEGER NOT NULL DEFAULT 0")     /* accounting: see acct_measured */        \
  X(5, mem_peak, I64, "INTEGER NOT NULL DEFAULT 0") /* the largest rank's peak, 0 = unmeasured */  \
  X(5, io_read, I64, "INTEGER NOT NULL DEFAULT 0")                                                 \
  X(5, io_write, I64, "INTEGER NOT NULL DEFAULT 0")                                                \
  X(5, uid, I64, "INTEGER NOT NULL DEFAULT -1")     /* the submitter's (Job.run_as), -1 = none */  \
  X(6, array_id, I64, "INTEGER NOT NULL DEFAULT 0") /* the array it belongs to, 0 = none */        \
  X(6, array_task, U32, "INTEGER NOT NULL DEFAULT 0")   /* its task index there */                 \
  X(6, model_file, TEXT, "TEXT NOT NULL DEFAULT ''")    /* its model_bytes, in STATE_DIR */        \
  X(6, time_limit_s, U32, "INTEGER NOT NULL DEFAULT 0") /* the effective limit, 0 = none */        \
  X(6, alloc_cpus, U32, "INTEGER NOT NULL DEFAULT 0")   /* held by its last run, all nodes */      \
  X(6, alloc_gpus, U32, "INTEGER NOT NULL DEFAULT 0")                                              \
  X(6, acct_gpu_ms, I64, "INTEGER NOT NULL DEFAULT 0")    /* GPUs held x wall clock, all runs */   \
  X(6, acct_measured, BOOL, "INTEGER NOT NULL DEFAULT 0") /* cpu_usec measured for every rank */   \
  X(10, exclusive, BOOL, "INTEGER NOT NULL DEFAULT 0")    /* whole nodes (Resources.exclusive) */  \
  X(11, req_nodes, TEXT, "TEXT NOT NULL DEFAULT ''") /* -w/--nodelist as a hostlist, "" = none */  \
  X(11, exc_nodes, TEXT, "TEXT NOT NULL DEFAULT ''") /* -x/--exclude as a hostlist, "" = none */   \
  X(14, graph_progress, BLOB, "BLOB NOT NULL DEFAULT x''") /* graph.c: progress, checkpoints */    \
  X(15, kill_sent, BOOL, "INTEGER NOT NULL DEFAULT 0") /* its ranks were sent SIGTERM (jobs.c) */  \
  X(15, requeue_asked, BOOL, "INTEGER NOT NULL DEFAULT 0") /* PENDING again when its ranks end */  \
  X(15, preempt_for, I64, "INTEGER NOT NULL DEFAULT 0")    /* preempted for this job, 0 = not */   \
  X(18, held_by, TEXT, "TEXT NOT NULL DEFAULT ''") /* the operator whose hold it is, '' = none */  \
  X(19, request_hash, I64, "INTEGER NOT NULL DEFAULT 0") /* of request_id's Job, 0 = not kept */

/* The C type of each kind; a BLOB is its bytes and their count. */
#define TY__JOB_FIELD_ID(col) uint64_t col;
#define TY__JOB_FIELD_TEXT(col) const char *col;
#define TY__JOB_FIELD_INT(col) int32_t col;
#define TY__JOB_FIELD_I64(col) int64_t col;
#define TY__JOB_FIELD_U32(col) uint32_t col;
#define TY__JOB_FIELD_BOOL(col) bool col;
#define TY__JOB_FIELD_BLOB(col)                                                                    \
  const uint8_t *col;                                                                              \
  size_t col##_len;

typedef struct ty_job_row {
#define TY__JOB_FIELD_(version, col, kind, sql) TY__JOB_FIELD_##kind(col)
  TY_JOB_COLUMNS(TY__JOB_FIELD_)
#undef TY__JOB_FIELD_
} ty_job_row;

/* Column numbers in TY_JOB_COLUMNS order (TY_JOB_COL_state, ...), and a set
 * of columns as bits (TY_JOB_BIT(state)). */
enum {
#define TY__JOB_COL_(version, col, kind, sql) TY_JOB_COL_##col,
  TY_JOB_COLUMNS(TY__JOB_COL_)
#undef TY__JOB_COL_
      TY_JOB_NCOLS
};
typedef uint64_t ty_job_cols;
#define TY_JOB_BIT(col) ((ty_job_cols)1 << TY_JOB_COL_##col)
#define TY_JOB_ALL_COLS ((((ty_job_cols)1) << TY_JOB_NCOLS) - 1)
_Static_assert(TY_JOB_NCOLS < 64, "a job's columns are a 64-bit set");

/* One fingerprint per column of r: the value of a number, a 64-bit hash of
 * a text or blob. Equal fingerprints mean an equal value (to a hash's
 * certainty), so the controller writes only the columns whose fingerprint
 * changed since it last wrote the row. */
void ty_job_row_fingerprint(const ty_job_row *r, uint64_t out[TY_JOB_NCOLS]);

/* One rank of one run of a job, recorded when it ended (the accounting
 * record per rank; schema 4). */
typedef struct ty_rank_row {
  uint64_t job_id;
  uint32_t run; /* 1 = the first run; each requeue adds one */
  uint32_t rank;
  const char *node;
  int64_t start_ms, end_ms;
  int state; /* ty_task_state, 0 = lost */
  int32_t exit_code, term_signal;
  uint32_t cpus, gpus;
  int64_t cpu_ms, gpu_ms; /* measured, or held x wall clock */
  int64_t mem_peak;       /* bytes, 0 = not measured */
  bool measured;
  int run_state; /* how the run ended (ty_run_state_name), 0 = not yet (schema 17) */
} ty_rank_row;

/* A node's state change or an operator's action on it (schema 5). */
typedef struct ty_node_event_row {
  int64_t time_ms;
  const char *node;
  int from_state, to_state; /* ty_node_state; 0 = unchanged */
  const char *action; /* "register", "down", "drain", "resume", "drained", "restart", "stopping" */
  const char *reason;
  const char *actor; /* "user:alice", "controller", "node:n1" */
} ty_node_event_row;

/* What to list of the jobs in the store (ty_store_query_jobs). Borrowed. */
typedef struct ty_job_query {
  const int *states; /* n_states of them; none = any */
  size_t n_states;
  bool finished_only;          /* only jobs that ended (end_ms > 0, a final state) */
  const char *user, *queue;    /* NULL or "" = any */
  int64_t ended_since_ms;      /* with finished_only: ended at or after (0 = any) */
  int64_t submitted_before_ms; /* 0 = any */
  uint32_t limit;              /* the newest (by end, then id) `limit`; 0 = all */
  const uint64_t *ids;         /* n_ids of them: only these jobs, or arrays' elements */
  size_t n_ids;
  const char *const *names; /* n_names of them: only jobs of these names */
  size_t n_names;
  /* n_nodes of them: only jobs with one of these in their `nodes` list,
   * matched whole (n1 is not n10); none may hold a comma. */
  const char *const *nodes;
  size_t n_nodes;
  /* With finished_only: a page's cursor, the rows after (older than) the
   * job that ended at before_end_ms with id before_id; 0 = from the newest. */
  int64_t before_end_ms;
  uint64_t before_id;
  /* The newest by id (ListJobs' order), not by end: `limit` then keeps
   * the highest ids. */
  bool by_id;
} ty_job_query;

/* An array's elements in the store, by what became of them. */
typedef struct ty_array_counts {
  uint32_t total, started, ended, completed;
} ty_array_counts;

typedef struct ty_event_row {
  int64_t id; /* assigned by the store; ignored on insert */
  uint64_t job_id;
  int64_t time_ms;
  int from_state; /* 0 for the submit event */
  int to_state;
  const char *reason;
  const char *actor; /* "user:alice", "controller", "node:n1", ... */
} ty_event_row;

typedef struct ty_node_row {
  const char *name;
  int state; /* trainyard.NodeState number */
  uint32_t cpus;
  uint64_t memory;
  const uint8_t *gpus; /* encoded trainyard.NodeInfo holding gpus and topology */
  size_t gpus_len;
  const char *io_addr;
  int64_t last_seen_ms;
  const char *reason;
  bool drain; /* an operator drains it (schema 2) */
} ty_node_row;

typedef struct ty_queue_row {
  const char *name;
  int32_t priority_tier;
  const char *state; /* "OPEN", "CLOSED", "PAUSED" ("UP" before schema 2) or "DELETED" */
  /* Schema 2: the scheduler's queue settings (scheduler/scheduler.h). */
  double share;
  uint32_t max_running, max_gpus, max_gpus_per_user;
  bool preemptible;
  uint32_t default_time_s, max_time_s;
  uint64_t default_mem, max_mem; /* schema 12: bytes per node, 0 = none */
  /* Schema 16: who may put jobs in it, comma-separated names ("" = everyone). */
  const char *allow_groups, *allow_users;
} ty_queue_row;

/* Decayed fair-share usage of one user in one queue (schema 2). */
typedef struct ty_usage_row {
  const char *user, *queue;
  double gpu_s, cpu_s;
  int64_t updated_ms;
} ty_usage_row;

/* A change that is not a job state transition: queues and nodes (schema 2). */
typedef struct ty_admin_event_row {
  int64_t time_ms;
  const char *actor;  /* "user:alice" */
  const char *kind;   /* "queue", "node" */
  const char *object; /* its name */
  const char *action; /* "create", "update", "delete", "drain", "resume", ... */
  const char *detail;
} ty_admin_event_row;

/* A web console token (schema 7): the SHA-256 hex of the token, whom it
 * acts for, and its times (Unix ms; revoked_ms 0 = live). */
typedef struct ty_web_token_row {
  char hash[65];
  uint32_t uid, gid;
  char user[64];
  int64_t created_ms, expires_ms, revoked_ms;
} ty_web_token_row;

/* Opens (creating when absent) the database at `path`, checks the tables a
 * start reads whole (queues, nodes, usage, pending arrays, tokens) and
 * applies pending migrations. On failure returns TY_ESTORE and writes a
 * sentence naming the file and the problem into err ("… is not a SQLite
 * database", "… has schema version 9, newer than this traind supports (1)",
 * "… integrity check failed (…); restore a backup"). */
int ty_store_open(const char *path, ty_store **out_store, char *err, size_t err_len);
/* Stops a whole-file check (ty_store_check) from another thread. The
 * caller owns it and destroys it once no check uses it. */
typedef struct ty_store_cancel ty_store_cancel;
ty_store_cancel *ty_store_cancel_create(void);
/* Any thread: the check that uses c stops now (sqlite3_interrupt), or as
 * it starts; later checks with c stop at once. */
void ty_store_cancel_fire(ty_store_cancel *c);
void ty_store_cancel_destroy(ty_store_cancel *c); /* accepts NULL */
typedef struct ty_store_check_opts {
  ty_store_cancel *cancel; /* borrowed; NULL: the check cannot be stopped */
  /* Tests: with cancel, the check holds this long inside SQLite before it
   * reads a page, still stopping at a fire (0 = not at all). */
  uint32_t hold_ms;
} ty_store_check_opts;
/* PRAGMA quick_check of the whole file at `path` on a connection of its
 * own (any thread; seconds on a store of a million jobs): 0, or TY_ESTORE
 * and "PATH: integrity check failed (…); restore a backup" in err, or
 * UV_ECANCELED when opts->cancel fired before it finished (no verdict).
 * opts may be NULL. */
int ty_store_check(const char *path, const ty_store_check_opts *opts, char *err, size_t err_len);
void ty_store_close(ty_store *s); /* accepts NULL */
/* The schema version this build migrates to, and the file's version. */
int ty_store_schema_version(void);
int ty_store_user_version(ty_store *s);

/* backup.c: copies the store at db_path, which a running traind may be
 * writing, into dest_path with SQLite's online backup API: one read
 * transaction, so the copy is the consistent state of one commit and the
 * controller's writers never wait for it (WAL). The copy is written to
 * DEST.tmp, checked (quick_check), fsynced and renamed, mode 0600; an
 * existing dest_path is replaced only by a complete copy. Fills *out (may be
 * NULL) with the copy's size and schema version. TY_ESTORE or TY_EIO with a
 * sentence naming the file in err. */
typedef struct ty_store_backup_info {
  uint64_t bytes;
  int user_version;
} ty_store_backup_info;
int ty_store_backup(const char *db_path, const char *dest_path, ty_store_backup_info *out,
                    char *err, size_t err_len);

/* ---- loop thread: loading and reading ------------------------------------- */
/* Each calls cb once per row; a non-zero return from cb stops and is returned. */
int ty_store_load_jobs(ty_store *s, int (*cb)(const ty_job_row *r, void *ud), void *ud);
/* Only the jobs not yet ended (PENDING, RUNNING, and the transient states):
 * what a starting controller keeps in memory. Reads no finished row. */
int ty_store_load_live_jobs(ty_store *s, int (*cb)(const ty_job_row *r, void *ud), void *ud);
/* One job by id: cb once, or TY_ENOTFOUND. */
int ty_store_get_job(ty_store *s, uint64_t id, int (*cb)(const ty_job_row *r, void *ud), void *ud);
/* The id of array_id's element for task index `task`: 0 or TY_ENOTFOUND. */
int ty_store_find_element(ty_store *s, uint64_t array_id, uint32_t task, uint64_t *out_id);
/* The job uid `uid` submitted with request id `rid` (never ""), and the
 * hash of the Job that submit sent (*out_hash, may be NULL; 0 for jobs
 * from before it was kept): 0 or TY_ENOTFOUND. One indexed row
 * (jobs_by_request). */
int ty_store_find_request(ty_store *s, uint32_t uid, const char *rid, uint64_t *out_id,
                          uint64_t *out_hash);
/* What became of an array's elements (all zero when there is no such array). */
int ty_store_array_counts(ty_store *s, uint64_t array_id, ty_array_counts *out);
/* The largest job id ever stored or reserved by a pending array's record
 * (0 when none), pruned jobs' included (schema 13 keeps the largest id
 * pruning deleted): ids are never reused, even once the jobs that had them
 * left memory or the store. */
int ty_store_max_job_id(ty_store *s, uint64_t *out_id);
/* The pending arrays' records (store.c: schema 8): cb once per array with
 * its first element's row as submitted and its element count. */
int ty_store_load_arrays(ty_store *s,
                         int (*cb)(const ty_job_row *first, uint32_t elements, void *ud), void *ud);
/* The ids of array_id's elements that have a jobs row (split off its
 * record), in id order. */
int ty_store_array_rows(ty_store *s, uint64_t array_id, int (*cb)(uint64_t id, void *ud), void *ud);
/* Events of one node, the newest `limit` (0 = all), oldest first. */
int ty_store_node_events(ty_store *s, const char *node, uint32_t limit,
                         int (*cb)(const ty_node_event_row *r, void *ud), void *ud);
/* Rows every reader of s delivered so far (the loop's and ty_store_reader's):
 * the test hook that shows which operations read history. */
uint64_t ty_store_rows_read(const ty_store *s);
/* Statements so far that sorted their rows or stepped through a whole table
 * instead of walking an index (SQLite's SORT and FULLSCAN_STEP counters):
 * the test hook that shows a query of history uses its index. */
uint64_t ty_store_scans(const ty_store *s);

/* ---- any one thread: a reader of its own ------------------------------------
 * Long queries (history, listings of finished jobs) run off the loop on a
 * connection of their own; one reader belongs to one thread at a time. */
typedef struct ty_store_reader ty_store_reader;
int ty_store_reader_open(ty_store *s, ty_store_reader **out);
void ty_store_reader_close(ty_store_reader *r); /* accepts NULL */
/* Jobs matching q, newest first (by end time, then id): cb once per row. */
int ty_store_query_jobs(ty_store_reader *r, const ty_job_query *q,
                        int (*cb)(const ty_job_row *row, void *ud), void *ud);
/* SQLite's plan for q as ty_store_query_jobs would run it (EXPLAIN QUERY
 * PLAN's detail lines, one per line, into out): the test hook that shows
 * which index each shape of a history query walks. */
int ty_store_query_plan(ty_store_reader *r, const ty_job_query *q, ty_buf *out);
/* The rank records of one job, by run then rank. */
int ty_store_query_ranks(ty_store_reader *r, uint64_t job_id,
                         int (*cb)(const ty_rank_row *row, void *ud), void *ud);
int ty_store_load_nodes(ty_store *s, int (*cb)(const ty_node_row *r, void *ud), void *ud);
int ty_store_load_queues(ty_store *s, int (*cb)(const ty_queue_row *r, void *ud), void *ud);
int ty_store_load_usage(ty_store *s, int (*cb)(const ty_usage_row *r, void *ud), void *ud);
/* The admin events of `kind` ("" = all) at or after since_ms, the newest
 * `limit`, oldest first. */
typedef struct ty_admin_event_query {
  const char *kind;
  int64_t since_ms;
  uint32_t limit;
} ty_admin_event_query;
int ty_store_admin_events(ty_store *s, const ty_admin_event_query *q,
                          int (*cb)(const ty_admin_event_row *r, void *ud), void *ud);
/* The web token with this hash: 0 with *out filled, or TY_ENOTFOUND. */
int ty_store_find_web_token(ty_store *s, const char *hash, ty_web_token_row *out);
/* How many of uid's tokens are live (not revoked, not expired) at now_ms. */
int ty_store_count_web_tokens(ty_store *s, uint32_t uid, int64_t now_ms, uint32_t *out_n);
/* Where each rank of each run of a job ran, by run then rank (the ranks
 * table: what a job read back from the store, or a requeued one, still
 * knows of its runs): the rows' run, rank, node and start_ms only. */
int ty_store_job_runs(ty_store *s, uint64_t job_id, int (*cb)(const ty_rank_row *r, void *ud),
                      void *ud);
/* Events of one job in the order they were written. */
int ty_store_job_events(ty_store *s, uint64_t job_id, int (*cb)(const ty_event_row *r, void *ud),
                        void *ud);

/* ---- writer thread: transactions ------------------------------------------ */
int ty_store_begin(ty_store *s);
int ty_store_commit(ty_store *s); /* counts one commit on success */
void ty_store_rollback(ty_store *s);
/* Savepoints isolate one request's mutations inside a group commit. */
int ty_store_savepoint(ty_store *s);
int ty_store_release(ty_store *s);
void ty_store_rollback_to(ty_store *s);

int ty_store_insert_job(ty_store *s, const ty_job_row *r);
/* A pending array's record: its first element's row and its element count
 * (ids first->id .. first->id + elements - 1). */
int ty_store_insert_array(ty_store *s, const ty_job_row *first, uint32_t elements);
/* Drops array_id's record if every element has its own row by now. */
int ty_store_array_done(ty_store *s, uint64_t array_id);
/* Writes the columns in `cols` (the id is the key; TY_JOB_ALL_COLS writes
 * every one). TY_ENOTFOUND if absent. */
int ty_store_update_job(ty_store *s, const ty_job_row *r, ty_job_cols cols);
int ty_store_add_rank(ty_store *s, const ty_rank_row *r); /* replaces the same (job, run, rank) */
int ty_store_set_run_state(ty_store *s, uint64_t job_id, uint32_t run, int run_state);
int ty_store_add_node_event(ty_store *s, const ty_node_event_row *r);
/* Deletes up to `max_jobs` jobs that ended before `before_ms`, oldest first,
 * with their events and rank records, and node events older than that,
 * raising the store's mark of pruned ids (ty_store_max_job_id) with them;
 * *out_jobs says how many jobs went. Model files the deleted jobs held
 * and no remaining job needs are added to *unlink (paths, malloc'd) for
 * the caller to remove once committed. */
int ty_store_prune(ty_store *s, int64_t before_ms, uint32_t max_jobs, uint32_t *out_jobs,
                   char ***unlink, size_t *n_unlink);
/* A deleted job: what its clean-up outside the store needs. */
typedef struct ty_pruned_job {
  uint64_t id;
  int64_t submit_ms;
} ty_pruned_job;
/* ty_store_prune, and the deleted jobs in *pruned (malloc'd, *n_pruned of
 * them) when pruned is not NULL. */
int ty_store_prune_jobs(ty_store *s, int64_t before_ms, uint32_t max_jobs, uint32_t *out_jobs,
                        char ***unlink, size_t *n_unlink, ty_pruned_job **pruned, size_t *n_pruned);
/* Removes root/ID, a pruned graph job's checkpoint directory, when its
 * stamp names job id submitted at submit_ms, without following links
 * (ckpt_prune.c; a thread off the loop calls it): 1 removed, 0 not there
 * or not that job's, -1 not removed (logged). */
int ty_ckpt_dir_prune(const char *root, uint64_t id, int64_t submit_ms);
int ty_store_add_event(ty_store *s, const ty_event_row *r);
int ty_store_upsert_node(ty_store *s, const ty_node_row *r);
/* Deletes node `name`'s row (nothing when there is none). */
int ty_store_delete_node(ty_store *s, const char *name);
int ty_store_upsert_queue(ty_store *s, const ty_queue_row *r);
int ty_store_upsert_usage(ty_store *s, const ty_usage_row *r);
int ty_store_add_admin_event(ty_store *s, const ty_admin_event_row *r);
/* Stores a new web token (and forgets those expired a day before it). */
int ty_store_put_web_token(ty_store *s, const ty_web_token_row *r);
/* Revokes every live token of uid at now_ms. */
int ty_store_revoke_web_tokens(ty_store *s, uint32_t uid, int64_t now_ms);

/* Successful commits since open (any thread may read it). */
uint64_t ty_store_commits(const ty_store *s);
/* The last SQLite error message of the writer connection, for logs. */
const char *ty_store_errmsg(ty_store *s);

/* ==== group commit ===========================================================================
 * commit.c: group commit. The loop builds a ty_txn (the mutations of one
 * request: a job row and its event, node rows, ...) and submits it with a
 * completion callback. A writer thread takes ALL queued txns, applies each
 * inside its own savepoint of ONE SQLite transaction, commits once (one
 * fsync), then wakes the loop with uv_async_send; the loop calls every
 * callback of the batch. So N requests that arrive while a commit runs cost
 * one fsync, not N.
 *
 * A txn whose own statements fail (say, a constraint) is rolled back to its
 * savepoint and answered TY_ESTORE alone; a failed COMMIT answers the whole
 * batch TY_ESTORE. Callbacks always run on the loop thread, in submit order.
 */

typedef struct ty_txn ty_txn;

ty_txn *ty_txn_create(void);
void ty_txn_destroy(ty_txn *t); /* accepts NULL */
/* Each adds a deep copy of the row, so the caller may change or free its own
 * strings right after. A job row's spec is the submitted job (its size the
 * client's choice), copied with malloc: TY_ENOMEM leaves t unchanged. */
int ty_txn_insert_job(ty_txn *t, const ty_job_row *r);
/* Only the columns in `cols` are copied and written. */
int ty_txn_update_job(ty_txn *t, const ty_job_row *r, ty_job_cols cols);
/* As ty_store_insert_array / ty_store_array_done. */
int ty_txn_insert_array(ty_txn *t, const ty_job_row *first, uint32_t elements);
void ty_txn_array_done(ty_txn *t, uint64_t array_id);
/* The ids of the array elements whose rows t inserts (split off their
 * array's record), malloc'd, or NULL when none (*n 0). */
uint64_t *ty_txn_inserted_elements(const ty_txn *t, size_t *n);
void ty_txn_add_rank(ty_txn *t, const ty_rank_row *r);
/* How run `run` of a job ended, onto each of its rank rows written so far
 * (those written later carry it themselves). */
void ty_txn_set_run_state(ty_txn *t, uint64_t job_id, uint32_t run, int run_state);
void ty_txn_add_node_event(ty_txn *t, const ty_node_event_row *r);
/* Prunes as ty_store_prune does (at most max_jobs); once committed, removes
 * the model files it freed and the deleted jobs' checkpoint directories
 * under checkpoint_dir (NULL or "": none; ty_ckpt_dir_prune) and stores
 * the number of jobs deleted in *out_jobs (read it in the commit callback). */
void ty_txn_prune(ty_txn *t, int64_t before_ms, uint32_t max_jobs, uint32_t *out_jobs,
                  const char *checkpoint_dir);
void ty_txn_add_event(ty_txn *t, const ty_event_row *r);
void ty_txn_upsert_node(ty_txn *t, const ty_node_row *r);
void ty_txn_delete_node(ty_txn *t, const char *name);
void ty_txn_upsert_queue(ty_txn *t, const ty_queue_row *r);
void ty_txn_upsert_usage(ty_txn *t, const ty_usage_row *r);
void ty_txn_add_admin_event(ty_txn *t, const ty_admin_event_row *r);
void ty_txn_put_web_token(ty_txn *t, const ty_web_token_row *r);
void ty_txn_revoke_web_tokens(ty_txn *t, uint32_t uid, int64_t now_ms);
size_t ty_txn_len(const ty_txn *t);
/* Applies the txn's mutations in order on the writer connection (for tests
 * and for start-up writes before the writer thread runs). */
int ty_txn_apply(ty_txn *t, ty_store *s);

typedef struct ty_committer ty_committer;
/* status: 0 once committed, TY_ESTORE when it was not. */
typedef void (*ty_commit_cb)(int status, void *ud);

/* Starts the writer thread. The store must outlive the committer. */
int ty_committer_create(uv_loop_t *loop, ty_store *store, ty_committer **out);
/* Takes ownership of txn. cb (may be NULL) is called on the loop thread. */
void ty_committer_submit(ty_committer *c, ty_txn *txn, ty_commit_cb cb, void *ud);
/* Called on the loop after the callbacks of one or more batches ran: how many
 * commits (transactions, i.e. fsyncs) and how many txns they held. */
void ty_committer_on_batch(ty_committer *c, void (*cb)(size_t commits, size_t txns, void *ud),
                           void *ud);
/* Txns submitted and not yet answered. */
size_t ty_committer_inflight(const ty_committer *c);
/* SQLite's words for the latest batch that was not stored ("database or
 * disk is full"), "" when none failed; for the answers of requests whose
 * change was lost. Any thread. */
void ty_committer_last_error(ty_committer *c, char *out, size_t len);
/* How many writes (a statement or a commit) failed so far. Any thread. */
uint64_t ty_committer_failures(ty_committer *c);
/* Commits whatever is queued, answers every callback, stops the thread and
 * closes its async handle (freed once the loop runs the close callback).
 * Call on the loop thread. Accepts NULL. */
void ty_committer_destroy(ty_committer *c);

#endif
