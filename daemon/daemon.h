/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/: traind, the controller. This is its public header: what main.c
 * and the tests use. The controller object (its lifecycle), the job state
 * machine and the controller's checks of a job spec, the SQLite store and
 * the group-commit writer in front of it. The state machine, the store and
 * group commit are free of the RPC layer (the ty_daemon_core library) so
 * they are unit-tested on their own. Everything the controller's files
 * share beyond this is daemon_internal.h.
 */
#ifndef TY_DAEMON_DAEMON_H
#define TY_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/auth/auth.h"
#include "lib/rpc/rpc.h"
#include "lib/wire/wire.h"

/* ==== controller =============================================================================
 * controller.c: traind's one top-level object. It owns the libuv loop
 * (borrowed from main), the SQLite store and its group-commit writer, the RPC
 * server for clients and workers, the in-memory job/node/queue tables, the
 * metrics registry and its HTTP server, and the 1 s tick.
 */

typedef struct ty_controller ty_controller;
typedef struct ty_store ty_store; /* the store (below) */

/* ==== policy: who may do what ================================================================
 * policy.c: the `auth.` keys of traind --config (docs/security.md) and the
 * pure rules over them, unit-tested without a daemon.
 *
 *   auth.operators = alice, bob        operators by name (root and traind's
 *   auth.operator_group = tyadmin      own user always are)
 *   auth.nodes = gpu[01-16], cpu*      the nodes allowed to register
 *   auth.workers = munge | key | none  how traind and workers prove they are
 *                                      the cluster's service
 *   auth.service_user = trainyard      whose MUNGE credentials count as the
 *                                      service (root's always do)
 *   auth.cluster_key = FILE            the key file of `auth.workers = key`
 */
typedef struct ty_auth_policy {
  char **operators; /* user names */
  size_t n_operators;
  char *operator_group;  /* NULL = none */
  bool has_operator_gid; /* resolved by the controller at start */
  uint32_t operator_gid;
  char **nodes; /* patterns */
  size_t n_nodes;
  bool nodes_listed; /* auth.nodes was given (possibly empty) */
  ty_auth_mode workers;
  bool workers_set;
  char *service_user; /* NULL = traind's own user */
  char *cluster_key;
} ty_auth_policy;

/* Sets one key (without "auth."): TY_EINVAL with "auth.KEY: ..." in err. */
int ty_policy_set(ty_auth_policy *p, const char *key, const char *value, char *err, size_t len);
/* Parses the auth. lines of a --config text into p and blanks them in
 * place, so the scheduler's parser (which does not know them) reads the
 * rest with its line numbers intact. Errors: "line N: ...". */
int ty_policy_take_config(char *text, ty_auth_policy *p, char *err, size_t len);
void ty_policy_close(ty_auth_policy *p);                             /* leaves it zeroed */
void ty_policy_copy(const ty_auth_policy *from, ty_auth_policy *to); /* deep */
/* TY_EINVAL naming the pattern when its [...] lists are malformed. */
int ty_policy_check_pattern(const char *pattern, char *err, size_t len);
/* Whether a node of this name may register (matches an auth.nodes entry). */
bool ty_policy_node_allowed(const ty_auth_policy *p, const char *name);
/* Operators: uid 0, traind's own uid, a listed name (of a uid known here),
 * or a member of the operator group. */
bool ty_policy_is_operator(const ty_auth_policy *p, const ty_auth_id *id, uint32_t self_uid);

/* A queue's access lists (daemon/queue_access.c). Resolves q's
 * allow_groups to gids on this host and checks that its allow_users
 * exist: TY_EINVAL naming the first unknown name (the gids of the groups
 * that exist are resolved even then). */
int ty_queue_access_resolve(ty_queue_info *q, char *err, size_t len);
/* Whether `who` may put jobs in q by its lists (operators aside). */
bool ty_queue_access_allows(const ty_queue_info *q, const ty_auth_id *who);

