/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The controller's state in memory: nodes, jobs with their ranks, slots,
 * dependencies and array records, pending replies, and `struct
 * ty_controller` that holds them all. Shared by the controller's files
 * through daemon/daemon_internal.h.
 *
 * Everything here lives on the loop thread. Memory holds the live set --
 * jobs not yet ended, or ended with ranks still to report -- and a bounded
 * cache of finished jobs (state.c); everything else is in the store and is
 * read back on demand. A job leaves the live set, and a finished job the
 * cache, only in the tick's sweep, never inside a request or a callback:
 * a ty_job pointer is valid until control returns to the loop. Nodes are
 * never freed while the controller runs. Asynchronous callbacks carry ids,
 * not pointers, and look the job up again, because a job may have moved on
 * (requeued: `run` counts its incarnations) while they were waiting.
 */
#ifndef TY_DAEMON_CONTROLLER_TYPES_H
#define TY_DAEMON_CONTROLLER_TYPES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "daemon/daemon.h"
#include "lib/base/base.h"
#include "lib/http/http.h"
#include "lib/rpc/rpc.h"
#include "scheduler/scheduler.h"

typedef struct ty__graph_reg ty__graph_reg;     /* daemon/graph.c */
typedef struct ty__checks ty__checks;           /* daemon/check.c */
typedef struct ty__submit_wait ty__submit_wait; /* daemon/submit.c */

typedef struct ty_cluster_node {
  char *name;
  uint32_t index; /* in ctl->nodes: the scheduler's node index (renumbered when one is deleted) */
  int state;      /* ty_node_state */
  uint32_t cpus;
  uint64_t memory;
  uint32_t n_gpus;
  uint8_t *info; /* encoded NodeInfo holding gpus and topology (convert.c) */
  size_t info_len;
  char *io_addr; /* "host:port" */
  char *host;    /* host part of io_addr: MASTER_ADDR for rank 0 */
  char *reason;
  int64_t last_seen_ms;   /* wall clock, reported */
  int64_t last_seen_mono; /* monotonic, for the timeout */
  ty_rpc_conn *conn;      /* the registered worker connection, or NULL */
  uint64_t conn_gen;      /* +1 whenever conn changes: signed calls check it */
  uint32_t cpus_used;
  uint64_t gpus_used; /* bit set of allocated GPU indices */
  uint64_t mem_used;
  uint32_t running_tasks; /* TASKS: the worker's count, kept between heartbeats (rpc_worker.c) */
  bool drain;             /* an operator drains it: DRAINING, then DRAINED */
  bool leaving;           /* its worker is stopping: DRAINING until it registers again */
  bool sets_task_limit;   /* its worker takes a running job's new time limit (SetTaskLimit) */
  uint32_t switch_id;     /* switch group from the config, TY_SCHED_NO_SWITCH if none */
  char *switch_name;      /* ... its name (owned), NULL if none */
  /* Its worker's last RegisterNode was refused (auth.nodes), and why; in
   * memory only, cleared when it registers: `nodes` shows it as the reason
   * of a node not connected (convert.c). */
  char refused[96];
  int64_t refused_mono;
  uint8_t gpu_island[TY_SCHED_MAX_GPUS]; /* NVLink island per GPU, from its info */
} ty_cluster_node;

typedef enum { RANK_WAIT = 0, RANK_LAUNCHING, RANK_RUNNING, RANK_ENDED } ty_rank_state;

typedef struct ty_rank {
  uint32_t slot; /* index into job->slots */
  ty_rank_state state;
  int task_state; /* TY_TASK_* once ended */
  int32_t exit_code, term_signal;
  bool timed_out;
  bool oom_killed;   /* its cgroup counted a kill at the memory limit (--mem) */
  char *reason;      /* FAILED_START's reason, or why it was lost */
  uint32_t end_seq;  /* 1-based order of ending; 0 while live */
  uint32_t seen_gen; /* the RegisterNode that last reported it */
  /* When it ended (ms since the epoch): its worker's report, bounded by
   * ty__end_time; 0 while live, or unknown (ended before a restart). */
  int64_t end_ms;
  /* Its accounting record once ended (job_id 0 before; node borrowed from
   * the slot): history's copy until the store has it (history.c). */
  ty_rank_row acct;
} ty_rank;

typedef struct ty_slot {
  ty_cluster_node *node;
  uint64_t gpus;
  uint32_t cpus;
  uint64_t mem;
  uint32_t live; /* ranks on this slot not ended */
  bool held;     /* resources still charged to the node */
} ty_slot;

