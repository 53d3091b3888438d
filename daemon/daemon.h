/* SPDX-License-Identifier: Apache-2.0 */
/*
 * daemon/: traind, the controller. This is its public header: what main.c
 * and the tests use. The controller object (its lifecycle), the job state
 * machine and the controller's checks of a job spec, the plan cache, and
 * (in daemon/store.h, included here) the SQLite store and the group-commit
 * writer in front of it. The state machine, the store and group commit are
 * free of the RPC layer (the ty_daemon_core library) so they are
 * unit-tested on their own. Everything the controller's files share beyond
 * this is daemon_internal.h.
 */
#ifndef TY_DAEMON_DAEMON_H
#define TY_DAEMON_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "lib/auth/auth.h"
#include "lib/rpc/rpc.h"
#include "daemon/store.h"
#include "lib/wire/wire.h"

/* ==== controller =============================================================================
 * controller.c: traind's one top-level object. It owns the libuv loop
 * (borrowed from main), the SQLite store and its group-commit writer, the RPC
 * server for clients and workers, the in-memory job/node/queue tables, the
 * metrics registry and its HTTP server, and the 1 s tick.
 */

typedef struct ty_controller ty_controller;

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
/* Whether a worker of this name may register under p: it matches an
 * auth.nodes entry, or p lists no nodes and workers need no credential
 * (auth.workers = none: a development cluster, where any name may). */
bool ty_policy_may_register(const ty_auth_policy *p, const char *name);
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
  /* How long a pending rlaunch job waits for its rlaunch to come back
   * before it is cancelled (daemon/watch.c; 0 = 30 s). */
  uint32_t rlaunch_gone_s;
  /* After failed store writes, every job and node is written again every
   * store_retry_ms until one such write is stored (daemon/resync.c; 0 =
   * 5000), on the first 1 s tick after that. */
  uint32_t store_retry_ms;
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
  size_t live_bytes;       /* what the live jobs hold, counted as cached_bytes (a walk) */
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
/* Records a reload that was not asked over the RPC (SIGHUP) in the admin
 * events (kind "config"), as the Reconfigure RPC records its own: by
 * `actor` ("signal:SIGHUP"), "reconfigure" with what changed, or
 * "refused" with err when rc is not 0. */
void ty_controller_record_reload(ty_controller *ctl, const char *actor, int rc, const char *err,
                                 const ty_reconfig_changes *changed);
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

/* When a run's rank ended, as the controller records it (ms since the
 * epoch): the worker's report `reported` (0 = none: now), never after
 * `now` (the controller's wall clock) nor before the run's start
 * `start_ms` (0 = not known). `ran_ms` is how long the run has run by
 * the controller's monotonic clock (-1 = unknown: a controller restarted
 * since it started the run): when start_ms + ran_ms and now differ by
 * more than TY_END_SKEW_MS, the wall clock was stepped during the run, and
 * the end is start_ms + ran_ms, so that the run's recorded length (End -
 * Start, Elapsed) is the time it ran, not 0 or the step. */
#define TY_END_SKEW_MS 5000
int64_t ty_job_end_time(int64_t start_ms, int64_t reported, int64_t now, int64_t ran_ms);

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