typedef struct ty_controller_config {
  const char *listen_host; /* borrowed for the controller's lifetime */
  int listen_port;         /* 0 = ephemeral */
  const char *metrics_host;
  int metrics_port;
  /* /metrics needs "Authorization: Bearer" with this token (lib/http);
   * NULL or "" = open. Copied at start. The file it was read from
   * (--metrics-token-file; borrowed, NULL = none) is read again on each
   * reconfigure. */
  const char *metrics_token;
  const char *metrics_token_file;
  const char *web_host; /* the web console (daemon/web.c); NULL = off */
  int web_port;
  bool web_token_required; /* loopback clients need its token even with --auth none */
  const char *state_dir;   /* the database is STATE_DIR/traind.db */
  /* Local clients' Unix socket (daemon/local.c; docs/security.md), or NULL
   * for none. Borrowed for the controller's lifetime. */
  const char *socket_path;
  /* Graph jobs whose config names no absolute checkpoint path checkpoint to
   * CHECKPOINT_DIR/ID/ (absolute; on the filesystem the workers share). It
   * is outside the private state dir so tasks running as their users can
   * write there: traind makes it 1777, each job's directory is made by the
   * worker for the job's user. */
  const char *checkpoint_dir;
  uint32_t heartbeat_ms;
  uint32_t node_timeout_ms;
  uint32_t kill_grace_s;
  size_t max_frame;
  /* Connection limits of the RPC port (lib/rpc; 0 fields = defaults). The
   * stats pointer is ignored: the controller counts into its registry. */
  ty_rpc_limits limits;
  /* The scheduler (--config FILE): copied at create; NULL = defaults. The
   * topology's strings are copied too. */
  const struct ty_sched_config *sched;
  const struct ty_sched_topology *topo;
  /* Memory and history (issue 15). Finished jobs stay in memory at most
   * min_job_age_s after their last use and job_cache of them at most (like
   * Slurm's MinJobAge); the store keeps them until purge_after_s after they
   * ended (0 = forever). 0 in job_cache/min_job_age_s takes the defaults. */
  uint32_t job_cache;       /* default 1000 */
  uint32_t min_job_age_s;   /* default 300 */
  uint32_t purge_after_s;   /* 0 = keep history forever */
  bool kill_on_invalid_dep; /* cancel jobs whose dependency can never be met */
  /* Jobs not ended that one user may hold (traind --max-user-jobs, as
   * Slurm's MaxSubmitJobs): a submit that would pass it is refused. Every
   * live job costs the controller memory and each pass time, so without it
   * one user's arrays could take the controller's host. 0 = the default,
   * TY_USER_JOBS_DEFAULT; UINT32_MAX = none. */
  uint32_t max_user_jobs;
  /* --config, read again on Reconfigure (trainctl reconfigure) as on
   * SIGHUP; NULL = none (Reconfigure is refused). Borrowed. */
  const char *config_file;
  uint32_t history_cap; /* most jobs in one GetHistory or ListJobs answer; 0 = 100000 */
  /* Authentication: clients (--auth munge|none), munged's socket
   * (--munge-socket; NULL = its default) and the auth. keys (borrowed until
   * ty_controller_create returns: the controller copies what it keeps). */
  ty_auth_mode client_auth;
  const char *munge_socket;
  const ty_auth_policy *policy;
  /* Graph jobs are checked and planned in a child process (daemon/check.c):
   * the helper binary (borrowed), its limits and how many run at once. */
  const char *graphcheck;
  uint32_t check_cpu_s;     /* RLIMIT_CPU of a check */
  uint64_t check_mem_bytes; /* RLIMIT_AS of a check */
  uint32_t check_timeout_s; /* wall clock, then SIGKILL */
  uint32_t check_jobs;      /* checks running at once; more wait */
  /* The cost model plans are made with (ops/plan; nodes, devices_per_node
   * and threads unused): device_flops 0 = measure the CPU (jobs without
   * GPUs; those with GPUs take ops/plan's default), device_mem_bytes 0 =
   * the job's memory per task when it asks for some, else ops/plan's
   * default. */
  ty_check_cluster plan_rates;
} ty_controller_config;