/* When one launch reached each stage on the controller (uv_hrtime ns; 0 =
 * not yet), for rlaunch --timing (watch.c turns them into durations). */
typedef struct ty__launch_clock {
  uint64_t received, queued, committed; /* SubmitJob, its txn queued, committed */
  uint64_t pass, placed;                /* the pass that placed it began; placed */
  uint64_t running, launched;           /* RUNNING committed; LaunchTask sent to all */
  uint64_t last_update, ended;          /* the last rank's end reported; the end committed */
} ty__launch_clock;
/* One condition of a job's dependency (deps.c), in the order of its spec. */
typedef enum { TY__DEP_WAIT = 0, TY__DEP_MET = 1, TY__DEP_NEVER = 2 } ty__dep_result;
typedef struct ty__dep {
  uint64_t target; /* a job, or an array (is_array); 0 for singleton */
  bool is_array;
  uint8_t result;  /* ty__dep_result */
  int seen;        /* the target's state when last evaluated (for reasons) */
  uint64_t holder; /* singleton: the earlier job of its name and user it waits for */
} ty__dep;

/* An array with elements not yet ended, and what became of them (deps.c
 * keeps it for conditions on the whole array). */
typedef struct ty__array {
  ty_id_node node; /* id = the array's id (ctl->arrays) */
  uint64_t id;
  ty_array_counts n;
  uint32_t min, max, step; /* its task indices' span (TRAINYARD_ARRAY_*) */
  uint32_t unsplit;        /* elements still in its stored record (jobs.c) */
  /* All ended: kept until ctl->txn_done reaches this (the txns queued by
   * then hold its last end), so a waiter that arrives meanwhile reads
   * these counts, not the store's lagging ones (deps.c); 0 = not yet. */
  uint64_t spent_txn;
} ty__array;

/* The jobs whose conditions name one target. */
typedef struct ty__waiters {
  ty_id_node node; /* id = the target's (ctl->waiters) */
  uint64_t *ids;
  size_t n, cap;
} ty__waiters;

/* How far a pending job's multifactor priority moves before its listed
 * value (and so its cached JobInfo) follows (sched_pass.c). */
#define TY__PRIO_LIST_STEP 1.0