/* What the controller's periodic work and listings touched: the test hook
 * that shows their cost follows the live set, not history. Jobs visited
 * count each job a duty looked at once. */
typedef struct ty_controller_stats {
  uint64_t tick_jobs; /* by the 1 s tick (usage, drains, the sweep) */
  uint64_t pass_jobs; /* by scheduling passes */
  uint64_t pass_runs;
  uint64_t pass_requested; /* passes run on a request (not by the tick) */
  uint64_t pass_skipped;   /* requests of submits only that needed no pass */
  uint64_t list_jobs;      /* by ListJobs answers from memory */
  uint64_t list_encoded;   /* JobInfos encoded (each at most once per change) */
  uint64_t list_cached;    /* ListJobs answered with the cached reply */
  size_t live, cached;     /* jobs in the live set and the finished cache now */
  size_t cached_bytes;     /* what the cached jobs hold (trainyard_job_cache_bytes) */
} ty_controller_stats;
/* Call on the loop thread, or after the loop stopped. Rows read from the
 * store are ty_store_rows_read(ty_controller_store(ctl)). */
void ty_controller_stats_get(const ty_controller *ctl, ty_controller_stats *out);
ty_store *ty_controller_store(ty_controller *ctl);

/* Opens the store (creating the state dir), loads state, starts listening
 * and the tick. On failure returns an error and writes a sentence into err. */
int ty_controller_create(uv_loop_t *loop, const ty_controller_config *cfg, ty_controller **out_ctl,
                         char *err, size_t err_len);
int ty_controller_rpc_port(const ty_controller *ctl);
int ty_controller_metrics_port(const ty_controller *ctl);
int ty_controller_web_port(const ty_controller *ctl); /* -1 when the console is off */
/* Orderly shutdown: stops listening, commits what is queued (answering those
 * requests), closes every handle. Running tasks keep running on the workers.
 * The loop then runs to completion; call ty_controller_destroy after it. */
void ty_controller_stop(ty_controller *ctl);
/* Why the controller stopped on its own, or NULL: the whole-store
 * integrity check that runs after the start found the file damaged (the
 * sentence of ty_store_check). Call after the loop stopped. */
const char *ty_controller_failure(const ty_controller *ctl);
void ty_controller_destroy(ty_controller *ctl); /* accepts NULL */
/* Applies a --config read again (traind on SIGHUP; daemon/reconfig.c):
 * the scheduler's settings, the switch groups and the auth. lists replace
 * the running ones. TY_EINVAL naming the key, with nothing changed, when
 * auth.workers, auth.cluster_key or auth.service_user differ from the
 * running ones or auth.operator_group names no group. Copies what it
 * keeps; call on the loop thread. */
/* What a reconfigure changed, one "key: old -> new" a line (owned). */
typedef struct ty_reconfig_changes {
  char **v;
  size_t n;
} ty_reconfig_changes;
void ty_reconfig_changes_close(ty_reconfig_changes *c); /* leaves it zeroed */
/* `changed` (may be NULL) receives what differs from the running settings. */
int ty_controller_reconfigure(ty_controller *ctl, const struct ty_sched_config *sched,
                              const struct ty_sched_topology *topo, const ty_auth_policy *policy,
                              ty_reconfig_changes *changed, char *err, size_t err_len);
/* Reads --config and --metrics-token-file again and applies them (traind
 * on SIGHUP and the Reconfigure RPC; daemon/reconfig.c), all or nothing:
 * a file that cannot be read or does not parse changes nothing. TY_ESTATE
 * when traind has neither file. `changed` as above; call on the loop
 * thread. */
int ty_controller_reload(ty_controller *ctl, ty_reconfig_changes *changed, char *err,
                         size_t err_len);
/* Reads and parses a --config file (the scheduler's keys, the switch
 * groups, the auth. keys); path NULL = the defaults. TY_EIO when it cannot
 * be read; TY_EINVAL when it is not a regular file ("is a directory", "not
 * a regular file": a FIFO is refused, never waited on), holds over 1 MiB
 * or a NUL byte ("line N: holds a NUL byte"), or does not parse ("line N: KEY: ..."). The
 * outputs are set either way: close topo and policy after. */
int ty_controller_read_config(const char *path, struct ty_sched_config *sched,
                              struct ty_sched_topology *topo, ty_auth_policy *policy, char *err,
                              size_t err_len);

/* Request decoding (convert_check.c), pure: checks a payload against the
 * caps on repeated fields and runs the decoder the handler of `method`
 * uses, then frees what it decoded. The fuzzer's entry point
 * (tests/fuzz/fuzz_daemon.c). 0, or the error a client would get (the
 * message in err). ty_controller_method(i) names the i-th method the
 * controller serves (NULL past the last). */
int ty_controller_decode_request(const char *method, const uint8_t *p, size_t n, char *err,
                                 size_t err_len);
const char *ty_controller_method(size_t i);

/* ==== jobs: state machine and spec checks ====================================================
 * job.c: the job state machine and the controller's checks of a job
 * spec, free of protobuf and SQLite so both can be unit-tested directly.
 *
 * Transitions (docs/cluster-protocol.md):
 *
 *   PENDING  -> RUNNING | CANCELLED
 *   RUNNING  -> COMPLETED | FAILED | CANCELLED | TIMEOUT | OUT_OF_MEMORY | NODE_FAIL |
 *               PREEMPTED
 *   NODE_FAIL, PREEMPTED -> PENDING   (requeue, in the same txn)
 *   COMPLETED, FAILED, CANCELLED, TIMEOUT: terminal; NODE_FAIL and
 *   PREEMPTED too for a no_requeue job (sbatch --no-requeue)
 */

/* 0 when from -> to is a valid transition, TY_ESTATE otherwise. States and
 * the job spec are the wire model's (lib/wire/wire.h). */
int ty_job_check_transition(int from, int to);

/* The form of a job's reason for users other than its owner and operators
 * (docs/security.md): the controller's descriptions of a rank's end or a
 * failed launch quote exit codes, signals, argv[0] and paths, which are the
 * owner's; others read "rank 0 failed" or "launch failed on NODE" (any
 * "; requeued (...)" kept). Any other reason is copied as it is. */
void ty_job_reason_public(const char *reason, char *out, size_t len);

/* Limits applied by validation. */
#define TY_JOB_MAX_NAME 256
#define TY_JOB_MAX_NODES 10000
#define TY_JOB_MAX_TASKS_PER_NODE 1024
#define TY_JOB_MAX_CPUS_PER_TASK 4096
#define TY_JOB_MAX_ARGS 4096
#define TY_JOB_MAX_ARG_LEN 65536
/* An array's elements times its job's encoded size (a graph job's model
 * bytes aside: they go to one file). Each element is a job of its own in
 * the controller's memory, its spec copied twice (decoded and encoded), so
 * without this one request of a 64 MiB frame asking for 100000 elements
 * would have traind allocate terabytes. 1 GiB: 16000 elements of a batch
 * script at its 64 KB maximum, 100000 of up to 10 KB. */
#define TY_ARRAY_MAX_BYTES ((uint64_t)1 << 30)
/* traind --max-user-jobs by default: one array of TY_ARRAY_MAX_TASKS
 * elements fits, a few hundred MB of the controller's memory at most. */
#define TY_USER_JOBS_DEFAULT 100000u