typedef struct ty_job {
  uint64_t id;
  ty_job_spec spec; /* validated */
  /* spec.user and spec.queue as the controller's one copy of each name
   * (ty__name_intern), what the scheduler's input borrows: equal names at
   * one address let the pass find a job's account without reading them.
   * NULL until the first pass; sched_queue is cleared when the job moves. */
  const char *sched_user, *sched_queue;
  /* spec's -w/-x lists as hostlists (ty__job_lists; the store's
   * req_nodes and exc_nodes), owned; NULL = none. */
  char *req_list, *exc_list;
  uint8_t *blob; /* the encoded trainyard.Job, as stored */
  size_t blob_len;
  char *request_id;        /* the client's SubmitJob request id; "" = none */
  uint64_t request_hash;   /* of the Job that request sent (submit.c); 0 = not kept */
  struct ty_job *req_next; /* chain in the controller's request-id index */
  int state;
  char *reason;
  int32_t exit_code, term_signal; /* the first failing rank's (srun's rule) */
  uint32_t first_failed;          /* 1 + the rank whose failure ended the run; 0 = none */
  int64_t submit_ms, start_ms, end_ms;
  uint32_t requeue_count;
  uint32_t fail_requeues; /* requeues after a failed rank (in memory only) */
  uint32_t run;           /* incarnation: +1 on every placement */
  uint8_t *plan;          /* a graph job's plan file (ops/plan), sent in LaunchTask; */
  size_t plan_len;        /* 0 bytes: data parallel */
  uint32_t warned_run;    /* the run whose --signal warning is in the history */
  bool committed;         /* the submit is durable; only then schedulable */
  bool store_wait;        /* its RUNNING record was not stored: not scheduled until the
                           * store writes again (launch.c, resync.c) */
  uint64_t end_txn;       /* ended: the txns queued when the sweep first saw it (state.c) */
  bool user_counted;      /* counted in its user's jobs not ended (state.c, --max-user-jobs) */
  bool unsplit;    /* an element still in its array's stored record: no jobs row yet (jobs.c) */
  bool split_lost; /* unsplit again: the txn with its row was not stored, and its changes since
                    * are in memory only until the store's repair writes it (state.c) */
  bool kill_sent;  /* its ranks were sent KillTask (stored: schema 15) */
  uint32_t kill_grace_s; /* that KillTask's grace (in memory only; 0 = the worker's default) */
  ty_slot *slots;
  uint32_t n_slots;
  ty_rank *ranks;
  uint32_t n_ranks;
  uint32_t live_ranks;
  uint32_t ended; /* end_seq counter */
  /* The scheduler (sched_pass.c, admin.c). */
  bool held;            /* held until released (trainctl job release) */
  char *held_by;        /* ... by this operator (JobHeldAdmin): only an operator releases
                           it; NULL: by its owner (JobHeldUser), or not held */
  int64_t last_ckpt_ms; /* the last checkpoint it reported */
  /* Fair share (sched_pass.c): its running time is charged up to this wall
   * time; usage_mono is the monotonic time of that charge in this process
   * (0 = not charged since placed or loaded: the next charge spans the wall
   * gap, a traind outage included). Loaded from its usage row's time. */
  int64_t usage_until_ms;
  int64_t usage_mono;
  /* A graph job's progress and checkpoints as its row stores them (column
   * graph_progress; graph.c encodes them when its checkpoints change and at
   * each transition); 0 bytes = none. */
  uint8_t *graph_saved;
  size_t graph_saved_len;
  /* Accounting, every rank and run: CPU time, memory and I/O from the
   * ranks' cgroups; a rank no cgroup measured counts its CPUs held x wall
   * clock in usage.cpu_usec, and acct_measured is then false. */
  ty_task_usage usage;
  double prio;             /* listed multifactor priority: the last pass's, to TY__PRIO_LIST_STEP */
  uint64_t preempt_for;    /* RUNNING and being preempted for this job; 0 = not (stored) */
  ty__launch_clock clock;  /* the latest run's */
  uint32_t watched;        /* open watches (watch.c) */
  uint32_t attended;       /* ... of them with task tokens: its rlaunch's (watch.c) */
  int64_t unattended_mono; /* a pending rlaunch job's rlaunch left then; 0 = not (watch.c) */
  /* Metrics (metrics.c), in memory only. */
  int64_t pending_ms; /* when it last became PENDING (0: at submit) */
  bool has_wait;      /* a pass has given it a wait code since then */
  ty_sched_wait wait; /* why it waits, per the last pass */
  /* Arrays and dependencies (issue 15). */
  uint64_t array_id; /* the array it is an element of, 0 = none */
  uint32_t array_task;
  uint32_t acct_run;  /* the run its rank records belong to (1 = the first) */
  int run_state;      /* how run acct_run ended (ty_run_state_name); 0 while it runs */
  bool requeue_asked; /* `job requeue`: PENDING again once its ranks ended (stored) */
  ty__dep *deps;      /* spec.n_deps conditions */
  uint8_t dep;        /* all of them together: ty__dep_result (MET when none) */
  char *dep_reason;   /* why it waits on them, for the pass; NULL when MET */
  char *model_file;   /* its model_bytes on disk (STATE_DIR/models), or NULL */
  char *nodes_csv;    /* a finished job read back from the store: its nodes */
  /* Accounting: what its ranks held, and GPUs held x wall clock, summed as
   * they end (CPU time is in usage). */
  uint32_t alloc_cpus, alloc_gpus;
  int64_t acct_gpu_ms;
  bool acct_measured;
  /* The row as last written: only columns whose fingerprint changed are
   * written again (ty__job_save). */
  uint64_t fp[TY_JOB_NCOLS];
  /* Its JobInfo, encoded once per change (convert.c), by ty__info_view:
   * in full (GetJob of its owner and operators), abridged (their
   * listings), redacted (everyone else's). */
  ty_buf info[3];
  bool info_ok[3];
  uint64_t changed_gen; /* ctl->ls_gen of its last change (the console's events) */
  /* The finished-job cache (state.c). */
  ty_id_node done_node; /* in ctl->done while cached */
  bool cached;
  bool trimmed;      /* no decoded argv and env (cached, or an array element not yet
                        launched): ty__job_untrim decodes them from blob (state.c) */
  int64_t used_mono; /* finished, or last looked up */
  struct ty_job *lru_prev, *lru_next;
} ty_job;

/* Decayed fair-share usage of one user in one queue. */
typedef struct ty_usage {
  char *user, *queue;
  double gpu_s, cpu_s;
  bool dirty;        /* changed since last stored */
  int64_t stored_ms; /* the wall time its stored row was charged to (0 = none) */
} ty_usage;

/* The method a test-only SubmitJob is counted and logged as: an estimate
 * is not submit load (docs/metrics.md). */
#define TY__METHOD_SUBMIT_TEST_ONLY "SubmitJobTestOnly"