/* Checks a submitted spec and fills in defaults (queue "default", name from
 * argv[0], resources defaults 1/1/0/1/0 also for fields sent as 0, since
 * proto3 cannot tell 0 from unset, user "nobody" when the client sent
 * none). Graph jobs need a model (path or bytes) and a config; one rank
 * runs per GPU (tasks_per_node defaults to gpus_per_node) or per CPU slot.
 * Returns 0 or TY_EINVAL and writes the
 * reason, starting with the bad field ("job.command.argv: must not be empty"),
 * into err. Does not know queues or nodes: the controller checks those. */
int ty_job_spec_validate(ty_job_spec *s, char *err, size_t err_len);
/* A job name, at submit or `job update --name`: UTF-8, at most
 * TY_JOB_MAX_NAME bytes, and one line (no control characters: listings
 * and `show -o` print it as a field of a line). err names `what`. */
int ty_job_name_check(const char *what, const char *name, char *err, size_t err_len);
/* Free text shown as a field of a line (a job's name, a node's drain
 * reason): UTF-8, no control characters (a newline or an escape would
 * break or repaint a listing), at most max bytes. err names `what`. */
int ty_one_line_check(const char *what, const char *s, size_t max, char *err, size_t err_len);
/* The longest drain reason `node drain --reason` takes. */
#define TY_NODE_MAX_REASON 200
/* The task layout's limits (tasks per node, CPUs per task, GPUs per node),
 * as ty_job_spec_validate checks them at submit and job update after it:
 * 0 or TY_EINVAL naming the field ("job.resources.tasks_per_node: ..."). */
int ty_job_check_layout(const ty_job_spec *s, char *err, size_t err_len);

/* A SubmitJob's request id: "" (none) or 1..TY_JOB_MAX_REQUEST_ID printable
 * ASCII characters without spaces. 0 or TY_EINVAL ("request_id: ..."). */
#define TY_JOB_MAX_REQUEST_ID 128
int ty_job_check_request_id(const char *id, char *err, size_t err_len);

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
  X(18, held_by, TEXT, "TEXT NOT NULL DEFAULT ''") /* the operator whose hold it is, '' = none */

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
/* The job uid `uid` submitted with request id `rid` (never ""): 0 or
 * TY_ENOTFOUND. One indexed row (jobs_by_request). */
int ty_store_find_request(ty_store *s, uint32_t uid, const char *rid, uint64_t *out_id);
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
int ty_store_admin_events(ty_store *s, int (*cb)(const ty_admin_event_row *r, void *ud), void *ud);
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

/* ==== plan cache =============================================================================
 * plan_cache.c: plan files (ops/plan/plan.h's format) by the key of the
 * search that made them (ty_plan_request_key: graph fingerprint, mesh,
 * batch, cost model) and its owner, the uid whose model check computed
 * that key (a child the user can tamper with): an entry is served to that
 * uid only. Least recently used out first, at most max_entries and
 * max_bytes. One thread (the loop). */

typedef struct ty_plan_cache ty_plan_cache;
/* NULL when out of memory. */
ty_plan_cache *ty_plan_cache_create(size_t max_entries, size_t max_bytes);
void ty_plan_cache_destroy(ty_plan_cache *c); /* accepts NULL */
/* A copy of owner's plan for key (malloc'd, the caller frees it): 0,
 * TY_ENOTFOUND, or TY_ENOMEM. Counts a hit or a miss. */
int ty_plan_cache_get(ty_plan_cache *c, uint32_t owner, uint64_t key, uint8_t **out,
                      size_t *out_len);
/* Keeps a copy for owner and key (replacing its old one), dropping the
 * least recently used plans to make room; a plan above max_bytes is not
 * kept. */
void ty_plan_cache_put(ty_plan_cache *c, uint32_t owner, uint64_t key, const uint8_t *plan,
                       size_t len);
void ty_plan_cache_stats(const ty_plan_cache *c, size_t *out_entries, size_t *out_bytes,
                         uint64_t *out_hits, uint64_t *out_misses);

#endif