/* A request being answered (now, or once its commit is durable). */
typedef struct ty_reply {
  ty_controller *ctl;
  ty_rpc_conn *conn; /* NULL once the connection closed */
  uint64_t request_id;
  const char *method; /* static string from the dispatch table, or TY__METHOD_SUBMIT_TEST_ONLY */
  uint64_t t0_ns;
  uint64_t job_id; /* handler-specific */
  /* The request envelope's credential: borrowed, valid only during the
   * handler's synchronous call (NULL/0 when absent). */
  const uint8_t *credential;
  size_t credential_len;
  /* The caller (auth.c): from its credential, or traind's own user when the
   * method's scheme is none; whether it is an operator. */
  ty_auth_id who;
  bool operator;
  const char *refusal;                    /* the metric reason of a TY_EPERM answer (static) */
  bool refusal_counted;                   /* counted where it happened (one id of a cancel) */
  ty_buf out;                             /* encoded answer payload */
  bool watch, watch_tokens, watch_timing; /* SubmitJob: answer with a watch stream */
  /* A request made inside traind (the web console's actions): the answer
   * goes to sink instead of a connection (reply.c). */
  void (*sink)(struct ty_reply *r, int status, const char *message);
  void *sink_ud;
  bool gated; /* holds one of the store readers' slots (store_gate.c) */
  /* Its credential check while that waits in a queue (auth.c), else NULL. */
  struct ty__admit *admit;
  struct ty_reply *prev, *next;
} ty_reply;

/* The store readers' gate (store_gate.c): at most this many run at once in
 * all, per caller's uid and per connection. */
enum { TY__GATE_GLOBAL = 4, TY__GATE_PER_UID = 2, TY__GATE_PER_CONN = 1 };
typedef struct ty__gate_slot {
  ty_reply *r;
  const ty_rpc_conn *conn; /* NULL once closed */
  uint32_t uid;
} ty__gate_slot;
typedef struct ty__gate_wait ty__gate_wait;

typedef struct ty__watch ty__watch;

struct ty_controller {
  uv_loop_t *loop;
  char **names; /* ty__name_intern's copies: an open-addressed table of
                   names_cap slots (a power of two, at most half full),
                   freed with the controller */
  size_t n_names, names_cap;
  ty_controller_config cfg;
  ty_store *store;
  int lock_fd; /* STATE_DIR/traind.lock, flocked while the controller lives; -1: none */
  ty_committer *commit;
  ty_rpc_server *server;
  ty_rpc_server *local; /* --socket's, or NULL (local.c) */
  ty_metrics *metrics;
  ty_http_server *http;
  char metrics_token[TY_HTTP_TOKEN_MAX]; /* /metrics' bearer token, "" = open */
  ty_http_server *web;                   /* the web console's server, or NULL (web.c) */
  struct ty__web_events *web_events;     /* its event streams (web_events.c), or NULL */
  struct ty__web_id *web_ids;            /* identities of recent console tokens (web_token.c) */
  char web_token[33];                    /* its token: hex of the first 16 bytes of web.key */
  uv_timer_t tick;
  uv_async_t sched_async; /* runs a coalesced scheduling pass */
  /* The whole-store integrity check, run on the thread pool after the
   * start (controller.c); failure stops the controller, and a stop fires
   * check_opts.cancel, which interrupts it. */
  uv_work_t check_work;
  ty_store_check_opts check_opts;
  int check_rc;
  char check_err[TY_ERR_LEN];
  bool sched_wanted;
  /* Since the last pass (sched_pass.c): whether anything but a submit asked
   * for one, the jobs submitted (first id and count of each submit), and
   * whether that pass left every pending job waiting for something a new
   * job cannot change (none held back by a reservation or preempting). */
  bool sched_other, sched_saturated;
  uint64_t (*sched_new)[2];
  size_t n_sched_new, cap_sched_new;
  ty_job **jobs;
  size_t n_jobs, cap_jobs; /* the live set, sorted by id */
  ty_job **req_index;
  size_t n_req_index, n_req_jobs; /* (user, request id) -> live job (state.c) */
  uint64_t next_id;
  /* Finished jobs kept in memory: by id, and least recently used last. */
  ty_idmap done; /* ty_job.done_node */
  ty_job *lru_head, *lru_tail;
  /* The live set's jobs per submitter's uid (state.c), for
   * cfg.max_user_jobs: counted where jobs enter and leave it. */
  ty_idmap user_jobs;
  /* Dependencies (deps.c): who waits on each job or array id, the arrays
   * with elements left, and targets whose waiters the next pass rechecks. */
  ty_idmap waiters; /* ty__waiters by target id */
  ty_idmap arrays;  /* ty__array by array id */
  uint64_t *dep_changed;
  size_t n_dep_changed, cap_dep_changed;
  /* Arrays whose last element just ended: kept until the next recheck of
   * their waiters, which must not read counts the store may not have yet. */
  uint64_t *spent_arrays;
  size_t n_spent_arrays, cap_spent_arrays;
  /* Jobs and arrays requeued since the last pass: the conditions on them
   * found never met wait again (deps.c, reopen_waiters). */
  uint64_t *dep_requeued;
  size_t n_dep_requeued, cap_dep_requeued;
  /* ListJobs of the live set: the last request and its answer, valid while
   * no live job changed (ls_gen counts changes), for the same caller (an
   * answer shows commands only to their owners and operators): any
   * operator, or the uid ls_uid. */
  uint64_t ls_gen, ls_cached_gen;
  ty_buf ls_req, ls_reply;
  bool ls_cached, ls_operator;
  uint32_t ls_uid;
  /* Pruning of old history (the tick starts one batch at a time). */
  bool prune_running;
  uint32_t prune_deleted;
  int64_t prune_mono;
  ty_controller_stats stats;
  ty_cluster_node **nodes;
  size_t n_nodes;
  /* Nodes deleted (trainctl node delete): out of `nodes`, kept until the
   * controller stops, as jobs that ran there still point at them. */
  ty_cluster_node **deleted_nodes;
  size_t n_deleted_nodes;
  ty_queue_info *queues;
  size_t n_queues;        /* live counts unused; DELETED ones kept */
  ty_reply *replies;      /* outstanding replies (for connection close) */
  ty_ratelog refusal_log; /* refusals logged per peer address (reply.c) */
  ty__watch *watches;
  size_t n_watches;              /* job watches (watch.c) */
  uint64_t txn_queued, txn_done; /* txns handed to the committer; delivered */
  /* Putting the store back in step after failed writes (resync.c). */
  uint64_t store_failures_seen, resync_mark;
  bool resync_inflight;
  int64_t resync_next_mono;
  uint64_t pass_t0_ns; /* when the running scheduling pass began */
  int64_t start_mono;
  uint32_t reg_gen; /* counts RegisterNode requests */
  bool stopping;
  int handles_open;
  uint8_t attach_secret[32]; /* task-token secret (token.c) */
  /* Authentication (auth.c): the policy (--config auth. keys, owned), the
   * schemes of clients and workers, the queue that runs them off the loop,
   * traind's own identity and the service user's uid. */
  ty_auth_policy policy;
  ty_auth *client_auth, *worker_auth;
  ty_auth_queue *authq;        /* clients' and tokens' checks (libuv's pool) */
  ty_auth_queue *worker_authq; /* workers' checks and signed calls (own thread) */
  /* Store readers running and waiting (store_gate.c). */
  ty__gate_slot gate_run[TY__GATE_GLOBAL];
  size_t gate_running, gate_waiting;
  ty__gate_wait *gate_head, *gate_tail;
  uv_timer_t gate_kick;
  ty_auth_id self;
  uint32_t service_uid;
  struct { /* metrics.c registers them all */
    ty_metric *cache_jobs, *cache_bytes;
    ty_metric *jobs, *pending, *submitted, *test_only, *ends, *queue_wait, *run_time;
    ty_metric *rpc_total, *rpc_seconds, *commits;
    ty_metric *refusals; /* auth.c */
    ty_metric *nodes, *heartbeat_age, *sched_seconds, *frag;
    ty_metric *preemptions, *backfilled; /* sched_pass.c */
    ty_metric *fs_share, *fs_usage, *fs_user_usage, *fs_user_factor;
    ty_metric *train_step, *train_loss, *train_rate, *train_ckpt, *train_accuracy;
    ty_metric *checks, *plan_cache; /* check.c */
  } m;
  /* The scheduler's settings (--config) and state (sched_pass.c). */
  ty_sched_config sched;
  ty_sched_topology topo;
  ty_usage *usage;
  size_t n_usage;
  int64_t usage_mono; /* when usage was last charged */
  /* Graph jobs: rendezvous keys, progress, checkpoint paths (graph.c). */
  struct ty__graph_reg *graph;
  /* Model checks in child processes and the plan cache (check.c). */
  ty__checks *checks;
  /* Graph submits whose check is running, for their retries (submit.c). */
  ty__submit_wait *checking;
};

#endif
